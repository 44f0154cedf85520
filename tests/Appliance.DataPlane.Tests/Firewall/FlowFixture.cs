using System.Buffers.Binary;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.LoadBalancer;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Firewall;

/// <summary>What left the flow stages: the verdict, the metadata and the frame as rewritten.</summary>
public sealed record FlowResult(PacketMeta Meta, byte[] Frame, string? Drop)
{
    public bool Passed => Meta.Disposition == Disposition.Continue;

    public Ipv4Address Source => Ipv4Address.Read(Frame.AsSpan(26));

    public Ipv4Address Destination => Ipv4Address.Read(Frame.AsSpan(30));

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(Frame.AsSpan(34));

    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(Frame.AsSpan(36));

    /// <summary>ICMP echo identifier.</summary>
    public ushort IcmpId => BinaryPrimitives.ReadUInt16BigEndian(Frame.AsSpan(38));
}

/// <summary>
/// The flow stages (conntrack → firewall → NAT) on a worker context, without the gateway and route
/// stages (plus lb, a no-op without virtual servers): each packet is given the L3 metadata those stages would set (ingress segment and domain,
/// egress domain and segment, routed). The lab's topology: bd10 "inside" (acc10 = segment 0,
/// 10.10.0.0/24), bd20 "outside" (acc20 = segment 3, the Internet side). Time is virtual.
/// </summary>
public sealed class FlowFixture : IDisposable
{
    public const int InsideSegment = 0;
    public const int InsideDomain = 0;
    public const int OutsideSegment = 3;
    public const int OutsideDomain = 1;

    public static readonly MacAddress HostMac = MacAddress.Parse("02:00:00:00:10:0a");
    public static readonly MacAddress GatewayMac = MacAddress.Parse("02:15:7e:00:00:10");
    public static readonly MacAddress RouterMac = MacAddress.Parse("02:00:00:00:20:01");
    public static readonly MacAddress OutsideGatewayMac = MacAddress.Parse("02:15:7e:00:00:20");

    private readonly PipelineStage[] _stages = [new ConntrackStage(), new LoadBalancerStage(), new FirewallStage(), new NatStage()];

    public FlowFixture(FirewallSpec? firewall = null, NatSpec? nat = null, IReadOnlyList<GatewaySpec>? gateways = null, LoadBalancerSpec? loadBalancer = null)
    {
        Program = L2Fixture.LabProgram() with
        {
            Firewall = firewall ?? DefaultFirewall,
            Nat = nat ?? new NatSpec(),
            Gateways = gateways ?? [],
            LoadBalancer = loadBalancer ?? new LoadBalancerSpec(),
        };
        for (var i = 0; i < _stages.Length; i++)
        {
            _stages[i].Index = (byte)i;
        }

        Pool = new PacketPool(1024);
        Context = new WorkerContext(Pool, 4, new StageCounters([.. _stages.Select(s => s.DropReasons.Count)]), new PacketTracer(), new MacMoveFeed(), Time.TimestampFrequency)
        {
            Now = Time.GetTimestamp(),
        };
        Context.Apply(SnapshotCompiler.Compile(Program, 1, Time.TimestampFrequency));
    }

    /// <summary>inside (bd10) and outside (bd20); inside → outside allows everything new; outside → inside has no policy.</summary>
    public static FirewallSpec DefaultFirewall => new()
    {
        Zones = [new ZoneSpec { Name = "inside", Domains = ["bd10"] }, new ZoneSpec { Name = "outside", Domains = ["bd20"] }],
        Policies = [new PolicySpec { From = "inside", To = "outside", Rules = [new RuleSpec { Id = 1 }] }],
    };

    public ManualTimeProvider Time { get; } = new();

    public DataPlaneProgram Program { get; }

    public PacketPool Pool { get; }

    public WorkerContext Context { get; }

    public FlowState Flows => Context.Flows;

    public ConntrackTable Table => Context.Flows.Table!;

    public IReadOnlyList<PipelineStage> Stages => _stages;

    /// <summary>Switches the worker to another snapshot, as the worker does between batches.</summary>
    public void Apply(DataPlaneSnapshot snapshot) => Context.Apply(snapshot);

