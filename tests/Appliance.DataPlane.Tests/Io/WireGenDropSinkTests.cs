using System.Globalization;
using Isthmus.Benchmarks.Wire;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// The wire benchmark's XDP drop sink (WireGen --drop-sink, wire-bench.sh --sink xdp) on a real veth: IPv4 UDP to its
/// port dies in the driver hook, before any tap or stack, yet rx_packets counts it (delivered is still measured);
/// anything else (another port) reaches the receiver as before; disposing it detaches the program.
/// </summary>
public sealed class WireGenDropSinkTests
{
    [Fact]
    public void Udp_to_the_sink_port_is_counted_in_rx_packets_and_dropped_other_frames_pass_and_dispose_detaches()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(1024);
        const int Each = 200;
        var toSink = Udp(9);
        var toOther = Udp(10);
        AfPacketPort tap;
        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            tap = new AfPacketPort(new AfPacketPortOptions { InterfaceName = net.LinkB, Kind = PortKind.Access, XdpReceive = false });
        }

        using (tap)
        {
            DropSink sink;
            using (NetworkNamespace.Enter(net.NamespaceB))
            {
                sink = new DropSink((int)Libc.IfNameToIndex(net.LinkB), 9);
            }

            long before, after;
            using (sink)
            {
                Assert.Contains("xdp", Ip.TryRun("-n", net.NamespaceB, "link", "show", "dev", net.LinkB).Output, StringComparison.Ordinal);
                before = RxPackets(net.NamespaceB, net.LinkB);
                Send(net, toSink, Each);
                Send(net, toOther, Each);
                var got = Collect(tap, pool, 2 * Each, (_, f) => IsUdp(f), TimeSpan.FromSeconds(3));
                after = RxPackets(net.NamespaceB, net.LinkB);

                // Every frame was counted by the receiving veth (plus the few IPv6 neighbour discovery frames a fresh link
                // sends on its own); only the other port's reached the tap.
                Assert.InRange(after - before, 2 * Each, (2 * Each) + 20);
                Assert.Equal(Each, got.Count);
                Assert.All(got, r => Assert.Equal(toOther, r.Bytes));
            }

            // Detached: the sink port's frames reach the tap again.
            Assert.DoesNotContain(" xdp", Ip.TryRun("-n", net.NamespaceB, "link", "show", "dev", net.LinkB).Output, StringComparison.Ordinal);
            Send(net, toSink, 10);
            Assert.Equal(10, Collect(tap, pool, 10, (_, f) => IsUdp(f), TimeSpan.FromSeconds(3)).Count);
            Assert.Equal(0, pool.Outstanding);
        }
    }

    [Fact]
    public void The_program_drops_only_ipv4_udp_with_a_20_byte_header_to_its_port()
    {
        // The instruction stream's shape: every jump lands inside the program, on the pass or drop exit.
        var program = DropSink.Program(9);
        for (var i = 0; i < program.Length; i++)
        {
            var code = (byte)program[i];
            if ((code & 0x07) == 0x05 && code != 0x95)
            {
                var target = i + 1 + (short)(program[i] >> 16);
                Assert.InRange(target, 0, program.Length - 1);
            }
        }

        // The port is compared in network order (loaded little-endian): 9 = 0x0009 on the wire = 0x0900 loaded.
        Assert.Contains(program, insn => (byte)insn == 0x55 && (int)(insn >> 32) == 0x0900);
    }

    private static byte[] Udp(ushort port)
    {
        var frame = new byte[WireFrame.MaxLength];
        var spec = new Ipv4FrameSpec(MacAddress.Parse("02:00:00:00:00:0a"), MacAddress.Parse("02:00:00:00:00:0b"), Ipv4Address.Parse("10.99.0.1"), Ipv4Address.Parse("10.99.0.2"));
        var length = WireFrame.Write(frame, spec, 40000, port, 60, null);
        return frame[..length];
    }

    private static bool IsUdp(byte[] frame) => frame.Length >= 38 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 17;

    /// <summary>Sends <paramref name="frame"/> <paramref name="count"/> times from side A (WireGen's AF_PACKET sender).</summary>
    internal static void Send(VethPair net, byte[] frame, int count)
    {
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            using var sender = new PacketSender((int)Libc.IfNameToIndex(net.LinkA), net.LinkA, frame, 64, qdiscBypass: false);
            for (var left = count; left > 0;)
            {
                var r = sender.Send(Math.Min(left, 64));
                left -= r.Accepted + r.Dropped + r.Errors;
            }
        }
    }

    private static long RxPackets(string ns, string link) => LinkStatistic(ns, link, "rx_packets");

    /// <summary>One of <paramref name="link"/>'s counters in /sys/class/net/LINK/statistics, read inside <paramref name="ns"/>.</summary>
    internal static long LinkStatistic(string ns, string link, string name)
    {
        var (code, output) = Ip.TryRun("netns", "exec", ns, "cat", $"/sys/class/net/{link}/statistics/{name}");
        Assert.Equal(0, code);
        return long.Parse(output.Trim(), CultureInfo.InvariantCulture);
    }
}
