using System.Collections.Immutable;
using System.Net;

namespace Isthmus.Mobility.Workloads;

/// <summary>
/// Where a workload is: the segment it was last seen on (<c>acc10</c>, <c>trunk0/vlan10</c>,
/// <c>und0/vni5010</c>), the VTEP behind which it sits (VXLAN segments; 0 otherwise), whether that
/// segment is one of this site's local segments, and the site's name.
/// </summary>
public sealed record WorkloadLocation(string Segment, uint Vtep, bool Local, string Site)
{
    /// <summary>Two locations are the same place when segment and VTEP match (the site follows from them).</summary>
    public bool SamePlace(WorkloadLocation other) =>
        other is not null && string.Equals(Segment, other.Segment, StringComparison.Ordinal) && Vtep == other.Vtep;

    public override string ToString() => Vtep == 0 ? $"{Site}/{Segment}" : $"{Site}/{Segment}@{VtepText}";

    /// <summary>The VTEP (host-order IPv4) as dotted text, or null for non-VXLAN segments.</summary>
    public string? VtepText => Vtep == 0 ? null : $"{Vtep >> 24}.{(Vtep >> 16) & 0xFF}.{(Vtep >> 8) & 0xFF}.{Vtep & 0xFF}";
}

/// <summary>What told us where a workload is.</summary>
public enum MoveSource
{
    /// <summary>A RARP from the workload's MAC (what ESXi sends after vMotion).</summary>
    Rarp,

    /// <summary>A gratuitous ARP (or unsolicited neighbor advertisement) from the workload.</summary>
    Garp,

    /// <summary>The bridge saw the known MAC arrive from another segment or VTEP.</summary>
    MacMove,

    /// <summary>An ARP / ND exchange bound one of its addresses to its MAC.</summary>
    Binding,

    /// <summary>An orchestrator said so through the API.</summary>
    Api,

    /// <summary>A DHCPACK the data plane snooped bound one of its addresses to its MAC.</summary>
    Dhcp,
}

/// <summary>How <see cref="WorkloadRegistry.Observe"/> classified a sighting.</summary>
public enum MoveKind
{
    /// <summary>First sighting: the workload is now known here.</summary>
    Learned,

    /// <summary>Seen at the place it already was.</summary>
    Unchanged,

    /// <summary>A move to a new place; the sequence number went up.</summary>
    Moved,

    /// <summary>This move tripped duplicate detection: the workload is frozen from now on.</summary>
    Froze,

    /// <summary>The workload is frozen: the sighting is recorded in nothing and changes nothing.</summary>
    Ignored,
}

/// <summary>
/// One workload (a MAC and the addresses bound to it), immutable: the registry replaces it on every change.
/// </summary>
/// <param name="Sequence">The MAC mobility sequence number (RFC 7432 §7.7): 0 when learned, +1 per move.</param>
/// <param name="RecentMoves">Times of the moves inside the damping window (RFC 7432 §15.1).</param>
public sealed record Workload(
    ulong Mac,
    WorkloadLocation Location,
    long Sequence,
    ImmutableArray<IPAddress> Addresses,
    DateTimeOffset Since,
    bool Frozen,
    ImmutableArray<DateTimeOffset> RecentMoves)
{
    public string MacText => FormatMac(Mac);

    public static string FormatMac(ulong mac) =>
        string.Create(17, mac, static (span, m) =>
        {
            for (var i = 0; i < 6; i++)
            {
                var b = (byte)(m >> (40 - (8 * i)));
                span[i * 3] = "0123456789abcdef"[b >> 4];
                span[(i * 3) + 1] = "0123456789abcdef"[b & 0xF];
                if (i < 5)
                {
                    span[(i * 3) + 2] = ':';
                }
            }
        });
}

/// <summary>One line of the move history.</summary>
public sealed record MoveRecord(DateTimeOffset At, ulong Mac, WorkloadLocation? From, WorkloadLocation To, long Sequence, MoveSource Source, MoveKind Kind)
{
    public string MacText => Workload.FormatMac(Mac);
}

