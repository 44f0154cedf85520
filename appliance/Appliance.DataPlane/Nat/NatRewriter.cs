using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Firewall;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Nat;

/// <summary>
/// Rewrites addresses, ports and ICMP echo ids in place, patching every checksum incrementally
/// (RFC 1624 eqn. 3): the IPv4 header checksum, the TCP/UDP checksum through its pseudo-header
/// (RFC 9293 section 3.1, RFC 768; a zero UDP checksum stays zero), and the ICMP checksum for echo
/// ids. ICMP errors get their quoted packet translated back too (RFC 5508 section 4.2, RFC 3022 section 4.3).
/// </summary>
public static class NatRewriter
{
    /// <summary>
    /// Rewrites a packet whose tuple is <paramref name="current"/> to <paramref name="target"/>.
    /// For ICMP echo the id is the source port of a request and the destination port of a reply.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    /// <remarks>
    /// <paramref name="l4"/> = 0 is an IPv4 fragment after the first: only the addresses (and the IP
    /// header checksum) change; the transport checksum, which covers the whole datagram, was updated
    /// in the first fragment.
    /// </remarks>
    public static void Rewrite(Span<byte> frame, int l3, int l4, in FlowTuple current, in FlowTuple target)
    {
        var ip = new Ipv4Header(frame[l3..]);
        if (l4 == 0)
        {
            if (current.Source != target.Source)
            {
                ip.RewriteSource(new Ipv4Address(target.Source));
            }

            if (current.Destination != target.Destination)
            {
                ip.RewriteDestination(new Ipv4Address(target.Destination));
            }

            return;
        }

        var segment = frame[l4..];
        var protocol = current.Protocol;
        if (current.Source != target.Source)
        {
            ip.RewriteSource(new Ipv4Address(target.Source));
            PseudoHeader(segment, protocol, current.Source, target.Source);
        }

        if (current.Destination != target.Destination)
        {
            ip.RewriteDestination(new Ipv4Address(target.Destination));
            PseudoHeader(segment, protocol, current.Destination, target.Destination);
        }

        if (protocol == IpProtocol.Tcp)
        {
            var tcp = new TcpHeader(segment);
            if (current.SourcePort != target.SourcePort)
            {
                tcp.SourcePort = target.SourcePort;
                tcp.UpdateChecksum(current.SourcePort, target.SourcePort);
            }

            if (current.DestinationPort != target.DestinationPort)
            {
                tcp.DestinationPort = target.DestinationPort;
                tcp.UpdateChecksum(current.DestinationPort, target.DestinationPort);
            }
        }
        else if (protocol == IpProtocol.Udp)
        {
            var udp = new UdpHeader(segment);
            if (current.SourcePort != target.SourcePort)
            {
                udp.SourcePort = target.SourcePort;
                udp.UpdateChecksum(current.SourcePort, target.SourcePort);
            }

            if (current.DestinationPort != target.DestinationPort)
            {
                udp.DestinationPort = target.DestinationPort;
                udp.UpdateChecksum(current.DestinationPort, target.DestinationPort);
            }
        }
        else if (protocol == IpProtocol.Icmp)
        {
            var isReply = segment[0] == Icmpv4Type.EchoReply;
            var oldId = isReply ? current.DestinationPort : current.SourcePort;
            var newId = isReply ? target.DestinationPort : target.SourcePort;
            if (oldId != newId)
            {
                Set16(segment, 4, newId, 2);
            }
        }
    }

    /// <summary>
    /// Translates an ICMP error travelling in <paramref name="direction"/> of the session
    /// <paramref name="e"/>: the quoted packet (sent in the other direction, as seen beyond the
    /// translation) is put back the way its sender sent it, and the outer addresses are translated
    /// like any packet of the direction (the outer source only when it is the session's peer, not a
    /// router on the path). Returns false when the quote is too short to translate.
    /// </summary>
    public static bool TranslateIcmpError(Span<byte> frame, int l3, int l4, in ConntrackEntry e, int direction)
    {
        var here = ConntrackTable.TupleOf(e, direction);
        var there = ConntrackTable.TupleOf(e, 1 - direction);
        var ip = new Ipv4Header(frame[l3..]);
        var icmp = frame[l4..];
        var quote = icmp[Icmpv4Header.QuotedPacketOffset..];
        if (quote.Length < Ipv4Header.MinLength)
        {
            return false;
        }

        if (!RewriteQuote(icmp, e.Protocol, there))
        {
            return false;
        }

        // Outer header: toward the quoted packet's sender.
        if (ip.Destination.Value != there.Source)
        {
            ip.RewriteDestination(new Ipv4Address(there.Source));
        }

        if (ip.Source.Value == here.Source && here.Source != there.Destination)
        {
            ip.RewriteSource(new Ipv4Address(there.Destination));
        }

        return true;
    }

