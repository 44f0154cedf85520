using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class TcpHeaderTests
{
    // SYN 10.0.0.1:40000 -> 10.0.0.2:80, seq 0x01020304, window 64240, options MSS 1460, NOP, NOP,
    // SACK permitted; checksums worked out by hand (IP 26c6, TCP d395).
    private const string Syn =
        "4500 0030 0000 4000 4006 26c6 0a000001 0a000002" +
        "9c40 0050 01020304 00000000 7002 faf0 d395 0000 020405b4 01010402";

    [Fact]
    public void Reads_a_syn_with_options()
    {
        byte[] packet = Hex.Bytes(Syn);
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
        Assert.Equal(ParseError.None, TcpHeader.TryParse(ip.Payload, out var tcp));
        Assert.Equal(40000, tcp.SourcePort);
        Assert.Equal(80, tcp.DestinationPort);
        Assert.Equal(0x01020304u, tcp.SequenceNumber);
        Assert.Equal(0u, tcp.AcknowledgmentNumber);
        Assert.Equal(7, tcp.DataOffset);
        Assert.Equal(28, tcp.HeaderLength);
        Assert.Equal(TcpFlags.Syn, tcp.Flags);
        Assert.Equal(64240, tcp.Window);
        Assert.Equal(0xd395, tcp.Checksum);
        Assert.Equal(0, tcp.UrgentPointer);
        Assert.Equal(8, tcp.Options.Length);
        Assert.True(tcp.TryGetMss(out ushort mss, out int at));
        Assert.Equal(1460, mss);
        Assert.Equal(22, at);
        Assert.True(L4Checksum.IsValid(packet, 0));
    }

    [Fact]
    public void Mss_clamp_lowers_the_option_and_keeps_the_checksum_valid()
    {
        byte[] packet = Hex.Bytes(Syn);
        var tcp = new TcpHeader(new Ipv4Header(packet).Payload);
        Assert.True(tcp.ClampMss(1410));
        Assert.True(tcp.TryGetMss(out ushort mss, out _));
        Assert.Equal(1410, mss);
        Assert.True(L4Checksum.IsValid(packet, 0));
        Assert.False(tcp.ClampMss(1450));
    }

    [Fact]
    public void Mss_after_a_nop_sits_at_an_odd_offset_and_still_clamps_correctly()
    {
        byte[] packet = Hex.Bytes(
            "4500 0030 0000 4000 4006 0000 0a000001 0a000002" +
            "9c40 0050 01020304 00000000 7002 faf0 0000 0000 01020405 b4010100");
        Assert.Equal(ParseError.None, L4Checksum.Complete(packet, 0));
        var tcp = new TcpHeader(new Ipv4Header(packet).Payload);
        Assert.True(tcp.TryGetMss(out _, out int at));
        Assert.Equal(1, at & 1);
        Assert.True(tcp.ClampMss(1200));
        Assert.True(L4Checksum.IsValid(packet, 0));
    }

    [Fact]
    public void Malformed_options_have_no_mss()
    {
        byte[] segment = Hex.Bytes("9c40 0050 01020304 00000000 6002 faf0 0000 0000 08010204");
        Assert.Equal(ParseError.None, TcpHeader.TryParse(segment, out var tcp));
        Assert.False(tcp.TryGetMss(out _, out _));
    }

    [Fact]
    public void Data_offset_below_5_is_bad_header_length_and_beyond_the_segment_is_truncated()
    {
        byte[] segment = Hex.Bytes("9c40 0050 01020304 00000000 4002 faf0 0000 0000");
        Assert.Equal(ParseError.BadHeaderLength, TcpHeader.TryParse(segment, out _));
        segment[12] = 0x60;
        Assert.Equal(ParseError.Truncated, TcpHeader.TryParse(segment, out _));
    }

    [Fact]
    public void Build_then_parse_round_trips_and_clamp_keeps_the_checksum() =>
        Properties.Check(
            from sport in Properties.UInt16
            from dport in Properties.UInt16
            from seq in Properties.UInt32
            from ack in Properties.UInt32
            from flags in Properties.Byte
            from mss in Gen.Choose(0, 9000)
            from clamp in Gen.Choose(500, 9000)
            from payload in Properties.Bytes(0, 50)
            from v6 in Gen.Elements(true, false)
            select (sport, dport, seq, ack, flags: (TcpFlags)flags, mss: (ushort)mss, clamp: (ushort)clamp, payload, v6),
            t =>
            {
                byte[] frame = new byte[200];
                int length = t.v6
                    ? PacketBuilder.Tcp(frame, Frames.V6, t.sport, t.dport, t.flags, t.seq, t.ack, 1000, t.mss, t.payload)
                    : PacketBuilder.Tcp(frame, Frames.V4, t.sport, t.dport, t.flags, t.seq, t.ack, 1000, t.mss, t.payload);
                var packet = frame.AsSpan(14, length - 14);
                var segment = t.v6 ? packet[Ipv6Header.Length..] : packet[Ipv4Header.MinLength..];
                Assert.True(L4Checksum.IsValid(packet, 0));
                Assert.Equal(ParseError.None, TcpHeader.TryParse(segment, out var tcp));
                Assert.Equal(t.sport, tcp.SourcePort);
                Assert.Equal(t.dport, tcp.DestinationPort);
                Assert.Equal(t.seq, tcp.SequenceNumber);
                Assert.Equal(t.ack, tcp.AcknowledgmentNumber);
                Assert.Equal(t.flags, tcp.Flags);
                Assert.Equal(t.payload, tcp.Payload.ToArray());
                Assert.Equal(t.mss != 0, tcp.TryGetMss(out _, out _));
                Assert.Equal(t.mss != 0 && t.mss > t.clamp, tcp.ClampMss(t.clamp));
                Assert.True(L4Checksum.IsValid(packet, 0));
            },
            runs: 200);

    [Fact]
    public void Random_segments_never_throw() =>
        Properties.Check(Properties.Bytes(0, 80), bytes =>
        {
            if (TcpHeader.TryParse(bytes, out var tcp) == ParseError.None)
            {
                tcp.TryGetMss(out _, out _);
                tcp.ClampMss(536);
                return tcp.HeaderLength <= bytes.Length;
            }

            return true;
        });
}
