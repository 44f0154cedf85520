using System.Globalization;
using System.Text;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>
/// Prometheus text exposition format 0.0.4, written by hand: per-port packets and bytes, per-stage drop
/// reasons, worker batches, commits and the running revision.
/// </summary>
public static class MetricsApi
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static void MapMetricsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", (DataPlaneRuntime dp, ConfigService config) => Results.Text(Render(dp, config), ContentType))
            .WithTags("Live state")
            .WithSummary("Prometheus metrics (text format)");
    }

    public static string Render(DataPlaneRuntime dp, ConfigService config)
    {
        var sb = new StringBuilder(4096);
        var ports = dp.Worker.Ports;
        Counter(sb, "isthmus_port_rx_packets_total", "Frames received per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxPackets)));
        Counter(sb, "isthmus_port_rx_bytes_total", "Bytes received per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxBytes)));
        Counter(sb, "isthmus_port_tx_packets_total", "Frames transmitted per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxPackets)));
        Counter(sb, "isthmus_port_tx_bytes_total", "Bytes transmitted per port.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxBytes)));
        Counter(sb, "isthmus_port_tx_errors_total", "Frames the port failed to send.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.TxErrors)));
        Counter(sb, "isthmus_port_rx_no_buffer_total", "Frames left in the socket because the packet pool was empty.", ports.Select(p => (Label("port", p.Name, "kind", Kind(p)), p.Counters.RxNoBuffer)));
        Counter(sb, "isthmus_drops_total", "Packets dropped, per pipeline stage and reason.", StateApi.Drops(dp).Select(d => (Label("stage", d.Stage, "reason", d.Reason), d.Count)));
        Counter(sb, "isthmus_worker_packets_total", "Packets the workers ran through the pipeline.", [("", dp.Worker.Counters.Packets)]);
        Counter(sb, "isthmus_worker_batches_total", "Batches the workers ran through the pipeline.", [("", dp.Worker.Counters.Batches)]);
        Counter(sb, "isthmus_config_commits_total", "Configuration revisions committed (including rollbacks).", [("", config.Store.Count)]);
        Gauge(sb, "isthmus_config_revision", "Revision the data plane runs.", dp.SnapshotVersion);
        Gauge(sb, "isthmus_config_confirm_pending", "1 while a commit-confirmed waits for its confirmation.", config.Pending is null ? 0 : 1);
        Gauge(sb, "isthmus_up", "1 while the data plane forwards.", dp.Forwarding ? 1 : 0);
        Counter(sb, "isthmus_log_suppressed_total", "Data-plane log lines suppressed by the rate limit.", [("", dp.SuppressedLogLines)]);
        return sb.ToString();
    }

    private static string Kind(DataPlane.Io.IPacketPort p) => p.Kind.ToString().ToLowerInvariant();

    private static string Label(string k1, string v1, string k2, string v2) => $"{{{k1}=\"{Escape(v1)}\",{k2}=\"{Escape(v2)}\"}}";

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static void Counter(StringBuilder sb, string name, string help, IEnumerable<(string Labels, long Value)> samples)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(" counter\n");
        foreach (var (labels, value) in samples)
        {
            sb.Append(name).Append(labels).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    private static void Gauge(StringBuilder sb, string name, string help, long value)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(" gauge\n");
        sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }
}
