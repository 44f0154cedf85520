using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Io;

/// <summary>The headers of a GSO super-frame, parsed once, and how it splits (see <see cref="VirtioNet"/>).</summary>
internal struct GsoLayout
{
    /// <summary>Start of the IP header (after Ethernet and inline tags).</summary>
    public int L3;

    /// <summary>Start of the TCP/UDP header.</summary>
    public int L4;

    /// <summary>Bytes copied in front of every segment: L2 + L3 + L4 headers.</summary>
    public int HeaderLength;

    /// <summary>Payload bytes per segment (all but the last).</summary>
    public int SegmentSize;

    /// <summary>Payload bytes of the whole super-frame.</summary>
    public int PayloadLength;

    /// <summary>Number of segments.</summary>
    public int Segments;

    public bool Ipv6;

    /// <summary>UDP (VIRTIO_NET_HDR_GSO_UDP_L4), else TCP.</summary>
    public bool Udp;
}

/// <summary>
/// What a PACKET_VNET_HDR socket needs: finishing a partial checksum at csum_start/csum_offset, and
/// splitting a GSO super-frame (TCPv4, TCPv6, UDP_L4) into wire-sized segments, as the kernel's
/// software GSO (tcp_gso_segment, __udp_gso_segment) would.
/// </summary>
/// <remarks>
/// A received super-frame may not fit in one pool slot: its first <c>firstLength</c> bytes are in
/// <c>first</c> (the pool buffer) and the rest in <c>rest</c> (the port's scratch). The headers are always
/// in the first part. Nothing here allocates.
/// </remarks>
internal static unsafe class VirtioNet
{
    /// <summary>sizeof(struct virtio_net_hdr).</summary>
    public const int HeaderLength = 10;

    public const byte FlagNeedsCsum = 1;
    public const byte FlagDataValid = 2;

    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoUdp = 3;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    private const ushort EtherTypeIpv4 = 0x0800;
    private const ushort EtherTypeIpv6 = 0x86DD;
    private const byte TcpFin = 0x01;
    private const byte TcpPsh = 0x08;
    private const byte TcpCwr = 0x80;

