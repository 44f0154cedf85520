namespace Isthmus.DataPlane.Programming;

/// <summary>
/// What the control plane asks the data plane to do: ports, and bridge domains made of segments.
/// Immutable; compiled by <see cref="SnapshotCompiler"/> into a <see cref="DataPlaneSnapshot"/>.
/// </summary>
public sealed record DataPlaneProgram
{
    public IReadOnlyList<PortSpec> Ports { get; init; } = [];

    public IReadOnlyList<BridgeDomainSpec> BridgeDomains { get; init; } = [];

    /// <summary>Gateway interfaces (one per routed bridge domain). See GatewaySpec.cs.</summary>
    public IReadOnlyList<GatewaySpec> Gateways { get; init; } = [];

    /// <summary>Static routes, including the upstream default route. See GatewaySpec.cs.</summary>
    public IReadOnlyList<RouteSpec> Routes { get; init; } = [];

    /// <summary>Zones, policies and conntrack settings. See FirewallSpec.cs.</summary>
    public FirewallSpec Firewall { get; init; } = new();

    /// <summary>SNAT, DNAT and 1:1 NAT. See NatSpec.cs.</summary>
    public NatSpec Nat { get; init; } = new();

    /// <summary>Virtual servers and pools. See LoadBalancerSpec.cs.</summary>
    public LoadBalancerSpec LoadBalancer { get; init; } = new();
}

public enum PortSpecKind
{
    Vxlan,
    Trunk,
    Access,
}

/// <param name="Name">Port name, referenced by segments.</param>
/// <param name="Kind">vxlan, trunk or access.</param>
/// <param name="Interface">Linux interface for trunk and access ports.</param>
/// <param name="LocalAddress">Underlay IPv4 address for a VXLAN port.</param>
/// <param name="UdpPort">VXLAN UDP port (RFC 7348: 4789; Linux's old default is 8472).</param>
public sealed record PortSpec(
    string Name,
    PortSpecKind Kind,
    string? Interface = null,
    string? LocalAddress = null,
    int UdpPort = 4789);

public sealed record BridgeDomainSpec
{
    public required string Name { get; init; }

    public IReadOnlyList<SegmentSpec> Segments { get; init; } = [];

    /// <summary>Dynamic MAC entries not refreshed for this long are removed.</summary>
    public int MacAgingSeconds { get; init; } = 300;

    /// <summary>Most MAC entries the domain learns; frames from further MACs are still forwarded, not learned.</summary>
    public int MaxMacs { get; init; } = 8192;

    /// <summary>Broadcast, unknown-unicast and multicast frames per second admitted into the domain (0 = no limit).</summary>
    public int StormControlPps { get; init; }

    /// <summary>MAC moves within <see cref="MacFlapWindowSeconds"/> beyond which the MAC is damped as a loop.</summary>
    public int MacFlapMoves { get; init; } = 10;

    public int MacFlapWindowSeconds { get; init; } = 10;

    /// <summary>How long a flapping MAC stays frozen to its last location.</summary>
    public int MacFlapHoldSeconds { get; init; } = 30;

    public IReadOnlyList<StaticMacSpec> StaticMacs { get; init; } = [];
}

/// <summary>One attachment of a domain: a VLAN on a trunk, an access port, or a VNI on the VXLAN port.</summary>
public sealed record SegmentSpec
{
    public required string Port { get; init; }

    /// <summary>VLAN id on a trunk port (1-4094).</summary>
    public int? Vlan { get; init; }

    /// <summary>VXLAN network identifier (24 bits) on a VXLAN port.</summary>
    public int? Vni { get; init; }

    /// <summary>Remote VTEPs of the VNI: the only sources accepted, and the head-end replication list.</summary>
    public IReadOnlyList<string> Vteps { get; init; } = [];

    /// <summary>Largest L3 packet the segment carries (VXLAN over a 1500 underlay: 1450).</summary>
    public int Mtu { get; init; } = 1500;
}

/// <param name="Mac">aa:bb:cc:dd:ee:ff</param>
/// <param name="Segment">Index of the segment within its domain.</param>
/// <param name="Vtep">For a VXLAN segment, the VTEP the MAC lives behind.</param>
public sealed record StaticMacSpec(string Mac, int Segment, string? Vtep = null);