    public void Advance(TimeSpan by)
    {
        Time.Advance(by);
        Context.Now = Time.GetTimestamp();
        Flows.Heartbeat(Context.Now, Context.TicksPerSecond);
    }

    /// <summary>From an inside host (acc10) toward the outside domain.</summary>
    public FlowResult Outbound(byte[] frame) => Run(frame, InsideSegment, InsideDomain, OutsideSegment, OutsideDomain);

    /// <summary>From the outside (acc20) toward the inside domain.</summary>
    public FlowResult Inbound(byte[] frame) => Run(frame, OutsideSegment, OutsideDomain, InsideSegment, InsideDomain);

    public FlowResult Run(byte[] frame, int ingressSegment, int ingressDomain, int egressSegment, int egressDomain, bool traced = false) =>
        RunBatch([(frame, ingressSegment, ingressDomain, egressSegment, egressDomain)], traced)[0];

    /// <summary>Runs one batch through the three stages and settles it like the pipeline runner.</summary>
    public List<FlowResult> RunBatch(IReadOnlyList<(byte[] Frame, int IngressSegment, int IngressDomain, int EgressSegment, int EgressDomain)> packets, bool traced = false)
    {
        var batch = new PacketBatch();
        foreach (var (frame, ingressSegment, ingressDomain, egressSegment, egressDomain) in packets)
        {
            var buffer = Pool.Rent();
            frame.CopyTo(Pool.Frame(buffer, PacketPool.Headroom, frame.Length));
            ref var p = ref batch.Add(buffer, PacketPool.Headroom, frame.Length, 0);
            Describe(ref p, frame, ingressSegment, ingressDomain, egressSegment, egressDomain);
            if (traced)
            {
                p.Flags |= PacketFlags.Traced;
                p.TraceId = Context.Tracer.NewId();
            }
        }

        foreach (var stage in _stages)
        {
            stage.Process(batch, Context);
        }

        var results = new List<FlowResult>();
        foreach (ref var p in batch.Packets)
        {
            var bytes = Pool.Frame(p.Buffer, p.Offset, p.Length).ToArray();
            string? drop = null;
            if (p.Disposition == Disposition.Drop)
            {
                Context.Counters.CountDrop(p.DropStage, p.DropCode);
                drop = $"{_stages[p.DropStage].Name}.{_stages[p.DropStage].DropReasons[p.DropCode]}";
            }

            results.Add(new FlowResult(p, bytes, drop));
            Pool.Return(p.Buffer);
        }

        return results;
    }

    /// <summary>What the gateway and route stages would have set (the L3 contract).</summary>
    public static void Describe(ref PacketMeta p, ReadOnlySpan<byte> frame, int ingressSegment, int ingressDomain, int egressSegment, int egressDomain)
    {
        p.IngressSegment = ingressSegment;
        p.IngressDomain = (ushort)ingressDomain;
        p.Domain = (ushort)egressDomain;
        p.EgressSegment = egressSegment;
        p.Flags |= PacketFlags.L3Parsed | PacketFlags.Routed | PacketFlags.ToGateway;
        p.L3Offset = EthernetHeader.Length;
        var ihl = (frame[EthernetHeader.Length] & 0x0F) * 4;
        var fragment = BinaryPrimitives.ReadUInt16BigEndian(frame[(EthernetHeader.Length + 6)..]) & 0x1FFF;
        p.L4Offset = fragment != 0 ? (ushort)0 : (ushort)(EthernetHeader.Length + ihl);
        p.IpProtocol = frame[EthernetHeader.Length + 9];
    }

    /// <summary>Frames the stages originated (resets, unreachables), taken off the context.</summary>
    public List<(PacketMeta Meta, byte[] Frame)> TakeOriginated()
    {
        var list = new List<(PacketMeta, byte[])>();
        foreach (ref var p in Context.Originated.Packets)
        {
            list.Add((p, Pool.Frame(p.Buffer, p.Offset, p.Length).ToArray()));
            Pool.Return(p.Buffer);
        }

        Context.Originated.Clear();
        return list;
    }

    public long Drops(string stage, string reason)
    {
        for (var s = 0; s < _stages.Length; s++)
        {
            if (_stages[s].Name == stage)
            {
                var code = _stages[s].DropReasons.ToList().IndexOf(reason);
                Assert.True(code >= 0, $"{stage} has no drop reason {reason}");
                return Context.Counters.Drops(s, code);
            }
        }

        throw new ArgumentException($"no stage {stage}");
    }

