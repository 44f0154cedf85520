using System.Collections.Frozen;
using Isthmus.DataPlane.Io;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Programming;

/// <summary>
/// The compiled, immutable form of a <see cref="DataPlaneProgram"/>. Workers read the current
/// snapshot once per batch; a new one is published with one reference swap, so a worker never sees
/// half a configuration. Every lookup the hot path needs is precomputed here.
/// </summary>
public sealed class DataPlaneSnapshot
{
    internal DataPlaneSnapshot(long version, DataPlaneProgram program, PortBinding[] ports, Segment[] segments, Domain[] domains)
    {
        Version = version;
        Program = program;
        Ports = ports;
        Segments = segments;
        Domains = domains;
    }

    public long Version { get; }

    public DataPlaneProgram Program { get; }

    /// <summary>Indexed like <see cref="DataPlaneProgram.Ports"/> and the worker's port table.</summary>
    public PortBinding[] Ports { get; }

    public Segment[] Segments { get; }

    public Domain[] Domains { get; }

    /// <summary>Gateways, routes and neighbor settings (Gateway/ and Route/ stages).</summary>
    public Route.L3Tables L3 { get; internal set; } = Route.L3Tables.Empty;

    /// <summary>Zones, the compiled rule classifier, conntrack limits and NAT rules (Firewall/ and Nat/ stages).</summary>
    public Firewall.FirewallTables Firewall { get; internal set; } = Isthmus.DataPlane.Firewall.FirewallTables.Empty;

    /// <summary>Virtual servers, backends with their health, Maglev tables (LoadBalancer/ stage).</summary>
    public LoadBalancer.LoadBalancerTables LoadBalancer { get; internal set; } = Isthmus.DataPlane.LoadBalancer.LoadBalancerTables.Empty;
}

/// <summary>How frames arriving on one port map to segments.</summary>
public sealed class PortBinding
{
    public required string Name { get; init; }

    public required PortKind Kind { get; init; }

    /// <summary>Access port: its one segment, or -1.</summary>
    public int AccessSegment { get; init; } = -1;

    /// <summary>Trunk port: segment per VLAN id (4096 entries, -1 = not carried).</summary>
    public int[] VlanSegments { get; init; } = [];

    /// <summary>VXLAN port: segment per VNI.</summary>
    public FrozenDictionary<uint, int> VniSegments { get; init; } = FrozenDictionary<uint, int>.Empty;

    /// <summary>VXLAN port: every VTEP configured on any of its VNIs (tenant isolation: others are dropped).</summary>
    public FrozenSet<uint> KnownVteps { get; init; } = FrozenSet<uint>.Empty;
}

public sealed class Segment
{
    public required int Index { get; init; }

    /// <summary>"acc10", "trunk0/vlan10", "und0/vni5010".</summary>
    public required string Name { get; init; }

    public required int Port { get; init; }

    public required PortKind Kind { get; init; }

    public required int Domain { get; init; }

    public ushort Vlan { get; init; }

    public uint Vni { get; init; }

    public int Mtu { get; init; } = 1500;

    /// <summary>VXLAN: remote VTEPs (host-order IPv4), the head-end replication list.</summary>
    public uint[] Vteps { get; init; } = [];

    public ushort VtepUdpPort { get; init; } = VxlanHeader.DefaultPort;
}

public sealed class Domain
{
    public required int Index { get; init; }

    public required string Name { get; init; }

    public required int[] Segments { get; init; }

    public required long MacAgingTicks { get; init; }

    public required int MaxMacs { get; init; }

    public required int StormControlPps { get; init; }

    public required int MacFlapMoves { get; init; }

    public required long MacFlapWindowTicks { get; init; }

    public required long MacFlapHoldTicks { get; init; }

    public required StaticMac[] StaticMacs { get; init; }

    /// <summary>The domain's gateway interface MAC (48 bits), or 0 when the domain is L2 only. Set by the L3 compiler.</summary>
    public ulong GatewayMac { get; internal set; }
}

public readonly record struct StaticMac(MacAddress Mac, int Segment, uint Vtep);
