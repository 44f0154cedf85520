using System.Buffers.Binary;
using System.Net;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

public sealed class VxlanRawTransmitTests
{
    private static readonly UnderlayPath Path = new(
        UnderlayState.Resolved, 7, 1500, 0x02_00_00_00_00_01UL, 0x02_00_00_00_00_02UL, 0xC000_0201u, 0xC000_0202u);

    [Fact]
    public void Outer_headers_decode_with_the_packet_parsers()
    {
        var random = new Random(7348);
        for (var n = 0; n < 500; n++)
        {
            var path = Path with { SourceIp = (uint)random.NextInt64(1, uint.MaxValue), DestinationIp = (uint)random.NextInt64(1, uint.MaxValue) };
            var inner = random.Next(14, 1450);
            var vni = (uint)random.Next(1 << 24);
            var sourcePort = (ushort)random.Next(49152, 65536);
            var frame = new byte[UnderlayPath.OuterLength + VxlanHeader.Length + inner];
            VxlanHeader.Write(frame.AsSpan(UnderlayPath.OuterLength), vni);
            path.Write(frame, VxlanHeader.Length + inner, sourcePort, 4789, path.HeaderSum);

            Assert.Equal(ParseError.None, EthernetHeader.TryParse(frame, out var eth));
            Assert.Equal(new MacAddress(0x02_00_00_00_00_02UL), eth.Destination);
            Assert.Equal(new MacAddress(0x02_00_00_00_00_01UL), eth.Source);
            Assert.Equal(EtherType.Ipv4, eth.EtherType);
            Assert.Equal(ParseError.None, Ipv4Header.TryParse(eth.Payload, out var ip));
            Assert.True(ip.IsHeaderChecksumValid, $"IPv4 header checksum, case {n}");
            Assert.Equal(frame.Length - EthernetHeader.Length, ip.TotalLength);
            Assert.Equal(64, ip.Ttl);
            Assert.Equal(17, ip.Protocol);
            Assert.True(ip.DontFragment);
            Assert.False(ip.IsFragment);
            Assert.Equal(path.SourceIp, ip.Source.Value);
            Assert.Equal(path.DestinationIp, ip.Destination.Value);
            Assert.Equal(ParseError.None, UdpHeader.TryParse(ip.Payload, out var udp));
            Assert.Equal(sourcePort, udp.SourcePort);
            Assert.Equal(4789, udp.DestinationPort);
            Assert.Equal(0, udp.Checksum); // RFC 7348 §5: zero over IPv4
            Assert.Equal(8 + VxlanHeader.Length + inner, udp.DatagramLength);
            Assert.Equal(ParseError.None, VxlanHeader.TryParse(udp.Payload, out var vxlan));
            Assert.Equal(vni, vxlan.Vni);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Falls_back_to_the_socket_until_the_next_hop_resolves_then_sends_raw_with_the_flow_source_port(bool xdp)
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.79.0.1/24", "dev", net.LinkA);
        Ip.Run("-n", net.NamespaceB, "addr", "add", "10.79.0.2/24", "dev", net.LinkB);
        var pool = new PacketPool(512);
        VxlanUdpPort x, y;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            x = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.79.0.1"), Name = "x", XdpTransmit = xdp });
        }

        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            y = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.79.0.2"), Name = "y", RawTransmit = false });
        }

