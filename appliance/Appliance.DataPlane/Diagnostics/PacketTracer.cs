using Isthmus.Packets;

namespace Isthmus.DataPlane.Diagnostics;

/// <summary>Which packets to trace (fields left null match anything).</summary>
public sealed record TraceFilter
{
    public string? IngressPort { get; init; }

    public MacAddress? SourceMac { get; init; }

    public MacAddress? DestinationMac { get; init; }

    public ushort? EtherType { get; init; }

    /// <summary>How many packets to trace before the filter disarms itself.</summary>
    public int MaxPackets { get; init; } = 16;
}

/// <summary>One stage's verdict on one traced packet.</summary>
public sealed record TraceEntry(int TraceId, long Sequence, string Stage, string Verdict, string Detail);

/// <summary>
/// The packet trace (VPP's `trace add`, NSX Traceflow): packets matching an armed filter, or injected
/// synthetic frames, carry a trace id, and every stage records its verdict here. Only traced packets
/// pay anything beyond one flag test; recording takes a lock and may allocate, which is fine for a
/// handful of diagnostic packets.
/// </summary>
public sealed class PacketTracer
{
    private const int MaxEntries = 4096;
    private readonly Lock _gate = new();
    private readonly Queue<TraceEntry> _entries = new();
    private TraceFilter? _filter;
    private int _remaining;
    private int _nextId;
    private long _sequence;

    /// <summary>True while a filter is armed: the one check the hot path makes per packet.</summary>
    public bool Armed => Volatile.Read(ref _remaining) > 0;

    public TraceFilter? Filter => Volatile.Read(ref _filter);

    public void Arm(TraceFilter filter)
    {
        lock (_gate)
        {
            _filter = filter;
            Volatile.Write(ref _remaining, filter.MaxPackets);
        }
    }

    public void Disarm() => Volatile.Write(ref _remaining, 0);

    /// <summary>Claims a trace id for a packet that matched, or 0 when the budget is spent.</summary>
    public int Claim()
    {
        if (Interlocked.Decrement(ref _remaining) < 0)
        {
            Volatile.Write(ref _remaining, 0);
            return 0;
        }

        return Interlocked.Increment(ref _nextId);
    }

    /// <summary>A trace id for an injected synthetic packet, independent of any filter.</summary>
    public int NewId() => Interlocked.Increment(ref _nextId);

    public void Record(int traceId, string stage, string verdict, string detail)
    {
        lock (_gate)
        {
            if (_entries.Count == MaxEntries)
            {
                _entries.Dequeue();
            }

            _entries.Enqueue(new TraceEntry(traceId, ++_sequence, stage, verdict, detail));
        }
    }

    public IReadOnlyList<TraceEntry> Entries(int? traceId = null)
    {
        lock (_gate)
        {
            return traceId is null ? [.. _entries] : [.. _entries.Where(e => e.TraceId == traceId)];
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _entries.Clear();
        }
    }
}
