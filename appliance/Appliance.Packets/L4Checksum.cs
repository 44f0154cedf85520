using System.Buffers.Binary;

namespace Isthmus.Packets;

/// <summary>
/// Transport checksums of whole IPv4/IPv6 packets: TCP and UDP (with the pseudo-header), ICMPv4, and
/// ICMPv6 (with the pseudo-header).
/// </summary>
/// <remarks>
/// The data plane needs <see cref="Complete"/> for frames the Linux kernel hands over with
/// CHECKSUM_PARTIAL (veth, virtio with offload): their checksum field holds only the pseudo-header
/// sum, and a forwarder must finish it or the receiver drops the packet.
/// </remarks>
public static class L4Checksum
{
    /// <summary>
    /// Computes the TCP/UDP/ICMP/ICMPv6 checksum of the IP packet at <paramref name="l3Offset"/> and writes it.
    /// Over UDP a computed 0 is written as 0xFFFF (RFC 768; RFC 8200 section 8.1).
    /// </summary>
    /// <returns>
    /// <see cref="ParseError.None"/> when written; <see cref="ParseError.Fragmented"/> for IP fragments (the
    /// checksum covers the whole datagram); <see cref="ParseError.UnsupportedProtocol"/> for other protocols;
    /// or the IP/transport parse error.
    /// </returns>
    public static ParseError Complete(Span<byte> buffer, int l3Offset)
    {
        var error = Locate(buffer, l3Offset, out var segment, out byte protocol, out ulong pseudo, out int checksumAt);
        if (error != ParseError.None)
        {
            return error;
        }

        segment[checksumAt] = 0;
        segment[checksumAt + 1] = 0;
        ushort checksum = Checksum.Finish(Checksum.Add(segment, pseudo));
        if (checksum == 0 && protocol == IpProtocol.Udp)
        {
            checksum = 0xFFFF;
        }

        BinaryPrimitives.WriteUInt16BigEndian(segment[checksumAt..], checksum);
        return ParseError.None;
    }

    /// <summary>
    /// <see cref="Complete"/> for an Ethernet frame with up to two VLAN tags carrying IPv4 or IPv6.
    /// Returns false (frame untouched) when there is nothing it can complete.
    /// </summary>
    public static bool TryComplete(Span<byte> ethernetFrame)
    {
        if (VlanTags.TryParse(ethernetFrame, out var tags) != ParseError.None
            || (tags.PayloadEtherType != EtherType.Ipv4 && tags.PayloadEtherType != EtherType.Ipv6))
        {
            return false;
        }

        return Complete(ethernetFrame, tags.PayloadOffset) == ParseError.None;
    }

    /// <summary>
    /// True when the transport checksum of the IP packet at <paramref name="l3Offset"/> verifies. A UDP
    /// checksum of 0 over IPv4 means "none" and counts as valid.
    /// </summary>
    public static bool IsValid(ReadOnlySpan<byte> buffer, int l3Offset)
    {
        // Locate only reads through the span; the cast does not escape this method.
        var writable = System.Runtime.InteropServices.MemoryMarshal.CreateSpan(
            ref System.Runtime.InteropServices.MemoryMarshal.GetReference(buffer), buffer.Length);
        if (Locate(writable, l3Offset, out var segment, out byte protocol, out ulong pseudo, out int checksumAt) != ParseError.None)
        {
            return false;
        }

        if (protocol == IpProtocol.Udp && BinaryPrimitives.ReadUInt16BigEndian(segment[checksumAt..]) == 0)
        {
            return (buffer[l3Offset] >> 4) == 4;
        }

        return Checksum.IsValid(segment, pseudo);
    }

    private static ParseError Locate(Span<byte> buffer, int l3Offset, out Span<byte> segment, out byte protocol, out ulong pseudo, out int checksumAt)
    {
        segment = default;
        protocol = 0;
        pseudo = 0;
        checksumAt = 0;
        if ((uint)l3Offset >= (uint)buffer.Length)
        {
            return ParseError.Truncated;
        }

        var packet = buffer[l3Offset..];
        int version = packet[0] >> 4;
        if (version == 4)
        {
            var error = Ipv4Header.TryParse(packet, out var ip);
            if (error != ParseError.None)
            {
                return error;
            }

            if (ip.IsFragment)
            {
                return ParseError.Fragmented;
            }

            protocol = ip.Protocol;
            segment = ip.Payload;
            if (protocol == IpProtocol.Icmp)
            {
                checksumAt = 2;
                return segment.Length < Icmpv4Header.Length ? ParseError.Truncated : ParseError.None;
            }

            error = Shape(ref segment, protocol, out checksumAt);
            if (error == ParseError.None)
            {
                pseudo = Checksum.PseudoHeaderSum(ip.Source, ip.Destination, protocol, (ushort)segment.Length);
            }

            return error;
        }

        if (version == 6)
        {
            var error = Ipv6Header.TryParse(packet, out var ip);
            if (error != ParseError.None)
            {
                return error;
            }

            error = ip.TryWalkExtensionHeaders(out var upper);
            if (error != ParseError.None)
            {
                return error;
            }

            if (upper.IsFragment)
            {
                return ParseError.Fragmented;
            }

            protocol = upper.Protocol;
            segment = packet.Slice(upper.Offset, upper.Length);
            if (protocol == IpProtocol.Icmpv6)
            {
                checksumAt = 2;
                if (segment.Length < 4)
                {
                    return ParseError.Truncated;
                }
            }
            else
            {
                error = Shape(ref segment, protocol, out checksumAt);
                if (error != ParseError.None)
                {
                    return error;
                }
            }

            pseudo = Checksum.PseudoHeaderSum(ip.Source, ip.Destination, protocol, (uint)segment.Length);
            return ParseError.None;
        }

        return ParseError.BadVersion;
    }

    private static ParseError Shape(ref Span<byte> segment, byte protocol, out int checksumAt)
    {
        checksumAt = 0;
        if (protocol == IpProtocol.Tcp)
        {
            checksumAt = 16;
            return TcpHeader.TryParse(segment, out _);
        }

        if (protocol == IpProtocol.Udp)
        {
            checksumAt = 6;
            var error = UdpHeader.TryParse(segment, out var udp);
            if (error == ParseError.None)
            {
                segment = udp.Datagram;
            }

            return error;
        }

        return ParseError.UnsupportedProtocol;
    }
}
