using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Isthmus.Integration.Tests;

/// <summary>The result of one command run inside a lab namespace.</summary>
public sealed record ExecResult(int ExitCode, string Stdout, string Stderr, bool TimedOut)
{
    public bool Ok => ExitCode == 0 && !TimedOut;

    public override string ToString() =>
        $"exit={ExitCode}{(TimedOut ? " (timed out)" : "")}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>Per-port counters as the appliance's API reports them.</summary>
public sealed record PortCounters(string Name, long RxPackets, long RxBytes, long TxPackets, long TxBytes, long TxErrors, long RxTruncated, long TxRaw, long TxGsoTrains = 0);

/// <summary>One snapshot of GET /api/v1/counters.</summary>
public sealed class CounterSnapshot
{
    public CounterSnapshot(IReadOnlyDictionary<string, PortCounters> ports, IReadOnlyDictionary<string, long> drops, string raw)
    {
        Ports = ports;
        Drops = drops;
        Raw = raw;
    }

    public IReadOnlyDictionary<string, PortCounters> Ports { get; }

    public IReadOnlyDictionary<string, long> Drops { get; }

    public string Raw { get; }

    /// <summary>A drop counter by its "stage.Reason" key; the contract says every reason is present.</summary>
    public long Drop(string key) =>
        Drops.TryGetValue(key, out long v) ? v : throw new KeyNotFoundException($"drop counter '{key}' is not in /api/v1/counters: {Raw}");

    /// <summary>The sum of those of <paramref name="keys"/> that exist (for reasons a stage may name either way).</summary>
    public long DropsAny(params string[] keys)
    {
        if (!keys.Any(Drops.ContainsKey))
        {
            throw new KeyNotFoundException($"none of {string.Join(", ", keys)} is in /api/v1/counters: {Raw}");
        }

        return keys.Sum(k => Drops.TryGetValue(k, out long v) ? v : 0);
    }
}

/// <summary>Helpers that drive the namespace lab built by appliance/lab/lab.sh.</summary>
public static class Lab
{
    public const string Api = "http://127.0.0.1:8088";
    public const string ScapyPython = "/usr/bin/python3";
    public const string RunDir = "/run/isthmus-lab";

    /// <summary>
    /// An API client that authenticates with the admin token lab.sh made for the appliance's first boot
    /// (/run/isthmus-lab/admin-token), read at every request so a restarted lab's new token is used.
    /// </summary>
    public static HttpClient Http { get; } = new(new LabTokenHandler { InnerHandler = new HttpClientHandler() }) { BaseAddress = new Uri(Api), Timeout = TimeSpan.FromSeconds(15) }; // a bound for a stalled machine, not a timing assert

    /// <summary>The lab's admin API token (Bearer), or empty when the lab has not made one.</summary>
    public static string AdminToken
    {
        get
        {
            try
            {
                return File.ReadAllText(Path.Combine(RunDir, "admin-token")).Trim();
            }
            catch (IOException)
            {
                return "";
            }
        }
    }

