using System.Net;
using Isthmus.Mobility.Workloads;

namespace Isthmus.Mobility.Tests.Workloads;

public sealed class WorkloadRegistryTests
{
    private const ulong Vm = 0x0250_5600_0001;
    private static readonly WorkloadLocation Remote = new("und0/vni5010", 0xC000_0202, Local: false, "dc2");
    private static readonly WorkloadLocation Local = new("acc10", 0, Local: true, "dc1");

    private readonly ManualTimeProvider _time = new();

    [Fact]
    public void First_sighting_learns_the_workload_with_sequence_zero()
    {
        var registry = new WorkloadRegistry(new DampingPolicy(), _time);

        var (kind, workload) = registry.Observe(Vm, Remote, MoveSource.Binding);

        Assert.Equal(MoveKind.Learned, kind);
        Assert.Equal(0, workload.Sequence);
        Assert.Equal(Remote, workload.Location);
        Assert.Single(registry.History);
    }

    [Fact]
    public void A_rarp_from_another_segment_is_a_move_and_raises_the_sequence()
    {
        var registry = new WorkloadRegistry(new DampingPolicy(), _time);
        registry.Observe(Vm, Remote, MoveSource.Binding);
        _time.Advance(TimeSpan.FromSeconds(30));

        var (kind, workload) = registry.Observe(Vm, Local, MoveSource.Rarp);

        Assert.Equal(MoveKind.Moved, kind);
        Assert.Equal(1, workload.Sequence);
        Assert.True(workload.Location.Local);
        var move = registry.History.Last();
        Assert.Equal(Remote, move.From);
        Assert.Equal(Local, move.To);
        Assert.Equal(MoveSource.Rarp, move.Source);
    }

    [Fact]
    public void The_same_place_again_is_unchanged()
    {
        var registry = new WorkloadRegistry(new DampingPolicy(), _time);
        registry.Observe(Vm, Local, MoveSource.Garp);

        var (kind, workload) = registry.Observe(Vm, Local with { }, MoveSource.Rarp);

        Assert.Equal(MoveKind.Unchanged, kind);
        Assert.Equal(0, workload.Sequence);
    }

    [Fact]
    public void Another_vtep_on_the_same_segment_is_a_move()
    {
        var registry = new WorkloadRegistry(new DampingPolicy(), _time);
        registry.Observe(Vm, Remote, MoveSource.Binding);

        var (kind, _) = registry.Observe(Vm, Remote with { Vtep = 0xC000_0203 }, MoveSource.MacMove);

        Assert.Equal(MoveKind.Moved, kind);
    }

    [Fact]
    public void Five_moves_within_the_window_freeze_the_workload_where_it_was()
    {
        var registry = new WorkloadRegistry(new DampingPolicy { Moves = 5, Window = TimeSpan.FromSeconds(180) }, _time);
        registry.Observe(Vm, Remote, MoveSource.Binding);
        var kinds = new List<MoveKind>();
        for (var i = 0; i < 5; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(10));
            kinds.Add(registry.Observe(Vm, i % 2 == 0 ? Local : Remote, MoveSource.Rarp).Kind);
        }

        Assert.Equal([MoveKind.Moved, MoveKind.Moved, MoveKind.Moved, MoveKind.Moved, MoveKind.Froze], kinds);
        var frozen = registry.Find(Vm)!;
        Assert.True(frozen.Frozen);
        Assert.Equal(Remote, frozen.Location); // the fifth move (to Local) was not accepted
        Assert.Equal(MoveKind.Ignored, registry.Observe(Vm, Local, MoveSource.Rarp).Kind);
        Assert.Equal(MoveKind.Froze, registry.History.Last().Kind);
    }

    [Fact]
    public void Moves_spread_beyond_the_window_never_freeze()
    {
        var registry = new WorkloadRegistry(new DampingPolicy { Moves = 5, Window = TimeSpan.FromSeconds(180) }, _time);
        registry.Observe(Vm, Remote, MoveSource.Binding);
        for (var i = 0; i < 20; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(50)); // at most 4 moves inside any 180 s
            Assert.Equal(MoveKind.Moved, registry.Observe(Vm, i % 2 == 0 ? Local : Remote, MoveSource.Rarp).Kind);
        }

        Assert.False(registry.Find(Vm)!.Frozen);
        Assert.Equal(20, registry.Find(Vm)!.Sequence);
    }

    [Fact]
    public void Unfreeze_clears_the_freeze_and_the_move_window()
    {
        var registry = new WorkloadRegistry(new DampingPolicy { Moves = 2, Window = TimeSpan.FromSeconds(180) }, _time);
        registry.Observe(Vm, Remote, MoveSource.Binding);
        registry.Observe(Vm, Local, MoveSource.Rarp);
        Assert.Equal(MoveKind.Froze, registry.Observe(Vm, Remote, MoveSource.Rarp).Kind);

        Assert.True(registry.Unfreeze(Vm));
        Assert.False(registry.Unfreeze(Vm));
        Assert.Equal(MoveKind.Moved, registry.Observe(Vm, Remote, MoveSource.Rarp).Kind);
    }

    [Fact]
    public void An_address_belongs_to_one_workload_and_follows_a_new_mac()
    {
        var registry = new WorkloadRegistry(new DampingPolicy(), _time);
        var address = IPAddress.Parse("10.10.0.50");
        registry.Observe(Vm, Local, MoveSource.Binding);
        registry.Observe(Vm + 1, Local, MoveSource.Binding);

        Assert.NotNull(registry.Bind(Vm, address));
        Assert.Null(registry.Bind(Vm, address)); // nothing changed
        Assert.NotNull(registry.Bind(Vm + 1, address));

        Assert.Empty(registry.Find(Vm)!.Addresses);
        Assert.Equal(address, Assert.Single(registry.Find(Vm + 1)!.Addresses));
        Assert.Equal(Vm + 1, registry.Owner(address)!.Mac);
        Assert.Null(registry.Bind(0x0200_0000_0099, address)); // unknown MAC: nothing to bind to
    }

    [Fact]
    public void The_history_is_bounded()
    {
        var registry = new WorkloadRegistry(new DampingPolicy { HistoryCapacity = 3, Moves = 1000 }, _time);
        for (var i = 0; i < 10; i++)
        {
            registry.Observe(Vm, i % 2 == 0 ? Local : Remote, MoveSource.Rarp);
        }

        Assert.Equal(3, registry.History.Count());
        Assert.Equal(7, registry.HistoryDropped);
    }

    [Fact]
    public void Mac_text_is_colon_hex()
    {
        Assert.Equal("02:50:56:00:00:01", Workload.FormatMac(Vm));
        Assert.Equal("dc2/und0/vni5010@192.0.2.2", Remote.ToString());
    }
}
