using System.Runtime.CompilerServices;
using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Bridge;

namespace Isthmus.DataPlane.Tests.Bridge;

public class MacTableTests
{
    [Fact]
    public void Behaves_like_a_dictionary_under_random_adds_removes_and_aging()
    {
        // Small key space and table, so clusters, wrap-around and backward-shift deletion all happen.
        var operation = Gen.Zip(Gen.Choose(0, 2), Gen.Choose(0, 40));
        Prop.ForAll(Arb.From(Gen.ListOf(operation)), ops =>
        {
            var table = new MacTable(32);
            var model = new Dictionary<ulong, long>();
            long now = 0;
            foreach (var (kind, key) in ops)
            {
                var mac = (ulong)key * 0x0101_0101_01UL;
                now++;
                switch (kind)
                {
                    case 0 when !model.ContainsKey(mac) && !table.IsFull:
                        ref var e = ref table.Add(mac);
                        e.LastSeen = now;
                        model[mac] = now;
                        break;
                    case 1:
                        Assert.Equal(model.Remove(mac), table.Remove(mac));
                        break;
                    case 2:
                        var cutoff = now - 20;
                        var expired = model.Where(kv => kv.Value < cutoff).Select(kv => kv.Key).ToList();
                        expired.ForEach(k => model.Remove(k));
                        Assert.Equal(expired.Count, table.Age(cutoff));
                        break;
                }

                Assert.Equal(model.Count, table.Count);
                foreach (var (k, seen) in model)
                {
                    ref var found = ref table.Find(k);
                    Assert.False(Unsafe.IsNullRef(ref found));
                    Assert.Equal(seen, found.LastSeen);
                }
            }
        }).QuickCheckThrowOnFailure();
    }
}

/// <summary>Aging in slices (the worker's heartbeat ticks): a pass still looks at every entry, whatever moves under it.</summary>
public class MacTableAgeSliceTests
{
    [Fact]
    public void A_pass_of_slices_removes_every_entry_expired_when_it_started_despite_removals_and_adds_between_slices()
    {
        // A removal between two slices pulls an unvisited entry behind the pass in a few scenarios of a hundred
        // (seeds 18, 39, 146, 241, 295 here): 300 of them.
        for (var seed = 0; seed < 300; seed++)
        {
            OnePass(seed);
        }
    }

    private static void OnePass(int seed)
    {
        // Half full (the table's limit), so clusters are long and every deletion shifts entries back.
        var random = new Random(seed);
        var table = new MacTable(1000);
        var model = new Dictionary<ulong, long>();
        while (!table.IsFull)
        {
            var mac = (ulong)random.NextInt64(1, 1L << 47);
            if (model.TryAdd(mac, random.Next(0, 100)))
            {
                table.Add(mac).LastSeen = model[mac];
            }
        }

        const long cutoff = 50;
        var slice = table.SlotCount / 8;
        var expiredAtStart = model.Where(kv => kv.Value < cutoff).Select(kv => kv.Key).ToHashSet();
        Assert.NotEmpty(expiredAtStart);
        for (var s = 0; s < 8; s++)
        {
            var removed = table.AgeSlice(cutoff, slice);
            Assert.Equal(removed, Forget(table, model, cutoff));

            // Between two slices the bridge forgets some MACs (a move, a flush) and learns new ones.
            for (var k = 0; k < 40; k++)
            {
                var victim = model.Keys.ElementAt(random.Next(model.Count));
                Assert.True(table.Remove(victim));
                model.Remove(victim);
                expiredAtStart.Remove(victim);
            }

            for (var k = 0; k < 40 && !table.IsFull; k++)
            {
                var mac = (ulong)random.NextInt64(1, 1L << 47);
                if (model.TryAdd(mac, 1_000))
                {
                    table.Add(mac).LastSeen = 1_000;
                }
            }
        }

        // The slots a deletion's shift pulled back behind the pass are looked at again: one more slice covers them.
        Assert.Equal(table.AgeSlice(cutoff, slice), Forget(table, model, cutoff));
        var left = expiredAtStart.Count(mac => !Unsafe.IsNullRef(ref table.Find(mac)));
        Assert.True(left == 0, $"seed {seed}: {left} of {expiredAtStart.Count} entries expired at the pass's start outlived it");
        Assert.Equal(model.Count, table.Count);
    }

    /// <summary>Drops from the model what aging removed from the table (each must have been expired); returns how many.</summary>
    private static int Forget(MacTable table, Dictionary<ulong, long> model, long cutoff)
    {
        var gone = model.Where(kv => Unsafe.IsNullRef(ref table.Find(kv.Key))).ToList();
        Assert.All(gone, kv => Assert.True(kv.Value < cutoff, $"{kv.Key:x} was aged at {kv.Value}, not before {cutoff}"));
        gone.ForEach(kv => model.Remove(kv.Key));
        return gone.Count;
    }

    [Fact]
    public void Slices_of_more_than_the_table_visit_each_slot_once_from_where_the_pass_stood()
    {
        var table = new MacTable(16);
        for (ulong mac = 1; mac <= 16; mac++)
        {
            table.Add(mac).LastSeen = (long)mac;
        }

        // A slice of the whole table (a heartbeat that missed a second's ticks) ages everything due, wherever the pass stood.
        Assert.Equal(0, table.AgeSlice(cutoff: 1, slots: 5));
        Assert.Equal(10, table.AgeSlice(cutoff: 11, slots: 1_000));
        Assert.Equal(6, table.Count);
        Assert.Equal(6, table.AgeSlice(cutoff: long.MaxValue, slots: table.SlotCount));
        Assert.Equal(0, table.Count);
    }
}
