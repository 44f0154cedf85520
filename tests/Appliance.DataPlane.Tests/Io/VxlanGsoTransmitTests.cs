using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// VXLAN transmit through UDP GSO trains (<see cref="VxlanUdpPortOptions.UdpGsoTransmit"/>) on a real veth: what leaves
/// is one well-formed datagram per frame, counted by the receiving device and decoded by tshark.
/// </summary>
public sealed class VxlanGsoTransmitTests
{
    private const uint LocalA = 0x0A4E_0001; // 10.78.0.1
    private const uint VtepB = 0x0A4E_0002;  // 10.78.0.2
    private const uint VtepC = 0x0A4E_0003;  // 10.78.0.3, a second address of the same peer

    [Fact]
    public void A_train_longer_than_the_segment_limit_leaves_as_single_valid_vxlan_datagrams_with_the_flows_source_port()
    {
        if (!Requires.RootAndNetns() || !Requires.Tool("tshark") || !Requires.Tool("tcpdump") || !Requires.Tool("ethtool"))
        {
            return;
        }

        using var net = Pair(cutOnSender: true, checksumInSoftware: true);
        var pool = new PacketPool(1024);
        using (var ports = Open(net))
        {
            var (x, y) = (ports.Sender, ports.Receiver);
            Assert.True(x.TransmitsWithUdpGso);
            Assert.Equal(VxlanGsoSender.SocketCount, x.GsoSourcePorts.Length);
            Assert.All(x.GsoSourcePorts.ToArray(), p => Assert.InRange(p, 49152, 65535)); // RFC 7348 §5's range
            Prime(x, y, pool);

            const int count = 150;
            const ushort entropy = 0xC123;
            var expectedPort = x.GsoSourcePortFor(entropy);
            using var capture = Tshark.Start(net.NamespaceB, net.LinkB, count, $"udp dst port 4789 and udp src port {expectedPort}");
            var rxBefore = RxPackets(net.NamespaceB, net.LinkB);
            var queue = new TxQueue();
            for (var i = 0; i < count; i++)
            {
                Enqueue(queue, pool, Payload(i, 5010), VtepB, sourcePort: entropy);
            }

            var trainsBefore = x.Counters.TxGsoTrains;
            x.Transmit(queue, pool);
            Assert.Equal(3, x.Counters.TxGsoTrains - trainsBefore); // 64 + 64 + 22
            Assert.Equal(0, x.Counters.TxErrors);

            // The receiving device saw one packet per datagram (the sender cut the trains), the kernel's UDP stack
            // accepted each (lengths, checksum), in order, from the flow's source port.
            var got = Collect(y, pool, count, (m, _) => m.RemotePort == expectedPort);
            Assert.Equal(Enumerable.Range(0, count), got.Select(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14))));
            Assert.All(got, r => Assert.Equal(LocalA, r.Meta.RemoteVtep));
            Assert.All(got.Select((r, i) => (r, i)), p => Assert.Equal(Payload(p.i, 5010), p.r.Bytes));
            Assert.True(Eventually(() => RxPackets(net.NamespaceB, net.LinkB) - rxBefore >= count));
            Assert.Equal(count, RxPackets(net.NamespaceB, net.LinkB) - rxBefore);

