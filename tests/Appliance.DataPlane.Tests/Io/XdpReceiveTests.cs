using System.Runtime.InteropServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>AF_XDP receive: the ring walk over plain memory standing in for the kernel, then a real veth.</summary>
public sealed unsafe class XdpReceiveTests
{
    /// <summary>Rings and a UMEM in ordinary memory; <see cref="Post"/> plays the kernel's part.</summary>
    private sealed class FakeRings : IDisposable
    {
        public const int Size = 8;
        public const int Chunk = 2048;
        private readonly uint* _indices = (uint*)NativeMemory.AllocZeroed(4 * sizeof(uint));
        private readonly XdpDesc* _rx = (XdpDesc*)NativeMemory.AllocZeroed(Size * (nuint)sizeof(XdpDesc));
        private readonly ulong* _fill = (ulong*)NativeMemory.AllocZeroed(Size * sizeof(ulong));

        public FakeRings(uint start, bool underlay = false)
        {
            // Indices close to wrapping: they are free-running 32-bit counters.
            _indices[0] = _indices[1] = start;
            _indices[2] = _indices[3] = start;
            Umem = (byte*)NativeMemory.AllocZeroed(Size * Chunk);
            Ring = new XdpRxRing(_indices, _indices + 1, _rx, Size, _indices + 2, _indices + 3, _fill, Size, Umem, Chunk) { UnderlayUdp = underlay };
            Ring.Prime(Size, Chunk);
        }

        public byte* Umem { get; }

        public XdpRxRing Ring { get; }

        public uint RxConsumer => _indices[1];

        /// <summary>The kernel: takes a chunk from the fill ring, writes the frame 256 bytes into it, posts it on RX.</summary>
        public ulong Post(ReadOnlySpan<byte> frame)
        {
            var chunk = _fill[_indices[3] & (Size - 1)];
            _indices[3]++;
            var address = chunk + 256;
            frame.CopyTo(new Span<byte>(Umem + address, frame.Length));
            _rx[_indices[0] & (Size - 1)] = new XdpDesc { Address = address, Length = (uint)frame.Length };
            _indices[0]++;
            return chunk;
        }

        /// <summary>The last <paramref name="n"/> chunks given back on the fill ring.</summary>
        public List<ulong> Refilled(int n)
        {
            var chunks = new List<ulong>();
            for (var i = n; i > 0; i--)
            {
                chunks.Add(_fill[(_indices[2] - (uint)i) & (Size - 1)]);
            }

            return chunks;
        }

        public void Dispose()
        {
            NativeMemory.Free(_indices);
            NativeMemory.Free(_rx);
            NativeMemory.Free(_fill);
            NativeMemory.Free(Umem);
        }
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(uint.MaxValue - 2)]
    public void Frames_on_the_rx_ring_enter_the_batch_in_order_and_their_chunks_go_back_to_the_fill_ring(uint start)
    {
        using var rings = new FakeRings(start);
        var pool = new PacketPool(64);
        var batch = new PacketBatch();
        var counters = new PortCounters();
        Assert.Equal(FakeRings.Size, rings.Ring.FillQueued);

        var chunks = new List<ulong>();
        for (var i = 0; i < 5; i++)
        {
            chunks.Add(rings.Post(TestFrame(i)));
        }

        Assert.Equal(5, rings.Ring.Available);
        Assert.Equal(3, rings.Ring.Receive(batch, pool, 2, max: 3, counters)); // at most max per call
        Assert.Equal(2, rings.Ring.Receive(batch, pool, 2, max: 64, counters));
        Assert.Equal(0, rings.Ring.Receive(batch, pool, 2, max: 64, counters));
        Assert.Equal(5, batch.Count);
        for (var i = 0; i < 5; i++)
        {
            ref var m = ref batch.Packets[i];
            Assert.Equal(2, m.IngressPort);
            Assert.Equal(PacketPool.Headroom, m.Offset);
            Assert.Equal(TestFrame(i), pool.Frame(m.Buffer, m.Offset, m.Length).ToArray());
        }

        Assert.Equal(5, counters.RxPackets);
        Assert.Equal(start + 5, rings.RxConsumer);
        Assert.Equal(chunks, rings.Refilled(5));
        Assert.Equal(FakeRings.Size, rings.Ring.FillQueued); // every chunk is the kernel's again

        // Around the ring more than once: slots and chunks are reused.
        foreach (ref var m in batch.Packets)
        {
            pool.Return(m.Buffer);
        }

        batch.Clear();
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < FakeRings.Size; i++)
            {
                rings.Post(TestFrame(100 + i));
            }

