using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.LoadBalancer;

/// <summary>The whole default pipeline on memory ports: ARP for the VIP, a client's SYN to the VIP out to a backend, the backend's answer back.</summary>
public class LoadBalancerPipelineTests
{
    private static readonly Ipv4Address Vip = Ipv4Address.Parse("10.20.0.100");

    private static DataPlaneProgram Program(string mode) => L3Program.Create() with
    {
        LoadBalancer = new LoadBalancerSpec
        {
            VirtualServers = [new VirtualServerSpec { Name = "web", Address = Vip.ToString(), Ports = "80", Pool = "web", Mode = mode }],
            Pools = [new PoolSpec { Name = "web", Backends = [new BackendSpec { Address = HostAIp.ToString(), Port = 80 }, new BackendSpec { Address = HostBIp.ToString(), Port = 80 }] }],
        },
    };

    [Fact]
    public void The_appliance_answers_arp_for_its_vip_on_the_vips_segment()
    {
        using var lab = new L3Fixture(Program("full-nat"));
        lab.Receive(Acc20, ArpRequest(Upstream, UpstreamIp, Vip));
        var arp = Arp(Assert.Single(lab.Sent(Acc20)));
        Assert.Equal(ArpOpcode.Reply, arp.Opcode);
        Assert.Equal(Gw20, arp.SenderMac);
        Assert.Equal(Vip, arp.SenderIp);
    }

    [Theory]
    [InlineData("full-nat")]
    [InlineData("dnat-only")]
    public void A_syn_to_the_vip_reaches_a_backend_and_its_answer_comes_back_from_the_vip(string mode)
    {
        using var lab = new L3Fixture(Program(mode));
        lab.Announce(Acc10, HostA, HostAIp);
        lab.Announce(Acc10, HostB, HostBIp);
        lab.Announce(Acc20, Upstream, UpstreamIp);

        lab.Receive(Acc20, Syn(Upstream, Gw20, UpstreamIp, Vip, mss: 1460));
        var forwarded = Assert.Single(lab.Sent(Acc10));
        var ip = Ip4(forwarded);
        Assert.Contains(ip.Destination, new[] { HostAIp, HostBIp });
        Assert.Equal(mode == "full-nat" ? Gw10Ip : UpstreamIp, ip.Source);
        Assert.Equal(ip.Destination == HostAIp ? HostA : HostB, Destination(forwarded));
        AssertChecksums(forwarded);

        var backend = ip.Destination;
        var seenSource = ip.Source;
        var seenPort = new TcpHeader(ip.Payload).SourcePort;
        var backendMac = backend == HostAIp ? HostA : HostB;
        lab.Receive(Acc10, Build(b => PacketBuilder.Tcp(b, new Ipv4FrameSpec(backendMac, Gw10, backend, seenSource), 80, seenPort, TcpFlags.Syn | TcpFlags.Ack, sequence: 5000, acknowledgment: 1001)));
        var answer = Assert.Single(lab.Sent(Acc20));
        var back = Ip4(answer);
        Assert.Equal(Vip, back.Source);
        Assert.Equal(UpstreamIp, back.Destination);
        Assert.Equal(40000, new TcpHeader(back.Payload).DestinationPort);
        AssertChecksums(answer);
    }
}
