using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Gateway;

/// <summary>The gateway interface: ARP, ND and ping for its own addresses, learning, proxy ARP, anti-spoofing.</summary>
public class GatewayStageTests
{
    [Fact]
    public void Arp_for_the_gateway_address_is_answered_on_the_askers_segment_and_still_flooded()
    {
        using var lab = new L3Fixture();
        var request = ArpRequest(HostA, HostAIp, Gw10Ip);

        lab.Receive(Acc10, request);

        var sent = lab.Sent(Acc10);
        var reply = Assert.Single(sent);
        Assert.Equal(HostA, Destination(reply));
        Assert.Equal(Gw10, Source(reply));
        var arp = Arp(reply);
        Assert.Equal(ArpOpcode.Reply, arp.Opcode);
        Assert.Equal(Gw10, arp.SenderMac);
        Assert.Equal(Gw10Ip, arp.SenderIp);
        Assert.Equal(HostA, arp.TargetMac);
        Assert.Equal(HostAIp, arp.TargetIp);
        Assert.Equal(request, Frames.Untag(Assert.Single(lab.Sent(Trunk0))).Frame);
        Assert.Equal(1, lab.L3.ArpReplies);
    }

    [Fact]
    public void Arp_for_another_address_is_only_flooded()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, ArpRequest(HostA, HostAIp, Ipv4Address.Parse("10.10.0.77")));

        Assert.Empty(lab.Sent(Acc10));
        Assert.Single(lab.Sent(Trunk0));
        Assert.Equal(0, lab.L3.ArpReplies);
    }

    [Fact]
    public void Arp_for_an_on_link_nat_address_is_answered_with_the_gateway_mac()
    {
        var program = L3Program.Create() with
        {
            Nat = new NatSpec { Static = [new StaticNatSpec { External = "10.10.0.50", Internal = "10.20.0.50" }] },
        };
        using var lab = new L3Fixture(program);

        lab.Receive(Acc10, ArpRequest(HostA, HostAIp, Ipv4Address.Parse("10.10.0.50")));

        var arp = Arp(Assert.Single(lab.Sent(Acc10)));
        Assert.Equal(ArpOpcode.Reply, arp.Opcode);
        Assert.Equal(Gw10, arp.SenderMac);
        Assert.Equal(Ipv4Address.Parse("10.10.0.50"), arp.SenderIp);
    }

    [Fact]
    public void Arp_for_the_gateway_from_a_vtep_is_answered_to_that_vtep_only()
    {
        using var lab = new L3Fixture();

        lab.Receive(Und0, new MemoryFrame(Frames.Vxlan(5010, ArpRequest(HostB, HostBIp, Gw10Ip)), RemoteVtep: Vtep2));

        var sent = lab.SentFrames(Und0);
        var reply = Assert.Single(sent);
        Assert.Equal(Vtep2, reply.DestinationIp);
        var (vni, inner) = Frames.Unvxlan(reply.Bytes);
        Assert.Equal(5010u, vni);
        Assert.Equal(ArpOpcode.Reply, Arp(inner).Opcode);
        Assert.Equal(HostB, Destination(inner));
    }

    [Fact]
    public void Unicast_arp_refresh_to_the_gateway_mac_is_answered_in_place()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, ArpRequest(HostA, HostAIp, Gw10Ip, ethernetDestination: Gw10));

        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(Gw10Ip, Arp(reply).SenderIp);
        Assert.Empty(lab.Sent(Trunk0));
    }

    [Fact]
    public void Gratuitous_arp_is_learned_into_the_neighbor_cache()
    {
        using var lab = new L3Fixture();

        lab.Announce(Acc20, Host20, Host20Ip);

        ref var entry = ref lab.Neighbors.Find(1, false, 0, Host20Ip.Value);
        Assert.False(Unsafe.IsNullRef(ref entry));
        Assert.Equal(NeighborState.Reachable, entry.State);
        Assert.Equal(Host20.Value, entry.Mac);
    }

    [Fact]
    public void Arp_claiming_an_address_outside_the_domain_is_not_learned()
    {
        using var lab = new L3Fixture();

        lab.Announce(Acc10, HostA, Host20Ip);

        Assert.True(Unsafe.IsNullRef(ref lab.Neighbors.Find(0, false, 0, Host20Ip.Value)));
        Assert.True(Unsafe.IsNullRef(ref lab.Neighbors.Find(1, false, 0, Host20Ip.Value)));
    }

    [Fact]
    public void Ping_to_the_gateway_is_answered_with_valid_checksums()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Ping(HostA, Gw10, HostAIp, Gw10Ip));

        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(reply));
        Assert.Equal(Gw10, Source(reply));
        var ip = Ip4(reply);
        Assert.Equal(Gw10Ip, ip.Source);
        Assert.Equal(HostAIp, ip.Destination);
        Assert.Equal(IpProtocol.Icmp, ip.Protocol);
        var icmp = new Icmpv4Header(ip.Payload);
        Assert.Equal(Icmpv4Type.EchoReply, icmp.Type);
        Assert.Equal(0x1234, icmp.Identifier);
        Assert.Equal(7, icmp.SequenceNumber);
        Assert.Equal("abcdefgh"u8.ToArray(), icmp.Body.ToArray());
        AssertChecksums(reply);
        Assert.Equal(1, lab.L3.EchoReplies);
    }

    [Fact]
    public void Ping_to_the_other_domains_gateway_address_is_answered_back_where_it_came_from()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Ping(HostA, Gw10, HostAIp, Gw20Ip));

        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(Gw20Ip, Ip4(reply).Source);
        AssertChecksums(reply);
        Assert.Empty(lab.Sent(Acc20));
    }

    [Fact]
    public void Ping6_to_the_gateway_is_answered_with_a_valid_checksum()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Ping6(HostA, Gw10, HostA6, Gw106));

        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(reply));
        var ip = Ip6(reply);
        Assert.Equal(Gw106, ip.Source);
        Assert.Equal(HostA6, ip.Destination);
        Assert.Equal(Icmpv6Type.EchoReply, new Icmpv6Header(ip.Payload).Type);
        AssertChecksums(reply);
    }

    [Fact]
    public void Neighbor_solicitation_for_the_gateway_is_answered_with_an_advertisement()
    {
        using var lab = new L3Fixture();
        var ns = NeighborSolicitation(HostA, HostA6, Gw106);

        lab.Receive(Acc10, ns);

        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(reply));
        var ip = Ip6(reply);
        Assert.Equal(255, ip.HopLimit);
        Assert.Equal(Gw106, ip.Source);
        Assert.Equal(HostA6, ip.Destination);
        var icmp = new Icmpv6Header(ip.Payload);
        Assert.Equal(Icmpv6Type.NeighborAdvertisement, icmp.Type);
        Assert.Equal(0xE000_0000u, icmp.MtuOrPointer & 0xE000_0000u);
        Assert.Equal(Gw106, Ipv6Address.Read(ip.Payload[8..]));
        Assert.True(L3Messages.TryGetLinkLayerOption(ip.Payload[24..], L3Messages.OptionTargetLinkLayer, out var tlla));
        Assert.Equal(Gw10, tlla);
        AssertChecksums(reply);

        // The solicitation taught us the asker, and it was flooded as multicast.
        Assert.False(Unsafe.IsNullRef(ref lab.Neighbors.Find(0, true, HostA6.High, HostA6.Low)));
        Assert.Single(lab.Sent(Trunk0));
    }

    [Fact]
    public void A_tcp_connection_to_the_gateway_address_is_not_served()
    {
        using var lab = new L3Fixture();

        lab.Receive(Acc10, Syn(HostA, Gw10, HostAIp, Gw10Ip, 1460));

        Assert.All(lab.Ports, p => Assert.Empty(p.Transmitted));
        Assert.Equal(1, lab.Drops("gateway", "NotServed"));
    }

    [Fact]
    public void Anti_spoofing_drops_sources_outside_the_domains_prefixes()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak10: g => g with { AntiSpoofing = true }));

        lab.Receive(Acc10, Udp(HostA, Gw10, Ipv4Address.Parse("10.99.0.5"), Host20Ip));
        lab.Receive(Acc10, Ping(HostA, Gw10, HostAIp, Gw10Ip));

        Assert.Equal(1, lab.Drops("gateway", "Spoofed"));
        Assert.Single(lab.Sent(Acc10));
    }

    [Fact]
    public void Anti_spoofing_with_bindings_drops_a_bound_address_from_the_wrong_mac()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak10: g => g with
        {
            AntiSpoofing = true,
            Bindings = [new("10.10.0.10", "02:00:00:00:10:0a")],
        }));

        lab.Receive(Acc10, Ping(HostB, Gw10, HostAIp, Gw10Ip));
        lab.Receive(Acc10, Ping(HostB, Gw10, HostBIp, Gw10Ip));
        lab.Receive(Acc10, Ping(HostA, Gw10, HostAIp, Gw10Ip));

        Assert.Equal(2, lab.Drops("gateway", "Spoofed"));
        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(reply));
    }

    [Fact]
    public void Proxy_arp_answers_from_the_bindings_instead_of_flooding()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak10: g => g with
        {
            ProxyArp = true,
            Bindings = [new("10.10.0.10", "02:00:00:00:10:0a")],
        }));

        lab.Receive(Acc10, ArpRequest(HostB, HostBIp, HostAIp));

        var reply = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostB, Destination(reply));
        var arp = Arp(reply);
        Assert.Equal(ArpOpcode.Reply, arp.Opcode);
        Assert.Equal(HostA, arp.SenderMac);
        Assert.Equal(HostAIp, arp.SenderIp);
        Assert.Empty(lab.Sent(Trunk0));
        Assert.Empty(lab.Sent(Und0));
        Assert.Equal(1, lab.L3.ProxyReplies);
    }

    [Fact]
    public void Proxy_arp_answers_from_learned_neighbors_and_floods_unknown_ones()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak10: g => g with { ProxyArp = true }));
        lab.Announce(Acc10, HostA, HostAIp);

        lab.Receive(Trunk0, new MemoryFrame(ArpRequest(HostB, HostBIp, HostAIp), VlanTci: 10));
        var (vlan, reply) = Frames.Untag(Assert.Single(lab.Sent(Trunk0)));
        Assert.Equal(10, vlan);
        Assert.Equal(HostA, Arp(reply).SenderMac);
        Assert.Empty(lab.Sent(Acc10));

        lab.Receive(Trunk0, new MemoryFrame(ArpRequest(HostB, HostBIp, Ipv4Address.Parse("10.10.0.99")), VlanTci: 10));
        Assert.Single(lab.Sent(Acc10));
    }

    [Fact]
    public void Proxy_nd_answers_a_solicitation_for_a_known_station()
    {
        using var lab = new L3Fixture(L3Program.Create(tweak10: g => g with { ProxyArp = true, Bindings = [new("fd00:10::a", "02:00:00:00:10:0a")] }));

        lab.Receive(Acc10, NeighborSolicitation(HostB, Ipv6Address.Parse("fd00:10::b"), HostA6));

        var reply = Assert.Single(lab.Sent(Acc10));
        var ip = Ip6(reply);
        Assert.Equal(HostA6, ip.Source);
        Assert.True(L3Messages.TryGetLinkLayerOption(ip.Payload[24..], L3Messages.OptionTargetLinkLayer, out var tlla));
        Assert.Equal(HostA, tlla);
        AssertChecksums(reply);
        Assert.Empty(lab.Sent(Trunk0));
    }
}
