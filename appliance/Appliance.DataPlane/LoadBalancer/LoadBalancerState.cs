using Isthmus.DataPlane.Firewall;

namespace Isthmus.DataPlane.LoadBalancer;

/// <summary>
/// Per-backend counters of one worker, indexed like <see cref="LoadBalancerTables.Backends"/> of
/// <see cref="Tables"/>. Published as one reference, so a reader on another thread always sees
/// counters that belong to the tables beside them (possibly a moment stale, never torn).
/// </summary>
public sealed class LoadBalancerCounters(LoadBalancerTables tables)
{
    public LoadBalancerTables Tables { get; } = tables;

    /// <summary>Live sessions per backend (least connections reads these; decremented when the session leaves conntrack).</summary>
    public long[] Active { get; } = new long[tables.Backends.Length];

    /// <summary>New flows sent to each backend.</summary>
    public long[] Flows { get; } = new long[tables.Backends.Length];

    /// <summary>Sessions cut because their backend's drain deadline passed.</summary>
    public long[] Cut { get; } = new long[tables.Backends.Length];

    /// <summary>New flows that found the persistence entry of their client.</summary>
    public long PersistenceHits;
}

/// <summary>Why the balancer chose a backend (the trace's "why").</summary>
public readonly record struct LbChoice(int Backend, LbAlgorithm Algorithm, bool Persisted, int Slot, long Active);

/// <summary>
/// One worker's load-balancer state: the round-robin cursors, the per-backend connection counts
/// least connections needs (kept for every algorithm: the API shows them and drain uses them), the
/// source-IP persistence table and when each backend started draining. It observes conntrack, so a
/// session that leaves the table (end, timeout, reset, drain cut) gives its backend's count back.
/// Owned by the worker thread; no locks, no allocation per packet (allocations happen in
/// <see cref="Apply"/>, between batches).
/// </summary>
public sealed class LoadBalancerState : IConntrackObserver
{
    private LoadBalancerTables _tables = LoadBalancerTables.Empty;
    private LoadBalancerCounters _counters = new(LoadBalancerTables.Empty);
    private int[] _cursor = [];
    private uint[] _drainSince = [];
    private readonly PersistenceTable _persistence = new(1 << 14);

    /// <summary>The counters of the current tables (read by the API off the worker thread).</summary>
    public LoadBalancerCounters Counters => Volatile.Read(ref _counters);

    public LoadBalancerTables Tables => _tables;

    /// <summary>
    /// Adopts new tables (between batches). Counts, drain start times and cursors carry over to the
    /// same backend (virtual server name + address + port) in the new tables.
    /// </summary>
    public void Apply(LoadBalancerTables tables)
    {
        if (ReferenceEquals(tables, _tables))
        {
            return;
        }

        var old = _tables;
        var oldCounters = _counters;
        var counters = new LoadBalancerCounters(tables) { PersistenceHits = oldCounters.PersistenceHits };
        var drainSince = new uint[tables.Backends.Length];
        var cursor = new int[tables.Servers.Length];
        var previous = new Dictionary<(string, uint, ushort), int>();
        foreach (var b in old.Backends)
        {
            previous[(old.Servers[b.Server].Name, b.Address, b.Port)] = b.Index;
        }

        foreach (var b in tables.Backends)
        {
            if (previous.TryGetValue((tables.Servers[b.Server].Name, b.Address, b.Port), out var o))
            {
                counters.Active[b.Index] = oldCounters.Active[o];
                counters.Flows[b.Index] = oldCounters.Flows[o];
                counters.Cut[b.Index] = oldCounters.Cut[o];
                drainSince[b.Index] = b.Drain ? _drainSince[o] : 0;
            }
        }

        foreach (var s in tables.Servers)
        {
            var o = Array.FindIndex(old.Servers, x => x.Name == s.Name);
            if (o >= 0 && o < _cursor.Length)
            {
                cursor[s.Index] = _cursor[o];
            }
        }

        _tables = tables;
        _cursor = cursor;
        _drainSince = drainSince;
        Volatile.Write(ref _counters, counters);
    }

