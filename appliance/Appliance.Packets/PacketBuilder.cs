using System.Buffers.Binary;

namespace Isthmus.Packets;

/// <summary>Addresses and IP fields for a frame that <see cref="PacketBuilder"/> writes over IPv4.</summary>
public readonly record struct Ipv4FrameSpec(MacAddress SourceMac, MacAddress DestinationMac, Ipv4Address SourceIp, Ipv4Address DestinationIp)
{
    /// <summary>An 802.1Q/802.1ad tag to write after the MACs, or null for an untagged frame.</summary>
    public VlanTag? Vlan { get; init; }

    public byte Ttl { get; init; } = 64;

    public ushort Identification { get; init; }

    public bool DontFragment { get; init; } = true;
}

/// <summary>Addresses and IP fields for a frame that <see cref="PacketBuilder"/> writes over IPv6.</summary>
public readonly record struct Ipv6FrameSpec(MacAddress SourceMac, MacAddress DestinationMac, Ipv6Address SourceIp, Ipv6Address DestinationIp)
{
    public VlanTag? Vlan { get; init; }

    public byte HopLimit { get; init; } = 64;

    public uint FlowLabel { get; init; }
}

/// <summary>
/// Writes complete frames with correct lengths and checksums into a caller-provided span and returns the
/// frame length. It never allocates. Frames are not padded to the 60-byte Ethernet minimum (the kernel or
/// NIC pads on transmit). A destination that is too small throws <see cref="ArgumentOutOfRangeException"/>:
/// that is a bug in the caller, not bad input.
/// </summary>
public static class PacketBuilder
{
    /// <summary>Outer Ethernet + IPv4 + UDP + VXLAN of an untagged VXLAN packet.</summary>
    public const int VxlanOverhead = EthernetHeader.Length + Ipv4Header.MinLength + UdpHeader.Length + VxlanHeader.Length;

    /// <summary>Writes the MACs, an optional tag and the EtherType; returns 14 or 18.</summary>
    public static int Ethernet(Span<byte> buffer, MacAddress destination, MacAddress source, ushort etherType, VlanTag? vlan = null)
    {
        if (vlan is not { } tag)
        {
            return EthernetHeader.Write(buffer, destination, source, etherType);
        }

        BinaryPrimitives.WriteUInt16BigEndian(buffer[16..], etherType);
        destination.WriteTo(buffer);
        source.WriteTo(buffer[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[12..], tag.Tpid);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[14..], tag.Tci);
        return EthernetHeader.Length + VlanTag.Length;
    }

    /// <summary>Ethernet/IPv4/UDP with the UDP checksum computed (0 is sent as 0xFFFF).</summary>
    public static int Udp(Span<byte> buffer, in Ipv4FrameSpec spec, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        int l3 = Ipv4Prefix(buffer, spec, IpProtocol.Udp, UdpHeader.Length + payload.Length);
        var udp = buffer.Slice(l3 + Ipv4Header.MinLength, UdpHeader.Length + payload.Length);
        payload.CopyTo(udp[UdpHeader.Length..]);
        UdpHeader.Write(udp, sourcePort, destinationPort, payload.Length);
        WriteUdpChecksum(udp, Checksum.PseudoHeaderSum(spec.SourceIp, spec.DestinationIp, IpProtocol.Udp, (ushort)udp.Length));
        return l3 + Ipv4Header.MinLength + udp.Length;
    }

    /// <summary>Ethernet/IPv6/UDP with the (mandatory) UDP checksum computed.</summary>
    public static int Udp(Span<byte> buffer, in Ipv6FrameSpec spec, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        int l3 = Ipv6Prefix(buffer, spec, IpProtocol.Udp, UdpHeader.Length + payload.Length);
        var udp = buffer.Slice(l3 + Ipv6Header.Length, UdpHeader.Length + payload.Length);
        payload.CopyTo(udp[UdpHeader.Length..]);
        UdpHeader.Write(udp, sourcePort, destinationPort, payload.Length);
        WriteUdpChecksum(udp, Checksum.PseudoHeaderSum(spec.SourceIp, spec.DestinationIp, IpProtocol.Udp, (uint)udp.Length));
        return l3 + Ipv6Header.Length + udp.Length;
    }

