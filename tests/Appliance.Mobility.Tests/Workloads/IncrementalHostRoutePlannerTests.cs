using System.Net;
using FsCheck;
using FsCheck.Fluent;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Tests.Support;
using Isthmus.Mobility.Workloads;
using Isthmus.Testing;

namespace Isthmus.Mobility.Tests.Workloads;

public sealed class IncrementalHostRoutePlannerTests
{
    private static readonly WorkloadLocation Acc10 = new("acc10", 0, Local: true, "dc1");
    private static readonly WorkloadLocation Acc20 = new("acc20", 0, Local: true, "dc1");
    private static readonly WorkloadLocation Remote = new("und0/vni5010", 0xC000_0202, Local: false, "dc2");

    private static readonly IPAddress[] Pool =
    [
        .. Enumerable.Range(1, 5).Select(i => IPAddress.Parse($"10.10.0.{i}")),
        .. Enumerable.Range(1, 4).Select(i => IPAddress.Parse($"10.20.0.{i}")),
        .. Enumerable.Range(1, 3).Select(i => IPAddress.Parse($"fd00:10::{i}")),
    ];

    private static readonly IPAddress[] VipPool = [IPAddress.Parse("203.0.113.80"), IPAddress.Parse("10.10.0.1"), IPAddress.Parse("10.20.0.9")];

    private static readonly IPNetwork[] AggregatePool =
    [
        IPNetwork.Parse("10.10.0.0/24"), IPNetwork.Parse("10.20.0.0/24"), IPNetwork.Parse("10.0.0.0/8"),
        IPNetwork.Parse("fd00:10::/64"), IPNetwork.Parse("10.10.0.3/32"),
    ];

    private static readonly int[] Caps = [0, 1, 2, 3, 5, 8, 10_000];

    private static HostRoutePolicy PolicyOf(int bits) => new()
    {
        NextHopIpv4 = IPAddress.Parse("10.255.0.1"),
        Communities = [new Community(65001, (ushort)(bits % 3))],
        LargeCommunities = [new LargeCommunity(65001, 1, 2)],
        MaxHostRoutes = Caps[(bits >> 2) % Caps.Length],
        Aggregates = [.. AggregatePool.Where((_, i) => ((bits >> (i + 5)) & 1) != 0)],
    };

    /// <summary>
    /// The incremental planner against the full one (the oracle) over random sequences of moves, learns, bindings (an
    /// address taken from its owner), freezes (five quick moves), unfreezes, re-classifications, VIP and policy changes
    /// (cap, aggregates, attributes), with several changes batched before a commit: after every commit the desired set,
    /// the capped count and the aggregates are the full plan's, and every prefix the full plan changed is in the
    /// incremental planner's changed set.
    /// </summary>
    [Fact]
    public void Incremental_planning_equals_the_full_plan_over_random_sequences()
    {
        var operations = Gen.ArrayOf(Gen.Choose(0, int.MaxValue - 1)).Select(ops => ops.Take(60).ToArray());
        Properties.Check(operations, ops =>
        {
            var time = new ManualTimeProvider();
            var registry = new WorkloadRegistry(new DampingPolicy { Moves = 4, Window = TimeSpan.FromSeconds(30) }, time);
            var planner = new IncrementalHostRoutePlanner();
            var policy = PolicyOf(0);
            var vips = new List<IPAddress>();
            planner.Reset(registry.Workloads, vips, policy);
            var before = HostRoutePlanner.Plan(registry.Workloads, vips, policy);
            var step = 0;
            foreach (var op in ops)
            {
                step++;
                var (kind, a, b) = (op % 10, (op / 10) % 64, (op / 640) % 4096);
                var mac = (ulong)(a % 6) + 1;
                var reset = false;
                switch (kind)
                {
                    case 0 or 1 or 2:
                        registry.Observe(mac, (b % 3) switch { 0 => Acc10, 1 => Acc20, _ => Remote }, MoveSource.Rarp);
                        break;
                    case 3 or 4:
                        registry.Bind(mac, Pool[b % Pool.Length]);
                        break;
                    case 5:
                        registry.Unfreeze(mac);
                        break;
                    case 6:
                        time.Advance(TimeSpan.FromSeconds(b % 40));
                        break;
                    case 7:
                        // A commit changed which segments are local.
                        var acc20Local = (b & 1) == 0;
                        registry.Reclassify(l => l.Segment == "acc20" ? l with { Local = acc20Local } : l);
                        break;
                    case 8:
                        vips = [.. VipPool.Where((_, i) => ((b >> i) & 1) != 0)];
                        reset = true;
                        break;
                    default:
                        policy = PolicyOf(b);
                        reset = true;
                        break;
                }

                // Commit after some operations only: changes batch up as in a flood's 20 ms window.
                if (!reset && (a & 3) == 3)
                {
                    continue;
                }

                if (reset)
                {
                    planner.Reset(registry, vips, policy);
                }
                else
                {
                    planner.Update(registry);
                }

                var full = HostRoutePlanner.Plan(registry.Workloads, vips, policy);
                var incremental = planner.TakeChanged().ToHashSet();
                Assert.True(SameRoutes(full.Desired, planner.Desired), $"step {step}: desired differs: full [{string.Join(", ", full.Desired.Keys)}] incremental [{string.Join(", ", planner.Desired.Keys)}]");
                Assert.Equal(full.Capped, planner.Capped);
                Assert.Equal(full.Aggregated, planner.Aggregated);
                foreach (var prefix in Difference(before.Desired, full.Desired))
                {
                    Assert.Contains(prefix, incremental);
                }

                before = full;
            }
        });
    }

