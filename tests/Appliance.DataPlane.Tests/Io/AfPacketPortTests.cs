using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

public sealed class AfPacketPortTests
{
    [Fact]
    public void An_inline_8021Q_tag_arrives_in_aux_data_with_the_frame_untagged()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(256);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB);

        const ushort tci = (3 << 13) | 10; // PCP 3, VLAN 10
        var sent = TestFrame(1, (0x8100, tci));
        var queue = new TxQueue();
        Enqueue(queue, pool, sent);
        a.Transmit(queue, pool);
        Assert.Equal(1, a.Counters.TxPackets);

        var got = Collect(b, pool, 1, (_, f) => IsTestFrame(f));

        var r = Assert.Single(got);
        Assert.True(r.Meta.Flags.HasFlag(PacketFlags.VlanFromAux), "tag expected in PACKET_AUXDATA");
        Assert.Equal(10, r.Meta.VlanTci & 0xfff);
        Assert.Equal(3, r.Meta.VlanTci >> 13);
        Assert.Equal(0x8100, r.Meta.VlanTpid);
        Assert.Equal(TestFrame(1), r.Bytes); // the same frame, untagged
        Assert.Equal(PacketPool.Headroom, r.Meta.Offset);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void QinQ_outer_S_tag_goes_to_aux_data_and_the_C_tag_stays_inline()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(256);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB);

        var queue = new TxQueue();
        Enqueue(queue, pool, TestFrame(7, (0x88a8, 100), (0x8100, 10)));
        a.Transmit(queue, pool);

        var r = Assert.Single(Collect(b, pool, 1, (_, f) => IsTestFrame(f)));
        Assert.True(r.Meta.Flags.HasFlag(PacketFlags.VlanFromAux));
        Assert.Equal(100, r.Meta.VlanTci & 0xfff);
        Assert.Equal(0x88a8, r.Meta.VlanTpid);
        Assert.Equal(TestFrame(7, (0x8100, 10)), r.Bytes);
        Assert.Equal(0, pool.Outstanding);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_thousand_frames_arrive_and_batching_needs_far_fewer_syscalls(bool batchSyscalls)
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        const int count = 1000;
        using var net = new VethPair();
        var pool = new PacketPool(2048);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA, batchSyscalls);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB, batchSyscalls);

        var queue = new TxQueue();
        for (var i = 0; i < count; i++)
        {
            Enqueue(queue, pool, TestFrame(i));
        }

        a.Transmit(queue, pool);
        Assert.Equal(0, queue.Count);
        Assert.Equal(count, a.Counters.TxPackets);
        Assert.Equal(0, a.Counters.TxErrors);

        var got = Collect(b, pool, count, (_, f) => IsTestFrame(f));

        Assert.Equal(count, got.Count);
        Assert.Equal(Enumerable.Range(0, count), got.Select(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(14))));
        if (batchSyscalls)
        {
            Assert.True(b.Counters.RxSyscalls < count / 10, $"RxSyscalls {b.Counters.RxSyscalls}");
            Assert.True(a.Counters.TxSyscalls < count / 10, $"TxSyscalls {a.Counters.TxSyscalls}");
        }
        else
        {
            Assert.True(b.Counters.RxSyscalls >= count, $"RxSyscalls {b.Counters.RxSyscalls}");
            Assert.Equal(count, a.Counters.TxSyscalls);
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void An_empty_pool_drains_the_socket_and_counts_RxNoBuffer()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var txPool = new PacketPool(64);
        var rxPool = new PacketPool(1);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB);
        var queue = new TxQueue();
        for (var i = 0; i < 10; i++)
        {
            Enqueue(queue, txPool, TestFrame(i));
        }

        a.Transmit(queue, txPool);
        var held = rxPool.Rent();
        var poller = new Poller(1);
        poller.Add(b);
        var batch = new PacketBatch();
        var deadline = DateTime.UtcNow.AddSeconds(3);
        while (b.Counters.RxNoBuffer < 10 && DateTime.UtcNow < deadline)
        {
            _ = poller.Wait(50);
            Assert.Equal(0, b.Receive(batch, rxPool, 0));
        }

        Assert.True(b.Counters.RxNoBuffer >= 10, $"RxNoBuffer {b.Counters.RxNoBuffer}");
        rxPool.Return(held);
        Assert.Equal(0, rxPool.Outstanding);
        Assert.Equal(0, txPool.Outstanding);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_kernel_hosts_partial_UDP_checksum_is_finished_by_the_port_or_flagged_without_the_vnet_header(bool vnetHeader)
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(256);
        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.77.0.1/24", "dev", net.LinkA);
        Ip.Run("-n", net.NamespaceA, "neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:00:0b", "dev", net.LinkA);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB, vnetHeader: vnetHeader);
        Socket udp;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        }

        using (udp)
        {
            udp.SendTo(new byte[32], new IPEndPoint(IPAddress.Parse("10.77.0.2"), 9999));
        }

        static bool IsUdp(byte[] f) =>
            f.Length > 34 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800 && f[23] == 17;

        var r = Assert.Single(Collect(b, pool, 1, (_, f) => IsUdp(f)));
        if (vnetHeader)
        {
            Assert.False(r.Meta.Flags.HasFlag(PacketFlags.ChecksumNotReady), $"flags {r.Meta.Flags}");
            Assert.True(Isthmus.Packets.L4Checksum.IsValid(r.Bytes, 14), "the port finishes NEEDS_CSUM at csum_start/csum_offset");
            Assert.Equal(1, b.Counters.RxChecksumsFinished);
        }
        else
        {
            Assert.True(r.Meta.Flags.HasFlag(PacketFlags.ChecksumNotReady), $"flags {r.Meta.Flags}");
        }

        Assert.Equal(42 + 32, r.Bytes.Length);
        Assert.Equal(PacketPool.Headroom, r.Meta.Offset);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Frames_the_kernel_drops_because_nobody_reads_are_counted()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(512);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB);

        // ~10k frames against a 4 MB receive queue that nobody drains: the kernel must drop some.
        var queue = new TxQueue();
        for (var burst = 0; burst < 40; burst++)
        {
            for (var i = 0; i < 256; i++)
            {
                Enqueue(queue, pool, TestFrame(i));
            }

            a.Transmit(queue, pool);
        }

        // The receive side may still be working through the backlog when Transmit returns (softirq deferred to
        // ksoftirqd on a loaded machine): the socket's drop count is read until it shows.
        _ = Eventually(() =>
        {
            b.RefreshKernelCounters();
            return b.Counters.RxKernelDrops > 0;
        });
        Assert.True(b.Counters.RxKernelDrops > 0, $"expected kernel drops, sent {a.Counters.TxPackets}");
        Assert.Equal(0, pool.Outstanding);
    }
}
