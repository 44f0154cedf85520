using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.LoadBalancer;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.Benchmarks;

/// <summary>
/// The flow stages (conntrack → lb → firewall → NAT; lb returns at once without virtual servers) at stage level: a worker context, batches of 256
/// packets of 64 bytes with the L3 metadata the gateway and route stages would set. Each operation
/// rewrites the 256 frames from templates (as a NIC's DMA would) and runs the three stages.
/// Reported per packet (OperationsPerInvoke = 256): 1000 / ns = Mpps.
/// </summary>
internal sealed class FlowBench
{
    public const int Batch = PacketBatch.MaxSize;
    public const int InsideSegment = 0;
    public const int OutsideSegment = 1;

    private readonly PipelineStage[] _stages = [new ConntrackStage(), new LoadBalancerStage(), new FirewallStage(), new NatStage()];
    private readonly byte[][] _templates = new byte[Batch][];
    private readonly PacketBatch _batch = new();
    private readonly int[] _buffers = new int[Batch];

    /// <param name="configure">Adds to the program (the load-balancer benchmarks: gateways and virtual servers).</param>
    public FlowBench(FirewallSpec firewall, NatSpec nat, Func<DataPlaneProgram, DataPlaneProgram>? configure = null)
    {
        var program = new DataPlaneProgram
        {
            Ports =
            [
                new PortSpec("acc10", PortSpecKind.Access, "acc10"),
                new PortSpec("acc20", PortSpecKind.Access, "acc20"),
            ],
            BridgeDomains =
            [
                new BridgeDomainSpec { Name = "bd10", Segments = [new SegmentSpec { Port = "acc10" }] },
                new BridgeDomainSpec { Name = "bd20", Segments = [new SegmentSpec { Port = "acc20" }] },
            ],
            Firewall = firewall,
            Nat = nat,
        };
        program = configure?.Invoke(program) ?? program;
        for (var i = 0; i < _stages.Length; i++)
        {
            _stages[i].Index = (byte)i;
        }

        Pool = new PacketPool(Batch * 2);
        Context = new WorkerContext(Pool, 2, new StageCounters([.. _stages.Select(s => s.DropReasons.Count)]), new PacketTracer(), new MacMoveFeed(), TimeSpan.TicksPerSecond)
        {
            Now = TimeSpan.TicksPerDay,
        };
        Context.Apply(SnapshotCompiler.Compile(program, 1, TimeSpan.TicksPerSecond));
        for (var i = 0; i < Batch; i++)
        {
            _buffers[i] = Pool.Rent();
        }
    }

    public PacketPool Pool { get; }

    public WorkerContext Context { get; }

    public static FirewallSpec Zones(IReadOnlyList<RuleSpec> rules, int maxSessions) => new()
    {
        Zones = [new ZoneSpec { Name = "inside", Domains = ["bd10"] }, new ZoneSpec { Name = "outside", Domains = ["bd20"] }],
        Policies = [new PolicySpec { From = "inside", To = "outside", Rules = rules }],
        Conntrack = new ConntrackSpec { MaxSessions = maxSessions },
    };

    public static NatSpec Snat => new()
    {
        Snat = [new SnatRuleSpec { EgressZone = "outside", Sources = ["10.0.0.0/8"], ToAddresses = ["203.0.113.1", "203.0.113.2"] }],
    };

    /// <summary>A 64-byte frame (60 + FCS): Ethernet, IPv4, TCP, 6 bytes of padding.</summary>
    public static byte[] TcpFrame(uint source, ushort sourcePort, uint destination, ushort destinationPort, TcpFlags flags)
    {
        var frame = new byte[60];
        var spec = new Ipv4FrameSpec(MacAddress.Parse("02:00:00:00:10:0a"), MacAddress.Parse("02:15:7e:00:00:10"), new Ipv4Address(source), new Ipv4Address(destination));
        PacketBuilder.Tcp(frame, spec, sourcePort, destinationPort, flags, 1, 1);
        return frame;
    }

    public void SetTemplate(int i, byte[] frame) => _templates[i] = frame;

    public byte[] Template(int i) => _templates[i];

    /// <summary>One operation: 256 frames in, three stages, verdicts left in the batch.</summary>
    public int Run(int ingressSegment, int ingressDomain, int egressSegment, int egressDomain)
    {
        var batch = _batch;
        batch.Clear();
        var pool = Pool;
        for (var i = 0; i < Batch; i++)
        {
            var template = _templates[i];
            template.CopyTo(pool.Frame(_buffers[i], PacketPool.Headroom, template.Length));
            ref var p = ref batch.Add(_buffers[i], PacketPool.Headroom, template.Length, 0);
            p.IngressSegment = ingressSegment;
            p.IngressDomain = (ushort)ingressDomain;
            p.Domain = (ushort)egressDomain;
            p.EgressSegment = egressSegment;
            p.Flags = PacketFlags.L3Parsed | PacketFlags.Routed | PacketFlags.ToGateway;
            p.L3Offset = EthernetHeader.Length;
            p.L4Offset = EthernetHeader.Length + Ipv4Header.MinLength;
            p.IpProtocol = IpProtocol.Tcp;
        }

        var stages = _stages;
        for (var s = 0; s < stages.Length; s++)
        {
            stages[s].Process(batch, Context);
        }

        return batch.Count;
    }

