using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Logging;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// dataPlane.workerNice over HTTP: validation at its path; the worker thread at that nice value as the kernel reports it
/// (/proc/self/task/TID/stat), shown in the latency view and the metrics; with realtimePriority the kernel schedules the
/// worker SCHED_FIFO and ignores the nice value, which is still set and holds once the thread runs ordinary again; a
/// refused value (no CAP_SYS_NICE) logged, counted, and the appliance running on. CI=true runs as root: there the
/// values must hold.
/// </summary>
public sealed class WorkerNiceApiTests
{
    [Theory]
    [InlineData(-21)]
    [InlineData(20)]
    public async Task An_out_of_range_nice_value_is_reported_at_its_path(int nice)
    {
        using var factory = new ApplianceFactory();
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { ["workerNice"] = nice };
        var response = await factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Contains("-20 (the highest ordinary priority) to 19", (string)problem["errors"]!["dataPlane.workerNice"]![0]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_worker_runs_at_the_nice_value_and_status_and_metrics_show_it()
    {
        var root = RootInCi();
        var seed = Documents.Lab();
        seed["dataPlane"] = new JsonObject { ["workerNice"] = -20 };
        using var factory = new ApplianceFactory(seed);
        factory.Logs.Lines.Clear();
        var admin = factory.Admin();
        var worker = factory.Runtime.Worker;
        await WaitFor(() => worker.Nice is not null || worker.NiceError is not null);

        var view = (await admin.GetFromJsonAsync<JsonObject>("/api/v1/mobility/latency"))!;
        var metrics = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        if (root)
        {
            Assert.Equal(-20, KernelStat(worker.ThreadId).Nice);
            Assert.Equal(-20, (int)view["workerNice"]!);
            Assert.Contains("\nisthmus_worker_nice -20\n", metrics, StringComparison.Ordinal);
            Assert.Contains("\nisthmus_worker_nice_failures_total 0\n", metrics, StringComparison.Ordinal);
            Assert.Contains(factory.Logs.Lines, l => l.EventId == LogEvents.WorkerNice && l.Message.Contains("nice -20", StringComparison.Ordinal));
        }
        else
        {
            Assert.Contains("\nisthmus_worker_nice_failures_total 1\n", metrics, StringComparison.Ordinal);
        }

        // Fixed while running, like the other data-plane settings.
        var next = Documents.Lab(credentials: false);
        next["dataPlane"] = new JsonObject { ["workerNice"] = 0 };
        var response = await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = next });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotNull((await response.Content.ReadFromJsonAsync<JsonObject>())!["errors"]!["dataPlane"]);
    }

    [Fact]
    public async Task Without_the_setting_an_unpinned_interrupt_worker_keeps_the_nice_value_it_started_with()
    {
        using var factory = new ApplianceFactory();
        var admin = factory.Admin();
        var worker = factory.Runtime.Worker;
        await WaitFor(() => worker.ThreadId > 0);
        var started = KernelStat(worker.ThreadId).Nice;
        Assert.Null(worker.Nice);
        Assert.Equal(started, (int)(await admin.GetFromJsonAsync<JsonObject>("/api/v1/mobility/latency"))!["workerNice"]!);
        var metrics = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains($"\nisthmus_worker_nice {started.ToString(CultureInfo.InvariantCulture)}\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nisthmus_worker_nice_failures_total 0\n", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Under_sched_fifo_the_nice_value_is_set_but_ignored_and_holds_when_the_worker_runs_ordinary_again()
    {
        var root = RootInCi();
        var seed = Documents.Lab();
        seed["dataPlane"] = new JsonObject { ["workerNice"] = -20, ["realtimePriority"] = 3 };
        using var factory = new ApplianceFactory(seed);
        factory.Logs.Lines.Clear();
        var admin = factory.Admin();
        var worker = factory.Runtime.Worker;
        await WaitFor(() => factory.Runtime.WorkerScheduling != "ordinary");
        if (!root)
        {
            return;
        }

        // Both in the kernel: SCHED_FIFO 3 decides; the nice value waits in the thread's static priority.
        var tid = worker.ThreadId;
        Assert.Equal((SchedFifo, 3, -20), KernelStat(tid));
        Assert.Equal("SCHED_FIFO 3", factory.Runtime.WorkerScheduling);
        Assert.Contains(factory.Logs.Lines, l => l.EventId == LogEvents.WorkerNice && l.Message.Contains("ignored by the kernel while the worker runs under SCHED_FIFO", StringComparison.Ordinal));
        Assert.Contains("\nisthmus_worker_nice -20\n", await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative)), StringComparison.Ordinal);

        // An administrator (or the kernel's reset) puts the worker back to SCHED_OTHER: the nice value holds.
        var param = 0;
        Assert.Equal(0, SchedSetScheduler(tid, SchedOther, ref param));
        Assert.Equal((SchedOther, 0, -20), KernelStat(tid));
    }

