using Isthmus.DataPlane.Encap;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Encap;

/// <summary>RFC 7348 §5: the outer UDP source port is a hash of the inner frame, in 49152-65535.</summary>
public sealed class FlowEntropyTests
{
    private static readonly MacAddress Router = MacAddress.Parse("02:15:7e:00:00:10");
    private static readonly MacAddress Vm = MacAddress.Parse("02:00:00:00:10:0b");

    [Fact]
    public void Flows_between_the_same_two_stations_get_different_ports_and_a_flow_keeps_its_port()
    {
        var ports = new HashSet<ushort>();
        for (var i = 0; i < 512; i++)
        {
            var port = EncapStage.FlowEntropy(Udp((ushort)(40000 + i), 53));
            Assert.InRange(port, (ushort)49152, (ushort)65535);
            Assert.Equal(port, EncapStage.FlowEntropy(Udp((ushort)(40000 + i), 53)));
            ports.Add(port);
        }

        // 512 flows into 16384 ports: a fair hash collides only a handful of times.
        Assert.True(ports.Count > 480, $"{ports.Count} distinct ports for 512 flows");
    }

    [Fact]
    public void Addresses_count_and_fragments_of_one_datagram_share_a_port()
    {
        var ports = new HashSet<ushort>();
        for (var i = 1; i <= 256; i++)
        {
            ports.Add(EncapStage.FlowEntropy(Udp(40000, 53, source: new Ipv4Address(0x0A0A0000u | (uint)i))));
        }

        Assert.True(ports.Count > 230, $"{ports.Count} distinct ports for 256 sources");

        // A later fragment carries no ports: the first fragment must hash like it (addresses only).
        var first = Udp(40000, 53);
        var later = Udp(40000, 53);
        first[14 + 6] = 0x20; // MF
        later[14 + 6] = 0x00;
        later[14 + 7] = 0x10; // offset 16 × 8
        later.AsSpan(34, 4).Fill(0xEE); // not ports
        Assert.Equal(EncapStage.FlowEntropy(first), EncapStage.FlowEntropy(later));
    }

    [Fact]
    public void Non_ip_frames_hash_their_macs()
    {
        var arp = new byte[60];
        var length = PacketBuilder.GarpRequest(arp, Vm, Ipv4Address.Parse("10.10.0.11"));
        var port = EncapStage.FlowEntropy(arp.AsSpan(0, length));
        Assert.InRange(port, (ushort)49152, (ushort)65535);
        Assert.Equal(port, EncapStage.FlowEntropy(arp.AsSpan(0, length)));
    }

    private static byte[] Udp(ushort sourcePort, ushort destinationPort, Ipv4Address? source = null)
    {
        var frame = new byte[64];
        var spec = new Ipv4FrameSpec(Router, Vm, source ?? Ipv4Address.Parse("10.10.0.10"), Ipv4Address.Parse("10.10.0.11"));
        var length = PacketBuilder.Udp(frame, spec, sourcePort, destinationPort, new byte[18]);
        return frame[..Math.Max(length, 60)];
    }
}
