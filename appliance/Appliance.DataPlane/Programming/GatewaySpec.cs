namespace Isthmus.DataPlane.Programming;

/// <summary>
/// The appliance's L3 interface in one bridge domain (an SVI / BVI in switch terms): one MAC, any
/// number of IPv4 and IPv6 addresses with their prefix lengths. Each address also makes its prefix a
/// connected route of the domain.
/// </summary>
/// <example>
/// <code>
/// { "domain": "bd10", "mac": "02:15:7e:00:00:10", "addresses": ["10.10.0.1/24", "fd00:10::1/64"],
///   "mssClamp": 1360, "antiSpoofing": true, "proxyArp": true,
///   "bindings": [ { "ip": "10.10.0.10", "mac": "02:00:00:00:10:0a" } ] }
/// </code>
/// </example>
public sealed record GatewaySpec
{
    /// <summary>Bridge domain name (one gateway per domain).</summary>
    public required string Domain { get; init; }

    /// <summary>
    /// The gateway's MAC (unicast). When omitted the compiler derives a locally administered one from
    /// the domain's position, 02:15:7e:00:hh:ll, which stays stable across commits that keep the domain order.
    /// </summary>
    public string? Mac { get; init; }

    /// <summary>Interface addresses in CIDR form: "10.10.0.1/24", "fd00:10::1/64".</summary>
    public IReadOnlyList<string> Addresses { get; init; } = [];

    /// <summary>
    /// Largest TCP MSS a SYN may carry when it is routed into or out of this interface (the overlay MTU
    /// trap: VXLAN costs 50 bytes, so 1450 − 40 = 1410 for IPv4). Null: no clamping.
    /// </summary>
    public int? MssClamp { get; init; }

    /// <summary>
    /// Drop packets routed from this domain whose source address is outside its connected prefixes or,
    /// when <see cref="Bindings"/> are given, not bound to the sending MAC. Off by default.
    /// </summary>
    public bool AntiSpoofing { get; init; }

    /// <summary>Known IP/MAC pairs of the domain: the anti-spoofing allow list and proxy-ARP answers.</summary>
    public IReadOnlyList<IpMacBindingSpec> Bindings { get; init; } = [];

    /// <summary>
    /// ARP suppression / proxy ARP (and ND): answer a request for another station from the configured
    /// bindings or the learned neighbor cache, and do not flood it. Off by default.
    /// </summary>
    public bool ProxyArp { get; init; }
}

/// <summary>One IP/MAC binding: the station at <paramref name="Ip"/> (IPv4 or IPv6) uses <paramref name="Mac"/>.</summary>
public sealed record IpMacBindingSpec(string Ip, string Mac);

/// <summary>
/// A static route: 0.0.0.0/0 (or ::/0) via the upstream router is the default route. Connected routes
/// come from the gateway addresses and are not listed here.
/// </summary>
public sealed record RouteSpec
{
    /// <summary>Destination prefix in CIDR form: "0.0.0.0/0", "192.168.50.0/24", "2001:db8::/32".</summary>
    public required string Prefix { get; init; }

    /// <summary>Next-hop router, which must sit on a connected subnet (of <see cref="Domain"/> when given), same family as the prefix.</summary>
    public required string NextHop { get; init; }

    /// <summary>Bridge domain the next hop lives in; optional (found from the connected subnets).</summary>
    public string? Domain { get; init; }
}
