using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>
/// Issue 4 in the lab: the API needs credentials, and a big commit (10,000 firewall rules plus 500 new
/// bridge domains) applied while a steady stream crosses the appliance loses no packet.
/// </summary>
[Collection(LabCollection.Name)]
public sealed partial class ControlPlaneTests(LabFixture lab, ITestOutputHelper output)
{
    [Fact(Timeout = 60_000)]
    public async Task The_api_refuses_callers_without_credentials_and_health_stays_open()
    {
        if (!lab.Ready())
        {
            return;
        }

        using var anonymous = new HttpClient { BaseAddress = new Uri(Lab.Api) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync(new Uri("/api/v1/health", UriKind.Relative))).StatusCode);
        var revisions = await Lab.Http.GetFromJsonAsync<JsonArray>("/api/v1/config/revisions");
        Assert.Equal("first-boot", (string)revisions![^1]!["author"]!);
    }

    [Fact(Timeout = 180_000)]
    public async Task Committing_10000_firewall_rules_and_500_domains_while_traffic_flows_loses_no_packet()
    {
        if (!lab.Ready())
        {
            return;
        }

        await Lab.MustPing("ist-vm10", "10.10.0.10");
        var running = await Lab.Http.GetAsync(new Uri("/api/v1/config", UriKind.Relative));
        var before = long.Parse(running.Headers.GetValues("X-Isthmus-Revision").Single(), CultureInfo.InvariantCulture);
        var document = (await running.Content.ReadFromJsonAsync<JsonObject>())!;
        document.Remove("users");
        document.Remove("apiTokens");
        AddBigProgram(document);

        // 100 packets per second for 6 s, VXLAN VM -> access host and back, across the commit.
        const int count = 600;
        var ping = Lab.Exec("ist-vm10", $"ping -q -i 0.01 -c {count} -W 1 10.10.0.10", TimeSpan.FromSeconds(60));
        await Task.Delay(2000);
        using var big = new HttpClient(new HttpClientHandler()) { BaseAddress = new Uri(Lab.Api), Timeout = TimeSpan.FromSeconds(60) };
        big.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Lab.AdminToken);
        var sw = Stopwatch.StartNew();
        var commit = await big.PostAsJsonAsync("/api/v1/config/commit", new { document, comment = "lab: 10,000 rules + 500 domains under traffic" });
        var elapsed = sw.Elapsed;
        var body = await commit.Content.ReadAsStringAsync();
        Assert.True(commit.StatusCode == HttpStatusCode.Created, body);
        var result = await ping;
        output.WriteLine($"commit: {body} (HTTP round trip {elapsed.TotalMilliseconds:F0} ms)");
        output.WriteLine(result.Stdout);

        var match = PingSummary().Match(result.Stdout);
        Assert.True(match.Success, result.ToString());
        Assert.Equal(count, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
        Assert.True(int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture) == count, $"packets were lost across the commit:\n{result}\n{await Lab.Diagnostics()}");

        var domains = await Lab.Http.GetFromJsonAsync<JsonArray>("/api/v1/bridge-domains");
        Assert.Equal(500, domains!.Count(d => ((string)d!["name"]!).StartsWith("lab-extra-", StringComparison.Ordinal)));

        // Leave the lab as the other tests expect it.
        var back = await big.PostAsJsonAsync("/api/v1/config/rollback", new { revision = before, comment = "lab: back" });
        Assert.Equal(HttpStatusCode.Created, back.StatusCode);
        await Lab.MustPing("ist-vm10", "10.10.0.10");
    }

    /// <summary>500 new domains on trunk VLANs 100-599, two new zones on two of them and 10,000 rules between those: off the test stream's path.</summary>
    private static void AddBigProgram(JsonObject document)
    {
        var domains = document["bridgeDomains"]!.AsArray();
        for (var i = 0; i < 500; i++)
        {
            domains.Add(new JsonObject
            {
                ["name"] = $"lab-extra-{i}",
                ["segments"] = new JsonArray(new JsonObject { ["port"] = "trunk0", ["vlan"] = 100 + i }),
            });
        }

        var rules = new JsonArray();
        for (var i = 0; i < 10_000; i++)
        {
            rules.Add(new JsonObject
            {
                ["id"] = 100_000 + i, // clear of the lab policy's own rule ids
                ["sources"] = new JsonArray($"10.{100 + (i / 250)}.{i % 250}.0/24"),
                ["protocol"] = "tcp",
                ["destinationPorts"] = new JsonArray((1024 + i).ToString(CultureInfo.InvariantCulture)),
                ["action"] = "allow",
            });
        }

        // Added to whatever firewall the lab runs (its zones, policies and NAT stay as they are).
        var firewall = document["firewall"] as JsonObject ?? new JsonObject();
        document["firewall"] = firewall;
        var zones = firewall["zones"] as JsonArray ?? [];
        firewall["zones"] = zones;
        zones.Add(new JsonObject { ["name"] = "extra-a", ["segments"] = new JsonArray("trunk0/vlan100") });
        zones.Add(new JsonObject { ["name"] = "extra-b", ["segments"] = new JsonArray("trunk0/vlan101") });
        var policies = firewall["policies"] as JsonArray ?? [];
        firewall["policies"] = policies;
        policies.Add(new JsonObject { ["from"] = "extra-a", ["to"] = "extra-b", ["rules"] = rules });
    }

    [GeneratedRegex(@"(\d+) packets transmitted, (\d+) received")]
    private static partial Regex PingSummary();
}
