using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Gateway;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Gateway;

/// <summary>Move detection (RARP, GARP, bindings, MAC moves → mobility signals), GARP origination and the interconnect ARP filter.</summary>
public class MobilityDetectionTests
{
    private static readonly MacAddress Vm = MacAddress.Parse("00:50:56:aa:bb:01");
    private static readonly Ipv4Address VmIp = Ipv4Address.Parse("10.10.0.50");

    private static int Segment(L3Fixture lab, string name) => lab.Slot.Current.Segments.Single(s => s.Name == name).Index;

    /// <summary>Takes every signal the worker posted so far.</summary>
    internal static List<MobilitySignal> Signals(L3Fixture lab)
    {
        var list = new List<MobilitySignal>();
        while (lab.Worker.Context.Mobility.TryTake(out var signal))
        {
            list.Add(signal);
        }

        return list;
    }

    private static byte[] Rarp(MacAddress mac) => Build(b => PacketBuilder.RarpRequest(b, mac));

    [Fact]
    public void A_rarp_from_a_vm_on_an_access_segment_is_a_rarp_signal_for_that_segment()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Rarp(Vm));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal(MobilitySignalKind.Rarp, signal.Kind);
        Assert.Equal(Vm.Value, signal.Mac);
        Assert.Equal(Segment(lab, "acc10"), signal.Segment);
        Assert.Equal(0u, signal.Vtep);
        Assert.False(signal.HasAddress);
        Assert.Single(lab.Sent(Trunk0)); // and the RARP is still flooded in the domain
    }

    [Fact]
    public void A_rarp_through_a_vtep_carries_the_vtep()
    {
        using var lab = new L3Fixture();

        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5010, Rarp(Vm)), RemoteVtep: Vtep2));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal(MobilitySignalKind.Rarp, signal.Kind);
        Assert.Equal(Segment(lab, "und0/vni5010"), signal.Segment);
        Assert.Equal(Vtep2, signal.Vtep);
        lab.ClearSent();
    }

    [Fact]
    public void A_gratuitous_arp_is_a_garp_signal_with_the_address()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Build(b => PacketBuilder.GarpRequest(b, Vm, VmIp)));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal(MobilitySignalKind.Garp, signal.Kind);
        Assert.Equal(VmIp.Value, (uint)signal.AddressLo);
        Assert.False(signal.Ipv6);
        lab.ClearSent();
    }

    [Fact]
    public void A_new_binding_is_signalled_once_and_again_when_the_address_changes_mac()
    {
        using var lab = new L3Fixture();
        var other = MacAddress.Parse("00:50:56:aa:bb:02");

        lab.Receive(Acc10, ArpRequest(Vm, VmIp, Gw10Ip));
        lab.Receive(Acc10, ArpRequest(Vm, VmIp, Gw10Ip));
        lab.Receive(Acc10, ArpRequest(other, VmIp, Gw10Ip));

        var signals = Signals(lab);
        Assert.Equal([MobilitySignalKind.Binding, MobilitySignalKind.Binding], signals.Select(s => s.Kind));
        Assert.Equal([Vm.Value, other.Value], signals.Select(s => s.Mac));
        lab.ClearSent();
    }

    [Fact]
    public void An_unsolicited_neighbor_advertisement_is_an_ipv6_garp_signal()
    {
        using var lab = new L3Fixture();
        var vm6 = Ipv6Address.Parse("fd00:10::50");

        lab.Receive(Acc10, Build(b => L3Messages.UnsolicitedNeighborAdvertisement(b, Vm, vm6, router: false)));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal(MobilitySignalKind.Garp, signal.Kind);
        Assert.True(signal.Ipv6);
        Assert.Equal(vm6, new Ipv6Address(signal.AddressHi, signal.AddressLo));
        lab.ClearSent();
    }

    [Fact]
    public void A_known_mac_arriving_on_another_segment_is_a_mac_move_signal()
    {
        using var lab = new L3Fixture();
        lab.Receive(Acc10, Udp(Vm, HostB, VmIp, HostBIp));
        Assert.Empty(Signals(lab));

        lab.Receive(Trunk0, Frames.Tagged(Udp(Vm, HostB, VmIp, HostBIp), 10));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal(MobilitySignalKind.MacMove, signal.Kind);
        Assert.Equal(Segment(lab, "trunk0/vlan10"), signal.Segment);
        lab.ClearSent();
    }

    [Fact]
    public async Task A_garp_burst_asked_through_a_query_leaves_at_once_toward_the_workloads_segment()
    {
        using var lab = new L3Fixture();
        var acc10 = Segment(lab, "acc10");

        var task = lab.Worker.Queries.Ask(context => GarpAnnouncer.Announce(context, 0, acc10, 0, []));
        lab.Worker.RunOnce();

        Assert.Equal(3, await task); // ARP request + reply for 10.10.0.1, unsolicited NA for fd00:10::1
        var sent = lab.Sent(Acc10);
        Assert.Equal(3, sent.Count);
        var request = Arp(sent[0]);
        var reply = Arp(sent[1]);
        Assert.Equal(MacAddress.Broadcast, Destination(sent[0]));
        Assert.Equal(Gw10, Source(sent[0]));
        Assert.Equal((ArpOpcode.Request, Gw10, Gw10Ip, Gw10Ip), (request.Opcode, request.SenderMac, request.SenderIp, request.TargetIp));
        Assert.Equal((ArpOpcode.Reply, Gw10, Gw10Ip, Gw10, Gw10Ip), (reply.Opcode, reply.SenderMac, reply.SenderIp, reply.TargetMac, reply.TargetIp));
        Assert.True(request.IsGratuitous && reply.IsGratuitous);
        var na = Ip6(sent[2]);
        Assert.Equal(L3Messages.AllNodes, na.Destination);
        Assert.Equal(Gw106, na.Source);
        Assert.Empty(lab.Sent(Trunk0)); // toward the workload only
        Assert.Empty(lab.Sent(Und0));
    }

    [Fact]
    public void A_garp_burst_toward_a_vxlan_location_goes_to_that_vtep_and_a_flood_reaches_every_segment()
    {
        using var lab = new L3Fixture();
        var vni = Segment(lab, "und0/vni5010");

        lab.Worker.Queries.Ask(context => GarpAnnouncer.Announce(context, 0, vni, Vtep2, [Ipv4Address.Parse("10.10.0.80").Value]));
        lab.Worker.RunOnce();
        var toVtep = lab.SentFrames(Und0);
        Assert.Equal(5, toVtep.Count); // 10.10.0.1 and the extra 10.10.0.80: request + reply each, and the NA
        Assert.All(toVtep, f => Assert.Equal(Vtep2, f.DestinationIp));

        lab.Worker.Queries.Ask(context => GarpAnnouncer.Announce(context, 0, -1, 0, []));
        lab.Worker.RunOnce();
        Assert.Equal(3, lab.Sent(Acc10).Count);
        Assert.Equal(3, lab.Sent(Trunk0).Count);
        Assert.Equal(6, lab.Sent(Und0).Count); // head-end replication to both VTEPs
    }

    [Fact]
    public void With_the_interconnect_filter_on_arp_for_the_gateway_address_there_is_dropped()
    {
        using var lab = new L3Fixture();
        var vni = Segment(lab, "und0/vni5010");
        lab.Worker.Queries.Ask(context =>
        {
            var filter = new bool[context.Snapshot.Segments.Length];
            filter[vni] = true;
            context.GatewayArpFilter = filter;
            return 0;
        });
        lab.Worker.RunOnce();

        // The remote site's workload asks for the shared gateway address, and the remote gateway announces it.
        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5010, ArpRequest(HostB, HostBIp, Gw10Ip)), RemoteVtep: Vtep2));
        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5010, Build(b => PacketBuilder.GarpReply(b, MacAddress.Parse("02:15:7e:00:99:10"), Gw10Ip))), RemoteVtep: Vtep2));

        Assert.Empty(lab.Sent(Und0));
        Assert.Empty(lab.Sent(Acc10));
        Assert.Equal(2, lab.Drops("gateway", nameof(GatewayDrop.GatewayArpFiltered)));

        // Local ARP for the gateway is still answered.
        lab.Receive(Acc10, ArpRequest(HostA, HostAIp, Gw10Ip));
        Assert.Equal(ArpOpcode.Reply, Arp(Assert.Single(lab.Sent(Acc10))).Opcode);
        lab.ClearSent();
    }

    private static void ArmArrivalGarp(L3Fixture lab, string[] local, ulong[] frozen)
    {
        lab.Worker.Queries.Ask(context =>
        {
            var segments = new bool[context.Snapshot.Segments.Length];
            foreach (var name in local)
            {
                segments[Segment(lab, name)] = true;
            }

            context.ArrivalGarp = new ArrivalGarp(segments, frozen, lab.Time.TimestampFrequency / 20); // 50 ms
            return 0;
        });
        lab.Worker.RunOnce();
    }

    [Fact]
    public void A_rarp_on_a_local_segment_is_answered_by_the_worker_with_the_first_garp_in_the_same_batch()
    {
        using var lab = new L3Fixture();
        ArmArrivalGarp(lab, ["acc10"], []);

        lab.Receive(Acc10, Rarp(Vm));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal((MobilitySignalKind.Rarp, 3), (signal.Kind, signal.GarpFrames));
        var sent = lab.Sent(Acc10);
        Assert.Equal(3, sent.Count); // ARP request + reply for 10.10.0.1, unsolicited NA for fd00:10::1
        Assert.Equal((ArpOpcode.Request, Gw10, Gw10Ip), (Arp(sent[0]).Opcode, Arp(sent[0]).SenderMac, Arp(sent[0]).TargetIp));
        Assert.Equal(ArpOpcode.Reply, Arp(sent[1]).Opcode);
        Assert.True(Arp(sent[0]).IsGratuitous && Arp(sent[1]).IsGratuitous);

        // The RARP itself is flooded as before; the GARP went toward the arriving workload only.
        Assert.Single(lab.Sent(Trunk0)); // the RARP (tagged)
        Assert.Equal(2, lab.Sent(Und0).Count); // the RARP toward both VTEPs, no GARP
    }

    [Fact]
    public void A_flood_of_rarps_on_one_segment_gets_one_garp_per_coalescing_window()
    {
        using var lab = new L3Fixture();
        ArmArrivalGarp(lab, ["acc10"], []);

        lab.Receive(Acc10, Rarp(Vm));
        lab.Receive(Acc10, Rarp(MacAddress.Parse("00:50:56:aa:bb:02")));
        lab.Time.Advance(TimeSpan.FromMilliseconds(60));
        lab.Receive(Acc10, Rarp(MacAddress.Parse("00:50:56:aa:bb:03")));

        Assert.Equal([3, 0, 3], Signals(lab).Select(s => s.GarpFrames));
        Assert.Equal(6, lab.Sent(Acc10).Count);
        lab.ClearSent();
    }

    [Fact]
    public void A_rarp_on_an_interconnect_segment_or_from_a_frozen_mac_or_with_the_reaction_off_is_left_to_the_control_plane()
    {
        using var lab = new L3Fixture();
        lab.Receive(Acc10, Rarp(Vm)); // not armed
        ArmArrivalGarp(lab, ["acc10"], [Vm.Value]);
        lab.Receive(Acc10, Rarp(Vm)); // frozen duplicate
        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5010, Rarp(MacAddress.Parse("00:50:56:aa:bb:02"))), RemoteVtep: Vtep2)); // not local

        Assert.All(Signals(lab), s => Assert.Equal((MobilitySignalKind.Rarp, 0), (s.Kind, s.GarpFrames)));
        Assert.DoesNotContain(lab.Sent(Acc10), f => L3Messages.EtherTypeOf(f) == EtherType.Arp);
        lab.ClearSent();
    }
}
