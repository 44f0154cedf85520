// IPv4 header, RFC 791 section 3.1:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version|  IHL  |    DSCP   |ECN|          Total Length         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Identification        |Flags|      Fragment Offset    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Time to Live |    Protocol   |         Header Checksum       |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                       Source Address                          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Destination Address                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Options                    |    Padding    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: bit 0 reserved (must be zero), bit 1 DF, bit 2 MF. DSCP/ECN per RFC 2474 / RFC 3168.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>View over an IPv4 packet (header, options and payload up to Total Length).</summary>
public readonly ref struct Ipv4Header
{
    /// <summary>Length of a header without options (IHL 5).</summary>
    public const int MinLength = 20;
    public const int MaxLength = 60;

    private const ushort FlagDontFragment = 0x4000;
    private const ushort FlagMoreFragments = 0x2000;
    private const ushort FragmentOffsetMask = 0x1FFF;

    private readonly Span<byte> _bytes;

    /// <summary>Unchecked view; <paramref name="bytes"/> must hold at least the header.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Ipv4Header(Span<byte> bytes) => _bytes = bytes;

    /// <summary>
    /// Checks version, IHL and Total Length against the buffer (RFC 791 section 3.1; RFC 1122
    /// section 3.2.1.1 says to silently discard bad versions). Trailing bytes after Total Length (Ethernet
    /// padding) are allowed and excluded from <see cref="Packet"/>. The header checksum is not verified here
    /// (<see cref="IsHeaderChecksumValid"/>), because stages that trust the kernel skip it.
    /// </summary>
    public static ParseError TryParse(Span<byte> bytes, out Ipv4Header header)
    {
        header = default;
        if (bytes.Length < MinLength)
        {
            return ParseError.Truncated;
        }

        byte versionIhl = bytes[0];
        if ((versionIhl >> 4) != 4)
        {
            return ParseError.BadVersion;
        }

        int headerLength = (versionIhl & 0x0F) * 4;
        if (headerLength < MinLength)
        {
            return ParseError.BadHeaderLength;
        }

        if (headerLength > bytes.Length)
        {
            return ParseError.Truncated;
        }

        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        if (totalLength < headerLength)
        {
            return ParseError.BadTotalLength;
        }

        if (totalLength > bytes.Length)
        {
            return ParseError.Truncated;
        }

        header = new Ipv4Header(bytes);
        return ParseError.None;
    }

    public byte Version => (byte)(_bytes[0] >> 4);

    /// <summary>Internet Header Length in 32-bit words.</summary>
    public byte Ihl => (byte)(_bytes[0] & 0x0F);

    public int HeaderLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (_bytes[0] & 0x0F) << 2;
    }

    public int OptionsLength => HeaderLength - MinLength;

    public Span<byte> Options => _bytes[MinLength..HeaderLength];

    public byte Dscp
    {
        get => (byte)(_bytes[1] >> 2);
        set => _bytes[1] = (byte)((value << 2) | (_bytes[1] & 0x03));
    }

    public byte Ecn
    {
        get => (byte)(_bytes[1] & 0x03);
        set => _bytes[1] = (byte)((_bytes[1] & 0xFC) | (value & 0x03));
    }

    public ushort TotalLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[2..], value);
    }

    public ushort Identification
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[4..], value);
    }

    private ushort FlagsAndOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[6..], value);
    }

    public bool DontFragment
    {
        get => (FlagsAndOffset & FlagDontFragment) != 0;
        set => FlagsAndOffset = (ushort)(value ? FlagsAndOffset | FlagDontFragment : FlagsAndOffset & ~FlagDontFragment);
    }

    public bool MoreFragments
    {
        get => (FlagsAndOffset & FlagMoreFragments) != 0;
        set => FlagsAndOffset = (ushort)(value ? FlagsAndOffset | FlagMoreFragments : FlagsAndOffset & ~FlagMoreFragments);
    }

    /// <summary>Fragment offset in 8-octet units (RFC 791).</summary>
    public ushort FragmentOffset
    {
        get => (ushort)(FlagsAndOffset & FragmentOffsetMask);
        set => FlagsAndOffset = (ushort)((FlagsAndOffset & ~FragmentOffsetMask) | (value & FragmentOffsetMask));
    }

    public int FragmentOffsetBytes => FragmentOffset * 8;

    /// <summary>True for any fragment (first, middle or last): MF set or a non-zero offset.</summary>
    public bool IsFragment
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (FlagsAndOffset & (FlagMoreFragments | FragmentOffsetMask)) != 0;
    }

    /// <summary>True when the transport header is not in this packet (a non-first fragment).</summary>
    public bool IsLaterFragment => FragmentOffset != 0;

    public byte Ttl
    {
        get => _bytes[8];
        set => _bytes[8] = value;
    }

    public byte Protocol
    {
        get => _bytes[9];
        set => _bytes[9] = value;
    }

    public ushort HeaderChecksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[10..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[10..], value);
    }

    public Ipv4Address Source
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Ipv4Address.Read(_bytes[12..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => value.WriteTo(_bytes[12..]);
    }

    public Ipv4Address Destination
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Ipv4Address.Read(_bytes[16..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => value.WriteTo(_bytes[16..]);
    }

    /// <summary>Header, options and payload, up to Total Length (excludes link-layer padding).</summary>
    public Span<byte> Packet => _bytes[..TotalLength];

    /// <summary>The transport payload: from the end of the options to Total Length.</summary>
    public Span<byte> Payload => _bytes[HeaderLength..TotalLength];

    /// <summary>Computes the header checksum over the header as it is, treating the checksum field as zero.</summary>
    public ushort ComputeHeaderChecksum()
    {
        var header = _bytes[..HeaderLength];
        ulong sum = Checksum.Add(header[..10]);
        sum = Checksum.Add(header[12..], sum);
        return Checksum.Finish(sum);
    }

    /// <summary>Recomputes and writes the header checksum (RFC 791 section 3.1, "Header Checksum").</summary>
    public void UpdateHeaderChecksum() => HeaderChecksum = ComputeHeaderChecksum();

    public bool IsHeaderChecksumValid => Checksum.IsValid(_bytes[..HeaderLength]);

    /// <summary>
    /// Decrements TTL and patches the header checksum incrementally (RFC 1624 eqn. 3, RFC 1812
    /// section 5.3.1). Returns false, and changes nothing, when TTL is already 0 or 1: the packet must
    /// not be forwarded.
    /// </summary>
    public bool TryDecrementTtl()
    {
        byte ttl = _bytes[8];
        if (ttl <= 1)
        {
            return false;
        }

        ushort oldWord = BinaryPrimitives.ReadUInt16BigEndian(_bytes[8..]);
        _bytes[8] = (byte)(ttl - 1);
        ushort newWord = BinaryPrimitives.ReadUInt16BigEndian(_bytes[8..]);
        HeaderChecksum = Checksum.Update(HeaderChecksum, oldWord, newWord);
        return true;
    }

    /// <summary>Rewrites the source address and patches the header checksum (RFC 1624). The transport checksum is the caller's.</summary>
    public void RewriteSource(Ipv4Address address)
    {
        HeaderChecksum = Checksum.Update(HeaderChecksum, Source.Value, address.Value);
        Source = address;
    }

    /// <summary>Rewrites the destination address and patches the header checksum (RFC 1624). The transport checksum is the caller's.</summary>
    public void RewriteDestination(Ipv4Address address)
    {
        HeaderChecksum = Checksum.Update(HeaderChecksum, Destination.Value, address.Value);
        Destination = address;
    }

    /// <summary>
    /// Writes a 20-byte header (no options, DSCP/ECN 0) with a correct checksum; returns <see cref="MinLength"/>.
    /// </summary>
    public static int Write(
        Span<byte> destination,
        Ipv4Address source,
        Ipv4Address destinationAddress,
        byte protocol,
        ushort payloadLength,
        byte ttl = 64,
        ushort identification = 0,
        bool dontFragment = true)
    {
        var header = destination[..MinLength];
        header[0] = 0x45;
        header[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)(MinLength + payloadLength));
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], identification);
        BinaryPrimitives.WriteUInt16BigEndian(header[6..], dontFragment ? FlagDontFragment : (ushort)0);
        header[8] = ttl;
        header[9] = protocol;
        header[10] = 0;
        header[11] = 0;
        source.WriteTo(header[12..]);
        destinationAddress.WriteTo(header[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], Checksum.Compute(header));
        return MinLength;
    }
}
