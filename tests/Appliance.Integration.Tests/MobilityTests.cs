using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Isthmus.Integration.Tests;

/// <summary>
/// Issue 6 in the lab, against real peers nobody here wrote: BIRD 2 (ist-bird, AS 65020) and FRR (ist-frr,
/// AS 65030) peer with the appliance's speaker (lab-config-l3.json "bgp"). A workload "vMotions" between
/// the remote site (behind VTEP 192.0.2.2, segment und0/vni5010, the interconnect) and the local access
/// port acc10: scapy sends what ESXi sends (appliance/lab/vmotion.py: GARP, then RARP).
/// </summary>
[Collection(LabCollection.Name)]
public sealed class MobilityTests(LabFixture lab)
{
    private const string BirdSocket = "/run/isthmus-lab/bird.ctl";
    private const string FrrDir = "/run/isthmus-lab/frr";
    private const string GatewayMac = "02:15:7e:00:00:10";

    private static string VMotion => Path.Combine(Lab.RepoRoot, "appliance", "lab", "vmotion.py");

    private static Task<ExecResult> Send(string ns, string args) => Lab.Must(ns, $"{Lab.ScapyPython} {VMotion} {args}");

    private static async Task<string> Birdc(string command) =>
        (await Lab.RunAsync("birdc", ["-s", BirdSocket, command], TimeSpan.FromSeconds(10))).Stdout;

    private static async Task<string> Vtysh(string command) =>
        (await Lab.RunAsync("vtysh", ["--vty_socket", FrrDir, "-c", command], TimeSpan.FromSeconds(10))).Stdout;

    private static async Task<string> Eventually(Func<Task<string>> read, Func<string, bool> condition, string what, int seconds = 30)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        string value;
        while (!condition(value = await read()) && DateTime.UtcNow < until)
        {
            await Task.Delay(200);
        }

