using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Route;

public class L3CompilerTests
{
    private static L3Tables Compile(DataPlaneProgram program) => SnapshotCompiler.Compile(program, 1, TimeSpan.TicksPerSecond).L3;

    [Fact]
    public void The_l3_lab_program_compiles_and_hands_the_gateway_macs_to_the_bridge()
    {
        var snapshot = SnapshotCompiler.Compile(L3Program.Create(), 1, TimeSpan.TicksPerSecond);

        Assert.Equal(MacAddress.Parse(L3Program.Gw10Mac).Value, snapshot.Domains[0].GatewayMac);
        Assert.Equal(MacAddress.Parse(L3Program.Gw20Mac).Value, snapshot.Domains[1].GatewayMac);
        var gw10 = snapshot.L3.Gateway(0)!;
        Assert.Equal(1450, gw10.Mtu);
        Assert.True(gw10.Owns(Frames.Ip("10.10.0.1")));
        Assert.True(gw10.OnLink(Frames.Ip("10.10.0.77")));
        Assert.False(gw10.OnLink(Frames.Ip("10.20.0.77")));
        Assert.Equal(0, snapshot.L3.LocalIpv4[Frames.Ip("10.10.0.1")]);
        Assert.Equal(1, snapshot.L3.LocalIpv6[Ipv6Address.Parse("fd00:20::1")]);
    }

    [Fact]
    public void A_domain_without_a_gateway_stays_l2_only()
    {
        var snapshot = SnapshotCompiler.Compile(L2Fixture.LabProgram(), 1, TimeSpan.TicksPerSecond);

        Assert.Same(L3Tables.Empty, snapshot.L3);
        Assert.All(snapshot.Domains, d => Assert.Equal(0UL, d.GatewayMac));
    }

    [Theory]
    [InlineData("10.10.0.9", "10.10.0.0/24", "connected in bd10")]
    [InlineData("10.20.0.9", "10.20.0.0/24", "connected in bd20")]
    [InlineData("8.8.8.8", "0.0.0.0/0", "via 10.20.0.254 in bd20")]
    [InlineData("192.168.7.1", "192.168.0.0/16", "via 10.10.0.254 in bd10")]
    [InlineData("192.168.50.1", "192.168.50.0/24", "via 10.20.0.253 in bd20")]
    public void Ipv4_lookups_take_the_longest_prefix(string destination, string prefix, string nextHop)
    {
        var l3 = Compile(L3Program.Create(routes:
        [
            new RouteSpec { Prefix = "0.0.0.0/0", NextHop = "10.20.0.254" },
            new RouteSpec { Prefix = "192.168.0.0/16", NextHop = "10.10.0.254" },
            new RouteSpec { Prefix = "192.168.50.0/24", NextHop = "10.20.0.253", Domain = "bd20" },
        ]));

        var route = l3.Routes4[l3.Fib4.Lookup(Frames.Ip(destination))];

        Assert.Equal(prefix, route.Prefix);
        Assert.Equal(nextHop, route.NextHopText);
    }

    [Fact]
    public void Ipv6_lookups_take_the_longest_prefix_and_no_default_means_no_route()
    {
        var l3 = Compile(L3Program.Create(routes: [new RouteSpec { Prefix = "2001:db8::/32", NextHop = "fd00:10::fe" }]));

        Assert.Equal("fd00:20::/64", l3.Routes6[Lookup6(l3, "fd00:20::5")].Prefix);
        Assert.Equal("2001:db8::/32", l3.Routes6[Lookup6(l3, "2001:db8:1::1")].Prefix);
        Assert.Equal(-1, Lookup6(l3, "2001:db9::1"));
        Assert.Equal(-1, l3.Fib4.Lookup(Frames.Ip("8.8.8.8")));
    }

    private static int Lookup6(L3Tables l3, string address)
    {
        var a = Ipv6Address.Parse(address);
        return l3.Fib6.Lookup(a.High, a.Low);
    }

    [Fact]
    public void Every_l3_error_is_reported_at_once_with_its_path()
    {
        var program = L2Fixture.LabProgram() with
        {
            Gateways =
            [
                new GatewaySpec { Domain = "bd10", Mac = "01:00:5e:00:00:01", Addresses = ["10.10.0.1/33", "10.10.0.0/24", "fd00:10::1/64", "10.10.0.1/24"], MssClamp = 100 },
                new GatewaySpec { Domain = "bd30", Addresses = ["10.30.0.1/24"] },
                new GatewaySpec { Domain = "bd10", Addresses = ["10.11.0.1/24"] },
                new GatewaySpec
                {
                    Domain = "bd20",
                    Addresses = ["10.10.0.129/25", "10.20.0.1/24", "fd00:10::1/64"],
                    Bindings = [new IpMacBindingSpec("10.99.0.5", "02:00:00:00:00:01"), new IpMacBindingSpec("10.20.0.5", "nope")],
                },
            ],
            Routes =
            [
                new RouteSpec { Prefix = "0.0.0.0/0", NextHop = "10.99.0.1" },
                new RouteSpec { Prefix = "10.0.0.1/8", NextHop = "10.20.0.254" },
                new RouteSpec { Prefix = "10.20.0.0/24", NextHop = "10.10.0.254" },
                new RouteSpec { Prefix = "192.168.0.0/16", NextHop = "fd00:10::fe" },
                new RouteSpec { Prefix = "192.168.0.0/16", NextHop = "10.20.0.1" },
                new RouteSpec { Prefix = "172.16.0.0/12", NextHop = "10.10.0.254", Domain = "bd20" },
                new RouteSpec { Prefix = "172.16.0.0/12", NextHop = "10.10.0.254", Domain = "bd99" },
                new RouteSpec { Prefix = "bogus", NextHop = "10.10.0.254" },
            ],
        };

        var errors = SnapshotCompiler.Validate(program);

        Assert.Equal(
            [
                "gateways[0].mac",
                "gateways[0].addresses[0]",
                "gateways[0].addresses[1]",
                "gateways[0].mssClamp",
                "gateways[1].domain",
                "gateways[2].domain",
                "gateways[3].addresses[0]",
                "gateways[3].addresses[2]",
                "gateways[3].bindings[0].ip",
                "gateways[3].bindings[1].mac",
                "routes[0].nextHop",
                "routes[1].prefix",
                "routes[2].prefix",
                "routes[3].nextHop",
                "routes[4].nextHop",
                "routes[5].nextHop",
                "routes[6].domain",
                "routes[7].prefix",
            ],
            errors.Select(e => e.Path));
        Assert.Contains(errors, e => e.ToString() == "gateways[0].addresses[0]: '10.10.0.1/33' is not an IPv4 or IPv6 prefix (such as 10.10.0.1/24 or fd00:10::1/64)");
        Assert.Contains(errors, e => e.ToString() == "routes[0].nextHop: next hop 10.99.0.1 is not on any connected subnet (add a gateway address in its subnet)");
        Assert.Contains(errors, e => e.ToString() == "routes[1].prefix: '10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)");
        Assert.Contains(errors, e => e.ToString() == "gateways[3].addresses[0]: subnet 10.10.0.128/25 overlaps 10.10.0.0/24 of gateways[0].addresses[3]");
        Assert.Contains(errors, e => e.ToString() == "gateways[3].addresses[2]: address fd00:10::1 is configured twice");
    }
}
