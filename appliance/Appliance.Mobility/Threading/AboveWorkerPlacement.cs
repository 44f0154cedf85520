namespace Isthmus.Mobility.Threading;

/// <summary>
/// dataPlane.loopPlacement "aboveWorker": the mobility / BGP event loop runs on the data-plane worker's CPU one
/// SCHED_FIFO priority above the worker (<see cref="WorkerPriority"/> + 1), so the worker's ring after a RARP's first GARP
/// preempts the worker on its own CPU at once instead of waking the loop on the other vCPU (session 9: UPDATE p50 0.27
/// against 0.37-0.43 ms unpinned). The <see cref="Budget"/> keeps that from starving the worker: after more than
/// <see cref="LoopBudget.Budget"/> of continuous work (a failover) the loop moves off the worker's CPU (to the process's
/// other CPUs; with none, it only drops its priority) at one priority below the worker, and comes back when it next goes
/// idle after <see cref="LoopBudget.Cooldown"/>.
/// </summary>
/// <remarks>
/// <see cref="Apply"/>, <see cref="Demote"/> and <see cref="Restore"/> run on the loop's thread (system calls on the calling
/// thread). A refused call is counted (<see cref="Failures"/>, the last reason in <see cref="LastError"/>) and the loop runs on.
/// </remarks>
public sealed class AboveWorkerPlacement
{
    /// <summary>The default continuous work after which the loop leaves the worker's CPU (a move's work is ~0.2 ms).</summary>
    public static readonly TimeSpan DefaultBudget = TimeSpan.FromMilliseconds(2);

    /// <summary>The default least time off the worker's CPU once demoted (a failover's stream of RARPs stays off it).</summary>
    public static readonly TimeSpan DefaultCooldown = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The CPU "aboveWorker" puts the worker and the loop on: the last CPU the calling thread may run on (a thread of the
    /// process before any pinning; the data-plane worker pins itself there, the loop's placement uses the same), or null
    /// when unknown (not Linux).
    /// </summary>
    public static int? ChooseCpu() => LoopThread.Affinity() is [.., var last] ? last : null;

    private int[] _others = [];
    private long _failures;
    private volatile string? _lastError;

    /// <param name="cpu">The worker's CPU.</param>
    /// <param name="workerPriority">The worker's SCHED_FIFO priority (dataPlane.realtimePriority, 2-98).</param>
    public AboveWorkerPlacement(int cpu, int workerPriority, TimeProvider time, TimeSpan? budget = null, TimeSpan? cooldown = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpu);
        ArgumentOutOfRangeException.ThrowIfLessThan(workerPriority, LoopThread.MinFifoPriority + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(workerPriority, LoopThread.MaxFifoPriority - 1);
        Cpu = cpu;
        WorkerPriority = workerPriority;
        Budget = new LoopBudget(time, budget ?? DefaultBudget, cooldown ?? DefaultCooldown, Demote, Restore);
    }

    /// <summary>The worker's CPU, where the loop runs while not demoted.</summary>
    public int Cpu { get; }

    public int WorkerPriority { get; }

    /// <summary>When the loop leaves the worker's CPU, and how often it did (<see cref="LoopBudget.Demotions"/>).</summary>
    public LoopBudget Budget { get; }

    /// <summary>System calls the kernel refused (affinity or priority); the loop then runs where and as it was.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    public string? LastError => _lastError;

    /// <summary>On the loop's thread at its start: onto the worker's CPU at the worker's priority + 1. Returns what it got.</summary>
    public string Apply()
    {
        _others = [.. LoopThread.Affinity().Where(c => c != Cpu)];
        Restore();
        return _lastError is null
            ? $"SCHED_FIFO {WorkerPriority + 1}, on the worker's CPU {Cpu} one priority above it (aboveWorker, budget {Budget.Budget.TotalMilliseconds:0.###} ms)"
            : $"aboveWorker refused: {_lastError}";
    }

    /// <summary>Off the worker's CPU (to the others, if any) and one priority below the worker.</summary>
    private void Demote()
    {
        Set(_others, WorkerPriority - 1);
    }

    /// <summary>Back onto the worker's CPU, one priority above it.</summary>
    private void Restore()
    {
        Set([Cpu], WorkerPriority + 1);
    }

    private void Set(ReadOnlySpan<int> cpus, int priority)
    {
        // Priority first when going down (the loop stops preempting the worker before it moves), affinity first when
        // going up (it is not above the worker on a CPU where it is not wanted).
        var down = priority < WorkerPriority;
        if (down)
        {
            Fifo(priority);
        }

        if (!cpus.IsEmpty && !LoopThread.TrySetAffinity(cpus, out var error))
        {
            Fail(error);
        }

        if (!down)
        {
            Fifo(priority);
        }
    }

    private void Fifo(int priority)
    {
        if (!LoopThread.TrySetFifo(priority, out var result))
        {
            Fail(result);
        }
    }

    private void Fail(string? error)
    {
        Interlocked.Increment(ref _failures);
        _lastError = error;
    }
}
