using System.Collections.Frozen;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.LoadBalancer;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Programming;

public static partial class SnapshotCompiler
{
    /// <summary>Most backends a pool may hold.</summary>
    public const int MaxBackendsPerPool = 1000;

    /// <summary>Largest backend weight (a round-robin period is at most MaxBackendsPerPool × MaxBackendWeight long).</summary>
    public const int MaxBackendWeight = 1000;

    /// <summary>
    /// The same snapshot with the load balancer recompiled for the health checks' verdicts: the
    /// backends whose <see cref="LbBackend.HealthKey"/> is in <paramref name="down"/> take no new
    /// flows (a server left with none is down). Everything else is shared with
    /// <paramref name="snapshot"/>, so the worker's switch to it only touches the balancer's state.
    /// The snapshot was validated when it was compiled, so this cannot fail.
    /// </summary>
    public static DataPlaneSnapshot WithBackendHealth(DataPlaneSnapshot snapshot, IReadOnlySet<string> down)
    {
        var problems = new List<ProgramError>();
        var lb = CompileLoadBalancer(snapshot.Program, snapshot.Firewall, snapshot.L3, down, problems);
        if (problems.Count > 0)
        {
            throw new ProgramValidationException(problems);
        }

        return new DataPlaneSnapshot(snapshot.Version, snapshot.Program, snapshot.Ports, snapshot.Segments, snapshot.Domains)
        {
            L3 = snapshot.L3,
            Firewall = snapshot.Firewall,
            LoadBalancer = lb,
        };
    }

