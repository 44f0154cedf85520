using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Isthmus.Cli;

/// <summary>
/// isthmusctl: the appliance's REST API from a shell. Every command is one or two API calls, so
/// anything here can also be scripted with curl.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var url = new Option<string>("--url") { Description = "Appliance API (or ISTHMUS_URL)", Recursive = true, DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ISTHMUS_URL") ?? "http://127.0.0.1:8088" };
        var token = new Option<string?>("--token") { Description = "API token (or ISTHMUS_TOKEN)", Recursive = true, DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ISTHMUS_TOKEN") };
        var user = new Option<string?>("--user") { Description = "User for HTTP Basic (or ISTHMUS_USER); the password comes from ISTHMUS_PASSWORD", Recursive = true, DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ISTHMUS_USER") };
        var insecure = new Option<bool>("--insecure", "-k") { Description = "Accept the appliance's self-signed certificate", Recursive = true };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON as is", Recursive = true };

        ApplianceClient Client(ParseResult r) => ApplianceClient.Create(r.GetValue(url)!, r.GetValue(token), r.GetValue(user), Environment.GetEnvironmentVariable("ISTHMUS_PASSWORD"), r.GetValue(insecure));

        // show config|revisions|counters|macs|interfaces|drops|audit|pending|sessions|neighbors|routes|rules
        var what = new Argument<string>("what") { Description = "config | revisions | counters | macs | interfaces | drops | audit | pending | revision N | sessions | neighbors | routes | rules" };
        var showId = new Argument<long?>("id") { Description = "Revision number (show revision N)", Arity = ArgumentArity.ZeroOrOne };
        var protocol = new Option<string?>("--protocol") { Description = "show sessions: tcp | udp | icmp | protocol number" };
        var address = new Option<string?>("--address") { Description = "show sessions: an IPv4 address in either tuple; show neighbors: the neighbor's address" };
        var port = new Option<int?>("--port") { Description = "show sessions: a port in either tuple" };
        var state = new Option<string?>("--state") { Description = "show sessions: syn_sent | syn_recv | established | fin_wait | close_wait | time_wait | close | unreplied | replied" };
        var page = new Option<int?>("--page") { Description = "show sessions: page number (from 1)" };
        var pageSize = new Option<int?>("--page-size") { Description = "show sessions: sessions per page (1 to 1000, default 100)" };
        var show = new Command("show", "Show configuration or live state") { what, showId, protocol, address, port, state, page, pageSize };
        show.SetAction(async (r, _) => await Show(Client(r), r.GetValue(what)!, r.GetValue(showId), r.GetValue(json), new Filters(
            r.GetValue(protocol), r.GetValue(address), r.GetValue(port), r.GetValue(state), r.GetValue(page), r.GetValue(pageSize))));

        var file = new Argument<FileInfo>("file") { Description = "Configuration document (JSON)" };
        var message = new Option<string?>("--message", "-m") { Description = "Revision comment" };
        var confirmMinutes = new Option<int?>("--confirm-minutes") { Description = "Commit-confirmed: roll back unless `isthmusctl confirm` within N minutes" };
        var commit = new Command("commit", "Validate, store and apply a configuration document") { file, message, confirmMinutes };
        commit.SetAction(async (r, _) =>
        {
            var document = await ReadDocument(r.GetValue(file)!);
            var body = new JsonObject { ["document"] = document, ["comment"] = r.GetValue(message), ["confirmMinutes"] = r.GetValue(confirmMinutes) };
            return await Print(await Client(r).SendAsync(HttpMethod.Post, "/api/v1/config/commit", body), r.GetValue(json), b =>
                $"revision {b!["revision"]} applied (validate+compile+swap {(double)b["compileAndSwapMs"]!:F1} ms)"
                + (b["confirmBy"] is { } c ? $"; confirm before {c} or it rolls back" : ""));
        });

        var validateFile = new Argument<FileInfo>("file") { Description = "Configuration document (JSON)" };
        var validate = new Command("validate", "Validate a document against the running configuration, list every error") { validateFile };
        validate.SetAction(async (r, _) => await Print(await Client(r).SendAsync(HttpMethod.Post, "/api/v1/config/validate", await ReadDocument(r.GetValue(validateFile)!)), r.GetValue(json), _ => "valid"));

        var confirm = new Command("confirm", "Confirm the pending commit-confirmed");
        confirm.SetAction(async (r, _) => await Print(await Client(r).SendAsync(HttpMethod.Post, "/api/v1/config/confirm"), r.GetValue(json), _ => "confirmed"));

        var revision = new Argument<long>("revision") { Description = "Revision to go back to" };
        var rollback = new Command("rollback", "Roll back to a revision (as a new revision)") { revision, message };
        rollback.SetAction(async (r, _) => await Print(
            await Client(r).SendAsync(HttpMethod.Post, "/api/v1/config/rollback", new JsonObject { ["revision"] = r.GetValue(revision), ["comment"] = r.GetValue(message) }),
            r.GetValue(json), b => $"revision {b!["revision"]} applied"));

        var from = new Argument<string>("from") { Description = "Revision number, or a file to compare with the running configuration" };
        var to = new Argument<long?>("to") { Description = "Revision number", Arity = ArgumentArity.ZeroOrOne };
        var diff = new Command("diff", "Diff two revisions (diff A B) or the running configuration and a file (diff FILE)") { from, to };
        diff.SetAction(async (r, _) =>
        {
            var client = Client(r);
            var a = r.GetValue(from)!;
            var result = long.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out var ra) && r.GetValue(to) is { } rb
                ? await client.SendAsync(HttpMethod.Get, $"/api/v1/config/diff?from={ra}&to={rb}")
                : await client.SendAsync(HttpMethod.Post, "/api/v1/config/diff", await ReadDocument(new FileInfo(a)));
            return await Print(result, r.GetValue(json), FormatDiff);
        });

        var tracePort = new Option<string?>("--port") { Description = "Ingress port" };
        var traceSrc = new Option<string?>("--src") { Description = "Source MAC" };
        var traceDst = new Option<string?>("--dst") { Description = "Destination MAC" };
        var traceCount = new Option<int>("--count") { Description = "Packets to trace", DefaultValueFactory = _ => 16 };
        var traceInject = new Option<string?>("--inject") { Description = "Inject this frame (hex) on --port and trace it" };
        var traceVlan = new Option<int?>("--vlan") { Description = "VLAN of the injected frame (trunk port)" };
        var traceShow = new Option<int?>("--id") { Description = "Only this trace id" };
        var traceStart = new Command("start", "Arm a trace filter, or inject a synthetic frame") { tracePort, traceSrc, traceDst, traceCount, traceInject, traceVlan };
        traceStart.SetAction(async (r, _) => await Print(await Client(r).SendAsync(HttpMethod.Post, "/api/v1/trace", new JsonObject
        {
            ["port"] = r.GetValue(tracePort), ["sourceMac"] = r.GetValue(traceSrc), ["destinationMac"] = r.GetValue(traceDst),
            ["maxPackets"] = r.GetValue(traceCount), ["injectHex"] = r.GetValue(traceInject), ["vlan"] = r.GetValue(traceVlan),
        }), r.GetValue(json), b => b!["traceId"] is { } id ? $"injected, trace id {id}: isthmusctl trace show --id {id}" : "armed: isthmusctl trace show"));
        var traceRead = new Command("show", "Per-stage verdicts of traced packets") { traceShow };
        traceRead.SetAction(async (r, _) => await Print(
            await Client(r).SendAsync(HttpMethod.Get, r.GetValue(traceShow) is { } id ? $"/api/v1/trace?id={id}" : "/api/v1/trace"),
            r.GetValue(json),
            b => string.Join(Environment.NewLine, b!.AsArray().Select(e => $"#{e!["traceId"],-5} {e["stage"],-8} {e["verdict"],-12} {e["detail"]}"))));
        var trace = new Command("trace", "Packet trace") { traceStart, traceRead };

        var capPort = new Option<string>("--port") { Description = "Port to capture on", Required = true };
        var capCount = new Option<int>("--count", "-c") { Description = "Packets", DefaultValueFactory = _ => 100 };
        var capFilter = new Option<string?>("--filter") { Description = "Extra query, e.g. vlan=10&etherType=0x0806&mac=02:00:00:00:00:0a" };
        var capOut = new Option<FileInfo>("--output", "-o") { Description = "pcap file to write", Required = true };
        var capture = new Command("capture", "Download a pcap of N received packets") { capPort, capCount, capFilter, capOut };
        capture.SetAction(async (r, ct) =>
        {
            var query = $"/api/v1/capture?port={Uri.EscapeDataString(r.GetValue(capPort)!)}&count={r.GetValue(capCount)}" + (r.GetValue(capFilter) is { } f ? "&" + f : "");
            var (ok, bytes, error) = await Client(r).DownloadAsync(query);
            if (!ok)
            {
                await Console.Error.WriteLineAsync(error);
                return 1;
            }

            await File.WriteAllBytesAsync(r.GetValue(capOut)!.FullName, bytes, ct);
            Console.WriteLine($"{r.GetValue(capOut)!.Name}: {bytes.Length} bytes");
            return 0;
        });

        var tokenName = new Argument<string>("name") { Description = "Token name" };
        var tokenRole = new Option<string>("--role") { Description = "admin | read-only", DefaultValueFactory = _ => "read-only" };
        var tokenCreate = new Command("token", "Issue an API token (printed once)") { tokenName, tokenRole };
        tokenCreate.SetAction(async (r, _) => await Print(
            await Client(r).SendAsync(HttpMethod.Post, "/api/v1/tokens", new JsonObject { ["name"] = r.GetValue(tokenName), ["role"] = r.GetValue(tokenRole) }),
            r.GetValue(json), b => (string)b!["token"]!));

        var root = new RootCommand("isthmusctl: drive an Isthmus appliance through its REST API")
        {
            url, token, user, insecure, json, show, validate, commit, confirm, rollback, diff, trace, capture, tokenCreate,
        };
        return root.Parse(args).Invoke();
    }

    private static async Task<JsonNode> ReadDocument(FileInfo file) =>
        JsonNode.Parse(await File.ReadAllTextAsync(file.FullName), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })
        ?? throw new InvalidDataException($"{file.Name} is empty");

    /// <summary>The filters of <c>show sessions</c> (the API's query parameters, same names).</summary>
    public sealed record Filters(string? Protocol = null, string? Address = null, int? Port = null, string? State = null, int? Page = null, int? PageSize = null)
    {
        public string SessionsQuery()
        {
            var parts = new List<string>();
            void Add(string name, object? value)
            {
                if (value is not null)
                {
                    parts.Add($"{name}={Uri.EscapeDataString(Convert.ToString(value, CultureInfo.InvariantCulture)!)}");
                }
            }

            Add("page", Page);
            Add("pageSize", PageSize);
            Add("protocol", Protocol);
            Add("address", Address);
            Add("port", Port);
            Add("state", State);
            return "/api/v1/sessions" + (parts.Count > 0 ? "?" + string.Join('&', parts) : "");
        }
    }

    private static async Task<int> Show(ApplianceClient client, string what, long? id, bool raw, Filters? filters = null)
    {
        filters ??= new Filters();
        var path = what switch
        {
            "sessions" => filters.SessionsQuery(),
            "neighbors" => "/api/v1/neighbors",
            "routes" => "/api/v1/routes",
            "rules" => "/api/v1/firewall/rules",
            "config" => "/api/v1/config",
            "revisions" => "/api/v1/config/revisions",
            "revision" when id is { } n => $"/api/v1/config/revisions/{n}",
            "counters" => "/api/v1/counters",
            "macs" => "/api/v1/bridge-domains",
            "interfaces" => "/api/v1/interfaces",
            "drops" => "/api/v1/drops",
            "audit" => "/api/v1/audit",
            "pending" => "/api/v1/config/pending",
            _ => null,
        };
        if (path is null)
        {
            await Console.Error.WriteLineAsync($"show what? config | revisions | revision N | counters | macs | interfaces | drops | audit | pending | sessions | neighbors | routes | rules (not '{what}')");
            return 2;
        }

        return await Print(await client.SendAsync(HttpMethod.Get, path), raw, what switch
        {
            "revisions" => b => string.Join(Environment.NewLine, b!.AsArray().Select(r =>
                $"{r!["id"],5}  {(DateTimeOffset)r["time"]!:yyyy-MM-dd HH:mm:ss}  {r["author"],-16} {r["comment"]}{(r["confirmBy"] is { } c ? $"  (confirm by {c})" : "")}")),
            "macs" => b => string.Join(Environment.NewLine, b!.AsArray().SelectMany(d =>
                new[] { $"{d!["name"]}: {d["macs"]!.AsArray().Count} MACs, {d["moves"]} moves" }
                    .Concat(d["macs"]!.AsArray().Select(m => $"  {m!["mac"]}  {m["segment"],-14} {m["vtep"] ?? "",-15} {((bool)m["static"]! ? "static" : $"{m["ageSeconds"]} s")}")))),
            "counters" => b => string.Join(Environment.NewLine,
                b!["ports"]!.AsArray().Select(p => $"{p!["name"],-8} {p["kind"],-7} rx {p["rxPackets"],10} pkts {p["rxBytes"],12} B   tx {p["txPackets"],10} pkts {p["txBytes"],12} B")
                    .Concat(b["drops"]!.AsObject().Where(d => (long)d.Value! > 0).Select(d => $"drop {d.Key,-28} {d.Value}"))),
            "pending" => b => b is null ? "nothing pending" : $"revision {b["revision"]} rolls back to {b["previous"]} at {b["deadline"]} unless confirmed",
            "sessions" => FormatSessions,
            "neighbors" => b => FormatNeighbors(b, filters.Address),
            "routes" => b => string.Join(Environment.NewLine, b!.AsArray().Select(r =>
                $"{r!["prefix"],-24} {r["source"],-10} {(string?)r["nextHop"] ?? "-",-26} {r["domain"]}")),
            "rules" => b => b!.AsArray().Count == 0 ? "no firewall rules" : string.Join(Environment.NewLine, b.AsArray().Select(r =>
                $"rule {r!["id"],-6} {r["from"]} -> {r["to"],-16} {r["action"],-7} {((bool)r["log"]! ? "log" : ""),-4} {r["hits"],12} hits")),
            _ => b => b?.ToJsonString(ApplianceClient.Pretty) ?? "",
        });
    }

    public static string FormatSessions(JsonNode? body)
    {
        var lines = new List<string> { $"{body!["total"]} matching of {body["live"]} sessions (table {body["capacity"]}), page {body["page"]} of {Math.Max(1, ((int)body["total"]! + (int)body["pageSize"]! - 1) / (int)body["pageSize"]!)}" };
        foreach (var s in body["items"]!.AsArray())
        {
            var o = s!["original"]!;
            var nat = "";
            if (s["nat"] is { } n)
            {
                nat += n["source"] is { } src ? $"  snat {src["from"]!["address"]}:{src["from"]!["port"]} -> {src["to"]!["address"]}:{src["to"]!["port"]}" : "";
                nat += n["destination"] is { } dst ? $"  dnat {dst["from"]!["address"]}:{dst["from"]!["port"]} -> {dst["to"]!["address"]}:{dst["to"]!["port"]}" : "";
            }

            lines.Add($"{s["protocol"],-5} {s["state"],-12} {o["source"]}:{o["sourcePort"]} -> {o["destination"]}:{o["destinationPort"]}{nat}  idle {s["idleSeconds"]} s, expires in {s["expiresInSeconds"]} s");
        }

        return string.Join(Environment.NewLine, lines);
    }

    public static string FormatNeighbors(JsonNode? body, string? address = null) =>
        string.Join(Environment.NewLine, body!.AsArray()
            .Where(n => address is null || (string?)n!["address"] == address)
            .Select(n => $"{n!["address"],-26} {(string?)n["mac"] ?? "(incomplete)",-18} {n["domain"],-12} {n["state"],-10} {n["ageSeconds"]} s"
                + ((int)n["heldPackets"]! > 0 ? $", {n["heldPackets"]} held" : "")));

    private static string FormatDiff(JsonNode? body) =>
        body is JsonArray { Count: 0 } ? "no differences" : string.Join(Environment.NewLine, body!.AsArray().Select(d => (string)d!["op"]! switch
        {
            "added" => $"+ {d["path"]}: {d["new"]?.ToJsonString()}",
            "removed" => $"- {d["path"]}: {d["old"]?.ToJsonString()}",
            _ => $"~ {d["path"]}: {d["old"]?.ToJsonString()} -> {d["new"]?.ToJsonString()}",
        }));

    private static Task<int> Print((bool Ok, JsonNode? Body, string Text) result, bool raw, Func<JsonNode?, string> format)
    {
        if (!result.Ok)
        {
            Console.Error.WriteLine(result.Text);
            return Task.FromResult(1);
        }

        Console.WriteLine(raw ? result.Text : format(result.Body));
        return Task.FromResult(0);
    }
}
