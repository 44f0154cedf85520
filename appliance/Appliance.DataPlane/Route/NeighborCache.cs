using System.Numerics;
using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Route;

public enum NeighborState : byte
{
    Free = 0,

    /// <summary>A request went out; packets wait in the entry's held queue.</summary>
    Incomplete,

    /// <summary>The MAC is known (from an ARP/NA, or any ARP/NS the gateway saw).</summary>
    Reachable,
}

/// <summary>One neighbor: an IPv4 or IPv6 address in one bridge domain and its MAC.</summary>
public struct NeighborEntry
{
    internal ulong Hi;
    internal ulong Lo;

    /// <summary>domain × 2 + (IPv6 ? 1 : 0).</summary>
    internal int DomainKey;

    public NeighborState State;

    /// <summary>Requests sent in the current resolution or refresh.</summary>
    public byte Probes;

    /// <summary>Index of the entry's held-packet block, or -1.</summary>
    internal short HeldBlock;

    public byte HeldCount;

    /// <summary>48-bit MAC (valid when <see cref="NeighborState.Reachable"/>).</summary>
    public ulong Mac;

    /// <summary>When the mapping was last confirmed by an ARP/ND packet from the neighbor.</summary>
    public long Confirmed;

    /// <summary>When the next request may go out.</summary>
    public long NextProbe;

    public readonly int Domain => DomainKey >> 1;

    public readonly bool IsIpv6 => (DomainKey & 1) != 0;

    public readonly ulong AddressHi => Hi;

    public readonly ulong AddressLo => Lo;
}

/// <summary>
/// A worker's ARP/ND cache (one per worker: no locks). Open addressing with linear probing and
/// backward-shift deletion over a power-of-two array of structs, like <see cref="Bridge.MacTable"/>.
/// Unresolved next hops hold up to <see cref="MaxHeld"/> packets each in a fixed pool of held
/// blocks (<see cref="ResolvingLimit"/> next hops resolving at once), so memory and buffers held are bounded.
/// </summary>
/// <remarks>
/// The held buffers belong to the cache until they are released (sent through encap), dropped
/// (queue overflow, resolution failed, table flushed) or <see cref="Clear"/>ed when the worker stops.
/// </remarks>
public sealed class NeighborCache
{
    public const int MaxHeld = 4;

    private readonly NeighborEntry[] _slots;
    private readonly int _mask;
    private readonly PacketMeta[] _held;
    private readonly short[] _freeBlocks;
    private int _freeBlockCount;
    private readonly (int DomainKey, ulong Hi, ulong Lo)[] _ready;
    private int _readyCount;

    /// <summary>Advanced when a reachable entry changes MAC or leaves: cached forwarding results may name it.</summary>
    private readonly ForwardingEpoch _epoch;

