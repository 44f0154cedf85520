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
/// SNAT rewrite; the baseline routes the same frames with no firewall or NAT. Time is frozen (no
/// heartbeat, no aging) so the neighbor entries and sessions stay put.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class FirewallPipelineBenchmarks
{
    private const int Batch = PacketBatch.MaxSize;
    private static readonly MacAddress Host = MacAddress.Parse("02:00:00:00:10:0a");
    private static readonly MacAddress Upstream = MacAddress.Parse("02:00:00:00:20:fe");
    private static readonly MacAddress Gw10 = MacAddress.Parse("02:15:7e:00:00:10");

    private DataPlaneWorker _routed = null!;
    private DataPlaneWorker _natted = null!;

    [GlobalSetup]
    public void Setup()
    {
        _routed = Worker(withFirewall: false);
        _natted = Worker(withFirewall: true);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "routed VLAN → upstream, no firewall/NAT, per packet")]
    public int Routed() => _routed.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "routed + conntrack hit + masquerade, per packet")]
    public int RoutedConntrackNat() => _natted.RunOnce();

    [GlobalCleanup]
    public void Cleanup()
    {
        _routed.Dispose();
        _natted.Dispose();
    }

    private static DataPlaneWorker Worker(bool withFirewall)
    {
        var program = new DataPlaneProgram
        {
            Ports = [new PortSpec("acc10", PortSpecKind.Access, "acc10"), new PortSpec("acc20", PortSpecKind.Access, "acc20")],
            BridgeDomains =
            [
                new BridgeDomainSpec { Name = "bd10", Segments = [new SegmentSpec { Port = "acc10" }] },
                new BridgeDomainSpec { Name = "bd20", Segments = [new SegmentSpec { Port = "acc20" }] },
            ],
            Gateways =
            [
                new GatewaySpec { Domain = "bd10", Mac = Gw10.ToString(), Addresses = ["10.10.0.1/24"] },
                new GatewaySpec { Domain = "bd20", Mac = "02:15:7e:00:00:20", Addresses = ["10.20.0.1/24"] },
            ],
            Routes = [new RouteSpec { Prefix = "0.0.0.0/0", NextHop = "10.20.0.254" }],
        };
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

        var ports = new[] { new MemoryPort("acc10", PortKind.Access), new MemoryPort("acc20", PortKind.Access) };
        var time = new FrozenTime();
        var slot = new SnapshotSlot(SnapshotCompiler.Compile(program, 1, time.TimestampFrequency));
        var worker = new DataPlaneWorker(ports, slot, PacketPipeline.CreateDefault(), time, poolSize: 4096);

        // The host and the upstream router introduce themselves (MAC tables, neighbor cache).
        var garp = new byte[64];
        ports[0].Enqueue(garp[..PacketBuilder.GarpRequest(garp, Host, Ipv4Address.Parse("10.10.0.10"))]);
        garp = new byte[64];
        ports[1].Enqueue(garp[..PacketBuilder.GarpRequest(garp, Upstream, Ipv4Address.Parse("10.20.0.254"))]);
        while (worker.RunOnce() > 0)
        {
        }

        var frames = new List<MemoryFrame>(Batch);
        for (var i = 0; i < Batch; i++)
        {
            var frame = new byte[64];
            var spec = new Ipv4FrameSpec(Host, Gw10, Ipv4Address.Parse("10.10.0.10"), Ipv4Address.Parse("198.51.100.7"));
            var length = PacketBuilder.Udp(frame, spec, (ushort)(40000 + i), 53, new byte[64 - 42 - 4]);
            frames.Add(new MemoryFrame(frame[..Math.Max(length, 60)]));
        }

        foreach (var port in ports)
        {
            port.Transmitted.Clear();
            port.CaptureTransmitted = false;
        }

        ports[0].Replay(frames);

        // First pass: sessions are created (and checked to leave); the rest are conntrack hits.
        worker.RunOnce();
        if (ports[1].Counters.TxPackets < Batch)
        {
            throw new InvalidOperationException($"only {ports[1].Counters.TxPackets} of {Batch} frames left on acc20");
        }

        return worker;
    }

    private sealed class FrozenTime : TimeProvider
    {
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => TimeSpan.TicksPerDay;
    }
}
