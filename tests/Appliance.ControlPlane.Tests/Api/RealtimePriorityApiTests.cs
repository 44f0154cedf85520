using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// dataPlane.realtimePriority over HTTP: validation at its path (range, never with a busy-polling worker), the worker and
/// the mobility loop under SCHED_FIFO at that priority when the appliance starts with it (shown in the latency view and
/// the metrics), refused (and counted, the appliance running on) without CAP_SYS_NICE, and fixed while running.
/// CI=true runs as root: there the threads must get the priority.
/// </summary>
public sealed class RealtimePriorityApiTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public async Task An_out_of_range_priority_is_reported_at_its_path(int priority)
    {
        using var factory = new ApplianceFactory();
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { ["realtimePriority"] = priority };
        var problem = await Problem(factory, doc);
        Assert.Contains("1 to 99", (string)problem["errors"]!["dataPlane.realtimePriority"]![0]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_real_time_priority_with_a_busy_polling_worker_is_refused_at_its_path()
    {
        using var factory = new ApplianceFactory();
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { ["realtimePriority"] = 10, ["pollMode"] = "busy" };
        var problem = await Problem(factory, doc);
        Assert.Contains("starve its CPU", (string)problem["errors"]!["dataPlane.realtimePriority"]![0]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_worker_and_the_mobility_loop_run_at_the_priority_and_status_and_metrics_show_it()
    {
        var permitted = Capabilities.HasSysNice();
        Assert.False(!permitted && Environment.GetEnvironmentVariable("CI") == "true", "the real-time test needs CAP_SYS_NICE (root)");
        var seed = Documents.Lab();
        seed["dataPlane"] = new JsonObject { ["realtimePriority"] = 3 };
        using var factory = new ApplianceFactory(seed);
        var admin = factory.Admin();

        // The worker sets its scheduling when its thread starts.
        var view = await Latency(admin);
        for (var i = 0; i < 200 && (string)view["workerScheduling"]! == "ordinary"; i++)
        {
            await Task.Delay(50);
            view = await Latency(admin);
        }

        var metrics = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        if (permitted)
        {
            Assert.Equal("SCHED_FIFO 3", (string)view["workerScheduling"]!);
            Assert.StartsWith("SCHED_FIFO 3", (string)view["scheduling"]!, StringComparison.Ordinal);
            Assert.Contains("\nisthmus_worker_realtime_priority 3\n", metrics, StringComparison.Ordinal);
            Assert.Contains("\nisthmus_realtime_priority_failures_total 0\n", metrics, StringComparison.Ordinal);
        }
        else
        {
            Assert.StartsWith("ordinary (", (string)view["workerScheduling"]!, StringComparison.Ordinal);
            Assert.Contains("\nisthmus_worker_realtime_priority 0\n", metrics, StringComparison.Ordinal);
            Assert.DoesNotContain("\nisthmus_realtime_priority_failures_total 0\n", metrics, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
        }

        // Fixed while running, like the other data-plane settings.
        var next = Documents.Lab(credentials: false);
        next["dataPlane"] = new JsonObject { ["realtimePriority"] = 4 };
        var response = await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = next });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.NotNull(problem!["errors"]!["dataPlane"]);
    }

    [Fact]
    public async Task Without_the_setting_the_worker_stays_ordinary()
    {
        using var factory = new ApplianceFactory();
        var admin = factory.Admin();
        Assert.Equal("ordinary", (string)(await Latency(admin))["workerScheduling"]!);
        Assert.Contains("\nisthmus_worker_realtime_priority 0\n", await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative)), StringComparison.Ordinal);
    }

    private static async Task<JsonObject> Problem(ApplianceFactory factory, JsonObject doc)
    {
        var response = await factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    private static async Task<JsonObject> Latency(HttpClient client) =>
        (await client.GetFromJsonAsync<JsonObject>("/api/v1/mobility/latency"))!;
}
