using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Isthmus.Integration.Tests;

/// <summary>One probe flow: from a side of the firewall to a target, with the verdict the prober observes.</summary>
/// <param name="Name">Short label for the table.</param>
/// <param name="From">"inside" or "outside": which prober namespace sends it.</param>
/// <param name="Kind">"tcp" (connect), "udp" (datagram, wait for an answer) or "icmp" (echo).</param>
/// <param name="Target">Destination address.</param>
/// <param name="Port">Destination port (0 for icmp).</param>
/// <param name="Expected">What the policy says should happen: open/refused/unreachable/timeout/reply.</param>
public sealed record Probe(string Name, string From, string Kind, string Target, int Port, string Expected);

/// <summary>
/// Probes and tiny servers for the L3 tests (issue 3), written in plain Python (no scapy), so that a verdict
/// is what the prober's own kernel reports: "open" (TCP handshake done), "refused" (a TCP RST or ICMP port
/// unreachable reached the prober), "unreachable" (an ICMP destination unreachable other than port, such as
/// administratively prohibited), "timeout" (nothing came back: dropped), "reply" (UDP or ICMP answer).
/// </summary>
public static class Probes
{
    public const string Python = "/usr/bin/python3";

    /// <summary>The lab's policy (appliance/lab/lab-config-l3.json) as probe flows with their expected verdicts.</summary>
    public static readonly Probe[] PolicyProbes =
    [
        new("in->out tcp/80 (rule 101 allow)", "inside", "tcp", "203.0.113.10", 80, "open"),
        new("in->out tcp/25 (rule 100 reject)", "inside", "tcp", "203.0.113.10", 25, "refused"),
        new("in->out tcp/9 closed (outside's RST back)", "inside", "tcp", "203.0.113.10", 9, "refused"),
        new("in->out udp/7 echo (rule 102, reply)", "inside", "udp", "203.0.113.10", 7, "reply"),
        new("in->out udp/9 closed (ICMP port unreach back)", "inside", "udp", "203.0.113.10", 9, "refused"),
        new("in->out icmp echo (rule 103)", "inside", "icmp", "203.0.113.10", 0, "reply"),
        new("in->gw icmp echo 203.0.113.1", "inside", "icmp", "203.0.113.1", 0, "reply"),
        new("out->in tcp 203.0.113.1:8080 (DNAT, rule 200)", "outside", "tcp", "203.0.113.1", 8080, "open"),
        new("out->in tcp/80 direct (rule 200)", "outside", "tcp", "10.10.0.11", 80, "open"),
        new("out->in tcp/22 (rule 201 reject)", "outside", "tcp", "10.10.0.11", 22, "refused"),
        new("out->in tcp/23 (rule 204 drop)", "outside", "tcp", "10.10.0.11", 23, "timeout"),
        new("out->in tcp/443 (policy default drop)", "outside", "tcp", "10.10.0.11", 443, "timeout"),
        new("out->in udp/5353 (rule 202 reject)", "outside", "udp", "10.10.0.11", 5353, "unreachable"),
        new("out->in udp/7 (policy default drop)", "outside", "udp", "10.10.0.11", 7, "timeout"),
        new("out->in icmp echo (rule 203 reject)", "outside", "icmp", "10.10.0.11", 0, "unreachable"),
        new("out->gw tcp 203.0.113.1:22 (own address)", "outside", "tcp", "203.0.113.1", 22, "timeout"),
        new("out->gw icmp echo 203.0.113.1", "outside", "icmp", "203.0.113.1", 0, "reply"),
    ];

    /// <summary>Servers on the inside target (10.10.0.11) and the outside host (203.0.113.10) for <see cref="PolicyProbes"/>.</summary>
    public const string InsideServers = "--tcp 80,22,23,443 --udp 5353,7";

    public const string OutsideServers = "--tcp 80,25 --udp 7";

    private const string ProbeScript = """
        import errno, socket, subprocess, sys
        kind, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        UNREACH = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM, errno.ENOPROTOOPT, errno.EPROTO)
        def err(e):
            if isinstance(e, ConnectionRefusedError) or e.errno == errno.ECONNREFUSED: return 'refused'
            if isinstance(e, socket.timeout): return 'timeout'
            if e.errno in UNREACH: return 'unreachable'
            return 'error:' + str(e)
        if kind == 'tcp':
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect((host, port)); print('open')
            except OSError as e:
                print(err(e))
        elif kind == 'udp':
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(timeout)
            s.connect((host, port))
            try:
                s.send(b'isthmus-probe'); s.recv(2048); print('reply')
            except OSError as e:
                print(err(e))
        else:
            r = subprocess.run(['ping', '-n', '-c', '1', '-W', str(int(timeout)), host], capture_output=True, text=True)
            out = r.stdout + r.stderr
            if ' bytes from ' in out: print('reply')
            elif 'Unreachable' in out or 'Prohibited' in out or 'filtered' in out or 'Filtered' in out: print('unreachable')
            else: print('timeout')
            sys.stderr.write(out)
        """;

    private const string ServerScript = """
        import socket, sys, threading
        args = sys.argv[1:]
        tcp = [int(p) for p in args[args.index('--tcp') + 1].split(',')] if '--tcp' in args else []
        udp = [int(p) for p in args[args.index('--udp') + 1].split(',')] if '--udp' in args else []
        def serve_tcp(port):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('0.0.0.0', port)); s.listen(64)
            while True:
                c, _ = s.accept()
                try: c.sendall(b'isthmus %d\n' % port)
                except OSError: pass
                c.close()
        def serve_udp(port):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port))
            while True:
                d, a = s.recvfrom(2048); s.sendto(d, a)
        for p in tcp: threading.Thread(target=serve_tcp, args=(p,), daemon=True).start()
        for p in udp: threading.Thread(target=serve_udp, args=(p,), daemon=True).start()
        print('serving', tcp, udp, flush=True)
        threading.Event().wait()
        """;

