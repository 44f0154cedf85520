using System.Buffers.Binary;
using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class Ipv6HeaderTests
{
    private static readonly Ipv6Address Source = Ipv6Address.Parse("2001:db8::1");
    private static readonly Ipv6Address Destination = Ipv6Address.Parse("2001:db8::2");

    [Fact]
    public void Reads_the_fixed_header()
    {
        byte[] packet = Hex.Bytes(
            "6a1 23456 0008 11 40" +
            "20010db8000000000000000000000001" +
            "20010db8000000000000000000000002" +
            "d6d80035 0008 0000");
        Assert.Equal(ParseError.None, Ipv6Header.TryParse(packet, out var ip));
        Assert.Equal(6, ip.Version);
        Assert.Equal(0xa1, ip.TrafficClass);
        Assert.Equal(0x23456u, ip.FlowLabel);
        Assert.Equal(8, ip.PayloadLength);
        Assert.Equal(IpProtocol.Udp, ip.NextHeader);
        Assert.Equal(64, ip.HopLimit);
        Assert.Equal(Source, ip.Source);
        Assert.Equal(Destination, ip.Destination);
        Assert.Equal(ParseError.None, ip.TryWalkExtensionHeaders(out var upper));
        Assert.Equal(IpProtocol.Udp, upper.Protocol);
        Assert.Equal(40, upper.Offset);
        Assert.Equal(8, upper.Length);
        Assert.False(upper.HasFragmentHeader);
    }

    [Fact]
    public void Walks_hop_by_hop_routing_and_destination_options_to_tcp()
    {
        byte[] packet = Packet(
            IpProtocol.HopByHopOptions,
            "2b00 0000 0000 0000" + // HBH -> Routing, 8 bytes
            "3c02 0000 0000 0000" + "00000000000000000000000000000000" + // Routing -> DstOpts, 24 bytes
            "0600 0000 0000 0000" + // DstOpts -> TCP
            "0000000000000000000000000000000000000000");
        var ip = new Ipv6Header(packet);
        Assert.Equal(ParseError.None, ip.TryWalkExtensionHeaders(out var upper));
        Assert.Equal(IpProtocol.Tcp, upper.Protocol);
        Assert.Equal(40 + 8 + 24 + 8, upper.Offset);
        Assert.Equal(20, upper.Length);
    }

    [Fact]
    public void Authentication_header_length_is_in_4_octet_units()
    {
        // AH with Payload Len 4: (4 + 2) * 4 = 24 octets (RFC 4302 section 2.2).
        byte[] packet = Packet(IpProtocol.AuthenticationHeader, "3a04 0000" + "00000001 00000001" + "0000000000000000 00000000" + "80000000 00000000");
        Assert.Equal(ParseError.None, new Ipv6Header(packet).TryWalkExtensionHeaders(out var upper));
        Assert.Equal(IpProtocol.Icmpv6, upper.Protocol);
        Assert.Equal(64, upper.Offset);
    }

    [Fact]
    public void First_fragment_exposes_the_upper_layer()
    {
        // Fragment header: next UDP, offset 0, M=1, id 0xdeadbeef.
        byte[] packet = Packet(IpProtocol.Ipv6Fragment, "1100 0001 deadbeef" + "d6d80035 0010 0000");
        Assert.Equal(ParseError.None, new Ipv6Header(packet).TryWalkExtensionHeaders(out var upper));
        Assert.Equal(IpProtocol.Udp, upper.Protocol);
        Assert.Equal(48, upper.Offset);
        Assert.True(upper.IsFragment);
        Assert.True(upper.MoreFragments);
        Assert.False(upper.IsLaterFragment);
        Assert.Equal(40, upper.FragmentHeaderOffset);
    }

    [Fact]
    public void Later_fragment_stops_after_the_fragment_header()
    {
        // Offset 185 (1480 bytes), M=0: what follows is the middle of the datagram, even if it looks like a header.
        byte[] packet = Packet(IpProtocol.Ipv6Fragment, "0000 05c8 deadbeef" + "00000000 00000000");
        Assert.Equal(ParseError.None, new Ipv6Header(packet).TryWalkExtensionHeaders(out var upper));
        Assert.Equal(IpProtocol.HopByHopOptions, upper.Protocol);
        Assert.Equal(48, upper.Offset);
        Assert.True(upper.IsLaterFragment);
        Assert.Equal(185, upper.FragmentOffset);
        Assert.False(upper.MoreFragments);
    }

    [Fact]
    public void Atomic_fragment_is_not_a_fragment()
    {
        byte[] packet = Packet(IpProtocol.Ipv6Fragment, "3a00 0000 00000001" + "80000000 00000000");
        Assert.Equal(ParseError.None, new Ipv6Header(packet).TryWalkExtensionHeaders(out var upper));
        Assert.True(upper.HasFragmentHeader);
        Assert.False(upper.IsFragment);
    }

    [Fact]
    public void No_next_header_ends_the_walk()
    {
        byte[] packet = Packet(IpProtocol.Ipv6DestinationOptions, "3b00 0000 0000 0000");
        Assert.Equal(ParseError.None, new Ipv6Header(packet).TryWalkExtensionHeaders(out var upper));
        Assert.Equal(IpProtocol.NoNextHeader, upper.Protocol);
        Assert.Equal(0, upper.Length);
    }

    [Fact]
    public void Extension_header_past_the_payload_is_truncated()
    {
        byte[] packet = Packet(IpProtocol.HopByHopOptions, "0601 0000 0000 0000");
        Assert.Equal(ParseError.Truncated, new Ipv6Header(packet).TryWalkExtensionHeaders(out _));
    }

    [Fact]
    public void Endless_option_chains_hit_the_walk_limit()
    {
        string hops = string.Concat(Enumerable.Repeat("3c00 0000 0000 0000", 12));
        byte[] packet = Packet(IpProtocol.Ipv6DestinationOptions, hops);
        Assert.Equal(ParseError.TooManyExtensionHeaders, new Ipv6Header(packet).TryWalkExtensionHeaders(out _));
    }

    [Fact]
    public void Version_4_is_bad_version()
    {
        byte[] packet = Packet(IpProtocol.NoNextHeader, "");
        packet[0] = 0x45;
        Assert.Equal(ParseError.BadVersion, Ipv6Header.TryParse(packet, out _));
    }

    [Fact]
    public void Write_then_parse_round_trips() =>
        Properties.Check(
            from source in Properties.Ipv6
            from destination in Properties.Ipv6
            from next in Properties.Byte
            from hops in Properties.Byte
            from flow in Properties.UInt32
            from length in Gen.Choose(0, 40)
            select (source, destination, next, hops, flow: flow & 0xFFFFF, length),
            t =>
            {
                byte[] packet = new byte[Ipv6Header.Length + t.length];
                Ipv6Header.Write(packet, t.source, t.destination, t.next, (ushort)t.length, t.hops, t.flow);
                Assert.Equal(ParseError.None, Ipv6Header.TryParse(packet, out var ip));
                Assert.Equal(t.source, ip.Source);
                Assert.Equal(t.destination, ip.Destination);
                Assert.Equal(t.next, ip.NextHeader);
                Assert.Equal(t.hops, ip.HopLimit);
                Assert.Equal(t.flow, ip.FlowLabel);
                Assert.Equal(t.length, ip.Payload.Length);
            });

    [Fact]
    public void Random_payloads_never_throw_and_offsets_stay_inside() =>
        Properties.Check(
            from next in Gen.Elements<byte>(0, 43, 44, 51, 60, 6, 17, 58, 59)
            from payload in Properties.Bytes(0, 120)
            select (next, payload),
            t =>
            {
                for (int i = 0; i < t.payload.Length; i += 8)
                {
                    // Chain more extension headers than random bytes would.
                    t.payload[i] = (byte)(t.payload[i] % 3 == 0 ? 60 : t.payload[i] % 3 == 1 ? 44 : t.payload[i]);
                }

                byte[] packet = new byte[Ipv6Header.Length + t.payload.Length];
                Ipv6Header.Write(packet, Source, Destination, t.next, (ushort)t.payload.Length);
                t.payload.CopyTo(packet, Ipv6Header.Length);
                var ip = new Ipv6Header(packet);
                if (ip.TryWalkExtensionHeaders(out var upper) != ParseError.None)
                {
                    return true;
                }

                return upper.Offset >= Ipv6Header.Length && upper.Offset + upper.Length == packet.Length;
            });

    [Fact]
    public void Every_truncation_of_a_valid_packet_is_reported()
    {
        byte[] packet = Packet(IpProtocol.Ipv6Fragment, "1100 0001 deadbeef" + "d6d80035 0010 0000");
        for (int length = 0; length < packet.Length; length++)
        {
            Assert.Equal(ParseError.Truncated, Ipv6Header.TryParse(packet.AsSpan(0, length), out _));
        }
    }

    private static byte[] Packet(byte nextHeader, string payloadHex)
    {
        byte[] payload = Hex.Bytes(payloadHex);
        byte[] packet = new byte[Ipv6Header.Length + payload.Length];
        Ipv6Header.Write(packet, Source, Destination, nextHeader, (ushort)payload.Length);
        payload.CopyTo(packet, Ipv6Header.Length);
        Assert.Equal(payload.Length, BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(4)));
        return packet;
    }
}
