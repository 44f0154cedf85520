using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class IcmpHeaderTests
{
    [Fact]
    public void Echo_request_fields_and_checksum()
    {
        // Identifier 1, sequence 1, 56 zero bytes: checksum f7fd (worked out by hand).
        byte[] message = [.. Hex.Bytes("0800 f7fd 0001 0001"), .. new byte[56]];
        Assert.Equal(ParseError.None, Icmpv4Header.TryParse(message, out var icmp));
        Assert.Equal(Icmpv4Type.EchoRequest, icmp.Type);
        Assert.Equal(0, icmp.Code);
        Assert.True(icmp.IsEcho);
        Assert.False(icmp.IsError);
        Assert.Equal(1, icmp.Identifier);
        Assert.Equal(1, icmp.SequenceNumber);
        Assert.True(icmp.IsChecksumValid);
        Assert.Equal(0xf7fd, icmp.ComputeChecksum());
        Assert.Equal(0, icmp.QuotedPacket.Length);
    }

    [Fact]
    public void Time_exceeded_quotes_the_invoking_packet_at_offset_8()
    {
        byte[] quoted = Hex.Bytes("4500 0054 1c46 4000 0101 4961 0a000001 0a000002 0800f7fd00010001");
        byte[] message = [.. Hex.Bytes("0b00 0000 00000000"), .. quoted];
        var icmp = new Icmpv4Header(message);
        icmp.UpdateChecksum();
        Assert.True(icmp.IsChecksumValid);
        Assert.True(icmp.IsError);
        Assert.Equal(quoted, icmp.QuotedPacket.ToArray());
        // The quote is cut after 64 bits of payload, so it parses as truncated but its header is readable.
        Assert.Equal(ParseError.Truncated, Ipv4Header.TryParse(icmp.QuotedPacket, out _));
        var inner = new Ipv4Header(icmp.QuotedPacket);
        Assert.Equal(IpProtocol.Icmp, inner.Protocol);
        Assert.Equal(Ipv4Address.Parse("10.0.0.2"), inner.Destination);
    }

    [Fact]
    public void Icmpv6_echo_checksum_covers_the_pseudo_header()
    {
        // fe80::1 -> fe80::2, echo request id 0x1234 seq 1 "abcd": checksum abb8 (worked out by hand).
        byte[] message = Hex.Bytes("8000 abb8 1234 0001 61626364");
        var source = Ipv6Address.Parse("fe80::1");
        var destination = Ipv6Address.Parse("fe80::2");
        Assert.Equal(ParseError.None, Icmpv6Header.TryParse(message, out var icmp));
        Assert.Equal(Icmpv6Type.EchoRequest, icmp.Type);
        Assert.True(icmp.IsEcho);
        Assert.False(icmp.IsError);
        Assert.Equal(0x1234, icmp.Identifier);
        Assert.True(icmp.IsChecksumValid(source, destination));
        Assert.False(icmp.IsChecksumValid(destination, Ipv6Address.Parse("fe80::3")));
        Assert.Equal(0xabb8, icmp.ComputeChecksum(source, destination));
    }

    [Fact]
    public void Icmpv6_packet_too_big_carries_the_mtu_and_quotes_the_packet()
    {
        byte[] message = Hex.Bytes("0200 0000 000005dc 6000000000083a40");
        var icmp = new Icmpv6Header(message);
        Assert.True(icmp.IsError);
        Assert.Equal(1500u, icmp.MtuOrPointer);
        Assert.Equal(8, icmp.QuotedPacket.Length);
        Assert.Equal(0x60, icmp.QuotedPacket[0]);
    }

    [Fact]
    public void Short_messages_are_truncated()
    {
        for (int length = 0; length < 8; length++)
        {
            Assert.Equal(ParseError.Truncated, Icmpv4Header.TryParse(new byte[length], out _));
            Assert.Equal(ParseError.Truncated, Icmpv6Header.TryParse(new byte[length], out _));
        }
    }

    [Fact]
    public void Echo_build_then_parse_round_trips() =>
        Properties.Check(
            from id in Properties.UInt16
            from seq in Properties.UInt16
            from data in Properties.Bytes(0, 64)
            select (id, seq, data),
            t =>
            {
                byte[] frame = new byte[160];
                int length = PacketBuilder.IcmpEcho(frame, Frames.V4, t.id, t.seq, t.data);
                Assert.Equal(ParseError.None, Ipv4Header.TryParse(frame.AsSpan(14, length - 14), out var ip));
                Assert.Equal(ParseError.None, Icmpv4Header.TryParse(ip.Payload, out var icmp));
                Assert.Equal(t.id, icmp.Identifier);
                Assert.Equal(t.seq, icmp.SequenceNumber);
                Assert.Equal(t.data, icmp.Body.ToArray());
                Assert.True(icmp.IsChecksumValid);

                length = PacketBuilder.Icmpv6Echo(frame, Frames.V6, t.id, t.seq, t.data, reply: true);
                Assert.Equal(ParseError.None, Ipv6Header.TryParse(frame.AsSpan(14, length - 14), out var ip6));
                Assert.Equal(ParseError.None, Icmpv6Header.TryParse(ip6.Payload, out var icmp6));
                Assert.Equal(Icmpv6Type.EchoReply, icmp6.Type);
                Assert.Equal(t.id, icmp6.Identifier);
                Assert.Equal(t.seq, icmp6.SequenceNumber);
                Assert.True(icmp6.IsChecksumValid(ip6.Source, ip6.Destination));
            });
}
