using System.Net;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Session;

namespace Isthmus.Mobility.Tests.Bgp.Session;

/// <summary>MetalLB's model: the desired set is reconciled against what the peer was told.</summary>
public class AdjRibOutTests
{
    private static Advertisement Route(string cidr, params Community[] communities) =>
        new(IPNetwork.Parse(cidr)) { Communities = communities };

    private static Dictionary<IPNetwork, Advertisement> Desired(params Advertisement[] routes) =>
        routes.ToDictionary(r => r.Prefix);

    [Fact]
    public void First_reconcile_announces_everything()
    {
        var rib = new AdjRibOut();
        var diff = rib.Reconcile(Desired(Route("10.0.0.1/32"), Route("2001:db8::1/128")));
        Assert.Equal(2, diff.Announce.Count);
        Assert.Empty(diff.Withdraw);
        Assert.Equal(2, rib.Count);
    }

    [Fact]
    public void Unchanged_set_sends_nothing()
    {
        var rib = new AdjRibOut();
        rib.Reconcile(Desired(Route("10.0.0.1/32", new Community(65001, 1))));
        Assert.True(rib.Reconcile(Desired(Route("10.0.0.1/32", new Community(65001, 1)))).IsEmpty);
    }

    [Fact]
    public void New_is_announced_gone_is_withdrawn_changed_is_reannounced()
    {
        var rib = new AdjRibOut();
        rib.Reconcile(Desired(Route("10.0.0.1/32"), Route("10.0.0.2/32"), Route("10.0.0.3/32")));
        var diff = rib.Reconcile(Desired(
            Route("10.0.0.1/32"),
            Route("10.0.0.2/32", new Community(65001, 7)),
            Route("10.0.0.4/32")));

        Assert.Equal(["10.0.0.2/32", "10.0.0.4/32"], diff.Announce.Select(a => a.Prefix.ToString()).Order());
        Assert.Equal([IPNetwork.Parse("10.0.0.3/32")], diff.Withdraw);
        Assert.Equal(3, rib.Count);
    }

    [Fact]
    public void Empty_set_withdraws_all_and_clear_forgets()
    {
        var rib = new AdjRibOut();
        rib.Reconcile(Desired(Route("10.0.0.1/32"), Route("10.0.0.2/32")));
        Assert.Equal(2, rib.Reconcile(Desired()).Withdraw.Count);
        rib.Reconcile(Desired(Route("10.0.0.1/32")));
        rib.Clear();
        Assert.Single(rib.Reconcile(Desired(Route("10.0.0.1/32"))).Announce);
    }

    [Fact]
    public void Advertisements_compare_lists_by_content()
    {
        var a = new Advertisement(IPNetwork.Parse("10.0.0.1/32")) { LargeCommunities = [new LargeCommunity(1, 2, 3)] };
        var b = new Advertisement(IPNetwork.Parse("10.0.0.1/32")) { LargeCommunities = [new LargeCommunity(1, 2, 3)] };
        Assert.Equal(a, b);
        Assert.NotEqual(a, b with { NextHop = IPAddress.Parse("192.0.2.9") });
    }
}
