using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>AF_XDP transmit: the TX/completion ring walk over plain memory standing in for the kernel, then a real veth.</summary>
public sealed unsafe class XdpTransmitTests
{
    /// <summary>TX and completion rings and a UMEM in ordinary memory; <see cref="Consume"/> and <see cref="Complete"/> play the kernel.</summary>
    private sealed class FakeTxRings : IDisposable
    {
        public const int Size = 8;
        public const int Chunk = 2048;
        public const ulong FirstChunk = 4 * Chunk; // TX chunks behind four receive chunks, as in XdpSocket

        // [0] tx producer, [1] tx consumer, [2] completion producer, [3] completion consumer, [4] tx flags
        private readonly uint* _indices = (uint*)NativeMemory.AllocZeroed(5 * sizeof(uint));
        private readonly XdpDesc* _tx = (XdpDesc*)NativeMemory.AllocZeroed(Size * (nuint)sizeof(XdpDesc));
        private readonly ulong* _completion = (ulong*)NativeMemory.AllocZeroed(Size * sizeof(ulong));
        private readonly Queue<ulong> _sent = new();

        public FakeTxRings(uint start, int chunks = Size)
        {
            _indices[0] = _indices[1] = start;
            _indices[2] = _indices[3] = start + 3;
            Umem = (byte*)NativeMemory.AllocZeroed((nuint)((int)FirstChunk + (chunks * Chunk)));
            Ring = new XdpTxRing(_indices, _indices + 1, _indices + 4, _tx, Size, _indices + 2, _indices + 3, _completion, Size, Umem, FirstChunk, chunks, Chunk);
        }

        public byte* Umem { get; }

        public XdpTxRing Ring { get; }

        public uint Flags { set => _indices[4] = value; }

        /// <summary>The kernel takes <paramref name="n"/> descriptors off TX: returns the frames' bytes, keeps their chunks as sent.</summary>
        public List<byte[]> Consume(int n)
        {
            var frames = new List<byte[]>();
            for (var i = 0; i < n; i++)
            {
                var d = _tx[_indices[1] & (Size - 1)];
                _indices[1]++;
                Assert.True(d.Address >= FirstChunk && d.Address % Chunk == 0, $"chunk {d.Address}");
                frames.Add(new ReadOnlySpan<byte>(Umem + d.Address, (int)d.Length).ToArray());
                _sent.Enqueue(d.Address);
            }

            return frames;
        }

        /// <summary>The kernel posts the chunks of <paramref name="n"/> sent frames on the completion ring.</summary>
        public void Complete(int n)
        {
            for (var i = 0; i < n; i++)
            {
                _completion[_indices[2] & (Size - 1)] = _sent.Dequeue();
                _indices[2]++;
            }
        }

        public void Dispose()
        {
            NativeMemory.Free(_indices);
            NativeMemory.Free(_tx);
            NativeMemory.Free(_completion);
            NativeMemory.Free(Umem);
        }
    }

    private static TxQueue Queue(PacketPool pool, int first, int count)
    {
        var queue = new TxQueue();
        for (var i = first; i < first + count; i++)
        {
            Enqueue(queue, pool, TestFrame(i));
        }

        return queue;
    }

