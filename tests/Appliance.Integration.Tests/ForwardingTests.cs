using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>Issue 2 §7: ping and TCP through the appliance, VXLAN ↔ access and across the trunk.</summary>
[Collection(LabCollection.Name)]
public sealed class ForwardingTests(LabFixture lab, ITestOutputHelper output)
{
    [Fact(Timeout = 90_000)]
    public async Task Vxlan_vm_and_access_host_ping_and_transfer_both_ways()
    {
        if (!lab.Ready())
        {
            return;
        }

        await Lab.MustPing("ist-vm10", "10.10.0.10");
        await Lab.MustPing("ist-h10", "10.10.0.11");
        await Transfer.MustFetch("ist-h10", "10.10.0.10", "ist-vm10");
        await Transfer.MustFetch("ist-vm10", "10.10.0.11", "ist-h10");
        output.WriteLine((await Lab.Counters()).Raw);
    }

    [Fact(Timeout = 90_000)]
    public async Task Second_domain_vni5020_and_access_host_ping_both_ways()
    {
        if (!lab.Ready())
        {
            return;
        }

        await Lab.MustPing("ist-vm20", "10.20.0.10");
        await Lab.MustPing("ist-h20", "10.20.0.11");
    }

    [Fact(Timeout = 120_000)]
    public async Task Trunk_host_reaches_vxlan_vm_and_access_host_with_ping_and_transfer()
    {
        if (!lab.Ready())
        {
            return;
        }

        await Lab.MustPing("ist-t10", "10.10.0.11");
        await Lab.MustPing("ist-vm10", "10.10.0.12");
        await Lab.MustPing("ist-t10", "10.10.0.10");
        await Lab.MustPing("ist-h10", "10.10.0.12");
        await Transfer.MustFetch("ist-t10", "10.10.0.12", "ist-vm10");
        await Transfer.MustFetch("ist-vm10", "10.10.0.11", "ist-t10");
        await Transfer.MustFetch("ist-t10", "10.10.0.12", "ist-h10");
        await Transfer.MustFetch("ist-h10", "10.10.0.10", "ist-t10");
    }

    [Fact(Timeout = 60_000)]
    public async Task Trunk_frames_carry_the_right_802_1q_tag_both_ways()
    {
        if (!lab.Ready())
        {
            return;
        }

        // The hypervisor side of the trunk: what the appliance sends (in) and what PortGroup sends (out).
        using var cap = await Lab.Tcpdump("ist-hv", "hvtrunk", "");
        await Lab.MustPing("ist-t10", "10.10.0.11");
        await Lab.MustPing("ist-t20", "10.20.0.11");
        string[] expected = ["10.10.0.12 > 10.10.0.11: ICMP echo request", "10.10.0.11 > 10.10.0.12: ICMP echo reply", "10.20.0.12 > 10.20.0.11: ICMP echo request", "10.20.0.11 > 10.20.0.12: ICMP echo reply"];
        var lines = await cap.StopWhenAsync(l => expected.All(e => l.Any(x => x.Contains(e, StringComparison.Ordinal))));
        foreach (string l in lines)
        {
            output.WriteLine(l);
        }

        string all = string.Join('\n', lines);
        AssertTagged(lines, "10.10.0.12 > 10.10.0.11: ICMP echo request", 10, all);
        AssertTagged(lines, "10.10.0.11 > 10.10.0.12: ICMP echo reply", 10, all);
        AssertTagged(lines, "10.20.0.12 > 10.20.0.11: ICMP echo request", 20, all);
        AssertTagged(lines, "10.20.0.11 > 10.20.0.12: ICMP echo reply", 20, all);
    }

    private static void AssertTagged(IReadOnlyList<string> lines, string what, int vlan, string all)
    {
        var matching = lines.Where(l => l.Contains(what, StringComparison.Ordinal)).ToList();
        Assert.True(matching.Count > 0, $"no '{what}' seen on hvtrunk:\n{all}");
        Assert.All(matching, l => Assert.Contains($"vlan {vlan},", l, StringComparison.Ordinal));
    }
}
