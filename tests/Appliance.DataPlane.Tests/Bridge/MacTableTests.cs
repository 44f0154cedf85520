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
