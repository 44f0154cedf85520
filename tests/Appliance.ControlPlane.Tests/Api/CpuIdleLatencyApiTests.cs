using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>dataPlane.cpuIdleLatencyUs over HTTP: validation at its path, the request applied by a commit, shown in the latency view and the metrics.</summary>
public sealed class CpuIdleLatencyApiTests : IDisposable
{
    private readonly ApplianceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Theory]
    [InlineData(-1)]
    [InlineData(1_000_001)]
    public async Task An_out_of_range_latency_is_reported_at_its_path(int microseconds)
    {
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { ["cpuIdleLatencyUs"] = microseconds };
        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Contains("0 (CPUs never halt) to 1000000", (string)problem!["errors"]!["dataPlane.cpuIdleLatencyUs"]![0]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_commit_makes_changes_and_drops_the_request_and_status_and_metrics_show_it()
    {
        var admin = _factory.Admin();
        Assert.Equal("off", (string)(await Latency(admin))["state"]!);
        Assert.Contains("\nisthmus_cpu_idle_latency_request_us -1\n", await Metrics(admin), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Created, (await Commit(admin, 0)).StatusCode);
        Assert.Equal(BitConverter.GetBytes(0), await File.ReadAllBytesAsync(_factory.CpuDmaLatencyPath));
        var held = await Latency(admin);
        Assert.Equal(("held", 0, 0), ((string)held["state"]!, (int)held["requested"]!, (int)held["held"]!));
        Assert.Contains("\nisthmus_cpu_idle_latency_request_us 0\n", await Metrics(admin), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Created, (await Commit(admin, 20)).StatusCode);
        Assert.Equal(BitConverter.GetBytes(20), await File.ReadAllBytesAsync(_factory.CpuDmaLatencyPath));
        Assert.Contains("\nisthmus_cpu_idle_latency_request_us 20\n", await Metrics(admin), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Created, (await Commit(admin, null)).StatusCode);
        Assert.Equal("off", (string)(await Latency(admin))["state"]!);
        Assert.Contains("\nisthmus_cpu_idle_latency_request_us -1\n", await Metrics(admin), StringComparison.Ordinal);
        Assert.Contains("\nisthmus_cpu_idle_latency_failures_total 0\n", await Metrics(admin), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_device_that_is_gone_leaves_the_appliance_running_with_the_failure_counted()
    {
        var admin = _factory.Admin();
        File.Delete(_factory.CpuDmaLatencyPath);

        Assert.Equal(HttpStatusCode.Created, (await Commit(admin, 0)).StatusCode);
        var view = await Latency(admin);
        Assert.Equal("unavailable", (string)view["state"]!);
        Assert.Contains("absent", (string)view["lastError"]!, StringComparison.Ordinal);
        Assert.Contains("\nisthmus_cpu_idle_latency_failures_total 1\n", await Metrics(admin), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
    }

    private static Task<HttpResponseMessage> Commit(HttpClient admin, int? microseconds)
    {
        var doc = Documents.Lab(credentials: false);
        doc["dataPlane"] = new JsonObject { ["cpuIdleLatencyUs"] = microseconds };
        return admin.PostAsJsonAsync("/api/v1/config/commit", new { document = doc });
    }

    private static async Task<JsonObject> Latency(HttpClient client) =>
        (JsonObject)(await client.GetFromJsonAsync<JsonObject>("/api/v1/mobility/latency"))!["cpuIdle"]!;

    private static Task<string> Metrics(HttpClient client) => client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
}
