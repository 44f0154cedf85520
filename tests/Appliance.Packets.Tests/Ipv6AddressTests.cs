namespace Isthmus.Packets.Tests;

public class Ipv6AddressTests
{
    [Theory]
    [InlineData("2001:db8::1", "2001:db8::1")]
    [InlineData("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1")]
    [InlineData("::", "::")]
    [InlineData("fe80::1:2", "fe80::1:2")]
    [InlineData("::ffff:192.0.2.1", "::ffff:192.0.2.1")]
    public void Parses_and_prints_rfc5952_text(string text, string canonical)
    {
        var address = Ipv6Address.Parse(text);
        Assert.Equal(canonical, address.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("192.0.2.1")]
    [InlineData("2001:db8::1::2")]
    [InlineData("fe80::1%eth0")]
    [InlineData("2001:db8:g::1")]
    public void Rejects_malformed_text(string text) => Assert.False(Ipv6Address.TryParse(text, out _));

    [Fact]
    public void Halves_hold_network_order()
    {
        var address = Ipv6Address.Parse("2001:db8:1:2:3:4:5:6");
        Assert.Equal(0x20010db800010002UL, address.High);
        Assert.Equal(0x0003000400050006UL, address.Low);
        Assert.True(Ipv6Address.Parse("ff02::1").IsMulticast);
        Assert.True(Ipv6Address.Parse("fe80::1").IsLinkLocal);
        Assert.False(Ipv6Address.Parse("fec0::1").IsLinkLocal);
    }

    [Fact]
    public void Text_and_wire_round_trip_for_any_address() =>
        Properties.Check(Properties.Ipv6, address =>
        {
            Span<byte> wire = stackalloc byte[16];
            address.WriteTo(wire);
            return Ipv6Address.Read(wire) == address && Ipv6Address.Parse(address.ToString()) == address;
        });
}