    /// <summary>
    /// Rewrites the packet quoted in an ICMPv4 error (<paramref name="icmp"/> starts at the ICMP
    /// header) to carry <paramref name="tuple"/>: addresses, ports (or the echo id), the quoted IP
    /// header checksum and, when the quote holds it, the quoted TCP/UDP checksum. Used to put a
    /// translated packet back the way its sender sent it, whoever builds the error (a router on the
    /// path, the route stage, a reject). Returns false when the quote is too short to hold the ports.
    /// </summary>
    public static bool RewriteQuote(Span<byte> icmp, byte protocol, in FlowTuple tuple)
    {
        const int q = Icmpv4Header.QuotedPacketOffset;
        if (icmp.Length < q + Ipv4Header.MinLength)
        {
            return false;
        }

        var quote = icmp[q..];
        var qihl = (quote[0] & 0x0F) * 4;
        if (qihl < Ipv4Header.MinLength || quote.Length < qihl + 8)
        {
            return false;
        }

        var qsrc = BinaryPrimitives.ReadUInt32BigEndian(quote[12..]);
        var qdst = BinaryPrimitives.ReadUInt32BigEndian(quote[16..]);
        var qipCsum = BinaryPrimitives.ReadUInt16BigEndian(quote[10..]);
        var ql4 = q + qihl;
        var quotedL4Length = icmp.Length - ql4;
        if (qsrc != tuple.Source)
        {
            qipCsum = Checksum.Update(qipCsum, qsrc, tuple.Source);
            Set32(icmp, q + 12, tuple.Source);
            QuotedPseudoHeader(icmp, ql4, quotedL4Length, protocol, qsrc, tuple.Source);
        }

        if (qdst != tuple.Destination)
        {
            qipCsum = Checksum.Update(qipCsum, qdst, tuple.Destination);
            Set32(icmp, q + 16, tuple.Destination);
            QuotedPseudoHeader(icmp, ql4, quotedL4Length, protocol, qdst, tuple.Destination);
        }

        Set16(icmp, q + 10, qipCsum, 2);
        if (protocol is IpProtocol.Tcp or IpProtocol.Udp)
        {
            QuotedPort(icmp, ql4, quotedL4Length, protocol, 0, tuple.SourcePort);
            QuotedPort(icmp, ql4, quotedL4Length, protocol, 2, tuple.DestinationPort);
        }
        else if (protocol == IpProtocol.Icmp)
        {
            // A quoted echo request carries the id as its source "port", a reply as its destination.
            var id = icmp[ql4] == Icmpv4Type.EchoReply ? tuple.DestinationPort : tuple.SourcePort;
            var old = BinaryPrimitives.ReadUInt16BigEndian(icmp[(ql4 + 4)..]);
            if (old != id)
            {
                var qcsum = BinaryPrimitives.ReadUInt16BigEndian(icmp[(ql4 + 2)..]);
                Set16(icmp, ql4 + 4, id, 2);
                Set16(icmp, ql4 + 2, Checksum.Update(qcsum, old, id), 2);
            }
        }

        return true;
    }

    private static void QuotedPort(Span<byte> icmp, int ql4, int length, byte protocol, int offset, ushort value)
    {
        var old = BinaryPrimitives.ReadUInt16BigEndian(icmp[(ql4 + offset)..]);
        if (old != value)
        {
            Set16(icmp, ql4 + offset, value, 2);
            QuotedChecksum(icmp, ql4, length, protocol, old, value);
        }
    }

    private static void QuotedPseudoHeader(Span<byte> icmp, int ql4, int length, byte protocol, uint old, uint value) =>
        QuotedChecksum(icmp, ql4, length, protocol, old, value);

    /// <summary>Patches the quoted TCP/UDP checksum when the quote holds it (TCP's sits beyond the RFC 792 minimum of 8 bytes).</summary>
    private static void QuotedChecksum(Span<byte> icmp, int ql4, int length, byte protocol, uint old, uint value)
    {
        var at = protocol == IpProtocol.Tcp ? 16 : protocol == IpProtocol.Udp ? 6 : -1;
        if (at < 0 || length < at + 2)
        {
            return;
        }

        var csum = BinaryPrimitives.ReadUInt16BigEndian(icmp[(ql4 + at)..]);
        if (protocol == IpProtocol.Udp && csum == 0)
        {
            return;
        }

        // A 16-bit change passes as a 32-bit one with a zero high word: ~0 + 0 adds nothing in ones' complement.
        var updated = Checksum.Update(csum, old, value);
        Set16(icmp, ql4 + at, protocol == IpProtocol.Udp && updated == 0 ? (ushort)0xFFFF : updated, 2);
    }

    private static void PseudoHeader(Span<byte> segment, byte protocol, uint old, uint value)
    {
        if (protocol == IpProtocol.Tcp)
        {
            new TcpHeader(segment).UpdateChecksum(old, value);
        }
        else if (protocol == IpProtocol.Udp)
        {
            new UdpHeader(segment).UpdateChecksum(old, value);
        }
    }

    /// <summary>Writes a 16-bit word at <paramref name="offset"/> of an ICMP message and patches the ICMP checksum (at <paramref name="checksumAt"/>).</summary>
    private static void Set16(Span<byte> message, int offset, ushort value, int checksumAt)
    {
        var old = BinaryPrimitives.ReadUInt16BigEndian(message[offset..]);
        if (old == value)
        {
            return;
        }

        BinaryPrimitives.WriteUInt16BigEndian(message[offset..], value);
        if (offset != checksumAt)
        {
            var csum = BinaryPrimitives.ReadUInt16BigEndian(message[checksumAt..]);
            BinaryPrimitives.WriteUInt16BigEndian(message[checksumAt..], Checksum.Update(csum, old, value));
        }
    }

    private static void Set32(Span<byte> message, int offset, uint value)
    {
        Set16(message, offset, (ushort)(value >> 16), 2);
        Set16(message, offset + 2, (ushort)value, 2);
    }
}
