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
    /// <param name="fifoPriority">
    /// The SCHED_FIFO priority of <see cref="LoopPriority.RealTime"/> (dataPlane.realtimePriority, 1-99; null = 1);
    /// <see cref="LoopPriority.RealTimeAbove"/> is one above it (at most 99).
    /// </param>
    public static string Elevate(LoopPriority priority, int? fifoPriority = null)
    {
        if (priority == LoopPriority.Normal || !OperatingSystem.IsLinux())
        {
            return "normal";
        }

        // SCHED_RESET_ON_FORK (TrySetFifo): threads created from the loop are ordinary. The runtime starts some of its own
        // threads from whichever thread needs them first (session 7's trace caught the tiered compilation thread, started
        // from the loop, compiling under SCHED_FIFO).
        var basePriority = Math.Clamp(fifoPriority ?? 1, MinFifoPriority, MaxFifoPriority);
        if (TrySetFifo(priority == LoopPriority.RealTimeAbove ? Math.Min(basePriority + 1, MaxFifoPriority) : basePriority, out var fifo))
        {
            return fifo;
        }

        try
        {
            // Linux: pid 0 is the calling thread.
            return SetPriority(PrioProcess, 0, -10) == 0 ? "nice -10" : "normal";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return "normal";
        }
    }

    /// <summary>The lowest and highest SCHED_FIFO priorities (sched_get_priority_min/max on Linux).</summary>
    public const int MinFifoPriority = 1;

    public const int MaxFifoPriority = 99;

    /// <summary>
    /// Puts the calling thread under SCHED_FIFO <paramref name="priority"/> (a thread that blocks when idle: the
    /// data-plane worker in interrupt mode, dataPlane.realtimePriority). SCHED_RESET_ON_FORK: threads it starts are
    /// ordinary. False, with the reason in <paramref name="result"/>, when refused (no CAP_SYS_NICE, RLIMIT_RTPRIO) or not
    /// Linux; the thread then runs as before. <paramref name="result"/> is "SCHED_FIFO n" on success.
    /// </summary>
    public static bool TrySetFifo(int priority, out string result)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(priority, MinFifoPriority);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(priority, MaxFifoPriority);
        if (!OperatingSystem.IsLinux())
        {
            result = "not Linux: no real-time scheduling";
            return false;
        }

        try
        {
            var param = new SchedParam { Priority = priority };
            if (SchedSetScheduler(0, SchedFifo | SchedResetOnFork, ref param) == 0)
            {
                result = $"SCHED_FIFO {priority}";
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            result = $"sched_setscheduler(SCHED_FIFO {priority}) failed: errno {errno}" + (errno == 1 ? " (EPERM: CAP_SYS_NICE or RLIMIT_RTPRIO needed)" : "");
            return false;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            result = $"sched_setscheduler unavailable: {e.Message}";
            return false;
        }
    }

    private const int SchedFifo = 1;
    private const int SchedResetOnFork = 0x40000000;
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