    /// <summary>Validates virtual servers and pools (every error, with its path) and compiles them; <paramref name="down"/> are the backends health checks took out.</summary>
    private static LoadBalancerTables CompileLoadBalancer(DataPlaneProgram program, FirewallTables firewall, L3Tables l3, IReadOnlySet<string>? down, List<ProgramError> problems)
    {
        var spec = program.LoadBalancer;
        if (spec.VirtualServers.Count == 0 && spec.Pools.Count == 0)
        {
            return LoadBalancerTables.Empty;
        }

        var pools = new Dictionary<string, int>(StringComparer.Ordinal);
        var invalidPools = new HashSet<int>();
        for (var i = 0; i < spec.Pools.Count; i++)
        {
            var pool = spec.Pools[i];
            var path = $"loadBalancer.pools[{i}]";
            if (string.IsNullOrWhiteSpace(pool.Name))
            {
                problems.Add(new($"{path}.name", "a pool needs a name"));
            }
            else if (!pools.TryAdd(pool.Name, i))
            {
                problems.Add(new($"{path}.name", $"pool name '{pool.Name}' is used twice"));
            }

            var before = problems.Count;
            ValidatePool(pool, path, problems);
            if (problems.Count > before)
            {
                invalidPools.Add(i);
            }
        }

        var hasGatewayAddress = false;
        foreach (var gateway in l3.Gateways)
        {
            hasGatewayAddress |= gateway is { Ipv4.Length: > 0 };
        }

        var servers = new List<LbVirtualServer>();
        var backends = new List<LbBackend>();
        var serverIndex = new Dictionary<ulong, int>();
        var ranged = new List<LbVirtualServer>();
        var backendIndex = new Dictionary<ulong, int>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var maxBackends = 0;
        for (var i = 0; i < spec.VirtualServers.Count; i++)
        {
            var vs = spec.VirtualServers[i];
            var path = $"loadBalancer.virtualServers[{i}]";
            var before = problems.Count;
            if (string.IsNullOrWhiteSpace(vs.Name))
            {
                problems.Add(new($"{path}.name", "a virtual server needs a name"));
            }
            else if (!names.Add(vs.Name))
            {
                problems.Add(new($"{path}.name", $"virtual server name '{vs.Name}' is used twice"));
            }

            uint vip = 0;
            if (!Ipv4Address.TryParse(vs.Address, out var vipAddress) || vipAddress.IsAny || vipAddress.IsMulticast || vipAddress.IsBroadcast)
            {
                problems.Add(new($"{path}.address", $"'{vs.Address}' is not a unicast IPv4 address"));
            }
            else
            {
                vip = vipAddress.Value;
                if (l3.LocalIpv4.ContainsKey(vip))
                {
                    problems.Add(new($"{path}.address", $"{vs.Address} is an interface address of the appliance; give the VIP an address of its own"));
                }
            }

            byte protocol = vs.Protocol switch
            {
                "tcp" => IpProtocol.Tcp,
                "udp" => IpProtocol.Udp,
                _ => 0,
            };
            if (protocol == 0)
            {
                problems.Add(new($"{path}.protocol", $"'{vs.Protocol}' is not tcp or udp"));
            }

            if (!TryParseRange(vs.Ports ?? "", out var low, out var high) || low == 0)
            {
                problems.Add(new($"{path}.ports", $"'{vs.Ports}' is not a port (80) or a port range (8000-8099) within 1-65535"));
            }

            bool fullNat = vs.Mode switch
            {
                "full-nat" => true,
                "dnat-only" => false,
                _ => Fail($"{path}.mode", $"'{vs.Mode}' is not full-nat or dnat-only"),
            };
            if (fullNat && !hasGatewayAddress)
            {
                problems.Add(new($"{path}.mode", "full NAT translates the source to the appliance's address on the backend's segment, and no gateway has an IPv4 address"));
            }

            var algorithm = vs.Algorithm switch
            {
                "maglev" => LbAlgorithm.Maglev,
                "wrr" => LbAlgorithm.WeightedRoundRobin,
                "least-conn" => LbAlgorithm.LeastConnections,
                _ => (LbAlgorithm)255,
            };
            if ((byte)algorithm == 255)
            {
                problems.Add(new($"{path}.algorithm", $"'{vs.Algorithm}' is not maglev, wrr or least-conn"));
            }

            if (vs.PersistenceSeconds is < 0 or > 86400)
            {
                problems.Add(new($"{path}.persistenceSeconds", $"{vs.PersistenceSeconds} is outside 0 (off) to 86400"));
            }

            if (vs.MaglevSize != 0 && (vs.MaglevSize < 2 || vs.MaglevSize > MaglevTable.MaxSize || !MaglevTable.IsPrime(vs.MaglevSize)))
            {
                problems.Add(new($"{path}.maglevSize", $"{vs.MaglevSize} is not a prime in 2..{MaglevTable.MaxSize} (0: automatic)"));
            }

            var zone = -1;
            if (vs.IngressZone is not null)
            {
                zone = Array.IndexOf(firewall.ZoneNames, vs.IngressZone);
                if (zone < 0 || zone == firewall.ZoneCount - 1)
                {
                    problems.Add(new($"{path}.ingressZone", $"no zone named '{vs.IngressZone}'"));
                }
            }

            PoolSpec? pool = null;
            if (vs.Pool is null || !pools.TryGetValue(vs.Pool, out var poolIndex))
            {
                problems.Add(new($"{path}.pool", $"no pool named '{vs.Pool}'"));
            }
            else
            {
                pool = spec.Pools[poolIndex];
                if (pool.Backends.Count == 0)
                {
                    problems.Add(new($"{path}.pool", $"pool '{vs.Pool}' has no backends"));
                }
            }

            if (protocol != 0 && vip != 0 && low != 0)
            {
                if (firewall.DnatIndex.ContainsKey(FirewallTables.DnatKey(vip, 0, 0)))
                {
                    problems.Add(new($"{path}.address", $"{vs.Address} is the external address of a 1:1 NAT rule"));
                }

                for (var port = (int)low; port <= high; port++)
                {
                    if (firewall.DnatIndex.ContainsKey(FirewallTables.DnatKey(vip, protocol, (ushort)port)) || firewall.DnatIndex.ContainsKey(FirewallTables.DnatKey(vip, protocol, 0)))
                    {
                        problems.Add(new($"{path}.ports", $"{vs.Address} {vs.Protocol} port {port} is also forwarded by a DNAT rule"));
                        break;
                    }
                }

                foreach (var other in servers)
                {
                    if (other.Vip == vip && other.Protocol == protocol && low <= other.PortHigh && other.PortLow <= high)
                    {
                        problems.Add(new($"{path}.ports", $"{vs.Address} {vs.Protocol} {vs.Ports} overlaps virtual server '{other.Name}'"));
                    }
                }
            }

            if (problems.Count > before || pool is null || pool.Backends.Count == 0 || invalidPools.Contains(pools[vs.Pool!]))
            {
                continue;
            }

            // Backends, in configured order; their health and administrative state decide eligibility.
            var index = servers.Count;
            var members = new int[pool.Backends.Count];
            var eligible = new List<int>();
            for (var k = 0; k < pool.Backends.Count; k++)
            {
                var b = pool.Backends[k];
                var address = Ipv4Address.Parse(b.Address);
                var backend = new LbBackend
                {
                    Index = backends.Count,
                    Server = index,
                    Pool = pool.Name,
                    Address = address.Value,
                    Port = (ushort)(b.Port ?? 0),
                    Weight = b.Weight,
                    Enabled = b.Enabled,
                    Drain = b.Drain,
                    Up = down is null || !down.Contains(LoadBalancerTables.HealthKey(pool.Name, address.Value, (ushort)(b.Port ?? 0))),
                    DrainTimeoutSeconds = pool.DrainTimeoutSeconds,
                };
                members[k] = backend.Index;
                backends.Add(backend);
                backendIndex[LoadBalancerTables.BackendKey(index, backend.Address, backend.Port)] = backend.Index;
                if (backend.Eligible)
                {
                    eligible.Add(backend.Index);
                }
            }

            maxBackends = Math.Max(maxBackends, members.Length);
            MaglevTable? maglev = null;
            var maglevBackends = Array.Empty<int>();
            if (algorithm == LbAlgorithm.Maglev && eligible.Count > 0)
            {
                // M is fixed by every configured backend, not the eligible ones, so a health change
                // moves only the flows of the backend that changed (MaglevTable: keep M fixed).
                var size = vs.MaglevSize;
                if (size == 0)
                {
                    var gcd = 0;
                    foreach (var b in members)
                    {
                        gcd = MaglevTable.Gcd(gcd, backends[b].Weight);
                    }

                    long turns = 0;
                    foreach (var b in members)
                    {
                        turns += backends[b].Weight / gcd;
                    }

                    size = MaglevTable.DefaultSize(turns);
                }

                var byId = new Dictionary<ulong, int>();
                var list = new List<MaglevBackend>();
                foreach (var b in eligible)
                {
                    var mb = MaglevBackend.FromName(backends[b].ToString(), backends[b].Weight);
                    byId[mb.Id] = b;
                    list.Add(mb);
                }

                maglev = new MaglevTable(list, size);
                maglevBackends = new int[maglev.Backends.Count];
                for (var m = 0; m < maglevBackends.Length; m++)
                {
                    maglevBackends[m] = byId[maglev.Backends[m].Id];
                }
            }

            var server = new LbVirtualServer
            {
                Index = index,
                Name = vs.Name,
                Vip = vip,
                Protocol = protocol,
                PortLow = low,
                PortHigh = high,
                FullNat = fullNat,
                Algorithm = algorithm,
                PersistenceSeconds = (uint)vs.PersistenceSeconds,
                IngressZone = zone,
                Backends = members,
                Eligible = [.. eligible],
                Maglev = maglev,
                MaglevBackends = maglevBackends,
                RoundRobin = algorithm == LbAlgorithm.WeightedRoundRobin ? SmoothRoundRobin(eligible, backends) : [],
                Snat = fullNat ? new SnatRule(-1, -1, [], [], 1024, 65535, false, $"lb {vs.Name} full-nat") : null,
            };
            servers.Add(server);
            if (low == high)
            {
                serverIndex[FirewallTables.DnatKey(vip, protocol, low)] = index;
            }
            else
            {
                ranged.Add(server);
            }
        }

        return new LoadBalancerTables
        {
            Servers = [.. servers],
            Backends = [.. backends],
            ServerIndex = serverIndex.ToFrozenDictionary(),
            Ranged = [.. ranged],
            Vips = servers.Select(s => s.Vip).ToFrozenSet(),
            BackendIndex = backendIndex.ToFrozenDictionary(),
            MaxBackendsPerServer = maxBackends,
        };

        bool Fail(string path, string message)
        {
            problems.Add(new(path, message));
            return false;
        }
    }

