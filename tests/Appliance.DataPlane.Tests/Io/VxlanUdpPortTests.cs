using System.Buffers.Binary;
using System.Net;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

public sealed class VxlanUdpPortTests
{
    [Fact]
    public void Datagrams_round_trip_between_two_ports_and_carry_the_sender()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var ns = new TestNamespace();
        var pool = new PacketPool(512);
        VxlanUdpPort x, y;
        using (NetworkNamespace.Enter(ns.Name))
        {
            x = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("127.0.0.1"), Name = "x" });
            y = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("127.0.0.2"), Name = "y" });
        }

        using (x)
        using (y)
        {
            Assert.Equal(new IPEndPoint(IPAddress.Parse("127.0.0.1"), 4789), x.LocalEndPoint);
            const int count = 200;
            var queue = new TxQueue();
            for (var i = 0; i < count; i++)
            {
                Enqueue(queue, pool, VxlanPayload(5010, i), destinationIp: 0x7F000002); // port 0 = 4789
            }

            x.Transmit(queue, pool);
            Assert.Equal(count, x.Counters.TxPackets);

            var got = Collect(y, pool, count, (_, _) => true);
            Assert.Equal(count, got.Count);
            Assert.All(got, r =>
            {
                Assert.Equal(0x7F000001u, r.Meta.RemoteVtep);
                Assert.Equal(4789, r.Meta.RemotePort);
                Assert.Equal(5010u, BinaryPrimitives.ReadUInt32BigEndian(r.Bytes.AsSpan(4)) >> 8);
            });
            Assert.Equal(VxlanPayload(5010, 42), got[42].Bytes);
            Assert.True(y.Counters.RxSyscalls < count / 10, $"RxSyscalls {y.Counters.RxSyscalls}");

            // Reply to whoever sent, as decap/encap would.
            Enqueue(queue, pool, VxlanPayload(5010, -1), got[0].Meta.RemoteVtep, got[0].Meta.RemotePort);
            y.Transmit(queue, pool);
            var back = Assert.Single(Collect(x, pool, 1, (_, _) => true));
            Assert.Equal(0x7F000002u, back.Meta.RemoteVtep);
            Assert.Equal(VxlanPayload(5010, -1), back.Bytes);
        }

        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Receives_what_a_Linux_vxlan_device_sends()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.78.0.1/24", "dev", net.LinkA);
        Ip.Run("-n", net.NamespaceB, "addr", "add", "10.78.0.2/24", "dev", net.LinkB);
        var (code, output) = Ip.TryRun("-n", net.NamespaceA, "link", "add", "vx100", "type", "vxlan", "id", "100",
            "dstport", "4789", "remote", "10.78.0.2", "local", "10.78.0.1", "dev", net.LinkA);
        if (code != 0)
        {
            Assert.Fail($"cannot create a kernel vxlan device: {output}");
        }

        Ip.Run("-n", net.NamespaceA, "addr", "add", "10.200.0.1/24", "dev", "vx100");
        Ip.Run("-n", net.NamespaceA, "link", "set", "vx100", "up");
        var pool = new PacketPool(256);
        VxlanUdpPort port;
        using (NetworkNamespace.Enter(net.NamespaceB))
        {
            port = new VxlanUdpPort(new VxlanUdpPortOptions { LocalAddress = IPAddress.Parse("10.78.0.2") });
        }

        using (port)
        {
            // An ARP request for 10.200.0.2 is flooded to the remote VTEP.
            _ = Ip.Exec("/usr/bin/env", "ip", "netns", "exec", net.NamespaceA, "ping", "-c", "1", "-W", "1", "10.200.0.2");
            var got = Collect(port, pool, 1, (_, f) => f.Length >= 8 + 14 + 28 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)) == 0x0806);
            Assert.NotEmpty(got); // ARP may have been retried while ping waited
            var r = got[0];
            Assert.Equal(0x0A4E0001u, r.Meta.RemoteVtep);
            Assert.Equal(0x08, r.Bytes[0]); // I flag
            Assert.Equal(100u, BinaryPrimitives.ReadUInt32BigEndian(r.Bytes.AsSpan(4)) >> 8);
        }

        Assert.Equal(0, pool.Outstanding);
    }

    private static byte[] VxlanPayload(uint vni, int sequence)
    {
        var inner = TestFrame(sequence);
        var p = new byte[8 + inner.Length];
        p[0] = 0x08;
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(4), vni << 8);
        inner.CopyTo(p, 8);
        return p;
    }
}
