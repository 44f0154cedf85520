using System.Buffers.Binary;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Route;

/// <summary>
/// The frames the gateway and route stages originate: ARP replies and requests, IPv6 neighbor
/// solicitations and advertisements (RFC 4861), ICMP errors (RFC 792, RFC 1812 section 4.3.2) and
/// ICMPv6 errors (RFC 4443). Each writes a whole untagged Ethernet frame into a caller span and returns
/// its length; none allocates.
/// </summary>
public static class L3Messages
{
    public const byte NdHopLimit = 255;
    public const byte OptionSourceLinkLayer = 1;
    public const byte OptionTargetLinkLayer = 2;

    /// <summary>NS/NA fixed part: type, code, checksum, flags/reserved (4), target address (16).</summary>
    public const int NdFixedLength = 24;

    /// <summary>RFC 1812 section 4.3.2.3: an ICMP error carries as much of the offending datagram as fits in 576 bytes.</summary>
    public const int Icmpv4ErrorMax = 576;

    /// <summary>RFC 4443 section 2.4 (c): as much as fits without the error exceeding the minimum IPv6 MTU.</summary>
    public const int Icmpv6ErrorMax = 1280;

    public static int ArpFrame(Span<byte> frame, ArpOpcode opcode, MacAddress ethernetDestination, MacAddress ethernetSource, MacAddress senderMac, Ipv4Address senderIp, MacAddress targetMac, Ipv4Address targetIp)
    {
        EthernetHeader.Write(frame, ethernetDestination, ethernetSource, EtherType.Arp);
        return EthernetHeader.Length + ArpPacket.Write(frame[EthernetHeader.Length..], opcode, senderMac, senderIp, targetMac, targetIp);
    }

    /// <summary>The solicited-node multicast address of <paramref name="target"/> (RFC 4291 section 2.7.1): ff02::1:ffXX:XXXX.</summary>
    public static Ipv6Address SolicitedNode(in Ipv6Address target) => new(0xFF02_0000_0000_0000UL, 0x0000_0001_FF00_0000UL | (target.Low & 0xFF_FFFF));

    /// <summary>The Ethernet multicast MAC of an IPv6 multicast address (RFC 2464 section 7): 33:33 + last 32 bits.</summary>
    public static MacAddress MulticastMac(in Ipv6Address group) => new(0x3333_0000_0000UL | (group.Low & 0xFFFF_FFFF));

    /// <summary>A neighbor solicitation for <paramref name="target"/> to its solicited-node group, with our link-layer address (RFC 4861 section 4.3).</summary>
    public static int NeighborSolicitation(Span<byte> frame, MacAddress source, in Ipv6Address sourceIp, in Ipv6Address target)
    {
        var group = SolicitedNode(target);
        return NeighborMessage(frame, Icmpv6Type.NeighborSolicitation, MulticastMac(group), source, sourceIp, group, 0, target, OptionSourceLinkLayer, source);
    }

    /// <summary>
    /// A solicited neighbor advertisement (RFC 4861 section 4.4 and 7.2.4): Router, Solicited and
    /// Override set, with the target link-layer address <paramref name="targetMac"/>.
    /// </summary>
    public static int NeighborAdvertisement(Span<byte> frame, MacAddress ethernetSource, MacAddress destinationMac, in Ipv6Address target, in Ipv6Address destination, MacAddress targetMac, bool router)
    {
        var flags = 0x6000_0000u | (router ? 0x8000_0000u : 0);
        return NeighborMessage(frame, Icmpv6Type.NeighborAdvertisement, destinationMac, ethernetSource, target, destination, flags, target, OptionTargetLinkLayer, targetMac);
    }

    /// <summary>The all-nodes multicast address ff02::1 (RFC 4291 section 2.7.1).</summary>
    public static Ipv6Address AllNodes => new(0xFF02_0000_0000_0000UL, 1);

    /// <summary>
    /// An unsolicited neighbor advertisement to all nodes (RFC 4861 section 7.2.6, the IPv6 GARP): Override
    /// set, Solicited clear, Router as given, with the target link-layer address.
    /// </summary>
    public static int UnsolicitedNeighborAdvertisement(Span<byte> frame, MacAddress source, in Ipv6Address target, bool router)
    {
        var flags = 0x2000_0000u | (router ? 0x8000_0000u : 0);
        var allNodes = AllNodes;
        return NeighborMessage(frame, Icmpv6Type.NeighborAdvertisement, MulticastMac(allNodes), source, target, allNodes, flags, target, OptionTargetLinkLayer, source);
    }