    private static void Release(TxQueue queue, PacketPool pool)
    {
        foreach (ref readonly var f in queue.Frames)
        {
            pool.Return(f.Buffer);
        }

        queue.Clear();
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(uint.MaxValue - 5)]
    public void Frames_leave_in_order_across_the_index_wrap_and_every_completed_chunk_comes_back(uint start)
    {
        using var rings = new FakeTxRings(start);
        var pool = new PacketPool(64);
        var counters = new PortCounters();
        var sent = new List<byte[]>();
        for (var round = 0; round < 5; round++)
        {
            var queue = Queue(pool, round * 6, 6);
            Assert.Equal(6, rings.Ring.Enqueue(queue.Frames, pool, counters));
            Release(queue, pool);
            Assert.Equal(6, rings.Ring.Pending);
            Assert.Equal(6, rings.Ring.InFlight);
            sent.AddRange(rings.Consume(6));
            rings.Complete(6);
            Assert.Equal(6, rings.Ring.Reclaim());
            Assert.Equal(0, rings.Ring.InFlight);
        }

        Assert.Equal(Enumerable.Range(0, 30).Select(i => TestFrame(i)), sent);
        Assert.Equal((30L, 0L), (counters.TxPackets, counters.TxRingFull));
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void A_full_tx_ring_and_chunks_all_in_flight_are_counted_drops_until_the_kernel_catches_up()
    {
        using var rings = new FakeTxRings(uint.MaxValue - 1, chunks: FakeTxRings.Size);
        var pool = new PacketPool(64);
        var counters = new PortCounters();

        var queue = Queue(pool, 0, 11);
        Assert.Equal(FakeTxRings.Size, rings.Ring.Enqueue(queue.Frames, pool, counters));
        Release(queue, pool);
        Assert.Equal(3, counters.TxRingFull);

        // The kernel took five off the ring but has not completed them: the ring has room, no chunk is free.
        var first = rings.Consume(5);
        queue = Queue(pool, 20, 2);
        Assert.Equal(0, rings.Ring.Enqueue(queue.Frames, pool, counters));
        Release(queue, pool);
        Assert.Equal(5, counters.TxRingFull);

        // Completions give the chunks back; the next batch reuses them.
        rings.Complete(5);
        queue = Queue(pool, 30, 2);
        Assert.Equal(2, rings.Ring.Enqueue(queue.Frames, pool, counters));
        Release(queue, pool);
        var rest = rings.Consume(5);
        Assert.Equal(Enumerable.Range(0, 8).Select(i => TestFrame(i)), first.Concat(rest.Take(3)));
        Assert.Equal([TestFrame(30), TestFrame(31)], rest.Skip(3));
        Assert.Equal((10L, 5L), (counters.TxPackets, counters.TxRingFull));
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void A_frame_longer_than_a_chunk_is_a_counted_error_and_need_wakeup_follows_the_flag()
    {
        using var rings = new FakeTxRings(0);
        var pool = new PacketPool(8);
        var counters = new PortCounters();
        var queue = new TxQueue();
        Enqueue(queue, pool, new byte[64]);
        queue.Add() = new TxFrame { Buffer = queue.Frames[0].Buffer, Offset = 0, Length = FakeTxRings.Chunk + 1 };
        Assert.Equal(1, rings.Ring.Enqueue(queue.Frames, pool, counters));
        Assert.Equal((1L, 1L), (counters.TxPackets, counters.TxErrors));
        pool.Return(queue.Frames[0].Buffer);

        rings.Flags = 0;
        Assert.False(rings.Ring.NeedsWakeup);
        rings.Flags = XdpTxRing.NeedWakeupFlag;
        Assert.True(rings.Ring.NeedsWakeup);
    }

    [Fact]
    public void On_a_veth_frames_leave_through_af_xdp_in_order_and_the_completion_ring_returns_every_chunk()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(1024);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB, kind: PortKind.Access);
        AfPacketPort a;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            a = new AfPacketPort(new AfPacketPortOptions { InterfaceName = net.LinkA, Kind = PortKind.Access, XdpReceive = true, XdpTransmit = true });
        }

