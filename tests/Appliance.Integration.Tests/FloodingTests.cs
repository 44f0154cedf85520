using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>Issue 2 §7: BUM frames reach every other segment of the domain, never the ingress, never VXLAN to VXLAN.</summary>
[Collection(LabCollection.Name)]
public sealed class FloodingTests(LabFixture lab, ITestOutputHelper output)
{
    [Fact(Timeout = 60_000)]
    public async Task Broadcast_from_access_port_reaches_every_other_segment_but_not_its_own()
    {
        if (!lab.Ready())
        {
            return;
        }

        const string mac = "02:00:00:00:10:01";
        string filter = $"ether src {mac}";
        using var vm10 = await Lab.Tcpdump("ist-vm10", "eth0", filter, "in");
        using var vm10b = await Lab.Tcpdump("ist-vm10b", "eth0", filter, "in");
        using var t10 = await Lab.Tcpdump("ist-t10", "eth0", filter, "in");
        using var h10 = await Lab.Tcpdump("ist-h10", "eth0", filter, "in");
        // What the appliance puts on the underlay: head-end replication to both VTEPs of VNI 5010.
        using var ul = await Lab.Tshark("ist-ul", "ul-app", "udp dst port 4789 and src host 192.0.2.1", "ip.dst", "vxlan.vni", "eth.src");
        await Lab.MustScapy("ist-h10", IsolationTests.Arp(mac, "10.10.0.201"));
        // The copies that must arrive are waited for (a loaded machine's capture lags); then the ingress port's capture,
        // which must stay empty, gets the usual settle.
        var vm10Lines = await vm10.StopWhenAsync(l => l.Count > 0);
        var vm10bLines = await vm10b.StopWhenAsync(l => l.Count > 0, 0);
        var t10Lines = await t10.StopWhenAsync(l => l.Count > 0, 0);
        var ulLines = await ul.StopWhenAsync(l => HeadEndCopies(l, mac, "192.0.2.2", "192.0.2.3"), 0);
        var h10Lines = await h10.StopAsync();
        output.WriteLine($"vm10 {vm10Lines.Count}, vm10b {vm10bLines.Count}, t10 {t10Lines.Count}, h10 {h10Lines.Count}");
        output.WriteLine("underlay:\n" + string.Join('\n', ulLines));
        string diag = await Lab.Diagnostics();
        Assert.True(vm10Lines.Count > 0, "broadcast from ist-h10 did not reach ist-vm10 (VNI 5010, vtep 192.0.2.2)\n" + diag);
        Assert.True(vm10bLines.Count > 0, "broadcast from ist-h10 did not reach ist-vm10b (VNI 5010, vtep 192.0.2.3)\n" + diag);
        Assert.True(t10Lines.Count > 0, "broadcast from ist-h10 did not reach ist-t10 (VLAN 10 on the trunk)\n" + diag);
        Assert.True(h10Lines.Count == 0, "the appliance sent the broadcast back out of its ingress port acc10:\n" + string.Join('\n', h10Lines));
        var copies = ulLines.Where(l => l.EndsWith(mac, StringComparison.Ordinal)).ToList();
        Assert.Contains(copies, l => l.StartsWith("192.0.2.2|5010|", StringComparison.Ordinal));
        Assert.Contains(copies, l => l.StartsWith("192.0.2.3|5010|", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task Broadcast_from_vxlan_reaches_vlan_segments_but_never_another_vtep()
    {
        if (!lab.Ready())
        {
            return;
        }

        const string mac = "02:00:00:00:10:02";
        string filter = $"ether src {mac}";
        using var h10 = await Lab.Tcpdump("ist-h10", "eth0", filter, "in");
        using var t10 = await Lab.Tcpdump("ist-t10", "eth0", filter, "in");
        using var vm10b = await Lab.Tcpdump("ist-vm10b", "eth0", filter, "in");
        using var vm10 = await Lab.Tcpdump("ist-vm10", "eth0", filter, "in");
        // Split horizon, checked on the wire: no VXLAN from the appliance carries this frame, to any VTEP.
        using var ul = await Lab.Tshark("ist-ul", "ul-app", "udp dst port 4789 and src host 192.0.2.1", "ip.dst", "vxlan.vni", "eth.src");
        using var vtep2 = await Lab.Tshark("ist-vtep2", "ul0", "udp dst port 4789 and src host 192.0.2.1", "ip.dst", "vxlan.vni", "eth.src");
        await Lab.MustScapy("ist-vm10", IsolationTests.Arp(mac, "10.10.0.202"));
        var h10Lines = await h10.StopWhenAsync(l => l.Count > 0);
        var t10Lines = await t10.StopWhenAsync(l => l.Count > 0, 0);
        var vm10bLines = await vm10b.StopAsync();
        var vm10Lines = await vm10.StopAsync(0);
        var ulLines = await ul.StopAsync(0);
        var vtep2Lines = await vtep2.StopAsync(0);
        output.WriteLine($"h10 {h10Lines.Count}, t10 {t10Lines.Count}, vm10b {vm10bLines.Count}, vm10 {vm10Lines.Count}");
        output.WriteLine("underlay from the appliance:\n" + string.Join('\n', ulLines));
        string diag = await Lab.Diagnostics();
        Assert.True(h10Lines.Count > 0, "broadcast from ist-vm10 (VXLAN) did not reach ist-h10\n" + diag);
        Assert.True(t10Lines.Count > 0, "broadcast from ist-vm10 (VXLAN) did not reach ist-t10\n" + diag);
        Assert.True(vm10bLines.Count == 0, "split horizon broken: VXLAN -> VXLAN to ist-vm10b:\n" + string.Join('\n', vm10bLines));
        Assert.True(vm10Lines.Count == 0, "the broadcast was reflected back to its ingress VTEP (ist-vm10):\n" + string.Join('\n', vm10Lines));
        Assert.DoesNotContain(ulLines, l => l.EndsWith(mac, StringComparison.Ordinal));
        Assert.DoesNotContain(vtep2Lines, l => l.EndsWith(mac, StringComparison.Ordinal));
    }

    private static bool HeadEndCopies(IReadOnlyList<string> lines, string mac, params string[] vteps) =>
        vteps.All(v => lines.Any(l => l.EndsWith(mac, StringComparison.Ordinal) && l.StartsWith(v + "|5010|", StringComparison.Ordinal)));
}