            // An independent decoder agrees: VXLAN, VNI 5010, the inner frame, DF, a correct UDP checksum.
            var rows = capture.Rows();
            Assert.Equal(count, rows.Count);
            for (var i = 0; i < count; i++)
            {
                var f = rows[i];
                Assert.Equal("10.78.0.1", f[0]);
                Assert.Equal("10.78.0.2", f[1]);
                Assert.Equal(expectedPort.ToString(CultureInfo.InvariantCulture), f[2]);
                Assert.Equal("4789", f[3]);
                Assert.Equal("5010", f[4]);
                Assert.True(f[5] is "1" or "True" or "Set", $"DF: {string.Join('|', f)}");
                Assert.True(f[6] is "1" or "Good", $"UDP checksum status: {string.Join('|', f)}");
                Assert.EndsWith(",02:00:00:00:00:0b", f[7], StringComparison.Ordinal); // outer, inner destination MAC
                Assert.StartsWith(i.ToString("x8", CultureInfo.InvariantCulture), f[8], StringComparison.Ordinal); // the sequence
                Assert.Equal("", f[9]); // nothing malformed
            }
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void A_mixed_batch_to_two_vteps_arrives_whole_with_each_vteps_order_and_the_receiver_counts_every_datagram()
    {
        if (!Requires.RootAndNetns() || !Requires.Tool("ethtool"))
        {
            return;
        }

        using var net = Pair(cutOnSender: true, checksumInSoftware: false);
        Ip.Run("-n", net.NamespaceB, "addr", "add", "10.78.0.3/24", "dev", net.LinkB);
        var pool = new PacketPool(1024);
        using (var ports = Open(net, alsoOn: "10.78.0.3"))
        {
            var (x, y) = (ports.Sender, ports.Receiver);
            Prime(x, y, pool, VtepB, VtepC);
            var queue = new TxQueue();
            var sent = new List<(uint Vtep, int Sequence, int Padding, ushort Entropy)>();
            for (var i = 0; i < 300; i++)
            {
                // Two VTEPs interleaved, three flows, sizes in runs that change now and then.
                var vtep = i % 2 == 0 ? VtepB : VtepC;
                var entropy = (ushort)(49152 + (i % 3));
                var padding = (i / 10) % 4 == 3 ? (i / 10) * 37 % 900 : 0;
                Enqueue(queue, pool, Payload(i, vtep == VtepB ? 5010u : 5020u, padding), vtep, sourcePort: entropy);
                sent.Add((vtep, i, padding, entropy));
            }

            var plan = new VxlanTrainPlan(TxQueue.Capacity, VxlanGsoSender.SocketCount);
            var expectedTrains = plan.Plan(queue.Frames);
            var rxBefore = RxPackets(net.NamespaceB, net.LinkB);
            x.Transmit(queue, pool);
            Assert.Equal(expectedTrains, x.Counters.TxGsoTrains - 2); // Prime sent two
            Assert.True(expectedTrains <= sent.Count / 3, $"{expectedTrains} trains for 300 datagrams"); // 6 groups, sizes changing every 10
            Assert.Equal(0, x.Counters.TxErrors);

            var got = Collect(y, pool, sent.Count, (m, b) => b.Length >= 8 + 14 + 4 && BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(8 + 14)) >= 0);
            Assert.Equal(sent.Count, got.Count);
            Assert.True(Eventually(() => RxPackets(net.NamespaceB, net.LinkB) - rxBefore >= sent.Count));
            Assert.Equal(sent.Count, RxPackets(net.NamespaceB, net.LinkB) - rxBefore);
            foreach (var flow in got.GroupBy(r => (r.Meta.RemotePort, BinaryPrimitives.ReadUInt32BigEndian(r.Bytes.AsSpan(4)))))
            {
                // Each flow (one source port to one VTEP, told apart here by the VNI) in its order; each datagram as
                // sent, from its flow's port. Datagrams to different VTEPs may overtake one another.
                var sequences = flow.Select(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14))).ToList();
                Assert.Equal(sequences.Order(), sequences);
                foreach (var r in flow)
                {
                    var s = sent[BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14))];
                    Assert.Equal(Payload(s.Sequence, s.Vtep == VtepB ? 5010u : 5020u, s.Padding), r.Bytes);
                    Assert.Equal(x.GsoSourcePortFor(s.Entropy), r.Meta.RemotePort);
                }
            }
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Datagrams_over_the_underlay_mtu_are_counted_drops_and_the_rest_of_the_batch_still_leaves()
    {
        if (!Requires.RootAndNetns() || !Requires.Tool("ethtool"))
        {
            return;
        }

        using var net = Pair(cutOnSender: true, checksumInSoftware: false);
        Ip.Run("-n", net.NamespaceA, "link", "set", net.LinkA, "mtu", "1000");
        var pool = new PacketPool(1024);
        using (var ports = Open(net))
        {
            var (x, y) = (ports.Sender, ports.Receiver);
            Prime(x, y, pool);
            var queue = new TxQueue();
            for (var i = 0; i < 10; i++)
            {
                Enqueue(queue, pool, Payload(i, 5010, padding: 1000), VtepB, sourcePort: 50000); // 1,072 + 28 > 1,000
            }

            Enqueue(queue, pool, Payload(1000, 5010, padding: 1000), VtepB, sourcePort: 50001); // alone: EMSGSIZE too
            for (var i = 0; i < 20; i++)
            {
                Enqueue(queue, pool, Payload(100 + i, 5010), VtepB, sourcePort: 50000);
            }

            x.Transmit(queue, pool);

            // The 10 and the first short one after them (a train's shorter last segment, the kernel's rule) share the
            // train's EMSGSIZE; the lone one gets its own.
            Assert.Equal(12, x.Counters.TxDropped[(int)VxlanTransmitDrop.TooBig]);
            Assert.Equal(12, x.Counters.TxErrors);
            Assert.Equal(0, x.Counters.TxDropped[(int)VxlanTransmitDrop.NoRoom] + x.Counters.TxDropped[(int)VxlanTransmitDrop.Refused]);
            Assert.Equal(20, x.Counters.TxPackets); // 19 + Prime's
            Assert.Equal(Enumerable.Range(101, 19), Collect(y, pool, 19, (_, b) => b.Length > 30).Select(r => BinaryPrimitives.ReadInt32BigEndian(r.Bytes.AsSpan(8 + 14))));
            Assert.True(queue.Count == 0);
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void With_udp_segmentation_on_the_veth_a_train_crosses_whole_which_is_why_the_bench_turns_it_off()
    {
        if (!Requires.RootAndNetns() || !Requires.Tool("ethtool"))
        {
            return;
        }

        using var net = Pair(cutOnSender: false, checksumInSoftware: false);
        var pool = new PacketPool(1024);
        using (var ports = Open(net))
        {
            var (x, y) = (ports.Sender, ports.Receiver);
            Prime(x, y, pool);
            var rxBefore = RxPackets(net.NamespaceB, net.LinkB);
            var queue = new TxQueue();
            for (var i = 0; i < 40; i++)
            {
                Enqueue(queue, pool, Payload(i, 5010), VtepB, sourcePort: 50000);
            }

            x.Transmit(queue, pool);

            // The peer's UDP stack still cuts it into 40 datagrams, but its device counted one packet.
            Assert.Equal(40, Collect(y, pool, 40, (_, b) => b.Length > 30).Count);
            Assert.True(Eventually(() => RxPackets(net.NamespaceB, net.LinkB) > rxBefore));
            Assert.Equal(1, RxPackets(net.NamespaceB, net.LinkB) - rxBefore);
        }

        Assert.Equal(0, pool.Outstanding);
    }

    private static VethPair Pair(bool cutOnSender, bool checksumInSoftware)
    {
        var net = new VethPair(ipv6: false);
        try
        {
            Ip.Run("-n", net.NamespaceA, "addr", "add", "10.78.0.1/24", "dev", net.LinkA);
            Ip.Run("-n", net.NamespaceB, "addr", "add", "10.78.0.2/24", "dev", net.LinkB);
            if (cutOnSender)
            {
                Ethtool(net.NamespaceA, "-K", net.LinkA, "tx-udp-segmentation", "off");
            }

            if (checksumInSoftware)
            {
                // No checksum offload: the kernel writes the UDP checksum itself, so a capture can verify it.
                Ethtool(net.NamespaceA, "-K", net.LinkA, "tx", "off");
            }

            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    private static void Ethtool(string ns, params string[] args)
    {
        var (code, output) = Ip.TryRun(["netns", "exec", ns, "ethtool", .. args]);
        Assert.True(code == 0, $"ethtool {string.Join(' ', args)}: {output}");
    }

    private static Ports Open(VethPair net, string? alsoOn = null)
    {
        VxlanUdpPort x, y;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            x = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.78.0.1"), Name = "x", UdpGsoTransmit = true });
        }

        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            y = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = alsoOn is null ? IPAddress.Parse("10.78.0.2") : IPAddress.Any, Name = "y", RawTransmit = false });
        }

        return new Ports(x, y);
    }

    /// <summary>One datagram per VTEP first, so the kernel has resolved their MAC (ARP) before the measured batch.</summary>
    private static void Prime(VxlanUdpPort x, VxlanUdpPort y, PacketPool pool, params uint[] vteps)
    {
        var queue = new TxQueue();
        foreach (var vtep in vteps.Length == 0 ? [VtepB] : vteps)
        {
            Enqueue(queue, pool, Payload(-1, 5010), vtep, sourcePort: 50000);
            x.Transmit(queue, pool);
            Assert.Single(Collect(y, pool, 1, (_, _) => true));
        }
    }

    private static long RxPackets(string ns, string link) =>
        long.Parse(Ip.Exec("/usr/bin/env", "ip", "netns", "exec", ns, "cat", $"/sys/class/net/{link}/statistics/rx_packets").Output.Trim(), CultureInfo.InvariantCulture);

    /// <summary>A VXLAN header (VNI) and a test frame whose payload starts with the sequence, padded by <paramref name="padding"/> bytes.</summary>
    private static byte[] Payload(int sequence, uint vni, int padding = 0)
    {
        var inner = TestFrame(sequence);
        var p = new byte[8 + inner.Length + padding];
        p[0] = 0x08;
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(4), vni << 8);
        inner.CopyTo(p, 8);
        for (var i = 8 + inner.Length; i < p.Length; i++)
        {
            p[i] = (byte)i;
        }

        return p;
    }

    private sealed class Ports(VxlanUdpPort sender, VxlanUdpPort receiver) : IDisposable
    {
        public VxlanUdpPort Sender { get; } = sender;

        public VxlanUdpPort Receiver { get; } = receiver;

        public void Dispose()
        {
            Sender.Dispose();
            Receiver.Dispose();
        }
    }

    /// <summary>
    /// tcpdump capturing N frames on a link (it says "listening on" once its filter is attached, so nothing sent after
    /// that is missed), then tshark decoding them field by field.
    /// </summary>
    private sealed class Tshark : IDisposable
    {
        private readonly Process _process;
        private readonly string _file;

        private Tshark(Process process, string file)
        {
            _process = process;
            _file = file;
        }

        public static Tshark Start(string ns, string link, int count, string filter)
        {
            var file = Path.Combine(Path.GetTempPath(), $"istt-gso-{Guid.NewGuid():N}.pcap");
            var psi = new ProcessStartInfo(Ip.Path!) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { "netns", "exec", ns, "tcpdump", "-i", link, "-U", "-c", count.ToString(CultureInfo.InvariantCulture), "-w", file, filter })
            {
                psi.ArgumentList.Add(a);
            }

            var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start tcpdump");
            var ready = new TaskCompletionSource();
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data?.Contains("listening on", StringComparison.Ordinal) == true)
                {
                    ready.TrySetResult();
                }
            };
            process.BeginErrorReadLine();
            Assert.True(ready.Task.Wait(TimeSpan.FromSeconds(30)), "tcpdump did not start capturing");
            return new Tshark(process, file);
        }

        /// <summary>Waits for the capture to end (it stops at its count), then decodes it: one row of fields per frame.</summary>
        public List<string[]> Rows()
        {
            if (!_process.WaitForExit(TimeSpan.FromSeconds(20)))
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }

            var (code, output) = Ip.Exec("/usr/bin/env", "tshark", "-r", _file, "-o", "udp.check_checksum:TRUE", "-d", "udp.port==4789,vxlan", "-T", "fields", "-E", "separator=|",
                "-e", "ip.src", "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "vxlan.vni", "-e", "ip.flags.df", "-e", "udp.checksum.status",
                "-e", "eth.dst", "-e", "data.data", "-e", "_ws.malformed");
            Assert.True(code == 0, output);
            return [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains('|', StringComparison.Ordinal)).Select(l => l.Split('|'))];
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
            File.Delete(_file);
        }
    }
}
