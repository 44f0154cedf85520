using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using static Isthmus.DataPlane.Tests.Support.Frames;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;

namespace Isthmus.DataPlane.Tests.Bridge;

public class BridgeStageTests
{
    private static readonly Isthmus.Packets.MacAddress HostA = Mac("02:00:00:00:10:0a");
    private static readonly Isthmus.Packets.MacAddress Vm1 = Mac("02:00:00:00:10:0b");

    [Fact]
    public void Mac_entries_age_out_in_virtual_time_and_the_next_frame_floods_again()
    {
        using var lab = new L2Fixture(d => d with { MacAgingSeconds = 60 });
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA)));
        lab.ClearSent();

        lab.Time.Advance(TimeSpan.FromSeconds(59));
        lab.Run();
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Vtep1));
        Assert.Single(lab.Sent(Acc10));
        Assert.Empty(lab.Sent(Trunk0));

        // The VM's entry was refreshed at 59 s; HostA's is now 61 s old and gone.
        lab.Time.Advance(TimeSpan.FromSeconds(2));
        lab.Run();
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Vtep1));
        Assert.Single(lab.Sent(Acc10));
        Assert.Single(lab.Sent(Trunk0));
        Assert.Single(lab.Worker.Context.Bridge[0].Table.Snapshot(), e => e.Mac == Vm1.Value);
    }

    [Fact]
    public void A_mac_seen_at_a_new_location_moves_and_posts_an_event()
    {
        using var lab = new L2Fixture();
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, Ethernet(Broadcast, Vm1)), RemoteVtep: Vtep1));
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, Ethernet(Broadcast, Vm1)), RemoteVtep: Vtep2));

        Assert.True(lab.Worker.Context.Moves.TryTake(out var move));
        Assert.Equal("bd10", move.Domain);
        Assert.Equal(Vm1.Value, move.Mac);
        Assert.Equal(Vtep1, move.FromVtep);
        Assert.Equal(Vtep2, move.ToVtep);
        Assert.False(move.Damped);

        lab.ClearSent();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Vm1, HostA)));
        Assert.Equal(Vtep2, Assert.Single(lab.Sent(Und0)).DestinationIp);
    }

    [Fact]
    public void A_flapping_mac_is_damped_then_released_after_the_hold_time()
    {
        using var lab = new L2Fixture(d => d with { MacFlapMoves = 3, MacFlapWindowSeconds = 10, MacFlapHoldSeconds = 30 });
        var frame = Ethernet(Broadcast, HostA);
        lab.Receive(Acc10, new MemoryFrame(frame));
        for (var i = 0; i < 3; i++)
        {
            lab.Receive(Trunk0, new MemoryFrame(frame, VlanTci: 10));
            lab.Receive(Acc10, new MemoryFrame(frame));
        }

        // The fourth move tripped the detector: the MAC stays frozen on the trunk, and frames
        // from acc10 are dropped until the hold time passes.
        Assert.Equal(2, lab.Drops("bridge", "MacFlapDamped"));
        lab.Receive(Acc10, new MemoryFrame(frame));
        Assert.Equal(3, lab.Drops("bridge", "MacFlapDamped"));
        Assert.True(lab.Worker.Context.Moves.TryTake(out _));

        lab.Time.Advance(TimeSpan.FromSeconds(31));
        lab.ClearSent();
        lab.Receive(Acc10, new MemoryFrame(frame));
        Assert.Equal(3, lab.Drops("bridge", "MacFlapDamped"));
        Assert.Single(lab.Sent(Trunk0));
    }

    [Fact]
    public void Storm_control_admits_a_burst_then_the_configured_rate()
    {
        using var lab = new L2Fixture(d => d with { StormControlPps = 100 });
        lab.Port(Acc10).CaptureTransmitted = false;
        for (var i = 0; i < 500; i++)
        {
            lab.Port(Acc10).Enqueue(Ethernet(Broadcast, Mac($"02:00:00:00:{i >> 8:x2}:{i & 0xff:x2}")));
        }

        lab.Run();
        var stormed = lab.Drops("bridge", "StormControl");
        Assert.Equal(500 - 64, stormed);

        // Half a second later, 50 more tokens.
        lab.Time.Advance(TimeSpan.FromMilliseconds(500));
        for (var i = 0; i < 100; i++)
        {
            lab.Port(Acc10).Enqueue(Ethernet(Broadcast, HostA));
        }

        lab.Run();
        Assert.Equal(stormed + 50, lab.Drops("bridge", "StormControl"));
    }

    [Fact]
    public void Static_macs_forward_without_learning_and_refuse_to_move()
    {
        var program = L2Fixture.LabProgram(d => d.Name == "bd10"
            ? d with { StaticMacs = [new StaticMacSpec("02:00:00:00:10:0b", 2, "192.0.2.3")] }
            : d);
        using var lab = new L2Fixture(d => d with { StaticMacs = program.BridgeDomains[0].Name == d.Name ? program.BridgeDomains[0].StaticMacs : [] });

        lab.Receive(Acc10, new MemoryFrame(Ethernet(Vm1, HostA)));
        Assert.Equal(Vtep2, Assert.Single(lab.Sent(Und0)).DestinationIp);

        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, Vm1)));
        Assert.Equal(1, lab.Drops("bridge", "StaticMacViolation"));
    }

    [Fact]
    public void A_full_mac_table_still_forwards_and_counts_what_it_could_not_learn()
    {
        using var lab = new L2Fixture(d => d with { MaxMacs = 4 });
        for (var i = 0; i < 10; i++)
        {
            lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, Mac($"02:00:00:00:00:{i:x2}"))));
        }

        Assert.Equal(10, lab.Sent(Trunk0).Count);
        Assert.Equal(4, lab.Worker.Context.Bridge[0].Table.Count);
        Assert.Equal(6, lab.Worker.Context.Bridge[0].LearnRefused);
    }
}
