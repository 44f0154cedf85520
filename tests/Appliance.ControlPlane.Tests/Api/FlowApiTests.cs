using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Api;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// The appliance routing bd10 (10.10.0.1/24) and bd20 (10.20.0.1/24, trunk0 VLAN 20) with a static
/// route, zones inside (bd10) / outside (bd20), rules 101 (tcp allow), 102 (udp allow) and masquerade
/// to the outside. Traffic enters through the in-memory acc10 port.
/// </summary>
public sealed class RoutedAppliance : IDisposable
{
    public static readonly MacAddress Gateway10 = MacAddress.Parse("02:15:7e:00:00:10");
    public static readonly MacAddress Host = MacAddress.Parse("02:00:00:00:00:0a");
    public static readonly Ipv4Address HostIp = Ipv4Address.Parse("10.10.0.11");
    public static readonly Ipv4Address Server = Ipv4Address.Parse("10.20.0.99");

    public RoutedAppliance()
    {
        Factory = new ApplianceFactory(Document());
        _ = Factory.Server;
    }

    public ApplianceFactory Factory { get; }

    public static JsonObject Document()
    {
        var doc = Documents.Lab();
        doc["bridgeDomains"]!.AsArray().Add(new JsonObject
        {
            ["name"] = "bd20",
            ["segments"] = new JsonArray(new JsonObject { ["port"] = "trunk0", ["vlan"] = 20 }),
        });
        doc["gateways"] = new JsonArray(
            new JsonObject { ["domain"] = "bd10", ["mac"] = "02:15:7e:00:00:10", ["addresses"] = new JsonArray("10.10.0.1/24", "fd00:10::1/64") },
            new JsonObject { ["domain"] = "bd20", ["mac"] = "02:15:7e:00:00:20", ["addresses"] = new JsonArray("10.20.0.1/24") });
        doc["routes"] = new JsonArray(new JsonObject { ["prefix"] = "192.168.50.0/24", ["nextHop"] = "10.20.0.254" });
        doc["firewall"] = new JsonObject
        {
            ["zones"] = new JsonArray(
                new JsonObject { ["name"] = "inside", ["domains"] = new JsonArray("bd10") },
                new JsonObject { ["name"] = "outside", ["domains"] = new JsonArray("bd20") }),
            ["policies"] = new JsonArray(new JsonObject
            {
                ["from"] = "inside",
                ["to"] = "outside",
                ["defaultAction"] = "drop",
                ["rules"] = new JsonArray(
                    new JsonObject { ["id"] = 101, ["protocol"] = "tcp", ["action"] = "allow" },
                    new JsonObject { ["id"] = 102, ["protocol"] = "udp", ["action"] = "allow", ["log"] = true }),
            }),
        };
        doc["nat"] = new JsonObject { ["snat"] = new JsonArray(new JsonObject { ["egressZone"] = "outside" }) };
        return doc;
    }

    /// <summary>The host announces itself (ARP request for its gateway), then opens a TCP and a UDP flow to the server.</summary>
    public async Task InjectTraffic()
    {
        var port = Factory.Ports["acc10"];
        var buffer = new byte[128];
        var n = PacketBuilder.Arp(buffer, ArpOpcode.Request, Host, HostIp, MacAddress.Zero, Ipv4Address.Parse("10.10.0.1"));
        port.Enqueue(new MemoryFrame(buffer[..n]));
        var spec = new Ipv4FrameSpec(Host, Gateway10, HostIp, Server);
        n = PacketBuilder.Tcp(buffer, spec, 40000, 80, TcpFlags.Syn, 1000);
        port.Enqueue(new MemoryFrame(buffer[..n]));
        n = PacketBuilder.Udp(buffer, spec, 5353, 53, new byte[8]);
        port.Enqueue(new MemoryFrame(buffer[..n]));
        _ = await Poll.Until(() => Factory.Runtime.Worker.Counters.Packets >= 3);
        Assert.True(Factory.Runtime.Worker.Counters.Packets >= 3);
    }

