using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.Benchmarks;

/// <summary>
/// The routed benchmarks' common ground: two access ports (acc10 in bd10, acc20 in bd20) with a
/// gateway in each domain, a worker on in-memory ports with frozen time, and a train of 64-byte UDP
/// frames, one flow per frame.
/// </summary>
internal static class RoutedBench
{
    public const int Batch = PacketBatch.MaxSize;
    public static readonly MacAddress Gw10 = MacAddress.Parse("02:15:7e:00:00:10");
    public static readonly MacAddress Gw20 = MacAddress.Parse("02:15:7e:00:00:20");

    /// <summary>bd10 = acc10 with gateway 10.10.0.1/24, bd20 = acc20 with gateway 10.20.0.1/24; nothing else.</summary>
    public static DataPlaneProgram Program() => new()
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
            new GatewaySpec { Domain = "bd20", Mac = Gw20.ToString(), Addresses = ["10.20.0.1/24"] },
        ],
    };

    /// <summary>A worker over acc10 (port 0) and acc20 (port 1) running <paramref name="program"/> in frozen time.</summary>
    public static (DataPlaneWorker Worker, MemoryPort[] Ports) Worker(DataPlaneProgram program)
    {
        var ports = new[] { new MemoryPort("acc10", PortKind.Access), new MemoryPort("acc20", PortKind.Access) };
        var time = new FrozenTime();
        var slot = new SnapshotSlot(SnapshotCompiler.Compile(program, 1, time.TimestampFrequency));
        return (new DataPlaneWorker(ports, slot, PacketPipeline.CreateDefault(), time, poolSize: 4096), ports);
    }

    /// <summary>A station introduces itself with a gratuitous ARP (MAC table, neighbor cache).</summary>
    public static void Announce(MemoryPort port, MacAddress mac, string address)
    {
        var garp = new byte[64];
        port.Enqueue(garp[..PacketBuilder.GarpRequest(garp, mac, Ipv4Address.Parse(address))]);
    }

    /// <summary>
    /// Replays <see cref="Batch"/> 64-byte UDP frames on <paramref name="ingress"/>, source ports
    /// 40000 and up (one flow each) to port 53 with <paramref name="spec"/>'s addresses; stops capturing what leaves.
    /// </summary>
    public static void ReplayFlows(MemoryPort[] ports, int ingress, Ipv4FrameSpec spec)
    {
        var frames = new List<MemoryFrame>(Batch);
        for (var i = 0; i < Batch; i++)
        {
            var frame = new byte[64];
            var length = PacketBuilder.Udp(frame, spec, (ushort)(40000 + i), 53, new byte[64 - 42 - 4]);
            frames.Add(new MemoryFrame(frame[..Math.Max(length, 60)]));
        }

        foreach (var port in ports)
        {
            port.Transmitted.Clear();
            port.CaptureTransmitted = false;
        }

        ports[ingress].Replay(frames);
    }

    /// <summary>Time that never moves: no heartbeat, no aging, so neighbor entries and sessions stay put.</summary>
    private sealed class FrozenTime : TimeProvider
    {
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => TimeSpan.TicksPerDay;
    }
}
