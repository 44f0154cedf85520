using System.Diagnostics;
using System.Net;
using BenchmarkDotNet.Attributes;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.Benchmarks;

/// <summary>
/// What raw VXLAN transmit buys per datagram on the transmitting core: 64 VXLAN datagrams (8-byte VXLAN
/// header + 60-byte inner frame) per operation from a <see cref="VxlanUdpPort"/> across a veth pair into
/// a namespace that drops them at once (nftables prerouting, so no ICMP comes back and the receive side
/// costs both variants the same), through the UDP socket (sendmmsg → UDP/IP output, route and neighbor
/// lookups, qdisc), raw (sendmmsg on AF_PACKET with PACKET_QDISC_BYPASS and pre-built headers) or raw
/// through an AF_XDP TX ring (copy mode: one sendto() kick per 32 frames, chunks back on the completion ring), or
/// through UDP GSO trains (session 11: one sendmsg per train, cut into datagrams at the veth, which has
/// tx-udp-segmentation off as in the wire benchmark), with 64 flows (their entropy spread over the sender's 16 source
/// ports: 16 trains of 4) or one flow (one train of 64). The veth delivers synchronously, so the peer's drop runs on
/// the same core and is in every figure.
/// Needs root: it makes namespaces <c>istp-vxtx-a</c>/<c>-b</c> and deletes them by name.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 15)]
public class VxlanTransmitBenchmarks : IDisposable
{
    private const int Batch = 64;
    private const string NsA = "istp-vxtx-a";
    private const string NsB = "istp-vxtx-b";
    private readonly PacketPool _pool = new(1024);
    private readonly TxQueue _queue = new();
    private readonly byte[] _payload = new byte[VxlanHeader.Length + 60];
    private VxlanUdpPort _socket = null!;
    private VxlanUdpPort _raw = null!;
    private VxlanUdpPort _xdp = null!;
    private VxlanUdpPort _gso = null!;

    [GlobalSetup]
    public void Setup()
    {
        Cleanup();
        Run("ip", "netns", "add", NsA);
        Run("ip", "netns", "add", NsB);
        Run("ip", "link", "add", "istp-vxtx0", "netns", NsA, "type", "veth", "peer", "name", "istp-vxtx1", "netns", NsB);
        Run("ip", "-n", NsA, "addr", "add", "10.77.0.1/24", "dev", "istp-vxtx0");
        Run("ip", "-n", NsA, "addr", "add", "10.77.0.3/24", "dev", "istp-vxtx0");
        Run("ip", "-n", NsA, "addr", "add", "10.77.0.4/24", "dev", "istp-vxtx0");
        Run("ip", "-n", NsA, "addr", "add", "10.77.0.5/24", "dev", "istp-vxtx0");
        Run("ip", "netns", "exec", NsA, "ethtool", "-K", "istp-vxtx0", "tx-udp-segmentation", "off");
        Run("ip", "-n", NsB, "addr", "add", "10.77.0.2/24", "dev", "istp-vxtx1");
        Run("ip", "-n", NsA, "link", "set", "istp-vxtx0", "up");
        Run("ip", "-n", NsB, "link", "set", "istp-vxtx1", "up");
        var mac = Output("ip", "netns", "exec", NsB, "cat", "/sys/class/net/istp-vxtx1/address").Trim();
        Run("ip", "-n", NsA, "neigh", "replace", "10.77.0.2", "lladdr", mac, "dev", "istp-vxtx0", "nud", "permanent");
        Run("ip", "netns", "exec", NsB, "nft", "add table ip sink; add chain ip sink pre { type filter hook prerouting priority -300; policy drop; }");
        Thread.Sleep(200); // linkwatch: the veth must be operationally up before AF_PACKET sends

        using (NetworkNamespace.Enter(NsA))
        {
            _socket = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.77.0.1"), Name = "socket", RawTransmit = false });
            _raw = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.77.0.3"), Name = "raw" });
            _xdp = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.77.0.4"), Name = "xdp", XdpTransmit = true });
            _gso = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.77.0.5"), Name = "gso", UdpGsoTransmit = true });
        }

        if (!_xdp.TransmitsWithXdp)
        {
            throw new InvalidOperationException($"AF_XDP transmit: {_xdp.XdpError}");
        }

        Send(_xdp);
        if (_xdp.Counters.TxRaw != Batch || _xdp.XdpTxRing!.Pending != 0)
        {
            throw new InvalidOperationException($"AF_XDP transmit sent {_xdp.Counters.TxRaw} of {Batch} raw, {_xdp.XdpTxRing!.Pending} pending");
        }

        VxlanHeader.Write(_payload, 5010);
        Send(_gso, flows: 1);
        Send(_gso);
        if (_gso.Counters.TxPackets != 2 * Batch || _gso.Counters.TxGsoTrains != 1 + (Batch / 4) || _gso.Counters.TxErrors != 0)
        {
            throw new InvalidOperationException($"UDP GSO transmit sent {_gso.Counters.TxPackets} of {2 * Batch} in {_gso.Counters.TxGsoTrains} trains, {_gso.Counters.TxErrors} errors");
        }

        Send(_raw);
        if (_raw.Counters.TxRaw != Batch)
        {
            throw new InvalidOperationException($"raw transmit sent {_raw.Counters.TxRaw} of {Batch} raw: {string.Join(", ", _raw.RawPaths())}");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "VXLAN through the UDP socket (sendmmsg), per datagram")]
    public void Socket() => Send(_socket);

    [Benchmark(OperationsPerInvoke = Batch, Description = "VXLAN raw (AF_PACKET, qdisc bypass, pre-built headers), per datagram")]
    public void Raw() => Send(_raw);

    [Benchmark(OperationsPerInvoke = Batch, Description = "VXLAN raw through an AF_XDP TX ring (copy mode), per datagram")]
    public void Xdp() => Send(_xdp);

    [Benchmark(OperationsPerInvoke = Batch, Description = "VXLAN through UDP GSO, 64 flows (16 trains of 4), per datagram")]
    public void UdpGso() => Send(_gso);

    [Benchmark(OperationsPerInvoke = Batch, Description = "VXLAN through UDP GSO, one flow (one train of 64), per datagram")]
    public void UdpGsoOneFlow() => Send(_gso, flows: 1);

    [GlobalCleanup]
    public void Cleanup()
    {
        _socket?.Dispose();
        _raw?.Dispose();
        _xdp?.Dispose();
        _gso?.Dispose();
        _ = Output("ip", "netns", "del", NsA);
        _ = Output("ip", "netns", "del", NsB);
    }

    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    private void Send(VxlanUdpPort port, int flows = Batch)
    {
        for (var i = 0; i < Batch; i++)
        {
            var b = _pool.Rent();
            _payload.CopyTo(_pool.Frame(b, PacketPool.Headroom, _payload.Length));
            ref var f = ref _queue.Add();
            f.Buffer = b;
            f.Offset = PacketPool.Headroom;
            f.Length = _payload.Length;
            f.DestinationIp = 0x0A4D0002;
            f.DestinationPort = 0;
            f.SourcePort = (ushort)(49152 + (i % flows));
        }

        port.Transmit(_queue, _pool);
    }

    private static void Run(string file, params string[] args)
    {
        var (code, output) = Exec(file, args);
        if (code != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {output}");
        }
    }

    private static string Output(string file, params string[] args) => Exec(file, args).Output;

    private static (int Code, string Output) Exec(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }
}
