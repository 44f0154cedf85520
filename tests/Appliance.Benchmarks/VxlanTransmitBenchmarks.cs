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
/// through an AF_XDP TX ring (copy mode: one sendto() kick per 32 frames, chunks back on the completion ring). The
/// veth delivers synchronously, so the peer's drop runs on the same core and is in both figures.
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

    [GlobalCleanup]
    public void Cleanup()
    {
        _socket?.Dispose();
        _raw?.Dispose();
        _xdp?.Dispose();
        _ = Output("ip", "netns", "del", NsA);
        _ = Output("ip", "netns", "del", NsB);
    }

    public void Dispose()
    {
        Cleanup();
        GC.SuppressFinalize(this);
    }

    private void Send(VxlanUdpPort port)
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
            f.SourcePort = (ushort)(49152 + i);
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
