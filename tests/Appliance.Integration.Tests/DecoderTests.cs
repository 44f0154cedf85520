using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>Issue 2 §7: tshark, an independent decoder, agrees with the appliance's VXLAN output.</summary>
[Collection(LabCollection.Name)]
public sealed class DecoderTests(LabFixture lab, ITestOutputHelper output)
{
    [Fact(Timeout = 60_000)]
    public async Task Tshark_decodes_the_appliance_vxlan_with_the_right_vni_and_inner_frame()
    {
        if (!lab.Ready())
        {
            return;
        }

        string h10Mac = await Lab.Mac("ist-h10");
        string h20Mac = await Lab.Mac("ist-h20");
        string t10Mac = await Lab.Mac("ist-t10");

        // Raw VXLAN transmit (dataPlane.vxlanTransmit "raw"): the first datagrams to a VTEP go through the UDP socket
        // (source port 4789) while the kernel resolves its MAC; the worker's heartbeat (1 s) then switches to raw frames.
        // Ping until the underlay port counts raw frames (a loaded machine can hold the heartbeat back well past a
        // second), or UDP GSO trains ("udpGso": every datagram from the start, from a port in the entropy range).
        await Lab.MustPing("ist-t10", "10.10.0.13");
        var until = DateTime.UtcNow.AddSeconds(30);
        long raw;
        do
        {
            raw = (await Lab.Counters()).Ports["und0"].TxRaw;
            await Lab.MustPing("ist-h10", "10.10.0.11");
        }
        while ((await Lab.Counters()).Ports["und0"] is var c && c.TxRaw == raw && c.TxGsoTrains == 0 && DateTime.UtcNow < until);

        using var cap = await Lab.Tshark("ist-ul", "ul-app", "udp dst port 4789 and src host 192.0.2.1",
            "ip.src", "ip.dst", "udp.dstport", "vxlan.flags", "vxlan.vni", "eth.src", "eth.dst", "_ws.malformed", "_ws.expert.severity", "udp.srcport");
        await Lab.MustPing("ist-h10", "10.10.0.11");
        await Lab.MustPing("ist-h20", "10.20.0.11");
        await Lab.MustPing("ist-t10", "10.10.0.13");
        var lines = await cap.StopWhenAsync(l => Decoded(l, "10.10.0.10", "192.0.2.2") && Decoded(l, "10.20.0.10", "192.0.2.2") && Decoded(l, "10.10.0.12", "192.0.2.3"));
        foreach (string l in lines)
        {
            output.WriteLine(l);
        }

        var rows = lines.Select(l => l.Split('|')).Where(f => f.Length >= 9).ToList();
        string all = string.Join('\n', lines);
        Assert.True(rows.Count > 0, "tshark saw no VXLAN from 192.0.2.1\n" + await Lab.Diagnostics());
        // Outer and inner IPv4 both appear ("outer,inner") when tshark decoded the VXLAN payload.
        AssertDecoded(rows, "10.10.0.10", "10.10.0.11", "192.0.2.2", "5010", h10Mac, all);
        AssertDecoded(rows, "10.20.0.10", "10.20.0.11", "192.0.2.2", "5020", h20Mac, all);
        AssertDecoded(rows, "10.10.0.12", "10.10.0.13", "192.0.2.3", "5010", t10Mac, all);
        Assert.All(rows, f => Assert.True(f[7].Length == 0, $"tshark flagged a malformed packet: {string.Join('|', f)}"));
        Assert.All(rows, f => Assert.Equal("4789", f[2]));
        Assert.All(rows, f => Assert.True(f[4].Length > 0, $"tshark did not decode VXLAN: {string.Join('|', f)}"));

        // RFC 7348 §5: a raw frame's source port is the inner flow's hash in 49152-65535; 4789 is the socket's.
        Assert.All(rows, f => Assert.True(
            f.Length > 9 && int.TryParse(f[9].Split(',')[0], out var port) && (port == 4789 || port >= 49152),
            $"outer UDP source port: {string.Join('|', f)}"));
        Assert.Contains(rows, f => f.Length > 9 && int.TryParse(f[9].Split(',')[0], out var port) && port >= 49152);
    }

    private static bool Decoded(IReadOnlyList<string> lines, string innerSrc, string vtep) =>
        lines.Any(l => l.StartsWith($"192.0.2.1,{innerSrc}|{vtep},", StringComparison.Ordinal));

    private static void AssertDecoded(List<string[]> rows, string innerSrc, string innerDst, string vtep, string vni, string innerMac, string all)
    {
        var match = rows.Where(f => f[0] == $"192.0.2.1,{innerSrc}" && f[1] == $"{vtep},{innerDst}").ToList();
        Assert.True(match.Count > 0, $"no VXLAN to {vtep} carrying {innerSrc} > {innerDst}:\n{all}");
        foreach (var f in match)
        {
            Assert.Equal(vni, f[4]);
            Assert.EndsWith("," + innerMac, f[5], StringComparison.Ordinal);
            // I flag set, nothing else (tshark shows the 16-bit flags field).
            Assert.True(f[3] is "0x0800" or "0x08000000" or "2048", $"VXLAN flags {f[3]}");
        }
    }
}