    public ref PacketMeta Packet(int i) => ref _batch[i];
}

/// <summary>Established flows: conntrack hit, state refresh and the SNAT rewrite (incremental checksums) per packet.</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class FirewallEstablishedBenchmarks
{
    private FlowBench _outbound = null!;
    private FlowBench _inbound = null!;
    private FlowBench _harness = null!;

    [GlobalSetup]
    public void Setup()
    {
        // The same frames with no firewall or NAT configured: the stages return at once, so this
        // is the harness's own cost (frame copy, metadata) to subtract.
        _harness = new FlowBench(new FirewallSpec(), new NatSpec());
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            _harness.SetTemplate(i, FlowBench.TcpFrame(0x0A0A_0000u + (uint)i, (ushort)(40000 + i), 0xC633_6407u, 80, TcpFlags.Ack));
        }

        _outbound = Established(out _);
        _inbound = Established(out var replies);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            _inbound.SetTemplate(i, replies[i]);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = FlowBench.Batch, Description = "harness only (frame copy + metadata), per packet")]
    public int Harness() => _harness.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);

    [Benchmark(OperationsPerInvoke = FlowBench.Batch, Description = "established, original direction (SNAT), per packet")]
    public int Outbound() => _outbound.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);

    [Benchmark(OperationsPerInvoke = FlowBench.Batch, Description = "established, reply direction (un-SNAT), per packet")]
    public int Inbound() => _inbound.Run(FlowBench.OutsideSegment, 1, FlowBench.InsideSegment, 0);

    /// <summary>256 TCP flows opened and established through the stages; returns the reply templates.</summary>
    private static FlowBench Established(out byte[][] replies)
    {
        var bench = new FlowBench(FlowBench.Zones([new RuleSpec { Id = 1 }], 65536), FlowBench.Snat);
        var server = Ipv4Address.Parse("198.51.100.7").Value;
        replies = new byte[FlowBench.Batch][];
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            bench.SetTemplate(i, FlowBench.TcpFrame(0x0A0A_0000u + (uint)i, (ushort)(40000 + i), server, 80, TcpFlags.Syn));
        }

        bench.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            ref var p = ref bench.Packet(i);
            if (p.Disposition != Disposition.Continue)
            {
                throw new InvalidOperationException($"SYN {i} was dropped ({p.DropStage}/{p.DropCode})");
            }

            var sent = bench.Pool.Frame(p.Buffer, p.Offset, p.Length);
            var publicAddress = BinaryPrimitives.ReadUInt32BigEndian(sent[26..]);
            var publicPort = BinaryPrimitives.ReadUInt16BigEndian(sent[34..]);
            replies[i] = FlowBench.TcpFrame(server, 80, publicAddress, publicPort, TcpFlags.Ack);
        }

        var synAcks = new byte[FlowBench.Batch][];
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            synAcks[i] = (byte[])replies[i].Clone();
            synAcks[i][EthernetHeader.Length + Ipv4Header.MinLength + 13] = (byte)(TcpFlags.Syn | TcpFlags.Ack);
            FixTcpChecksum(synAcks[i]);
            bench.SetTemplate(i, synAcks[i]);
        }

        bench.Run(FlowBench.OutsideSegment, 1, FlowBench.InsideSegment, 0);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            bench.SetTemplate(i, FlowBench.TcpFrame(0x0A0A_0000u + (uint)i, (ushort)(40000 + i), server, 80, TcpFlags.Ack));
        }

        bench.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            if (bench.Context.Flows.Table![bench.Packet(i).Flow].State != ConntrackState.TcpEstablished)
            {
                throw new InvalidOperationException($"flow {i} is not established");
            }
        }

        return bench;
    }

    internal static void FixTcpChecksum(byte[] frame)
    {
        var ip = new Ipv4Header(frame.AsSpan(EthernetHeader.Length));
        var segment = ip.Payload;
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], 0);
        var pseudo = Checksum.PseudoHeaderSum(ip.Source, ip.Destination, IpProtocol.Tcp, (ushort)segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], Checksum.Finish(Checksum.Add(segment, pseudo)));
    }
}

