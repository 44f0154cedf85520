using System.Buffers.Binary;
using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class UdpHeaderTests
{
    // 192.168.1.10:53000 -> 8.8.8.8:53 carrying "isthmus"; checksums worked out by hand (IP 6908, UDP a07e).
    private const string Datagram =
        "4500 0023 0000 4000 4011 6908 c0a8010a 08080808" +
        "cf08 0035 000f a07e 697374686d7573";

    [Fact]
    public void Reads_ports_length_and_a_valid_checksum()
    {
        byte[] packet = Hex.Bytes(Datagram);
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
        Assert.True(ip.IsHeaderChecksumValid);
        Assert.Equal(ParseError.None, UdpHeader.TryParse(ip.Payload, out var udp));
        Assert.Equal(53000, udp.SourcePort);
        Assert.Equal(53, udp.DestinationPort);
        Assert.Equal(15, udp.DatagramLength);
        Assert.Equal(0xa07e, udp.Checksum);
        Assert.Equal("isthmus"u8.ToArray(), udp.Payload.ToArray());
        Assert.True(L4Checksum.IsValid(packet, 0));
    }

    [Fact]
    public void Length_below_8_is_bad_length_and_beyond_the_payload_is_truncated()
    {
        byte[] udp = Hex.Bytes("cf08 0035 0007 0000");
        Assert.Equal(ParseError.BadTotalLength, UdpHeader.TryParse(udp, out _));
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), 9);
        Assert.Equal(ParseError.Truncated, UdpHeader.TryParse(udp, out _));
    }

    [Fact]
    public void Port_rewrite_with_incremental_update_matches_recompute() =>
        Properties.Check(
            from payload in Properties.Bytes(0, 64)
            from port in Properties.UInt16
            from address in Properties.Ipv4
            select (payload, port, address),
            t =>
            {
                byte[] frame = new byte[128];
                var spec = new Ipv4FrameSpec(MacAddress.Parse("02:00:00:00:00:01"), MacAddress.Parse("02:00:00:00:00:02"), Ipv4Address.Parse("10.0.0.1"), Ipv4Address.Parse("10.0.0.2"));
                int length = PacketBuilder.Udp(frame, spec, 1000, 2000, t.payload);
                var ip = new Ipv4Header(frame.AsSpan(14, length - 14));
                Assert.Equal(ParseError.None, UdpHeader.TryParse(ip.Payload, out var udp));

                // SNAT: source port and source address change; the UDP checksum covers both via the pseudo-header.
                udp.UpdateChecksum(udp.SourcePort, t.port);
                udp.SourcePort = t.port;
                udp.UpdateChecksum(ip.Source.Value, t.address.Value);
                ip.RewriteSource(t.address);

                Assert.True(ip.IsHeaderChecksumValid);
                Assert.True(L4Checksum.IsValid(frame.AsSpan(0, length), 14));
            });

    [Fact]
    public void Zero_checksum_means_none_and_is_left_alone()
    {
        byte[] udp = Hex.Bytes("cf08 0035 0008 0000");
        var view = new UdpHeader(udp);
        view.UpdateChecksum(0xcf08, 0x1234);
        Assert.Equal(0, view.Checksum);
    }
}
