using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Isthmus.Packets;

/// <summary>An IPv6 address as two host-order <see cref="ulong"/> halves (<see cref="High"/> holds octets 0-7).</summary>
public readonly struct Ipv6Address : IEquatable<Ipv6Address>, IComparable<Ipv6Address>
{
    public const int Length = 16;

    public Ipv6Address(ulong high, ulong low)
    {
        High = high;
        Low = low;
    }

    public ulong High { get; }
    public ulong Low { get; }

    public static Ipv6Address Any => default;

    public bool IsAny => (High | Low) == 0;

    /// <summary>ff00::/8 (RFC 4291 section 2.7).</summary>
    public bool IsMulticast => (High >> 56) == 0xFF;

    /// <summary>fe80::/10 (RFC 4291 section 2.5.6).</summary>
    public bool IsLinkLocal => (High >> 54) == (0xFE80UL >> 6);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Ipv6Address Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(source), BinaryPrimitives.ReadUInt64BigEndian(source[8..16]));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..16], Low);
        BinaryPrimitives.WriteUInt64BigEndian(destination, High);
    }

    public static Ipv6Address Parse(ReadOnlySpan<char> text) =>
        TryParse(text, out var address) ? address : throw new FormatException("Expected an IPv6 address.");

    /// <summary>RFC 4291 section 2.2 text forms, including "::" and an embedded dotted quad; no zone id.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out Ipv6Address address)
    {
        // Parsing is control-plane work; System.Net's parser is correct and allocation here is fine.
        address = default;
        if (text.IndexOf('%') >= 0 || text.IndexOf(':') < 0
            || !IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        parsed.TryWriteBytes(bytes, out _);
        address = Read(bytes);
        return true;
    }

    /// <summary>RFC 5952 canonical text (lower case, longest zero run compressed).</summary>
    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[16];
        WriteTo(bytes);
        return new IPAddress(bytes).ToString();
    }

    public bool Equals(Ipv6Address other) => High == other.High && Low == other.Low;

    public override bool Equals(object? obj) => obj is Ipv6Address other && Equals(other);

    public override int GetHashCode()
    {
        ulong mixed = (High * 0x9E37_79B9_7F4A_7C15UL) ^ Low;
        return (int)((mixed * 0x9E37_79B9_7F4A_7C15UL) >> 32);
    }

    public int CompareTo(Ipv6Address other) => High != other.High ? High.CompareTo(other.High) : Low.CompareTo(other.Low);

    public static bool operator ==(Ipv6Address left, Ipv6Address right) => left.Equals(right);

    public static bool operator !=(Ipv6Address left, Ipv6Address right) => !left.Equals(right);

    public static bool operator <(Ipv6Address left, Ipv6Address right) => left.CompareTo(right) < 0;

    public static bool operator >(Ipv6Address left, Ipv6Address right) => left.CompareTo(right) > 0;

    public static bool operator <=(Ipv6Address left, Ipv6Address right) => left.CompareTo(right) <= 0;

    public static bool operator >=(Ipv6Address left, Ipv6Address right) => left.CompareTo(right) >= 0;
}
