using System.Globalization;
using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Workers;

/// <summary>
/// Gives the data-plane worker a CPU of its own: the worker thread is pinned to it, and every other
/// thread of the process (the JIT's tiering thread, GC, timers, the thread pool, the API, the BGP speaker)
/// is kept off it with sched_setaffinity(2). New threads inherit their creator's mask, so one sweep covers
/// the threads the control plane starts later; <see cref="KeepOthersOff"/> is repeated each second for
/// threads created by the worker thread itself (a thread pool thread injected while the worker queued a
/// continuation inherits its one-CPU mask). Setup and the one-second sweep only: this allocates.
/// </summary>
public static unsafe partial class CpuAffinity
{
    /// <summary>
    /// Sets the calling thread's nice value (setpriority(2) on its thread id: on Linux nice is per thread). False, with
    /// the reason in <paramref name="error"/>, when the kernel refuses (a value below the current one needs CAP_SYS_NICE
    /// or RLIMIT_NICE) or this is not Linux.
    /// </summary>
    public static bool TrySetNice(int nice, out string? error)
    {
        if (!OperatingSystem.IsLinux())
        {
            error = "nice values are set per thread on Linux only";
            return false;
        }

        try
        {
            if (SetPriority(PrioProcess, Libc.GetTid(), nice) == 0)
            {
                error = null;
                return true;
            }

            error = $"setpriority({nice}) failed: {Libc.Describe(Libc.Errno)}";
            return false;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            error = e.Message;
            return false;
        }
    }

    /// <summary>
    /// Thread <paramref name="tid"/>'s nice value as the kernel reports it (proc(5): field 19 of /proc/self/task/TID/stat),
    /// or null when the thread is gone or this is not Linux. Whatever set it (the worker, or a renice from outside).
    /// </summary>
    public static int? ReadNice(int tid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/self/task/{tid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // The command name (field 2) may hold spaces and parentheses: the fields after the last ')' start at field 3.
        var close = stat.LastIndexOf(')');
        if (close < 0 || close + 2 >= stat.Length)
        {
            return null;
        }

        var fields = stat[(close + 2)..].Split(' ');
        const int niceField = 19;
        return fields.Length > niceField - 3 && int.TryParse(fields[niceField - 3], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var nice) ? nice : null;
    }

    private const int PrioProcess = 0;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int priority);

    /// <summary>cpu_set_t as glibc sizes it: 1024 CPUs.</summary>
    public const int MaxCpus = 1024;

    private const int Words = MaxCpus / 64;

    /// <summary>The calling thread's kernel thread id.</summary>
    public static int CurrentThreadId => Libc.GetTid();

    /// <summary>The CPUs thread <paramref name="tid"/> (0 = the calling thread) may run on; empty when it is gone.</summary>
    public static IReadOnlyList<int> Get(int tid = 0)
    {
        var mask = stackalloc ulong[Words];
        return Libc.SchedGetAffinity(tid, Words * 8, mask) != 0 ? [] : ToList(mask);
    }

    /// <summary>Pins thread <paramref name="tid"/> (0 = the calling thread) to <paramref name="cpu"/>; false (errno in <paramref name="error"/>) when the kernel refuses.</summary>
    public static bool Pin(int tid, int cpu, out string? error)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpu);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(cpu, MaxCpus);
        var mask = stackalloc ulong[Words];
        new Span<ulong>(mask, Words).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
        if (Libc.SchedSetAffinity(tid, Words * 8, mask) != 0)
        {
            error = $"sched_setaffinity(CPU {cpu}) failed: {Libc.Describe(Libc.Errno)}";
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>
    /// Takes <paramref name="cpu"/> out of the mask of every thread of this process but
    /// <paramref name="exceptTid"/>. A thread left with no CPU (it ran on that one alone) gets
    /// <paramref name="processCpus"/> without it. Threads <paramref name="alsoExcept"/> answers true for stay too.
    /// Returns how many threads it moved.
    /// </summary>
    public static int KeepOthersOff(int cpu, int exceptTid, IReadOnlyList<int> processCpus, Func<int, bool>? alsoExcept = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpu);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(cpu, MaxCpus);
        ArgumentNullException.ThrowIfNull(processCpus);
        var moved = 0;
        var mask = stackalloc ulong[Words];
        var word = cpu / 64;
        var bit = 1UL << (cpu % 64);
        foreach (var tid in Threads())
        {
            if (tid == exceptTid || alsoExcept?.Invoke(tid) == true || Libc.SchedGetAffinity(tid, Words * 8, mask) != 0 || (mask[word] & bit) == 0)
            {
                continue;
            }

            mask[word] &= ~bit;
            if (IsEmpty(mask))
            {
                Fill(mask, processCpus);
                mask[word] &= ~bit;
            }

            if (!IsEmpty(mask) && Libc.SchedSetAffinity(tid, Words * 8, mask) == 0)
            {
                moved++;
            }
        }

        return moved;
    }

    /// <summary>Gives every thread of this process but <paramref name="exceptTid"/> the CPUs <paramref name="cpus"/> back.</summary>
    public static void Restore(IReadOnlyList<int> cpus, int exceptTid)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        var mask = stackalloc ulong[Words];
        Fill(mask, cpus);
        if (IsEmpty(mask))
        {
            return;
        }

        foreach (var tid in Threads())
        {
            if (tid != exceptTid)
            {
                _ = Libc.SchedSetAffinity(tid, Words * 8, mask);
            }
        }
    }

    /// <summary>The kernel thread ids of this process (/proc/self/task).</summary>
    public static IEnumerable<int> Threads()
    {
        string[] entries;
        try
        {
            entries = Directory.GetDirectories("/proc/self/task");
        }
        catch (IOException)
        {
            yield break;
        }

        foreach (var entry in entries)
        {
            if (int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var tid))
            {
                yield return tid;
            }
        }
    }

    private static void Fill(ulong* mask, IReadOnlyList<int> cpus)
    {
        new Span<ulong>(mask, Words).Clear();
        foreach (var cpu in cpus)
        {
            if ((uint)cpu < MaxCpus)
            {
                mask[cpu / 64] |= 1UL << (cpu % 64);
            }
        }
    }

    private static bool IsEmpty(ulong* mask)
    {
        for (var i = 0; i < Words; i++)
        {
            if (mask[i] != 0)
            {
                return false;
            }
        }

        return true;
    }

    private static List<int> ToList(ulong* mask)
    {
        var cpus = new List<int>();
        for (var cpu = 0; cpu < MaxCpus; cpu++)
        {
            if ((mask[cpu / 64] & (1UL << (cpu % 64))) != 0)
            {
                cpus.Add(cpu);
            }
        }

        return cpus;
    }
}
