using System.Buffers.Binary;
using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class L4ChecksumTests
{
    [Fact]
    public void Completes_a_checksum_partial_udp_frame_from_veth()
    {
        // CHECKSUM_PARTIAL: the kernel left only the folded pseudo-header sum in the field.
        byte[] frame = new byte[128];
        int length = PacketBuilder.Udp(frame, Frames.V4 with { Vlan = VlanTag.Customer(20) }, 5000, 53, "query"u8);
        int udpAt = 18 + 20;
        ushort partial = Checksum.Fold(Checksum.PseudoHeaderSum(Frames.V4.SourceIp, Frames.V4.DestinationIp, IpProtocol.Udp, 13));
        ushort expected = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(udpAt + 6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(udpAt + 6), partial);
        Assert.False(L4Checksum.IsValid(frame.AsSpan(0, length), 18));

        Assert.True(L4Checksum.TryComplete(frame.AsSpan(0, length)));
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(udpAt + 6)));
        Assert.True(L4Checksum.IsValid(frame.AsSpan(0, length), 18));
    }

    [Fact]
    public void Computed_zero_udp_checksum_is_sent_as_ffff()
    {
        // Choose a payload word that makes the checksum come out as 0 and check RFC 768's rule.
        byte[] frame = new byte[128];
        int length = PacketBuilder.Udp(frame, Frames.V4, 1, 2, [0, 0]);
        var udp = frame.AsSpan(34, length - 34);
        udp[6] = 0;
        udp[7] = 0;
        ushort checksum = Checksum.Finish(Checksum.Add(udp, Checksum.PseudoHeaderSum(Frames.V4.SourceIp, Frames.V4.DestinationIp, IpProtocol.Udp, (ushort)udp.Length)));
        BinaryPrimitives.WriteUInt16BigEndian(udp[8..], checksum); // payload now cancels the sum
        Assert.Equal(ParseError.None, L4Checksum.Complete(frame.AsSpan(0, length), 14));
        Assert.Equal(0xFFFF, BinaryPrimitives.ReadUInt16BigEndian(udp[6..]));
        Assert.True(L4Checksum.IsValid(frame.AsSpan(0, length), 14));
    }

    [Fact]
    public void Fragments_and_unknown_protocols_are_refused()
    {
        byte[] frame = new byte[128];
        int length = PacketBuilder.Udp(frame, Frames.V4, 1, 2, "x"u8);
        var ip = new Ipv4Header(frame.AsSpan(14, length - 14));
        ip.MoreFragments = true;
        Assert.Equal(ParseError.Fragmented, L4Checksum.Complete(frame.AsSpan(0, length), 14));
        ip.MoreFragments = false;
        ip.Protocol = IpProtocol.Gre;
        Assert.Equal(ParseError.UnsupportedProtocol, L4Checksum.Complete(frame.AsSpan(0, length), 14));
        Assert.False(L4Checksum.TryComplete(Hex.Bytes("ffffffffffff 005056c00008 0806 0001")));
    }

    [Fact]
    public void Complete_restores_any_corrupted_checksum() =>
        Properties.Check(
            from kind in Gen.Choose(0, 5)
            from payload in Properties.Bytes(0, 80)
            from garbage in Properties.UInt16
            select (kind, payload, garbage),
            t =>
            {
                byte[] frame = new byte[200];
                int length = t.kind switch
                {
                    0 => PacketBuilder.Udp(frame, Frames.V4, 1234, 80, t.payload),
                    1 => PacketBuilder.Udp(frame, Frames.V6, 1234, 80, t.payload),
                    2 => PacketBuilder.Tcp(frame, Frames.V4, 1234, 80, TcpFlags.Ack | TcpFlags.Psh, payload: t.payload),
                    3 => PacketBuilder.Tcp(frame, Frames.V6, 1234, 80, TcpFlags.Ack, payload: t.payload),
                    4 => PacketBuilder.IcmpEcho(frame, Frames.V4, 7, 9, t.payload),
                    _ => PacketBuilder.Icmpv6Echo(frame, Frames.V6, 7, 9, t.payload),
                };
                var packet = frame.AsSpan(14, length - 14);
                int l4 = (packet[0] >> 4) == 4 ? 20 : 40;
                int checksumAt = l4 + (t.kind is 0 or 1 ? 6 : t.kind is 2 or 3 ? 16 : 2);
                byte[] original = packet.ToArray();
                BinaryPrimitives.WriteUInt16BigEndian(packet[checksumAt..], t.garbage);
                Assert.Equal(ParseError.None, L4Checksum.Complete(packet, 0));
                Assert.Equal(original, packet.ToArray());
            });
}