    /// <summary>
    /// Picks the backend for a new flow of <paramref name="server"/>: the client's persistence entry
    /// when it is live and its backend still takes flows, else the server's algorithm. Returns false
    /// when no backend takes new flows (the VIP is down).
    /// </summary>
    public bool Choose(LbVirtualServer server, in FlowTuple tuple, uint now, out LbChoice choice)
    {
        choice = default;
        var eligible = server.Eligible;
        if (eligible.Length == 0)
        {
            return false;
        }

        var tables = _tables;
        var counters = _counters;
        if (server.PersistenceSeconds > 0 && _persistence.TryGet(tuple.Source, server.Index, now, out var address, out var port))
        {
            var b = tables.BackendOf(server.Index, address, port);
            if (b >= 0 && tables.Backends[b].Eligible)
            {
                counters.PersistenceHits++;
                choice = new LbChoice(b, server.Algorithm, true, -1, counters.Active[b]);
                return true;
            }
        }

        switch (server.Algorithm)
        {
            case LbAlgorithm.Maglev:
            {
                var hash = MaglevHash.Flow(tuple.Source, tuple.Destination, tuple.SourcePort, tuple.DestinationPort, tuple.Protocol);
                var maglev = server.Maglev!;
                var slot = maglev.Slot(hash);
                var b = server.MaglevBackends[maglev.Slots[slot]];
                choice = new LbChoice(b, LbAlgorithm.Maglev, false, slot, counters.Active[b]);
                return true;
            }

            case LbAlgorithm.WeightedRoundRobin:
            {
                var sequence = server.RoundRobin;
                ref var cursor = ref _cursor[server.Index];
                if ((uint)cursor >= (uint)sequence.Length)
                {
                    cursor = 0;
                }

                var position = cursor;
                var b = sequence[position];
                cursor = position + 1;
                choice = new LbChoice(b, LbAlgorithm.WeightedRoundRobin, false, position, counters.Active[b]);
                return true;
            }

            default:
            {
                // The lowest active / weight, compared without division; ties go to the first
                // candidate after a rotating start, so equal loads still spread.
                var backends = tables.Backends;
                var active = counters.Active;
                ref var cursor = ref _cursor[server.Index];
                var start = (uint)cursor < (uint)eligible.Length ? cursor : 0;
                var best = eligible[start];
                for (var k = 1; k < eligible.Length; k++)
                {
                    var candidate = eligible[(start + k) % eligible.Length];
                    if (active[candidate] * backends[best].Weight < active[best] * backends[candidate].Weight)
                    {
                        best = candidate;
                    }
                }

                cursor = start + 1;
                choice = new LbChoice(best, LbAlgorithm.LeastConnections, false, -1, active[best]);
                return true;
            }
        }
    }

    /// <summary>The NAT stage committed a session to <paramref name="backend"/>: count it, and remember the client when the server persists.</summary>
    public void Opened(int backend, uint client, ushort port, uint now)
    {
        var tables = _tables;
        if ((uint)backend >= (uint)tables.Backends.Length)
        {
            return;
        }

        var counters = _counters;
        counters.Active[backend]++;
        counters.Flows[backend]++;
        var b = tables.Backends[backend];
        var server = tables.Servers[b.Server];
        if (server.PersistenceSeconds > 0)
        {
            _persistence.Set(client, server.Index, b.Address, b.Port == 0 ? port : b.Port, now + server.PersistenceSeconds);
        }
    }

    /// <summary>A session left conntrack: a load-balanced one gives its backend's count back.</summary>
    public void Removed(in ConntrackEntry entry)
    {
        if ((entry.Flags & FlowFlags.LoadBalanced) == 0)
        {
            return;
        }

        var backend = BackendOf(entry);
        if (backend >= 0)
        {
            ref var active = ref _counters.Active[backend];
            if (active > 0)
            {
                active--;
            }
        }
    }

