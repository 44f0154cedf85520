using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>
/// Issue 5, in the lab: three HTTP backends ist-web1..3 (10.30.0.11-13, weights 2:1:1, each answers its
/// name) behind the VIPs 203.0.113.100 (full NAT, Maglev) and 203.0.113.101 (DNAT-only, weighted round
/// robin), HTTP health checks every 500 ms with rise 2 and fall 2 (appliance/lab/lab-config-l3.json).
/// The client is ist-out (203.0.113.10), the outside.
/// </summary>
[Collection(LabCollection.Name)]
public sealed class LoadBalancerTests(LabFixture lab, ITestOutputHelper output)
{
    private const string FullNatVip = "203.0.113.100";
    private const string DnatVip = "203.0.113.101";
    private const int IntervalMs = 500;
    private const int Fall = 2;
    private const int Rise = 2;
    private const double Jitter = 0.10;

    /// <summary>
    /// N sequential HTTP/1.0 GETs to a VIP from one process, each on a new connection (a new 5-tuple), and
    /// a tally of the bodies ("ist-web1" … or "error:…").
    /// </summary>
    private const string Client = """
        import collections, socket, sys
        host, n = sys.argv[1], int(sys.argv[2])
        tally = collections.Counter()
        for _ in range(n):
            try:
                s = socket.create_connection((host, 80), timeout=3)
                s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                s.close()
                body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
                tally[body or "empty"] += 1
            except Exception as e:
                tally["error:" + type(e).__name__] += 1
        print(" ".join(f"{k}={v}" for k, v in sorted(tally.items())))
        """;

