using System.Numerics;
using System.Runtime.CompilerServices;

namespace Isthmus.DataPlane.Bridge;

/// <summary>One learned (or static) MAC: where it lives and how it has been moving.</summary>
public struct MacEntry
{
    /// <summary>48-bit MAC plus <see cref="OccupiedBit"/>: zero means the slot is empty.</summary>
    internal ulong Key;

    public int Segment;

    /// <summary>For a VXLAN segment: the VTEP the MAC sits behind (host-order IPv4).</summary>
    public uint Vtep;

    public long LastSeen;

    public bool Static;

    /// <summary>Moves counted in the current flap window, and when that window opened.</summary>
    public int Moves;
    public long WindowStart;

    /// <summary>While now is before this, the MAC is damped: frames from any other location are dropped.</summary>
    public long FrozenUntil;

    internal const ulong OccupiedBit = 1UL << 63;

    public readonly ulong Mac => Key & ~OccupiedBit;
}

/// <summary>
/// A bridge domain's MAC table: open addressing with linear probing over a power-of-two array of
/// structs, so lookups and learning allocate nothing. Deletion shifts the following cluster back
/// (no tombstones), so lookups stay short under churn.
/// </summary>
/// <remarks>Threading: owned by one worker. The API reads a copy through <see cref="Snapshot"/>.</remarks>
public sealed class MacTable
{
    private readonly MacEntry[] _slots;
    private readonly int _mask;
    private readonly int _limit;

    /// <summary>Where the next <see cref="AgeSlice"/> starts: a pass walks the slots in order, a slice per heartbeat tick.</summary>
    private int _ageCursor;

    public MacTable(int maxEntries)
    {
        _limit = maxEntries;
        var size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, maxEntries * 2));
        _slots = new MacEntry[size];
        _mask = size - 1;
    }

    public int Count { get; private set; }

    public bool IsFull => Count >= _limit;

    /// <summary>Slots in the table (a power of two); <see cref="AgeSlice"/> passes cover them all.</summary>
    public int SlotCount => _slots.Length;

    /// <summary>Finds a MAC; returns a reference to its entry, or a null reference.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref MacEntry Find(ulong mac)
    {
        var key = mac | MacEntry.OccupiedBit;
        var i = Hash(mac) & _mask;
        while (true)
        {
            ref var slot = ref _slots[i];
            if (slot.Key == key)
            {
                return ref slot;
            }

            if (slot.Key == 0)
            {
                return ref Unsafe.NullRef<MacEntry>();
            }

            i = (i + 1) & _mask;
        }
    }

    /// <summary>Adds a MAC that <see cref="Find"/> did not find; returns a null reference when the table is full.</summary>
    public ref MacEntry Add(ulong mac)
    {
        if (IsFull)
        {
            return ref Unsafe.NullRef<MacEntry>();
        }

        var i = Hash(mac) & _mask;
        while (_slots[i].Key != 0)
        {
            i = (i + 1) & _mask;
        }

        Count++;
        ref var slot = ref _slots[i];
        slot = default;
        slot.Key = mac | MacEntry.OccupiedBit;
        return ref slot;
    }

    public bool Remove(ulong mac)
    {
        var key = mac | MacEntry.OccupiedBit;
        var i = Hash(mac) & _mask;
        while (_slots[i].Key != key)
        {
            if (_slots[i].Key == 0)
            {
                return false;
            }

            i = (i + 1) & _mask;
        }

        RemoveAt(i);
        return true;
    }

    /// <summary>Removes dynamic entries last seen before <paramref name="cutoff"/>; returns how many.</summary>
    public int Age(long cutoff) => AgeRange(cutoff, 0, _slots.Length);

    /// <summary>
    /// The heartbeat's share of aging: looks at the next <paramref name="slots"/> slots of the current pass (at most the
    /// whole table; a pass goes from slot 0 to the last and starts again) and removes the dynamic entries there last seen
    /// before <paramref name="cutoff"/>; returns how many. A pass looks at every entry that was in the table when it
    /// started, at least once: an entry the backward shift of a deletion (here, or through <see cref="Remove"/> between
    /// two calls) pulls from the part of the pass still ahead into the part behind it makes the pass resume there.
    /// </summary>
    public int AgeSlice(long cutoff, int slots)
    {
        var removed = 0;
        slots = Math.Min(slots, _slots.Length);
        while (slots > 0)
        {
            var start = _ageCursor;
            var end = Math.Min(_slots.Length, start + slots);
            removed += AgeRange(cutoff, start, end);
            slots -= end - start;
            if (_ageCursor != start)
            {
                // A deletion's shift moved the cursor back (a cluster wrapping past the table's end): resume there next time.
                break;
            }

            _ageCursor = end == _slots.Length ? 0 : end;
        }

        return removed;
    }

    /// <summary>Removes the dynamic entries last seen before <paramref name="cutoff"/> in slots [<paramref name="start"/>, <paramref name="end"/>); returns how many.</summary>
    private int AgeRange(long cutoff, int start, int end)
    {
        var removed = 0;
        var i = start;
        while (i < end)
        {
            ref var slot = ref _slots[i];
            if (slot.Key != 0 && !slot.Static && slot.LastSeen < cutoff)
            {
                // Backward shift may pull a later entry into i: look at i again.
                RemoveAt(i);
                removed++;
                continue;
            }

            i++;
        }

        return removed;
    }

    /// <summary>Removes every dynamic entry (the domain's segments changed).</summary>
    public void FlushDynamic() => Age(long.MaxValue);

    public IReadOnlyList<MacEntry> Snapshot()
    {
        var list = new List<MacEntry>(Count);
        foreach (var slot in _slots)
        {
            if (slot.Key != 0)
            {
                list.Add(slot);
            }
        }

        return list;
    }

    private void RemoveAt(int hole)
    {
        Count--;
        var i = hole;
        while (true)
        {
            i = (i + 1) & _mask;
            if (_slots[i].Key == 0)
            {
                break;
            }

            // Move the entry back into the hole unless its home lies cyclically in (hole, i].
            var home = Hash(_slots[i].Key & ~MacEntry.OccupiedBit) & _mask;
            var inRange = hole <= i ? home > hole && home <= i : home > hole || home <= i;
            if (!inRange)
            {
                // An entry pulled from the aging pass's part ahead (at or after the cursor) into the part behind it
                // would miss this pass: the pass takes it up again there.
                if (hole < _ageCursor && i >= _ageCursor)
                {
                    _ageCursor = hole;
                }

                _slots[hole] = _slots[i];
                hole = i;
            }
        }

        _slots[hole] = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong mac) => (int)((mac * 0x9E37_79B9_7F4A_7C15UL) >> 40);
}
