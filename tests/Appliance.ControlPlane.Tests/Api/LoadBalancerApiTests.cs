using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// The live LB API on the test server: a virtual server whose two backends live on loopback (one
/// listens, one does not), checked by real TCP probes every 500 ms (fall 1). The dead one goes down,
/// the data plane gets a snapshot without it, the API, history and /metrics say so.
/// The dead backend's connect is refused at once, so the check's timeout only guards the live one: at
/// 100 ms a stalled 2-core box could fail a loopback connect for one check and flap it. The test still
/// reads the API, the snapshot and /metrics until they agree, because the monitor keeps probing while
/// they are read one after the other.
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
                ["healthCheck"] = new JsonObject { ["type"] = "tcp", ["intervalMs"] = 500, ["timeoutMs"] = 500, ["rise"] = 1, ["fall"] = 1 },
            }),
        };
        _factory = new ApplianceFactory(document);
    }

    [Fact]
    public async Task A_dead_backend_is_marked_down_in_the_api_the_history_the_data_plane_and_metrics()
    {
        var reader = _factory.Reader();
        JsonObject? dead = null;
        JsonObject? live = null;
        JsonObject? vs = null;
        var metrics = "";
        var eligibleInSnapshot = -1;
        var deadLine = $"isthmus_lb_backend_up{{virtual_server=\"web\",backend=\"127.0.0.1:{_closedPort}\"}} 0";
        const string UpLine = "isthmus_lb_virtual_server_up{virtual_server=\"web\"} 1";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var state = await reader.GetFromJsonAsync<JsonObject>("/api/v1/lb/virtual-servers");
            vs = state!["virtualServers"]!.AsArray().Single()!.AsObject();
            dead = vs["backends"]!.AsArray().Select(b => b!.AsObject()).Single(b => (int)b["port"]! == _closedPort);
            live = vs["backends"]!.AsArray().Select(b => b!.AsObject()).Single(b => (int)b["port"]! != _closedPort);
            metrics = await reader.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            eligibleInSnapshot = Assert.Single(_factory.Runtime.Slot.Current.LoadBalancer.Servers).Eligible.Length;
            if ((string?)dead["health"] == "down" && (string?)live["health"] == "up" && eligibleInSnapshot == 1
                && metrics.Contains(deadLine, StringComparison.Ordinal) && metrics.Contains(UpLine, StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.Equal("down", (string?)dead!["health"]);
        Assert.False((bool)dead["eligible"]!);
        Assert.True((long)dead["checkFailures"]! >= 1);
        Assert.True((string?)dead["lastCheckResult"] is "ConnectionRefused" or "timeout after 500 ms", (string?)dead["lastCheckResult"]);
        Assert.Equal("up", (string?)live!["health"]);
        Assert.Equal("up", (string?)vs!["state"]);
        Assert.Equal(1, (int)vs["eligibleBackends"]!);
        Assert.Equal("least-conn", (string?)vs["algorithm"]);

        // The running snapshot is the committed one with the load balancer recompiled.
        Assert.Equal(1, eligibleInSnapshot);

        Assert.Contains(deadLine, metrics, StringComparison.Ordinal);
        Assert.Contains(UpLine, metrics, StringComparison.Ordinal);

        var history = await reader.GetFromJsonAsync<JsonArray>("/api/v1/lb/history");
        Assert.Contains(history!, e => (string?)e!["kind"] == "backend" && (string?)e["to"] == "down" && ((string?)e["name"])!.EndsWith($":{_closedPort}", StringComparison.Ordinal));

        var missing = await reader.GetAsync(new Uri("/api/v1/lb/virtual-servers/nope", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    public void Dispose()
    {
        _factory.Dispose();
        _listener.Stop();
    }
}
