using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.Mobility.Threading;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// dataPlane.loopPlacement over HTTP: validation at its path (an unknown value, "aboveWorker" without a real-time priority
/// of 2-98 or with workerCpu), and an appliance started with "aboveWorker": the worker and the mobility loop read back
/// from the kernel on the same CPU, the loop one SCHED_FIFO priority above the worker; the latency view and the metrics
/// show it. CI=true runs as root: there the threads must get it.
/// </summary>
public sealed class LoopPlacementApiTests
{
    [Theory]
    [InlineData("\"sideways\"", 10, null, "not a loop placement")]
    [InlineData("\"aboveWorker\"", null, null, "realtimePriority 2 to 98")]
    [InlineData("\"aboveWorker\"", 1, null, "realtimePriority 2 to 98")]
    [InlineData("\"aboveWorker\"", 99, null, "realtimePriority 2 to 98")]
    [InlineData("\"aboveWorker\"", 10, 1, "set one or the other")]
    public async Task A_placement_that_cannot_hold_is_reported_at_its_path(string placement, int? priority, int? workerCpu, string message)
    {
        using var factory = new ApplianceFactory();
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { ["loopPlacement"] = JsonNode.Parse(placement), ["realtimePriority"] = priority, ["workerCpu"] = workerCpu };
        var response = await factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Contains(message, (string)problem["errors"]!["dataPlane.loopPlacement"]![0]!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("scheduler", null)]
    [InlineData("aboveWorker", 2)]
    [InlineData("aboveWorker", 98)]
    public async Task A_placement_that_holds_is_not_reported(string placement, int? priority)
    {
        // The running appliance has other data-plane settings: the only error is "fixed while running", at dataPlane.
        using var factory = new ApplianceFactory();
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { ["loopPlacement"] = placement, ["realtimePriority"] = priority };
        var response = await factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        var problem = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal(["dataPlane"], problem["errors"]!.AsObject().Select(e => e.Key));
    }

    [Fact]
    public async Task Above_the_worker_the_loop_and_the_worker_share_its_cpu_the_loop_one_priority_up()
    {
        var permitted = Capabilities.HasSysNice();
        Assert.False(!permitted && Environment.GetEnvironmentVariable("CI") == "true", "the placement test needs CAP_SYS_NICE (root)");

        // A priority no other test uses, to find this appliance's threads among those of the tests running beside it.
        const int Worker = 23;
        var seed = Documents.Lab();
        seed["dataPlane"] = new JsonObject { ["realtimePriority"] = Worker, ["loopPlacement"] = "aboveWorker" };
        using var factory = new ApplianceFactory(seed);
        var admin = factory.Admin();
        var cpu = AboveWorkerPlacement.ChooseCpu();
        Assert.NotNull(cpu);

        // The worker sets its scheduling when its thread starts, the loop when it starts.
        var view = await Latency(admin);
        for (var i = 0; i < 200 && ((string)view["workerScheduling"]! == "ordinary" || (string)view["scheduling"]! == "normal"); i++)
        {
            await Task.Delay(50);
            view = await Latency(admin);
        }

        var metrics = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Matches(@"\nisthmus_mobility_loop_demotions_total \d+\n", metrics);
        Assert.True((long)view["runtime"]!["loopDemotions"]! >= 0);
        if (permitted)
        {
            Assert.Equal($"SCHED_FIFO {Worker}, pinned to CPU {cpu} (loopPlacement aboveWorker)", (string)view["workerScheduling"]!);
            Assert.StartsWith($"SCHED_FIFO {Worker + 1}, on the worker's CPU {cpu} one priority above it", (string)view["scheduling"]!, StringComparison.Ordinal);

            // Read back from the kernel: the threads of this process at these priorities, by name. The budget counts wall
            // time, so a vCPU pause in one of the loop's turns may demote it for a while (off the CPU, one below the worker):
            // poll (bounded) until it is back, as it comes back once idle.
            var worker = Assert.Single(Threads("isthmus-worker"), t => LoopThread.Scheduling(t) == ("SCHED_FIFO", Worker));
            Assert.Equal([cpu.Value], LoopThread.Affinity(worker));
            var above = new List<int>();
            for (var i = 0; i < 400; i++)
            {
                above = [.. Threads("isthmus-mobilit").Where(t => LoopThread.Scheduling(t) == ("SCHED_FIFO", Worker + 1) && LoopThread.Affinity(t).SequenceEqual([cpu.Value]))];
                if (above.Count > 0)
                {
                    break;
                }

                await Task.Delay(50);
            }

            Assert.Single(above);
            Assert.Contains("\nisthmus_realtime_priority_failures_total 0\n", metrics, StringComparison.Ordinal);
        }
        else
        {
            Assert.StartsWith("aboveWorker refused", (string)view["scheduling"]!, StringComparison.Ordinal);
            Assert.DoesNotContain("\nisthmus_realtime_priority_failures_total 0\n", metrics, StringComparison.Ordinal);
        }
    }

    /// <summary>This process's threads whose name (comm, 15 characters at most) starts with <paramref name="prefix"/>.</summary>
    private static List<int> Threads(string prefix) =>
        Directory.GetDirectories("/proc/self/task")
            .Select(d => (Tid: int.Parse(Path.GetFileName(d), CultureInfo.InvariantCulture), Comm: ReadComm(d)))
            .Where(t => t.Comm.StartsWith(prefix, StringComparison.Ordinal))
            .Select(t => t.Tid)
            .ToList();

    private static string ReadComm(string taskDir)
    {
        try
        {
            return File.ReadAllText(Path.Combine(taskDir, "comm")).Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static async Task<JsonObject> Latency(HttpClient client) =>
        (await client.GetFromJsonAsync<JsonObject>("/api/v1/mobility/latency"))!;
}