    private static void ValidatePool(PoolSpec pool, string path, List<ProgramError> problems)
    {
        if (pool.Backends.Count > MaxBackendsPerPool)
        {
            problems.Add(new($"{path}.backends", $"{pool.Backends.Count} backends is more than {MaxBackendsPerPool}"));
        }

        if (pool.DrainTimeoutSeconds is < 0 or > 86400)
        {
            problems.Add(new($"{path}.drainTimeoutSeconds", $"{pool.DrainTimeoutSeconds} is outside 0 (until flows end) to 86400"));
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var k = 0; k < pool.Backends.Count; k++)
        {
            var b = pool.Backends[k];
            var bPath = $"{path}.backends[{k}]";
            if (!Ipv4Address.TryParse(b.Address, out var address) || address.IsAny || address.IsMulticast || address.IsBroadcast)
            {
                problems.Add(new($"{bPath}.address", $"'{b.Address}' is not a unicast IPv4 address"));
            }

            if (b.Port is { } port && port is < 1 or > 65535)
            {
                problems.Add(new($"{bPath}.port", $"port {port} is outside 1-65535"));
            }

            if (b.Weight is < 1 or > MaxBackendWeight)
            {
                problems.Add(new($"{bPath}.weight", $"weight {b.Weight} is outside 1-{MaxBackendWeight}"));
            }

            if (!seen.Add($"{b.Address}:{b.Port}"))
            {
                problems.Add(new(bPath, $"{b.Address}:{b.Port?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(client's port)"} is listed twice"));
            }
        }

        if (pool.HealthCheck is not { } hc)
        {
            return;
        }

        var hcPath = $"{path}.healthCheck";
        if (hc.Type is not ("tcp" or "http" or "https" or "udp"))
        {
            problems.Add(new($"{hcPath}.type", $"'{hc.Type}' is not tcp, http, https or udp"));
        }

        if (hc.Port is { } checkPort && checkPort is < 1 or > 65535)
        {
            problems.Add(new($"{hcPath}.port", $"port {checkPort} is outside 1-65535"));
        }
        else if (hc.Port is null && pool.Backends.Any(b => b.Port is null))
        {
            problems.Add(new($"{hcPath}.port", "a backend keeps the client's port, so the check needs a port of its own"));
        }

        if (hc.Type is "http" or "https" && (string.IsNullOrEmpty(hc.Path) || hc.Path[0] != '/'))
        {
            problems.Add(new($"{hcPath}.path", $"'{hc.Path}' is not an absolute path such as /health"));
        }

        if (hc.ExpectStatus is < 100 or > 599)
        {
            problems.Add(new($"{hcPath}.expectStatus", $"{hc.ExpectStatus} is not an HTTP status (100-599)"));
        }

        if (hc.IntervalMs is < 100 or > 3_600_000)
        {
            problems.Add(new($"{hcPath}.intervalMs", $"{hc.IntervalMs} ms is outside 100 ms to 1 hour"));
        }

        if (hc.TimeoutMs < 10 || hc.TimeoutMs > hc.IntervalMs)
        {
            problems.Add(new($"{hcPath}.timeoutMs", $"{hc.TimeoutMs} ms must be at least 10 ms and at most the interval ({hc.IntervalMs} ms)"));
        }

        if (hc.Rise is < 1 or > 100)
        {
            problems.Add(new($"{hcPath}.rise", $"{hc.Rise} is outside 1-100"));
        }

        if (hc.Fall is < 1 or > 100)
        {
            problems.Add(new($"{hcPath}.fall", $"{hc.Fall} is outside 1-100"));
        }

        if (hc.JitterPercent is < 0 or > 50)
        {
            problems.Add(new($"{hcPath}.jitterPercent", $"{hc.JitterPercent} is outside 0-50"));
        }
    }

    /// <summary>
    /// One period of smooth weighted round robin (each step: add every weight to its backend's
    /// credit, pick the largest credit, take the total off it): backends interleave instead of
    /// coming in runs, and backend i appears exactly w_i / gcd times.
    /// </summary>
    private static int[] SmoothRoundRobin(List<int> eligible, List<LbBackend> backends)
    {
        if (eligible.Count == 0)
        {
            return [];
        }

        var gcd = 0;
        foreach (var b in eligible)
        {
            gcd = MaglevTable.Gcd(gcd, backends[b].Weight);
        }

        var weights = eligible.Select(b => backends[b].Weight / gcd).ToArray();
        var total = weights.Sum();
        var credit = new long[weights.Length];
        var sequence = new int[total];
        for (var step = 0; step < total; step++)
        {
            var best = 0;
            for (var k = 0; k < weights.Length; k++)
            {
                credit[k] += weights[k];
                if (credit[k] > credit[best])
                {
                    best = k;
                }
            }

            credit[best] -= total;
            sequence[step] = eligible[best];
        }

        return sequence;
    }
}