    [Fact]
    public async Task A_refused_nice_value_is_logged_counted_and_the_appliance_forwards_on()
    {
        var root = RootInCi();

        // A whole process without CAP_SYS_NICE, as a service without it would run: this assembly as a child program
        // (ChildProcess "nice-refused") under setpriv, which drops the capability from the bounding set before exec. In
        // this process a thread without it would hand that loss to every thread it creates (the thread pool's too), and
        // other tests' workers would inherit it.
        var psi = new ProcessStartInfo(root ? "setpriv" : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (root)
        {
            foreach (var arg in new[] { "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "dotnet" })
            {
                psi.ArgumentList.Add(arg);
            }
        }

        psi.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        psi.ArgumentList.Add("nice-refused");
        using var child = Process.Start(psi)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        var exited = child.WaitForExitAsync();
        if (await Task.WhenAny(exited, Task.Delay(TimeSpan.FromSeconds(120))) != exited)
        {
            child.Kill();
            Assert.Fail("the child did not finish within 120 s");
        }

        Assert.True(child.ExitCode == 0, $"exit {child.ExitCode}: {await stdout}\n{await stderr}");
        Assert.Contains("nice refused: logged, counted, forwarding", await stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// The child's scenario (a process without CAP_SYS_NICE): the appliance asks for nice -20, the kernel refuses, and the
    /// refusal is logged, counted and shown while the worker runs on. Throws on any failed expectation.
    /// </summary>
    internal static async Task RefusedNiceScenario()
    {
        Assert.False(Capabilities.HasSysNice(), "the child still has CAP_SYS_NICE: nothing would be refused");
        var seed = Documents.Lab();
        seed["dataPlane"] = new JsonObject { ["workerNice"] = -20 };
        using var factory = new ApplianceFactory(seed);
        var admin = factory.Admin();
        var worker = factory.Runtime.Worker;
        await WaitFor(() => worker.Nice is not null || worker.NiceError is not null);
        Assert.Null(worker.Nice);
        Assert.Contains("setpriority(-20)", worker.NiceError, StringComparison.Ordinal);
        Assert.NotEqual(-20, KernelStat(worker.ThreadId).Nice);
        Assert.Equal(1, factory.Runtime.NiceFailures);
        Assert.Contains(factory.Logs.Lines, l => l.EventId == LogEvents.WorkerNiceFailed && l.Message.Contains("running it as before", StringComparison.Ordinal));
        var metrics = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("\nisthmus_worker_nice_failures_total 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("\nisthmus_up 1\n", metrics, StringComparison.Ordinal);

        // The worker runs: it serves a query (the live state behind /api/v1/sessions).
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/v1/sessions", UriKind.Relative))).StatusCode);
    }

    private const int SchedOther = 0;
    private const int SchedFifo = 1;

    private static async Task WaitFor(Func<bool> condition)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition(), "the worker thread's set-up did not happen within 10 s");
    }

    /// <summary>True as root; CI=true without root fails.</summary>
    private static bool RootInCi()
    {
        var root = Environment.IsPrivilegedProcess;
        Assert.False(!root && Environment.GetEnvironmentVariable("CI") == "true", "the nice tests need root (CAP_SYS_NICE)");
        return root;
    }

    /// <summary>proc(5) for thread <paramref name="tid"/>: policy (field 41), rt_priority (40), nice (19).</summary>
    private static (int Policy, int Priority, int Nice) KernelStat(int tid)
    {
        var stat = File.ReadAllText($"/proc/self/task/{tid.ToString(CultureInfo.InvariantCulture)}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        int Field(int n) => int.Parse(fields[n - 3], CultureInfo.InvariantCulture);
        return (Field(41), Field(40), Field(19));
    }

    [DllImport("libc", EntryPoint = "sched_setscheduler")]
    private static extern int SchedSetScheduler(int pid, int policy, ref int param);
}
