using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.Benchmarks;

/// <summary>
/// The load balancer's path for established flows, in process, 64-byte frames, batches of 256: port RX →
/// decap → bridge → gateway → conntrack (hit: DNAT back to the chosen backend) → lb (skipped: not a new
/// flow) → route → firewall → nat (full NAT: the SNAT half) → neighbor → encap → port TX. 256 UDP flows
/// from a client on acc20 to the VIP 10.20.0.100:53, three backends on acc10. References in the same run:
/// the same frames routed straight to a backend with no conntrack (baseline), and through a plain DNAT
/// port forward (the path the balancer reuses). Time is frozen (no heartbeat, no aging).
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class LoadBalancerBenchmarks
{
    private const int Batch = RoutedBench.Batch;
    private static readonly MacAddress Client = MacAddress.Parse("02:00:00:00:20:0a");
    private static readonly string[] Backends = ["10.10.0.11", "10.10.0.12", "10.10.0.13"];

    private DataPlaneWorker _routed = null!;
    private DataPlaneWorker _dnat = null!;
    private DataPlaneWorker _fullNat = null!;
    private DataPlaneWorker _fullNatSlow = null!;
    private DataPlaneWorker _dnatOnly = null!;

    [GlobalSetup]
    public void Setup()
    {
        _routed = Worker(Mode.Routed);
        _dnat = Worker(Mode.PortForward);
        _fullNat = Worker(Mode.FullNat);
        _fullNatSlow = Worker(Mode.FullNat);
        _fullNatSlow.Context.FastPathEnabled = false;
        _dnatOnly = Worker(Mode.DnatOnly);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "routed client → backend, no conntrack, per packet")]
    public int Routed() => _routed.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "DNAT port forward, established, per packet")]
    public int PortForward() => _dnat.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "LB VIP full NAT (Maglev), established, per packet")]
    public int VipFullNat() => _fullNat.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "LB VIP full NAT without the established-flow fast path (reference), per packet")]
    public int VipFullNatSlowPath() => _fullNatSlow.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "LB VIP DNAT-only (Maglev), established, per packet")]
    public int VipDnatOnly() => _dnatOnly.RunOnce();

    [GlobalCleanup]
    public void Cleanup()
    {
        _routed.Dispose();
        _dnat.Dispose();
        _fullNat.Dispose();
        _fullNatSlow.Dispose();
        _dnatOnly.Dispose();
    }

    private enum Mode
    {
        Routed,
        PortForward,
        FullNat,
        DnatOnly,
    }

    private static DataPlaneWorker Worker(Mode mode)
    {
        var program = RoutedBench.Program();
        program = mode switch
        {
            Mode.PortForward => program with { Nat = new NatSpec { Dnat = [new DnatRuleSpec { Destination = "10.20.0.100", Protocol = "udp", Port = 53, ToAddress = Backends[0], Hairpin = false }] } },
            Mode.FullNat or Mode.DnatOnly => program with
            {
                LoadBalancer = new LoadBalancerSpec
                {
                    VirtualServers = [new VirtualServerSpec { Name = "dns", Address = "10.20.0.100", Protocol = "udp", Ports = "53", Pool = "dns", Mode = mode == Mode.FullNat ? "full-nat" : "dnat-only" }],
                    Pools = [new PoolSpec { Name = "dns", Backends = [.. Backends.Select(b => new BackendSpec { Address = b, Port = 53 })] }],
                },
            },
            _ => program,
        };

        var (worker, ports) = RoutedBench.Worker(program);

        // The backends and the client introduce themselves (MAC tables, neighbor cache).
        for (var i = 0; i < Backends.Length; i++)
        {
            RoutedBench.Announce(ports[0], MacAddress.Parse($"02:00:00:00:10:{11 + i:x2}"), Backends[i]);
        }

        RoutedBench.Announce(ports[1], Client, "10.20.0.10");
        while (worker.RunOnce() > 0)
        {
        }

        var destination = Ipv4Address.Parse(mode == Mode.Routed ? Backends[0] : "10.20.0.100");
        RoutedBench.ReplayFlows(ports, 1, new Ipv4FrameSpec(Client, RoutedBench.Gw20, Ipv4Address.Parse("10.20.0.10"), destination));

        // First pass: the balancer picks a backend per flow and NAT commits the sessions; from then on
        // every packet is a conntrack hit.
        worker.RunOnce();
        worker.RunOnce();
        if (ports[0].Counters.TxPackets < 2 * Batch)
        {
            throw new InvalidOperationException($"only {ports[0].Counters.TxPackets} of {2 * Batch} frames left on acc10 ({mode})");
        }

        if (mode is Mode.FullNat or Mode.DnatOnly && worker.Context.Flows.Balancer.Counters.Active.Sum() != Batch)
        {
            throw new InvalidOperationException($"{worker.Context.Flows.Balancer.Counters.Active.Sum()} balanced sessions, expected {Batch}");
        }

        return worker;
    }
}