    private sealed class LabTokenHandler : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Headers.Authorization is null && AdminToken is { Length: > 0 } token)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }

    public static string RepoRoot { get; } = FindRepoRoot();

    public static string LabScript => Path.Combine(RepoRoot, "appliance", "lab", "lab.sh");

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Appliance.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException($"Appliance.sln not found above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs a program with arguments; kills its process tree after the timeout.</summary>
    public static async Task<ExecResult> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (env is not null)
        {
            foreach (var (k, v) in env)
            {
                psi.Environment[k] = v;
            }
        }

        using var p = new Process { StartInfo = psi };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        p.Start();
        p.StandardInput.Close();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        bool timedOut = false;
        using (var cts = new CancellationTokenSource(timeout))
        {
            try
            {
                await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                await p.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        p.WaitForExit(); // flushes the asynchronous readers
        string o, e2;
        lock (stdout) { o = stdout.ToString(); }
        lock (stderr) { e2 = stderr.ToString(); }
        return new ExecResult(timedOut ? -1 : p.ExitCode, o, e2, timedOut);
    }

    /// <summary>Runs a shell command inside a lab namespace (ip netns exec NS sh -c CMD).</summary>
    public static Task<ExecResult> Exec(string ns, string command, TimeSpan? timeout = null) =>
        RunAsync("ip", ["netns", "exec", ns, "/bin/sh", "-c", command], timeout ?? TimeSpan.FromSeconds(20));

    /// <summary>Runs a scapy script (prefixed with "from scapy.all import *") inside a namespace.</summary>
    public static async Task<ExecResult> Scapy(string ns, string script, TimeSpan? timeout = null)
    {
        string file = Path.Combine(Path.GetTempPath(), $"ist-scapy-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(file, "import logging\nlogging.getLogger('scapy.runtime').setLevel(logging.ERROR)\nfrom scapy.all import *\nconf.verb = 0\n" + script + "\n").ConfigureAwait(false);
        try
        {
            return await RunAsync("ip", ["netns", "exec", ns, ScapyPython, file], timeout ?? TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Runs a command and fails the test with its output unless it exits 0.</summary>
    public static async Task<ExecResult> Must(string ns, string command, TimeSpan? timeout = null)
    {
        var r = await Exec(ns, command, timeout).ConfigureAwait(false);
        Assert.True(r.Ok, $"[{ns}] {command}\n{r}\n{await Diagnostics().ConfigureAwait(false)}");
        return r;
    }

    public static async Task<ExecResult> MustScapy(string ns, string script)
    {
        var r = await Scapy(ns, script).ConfigureAwait(false);
        Assert.True(r.Ok, $"[{ns}] scapy:\n{script}\n{r}");
        return r;
    }

    public static async Task<string> Mac(string ns, string iface = "eth0")
    {
        var r = await Must(ns, $"cat /sys/class/net/{iface}/address").ConfigureAwait(false);
        return r.Stdout.Trim();
    }

    public static async Task<CounterSnapshot> Counters()
    {
        string raw = await Http.GetStringAsync(new Uri("/api/v1/counters", UriKind.Relative)).ConfigureAwait(false);
        using var doc = JsonDocument.Parse(raw);
        var ports = new Dictionary<string, PortCounters>();
        if (doc.RootElement.TryGetProperty("ports", out var ps))
        {
            foreach (var p in ps.EnumerateArray())
            {
                string name = p.GetProperty("name").GetString() ?? "";
                ports[name] = new PortCounters(name, Num(p, "rxPackets"), Num(p, "rxBytes"), Num(p, "txPackets"), Num(p, "txBytes"), Num(p, "txErrors"), Num(p, "rxTruncated"), Num(p, "txRaw"), Num(p, "txGsoTrains"));
            }
        }

        var drops = new Dictionary<string, long>();
        if (doc.RootElement.TryGetProperty("drops", out var ds))
        {
            foreach (var d in ds.EnumerateObject())
            {
                drops[d.Name] = d.Value.GetInt64();
            }
        }

        return new CounterSnapshot(ports, drops, raw);
    }

    public static async Task<string> BridgeDomains() =>
        await Http.GetStringAsync(new Uri("/api/v1/bridge-domains", UriKind.Relative)).ConfigureAwait(false);

    private static long Num(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetInt64() : 0;

    /// <summary>Counters, bridge domains and the appliance's log tail, for assertion messages.</summary>
    public static async Task<string> Diagnostics()
    {
        var sb = new StringBuilder();
        try
        {
            sb.Append("counters: ").AppendLine((await Counters().ConfigureAwait(false)).Raw);
            sb.Append("bridge-domains: ").AppendLine(await BridgeDomains().ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            sb.Append("API not answering: ").AppendLine(ex.Message);
        }

        sb.AppendLine("appliance log (tail):").AppendLine(Tail(Path.Combine(RunDir, "appliance.log"), 30));
        sb.AppendLine("portgroup log (tail):").AppendLine(Tail(Path.Combine(RunDir, "portgroup.log"), 10));
        return sb.ToString();
    }

    public static string Tail(string file, int lines)
    {
        try
        {
            return string.Join('\n', File.ReadLines(file).TakeLast(lines));
        }
        catch (IOException ex)
        {
            return $"({file}: {ex.Message})";
        }
    }

    /// <summary>Pings and fails the test with diagnostics unless at least one reply came back.</summary>
    public static Task<ExecResult> MustPing(string ns, string address, int count = 3) =>
        Must(ns, $"ping -n -c {count.ToString(CultureInfo.InvariantCulture)} -i 0.2 -W 2 {address}", TimeSpan.FromSeconds(15));

    /// <summary>Starts a long-running process in a namespace (a server); dispose stops it.</summary>
    public static Background Start(string ns, string command) => new(["netns", "exec", ns, "/bin/sh", "-c", "exec " + command]);

    /// <summary>
    /// Starts tcpdump in a namespace and returns once it is capturing. Lines are "-e -n -l" text, one per frame.
    /// direction: "in", "out" or "inout".
    /// </summary>
    public static async Task<Background> Tcpdump(string ns, string iface, string filter, string direction = "inout")
    {
        var args = new List<string> { "netns", "exec", ns, "tcpdump", "-l", "-n", "-e", "-i", iface, "-Q", direction };
        if (filter.Length > 0)
        {
            args.Add(filter);
        }

        var bg = new Background(args);
        await bg.WaitForStderr("listening on", TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        return bg;
    }

    /// <summary>Starts tshark in a namespace with a capture filter and field output; returns once capturing.</summary>
    public static async Task<Background> Tshark(string ns, string iface, string captureFilter, params string[] fields)
    {
        var args = new List<string> { "netns", "exec", ns, "tshark", "-l", "-n", "-i", iface, "-f", captureFilter, "-T", "fields", "-E", "separator=|" };
        foreach (string f in fields)
        {
            args.Add("-e");
            args.Add(f);
        }

        var bg = new Background(args);
        await bg.WaitForStderr("Capturing on", TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        return bg;
    }

    /// <summary>
    /// Polls the counters until the condition holds (the worker counts a frame after the sender returns), up to
    /// <paramref name="timeout"/> (20 s unless given: a bound for a loaded machine, not a timing assert).
    /// </summary>
    public static async Task<CounterSnapshot> WaitCounters(Func<CounterSnapshot, bool> condition, string what, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        CounterSnapshot c;
        while (true)
        {
            c = await Counters().ConfigureAwait(false);
            if (condition(c) || DateTime.UtcNow > until)
            {
                break;
            }

            await Task.Delay(200).ConfigureAwait(false);
        }

        Assert.True(condition(c), $"counters: expected {what}\n{await Diagnostics().ConfigureAwait(false)}");
        return c;
    }

    /// <summary>Waits until something listens on a TCP port in a namespace: up to 20 s (Python's start on a loaded 2-core machine can take seconds).</summary>
    public static async Task WaitListening(string ns, int port)
    {
        var until = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < until)
        {
            var r = await Exec(ns, $"ss -Hltn 'sport = :{port.ToString(CultureInfo.InvariantCulture)}' | grep -q LISTEN").ConfigureAwait(false);
            if (r.Ok)
            {
                return;
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        Assert.Fail($"nothing listens on port {port} in {ns}");
    }
}

/// <summary>A process running in the background (server or capture) whose output is collected.</summary>
public sealed class Background : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly StringBuilder _stderr = new();

    internal Background(IEnumerable<string> ipArgs)
    {
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in ipArgs)
        {
            psi.ArgumentList.Add(a);
        }

        Command = string.Join(' ', psi.ArgumentList);
        _process = new Process { StartInfo = psi };
        // Blank lines are not frames (tcpdump prints one when interrupted).
        _process.OutputDataReceived += (_, e) => { if (!string.IsNullOrWhiteSpace(e.Data)) { lock (_stdout) { _stdout.Add(e.Data); } } };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_stderr) { _stderr.AppendLine(e.Data); } } };
        _process.Start();
        _process.StandardInput.Close();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Command { get; }

    private const int SigInt = 2;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int sig);

    public IReadOnlyList<string> Lines
    {
        get { lock (_stdout) { return [.. _stdout]; } }
    }

    public string Stderr
    {
        get { lock (_stderr) { return _stderr.ToString(); } }
    }

    public bool HasExited => _process.HasExited;

    public async Task WaitForStderr(string text, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (Stderr.Contains(text, StringComparison.Ordinal))
            {
                await Task.Delay(100).ConfigureAwait(false);
                return;
            }

            if (_process.HasExited)
            {
                break;
            }

            await Task.Delay(50).ConfigureAwait(false);
        }

        Assert.Fail($"'{Command}' did not print '{text}' (exited={_process.HasExited}). stderr:\n{Stderr}");
    }

    /// <summary>
    /// Waits until the lines printed so far satisfy <paramref name="expected"/> (or <paramref name="timeout"/>, 10 s
    /// unless given, passes), then <paramref name="settleMs"/> more for stragglers, stops the process and returns its
    /// stdout lines. A capture stopped by SIGINT drops what it has not printed yet, and on a loaded machine tcpdump or
    /// tshark can be that far behind the wire: a fixed settle alone cut frames off. The caller asserts on the lines as
    /// before; a timeout only returns what was seen.
    /// </summary>
    public async Task<IReadOnlyList<string>> StopWhenAsync(Func<IReadOnlyList<string>, bool> expected, int settleMs = 200, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!expected(Lines) && DateTime.UtcNow < until && !_process.HasExited)
        {
            await Task.Delay(50).ConfigureAwait(false);
        }

        return await StopAsync(settleMs).ConfigureAwait(false);
    }

    /// <summary>Waits for stragglers, stops the process and returns its stdout lines.</summary>
    public async Task<IReadOnlyList<string>> StopAsync(int settleMs = 700)
    {
        await Task.Delay(settleMs).ConfigureAwait(false);
        Dispose();
        return Lines;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                // SIGINT first: tshark then removes its temporary capture file and stops dumpcap.
                _ = Kill(_process.Id, SigInt);
                if (!_process.WaitForExit(3000))
                {
                    _process.Kill(entireProcessTree: true);
                }
            }

            if (_process.WaitForExit(5000))
            {
                _process.WaitForExit(); // drains the asynchronous readers
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
