// VXLAN header, RFC 7348 section 5 (carried in UDP, destination port 4789):
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |R|R|R|R|I|R|R|R|            Reserved                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                VXLAN Network Identifier (VNI) |   Reserved    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Followed by the inner Ethernet frame (without FCS).
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>View over a VXLAN header and the inner frame that follows it (the UDP payload).</summary>
public readonly ref struct VxlanHeader
{
    public const int Length = 8;

    /// <summary>IANA-assigned VXLAN port (RFC 7348 section 5).</summary>
    public const ushort DefaultPort = 4789;

    /// <summary>The port the Linux kernel used before IANA assignment (still its default without dstport).</summary>
    public const ushort LinuxLegacyPort = 8472;

    /// <summary>The I flag: the VNI is valid. It must be 1 (RFC 7348 section 5).</summary>
    public const byte FlagI = 0x08;

    public const uint MaxVni = 0xFF_FFFF;

    private readonly Span<byte> _bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public VxlanHeader(Span<byte> bytes) => _bytes = bytes;

    /// <summary>
    /// <see cref="ParseError.BadVxlanFlags"/> when the I flag is clear. Reserved bits are ignored on
    /// receipt as RFC 7348 section 5 requires; <see cref="HasReservedBitsSet"/> reports them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ParseError TryParse(Span<byte> udpPayload, out VxlanHeader header)
    {
        header = default;
        if (udpPayload.Length < Length)
        {
            return ParseError.Truncated;
        }

        if ((udpPayload[0] & FlagI) == 0)
        {
            return ParseError.BadVxlanFlags;
        }

        header = new VxlanHeader(udpPayload);
        return ParseError.None;
    }

    public byte Flags
    {
        get => _bytes[0];
        set => _bytes[0] = value;
    }

    /// <summary>24-bit VXLAN Network Identifier.</summary>
    public uint Vni
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]) >> 8;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[4..], (value << 8) | _bytes[7]);
    }

    /// <summary>True when any bit other than I is set in the flags, the 24 reserved bits, or the last reserved octet.</summary>
    public bool HasReservedBitsSet =>
        (BinaryPrimitives.ReadUInt32BigEndian(_bytes) & 0xF7FF_FFFFu) != 0 || _bytes[7] != 0;

    /// <summary>The inner Ethernet frame.</summary>
    public Span<byte> InnerFrame => _bytes[Length..];

    /// <summary>Writes flags = I, reserved = 0 and the VNI; returns <see cref="Length"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Write(Span<byte> destination, uint vni)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (vni & MaxVni) << 8);
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)FlagI << 24);
        return Length;
    }
}
