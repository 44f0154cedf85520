using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;
using Isthmus.PortGroup;
using static Isthmus.DataPlane.Tests.Io.PortHarness;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// End to end through the user-space port group: kernel host (H) -- access VLAN 10 -- tagger (P) --
/// trunk -- an <see cref="AfPacketPort"/> peer (E) standing in for the appliance.
/// </summary>
public sealed class PortGroupTests
{
    private static readonly byte[] HostMac = [0x02, 0, 0, 0, 1, 1];
    private static readonly byte[] PeerMac = [0x02, 0, 0, 0, 1, 2];

    [Fact]
    public void Kernel_host_UDP_is_tagged_with_a_finished_checksum_and_the_tagged_reply_reaches_the_host()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var lab = new Lab();
        var (h, p, e) = (lab.Namespace("h"), lab.Namespace("p"), lab.Namespace("e"));
        var (hostLink, accessLink) = lab.Veth(h, "h", p, "a");
        var (trunkLink, peerLink) = lab.Veth(p, "t", e, "e");
        Ip.Run("-n", h, "link", "set", hostLink, "address", "02:00:00:00:01:01");
        Ip.Run("-n", h, "addr", "add", "10.79.0.1/24", "dev", hostLink);
        Ip.Run("-n", h, "neigh", "add", "10.79.0.2", "lladdr", "02:00:00:00:01:02", "dev", hostLink);

        using var tagger = new TaggingSwitch(new PortGroupOptions(trunkLink, [(accessLink, 10)], p));
        var loop = new Thread(tagger.Run) { IsBackground = true, Name = "portgroup" };
        loop.Start();
        var pool = new PacketPool(256);
        try
        {
            using var peer = OpenAfPacket(e, peerLink);
            Socket host;
            using (NetworkNamespace.Enter(h))
            {
                host = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            }

            using (host)
            {
                host.Bind(new IPEndPoint(IPAddress.Parse("10.79.0.1"), 5000));
                host.ReceiveTimeout = 3000;
                host.SendTo("hello"u8.ToArray(), new IPEndPoint(IPAddress.Parse("10.79.0.2"), 6000));

                var r = Assert.Single(Collect(peer, pool, 1, (_, f) => IsUdp(f)));
                Assert.True(r.Meta.Flags.HasFlag(PacketFlags.VlanFromAux));
                Assert.Equal(10, r.Meta.VlanTci & 0xFFF);
                Assert.False(r.Meta.Flags.HasFlag(PacketFlags.ChecksumNotReady));
                Assert.True(UdpChecksumIsValid(r.Bytes), "the tagger must finish the partial UDP checksum");
                Assert.Equal("hello"u8.ToArray(), r.Bytes[42..]);

                var queue = new TxQueue();
                Enqueue(queue, pool, TaggedUdpReply("world"u8, vlan: 10));
                peer.Transmit(queue, pool);
                var buffer = new byte[64];
                var n = host.Receive(buffer);
                Assert.Equal("world"u8.ToArray(), buffer[..n]);
            }
        }
        finally
        {
            tagger.Stop();
            loop.Join();
        }

        Assert.Equal(0, tagger.PoolOutstanding);
        Assert.Equal(0, pool.Outstanding);
    }

    private static bool IsUdp(byte[] f) =>
        f.Length > 42 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == EtherType.Ipv4 && f[23] == IpProtocol.Udp;

    private static bool UdpChecksumIsValid(byte[] f)
    {
        var ip = f.AsSpan(14);
        var udp = ip[20..BinaryPrimitives.ReadUInt16BigEndian(ip[2..])];
        var pseudo = Checksum.PseudoHeaderSum(Ipv4Address.Read(ip[12..]), Ipv4Address.Read(ip[16..]), IpProtocol.Udp, (ushort)udp.Length);
        return BinaryPrimitives.ReadUInt16BigEndian(udp[6..]) != 0 && Checksum.IsValid(udp, pseudo);
    }

    /// <summary>10.79.0.2:6000 → 10.79.0.1:5000 with a valid UDP checksum, tagged inline.</summary>
    private static byte[] TaggedUdpReply(ReadOnlySpan<byte> payload, ushort vlan)
    {
        var f = new byte[18 + 20 + 8 + payload.Length];
        HostMac.CopyTo(f, 0);
        PeerMac.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), EtherType.Vlan);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), vlan);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), EtherType.Ipv4);
        var ip = f.AsSpan(18);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ip.Length);
        ip[8] = 64;
        ip[9] = IpProtocol.Udp;
        new Ipv4Address(10, 79, 0, 2).WriteTo(ip[12..]);
        new Ipv4Address(10, 79, 0, 1).WriteTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..20]));
        var udp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, 6000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 5000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
        payload.CopyTo(udp[8..]);
        var pseudo = Checksum.PseudoHeaderSum(new Ipv4Address(10, 79, 0, 2), new Ipv4Address(10, 79, 0, 1), IpProtocol.Udp, (ushort)udp.Length);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], Checksum.Finish(Checksum.Add(udp, pseudo)));
        return f;
    }
}
