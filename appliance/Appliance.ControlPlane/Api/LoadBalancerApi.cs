using Isthmus.ControlPlane.HealthChecks;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.LoadBalancer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>
/// Live load-balancer state: every virtual server with its state and backends (administrative state,
/// health, check counters, live and total connections), and the health state history. Virtual
/// servers and pools themselves are configuration (GET/POST /api/v1/config, key "loadBalancer").
/// </summary>
/// <remarks>
/// Connection counts are the worker's per-backend counters, read without locks (a moment stale,
/// never torn); they are published with the tables they index, so they never mix generations.
/// </remarks>
public static class LoadBalancerApi
{
    public sealed record LbBackendView(
        string Address, int? Port, int Weight, bool Enabled, bool Drain, string Health, bool Eligible,
        long ActiveConnections, long Connections, long DrainCut,
        long Checks, long CheckSuccesses, long CheckFailures, string? LastCheckResult, DateTimeOffset? LastCheck, DateTimeOffset? LastChange);

    public sealed record LbVirtualServerView(
        string Name, string Address, string Protocol, string Ports, string Pool, string Mode, string Algorithm, int PersistenceSeconds,
        string State, int EligibleBackends, int? MaglevSize, IReadOnlyList<LbBackendView> Backends);

    public sealed record LbStateView(long Revision, long PersistenceHits, IReadOnlyList<LbVirtualServerView> VirtualServers);

    public static void MapLoadBalancerApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1/lb").WithTags("Load balancer");
        api.MapGet("/virtual-servers", (DataPlaneRuntime dp) => State(dp))
            .WithSummary("Virtual servers: state (up/down), backends with health, check counters and connection counts");
        api.MapGet("/virtual-servers/{name}", (DataPlaneRuntime dp, string name) =>
                State(dp).VirtualServers.FirstOrDefault(v => v.Name == name) is { } vs
                    ? Results.Ok(vs)
                    : Results.Problem($"no virtual server named '{name}'", statusCode: 404))
            .WithSummary("One virtual server");
        api.MapGet("/history", (DataPlaneRuntime dp) => dp.Health.History())
            .WithSummary("Backend and virtual-server state changes, oldest first (the last 1000)");
    }

    public static LbStateView State(DataPlaneRuntime dp)
    {
        var snapshot = dp.Slot.Current;
        var tables = snapshot.LoadBalancer;
        var counters = dp.Worker.Context.Flows.Balancer.Counters;
        var checks = dp.Health.Backends().ToDictionary(b => b.Key, StringComparer.Ordinal);

        // Counters belong to the tables the worker runs; match by server name + backend address + port.
        var live = new Dictionary<(string, uint, ushort), int>();
        foreach (var b in counters.Tables.Backends)
        {
            live[(counters.Tables.Servers[b.Server].Name, b.Address, b.Port)] = b.Index;
        }

        var spec = snapshot.Program.LoadBalancer;
        var servers = new List<LbVirtualServerView>();
        foreach (var server in tables.Servers)
        {
            var vs = spec.VirtualServers.First(v => v.Name == server.Name);
            var backends = new List<LbBackendView>();
            foreach (var index in server.Backends)
            {
                var b = tables.Backends[index];
                var c = live.TryGetValue((server.Name, b.Address, b.Port), out var k) ? k : -1;
                checks.TryGetValue(b.HealthKey, out var check);
                backends.Add(new LbBackendView(
                    new Packets.Ipv4Address(b.Address).ToString(), b.Port == 0 ? null : b.Port, b.Weight, b.Enabled, b.Drain,
                    check is null ? "unchecked" : b.Up ? "up" : "down", b.Eligible,
                    c < 0 ? 0 : counters.Active[c], c < 0 ? 0 : counters.Flows[c], c < 0 ? 0 : counters.Cut[c],
                    check?.Checks ?? 0, check?.Successes ?? 0, check?.Failures ?? 0, check?.LastResult, check?.LastCheck, check?.LastChange));
            }

            servers.Add(new LbVirtualServerView(
                server.Name, new Packets.Ipv4Address(server.Vip).ToString(), vs.Protocol, server.Ports, vs.Pool, server.ModeName, server.AlgorithmName,
                vs.PersistenceSeconds, server.Down ? "down" : "up", server.Eligible.Length, server.Maglev?.Size, backends));
        }

        return new LbStateView(snapshot.Version, counters.PersistenceHits, servers);
    }

    /// <summary>Prometheus series (cheap: one line per backend).</summary>
    public static IEnumerable<(string Name, string Help, string Type, IEnumerable<(string Labels, long Value)> Samples)> Metrics(DataPlaneRuntime dp)
    {
        var state = State(dp);
        string L(string vs, string? backend = null) => backend is null ? $"{{virtual_server=\"{MetricsApi.Escape(vs)}\"}}" : $"{{virtual_server=\"{MetricsApi.Escape(vs)}\",backend=\"{backend}\"}}";
        var backends = state.VirtualServers.SelectMany(v => v.Backends.Select(b => (v.Name, Backend: $"{b.Address}:{b.Port?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "*"}", b))).ToList();
        yield return ("isthmus_lb_virtual_server_up", "1 while a virtual server has a backend taking new flows.", "gauge", state.VirtualServers.Select(v => (L(v.Name), v.State == "up" ? 1L : 0L)));
        yield return ("isthmus_lb_backend_up", "1 while a backend passes its health checks (or has none).", "gauge", backends.Select(x => (L(x.Name, x.Backend), x.b.Health == "down" ? 0L : 1L)));
        yield return ("isthmus_lb_backend_active_connections", "Live sessions per backend.", "gauge", backends.Select(x => (L(x.Name, x.Backend), x.b.ActiveConnections)));
        yield return ("isthmus_lb_backend_connections_total", "New flows sent to each backend.", "counter", backends.Select(x => (L(x.Name, x.Backend), x.b.Connections)));
        yield return ("isthmus_lb_backend_check_failures_total", "Failed health checks per backend.", "counter", backends.Select(x => (L(x.Name, x.Backend), x.b.CheckFailures)));
    }
}