    public void Dispose()
    {
        TakeOriginated();
        Assert.Equal(0, Pool.Outstanding);
    }

    // ---- frames ----

    public static byte[] Tcp(string source, ushort sourcePort, string destination, ushort destinationPort, TcpFlags flags, uint seq = 1000, uint ack = 0, MacAddress? from = null, MacAddress? to = null)
    {
        var buffer = new byte[128];
        var n = PacketBuilder.Tcp(buffer, Spec(source, destination, from, to), sourcePort, destinationPort, flags, seq, ack);
        return buffer[..n];
    }

    public static byte[] Udp(string source, ushort sourcePort, string destination, ushort destinationPort, int payload = 8)
    {
        var buffer = new byte[128 + payload];
        var n = PacketBuilder.Udp(buffer, Spec(source, destination, null, null), sourcePort, destinationPort, new byte[payload]);
        return buffer[..n];
    }

    public static byte[] Echo(string source, string destination, ushort id, bool reply = false)
    {
        var buffer = new byte[128];
        var n = PacketBuilder.IcmpEcho(buffer, Spec(source, destination, null, null), id, 1, new byte[16], reply);
        return buffer[..n];
    }

    /// <summary>An ICMP error from <paramref name="source"/> to <paramref name="destination"/> quoting <paramref name="quoted"/> (a frame): its IP header and <paramref name="quoteBytes"/> of payload.</summary>
    public static byte[] IcmpError(string source, string destination, byte type, byte code, byte[] quoted, int quoteBytes = 8)
    {
        var ihl = (quoted[EthernetHeader.Length] & 0x0F) * 4;
        var quote = quoted.AsSpan(EthernetHeader.Length, Math.Min(ihl + quoteBytes, quoted.Length - EthernetHeader.Length));
        var frame = new byte[EthernetHeader.Length + Ipv4Header.MinLength + Icmpv4Header.Length + quote.Length];
        EthernetHeader.Write(frame, GatewayMac, RouterMac, EtherType.Ipv4);
        Ipv4Header.Write(frame.AsSpan(EthernetHeader.Length), Ipv4Address.Parse(source), Ipv4Address.Parse(destination), IpProtocol.Icmp, (ushort)(Icmpv4Header.Length + quote.Length));
        var icmp = frame.AsSpan(EthernetHeader.Length + Ipv4Header.MinLength);
        Icmpv4Header.Write(icmp, type, code, 0);
        quote.CopyTo(icmp[Icmpv4Header.Length..]);
        new Icmpv4Header(icmp).UpdateChecksum();
        return frame;
    }

    private static Ipv4FrameSpec Spec(string source, string destination, MacAddress? from, MacAddress? to) =>
        new(from ?? HostMac, to ?? GatewayMac, Ipv4Address.Parse(source), Ipv4Address.Parse(destination));

    /// <summary>Every checksum of the frame agrees with a full recomputation (the incremental updates are right).</summary>
    public static void AssertChecksums(byte[] frame)
    {
        var l3 = frame.AsSpan(EthernetHeader.Length);
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(l3, out var ip));
        Assert.True(ip.IsHeaderChecksumValid, "IPv4 header checksum");
        var payload = ip.Payload;
        switch (ip.Protocol)
        {
            case IpProtocol.Tcp:
                Assert.True(Checksum.IsValid(payload, Checksum.PseudoHeaderSum(ip.Source, ip.Destination, IpProtocol.Tcp, (ushort)payload.Length)), "TCP checksum");
                break;
            case IpProtocol.Udp:
                if (BinaryPrimitives.ReadUInt16BigEndian(payload[6..]) != 0)
                {
                    Assert.True(Checksum.IsValid(payload, Checksum.PseudoHeaderSum(ip.Source, ip.Destination, IpProtocol.Udp, (ushort)payload.Length)), "UDP checksum");
                }

                break;
            case IpProtocol.Icmp:
                Assert.True(new Icmpv4Header(payload).IsChecksumValid, "ICMP checksum");
                break;
        }
    }
}
