using Isthmus.Benchmarks.Wire;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// The wire benchmark generator's two senders (WireGen: AF_PACKET sendmmsg, and <c>--xdp</c>, an AF_XDP TX ring) on a
/// real veth whose peer receives through AF_XDP as the appliance's ports do: every frame a sender reports as accepted
/// arrives, a refused one is reported as dropped, nothing stays queued after the drain.
/// </summary>
public sealed class WireGenSenderTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Every_frame_a_sender_accepts_arrives_and_accepted_plus_dropped_is_what_was_due(bool xdp)
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var pool = new PacketPool(1024);
        AfPacketPort b;
        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            b = new AfPacketPort(new AfPacketPortOptions { InterfaceName = net.LinkB, Kind = PortKind.Access, XdpReceive = true });
        }

        using (b)
        {
            Assert.Null(b.XdpError);
            var frame = TestFrame(7);
            const int Due = 900, Burst = 300;
            long accepted = 0, dropped = 0, errors = 0;
            long syscalls;
            using (NetworkNamespace.Enter(net.NamespaceA))
            {
                var ifIndex = (int)Libc.IfNameToIndex(net.LinkA);
                Assert.NotEqual(0, ifIndex);
                using Sender sender = xdp ? new XdpSender(ifIndex, net.LinkA, frame, Burst) : new PacketSender(ifIndex, net.LinkA, frame, 64, qdiscBypass: false);
                var left = Due;
                for (var pass = 0; left > 0 && pass < 10_000; pass++)
                {
                    // A full sender is retried on the next pass, as the generator's pacing loop does.
                    var r = sender.Send(Math.Min(left, xdp ? Burst : 64));
                    accepted += r.Accepted;
                    dropped += r.Dropped;
                    errors += r.Errors;
                    left -= r.Accepted + r.Dropped + r.Errors;
                }

                Assert.Equal(0, left);
                var tail = sender.Drain();
                accepted += tail.Accepted - tail.Dropped;
                dropped += tail.Dropped;
                syscalls = sender.Syscalls;
                Assert.StartsWith(xdp ? "af_xdp" : "sendmmsg", sender.Method, StringComparison.Ordinal);
            }

            Assert.Equal((long)Due, accepted + dropped + errors);
            Assert.Equal(0, errors);
            var got = Collect(b, pool, (int)accepted, (_, f) => IsTestFrame(f), TimeSpan.FromSeconds(5));
            Assert.Equal(accepted, got.Count);
            Assert.All(got, r => Assert.Equal(frame, r.Bytes));
            // Nothing more than accepted arrives.
            Assert.Empty(Collect(b, pool, 1, (_, f) => IsTestFrame(f), TimeSpan.FromMilliseconds(200)));
            Assert.Equal(0, pool.Outstanding);
            if (xdp && Environment.OSVersion.Version >= new Version(6, 17))
            {
                // One kick per burst of 300 (XDP_MAX_TX_SKB_BUDGET = the TX ring's size), plus any kick a drop ended.
                Assert.Equal(Due / Burst + dropped, syscalls);
            }
        }
    }
}