        using (x)
        using (y)
        {
            Assert.Null(x.XdpError);
            Assert.Equal(xdp, x.TransmitsWithXdp);
            var queue = new TxQueue();

            // Nothing in A's neighbor table yet: the UDP socket sends it (and the kernel ARPs).
            EnqueueWithSourcePort(queue, pool, -1, 0x0A4F0002, 50000);
            x.Transmit(queue, pool);
            Assert.Equal((0L, 1L), (x.Counters.TxRaw, x.Counters.TxRawFallback));
            var first = Assert.Single(Collect(y, pool, 1, (_, _) => true));
            Assert.Equal(4789, first.Meta.RemotePort); // the socket's own port: it cannot vary
            Assert.Equal(UnderlayState.Unresolved, Assert.Single(x.RawPaths()).State);

            WaitForNeighbor(net.NamespaceA, "10.79.0.2");
            x.RefreshKernelCounters(); // the heartbeat re-resolves
            var path = Assert.Single(x.RawPaths());
            Assert.Equal(UnderlayState.Resolved, path.State);
            Assert.Equal(LinkMac(net.NamespaceB, net.LinkB), new MacAddress(path.NextHopMac));
            Assert.Equal(LinkMac(net.NamespaceA, net.LinkA), new MacAddress(path.SourceMac));

            const int count = 150;
            for (var i = 0; i < count; i++)
            {
                EnqueueWithSourcePort(queue, pool, i, 0x0A4F0002, (ushort)(49152 + (i * 97 % 16384)));
            }

            x.Transmit(queue, pool);
            Assert.Equal((count, 1L), (x.Counters.TxRaw, x.Counters.TxRawFallback));
            Assert.Equal(count + 1, x.Counters.TxPackets);

            // The receiving kernel accepted them (IPv4 checksum, lengths) and delivered them to its UDP socket.
            var got = Collect(y, pool, count, (_, _) => true);
            Assert.Equal(count, got.Count);
            Assert.All(got, r => Assert.Equal(0x0A4F0001u, r.Meta.RemoteVtep));
            var bySequence = got.ToDictionary(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14)));
            for (var i = 0; i < count; i++)
            {
                Assert.Equal(Payload(i), bySequence[i].Bytes);
                Assert.Equal(49152 + (i * 97 % 16384), bySequence[i].Meta.RemotePort);
            }

            if (xdp)
            {
                // Through the AF_XDP TX ring: in order, counted by payload, every chunk completed.
                Assert.Equal(Enumerable.Range(0, count), got.Select(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14))));
                Assert.Equal(first.Bytes.Length + got.Sum(r => (long)r.Bytes.Length), x.Counters.TxBytes);
                Assert.Equal(0, WaitForCompletions(x.XdpTxRing!));
            }
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Underlay_receive_through_af_xdp_takes_vxlan_datagrams_and_leaves_fragments_and_arp_to_the_kernel(bool xdpTransmit)
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.79.2.1/24", "dev", net.LinkA);
        Ip.Run("-n", net.NamespaceB, "addr", "add", "10.79.2.2/24", "dev", net.LinkB);
        var pool = new PacketPool(512);
        VxlanUdpPort x, y;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            x = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.79.2.1"), Name = "x" });
        }

        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            // Receive and (on the same AF_XDP socket) transmit, or receive only.
            y = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.79.2.2"), Name = "y", XdpReceive = true, XdpTransmit = xdpTransmit });
        }

        long UdpInDatagrams()
        {
            var lines = Ip.TryRun("netns", "exec", net.NamespaceB, "cat", "/proc/net/snmp").Output.Split('\n').Where(l => l.StartsWith("Udp: ", StringComparison.Ordinal)).ToArray();
            return long.Parse(lines[1].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }

        using (x)
        using (y)
        {
            Assert.Null(y.XdpError);
            Assert.True(y.ReceivesWithXdp);
            Assert.Equal(xdpTransmit, y.TransmitsWithXdp);
            var before = UdpInDatagrams();
            var queue = new TxQueue();

            // x's first datagram leaves through its UDP socket: A's kernel ARPs, and B's kernel answers (ARP passes).
            EnqueueWithSourcePort(queue, pool, -1, 0x0A4F0202, 50000);
            x.Transmit(queue, pool);
            Assert.Single(Collect(y, pool, 1, (_, _) => true));
            WaitForNeighbor(net.NamespaceA, "10.79.2.2");
            x.RefreshKernelCounters();
            const int count = 120;
            for (var i = 0; i < count; i++)
            {
                EnqueueWithSourcePort(queue, pool, i, 0x0A4F0202, (ushort)(49152 + i));
            }

            x.Transmit(queue, pool);
            var got = Collect(y, pool, count, (_, _) => true);
            Assert.Equal(Enumerable.Range(0, count).Select(Payload), got.Select(r => r.Bytes));
            Assert.All(got, r => Assert.Equal(0x0A4F0201u, r.Meta.RemoteVtep));
            Assert.Equal(Enumerable.Range(49152, count), got.Select(r => (int)r.Meta.RemotePort));
            Assert.Equal(before, UdpInDatagrams()); // none went through B's UDP stack

            // A datagram too long for the MTU arrives fragmented: the program passes the fragments, the kernel
            // reassembles them and the port reads the datagram from its UDP socket.
            using (NetworkNamespace.Enter(net.NamespaceA))
            {
                using var udp = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
                udp.SendTo(Enumerable.Range(0, 1600).Select(i => (byte)i).ToArray(), new IPEndPoint(IPAddress.Parse("10.79.2.2"), 4789));
            }

            var big = Assert.Single(Collect(y, pool, 1, (_, _) => true));
            Assert.Equal(1600, big.Bytes.Length);
            Assert.Equal(before + 1, UdpInDatagrams());
            Assert.Equal(0, y.Counters.RxMalformed);

            if (xdpTransmit)
            {
                // The same socket transmits: y's raw frames back to x leave through its TX ring.
                Ip.Run("-n", net.NamespaceB, "neigh", "replace", "10.79.2.1", "lladdr", LinkMac(net.NamespaceA, net.LinkA).ToString(), "dev", net.LinkB, "nud", "permanent");
                EnqueueWithSourcePort(queue, pool, 1000, 0x0A4F0201, 50001);
                y.Transmit(queue, pool); // resolves the path
                var first = Assert.Single(Collect(x, pool, 1, (_, _) => true));
                for (var i = 0; i < 10; i++)
                {
                    EnqueueWithSourcePort(queue, pool, 2000 + i, 0x0A4F0201, 50002);
                }

                y.Transmit(queue, pool);
                Assert.Equal(Enumerable.Range(2000, 10).Select(Payload), Collect(x, pool, 10, (_, _) => true).Select(r => r.Bytes));
                Assert.True(y.XdpTxRing!.InFlight <= 11);
            }
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void A_stale_neighbor_gets_one_datagram_through_the_socket_per_refresh_so_the_kernel_confirms_it()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.79.1.1/24", "dev", net.LinkA);
        Ip.Run("-n", net.NamespaceB, "addr", "add", "10.79.1.2/24", "dev", net.LinkB);
        Ip.Run("-n", net.NamespaceA, "neigh", "replace", "10.79.1.2", "lladdr", LinkMac(net.NamespaceB, net.LinkB).ToString(),
            "dev", net.LinkA, "nud", "permanent");
        var pool = new PacketPool(256);
        VxlanUdpPort x, y;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            x = new VxlanUdpPort(new VxlanUdpPortOptions
            {
                LocalAddress = IPAddress.Parse("10.79.1.1"),
                Resolver = new StaleResolver(new NetlinkUnderlayResolver()),
            });
        }

        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            y = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.79.1.2"), RawTransmit = false });
        }

        using (x)
        using (y)
        {
            var queue = new TxQueue();
            for (var round = 1; round <= 2; round++)
            {
                for (var i = 0; i < 10; i++)
                {
                    EnqueueWithSourcePort(queue, pool, (round * 100) + i, 0x0A4F0102, 50000);
                }

                x.Transmit(queue, pool);
                Assert.Equal((10L * round - round, (long)round), (x.Counters.TxRaw, x.Counters.TxRawFallback));
                var got = Collect(y, pool, 10, (_, _) => true);
                Assert.Equal(10, got.Count);

                // Socket first: the re-confirmation datagram does not overtake the raw frames behind it.
                Assert.Equal(Enumerable.Range((round * 100), 10), got.Select(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14))));
                x.RefreshKernelCounters();
            }
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Raw_transmit_off_or_a_local_route_always_uses_the_socket()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var ns = new TestNamespace();
        var pool = new PacketPool(64);
        VxlanUdpPort x, y, off;
        using (NetworkNamespace.Enter(ns.Name))
        {
            x = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("127.0.0.1"), Name = "x" });
            y = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("127.0.0.2"), Name = "y" });
            off = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("127.0.0.3"), Name = "off", RawTransmit = false });
        }

        using (x)
        using (y)
        using (off)
        {
            var queue = new TxQueue();
            EnqueueWithSourcePort(queue, pool, 1, 0x7F000002, 50000);
            x.Transmit(queue, pool);
            Assert.Equal(UnderlayState.KernelOnly, Assert.Single(x.RawPaths()).State);
            EnqueueWithSourcePort(queue, pool, 2, 0x7F000002, 50000);
            off.Transmit(queue, pool);
            Assert.Empty(off.RawPaths());
            Assert.Equal(2, Collect(y, pool, 2, (_, _) => true).Count);
            Assert.Equal((0L, 1L), (x.Counters.TxRaw, x.Counters.TxRawFallback));
            Assert.Equal((0L, 0L), (off.Counters.TxRaw, off.Counters.TxRawFallback));
        }

        Assert.Equal(0, pool.Outstanding);
    }

    /// <summary>The real path, reported STALE (the kernel wants the neighbor confirmed).</summary>
    private sealed class StaleResolver(IUnderlayResolver inner) : IUnderlayResolver
    {
        public UnderlayPath Resolve(uint destinationIp, uint sourceIp) =>
            inner.Resolve(destinationIp, sourceIp) with { State = UnderlayState.Stale };

        public void Dispose() => inner.Dispose();
    }

    private static byte[] Payload(int sequence)
    {
        var inner = TestFrame(sequence);
        var p = new byte[8 + inner.Length];
        p[0] = 0x08;
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(4), 5010u << 8);
        inner.CopyTo(p, 8);
        return p;
    }

    private static void EnqueueWithSourcePort(TxQueue queue, PacketPool pool, int sequence, uint destination, ushort sourcePort) =>
        Enqueue(queue, pool, Payload(sequence), destination, sourcePort: sourcePort);

    private static void WaitForNeighbor(string ns, string address)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            var (_, output) = Ip.TryRun("-n", ns, "neigh", "show", address);
            if (output.Contains("REACHABLE", StringComparison.Ordinal))
            {
                return;
            }

            Thread.Sleep(20);
        }

        Assert.Fail($"the kernel in {ns} never resolved {address}");
    }

    private static MacAddress LinkMac(string ns, string link)
    {
        var (_, output) = Ip.TryRun("-n", ns, "-o", "link", "show", "dev", link);
        var at = output.IndexOf("link/ether ", StringComparison.Ordinal);
        return MacAddress.Parse(output.AsSpan(at + 11, 17));
    }
}
