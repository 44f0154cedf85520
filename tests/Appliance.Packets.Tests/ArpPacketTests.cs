using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

public class ArpPacketTests
{
    // Who has 192.168.1.2? Tell 192.168.1.1, padded to 60 bytes as it arrives from a switch.
    private const string Request =
        "ffffffffffff 005056c00008 0806" +
        "0001 0800 06 04 0001 005056c00008 c0a80101 000000000000 c0a80102" +
        "000000000000000000000000000000000000";

    [Fact]
    public void Reads_a_captured_request()
    {
        byte[] frame = Hex.Bytes(Request);
        Assert.Equal(ParseError.None, ArpPacket.TryParse(frame.AsSpan(EthernetHeader.Length), out var arp));
        Assert.Equal(ArpOpcode.Request, arp.Opcode);
        Assert.Equal(MacAddress.Parse("00:50:56:c0:00:08"), arp.SenderMac);
        Assert.Equal(Ipv4Address.Parse("192.168.1.1"), arp.SenderIp);
        Assert.Equal(MacAddress.Zero, arp.TargetMac);
        Assert.Equal(Ipv4Address.Parse("192.168.1.2"), arp.TargetIp);
        Assert.False(arp.IsGratuitous);
    }

    [Fact]
    public void Non_ethernet_ipv4_arp_is_unsupported()
    {
        byte[] body = Hex.Bytes(Request)[EthernetHeader.Length..];
        body[0] = 0x00;
        body[1] = 0x06; // IEEE 802 hardware type
        Assert.Equal(ParseError.UnsupportedArpFormat, ArpPacket.TryParse(body, out _));
    }

    [Fact]
    public void Every_truncation_is_reported()
    {
        byte[] body = Hex.Bytes(Request)[EthernetHeader.Length..][..ArpPacket.Length];
        for (int length = 0; length < body.Length; length++)
        {
            Assert.Equal(ParseError.Truncated, ArpPacket.TryParse(body.AsSpan(0, length), out _));
        }
    }

    [Fact]
    public void Garp_request_has_sender_ip_equal_to_target_ip_and_zero_target_mac()
    {
        byte[] frame = new byte[64];
        var mac = MacAddress.Parse("00:50:56:aa:bb:cc");
        var ip = Ipv4Address.Parse("10.1.1.5");
        int length = PacketBuilder.GarpRequest(frame, mac, ip);
        Assert.Equal(42, length);
        var eth = new EthernetHeader(frame.AsSpan(0, length));
        Assert.True(eth.Destination.IsBroadcast);
        Assert.Equal(mac, eth.Source);
        Assert.Equal(EtherType.Arp, eth.EtherType);
        Assert.Equal(ParseError.None, ArpPacket.TryParse(eth.Payload, out var arp));
        Assert.Equal(ArpOpcode.Request, arp.Opcode);
        Assert.True(arp.IsGratuitous);
        Assert.Equal(MacAddress.Zero, arp.TargetMac);
    }

    [Fact]
    public void Garp_reply_is_broadcast_with_the_senders_own_mac_as_target()
    {
        byte[] frame = new byte[64];
        var mac = MacAddress.Parse("00:50:56:aa:bb:cc");
        int length = PacketBuilder.GarpReply(frame, mac, Ipv4Address.Parse("10.1.1.5"), VlanTag.Customer(10));
        Assert.Equal(46, length);
        Assert.Equal(ParseError.None, VlanTags.TryParse(frame.AsSpan(0, length), out var tags));
        Assert.Equal(10, tags.Outer.VlanId);
        Assert.Equal(EtherType.Arp, tags.PayloadEtherType);
        Assert.Equal(ParseError.None, ArpPacket.TryParse(frame.AsSpan(tags.PayloadOffset, length - tags.PayloadOffset), out var arp));
        Assert.Equal(ArpOpcode.Reply, arp.Opcode);
        Assert.True(arp.IsGratuitous);
        Assert.Equal(mac, arp.TargetMac);
        Assert.True(new EthernetHeader(frame).Destination.IsBroadcast);
    }

    [Fact]
    public void Rarp_request_after_vmotion_matches_the_esxi_shape()
    {
        byte[] frame = new byte[64];
        var mac = MacAddress.Parse("00:50:56:aa:bb:cc");
        int length = PacketBuilder.RarpRequest(frame, mac);
        Assert.Equal(
            Hex.Bytes("ffffffffffff 005056aabbcc 8035 0001 0800 0604 0003 005056aabbcc 00000000 005056aabbcc 00000000"),
            frame[..length]);
    }

    [Fact]
    public void Build_then_parse_round_trips() =>
        Properties.Check(
            from op in Gen.Elements(ArpOpcode.Request, ArpOpcode.Reply, ArpOpcode.RarpRequest, ArpOpcode.RarpReply)
            from senderMac in Properties.Mac
            from senderIp in Properties.Ipv4
            from targetMac in Properties.Mac
            from targetIp in Properties.Ipv4
            select (op, senderMac, senderIp, targetMac, targetIp),
            t =>
            {
                byte[] frame = new byte[64];
                int length = PacketBuilder.Arp(frame, t.op, t.senderMac, t.senderIp, t.targetMac, t.targetIp);
                var eth = new EthernetHeader(frame.AsSpan(0, length));
                bool rarp = t.op is ArpOpcode.RarpRequest or ArpOpcode.RarpReply;
                Assert.Equal(rarp ? EtherType.Rarp : EtherType.Arp, eth.EtherType);
                Assert.Equal(ParseError.None, ArpPacket.TryParse(eth.Payload, out var arp));
                Assert.Equal(t.op, arp.Opcode);
                Assert.Equal(t.senderMac, arp.SenderMac);
                Assert.Equal(t.senderIp, arp.SenderIp);
                Assert.Equal(t.targetMac, arp.TargetMac);
                Assert.Equal(t.targetIp, arp.TargetIp);
            });
}
