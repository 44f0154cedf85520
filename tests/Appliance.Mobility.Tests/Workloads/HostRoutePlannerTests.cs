using System.Collections.Immutable;
using FsCheck;
using FsCheck.Fluent;
using System.Net;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Workloads;

namespace Isthmus.Mobility.Tests.Workloads;

public sealed class HostRoutePlannerTests
{
    private static readonly WorkloadLocation Remote = new("und0/vni5010", 0xC000_0202, Local: false, "dc2");
    private static readonly WorkloadLocation Local = new("acc10", 0, Local: true, "dc1");
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static Workload At(ulong mac, WorkloadLocation location, int seconds = 0, bool frozen = false, params string[] addresses) =>
        new(mac, location, 0, [.. addresses.Select(IPAddress.Parse)], T0.AddSeconds(seconds), frozen, []);

    private static readonly HostRoutePolicy Policy = new()
    {
        NextHopIpv4 = IPAddress.Parse("10.255.0.1"),
        Communities = [new Community(65001, 100)],
        LargeCommunities = [new LargeCommunity(65001, 1, 2)],
    };

    [Fact]
    public void A_local_workload_gets_a_host_route_per_address_with_the_configured_attributes()
    {
        var plan = HostRoutePlanner.Plan([At(1, Local, 0, false, "10.10.0.50", "fd00:10::50")], [], Policy);

        Assert.Equal(2, plan.Desired.Count);
        var v4 = plan.Desired[IPNetwork.Parse("10.10.0.50/32")];
        Assert.Equal(IPAddress.Parse("10.255.0.1"), v4.NextHop);
        Assert.Equal([new Community(65001, 100)], v4.Communities);
        Assert.Equal([new LargeCommunity(65001, 1, 2)], v4.LargeCommunities);
        Assert.True(plan.Desired.ContainsKey(IPNetwork.Parse("fd00:10::50/128")));
    }

    [Fact]
    public void Remote_and_frozen_workloads_are_not_announced()
    {
        var plan = HostRoutePlanner.Plan([At(1, Remote, 0, false, "10.10.0.50"), At(2, Local, 0, frozen: true, "10.10.0.51")], [], Policy);

        Assert.Empty(plan.Desired);
    }

    [Fact]
    public void Up_vips_are_announced()
    {
        var plan = HostRoutePlanner.Plan([], [IPAddress.Parse("203.0.113.80")], Policy);

        Assert.Equal([IPNetwork.Parse("203.0.113.80/32")], plan.Desired.Keys);
    }

