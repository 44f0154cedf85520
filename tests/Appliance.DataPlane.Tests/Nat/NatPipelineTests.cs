using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Nat;

/// <summary>The whole pipeline (decap → bridge → gateway → conntrack → route → firewall → nat → neighbor → encap) with NAT.</summary>
public class NatPipelineTests
{
    private static readonly Ipv4Address Internet = Ipv4Address.Parse("198.51.100.7");

    private static DataPlaneProgram Masquerade() => L3Program.Create() with
    {
        Firewall = new FirewallSpec
        {
            Zones = [new ZoneSpec { Name = "inside", Domains = ["bd10"] }, new ZoneSpec { Name = "outside", Domains = ["bd20"] }],
            Policies = [new PolicySpec { From = "inside", To = "outside", Rules = [new RuleSpec { Id = 1 }] }],
        },
        Nat = new NatSpec { Snat = [new SnatRuleSpec { EgressZone = "outside" }] },
    };

    [Fact]
    public void A_host_reaches_the_internet_masqueraded_through_the_routed_path()
    {
        using var lab = new L3Fixture(Masquerade());
        lab.Announce(Acc10, HostA, HostAIp);
        lab.Announce(Acc20, Upstream, UpstreamIp);

        lab.Receive(Acc10, Build(b => PacketBuilder.Tcp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Internet), 40001, 443, TcpFlags.Syn, sequence: 7)));
        var sent = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Upstream, Destination(sent));
        Assert.Equal(Gw20Ip, Ip4(sent).Source);
        Assert.Equal(Internet, Ip4(sent).Destination);
        AssertChecksums(sent);
        Assert.Equal(1, lab.Worker.Context.Flows.Table!.Count);
    }

    [Fact]
    public void The_worker_heartbeat_ages_sessions_out_in_virtual_time()
    {
        using var lab = new L3Fixture(Masquerade());
        lab.Announce(Acc10, HostA, HostAIp);
        lab.Announce(Acc20, Upstream, UpstreamIp);
        lab.Receive(Acc10, Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Internet), 40002, 53, new byte[8])));
        Assert.Single(lab.Sent(Acc20));
        var table = lab.Worker.Context.Flows.Table!;
        Assert.Equal(1, table.Count);

        // UDP unreplied: 30 s; the sweep visits the whole table within 8 heartbeats.
        lab.Tick(29);
        Assert.Equal(1, table.Count);
        lab.Tick(2 + 8);
        Assert.Equal(0, table.Count);
    }

    // The gateway stage drops packets addressed to its own address other than echo requests
    // (gateway.NotServed) before conntrack sees them, so replies to masqueraded flows never get
    // un-NATed. Needs the gateway to hand such packets on when NAT is configured (see Firewall/README.md).
    [Fact]
    public void A_host_reaches_the_internet_masqueraded_and_the_reply_comes_back_un_natted()
    {
        using var lab = new L3Fixture(Masquerade());
        lab.Announce(Acc10, HostA, HostAIp);
        lab.Announce(Acc20, Upstream, UpstreamIp);

        lab.Receive(Acc10, Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Internet), 40000, 53, new byte[8])));
        var sent = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Upstream, Destination(sent));
        Assert.Equal(Gw20Ip, Ip4(sent).Source);
        AssertChecksums(sent);
        var port = new UdpHeader(Ip4(sent).Payload).SourcePort;

        lab.Receive(Acc20, Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Upstream, Gw20, Internet, Gw20Ip), 53, port, new byte[8])));
        var back = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(back));
        Assert.Equal(HostAIp, Ip4(back).Destination);
        Assert.Equal(40000, new UdpHeader(Ip4(back).Payload).DestinationPort);
        AssertChecksums(back);
    }

    [Fact]
    public void Time_exceeded_for_a_port_forwarded_packet_quotes_the_public_address_the_sender_used()
    {
        // outside → 10.20.0.1:8080 is forwarded to host A:80. A SYN arriving with TTL 1 is DNATted by
        // conntrack before the route stage expires it: the error must quote what the client sent.
        var program = Masquerade() with
        {
            Firewall = Masquerade().Firewall with
            {
                Policies = [.. Masquerade().Firewall.Policies, new PolicySpec { From = "outside", To = "inside", Rules = [new RuleSpec { Id = 2, Protocol = "tcp" }] }],
            },
            Nat = new NatSpec { Dnat = [new DnatRuleSpec { Destination = Gw20Ip.ToString(), Protocol = "tcp", Port = 8080, ToAddress = HostAIp.ToString(), ToPort = 80, Hairpin = false }] },
        };
        using var lab = new L3Fixture(program);
        lab.Announce(Acc10, HostA, HostAIp);
        lab.Announce(Acc20, Upstream, UpstreamIp);

        var syn = Build(b => PacketBuilder.Tcp(b, new Ipv4FrameSpec(Upstream, Gw20, Internet, Gw20Ip) { Ttl = 1 }, 50000, 8080, TcpFlags.Syn, sequence: 9));
        lab.Receive(Acc20, syn);
        Assert.Empty(lab.Sent(Acc10));
        var error = Assert.Single(lab.Sent(Acc20));
        AssertChecksums(error);
        Assert.Equal(Internet, Ip4(error).Destination);
        var icmp = Ip4(error).Payload;
        Assert.Equal(Icmpv4Type.TimeExceeded, icmp[0]);
        var quote = icmp[Icmpv4Header.QuotedPacketOffset..];
        var quoted = new Ipv4Header(quote);
        Assert.Equal(Internet, quoted.Source);
        Assert.Equal(Gw20Ip, quoted.Destination);
        Assert.True(quoted.IsHeaderChecksumValid);

        // Byte for byte what the client sent from its IP header on, but the TTL the route stage saw (1).
        var sent = syn.AsSpan(EthernetHeader.Length, quoted.TotalLength).ToArray();
        Assert.Equal(sent[20..], quote[20..quoted.TotalLength].ToArray());
        Assert.Equal(sent[..20], quote[..20].ToArray());
    }

    [Fact]
    public void Time_exceeded_for_a_reply_to_a_masqueraded_flow_quotes_the_gateway_address_and_port()
    {
        using var lab = new L3Fixture(Masquerade());
        lab.Announce(Acc10, HostA, HostAIp);
        lab.Announce(Acc20, Upstream, UpstreamIp);
        lab.Receive(Acc10, Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Internet), 40000, 53, new byte[8])));
        var port = new UdpHeader(Ip4(Assert.Single(lab.Sent(Acc20))).Payload).SourcePort;

        var reply = Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Upstream, Gw20, Internet, Gw20Ip) { Ttl = 1 }, 53, port, new byte[8]));
        lab.Receive(Acc20, reply);
        Assert.Empty(lab.Sent(Acc10));
        var error = Assert.Single(lab.Sent(Acc20));
        AssertChecksums(error);
        var quote = Ip4(error).Payload[Icmpv4Header.QuotedPacketOffset..];
        var quoted = new Ipv4Header(quote);
        Assert.Equal(Gw20Ip, quoted.Destination);
        Assert.True(quoted.IsHeaderChecksumValid);
        Assert.Equal(reply.AsSpan(EthernetHeader.Length, quoted.TotalLength).ToArray(), quote[..quoted.TotalLength].ToArray());
    }
}
