using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Route;

/// <summary>Routing between bd10 and bd20: packet in, packet out (or ICMP error, or drop reason).</summary>
public class RouteStageTests
{
    [Fact]
    public void A_packet_is_routed_to_a_known_neighbor_with_macs_rewritten_and_ttl_decremented()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Host20, Host20Ip);

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip, ttl: 64));

        var routed = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Host20, Destination(routed));
        Assert.Equal(Gw20, Source(routed));
        var ip = Ip4(routed);
        Assert.Equal(63, ip.Ttl);
        Assert.Equal(HostAIp, ip.Source);
        Assert.Equal(Host20Ip, ip.Destination);
        AssertChecksums(routed);
        Assert.Empty(lab.Sent(Acc10));
        Assert.Empty(lab.Sent(Trunk0));
        Assert.Empty(lab.Sent(Und0));
    }

    [Fact]
    public void A_default_routed_packet_goes_to_the_upstream_router_mac()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Upstream, UpstreamIp);

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")));

        var routed = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Upstream, Destination(routed));
        Assert.Equal(Ipv4Address.Parse("198.51.100.7"), Ip4(routed).Destination);
        AssertChecksums(routed);
    }

    [Fact]
    public void A_neighbor_miss_floods_an_arp_request_and_the_reply_releases_the_held_packet()
    {
        using var lab = new L3Fixture();
        var packet = Udp(HostA, Gw10, HostAIp, Host20Ip);

        lab.Receive(Acc10, packet);

        // The request goes to every segment of bd20; the packet waits.
        var request = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Frames.Broadcast, Destination(request));
        var arp = Arp(request);
        Assert.Equal(ArpOpcode.Request, arp.Opcode);
        Assert.Equal(Gw20, arp.SenderMac);
        Assert.Equal(Gw20Ip, arp.SenderIp);
        Assert.Equal(Host20Ip, arp.TargetIp);
        Assert.Equal(20, Frames.Untag(Assert.Single(lab.Sent(Trunk0))).Vlan);
        Assert.Equal(5020u, Frames.Unvxlan(Assert.Single(lab.SentFrames(Und0)).Bytes).Vni);
        Assert.Equal(1, lab.Neighbors.HeldPackets);
        Assert.Equal(1, lab.Worker.Pool.Outstanding);

        lab.Receive(Acc20, ArpReply(Host20, Host20Ip, Gw20, Gw20Ip));

        var released = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Host20, Destination(released));
        Assert.Equal(Gw20, Source(released));
        Assert.Equal(63, Ip4(released).Ttl);
        AssertChecksums(released);
        Assert.Empty(lab.Sent(Trunk0));
        Assert.Equal(0, lab.Neighbors.HeldPackets);
        Assert.Equal(1, lab.L3.Released);
    }

    [Fact]
    public void The_held_queue_is_bounded_and_unanswered_requests_fail_after_retries()
    {
        using var lab = new L3Fixture();

        for (var i = 0; i < NeighborCache.MaxHeld + 2; i++)
        {
            lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));
        }

        Assert.Equal(2, lab.Drops("neighbor", "HeldQueueFull"));
        Assert.Equal(NeighborCache.MaxHeld, lab.Neighbors.HeldPackets);
        Assert.Single(lab.Sent(Acc20)); // one request, not one per packet

        lab.Tick(1);
        Assert.Single(lab.Sent(Acc20)); // retry 2
        lab.Tick(1);
        Assert.Single(lab.Sent(Acc20)); // retry 3 (MaxProbes)
        lab.Tick(1);
        Assert.Empty(lab.Sent(Acc20));

        Assert.Equal(NeighborCache.MaxHeld, lab.Drops("neighbor", "Unresolved"));
        Assert.Empty(lab.Sent(Acc10)); // HostA never ARPed, so no next hop is known for the error
        Assert.Equal(0, lab.Neighbors.HeldPackets);
        Assert.True(Unsafe.IsNullRef(ref lab.Neighbors.Find(1, false, 0, Host20Ip.Value)));
        Assert.Equal(1, lab.Neighbors.Failed);
    }

    [Fact]
    public void An_unanswered_next_hop_sends_host_unreachable_to_a_known_source()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc10, HostA, HostAIp);
        var packet = Udp(HostA, Gw10, HostAIp, Host20Ip);

        lab.Receive(Acc10, packet);
        lab.Tick(3);

        var error = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(error));
        Assert.Equal(Gw10, Source(error));
        var ip = Ip4(error);
        Assert.Equal(Gw10Ip, ip.Source);
        Assert.Equal(HostAIp, ip.Destination);
        var icmp = new Icmpv4Header(ip.Payload);
        Assert.Equal(Icmpv4Type.DestinationUnreachable, icmp.Type);
        Assert.Equal(1, icmp.Code);
        Assert.Equal(Host20Ip, Ipv4Address.Read(icmp.QuotedPacket[16..]));
        AssertChecksums(error);
        lab.ClearSent();
    }

    [Fact]
    public void Held_packets_go_back_to_the_pool_when_the_worker_stops()
    {
        var lab = new L3Fixture();
        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));
        Assert.Equal(1, lab.Worker.Pool.Outstanding);

        lab.Worker.Dispose();

        Assert.Equal(0, lab.Worker.Pool.Outstanding);
    }

    [Fact]
    public void Learned_neighbors_age_out_and_are_resolved_again()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Host20, Host20Ip);

        lab.Tick(40);

        Assert.True(Unsafe.IsNullRef(ref lab.Neighbors.Find(1, false, 0, Host20Ip.Value)));
        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));
        Assert.Equal(ArpOpcode.Request, Arp(Assert.Single(lab.Sent(Acc20))).Opcode);
        lab.Receive(Acc20, ArpReply(Host20, Host20Ip, Gw20, Gw20Ip));
        Assert.Equal(Host20, Destination(Assert.Single(lab.Sent(Acc20))));
    }

    [Fact]
    public void A_stale_neighbor_in_use_is_reconfirmed_by_a_probe_without_holding_traffic()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Host20, Host20Ip);
        lab.Time.Advance(TimeSpan.FromSeconds(31));

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));

        var sent = lab.Sent(Acc20);
        Assert.Equal(2, sent.Count);
        Assert.Contains(sent, f => EtherTypeIs(f, EtherType.Arp) && Arp(f).TargetIp == Host20Ip);
        Assert.Contains(sent, f => EtherTypeIs(f, EtherType.Ipv4) && Destination(f) == Host20);
    }

    private static bool EtherTypeIs(byte[] frame, ushort type) => L3Messages.EtherTypeOf(frame) == type;

    [Fact]
    public void Ttl_expiry_drops_and_sends_time_exceeded_to_the_sender()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Host20, Host20Ip);
        var packet = Udp(HostA, Gw10, HostAIp, Host20Ip, ttl: 1);

        lab.Receive(Acc10, packet);

        Assert.Empty(lab.Sent(Acc20));
        Assert.Equal(1, lab.Drops("route", "TtlExpired"));
        var error = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(error));
        Assert.Equal(Gw10, Source(error));
        var ip = Ip4(error);
        Assert.Equal(Gw10Ip, ip.Source);
        Assert.Equal(HostAIp, ip.Destination);
        var icmp = new Icmpv4Header(ip.Payload);
        Assert.Equal(Icmpv4Type.TimeExceeded, icmp.Type);
        Assert.Equal(0, icmp.Code);
        Assert.Equal(packet.AsSpan(EthernetHeader.Length).ToArray(), icmp.QuotedPacket.ToArray());
        AssertChecksums(error);
    }

    [Fact]
    public void No_route_drops_and_sends_net_unreachable()
    {
        using var lab = new L3Fixture(L3Program.Create(routes: []));

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")));

        Assert.Equal(1, lab.Drops("route", "NoRoute"));
        var error = Assert.Single(lab.Sent(Acc10));
        var icmp = new Icmpv4Header(Ip4(error).Payload);
        Assert.Equal(Icmpv4Type.DestinationUnreachable, icmp.Type);
        Assert.Equal(0, icmp.Code);
        AssertChecksums(error);
    }

    [Fact]
    public void An_oversized_df_packet_gets_frag_needed_with_the_egress_mtu()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Host20, Host20Ip);

        // bd20 carries a VXLAN segment with MTU 1450: a 1460-byte IPv4 packet does not fit.
        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip, payload: 1460 - 28));

        Assert.Equal(1, lab.Drops("route", "FragmentationNeeded"));
        var error = Assert.Single(lab.Sent(Acc10));
        var icmp = new Icmpv4Header(Ip4(error).Payload);
        Assert.Equal(Icmpv4Type.DestinationUnreachable, icmp.Type);
        Assert.Equal(4, icmp.Code);
        Assert.Equal(1450, icmp.SequenceNumber); // RFC 1191: next-hop MTU in the low 16 bits
        AssertChecksums(error);
        Assert.Empty(lab.Sent(Acc20));

        // Without DF it goes on: the host's own segment (acc20) takes 1500 bytes, so it leaves whole.
        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip, payload: 1460 - 28, dontFragment: false));
        Assert.Empty(lab.Sent(Acc10));
        Assert.Equal(1460, Ip4(Assert.Single(lab.Sent(Acc20))).TotalLength);

        // A packet that fits is routed.
        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip, payload: 1450 - 28));
        Assert.Single(lab.Sent(Acc20));
    }

    [Fact]
    public void Syn_mss_is_clamped_on_the_way_out_with_a_valid_checksum()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak20: g => g with { MssClamp = 1360 }));
        lab.Announce(Acc20, Host20, Host20Ip);

        lab.Receive(Acc10, Syn(HostA, Gw10, HostAIp, Host20Ip, mss: 1460));

        var routed = Assert.Single(lab.Sent(Acc20));
        var ip = Ip4(routed);
        Assert.Equal(ParseError.None, TcpHeader.TryParse(ip.Payload, out var tcp));
        Assert.True(tcp.TryGetMss(out var mss, out _));
        Assert.Equal(1360, mss);
        AssertChecksums(routed);

        // A smaller MSS is left alone.
        lab.Receive(Acc10, Syn(HostA, Gw10, HostAIp, Host20Ip, mss: 1200));
        Assert.Equal(ParseError.None, TcpHeader.TryParse(Ip4(Assert.Single(lab.Sent(Acc20))).Payload, out var small));
        Assert.True(small.TryGetMss(out var kept, out _));
        Assert.Equal(1200, kept);
    }

    [Fact]
    public void Ipv6_is_routed_after_neighbor_solicitation_with_hop_limit_decremented()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Udp6(HostA, Gw10, HostA6, Host206, hopLimit: 64));

        var ns = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(MacAddress.Parse("33:33:ff:00:00:05"), Destination(ns));
        var nsIp = Ip6(ns);
        Assert.Equal(L3Messages.SolicitedNode(Host206), nsIp.Destination);
        Assert.Equal(Gw206, nsIp.Source);
        Assert.Equal(Icmpv6Type.NeighborSolicitation, new Icmpv6Header(nsIp.Payload).Type);
        AssertChecksums(ns);

        lab.Receive(Acc20, NeighborAdvertisement(Host20, Host206, Gw20, Gw206));

        var routed = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Host20, Destination(routed));
        Assert.Equal(Gw20, Source(routed));
        Assert.Equal(63, Ip6(routed).HopLimit);
        AssertChecksums(routed);
    }

    [Fact]
    public void Ipv6_hop_limit_expiry_and_packet_too_big_answer_with_icmpv6()
    {
        using var lab = new L3Fixture();
        lab.Receive(Acc20, NeighborAdvertisement(Host20, Host206, Frames.Mac("33:33:00:00:00:01"), Ipv6Address.Parse("ff02::1")));
        lab.ClearSent();

        lab.Receive(Acc10, Udp6(HostA, Gw10, HostA6, Host206, hopLimit: 1));
        var expired = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(Icmpv6Type.TimeExceeded, new Icmpv6Header(Ip6(expired).Payload).Type);
        Assert.Equal(Gw106, Ip6(expired).Source);
        AssertChecksums(expired);

        lab.Receive(Acc10, Udp6(HostA, Gw10, HostA6, Host206, payload: 1450 - 40 - 8 + 1));
        var tooBig = Assert.Single(lab.Sent(Acc10));
        var icmp = new Icmpv6Header(Ip6(tooBig).Payload);
        Assert.Equal(Icmpv6Type.PacketTooBig, icmp.Type);
        Assert.Equal(1450u, icmp.MtuOrPointer);
        AssertChecksums(tooBig);
        Assert.Equal(1, lab.Drops("route", "TtlExpired"));
        Assert.Equal(1, lab.Drops("route", "FragmentationNeeded"));
    }

    [Fact]
    public void A_routed_packet_reaches_a_neighbor_behind_a_vtep_on_that_vtep_only()
    {
        using var lab = new L3Fixture();
        var vm = Frames.Mac("02:00:00:00:20:0b");
        var vmIp = Ipv4Address.Parse("10.20.0.11");
        var garp = new byte[64];
        var length = PacketBuilder.GarpRequest(garp, vm, vmIp);
        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5020, garp[..length]), RemoteVtep: Vtep1));
        lab.ClearSent();

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, vmIp));

        var sent = Assert.Single(lab.SentFrames(Und0));
        Assert.Equal(Vtep1, sent.DestinationIp);
        var (vni, inner) = Frames.Unvxlan(sent.Bytes);
        Assert.Equal(5020u, vni);
        Assert.Equal(vm, Destination(inner));
        Assert.Empty(lab.Sent(Acc20));
    }

    [Fact]
    public void A_traced_packet_records_the_route_chosen()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Upstream, UpstreamIp);

        var id = lab.Worker.Inject(Udp(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), Acc10);
        lab.Run();

        var entries = lab.Worker.Context.Tracer.Entries(id);
        var route = Assert.Single(entries, e => e.Stage == "route");
        Assert.Equal("routed", route.Verdict);
        Assert.Contains("0.0.0.0/0 via 10.20.0.254 in bd20 → bd20", route.Detail);
        Assert.Contains("02:00:00:00:20:fe", route.Detail);
        Assert.Contains(entries, e => e.Stage == "encap" && e.Detail == "acc20");
        lab.ClearSent();
    }

    [Fact]
    public void A_traced_packet_records_hold_and_release()
    {
        using var lab = new L3Fixture();

        var id = lab.Worker.Inject(Udp(HostA, Gw10, HostAIp, Host20Ip), Acc10);
        lab.Run();
        lab.Receive(Acc20, ArpReply(Host20, Host20Ip, Gw20, Gw20Ip));

        var verdicts = lab.Worker.Context.Tracer.Entries(id).Select(e => $"{e.Stage}:{e.Verdict}").ToList();
        Assert.Contains("route:routed", verdicts);
        Assert.Contains("neighbor:held", verdicts);
        Assert.Contains("neighbor:released", verdicts);
        Assert.Equal(Host20, Destination(Assert.Single(lab.Sent(Acc20), f => EtherTypeIs(f, EtherType.Ipv4))));
        lab.ClearSent();
    }

    [Fact]
    public void Bridged_traffic_is_untouched_by_the_l3_stages()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc10, HostB, HostBIp);

        var frame = Udp(HostA, HostB, HostAIp, HostBIp, ttl: 1);
        lab.Receive(Acc10, frame);
        lab.Receive(Trunk0, new MemoryFrame(frame, VlanTci: 10));

        Assert.Equal(frame, Assert.Single(lab.Sent(Acc10)));
        Assert.Equal(1, lab.Drops("bridge", "SameSegment"));
    }

    [Fact]
    public void A_commit_that_keeps_the_routed_domains_keeps_the_neighbor_cache()
    {
        using var lab = new L3Fixture();
        lab.Announce(Acc20, Host20, Host20Ip);

        lab.Slot.Publish(SnapshotCompiler.Compile(L3Program.Create(tweak20: g => g with { MssClamp = 1400 }), 2, lab.Time.TimestampFrequency));
        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));

        Assert.Equal(Host20, Destination(Assert.Single(lab.Sent(Acc20))));
    }

    [Fact]
    public void A_routed_packet_without_df_is_fragmented_for_a_vxlan_segment_and_reassembles_to_the_original()
    {
        using var lab = new L3Fixture();
        // Host 20 lives behind VTEP 192.0.2.2 on VNI 5020 (MTU 1450).
        var garp = new byte[64];
        var n = PacketBuilder.GarpRequest(garp, Host20, Host20Ip);
        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5020, garp[..n]), RemoteVtep: Ipv4Address.Parse("192.0.2.2").Value));
        lab.ClearSent();

        var sent = Udp(HostA, Gw10, HostAIp, Host20Ip, payload: 1960, dontFragment: false);   // 1988-byte IPv4 packet
        lab.Receive(Acc10, sent);
        var fragments = lab.SentFrames(Und0).Select(f => f.Bytes[VxlanHeader.Length..]).ToList();
        Assert.Equal(2, fragments.Count);

        var payload = new List<byte>();
        var expectedOffset = 0;
        foreach (var (fragment, k) in fragments.Select((f, k) => (f, k)))
        {
            var ip = Ip4(fragment);
            Assert.True(ip.IsHeaderChecksumValid);
            Assert.InRange(ip.TotalLength, 21, 1450);
            Assert.Equal(expectedOffset, ip.FragmentOffsetBytes);
            Assert.Equal(k == 0, ip.MoreFragments);
            Assert.Equal(Host20Ip, ip.Destination);
            Assert.Equal(63, ip.Ttl);
            payload.AddRange(ip.Payload.ToArray());
            expectedOffset += ip.Payload.Length;
        }

        // Reassembled, it is the datagram the host sent (UDP header, checksum and data untouched).
        var original = Ip4(sent);
        Assert.Equal(original.Payload.ToArray(), payload.ToArray());
        Assert.Equal(0, lab.Drops("encap", "MtuExceeded"));
    }
}
