using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Isthmus.Packets;

/// <summary>
/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
/// </summary>
/// <remarks>
/// A running sum is a <see cref="ulong"/> of big-endian 16-bit words that has not been folded yet;
/// sums can be added together (pseudo-header + header + payload) and are folded once by
/// <see cref="Fold"/> or <see cref="Finish"/>. Spans added to one running sum must each start at an even
/// offset of the checksummed data, except the last one.
/// </remarks>
public static class Checksum
{
    /// <summary>
    /// Adds the 16-bit big-endian words of <paramref name="data"/> to <paramref name="sum"/>.
    /// An odd trailing byte is padded with a zero byte (RFC 1071 section 1).
    /// </summary>
    /// <remarks>
    /// RFC 1071 section 2(B): the sum is byte-order independent, so we add native-order 32-bit
    /// halves of 8-byte loads into a 64-bit accumulator (RFC 1071 section 2(C), deferred carries)
    /// and swap once at the end.
    /// </remarks>
    public static ulong Add(ReadOnlySpan<byte> data, ulong sum = 0)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        nuint length = (nuint)data.Length;
        nuint i = 0;
        ulong acc = 0;

        while (length - i >= 32)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            ulong b = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 8));
            ulong c = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 16));
            ulong d = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 24));
            acc += (a & 0xFFFF_FFFF) + (a >> 32) + (b & 0xFFFF_FFFF) + (b >> 32)
                 + (c & 0xFFFF_FFFF) + (c >> 32) + (d & 0xFFFF_FFFF) + (d >> 32);
            i += 32;
        }

        while (length - i >= 8)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            acc += (a & 0xFFFF_FFFF) + (a >> 32);
            i += 8;
        }

        if (length - i >= 4)
        {
            acc += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i));
            i += 4;
        }

        if (length - i >= 2)
        {
            acc += Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i));
            i += 2;
        }

        if (length - i == 1)
        {
            // The odd byte is the high half of a big-endian word: native low byte on little endian.
            ulong last = Unsafe.Add(ref p, i);
            acc += BitConverter.IsLittleEndian ? last : last << 8;
        }

        ushort folded = Fold(acc);
        return sum + (BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(folded) : folded);
    }

    /// <summary>Adds one 16-bit word (host order value of a big-endian field).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add(ushort word, ulong sum) => sum + word;

    /// <summary>Adds a 32-bit value as its two 16-bit words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add(uint value, ulong sum) => sum + (value >> 16) + (value & 0xFFFF);

    /// <summary>Folds carries into 16 bits (end-around carry), without complementing.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(ulong sum)
    {
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The value to put in a checksum field: the ones' complement of the folded sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Finish(ulong sum) => (ushort)~Fold(sum);

    /// <summary>The Internet checksum of <paramref name="data"/> (checksum field included as zero by the caller).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(data));

    /// <summary>True when data that contains its own checksum field sums to 0xFFFF (RFC 1071 section 1, receiver check).</summary>
    public static bool IsValid(ReadOnlySpan<byte> data, ulong pseudoHeaderSum = 0) => Fold(Add(data, pseudoHeaderSum)) == 0xFFFF;

    /// <summary>
    /// Sum of the IPv4 pseudo-header (RFC 9293 section 3.1, RFC 768): source, destination, zero,
    /// protocol and the transport length.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PseudoHeaderSum(Ipv4Address source, Ipv4Address destination, byte protocol, ushort length) =>
        (source.Value >> 16) + (source.Value & 0xFFFF)
        + (destination.Value >> 16) + (destination.Value & 0xFFFF)
        + protocol + (ulong)length;

    /// <summary>
    /// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination, 32-bit upper-layer
    /// length, three zero bytes and the next header.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PseudoHeaderSum(in Ipv6Address source, in Ipv6Address destination, byte nextHeader, uint length) =>
        SumWords(source.High) + SumWords(source.Low) + SumWords(destination.High) + SumWords(destination.Low)
        + (length >> 16) + (length & 0xFFFF) + nextHeader;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SumWords(ulong value) => (value >> 48) + ((value >> 32) & 0xFFFF) + ((value >> 16) & 0xFFFF) + (value & 0xFFFF);

    /// <summary>
    /// RFC 1624 section 3, eqn. 3: HC' = ~(~HC + ~m + m'), the new checksum after a 16-bit field
    /// changed from <paramref name="oldValue"/> to <paramref name="newValue"/>. Eqn. 3 (not eqn. 2)
    /// avoids producing -0 (0xFFFF is never the result for a valid header, RFC 1624 section 4).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, ushort oldValue, ushort newValue) => Apply(checksum, Delta(oldValue, newValue));

    /// <summary>RFC 1624 eqn. 3 applied to a 32-bit field (an IPv4 address, a TCP sequence number).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, uint oldValue, uint newValue) => Apply(checksum, Delta(oldValue, newValue));

    /// <summary>The ~m + m' part of RFC 1624 eqn. 3 for a 16-bit field: sum several, keep it, <see cref="Apply"/> it later.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta(ushort oldValue, ushort newValue) => (ulong)(ushort)~oldValue + newValue;

    /// <summary>The ~m + m' part of RFC 1624 eqn. 3 for a 32-bit field.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta(uint oldValue, uint newValue) =>
        (ulong)(ushort)~(oldValue >> 16) + (ushort)~oldValue + (newValue >> 16) + (newValue & 0xFFFF);

    /// <summary>RFC 1624 eqn. 3 with a summed (or folded) <see cref="Delta(ushort, ushort)"/>: ~(~HC + delta).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Apply(ushort checksum, ulong delta) => (ushort)~Fold((ulong)(ushort)~checksum + delta);

    /// <summary>
    /// <see cref="Apply"/> with a delta already folded to 16 bits (a cached one): ~HC + delta is at
    /// most 0x1FFFE, so one end-around carry completes the sum (the per-packet rewrite of the fast path).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ApplyFolded(ushort checksum, ushort delta)
    {
        var sum = (uint)(ushort)~checksum + delta;
        return (ushort)~((sum & 0xFFFF) + (sum >> 16));
    }

    /// <summary>RFC 1624 eqn. 3 applied to a 128-bit field (an IPv6 address).</summary>
    public static ushort Update(ushort checksum, in Ipv6Address oldValue, in Ipv6Address newValue)
    {
        ulong sum = (ushort)~checksum;
        sum += SumWords(~oldValue.High) + SumWords(~oldValue.Low);
        sum += SumWords(newValue.High) + SumWords(newValue.Low);
        return (ushort)~Fold(sum);
    }
}
