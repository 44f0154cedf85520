using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace Isthmus.Mobility.Threading;

/// <summary>
/// A latency-critical loop (the mobility service's, a BGP session's) on its own thread instead of the
/// thread pool: a post wakes exactly this thread (no pool queue, no hill-climbing on 2 cores), and with
/// <see cref="LoopPriority.RealTime"/> it runs under SCHED_FIFO, so a wake-up preempts ordinary
/// (CFS) work at once instead of waiting for its turn. The loops block while idle, so they never
/// hold a core; the kernel's real-time throttling (95 % by default) bounds a runaway.
/// </summary>
/// <remarks>
/// The channel must be created with <see cref="ChannelOptions.AllowSynchronousContinuations"/> = true:
/// then a writer completes the thread's wait itself (one futex wake), rather than through a pool item.
/// </remarks>
public static partial class LoopThread
{
    /// <summary>
    /// Runs <paramref name="handle"/> for every item of <paramref name="reader"/> on a new background
    /// thread until the channel completes; the task completes when the thread ends. An exception from
    /// <paramref name="handle"/> ends the loop and faults the task (callers catch per item).
    /// </summary>
    /// <param name="started">Called on the new thread with what <see cref="Elevate"/> got.</param>
    public static Task Start<T>(string name, ChannelReader<T> reader, Action<T> handle, LoopPriority priority, Action<string>? started = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(handle);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                var scheduling = Elevate(priority);
                started?.Invoke(scheduling);
                while (true)
                {
                    while (reader.TryRead(out var item))
                    {
                        handle(item);
                    }

                    var wait = reader.WaitToReadAsync();
                    if (!(wait.IsCompleted ? wait.Result : wait.AsTask().GetAwaiter().GetResult()))
                    {
                        break;
                    }
                }

                done.TrySetResult();
            }
#pragma warning disable CA1031 // the loop's owner sees the failure through the task
            catch (Exception e)
#pragma warning restore CA1031
            {
                done.TrySetException(e);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>What the calling thread got: "SCHED_FIFO 1" (or 2), "nice -10" or "normal" (not permitted, or not Linux).</summary>
    public static string Elevate(LoopPriority priority)
    {
        if (priority == LoopPriority.Normal || !OperatingSystem.IsLinux())
        {
            return "normal";
        }

        try
        {
            // Linux: pid 0 is the calling thread for both calls.
            var param = new SchedParam { Priority = priority == LoopPriority.RealTimeAbove ? 2 : 1 };
            if (SchedSetScheduler(0, SchedFifo, ref param) == 0)
            {
                return $"SCHED_FIFO {param.Priority}";
            }

            return SetPriority(PrioProcess, 0, -10) == 0 ? "nice -10" : "normal";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return "normal";
        }
    }

    private const int SchedFifo = 1;
    private const int PrioProcess = 0;

    [StructLayout(LayoutKind.Sequential)]
    private struct SchedParam
    {
        public int Priority;
    }

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static partial int SchedSetScheduler(int pid, int policy, ref SchedParam param);

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int priority);
}

/// <summary>How a <see cref="LoopThread"/> runs.</summary>
public enum LoopPriority
{
    /// <summary>An ordinary thread (tests, or when real time is not wanted).</summary>
    Normal,

    /// <summary>SCHED_FIFO priority 1 if permitted (CAP_SYS_NICE), else nice -10 if permitted, else ordinary.</summary>
    RealTime,

    /// <summary>
    /// As <see cref="RealTime"/> with SCHED_FIFO priority 2: a post from a <see cref="RealTime"/> loop on the same CPU
    /// preempts the poster at once (a BGP session loop takes the mobility loop's desired set and writes the UPDATE
    /// before the mobility loop finishes its bookkeeping).
    /// </summary>
    RealTimeAbove,
}