            Assert.Equal(FakeRings.Size, rings.Ring.Receive(batch, pool, 0, 64, counters));
            Assert.Equal(TestFrame(107), pool.Frame(batch.Packets[7].Buffer, PacketPool.Headroom, batch.Packets[7].Length).ToArray());
            foreach (ref var m in batch.Packets)
            {
                pool.Return(m.Buffer);
            }

            batch.Clear();
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void A_frame_longer_than_a_pool_slot_or_without_a_buffer_is_counted_and_its_chunk_still_returns()
    {
        using var rings = new FakeRings(0);
        var pool = new PacketPool(1);
        var batch = new PacketBatch();
        var counters = new PortCounters();
        rings.Post(new byte[PacketPool.MaxFrame + 1]);
        rings.Post(TestFrame(1));
        rings.Post(TestFrame(2)); // the pool has one buffer only

        Assert.Equal(1, rings.Ring.Receive(batch, pool, 0, 64, counters));
        Assert.Equal(1, counters.RxTruncated);
        Assert.Equal(1, counters.RxNoBuffer);
        Assert.Equal(TestFrame(1), pool.Frame(batch.Packets[0].Buffer, PacketPool.Headroom, batch.Packets[0].Length).ToArray());
        Assert.Equal(FakeRings.Size, rings.Ring.FillQueued);
        Assert.Equal(0, rings.Ring.Available);
    }