    /// <summary>
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the Internet checksum over [<paramref name="start"/>, end of frame),
    /// whose 16-bit field at start + <paramref name="offset"/> already holds the pseudo-header sum, folded
    /// into that field (skb_checksum_help). False when the offsets do not fit the frame.
    /// </summary>
    public static bool FinishChecksum(byte* frame, int length, int start, int offset)
    {
        if (start < 0 || offset < 0 || start >= length || offset > length - start - 2)
        {
            return false;
        }

        var sum = Checksum.Add(new ReadOnlySpan<byte>(frame + start, length - start));
        var value = Checksum.Finish(sum);
        BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(frame + start + offset, 2), value == 0 ? (ushort)0xFFFF : value);
        return true;
    }

    /// <summary>
    /// Where the L3 header starts, after Ethernet and at most two inline 802.1Q/802.1ad/QinQ tags, and its
    /// EtherType; -1 when the frame ends first or carries more tags.
    /// </summary>
    public static int L3Offset(byte* frame, int length, out ushort etherType)
    {
        var at = 12;
        while (true)
        {
            etherType = 0;
            if (at + 2 > length)
            {
                return -1;
            }

            etherType = ReadBe16(frame + at);
            if (etherType is not (0x8100 or 0x88A8 or 0x9100))
            {
                return at + 2;
            }

            at += 4;
            if (at > 12 + 8)
            {
                return -1;
            }
        }
    }

    /// <summary>The IP protocol (IPv4) or first next header (IPv6) of an Ethernet frame, or -1.</summary>
    public static int IpProtocolOf(byte* frame, int length)
    {
        var l3 = 12;
        while (l3 + 2 <= length)
        {
            var etherType = ReadBe16(frame + l3);
            if (etherType is 0x8100 or 0x88A8 or 0x9100)
            {
                l3 += 4;
                continue;
            }

            l3 += 2;
            return etherType switch
            {
                EtherTypeIpv4 when l3 + 20 <= length => frame[l3 + 9],
                EtherTypeIpv6 when l3 + 40 <= length => frame[l3 + 6],
                _ => -1,
            };
        }

        return -1;
    }

    /// <summary>
    /// Parses the headers of a super-frame of <paramref name="length"/> bytes whose first
    /// <paramref name="firstLength"/> bytes are at <paramref name="first"/>. The header length is computed
    /// from the packet (virtio's hdr_len is only a hint: the kernel reports its linear length there).
    /// </summary>
    /// <param name="maxSegment">Largest segment (headers + payload) the caller can store.</param>
    public static bool TryParseGso(
        byte* first, int firstLength, int length, byte gsoType, int segmentSize, int csumStart, bool needsCsum,
        int maxSegment, out GsoLayout layout)
    {
        layout = default;
        var type = (byte)(gsoType & ~GsoEcn);
        if (type is not (GsoTcpV4 or GsoTcpV6 or GsoUdpL4) || segmentSize <= 0)
        {
            return false;
        }

        // Ethernet, then any inline 802.1Q/802.1ad tags (the outer one is usually in aux data).
        var l3 = L3Offset(first, firstLength, out var etherType);
        if (l3 < 0)
        {
            return false;
        }

        int l4;
        byte protocol;
        if (etherType == EtherTypeIpv4)
        {
            if (type == GsoTcpV6 || l3 + 20 > firstLength || (first[l3] >> 4) != 4 || (first[l3] & 0xF) < 5)
            {
                return false;
            }

            l4 = l3 + ((first[l3] & 0xF) * 4);
            protocol = first[l3 + 9];
        }
        else if (etherType == EtherTypeIpv6)
        {
            if (type == GsoTcpV4 || l3 + 40 > firstLength || (first[l3] >> 4) != 6)
            {
                return false;
            }

            protocol = type == GsoUdpL4 ? IpProtocol.Udp : IpProtocol.Tcp;
            if (first[l3 + 6] == protocol)
            {
                l4 = l3 + 40;
            }
            else if (needsCsum && csumStart >= l3 + 40)
            {
                // Extension headers: the kernel's csum_start points at the transport header.
                l4 = csumStart;
            }
            else
            {
                return false;
            }
        }
        else
        {
            return false;
        }

        int headerLength;
        if (type == GsoUdpL4)
        {
            if (protocol != IpProtocol.Udp)
            {
                return false;
            }

            headerLength = l4 + 8;
        }
        else
        {
            if (protocol != IpProtocol.Tcp || l4 + 20 > firstLength)
            {
                return false;
            }

            var tcpLength = (first[l4 + 12] >> 4) * 4;
            if (tcpLength < 20)
            {
                return false;
            }

            headerLength = l4 + tcpLength;
        }

        // A super-frame may carry no payload at all (the kernel marks a FIN or an ACK GSO when it was
        // built on a GSO skb): it is one segment, headers only.
        if (headerLength > firstLength || headerLength > length || headerLength + Math.Min(segmentSize, length - headerLength) > maxSegment)
        {
            return false;
        }

        layout.L3 = l3;
        layout.L4 = l4;
        layout.HeaderLength = headerLength;
        layout.SegmentSize = segmentSize;
        layout.PayloadLength = length - headerLength;
        layout.Segments = Math.Max(1, (layout.PayloadLength + segmentSize - 1) / segmentSize);
        layout.Ipv6 = etherType == EtherTypeIpv6;
        layout.Udp = type == GsoUdpL4;
        return true;
    }

    /// <summary>
    /// Writes segment <paramref name="index"/> of the super-frame to <paramref name="destination"/> and
    /// returns its length: the headers, its share of the payload, IPv4 total length / ID (+index) / header
    /// checksum or IPv6 payload length, TCP sequence number and flags (FIN and PSH only on the last
    /// segment, CWR only on the first) or UDP length, and a full transport checksum.
    /// <paramref name="destination"/> may be <paramref name="first"/> itself for a one-segment frame
    /// that fits in it (fixed in place).
    /// </summary>
    public static int WriteSegment(in GsoLayout layout, byte* first, int firstLength, byte* rest, int index, byte* destination)
    {
        var offset = index * layout.SegmentSize;
        var chunk = Math.Min(layout.SegmentSize, layout.PayloadLength - offset);
        var hl = layout.HeaderLength;
        Buffer.MemoryCopy(first, destination, hl, hl);

        // The payload: from the pool part, the scratch part, or both.
        var from = hl + offset;
        var to = destination + hl;
        var left = chunk;
        if (from < firstLength)
        {
            var n = Math.Min(left, firstLength - from);
            Buffer.MemoryCopy(first + from, to, n, n);
            to += n;
            left -= n;
            from += n;
        }

        if (left > 0)
        {
            Buffer.MemoryCopy(rest + (from - firstLength), to, left, left);
        }

        var segmentLength = hl + chunk;
        var ip = destination + layout.L3;
        var l4Length = segmentLength - layout.L4;
        ulong pseudo;
        byte protocol = layout.Udp ? IpProtocol.Udp : IpProtocol.Tcp;
        if (layout.Ipv6)
        {
            WriteBe16(ip + 4, (ushort)(segmentLength - layout.L3 - 40));
            pseudo = Checksum.Add(new ReadOnlySpan<byte>(ip + 8, 32));
        }
        else
        {
            WriteBe16(ip + 2, (ushort)(segmentLength - layout.L3));
            WriteBe16(ip + 4, (ushort)(ReadBe16(ip + 4) + index));
            ip[10] = 0;
            ip[11] = 0;
            var ihl = (ip[0] & 0xF) * 4;
            WriteBe16(ip + 10, Checksum.Compute(new ReadOnlySpan<byte>(ip, ihl)));
            pseudo = Checksum.Add(new ReadOnlySpan<byte>(ip + 12, 8));
        }

        pseudo += protocol + (ulong)l4Length;
        var l4 = destination + layout.L4;
        int checksumAt;
        if (layout.Udp)
        {
            WriteBe16(l4 + 4, (ushort)l4Length);
            checksumAt = 6;
        }
        else
        {
            var seq = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(l4 + 4, 4));
            BinaryPrimitives.WriteUInt32BigEndian(new Span<byte>(l4 + 4, 4), unchecked(seq + (uint)offset));
            if (index != layout.Segments - 1)
            {
                l4[13] &= unchecked((byte)~(TcpFin | TcpPsh));
            }

            if (index != 0)
            {
                l4[13] &= unchecked((byte)~TcpCwr);
            }

            checksumAt = 16;
        }

        l4[checksumAt] = 0;
        l4[checksumAt + 1] = 0;
        var checksum = Checksum.Finish(Checksum.Add(new ReadOnlySpan<byte>(l4, l4Length), pseudo));
        if (checksum == 0 && layout.Udp)
        {
            checksum = 0xFFFF;
        }

        WriteBe16(l4 + checksumAt, checksum);
        return segmentLength;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort ReadBe16(byte* p) => BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(p, 2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteBe16(byte* p, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(new Span<byte>(p, 2), value);
}