        Assert.True(condition(value), $"{what}; last seen:\n{value}\npeers: {await Lab.Http.GetStringAsync(new Uri("/api/v1/bgp/peers", UriKind.Relative))}");
        return value;
    }

    private static async Task<JsonObject?> Workload(string mac) =>
        (await Lab.Http.GetFromJsonAsync<JsonArray>("/api/v1/mobility/workloads"))!.OfType<JsonObject>().FirstOrDefault(w => (string)w["mac"]! == mac);

    private static async Task<JsonObject> Peer(string name) =>
        (await Lab.Http.GetFromJsonAsync<JsonArray>("/api/v1/bgp/peers"))!.OfType<JsonObject>().Single(p => (string)p["name"]! == name);

    private static Task<string> PeerState(string name) => Peer(name).ContinueWith(t => (string)t.Result["state"]!, TaskScheduler.Default);

    private static async Task BothEstablished()
    {
        await Eventually(() => PeerState("bird"), s => s == "Established", "BIRD session up", 60);
        await Eventually(() => PeerState("frr"), s => s == "Established", "FRR session up", 60);
    }

    /// <summary>The workload lives at the other site: its GARP crosses the interconnect (VXLAN from VTEP 192.0.2.2).</summary>
    private static async Task<string> LearnedAtRemoteSite(string mac, string ip)
    {
        await BothEstablished();
        await Send("ist-vm10", $"garp eth0 {mac} {ip}");
        return await Eventually(async () => (await Workload(mac))?.ToJsonString() ?? "", w => w.Contains(ip, StringComparison.Ordinal), "the workload learned at the remote site");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_rarp_on_the_local_segment_puts_the_host_route_in_bird_and_frr_with_communities_garps_and_the_move_back_withdraws_it()
    {
        if (!lab.Ready())
        {
            return;
        }

        const string mac = "00:50:56:aa:00:01";
        const string ip = "10.10.0.99";
        var remote = await LearnedAtRemoteSite(mac, ip);
        Assert.Contains("\"local\":false", remote, StringComparison.Ordinal);
        Assert.Contains("und0/vni5010", remote, StringComparison.Ordinal);
        Assert.DoesNotContain($"{ip}/32", await Birdc("show route"), StringComparison.Ordinal);

        // vMotion to this site: ESXi's RARP on acc10. The GARP burst for the gateway reaches the workload's segment.
        using var capture = await Lab.Tcpdump("ist-h10", "eth0", $"arp and ether src {GatewayMac}", "in");
        await Send("ist-h10", $"rarp eth0 {mac}");
        var bird = await Eventually(() => Birdc($"show route {ip}/32 all"), r => r.Contains($"{ip}/32", StringComparison.Ordinal), "BIRD has the /32");
        Assert.Contains("(65010,100)", bird, StringComparison.Ordinal);
        Assert.Contains("(65010, 1, 2)", bird, StringComparison.Ordinal);
        Assert.Contains("10.255.0.1", bird, StringComparison.Ordinal); // next hop: the speaker's address toward BIRD
        await Eventually(() => Vtysh("show ip bgp"), r => r.Contains($"{ip}/32", StringComparison.Ordinal), "FRR lists the /32 in show ip bgp");
        var frr = await Vtysh($"show ip bgp {ip}/32");
        Assert.Contains("65010:100", frr, StringComparison.Ordinal);
        Assert.Contains("65010:1:2", frr, StringComparison.Ordinal);
        var local = await Workload(mac);
        Assert.True((bool)local!["local"]!);
        Assert.Equal("acc10", (string)local["segment"]!);

        // At once, then every second: ARP request + reply for 10.10.0.1 from the gateway MAC (count 3), waited for
        // (the burst's timer and the capture can both lag on a loaded machine).
        var garps = await capture.StopWhenAsync(
            l => l.Count(x => x.Contains("Request who-has 10.10.0.1 tell 10.10.0.1", StringComparison.Ordinal)) >= 3
              && l.Count(x => x.Contains("Reply 10.10.0.1 is-at " + GatewayMac, StringComparison.Ordinal)) >= 3,
            timeout: TimeSpan.FromSeconds(20));
        Assert.True(garps.Count(l => l.Contains("Request who-has 10.10.0.1 tell 10.10.0.1", StringComparison.Ordinal)) >= 3, string.Join('\n', garps));
        Assert.True(garps.Count(l => l.Contains("Reply 10.10.0.1 is-at " + GatewayMac, StringComparison.Ordinal)) >= 3, string.Join('\n', garps));

        // The move back (RARP at the remote site) withdraws it from both peers.
        await Send("ist-vm10", $"rarp eth0 {mac}");
        await Eventually(() => Birdc("show route"), r => !r.Contains($"{ip}/32", StringComparison.Ordinal), "BIRD withdrew the /32");
        await Eventually(() => Vtysh("show ip bgp"), r => !r.Contains($"{ip}/32", StringComparison.Ordinal), "FRR withdrew the /32");
    }

    [Fact(Timeout = 180_000)]
    public async Task Five_quick_moves_freeze_a_duplicate_mac_and_stop_advertising_it()
    {
        if (!lab.Ready())
        {
            return;
        }

        const string mac = "00:50:56:aa:00:02";
        const string ip = "10.10.0.98";
        await LearnedAtRemoteSite(mac, ip);
        await Send("ist-h10", $"rarp eth0 {mac}");
        await Eventually(() => Birdc("show route"), r => r.Contains($"{ip}/32", StringComparison.Ordinal), "BIRD has the /32 after the first move");

        // Four more moves within seconds (a duplicate MAC at both sites): the fifth freezes it.
        for (var i = 0; i < 4; i++)
        {
            await Send(i % 2 == 0 ? "ist-vm10" : "ist-h10", $"rarp eth0 {mac}");
            await Eventually(async () => (await Workload(mac))!["sequence"]!.ToString(), s => int.Parse(s, CultureInfo.InvariantCulture) >= i + 2, $"move {i + 2} seen");
        }

        var frozen = await Workload(mac);
        Assert.True((bool)frozen!["frozen"]!, frozen.ToJsonString());
        await Eventually(() => Birdc("show route"), r => !r.Contains($"{ip}/32", StringComparison.Ordinal), "BIRD no longer has the frozen workload's /32");
        await Eventually(() => Vtysh("show ip bgp"), r => !r.Contains($"{ip}/32", StringComparison.Ordinal), "FRR no longer has it");
        var moves = await Lab.Http.GetStringAsync(new Uri("/api/v1/mobility/moves", UriKind.Relative));
        Assert.Contains("Froze", moves, StringComparison.Ordinal);

        // An operator clears it (and the test leaves the lab clean).
        var unfreeze = await Lab.Http.PostAsync(new Uri($"/api/v1/mobility/workloads/{mac}/unfreeze", UriKind.Relative), null);
        Assert.True(unfreeze.IsSuccessStatusCode, await unfreeze.Content.ReadAsStringAsync());
    }

    [Fact(Timeout = 240_000)]
    public async Task Peer_restart_hold_timer_expiry_and_reconnect()
    {
        if (!lab.Ready())
        {
            return;
        }

        await BothEstablished();
        const string mac = "00:50:56:aa:00:03";
        const string ip = "10.10.0.97";
        await Send("ist-h10", $"garp eth0 {mac} {ip}");
        await Eventually(() => Birdc("show route"), r => r.Contains($"{ip}/32", StringComparison.Ordinal), "BIRD has a local workload's /32");

        // BIRD restarts: the session drops, the speaker reconnects (connect retry) and BIRD relearns the route.
        await Lab.Must("ist-bird", "kill $(cat /run/isthmus-lab/bird.pid) && while birdc -s /run/isthmus-lab/bird.ctl show status >/dev/null 2>&1; do sleep 0.1; done");
        await Eventually(() => PeerState("bird"), s => s != "Established", "the speaker saw BIRD go away", 60);
        await Lab.Must("ist-bird", "bird -c /run/isthmus-lab/bird.conf -s /run/isthmus-lab/bird.ctl -P /run/isthmus-lab/bird.pid");
        await Eventually(() => Birdc("show protocols isthmus"), r => r.Contains("Established", StringComparison.Ordinal), "BIRD re-established", 60);
        await Eventually(() => Birdc("show route"), r => r.Contains($"{ip}/32", StringComparison.Ordinal), "BIRD relearned the /32 after its restart", 60);

        // FRR stops answering (its packets are dropped in ist-frr): the speaker's 6 s hold timer expires.
        await Lab.Must("ist-frr", "nft 'add table inet istm_hold; add chain inet istm_hold hin { type filter hook input priority 0; }; add rule inet istm_hold hin tcp dport 179 drop; add chain inet istm_hold hout { type filter hook output priority 0; }; add rule inet istm_hold hout tcp sport 179 drop'");
        try
        {
            await Eventually(async () => (await Peer("frr")).ToJsonString(), p => p.Contains("hold timer expired", StringComparison.Ordinal), "the speaker's hold timer expired toward FRR", 60);
            Assert.NotEqual("Established", await PeerState("frr"));
        }
        finally
        {
            await Lab.Exec("ist-frr", "nft delete table inet istm_hold");
        }

        // Traffic flows again: the speaker reconnects and FRR has the route again.
        await Eventually(() => PeerState("frr"), s => s == "Established", "FRR re-established after the hold-timer expiry", 120);
        await Eventually(() => Vtysh("show ip bgp"), r => r.Contains($"{ip}/32", StringComparison.Ordinal), "FRR relearned the /32", 60);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_vips_host_route_is_announced_while_its_pool_is_up_and_withdrawn_when_it_goes_down()
    {
        if (!lab.Ready())
        {
            return;
        }

        // The load balancer's health monitor is mobility's IVipHealth: VIP 203.0.113.100 (pool "web").
        await BothEstablished();
        const string vip = "203.0.113.100/32";
        await Eventually(() => Birdc("show route"), r => r.Contains(vip, StringComparison.Ordinal), "BIRD has the VIP while its pool is up", 60);
        try
        {
            foreach (var n in new[] { "1", "2", "3" })
            {
                await Lab.RunAsync("bash", [Lab.LabScript, "backend", "stop", n], TimeSpan.FromSeconds(20));
            }

            await Eventually(() => Birdc("show route"), r => !r.Contains(vip, StringComparison.Ordinal), "the VIP withdrawn once every backend failed its checks", 60);
            await Eventually(() => Vtysh("show ip bgp"), r => !r.Contains(vip, StringComparison.Ordinal), "FRR withdrew the VIP", 60);
        }
        finally
        {
            foreach (var n in new[] { "1", "2", "3" })
            {
                await Lab.RunAsync("bash", [Lab.LabScript, "backend", "start", n], TimeSpan.FromSeconds(20));
            }
        }

        await Eventually(() => Birdc("show route"), r => r.Contains(vip, StringComparison.Ordinal), "the VIP announced again once the pool is back", 60);
    }
}