    /// <summary>An underlay frame: Ethernet, IPv4 10.9.0.1 → 10.9.0.2 (header checksum right), UDP 50000 → 4789 with <paramref name="payload"/>.</summary>
    private static byte[] UnderlayFrame(byte[] payload, ushort udpChecksum = 0)
    {
        var frame = new byte[42 + payload.Length];
        MacB.CopyTo(frame, 0);
        MacA.CopyTo(frame, 6);
        frame[12] = 0x08;
        var ip = frame.AsSpan(14);
        ip[0] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(28 + payload.Length));
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 17;
        new byte[] { 10, 9, 0, 1, 10, 9, 0, 2 }.CopyTo(ip[12..]);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Isthmus.Packets.Checksum.Compute(ip[..20]));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[20..], 50000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[22..], 4789);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[24..], (ushort)(8 + payload.Length));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[26..], udpChecksum);
        payload.CopyTo(frame, 42);
        return frame;
    }

    [Fact]
    public void Underlay_frames_enter_the_batch_as_their_udp_payload_with_the_sender_and_bad_headers_are_counted()
    {
        using var rings = new FakeRings(uint.MaxValue - 3, underlay: true);
        var pool = new PacketPool(64);
        var batch = new PacketBatch();
        var counters = new PortCounters();
        var payload = TestFrame(7);

        var good = UnderlayFrame(payload);
        var withChecksum = UnderlayFrame(payload);
        Assert.Equal(Isthmus.Packets.ParseError.None, Isthmus.Packets.L4Checksum.Complete(withChecksum, 14));
        var badUdpChecksum = (byte[])withChecksum.Clone();
        badUdpChecksum[^1] ^= 0xFF;
        var badIpChecksum = UnderlayFrame(payload);
        badIpChecksum[14 + 10] ^= 0x01;
        var badLength = UnderlayFrame(payload);
        badLength[14 + 25] ^= 0x04; // UDP length no longer matches the IP total length
        var shortFrame = good[..40];
        foreach (var f in new[] { good, withChecksum, badUdpChecksum, badIpChecksum, badLength, shortFrame })
        {
            rings.Post(f);
        }

        Assert.Equal(2, rings.Ring.Receive(batch, pool, 3, 64, counters));
        Assert.Equal(4, counters.RxMalformed);
        Assert.Equal(FakeRings.Size, rings.Ring.FillQueued);
        foreach (ref var m in batch.Packets)
        {
            Assert.Equal(payload, pool.Frame(m.Buffer, m.Offset, m.Length).ToArray());
            Assert.Equal(0x0A090001u, m.RemoteVtep);
            Assert.Equal(50000, m.RemotePort);
            Assert.Equal(3, m.IngressPort);
            pool.Return(m.Buffer);
        }

        Assert.Equal((2L, (long)(2 * payload.Length)), (counters.RxPackets, counters.RxBytes));
        Assert.Equal(0, pool.Outstanding);
    }

    /// <summary>
    /// The wire benchmark's VTEP-emulating generator (WireGen --vxlan): its frame parses as valid VXLAN with the
    /// Packets parsers (outer IPv4 checksum right, DF clear, UDP checksum 0, I flag, the VNI, the inner frame with its
    /// own UDP checksum right), and the appliance's underlay receive takes it as a datagram from the emulated VTEP.
    /// </summary>
    [Fact]
    public void The_wire_generators_vtep_frame_is_valid_vxlan_and_passes_the_underlay_checks()
    {
        var inner = new Ipv4FrameSpec(
            MacAddress.Parse("02:00:00:00:10:11"), MacAddress.Parse("02:00:00:00:10:10"), Ipv4Address.Parse("10.10.0.11"), Ipv4Address.Parse("10.10.0.98"));
        var vtep = new Isthmus.Benchmarks.Wire.VtepSpec(
            MacAddress.Parse("02:00:00:00:02:02"), MacAddress.Parse("02:00:00:00:02:01"), Ipv4Address.Parse("192.0.2.2"), Ipv4Address.Parse("192.0.2.1"),
            5010, 49152, 4789);
        var buffer = new byte[Isthmus.Benchmarks.Wire.WireFrame.MaxLength];
        var plainLength = Isthmus.Benchmarks.Wire.WireFrame.Write(buffer, inner, 40000, 9, 60, vtep: null);
        var plain = buffer[..plainLength];
        var length = Isthmus.Benchmarks.Wire.WireFrame.Write(buffer, inner, 40000, 9, 60, vtep);
        var frame = buffer[..length];
        Assert.Equal((60, 110), (plainLength, length));

        Assert.Equal(ParseError.None, EthernetHeader.TryParse(frame, out var eth));
        Assert.Equal((vtep.DestinationMac, vtep.SourceMac, EtherType.Ipv4), (eth.Destination, eth.Source, eth.EtherType));
        Assert.Equal(ParseError.None, Ipv4Header.TryParse(frame.AsSpan(EthernetHeader.Length), out var ip));
        Assert.True(ip.IsHeaderChecksumValid);
        Assert.Equal((vtep.SourceIp, vtep.DestinationIp, IpProtocol.Udp, false, false), (ip.Source, ip.Destination, ip.Protocol, ip.DontFragment, ip.IsFragment));
        Assert.Equal(ParseError.None, UdpHeader.TryParse(ip.Payload, out var udp));
        Assert.Equal((49152, 4789, 0), (udp.SourcePort, udp.DestinationPort, udp.Checksum));
        Assert.Equal(ParseError.None, VxlanHeader.TryParse(udp.Payload, out var vxlan));
        Assert.Equal(5010u, vxlan.Vni);
        Assert.False(vxlan.HasReservedBitsSet);
        Assert.Equal(plain, vxlan.InnerFrame.ToArray());
        Assert.NotEqual(0, (plain[40] << 8) | plain[41]); // the inner UDP checksum is filled in, and right
        Assert.True(L4Checksum.IsValid(plain, EthernetHeader.Length));

        // The appliance's AF_XDP underlay path: accepted (not rxMalformed), the sender is the emulated VTEP.
        using var rings = new FakeRings(0, underlay: true);
        var pool = new PacketPool(8);
        var batch = new PacketBatch();
        var counters = new PortCounters();
        rings.Post(frame);
        Assert.Equal(1, rings.Ring.Receive(batch, pool, 0, 64, counters));
        Assert.Equal(0, counters.RxMalformed);
        ref var m = ref batch.Packets[0];
        Assert.Equal((0xC0000202u, (ushort)49152), (m.RemoteVtep, m.RemotePort));
        Assert.Equal(udp.Payload.ToArray(), pool.Frame(m.Buffer, m.Offset, m.Length).ToArray());
        pool.Return(m.Buffer);
    }

    [Fact]
    public void The_underlay_program_matches_ipv4_udp_to_the_address_and_port_and_passes_the_rest()
    {
        var p = XdpSocket.UdpProgram(9, 0x0A090002, 4789);
        Assert.Equal(27, p.Length);
        Assert.Equal(0x0000_0009_0000_1118UL, p[20]); // lddw r1, map fd 9
        Assert.Equal(0x0000_0033_0000_0085UL, p[23]); // call bpf_redirect_map
        Assert.Equal(0x0000_0002_0000_00b7UL, p[25]); // pass: r0 = XDP_PASS
        for (var pc = 0; pc < p.Length; pc++)
        {
            var code = (byte)p[pc];
            if (code is 0x55 or 0x56 or 0x2d)
            {
                Assert.Equal(25, pc + 1 + (short)(ushort)(p[pc] >> 16)); // every test fails to "pass"
            }
        }

        Assert.Equal(0xB512, (int)(p[16] >> 32));             // port 4789 as a little-endian load sees it
        Assert.Equal(0x0200_090Au, (uint)(p[18] >> 32));      // 10.9.0.2 likewise, compared as 32 bits
        Assert.Equal(0x56, (byte)p[18]);
        var any = XdpSocket.UdpProgram(9, 0, 4789);
        Assert.Equal(0x05UL, any[17]);                        // no address: two no-op jumps
        Assert.Equal(0x05UL, any[18]);
    }

    [Fact]
    public void The_program_is_six_instructions_redirecting_by_queue_index_with_pass_as_fallback()
    {
        var p = XdpSocket.Program(7);
        Assert.Equal(6, p.Length);
        Assert.Equal(0x0000_0000_0010_1261UL, p[0]); // ldxw r2, [r1 + 16]
        Assert.Equal(0x0000_0007_0000_1118UL, p[1]); // lddw r1, map fd 7 (pseudo map fd)
        Assert.Equal(0UL, p[2]);
        Assert.Equal(0x0000_0002_0000_03b7UL, p[3]); // mov r3, XDP_PASS
        Assert.Equal(0x0000_0033_0000_0085UL, p[4]); // call 51 (bpf_redirect_map)
        Assert.Equal(0x95UL, p[5]);                  // exit
    }

    [Fact]
    public void On_a_veth_frames_arrive_through_af_xdp_and_a_full_ring_drops_in_the_kernel()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair(ipv6: false); // nothing but the test's frames: the ring is empty once they are read
        var pool = new PacketPool(8192);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA, kind: PortKind.Access);
        AfPacketPort b;
        const int RingFrames = 1024;
        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            b = new AfPacketPort(new AfPacketPortOptions { InterfaceName = net.LinkB, Kind = PortKind.Access, XdpReceive = true, XdpRingFrames = RingFrames });
        }

        using (b)
        {
            Assert.Null(b.XdpError);
            Assert.True(b.ReceivesWithXdp);
            var queue = new TxQueue();
            for (var i = 0; i < 50; i++)
            {
                Enqueue(queue, pool, TestFrame(i));
            }

            a.Transmit(queue, pool);
            var got = Collect(b, pool, 50, (_, f) => IsTestFrame(f));
            Assert.False(b.HasPendingFrames);
            Assert.Equal(Enumerable.Range(0, 50).Select(i => TestFrame(i)), got.Select(r => r.Bytes));
            b.RefreshKernelCounters();
            Assert.Equal(0, b.Counters.RxKernelDrops);

            // Nobody reads: past the ring's 1024 frames the kernel drops, and says so, once per frame: as many as the
            // veth counts in rx_dropped (its XDP redirect to the socket failing), not twice (the fill ring's empty
            // count repeats each such drop in copy mode).
            var vethDrops = WireGenDropSinkTests.LinkStatistic(net.NamespaceB, net.LinkB, "rx_dropped");
            for (var round = 0; round < 100; round++)
            {
                for (var i = 0; i < 64; i++)
                {
                    Enqueue(queue, pool, TestFrame(1000 + i));
                }

                a.Transmit(queue, pool);
            }

            // The veth's NAPI may still be draining the last frames when Transmit returns, so the two counters are read
            // until they agree or ten seconds pass (a CI run once read 5,377 against 5,378 in between): a double count
            // never agrees, and the assertion below still fails on it.
            long vethDelta = 0;
            _ = Eventually(() =>
            {
                b.RefreshKernelCounters();
                vethDelta = WireGenDropSinkTests.LinkStatistic(net.NamespaceB, net.LinkB, "rx_dropped") - vethDrops;
                return vethDelta == b.Counters.RxKernelDrops;
            });

            Assert.True(b.Counters.RxKernelDrops > 0, $"kernel drops {b.Counters.RxKernelDrops}");
            Assert.Equal(vethDelta, b.Counters.RxKernelDrops);
            Assert.True(b.HasPendingFrames, "a full ring is pending without a poll");
            var rest = Collect(b, pool, RingFrames, (_, f) => IsTestFrame(f), TimeSpan.FromSeconds(2));
            Assert.InRange(rest.Count, 1, RingFrames);
            Assert.Equal(0, pool.Outstanding);
        }
    }

    [Fact]
    public void The_default_ring_holds_a_failover_burst_of_10000_frames_while_nobody_reads()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        // A site failover: 10,000 RARPs in ~0.1 s while the worker is busy elsewhere (issue 6). The default ring keeps all.
        const int Burst = 10_000;
        Assert.True(XdpSocket.DefaultFrames >= Burst);
        using var net = new VethPair();
        var pool = new PacketPool(16384);
        using var a = OpenAfPacket(net.NamespaceA, net.LinkA, kind: PortKind.Access);
        AfPacketPort b;
        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            b = new AfPacketPort(new AfPacketPortOptions { InterfaceName = net.LinkB, Kind = PortKind.Access, XdpReceive = true });
        }

        using (b)
        {
            Assert.Null(b.XdpError);
            var queue = new TxQueue();
            for (var sent = 0; sent < Burst; sent += 50)
            {
                for (var i = 0; i < 50; i++)
                {
                    Enqueue(queue, pool, TestFrame(sent + i));
                }

                a.Transmit(queue, pool);
            }

            Assert.Equal(0, a.Counters.TxErrors);
            b.RefreshKernelCounters();
            Assert.Equal(0, b.Counters.RxKernelDrops);
            var got = Collect(b, pool, Burst, (_, f) => IsTestFrame(f), TimeSpan.FromSeconds(10));
            Assert.Equal(Enumerable.Range(0, Burst).Select(i => TestFrame(i)), got.Select(r => r.Bytes));
            Assert.Equal(0, pool.Outstanding);
        }
    }
}