/// <summary>
/// New flows with 10,000 rules in the zone pair's policy (none matching, the last allowing: the
/// classifier's worst case, every tuple probed): conntrack miss, classification, SNAT port
/// allocation and commit, per flow. Each operation first removes the previous operation's 256
/// sessions, so the table stays at a steady size and the ports come back: that removal is counted too.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class FirewallNewFlowBenchmarks
{
    private FlowBench _bench = null!;
    private uint _next;
    private uint _server;

    [Params(10_000)]
    public int Rules { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var rules = new List<RuleSpec>(Rules + 1);
        int[] sourceLengths = [16, 24, 32];
        for (var i = 0; i < Rules - 1; i++)
        {
            var length = sourceLengths[random.Next(sourceLengths.Length)];
            var source = (0x0B00_0000u | (uint)random.Next(0, 1 << 24)) & Mask(length);
            var destination = 0xC633_0000u | (uint)random.Next(0, 1 << 16);
            rules.Add(new RuleSpec
            {
                Id = i + 1,
                Sources = [$"{new Ipv4Address(source)}/{length}"],
                Destinations = [new Ipv4Address(destination).ToString()],
                Protocol = random.Next(2) == 0 ? "tcp" : "udp",
                DestinationPorts = [random.Next(4) == 0 ? $"{random.Next(1, 30000)}-{random.Next(30000, 65535)}" : random.Next(1, 65535).ToString(System.Globalization.CultureInfo.InvariantCulture)],
                Action = random.Next(3) == 0 ? FirewallAction.Drop : FirewallAction.Allow,
            });
        }

        rules.Add(new RuleSpec { Id = Rules, Sources = ["10.0.0.0/8"], Protocol = "tcp" });
        _bench = new FlowBench(FlowBench.Zones(rules, 1 << 20), FlowBench.Snat);
        var tables = _bench.Context.Snapshot.Firewall;
        Console.WriteLine($"// classifier: {tables.Policies[0].Classifier.TupleCount} tuples for {tables.Policies[0].Classifier.RuleAtomCount} rule atoms");
        _server = Ipv4Address.Parse("198.51.100.7").Value;
        Refill();
    }

    [Benchmark(OperationsPerInvoke = FlowBench.Batch, Description = "new flow: miss, classify (10k rules), SNAT, commit; per flow")]
    public int NewFlows()
    {
        var table = _bench.Context.Flows.Table!;
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            ref var p = ref _bench.Packet(i);
            if (p.Disposition == Disposition.Continue && p.Flow >= 0)
            {
                table.Remove(p.Flow);
            }
        }

        Refill();
        return _bench.Run(FlowBench.InsideSegment, 0, FlowBench.OutsideSegment, 1);
    }

    private void Refill()
    {
        // Fresh tuples every operation: sources walk 10.0.0.0/8 with ephemeral-looking source ports.
        for (var i = 0; i < FlowBench.Batch; i++)
        {
            var n = _next++;
            var template = _bench.Template(i) ?? FlowBench.TcpFrame(0x0A00_0001u, 1024, _server, 80, TcpFlags.Syn);
            var ip = new Ipv4Header(template.AsSpan(EthernetHeader.Length));
            var source = 0x0A00_0000u | (n & 0x00FF_FFFF);
            var oldSource = ip.Source.Value;
            ip.RewriteSource(new Ipv4Address(source));
            var tcp = new TcpHeader(ip.Payload);
            tcp.UpdateChecksum(oldSource, source);
            var port = (ushort)(32768 + ((n * 40503u) & 0x3FFF));
            tcp.UpdateChecksum(tcp.SourcePort, port);
            tcp.SourcePort = port;
            _bench.SetTemplate(i, template);
        }
    }

    private static uint Mask(int length) => length == 0 ? 0 : ~(0xFFFF_FFFFu >> length);
}

/// <summary>
/// Conntrack memory at 1M sessions: the managed heap before and after creating a 1M-session table
/// and filling it through <see cref="ConntrackTable.Insert"/> (printed), and the time to fill it.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 3, invocationCount: 1)]
public class FirewallConntrackMemoryBenchmarks
{
    private const int Sessions = 1 << 20;
    private ConntrackTable? _table;

    [GlobalSetup]
    public void Report()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var table = Fill();
        var after = GC.GetTotalMemory(forceFullCollection: true);
        Console.WriteLine($"// conntrack: {table.Count} sessions, heap +{after - before} B = {(after - before) / (double)table.Count:F1} B/session; arrays {table.AllocatedBytes / (double)table.Count:F1} B/session");
        _table = table;
    }

    [IterationSetup]
    public void Drop() => _table = null;

    [Benchmark(Description = "fill 1M sessions (both keys, SNAT tuples)")]
    public int FillMillion()
    {
        _table = Fill();
        return _table.Count;
    }

    private static ConntrackTable Fill()
    {
        var table = new ConntrackTable(Sessions);
        for (var i = 0u; i < Sessions; i++)
        {
            var original = new FlowTuple(0x0A00_0000u + i, 0xC633_6407u, (ushort)(i * 7), 443, 6);
            var reply = new FlowTuple(0xC633_6407u, 0xCB00_7101u + (i >> 16), 443, (ushort)(1024 + (i & 0xFFFF)), 6);
            table.Insert(original, reply, ConntrackState.TcpEstablished, FlowFlags.SourceNat, 1000);
        }

        return table;
    }
}
