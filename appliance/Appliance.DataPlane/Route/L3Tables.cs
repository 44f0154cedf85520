using System.Collections.Frozen;
using System.Runtime.CompilerServices;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Route;

/// <summary>
/// The compiled L3 part of a snapshot: the gateway interface of each routed bridge domain, the
/// appliance's own addresses, the IPv4 and IPv6 FIBs, and the neighbor-cache settings. Immutable and
/// shared by every worker (the per-worker neighbor cache is <see cref="NeighborCache"/>).
/// </summary>
public sealed class L3Tables
{
    public static readonly L3Tables Empty = new();

    /// <summary>Gateway interface per domain index (null: the domain is L2 only). Empty when nothing is routed.</summary>
    public GatewayInterface?[] Gateways { get; init; } = [];

    /// <summary>Every IPv4 address of the appliance → domain index of its interface.</summary>
    public FrozenDictionary<uint, int> LocalIpv4 { get; init; } = FrozenDictionary<uint, int>.Empty;

    /// <summary>Every IPv6 address of the appliance → domain index of its interface.</summary>
    public FrozenDictionary<Ipv6Address, int> LocalIpv6 { get; init; } = FrozenDictionary<Ipv6Address, int>.Empty;

    /// <summary>IPv4 FIB: LPM table whose values index <see cref="Routes4"/>.</summary>
    public LpmTable Fib4 { get; init; } = LpmTable.Empty4;

    public FibEntry[] Routes4 { get; init; } = [];

    /// <summary>IPv6 FIB: LPM table whose values index <see cref="Routes6"/>.</summary>
    public LpmTable Fib6 { get; init; } = LpmTable.Empty6;

    public FibEntry[] Routes6 { get; init; } = [];

    /// <summary>Neighbor entries a worker keeps (learned + resolving); beyond it, misses are dropped.</summary>
    public int NeighborCapacity { get; init; } = 4096;

    /// <summary>Packets held per unresolved next hop (Linux's unres_qlen is 101 packets; we keep 4: enough for a SYN and its retransmits).</summary>
    public int HeldPerNeighbor { get; init; } = NeighborCache.MaxHeld;

    /// <summary>RFC 4861 REACHABLE_TIME: a confirmation older than this is refreshed by a probe when the entry is used.</summary>
    public int ReachableSeconds { get; init; } = 30;

    /// <summary>Seconds between ARP/NS retries of an unresolved next hop (RFC 4861 RETRANS_TIMER).</summary>
    public int ProbeIntervalSeconds { get; init; } = 1;

    /// <summary>Requests sent before an unresolved next hop fails and its held packets are dropped (RFC 4861 MAX_MULTICAST_SOLICIT).</summary>
    public int MaxProbes { get; init; } = 3;

    /// <summary>ICMP errors a worker originates per second (RFC 1812 section 4.3.2.8: rate-limit them).</summary>
    public int IcmpErrorsPerSecond { get; init; } = 1000;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public GatewayInterface? Gateway(int domain) => (uint)domain < (uint)Gateways.Length ? Gateways[domain] : null;
}

/// <summary>One prefix/length address of a gateway interface.</summary>
public readonly record struct InterfaceAddress(ulong Hi, ulong Lo, byte Length)
{
    public uint Ipv4 => (uint)Lo;

    public Ipv6Address Ipv6 => new(Hi, Lo);
}

/// <summary>The appliance's L3 interface in one bridge domain, compiled.</summary>
public sealed class GatewayInterface
{
    public required int Domain { get; init; }

    public required string DomainName { get; init; }

    public required MacAddress Mac { get; init; }

    /// <summary>IPv4 addresses with their prefix lengths (the first is the source of ARP requests and ICMP errors).</summary>
    public required InterfaceAddress[] Ipv4 { get; init; }

    public required InterfaceAddress[] Ipv6 { get; init; }

    /// <summary>TCP MSS ceiling for SYNs routed in or out of this interface; 0 = none.</summary>
    public required ushort MssClamp { get; init; }

    public required bool AntiSpoofing { get; init; }

    public required bool ProxyArp { get; init; }

    /// <summary>Configured IPv4 → MAC bindings (anti-spoofing allow list, proxy-ARP answers).</summary>
    public required FrozenDictionary<uint, ulong> Bindings4 { get; init; }

    public required FrozenDictionary<Ipv6Address, ulong> Bindings6 { get; init; }

    /// <summary>
    /// Largest L3 packet routed out of this domain: the smallest MTU among its segments (a routed packet
    /// may be flooded to any of them while its next hop's segment is unknown). Per-segment MTU is future work.
    /// </summary>
    public required int Mtu { get; init; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Owns(uint ipv4)
    {
        foreach (var a in Ipv4)
        {
            if ((uint)a.Lo == ipv4)
            {
                return true;
            }
        }

        return false;
    }

    public bool Owns(in Ipv6Address ipv6)
    {
        foreach (var a in Ipv6)
        {
            if (a.Hi == ipv6.High && a.Lo == ipv6.Low)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when the address is on one of the interface's connected IPv4 subnets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool OnLink(uint ipv4)
    {
        foreach (var a in Ipv4)
        {
            if (LpmTable.Mask32(ipv4, a.Length) == LpmTable.Mask32(a.Lo, a.Length))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when the address is on one of the connected IPv6 subnets, or link-local (fe80::/10).</summary>
    public bool OnLink(in Ipv6Address ipv6)
    {
        if (ipv6.IsLinkLocal)
        {
            return true;
        }

        foreach (var a in Ipv6)
        {
            if (LpmTable.Mask128(ipv6.High, ipv6.Low, a.Length) == LpmTable.Mask128(a.Hi, a.Lo, a.Length))
            {
                return true;
            }
        }

        return false;
    }
}

public enum RouteKind : byte
{
    /// <summary>The subnet of a gateway address: the destination itself is the next hop.</summary>
    Connected,

    /// <summary>A configured route via a next-hop router.</summary>
    Static,
}

/// <summary>One FIB entry: where the prefix leads.</summary>
public sealed class FibEntry
{
    /// <summary>"10.20.0.0/24", for traces and the API.</summary>
    public required string Prefix { get; init; }

    public required RouteKind Kind { get; init; }

    /// <summary>Prefix length (a connected subnet's all-ones host address is its directed broadcast).</summary>
    public byte Length { get; init; }

    /// <summary>Egress bridge domain index.</summary>
    public required int Domain { get; init; }

    /// <summary>Next hop for static routes (IPv4 in the low 32 bits of <see cref="NextHopLo"/>); zero for connected.</summary>
    public ulong NextHopHi { get; init; }

    public ulong NextHopLo { get; init; }

    /// <summary>"via 10.10.0.254" or "connected", for traces.</summary>
    public required string NextHopText { get; init; }
}
