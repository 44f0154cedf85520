using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Tests.Support;
using static Isthmus.DataPlane.Tests.Support.Frames;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;

namespace Isthmus.DataPlane.Tests.Pipeline;

/// <summary>Frame in, frames out: the decap → bridge → encap path over the lab topology.</summary>
public class L2PathTests
{
    private static readonly Isthmus.Packets.MacAddress HostA = Mac("02:00:00:00:10:0a");
    private static readonly Isthmus.Packets.MacAddress Vm1 = Mac("02:00:00:00:10:0b");
    private static readonly Isthmus.Packets.MacAddress TrunkHost = Mac("02:00:00:00:10:0c");

    [Fact]
    public void Broadcast_from_an_access_port_reaches_every_other_segment_of_its_domain_only()
    {
        using var lab = new L2Fixture();
        var arp = Ethernet(Broadcast, HostA, etherType: Isthmus.Packets.EtherType.Arp);

        lab.Receive(Acc10, new MemoryFrame(arp));

        Assert.Empty(lab.Sent(Acc10));
        Assert.Empty(lab.Sent(Acc20));
        var trunk = Assert.Single(lab.Sent(Trunk0));
        var (vlan, untagged) = Untag(trunk.Bytes);
        Assert.Equal(10, vlan);
        Assert.Equal(arp, untagged);
        var vxlan = lab.Sent(Und0);
        Assert.Equal([Vtep1, Vtep2], vxlan.Select(f => f.DestinationIp).Order());
        Assert.All(vxlan, f =>
        {
            Assert.Equal(4789, f.DestinationPort);
            var (vni, inner) = Unvxlan(f.Bytes);
            Assert.Equal(5010u, vni);
            Assert.Equal(arp, inner);
        });
    }