    private static int NeighborMessage(Span<byte> frame, byte type, MacAddress destinationMac, MacAddress sourceMac, in Ipv6Address source, in Ipv6Address destination, uint flags, in Ipv6Address target, byte option, MacAddress optionMac)
    {
        const int length = NdFixedLength + 8;
        EthernetHeader.Write(frame, destinationMac, sourceMac, EtherType.Ipv6);
        var l3 = EthernetHeader.Length;
        Ipv6Header.Write(frame[l3..], source, destination, IpProtocol.Icmpv6, length, NdHopLimit);
        var icmp = frame.Slice(l3 + Ipv6Header.Length, length);
        Icmpv6Header.Write(icmp, type, 0, flags);
        target.WriteTo(icmp[8..]);
        icmp[24] = option;
        icmp[25] = 1;
        optionMac.WriteTo(icmp[26..]);
        new Icmpv6Header(icmp).UpdateChecksum(source, destination);
        return l3 + Ipv6Header.Length + length;
    }

    /// <summary>
    /// Finds a source/target link-layer address option (RFC 4861 section 4.6.1) in the options after an
    /// NS/NA's fixed part. Malformed options (length 0, past the end) end the search.
    /// </summary>
    public static bool TryGetLinkLayerOption(ReadOnlySpan<byte> options, byte type, out MacAddress mac)
    {
        mac = default;
        var i = 0;
        while (options.Length - i >= 8)
        {
            var length = options[i + 1] * 8;
            if (length == 0 || i + length > options.Length)
            {
                return false;
            }

            if (options[i] == type && length == 8)
            {
                mac = MacAddress.Read(options[(i + 2)..]);
                return true;
            }

            i += length;
        }

        return false;
    }

    /// <summary>An ICMPv4 error (RFC 792) from <paramref name="source"/> quoting <paramref name="offending"/> (its IP header on).</summary>
    public static int Icmpv4Error(Span<byte> frame, MacAddress destinationMac, MacAddress sourceMac, Ipv4Address source, ReadOnlySpan<byte> offending, byte type, byte code, uint rest)
    {
        var destination = Ipv4Address.Read(offending[12..]);
        var quoted = Math.Min(offending.Length, Icmpv4ErrorMax - Ipv4Header.MinLength - Icmpv4Header.Length);
        var length = Icmpv4Header.Length + quoted;
        EthernetHeader.Write(frame, destinationMac, sourceMac, EtherType.Ipv4);
        var l3 = EthernetHeader.Length;
        Ipv4Header.Write(frame[l3..], source, destination, IpProtocol.Icmp, (ushort)length, 64, 0, false);
        var icmp = frame.Slice(l3 + Ipv4Header.MinLength, length);
        offending[..quoted].CopyTo(icmp[Icmpv4Header.Length..]);
        Icmpv4Header.Write(icmp, type, code, rest);
        new Icmpv4Header(icmp).UpdateChecksum();
        return l3 + Ipv4Header.MinLength + length;
    }

    /// <summary>An ICMPv6 error (RFC 4443) from <paramref name="source"/> quoting <paramref name="offending"/> (its IPv6 header on).</summary>
    public static int Icmpv6Error(Span<byte> frame, MacAddress destinationMac, MacAddress sourceMac, in Ipv6Address source, ReadOnlySpan<byte> offending, byte type, byte code, uint rest)
    {
        var destination = Ipv6Address.Read(offending[8..]);
        var quoted = Math.Min(offending.Length, Icmpv6ErrorMax - Ipv6Header.Length - Icmpv6Header.Length);
        var length = Icmpv6Header.Length + quoted;
        EthernetHeader.Write(frame, destinationMac, sourceMac, EtherType.Ipv6);
        var l3 = EthernetHeader.Length;
        Ipv6Header.Write(frame[l3..], source, destination, IpProtocol.Icmpv6, (ushort)length, 64);
        var icmp = frame.Slice(l3 + Ipv6Header.Length, length);
        offending[..quoted].CopyTo(icmp[Icmpv6Header.Length..]);
        Icmpv6Header.Write(icmp, type, code, rest);
        new Icmpv6Header(icmp).UpdateChecksum(source, destination);
        return l3 + Ipv6Header.Length + length;
    }

    /// <summary>Reads the EtherType of an untagged frame.</summary>
    public static ushort EtherTypeOf(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt16BigEndian(frame[EthernetHeader.EtherTypeOffset..]);
}
