using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Support;

/// <summary>
/// The lab topology (see <see cref="L2Fixture"/>) with the appliance routing between bd10 and bd20
/// (<see cref="L3Program"/>). Stations: HostA 10.10.0.10 on acc10, HostB 10.10.0.11 on acc10,
/// Host20 10.20.0.5 on acc20, Upstream 10.20.0.254 on acc20.
/// </summary>
public sealed class L3Fixture : IDisposable
{
    public static readonly MacAddress Gw10 = MacAddress.Parse(L3Program.Gw10Mac);
    public static readonly MacAddress Gw20 = MacAddress.Parse(L3Program.Gw20Mac);
    public static readonly MacAddress HostA = MacAddress.Parse("02:00:00:00:10:0a");
    public static readonly MacAddress HostB = MacAddress.Parse("02:00:00:00:10:0b");
    public static readonly MacAddress Host20 = MacAddress.Parse("02:00:00:00:20:05");
    public static readonly MacAddress Upstream = MacAddress.Parse("02:00:00:00:20:fe");
    public static readonly Ipv4Address HostAIp = Ipv4Address.Parse("10.10.0.10");
    public static readonly Ipv4Address HostBIp = Ipv4Address.Parse("10.10.0.11");
    public static readonly Ipv4Address Host20Ip = Ipv4Address.Parse("10.20.0.5");
    public static readonly Ipv4Address UpstreamIp = Ipv4Address.Parse("10.20.0.254");
    public static readonly Ipv4Address Gw10Ip = Ipv4Address.Parse("10.10.0.1");
    public static readonly Ipv4Address Gw20Ip = Ipv4Address.Parse("10.20.0.1");
    public static readonly Ipv6Address HostA6 = Ipv6Address.Parse("fd00:10::a");
    public static readonly Ipv6Address Host206 = Ipv6Address.Parse("fd00:20::5");
    public static readonly Ipv6Address Gw106 = Ipv6Address.Parse("fd00:10::1");
    public static readonly Ipv6Address Gw206 = Ipv6Address.Parse("fd00:20::1");

    public L3Fixture(DataPlaneProgram? program = null, PacketPipeline? pipeline = null)
    {
        Program = program ?? L3Program.Create();
        Ports = [new("und0", PortKind.Vxlan), new("acc10", PortKind.Access), new("acc20", PortKind.Access), new("trunk0", PortKind.Trunk)];
        Slot = new SnapshotSlot(SnapshotCompiler.Compile(Program, 1, Time.TimestampFrequency));
        Worker = new DataPlaneWorker(Ports, Slot, pipeline ?? PacketPipeline.CreateDefault(), Time, poolSize: 1024);
    }

    public ManualTimeProvider Time { get; } = new();

    public DataPlaneProgram Program { get; }

    public MemoryPort[] Ports { get; }

    public SnapshotSlot Slot { get; }

    public DataPlaneWorker Worker { get; }

    public NeighborCache Neighbors => Worker.Context.L3.Neighbors;

    public L3State L3 => Worker.Context.L3;

    public void Receive(int port, byte[] frame) => Receive(port, new MemoryFrame(frame));

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

    /// <summary>Advances virtual time by whole seconds, running the worker (and its heartbeat) each second.</summary>
    public void Tick(int seconds)
    {
        for (var i = 0; i < seconds; i++)
        {
            Time.Advance(TimeSpan.FromSeconds(1));
            Worker.RunOnce();
        }
    }

    public List<byte[]> Sent(int port)
    {
        var sent = Ports[port].Transmitted.Select(f => f.Bytes).ToList();
        Ports[port].Transmitted.Clear();
        return sent;
    }

    public List<MemoryFrame> SentFrames(int port)
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

    /// <summary>A station announces itself (gratuitous ARP) so the bridge and the neighbor cache know it.</summary>
    public void Announce(int port, MacAddress mac, Ipv4Address ip)
    {
        var frame = new byte[64];
        var length = PacketBuilder.GarpRequest(frame, mac, ip);
        Receive(port, frame[..length]);
        ClearSent();
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

    /// <summary>The leak check: every buffer is back in the pool (nothing held) once the worker is idle.</summary>
    public void Dispose()
    {
        Assert.Equal(0, Worker.Pool.Outstanding);
        Worker.Dispose();
    }
}

/// <summary>IPv4/IPv6 frames for the L3 tests, built with <see cref="PacketBuilder"/>.</summary>
public static class L3Frames
{
    public static byte[] Build(Func<byte[], int> write)
    {
        var buffer = new byte[2048];
        return buffer[..write(buffer)];
    }