    [Fact]
    public void Broadcast_from_a_vtep_never_goes_back_to_vxlan_split_horizon()
    {
        using var lab = new L2Fixture();
        var arp = Ethernet(Broadcast, Vm1, etherType: Isthmus.Packets.EtherType.Arp);

        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, arp), RemoteVtep: Vtep1));

        Assert.Empty(lab.Sent(Und0));
        Assert.Equal(arp, Assert.Single(lab.Sent(Acc10)).Bytes);
        Assert.Equal(10, Untag(Assert.Single(lab.Sent(Trunk0)).Bytes).Vlan);
        Assert.Empty(lab.Sent(Acc20));
    }

    [Fact]
    public void Learned_macs_turn_floods_into_unicast_in_both_directions()
    {
        using var lab = new L2Fixture();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA)));
        lab.ClearSent();

        // The VM answers HostA: known, so only acc10 gets it.
        var reply = Ethernet(HostA, Vm1);
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, reply), RemoteVtep: Vtep2));
        Assert.Equal(reply, Assert.Single(lab.Sent(Acc10)).Bytes);
        Assert.Empty(lab.Sent(Trunk0));

        // HostA to the VM: learned behind VTEP .3 only, so one VXLAN copy to .3.
        var request = Ethernet(Vm1, HostA);
        lab.Receive(Acc10, new MemoryFrame(request));
        var sent = Assert.Single(lab.Sent(Und0));
        Assert.Equal(Vtep2, sent.DestinationIp);
        Assert.Equal(request, Unvxlan(sent.Bytes).Inner);
        Assert.Empty(lab.Sent(Trunk0));
    }

    [Fact]
    public void Trunk_accepts_tags_from_aux_data_and_inline_and_writes_them_inline()
    {
        using var lab = new L2Fixture();
        var fromAux = Ethernet(Broadcast, TrunkHost);
        lab.Receive(Trunk0, new MemoryFrame(fromAux, VlanTci: 10));
        Assert.Equal(fromAux, Assert.Single(lab.Sent(Acc10)).Bytes);
        Assert.Empty(lab.Sent(Acc20));
        lab.ClearSent();

        var inline = Ethernet(Broadcast, Mac("02:00:00:00:20:0c"));
        lab.Receive(Trunk0, new MemoryFrame(Tagged(inline, 20)));
        Assert.Equal(inline, Assert.Single(lab.Sent(Acc20)).Bytes);
        Assert.Empty(lab.Sent(Acc10));
        var (vni, inner) = Unvxlan(Assert.Single(lab.Sent(Und0)).Bytes);
        Assert.Equal(5020u, vni);
        Assert.Equal(inline, inner);
    }

    [Fact]
    public void Unknown_vlans_and_untagged_frames_on_a_trunk_are_counted_drops()
    {
        using var lab = new L2Fixture();
        lab.Receive(Trunk0, new MemoryFrame(Ethernet(Broadcast, TrunkHost), VlanTci: 30));
        lab.Receive(Trunk0, new MemoryFrame(Ethernet(Broadcast, TrunkHost)));

        Assert.Equal(1, lab.Drops("decap", "UnknownVlan"));
        Assert.Equal(1, lab.Drops("decap", "UntaggedOnTrunk"));
        Assert.All(lab.Ports, p => Assert.Empty(p.Transmitted));
    }

    [Fact]
    public void Vlan_tagged_frames_on_an_access_port_are_dropped_but_priority_tags_pass()
    {
        using var lab = new L2Fixture();
        lab.Receive(Acc10, new MemoryFrame(Tagged(Ethernet(Broadcast, HostA), 20)));
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA), VlanTci: 20));
        Assert.Equal(2, lab.Drops("decap", "TaggedOnAccess"));

        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA), VlanTci: 0x6000));
        Assert.Single(lab.Sent(Trunk0));
    }

    [Fact]
    public void Domains_are_isolated_nothing_from_vni_5020_or_vlan_20_reaches_domain_10()
    {
        using var lab = new L2Fixture();
        lab.Receive(Und0, new MemoryFrame(Vxlan(5020, Ethernet(Broadcast, Vm1)), RemoteVtep: Vtep1));
        lab.Receive(Acc20, new MemoryFrame(Ethernet(Broadcast, HostA)));
        lab.Receive(Trunk0, new MemoryFrame(Ethernet(Broadcast, TrunkHost), VlanTci: 20));

        Assert.Empty(lab.Sent(Acc10));
        Assert.All(lab.Sent(Trunk0), f => Assert.Equal(20, Untag(f.Bytes).Vlan));
        Assert.All(lab.Sent(Und0), f => Assert.Equal(5020u, Unvxlan(f.Bytes).Vni));
    }

    [Fact]
    public void Vxlan_from_strangers_bad_flags_and_short_headers_are_counted_drops()
    {
        using var lab = new L2Fixture();
        var frame = Ethernet(Broadcast, Vm1);
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, frame), RemoteVtep: Stranger));
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, frame, flags: 0), RemoteVtep: Vtep1));
        lab.Receive(Und0, new MemoryFrame(new byte[5], RemoteVtep: Vtep1));
        lab.Receive(Und0, new MemoryFrame(Vxlan(7777, frame), RemoteVtep: Vtep1));
        lab.Receive(Und0, new MemoryFrame(Vxlan(5020, frame), RemoteVtep: Vtep2));
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, new byte[10]), RemoteVtep: Vtep1));

        Assert.Equal(1, lab.Drops("decap", "UnknownVtep"));
        Assert.Equal(1, lab.Drops("decap", "VxlanBadFlags"));
        Assert.Equal(1, lab.Drops("decap", "VxlanTooShort"));
        Assert.Equal(1, lab.Drops("decap", "UnknownVni"));
        Assert.Equal(1, lab.Drops("decap", "VtepNotInVni"));
        Assert.Equal(1, lab.Drops("decap", "Truncated"));
        Assert.All(lab.Ports, p => Assert.Empty(p.Transmitted));

        // And the appliance keeps forwarding.
        lab.Receive(Und0, new MemoryFrame(Vxlan(5010, frame), RemoteVtep: Vtep1));
        Assert.Single(lab.Sent(Acc10));
    }

    [Fact]
    public void A_frame_over_the_egress_mtu_is_a_counted_drop_per_copy()
    {
        using var lab = new L2Fixture();
        var jumbo = Ethernet(Broadcast, HostA, payload: 1480);

        lab.Receive(Acc10, new MemoryFrame(jumbo));

        Assert.Single(lab.Sent(Trunk0));
        Assert.Empty(lab.Sent(Und0));
        Assert.Equal(2, lab.Drops("encap", "MtuExceeded"));
    }

    [Fact]
    public void Oversized_frames_truncated_by_the_port_are_counted_drops()
    {
        using var lab = new L2Fixture();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA, payload: 9000)));
        Assert.Equal(1, lab.Drops("decap", "Oversized"));
    }

    [Fact]
    public void Multicast_or_zero_source_macs_are_never_forwarded()
    {
        using var lab = new L2Fixture();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, Mac("01:00:5e:00:00:01"))));
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, Isthmus.Packets.MacAddress.Zero)));
        Assert.Equal(2, lab.Drops("decap", "InvalidSourceMac"));
    }

    [Fact]
    public void A_frame_for_a_mac_on_its_own_segment_is_filtered()
    {
        using var lab = new L2Fixture();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(Broadcast, HostA)));
        lab.ClearSent();
        lab.Receive(Acc10, new MemoryFrame(Ethernet(HostA, Mac("02:00:00:00:10:99"))));
        Assert.Equal(1, lab.Drops("bridge", "SameSegment"));
        Assert.All(lab.Ports, p => Assert.Empty(p.Transmitted));
    }
}
