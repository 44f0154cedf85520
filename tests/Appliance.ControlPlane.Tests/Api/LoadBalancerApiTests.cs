using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// The live LB API on the test server: a virtual server whose two backends live on loopback (one
/// listens, one does not), checked by real TCP probes every 100 ms (fall 1). The dead one goes down,
/// the data plane gets a snapshot without it, the API, history and /metrics say so.
/// </summary>
public sealed class LoadBalancerApiTests : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly ApplianceFactory _factory;
    private readonly int _closedPort;

    public LoadBalancerApiTests()
    {
        _listener.Start();
        using (var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _closedPort = ((IPEndPoint)s.LocalEndPoint!).Port;
        }

        var document = Documents.Lab();
        document["gateways"] = new JsonArray(new JsonObject { ["domain"] = "bd10", ["addresses"] = new JsonArray("10.10.0.1/24") });
        document["loadBalancer"] = new JsonObject
        {
            ["virtualServers"] = new JsonArray(new JsonObject { ["name"] = "web", ["address"] = "10.10.0.100", ["ports"] = "80", ["pool"] = "web", ["algorithm"] = "least-conn" }),
            ["pools"] = new JsonArray(new JsonObject
            {
                ["name"] = "web",
                ["backends"] = new JsonArray(
                    new JsonObject { ["address"] = "127.0.0.1", ["port"] = ((IPEndPoint)_listener.LocalEndpoint).Port },
                    new JsonObject { ["address"] = "127.0.0.1", ["port"] = _closedPort, ["weight"] = 2 }),
                ["healthCheck"] = new JsonObject { ["type"] = "tcp", ["intervalMs"] = 100, ["timeoutMs"] = 100, ["rise"] = 1, ["fall"] = 1 },
            }),
        };
        _factory = new ApplianceFactory(document);
    }

    [Fact]
    public async Task A_dead_backend_is_marked_down_in_the_api_the_history_the_data_plane_and_metrics()
    {
        var reader = _factory.Reader();
        JsonObject? dead = null;
        JsonObject? vs = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            var state = await reader.GetFromJsonAsync<JsonObject>("/api/v1/lb/virtual-servers");
            vs = state!["virtualServers"]!.AsArray().Single()!.AsObject();
            dead = vs["backends"]!.AsArray().Select(b => b!.AsObject()).Single(b => (int)b["port"]! == _closedPort);
            if ((string?)dead["health"] == "down")
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.Equal("down", (string?)dead!["health"]);
        Assert.False((bool)dead["eligible"]!);
        Assert.True((long)dead["checkFailures"]! >= 1);
        Assert.True((string?)dead["lastCheckResult"] is "ConnectionRefused" or "timeout after 100 ms", (string?)dead["lastCheckResult"]);
        var live = vs!["backends"]!.AsArray().Select(b => b!.AsObject()).Single(b => (int)b["port"]! != _closedPort);
        Assert.Equal("up", (string?)live["health"]);
        Assert.Equal("up", (string?)vs["state"]);
        Assert.Equal(1, (int)vs["eligibleBackends"]!);
        Assert.Equal("least-conn", (string?)vs["algorithm"]);

        // The running snapshot is the committed one with the load balancer recompiled.
        var server = Assert.Single(_factory.Runtime.Slot.Current.LoadBalancer.Servers);
        Assert.Single(server.Eligible);

        var history = await reader.GetFromJsonAsync<JsonArray>("/api/v1/lb/history");
        Assert.Contains(history!, e => (string?)e!["kind"] == "backend" && (string?)e["to"] == "down" && ((string?)e["name"])!.EndsWith($":{_closedPort}", StringComparison.Ordinal));

        var metrics = await reader.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains($"isthmus_lb_backend_up{{virtual_server=\"web\",backend=\"127.0.0.1:{_closedPort}\"}} 0", metrics, StringComparison.Ordinal);
        Assert.Contains("isthmus_lb_virtual_server_up{virtual_server=\"web\"} 1", metrics, StringComparison.Ordinal);

        var missing = await reader.GetAsync(new Uri("/api/v1/lb/virtual-servers/nope", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    public void Dispose()
    {
        _factory.Dispose();
        _listener.Stop();
    }
}
