using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;

namespace Isthmus.DataPlane.Tests.Route;

public class NeighborCacheTests
{
    [Fact]
    public void Entries_are_keyed_by_domain_family_and_address_and_survive_removal_of_their_neighbors()
    {
        var cache = new NeighborCache(64);
        for (uint a = 1; a <= 40; a++)
        {
            cache.Confirm((int)(a % 3), false, 0, a, 0x0200_0000_0000UL | a, now: 1);
        }

        cache.Confirm(0, true, 0, 3, 0x0200_0000_0099UL, now: 1);
        Assert.Equal(41, cache.Count);
        Assert.Equal(0x0200_0000_0099UL, cache.Find(0, true, 0, 3).Mac);
        Assert.Equal(0x0200_0000_0003UL, cache.Find(0, false, 0, 3).Mac);
        Assert.True(Unsafe.IsNullRef(ref cache.Find(1, false, 0, 3)));

        // Remove every other entry through the slot walk; the rest must still be found.
        for (var i = 0; i < cache.SlotCount; i++)
        {
            ref var e = ref cache.Slot(i);
            if (e.State != NeighborState.Free && !e.IsIpv6 && (e.AddressLo & 1) == 0)
            {
                cache.RemoveAt(i);
                i--;
            }
        }

        for (uint a = 1; a <= 40; a++)
        {
            Assert.Equal((a & 1) == 1, !Unsafe.IsNullRef(ref cache.Find((int)(a % 3), false, 0, a)));
        }
    }

    [Fact]
    public void A_full_cache_refuses_to_learn_and_held_blocks_are_bounded()
    {
        var cache = new NeighborCache(4, resolvingLimit: 2);
        for (uint a = 1; a <= 5; a++)
        {
            cache.Confirm(0, false, 0, a, 0x0200_0000_0000UL | a, now: 1);
        }

        Assert.Equal(4, cache.Count);
        Assert.Equal(1, cache.LearnRefused);

        var other = new NeighborCache(8, resolvingLimit: 2);
        var packet = new PacketMeta { Buffer = 7 };
        ref var a1 = ref other.Add(0, false, 0, 1, NeighborState.Incomplete);
        Assert.True(other.Hold(ref a1, packet));
        ref var a2 = ref other.Add(0, false, 0, 2, NeighborState.Incomplete);
        Assert.True(other.Hold(ref a2, packet));
        ref var a3 = ref other.Add(0, false, 0, 3, NeighborState.Incomplete);
        Assert.False(other.Hold(ref a3, packet)); // both blocks in use
        Assert.Equal(2, other.HeldPackets);
    }

    [Fact]
    public void A_resolution_is_released_once_even_if_confirmed_twice()
    {
        var cache = new NeighborCache(8);
        ref var e = ref cache.Add(0, false, 0, 9, NeighborState.Incomplete);
        Assert.True(cache.Hold(ref e, new PacketMeta { Buffer = 1 }));

        cache.Confirm(0, false, 0, 9, 0x0200_0000_0009UL, now: 5);
        cache.Confirm(0, false, 0, 9, 0x0200_0000_0009UL, now: 6);

        ref var ready = ref cache.NextReady();
        Assert.False(Unsafe.IsNullRef(ref ready));
        Assert.Equal(1, cache.Held(ref ready).Length);
        cache.ClearHeld(ref ready);
        Assert.True(Unsafe.IsNullRef(ref cache.NextReady()));
    }
}
