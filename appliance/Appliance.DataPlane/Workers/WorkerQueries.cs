using System.Collections.Concurrent;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;

namespace Isthmus.DataPlane.Workers;

/// <summary>
/// The request/response seam for live state the worker mutates without locks (conntrack table,
/// neighbor cache): another thread posts a query, the worker answers it between batches with an
/// immutable copy and completes the query's task. Nothing else may walk those tables off the worker.
/// </summary>
/// <remarks>
/// Hot path cost when nothing is pending: one volatile read per loop turn (<see cref="Pending"/>). The
/// worker calls <see cref="Serve"/> at the top of <see cref="DataPlaneWorker.RunOnce"/>, which also runs
/// when every port is idle (after at most one 50 ms poll), so an answer comes within ~50 ms. Tasks
/// complete asynchronously: the caller's continuation never runs on the worker thread.
/// </remarks>
public sealed class WorkerQueries
{
    private readonly ConcurrentQueue<IQuery> _queue = new();
    private int _pending;

    /// <summary>Ends the worker's idle poll (its <see cref="WorkerWakeup"/>), set by the worker when it has one.</summary>
    internal Action? Wake { get; set; }

    /// <summary>True when a query waits (one volatile read: the worker's per-turn check).</summary>
    public bool Pending => Volatile.Read(ref _pending) != 0;

    /// <summary>
    /// Posts <paramref name="answer"/> to run on the worker thread between batches. Safe from any thread.
    /// The function must only read worker state and copy what it returns.
    /// </summary>
    public Task<T> Ask<T>(Func<WorkerContext, T> answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var query = new Query<T>(answer);
        Interlocked.Increment(ref _pending);
        _queue.Enqueue(query);
        Wake?.Invoke();
        return query.Task;
    }

    /// <summary>Worker side: answers every pending query. Returns how many it answered.</summary>
    public int Serve(WorkerContext context)
    {
        var served = 0;
        while (_queue.TryDequeue(out var query))
        {
            Interlocked.Decrement(ref _pending);
            query.Answer(context);
            served++;
        }

        return served;
    }

    /// <summary>Fails every pending query (the worker stopped and will not answer).</summary>
    public void Abandon()
    {
        while (_queue.TryDequeue(out var query))
        {
            Interlocked.Decrement(ref _pending);
            query.Abandon();
        }
    }

    private interface IQuery
    {
        void Answer(WorkerContext context);

        void Abandon();
    }

    private sealed class Query<T>(Func<WorkerContext, T> answer) : IQuery
    {
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<T> Task => _done.Task;

        public void Answer(WorkerContext context)
        {
            try
            {
                _done.TrySetResult(answer(context));
            }
#pragma warning disable CA1031 // a faulty query must not take the worker down: the asker gets the exception
            catch (Exception e)
#pragma warning restore CA1031
            {
                _done.TrySetException(e);
            }
        }

        public void Abandon() => _done.TrySetException(new ObjectDisposedException(nameof(DataPlaneWorker), "the worker stopped before answering"));
    }
}

/// <summary>Which sessions a <see cref="LiveState.Sessions"/> query returns; null fields match everything.</summary>
/// <param name="Address">Matches any address of either tuple (so both the inside and the translated address find a NATed session).</param>
/// <param name="Port">Matches any port of either tuple (ICMP echo: the identifier).</param>
public sealed record SessionFilter(byte? Protocol = null, uint? Address = null, ushort? Port = null, ConntrackState? State = null)
{
    public bool Matches(in ConntrackEntry e)
    {
        if (Protocol is { } p && e.Protocol != p)
        {
            return false;
        }

        if (State is { } s && e.State != s)
        {
            return false;
        }

        if (Address is { } a && e.OriginalSource != a && e.OriginalDestination != a && e.ReplySource != a && e.ReplyDestination != a)
        {
            return false;
        }

        return Port is not { } port
            || e.OriginalSourcePort == port || e.OriginalDestinationPort == port || e.ReplySourcePort == port || e.ReplyDestinationPort == port;
    }
}

/// <summary>One session as copied by the worker.</summary>
/// <param name="ExpiresInSeconds">Seconds until it times out unless a packet refreshes it.</param>
/// <param name="TimeoutSeconds">The timeout of its current state (so idle = timeout − expires-in).</param>
public readonly record struct SessionRecord(FlowTuple Original, FlowTuple Reply, ConntrackState State, FlowFlags Flags, uint ExpiresInSeconds, uint TimeoutSeconds);

/// <param name="Matched">Sessions that match the filter (all pages).</param>
/// <param name="Live">Live sessions in the worker's table.</param>
/// <param name="Capacity">The table's size (<c>conntrack.maxSessions</c>); 0 when conntrack is off.</param>
public sealed record SessionPage(int Matched, int Live, int Capacity, IReadOnlyList<SessionRecord> Items);

