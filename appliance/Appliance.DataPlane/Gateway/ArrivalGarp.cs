using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Gateway;

/// <summary>
/// The data plane's own reaction to a workload arriving (issue 6, the latency goal): a RARP from a MAC on
/// a local segment is answered at once, on the worker that received it, with the first GARP of the burst
/// for the domain's gateway toward that segment (<see cref="GarpAnnouncer"/>). The mobility service still
/// owns the registry, the rest of the burst and BGP; it sets what the worker needs here (which segments
/// are local, which MACs are frozen as duplicates) through a worker query, and learns from the signal's
/// <see cref="Bridge.MobilitySignal.GarpFrames"/> that the first GARP already left.
/// </summary>
/// <remarks>
/// Worker-owned once handed over: the settings are immutable, the per-segment last-send state is written
/// by the worker only. No allocation, no lock. A flood of RARPs on one segment (a site failover) sends at
/// most one GARP per <see cref="CoalesceTicks"/> per segment and VTEP: the broadcast serves every
/// newcomer, and the control plane's coalescing covers the ones inside the window.
/// </remarks>
public sealed class ArrivalGarp
{
    private readonly bool[] _local;
    private readonly HashSet<ulong> _frozen;
    private readonly long[] _lastSent;
    private readonly uint[] _lastVtep;

    /// <param name="localSegments">Per segment index of the snapshot: a workload arriving there is local to this site.</param>
    /// <param name="frozen">MACs frozen as duplicates (RFC 7432 §15.1): never announced, so never answered.</param>
    /// <param name="coalesceTicks">Timestamp ticks within which a segment (and VTEP) gets no second GARP.</param>
    public ArrivalGarp(bool[] localSegments, IEnumerable<ulong> frozen, long coalesceTicks)
    {
        ArgumentNullException.ThrowIfNull(localSegments);
        _local = localSegments;
        _frozen = [.. frozen];
        _lastSent = new long[localSegments.Length];
        _lastVtep = new uint[localSegments.Length];
        CoalesceTicks = coalesceTicks;
        Array.Fill(_lastSent, long.MinValue);
    }

    public long CoalesceTicks { get; }

    /// <summary>Worker: a RARP from <paramref name="mac"/> arrived on <paramref name="segment"/>. Returns the GARP frames it originated.</summary>
    public int OnRarp(WorkerContext context, int domain, int segment, uint vtep, ulong mac, long now)
    {
        if ((uint)segment >= (uint)_local.Length || !_local[segment] || _frozen.Contains(mac))
        {
            return 0;
        }

        if (_lastVtep[segment] == vtep && _lastSent[segment] != long.MinValue && now - _lastSent[segment] < CoalesceTicks)
        {
            return 0;
        }

        var frames = GarpAnnouncer.Announce(context, domain, segment, vtep, []);
        if (frames > 0)
        {
            _lastSent[segment] = now;
            _lastVtep[segment] = vtep;
        }

        return frames;
    }
}
