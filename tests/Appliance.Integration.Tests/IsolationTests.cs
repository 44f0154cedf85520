using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>Issue 2 §7: nothing from VNI 5020 / VLAN 20 reaches domain 10; unknown VTEPs are dropped and counted.</summary>
[Collection(LabCollection.Name)]
public sealed class IsolationTests(LabFixture lab, ITestOutputHelper output)
{
    private static readonly string[] Domain10 = ["ist-h10", "ist-vm10", "ist-vm10b", "ist-t10"];

    [Fact(Timeout = 30_000)]
    public async Task Domain_20_hosts_cannot_ping_domain_10()
    {
        if (!lab.Ready())
        {
            return;
        }

        foreach (string ns in new[] { "ist-vm20", "ist-h20", "ist-t20" })
        {
            var r = await Lab.Exec(ns, "ping -n -c 1 -W 1 10.10.0.11");
            Assert.False(r.Ok, $"{ns} reached 10.10.0.11:\n{r}");
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Broadcasts_from_vlan20_and_vni5020_never_reach_domain_10()
    {
        if (!lab.Ready())
        {
            return;
        }

        const string fromH20 = "02:00:00:00:20:01";
        const string fromVm20 = "02:00:00:00:20:02";
        string filter = $"ether src {fromH20} or ether src {fromVm20}";
        var caps = new Dictionary<string, Background>();
        try
        {
            foreach (string ns in Domain10.Concat(["ist-h20", "ist-vm20", "ist-t20"]))
            {
                caps[ns] = await Lab.Tcpdump(ns, "eth0", filter, "in");
            }

            await Lab.MustScapy("ist-h20", Arp(fromH20, "10.20.0.201"));
            await Lab.MustScapy("ist-vm20", Arp(fromVm20, "10.20.0.202"));
            // The positive controls are waited for (a loaded machine's capture lags), then domain 10's captures, which
            // must stay empty, get the usual settle.
            var seen = new Dictionary<string, IReadOnlyList<string>>
            {
                ["ist-t20"] = await caps["ist-t20"].StopWhenAsync(l => Seen(l, fromH20) && Seen(l, fromVm20), 0),
                ["ist-vm20"] = await caps["ist-vm20"].StopWhenAsync(l => Seen(l, fromH20), 0),
                ["ist-h20"] = await caps["ist-h20"].StopWhenAsync(l => Seen(l, fromVm20), 0),
            };
            await Task.Delay(700);
            foreach (var (ns, cap) in caps)
            {
                if (!seen.TryGetValue(ns, out var lines))
                {
                    lines = await cap.StopAsync(0);
                    seen[ns] = lines;
                }

                output.WriteLine($"{ns}: {lines.Count} frames");
            }

            foreach (string ns in Domain10)
            {
                Assert.True(seen[ns].Count == 0, $"domain-20 frames leaked into {ns}:\n{string.Join('\n', seen[ns])}");
            }

            // Positive controls: the same frames were flooded inside domain 20.
            Assert.Contains(seen["ist-t20"], l => l.Contains(fromH20, StringComparison.Ordinal));
            Assert.Contains(seen["ist-vm20"], l => l.Contains(fromH20, StringComparison.Ordinal));
            Assert.Contains(seen["ist-h20"], l => l.Contains(fromVm20, StringComparison.Ordinal));
            Assert.Contains(seen["ist-t20"], l => l.Contains(fromVm20, StringComparison.Ordinal));
        }
        finally
        {
            foreach (var c in caps.Values)
            {
                c.Dispose();
            }
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Vxlan_from_an_unknown_vtep_is_dropped_and_counted()
    {
        if (!lab.Ready())
        {
            return;
        }

        const string rogue = "02:00:00:00:99:01";
        const string known = "02:00:00:00:99:02";
        await Lab.Must("ist-vtep1", "ip addr replace 192.0.2.9/24 dev ul0");
        try
        {
            using var h10 = await Lab.Tcpdump("ist-h10", "eth0", $"ether src {rogue} or ether src {known}", "in");
            using var t10 = await Lab.Tcpdump("ist-t10", "eth0", $"ether src {rogue}", "in");
            var before = await Lab.Counters();
            long unknownBefore = before.Drop("decap.UnknownVtep");
            await Lab.MustScapy("ist-vtep1",
                $"send(IP(src='192.0.2.9', dst='192.0.2.1')/UDP(sport=40000, dport=4789)/VXLAN(flags=0x08, vni=5010)/{ArpLayers(rogue, "10.10.0.99")}, count=5)");
            // Positive control: the same frame from a configured VTEP is forwarded.
            await Lab.MustScapy("ist-vtep1",
                $"send(IP(src='192.0.2.2', dst='192.0.2.1')/UDP(sport=40000, dport=4789)/VXLAN(flags=0x08, vni=5010)/{ArpLayers(known, "10.10.0.98")}, count=2)");
            var after = await Lab.WaitCounters(c => c.Drop("decap.UnknownVtep") >= unknownBefore + 5, $"decap.UnknownVtep >= {unknownBefore} + 5");
            output.WriteLine($"decap.UnknownVtep {unknownBefore} -> {after.Drop("decap.UnknownVtep")}");
            var h10Lines = await h10.StopWhenAsync(l => Seen(l, known), 700);
            var t10Lines = await t10.StopAsync(0);
            Assert.DoesNotContain(h10Lines, l => l.Contains(rogue, StringComparison.Ordinal));
            Assert.Empty(t10Lines);
            Assert.Contains(h10Lines, l => l.Contains(known, StringComparison.Ordinal));
        }
        finally
        {
            await Lab.Exec("ist-vtep1", "ip addr del 192.0.2.9/24 dev ul0");
        }
    }

    private static bool Seen(IReadOnlyList<string> lines, string mac) => lines.Any(l => l.Contains(mac, StringComparison.Ordinal));

    // The sender and target addresses are unused ones: a request from a real host's address with a made-up
    // MAC would overwrite that host's entry in its peers' ARP caches and break later tests.
    internal static string ArpLayers(string mac, string unusedIp) =>
        $"Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{mac}', psrc='{unusedIp}', pdst='{unusedIp[..unusedIp.LastIndexOf('.')]}.250')";

    internal static string Arp(string mac, string ip, int count = 3) =>
        $"sendp({ArpLayers(mac, ip)}, iface='eth0', count={count}, inter=0.05)";
}
