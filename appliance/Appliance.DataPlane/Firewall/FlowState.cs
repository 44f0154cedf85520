using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// What conntrack learned about one packet of the current batch, for the firewall and NAT stages
/// that run after it (indexed by the packet's position in the batch; valid for NewFlow/KnownFlow packets).
/// </summary>
public struct PendingFlow
{
    /// <summary>The tuple the packet arrived with (before DNAT).</summary>
    public FlowTuple Original;

    /// <summary>The tuple it carries now (after DNAT, before SNAT): what the firewall classifies and NAT commits.</summary>
    public FlowTuple Current;

    /// <summary>ICMP type (the classifier matches it), else 0.</summary>
    public byte IcmpType;

    /// <summary>Ethernet source and destination as received (a reject goes back to the sender).</summary>
    public ulong SourceMac;
    public ulong DestinationMac;

    /// <summary>DNAT/1:1 rule applied by conntrack + 1 (0: none).</summary>
    public int DnatRule;

    public ConnectionStates State;

    /// <summary>Conntrack can create a session for it (TCP SYN, UDP, ICMP echo request, other protocols).</summary>
    public bool Trackable;

    /// <summary>An L2-filtered bridged packet (never translated).</summary>
    public bool Bridged;

    /// <summary>The firewall admitted it.</summary>
    public bool Allowed;

    /// <summary>A known flow's packet that breaks the TCP state machine (the firewall drops it).</summary>
    public bool InvalidTransition;

    /// <summary>TCP flags as received (reject builds its RST from them).</summary>
    public byte TcpFlags;

    /// <summary>
    /// A known flow whose source the NAT stage rewrites, after route and firewall (netfilter's
    /// postrouting): SNAT in the original direction, un-DNAT in the reply direction.
    /// </summary>
    public bool SourceRewrite;

    public uint SourceTo;

    public ushort SourcePortTo;

    /// <summary>Virtual server (lb stage) + 1 (0: not load-balanced); the backend chosen is <see cref="Backend"/>.</summary>
    public int Balanced;

    /// <summary>Backend index in the snapshot's load-balancer tables (valid with <see cref="Balanced"/>).</summary>
    public int Backend;

    /// <summary>
    /// An IPv4 fragment after the first (no transport header; its ports came from the
    /// <see cref="FragmentCache"/>): it follows its datagram's session and never creates one.
    /// </summary>
    public bool LaterFragment;

    /// <summary>
    /// A known flow's packet that may teach its session the fast path (<see cref="FlowCache.Eligible"/>)
    /// and did not use it: the route stage binds its next hop's adjacency and the NAT stage, once the
    /// packet is rewritten, stores the result in the session.
    /// </summary>
    public bool FastCandidate;

    /// <summary>The adjacency the route stage bound for a <see cref="FastCandidate"/> (0: none, e.g. next hop unresolved).</summary>
    public ushort Adjacency;
}

/// <summary>
/// One worker's flow state: its conntrack table, NAT port allocator, per-rule hit counters, the
/// firewall log ring and the per-batch scratch the three flow stages share. Owned by the worker
/// thread; other threads read counters and take log records only.
/// </summary>
public sealed class FlowState : IConntrackObserver
{
    private long _epoch = long.MinValue;

    public FlowState(int workerIndex = 0, int workerCount = 1)
    {
        Nat = new NatPortAllocator(workerIndex, workerCount);
    }

    public ConntrackTable? Table { get; private set; }

    public NatPortAllocator Nat { get; }

    /// <summary>Load-balancer cursors, per-backend connection counts and persistence (LoadBalancer/).</summary>
    public LoadBalancer.LoadBalancerState Balancer { get; } = new();

    public FirewallLog Log { get; } = new();

    /// <summary>First fragments' ports, so later fragments find their session (virtual reassembly).</summary>
    public FragmentCache Fragments { get; } = new();

    /// <summary>New flows per rule, indexed like <see cref="FirewallTables.RuleIds"/> (reset when the rule set changes).</summary>
    public long[] RuleHits { get; private set; } = [];

    public PendingFlow[] Pending { get; } = new PendingFlow[PacketBatch.MaxSize];

    /// <summary>Worker clock in whole seconds since the state was created (+1, so 0 is "never"), set once per batch.</summary>
    public uint Now { get; private set; } = 1;

    /// <summary>Sessions created.</summary>
    public long Committed;

    /// <summary>Resets and ICMP unreachables sent for reject rules.</summary>
    public long RejectsSent;

    /// <summary>Packets forwarded from their session's cached result (the established-flow fast path).</summary>
    public long FastForwarded;

    /// <summary>Session directions that learned a cached forwarding result.</summary>
    public long FastLearned;

    private FirewallTables _tables = FirewallTables.Empty;

