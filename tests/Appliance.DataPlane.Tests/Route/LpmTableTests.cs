using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Route;

namespace Isthmus.DataPlane.Tests.Route;

/// <summary>The FIB's LPM against the obvious reference: scan every prefix, keep the longest that covers.</summary>
public class LpmTableTests
{
    private sealed record Case(bool V6, (ulong Hi, ulong Lo, int Length)[] Prefixes, (ulong Hi, ulong Lo)[] Probes);

    private static Gen<ulong> Word =>
        from a in Gen.Choose(0, 0xFFFF)
        from b in Gen.Choose(0, 0xFFFF)
        from c in Gen.Choose(0, 0xFFFF)
        from d in Gen.Choose(0, 0xFFFF)
        select ((ulong)(uint)a << 48) | ((ulong)(uint)b << 32) | ((ulong)(uint)c << 16) | (uint)d;

    /// <summary>
    /// Prefixes are drawn near a few "base" addresses so they nest and overlap (random prefixes over
    /// 2^128 would almost never cover each other); probes come from the same bases with random tails.
    /// </summary>
    private static Gen<Case> Cases =>
        from v6 in Gen.Elements(false, true)
        from bases in Gen.ArrayOf(Address, 3)
        from rawPrefixes in Gen.ListOf(Near(v6))
        from rawProbes in Gen.ArrayOf(Near(v6), 20)
        select Build(v6, bases, [.. rawPrefixes], rawProbes);

    private static Gen<(ulong, ulong)> Address =>
        from hi in Word
        from lo in Word
        select (hi, lo);

    private static Gen<(int, int, (ulong, ulong))> Near(bool v6) =>
        from b in Gen.Choose(0, 2)
        from length in Gen.Choose(0, v6 ? 128 : 32)
        from random in Address
        select (b, length, random);

    private static Case Build(bool v6, (ulong, ulong)[] bases, (int, int, (ulong, ulong))[] prefixes, (int, int, (ulong, ulong))[] probes)
    {
        var table = new List<(ulong, ulong, int)>();
        foreach (var (b, length, _) in prefixes)
        {
            var (hi, lo) = Mask(v6, bases[b].Item1, bases[b].Item2, length);
            if (!table.Contains((hi, lo, length)))
            {
                table.Add((hi, lo, length));
            }
        }

        // A probe shares its first `keep` bits with a base, then goes random.
        var probeAddresses = probes.Select(p =>
        {
            var (b, keep, (rh, rl)) = p;
            var (bh, bl) = Mask(v6, bases[b].Item1, bases[b].Item2, keep);
            var (kh, kl) = Mask(v6, ulong.MaxValue, ulong.MaxValue, keep);
            return v6 ? (bh | (rh & ~kh), bl | (rl & ~kl)) : (0UL, (bl | (rl & ~kl)) & 0xFFFF_FFFFUL);
        }).ToArray();
        return new Case(v6, [.. table], probeAddresses);
    }

    private static (ulong, ulong) Mask(bool v6, ulong hi, ulong lo, int length) =>
        v6 ? LpmTable.Mask128(hi, lo, length) : (0, LpmTable.Mask32(lo & 0xFFFF_FFFFUL, length));

    private static int Reference(Case c, ulong hi, ulong lo)
    {
        var best = -1;
        var bestLength = -1;
        for (var i = 0; i < c.Prefixes.Length; i++)
        {
            var (ph, pl, length) = c.Prefixes[i];
            if (length > bestLength && Mask(c.V6, hi, lo, length) == (ph, pl))
            {
                best = i;
                bestLength = length;
            }
        }

        return best;
    }

    [Fact]
    public void Lookup_agrees_with_a_linear_scan_for_ipv4_and_ipv6()
    {
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var table = new LpmTable(c.V6 ? 128 : 32, [.. c.Prefixes.Select((p, i) => (p.Hi, p.Lo, p.Length, i))]);
            foreach (var (hi, lo) in c.Probes)
            {
                Assert.Equal(Reference(c, hi, lo), table.Lookup(hi, lo));
            }
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Only_the_lengths_present_are_probed_longest_first()
    {
        var table = new LpmTable(32, [(0, 0x0A00_0000, 8, 0), (0, 0x0A0A_0000, 16, 1), (0, 0, 0, 2), (0, 0x0A0A_0A00, 24, 3)]);

        Assert.Equal([24, 16, 8, 0], table.Lengths.ToArray());
        Assert.Equal(3, table.Lookup(0x0A0A_0A01));
        Assert.Equal(1, table.Lookup(0x0A0A_0B01));
        Assert.Equal(0, table.Lookup(0x0A0B_0B01));
        Assert.Equal(2, table.Lookup(0x0B00_0001));
    }

    [Fact]
    public void Host_bits_and_duplicates_are_compiler_bugs()
    {
        Assert.Throws<ArgumentException>(() => new LpmTable(32, [(0, 0x0A00_0001, 8, 0)]));
        Assert.Throws<ArgumentException>(() => new LpmTable(32, [(0, 0x0A00_0000, 8, 0), (0, 0x0A00_0000, 8, 1)]));
    }
}
