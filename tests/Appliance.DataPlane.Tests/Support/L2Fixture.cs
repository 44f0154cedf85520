using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;

namespace Isthmus.DataPlane.Tests.Support;

/// <summary>
/// The lab's topology in memory: a VXLAN port with VTEPs .2 and .3, access ports for VLAN 10 and
/// 20, and a trunk. bd10 = acc10 + trunk0/vlan10 + und0/vni5010 (VTEPs .2, .3);
/// bd20 = acc20 + trunk0/vlan20 + und0/vni5020 (VTEP .2).
/// </summary>
public sealed class L2Fixture : IDisposable
{
    public const int Und0 = 0;
    public const int Acc10 = 1;
    public const int Acc20 = 2;
    public const int Trunk0 = 3;

    public static readonly uint Vtep1 = Frames.Ip("192.0.2.2");
    public static readonly uint Vtep2 = Frames.Ip("192.0.2.3");
    public static readonly uint Stranger = Frames.Ip("192.0.2.9");

    public L2Fixture(Func<BridgeDomainSpec, BridgeDomainSpec>? tweak = null)
    {
        Program = LabProgram(tweak);
        Ports = [new("und0", PortKind.Vxlan), new("acc10", PortKind.Access), new("acc20", PortKind.Access), new("trunk0", PortKind.Trunk)];
        Slot = new SnapshotSlot(SnapshotCompiler.Compile(Program, 1, Time.TimestampFrequency));
        Worker = new DataPlaneWorker(Ports, Slot, PacketPipeline.CreateDefault(), Time, poolSize: 1024);
    }

    public ManualTimeProvider Time { get; } = new();

    public DataPlaneProgram Program { get; }

    public MemoryPort[] Ports { get; }

    public SnapshotSlot Slot { get; }

    public DataPlaneWorker Worker { get; }

    public MemoryPort Port(int index) => Ports[index];

    public static DataPlaneProgram LabProgram(Func<BridgeDomainSpec, BridgeDomainSpec>? tweak = null)
    {
        tweak ??= d => d;
        return new DataPlaneProgram
        {
            Ports =
            [
                new PortSpec("und0", PortSpecKind.Vxlan, LocalAddress: "192.0.2.1"),
                new PortSpec("acc10", PortSpecKind.Access, "acc10"),
                new PortSpec("acc20", PortSpecKind.Access, "acc20"),
                new PortSpec("trunk0", PortSpecKind.Trunk, "trunk0"),
            ],
            BridgeDomains =
            [
                tweak(new BridgeDomainSpec
                {
                    Name = "bd10",
                    Segments =
                    [
                        new SegmentSpec { Port = "acc10" },
                        new SegmentSpec { Port = "trunk0", Vlan = 10 },
                        new SegmentSpec { Port = "und0", Vni = 5010, Vteps = ["192.0.2.2", "192.0.2.3"], Mtu = 1450 },
                    ],
                }),
                tweak(new BridgeDomainSpec
                {
                    Name = "bd20",
                    Segments =
                    [
                        new SegmentSpec { Port = "acc20" },
                        new SegmentSpec { Port = "trunk0", Vlan = 20 },
                        new SegmentSpec { Port = "und0", Vni = 5020, Vteps = ["192.0.2.2"], Mtu = 1450 },
                    ],
                }),
            ],
        };
    }

    /// <summary>Delivers one frame on a port and runs the worker until it is idle.</summary>
    public void Receive(int port, MemoryFrame frame)
    {
        Ports[port].Enqueue(frame);
        Run();
    }

    public void Run()
    {
        while (Worker.RunOnce() > 0)
        {
        }
    }

    public List<MemoryFrame> Sent(int port)
    {
        var sent = Ports[port].Transmitted.ToList();
        Ports[port].Transmitted.Clear();
        return sent;
    }

    public void ClearSent()
    {
        foreach (var p in Ports)
        {
            p.Transmitted.Clear();
        }
    }

    public long Drops(string stage, string reason)
    {
        var stages = Worker.Pipeline.Stages;
        for (var s = 0; s < stages.Count; s++)
        {
            if (stages[s].Name == stage)
            {
                var code = stages[s].DropReasons.ToList().IndexOf(reason);
                Assert.True(code >= 0, $"{stage} has no drop reason {reason}");
                return Worker.Counters.Drops(s, code);
            }
        }

        throw new ArgumentException($"no stage {stage}");
    }

    /// <summary>The leak check: every buffer is back in the pool once the worker is idle.</summary>
    public void Dispose()
    {
        Assert.Equal(0, Worker.Pool.Outstanding);
        Worker.Dispose();
    }
}
