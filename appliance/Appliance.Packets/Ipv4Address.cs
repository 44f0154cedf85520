using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>An IPv4 address as a host-order <see cref="uint"/> (first octet most significant).</summary>
public readonly struct Ipv4Address : IEquatable<Ipv4Address>, IComparable<Ipv4Address>, ISpanFormattable
{
    public const int Length = 4;

    private readonly uint _value;

    public Ipv4Address(uint value) => _value = value;

    public Ipv4Address(byte a, byte b, byte c, byte d) => _value = ((uint)a << 24) | ((uint)b << 16) | ((uint)c << 8) | d;

    public static Ipv4Address Any => default;
    public static Ipv4Address Broadcast => new(0xFFFF_FFFF);

    public uint Value => _value;

    public bool IsAny => _value == 0;
    public bool IsBroadcast => _value == 0xFFFF_FFFF;

    /// <summary>224.0.0.0/4 (RFC 5771).</summary>
    public bool IsMulticast => (_value & 0xF000_0000) == 0xE000_0000;

    /// <summary>127.0.0.0/8.</summary>
    public bool IsLoopback => (_value >> 24) == 127;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Ipv4Address Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt32BigEndian(source));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteTo(Span<byte> destination) => BinaryPrimitives.WriteUInt32BigEndian(destination, _value);

    /// <summary>True when both addresses fall in the same prefix of <paramref name="prefixLength"/> bits.</summary>
    public bool IsInPrefix(Ipv4Address network, int prefixLength)
    {
        if (prefixLength <= 0)
        {
            return true;
        }

        uint mask = prefixLength >= 32 ? 0xFFFF_FFFFu : ~(0xFFFF_FFFFu >> prefixLength);
        return (_value & mask) == (network._value & mask);
    }

    public static Ipv4Address Parse(ReadOnlySpan<char> text) =>
        TryParse(text, out var address) ? address : throw new FormatException("Expected a dotted-quad IPv4 address.");

    /// <summary>Strict dotted quad: four decimal octets 0-255, no leading zeros (avoids the octal ambiguity).</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out Ipv4Address address)
    {
        address = default;
        uint value = 0;
        int octets = 0;
        int i = 0;
        while (true)
        {
            int start = i;
            int octet = 0;
            while (i < text.Length && text[i] >= '0' && text[i] <= '9')
            {
                octet = (octet * 10) + (text[i] - '0');
                i++;
                if (i - start > 3)
                {
                    return false;
                }
            }

            int digits = i - start;
            if (digits == 0 || octet > 255 || (digits > 1 && text[start] == '0'))
            {
                return false;
            }

            value = (value << 8) | (uint)octet;
            octets++;
            if (octets == 4)
            {
                break;
            }

            if (i >= text.Length || text[i] != '.')
            {
                return false;
            }

            i++;
        }

        if (i != text.Length)
        {
            return false;
        }

        address = new Ipv4Address(value);
        return true;
    }

    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format = default, IFormatProvider? provider = null)
    {
        charsWritten = 0;
        for (int i = 0; i < 4; i++)
        {
            if (i > 0)
            {
                if (charsWritten >= destination.Length)
                {
                    return false;
                }

                destination[charsWritten++] = '.';
            }

            uint octet = (_value >> (24 - (i * 8))) & 0xFF;
            if (!octet.TryFormat(destination[charsWritten..], out int written, default, System.Globalization.CultureInfo.InvariantCulture))
            {
                return false;
            }

            charsWritten += written;
        }

        return true;
    }

    public override string ToString()
    {
        Span<char> buffer = stackalloc char[15];
        TryFormat(buffer, out int written);
        return new string(buffer[..written]);
    }

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    public bool Equals(Ipv4Address other) => _value == other._value;

    public override bool Equals(object? obj) => obj is Ipv4Address other && Equals(other);

    public override int GetHashCode() => (int)((_value * 0x9E37_79B9u) ^ (_value >> 16));

    public int CompareTo(Ipv4Address other) => _value.CompareTo(other._value);

    public static bool operator ==(Ipv4Address left, Ipv4Address right) => left._value == right._value;

    public static bool operator !=(Ipv4Address left, Ipv4Address right) => left._value != right._value;

    public static bool operator <(Ipv4Address left, Ipv4Address right) => left._value < right._value;

    public static bool operator >(Ipv4Address left, Ipv4Address right) => left._value > right._value;

    public static bool operator <=(Ipv4Address left, Ipv4Address right) => left._value <= right._value;

    public static bool operator >=(Ipv4Address left, Ipv4Address right) => left._value >= right._value;
}
