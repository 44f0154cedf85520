using System.Globalization;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>
/// Live L3 and flow state: conntrack sessions, the neighbor (ARP/ND) cache, the FIB and per-rule
/// counters. Sessions, neighbors and rule counters are asked of the worker through
/// <see cref="WorkerQueries"/> (it owns those tables and mutates them without locks; walking them
/// from here could read torn entries); the FIB is read from the immutable snapshot.
/// </summary>
public static class FlowApi
{
    public const int DefaultPageSize = 100;
    public const int MaxPageSize = 1000;

    /// <summary>How long a request waits for the worker before 503 (it answers within ~50 ms when healthy).</summary>
    public static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(2);

    public sealed record EndpointView(string Address, int Port);

    public sealed record TupleView(string Source, int SourcePort, string Destination, int DestinationPort);

    /// <param name="From">The address:port as the original packet carried it.</param>
    /// <param name="To">What it is translated to.</param>
    public sealed record TranslationView(EndpointView From, EndpointView To);

    public sealed record NatView(TranslationView? Source, TranslationView? Destination);

    /// <param name="IdleSeconds">Since the last packet (the state's timeout minus the time left).</param>
    public sealed record SessionView(
        string Protocol, string State, TupleView Original, TupleView Reply, NatView? Nat, bool Bridged,
        long ExpiresInSeconds, long TimeoutSeconds, long IdleSeconds);

    /// <param name="Total">Sessions matching the filter, over all pages.</param>
    /// <param name="Live">Live sessions in the table (unfiltered).</param>
    public sealed record SessionsView(int Page, int PageSize, int Total, int Live, int Capacity, IReadOnlyList<SessionView> Items);

    public sealed record NeighborView(string Address, string Family, string? Mac, string Domain, string State, double AgeSeconds, int Probes, int HeldPackets);

    public sealed record RouteView(string Prefix, string Family, string Source, string? NextHop, string Domain);

    public sealed record RuleView(int Id, string From, string To, int Position, string Action, bool Log, long Hits);

