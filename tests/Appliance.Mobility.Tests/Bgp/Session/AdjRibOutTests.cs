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
    public void Reconciling_only_the_changed_prefixes_gives_what_a_full_reconcile_gives()
    {
        // 2,000 random steps over 24 prefixes (IPv4 and IPv6), each present or not with one of three community sets.
        var random = new Random(6);
        var prefixes = Enumerable.Range(0, 24).Select(i => IPNetwork.Parse(i % 3 == 0 ? $"2001:db8::{i}/128" : $"10.0.0.{i}/32")).ToArray();
        var full = new AdjRibOut();
        var incremental = new AdjRibOut();
        var before = new Dictionary<IPNetwork, Advertisement>();
        for (var step = 0; step < 2000; step++)
        {
            var after = new Dictionary<IPNetwork, Advertisement>(before);
            for (var k = random.Next(1, 4); k > 0; k--)
            {
                var prefix = prefixes[random.Next(prefixes.Length)];
                var variant = random.Next(4);
                if (variant == 3)
                {
                    after.Remove(prefix);
                }
                else
                {
                    after[prefix] = new Advertisement(prefix) { Communities = variant == 0 ? [] : [new Community(65001, (ushort)variant)] };
                }
            }

            var dirty = after.Where(kv => !before.TryGetValue(kv.Key, out var old) || !old.Equals(kv.Value)).Select(kv => kv.Key)
                .Concat(before.Keys.Where(p => !after.ContainsKey(p))).ToList();
            var expected = full.Reconcile(after);
            var actual = incremental.Reconcile(after, dirty);

            Assert.Equal(expected.Announce.OrderBy(a => a.Prefix.ToString()), actual.Announce.OrderBy(a => a.Prefix.ToString()));
            Assert.Equal(expected.Withdraw.Select(p => p.ToString()).Order(), actual.Withdraw.Select(p => p.ToString()).Order());
            Assert.Equal(full.Routes.OrderBy(a => a.Prefix.ToString()), incremental.Routes.OrderBy(a => a.Prefix.ToString()));
            before = after;
        }
    }

    [Fact]
    public void A_dirty_prefix_not_desired_is_withdrawn_once_and_clean_ones_are_left_alone()
    {
        var rib = new AdjRibOut();
        rib.Reconcile(Desired(Route("10.0.0.1/32"), Route("10.0.0.2/32")));

        // 10.0.0.2 is not in this desired view, but it is not dirty: it stays.
        var diff = rib.Reconcile(Desired(), [IPNetwork.Parse("10.0.0.1/32"), IPNetwork.Parse("10.0.0.1/32")]);
        Assert.Equal([IPNetwork.Parse("10.0.0.1/32")], diff.Withdraw);
        Assert.Empty(diff.Announce);
        Assert.Equal([IPNetwork.Parse("10.0.0.2/32")], rib.Routes.Select(r => r.Prefix));
    }

    [Fact]
    public void The_version_moves_on_every_change_and_only_then()
    {
        var rib = new AdjRibOut();
        var v0 = rib.Version;
        rib.Reconcile(Desired(Route("10.0.0.1/32")));
        var v1 = rib.Version;
        rib.Reconcile(Desired(Route("10.0.0.1/32")));
        rib.Reconcile(Desired(Route("10.0.0.1/32")), [IPNetwork.Parse("10.0.0.1/32"), IPNetwork.Parse("10.0.0.9/32")]);
        Assert.Equal(v1, rib.Version);
        rib.Reconcile(Desired(), [IPNetwork.Parse("10.0.0.1/32")]);
        var v2 = rib.Version;
        rib.Clear();
        Assert.True(v0 < v1 && v1 < v2 && v2 < rib.Version);
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