/// <param name="Stale">Reachable but not confirmed within <c>ReachableSeconds</c> (re-probed when used).</param>
/// <param name="AgeSeconds">Since the last confirmation (reachable), or since the first request (incomplete).</param>
public sealed record NeighborRecord(string Domain, bool Ipv6, ulong AddressHi, ulong AddressLo, NeighborState State, bool Stale, ulong Mac, double AgeSeconds, int Probes, int HeldPackets);

public sealed record NeighborSnapshot(IReadOnlyList<NeighborRecord> Entries, int Capacity, int HeldPackets, long LearnRefused, long Failed);

/// <summary>Aggregates for metrics and the rules listing.</summary>
/// <param name="Firewall">The firewall the worker runs (its rule counters are indexed by <see cref="CompiledRule.Counter"/>).</param>
/// <param name="RuleHits">New flows per rule counter, copied.</param>
public sealed record FlowStatistics(
    IReadOnlyDictionary<byte, int> SessionsByProtocol, int Sessions, int MaxSessions, long Expired, long Committed,
    int Neighbors, int HeldPackets, FirewallTables Firewall, IReadOnlyList<long> RuleHits);

/// <summary>The answers the control plane asks for through <see cref="WorkerQueries"/>. Run on the worker thread only.</summary>
public static class LiveState
{
    /// <summary>A page of sessions in table order (skip <paramref name="skip"/> matches, return up to <paramref name="take"/>); expired-but-unswept sessions are left out.</summary>
    public static SessionPage Sessions(WorkerContext context, SessionFilter filter, int skip, int take)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(filter);
        var flows = context.Flows;
        if (flows.Table is not { } table)
        {
            return new SessionPage(0, 0, 0, []);
        }

        var now = flows.Now;
        var timeouts = context.Snapshot.Firewall.Timeouts;
        var items = new List<SessionRecord>(Math.Min(take, 1024));
        var matched = 0;
        var live = 0;
        for (var i = 0; i < table.MaxSessions; i++)
        {
            ref readonly var e = ref table[i];
            if (e.Protocol == 0 || e.Expires <= now)
            {
                continue;
            }

            live++;
            if (!filter.Matches(e))
            {
                continue;
            }

            if (matched++ >= skip && items.Count < take)
            {
                items.Add(new SessionRecord(
                    ConntrackTable.OriginalTuple(e), ConntrackTable.ReplyTuple(e), e.State, e.Flags, e.Expires - now, timeouts.For(e.Protocol, e.State)));
            }
        }

        return new SessionPage(matched, live, table.MaxSessions, items);
    }

    /// <summary>Every neighbor entry (the cache is small: 4096 entries per worker by default).</summary>
    public static NeighborSnapshot Neighbors(WorkerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var cache = context.L3.Neighbors;
        var l3 = context.Snapshot.L3;
        var domains = context.Snapshot.Domains;
        var tps = (double)context.TicksPerSecond;
        var now = context.Now;
        var reachable = l3.ReachableSeconds * context.TicksPerSecond;
        var interval = l3.ProbeIntervalSeconds * context.TicksPerSecond;
        var list = new List<NeighborRecord>(cache.Count);
        for (var i = 0; i < cache.SlotCount; i++)
        {
            ref readonly var e = ref cache.Slot(i);
            if (e.State == NeighborState.Free)
            {
                continue;
            }

            var since = e.State == NeighborState.Reachable ? e.Confirmed : e.NextProbe - (e.Probes * interval);
            list.Add(new NeighborRecord(
                (uint)e.Domain < (uint)domains.Length ? domains[e.Domain].Name : e.Domain.ToString(System.Globalization.CultureInfo.InvariantCulture),
                e.IsIpv6, e.AddressHi, e.AddressLo, e.State,
                e.State == NeighborState.Reachable && now - e.Confirmed > reachable,
                e.Mac, Math.Round(Math.Max(0, now - since) / tps, 1), e.Probes, e.HeldCount));
        }

        return new NeighborSnapshot(list, cache.Capacity, cache.HeldPackets, cache.LearnRefused, cache.Failed);
    }

    /// <summary>Session counts per protocol (one walk of the table), neighbor counts and a copy of the rule counters.</summary>
    public static FlowStatistics Statistics(WorkerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var flows = context.Flows;
        var byProtocol = new Dictionary<byte, int>();
        var sessions = 0;
        if (flows.Table is { } table)
        {
            var now = flows.Now;
            for (var i = 0; i < table.MaxSessions; i++)
            {
                ref readonly var e = ref table[i];
                if (e.Protocol != 0 && e.Expires > now)
                {
                    sessions++;
                    byProtocol[e.Protocol] = byProtocol.GetValueOrDefault(e.Protocol) + 1;
                }
            }
        }

        var firewall = context.Snapshot.Firewall;
        return new FlowStatistics(
            byProtocol, sessions, flows.Table?.MaxSessions ?? 0, flows.Table?.Expired ?? 0, flows.Committed,
            context.L3.Neighbors.Count, context.L3.Neighbors.HeldPackets, firewall, [.. flows.RuleHits]);
    }
}