/// <summary>
/// The flow stages for established flows through a VIP at stage level (FlowBench: conntrack → lb →
/// firewall → nat, 256 TCP flows, frames rewritten from templates each operation): the client's
/// packets (conntrack hit, DNAT to the backend, full-NAT source rewrite) and the backend's replies
/// (un-SNAT, un-DNAT). The harness baseline is the same frames with nothing configured.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class LoadBalancerEstablishedBenchmarks
{
    private const uint Vip = 0x0A14_0064; // 10.20.0.100
    private FlowBench _harness = null!;
    private FlowBench _client = null!;
    private FlowBench _backend = null!;

    [GlobalSetup]
    public void Setup()
    {
        _harness = new FlowBench(new FirewallSpec(), new NatSpec());
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            _harness.SetTemplate(i, FlowBench.TcpFrame(Client(i), (ushort)(40000 + i), Vip, 80, TcpFlags.Ack));
        }

        _client = Established(out _);
        _backend = Established(out var replies);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            _backend.SetTemplate(i, replies[i]);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = FlowBench.Batch, Description = "harness only (frame copy + metadata), per packet")]
    public int Harness() => _harness.Run(FlowBench.OutsideSegment, 1, FlowBench.InsideSegment, 0);

    [Benchmark(OperationsPerInvoke = FlowBench.Batch, Description = "VIP full NAT, established, client → backend, per packet")]
    public int ClientToBackend() => _client.Run(FlowBench.OutsideSegment, 1, FlowBench.InsideSegment, 0);

    [Benchmark(OperationsPerInvoke = FlowBench.Batch, Description = "VIP full NAT, established, backend → client, per packet")]
    public int BackendToClient() => _backend.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);

    private static uint Client(int i) => 0xC633_6400u + (uint)i; // 198.51.100.x

    /// <summary>256 TCP flows to the VIP, handshaken through the stages; returns the backends' ACK templates.</summary>
    private static FlowBench Established(out byte[][] replies)
    {
        var bench = new FlowBench(new FirewallSpec(), new NatSpec(), program => program with
        {
            Gateways =
            [
                new GatewaySpec { Domain = "bd10", Addresses = ["10.10.0.1/24"] },
                new GatewaySpec { Domain = "bd20", Addresses = ["10.20.0.1/24"] },
            ],
            LoadBalancer = new LoadBalancerSpec
            {
                VirtualServers = [new VirtualServerSpec { Name = "web", Address = "10.20.0.100", Ports = "80", Pool = "web" }],
                Pools = [new PoolSpec { Name = "web", Backends = [new BackendSpec { Address = "10.10.0.11", Port = 8080 }, new BackendSpec { Address = "10.10.0.12", Port = 8080 }, new BackendSpec { Address = "10.10.0.13", Port = 8080 }] }],
            },
        });
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            bench.SetTemplate(i, FlowBench.TcpFrame(Client(i), (ushort)(40000 + i), Vip, 80, TcpFlags.Syn));
        }

        bench.Run(FlowBench.OutsideSegment, 1, FlowBench.InsideSegment, 0);
        replies = new byte[FlowBench.Batch][];
        var synAcks = new byte[FlowBench.Batch][];
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            ref var p = ref bench.Packet(i);
            if (p.Disposition != Disposition.Continue)
            {
                throw new InvalidOperationException($"SYN {i} was dropped ({p.DropStage}/{p.DropCode})");
            }

            var sent = bench.Pool.Frame(p.Buffer, p.Offset, p.Length);
            var source = BinaryPrimitives.ReadUInt32BigEndian(sent[26..]);
            var backend = BinaryPrimitives.ReadUInt32BigEndian(sent[30..]);
            var sourcePort = BinaryPrimitives.ReadUInt16BigEndian(sent[34..]);
            replies[i] = FlowBench.TcpFrame(backend, 8080, source, sourcePort, TcpFlags.Ack);
            synAcks[i] = FlowBench.TcpFrame(backend, 8080, source, sourcePort, TcpFlags.Syn | TcpFlags.Ack);
            bench.SetTemplate(i, synAcks[i]);
        }

        bench.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            bench.SetTemplate(i, FlowBench.TcpFrame(Client(i), (ushort)(40000 + i), Vip, 80, TcpFlags.Ack));
        }

        bench.Run(FlowBench.OutsideSegment, 1, FlowBench.InsideSegment, 0);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            ref var p = ref bench.Packet(i);
            if (p.Disposition != Disposition.Continue || bench.Context.Flows.Table![p.Flow].State != ConntrackState.TcpEstablished)
            {
                throw new InvalidOperationException($"flow {i} is not established");
            }
        }

        return bench;
    }
}