    public void Dispose() => Factory.Dispose();
}

public sealed class FlowApiTests(RoutedAppliance appliance) : IClassFixture<RoutedAppliance>
{
    private readonly ApplianceFactory _factory = appliance.Factory;

    public static TheoryData<string> Endpoints => ["/api/v1/sessions", "/api/v1/neighbors", "/api/v1/routes", "/api/v1/firewall/rules"];

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task Each_needs_a_caller_and_a_read_only_one_is_enough(string path)
    {
        var anonymous = await _factory.CreateClient().GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("application/problem+json", anonymous.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.WithBearer("ist_nope").GetAsync(new Uri(path, UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _factory.Reader().GetAsync(new Uri(path, UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _factory.Admin().GetAsync(new Uri(path, UriKind.Relative))).StatusCode);
    }

    [Theory]
    [InlineData("page=0", "page")]
    [InlineData("page=x", "page")]
    [InlineData("pageSize=1001", "pageSize")]
    [InlineData("pageSize=0", "pageSize")]
    [InlineData("protocol=sctp-ish", "protocol")]
    [InlineData("address=10.10.0.300", "address")]
    [InlineData("port=70000", "port")]
    [InlineData("state=open", "state")]
    public async Task Bad_session_queries_are_problems_keyed_by_parameter(string query, string path)
    {
        var response = await _factory.Reader().GetAsync(new Uri($"/api/v1/sessions?{query}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal([path], problem!["errors"]!.AsObject().Select(e => e.Key));
    }

    [Fact]
    public async Task Several_bad_parameters_are_reported_together()
    {
        var problem = await (await _factory.Reader().GetAsync(new Uri("/api/v1/sessions?protocol=x&state=y&pageSize=-1", UriKind.Relative))).Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(["pageSize", "protocol", "state"], problem!["errors"]!.AsObject().Select(e => e.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Routes_list_connected_and_static_prefixes()
    {
        var routes = await _factory.Reader().GetFromJsonAsync<JsonArray>("/api/v1/routes");
        var byPrefix = routes!.ToDictionary(r => (string)r!["prefix"]!);
        Assert.Equal("connected", (string)byPrefix["10.10.0.0/24"]!["source"]!);
        Assert.Equal("bd10", (string)byPrefix["10.10.0.0/24"]!["domain"]!);
        Assert.Null(byPrefix["10.10.0.0/24"]!["nextHop"]);
        Assert.Equal("connected", (string)byPrefix["10.20.0.0/24"]!["source"]!);
        Assert.Equal("static", (string)byPrefix["192.168.50.0/24"]!["source"]!);
        Assert.Equal("10.20.0.254", (string)byPrefix["192.168.50.0/24"]!["nextHop"]!);
        Assert.Equal("bd20", (string)byPrefix["192.168.50.0/24"]!["domain"]!);
        Assert.Equal("ipv6", (string)byPrefix["fd00:10::/64"]!["family"]!);
    }

    [Fact]
    public async Task Traffic_shows_up_as_sessions_neighbors_rule_hits_and_metrics()
    {
        await appliance.InjectTraffic();
        var reader = _factory.Reader();

        var all = await reader.GetFromJsonAsync<JsonObject>("/api/v1/sessions");
        Assert.True((int)all!["total"]! >= 2);
        Assert.Equal(1, (int)all["page"]!);
        Assert.Equal(FlowApi.DefaultPageSize, (int)all["pageSize"]!);

        var tcp = await reader.GetFromJsonAsync<JsonObject>("/api/v1/sessions?protocol=tcp&address=10.10.0.11&port=80&state=syn_sent");
        var session = Assert.Single(tcp!["items"]!.AsArray())!;
        Assert.Equal(1, (int)tcp["total"]!);
        Assert.Equal("tcp", (string)session["protocol"]!);
        Assert.Equal("syn_sent", (string)session["state"]!);
        Assert.Equal("10.10.0.11", (string)session["original"]!["source"]!);
        Assert.Equal(40000, (int)session["original"]!["sourcePort"]!);
        Assert.Equal("10.20.0.99", (string)session["original"]!["destination"]!);
        Assert.Equal("10.20.0.99", (string)session["reply"]!["source"]!);
        Assert.Equal("10.20.0.1", (string)session["reply"]!["destination"]!);
        Assert.Equal("10.20.0.1", (string)session["nat"]!["source"]!["to"]!["address"]!);
        Assert.Equal("10.10.0.11", (string)session["nat"]!["source"]!["from"]!["address"]!);
        Assert.Null(session["nat"]!["destination"]);
        Assert.Equal(120, (int)session["timeoutSeconds"]!);
        Assert.InRange((int)session["expiresInSeconds"]!, 100, 120);

        // The translated address finds the session too; paging keeps the total.
        var translated = await reader.GetFromJsonAsync<JsonObject>("/api/v1/sessions?address=10.20.0.1&pageSize=1&page=2");
        Assert.Equal(2, (int)translated!["total"]!);
        Assert.Single(translated["items"]!.AsArray());
        var beyond = await reader.GetFromJsonAsync<JsonObject>("/api/v1/sessions?address=10.20.0.1&pageSize=1&page=3");
        Assert.Empty(beyond!["items"]!.AsArray());
        Assert.Equal(0, (int)(await reader.GetFromJsonAsync<JsonObject>("/api/v1/sessions?state=established"))!["total"]!);
        Assert.Equal(1, (int)(await reader.GetFromJsonAsync<JsonObject>("/api/v1/sessions?protocol=17"))!["total"]!);

        var neighbors = await reader.GetFromJsonAsync<JsonArray>("/api/v1/neighbors");
        var host = Assert.Single(neighbors!, n => (string)n!["address"]! == "10.10.0.11")!;
        Assert.Equal("reachable", (string)host["state"]!);
        Assert.Equal("02:00:00:00:00:0a", (string)host["mac"]!);
        Assert.Equal("bd10", (string)host["domain"]!);
        var server = Assert.Single(neighbors!, n => (string)n!["address"]! == "10.20.0.99")!;
        Assert.Equal("incomplete", (string)server["state"]!);
        Assert.Null(server["mac"]);
        Assert.Equal("bd20", (string)server["domain"]!);
        Assert.Equal(2, (int)server["heldPackets"]!);

        var rules = await reader.GetFromJsonAsync<JsonArray>("/api/v1/firewall/rules");
        var r101 = Assert.Single(rules!, r => (int)r!["id"]! == 101)!;
        Assert.Equal("inside", (string)r101["from"]!);
        Assert.Equal("outside", (string)r101["to"]!);
        Assert.Equal("allow", (string)r101["action"]!);
        Assert.Equal(1, (long)r101["hits"]!);
        Assert.True((bool)Assert.Single(rules!, r => (int)r!["id"]! == 102)!["log"]!);

        var metrics = await reader.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("# TYPE isthmus_conntrack_sessions gauge", metrics, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^isthmus_conntrack_sessions\{protocol=""tcp""\} [1-9]\d*$", metrics);
        Assert.Matches(@"(?m)^isthmus_conntrack_sessions\{protocol=""icmp""\} 0$", metrics);
        Assert.Matches(@"(?m)^isthmus_conntrack_table_full_drops_total 0$", metrics);
        Assert.Matches(@"(?m)^isthmus_neighbors [2-9]$", metrics);
        Assert.Matches(@"(?m)^isthmus_firewall_rule_hits_total\{rule=""101"",from=""inside"",to=""outside"",action=""allow""\} 1$", metrics);
    }

    [Fact]
    public async Task A_worker_that_does_not_answer_times_out()
    {
        var unserved = new WorkerQueries();
        var result = await FlowApi.AskAsync(unserved, LiveState.Neighbors, TimeSpan.FromMilliseconds(50), TimeProvider.System, CancellationToken.None);
        Assert.Null(result);
        Assert.True(unserved.Pending);
    }
}
