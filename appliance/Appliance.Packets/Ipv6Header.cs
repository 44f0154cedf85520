// IPv6 fixed header, RFC 8200 section 3:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version| Traffic Class |           Flow Label                  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Payload Length        |  Next Header  |   Hop Limit   |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                                                               |
//  +                         Source Address (128 bits)             +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                                                               |
//  +                      Destination Address (128 bits)           +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Extension headers (RFC 8200 section 4) chain through Next Header. Hop-by-Hop (0), Routing (43) and
// Destination Options (60) start with Next Header and Hdr Ext Len in 8-octet units not counting the
// first 8 (section 4.3-4.6); the Fragment header (44) is 8 octets (section 4.5):
//
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                         Identification                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// AH (51) gives its Payload Len in 4-octet units minus 2 (RFC 4302 section 2.2).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>View over an IPv6 packet (fixed header and Payload Length bytes after it).</summary>
public readonly ref struct Ipv6Header
{
    public const int Length = 40;

    /// <summary>How many extension headers <see cref="TryWalkExtensionHeaders"/> follows before giving up.</summary>
    public const int MaxExtensionHeaders = 8;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Ipv6Header(Span<byte> bytes) => _bytes = bytes;

    /// <summary>
    /// Checks the version and that Payload Length fits the buffer. Jumbograms (Payload Length 0 with a
    /// Hop-by-Hop Jumbo option, RFC 2675) are not supported and parse as an empty payload.
    /// </summary>
    public static ParseError TryParse(Span<byte> bytes, out Ipv6Header header)
    {
        header = default;
        if (bytes.Length < Length)
        {
            return ParseError.Truncated;
        }

        if ((bytes[0] >> 4) != 6)
        {
            return ParseError.BadVersion;
        }

        if (Length + BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]) > bytes.Length)
        {
            return ParseError.Truncated;
        }

        header = new Ipv6Header(bytes);
        return ParseError.None;
    }

    public byte Version => (byte)(_bytes[0] >> 4);

    public byte TrafficClass
    {
        get => (byte)(BinaryPrimitives.ReadUInt16BigEndian(_bytes) >> 4);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes, (ushort)((BinaryPrimitives.ReadUInt16BigEndian(_bytes) & 0xF00F) | (value << 4)));
    }

    /// <summary>20-bit flow label (RFC 6437).</summary>
    public uint FlowLabel
    {
        get => BinaryPrimitives.ReadUInt32BigEndian(_bytes) & 0x000F_FFFF;
        set => BinaryPrimitives.WriteUInt32BigEndian(_bytes, (BinaryPrimitives.ReadUInt32BigEndian(_bytes) & 0xFFF0_0000) | (value & 0x000F_FFFF));
    }

    public ushort PayloadLength
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[4..], value);
    }

    public byte NextHeader
    {
        get => _bytes[6];
        set => _bytes[6] = value;
    }

    public byte HopLimit
    {
        get => _bytes[7];
        set => _bytes[7] = value;
    }

    public Ipv6Address Source
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Ipv6Address.Read(_bytes[8..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => value.WriteTo(_bytes[8..]);
    }

    public Ipv6Address Destination
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Ipv6Address.Read(_bytes[24..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => value.WriteTo(_bytes[24..]);
    }

    /// <summary>Fixed header plus Payload Length (excludes link-layer padding).</summary>
    public Span<byte> Packet => _bytes[..(Length + PayloadLength)];

    /// <summary>Everything after the fixed header, extension headers included.</summary>
    public Span<byte> Payload => _bytes[Length..(Length + PayloadLength)];

    /// <summary>
    /// Follows the extension header chain (RFC 8200 section 4.1 order is not enforced) to the upper-layer
    /// protocol. Stops at No Next Header (59), at ESP (50, the rest is encrypted), at any protocol that is
    /// not an extension header, and after the Fragment header of a non-first fragment (the upper-layer
    /// header is not in this packet). Offsets are from the start of the IPv6 header.
    /// </summary>
    public ParseError TryWalkExtensionHeaders(out Ipv6UpperLayer upperLayer)
    {
        upperLayer = default;
        int end = Length + PayloadLength;
        byte next = _bytes[6];
        int offset = Length;
        int fragmentHeaderOffset = -1;
        for (int count = 0; ; count++)
        {
            int headerLength;
            switch (next)
            {
                case IpProtocol.HopByHopOptions:
                case IpProtocol.Ipv6Routing:
                case IpProtocol.Ipv6DestinationOptions:
                    if (end - offset < 8)
                    {
                        return ParseError.Truncated;
                    }

                    headerLength = (_bytes[offset + 1] + 1) * 8;
                    break;

                case IpProtocol.Ipv6Fragment:
                    if (end - offset < 8)
                    {
                        return ParseError.Truncated;
                    }

                    headerLength = 8;
                    fragmentHeaderOffset = offset;
                    break;

                case IpProtocol.AuthenticationHeader:
                    if (end - offset < 8)
                    {
                        return ParseError.Truncated;
                    }

                    headerLength = (_bytes[offset + 1] + 2) * 4;
                    if (headerLength < 12)
                    {
                        // RFC 4302 section 2.2: at least the 12-octet fixed part.
                        return ParseError.BadExtensionHeader;
                    }

                    break;

                default:
                    upperLayer = new Ipv6UpperLayer(next, offset, end, fragmentHeaderOffset, FragmentFields(fragmentHeaderOffset));
                    return ParseError.None;
            }

            if (count >= MaxExtensionHeaders)
            {
                return ParseError.TooManyExtensionHeaders;
            }

            if (end - offset < headerLength)
            {
                return ParseError.Truncated;
            }

            next = _bytes[offset];
            offset += headerLength;
            if (headerLength == 8 && fragmentHeaderOffset == offset - 8 && (FragmentFields(fragmentHeaderOffset) & 0xFFF8) != 0)
            {
                // Non-first fragment: what follows is the middle of the original payload.
                upperLayer = new Ipv6UpperLayer(next, offset, end, fragmentHeaderOffset, FragmentFields(fragmentHeaderOffset));
                return ParseError.None;
            }
        }
    }

    private ushort FragmentFields(int fragmentHeaderOffset) =>
        fragmentHeaderOffset < 0 ? (ushort)0 : BinaryPrimitives.ReadUInt16BigEndian(_bytes[(fragmentHeaderOffset + 2)..]);

    /// <summary>Writes a fixed header (traffic class and flow label 0); returns <see cref="Length"/>.</summary>
    public static int Write(Span<byte> destination, in Ipv6Address source, in Ipv6Address destinationAddress, byte nextHeader, ushort payloadLength, byte hopLimit = 64, uint flowLabel = 0)
    {
        var header = destination[..Length];
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x6000_0000u | (flowLabel & 0x000F_FFFF));
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], payloadLength);
        header[6] = nextHeader;
        header[7] = hopLimit;
        source.WriteTo(header[8..]);
        destinationAddress.WriteTo(header[24..]);
        return Length;
    }
}