/// <summary>Duplicate detection (RFC 7432 §15.1): <see cref="Moves"/> moves within <see cref="Window"/> freeze a workload.</summary>
public sealed record DampingPolicy
{
    public int Moves { get; init; } = 5;

    public TimeSpan Window { get; init; } = TimeSpan.FromSeconds(180);

    /// <summary>How many moves the history keeps (oldest dropped first).</summary>
    public int HistoryCapacity { get; init; } = 1024;
}

/// <summary>
/// Every workload this appliance has seen: its location, a sequence number per move (in the spirit of
/// the MAC mobility extended community, RFC 7432 §7.7), the addresses bound to its MAC, and duplicate
/// detection (§15.1: N moves within M seconds mark a duplicate MAC; it is frozen, which stops its
/// advertisement, until an operator clears it). Pure and single-threaded: the mobility service owns it
/// and calls it from one loop; time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed class WorkloadRegistry(DampingPolicy policy, TimeProvider time)
{
    /// <summary>Immutable (replaced on change): a published status holds this reference instead of a copy per move.</summary>
    private ImmutableDictionary<ulong, Workload> _workloads = ImmutableDictionary<ulong, Workload>.Empty;
    private readonly Dictionary<IPAddress, ulong> _owners = [];

    /// <summary>Oldest first; immutable, so a reader's snapshot is the reference (no copy per published status).</summary>
    private ImmutableQueue<MoveRecord> _history = [];
    private int _historyCount;

    /// <summary>MACs whose workload changed since <see cref="TakeChanged"/> (the incremental planner's input).</summary>
    private readonly HashSet<ulong> _changed = [];

    public DampingPolicy Policy { get; set; } = policy;

    public int Count => _workloads.Count;

    public IEnumerable<Workload> Workloads => _workloads.Values;

    /// <summary>Every workload by MAC, as an immutable snapshot (later changes do not touch it).</summary>
    public ImmutableDictionary<ulong, Workload> Snapshot => _workloads;

    /// <summary>Oldest first; an immutable snapshot (later moves do not change it).</summary>
    public ImmutableQueue<MoveRecord> History => _history;

    /// <summary>Raised by every change of a workload or of the history: a reader's snapshot is current while it is unchanged.</summary>
    public long Version { get; private set; }

    /// <summary>Moves dropped from the history because it was full.</summary>
    public long HistoryDropped { get; private set; }

    public Workload? Find(ulong mac) => _workloads.GetValueOrDefault(mac);

    /// <summary>
    /// Moves the MACs whose workload was learned, moved, re-bound, re-classified or unfrozen since the last call into
    /// <paramref name="into"/> (<see cref="IncrementalHostRoutePlanner.Update"/> re-plans only those), and forgets them.
    /// </summary>
    public void TakeChanged(List<ulong> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        foreach (var mac in _changed)
        {
            into.Add(mac);
        }

        _changed.Clear();
    }

    /// <summary>Forgets the changes (after a full re-plan read every workload).</summary>
    public void ClearChanged() => _changed.Clear();

    private void Set(ulong mac, Workload workload)
    {
        _workloads = _workloads.SetItem(mac, workload);
        _changed.Add(mac);
        Version++;
    }

    /// <summary>The workload that owns <paramref name="address"/>, if any.</summary>
    public Workload? Owner(IPAddress address) => _owners.TryGetValue(address, out var mac) ? _workloads.GetValueOrDefault(mac) : null;

    /// <summary>
    /// The MAC was seen at <paramref name="location"/>. A first sighting learns it, a sighting at another
    /// place is a move (sequence + 1, counted for duplicate detection), a frozen workload is left alone.
    /// </summary>
    public (MoveKind Kind, Workload Workload) Observe(ulong mac, WorkloadLocation location, MoveSource source)
    {
        ArgumentNullException.ThrowIfNull(location);
        var now = time.GetUtcNow();
        if (!_workloads.TryGetValue(mac, out var known))
        {
            var learned = new Workload(mac, location, 0, [], now, false, []);
            Set(mac, learned);
            Record(new MoveRecord(now, mac, null, location, 0, source, MoveKind.Learned));
            return (MoveKind.Learned, learned);
        }

        if (known.Frozen)
        {
            return (MoveKind.Ignored, known);
        }

        if (known.Location.SamePlace(location))
        {
            if (known.Location == location)
            {
                return (MoveKind.Unchanged, known);
            }

            // Same place, but its classification changed (the segment became local by a commit).
            var reclassified = known with { Location = location };
            Set(mac, reclassified);
            return (MoveKind.Unchanged, reclassified);
        }

        var recent = Recent(known.RecentMoves, now, Policy.Window);
        var froze = recent.Length >= Policy.Moves;
        var moved = known with
        {
            Location = froze ? known.Location : location,
            Sequence = known.Sequence + 1,
            Since = now,
            Frozen = froze,
            RecentMoves = recent,
        };
        Set(mac, moved);
        var kind = froze ? MoveKind.Froze : MoveKind.Moved;
        Record(new MoveRecord(now, mac, known.Location, location, moved.Sequence, source, kind));
        return (kind, moved);
    }

    /// <summary>
    /// Binds <paramref name="address"/> to <paramref name="mac"/> (learned from ARP / ND, or given by the
    /// API). An address belongs to one workload: bound to a new MAC, it leaves the old one. Returns the
    /// workload when something changed, null otherwise (also when the MAC is not known yet).
    /// </summary>
    public Workload? Bind(ulong mac, IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!_workloads.TryGetValue(mac, out var workload))
        {
            return null;
        }

        if (_owners.TryGetValue(address, out var owner))
        {
            if (owner == mac)
            {
                return null;
            }

            if (_workloads.TryGetValue(owner, out var previous))
            {
                Set(owner, previous with { Addresses = previous.Addresses.Remove(address) });
            }
        }

        _owners[address] = mac;
        var bound = workload with { Addresses = workload.Addresses.Add(address) };
        Set(mac, bound);
        return bound;
    }

    /// <summary>Clears a duplicate-MAC freeze (an operator fixed the cause). Returns false when the MAC is unknown or not frozen.</summary>
    public bool Unfreeze(ulong mac)
    {
        if (!_workloads.TryGetValue(mac, out var workload) || !workload.Frozen)
        {
            return false;
        }

        Set(mac, workload with { Frozen = false, RecentMoves = [] });
        return true;
    }

    /// <summary>Re-derives every location's local/site classification (after a commit changed the segment lists).</summary>
    public void Reclassify(Func<WorkloadLocation, WorkloadLocation> classify)
    {
        ArgumentNullException.ThrowIfNull(classify);
        foreach (var (mac, workload) in _workloads)
        {
            var location = classify(workload.Location);
            if (location != workload.Location)
            {
                Set(mac, workload with { Location = location });
            }
        }
    }

    /// <summary>The moves inside the damping window, and this one (no closure: a move's path allocates only the new array).</summary>
    private static ImmutableArray<DateTimeOffset> Recent(ImmutableArray<DateTimeOffset> moves, DateTimeOffset now, TimeSpan window)
    {
        var kept = 0;
        foreach (var at in moves)
        {
            kept += now - at > window ? 0 : 1;
        }

        var recent = ImmutableArray.CreateBuilder<DateTimeOffset>(kept + 1);
        foreach (var at in moves)
        {
            if (now - at <= window)
            {
                recent.Add(at);
            }
        }

        recent.Add(now);
        return recent.MoveToImmutable();
    }

    private void Record(MoveRecord move)
    {
        _history = _history.Enqueue(move);
        _historyCount++;
        Version++;
        while (_historyCount > Math.Max(1, Policy.HistoryCapacity))
        {
            _history = _history.Dequeue();
            _historyCount--;
            HistoryDropped++;
        }
    }
}
