namespace Isthmus.Mobility.Workloads;

/// <summary>
/// Notices that this appliance itself was paused (the stun of a live migration, when its VM moved with
/// its workloads): a periodic check whose interval came out much longer than asked. The caller ticks
/// it from a timer with the <see cref="TimeProvider"/>'s timestamps; a gap beyond the threshold means
/// the VM did not run for that long, so its neighbours' ARP caches and the fabric's routes may point to
/// where it was. Pure: tests feed timestamps.
/// </summary>
public sealed class StunGapDetector(TimeSpan interval, TimeSpan threshold, long timestampFrequency)
{
    private long _last = -1;

    public TimeSpan Interval { get; } = interval;

    public TimeSpan Threshold { get; } = threshold;

    /// <summary>The last gap found (beyond the interval), for diagnostics.</summary>
    public TimeSpan LastGap { get; private set; }

    public long GapsDetected { get; private set; }

    /// <summary>Called every <see cref="Interval"/>; true when the time since the previous call exceeded interval + threshold.</summary>
    public bool Tick(long timestamp)
    {
        var last = _last;
        _last = timestamp;
        if (last < 0)
        {
            return false;
        }

        var elapsed = TimeSpan.FromSeconds((timestamp - last) / (double)timestampFrequency);
        var gap = elapsed - Interval;
        if (gap <= Threshold)
        {
            return false;
        }

        LastGap = gap;
        GapsDetected++;
        return true;
    }
}
