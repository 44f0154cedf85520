using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.LoadBalancer;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Firewall;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Firewall.FlowFixture;

namespace Isthmus.DataPlane.Tests.LoadBalancer;

/// <summary>
/// The lb stage between conntrack and NAT (FlowFixture: bd10 "inside" holds the backends, bd20
/// "outside" the clients; the VIP 203.0.113.10 lives outside). Time is virtual.
/// </summary>
public class LoadBalancerStageTests
{
    private const string Vip = "203.0.113.10";
    private const string Client = "198.51.100.7";
    private const string Gateway10 = "10.10.0.1";
    private static readonly string[] Web = ["10.10.0.21", "10.10.0.22", "10.10.0.23"];

    private static readonly IReadOnlyList<GatewaySpec> Gateways =
    [
        new GatewaySpec { Domain = "bd10", Addresses = ["10.10.0.1/24"] },
        new GatewaySpec { Domain = "bd20", Addresses = ["203.0.113.1/24"] },
    ];

    /// <summary>Outside may open TCP/UDP to the inside web servers (the destination after the balancer's DNAT).</summary>
    private static FirewallSpec Firewall => DefaultFirewall with
    {
        Policies =
        [
            .. DefaultFirewall.Policies,
            new PolicySpec { From = "outside", To = "inside", Rules = [new RuleSpec { Id = 10, Destinations = ["10.10.0.0/24"] }] },
        ],
    };

    public static LoadBalancerSpec Spec(
        string algorithm = "maglev", string mode = "full-nat", int persistence = 0, int[]? weights = null, bool drainSecond = false, int drainTimeout = 300, string ports = "80", int? backendPort = 8080) => new()
    {
        VirtualServers =
        [
            new VirtualServerSpec { Name = "web", Address = Vip, Ports = ports, Pool = "web", Mode = mode, Algorithm = algorithm, PersistenceSeconds = persistence },
        ],
        Pools =
        [
            new PoolSpec
            {
                Name = "web",
                DrainTimeoutSeconds = drainTimeout,
                Backends = [.. Web.Select((a, i) => new BackendSpec { Address = a, Port = backendPort, Weight = weights?[i] ?? 1, Drain = drainSecond && i == 1 })],
            },
        ],
    };

    private static FlowFixture Fixture(LoadBalancerSpec spec) => new(Firewall, gateways: Gateways, loadBalancer: spec);

    private static FlowResult Syn(FlowFixture f, ushort clientPort, string client = Client, bool traced = false) =>
        f.Run(Tcp(client, clientPort, Vip, 80, TcpFlags.Syn), OutsideSegment, OutsideDomain, InsideSegment, InsideDomain, traced);

    private static FlowResult FromClient(FlowFixture f, ushort clientPort, TcpFlags flags, string client = Client) =>
        f.Inbound(Tcp(client, clientPort, Vip, 80, flags));

    [Fact]
    public void Full_nat_sends_a_new_flow_to_a_backend_from_the_appliances_address_and_translates_replies_back()
    {
        using var f = Fixture(Spec());
        var syn = Syn(f, 40000);
        Assert.True(syn.Passed, syn.Drop);
        Assert.Contains(syn.Destination.ToString(), Web);
        Assert.Equal(8080, syn.DestinationPort);
        Assert.Equal(Gateway10, syn.Source.ToString());
        AssertChecksums(syn.Frame);

        var synAck = f.Outbound(Tcp(syn.Destination.ToString(), 8080, Gateway10, syn.SourcePort, TcpFlags.Syn | TcpFlags.Ack));
        Assert.True(synAck.Passed, synAck.Drop);
        Assert.Equal(Vip, synAck.Source.ToString());
        Assert.Equal(80, synAck.SourcePort);
        Assert.Equal(Client, synAck.Destination.ToString());
        Assert.Equal(40000, synAck.DestinationPort);
        AssertChecksums(synAck.Frame);

        var ack = FromClient(f, 40000, TcpFlags.Ack);
        Assert.Equal(syn.Destination, ack.Destination);
        Assert.Equal(syn.SourcePort, ack.SourcePort);

        var counters = f.Flows.Balancer.Counters;
        Assert.Equal(1, counters.Active.Sum());
        Assert.Equal(1, counters.Flows.Sum());
    }

    [Fact]
    public void Dnat_only_keeps_the_clients_source()
    {
        using var f = Fixture(Spec(mode: "dnat-only"));
        var syn = Syn(f, 40001);
        Assert.True(syn.Passed, syn.Drop);
        Assert.Equal(Client, syn.Source.ToString());
        Assert.Equal(40001, syn.SourcePort);
        Assert.Contains(syn.Destination.ToString(), Web);
        AssertChecksums(syn.Frame);

        var synAck = f.Outbound(Tcp(syn.Destination.ToString(), 8080, Client, 40001, TcpFlags.Syn | TcpFlags.Ack));
        Assert.True(synAck.Passed, synAck.Drop);
        Assert.Equal(Vip, synAck.Source.ToString());
        Assert.Equal(80, synAck.SourcePort);
        AssertChecksums(synAck.Frame);
    }

