using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>Issue 2 §7: truncated, badly flagged and oversized frames are counted drops, and forwarding goes on.</summary>
[Collection(LabCollection.Name)]
public sealed class MalformedTests(LabFixture lab, ITestOutputHelper output)
{
    private static readonly string[] TruncatedKeys = ["decap.Truncated", "decap.VxlanTooShort"];

    [Fact(Timeout = 90_000)]
    public async Task Malformed_frames_are_counted_drops_and_forwarding_continues()
    {
        if (!lab.Ready())
        {
            return;
        }

        // Learn ist-vm10's MAC behind VNI 5010 so the oversized frame goes to VXLAN only.
        await Lab.MustPing("ist-vm10", "10.10.0.10");
        string vm10Mac = await Lab.Mac("ist-vm10");
        string h10Mac = await Lab.Mac("ist-h10");

        var c0 = await Lab.Counters();
        // Truncated frames on the access port: an Ethernet header only, and a cut IPv4 header.
        await Lab.MustScapy("ist-h10",
            "sendp(Ether(dst='ff:ff:ff:ff:ff:ff', src='02:00:00:00:66:01', type=0x0800), iface='eth0', count=2)\n" +
            "sendp(Ether(dst='ff:ff:ff:ff:ff:ff', src='02:00:00:00:66:01', type=0x0800)/Raw(b'\\x45\\x00\\x00'), iface='eth0', count=2)");
        var c1 = await Lab.Counters();
        output.WriteLine($"access-port truncated frames: truncated drops {c0.DropsAny(TruncatedKeys)} -> {c1.DropsAny(TruncatedKeys)}");

        const string vx = "IP(src='192.0.2.2', dst='192.0.2.1')/UDP(sport=40002, dport=4789)";
        // VXLAN with the I flag clear.
        await Lab.MustScapy("ist-vtep1", $"send({vx}/VXLAN(flags=0x00, vni=5010)/{IsolationTests.ArpLayers("02:00:00:00:66:02", "10.10.0.203")}, count=3)");
        // A VXLAN header cut short (3 bytes), and a whole header with a 6-byte inner frame.
        await Lab.MustScapy("ist-vtep1",
            $"send({vx}/Raw(b'\\x08\\x00\\x00'), count=3)\n" +
            $"send({vx}/VXLAN(flags=0x08, vni=5010)/Raw(b'\\x02\\x00\\x00\\x00\\x66\\x03'), count=3)");
        // 1500-byte IPv4 packets from the access host toward the VXLAN VM: bigger than the segment MTU 1450.
        await Lab.MustScapy("ist-h10",
            $"sendp(Ether(src='{h10Mac}', dst='{vm10Mac}')/IP(src='10.10.0.10', dst='10.10.0.11')/UDP(sport=5555, dport=5556)/Raw(b'x'*1472), iface='eth0', count=3)");

        var c2 = await Lab.WaitCounters(
            c => c.Drop("decap.VxlanBadFlags") >= c0.Drop("decap.VxlanBadFlags") + 3
              && c.DropsAny(TruncatedKeys) >= c1.DropsAny(TruncatedKeys) + 6
              && c.Drop("encap.MtuExceeded") >= c0.Drop("encap.MtuExceeded") + 3,
            "decap.VxlanBadFlags +3, decap.Truncated/VxlanTooShort +6, encap.MtuExceeded +3");
        output.WriteLine(c2.Raw);

        // And the appliance keeps forwarding.
        await Lab.MustPing("ist-vm10", "10.10.0.10");
        await Lab.MustPing("ist-t10", "10.10.0.11");
        var health = await Lab.RunAsync("curl", ["-sf", "--max-time", "2", Lab.Api + "/api/v1/health"], TimeSpan.FromSeconds(5));
        Assert.True(health.Ok, "health after malformed input:\n" + health);
    }
}
