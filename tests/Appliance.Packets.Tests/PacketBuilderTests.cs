using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class PacketBuilderTests
{
    [Fact]
    public void Udp_over_ipv4_matches_the_hand_built_bytes()
    {
        var spec = new Ipv4FrameSpec(
            MacAddress.Parse("00:50:56:00:00:01"),
            MacAddress.Parse("00:50:56:00:00:02"),
            Ipv4Address.Parse("192.168.1.10"),
            Ipv4Address.Parse("8.8.8.8"));
        byte[] frame = new byte[64];
        int length = PacketBuilder.Udp(frame, spec, 53000, 53, "isthmus"u8);
        Assert.Equal(
            Hex.Bytes("005056000002 005056000001 0800" +
                      "4500 0023 0000 4000 4011 6908 c0a8010a 08080808" +
                      "cf08 0035 000f a07e 697374686d7573"),
            frame[..length]);
    }

    [Fact]
    public void Udp_round_trips_over_both_ip_versions_and_vlans() =>
        Properties.Check(
            from sport in Properties.UInt16
            from dport in Properties.UInt16
            from payload in Properties.Bytes(0, 100)
            from vid in Gen.Choose(-1, 4095)
            from v6 in Gen.Elements(true, false)
            select (sport, dport, payload, vid, v6),
            t =>
            {
                VlanTag? vlan = t.vid < 0 ? null : VlanTag.Customer((ushort)t.vid);
                byte[] frame = new byte[200];
                int length = t.v6
                    ? PacketBuilder.Udp(frame, Frames.V6 with { Vlan = vlan }, t.sport, t.dport, t.payload)
                    : PacketBuilder.Udp(frame, Frames.V4 with { Vlan = vlan }, t.sport, t.dport, t.payload);
                Assert.Equal(ParseError.None, VlanTags.TryParse(frame.AsSpan(0, length), out var tags));
                Assert.Equal(vlan is null ? 0 : 1, tags.Count);
                var packet = frame.AsSpan(tags.PayloadOffset, length - tags.PayloadOffset);
                Span<byte> l4;
                if (t.v6)
                {
                    Assert.Equal(EtherType.Ipv6, tags.PayloadEtherType);
                    Assert.Equal(ParseError.None, Ipv6Header.TryParse(packet, out var ip));
                    Assert.Equal(Frames.V6.SourceIp, ip.Source);
                    l4 = ip.Payload;
                }
                else
                {
                    Assert.Equal(EtherType.Ipv4, tags.PayloadEtherType);
                    Assert.Equal(ParseError.None, Ipv4Header.TryParse(packet, out var ip));
                    Assert.True(ip.IsHeaderChecksumValid);
                    Assert.Equal(Frames.V4.DestinationIp, ip.Destination);
                    l4 = ip.Payload;
                }

                Assert.Equal(ParseError.None, UdpHeader.TryParse(l4, out var udp));
                Assert.Equal(t.sport, udp.SourcePort);
                Assert.Equal(t.dport, udp.DestinationPort);
                Assert.Equal(t.payload, udp.Payload.ToArray());
                Assert.NotEqual(0, udp.Checksum);
                Assert.True(L4Checksum.IsValid(packet, 0));
            });

    [Fact]
    public void Vxlan_encapsulation_round_trips_the_inner_frame() =>
        Properties.Check(
            from vni in Gen.Choose(0, (int)VxlanHeader.MaxVni)
            from sport in Properties.UInt16
            from payload in Properties.Bytes(0, 60)
            from checksum in Gen.Elements(true, false)
            select (vni: (uint)vni, sport, payload, checksum),
            t =>
            {
                byte[] inner = new byte[128];
                int innerLength = PacketBuilder.Udp(inner, Frames.V4, 1, 2, t.payload);
                var underlay = new Ipv4FrameSpec(MacAddress.Parse("00:50:56:00:00:01"), MacAddress.Parse("00:50:56:00:00:02"), Ipv4Address.Parse("172.16.0.1"), Ipv4Address.Parse("172.16.0.2"));
                byte[] frame = new byte[256];
                int length = PacketBuilder.Vxlan(frame, underlay, t.sport, t.vni, inner.AsSpan(0, innerLength), udpChecksum: t.checksum);
                Assert.Equal(PacketBuilder.VxlanOverhead + innerLength, length);

                Assert.Equal(ParseError.None, Ipv4Header.TryParse(frame.AsSpan(14, length - 14), out var ip));
                Assert.True(ip.IsHeaderChecksumValid);
                Assert.Equal(IpProtocol.Udp, ip.Protocol);
                Assert.Equal(ParseError.None, UdpHeader.TryParse(ip.Payload, out var udp));
                Assert.Equal(VxlanHeader.DefaultPort, udp.DestinationPort);
                Assert.Equal(t.sport, udp.SourcePort);
                Assert.Equal(t.checksum, udp.Checksum != 0);
                Assert.True(L4Checksum.IsValid(frame.AsSpan(14, length - 14), 0));
                Assert.Equal(ParseError.None, VxlanHeader.TryParse(udp.Payload, out var vxlan));
                Assert.Equal(t.vni, vxlan.Vni);
                Assert.Equal(inner[..innerLength], vxlan.InnerFrame.ToArray());
            });

    [Fact]
    public void Vxlan_encapsulates_in_place_when_the_inner_frame_already_sits_after_the_headroom()
    {
        byte[] buffer = new byte[256];
        int innerLength = PacketBuilder.IcmpEcho(buffer.AsSpan(PacketBuilder.VxlanOverhead), Frames.V4, 1, 1, "ping"u8);
        byte[] inner = buffer.AsSpan(PacketBuilder.VxlanOverhead, innerLength).ToArray();
        int length = PacketBuilder.Vxlan(buffer, Frames.V4, 49152, 5010, buffer.AsSpan(PacketBuilder.VxlanOverhead, innerLength));
        Assert.Equal(ParseError.None, VxlanHeader.TryParse(buffer.AsSpan(42, length - 42), out var vxlan));
        Assert.Equal(5010u, vxlan.Vni);
        Assert.Equal(inner, vxlan.InnerFrame.ToArray());
    }

    [Fact]
    public void Every_truncation_of_every_built_frame_decodes_without_throwing()
    {
        byte[] frame = new byte[256];
        byte[] inner = new byte[128];
        int innerLength = PacketBuilder.Tcp(inner, Frames.V4, 1, 2, TcpFlags.Syn, mss: 1460);
        var tagged = Frames.V4 with { Vlan = VlanTag.Service(100) };
        for (int kind = 0; kind < 9; kind++)
        {
            int length = kind switch
            {
                0 => PacketBuilder.Udp(frame, tagged, 1, 2, "payload"u8),
                1 => PacketBuilder.Udp(frame, Frames.V6, 1, 2, "payload"u8),
                2 => PacketBuilder.Tcp(frame, Frames.V4, 1, 2, TcpFlags.Syn, mss: 1460),
                3 => PacketBuilder.Tcp(frame, Frames.V6, 1, 2, TcpFlags.Syn, mss: 1460),
                4 => PacketBuilder.IcmpEcho(frame, tagged, 1, 2, "abc"u8),
                5 => PacketBuilder.Icmpv6Echo(frame, Frames.V6, 1, 2, "abc"u8),
                6 => PacketBuilder.GarpRequest(frame, Frames.HostA, Frames.V4.SourceIp),
                7 => PacketBuilder.RarpRequest(frame, Frames.HostA, VlanTag.Customer(5)),
                _ => PacketBuilder.Vxlan(frame, tagged, 1, 42, inner.AsSpan(0, innerLength)),
            };

            Assert.Equal(ParseError.None, FrameDecoder.Decode(frame.AsSpan(0, length)));
            for (int cut = 0; cut < length; cut++)
            {
                var error = FrameDecoder.Decode(frame.AsSpan(0, cut).ToArray());
                Assert.NotEqual(ParseError.None, error);
            }
        }
    }

    [Fact]
    public void Random_frames_never_throw() =>
        Properties.Check(
            from body in Properties.Bytes(0, 120)
            from type in Gen.Elements(EtherType.Ipv4, EtherType.Ipv6, EtherType.Arp, EtherType.Rarp, EtherType.Vlan, EtherType.QinQ, (ushort)0x1234)
            select (body, type),
            t =>
            {
                byte[] frame = new byte[14 + t.body.Length];
                EthernetHeader.Write(frame, MacAddress.Broadcast, Frames.HostA, t.type);
                t.body.CopyTo(frame, 14);
                if (t.body.Length > 0 && t.type == EtherType.Ipv4)
                {
                    frame[14] = (byte)(0x45 + (t.body[0] % 3));
                }
                else if (t.body.Length > 0 && t.type == EtherType.Ipv6)
                {
                    frame[14] = 0x60;
                }

                FrameDecoder.Decode(frame);
                L4Checksum.TryComplete(frame);
            },
            runs: 1000);
}