    /// <summary>Adopts a new snapshot's firewall (between batches). A different table size starts an empty table.</summary>
    public void Apply(FirewallTables tables)
    {
        if (ReferenceEquals(tables, _tables))
        {
            return;
        }

        if (tables.Tracking && (Table is null || Table.MaxSessions != tables.MaxSessions))
        {
            Table?.Clear();
            Table = new ConntrackTable(tables.MaxSessions) { Observer = this };
        }

        if (tables.RuleIds.Length != RuleHits.Length || !tables.RuleIds.AsSpan().SequenceEqual(_tables.RuleIds))
        {
            RuleHits = new long[tables.RuleIds.Length];
        }

        Log.RatePerSecond = tables.LogRatePerSecond;
        _tables = tables;
    }

    /// <summary>A session left the table: NAT releases its mapping, the balancer its backend's count.</summary>
    public void Removed(in ConntrackEntry entry)
    {
        Nat.Removed(entry);
        Balancer.Removed(entry);
    }

    /// <summary>Sets <see cref="Now"/> from the worker's timestamp (once per batch).</summary>
    public void Tick(long now, long ticksPerSecond)
    {
        if (_epoch == long.MinValue)
        {
            _epoch = now;
        }

        Now = (uint)((now - _epoch) / ticksPerSecond) + 1;
    }

    /// <summary>
    /// Heartbeat work: reclaims expired sessions, a slice of the table per call. The worker's heartbeat calls it
    /// <paramref name="slicesPerSecond"/> times a second with <paramref name="slices"/> = 1 (more when ticks were
    /// missed), so the table is swept at the same rate whatever that number: an eighth of it (at least 4,096 entries)
    /// per second, and a session leaves at most ~8 s after it expired.
    /// </summary>
    public int Heartbeat(long now, long ticksPerSecond, int slices = 1, int slicesPerSecond = 1)
    {
        Tick(now, ticksPerSecond);
        Log.Refill(Now);
        var table = Table;
        Balancer.Heartbeat(table, Now);
        return table is null ? 0 : table.Sweep(Now, SweepBudget(table.MaxSessions, slicesPerSecond) * slices);
    }

    /// <summary>Entries one of <paramref name="slicesPerSecond"/> heartbeat slices a second sweeps: an eighth of the table (at least 4,096) per second, split evenly.</summary>
    public static int SweepBudget(int maxSessions, int slicesPerSecond) => (Math.Max(4096, maxSessions / 8) + slicesPerSecond - 1) / slicesPerSecond;

    /// <summary>Every rule's new-flow hits in this worker, for the API (allocates; not for the packet path).</summary>
    public IReadOnlyList<(int RuleId, long Hits)> RuleCounters()
    {
        var ids = _tables.RuleIds;
        var hits = RuleHits;
        var list = new List<(int, long)>(ids.Length);
        for (var i = 0; i < ids.Length && i < hits.Length; i++)
        {
            list.Add((ids[i], Volatile.Read(ref hits[i])));
        }

        return list;
    }

    /// <summary>Hits of the rule with <paramref name="ruleId"/> in this worker, or 0.</summary>
    public long Hits(int ruleId)
    {
        var ids = _tables.RuleIds;
        for (var i = 0; i < ids.Length && i < RuleHits.Length; i++)
        {
            if (ids[i] == ruleId)
            {
                return Volatile.Read(ref RuleHits[i]);
            }
        }

        return 0;
    }
}

/// <summary>One firewall log record (a new flow that hit a rule with logging on).</summary>
public readonly record struct FirewallLogRecord(uint Second, int RuleId, FirewallAction Action, FlowTuple Tuple);

/// <summary>
/// The rate-limited firewall log: a single-producer ring the worker appends to without locks or
/// allocation (a token bucket admits <see cref="RatePerSecond"/> records per second, the rest are
/// counted in <see cref="Suppressed"/>); the control plane drains it with <see cref="TryTake"/>.
/// </summary>
public sealed class FirewallLog
{
    private const int Capacity = 1024;
    private readonly FirewallLogRecord[] _ring = new FirewallLogRecord[Capacity];
    private long _head;
    private long _tail;
    private int _tokens;
    private uint _refilled;

    public int RatePerSecond { get; set; } = 100;

    /// <summary>Records not written because of the rate limit or a full ring.</summary>
    public long Suppressed;

    public void Refill(uint now)
    {
        if (now != _refilled)
        {
            _refilled = now;
            _tokens = RatePerSecond;
        }
    }

    /// <summary>Worker side: appends a record if the budget allows.</summary>
    public void Write(uint now, int ruleId, FirewallAction action, in FlowTuple tuple)
    {
        Refill(now);
        var tail = _tail;
        if (_tokens <= 0 || tail - Volatile.Read(ref _head) >= Capacity)
        {
            Suppressed++;
            return;
        }

        _tokens--;
        _ring[tail & (Capacity - 1)] = new FirewallLogRecord(now, ruleId, action, tuple);
        Volatile.Write(ref _tail, tail + 1);
    }

    /// <summary>Reader side (one reader at a time).</summary>
    public bool TryTake(out FirewallLogRecord record)
    {
        var head = _head;
        if (head == Volatile.Read(ref _tail))
        {
            record = default;
            return false;
        }

        record = _ring[head & (Capacity - 1)];
        Volatile.Write(ref _head, head + 1);
        return true;
    }
}
