namespace Isthmus.Packets.Tests;

/// <summary>Decodes a frame as deep as the library goes (the way a data-plane stage chain would) and returns the first error.</summary>
internal static class FrameDecoder
{
    public static ParseError Decode(Span<byte> frame, int depth = 0)
    {
        var error = VlanTags.TryParse(frame, out var tags);
        if (error != ParseError.None)
        {
            return error;
        }

        var l3 = frame[tags.PayloadOffset..];
        switch (tags.PayloadEtherType)
        {
            case EtherType.Arp:
            case EtherType.Rarp:
                return ArpPacket.TryParse(l3, out _);

            case EtherType.Ipv4:
            {
                error = Ipv4Header.TryParse(l3, out var ip);
                if (error != ParseError.None)
                {
                    return error;
                }

                return ip.IsLaterFragment ? ParseError.None : Transport(ip.Protocol, ip.Payload, depth);
            }

            case EtherType.Ipv6:
            {
                error = Ipv6Header.TryParse(l3, out var ip);
                if (error == ParseError.None)
                {
                    error = ip.TryWalkExtensionHeaders(out var upper);
                    if (error == ParseError.None && !upper.IsLaterFragment)
                    {
                        error = Transport(upper.Protocol, l3.Slice(upper.Offset, upper.Length), depth);
                    }
                }

                return error;
            }

            default:
                return ParseError.UnsupportedProtocol;
        }
    }

    private static ParseError Transport(byte protocol, Span<byte> payload, int depth)
    {
        switch (protocol)
        {
            case IpProtocol.Tcp:
            {
                var error = TcpHeader.TryParse(payload, out var tcp);
                if (error == ParseError.None)
                {
                    tcp.TryGetMss(out _, out _);
                }

                return error;
            }

            case IpProtocol.Udp:
            {
                var error = UdpHeader.TryParse(payload, out var udp);
                if (error != ParseError.None || udp.DestinationPort != VxlanHeader.DefaultPort)
                {
                    return error;
                }

                error = VxlanHeader.TryParse(udp.Payload, out var vxlan);
                return error != ParseError.None || depth > 0 ? error : Decode(vxlan.InnerFrame, depth + 1);
            }

            case IpProtocol.Icmp:
                return Icmpv4Header.TryParse(payload, out _);

            case IpProtocol.Icmpv6:
                return Icmpv6Header.TryParse(payload, out _);

            default:
                return ParseError.None;
        }
    }
}
