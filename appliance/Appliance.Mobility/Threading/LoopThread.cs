using System.Runtime.InteropServices;

namespace Isthmus.Mobility.Threading;

/// <summary>
/// The scheduling of a latency-critical loop thread (<see cref="EventLoop"/>: the mobility service's and the BGP
/// sessions'): with <see cref="LoopPriority.RealTime"/> it runs under SCHED_FIFO, so a wake-up preempts ordinary (CFS)
/// work at once instead of waiting for its turn. The loops block while idle, so they never hold a core; the kernel's
/// real-time throttling (95 % by default) bounds a runaway.
/// </summary>
public static partial class LoopThread
{
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