    [Fact]
    public void The_cap_keeps_the_oldest_moves_and_counts_the_rest()
    {
        var workloads = Enumerable.Range(0, 10).Select(i => At((ulong)i + 1, Local, 100 - i, false, $"10.10.0.{i + 10}")).ToList();

        var plan = HostRoutePlanner.Plan(workloads, [], Policy with { MaxHostRoutes = 3 });

        Assert.Equal(3, plan.Desired.Count);
        Assert.Equal(7, plan.Capped);
        Assert.Equal(
            ["10.10.0.17/32", "10.10.0.18/32", "10.10.0.19/32"],
            plan.Desired.Keys.Select(k => k.ToString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_subnet_whose_known_workloads_are_all_local_is_announced_as_its_covering_prefix()
    {
        var policy = Policy with { Aggregates = [IPNetwork.Parse("10.10.0.0/24"), IPNetwork.Parse("10.20.0.0/24")] };
        var workloads = new[]
        {
            At(1, Local, 0, false, "10.10.0.50"),
            At(2, Local, 0, false, "10.10.0.51"),
            At(3, Local, 0, false, "10.20.0.50"),
            At(4, Remote, 0, false, "10.20.0.51"),
        };

        var plan = HostRoutePlanner.Plan(workloads, [], policy);

        Assert.Equal(["10.10.0.0/24"], plan.Aggregated.Select(p => p.ToString()));
        Assert.Equal(
            ["10.10.0.0/24", "10.20.0.50/32"],
            plan.Desired.Keys.Select(k => k.ToString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_frozen_workload_inside_a_subnet_prevents_its_aggregate()
    {
        var policy = Policy with { Aggregates = [IPNetwork.Parse("10.10.0.0/24")] };

        var plan = HostRoutePlanner.Plan([At(1, Local, 0, false, "10.10.0.50"), At(2, Local, 0, true, "10.10.0.51")], [], policy);

        Assert.Empty(plan.Aggregated);
        Assert.Equal(["10.10.0.50/32"], plan.Desired.Keys.Select(k => k.ToString()));
    }

    [Fact]
    public void Every_planned_route_is_local_unfrozen_or_a_vip_and_the_cap_holds()
    {
        Prop.ForAll(
            Arb.From(Gen.ListOf(Gen.Elements(0, 1, 2)).Select(kinds => kinds.ToArray())),
            Arb.From(Gen.Choose(0, 20)),
            (kinds, cap) =>
            {
                var workloads = kinds.Select((k, i) => At((ulong)i + 1, k == 0 ? Remote : Local, i, k == 2, $"10.30.{i / 250}.{(i % 250) + 1}")).ToList();
                var plan = HostRoutePlanner.Plan(workloads, [], Policy with { MaxHostRoutes = cap });
                var local = workloads.Count(w => w.Location.Local && !w.Frozen);
                return plan.Desired.Count == Math.Min(cap, local)
                    && plan.Capped == Math.Max(0, local - cap)
                    && plan.Desired.Keys.All(p => workloads.Single(w => w.Addresses.Contains(p.BaseAddress)) is { Location.Local: true, Frozen: false });
            }).QuickCheckThrowOnFailure();
    }
}

public sealed class AnnouncementPacerTests
{
    private static Dictionary<IPNetwork, Advertisement> Routes(int count, int first = 0) =>
        Enumerable.Range(first, count).Select(i => IPNetwork.Parse($"10.{i / 65536}.{(i / 256) % 256}.{i % 256}/32")).ToDictionary(p => p, p => new Advertisement(p));

    [Fact]
    public void Unlimited_passes_everything()
    {
        var pacer = new AnnouncementPacer(new ManualTimeProvider());

        var (next, waiting) = pacer.Pace(Routes(5000), ImmutableDictionary<IPNetwork, Advertisement>.Empty);

        Assert.Equal(5000, next.Count);
        Assert.Equal(0, waiting);
    }

    [Fact]
    public void New_prefixes_wait_for_tokens_while_kept_ones_and_withdrawals_pass()
    {
        var time = new ManualTimeProvider();
        var pacer = new AnnouncementPacer(time) { PerSecond = 100 };
        var desired = Routes(250);

        var (first, waiting) = pacer.Pace(desired, ImmutableDictionary<IPNetwork, Advertisement>.Empty);
        Assert.Equal(100, first.Count);
        Assert.Equal(150, waiting);

        var (again, stillWaiting) = pacer.Pace(desired, first);
        Assert.Equal(100, again.Count); // no time passed: only what is announced already
        Assert.Equal(150, stillWaiting);

        time.Advance(TimeSpan.FromSeconds(1));
        var (second, rest) = pacer.Pace(desired, again);
        Assert.Equal(200, second.Count);
        Assert.Equal(50, rest);

        // Withdrawing everything needs no token.
        var (none, _) = pacer.Pace(new Dictionary<IPNetwork, Advertisement>(), second);
        Assert.Empty(none);
    }
}

public sealed class StunGapDetectorTests
{
    [Fact]
    public void A_tick_that_comes_much_later_than_its_interval_is_a_stun_gap()
    {
        var f = TimeSpan.TicksPerSecond;
        var detector = new StunGapDetector(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500), f);

        Assert.False(detector.Tick(0));
        Assert.False(detector.Tick(f / 10));
        Assert.False(detector.Tick((f / 10) + (f / 2))); // 500 ms late: at the threshold, not beyond
        Assert.True(detector.Tick((f / 10) + (f / 2) + (2 * f)));
        Assert.Equal(1, detector.GapsDetected);
        Assert.Equal(TimeSpan.FromMilliseconds(1900), detector.LastGap);
    }
}