    /// <summary>Ethernet/IPv4/TCP; a non-zero <paramref name="mss"/> adds the MSS option (RFC 9293 section 3.7.1).</summary>
    public static int Tcp(
        Span<byte> buffer,
        in Ipv4FrameSpec spec,
        ushort sourcePort,
        ushort destinationPort,
        TcpFlags flags,
        uint sequence = 0,
        uint acknowledgment = 0,
        ushort window = 65535,
        ushort mss = 0,
        ReadOnlySpan<byte> payload = default)
    {
        int segmentLength = TcpLength(mss, payload);
        int l3 = Ipv4Prefix(buffer, spec, IpProtocol.Tcp, segmentLength);
        var segment = buffer.Slice(l3 + Ipv4Header.MinLength, segmentLength);
        WriteTcp(segment, sourcePort, destinationPort, flags, sequence, acknowledgment, window, mss, payload);
        ulong pseudo = Checksum.PseudoHeaderSum(spec.SourceIp, spec.DestinationIp, IpProtocol.Tcp, (ushort)segmentLength);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], Checksum.Finish(Checksum.Add(segment, pseudo)));
        return l3 + Ipv4Header.MinLength + segmentLength;
    }

    /// <summary>Ethernet/IPv6/TCP; a non-zero <paramref name="mss"/> adds the MSS option.</summary>
    public static int Tcp(
        Span<byte> buffer,
        in Ipv6FrameSpec spec,
        ushort sourcePort,
        ushort destinationPort,
        TcpFlags flags,
        uint sequence = 0,
        uint acknowledgment = 0,
        ushort window = 65535,
        ushort mss = 0,
        ReadOnlySpan<byte> payload = default)
    {
        int segmentLength = TcpLength(mss, payload);
        int l3 = Ipv6Prefix(buffer, spec, IpProtocol.Tcp, segmentLength);
        var segment = buffer.Slice(l3 + Ipv6Header.Length, segmentLength);
        WriteTcp(segment, sourcePort, destinationPort, flags, sequence, acknowledgment, window, mss, payload);
        ulong pseudo = Checksum.PseudoHeaderSum(spec.SourceIp, spec.DestinationIp, IpProtocol.Tcp, (uint)segmentLength);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], Checksum.Finish(Checksum.Add(segment, pseudo)));
        return l3 + Ipv6Header.Length + segmentLength;
    }

    /// <summary>Ethernet/IPv4/ICMP echo request (or reply) with <paramref name="data"/> (RFC 792).</summary>
    public static int IcmpEcho(Span<byte> buffer, in Ipv4FrameSpec spec, ushort identifier, ushort sequence, ReadOnlySpan<byte> data, bool reply = false)
    {
        int l3 = Ipv4Prefix(buffer, spec, IpProtocol.Icmp, Icmpv4Header.Length + data.Length);
        var message = buffer.Slice(l3 + Ipv4Header.MinLength, Icmpv4Header.Length + data.Length);
        data.CopyTo(message[Icmpv4Header.Length..]);
        Icmpv4Header.Write(message, reply ? Icmpv4Type.EchoReply : Icmpv4Type.EchoRequest, 0, ((uint)identifier << 16) | sequence);
        new Icmpv4Header(message).UpdateChecksum();
        return l3 + Ipv4Header.MinLength + message.Length;
    }

    /// <summary>Ethernet/IPv6/ICMPv6 echo request (or reply) (RFC 4443 section 4).</summary>
    public static int Icmpv6Echo(Span<byte> buffer, in Ipv6FrameSpec spec, ushort identifier, ushort sequence, ReadOnlySpan<byte> data, bool reply = false)
    {
        int l3 = Ipv6Prefix(buffer, spec, IpProtocol.Icmpv6, Icmpv6Header.Length + data.Length);
        var message = buffer.Slice(l3 + Ipv6Header.Length, Icmpv6Header.Length + data.Length);
        data.CopyTo(message[Icmpv6Header.Length..]);
        Icmpv6Header.Write(message, reply ? Icmpv6Type.EchoReply : Icmpv6Type.EchoRequest, 0, ((uint)identifier << 16) | sequence);
        new Icmpv6Header(message).UpdateChecksum(spec.SourceIp, spec.DestinationIp);
        return l3 + Ipv6Header.Length + message.Length;
    }

    /// <summary>
    /// An Ethernet + ARP (or RARP for opcodes 3 and 4, EtherType 0x8035) frame. The Ethernet destination
    /// defaults to broadcast for requests and to <paramref name="targetMac"/> for replies.
    /// </summary>
    public static int Arp(
        Span<byte> buffer,
        ArpOpcode opcode,
        MacAddress senderMac,
        Ipv4Address senderIp,
        MacAddress targetMac,
        Ipv4Address targetIp,
        MacAddress? ethernetDestination = null,
        VlanTag? vlan = null)
    {
        bool isRarp = opcode is ArpOpcode.RarpRequest or ArpOpcode.RarpReply;
        bool isRequest = opcode is ArpOpcode.Request or ArpOpcode.RarpRequest;
        var destination = ethernetDestination ?? (isRequest ? MacAddress.Broadcast : targetMac);
        int l3 = Ethernet(buffer, destination, senderMac, isRarp ? EtherType.Rarp : EtherType.Arp, vlan);
        return l3 + ArpPacket.Write(buffer[l3..], opcode, senderMac, senderIp, targetMac, targetIp);
    }

    /// <summary>
    /// Gratuitous ARP request / announcement (RFC 5227 section 3): broadcast, sender IP == target IP,
    /// target MAC zero.
    /// </summary>
    public static int GarpRequest(Span<byte> buffer, MacAddress mac, Ipv4Address ip, VlanTag? vlan = null) =>
        Arp(buffer, ArpOpcode.Request, mac, ip, MacAddress.Zero, ip, MacAddress.Broadcast, vlan);

    /// <summary>
    /// Gratuitous ARP reply (RFC 5944 section 4.6 form): broadcast, sender IP == target IP, target MAC =
    /// sender MAC. Announcers send both forms because some hosts only update their cache from one of them.
    /// </summary>
    public static int GarpReply(Span<byte> buffer, MacAddress mac, Ipv4Address ip, VlanTag? vlan = null) =>
        Arp(buffer, ArpOpcode.Reply, mac, ip, mac, ip, MacAddress.Broadcast, vlan);

    /// <summary>
    /// A RARP request as hypervisors send after a live migration (for example ESXi after vMotion):
    /// broadcast, sender and target MAC the moved NIC, IPs 0.0.0.0 (RFC 903).
    /// </summary>
    public static int RarpRequest(Span<byte> buffer, MacAddress mac, VlanTag? vlan = null) =>
        Arp(buffer, ArpOpcode.RarpRequest, mac, Ipv4Address.Any, mac, Ipv4Address.Any, MacAddress.Broadcast, vlan);

    /// <summary>
    /// Outer Ethernet/IPv4/UDP/VXLAN around <paramref name="innerFrame"/> (RFC 7348 section 5). The inner frame
    /// is copied to follow the outer headers; passing the slice of <paramref name="buffer"/> where it already
    /// sits (at <see cref="VxlanOverhead"/>, or +4 when tagged) makes the copy a no-op. The outer UDP checksum
    /// is 0 unless <paramref name="udpChecksum"/> (RFC 7348 section 5: it SHOULD be zero over IPv4).
    /// </summary>
    public static int Vxlan(
        Span<byte> buffer,
        in Ipv4FrameSpec outer,
        ushort sourcePort,
        uint vni,
        ReadOnlySpan<byte> innerFrame,
        ushort destinationPort = VxlanHeader.DefaultPort,
        bool udpChecksum = false)
    {
        int headers = VxlanOverhead + (outer.Vlan is null ? 0 : VlanTag.Length);
        int udpLength = UdpHeader.Length + VxlanHeader.Length + innerFrame.Length;
        innerFrame.CopyTo(buffer.Slice(headers, innerFrame.Length));
        int l3 = Ipv4Prefix(buffer, outer, IpProtocol.Udp, udpLength);
        var udp = buffer.Slice(l3 + Ipv4Header.MinLength, udpLength);
        UdpHeader.Write(udp, sourcePort, destinationPort, udpLength - UdpHeader.Length);
        VxlanHeader.Write(udp[UdpHeader.Length..], vni);
        if (udpChecksum)
        {
            WriteUdpChecksum(udp, Checksum.PseudoHeaderSum(outer.SourceIp, outer.DestinationIp, IpProtocol.Udp, (ushort)udpLength));
        }

        return headers + innerFrame.Length;
    }

    private static int Ipv4Prefix(Span<byte> buffer, in Ipv4FrameSpec spec, byte protocol, int payloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadLength, ushort.MaxValue - Ipv4Header.MinLength);
        int l3 = Ethernet(buffer, spec.DestinationMac, spec.SourceMac, EtherType.Ipv4, spec.Vlan);
        Ipv4Header.Write(buffer[l3..], spec.SourceIp, spec.DestinationIp, protocol, (ushort)payloadLength, spec.Ttl, spec.Identification, spec.DontFragment);
        return l3;
    }

    private static int Ipv6Prefix(Span<byte> buffer, in Ipv6FrameSpec spec, byte nextHeader, int payloadLength)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadLength, ushort.MaxValue);
        int l3 = Ethernet(buffer, spec.DestinationMac, spec.SourceMac, EtherType.Ipv6, spec.Vlan);
        Ipv6Header.Write(buffer[l3..], spec.SourceIp, spec.DestinationIp, nextHeader, (ushort)payloadLength, spec.HopLimit, spec.FlowLabel);
        return l3;
    }

    private static void WriteUdpChecksum(Span<byte> datagram, ulong pseudo)
    {
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], 0);
        ushort checksum = Checksum.Finish(Checksum.Add(datagram, pseudo));
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], checksum == 0 ? (ushort)0xFFFF : checksum);
    }

    private static int TcpLength(ushort mss, ReadOnlySpan<byte> payload) => TcpHeader.MinLength + (mss != 0 ? 4 : 0) + payload.Length;

    private static void WriteTcp(Span<byte> segment, ushort sourcePort, ushort destinationPort, TcpFlags flags, uint sequence, uint acknowledgment, ushort window, ushort mss, ReadOnlySpan<byte> payload)
    {
        int headerLength = TcpHeader.Write(segment, sourcePort, destinationPort, sequence, acknowledgment, flags, window);
        if (mss != 0)
        {
            segment[headerLength] = TcpHeader.OptionMss;
            segment[headerLength + 1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(segment[(headerLength + 2)..], mss);
            headerLength += 4;
            segment[12] = (byte)((headerLength / 4) << 4);
        }

        payload.CopyTo(segment[headerLength..]);
    }
}