    [Fact]
    public void Maglev_sends_a_5_tuple_to_the_same_backend_on_independent_appliances_and_traces_the_slot()
    {
        using var a = Fixture(Spec());
        using var b = Fixture(Spec(weights: [1, 1, 1]));
        var seen = new HashSet<string>();
        for (ushort port = 41000; port < 41060; port++)
        {
            var ra = Syn(a, port);
            var rb = Syn(b, port);
            Assert.Equal(ra.Destination, rb.Destination);
            seen.Add(ra.Destination.ToString());
        }

        Assert.Equal(3, seen.Count);
        var traced = Syn(a, 42000, traced: true);
        var entry = Assert.Single(a.Context.Tracer.Entries(traced.Meta.TraceId), e => e.Stage == "lb");
        Assert.Equal("vip", entry.Verdict);
        Assert.Contains("maglev hash slot", entry.Detail, StringComparison.Ordinal);
        Assert.Contains($"{traced.Destination}:8080", entry.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Weighted_round_robin_spreads_new_flows_exactly_by_weight()
    {
        using var f = Fixture(Spec(algorithm: "wrr", weights: [3, 1, 1]));
        var counts = Web.ToDictionary(w => w, _ => 0);
        for (ushort port = 0; port < 50; port++)
        {
            counts[Syn(f, (ushort)(43000 + port)).Destination.ToString()]++;
        }

        Assert.Equal(30, counts[Web[0]]);
        Assert.Equal(10, counts[Web[1]]);
        Assert.Equal(10, counts[Web[2]]);
    }

    [Fact]
    public void Least_connections_picks_the_backend_with_fewest_live_sessions_and_counts_drop_when_sessions_end()
    {
        using var f = Fixture(Spec(algorithm: "least-conn"));
        var first = new[] { Syn(f, 44000), Syn(f, 44001), Syn(f, 44002) };
        Assert.Equal(3, first.Select(r => r.Destination).Distinct().Count());

        // Close the flow on the first backend with a reset: its count drops, so it is the least loaded.
        var closed = first[1];
        FromClient(f, 44001, TcpFlags.Rst);
        f.Advance(TimeSpan.FromSeconds(11));
        var counters = f.Flows.Balancer.Counters;
        Assert.Equal(2, counters.Active.Sum());

        var next = Syn(f, 44003);
        Assert.Equal(closed.Destination, next.Destination);
        var traced = Syn(f, 44004, traced: true);
        var entry = Assert.Single(f.Context.Tracer.Entries(traced.Meta.TraceId), e => e.Stage == "lb");
        Assert.Contains("least-conn", entry.Detail, StringComparison.Ordinal);
        Assert.Contains("1 active", entry.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Source_ip_persistence_keeps_a_client_on_its_backend_until_the_timeout()
    {
        using var f = Fixture(Spec(algorithm: "wrr", persistence: 60));
        var first = Syn(f, 45000);
        for (ushort port = 45001; port < 45010; port++)
        {
            Assert.Equal(first.Destination, Syn(f, port).Destination);
        }

        // Another client is not persisted to it: round robin moves on.
        Assert.NotEqual(first.Destination, Syn(f, 45100, client: "198.51.100.8").Destination);
        var traced = Syn(f, 45011, traced: true);
        Assert.Contains("persistence hit", Assert.Single(f.Context.Tracer.Entries(traced.Meta.TraceId), e => e.Stage == "lb").Detail, StringComparison.Ordinal);

        f.Advance(TimeSpan.FromSeconds(61));
        var spread = new HashSet<Ipv4Address>();
        for (ushort port = 45200; port < 45203; port++)
        {
            // Each new flow refreshes the entry, so only the first after the timeout is free to move.
            spread.Add(Syn(f, port, client: $"198.51.100.{port - 45100}").Destination);
        }

        Assert.Equal(3, spread.Count);
    }

    [Fact]
    public void Established_flows_stay_on_their_backend_when_the_pool_changes()
    {
        using var f = Fixture(Spec());
        var flows = new List<(ushort Port, FlowResult Syn)>();
        for (ushort port = 46000; port < 46030; port++)
        {
            flows.Add((port, Syn(f, port)));
        }

        // A new pool: the first web server removed, a fourth added, the second down by health.
        var spec = Spec() with
        {
            Pools =
            [
                new PoolSpec
                {
                    Name = "web",
                    Backends = [new BackendSpec { Address = Web[1], Port = 8080 }, new BackendSpec { Address = Web[2], Port = 8080 }, new BackendSpec { Address = "10.10.0.24", Port = 8080 }],
                },
            ],
        };
        var changed = SnapshotCompiler.Compile(f.Program with { LoadBalancer = spec }, 2, f.Time.TimestampFrequency);
        f.Apply(SnapshotCompiler.WithBackendHealth(changed, new HashSet<string> { $"web/{Web[1]}:8080" }));

        foreach (var (port, syn) in flows)
        {
            var ack = FromClient(f, port, TcpFlags.Ack);
            Assert.True(ack.Passed, ack.Drop);
            Assert.Equal(syn.Destination, ack.Destination);
        }

        // New flows only go to the eligible backends.
        for (ushort port = 47000; port < 47030; port++)
        {
            Assert.Contains(Syn(f, port).Destination.ToString(), new[] { Web[2], "10.10.0.24" });
        }
    }

    [Fact]
    public void A_draining_backend_gets_no_new_flows_and_its_flows_are_cut_at_the_deadline()
    {
        using var f = Fixture(Spec(algorithm: "wrr"));
        // Round robin: the second of three new flows (client port 48001) goes to the second backend.
        Assert.Equal(Web[1], Enumerable.Range(0, 3).Select(k => Syn(f, (ushort)(48000 + k))).ToList()[1].Destination.ToString());

        var drained = SnapshotCompiler.Compile(f.Program with { LoadBalancer = Spec(algorithm: "wrr", drainSecond: true, drainTimeout: 30) }, 2, f.Time.TimestampFrequency);
        f.Apply(drained);
        for (ushort p = 48100; p < 48120; p++)
        {
            Assert.NotEqual(Web[1], Syn(f, p).Destination.ToString());
        }

        // The existing flow keeps its backend while the deadline has not passed.
        f.Advance(TimeSpan.FromSeconds(1));
        var ack = FromClient(f, 48001, TcpFlags.Ack);
        Assert.Equal(Web[1], ack.Destination.ToString());
        var second = Array.FindIndex(f.Flows.Balancer.Tables.Backends, b => b.ToString() == $"{Web[1]}:8080");
        Assert.Equal(1, f.Flows.Balancer.Counters.Active[second]);

        for (var s = 0; s < 31; s++)
        {
            f.Advance(TimeSpan.FromSeconds(1));
        }

        var counters = f.Flows.Balancer.Counters;
        Assert.Equal(0, counters.Active[second]);
        Assert.Equal(1, counters.Cut[second]);

        // The cut session is gone: a later segment of it is a stray (INVALID), not forwarded to the backend.
        var stray = FromClient(f, 48001, TcpFlags.Ack);
        Assert.False(stray.Passed);
    }

    [Fact]
    public void A_vip_whose_backends_are_all_down_drops_new_flows_as_no_backend()
    {
        using var f = Fixture(Spec());
        var down = SnapshotCompiler.WithBackendHealth(
            SnapshotCompiler.Compile(f.Program, 2, f.Time.TimestampFrequency),
            Web.Select(w => $"web/{w}:8080").ToHashSet());
        Assert.True(down.LoadBalancer.Servers[0].Down);
        f.Apply(down);
        var r = Syn(f, 49000, traced: true);
        Assert.Equal("lb.NoBackend", r.Drop);
        Assert.Contains(f.Context.Tracer.Entries(r.Meta.TraceId), e => e.Stage == "lb" && e.Verdict == "vip down");
    }

    [Fact]
    public void A_port_range_vip_keeps_the_clients_port_for_backends_without_one()
    {
        using var f = Fixture(Spec(ports: "8000-8099", backendPort: null));
        var r = f.Run(Tcp(Client, 40000, Vip, 8042, TcpFlags.Syn), OutsideSegment, OutsideDomain, InsideSegment, InsideDomain);
        Assert.True(r.Passed, r.Drop);
        Assert.Equal(8042, r.DestinationPort);
        Assert.Contains(r.Destination.ToString(), Web);
        Assert.False(f.Run(Tcp(Client, 40000, Vip, 8100, TcpFlags.Syn), OutsideSegment, OutsideDomain, InsideSegment, InsideDomain).Passed);
    }

    [Fact]
    public void Udp_flows_are_balanced_and_sessions_give_their_counts_back_on_timeout()
    {
        var spec = Spec() with { VirtualServers = [Spec().VirtualServers[0] with { Protocol = "udp", Ports = "53" }] };
        using var f = Fixture(spec);
        var r = f.Run(Udp(Client, 5353, Vip, 53), OutsideSegment, OutsideDomain, InsideSegment, InsideDomain);
        Assert.True(r.Passed, r.Drop);
        Assert.Contains(r.Destination.ToString(), Web);
        AssertChecksums(r.Frame);
        Assert.Equal(1, f.Flows.Balancer.Counters.Active.Sum());
        for (var s = 0; s < 31 + 8; s++)
        {
            f.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(0, f.Flows.Balancer.Counters.Active.Sum());
    }
}
