namespace Isthmus.DataPlane.Programming;

/// <summary>
/// Zones, address sets, an ordered policy per zone pair, conntrack settings and the L2 filter switch.
/// Between two different zones the default is deny (a pair without a policy drops every new flow;
/// a policy's rules fall through to its <see cref="PolicySpec.DefaultAction"/>, drop unless said).
/// Within one zone the default is allow, unless a policy names that zone as both from and to.
/// Segments that no zone names form the implicit zone "unzoned". With no zones and no policies the
/// firewall is off (NAT and conntrack still run when NAT rules exist).
/// Rules match IPv4 only: IPv6 is routed without NAT and is only allowed within a zone, unless
/// <see cref="AllowIpv6BetweenZones"/> is set (see Firewall/README.md).
/// </summary>
public sealed record FirewallSpec
{
    public IReadOnlyList<ZoneSpec> Zones { get; init; } = [];

    public IReadOnlyList<AddressSetSpec> AddressSets { get; init; } = [];

    public IReadOnlyList<PolicySpec> Policies { get; init; } = [];

    public ConntrackSpec Conntrack { get; init; } = new();

    /// <summary>Also filter traffic that is only bridged inside one domain (NSX's bridge firewall). Off by default.</summary>
    public bool L2Filter { get; init; }

    /// <summary>IPv6 is not classified: with this off (the default) IPv6 between different zones is dropped.</summary>
    public bool AllowIpv6BetweenZones { get; init; }

    /// <summary>Log records per second per worker for rules with <see cref="RuleSpec.Log"/>; the rest are counted as suppressed.</summary>
    public int LogRatePerSecond { get; init; } = 100;
}

/// <summary>A zone: segments by name ("acc10", "trunk0/vlan10", "und0/vni5010") and whole bridge domains by name.</summary>
public sealed record ZoneSpec
{
    public required string Name { get; init; }

    public IReadOnlyList<string> Segments { get; init; } = [];

    public IReadOnlyList<string> Domains { get; init; } = [];
}

/// <summary>A named list of IPv4 prefixes ("10.0.0.0/8", or an address for a /32), used by rules.</summary>
public sealed record AddressSetSpec
{
    public required string Name { get; init; }

    public IReadOnlyList<string> Prefixes { get; init; } = [];
}

public enum FirewallAction
{
    Allow,
    Drop,

    /// <summary>Drop and answer: a TCP RST for TCP, an ICMP destination unreachable (administratively prohibited) otherwise.</summary>
    Reject,
}

/// <summary>Conntrack's verdict on a packet, as rules match it (nftables' ct state).</summary>
[Flags]
public enum ConnectionStates : byte
{
    None = 0,
    New = 1,
    Established = 2,
    Related = 4,
    Invalid = 8,
    Any = New | Established | Related | Invalid,
}

/// <summary>The ordered rules for new flows from one zone to another; the first matching rule wins.</summary>
public sealed record PolicySpec
{
    public required string From { get; init; }

    public required string To { get; init; }

    public IReadOnlyList<RuleSpec> Rules { get; init; } = [];

    /// <summary>What happens when no rule matches: drop (default deny) unless set.</summary>
    public FirewallAction DefaultAction { get; init; } = FirewallAction.Drop;
}

/// <summary>
/// One rule. Empty lists match anything. Sources/destinations are prefixes, sets are address-set
/// names; both are unioned. Ports are "80" or "1000-2000". Protocol is "any", "tcp", "udp",
/// "icmp" or a number. Destinations match after DNAT and sources before SNAT (netfilter's forward chain).
/// </summary>
public sealed record RuleSpec
{
    /// <summary>Unique within the firewall; reported in counters, logs and traces.</summary>
    public required int Id { get; init; }

    public IReadOnlyList<string> Sources { get; init; } = [];

    public IReadOnlyList<string> SourceSets { get; init; } = [];

    public IReadOnlyList<string> Destinations { get; init; } = [];

    public IReadOnlyList<string> DestinationSets { get; init; } = [];

    public string Protocol { get; init; } = "any";

    public IReadOnlyList<string> SourcePorts { get; init; } = [];

    public IReadOnlyList<string> DestinationPorts { get; init; } = [];

    /// <summary>ICMP type (protocol icmp only), such as 8 for echo request.</summary>
    public int? IcmpType { get; init; }

    /// <summary>
    /// Connection states the rule applies to. Only new and invalid packets are classified:
    /// established and related packets belong to a flow the policy already admitted.
    /// </summary>
    public ConnectionStates States { get; init; } = ConnectionStates.New;

    public FirewallAction Action { get; init; } = FirewallAction.Allow;

    /// <summary>Record new flows that hit this rule in the rate-limited firewall log.</summary>
    public bool Log { get; init; }
}

/// <summary>Per-worker table size and timeouts (seconds); the defaults are Linux's nf_conntrack ones.</summary>
public sealed record ConntrackSpec
{
    /// <summary>Sessions per worker; a full table drops new flows (counted) and never touches established ones.</summary>
    public int MaxSessions { get; init; } = 262_144;

    public int TcpSynSentSeconds { get; init; } = 120;

    public int TcpSynRecvSeconds { get; init; } = 60;

    public int TcpEstablishedSeconds { get; init; } = 432_000;

    public int TcpFinWaitSeconds { get; init; } = 120;

    public int TcpCloseWaitSeconds { get; init; } = 60;

    public int TcpTimeWaitSeconds { get; init; } = 120;

    public int TcpCloseSeconds { get; init; } = 10;

    public int UdpUnrepliedSeconds { get; init; } = 30;

    public int UdpAssuredSeconds { get; init; } = 120;

    public int IcmpSeconds { get; init; } = 30;

    public int GenericSeconds { get; init; } = 600;
}