    private static async Task<Dictionary<string, int>> Requests(string vip, int n)
    {
        var file = Path.Combine(Path.GetTempPath(), $"istlb-client-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(file, Client);
        try
        {
            var r = await Lab.Exec("ist-out", $"{Lab.ScapyPython} {file} {vip} {n}", TimeSpan.FromSeconds(20 + (n / 10)));
            Assert.True(r.Ok, r.ToString());
            return r.Stdout.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(kv => kv.Split('='))
                .ToDictionary(kv => kv[0], kv => int.Parse(kv[1], CultureInfo.InvariantCulture));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<JsonObject> Backend(string vs, string address)
    {
        var state = await Lab.Http.GetFromJsonAsync<JsonObject>("/api/v1/lb/virtual-servers");
        var server = state!["virtualServers"]!.AsArray().Single(v => (string?)v!["name"] == vs)!.AsObject();
        return server["backends"]!.AsArray().Single(b => (string?)b!["address"] == address)!.AsObject();
    }

    private static async Task<string> WaitHealth(string address, string health, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        string? now = null;
        while (DateTime.UtcNow < until)
        {
            now = (string?)(await Backend("web", address))["health"];
            if (now == health)
            {
                return now;
            }

            await Task.Delay(50);
        }

        return now ?? "unknown";
    }

    private static string Show(Dictionary<string, int> tally) => string.Join(", ", tally.Select(kv => $"{kv.Key}={kv.Value}"));

    [Fact(Timeout = 180_000)]
    public async Task Connections_spread_by_weight_a_dead_backend_leaves_within_fall_checks_and_rejoins_after_rise()
    {
        if (!lab.Ready())
        {
            return;
        }

        Assert.Equal("up", await WaitHealth("10.30.0.12", "up", TimeSpan.FromSeconds(10)));

        // 1. Weights 2:1:1 under Maglev: expected shares 50 / 25 / 25 %. Tolerance ±8 points: the
        // table's shares are within 1 % of the weights, the rest is sampling (σ ≈ 2.2 points at n = 500).
        const int n = 500;
        var spread = await Requests(FullNatVip, n);
        output.WriteLine($"{n} connections to {FullNatVip}: {Show(spread)}");
        Assert.Equal(n, spread.GetValueOrDefault("ist-web1") + spread.GetValueOrDefault("ist-web2") + spread.GetValueOrDefault("ist-web3"));
        Assert.InRange(spread["ist-web1"] * 100.0 / n, 42, 58);
        Assert.InRange(spread["ist-web2"] * 100.0 / n, 17, 33);
        Assert.InRange(spread["ist-web3"] * 100.0 / n, 17, 33);
        var wrr = await Requests(DnatVip, 100);
        output.WriteLine($"100 connections to {DnatVip} (wrr): {Show(wrr)}");
        Assert.Equal(50, wrr.GetValueOrDefault("ist-web1"));
        Assert.Equal(25, wrr.GetValueOrDefault("ist-web2"));
        Assert.Equal(25, wrr.GetValueOrDefault("ist-web3"));

        // 2. Kill ist-web2's server: it goes down after Fall failed checks. How soon (within fall × (interval + jitter))
        // is proven in virtual time (HealthMonitorTests.A_failing_backend_goes_down_within_fall_intervals_...); here the
        // time is only reported: a wall-clock bound on a loaded 2-core machine is not a test of the product.
        var killed = DateTime.UtcNow;
        await Lab.RunAsync("bash", [Lab.LabScript, "backend", "stop", "2"], TimeSpan.FromSeconds(20));
        var health = await WaitHealth("10.30.0.12", "down", TimeSpan.FromSeconds(30));
        var detected = DateTime.UtcNow - killed;
        output.WriteLine($"ist-web2 killed; marked down after {detected.TotalMilliseconds:F0} ms (fall {Fall} × interval {IntervalMs} ms ± {Jitter:P0})");
        Assert.Equal("down", health);
        var down = await Backend("web", "10.30.0.12");
        Assert.True((long)down["checkFailures"]! >= Fall);
        Assert.False((bool)down["eligible"]!);

        // No new connection reaches it; the others serve every request.
        var without = await Requests(FullNatVip, 200);
        output.WriteLine($"200 connections with ist-web2 down: {Show(without)}");
        Assert.Equal(200, without.GetValueOrDefault("ist-web1") + without.GetValueOrDefault("ist-web3"));
        var withoutDnat = await Requests(DnatVip, 30);
        Assert.Equal(30, withoutDnat.GetValueOrDefault("ist-web1") + withoutDnat.GetValueOrDefault("ist-web3"));

        // 3. Bring it back: up after Rise passed checks, and it takes new connections again.
        await Lab.RunAsync("bash", [Lab.LabScript, "backend", "start", "2"], TimeSpan.FromSeconds(20));
        await Lab.WaitListening("ist-web2", 80);
        Assert.Equal("up", await WaitHealth("10.30.0.12", "up", TimeSpan.FromSeconds(30)));
        var history = await Lab.Http.GetFromJsonAsync<JsonArray>("/api/v1/lb/history");
        var web2 = history!.Where(e => ((string?)e!["name"])!.Contains("10.30.0.12", StringComparison.Ordinal)).Select(e => (string?)e!["to"]).ToList();
        output.WriteLine("history of ist-web2: " + string.Join(" → ", web2));
        Assert.Equal(["down", "up"], web2.TakeLast(2));
        var up = await Backend("web", "10.30.0.12");
        Assert.True((long)up["checkSuccesses"]! >= Rise);
        var back = await Requests(FullNatVip, 200);
        output.WriteLine($"200 connections after ist-web2 rejoined: {Show(back)}");
        Assert.Equal(200, back.Where(kv => kv.Key.StartsWith("ist-web", StringComparison.Ordinal)).Sum(kv => kv.Value));
        Assert.True(back.GetValueOrDefault("ist-web2") >= 20, "ist-web2 took no new connections after rejoining");
    }

    [Fact(Timeout = 120_000)]
    public async Task Full_nat_backends_see_the_appliance_and_dnat_only_backends_see_the_client()
    {
        if (!lab.Ready())
        {
            return;
        }

        Assert.Equal("up", await WaitHealth("10.30.0.11", "up", TimeSpan.FromSeconds(20)));

        // At ist-web1 (weight 2: it gets half the flows), as an independent decoder sees it. Health
        // checks come from ist-app's kernel (10.30.0.2) and are left out.
        const string filter = "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0 and not src host 10.30.0.2";
        using (var cap = await Lab.Tshark("ist-web1", "eth0", filter, "ip.src", "ip.dst", "tcp.dstport"))
        {
            var r = await Requests(FullNatVip, 20);
            var lines = await cap.StopWhenAsync(l => l.Count >= r.GetValueOrDefault("ist-web1"));
            output.WriteLine($"full NAT, 20 requests ({Show(r)}); SYNs at ist-web1 (ip.src|ip.dst|port):\n" + string.Join('\n', lines));
            Assert.NotEmpty(lines);
            Assert.All(lines, l => Assert.StartsWith("10.30.0.1|10.30.0.11|80", l, StringComparison.Ordinal));
        }

        using (var cap = await Lab.Tshark("ist-web1", "eth0", filter, "ip.src", "ip.dst", "tcp.dstport"))
        {
            var r = await Requests(DnatVip, 8);
            var lines = await cap.StopWhenAsync(l => l.Count >= r.GetValueOrDefault("ist-web1"));
            output.WriteLine($"DNAT-only, 8 requests ({Show(r)}); SYNs at ist-web1:\n" + string.Join('\n', lines));
            Assert.Equal(8, r.Where(kv => kv.Key.StartsWith("ist-web", StringComparison.Ordinal)).Sum(kv => kv.Value));
            Assert.NotEmpty(lines);
            Assert.All(lines, l => Assert.StartsWith("203.0.113.10|10.30.0.11|80", l, StringComparison.Ordinal));
        }
    }
}
