using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.Host.Hosting;
using Isthmus.Packets;

namespace Isthmus.Host.Api;

/// <summary>
/// Read-only live state of the data plane. The control-plane issue grows this into the full REST
/// API; the shapes here are what the lab and the integration tests read.
/// </summary>
/// <remarks>
/// Counters and MAC tables are written by the worker thread and read here without locks: values
/// may be a moment stale, never torn (aligned 64-bit fields on x64).
/// </remarks>
public static class DiagnosticsApi
{
    public static void MapDiagnosticsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1");
        api.MapGet("/health", (DataPlaneService dp) =>
            dp.Forwarding ? Results.Ok(new { status = "forwarding" }) : Results.Problem("data plane is not forwarding", statusCode: 503));
        api.MapGet("/counters", (DataPlaneService dp) => Counters(dp));
        api.MapGet("/bridge-domains", (DataPlaneService dp) => BridgeDomains(dp));
        api.MapPost("/trace", (DataPlaneService dp, TraceRequest request) => Trace(dp, request));
        api.MapGet("/trace", (DataPlaneService dp, int? id) => dp.Tracer.Entries(id));
    }

    public sealed record PortCountersView(
        string Name, string Kind, long RxPackets, long RxBytes, long TxPackets, long TxBytes,
        long TxErrors, long RxNoBuffer, long RxTruncated, long RxSyscalls, long TxSyscalls);

    public sealed record CountersView(IReadOnlyList<PortCountersView> Ports, IReadOnlyDictionary<string, long> Drops, long Batches, long Packets);

    public sealed record MacView(string Mac, string Segment, string? Vtep, bool Static, double AgeSeconds);

    public sealed record BridgeDomainView(string Name, IReadOnlyList<MacView> Macs, long Moves, long LearnRefused);

    /// <summary>Arm a trace filter, or inject one synthetic frame (hex) on a port.</summary>
    public sealed record TraceRequest(string? Port, string? SourceMac, string? DestinationMac, int MaxPackets = 16, string? InjectHex = null, int? Vlan = null, string? RemoteVtep = null);

    private static CountersView Counters(DataPlaneService dp)
    {
        var worker = dp.Worker;
        var ports = worker.Ports.Select(p =>
        {
            var c = p.Counters;
            return new PortCountersView(p.Name, p.Kind.ToString().ToLowerInvariant(), c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes,
                c.TxErrors, c.RxNoBuffer, c.RxTruncated, c.RxSyscalls, c.TxSyscalls);
        }).ToList();
        var drops = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var stages = worker.Pipeline.Stages;
        for (var s = 0; s < stages.Count; s++)
        {
            for (var r = 0; r < stages[s].DropReasons.Count; r++)
            {
                drops[$"{stages[s].Name}.{stages[s].DropReasons[r]}"] = worker.Counters.Drops(s, r);
            }
        }

        return new CountersView(ports, drops, worker.Counters.Batches, worker.Counters.Packets);
    }

    private static List<BridgeDomainView> BridgeDomains(DataPlaneService dp)
    {
        var context = dp.Worker.Context;
        var snapshot = context.Snapshot;
        var now = TimeProvider.System.GetTimestamp();
        var result = new List<BridgeDomainView>();
        var states = context.Bridge.Domains;
        for (var d = 0; d < states.Length; d++)
        {
            var state = states[d];
            var macs = state.Table.Snapshot()
                .Where(e => (uint)e.Segment < (uint)snapshot.Segments.Length)
                .Select(e => new MacView(
                    new MacAddress(e.Mac).ToString(),
                    snapshot.Segments[e.Segment].Name,
                    e.Vtep == 0 ? null : new Ipv4Address(e.Vtep).ToString(),
                    e.Static,
                    Math.Round((now - e.LastSeen) / (double)context.TicksPerSecond, 1)))
                .OrderBy(m => m.Mac, StringComparer.Ordinal)
                .ToList();
            result.Add(new BridgeDomainView(state.Name, macs, state.Moves, state.LearnRefused));
        }

        return result;
    }

    private static IResult Trace(DataPlaneService dp, TraceRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        var port = request.Port is null ? -1 : dp.Worker.Ports.ToList().FindIndex(p => p.Name == request.Port);
        if (request.Port is not null && port < 0)
        {
            errors["port"] = [$"no port named '{request.Port}'"];
        }

        MacAddress? source = null, destination = null;
        if (request.SourceMac is not null)
        {
            if (MacAddress.TryParse(request.SourceMac, out var mac)) { source = mac; } else { errors["sourceMac"] = ["not a MAC address"]; }
        }

        if (request.DestinationMac is not null)
        {
            if (MacAddress.TryParse(request.DestinationMac, out var mac)) { destination = mac; } else { errors["destinationMac"] = ["not a MAC address"]; }
        }

        byte[]? frame = null;
        if (request.InjectHex is not null)
        {
            try
            {
                frame = Convert.FromHexString(request.InjectHex);
            }
            catch (FormatException)
            {
                errors["injectHex"] = ["not hexadecimal"];
            }

            if (port < 0)
            {
                errors["port"] = ["an injected frame needs the port it enters on"];
            }
        }

        var vtep = Ipv4Address.Any;
        if (request.RemoteVtep is not null && !Ipv4Address.TryParse(request.RemoteVtep, out vtep))
        {
            errors["remoteVtep"] = ["not an IPv4 address"];
        }

        if (errors.Count > 0)
        {
            return Results.ValidationProblem(errors);
        }

        if (frame is not null)
        {
            var id = dp.Worker.Inject(frame, port, request.Vlan is { } v ? (ushort)v : null, vtep.Value);
            return Results.Accepted($"/api/v1/trace?id={id}", new { traceId = id });
        }

        dp.Tracer.Arm(new TraceFilter { IngressPort = request.Port, SourceMac = source, DestinationMac = destination, MaxPackets = request.MaxPackets });
        return Results.Accepted("/api/v1/trace", new { armed = true });
    }
}
