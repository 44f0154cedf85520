using System.Buffers.Binary;
using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class Ipv4HeaderTests
{
    // ICMP echo request 10.0.0.1 -> 10.0.0.2 as "ping -c1 -p 00" sends it (id 0x1c46, DF, TTL 64,
    // 56 zero data bytes); checksums worked out by hand: IP 0a61, ICMP f7fd.
    private const string CapturedEchoRequest =
        "4500 0054 1c46 4000 4001 0a61 0a000001 0a000002" +
        "0800 f7fd 0001 0001" +
        "0000000000000000000000000000000000000000000000000000000000000000" +
        "000000000000000000000000000000000000000000000000";

    [Fact]
    public void Reads_a_captured_icmp_echo_request()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
        Assert.Equal(4, ip.Version);
        Assert.Equal(20, ip.HeaderLength);
        Assert.Equal(0, ip.OptionsLength);
        Assert.Equal(84, ip.TotalLength);
        Assert.Equal(0x1c46, ip.Identification);
        Assert.True(ip.DontFragment);
        Assert.False(ip.IsFragment);
        Assert.Equal(64, ip.Ttl);
        Assert.Equal(IpProtocol.Icmp, ip.Protocol);
        Assert.Equal(Ipv4Address.Parse("10.0.0.1"), ip.Source);
        Assert.Equal(Ipv4Address.Parse("10.0.0.2"), ip.Destination);
        Assert.Equal(0x0a61, ip.HeaderChecksum);
        Assert.True(ip.IsHeaderChecksumValid);
        Assert.Equal(0x0a61, ip.ComputeHeaderChecksum());
        Assert.Equal(64, ip.Payload.Length);
    }

    [Fact]
    public void Ethernet_padding_after_total_length_is_excluded()
    {
        byte[] packet = [.. Hex.Bytes(CapturedEchoRequest), 0, 0, 0, 0];
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
        Assert.Equal(84, ip.Packet.Length);
    }

    [Fact]
    public void Version_6_is_bad_version()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        packet[0] = 0x65;
        Assert.Equal(ParseError.BadVersion, Ipv4Header.TryParse(packet, out _));
    }

    [Fact]
    public void Ihl_below_5_is_bad_header_length()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        packet[0] = 0x44;
        Assert.Equal(ParseError.BadHeaderLength, Ipv4Header.TryParse(packet, out _));
    }

    [Fact]
    public void Total_length_below_header_is_bad_total_length()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), 19);
        Assert.Equal(ParseError.BadTotalLength, Ipv4Header.TryParse(packet, out _));
    }

    [Fact]
    public void Options_are_measured_from_ihl()
    {
        // IHL 6 with a 4-byte Router Alert option (RFC 2113): 94 04 0000.
        byte[] packet = Hex.Bytes("4600 0018 0000 0000 0102 0000 0a000001 e0000016 94040000");
        new Ipv4Header(packet).UpdateHeaderChecksum();
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
        Assert.Equal(24, ip.HeaderLength);
        Assert.Equal(4, ip.OptionsLength);
        Assert.Equal(0x94, ip.Options[0]);
        Assert.True(ip.IsHeaderChecksumValid);
        Assert.Equal(0, ip.Payload.Length);
    }

    [Fact]
    public void Fragment_fields_are_decoded()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        var ip = new Ipv4Header(packet);
        ip.DontFragment = false;
        ip.MoreFragments = true;
        ip.FragmentOffset = 185;
        Assert.Equal(0x20b9, BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(6)));
        Assert.True(ip.IsFragment);
        Assert.True(ip.IsLaterFragment);
        Assert.Equal(1480, ip.FragmentOffsetBytes);
        ip.MoreFragments = false;
        Assert.True(ip.IsFragment);
        ip.FragmentOffset = 0;
        Assert.False(ip.IsFragment);
    }

    [Fact]
    public void Ttl_decrement_keeps_the_checksum_valid_and_stops_at_one()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        var ip = new Ipv4Header(packet);
        for (int ttl = 63; ttl >= 1; ttl--)
        {
            Assert.True(ip.TryDecrementTtl());
            Assert.Equal(ttl, ip.Ttl);
            Assert.True(ip.IsHeaderChecksumValid);
        }

        Assert.False(ip.TryDecrementTtl());
        Assert.Equal(1, ip.Ttl);
    }

    [Fact]
    public void Write_then_parse_round_trips() =>
        Properties.Check(
            from source in Properties.Ipv4
            from destination in Properties.Ipv4
            from protocol in Properties.Byte
            from ttl in Properties.Byte
            from id in Properties.UInt16
            from payload in Gen.Choose(0, 64)
            from df in Gen.Elements(true, false)
            select (source, destination, protocol, ttl, id, payload, df),
            t =>
            {
                byte[] packet = new byte[Ipv4Header.MinLength + t.payload];
                int written = Ipv4Header.Write(packet, t.source, t.destination, t.protocol, (ushort)t.payload, t.ttl, t.id, t.df);
                Assert.Equal(20, written);
                Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
                Assert.True(ip.IsHeaderChecksumValid);
                Assert.Equal(t.source, ip.Source);
                Assert.Equal(t.destination, ip.Destination);
                Assert.Equal(t.protocol, ip.Protocol);
                Assert.Equal(t.ttl, ip.Ttl);
                Assert.Equal(t.id, ip.Identification);
                Assert.Equal(t.df, ip.DontFragment);
                Assert.Equal(t.payload, ip.Payload.Length);
            });

    [Fact]
    public void Address_rewrite_patches_the_checksum_like_a_full_recompute() =>
        Properties.Check(
            from source in Properties.Ipv4
            from destination in Properties.Ipv4
            from newSource in Properties.Ipv4
            from newDestination in Properties.Ipv4
            select (source, destination, newSource, newDestination),
            t =>
            {
                byte[] packet = new byte[Ipv4Header.MinLength];
                Ipv4Header.Write(packet, t.source, t.destination, IpProtocol.Udp, 0);
                var ip = new Ipv4Header(packet);
                ip.RewriteSource(t.newSource);
                ip.RewriteDestination(t.newDestination);
                return ip.HeaderChecksum == ip.ComputeHeaderChecksum();
            });

    [Fact]
    public void Every_truncation_of_a_valid_packet_is_reported()
    {
        byte[] packet = Hex.Bytes(CapturedEchoRequest);
        for (int length = 0; length < packet.Length; length++)
        {
            Assert.Equal(ParseError.Truncated, Ipv4Header.TryParse(packet.AsSpan(0, length), out _));
        }
    }

    [Fact]
    public void Random_bytes_never_throw_and_valid_parses_fit_the_buffer() =>
        Properties.Check(Properties.Bytes(0, 80), bytes =>
        {
            if (bytes.Length > 0 && bytes[0] >> 4 != 4)
            {
                bytes[0] = (byte)(0x40 | (bytes[0] & 0x0F)); // reach the deeper checks more often
            }

            if (Ipv4Header.TryParse(bytes, out var ip) != ParseError.None)
            {
                return true;
            }

            return ip.HeaderLength >= 20 && ip.Payload.Length == ip.TotalLength - ip.HeaderLength && ip.Packet.Length <= bytes.Length;
        });
}