    public static void MapFlowApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("Live state");
        api.MapGet("/sessions", Sessions)
            .WithSummary("Conntrack sessions, paged (?page=&pageSize=) and filtered (?protocol=&address=&port=&state=)");
        api.MapGet("/neighbors", Neighbors).WithSummary("The ARP/ND cache: address, MAC, domain, state, age, held packets");
        api.MapGet("/routes", (DataPlaneRuntime dp) => Routes(dp)).WithSummary("The FIB: connected and static routes");
        api.MapGet("/firewall/rules", Rules).WithSummary("Firewall rules per zone pair with their new-flow hit counters");
    }

    /// <summary>
    /// Posts <paramref name="answer"/> to the worker and waits at most <paramref name="timeout"/>.
    /// Null when the worker did not answer in time or stopped.
    /// </summary>
    public static async Task<T?> AskAsync<T>(WorkerQueries queries, Func<WorkerContext, T> answer, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(queries);
        try
        {
            return await queries.Ask(answer).WaitAsync(timeout, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    public static IResult NotAnswering() =>
        Results.Problem(
            $"the data plane worker did not answer within {QueryTimeout.TotalSeconds:0} s (stopped or stalled); try again",
            statusCode: StatusCodes.Status503ServiceUnavailable,
            title: "The data plane is not answering");

    /// <summary>"tcp", "udp", "icmp", "ipv6-icmp" or the protocol number.</summary>
    public static string ProtocolName(byte protocol) => protocol switch
    {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "ipv6-icmp",
        _ => protocol.ToString(CultureInfo.InvariantCulture),
    };

    public static string StateName(ConntrackState state) => state switch
    {
        ConntrackState.TcpSynSent => "syn_sent",
        ConntrackState.TcpSynRecv => "syn_recv",
        ConntrackState.TcpEstablished => "established",
        ConntrackState.TcpFinWait => "fin_wait",
        ConntrackState.TcpCloseWait => "close_wait",
        ConntrackState.TcpTimeWait => "time_wait",
        ConntrackState.TcpClose => "close",
        ConntrackState.Unreplied => "unreplied",
        ConntrackState.Replied => "replied",
        _ => "none",
    };

    private static readonly ConntrackState[] States =
    [
        ConntrackState.TcpSynSent, ConntrackState.TcpSynRecv, ConntrackState.TcpEstablished, ConntrackState.TcpFinWait,
        ConntrackState.TcpCloseWait, ConntrackState.TcpTimeWait, ConntrackState.TcpClose, ConntrackState.Unreplied, ConntrackState.Replied,
    ];

    /// <summary>GET /api/v1/sessions?page=1&amp;pageSize=100&amp;protocol=tcp&amp;address=10.10.0.11&amp;port=80&amp;state=established</summary>
    private static async Task<IResult> Sessions(
        DataPlaneRuntime dp, TimeProvider time, HttpContext http,
        string? page, string? pageSize, string? protocol, string? address, string? port, string? state)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var pageNumber = ParseInt(page, "page", 1, 1, int.MaxValue, "a page number from 1", errors);
        var size = ParseInt(pageSize, "pageSize", DefaultPageSize, 1, MaxPageSize, $"a page size from 1 to {MaxPageSize}", errors);
        byte? proto = null;
        if (protocol is not null)
        {
            proto = protocol.ToLowerInvariant() switch
            {
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                "ipv6-icmp" or "icmpv6" => 58,
                _ => byte.TryParse(protocol, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null,
            };
            if (proto is null)
            {
                errors["protocol"] = ["tcp, udp, icmp or an IP protocol number 0 to 255"];
            }
        }

        uint? addr = null;
        if (address is not null)
        {
            if (Ipv4Address.TryParse(address, out var a))
            {
                addr = a.Value;
            }
            else
            {
                errors["address"] = ["an IPv4 address (conntrack tracks IPv4 only)"];
            }
        }

        ushort? portNumber = null;
        if (port is not null)
        {
            if (ushort.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var pn))
            {
                portNumber = pn;
            }
            else
            {
                errors["port"] = ["a port from 0 to 65535 (ICMP echo: the identifier)"];
            }
        }

        ConntrackState? stateFilter = null;
        if (state is not null)
        {
            var match = Array.FindIndex(States, s => string.Equals(StateName(s), state, StringComparison.OrdinalIgnoreCase));
            if (match < 0)
            {
                errors["state"] = [$"one of {string.Join(", ", States.Select(StateName))}"];
            }
            else
            {
                stateFilter = States[match];
            }
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The session query is not valid", type: "https://isthmus.invalid/problems/invalid-query");
        }

        var filter = new SessionFilter(proto, addr, portNumber, stateFilter);
        var skip = (int)Math.Min(int.MaxValue, (long)(pageNumber - 1) * size);
        var result = await AskAsync(dp.Worker.Queries, c => LiveState.Sessions(c, filter, skip, size), QueryTimeout, time, http.RequestAborted).ConfigureAwait(false);
        if (result is null)
        {
            return NotAnswering();
        }

        return Results.Ok(new SessionsView(pageNumber, size, result.Matched, result.Live, result.Capacity, [.. result.Items.Select(Session)]));
    }

    public static SessionView Session(SessionRecord s)
    {
        var o = s.Original;
        var r = s.Reply;
        TranslationView? source = null, destination = null;
        if ((s.Flags & FlowFlags.SourceNat) != 0)
        {
            // Replies come back to the translated source: the reply tuple's destination.
            source = new TranslationView(Endpoint(o.Source, o.SourcePort), Endpoint(r.Destination, r.DestinationPort));
        }

        if ((s.Flags & FlowFlags.DestinationNat) != 0)
        {
            // Replies come from the real destination: the reply tuple's source.
            destination = new TranslationView(Endpoint(o.Destination, o.DestinationPort), Endpoint(r.Source, r.SourcePort));
        }

        return new SessionView(
            ProtocolName(o.Protocol), StateName(s.State), Tuple(o), Tuple(r),
            source is null && destination is null ? null : new NatView(source, destination),
            (s.Flags & FlowFlags.Bridged) != 0,
            s.ExpiresInSeconds, s.TimeoutSeconds, Math.Max(0, (long)s.TimeoutSeconds - s.ExpiresInSeconds));
    }

    private static TupleView Tuple(FlowTuple t) =>
        new(new Ipv4Address(t.Source).ToString(), t.SourcePort, new Ipv4Address(t.Destination).ToString(), t.DestinationPort);

    private static EndpointView Endpoint(uint address, ushort port) => new(new Ipv4Address(address).ToString(), port);

    private static async Task<IResult> Neighbors(DataPlaneRuntime dp, TimeProvider time, HttpContext http)
    {
        var result = await AskAsync(dp.Worker.Queries, LiveState.Neighbors, QueryTimeout, time, http.RequestAborted).ConfigureAwait(false);
        if (result is null)
        {
            return NotAnswering();
        }

        var list = result.Entries
            .Select(e => new NeighborView(
                Address(e.Ipv6, e.AddressHi, e.AddressLo),
                e.Ipv6 ? "ipv6" : "ipv4",
                e.State == NeighborState.Reachable ? new MacAddress(e.Mac).ToString() : null,
                e.Domain,
                e.State == NeighborState.Incomplete ? "incomplete" : e.Stale ? "stale" : "reachable",
                e.AgeSeconds,
                e.Probes,
                e.HeldPackets))
            .OrderBy(n => n.Domain, StringComparer.Ordinal).ThenBy(n => n.Family, StringComparer.Ordinal).ThenBy(n => n.Address, StringComparer.Ordinal)
            .ToList();
        return Results.Ok(list);
    }

    private static string Address(bool ipv6, ulong hi, ulong lo) =>
        ipv6 ? new Ipv6Address(hi, lo).ToString() : new Ipv4Address((uint)lo).ToString();

    /// <summary>The FIB of the running snapshot (immutable: read directly, no worker query).</summary>
    public static List<RouteView> Routes(DataPlaneRuntime dp)
    {
        ArgumentNullException.ThrowIfNull(dp);
        var snapshot = dp.Slot.Current;
        var domains = snapshot.Domains;
        string DomainName(int d) => (uint)d < (uint)domains.Length ? domains[d].Name : d.ToString(CultureInfo.InvariantCulture);
        RouteView View(FibEntry e, bool ipv6) => new(
            e.Prefix,
            ipv6 ? "ipv6" : "ipv4",
            e.Kind == RouteKind.Connected ? "connected" : "static",
            e.Kind == RouteKind.Connected ? null : Address(ipv6, e.NextHopHi, e.NextHopLo),
            DomainName(e.Domain));
        return
        [
            .. snapshot.L3.Routes4.OrderByDescending(e => e.Length).ThenBy(e => e.Prefix, StringComparer.Ordinal).Select(e => View(e, false)),
            .. snapshot.L3.Routes6.OrderByDescending(e => e.Length).ThenBy(e => e.Prefix, StringComparer.Ordinal).Select(e => View(e, true)),
        ];
    }

    private static async Task<IResult> Rules(DataPlaneRuntime dp, TimeProvider time, HttpContext http)
    {
        var stats = await AskAsync(dp.Worker.Queries, LiveState.Statistics, QueryTimeout, time, http.RequestAborted).ConfigureAwait(false);
        return stats is null ? NotAnswering() : Results.Ok(RuleViews(stats));
    }

    /// <summary>Every rule of every zone-pair policy, in policy order, with the worker's hit counter.</summary>
    public static List<RuleView> RuleViews(FlowStatistics stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var list = new List<RuleView>();
        foreach (var policy in stats.Firewall.Policies)
        {
            for (var i = 0; i < policy.Rules.Length; i++)
            {
                var rule = policy.Rules[i];
                var hits = (uint)rule.Counter < (uint)stats.RuleHits.Count ? stats.RuleHits[rule.Counter] : 0;
                list.Add(new RuleView(rule.Id, policy.From, policy.To, i, rule.Action.ToString().ToLowerInvariant(), rule.Log, hits));
            }
        }

        return list;
    }

    private static int ParseInt(string? text, string name, int fallback, int min, int max, string message, Dictionary<string, string[]> errors)
    {
        if (text is null)
        {
            return fallback;
        }

        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
        {
            return value;
        }

        errors[name] = [message];
        return fallback;
    }
}
