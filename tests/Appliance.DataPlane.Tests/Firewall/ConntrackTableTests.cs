using System.Runtime.CompilerServices;
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

    /// <summary>
    /// The lookup compares a key as two wide words and the protocol: a tuple that differs from a
    /// session's key in any one field (either address, either port, the protocol, a bit anywhere)
    /// is not that session, and both keys, and only those, find it.
    /// </summary>
    [Fact]
    public void A_key_differing_in_any_one_field_is_not_found()
    {
        var words = ArbMap.Default.GeneratorFor<uint>();
        var tuples =
            from source in words
            from destination in words
            from ports in words
            from protocol in Gen.Elements<byte>(6, 17, 1)
            select new FlowTuple(source, destination, (ushort)(ports >> 16), (ushort)ports, protocol);
        var sample =
            from original in tuples
            from reply in tuples
            from field in Gen.Choose(0, 4)
            from bit in Gen.Choose(0, 31)
            select (original, reply, field, bit);
        Prop.ForAll(sample.ToArbitrary(), s =>
        {
            var (original, reply, field, bit) = s;
            reply = reply with { Protocol = original.Protocol };
            if (reply == original)
            {
                // A session's two directions are distinct tuples (FsCheck's small sizes draw equal ones).
                reply = reply with { Source = ~reply.Source };
            }

            var table = new ConntrackTable(4);
            var entry = table.Insert(original, reply, ConntrackState.Unreplied, FlowFlags.None, expires: 10);
            var found0 = table.Find(original, 1, out var d0) == entry && d0 == 0;
            var found1 = table.Find(reply, 1, out var d1) == entry && d1 == 1;
            var other = field switch
            {
                0 => original with { Source = original.Source ^ (1u << bit) },
                1 => original with { Destination = original.Destination ^ (1u << bit) },
                2 => original with { SourcePort = (ushort)(original.SourcePort ^ (1 << (bit & 15))) },
                3 => original with { DestinationPort = (ushort)(original.DestinationPort ^ (1 << (bit & 15))) },
                _ => original with { Protocol = (byte)(original.Protocol ^ (1 << (bit & 7))) },
            };
            var wrong = other != reply && table.Find(other, 1, out _) >= 0;
            return found0 && found1 && !wrong;
        }).QuickCheckThrowOnFailure();
    }

    /// <summary>The field offsets the wide key compare reads (ConntrackEntry's remarks).</summary>
    [Fact]
    public void The_key_fields_lie_where_the_wide_compare_reads_them()
    {
        var entries = new ConntrackEntry[1];
        ref var e = ref entries[0];
        ref var start = ref Unsafe.As<ConntrackEntry, byte>(ref e);
        Assert.Equal(0, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<uint, byte>(ref e.OriginalSource)));
        Assert.Equal(4, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<uint, byte>(ref e.OriginalDestination)));
        Assert.Equal(8, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<uint, byte>(ref e.ReplySource)));
        Assert.Equal(12, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<uint, byte>(ref e.ReplyDestination)));
        Assert.Equal(16, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<ushort, byte>(ref e.OriginalSourcePort)));
        Assert.Equal(18, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<ushort, byte>(ref e.OriginalDestinationPort)));
        Assert.Equal(20, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<ushort, byte>(ref e.ReplySourcePort)));
        Assert.Equal(22, (int)Unsafe.ByteOffset(ref start, ref Unsafe.As<ushort, byte>(ref e.ReplyDestinationPort)));
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
