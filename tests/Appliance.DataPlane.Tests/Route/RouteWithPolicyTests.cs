using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Route;

/// <summary>
/// The neighbor stage sits after the firewall and NAT: a packet waiting for ARP has been allowed
/// by the policy, and a denied one never triggers resolution.
/// </summary>
public class RouteWithPolicyTests
{
    private static DataPlaneProgram WithZones(params PolicySpec[] policies) => L3Program.Create() with
    {
        Firewall = new FirewallSpec
        {
            Zones =
            [
                new ZoneSpec { Name = "inside", Domains = ["bd10"] },
                new ZoneSpec { Name = "dmz", Domains = ["bd20"] },
            ],
            Policies = policies,
        },
    };

    [Fact]
    public void A_packet_the_policy_denies_is_neither_held_nor_resolved()
    {
        using var lab = new L3Fixture(WithZones());

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));

        Assert.Equal(1, lab.Drops("firewall", "DefaultDeny"));
        Assert.All(lab.Ports, p => Assert.Empty(p.Transmitted));
        Assert.Equal(0, lab.Neighbors.Count);
    }

    [Fact]
    public void An_allowed_packet_is_held_until_its_next_hop_answers_and_the_reply_flows_back()
    {
        using var lab = new L3Fixture(WithZones(new PolicySpec
        {
            From = "inside",
            To = "dmz",
            Rules = [new RuleSpec { Id = 100, Protocol = "udp", Action = FirewallAction.Allow }],
        }));
        lab.Announce(Acc10, HostA, HostAIp);

        lab.Receive(Acc10, Udp(HostA, Gw10, HostAIp, Host20Ip));
        Assert.Equal(ArpOpcode.Request, Arp(Assert.Single(lab.Sent(Acc20))).Opcode);
        lab.Receive(Acc20, ArpReply(Host20, Host20Ip, Gw20, Gw20Ip));
        var forward = Assert.Single(lab.Sent(Acc20));
        Assert.Equal(Host20, Destination(forward));
        AssertChecksums(forward);

        // The answer is part of an allowed flow: conntrack lets it back although dmz → inside has no policy.
        var answer = L3Frames.Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Host20, Gw20, Host20Ip, HostAIp), 53, 40000, new byte[8]));
        lab.Receive(Acc20, answer);
        var back = Assert.Single(lab.Sent(Acc10));
        Assert.Equal(HostA, Destination(back));
        Assert.Equal(Gw10, Source(back));
        AssertChecksums(back);
    }
}
