using BenchmarkDotNet.Attributes;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.Benchmarks;

/// <summary>
/// The in-process L2 path, decap → bridge → encap, on 64-byte frames in batches of 256, with
/// learned MACs (unicast). Each operation is one worker turn: receive a full batch from an
/// in-memory port (a 64-byte copy per frame, like a NIC's DMA), run the pipeline, transmit
/// (buffers back to the pool). Reported per packet: divide 1000 by the ns/op for Mpps.
/// The first three rows repeat one frame, the train the bridge's per-batch caches are built for; the
/// interleaved row sends every frame from another station to another VM (16 learned hosts, 16 VMs), so
/// no two consecutive frames share a source and every frame takes the MAC-table lookup and refresh.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class L2PathBenchmarks
{
    private const int Batch = PacketBatch.MaxSize;
    private static readonly MacAddress VlanHost = MacAddress.Parse("02:00:00:00:10:0a");
    private static readonly MacAddress VxlanVm = MacAddress.Parse("02:00:00:00:10:0b");

    /// <summary>A host behind the trunk: the access host's MAC is pinned to acc10, so trunk frames need their own.</summary>
    private static readonly MacAddress TrunkHost = MacAddress.Parse("02:00:00:00:10:0c");
    private static readonly uint Vtep = Ipv4Address.Parse("192.0.2.2").Value;

    private DataPlaneWorker _vlanToVxlan = null!;
    private DataPlaneWorker _vxlanToVlan = null!;
    private DataPlaneWorker _trunkToVxlan = null!;
    private DataPlaneWorker _interleavedToVxlan = null!;

    /// <summary>Stations of the interleaved row: hosts learned on acc10, VMs static behind the VTEP.</summary>
    private const int Stations = 16;

    [GlobalSetup]
    public void Setup()
    {
        var toVm = Frame(VxlanVm, VlanHost);
        var toHost = Frame(VlanHost, VxlanVm);
        _vlanToVxlan = Worker(access: new MemoryFrame(toVm), vxlan: null, trunk: null);
        _vxlanToVlan = Worker(access: null, vxlan: new MemoryFrame(Vxlan(5010, toHost), RemoteVtep: Vtep), trunk: null);
        _trunkToVxlan = Worker(access: null, vxlan: null, trunk: new MemoryFrame(Frame(VxlanVm, TrunkHost), VlanTci: 10));
        var interleaved = Enumerable.Range(0, Batch)
            .Select(i => new MemoryFrame(Frame(Station(0x0b, (i + (i / Stations)) % Stations), Station(0x0a, i % Stations))))
            .ToArray();
        _interleavedToVxlan = Worker(access: null, vxlan: null, trunk: null, interleaved);

        // Every frame must leave (an earlier trunk variant measured the static-MAC-violation drop instead).
        foreach (var (worker, egress) in new[] { (_vlanToVxlan, 0), (_vxlanToVlan, 1), (_trunkToVxlan, 0), (_interleavedToVxlan, 0) })
        {
            worker.RunOnce();
            if (worker.Ports[egress].Counters.TxPackets != Batch)
            {
                throw new InvalidOperationException($"{worker.Ports[egress].Name} sent {worker.Ports[egress].Counters.TxPackets} of {Batch}");
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "VLAN access → VXLAN, per packet")]
    public int VlanToVxlan() => _vlanToVxlan.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "VXLAN → VLAN access, per packet")]
    public int VxlanToVlan() => _vxlanToVlan.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "802.1Q trunk → VXLAN, per packet")]
    public int TrunkToVxlan() => _trunkToVxlan.RunOnce();

    [Benchmark(OperationsPerInvoke = Batch, Description = "VLAN access → VXLAN, 16 × 16 stations interleaved, per packet")]
    public int InterleavedToVxlan() => _interleavedToVxlan.RunOnce();

    [GlobalCleanup]
    public void Cleanup()
    {
        _vlanToVxlan.Dispose();
        _vxlanToVlan.Dispose();
        _trunkToVxlan.Dispose();
        _interleavedToVxlan.Dispose();
    }

    private static DataPlaneWorker Worker(MemoryFrame? access, MemoryFrame? vxlan, MemoryFrame? trunk, MemoryFrame[]? accessMix = null)
    {
        var program = new DataPlaneProgram
        {
            Ports =
            [
                new PortSpec("und0", PortSpecKind.Vxlan, LocalAddress: "192.0.2.1"),
                new PortSpec("acc10", PortSpecKind.Access, "acc10"),
                new PortSpec("trunk0", PortSpecKind.Trunk, "trunk0"),
            ],
            BridgeDomains =
            [
                new BridgeDomainSpec
                {
                    Name = "bd10",
                    Segments =
                    [
                        new SegmentSpec { Port = "acc10" },
                        new SegmentSpec { Port = "trunk0", Vlan = 10 },
                        new SegmentSpec { Port = "und0", Vni = 5010, Vteps = ["192.0.2.2"], Mtu = 1450 },
                    ],
                    StaticMacs =
                    [
                        new StaticMacSpec(VlanHost.ToString(), 0),
                        new StaticMacSpec(VxlanVm.ToString(), 2, "192.0.2.2"),
                        new StaticMacSpec(TrunkHost.ToString(), 1),
                        .. Enumerable.Range(0, Stations).Select(i => new StaticMacSpec(Station(0x0b, i).ToString(), 2, "192.0.2.2")),
                    ],
                },
            ],
        };
        var ports = new[] { new MemoryPort("und0", PortKind.Vxlan), new MemoryPort("acc10", PortKind.Access), new MemoryPort("trunk0", PortKind.Trunk) };
        foreach (var port in ports)
        {
            port.CaptureTransmitted = false;
        }

        if (vxlan is not null)
        {
            ports[0].Replay(Enumerable.Repeat(vxlan, Batch));
        }

        if (access is not null)
        {
            ports[1].Replay(Enumerable.Repeat(access, Batch));
        }

        if (accessMix is not null)
        {
            ports[1].Replay(accessMix);
        }

        if (trunk is not null)
        {
            ports[2].Replay(Enumerable.Repeat(trunk, Batch));
        }

        var slot = new SnapshotSlot(SnapshotCompiler.Compile(program, 1, TimeProvider.System.TimestampFrequency));
        return new DataPlaneWorker(ports, slot, PacketPipeline.CreateDefault(), TimeProvider.System, poolSize: 4096);
    }

    /// <summary>Station <paramref name="index"/> of a family: 02:00:00:01:<paramref name="family"/>:index.</summary>
    private static MacAddress Station(int family, int index) => MacAddress.Parse($"02:00:00:01:{family:x2}:{index:x2}");

    private static byte[] Frame(MacAddress destination, MacAddress source)
    {
        var frame = new byte[64];
        var spec = new Ipv4FrameSpec(source, destination, Ipv4Address.Parse("10.10.0.10"), Ipv4Address.Parse("10.10.0.11"));
        var length = PacketBuilder.Udp(frame, spec, 5000, 5001, new byte[64 - 42 - 4]);
        return frame[..Math.Max(length, 60)];
    }

    private static byte[] Vxlan(uint vni, byte[] inner)
    {
        var payload = new byte[VxlanHeader.Length + inner.Length];
        VxlanHeader.Write(payload, vni);
        inner.CopyTo(payload, VxlanHeader.Length);
        return payload;
    }
}
