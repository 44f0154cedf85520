using System.Collections.Frozen;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// The compiled firewall and NAT: zone of every segment, one policy (classifier + rules) per zone
/// pair, conntrack limits and timeouts, and the NAT rule tables. Immutable; workers share it.
/// </summary>
public sealed class FirewallTables
{
    public static readonly FirewallTables Empty = new();

    /// <summary>Zones and policies are configured: new flows are classified. Off: everything is allowed.</summary>
    public bool Filtering { get; init; }

    /// <summary>Conntrack runs (filtering or any NAT rule is configured).</summary>
    public bool Tracking { get; init; }

    public bool L2Filter { get; init; }

    public bool AllowIpv6BetweenZones { get; init; }

    public int LogRatePerSecond { get; init; } = 100;

    /// <summary>Zone names; the last one is the implicit "unzoned".</summary>
    public string[] ZoneNames { get; init; } = ["unzoned"];

    public int ZoneCount => ZoneNames.Length;

    public int[] ZoneOfSegment { get; init; } = [];

    public int[] ZoneOfDomain { get; init; } = [];

    /// <summary>Policy index per (from, to) zone pair, [from · ZoneCount + to], or -1 (deny between zones, allow within one).</summary>
    public int[] PairPolicy { get; init; } = [0];

    public CompiledPolicy[] Policies { get; init; } = [];

    /// <summary>Rule id per global rule index (the per-worker hit counters are indexed the same way).</summary>
    public int[] RuleIds { get; init; } = [];

    public ConntrackTimeouts Timeouts { get; init; } = ConntrackTimeouts.From(new ConntrackSpec());

    public int MaxSessions { get; init; } = 1;

    public DnatRule[] Dnat { get; init; } = [];

    /// <summary>DNAT rule index by (address, protocol, port): see <see cref="DnatKey"/>. Port 0 = every port; protocol 0 = 1:1.</summary>
    public FrozenDictionary<ulong, int> DnatIndex { get; init; } = FrozenDictionary<ulong, int>.Empty;

    public SnatRule[] Snat { get; init; } = [];

    /// <summary>Static 1:1 outbound: internal address → external address.</summary>
    public FrozenDictionary<uint, uint> StaticOutbound { get; init; } = FrozenDictionary<uint, uint>.Empty;

    /// <summary>
    /// Addresses NAT answers for that are not interface addresses (SNAT pools, DNAT destinations, 1:1
    /// externals, hairpin sources): the gateway should answer ARP for them (proxy ARP) and hand packets
    /// addressed to them on to conntrack.
    /// </summary>
    public FrozenSet<uint> NatAddresses { get; init; } = FrozenSet<uint>.Empty;

    /// <summary>Each domain's gateway IPv4 address (masquerade and hairpin source), 0 when the domain has none.</summary>
    public uint[] GatewayAddress { get; init; } = [];

    public uint GatewayAddressOf(int domain) => (uint)domain < (uint)GatewayAddress.Length ? GatewayAddress[domain] : 0;

    public static ulong DnatKey(uint address, byte protocol, ushort port) => ((ulong)address << 32) | ((ulong)protocol << 16) | port;

    public int EgressZone(int segment, int domain) =>
        segment >= 0 && segment < ZoneOfSegment.Length ? ZoneOfSegment[segment]
        : domain < ZoneOfDomain.Length ? ZoneOfDomain[domain] : ZoneCount - 1;

    public int IngressZone(int segment) => segment >= 0 && segment < ZoneOfSegment.Length ? ZoneOfSegment[segment] : ZoneCount - 1;
}

public sealed class CompiledPolicy
{
    public required string From { get; init; }

    public required string To { get; init; }

    public required TupleSpaceClassifier Classifier { get; init; }

    /// <summary>Rules by priority (position in the policy).</summary>
    public required CompiledRule[] Rules { get; init; }

    public required FirewallAction DefaultAction { get; init; }
}

/// <param name="Counter">Global rule index: the per-worker hit counter.</param>
public readonly record struct CompiledRule(int Id, FirewallAction Action, bool Log, int Counter);

/// <summary>Timeouts in seconds per conntrack state.</summary>
public sealed class ConntrackTimeouts
{
    private readonly uint[] _byState = new uint[10];

    public uint Icmp { get; private init; }

    public uint Generic { get; private init; }

    public uint UdpUnreplied { get; private init; }

    public uint UdpReplied { get; private init; }

    public static ConntrackTimeouts From(ConntrackSpec spec)
    {
        var t = new ConntrackTimeouts
        {
            Icmp = (uint)spec.IcmpSeconds,
            Generic = (uint)spec.GenericSeconds,
            UdpUnreplied = (uint)spec.UdpUnrepliedSeconds,
            UdpReplied = (uint)spec.UdpAssuredSeconds,
        };
        t._byState[(int)ConntrackState.TcpSynSent] = (uint)spec.TcpSynSentSeconds;
        t._byState[(int)ConntrackState.TcpSynRecv] = (uint)spec.TcpSynRecvSeconds;
        t._byState[(int)ConntrackState.TcpEstablished] = (uint)spec.TcpEstablishedSeconds;
        t._byState[(int)ConntrackState.TcpFinWait] = (uint)spec.TcpFinWaitSeconds;
        t._byState[(int)ConntrackState.TcpCloseWait] = (uint)spec.TcpCloseWaitSeconds;
        t._byState[(int)ConntrackState.TcpTimeWait] = (uint)spec.TcpTimeWaitSeconds;
        t._byState[(int)ConntrackState.TcpClose] = (uint)spec.TcpCloseSeconds;
        return t;
    }

    /// <summary>The timeout for a session of <paramref name="protocol"/> now in <paramref name="state"/>.</summary>
    public uint For(byte protocol, ConntrackState state) => protocol switch
    {
        6 => _byState[(int)state],
        17 => state == ConntrackState.Replied ? UdpReplied : UdpUnreplied,
        1 => Icmp,
        _ => Generic,
    };
}

/// <param name="IngressZone">-1: any zone.</param>
/// <param name="ToPort">0: keep the port.</param>
/// <param name="Hairpin">The source translation for a client in the server's own domain, or null (no hairpin).</param>
public readonly record struct DnatRule(int IngressZone, uint ToAddress, ushort ToPort, SnatRule? Hairpin, string Description);

/// <param name="EgressZone">-1: any.</param>
/// <param name="EgressDomain">-1: any.</param>
/// <param name="Sources">Prefixes as (network, mask); empty: any.</param>
/// <param name="Pool">Empty: masquerade (the egress domain's gateway address).</param>
public sealed record SnatRule(int EgressZone, int EgressDomain, (uint Network, uint Mask)[] Sources, uint[] Pool, ushort PortLow, ushort PortHigh, bool EndpointIndependent, string Description)
{
    public bool Masquerade => Pool.Length == 0;

    public bool MatchesSource(uint source)
    {
        if (Sources.Length == 0)
        {
            return true;
        }

        foreach (var (network, mask) in Sources)
        {
            if ((source & mask) == network)
            {
                return true;
            }
        }

        return false;
    }
}
