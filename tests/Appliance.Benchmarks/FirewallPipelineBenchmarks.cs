using BenchmarkDotNet.Attributes;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.Benchmarks;

/// <summary>
/// The whole in-process path for routed traffic, 64-byte frames, batches of 256: port RX → decap →
/// bridge → gateway → conntrack → route → firewall → nat → neighbor → encap → port TX. 256 UDP
/// flows from a VLAN host (acc10) to the Internet via the upstream router on acc20: with the
/// firewall and masquerade, every packet after the first of its flow is a conntrack hit plus the
/// SNAT rewrite; the baseline routes the same frames with no firewall or NAT. From the third batch on
/// every packet takes the established-flow fast path (Firewall/FlowCache.cs); the same worker with
/// the fast path off runs beside it as a reference. Time is frozen (no heartbeat, no aging) so the
/// neighbor entries and sessions stay put.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class FirewallPipelineBenchmarks
{
    private const int Batch = RoutedBench.Batch;
    private static readonly MacAddress Host = MacAddress.Parse("02:00:00:00:10:0a");
    private static readonly MacAddress Upstream = MacAddress.Parse("02:00:00:00:20:fe");

    private DataPlaneWorker _routed = null!;
    private DataPlaneWorker _natted = null!;
    private DataPlaneWorker _nattedSlow = null!;

    [GlobalSetup]
    public void Setup()
    {
        _routed = Worker(withFirewall: false);
        _natted = Worker(withFirewall: true);
        _nattedSlow = Worker(withFirewall: true);
        _nattedSlow.Context.FastPathEnabled = false;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "routed VLAN → upstream, no firewall/NAT, per packet")]
    public int Routed() => _routed.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "routed + conntrack hit + masquerade, per packet")]
    public int RoutedConntrackNat() => _natted.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "the same without the established-flow fast path (reference), per packet")]
    public int RoutedConntrackNatSlowPath() => _nattedSlow.RunOnce();

    [GlobalCleanup]
    public void Cleanup()
    {
        _routed.Dispose();
        _natted.Dispose();
        _nattedSlow.Dispose();
    }

    private static DataPlaneWorker Worker(bool withFirewall)
    {
        var program = RoutedBench.Program() with { Routes = [new RouteSpec { Prefix = "0.0.0.0/0", NextHop = "10.20.0.254" }] };
        if (withFirewall)
        {
            program = program with
            {
                Firewall = new FirewallSpec
                {
                    Zones = [new ZoneSpec { Name = "inside", Domains = ["bd10"] }, new ZoneSpec { Name = "outside", Domains = ["bd20"] }],
                    Policies = [new PolicySpec { From = "inside", To = "outside", Rules = [new RuleSpec { Id = 1, Protocol = "udp" }] }],
                },
                Nat = new NatSpec { Snat = [new SnatRuleSpec { EgressZone = "outside" }] },
            };
        }

        var (worker, ports) = RoutedBench.Worker(program);

        // The host and the upstream router introduce themselves (MAC tables, neighbor cache).
        RoutedBench.Announce(ports[0], Host, "10.10.0.10");
        RoutedBench.Announce(ports[1], Upstream, "10.20.0.254");
        while (worker.RunOnce() > 0)
        {
        }

        RoutedBench.ReplayFlows(ports, 0, new Ipv4FrameSpec(Host, RoutedBench.Gw10, Ipv4Address.Parse("10.10.0.10"), Ipv4Address.Parse("198.51.100.7")));

        // First pass: sessions are created (and checked to leave); the rest are conntrack hits (the
        // second pass teaches each session its forwarding result).
        worker.RunOnce();
        if (ports[1].Counters.TxPackets < Batch)
        {
            throw new InvalidOperationException($"only {ports[1].Counters.TxPackets} of {Batch} frames left on acc20");
        }

        return worker;
    }
}
