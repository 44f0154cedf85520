using System.Numerics;
using System.Runtime.CompilerServices;

namespace Isthmus.DataPlane.Route;

/// <summary>
/// Longest-prefix match by hash tables per prefix length, searched longest first (the "tuple space"
/// form of LPM; Waldvogel et al. binary-search it, which is an optimisation for a later day). One
/// open-addressing table holds every (masked address, length) key; a lookup probes it once per prefix
/// length that actually occurs in the table, so its cost depends on the number of distinct lengths
/// (at most 33 or 129, usually a handful), never on the number of routes. No allocation per lookup.
/// </summary>
/// <remarks>
/// Keys are 128-bit (<c>hi</c>, <c>lo</c>). IPv4 tables (<see cref="Width"/> 32) keep the address in the
/// low 32 bits of <c>lo</c>. Immutable after construction; shared by every worker through the snapshot.
/// </remarks>
public sealed class LpmTable
{
    private readonly Slot[] _slots;
    private readonly int _mask;
    private readonly byte[] _lengths;

    /// <param name="width">32 for IPv4, 128 for IPv6.</param>
    /// <param name="prefixes">(hi, lo, length, value) with the host bits already zero; values ≥ 0; no duplicates.</param>
    public LpmTable(int width, IReadOnlyList<(ulong Hi, ulong Lo, int Length, int Value)> prefixes)
    {
        Width = width;
        var size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(8, prefixes.Count * 2));
        _slots = new Slot[size];
        _mask = size - 1;
        var lengths = new SortedSet<int>(Comparer<int>.Create((a, b) => b.CompareTo(a)));
        foreach (var (hi, lo, length, value) in prefixes)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(length, width);
            var (mh, ml) = Mask(hi, lo, length);
            if (mh != hi || ml != lo)
            {
                throw new ArgumentException($"prefix /{length} has host bits set", nameof(prefixes));
            }

            var i = Hash(hi, lo, length) & _mask;
            while (_slots[i].LengthPlusOne != 0)
            {
                if (_slots[i].Hi == hi && _slots[i].Lo == lo && _slots[i].LengthPlusOne == length + 1)
                {
                    throw new ArgumentException($"prefix /{length} listed twice", nameof(prefixes));
                }

                i = (i + 1) & _mask;
            }

            _slots[i] = new Slot { Hi = hi, Lo = lo, LengthPlusOne = length + 1, Value = value };
            lengths.Add(length);
        }

        _lengths = [.. lengths.Select(l => (byte)l)];
        Count = prefixes.Count;
    }

    public static LpmTable Empty4 { get; } = new(32, []);

    public static LpmTable Empty6 { get; } = new(128, []);

    public int Width { get; }

    public int Count { get; }

    /// <summary>The prefix lengths present, longest first: the probes a lookup makes at most.</summary>
    public ReadOnlySpan<byte> Lengths => _lengths;

    /// <summary>The value of the longest prefix covering the address, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(uint ipv4) => Lookup(0, ipv4);

    /// <summary>The value of the longest prefix covering (<paramref name="hi"/>, <paramref name="lo"/>), or -1.</summary>
    public int Lookup(ulong hi, ulong lo)
    {
        var slots = _slots;
        foreach (var length in _lengths)
        {
            var (mh, ml) = Mask(hi, lo, length);
            var i = Hash(mh, ml, length) & _mask;
            while (true)
            {
                ref var slot = ref slots[i];
                if (slot.LengthPlusOne == 0)
                {
                    break;
                }

                if (slot.Lo == ml && slot.Hi == mh && slot.LengthPlusOne == length + 1)
                {
                    return slot.Value;
                }

                i = (i + 1) & _mask;
            }
        }

        return -1;
    }

    /// <summary>Zeroes the host bits of an address for a prefix length (of this table's width).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public (ulong Hi, ulong Lo) Mask(ulong hi, ulong lo, int length) => Width == 32 ? (0, Mask32(lo, length)) : Mask128(hi, lo, length);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mask32(ulong address, int length) =>
        length == 0 ? 0 : address & (0xFFFF_FFFFUL << (32 - length)) & 0xFFFF_FFFFUL;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong Hi, ulong Lo) Mask128(ulong hi, ulong lo, int length) => length switch
    {
        0 => (0, 0),
        < 64 => (hi & (ulong.MaxValue << (64 - length)), 0),
        64 => (hi, 0),
        < 128 => (hi, lo & (ulong.MaxValue << (128 - length))),
        _ => (hi, lo),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong hi, ulong lo, int length)
    {
        var h = (hi * 0x9E37_79B9_7F4A_7C15UL) ^ (lo * 0xC2B2_AE3D_27D4_EB4FUL) ^ ((ulong)length * 0x1656_67B1_9E37_79F9UL);
        return (int)(h >> 35);
    }

    private struct Slot
    {
        public ulong Hi;
        public ulong Lo;

        /// <summary>Prefix length + 1; 0 marks an empty slot.</summary>
        public int LengthPlusOne;

        public int Value;
    }
}
