namespace Isthmus.Packets.Tests;

public class EthernetHeaderTests
{
    [Fact]
    public void Reads_a_captured_arp_broadcast_header()
    {
        byte[] frame = Hex.Bytes("ffffffffffff 005056c00008 0806 0001");
        Assert.Equal(ParseError.None, EthernetHeader.TryParse(frame, out var eth));
        Assert.True(eth.Destination.IsBroadcast);
        Assert.Equal(MacAddress.Parse("00:50:56:c0:00:08"), eth.Source);
        Assert.Equal(EtherType.Arp, eth.EtherType);
        Assert.Equal(2, eth.Payload.Length);
    }

    [Fact]
    public void Setters_rewrite_the_macs_in_place()
    {
        byte[] frame = new byte[EthernetHeader.Length];
        EthernetHeader.Write(frame, MacAddress.Broadcast, MacAddress.Zero, EtherType.Ipv4);
        var eth = new EthernetHeader(frame);
        eth.Source = MacAddress.Parse("02:00:00:00:00:01");
        eth.Destination = MacAddress.Parse("02:00:00:00:00:02");
        Assert.Equal(Hex.Bytes("020000000002 020000000001 0800"), frame);
    }

    [Fact]
    public void Every_length_below_14_is_truncated()
    {
        for (int length = 0; length < EthernetHeader.Length; length++)
        {
            Assert.Equal(ParseError.Truncated, EthernetHeader.TryParse(new byte[length], out _));
        }
    }
}
