namespace Isthmus.Packets.Tests;

public class Ipv4AddressTests
{
    [Fact]
    public void Parses_and_prints_dotted_quad()
    {
        var address = Ipv4Address.Parse("192.168.0.199");
        Assert.Equal(0xc0a800c7u, address.Value);
        Assert.Equal("192.168.0.199", address.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("1.2.3")]
    [InlineData("1.2.3.4.5")]
    [InlineData("256.1.1.1")]
    [InlineData("01.2.3.4")]
    [InlineData("1.2.3.4 ")]
    [InlineData("1..3.4")]
    [InlineData("1.2.3.-4")]
    public void Rejects_malformed_text(string text) => Assert.False(Ipv4Address.TryParse(text, out _));

    [Fact]
    public void Knows_multicast_broadcast_and_prefixes()
    {
        Assert.True(Ipv4Address.Parse("224.0.0.251").IsMulticast);
        Assert.True(Ipv4Address.Broadcast.IsBroadcast);
        Assert.True(Ipv4Address.Parse("10.1.2.3").IsInPrefix(Ipv4Address.Parse("10.0.0.0"), 8));
        Assert.False(Ipv4Address.Parse("10.1.2.3").IsInPrefix(Ipv4Address.Parse("10.0.0.0"), 16));
    }

    [Fact]
    public void Text_and_wire_round_trip_for_any_address() =>
        Properties.Check(Properties.Ipv4, address =>
        {
            Span<byte> wire = stackalloc byte[4];
            address.WriteTo(wire);
            return Ipv4Address.Read(wire) == address && Ipv4Address.Parse(address.ToString()) == address;
        });
}
