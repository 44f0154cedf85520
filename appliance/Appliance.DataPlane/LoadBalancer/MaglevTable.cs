using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Isthmus.DataPlane.LoadBalancer;

/// <summary>
/// One backend as the Maglev table sees it: a stable identity (the same on every appliance with the
/// same config, e.g. <see cref="MaglevHash.Name"/> of "10.0.1.5:8080") and a weight (1..65535).
/// Disabled, draining or down backends are simply left out of the list.
/// </summary>
public readonly record struct MaglevBackend(ulong Id, int Weight)
{
    /// <summary>A backend identified by a name (hashed with 64-bit FNV-1a over its UTF-8 bytes).</summary>
    public static MaglevBackend FromName(string name, int weight = 1) => new(MaglevHash.Name(name), weight);
}

/// <summary>
/// Deterministic hashes: the same output on every process, machine and run (never
/// <see cref="string.GetHashCode()"/>, which is randomised per process).
/// </summary>
public static class MaglevHash
{
    /// <summary>The fixed seed of <see cref="Flow(uint, uint, ushort, ushort, byte, ulong)"/>; part of the wire contract between appliances sharing a VIP.</summary>
    public const ulong DefaultFlowSeed = 0x4973_7468_6D75_734Cul; // "IsthmusL"

    // Seeds of the two permutation hashes h1 (offset) and h2 (skip): fixed forever, or every
    // appliance that shares a VIP must change them in the same release.
    internal const ulong OffsetSeed = 0x9E37_79B9_7F4A_7C15ul;
    internal const ulong SkipSeed = 0xC2B2_AE3D_27D4_EB4Ful;

    private const ulong FnvOffset = 0xCBF2_9CE4_8422_2325ul;
    private const ulong FnvPrime = 0x0000_0100_0000_01B3ul;
    private const ulong Lane = 0x9FB2_1C65_1E98_DF25ul;

    /// <summary>64-bit FNV-1a over the UTF-8 bytes of <paramref name="name"/>.</summary>
    public static ulong Name(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var hash = FnvOffset;
        foreach (var b in Encoding.UTF8.GetBytes(name))
        {
            hash = (hash ^ b) * FnvPrime;
        }

        return hash;
    }

    /// <summary>The MurmurHash3 / SplitMix64 finaliser: a bijection on 64 bits with full avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xFF51_AFD7_ED55_8CCDul;
        x ^= x >> 33;
        x *= 0xC4CE_B9FE_1A85_EC53ul;
        x ^= x >> 33;
        return x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Absorb(ulong hash, ulong lane) => Mix(hash ^ (lane * Lane)) + Lane;

    /// <summary>
    /// The IPv4 5-tuple hash (addresses as host-order values, 10.0.0.1 = 0x0A000001, as elsewhere in
    /// the data plane). Direction-sensitive on purpose: the balancer hashes client → VIP packets only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Flow(uint source, uint destination, ushort sourcePort, ushort destinationPort, byte protocol, ulong seed = DefaultFlowSeed)
    {
        var hash = Absorb(seed, ((ulong)source << 32) | destination);
        hash = Absorb(hash, ((ulong)4 << 56) | ((ulong)protocol << 32) | ((ulong)sourcePort << 16) | destinationPort);
        return Mix(hash);
    }

    /// <summary>
    /// The 5-tuple hash over addresses in network byte order: 4 bytes each (equal to the
    /// <see cref="uint"/> overload) or 16 bytes each (IPv6). Any other length throws.
    /// </summary>
    public static ulong Flow(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, ushort sourcePort, ushort destinationPort, byte protocol, ulong seed = DefaultFlowSeed)
    {
        if (source.Length == 4 && destination.Length == 4)
        {
            return Flow(BinaryPrimitives.ReadUInt32BigEndian(source), BinaryPrimitives.ReadUInt32BigEndian(destination), sourcePort, destinationPort, protocol, seed);
        }

        if (source.Length != 16 || destination.Length != 16)
        {
            throw new ArgumentException("addresses must both be 4 (IPv4) or both 16 (IPv6) bytes");
        }

        var hash = Absorb(seed, BinaryPrimitives.ReadUInt64BigEndian(source));
        hash = Absorb(hash, BinaryPrimitives.ReadUInt64BigEndian(source[8..]));
        hash = Absorb(hash, BinaryPrimitives.ReadUInt64BigEndian(destination));
        hash = Absorb(hash, BinaryPrimitives.ReadUInt64BigEndian(destination[8..]));
        hash = Absorb(hash, ((ulong)6 << 56) | ((ulong)protocol << 32) | ((ulong)sourcePort << 16) | destinationPort);
        return Mix(hash);
    }
}

/// <summary>
/// Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): a lookup table of prime size M in
/// which every backend owns about its weight share of the slots, and which changes little when a
/// backend comes or goes. Built by the control plane; immutable afterwards, so workers share one
/// instance and a new table is published by a reference swap.
/// </summary>
/// <remarks>
/// <para>Canonical order: the backends are sorted by <see cref="MaglevBackend.Id"/> before filling
/// (duplicates are rejected), so the table does not depend on the order of the configured list, and
/// <see cref="Lookup"/> returns an index into <see cref="Backends"/> (that sorted order).</para>
/// <para>Permutations: offset = h1(id) mod M, skip = h2(id) mod (M − 1) + 1, permutation[i][j] =
/// (offset + j × skip) mod M; M prime makes every permutation visit every slot.</para>
/// <para>Weights: weights are first divided by their greatest common divisor; then each round of
/// the fill gives backend i w_i turns in a row (each turn takes the next empty slot of its
/// permutation), so after R full rounds backend i holds exactly R × w_i slots and the last, partial
/// round adds at most w_i more. With equal weights this is the paper's Algorithm 1 exactly.</para>
/// <para>Size: by default the smallest prime ≥ 100 × Σ w_i (normalised), which is ≥ 100 × N as the
/// paper advises (M ≫ N keeps the shares within about 1 % of even).</para>
/// </remarks>
public sealed class MaglevTable
{
    /// <summary>The largest table accepted (4 bytes a slot: 64 MB).</summary>
    public const int MaxSize = 1 << 24;

