using System.Globalization;
using System.Text;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.Workers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>
/// Prometheus text exposition format 0.0.4, written by hand: per-port packets and bytes, per-stage drop
/// reasons, worker batches, commits and the running revision; conntrack sessions per protocol, table-full
/// drops, neighbor counts and per-rule hit counters.
/// </summary>
/// <remarks>
/// Cardinality stays bounded: ports, stage×reason and protocols are small fixed sets, and the rule hit
/// counters are one series per configured firewall rule (labels rule id, zone pair, action). At this
/// scale (a per-tenant policy of tens to a few hundred rules) per rule id is fine; a 10k-rule policy
/// would mean 10k series, and then <c>GET /api/v1/firewall/rules</c> is the place to read them. Session
/// and neighbor counts come from a worker query; if the worker does not answer in time those series are
/// left out of that scrape (the rest is still served).
/// </remarks>
public static class MetricsApi
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static void MapMetricsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", async (DataPlaneRuntime dp, ConfigService config, TimeProvider time, HttpContext http) =>
            {
                var flows = dp.Forwarding
                    ? await FlowApi.AskAsync(dp.Worker.Queries, LiveState.Statistics, FlowApi.QueryTimeout, time, http.RequestAborted).ConfigureAwait(false)
                    : null;
                return Results.Text(Render(dp, config, flows), ContentType);
            })
            .WithTags("Live state")
            .WithSummary("Prometheus metrics (text format)");
    }

    public static string Render(DataPlaneRuntime dp, ConfigService config, FlowStatistics? flows = null)
    {
        ArgumentNullException.ThrowIfNull(dp);
        ArgumentNullException.ThrowIfNull(config);
        var sb = new StringBuilder(4096);
        var ports = dp.Worker.Ports;
        Counter(sb, "isthmus_port_rx_packets_total", "Frames received per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxPackets)));
        Counter(sb, "isthmus_port_rx_bytes_total", "Bytes received per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxBytes)));
        Counter(sb, "isthmus_port_tx_packets_total", "Frames transmitted per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxPackets)));
        Counter(sb, "isthmus_port_tx_bytes_total", "Bytes transmitted per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxBytes)));
        Counter(sb, "isthmus_port_tx_errors_total", "Frames the port failed to send.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxErrors)));
        Counter(sb, "isthmus_port_rx_no_buffer_total", "Frames left in the socket because the packet pool was empty.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxNoBuffer)));
        Counter(sb, "isthmus_port_tx_raw_total", "VXLAN datagrams sent as raw frames on the underlay (pre-built outer headers).", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxRaw)));
        Counter(sb, "isthmus_port_tx_raw_fallback_total", "VXLAN datagrams sent through the UDP socket while raw transmit is on (next hop unresolved, neighbor to confirm, local route, MTU).", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxRawFallback)));
        Counter(sb, "isthmus_port_tx_ring_full_total", "Frames dropped at an AF_XDP port's full TX ring (every TX chunk in flight).", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxRingFull)));
        Counter(sb, "isthmus_port_tx_gso_trains_total", "VXLAN UDP GSO transmit (dataPlane.vxlanTransmit udpGso): sendmsg trains of same-size datagrams that left.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxGsoTrains)));
        Counter(sb, "isthmus_port_tx_dropped_total", "VXLAN UDP GSO transmit: datagrams the kernel refused, per reason (no_room: EAGAIN/ENOBUFS, too_big: EMSGSIZE over the underlay MTU, refused: any other error).", ports.SelectMany(p => StateApi.TxDropped(p.Counters).Select(d => ($"{{port=\"{Escape(p.Name)}\",kind=\"{Kind(p)}\",reason=\"{d.Key}\"}}", d.Value))));
        Counter(sb, "isthmus_port_rx_kernel_drops_total", "Frames the kernel dropped at the port's socket because the worker fell behind.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxKernelDrops)));
        Counter(sb, "isthmus_drops_total", "Packets dropped, per pipeline stage and reason.", StateApi.Drops(dp).Select(d => (Label("stage", d.Stage, "reason", d.Reason), d.Count)));
        Counter(sb, "isthmus_worker_packets_total", "Packets the workers ran through the pipeline.", [("", dp.Worker.Counters.Packets)]);
        Counter(sb, "isthmus_worker_batches_total", "Batches the workers ran through the pipeline.", [("", dp.Worker.Counters.Batches)]);
        Heartbeats(sb, dp.Worker.HeartbeatTimings);
        Counter(sb, "isthmus_config_commits_total", "Configuration revisions committed (including rollbacks).", [("", config.Store.Count)]);
        Gauge(sb, "isthmus_config_revision", "Revision the data plane runs.", dp.SnapshotVersion);
        Gauge(sb, "isthmus_config_confirm_pending", "1 while a commit-confirmed waits for its confirmation.", config.Pending is null ? 0 : 1);
        Gauge(sb, "isthmus_up", "1 while the data plane forwards.", dp.Forwarding ? 1 : 0);
        var cpuIdle = dp.CpuIdle.Status;
        Gauge(sb, "isthmus_cpu_idle_latency_request_us", "The PM QoS CPU latency request held (dataPlane.cpuIdleLatencyUs); -1 when none is in force.", cpuIdle.Held ?? -1);
        Counter(sb, "isthmus_cpu_idle_latency_failures_total", "CPU latency requests that could not be made (device absent or not permitted).", [("", cpuIdle.Failures)]);
        Gauge(sb, "isthmus_worker_realtime_priority", "The SCHED_FIFO priority of the data-plane worker thread (dataPlane.realtimePriority); 0 = ordinary scheduling.", dp.WorkerRealtimePriority);
        Gauge(sb, "isthmus_worker_nice", "The nice value the data-plane worker thread runs at, read back from the kernel (dataPlane.workerNice; ignored while it runs under SCHED_FIFO).", dp.Worker.RunningNice ?? 0);
        Counter(sb, "isthmus_worker_nice_failures_total", "Nice values (dataPlane.workerNice or its default -20) the kernel refused the worker thread.", [("", dp.NiceFailures)]);
        Counter(sb, "isthmus_realtime_priority_failures_total", "Real-time priority requests (dataPlane.realtimePriority) the kernel refused (worker, mobility loop).", [("", dp.RealtimeFailures)]);
        Counter(sb, "isthmus_mobility_loop_demotions_total", "Times the mobility / BGP loop, on the worker's CPU above it (dataPlane.loopPlacement aboveWorker), worked past its budget and left that CPU.", [("", dp.LoopPlacement?.Budget.Demotions ?? 0)]);
        Counter(sb, "isthmus_log_suppressed_total", "Data-plane log lines suppressed by the rate limit.", [("", dp.SuppressedLogLines)]);
        Counter(sb, "isthmus_conntrack_table_full_drops_total", "New flows dropped because the conntrack table was full (nat.ConntrackFull).",
            [("", StateApi.Drops(dp).Where(d => d.Stage == "nat" && d.Reason == "ConntrackFull").Sum(d => d.Count))]);
        foreach (var (name, help, type, samples) in LoadBalancerApi.Metrics(dp))
        {
            if (type == "counter")
            {
                Counter(sb, name, help, samples);
            }
            else
            {
                Gauges(sb, name, help, samples);
            }
        }

        if (flows is not null)
        {
            var protocols = new SortedSet<byte>(flows.SessionsByProtocol.Keys) { 6, 17, 1 };
            Gauges(sb, "isthmus_conntrack_sessions", "Live conntrack sessions per IP protocol.",
                protocols.Select(p => ($"{{protocol=\"{FlowApi.ProtocolName(p)}\"}}", (long)flows.SessionsByProtocol.GetValueOrDefault(p))));
            Gauge(sb, "isthmus_conntrack_sessions_max", "Conntrack table size (conntrack.maxSessions per worker; 0 when conntrack is off).", flows.MaxSessions);
            Counter(sb, "isthmus_conntrack_sessions_created_total", "Conntrack sessions created.", [("", flows.Committed)]);
            Counter(sb, "isthmus_conntrack_sessions_expired_total", "Conntrack sessions removed because they timed out.", [("", flows.Expired)]);
            Gauge(sb, "isthmus_neighbors", "ARP/ND cache entries (reachable, stale and incomplete).", flows.Neighbors);
            Gauge(sb, "isthmus_neighbor_held_packets", "Packets held for next hops that are resolving.", flows.HeldPackets);
            Counter(sb, "isthmus_firewall_rule_hits_total", "New flows per firewall rule (one series per configured rule id).",
                FlowApi.RuleViews(flows).Select(r => (
                    $"{{rule=\"{r.Id.ToString(CultureInfo.InvariantCulture)}\",from=\"{Escape(r.From)}\",to=\"{Escape(r.To)}\",action=\"{r.Action}\"}}", r.Hits)));
        }

        return sb.ToString();
    }

    private static string Kind(DataPlane.Io.IPacketPort p) => p.Kind.ToString().ToLowerInvariant();

    private static string Label(string k1, string v1, string k2, string v2) => $"{{{k1}=\"{Escape(v1)}\",{k2}=\"{Escape(v2)}\"}}";

    internal static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static void Counter(StringBuilder sb, string name, string help, IEnumerable<(string Labels, long Value)> samples)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(" counter\n");
        foreach (var (labels, value) in samples)
        {
            sb.Append(name).Append(labels).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    private static void Gauges(StringBuilder sb, string name, string help, IEnumerable<(string Labels, long Value)> samples)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(" gauge\n");
        foreach (var (labels, value) in samples)
        {
            sb.Append(name).Append(labels).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    /// <summary>The worker's heartbeat durations: a histogram in µs (a frame arriving during one waits), the last and the largest.</summary>
    private static void Heartbeats(StringBuilder sb, HeartbeatTimings timings)
    {
        const string name = "isthmus_worker_heartbeat_duration_us";
        sb.Append("# HELP ").Append(name).Append(" How long the data-plane worker's heartbeats took (kernel counters, MAC aging, conntrack sweep, stage timers), microseconds; a frame arriving meanwhile waits.\n");
        sb.Append("# TYPE ").Append(name).Append(" histogram\n");
        var cumulative = timings.Cumulative();
        for (var i = 0; i < cumulative.Length; i++)
        {
            var le = i < HeartbeatTimings.BoundsUs.Count ? HeartbeatTimings.BoundsUs[i].ToString(CultureInfo.InvariantCulture) : "+Inf";
            sb.Append(name).Append("_bucket{le=\"").Append(le).Append("\"} ").Append(cumulative[i].ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        sb.Append(name).Append("_sum ").Append(timings.SumUs.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append(name).Append("_count ").Append(cumulative[^1].ToString(CultureInfo.InvariantCulture)).Append('\n');
        Gauge(sb, "isthmus_worker_heartbeat_last_us", "The data-plane worker's latest heartbeat, microseconds.", timings.LastUs);
        Gauge(sb, "isthmus_worker_heartbeat_max_us", "The data-plane worker's longest heartbeat since it started, microseconds.", timings.MaxUs);
    }

    private static void Gauge(StringBuilder sb, string name, string help, long value)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(" gauge\n");
        sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }
}
