// Ethernet II frame header (IEEE 802.3 clause 3.2, DIX "Ethernet II" type field), as received
// without preamble and FCS:
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Destination MAC (6 octets)                 |
//  +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                               |                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//  |                      Source MAC (6 octets)                    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |          EtherType            |   Payload ...
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>
/// View over an Ethernet II frame. <see cref="EtherType"/> is the first type field, which is a TPID
/// when the frame is VLAN tagged; use <see cref="VlanTags"/> to reach the payload EtherType.
/// </summary>
public readonly ref struct EthernetHeader
{
    public const int Length = 14;

    /// <summary>Offset of the first EtherType/TPID field, right after the two MAC addresses.</summary>
    public const int EtherTypeOffset = 12;

    private readonly Span<byte> _frame;

    /// <summary>Unchecked view; <paramref name="frame"/> must hold at least <see cref="Length"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public EthernetHeader(Span<byte> frame) => _frame = frame;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ParseError TryParse(Span<byte> frame, out EthernetHeader header)
    {
        if (frame.Length < Length)
        {
            header = default;
            return ParseError.Truncated;
        }

        header = new EthernetHeader(frame);
        return ParseError.None;
    }

    public Span<byte> Frame => _frame;

    public MacAddress Destination
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => MacAddress.Read(_frame);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => value.WriteTo(_frame);
    }

    public MacAddress Source
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => MacAddress.Read(_frame[6..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => value.WriteTo(_frame[6..]);
    }

    public ushort EtherType
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_frame[EtherTypeOffset..]);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_frame[EtherTypeOffset..], value);
    }

    /// <summary>Everything after the first type field (starts with the TCI if the frame is tagged).</summary>
    public Span<byte> Payload => _frame[Length..];

    /// <summary>Writes destination, source and type; returns <see cref="Length"/>.</summary>
    public static int Write(Span<byte> destination, MacAddress destinationMac, MacAddress sourceMac, ushort etherType)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination[EtherTypeOffset..], etherType);
        destinationMac.WriteTo(destination);
        sourceMac.WriteTo(destination[6..]);
        return Length;
    }
}
