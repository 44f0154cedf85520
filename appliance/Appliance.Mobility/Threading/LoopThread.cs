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

    /// <summary>
    /// Restricts the calling thread to <paramref name="cpus"/> (sched_setaffinity); false, with the reason in
    /// <paramref name="error"/>, when refused, empty or not Linux.
    /// </summary>
    public static unsafe bool TrySetAffinity(ReadOnlySpan<int> cpus, out string? error)
    {
        if (!OperatingSystem.IsLinux() || cpus.IsEmpty)
        {
            error = cpus.IsEmpty ? "no CPU given" : "not Linux: no CPU affinity";
            return false;
        }

        var mask = stackalloc ulong[MaskWords];
        new Span<ulong>(mask, MaskWords).Clear();
        foreach (var cpu in cpus)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(cpu);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(cpu, MaskWords * 64);
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }

        if (SchedSetAffinity(0, MaskWords * 8, mask) != 0)
        {
            error = $"sched_setaffinity failed: errno {Marshal.GetLastPInvokeError()}";
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>The CPUs thread <paramref name="tid"/> (0 = the calling thread) may run on; empty when unknown.</summary>
    public static unsafe IReadOnlyList<int> Affinity(int tid = 0)
    {
        if (!OperatingSystem.IsLinux())
        {
            return [];
        }

        var mask = stackalloc ulong[MaskWords];
        if (SchedGetAffinity(tid, MaskWords * 8, mask) != 0)
        {
            return [];
        }

        var cpus = new List<int>();
        for (var cpu = 0; cpu < MaskWords * 64; cpu++)
        {
            if ((mask[cpu / 64] & (1UL << (cpu % 64))) != 0)
            {
                cpus.Add(cpu);
            }
        }

        return cpus;
    }

    /// <summary>Thread <paramref name="tid"/>'s policy ("SCHED_FIFO", "SCHED_OTHER", ...) and real-time priority, read back from the kernel; null when unknown.</summary>
    public static (string Policy, int Priority)? Scheduling(int tid)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var policy = SchedGetScheduler(tid);
        var param = default(SchedParam);
        if (policy < 0 || SchedGetParam(tid, ref param) != 0)
        {
            return null;
        }

        var name = (policy & ~SchedResetOnFork) switch
        {
            0 => "SCHED_OTHER",
            SchedFifo => "SCHED_FIFO",
            2 => "SCHED_RR",
            3 => "SCHED_BATCH",
            5 => "SCHED_IDLE",
            var other => $"policy {other}",
        };
        return (name, param.Priority);
    }

    /// <summary>The calling thread's kernel thread id (gettid).</summary>
    public static int CurrentThreadId => OperatingSystem.IsLinux() ? GetTid() : Environment.CurrentManagedThreadId;

    /// <summary>cpu_set_t as glibc sizes it: 1024 CPUs.</summary>
    private const int MaskWords = 1024 / 64;

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

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static unsafe partial int SchedSetAffinity(int pid, nint size, ulong* mask);

    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    private static unsafe partial int SchedGetAffinity(int pid, nint size, ulong* mask);

    [LibraryImport("libc", EntryPoint = "sched_getscheduler", SetLastError = true)]
    private static partial int SchedGetScheduler(int pid);

    [LibraryImport("libc", EntryPoint = "sched_getparam", SetLastError = true)]
    private static partial int SchedGetParam(int pid, ref SchedParam param);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();

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
