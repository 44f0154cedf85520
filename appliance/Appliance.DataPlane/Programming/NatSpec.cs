namespace Isthmus.DataPlane.Programming;

/// <summary>
/// SNAT / masquerade, DNAT / port forwards and static 1:1 NAT, IPv4 only (IPv6 is routed without
/// NAT). DNAT and 1:1 are looked up for new flows in the conntrack stage; SNAT and 1:1 outbound
/// in the NAT stage after the firewall, first matching rule wins.
/// </summary>
public sealed record NatSpec
{
    public IReadOnlyList<SnatRuleSpec> Snat { get; init; } = [];

    public IReadOnlyList<DnatRuleSpec> Dnat { get; init; } = [];

    public IReadOnlyList<StaticNatSpec> Static { get; init; } = [];
}

/// <summary>
/// Source NAT for new flows leaving through <see cref="EgressZone"/> or <see cref="EgressDomain"/>
/// (at least one) from <see cref="Sources"/> (empty: any). Translates to a pool of
/// <see cref="ToAddresses"/> (an address is chosen per inside host) with ports from <see cref="Ports"/>.
/// </summary>
public sealed record SnatRuleSpec
{
    public string? EgressZone { get; init; }

    public string? EgressDomain { get; init; }

    public IReadOnlyList<string> Sources { get; init; } = [];

    /// <summary>The pool. Empty: masquerade, to the egress domain's gateway address (its first IPv4 address).</summary>
    public IReadOnlyList<string> ToAddresses { get; init; } = [];

    /// <summary>"1024-65535". Each worker allocates from its own slice, so workers never collide.</summary>
    public string Ports { get; init; } = "1024-65535";

    /// <summary>RFC 4787 endpoint-independent mapping: one inside address:port keeps one outside address:port for every destination.</summary>
    public bool EndpointIndependent { get; init; }
}

/// <summary>
/// Port forward: new flows arriving from <see cref="IngressZone"/> (null: any zone) for
/// <see cref="Destination"/>:<see cref="Port"/> go to <see cref="ToAddress"/>:<see cref="ToPort"/>
/// (null port: keep it; null <see cref="Port"/>: every port of the protocol).
/// </summary>
public sealed record DnatRuleSpec
{
    public string? IngressZone { get; init; }

    public required string Destination { get; init; }

    /// <summary>"tcp", "udp" or "icmp" (echo).</summary>
    public string Protocol { get; init; } = "tcp";

    public int? Port { get; init; }

    public required string ToAddress { get; init; }

    public int? ToPort { get; init; }

    /// <summary>
    /// Hairpin: when the client sits in the server's own domain, its source is also translated, to
    /// the gateway's address there (or <see cref="HairpinAddress"/>), so the server's replies come
    /// back through the appliance. On by default.
    /// </summary>
    public bool Hairpin { get; init; } = true;

    /// <summary>The hairpin source address, when it should not be the domain's gateway address.</summary>
    public string? HairpinAddress { get; init; }
}

/// <summary>Static 1:1 NAT: new flows to <see cref="External"/> go to <see cref="Internal"/>, and new flows from <see cref="Internal"/> leave as <see cref="External"/> (ports kept).</summary>
public sealed record StaticNatSpec
{
    public required string External { get; init; }

    public required string Internal { get; init; }

    /// <summary>Zone the inbound side accepts from (null: any).</summary>
    public string? IngressZone { get; init; }

    /// <summary>As <see cref="DnatRuleSpec.Hairpin"/>.</summary>
    public bool Hairpin { get; init; } = true;

    /// <summary>As <see cref="DnatRuleSpec.HairpinAddress"/>.</summary>
    public string? HairpinAddress { get; init; }
}