    /// <summary>
    /// Heartbeat work: notes when backends start draining, and cuts the sessions of those whose
    /// drain deadline passed (they leave conntrack; a later packet of theirs is a stray, INVALID).
    /// Walks the table only while such a backend still has sessions.
    /// </summary>
    public int Heartbeat(ConntrackTable? table, uint now)
    {
        var tables = _tables;
        var counters = _counters;
        var cutNeeded = false;
        foreach (var b in tables.Backends)
        {
            if (!b.Drain)
            {
                continue;
            }

            if (_drainSince[b.Index] == 0)
            {
                _drainSince[b.Index] = now;
            }
            else if (b.DrainTimeoutSeconds > 0 && now - _drainSince[b.Index] >= (uint)b.DrainTimeoutSeconds && counters.Active[b.Index] > 0)
            {
                cutNeeded = true;
            }
        }

        if (!cutNeeded || table is null)
        {
            return 0;
        }

        var cut = 0;
        for (var i = 0; i < table.MaxSessions; i++)
        {
            ref var e = ref table[i];
            if (e.Protocol == 0 || (e.Flags & FlowFlags.LoadBalanced) == 0)
            {
                continue;
            }

            var backend = BackendOf(e);
            if (backend >= 0 && tables.Backends[backend] is { Drain: true, DrainTimeoutSeconds: > 0 } b && now - _drainSince[backend] >= (uint)b.DrainTimeoutSeconds)
            {
                table.Remove(i);
                counters.Cut[backend]++;
                cut++;
            }
        }

        return cut;
    }

    /// <summary>The backend of a load-balanced session: the server by the original destination, the backend by the reply's source.</summary>
    private int BackendOf(in ConntrackEntry e)
    {
        var server = _tables.Find(e.OriginalDestination, e.Protocol, e.OriginalDestinationPort);
        return server is null ? -1 : _tables.BackendOf(server.Index, e.ReplySource, e.ReplySourcePort);
    }

    /// <summary>
    /// Source-IP persistence: (client, server) → backend address and port until a deadline. A
    /// fixed-size 4-way set-associative table: no allocation; a full set replaces its entry
    /// closest to expiry (persistence is best effort, like IPVS's templates under pressure).
    /// </summary>
    private sealed class PersistenceTable(int sets)
    {
        private const int Ways = 4;
        private readonly Entry[] _entries = new Entry[sets * Ways];
        private readonly int _mask = sets - 1;

        public bool TryGet(uint client, int server, uint now, out uint address, out ushort port)
        {
            var set = Set(client, server);
            for (var w = 0; w < Ways; w++)
            {
                ref var e = ref _entries[set + w];
                if (e.Client == client && e.Server == server + 1 && e.Expires > now)
                {
                    address = e.Address;
                    port = e.Port;
                    return true;
                }
            }

            address = 0;
            port = 0;
            return false;
        }

        public void Set(uint client, int server, uint address, ushort port, uint expires)
        {
            var set = Set(client, server);
            var victim = set;
            for (var w = 0; w < Ways; w++)
            {
                ref var e = ref _entries[set + w];
                if (e.Client == client && e.Server == server + 1)
                {
                    victim = set + w;
                    break;
                }

                if (e.Expires < _entries[victim].Expires)
                {
                    victim = set + w;
                }
            }

            _entries[victim] = new Entry { Client = client, Server = server + 1, Address = address, Port = port, Expires = expires };
        }

        private int Set(uint client, int server) => (int)((MaglevHash.Mix(((ulong)client << 16) ^ (uint)server) & (uint)_mask) * Ways);

        private struct Entry
        {
            public uint Client;
            public int Server;
            public uint Address;
            public ushort Port;
            public uint Expires;
        }
    }
}
