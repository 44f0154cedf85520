namespace Isthmus.Packets.Tests;

public class MacAddressTests
{
    [Fact]
    public void Parses_and_prints_colon_notation()
    {
        var mac = MacAddress.Parse("00:50:56:AB:cd:0f");
        Assert.Equal(0x005056abcd0fUL, mac.Value);
        Assert.Equal("00:50:56:ab:cd:0f", mac.ToString());
        Assert.Equal(mac, MacAddress.Parse("00-50-56-ab-cd-0f"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("00:50:56:ab:cd")]
    [InlineData("00:50:56:ab:cd:0g")]
    [InlineData("00:50-56:ab:cd:0f")]
    [InlineData("0050.56ab.cd0f...")]
    public void Rejects_malformed_text(string text) => Assert.False(MacAddress.TryParse(text, out _));

    [Fact]
    public void Classifies_broadcast_multicast_and_unicast()
    {
        Assert.True(MacAddress.Broadcast.IsBroadcast);
        Assert.True(MacAddress.Broadcast.IsMulticast);
        Assert.True(MacAddress.Parse("01:00:5e:00:00:01").IsMulticast);
        Assert.True(MacAddress.Parse("33:33:00:00:00:01").IsMulticast);
        Assert.True(MacAddress.Parse("00:50:56:00:00:01").IsUnicast);
        Assert.True(MacAddress.Parse("02:00:00:00:00:01").IsLocallyAdministered);
        Assert.False(MacAddress.Parse("02:00:00:00:00:01").IsMulticast);
    }

    [Fact]
    public void Reads_and_writes_wire_order()
    {
        byte[] wire = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        var mac = MacAddress.Read(wire);
        Assert.Equal("aa:bb:cc:dd:ee:ff", mac.ToString());
        byte[] written = new byte[6];
        mac.WriteTo(written);
        Assert.Equal(wire, written);
    }

    [Fact]
    public void Text_and_wire_round_trip_for_any_address() =>
        Properties.Check(Properties.Mac, mac =>
        {
            Span<byte> wire = stackalloc byte[6];
            mac.WriteTo(wire);
            return MacAddress.Read(wire) == mac
                && MacAddress.Parse(mac.ToString()) == mac
                && mac.GetHashCode() == new MacAddress(mac.Value).GetHashCode();
        });
}
