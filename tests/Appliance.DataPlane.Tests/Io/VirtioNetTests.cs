using System.Buffers.Binary;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>GSO segmentation and checksum completion without a kernel: super-frames built by hand.</summary>
public sealed unsafe class VirtioNetTests
{
    private const int Mss = 1448;
    private const uint Seq0 = 0xFFFF_F000; // wraps inside the super-frame

    [Theory]
    [InlineData(false, 20000, 0)]
    [InlineData(true, 20000, 0)]
    [InlineData(false, 1448 * 3, 0)]
    [InlineData(true, 777, 0)]
    [InlineData(false, 20000, 12)] // IPv4 options
    public void A_TCPv4_super_frame_becomes_wire_sized_segments_with_valid_checksums(bool tagged, int payloadLength, int ipOptions)
    {
        var payload = Payload(payloadLength);
        var frame = TcpV4SuperFrame(payload, tagged, ipOptions, flags: 0x80 | 0x10 | 0x08 | 0x01); // CWR ACK PSH FIN
        var l3 = tagged ? 18 : 14;
        var segments = Cut(frame, VirtioNet.GsoTcpV4, out var layout);

        Assert.Equal(l3, layout.L3);
        Assert.Equal(l3 + 20 + ipOptions + 32, layout.HeaderLength);
        Assert.Equal((payloadLength + Mss - 1) / Mss, segments.Count);
        var joined = new List<byte>();
        for (var k = 0; k < segments.Count; k++)
        {
            var s = segments[k];
            Assert.True(s.Length <= layout.HeaderLength + Mss);
            Assert.Equal(frame.AsSpan(0, l3).ToArray(), s[..l3]);
            Assert.Equal(ParseError.None, Ipv4Header.TryParse(s.AsSpan(l3), out var ip));
            Assert.Equal(s.Length - l3, ip.TotalLength);
            Assert.Equal((ushort)(0x1234 + k), ip.Identification);
            Assert.True(ip.IsHeaderChecksumValid, $"segment {k}: IPv4 header checksum");
            Assert.True(L4Checksum.IsValid(s, l3), $"segment {k}: TCP checksum");
            var tcp = s.AsSpan(layout.L4);
            Assert.Equal(unchecked(Seq0 + (uint)(k * Mss)), BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]));
            var last = k == segments.Count - 1;
            Assert.Equal(last, (tcp[13] & 0x01) != 0);
            Assert.Equal(last, (tcp[13] & 0x08) != 0);
            Assert.Equal(k == 0, (tcp[13] & 0x80) != 0);
            Assert.True((tcp[13] & 0x10) != 0);
            Assert.Equal(frame.AsSpan(layout.L4 + 14, 2).ToArray(), tcp[14..16].ToArray()); // window
            Assert.Equal(frame.AsSpan(layout.L4 + 18, 14).ToArray(), tcp[18..32].ToArray()); // urgent, options
            joined.AddRange(s.AsSpan(layout.HeaderLength).ToArray());
        }

        Assert.Equal(payload, joined.ToArray());
    }

    [Fact]
    public void A_TCPv6_super_frame_gets_payload_lengths_sequence_numbers_and_checksums()
    {
        var payload = Payload(9000);
        var frame = new byte[14 + 40 + 20 + payload.Length];
        EthernetHeaderBytes(frame, EtherType.Ipv6);
        var ip = frame.AsSpan(14);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(20 + payload.Length));
        ip[6] = IpProtocol.Tcp;
        ip[7] = 64;
        for (var i = 0; i < 32; i++)
        {
            ip[8 + i] = (byte)(0x20 + i);
        }

        var tcp = ip[40..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 5000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 80);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], Seq0);
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        payload.CopyTo(tcp[20..]);

        var segments = Cut(frame, VirtioNet.GsoTcpV6, out var layout);

        Assert.Equal(7, segments.Count);
        Assert.True(layout.Ipv6);
        for (var k = 0; k < segments.Count; k++)
        {
            var s = segments[k];
            Assert.Equal(s.Length - 54, BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(18)));
            Assert.True(L4Checksum.IsValid(s, 14), $"segment {k}: TCP checksum");
            Assert.Equal(unchecked(Seq0 + (uint)(k * Mss)), BinaryPrimitives.ReadUInt32BigEndian(s.AsSpan(54 + 4)));
        }

        Assert.Equal(payload, segments.SelectMany(s => s[74..]).ToArray());
    }

    [Fact]
    public void A_UDP_L4_super_frame_becomes_datagrams_with_their_own_lengths_and_checksums()
    {
        var payload = Payload(5000);
        var frame = new byte[14 + 20 + 8 + payload.Length];
        EthernetHeaderBytes(frame, EtherType.Ipv4);
        Ipv4(frame.AsSpan(14), IpProtocol.Udp, 8 + payload.Length, 0);
        var udp = frame.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 4000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 4001);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
        payload.CopyTo(udp[8..]);

        var segments = Cut(frame, VirtioNet.GsoUdpL4, out _);

        Assert.Equal(4, segments.Count);
        foreach (var s in segments)
        {
            Assert.Equal(s.Length - 34, BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(38)));
            Assert.True(L4Checksum.IsValid(s, 14));
            Assert.NotEqual(0, BinaryPrimitives.ReadUInt16BigEndian(s.AsSpan(40)));
        }

        Assert.Equal(payload, segments.SelectMany(s => s[42..]).ToArray());
    }

    [Theory]
    [InlineData(VirtioNet.GsoUdp)] // legacy UFO: not segmented here
    [InlineData(VirtioNet.GsoTcpV6)] // type does not match an IPv4 packet
    public void Offloads_it_cannot_cut_are_refused(byte gsoType)
    {
        var frame = TcpV4SuperFrame(Payload(5000), tagged: false, ipOptions: 0, flags: 0x10);
        fixed (byte* f = frame)
        {
            Assert.False(VirtioNet.TryParseGso(f, frame.Length, frame.Length, gsoType, Mss, 34, true, PacketPool.MaxFrame, out _));
        }
    }

    [Fact]
    public void A_header_only_GSO_frame_is_one_segment()
    {
        var frame = TcpV4SuperFrame([], tagged: false, ipOptions: 0, flags: 0x11);
        var segments = Cut(frame, VirtioNet.GsoTcpV4, out var layout);
        var s = Assert.Single(segments);
        Assert.Equal(layout.HeaderLength, s.Length);
        Assert.True(L4Checksum.IsValid(s, 14));
        Assert.Equal(0x11, s[layout.L4 + 13]);
    }

    [Theory]
    [InlineData(IpProtocol.Udp, 6)]
    [InlineData(IpProtocol.Tcp, 16)]
    public void A_partial_checksum_is_finished_at_csum_start_and_offset(byte protocol, int checksumOffset)
    {
        var l4Length = (protocol == IpProtocol.Tcp ? 20 : 8) + 333;
        var frame = new byte[14 + 20 + l4Length];
        EthernetHeaderBytes(frame, EtherType.Ipv4);
        Ipv4(frame.AsSpan(14), protocol, l4Length, 0);
        var l4 = frame.AsSpan(34);
        Payload(l4Length).CopyTo(l4);
        if (protocol == IpProtocol.Tcp)
        {
            l4[12] = 5 << 4;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)l4Length);
        }

        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not complemented.
        var pseudo = Checksum.PseudoHeaderSum(Ipv4Address.Read(frame.AsSpan(26)), Ipv4Address.Read(frame.AsSpan(30)), protocol, (ushort)l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(l4[checksumOffset..], Checksum.Fold(pseudo));
        Assert.False(L4Checksum.IsValid(frame, 14));

        fixed (byte* f = frame)
        {
            Assert.True(VirtioNet.FinishChecksum(f, frame.Length, 34, checksumOffset));
            Assert.False(VirtioNet.FinishChecksum(f, frame.Length, frame.Length - 1, checksumOffset));
        }

        Assert.True(L4Checksum.IsValid(frame, 14));
    }

    /// <summary>Splits <paramref name="frame"/> as a port receives it (slot part, overflow part) and cuts it.</summary>
    private static List<byte[]> Cut(byte[] frame, byte gsoType, out GsoLayout layout)
    {
        var firstLength = Math.Min(frame.Length, PacketPool.MaxFrame);
        var first = frame[..firstLength];
        var rest = frame[firstLength..].Append((byte)0).ToArray(); // never empty, so fixed gets an address
        var result = new List<byte[]>();
        var destination = new byte[PacketPool.MaxFrame];
        fixed (byte* f = first)
        fixed (byte* r = rest)
        fixed (byte* d = destination)
        {
            var l4 = (frame[12] == 0x81 ? 18 : 14) + (frame[12] == 0x86 ? 40 : 0);
            Assert.True(VirtioNet.TryParseGso(f, firstLength, frame.Length, gsoType, Mss, l4, false, PacketPool.MaxFrame, out layout));
            for (var k = 0; k < layout.Segments; k++)
            {
                var n = VirtioNet.WriteSegment(layout, f, firstLength, r, k, d);
                result.Add(destination[..n]);
            }
        }

        return result;
    }

    internal static byte[] TcpV4SuperFrame(byte[] payload, bool tagged, int ipOptions, byte flags)
    {
        var l3 = tagged ? 18 : 14;
        var ipLength = 20 + ipOptions;
        var frame = new byte[l3 + ipLength + 32 + payload.Length];
        EthernetHeaderBytes(frame, tagged ? EtherType.Vlan : EtherType.Ipv4);
        if (tagged)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 10);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), EtherType.Ipv4);
        }

        Ipv4(frame.AsSpan(l3), IpProtocol.Tcp, 32 + payload.Length, ipOptions);
        var tcp = frame.AsSpan(l3 + ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 80);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], Seq0);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], 777);
        tcp[12] = 8 << 4;
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 502);
        tcp[20] = 1;
        tcp[21] = 1;
        tcp[22] = 8; // timestamps
        tcp[23] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(tcp[24..], 0xAABBCCDD);
        payload.CopyTo(tcp[32..]);
        return frame;
    }

    private static void Ipv4(Span<byte> ip, byte protocol, int l4Length, int options)
    {
        ip[0] = (byte)(0x40 | ((20 + options) / 4));
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)Math.Min(0xFFFF, 20 + options + l4Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234);
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = protocol;
        new Ipv4Address(10, 1, 2, 3).WriteTo(ip[12..]);
        new Ipv4Address(10, 4, 5, 6).WriteTo(ip[16..]);
        for (var i = 0; i < options; i++)
        {
            ip[20 + i] = 1; // NOP
        }

        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..(20 + options)]));
    }

    private static void EthernetHeaderBytes(byte[] frame, ushort etherType)
    {
        PortHarness.MacB.CopyTo(frame, 0);
        PortHarness.MacA.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), etherType);
    }

    internal static byte[] Payload(int length)
    {
        var p = new byte[length];
        new Random(length).NextBytes(p);
        return p;
    }
}
