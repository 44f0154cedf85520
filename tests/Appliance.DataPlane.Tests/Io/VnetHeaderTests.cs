using System.Buffers.Binary;
using System.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using Xunit.Abstractions;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// PACKET_VNET_HDR against the real kernel: a raw sender hands its veth a tagged TCP GSO super-frame
/// (as a VM's virtio-net would), and the <see cref="AfPacketPort"/> at the other end must cut it.
/// </summary>
public sealed unsafe class VnetHeaderTests(ITestOutputHelper output)
{
    private const int Mss = 1448;

    [Fact]
    public void A_tagged_GSO_super_frame_arrives_as_segments_that_keep_the_aux_VLAN_tag()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(256);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB);
        var payload = VirtioNetTests.Payload(10_000);
        SendGso(net.NamespaceA, net.LinkA, VirtioNetTests.TcpV4SuperFrame(payload, tagged: true, ipOptions: 0, flags: 0x18));

        var got = Collect(b, pool, 7, (_, f) => IsTcp(f));

        Assert.Equal(7, got.Count);
        Assert.Equal(1, b.Counters.RxGsoSegmented);
        Assert.Equal(7, b.Counters.RxGsoSegments);
        foreach (var r in got)
        {
            Assert.True(r.Meta.Flags.HasFlag(PacketFlags.VlanFromAux), $"flags {r.Meta.Flags}");
            Assert.Equal(10, r.Meta.VlanTci & 0xFFF);
            Assert.Equal(0x8100, r.Meta.VlanTpid);
            Assert.Equal(PacketPool.Headroom, r.Meta.Offset);
            Assert.True(r.Bytes.Length <= 14 + 20 + 32 + Mss);
            Assert.Equal(ParseError.None, Ipv4Header.TryParse(r.Bytes.AsSpan(14), out var ip));
            Assert.True(ip.IsHeaderChecksumValid);
            Assert.True(L4Checksum.IsValid(r.Bytes, 14));
        }

        Assert.Equal(payload, got.SelectMany(r => r.Bytes[66..]).ToArray());
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Segments_that_do_not_fit_the_batch_or_pool_wait_for_the_next_Receive()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(4);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB);
        var payload = VirtioNetTests.Payload(20_000); // 14 segments through a pool of 4 buffers
        SendGso(net.NamespaceA, net.LinkA, VirtioNetTests.TcpV4SuperFrame(payload, tagged: false, ipOptions: 0, flags: 0x18));

        var poller = new Poller(1);
        poller.Add(b);
        var batch = new PacketBatch();
        var received = new List<byte>();
        var segments = 0;
        var clock = Stopwatch.StartNew();
        while (segments < 14 && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            if (!b.HasPendingFrames)
            {
                _ = poller.Wait(50);
            }

            _ = b.Receive(batch, pool, 0);
            foreach (ref var m in batch.Packets)
            {
                var f = pool.Frame(m.Buffer, m.Offset, m.Length).ToArray();
                if (IsTcp(f))
                {
                    segments++;
                    received.AddRange(f[66..]);
                }

                pool.Return(m.Buffer);
            }

            batch.Clear();
        }

        Assert.Equal(14, segments);
        Assert.Equal(payload, received.ToArray());
        Assert.False(b.HasPendingFrames);
        Assert.Equal(0, b.Counters.RxGsoDropped);
        Assert.Equal(0, pool.Outstanding);
    }

    /// <summary>What the vnet header costs small frames: a send+receive loop, header on and off (logged, not asserted).</summary>
    [Fact]
    public void Small_frames_cost_about_the_same_with_the_vnet_header()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        var rates = new List<string>();
        foreach (var vnet in new[] { true, false, true, false })
        {
            var (frames, elapsed) = Pump(vnet, 100_000);
            rates.Add($"vnet {(vnet ? "on " : "off")}: {frames} frames in {elapsed.TotalMilliseconds:F0} ms = {frames / elapsed.TotalSeconds / 1000:F0} kpps");
        }

        foreach (var r in rates)
        {
            output.WriteLine(r);
        }
    }

    private static (int Frames, TimeSpan Elapsed) Pump(bool vnet, int count)
    {
        using var net = new VethPair();
        var pool = new PacketPool(2048);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA, vnetHeader: vnet);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB, vnetHeader: vnet);
        var queue = new TxQueue();
        var batch = new PacketBatch();
        var frame = TestFrame(1);
        int sent = 0, received = 0;
        var clock = Stopwatch.StartNew();
        while (received < count && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (sent < count && sent - received < 2048)
            {
                for (var i = 0; i < 256; i++)
                {
                    Enqueue(queue, pool, frame);
                }

                a.Transmit(queue, pool);
                sent += 256;
            }

            while (b.Receive(batch, pool, 0) > 0)
            {
                foreach (ref var m in batch.Packets)
                {
                    received++;
                    pool.Return(m.Buffer);
                }

                batch.Clear();
            }
        }

        clock.Stop();
        Assert.Equal(0, pool.Outstanding);
        return (received, clock.Elapsed);
    }

    private static bool IsTcp(byte[] f) =>
        f.Length > 54 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == EtherType.Ipv4 && f[23] == IpProtocol.Tcp;

    /// <summary>
    /// Sends <paramref name="frame"/> (Ethernet, optional inline tag, IPv4, TCP) from a raw PACKET_VNET_HDR
    /// socket as one TCPv4 GSO super-frame with NEEDS_CSUM, its TCP checksum holding the pseudo-header sum.
    /// </summary>
    private static void SendGso(string ns, string link, byte[] frame)
    {
        var l3 = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == EtherType.Vlan ? 18 : 14;
        var l4 = l3 + ((frame[l3] & 0xF) * 4);
        var headers = l4 + ((frame[l4 + 12] >> 4) * 4);
        var tcpLength = frame.Length - l4;
        var pseudo = Checksum.PseudoHeaderSum(Ipv4Address.Read(frame.AsSpan(l3 + 12)), Ipv4Address.Read(frame.AsSpan(l3 + 16)), IpProtocol.Tcp, (ushort)tcpLength);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(l4 + 16), Checksum.Fold(pseudo));

        var message = new byte[VirtioNet.HeaderLength + frame.Length];
        var header = new VirtioNetHdr
        {
            Flags = VirtioNet.FlagNeedsCsum,
            GsoType = VirtioNet.GsoTcpV4,
            HdrLen = (ushort)headers,
            GsoSize = Mss,
            CsumStart = (ushort)l4,
            CsumOffset = 16,
        };
        fixed (byte* m = message)
        {
            *(VirtioNetHdr*)m = header;
        }

        frame.CopyTo(message, VirtioNet.HeaderLength);
        int fd;
        using (NetworkNamespace.Enter(ns))
        {
            fd = Libc.Socket(Libc.AfPacket, Libc.SockRaw | Libc.SockCloExec, 0);
            Assert.True(fd >= 0, Libc.Describe(Libc.Errno));
            var ifIndex = (int)Libc.IfNameToIndex(link);
            Assert.True(ifIndex > 0);
            try
            {
                int one = 1;
                Assert.Equal(0, Libc.SetSockOpt(fd, Libc.SolPacket, Libc.PacketVnetHdr, &one, sizeof(int)));
                var sll = default(SockAddrLl);
                sll.Family = Libc.AfPacket;
                sll.Protocol = Libc.Htons(Libc.EthPAll);
                sll.IfIndex = ifIndex;
                Assert.Equal(0, Libc.Bind(fd, &sll, (uint)sizeof(SockAddrLl)));
                fixed (byte* m = message)
                {
                    var n = Libc.SendTo(fd, m, (nuint)message.Length, 0, null, 0);
                    Assert.True(n == message.Length, $"sendto: {n}, {Libc.Describe(Libc.Errno)}");
                }
            }
            finally
            {
                _ = Libc.Close(fd);
            }
        }
    }
}
