namespace Isthmus.DataPlane.Workers;

/// <summary>
/// How long the worker's heartbeat runs (kernel counters, MAC aging, the conntrack sweep, the stages' timers): a frame
/// that arrives meanwhile waits for it, so its duration is part of the worst-case latency of a RARP or any frame.
/// Exposed in /metrics (isthmus_worker_heartbeat_*: a histogram in µs, the last and the largest).
/// </summary>
/// <remarks>Threading: written by the worker only; read by any thread (each value on its own, not as one snapshot).</remarks>
public sealed class HeartbeatTimings
{
    /// <summary>The histogram's upper bounds in µs (Prometheus <c>le</c>); above the last one is +Inf.</summary>
    public static IReadOnlyList<long> BoundsUs { get; } = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

    private readonly long[] _buckets = new long[BoundsUs.Count + 1];
    private long _count;
    private long _sumUs;
    private long _lastUs;
    private long _maxUs;

    /// <summary>Heartbeats measured.</summary>
    public long Count => Volatile.Read(ref _count);

    /// <summary>Their total duration, µs.</summary>
    public long SumUs => Volatile.Read(ref _sumUs);

    /// <summary>The latest heartbeat's duration, µs.</summary>
    public long LastUs => Volatile.Read(ref _lastUs);

    /// <summary>The longest heartbeat since the worker started, µs.</summary>
    public long MaxUs => Volatile.Read(ref _maxUs);

    /// <summary>Heartbeats that took at most <see cref="BoundsUs"/>[i] µs (cumulative, as Prometheus buckets); one more element, +Inf.</summary>
    public long[] Cumulative()
    {
        var result = new long[_buckets.Length];
        long total = 0;
        for (var i = 0; i < _buckets.Length; i++)
        {
            total += Volatile.Read(ref _buckets[i]);
            result[i] = total;
        }

        return result;
    }

    /// <summary>Worker side: one heartbeat took <paramref name="elapsed"/> timestamp ticks at <paramref name="frequency"/> per second.</summary>
    public void Record(long elapsed, long frequency)
    {
        var us = (long)(Math.Max(elapsed, 0) * 1_000_000.0 / frequency);
        var bucket = 0;
        while (bucket < BoundsUs.Count && us > BoundsUs[bucket])
        {
            bucket++;
        }

        Volatile.Write(ref _buckets[bucket], _buckets[bucket] + 1);
        Volatile.Write(ref _sumUs, _sumUs + us);
        Volatile.Write(ref _lastUs, us);
        if (us > _maxUs)
        {
            Volatile.Write(ref _maxUs, us);
        }

        Volatile.Write(ref _count, _count + 1);
    }
}
