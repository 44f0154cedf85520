using System.Collections.Frozen;
using Isthmus.DataPlane.Firewall;
using Isthmus.Packets;

namespace Isthmus.DataPlane.LoadBalancer;

public enum LbAlgorithm : byte
{
    Maglev,
    WeightedRoundRobin,
    LeastConnections,
}

/// <summary>One configured backend of one virtual server (a pool shared by two servers gives each its own entries).</summary>
public sealed class LbBackend
{
    /// <summary>Position in <see cref="LoadBalancerTables.Backends"/> (the per-worker counters are indexed the same way).</summary>
    public required int Index { get; init; }

    public required int Server { get; init; }

    public required string Pool { get; init; }

    public required uint Address { get; init; }

    /// <summary>0: keep the client's destination port.</summary>
    public required ushort Port { get; init; }

    public required int Weight { get; init; }

    public required bool Enabled { get; init; }

    public required bool Drain { get; init; }

    /// <summary>The health check's verdict (true when the pool has no check).</summary>
    public required bool Up { get; init; }

    /// <summary>Seconds a draining backend's flows may live (0: until they end).</summary>
    public required int DrainTimeoutSeconds { get; init; }

    /// <summary>Takes new flows: enabled, not draining, up.</summary>
    public bool Eligible => Enabled && !Drain && Up;

    /// <summary>"pool/10.30.0.11:80": the health checks' key for this backend.</summary>
    public string HealthKey => LoadBalancerTables.HealthKey(Pool, Address, Port);

    public override string ToString() => $"{new Ipv4Address(Address)}:{(Port == 0 ? "*" : Port)}";
}

/// <summary>One compiled virtual server. Immutable; workers share it.</summary>
public sealed class LbVirtualServer
{
    public required int Index { get; init; }

    public required string Name { get; init; }

    public required uint Vip { get; init; }

    public required byte Protocol { get; init; }

    public required ushort PortLow { get; init; }

    public required ushort PortHigh { get; init; }

    public required bool FullNat { get; init; }

    public required LbAlgorithm Algorithm { get; init; }

    public required uint PersistenceSeconds { get; init; }

    /// <summary>-1: any zone.</summary>
    public required int IngressZone { get; init; }

    /// <summary>Every configured backend (indices into <see cref="LoadBalancerTables.Backends"/>), in configured order.</summary>
    public required int[] Backends { get; init; }

    /// <summary>The backends that take new flows, in configured order.</summary>
    public required int[] Eligible { get; init; }

    /// <summary>Maglev over <see cref="Eligible"/> (null when none is eligible or the algorithm is not Maglev).</summary>
    public required MaglevTable? Maglev { get; init; }

    /// <summary><see cref="MaglevTable.Backends"/> index → backend index.</summary>
    public required int[] MaglevBackends { get; init; }

    /// <summary>Smooth weighted round-robin sequence over <see cref="Eligible"/> (backend indices, one period).</summary>
    public required int[] RoundRobin { get; init; }

    /// <summary>Full NAT: a masquerade to the egress domain's gateway address (the appliance on the backend's segment).</summary>
    public required SnatRule? Snat { get; init; }

    /// <summary>No backend takes new flows: the VIP is down (its new flows are dropped as lb.NoBackend).</summary>
    public bool Down => Eligible.Length == 0;

    public string Ports => PortLow == PortHigh ? $"{PortLow}" : $"{PortLow}-{PortHigh}";

    public string ModeName => FullNat ? "full-nat" : "dnat-only";

    public string AlgorithmName => Algorithm switch
    {
        LbAlgorithm.Maglev => "maglev",
        LbAlgorithm.WeightedRoundRobin => "wrr",
        _ => "least-conn",
    };
}

/// <summary>
/// The compiled load balancer: virtual servers by (VIP, protocol, port), their backends with the
/// health verdicts of the moment, Maglev tables and round-robin sequences. Immutable; a health
/// change publishes a new one (<see cref="Programming.SnapshotCompiler.WithBackendHealth"/>).
/// </summary>
public sealed class LoadBalancerTables
{
    public static readonly LoadBalancerTables Empty = new();

    public LbVirtualServer[] Servers { get; init; } = [];

    public LbBackend[] Backends { get; init; } = [];

    /// <summary>Server by <see cref="FirewallTables.DnatKey"/>(VIP, protocol, port) for single-port servers.</summary>
    public FrozenDictionary<ulong, int> ServerIndex { get; init; } = FrozenDictionary<ulong, int>.Empty;

    /// <summary>Servers with a port range (scanned after the exact index misses).</summary>
    public LbVirtualServer[] Ranged { get; init; } = [];

    public FrozenSet<uint> Vips { get; init; } = FrozenSet<uint>.Empty;

    /// <summary>Backend by <see cref="BackendKey"/>(server, address, port) (port 0 for keep-port backends).</summary>
    public FrozenDictionary<ulong, int> BackendIndex { get; init; } = FrozenDictionary<ulong, int>.Empty;

    /// <summary>The most backends of any server (per-worker scratch is sized by it).</summary>
    public int MaxBackendsPerServer { get; init; }

    public static string HealthKey(string pool, uint address, ushort port) => $"{pool}/{new Ipv4Address(address)}:{(port == 0 ? "*" : port)}";

    public static ulong BackendKey(int server, uint address, ushort port) => ((ulong)(uint)server << 48) | ((ulong)address << 16) | port;

    /// <summary>The virtual server a new flow to (destination, protocol, port) hits, or null.</summary>
    public LbVirtualServer? Find(uint destination, byte protocol, ushort port)
    {
        if (ServerIndex.TryGetValue(FirewallTables.DnatKey(destination, protocol, port), out var s))
        {
            return Servers[s];
        }

        foreach (var server in Ranged)
        {
            if (server.Vip == destination && server.Protocol == protocol && port >= server.PortLow && port <= server.PortHigh)
            {
                return server;
            }
        }

        return null;
    }

    /// <summary>The backend a session went to (by the reply tuple's source), or -1.</summary>
    public int BackendOf(int server, uint address, ushort port) =>
        BackendIndex.TryGetValue(BackendKey(server, address, port), out var b) || BackendIndex.TryGetValue(BackendKey(server, address, 0), out b) ? b : -1;
}