    [Fact]
    public void A_move_changes_only_the_moved_workloads_prefixes()
    {
        var registry = LocalWorkloads(1000);

        var planner = new IncrementalHostRoutePlanner();
        planner.Reset(registry.Workloads, [], PolicyOf(0) with { MaxHostRoutes = 10_000 });
        Assert.Equal(1000, planner.TakeChanged().Length);

        registry.ClearChanged();
        registry.Observe(7, Remote, MoveSource.Rarp);
        planner.Update(registry);
        var macs = new List<ulong>();
        registry.TakeChanged(macs);
        Assert.Empty(macs); // the planner took them

        Assert.Equal([IPNetwork.Parse("10.30.0.7/32")], planner.TakeChanged());
        Assert.Equal(999, planner.Desired.Count);
    }

    /// <summary>
    /// The move path's allocation does not grow with the number of workloads: one move among 10,000 (registry, planner)
    /// allocates a few kilobytes on this thread, where the full planner allocated megabytes (bytes, not time).
    /// </summary>
    [Fact]
    public void A_move_among_ten_thousand_workloads_allocates_a_bounded_amount()
    {
        var registry = LocalWorkloads(10_000);

        var planner = new IncrementalHostRoutePlanner();
        planner.Reset(registry.Workloads, [], PolicyOf(0) with { MaxHostRoutes = 20_000, Aggregates = [IPNetwork.Parse("10.40.0.0/16")] });
        registry.ClearChanged();

        long Move(ulong mac, WorkloadLocation to)
        {
            var start = GC.GetAllocatedBytesForCurrentThread();
            registry.Observe(mac, to, MoveSource.Rarp);
            planner.Update(registry);
            _ = planner.TakeChanged();
            return GC.GetAllocatedBytesForCurrentThread() - start;
        }

        // Warm: the first moves size the planner's sets and JIT the path (away and back).
        for (var i = 1; i <= 20; i++)
        {
            Move((ulong)i, Remote);
            Move((ulong)i, Acc20);
        }

        // The fewest of up to three rounds (as Allocations.FewestBytes): a runtime one-off (a tier-up or OSR compilation
        // landing in a move) is not the move's; what the move itself allocates recurs every round.
        var bytes = long.MaxValue;
        for (var round = 0; round < 3 && bytes >= 4096; round++)
        {
            bytes = Math.Min(bytes, Math.Max(Move(5000, Remote), Move(5000, Acc20)));
        }

        Assert.True(bytes < 4096, $"one move allocated {bytes} bytes");

        var fullStart = GC.GetAllocatedBytesForCurrentThread();
        _ = HostRoutePlanner.Plan(registry.Workloads, [], planner.Policy);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - fullStart > 100 * bytes, "the reference: a full plan allocates per workload");
    }

    /// <summary>A registry of <paramref name="count"/> workloads on acc10, 10.30.x.y each.</summary>
    private static WorkloadRegistry LocalWorkloads(int count)
    {
        var registry = new WorkloadRegistry(new DampingPolicy(), new ManualTimeProvider());
        for (var i = 0; i < count; i++)
        {
            registry.Observe((ulong)i + 1, Acc10, MoveSource.Rarp);
            registry.Bind((ulong)i + 1, IPAddress.Parse($"10.30.{i / 250}.{(i % 250) + 1}"));
        }

        return registry;
    }

    private static bool SameRoutes(IReadOnlyDictionary<IPNetwork, Advertisement> a, System.Collections.Immutable.ImmutableDictionary<IPNetwork, Advertisement> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var other) && other.Equals(kv.Value));

    private static IEnumerable<IPNetwork> Difference(IReadOnlyDictionary<IPNetwork, Advertisement> before, IReadOnlyDictionary<IPNetwork, Advertisement> after) =>
        before.Keys.Union(after.Keys).Where(p => !before.TryGetValue(p, out var x) || !after.TryGetValue(p, out var y) || !x.Equals(y));
}
