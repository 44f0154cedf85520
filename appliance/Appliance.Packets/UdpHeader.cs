// UDP header, RFC 768:
//
//   0      7 8     15 16    23 24    31
//  +--------+--------+--------+--------+
//  |     Source      |   Destination   |
//  |      Port       |      Port       |
//  +--------+--------+--------+--------+
//  |                 |                 |
//  |     Length      |    Checksum     |
//  +--------+--------+--------+--------+
//  |          data octets ...
//  +---------------- ...
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>View over a UDP datagram (header and payload up to the UDP Length).</summary>
public readonly ref struct UdpHeader
{
    public const int Length = 8;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public UdpHeader(Span<byte> bytes) => _bytes = bytes;

    /// <summary>
    /// <paramref name="ipPayload"/> is the IP payload. The UDP Length must be at least 8 and fit it.
    /// </summary>
    public static ParseError TryParse(Span<byte> ipPayload, out UdpHeader header)
    {
        header = default;
        if (ipPayload.Length < Length)
        {
            return ParseError.Truncated;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(ipPayload[4..]);
        if (length < Length)
        {
            return ParseError.BadTotalLength;
        }

        if (length > ipPayload.Length)
        {
            return ParseError.Truncated;
        }

        header = new UdpHeader(ipPayload);
        return ParseError.None;
    }

    public ushort SourcePort
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes, value);
    }

    public ushort DestinationPort
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[2..], value);
    }

    /// <summary>UDP Length: header plus data.</summary>
    public ushort DatagramLength
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[4..], value);
    }

    /// <summary>0 means "no checksum" over IPv4 (RFC 768); it is mandatory over IPv6 (RFC 8200 section 8.1).</summary>
    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[6..], value);
    }

    public Span<byte> Datagram => _bytes[..DatagramLength];

    public Span<byte> Payload => _bytes[Length..DatagramLength];

    /// <summary>
    /// Patches the checksum for a 16-bit change (a port, or a word of an address in the pseudo-header)
    /// with RFC 1624 eqn. 3. A zero checksum (none, over IPv4) stays zero; a result of 0 is sent as
    /// 0xFFFF (RFC 768).
    /// </summary>
    public void UpdateChecksum(ushort oldValue, ushort newValue)
    {
        ushort checksum = Checksum;
        if (checksum != 0)
        {
            checksum = Packets.Checksum.Update(checksum, oldValue, newValue);
            Checksum = checksum == 0 ? (ushort)0xFFFF : checksum;
        }
    }

    /// <summary>As <see cref="UpdateChecksum(ushort, ushort)"/> for a 32-bit change (an IPv4 address after NAT).</summary>
    public void UpdateChecksum(uint oldValue, uint newValue)
    {
        ushort checksum = Checksum;
        if (checksum != 0)
        {
            checksum = Packets.Checksum.Update(checksum, oldValue, newValue);
            Checksum = checksum == 0 ? (ushort)0xFFFF : checksum;
        }
    }

    /// <summary>Writes ports, length (8 + <paramref name="payloadLength"/>) and a zero checksum; returns <see cref="Length"/>.</summary>
    public static int Write(Span<byte> destination, ushort sourcePort, ushort destinationPort, int payloadLength)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(destination, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)(Length + payloadLength));
        return Length;
    }
}