    public static byte[] Udp(MacAddress srcMac, MacAddress dstMac, Ipv4Address src, Ipv4Address dst, int payload = 32, byte ttl = 64, bool dontFragment = true) =>
        Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(srcMac, dstMac, src, dst) { Ttl = ttl, DontFragment = dontFragment }, 40000, 53, new byte[payload]));

    public static byte[] Udp6(MacAddress srcMac, MacAddress dstMac, Ipv6Address src, Ipv6Address dst, int payload = 32, byte hopLimit = 64) =>
        Build(b => PacketBuilder.Udp(b, new Ipv6FrameSpec(srcMac, dstMac, src, dst) { HopLimit = hopLimit }, 40000, 53, new byte[payload]));

    public static byte[] Ping(MacAddress srcMac, MacAddress dstMac, Ipv4Address src, Ipv4Address dst) =>
        Build(b => PacketBuilder.IcmpEcho(b, new Ipv4FrameSpec(srcMac, dstMac, src, dst), 0x1234, 7, "abcdefgh"u8));

    public static byte[] Ping6(MacAddress srcMac, MacAddress dstMac, Ipv6Address src, Ipv6Address dst) =>
        Build(b => PacketBuilder.Icmpv6Echo(b, new Ipv6FrameSpec(srcMac, dstMac, src, dst), 0x1234, 7, "abcdefgh"u8));

    public static byte[] ArpRequest(MacAddress senderMac, Ipv4Address senderIp, Ipv4Address targetIp, MacAddress? ethernetDestination = null) =>
        Build(b => PacketBuilder.Arp(b, ArpOpcode.Request, senderMac, senderIp, MacAddress.Zero, targetIp, ethernetDestination));

    public static byte[] ArpReply(MacAddress senderMac, Ipv4Address senderIp, MacAddress targetMac, Ipv4Address targetIp) =>
        Build(b => PacketBuilder.Arp(b, ArpOpcode.Reply, senderMac, senderIp, targetMac, targetIp));

    public static byte[] Syn(MacAddress srcMac, MacAddress dstMac, Ipv4Address src, Ipv4Address dst, ushort mss) =>
        Build(b => PacketBuilder.Tcp(b, new Ipv4FrameSpec(srcMac, dstMac, src, dst), 40000, 80, TcpFlags.Syn, sequence: 1000, mss: mss));

    /// <summary>A neighbor solicitation for <paramref name="target"/> to its solicited-node group, with a source link-layer option.</summary>
    public static byte[] NeighborSolicitation(MacAddress srcMac, Ipv6Address src, Ipv6Address target) =>
        Build(b => L3Messages.NeighborSolicitation(b, srcMac, src, target));

    /// <summary>A solicited NA from <paramref name="target"/> at <paramref name="mac"/> to <paramref name="dst"/>.</summary>
    public static byte[] NeighborAdvertisement(MacAddress mac, Ipv6Address target, MacAddress dstMac, Ipv6Address dst) =>
        Build(b => L3Messages.NeighborAdvertisement(b, mac, dstMac, target, dst, mac, router: false));

    public static Ipv4Header Ip4(byte[] frame)
    {
        Assert.Equal(EtherType.Ipv4, L3Messages.EtherTypeOf(frame));
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(frame.AsSpan(EthernetHeader.Length), out var ip));
        return ip;
    }

    public static Ipv6Header Ip6(byte[] frame)
    {
        Assert.Equal(EtherType.Ipv6, L3Messages.EtherTypeOf(frame));
        Assert.Equal(ParseError.None, Ipv6Header.TryParse(frame.AsSpan(EthernetHeader.Length), out var ip));
        return ip;
    }

    public static ArpPacket Arp(byte[] frame)
    {
        Assert.Equal(EtherType.Arp, L3Messages.EtherTypeOf(frame));
        Assert.Equal(ParseError.None, ArpPacket.TryParse(frame.AsSpan(EthernetHeader.Length), out var arp));
        return arp;
    }

    public static MacAddress Destination(byte[] frame) => MacAddress.Read(frame);

    public static MacAddress Source(byte[] frame) => MacAddress.Read(frame.AsSpan(6));

    /// <summary>IPv4 header checksum and transport checksum both verify.</summary>
    public static void AssertChecksums(byte[] frame)
    {
        if (L3Messages.EtherTypeOf(frame) == EtherType.Ipv4)
        {
            Assert.True(Ip4(frame).IsHeaderChecksumValid, "IPv4 header checksum");
        }

        Assert.True(L4Checksum.IsValid(frame, EthernetHeader.Length), "transport checksum");
    }
}