/// <summary>Where the IPv6 extension header walk ended: the upper-layer protocol and its offset.</summary>
public readonly struct Ipv6UpperLayer
{
    private readonly ushort _fragmentFields;

    internal Ipv6UpperLayer(byte protocol, int offset, int end, int fragmentHeaderOffset, ushort fragmentFields)
    {
        Protocol = protocol;
        Offset = offset;
        Length = end - offset;
        FragmentHeaderOffset = fragmentHeaderOffset;
        _fragmentFields = fragmentFields;
    }

    /// <summary>The upper-layer protocol (TCP, UDP, ICMPv6, ESP, 59 for No Next Header...).</summary>
    public byte Protocol { get; }

    /// <summary>Offset of the upper-layer header from the start of the IPv6 header.</summary>
    public int Offset { get; }

    /// <summary>Upper-layer length: the value that goes into the pseudo-header (RFC 8200 section 8.1).</summary>
    public int Length { get; }

    public bool HasFragmentHeader => FragmentHeaderOffset >= 0;

    /// <summary>Offset of the Fragment header, or -1.</summary>
    public int FragmentHeaderOffset { get; }

    /// <summary>Fragment offset in 8-octet units.</summary>
    public ushort FragmentOffset => (ushort)(_fragmentFields >> 3);

    public bool MoreFragments => (_fragmentFields & 1) != 0;

    /// <summary>
    /// True when the packet is a real fragment (RFC 8200 section 4.5). An "atomic fragment" (offset 0, M 0,
    /// RFC 6946) is whole and is not a fragment.
    /// </summary>
    public bool IsFragment => HasFragmentHeader && (_fragmentFields & 0xFFF9) != 0;

    /// <summary>True when the upper-layer header is not in this packet (a non-first fragment).</summary>
    public bool IsLaterFragment => FragmentOffset != 0;
}