        using (a)
        {
            Assert.Null(a.XdpError);
            Assert.True(a.TransmitsWithXdp && a.ReceivesWithXdp);
            var expected = new List<byte[]>();
            for (var round = 0; round < 8; round++)
            {
                var queue = Queue(pool, round * 100, 100);
                expected.AddRange(Enumerable.Range(round * 100, 100).Select(i => TestFrame(i)));
                a.Transmit(queue, pool);
                Assert.Equal(0, queue.Count);
            }

            var got = Collect(b, pool, 800, (_, f) => IsTestFrame(f));
            Assert.Equal(expected, got.Select(r => r.Bytes));
            Assert.Equal((800L, 0L, 0L), (a.Counters.TxPackets, a.Counters.TxRingFull, a.Counters.TxErrors));
            // Linux 6.17 lets one copy-mode kick send up to the TX ring's size (XDP_MAX_TX_SKB_BUDGET): one kick per
            // batch of 100; before, at most 32 frames per kick.
            if (Environment.OSVersion.Version >= new Version(6, 17))
            {
                Assert.Equal(XdpSocket.DefaultTxFrames, a.XdpTxBudget);
                Assert.Equal(8, a.Counters.TxSyscalls);
            }
            else
            {
                Assert.Equal(32, a.XdpTxBudget);
                Assert.True(a.Counters.TxSyscalls >= 800 / 32, $"copy mode sends at most 32 frames per kick: {a.Counters.TxSyscalls} kicks");
            }

            // Every chunk comes back once the receiver's stack has freed the frames.
            Assert.Equal(0, WaitForCompletions(a.XdpTxRing!));
            Assert.Equal(0, a.XdpTxRing!.Pending);
            Assert.Equal(0, pool.Outstanding);

            // The same socket still receives.
            var back = Queue(pool, 5000, 3);
            b.Transmit(back, pool);
            Assert.Equal([TestFrame(5000), TestFrame(5001), TestFrame(5002)], Collect(a, pool, 3, (_, f) => IsTestFrame(f)).Select(r => r.Bytes));
        }
    }

    [Fact]
    public void On_a_veth_a_batch_larger_than_the_tx_ring_is_a_counted_drop()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(1024);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB, kind: PortKind.Access);
        XdpSocket xsk;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            xsk = new XdpSocket((int)Libc.IfNameToIndex(net.LinkA), receive: false, txFrames: 64);
        }

        using (xsk)
        {
            Assert.Null(xsk.Ring);
            var counters = new PortCounters();
            var queue = Queue(pool, 0, 100);
            xsk.Transmit(queue.Frames, pool, counters);
            Release(queue, pool);
            Assert.Equal((64L, 36L), (counters.TxPackets, counters.TxRingFull));
            var got = Collect(b, pool, 64, (_, f) => IsTestFrame(f));
            Assert.Equal(Enumerable.Range(0, 64).Select(i => TestFrame(i)), got.Select(r => r.Bytes));
            Assert.Equal(0, pool.Outstanding);
        }
    }

    [Fact]
    public void On_a_veth_whose_peer_is_down_every_frame_the_device_drops_is_a_counted_tx_error_and_its_chunk_comes_back()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(1024);
        using var b = OpenAfPacket(net.NamespaceB, net.LinkB, kind: PortKind.Access);
        XdpSocket xsk;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            xsk = new XdpSocket((int)Libc.IfNameToIndex(net.LinkA), receive: false, txFrames: 64);
        }

        using (xsk)
        {
            // The peer down: veth's carrier drops, dev_direct_xmit drops each frame and the kick returns EBUSY.
            Ip.Run("-n", net.NamespaceB, "link", "set", net.LinkB, "down");
            var counters = new PortCounters();
            var queue = Queue(pool, 0, 10);
            xsk.Transmit(queue.Frames, pool, counters);
            Release(queue, pool);
            Assert.Equal((10L, 0L, 10L), (counters.TxPackets, counters.TxRingFull, counters.TxErrors));
            Assert.Equal(0, xsk.TxRing!.Pending);
            Assert.Equal(0, WaitForCompletions(xsk.TxRing));

            // The peer back up: the same socket sends again, nothing more is counted as an error.
            Ip.Run("-n", net.NamespaceB, "link", "set", net.LinkB, "up");
            Ip.WaitOperUp(net.NamespaceA, net.LinkA);
            var again = Queue(pool, 100, 5);
            xsk.Transmit(again.Frames, pool, counters);
            Release(again, pool);
            var got = Collect(b, pool, 5, (_, f) => IsTestFrame(f));
            Assert.Equal(Enumerable.Range(100, 5).Select(i => TestFrame(i)), got.Select(r => r.Bytes));
            Assert.Equal((15L, 10L), (counters.TxPackets, counters.TxErrors));
            Assert.Equal(0, pool.Outstanding);
        }
    }

    // ---- partial checksums (XdpChecksum) ----

    private static byte[] Frame(bool ipv6, byte protocol, int payload, int padding = 0, ushort fragment = 0)
    {
        var l3 = 14;
        var ipLength = ipv6 ? 40 : 20;
        var l4Length = (protocol == IpProtocol.Tcp ? 20 : 8) + payload;
        var frame = new byte[l3 + ipLength + l4Length + padding];
        MacB.CopyTo(frame, 0);
        MacA.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), ipv6 ? (ushort)0x86DD : (ushort)0x0800);
        var ip = frame.AsSpan(l3);
        if (ipv6)
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)l4Length);
            ip[6] = protocol;
            ip[7] = 64;
            IPAddress.Parse("2001:db8::1").GetAddressBytes().CopyTo(ip[8..]);
            IPAddress.Parse("2001:db8::2").GetAddressBytes().CopyTo(ip[24..]);
        }
        else
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4Length));
            BinaryPrimitives.WriteUInt16BigEndian(ip[6..], fragment);
            ip[8] = 64;
            ip[9] = protocol;
            new byte[] { 10, 10, 0, 2 }.CopyTo(ip[12..]);
            new byte[] { 203, 0, 113, 10 }.CopyTo(ip[16..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..20]));
        }

        var l4 = ip[ipLength..];
        BinaryPrimitives.WriteUInt16BigEndian(l4, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], 9);
        if (protocol == IpProtocol.Tcp)
        {
            l4[12] = 0x50;
            l4[13] = 0x18;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)l4Length);
        }

        for (var i = 0; i < payload; i++)
        {
            l4[l4Length - payload + i] = (byte)(i * 7 + 3);
        }

        for (var i = 0; i < padding; i++)
        {
            frame[^(i + 1)] = 0xEE; // Ethernet padding: not part of the checksum
        }

        return frame;
    }

    /// <summary>The frame with its transport checksum as a device with TX checksum offload would receive it: the folded pseudo-header sum.</summary>
    private static byte[] Partial(byte[] full, bool ipv6, byte protocol)
    {
        var frame = (byte[])full.Clone();
        var ip = frame.AsSpan(14);
        var l4 = 14 + (ipv6 ? 40 : 20);
        var l4Length = ipv6 ? BinaryPrimitives.ReadUInt16BigEndian(ip[4..]) : BinaryPrimitives.ReadUInt16BigEndian(ip[2..]) - 20;
        var pseudo = ipv6
            ? Checksum.Add(ip.Slice(8, 32)) + protocol + (ulong)l4Length
            : Checksum.Add(ip.Slice(12, 8)) + protocol + (ulong)l4Length;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(l4 + (protocol == IpProtocol.Tcp ? 16 : 6)), Checksum.Fold(pseudo));
        return frame;
    }

    private static bool Finish(byte[] frame)
    {
        fixed (byte* p = frame)
        {
            return XdpChecksum.FinishIfPartial(p, frame.Length);
        }
    }

    [Theory]
    [InlineData(false, IpProtocol.Tcp, 0, 0)]
    [InlineData(false, IpProtocol.Tcp, 1, 0)]
    [InlineData(false, IpProtocol.Udp, 18, 0)]
    [InlineData(false, IpProtocol.Udp, 5, 13)]   // short frame with Ethernet padding
    [InlineData(true, IpProtocol.Tcp, 1200, 0)]
    [InlineData(true, IpProtocol.Udp, 33, 0)]
    public void A_partial_checksum_is_finished_and_a_full_one_is_left_alone(bool ipv6, byte protocol, int payload, int padding)
    {
        var full = Frame(ipv6, protocol, payload, padding);
        Assert.Equal(ParseError.None, L4Checksum.Complete(full, 14));
        var partial = Partial(full, ipv6, protocol);
        Assert.NotEqual(full, partial);

        Assert.True(Finish(partial));
        Assert.Equal(full, partial);
        Assert.True(L4Checksum.IsValid(partial, 14));

        var untouched = (byte[])full.Clone();
        Assert.False(Finish(untouched));
        Assert.Equal(full, untouched);
    }

    [Fact]
    public void Finishing_a_partial_checksum_gives_the_full_one_and_a_full_one_stays_as_it_is_for_any_payload()
    {
        Prop.ForAll(
            ArbMap.Default.ArbFor<(bool, bool, byte[])>(),
            ((bool Ipv6, bool Tcp, byte[] Payload) c) =>
            {
                var protocol = c.Tcp ? IpProtocol.Tcp : IpProtocol.Udp;
                var payload = c.Payload.Length > 1400 ? c.Payload[..1400] : c.Payload;
                var full = Frame(c.Ipv6, protocol, payload.Length);
                payload.CopyTo(full, full.Length - payload.Length);
                L4Checksum.Complete(full, 14);
                var partial = Partial(full, c.Ipv6, protocol);
                var copy = (byte[])full.Clone();
                _ = Finish(partial);
                _ = Finish(copy);
                return full.AsSpan().SequenceEqual(partial) && full.AsSpan().SequenceEqual(copy) && L4Checksum.IsValid(partial, 14);
            }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Fragments_udp_without_checksum_and_other_frames_are_left_alone()
    {
        var fragment = Frame(false, IpProtocol.Udp, 20, fragment: 0x2000);
        var partial = Partial(fragment, false, IpProtocol.Udp);
        var copy = (byte[])partial.Clone();
        Assert.False(Finish(copy));
        Assert.Equal(partial, copy);

        var noChecksum = Frame(false, IpProtocol.Udp, 20);
        Assert.False(Finish(noChecksum));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(noChecksum.AsSpan(14 + 20 + 6)));

        Assert.False(Finish(TestFrame(1)));
        Assert.False(Finish(Partial(Frame(false, IpProtocol.Tcp, 10), false, IpProtocol.Tcp)[..40]));
    }

    [Fact]
    public void On_a_veth_a_kernel_hosts_partial_udp_and_tcp_checksums_are_finished_by_the_xdp_receive()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(256);
        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.77.0.1/24", "dev", net.LinkA);
        Ip.Run("-n", net.NamespaceA, "neigh", "add", "10.77.0.2", "lladdr", "02:00:00:00:00:0b", "dev", net.LinkA);
        string PeerFeatures() => Ip.TryRun("netns", "exec", net.NamespaceA, "ethtool", "-k", net.LinkA).Output;
        Assert.Contains("tcp-segmentation-offload: on", PeerFeatures(), StringComparison.Ordinal);
        AfPacketPort b;
        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            b = new AfPacketPort(new AfPacketPortOptions { InterfaceName = net.LinkB, Kind = PortKind.Access, XdpReceive = true });
        }

        using (b)
        {
            Assert.True(b.ReceivesWithXdp, b.XdpError);

            // GSO: while an XDP program is attached, veth takes the software GSO features off its peer, so the
            // peer's stack segments before the hook and no super-frame reaches the RX ring.
            Assert.Contains("tcp-segmentation-offload: off", PeerFeatures(), StringComparison.Ordinal);
            Socket udp, tcp;
            using (NetworkNamespace.Enter(net.NamespaceA))
            {
                udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
            }

            using (udp)
            using (tcp)
            {
                udp.SendTo(new byte[32], new IPEndPoint(IPAddress.Parse("10.77.0.2"), 9999));
                try
                {
                    tcp.Connect(new IPEndPoint(IPAddress.Parse("10.77.0.2"), 9998)); // a SYN, nobody answers
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
                {
                }

                static bool IsIpv4Transport(byte[] f) =>
                    f.Length > 34 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800 && f[23] is 6 or 17;

                // The SYN goes out again after a second unanswered: a receive that starts late on a loaded machine can
                // find that retransmission too. Every frame that arrived was finished once, no more.
                var got = Collect(b, pool, 2, (_, f) => IsIpv4Transport(f));
                Assert.Equal(1, got.Count(r => r.Bytes[23] == 17));
                Assert.Contains(got, r => r.Bytes[23] == 6);
                foreach (var r in got)
                {
                    Assert.True(L4Checksum.IsValid(r.Bytes, 14), $"protocol {r.Bytes[23]}: finished");
                }

                Assert.Equal(got.Count, b.Counters.RxChecksumsFinished);
            }
        }

        Assert.Equal(0, pool.Outstanding);
    }
}