    /// <summary>The default table size is the smallest prime ≥ this × Σ normalised weights.</summary>
    public const int SlotsPerWeight = 100;

    private readonly int[] _table;
    private readonly ulong _size;
    private readonly MaglevBackend[] _backends;

    public MaglevTable(IEnumerable<MaglevBackend> backends, int size = 0)
    {
        ArgumentNullException.ThrowIfNull(backends);
        var sorted = backends.ToArray();
        if (sorted.Length == 0)
        {
            throw new ArgumentException("a Maglev table needs at least one backend", nameof(backends));
        }

        Array.Sort(sorted, static (a, b) => a.Id.CompareTo(b.Id));
        var gcd = 0;
        for (var i = 0; i < sorted.Length; i++)
        {
            if (sorted[i].Weight is < 1 or > ushort.MaxValue)
            {
                throw new ArgumentException($"backend {sorted[i].Id:x16}: weight {sorted[i].Weight} is not in 1..65535", nameof(backends));
            }

            if (i > 0 && sorted[i].Id == sorted[i - 1].Id)
            {
                throw new ArgumentException($"backend {sorted[i].Id:x16} is listed twice", nameof(backends));
            }

            gcd = Gcd(gcd, sorted[i].Weight);
        }

        var turns = new int[sorted.Length];
        long totalTurns = 0;
        for (var i = 0; i < sorted.Length; i++)
        {
            turns[i] = sorted[i].Weight / gcd;
            totalTurns += turns[i];
        }

        if (size == 0)
        {
            size = DefaultSize(totalTurns);
        }
        else if (size < 2 || size > MaxSize || !IsPrime(size))
        {
            throw new ArgumentException($"table size {size} is not a prime in 2..{MaxSize}", nameof(size));
        }

        if (size < sorted.Length)
        {
            throw new ArgumentException($"table size {size} is smaller than the {sorted.Length} backends", nameof(size));
        }

        _backends = sorted;
        _size = (ulong)size;
        _table = Fill(sorted, turns, size);
    }

    /// <summary>M, a prime.</summary>
    public int Size => _table.Length;

    /// <summary>The backends in canonical order (sorted by id); <see cref="Lookup"/> indexes this.</summary>
    public IReadOnlyList<MaglevBackend> Backends => _backends;

    /// <summary>The slots (backend indices into <see cref="Backends"/>), for tests, the trace and the API.</summary>
    public ReadOnlySpan<int> Slots => _table;

    /// <summary>The backend index for a flow: table[flowHash mod M]. No allocation, no lock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(ulong flowHash) => _table[(int)(flowHash % _size)];

    /// <summary>The slot a flow hash lands in (the trace's "hash slot").</summary>
    public int Slot(ulong flowHash) => (int)(flowHash % _size);

    /// <summary>The smallest prime ≥ <see cref="SlotsPerWeight"/> × <paramref name="totalWeight"/> (at least 2).</summary>
    public static int DefaultSize(long totalWeight)
    {
        var want = Math.Max(2, SlotsPerWeight * totalWeight);
        for (var candidate = want; candidate <= MaxSize; candidate++)
        {
            if (IsPrime(candidate))
            {
                return (int)candidate;
            }
        }

        throw new ArgumentException($"{totalWeight} normalised weight units need a table larger than {MaxSize}", nameof(totalWeight));
    }

    /// <summary>Deterministic trial division (M ≤ 2^24, so at most ~700 odd divisors).</summary>
    public static bool IsPrime(long n)
    {
        if (n < 2)
        {
            return false;
        }

        if (n % 2 == 0)
        {
            return n == 2;
        }

        for (long d = 3; d * d <= n; d += 2)
        {
            if (n % d == 0)
            {
                return false;
            }
        }

        return true;
    }

    internal static int Gcd(int a, int b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }

    private static int[] Fill(MaglevBackend[] backends, int[] turns, int size)
    {
        var m = (ulong)size;
        var n = backends.Length;
        var offset = new ulong[n];
        var skip = new ulong[n];
        var next = new ulong[n];
        for (var i = 0; i < n; i++)
        {
            offset[i] = MaglevHash.Mix(backends[i].Id ^ MaglevHash.OffsetSeed) % m;
            skip[i] = size == 2 ? 1 : (MaglevHash.Mix(backends[i].Id ^ MaglevHash.SkipSeed) % (m - 1)) + 1;
        }

        var table = new int[size];
        Array.Fill(table, -1);
        var filled = 0;
        while (true)
        {
            for (var i = 0; i < n; i++)
            {
                for (var t = 0; t < turns[i]; t++)
                {
                    // permutation[i][next[i]], advanced past slots already taken.
                    ulong slot;
                    do
                    {
                        slot = (offset[i] + (next[i] * skip[i])) % m;
                        next[i]++;
                    }
                    while (table[slot] >= 0);

                    table[slot] = i;
                    if (++filled == size)
                    {
                        return table;
                    }
                }
            }
        }
    }
}
