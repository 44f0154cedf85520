using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Firewall;

namespace Isthmus.DataPlane.Tests.Firewall;

public class ConntrackTableTests
{
    private static FlowTuple T(uint src, uint dst, ushort sp, ushort dp) => new(src, dst, sp, dp, 6);

    [Fact]
    public void Both_directions_find_the_one_entry_and_removal_frees_both_keys()
    {
        var table = new ConntrackTable(16);
        var original = T(1, 2, 1000, 80);
        var reply = T(2, 99, 80, 40000);
        var entry = table.Insert(original, reply, ConntrackState.TcpSynSent, FlowFlags.SourceNat, expires: 100);

        Assert.Equal(entry, table.Find(original, 1, out var d0));
        Assert.Equal(0, d0);
        Assert.Equal(entry, table.Find(reply, 1, out var d1));
        Assert.Equal(1, d1);
        Assert.Equal(-1, table.Find(original.Reverse(), 1, out _));

        table.Remove(entry);
        Assert.Equal(-1, table.Find(original, 1, out _));
        Assert.Equal(-1, table.Find(reply, 1, out _));
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void An_expired_entry_is_gone_on_lookup_and_the_sweep_reclaims_the_rest()
    {
        var table = new ConntrackTable(8);
        table.Insert(T(1, 2, 1, 1), T(2, 1, 1, 1), ConntrackState.Unreplied, FlowFlags.None, expires: 10);
        table.Insert(T(1, 2, 2, 2), T(2, 1, 2, 2), ConntrackState.Unreplied, FlowFlags.None, expires: 20);
        Assert.True(table.Contains(T(1, 2, 1, 1), 9));
        Assert.False(table.Contains(T(1, 2, 1, 1), 10));
        Assert.Equal(1, table.Count);
        Assert.Equal(1, table.Sweep(25, 100));
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void A_full_table_refuses_inserts()
    {
        var table = new ConntrackTable(2);
        Assert.True(table.Insert(T(1, 2, 1, 1), T(2, 1, 1, 1), ConntrackState.Unreplied, FlowFlags.None, 10) >= 0);
        Assert.True(table.Insert(T(1, 2, 2, 2), T(2, 1, 2, 2), ConntrackState.Unreplied, FlowFlags.None, 10) >= 0);
        Assert.True(table.IsFull);
        Assert.Equal(-1, table.Insert(T(1, 2, 3, 3), T(2, 1, 3, 3), ConntrackState.Unreplied, FlowFlags.None, 10));
    }

    [Fact]
    public void Random_churn_matches_a_dictionary_model()
    {
        // Backward-shift deletion must keep every remaining key reachable, whatever the order.
        var ops = Gen.ArrayOf(Gen.Zip(Gen.Elements(true, true, false), Gen.Choose(0, 63)), 400);
        Prop.ForAll(ops.ToArbitrary(), sequence =>
        {
            var table = new ConntrackTable(64);
            var model = new Dictionary<int, int>();
            foreach (var (insert, k) in sequence)
            {
                var original = T((uint)k, 7, (ushort)k, 80);
                var reply = T(7, 9, 80, (ushort)(k + 1000));
                if (insert && !model.ContainsKey(k))
                {
                    model[k] = table.Insert(original, reply, ConntrackState.Unreplied, FlowFlags.None, 1000);
                }
                else if (!insert && model.Remove(k, out var entry))
                {
                    table.Remove(entry);
                }

                for (var key = 0; key < 64; key++)
                {
                    var found = table.Find(T((uint)key, 7, (ushort)key, 80), 1, out _);
                    var foundReply = table.Find(T(7, 9, 80, (ushort)(key + 1000)), 1, out _);
                    var expected = model.TryGetValue(key, out var e) ? e : -1;
                    if (found != expected || foundReply != expected)
                    {
                        throw new InvalidOperationException($"key {key}: expected {expected}, found {found}/{foundReply}");
                    }
                }
            }
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void A_session_costs_at_most_96_bytes()
    {
        var table = new ConntrackTable(1 << 20);
        Assert.True(table.AllocatedBytes / (double)table.MaxSessions <= 96, $"{table.AllocatedBytes / (double)table.MaxSessions} B/session");
    }
}
