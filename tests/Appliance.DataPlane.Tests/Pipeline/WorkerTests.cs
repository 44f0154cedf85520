using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using static Isthmus.DataPlane.Tests.Support.Frames;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;

namespace Isthmus.DataPlane.Tests.Pipeline;

public class WorkerTests
{
    private static readonly Isthmus.Packets.MacAddress HostA = Mac("02:00:00:00:10:0a");

    [Fact]
    public void An_injected_frame_is_traced_through_every_stage()
    {
        using var lab = new L2Fixture();
        var id = lab.Worker.Inject(Ethernet(Broadcast, HostA), Acc10);
        lab.Run();

        var trace = lab.Worker.Context.Tracer.Entries(id);
        Assert.Equal(["decap", "bridge", "encap", "encap", "encap"], trace.Select(e => e.Stage));
        Assert.Contains("segment acc10", trace[0].Detail, StringComparison.Ordinal);
        Assert.Equal("flood", trace[1].Verdict);
        Assert.Contains(trace, e => e.Detail.Contains("VTEP 192.0.2.3", StringComparison.Ordinal));
        Assert.Single(lab.Sent(Trunk0));
    }

    [Fact]
    public void An_armed_filter_traces_matching_frames_only_and_disarms_after_its_budget()
    {
        using var lab = new L2Fixture();
        var tracer = lab.Worker.Context.Tracer;
        tracer.Arm(new Diagnostics.TraceFilter { SourceMac = HostA, MaxPackets = 2 });
        for (var i = 0; i < 3; i++)
        {
            lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA)));
            lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, Mac("02:00:00:00:10:99"))));
        }

        Assert.Equal(2, tracer.Entries().Select(e => e.TraceId).Distinct().Count());
        Assert.False(tracer.Armed);
    }

    [Fact]
    public void A_dropped_traced_frame_records_its_drop_reason()
    {
        using var lab = new L2Fixture();
        var id = lab.Worker.Inject(Vxlan(5010, Ethernet(Broadcast, HostA)), Und0, remoteVtep: Stranger);
        lab.Run();
        var last = lab.Worker.Context.Tracer.Entries(id)[^1];
        Assert.Equal(("decap", "drop", "UnknownVtep"), (last.Stage, last.Verdict, last.Detail));
    }

    [Fact]
    public void A_published_snapshot_applies_at_the_next_batch_and_keeps_unchanged_domains_tables()
    {
        using var lab = new L2Fixture();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA)));
        lab.Receive(Acc20, new MemoryFrame(Ethernet(Broadcast, Mac("02:00:00:00:20:0a"))));

        // Commit: bd20 loses its trunk VLAN; bd10 is untouched.
        var program = lab.Program with
        {
            BridgeDomains = [lab.Program.BridgeDomains[0], lab.Program.BridgeDomains[1] with { Segments = [.. lab.Program.BridgeDomains[1].Segments.Where(s => s.Vlan is null)] }],
        };
        lab.Slot.Publish(SnapshotCompiler.Compile(program, 2, lab.Time.TimestampFrequency));
        lab.ClearSent();
        lab.Run();

        Assert.Equal(1, lab.Worker.Context.Bridge[0].Table.Count);
        Assert.Equal(0, lab.Worker.Context.Bridge[1].Table.Count);
        lab.Receive(Trunk0, new MemoryFrame(Ethernet(Broadcast, HostA), VlanTci: 20));
        Assert.Equal(1, lab.Drops("decap", "UnknownVlan"));
    }

    [Fact]
    public void An_empty_pool_is_a_counted_receive_drop_not_a_crash()
    {
        using var lab = new L2Fixture();
        var pool = lab.Worker.Pool;
        var held = new List<int>();
        while (pool.Rent() is var b && b >= 0)
        {
            held.Add(b);
        }

        lab.Port(Acc10).Enqueue(Ethernet(Broadcast, HostA));
        lab.Worker.RunOnce();
        Assert.Equal(1, lab.Port(Acc10).Counters.RxNoBuffer);
        held.ForEach(pool.Return);
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA)));
        Assert.Single(lab.Sent(Trunk0));
    }
}