    private static readonly Lazy<string> ProbeFile = new(() => Write("ist-probe.py", ProbeScript));
    private static readonly Lazy<string> ServerFile = new(() => Write("ist-servers.py", ServerScript));

    private static string Write(string name, string text)
    {
        string dir = Path.Combine(Path.GetTempPath(), "isthmus-l3-tests");
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, name);
        File.WriteAllText(file, text);
        return file;
    }

    /// <summary>Starts a server command in a namespace and waits until it listens on the TCP port (fails with its stderr).</summary>
    public static async Task<Background> StartServer(string ns, string command, int port)
    {
        var bg = Lab.Start(ns, command);
        await WaitListening(bg, ns, port);
        return bg;
    }

    /// <summary>Up to 15 s (a loaded 2-core VM starts Python slowly); the server's stderr in the failure.</summary>
    public static async Task WaitListening(Background bg, string ns, int port)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (DateTime.UtcNow < until && !bg.HasExited)
        {
            var r = await Lab.Exec(ns, $"ss -Hltn 'sport = :{port.ToString(CultureInfo.InvariantCulture)}' | grep -q LISTEN");
            if (r.Ok)
            {
                return;
            }

            await Task.Delay(100);
        }

        var ss = await Lab.Exec(ns, "ss -Hltnp; ss -Hlunp");
        Assert.Fail($"nothing listens on port {port} in {ns} ({bg.Command}; exited={bg.HasExited})\nstderr: {bg.Stderr}\nlisteners:\n{ss.Stdout}");
    }

    /// <summary>Starts TCP listeners (send a line, close) and UDP echo servers in a namespace, and waits for them.</summary>
    public static async Task<Background> StartServers(string ns, string spec)
    {
        var bg = Lab.Start(ns, $"{Python} {ServerFile.Value} {spec}");
        foreach (string p in spec.Split(' ')[1].Split(','))
        {
            await WaitListening(bg, ns, int.Parse(p, CultureInfo.InvariantCulture));
        }

        return bg;
    }

    /// <summary>
    /// Runs one probe in a namespace; returns the verdict and the raw output. Unless <paramref name="timeoutSeconds"/> is
    /// given, the prober waits 2 s where silence is the expected verdict ("timeout": the window it watches) and 8 s where
    /// an answer is (an answer comes in milliseconds; the wait only bounds a stall of a loaded machine, which at 2 s
    /// turned an RST or a reply into "timeout").
    /// </summary>
    public static async Task<(string Verdict, string Raw)> Run(string ns, Probe probe, double? timeoutSeconds = null)
    {
        string t = (timeoutSeconds ?? (probe.Expected == "timeout" ? 2 : 8)).ToString(CultureInfo.InvariantCulture);
        var r = await Lab.RunAsync("ip",
            ["netns", "exec", ns, Python, ProbeFile.Value, probe.Kind, probe.Target, probe.Port.ToString(CultureInfo.InvariantCulture), t],
            TimeSpan.FromSeconds(double.Parse(t, CultureInfo.InvariantCulture) + 10));
        string verdict = r.Stdout.Trim().Split('\n').LastOrDefault()?.Trim() ?? "";
        if (r.TimedOut || verdict.Length == 0)
        {
            verdict = "error:" + (r.TimedOut ? "probe hung" : $"exit {r.ExitCode}");
        }

        return (verdict, r.ToString());
    }

    /// <summary>A fixed-width table of probe results.</summary>
    public static string Table(IEnumerable<string[]> rows, params string[] header)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        int[] widths = Enumerable.Range(0, header.Length).Select(i => all.Max(r => r[i].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var r in all)
        {
            sb.AppendLine(string.Join(" | ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }

        return sb.ToString();
    }
}

/// <summary>API helpers for the L3 tests: the packet trace.</summary>
public static class L3Api
{
    private static readonly JsonSerializerOptions WebJson = new(JsonSerializerDefaults.Web);

    public sealed record TraceEntry(int TraceId, long Sequence, string Stage, string Verdict, string Detail);

    /// <summary>Arms the trace for up to <paramref name="maxPackets"/> packets entering <paramref name="port"/> from <paramref name="sourceMac"/>.</summary>
    public static async Task ArmTrace(string port, string? sourceMac, int maxPackets = 8)
    {
        using var r = await Lab.Http.PostAsJsonAsync(new Uri("/api/v1/trace", UriKind.Relative), new { port, sourceMac, maxPackets });
        string body = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"POST /api/v1/trace: {(int)r.StatusCode} {body}");
    }

    public static async Task<IReadOnlyList<TraceEntry>> Trace()
    {
        string raw = await Lab.Http.GetStringAsync(new Uri("/api/v1/trace", UriKind.Relative));
        return JsonSerializer.Deserialize<List<TraceEntry>>(raw, WebJson) ?? [];
    }

    /// <summary>The trace entries of the traced packets since <paramref name="afterSequence"/>, one line each.</summary>
    public static async Task<List<TraceEntry>> TraceSince(long afterSequence) =>
        (await Trace()).Where(e => e.Sequence > afterSequence).OrderBy(e => e.Sequence).ToList();

    public static async Task<long> LastTraceSequence() => (await Trace()).Select(e => e.Sequence).DefaultIfEmpty(0).Max();

    public static string Format(IEnumerable<TraceEntry> entries) =>
        string.Join('\n', entries.Select(e => $"#{e.TraceId} {e.Stage,-10} {e.Verdict,-12} {e.Detail}"));
}
