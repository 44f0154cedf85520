namespace Isthmus.Mobility.Threading;

/// <summary>
/// The budget of an <see cref="EventLoop"/> placed where it can hold another thread off (the mobility / BGP loop on the
/// data-plane worker's CPU one SCHED_FIFO priority above it: <see cref="AboveWorkerPlacement"/>): once the loop has worked
/// more than <see cref="Budget"/> without blocking (a 10,000-workload failover: planning and UPDATEs for up to a second),
/// it is demoted (<c>demote</c>: off the worker's CPU, below the worker), and it is restored when it next goes idle, at
/// the earliest <see cref="Cooldown"/> after the demotion (so a stream of short busy periods during a failover cannot
/// keep taking the worker's CPU back). A move's work (~0.2 ms) stays far inside the budget.
/// </summary>
/// <remarks>Called on the loop's thread only (<see cref="EventLoop"/>): no locks; <see cref="Demotions"/> is read anywhere.</remarks>
public sealed class LoopBudget
{
    private readonly TimeProvider _time;
    private readonly Action _demote;
    private readonly Action _restore;
    private readonly long _budgetTicks;
    private readonly long _cooldownTicks;
    private long _busySince;
    private long _demotedAt;
    private long _demotions;

    /// <param name="demote">Runs on the loop thread when the budget is exceeded (it must not throw).</param>
    /// <param name="restore">Runs on the loop thread when it goes idle after the cooldown (it must not throw).</param>
    public LoopBudget(TimeProvider time, TimeSpan budget, TimeSpan cooldown, Action demote, Action restore)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(demote);
        ArgumentNullException.ThrowIfNull(restore);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(budget, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(cooldown, TimeSpan.Zero);
        _time = time;
        _demote = demote;
        _restore = restore;
        Budget = budget;
        Cooldown = cooldown;
        _budgetTicks = (long)(budget.TotalSeconds * time.TimestampFrequency);
        _cooldownTicks = (long)(cooldown.TotalSeconds * time.TimestampFrequency);
        _busySince = time.GetTimestamp();
    }

    /// <summary>Continuous work (without blocking) after which the loop is demoted.</summary>
    public TimeSpan Budget { get; }

    /// <summary>The least time the loop stays demoted.</summary>
    public TimeSpan Cooldown { get; }

    /// <summary>True while demoted.</summary>
    public bool Demoted { get; private set; }

    /// <summary>Times the loop was demoted (a metric).</summary>
    public long Demotions => Volatile.Read(ref _demotions);

    /// <summary>The loop woke from idle (or started): its busy period begins now.</summary>
    public void Woke() => _busySince = _time.GetTimestamp();

    /// <summary>The loop finished a turn and has more to do: demoted once it has been busy longer than the budget.</summary>
    public void Ran()
    {
        if (Demoted)
        {
            return;
        }

        var now = _time.GetTimestamp();
        if (now - _busySince > _budgetTicks)
        {
            Demoted = true;
            _demotedAt = now;
            Interlocked.Increment(ref _demotions);
            _demote();
        }
    }

    /// <summary>The loop is about to block idle: restored if demoted for at least the cooldown.</summary>
    public void GoingIdle()
    {
        if (Demoted && _time.GetTimestamp() - _demotedAt >= _cooldownTicks)
        {
            Demoted = false;
            _restore();
        }
    }
}
