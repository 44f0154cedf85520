using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Encap;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.Frames;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;

namespace Isthmus.DataPlane.Tests.Pipeline;

/// <summary>
/// Decap, bridge and encap keep per-batch caches for trains of frames (the last ingress port, segment and
/// domain; the last egress segment's queue, MTU and VXLAN header). A batch that keeps switching ports,
/// domains, VNIs and fates must give every frame exactly what it gets in a batch of its own.
/// </summary>
public sealed class L2BatchTests
{
    private static readonly MacAddress HostA = Mac("02:00:00:00:10:0a");
    private static readonly MacAddress Vm1 = Mac("02:00:00:00:10:0b");
    private static readonly MacAddress TrunkHost = Mac("02:00:00:00:10:0c");
    private static readonly MacAddress HostB = Mac("02:00:00:00:20:0a");
    private static readonly MacAddress Vm2 = Mac("02:00:00:00:20:0b");

    /// <summary>Stations learned first: HostA on acc10, Vm1 behind VTEP .3 (VNI 5010), TrunkHost on VLAN 10, HostB on acc20, Vm2 behind .2 (VNI 5020).</summary>
    private static readonly (int Port, MemoryFrame Frame)[] Learn =
    [
        (Acc10, new MemoryFrame(Ethernet(Broadcast, HostA))),
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(Broadcast, Vm1)), RemoteVtep: Vtep2)),
        (Trunk0, new MemoryFrame(Ethernet(Broadcast, TrunkHost), VlanTci: 10)),
        (Acc20, new MemoryFrame(Ethernet(Broadcast, HostB))),
        (Und0, new MemoryFrame(Vxlan(5020, Ethernet(Broadcast, Vm2)), RemoteVtep: Vtep1)),
    ];

    /// <summary>In port order, as one worker turn takes them into its batch.</summary>
    private static readonly (int Port, MemoryFrame Frame)[] Mixed =
    [
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Vtep2)),
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(TrunkHost, Vm1, payload: 80)), RemoteVtep: Vtep2)),
        (Und0, new MemoryFrame(Vxlan(5020, Ethernet(HostB, Vm2)), RemoteVtep: Vtep1)),
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(Vm1, Vm1)), RemoteVtep: Vtep2)),
        (Acc10, new MemoryFrame(Ethernet(Vm1, HostA))),
        (Acc10, new MemoryFrame(Ethernet(TrunkHost, HostA))),
        (Acc10, new MemoryFrame(Ethernet(Vm1, HostA, payload: 1480))),
        (Acc10, new MemoryFrame(Ethernet(Vm1, HostA, payload: 100))),
        (Acc20, new MemoryFrame(Ethernet(Vm2, HostB))),
        (Acc20, new MemoryFrame(Ethernet(Vm2, HostB, payload: 60))),
        (Acc20, new MemoryFrame(Ethernet(Broadcast, HostB))),
        (Acc20, new MemoryFrame(Ethernet(Vm2, HostB, payload: 70))),
        (Trunk0, new MemoryFrame(Ethernet(Vm1, TrunkHost), VlanTci: 10)),
        (Trunk0, new MemoryFrame(Ethernet(HostA, TrunkHost), VlanTci: 10)),
        (Trunk0, new MemoryFrame(Tagged(Ethernet(Vm1, TrunkHost, payload: 90), 10))),
    ];

    [Fact]
    public void A_batch_switching_ports_domains_vnis_and_fates_treats_each_frame_as_a_batch_of_its_own()
    {
        var (t, a) = TogetherAndAlone(Mixed);
        using var together = t;
        using var alone = a;

        for (var port = 0; port < alone.Ports.Length; port++)
        {
            Assert.Equal(Describe(alone.Sent(port)), Describe(together.Sent(port)));
        }

        foreach (var (stage, reason) in new[] { ("encap", "MtuExceeded"), ("bridge", "SameSegment") })
        {
            Assert.Equal(1, alone.Drops(stage, reason));
            Assert.Equal(1, together.Drops(stage, reason));
        }
    }

    [Fact]
    public void Unicast_vxlan_from_a_mixed_batch_carries_its_segments_vni_vtep_and_the_inner_frames_entropy()
    {
        using var lab = Learned();
        foreach (var (port, frame) in Mixed)
        {
            lab.Port(port).Enqueue(frame);
        }

        lab.Run();

        // acc10 → Vm1 (2, the jumbo dropped), acc20 → Vm2 (3) and its broadcast (one VTEP on 5020), trunk → Vm1 (2).
        var sent = lab.Sent(Und0).Select(f => (f, Unvxlan(f.Bytes))).ToList();
        Assert.Equal(8, sent.Count);
        Assert.All(sent, s =>
        {
            var (frame, (vni, inner)) = s;
            var destination = MacAddress.Read(inner);
            Assert.Equal(destination == Vm1 ? 5010u : 5020u, vni);
            Assert.Equal(destination == Vm1 ? Vtep2 : Vtep1, frame.DestinationIp);
            Assert.Equal(4789, frame.DestinationPort);
            Assert.Equal(EncapStage.FlowEntropy(inner), frame.SourcePort);
        });
        Assert.Equal(3, lab.Sent(Trunk0).Count); // from und0 and acc10 on VLAN 10, the acc20 broadcast on VLAN 20
    }

    [Fact]
    public void A_train_from_one_station_learns_again_when_its_vtep_changes_mid_batch()
    {
        // Vm1 sends from behind VTEP .3 and then from .2 in one batch: the second frame must move it (the bridge's
        // train shortcut keys on the VTEP too), so HostA's frames after it go to .2, as with batches of their own.
        (int Port, MemoryFrame Frame)[] moving =
        [
            (Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Vtep2)),
            (Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Vtep1)),
            (Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1, payload: 70)), RemoteVtep: Vtep1)),
            (Acc10, new MemoryFrame(Ethernet(Vm1, HostA))),
            (Acc10, new MemoryFrame(Ethernet(Vm1, HostA, payload: 90))),
        ];
        var (t, a) = TogetherAndAlone(moving);
        using var together = t;
        using var alone = a;

        var sent = together.Sent(Und0);
        Assert.Equal(2, sent.Count);
        Assert.All(sent, f => Assert.Equal(Vtep1, f.DestinationIp));
        Assert.Equal(Describe(alone.Sent(Und0)), Describe(sent));
        Assert.Equal(Describe(alone.Sent(Acc10)), Describe(together.Sent(Acc10)));
    }

    [Fact]
    public void A_batch_with_drops_among_forwarded_frames_counts_each_drop_and_returns_every_buffer_in_its_turn()
    {
        // The runner skips its settle walk only when encap found every packet consumed: one drop per stage here
        // (decap, bridge, encap) among frames that leave must still be counted and its buffer returned.
        using var lab = Learned();
        var acc10 = lab.Port(Acc10);
        acc10.Enqueue(new MemoryFrame(Ethernet(Vm1, HostA)));
        acc10.Enqueue(new MemoryFrame(Ethernet(Vm1, Mac("03:00:00:00:00:01")))); // multicast source: decap
        acc10.Enqueue(new MemoryFrame(Ethernet(Vm1, HostA)));
        acc10.Enqueue(new MemoryFrame(Ethernet(HostA, HostA))); // on its own segment: bridge
        acc10.Enqueue(new MemoryFrame(Ethernet(Vm1, HostA, payload: 1480))); // over VNI 5010's MTU: encap
        acc10.Enqueue(new MemoryFrame(Ethernet(Vm1, HostA)));

        Assert.Equal(6, lab.Worker.RunOnce());
        Assert.Equal(0, lab.Worker.Pool.Outstanding);
        Assert.Equal(1, lab.Drops("decap", "InvalidSourceMac"));
        Assert.Equal(1, lab.Drops("bridge", "SameSegment"));
        Assert.Equal(1, lab.Drops("encap", "MtuExceeded"));
        Assert.Equal(3, lab.Sent(Und0).Count);

        // A batch that all leaves: nothing to settle, nothing left over.
        acc10.Enqueue(new MemoryFrame(Ethernet(Vm1, HostA)));
        acc10.Enqueue(new MemoryFrame(Ethernet(TrunkHost, HostA)));
        Assert.Equal(2, lab.Worker.RunOnce());
        Assert.Equal(0, lab.Worker.Pool.Outstanding);
        Assert.Equal(2, lab.Sent(Und0).Count + lab.Sent(Trunk0).Count);
        Assert.Equal(1, lab.Drops("encap", "MtuExceeded"));
    }

    /// <summary>
    /// Beside <see cref="Mixed"/>: station moves (a VTEP change, a host from the trunk to an access port and back),
    /// a new station, unknown unicast, a frame back to its own segment and a stranger VTEP.
    /// </summary>
    private static readonly (int Port, MemoryFrame Frame)[] Changes =
    [
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Vtep1)),
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(TrunkHost, Vm1, payload: 64)), RemoteVtep: Vtep1)),
        (Und0, new MemoryFrame(Vxlan(5010, Ethernet(HostA, Vm1)), RemoteVtep: Stranger)),
        (Acc10, new MemoryFrame(Ethernet(Vm1, TrunkHost))),
        (Acc10, new MemoryFrame(Ethernet(Mac("02:00:00:00:10:99"), HostA))),
        (Acc10, new MemoryFrame(Ethernet(Vm1, Mac("02:00:00:00:10:0d")))),
        (Acc20, new MemoryFrame(Ethernet(HostB, HostB))),
        (Trunk0, new MemoryFrame(Ethernet(Vm1, HostA), VlanTci: 10)),
        (Trunk0, new MemoryFrame(Ethernet(HostA, TrunkHost, payload: 120), VlanTci: 10)),
    ];

    [Fact]
    public void Random_batches_of_trains_moves_and_drops_forward_each_frame_as_a_batch_of_its_own()
    {
        // The per-batch shortcuts (decap's port/tunnel/segment caches, the bridge's cursor and its inline cases,
        // encap's runs of unicast frames) against one-frame batches, where no frame follows another in a batch:
        // random sequences (in port order, as one worker turn takes them) must send the same bytes to the same
        // places and count the same drops.
        (int Port, MemoryFrame Frame)[] pool = [.. Mixed, .. Changes];
        Prop.ForAll(Arb.From(Gen.ListOf(Gen.Choose(0, pool.Length - 1))), picks =>
        {
            var frames = picks.Select(k => pool[k]).OrderBy(f => f.Port).ToArray();
            var (t, a) = TogetherAndAlone(frames);
            using var together = t;
            using var alone = a;
            for (var port = 0; port < alone.Ports.Length; port++)
            {
                Assert.Equal(Describe(alone.Sent(port)), Describe(together.Sent(port)));
            }

            var stages = alone.Worker.Pipeline.Stages;
            for (var s = 0; s < stages.Count; s++)
            {
                for (var code = 0; code < stages[s].DropReasons.Count; code++)
                {
                    Assert.Equal(alone.Worker.Counters.Drops(s, code), together.Worker.Counters.Drops(s, code));
                }
            }
        }).QuickCheckThrowOnFailure();
    }

    /// <summary>The frames in one batch (a worker turn takes them in port order), and each in a batch of its own, on two learned labs.</summary>
    private static (L2Fixture Together, L2Fixture Alone) TogetherAndAlone((int Port, MemoryFrame Frame)[] frames)
    {
        var together = Learned();
        foreach (var (port, frame) in frames)
        {
            together.Port(port).Enqueue(frame);
        }

        together.Run();
        var alone = Learned();
        foreach (var (port, frame) in frames)
        {
            alone.Receive(port, frame);
        }

        return (together, alone);
    }

    private static L2Fixture Learned()
    {
        var lab = new L2Fixture();
        foreach (var (port, frame) in Learn)
        {
            lab.Receive(port, frame);
        }

        lab.ClearSent();
        return lab;
    }

    private static List<string> Describe(List<MemoryFrame> sent) =>
        [.. sent.Select(f => $"{Convert.ToHexString(f.Bytes)} to {f.DestinationIp}:{f.DestinationPort} from {f.SourcePort}")];
}