    public NeighborCache(int capacity, int resolvingLimit = 64, ForwardingEpoch? epoch = null)
    {
        _epoch = epoch ?? new ForwardingEpoch();
        Capacity = capacity;
        ResolvingLimit = resolvingLimit;
        var size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacity * 2));
        _slots = new NeighborEntry[size];
        _mask = size - 1;
        _held = new PacketMeta[resolvingLimit * MaxHeld];
        _freeBlocks = new short[resolvingLimit];
        for (var i = 0; i < resolvingLimit; i++)
        {
            _freeBlocks[i] = (short)(resolvingLimit - 1 - i);
        }

        _freeBlockCount = resolvingLimit;
        _ready = new (int, ulong, ulong)[resolvingLimit];
    }

    public int Capacity { get; }

    /// <summary>Next hops that may be resolving (holding packets) at once.</summary>
    public int ResolvingLimit { get; }

    public int Count { get; private set; }

    /// <summary>Buffers currently held for unresolved next hops.</summary>
    public int HeldPackets { get; private set; }

    /// <summary>Entries not learned because the cache was full.</summary>
    public long LearnRefused;

    /// <summary>Entries a worker learned or refreshed from ARP/ND, and requests it sent.</summary>
    public long Learned;
    public long RequestsSent;

    /// <summary>Entries whose resolution failed (no answer after the last probe).</summary>
    public long Failed;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref NeighborEntry Find(int domain, bool ipv6, ulong hi, ulong lo)
    {
        var key = (domain << 1) | (ipv6 ? 1 : 0);
        var i = Hash(key, hi, lo) & _mask;
        while (true)
        {
            ref var slot = ref _slots[i];
            if (slot.State == NeighborState.Free)
            {
                return ref Unsafe.NullRef<NeighborEntry>();
            }

            if (slot.Lo == lo && slot.Hi == hi && slot.DomainKey == key)
            {
                return ref slot;
            }

            i = (i + 1) & _mask;
        }
    }

    /// <summary>Adds an entry that <see cref="Find"/> did not find, in <paramref name="state"/>; a null reference when full.</summary>
    public ref NeighborEntry Add(int domain, bool ipv6, ulong hi, ulong lo, NeighborState state)
    {
        if (Count >= Capacity)
        {
            return ref Unsafe.NullRef<NeighborEntry>();
        }

        var key = (domain << 1) | (ipv6 ? 1 : 0);
        var i = Hash(key, hi, lo) & _mask;
        while (_slots[i].State != NeighborState.Free)
        {
            i = (i + 1) & _mask;
        }

        Count++;
        ref var slot = ref _slots[i];
        slot = default;
        slot.Hi = hi;
        slot.Lo = lo;
        slot.DomainKey = key;
        slot.State = state;
        slot.HeldBlock = -1;
        return ref slot;
    }

    /// <summary>
    /// Records an ARP/ND confirmation of (address → MAC). Creates the entry unless
    /// <paramref name="create"/> is false. An entry that was holding packets is queued for release
    /// (the neighbor stage sends them). Returns false when the cache was full.
    /// </summary>
    public bool Confirm(int domain, bool ipv6, ulong hi, ulong lo, ulong mac, long now, bool create = true)
    {
        ref var e = ref Find(domain, ipv6, hi, lo);
        if (Unsafe.IsNullRef(ref e))
        {
            if (!create)
            {
                return true;
            }

            e = ref Add(domain, ipv6, hi, lo, NeighborState.Reachable);
            if (Unsafe.IsNullRef(ref e))
            {
                LearnRefused++;
                return false;
            }
        }

        Learned++;
        if (e.State == NeighborState.Reachable && e.Mac != mac)
        {
            _epoch.Advance();
        }

        var resolved = e.State == NeighborState.Incomplete;
        e.State = NeighborState.Reachable;
        e.Mac = mac;
        e.Confirmed = now;
        e.Probes = 0;
        e.NextProbe = now;
        // Only Incomplete entries hold packets, and each holds a block: the ready list (one slot per
        // block) cannot overflow when entries are queued on the Incomplete → Reachable transition.
        if (resolved && e.HeldCount > 0 && _readyCount < _ready.Length)
        {
            _ready[_readyCount++] = (e.DomainKey, hi, lo);
        }

        return true;
    }

    /// <summary>Takes ownership of a packet's buffer for an incomplete entry; false when its queue (or the block pool) is full.</summary>
    public bool Hold(ref NeighborEntry entry, in PacketMeta packet)
    {
        if (entry.HeldBlock < 0)
        {
            if (_freeBlockCount == 0)
            {
                return false;
            }

            entry.HeldBlock = _freeBlocks[--_freeBlockCount];
            entry.HeldCount = 0;
        }

        if (entry.HeldCount >= MaxHeld)
        {
            return false;
        }

        _held[(entry.HeldBlock * MaxHeld) + entry.HeldCount++] = packet;
        HeldPackets++;
        return true;
    }

    /// <summary>The packets an entry holds, oldest first.</summary>
    public Span<PacketMeta> Held(ref NeighborEntry entry) =>
        entry.HeldBlock < 0 ? [] : _held.AsSpan(entry.HeldBlock * MaxHeld, entry.HeldCount);

    /// <summary>Forgets an entry's held packets (after the caller sent or dropped them) and frees its block.</summary>
    public void ClearHeld(ref NeighborEntry entry)
    {
        if (entry.HeldBlock >= 0)
        {
            HeldPackets -= entry.HeldCount;
            _freeBlocks[_freeBlockCount++] = entry.HeldBlock;
            entry.HeldBlock = -1;
            entry.HeldCount = 0;
        }
    }

    /// <summary>Entries confirmed since the last call that hold packets; each is returned once.</summary>
    public ref NeighborEntry NextReady()
    {
        while (_readyCount > 0)
        {
            var (key, hi, lo) = _ready[--_readyCount];
            ref var e = ref Find(key >> 1, (key & 1) != 0, hi, lo);
            if (!Unsafe.IsNullRef(ref e) && e.State == NeighborState.Reachable && e.HeldCount > 0)
            {
                return ref e;
            }
        }

        return ref Unsafe.NullRef<NeighborEntry>();
    }

    /// <summary>Raw slot access for the heartbeat walk (entries may be <see cref="NeighborState.Free"/>).</summary>
    internal int SlotCount => _slots.Length;

    internal ref NeighborEntry Slot(int index) => ref _slots[index];

    /// <summary>Removes the entry in slot <paramref name="index"/> (its held packets must be cleared first).</summary>
    internal void RemoveAt(int index)
    {
        if (_slots[index].State == NeighborState.Reachable)
        {
            _epoch.Advance();
        }

        Count--;
        var hole = index;
        var i = hole;
        while (true)
        {
            i = (i + 1) & _mask;
            if (_slots[i].State == NeighborState.Free)
            {
                break;
            }

            var home = Hash(_slots[i].DomainKey, _slots[i].Hi, _slots[i].Lo) & _mask;
            var inRange = hole <= i ? home > hole && home <= i : home > hole || home <= i;
            if (!inRange)
            {
                _slots[hole] = _slots[i];
                hole = i;
            }
        }

        _slots[hole] = default;
    }

    /// <summary>Returns every held buffer to the pool and empties the cache (worker stopping, or domains renumbered).</summary>
    public int Clear(PacketPool pool)
    {
        var freed = 0;
        for (var i = 0; i < _slots.Length; i++)
        {
            ref var e = ref _slots[i];
            if (e.State != NeighborState.Free)
            {
                foreach (ref var held in Held(ref e))
                {
                    pool.Return(held.Buffer);
                    freed++;
                }

                ClearHeld(ref e);
                e = default;
            }
        }

        Count = 0;
        _readyCount = 0;
        _epoch.Advance();
        return freed;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(int key, ulong hi, ulong lo)
    {
        var h = (hi * 0x9E37_79B9_7F4A_7C15UL) ^ (lo * 0xC2B2_AE3D_27D4_EB4FUL) ^ ((ulong)key * 0x1656_67B1_9E37_79F9UL);
        return (int)(h >> 35);
    }
}
