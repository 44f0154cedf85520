using System.Net;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Mobility;
using Isthmus.Packets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>Mobility and BGP: peers, workloads, move history, announced routes; orchestrator move reports and own-migration.</summary>
public static class MobilityApi
{
    /// <summary>An orchestrator's move report: the MAC is now on <paramref name="Segment"/> (behind <paramref name="Vtep"/> for VXLAN), with these addresses.</summary>
    public sealed record MoveRequest(string? Mac, string? Segment, string? Vtep = null, IReadOnlyList<string>? Addresses = null);

    public sealed record SelfMigratedRequest(string? Reason = null);

    /// <param name="Scheduling">The mobility loop thread's scheduling class.</param>
    /// <param name="WorkerGarpFrames">GARP frames the workers sent themselves on seeing a RARP (no hop).</param>
    /// <param name="Runtime">Collections, GC pause and JIT compilations since the last reset (tail suspects).</param>
    /// <param name="WorkerScheduling">The data-plane worker thread's scheduling (dataPlane.realtimePriority: "SCHED_FIFO n", or "ordinary" with the reason).</param>
    /// <param name="WorkerNice">The nice value the worker thread runs at, read back from the kernel (dataPlane.workerNice; ignored under SCHED_FIFO), null before it runs.</param>
    public sealed record LatencyView(string Scheduling, long WorkerGarpFrames, IReadOnlyList<Isthmus.Mobility.Diagnostics.LatencySummary> Hops, RuntimeActivity Runtime, Isthmus.ControlPlane.Runtime.CpuIdleLatencyStatus CpuIdle, string WorkerScheduling, int? WorkerNice);

    public sealed record PeerView(
        string Name, string Address, uint PeerAs, string State, double? UptimeSeconds, string? LastError,
        int ReceivedCount, int AdvertisedCount, IReadOnlyList<RouteView> Received, IReadOnlyList<RouteView> Advertised);

    public static void MapMobilityApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("Mobility and BGP");
        api.MapGet("/bgp/peers", (MobilityService mobility, TimeProvider time) => Peers(mobility, time))
            .WithSummary("BGP peers: state, uptime, received and advertised routes");
        api.MapGet("/mobility", (MobilityService mobility) => mobility.Status with { Workloads = [], Moves = [] })
            .WithSummary("Mobility status: announced routes, capped / rate-limited counts, aggregates, signal and GARP counters");
        api.MapGet("/mobility/latency", (MobilityService mobility, Isthmus.ControlPlane.Runtime.DataPlaneRuntime dp) => new LatencyView(mobility.Latency.Scheduling, mobility.Latency.WorkerGarpFrames, mobility.Latency.Read(), mobility.Latency.Runtime(), dp.CpuIdle.Status, dp.WorkerScheduling + dp.WorkerPlacement, dp.Worker.RunningNice))
            .WithSummary("Where the time goes from a worker seeing a RARP to the reactions (per hop, microseconds from the RARP; recent samples)");
        api.MapPost("/mobility/latency/reset", (MobilityService mobility) =>
            {
                mobility.Latency.Reset();
                return Results.NoContent();
            })
            .WithSummary("Forget the latency samples (a benchmark starts clean)")
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapGet("/mobility/workloads", (MobilityService mobility) => mobility.Status.Workloads)
            .WithSummary("Workloads: MAC, addresses, location (site / segment / VTEP), sequence number, frozen");
        api.MapGet("/mobility/moves", (MobilityService mobility, int? limit) => mobility.Status.Moves.Take(Math.Clamp(limit ?? 100, 1, 10_000)))
            .WithSummary("Move history, newest first");
        api.MapPost("/mobility/moves", (MobilityService mobility, MoveRequest request) => Move(mobility, request))
            .WithSummary("An orchestrator reports a move")
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapPost("/mobility/self-migrated", async (MobilityService mobility, SelfMigratedRequest? request) =>
                Results.Accepted(value: new { garpBursts = await mobility.SelfMigratedAsync(request?.Reason ?? "API call").ConfigureAwait(false) }))
            .WithSummary("The appliance itself was migrated: GARP its addresses and VIPs on every segment, refresh BGP")
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapPost("/mobility/workloads/{mac}/unfreeze", async (MobilityService mobility, string mac) =>
                !MacAddress.TryParse(mac, out var parsed) ? Problems.Invalid("mac", $"'{mac}' is not a MAC address")
                : await mobility.UnfreezeAsync(parsed.Value).ConfigureAwait(false) ? Results.NoContent()
                : Results.Problem($"{mac} is not a frozen workload", statusCode: 404))
            .WithSummary("Clear a duplicate-MAC freeze")
            .RequireAuthorization(Roles.AdminPolicy);
    }

    private static async Task<IResult> Move(MobilityService mobility, MoveRequest request)
    {
        var errors = new List<DataPlane.Programming.ProgramError>();
        var mac = MacAddress.TryParse(request.Mac ?? "", out var m) && m.IsUnicast && !m.IsZero ? m.Value : 0;
        if (mac == 0)
        {
            errors.Add(new("mac", $"'{request.Mac}' is not a unicast MAC address"));
        }

        if (string.IsNullOrWhiteSpace(request.Segment))
        {
            errors.Add(new("segment", "the segment the workload is on now (\"acc10\", \"trunk0/vlan10\", \"und0/vni5010\")"));
        }

        uint vtep = 0;
        if (request.Vtep is { } vtepText)
        {
            if (IPAddress.TryParse(vtepText, out var v) && v.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
            {
                var b = v.GetAddressBytes();
                vtep = ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
            }
            else
            {
                errors.Add(new("vtep", $"'{vtepText}' is not an IPv4 address"));
            }
        }

        var addresses = new List<IPAddress>();
        var list = request.Addresses ?? [];
        for (var i = 0; i < list.Count; i++)
        {
            if (IPAddress.TryParse(list[i], out var address))
            {
                addresses.Add(address);
            }
            else
            {
                errors.Add(new($"addresses[{i}]", $"'{list[i]}' is not an IP address"));
            }
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors, "The move report is not valid");
        }

        var report = await mobility.ReportMoveAsync(mac, request.Segment!, vtep, addresses).ConfigureAwait(false);
        return report.Workload is null
            ? Problems.Invalid(report.Outcome.StartsWith("no segment", StringComparison.Ordinal) ? "segment" : "$", report.Outcome)
            : Results.Accepted(value: report);
    }

    private static List<PeerView> Peers(MobilityService mobility, TimeProvider time)
    {
        var now = time.GetUtcNow();
        return [.. mobility.Peers.Select(p =>
        {
            var session = p.Session;
            var received = session.AdjRibIn.Values.Select(RouteView.Of).OrderBy(r => r.Prefix, StringComparer.Ordinal).ToList();
            var advertised = session.AdjRibOut.Select(RouteView.Of).OrderBy(r => r.Prefix, StringComparer.Ordinal).ToList();
            return new PeerView(
                p.Name, p.Spec.Address, p.Spec.PeerAs, session.State.ToString(),
                session.EstablishedAt is { } up ? Math.Round((now - up).TotalSeconds, 1) : null,
                session.LastError, received.Count, advertised.Count, received, advertised);
        })];
    }
}
