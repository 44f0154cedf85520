using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>
/// A 48-bit IEEE 802 MAC address packed into the low 48 bits of a <see cref="ulong"/>, first octet
/// most significant, so comparisons and hashing are single integer operations.
/// </summary>
public readonly struct MacAddress : IEquatable<MacAddress>, IComparable<MacAddress>, ISpanFormattable
{
    public const int Length = 6;
    private const ulong Mask = 0xFFFF_FFFF_FFFFUL;

    private readonly ulong _value;

    public MacAddress(ulong value) => _value = value & Mask;

    public static MacAddress Zero => default;
    public static MacAddress Broadcast => new(Mask);

    /// <summary>The address as a 48-bit integer, first octet most significant.</summary>
    public ulong Value => _value;

    public bool IsBroadcast => _value == Mask;

    /// <summary>I/G bit: the least significant bit of the first octet (IEEE 802-2014 section 8.2). Includes broadcast.</summary>
    public bool IsMulticast => (_value & 0x0100_0000_0000UL) != 0;

    public bool IsUnicast => !IsMulticast;

    /// <summary>U/L bit: second least significant bit of the first octet.</summary>
    public bool IsLocallyAdministered => (_value & 0x0200_0000_0000UL) != 0;

    public bool IsZero => _value == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static MacAddress Read(ReadOnlySpan<byte> source)
    {
        // Reading the 2-byte tail first gives the JIT one bounds check for the whole address.
        ulong low = BinaryPrimitives.ReadUInt16BigEndian(source[4..]);
        ulong high = BinaryPrimitives.ReadUInt32BigEndian(source);
        return new MacAddress((high << 16) | low);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], (ushort)_value);
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)(_value >> 16));
    }

    public static MacAddress Parse(ReadOnlySpan<char> text) =>
        TryParse(text, out var mac) ? mac : throw new FormatException("Expected a MAC address like aa:bb:cc:dd:ee:ff.");

    /// <summary>Accepts six two-digit hex octets separated by ':' or '-'.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out MacAddress address)
    {
        address = default;
        if (text.Length != 17)
        {
            return false;
        }

        char separator = text[2];
        if (separator != ':' && separator != '-')
        {
            return false;
        }

        ulong value = 0;
        for (int i = 0; i < 6; i++)
        {
            int at = i * 3;
            if (i < 5 && text[at + 2] != separator)
            {
                return false;
            }

            int hi = HexValue(text[at]);
            int lo = HexValue(text[at + 1]);
            if ((hi | lo) < 0)
            {
                return false;
            }

            value = (value << 8) | (uint)((hi << 4) | lo);
        }

        address = new MacAddress(value);
        return true;
    }

    internal static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format = default, IFormatProvider? provider = null)
    {
        charsWritten = 0;
        if (destination.Length < 17)
        {
            return false;
        }

        for (int i = 0; i < 6; i++)
        {
            int octet = (int)(_value >> (40 - (i * 8))) & 0xFF;
            int at = i * 3;
            destination[at] = "0123456789abcdef"[octet >> 4];
            destination[at + 1] = "0123456789abcdef"[octet & 0xF];
            if (i < 5)
            {
                destination[at + 2] = ':';
            }
        }

        charsWritten = 17;
        return true;
    }

    public override string ToString() => string.Create(17, _value, static (span, value) => new MacAddress(value).TryFormat(span, out _));

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    public bool Equals(MacAddress other) => _value == other._value;

    public override bool Equals(object? obj) => obj is MacAddress other && Equals(other);

    /// <summary>Fibonacci hashing: spreads OUI-heavy addresses (most bits equal) across buckets.</summary>
    public override int GetHashCode() => (int)((_value * 0x9E37_79B9_7F4A_7C15UL) >> 32);

    public int CompareTo(MacAddress other) => _value.CompareTo(other._value);

    public static bool operator ==(MacAddress left, MacAddress right) => left._value == right._value;

    public static bool operator !=(MacAddress left, MacAddress right) => left._value != right._value;

    public static bool operator <(MacAddress left, MacAddress right) => left._value < right._value;

    public static bool operator >(MacAddress left, MacAddress right) => left._value > right._value;

    public static bool operator <=(MacAddress left, MacAddress right) => left._value <= right._value;

    public static bool operator >=(MacAddress left, MacAddress right) => left._value >= right._value;
}
