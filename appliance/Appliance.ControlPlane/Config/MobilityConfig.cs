namespace Isthmus.ControlPlane.Config;

/// <summary>
/// The built-in BGP speaker (issue 6): who we are, whom we peer with, and the attributes of the routes the
/// mobility service announces. Absent = no speaker. Sessions connect out from the data-plane namespace.
/// </summary>
public sealed record BgpSettings
{
    /// <summary>Our AS (4-octet ASNs allowed, RFC 6793).</summary>
    public uint LocalAs { get; init; }

    /// <summary>The BGP identifier (an IPv4 address, RFC 4271 §4.2).</summary>
    public string RouterId { get; init; } = "";

    public IReadOnlyList<BgpPeerSpec> Peers { get; init; } = [];

    /// <summary>Next hop of IPv4 routes; null = the session's local address.</summary>
    public string? NextHop { get; init; }

    /// <summary>Next hop of IPv6 routes; null = the session's local address when the session is IPv6.</summary>
    public string? NextHopIpv6 { get; init; }

    /// <summary>RFC 1997 communities, "asn:value" (16-bit each).</summary>
    public IReadOnlyList<string> Communities { get; init; } = [];

    /// <summary>RFC 8092 large communities, "global:local1:local2" (32-bit each).</summary>
    public IReadOnlyList<string> LargeCommunities { get; init; } = [];

    /// <summary>The TCP port the passive side listens on (in the data-plane namespace) when a peer's mode is "passive" or "both".</summary>
    public int ListenPort { get; init; } = 179;
}

public sealed record BgpPeerSpec
{
    public string Name { get; init; } = "";

    public string Address { get; init; } = "";

    public uint PeerAs { get; init; }

    public int Port { get; init; } = 179;

    /// <summary>Proposed hold time (RFC 4271 §4.2: 0, or at least 3 seconds).</summary>
    public int HoldTimeSeconds { get; init; } = 90;

    /// <summary>First connect-retry interval; it doubles on each failure up to 120 s.</summary>
    public int ConnectRetrySeconds { get; init; } = 5;

    /// <summary>The source address to bind (in the data-plane namespace), if any.</summary>
    public string? LocalAddress { get; init; }

    /// <summary>"active" (we connect; the default), "passive" (the peer connects to <see cref="BgpSettings.ListenPort"/>), or "both" (RFC 4271 §6.8 collision detection).</summary>
    public string Mode { get; init; } = "active";
}

/// <summary>
/// Mobility (issue 6): this site's name, which segments are local and which form the interconnect to the
/// other site, the guard rails, duplicate detection, the GARP burst and the stun-gap detector.
/// Absent = mobility off (signals from the data plane are ignored).
/// </summary>
public sealed record MobilitySettings
{
    public string Site { get; init; } = "local";

    /// <summary>The other side of the interconnect, as shown in locations.</summary>
    public string RemoteSite { get; init; } = "remote";

    /// <summary>Segments whose workloads are at this site (names as in the API: "acc10", "trunk0/vlan10", "und0/vni5010"). Empty = every segment that is not an interconnect.</summary>
    public IReadOnlyList<string> LocalSegments { get; init; } = [];

    /// <summary>Segments stretched to the other site: a workload seen there is not local.</summary>
    public IReadOnlyList<string> InterconnectSegments { get; init; } = [];

    /// <summary>Drop ARP for the gateway's own addresses on the interconnect segments.</summary>
    public bool FilterGatewayArp { get; init; }

    /// <summary>Cap on announced host routes (/32, /128, VIPs included).</summary>
    public int MaxHostRoutes { get; init; } = 10_000;

    /// <summary>New prefixes announced per second at most; 0 = unlimited.</summary>
    public int AnnouncementsPerSecond { get; init; }

    /// <summary>Subnets announced instead of their host routes while all their known workloads are local.</summary>
    public IReadOnlyList<string> Aggregates { get; init; } = [];

    /// <summary>Duplicate detection (RFC 7432 §15.1): this many moves ...</summary>
    public int DampingMoves { get; init; } = 5;

    /// <summary>... within this many seconds freeze the workload.</summary>
    public int DampingWindowSeconds { get; init; } = 180;

    /// <summary>GARPs (request + reply) per burst: one at once, then one every <see cref="GarpIntervalMs"/>.</summary>
    public int GarpCount { get; init; } = 3;

    public int GarpIntervalMs { get; init; } = 1000;

    /// <summary>A scheduling pause beyond this many milliseconds is taken as our own migration; 0 = off.</summary>
    public int StunGapMs { get; init; } = 2000;
}
