using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Firewall;

/// <summary>Conntrack pseudo-states. TCP follows RFC 9293's connection states as netfilter tracks them.</summary>
public enum ConntrackState : byte
{
    None = 0,
    TcpSynSent,
    TcpSynRecv,
    TcpEstablished,
    TcpFinWait,
    TcpCloseWait,
    TcpTimeWait,
    TcpClose,

    /// <summary>UDP, ICMP echo and other protocols before a reply was seen.</summary>
    Unreplied,

    /// <summary>A reply was seen (netfilter's ASSURED / "stream").</summary>
    Replied,
}

[Flags]
public enum FlowFlags : byte
{
    None = 0,

    /// <summary>The source is translated in the original direction (SNAT, masquerade, 1:1 out, hairpin).</summary>
    SourceNat = 1 << 0,

    /// <summary>The destination is translated in the original direction (DNAT, port forward, 1:1 in).</summary>
    DestinationNat = 1 << 1,

    /// <summary>The SNAT mapping is endpoint-independent (held in the allocator's mapping table).</summary>
    EndpointIndependent = 1 << 2,

    /// <summary>TCP: a FIN was seen in the original direction.</summary>
    FinOriginal = 1 << 3,

    /// <summary>TCP: a FIN was seen in the reply direction.</summary>
    FinReply = 1 << 4,

    /// <summary>A bridged flow tracked by the L2 filter (never translated).</summary>
    Bridged = 1 << 5,

    /// <summary>A load-balanced flow (lb stage): its backend's connection count drops when it leaves the table.</summary>
    LoadBalanced = 1 << 6,
}

/// <summary>
/// One direction's cached forwarding result (the established-flow fast path, see
/// <see cref="FlowCache"/>): learned from a packet the slow path forwarded, trusted only in the
/// forwarding epoch it was learned in. 12 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct CachedForward
{
    /// <summary>The <see cref="Pipeline.ForwardingEpoch"/> it was learned in (0: never).</summary>
    public uint Epoch;

    /// <summary>Index in the worker's <see cref="Route.AdjacencyTable"/> (next hop rewrite, egress).</summary>
    public ushort Adjacency;

    /// <summary>RFC 1624 sum to add to the IPv4 header checksum: the address rewrite plus the TTL decrement.</summary>
    public ushort IpDelta;

    /// <summary>RFC 1624 sum to add to the TCP/UDP checksum: addresses (pseudo-header) and ports.</summary>
    public ushort L4Delta;

    /// <summary>Non-zero when the direction is translated (addresses or ports are rewritten).</summary>
    public ushort Translated;
}

/// <summary>
/// One session, 56 bytes: 32 for the tuples, state and expiry, 24 for the two directions' cached
/// forwarding results. The original tuple is the first packet as it arrived; the reply tuple is
/// how replies arrive (source = where the original went after DNAT, destination = where it came
/// from after SNAT). Translating a packet of direction d is "take the other direction's tuple,
/// reversed", for both directions and for ICMP errors alike.
/// </summary>
/// <remarks>
/// The field order is part of the lookup: <see cref="ConntrackTable.Find(ulong, uint, byte, uint, out int)"/>
/// reads direction d's addresses as one 64-bit word at offset 8·d and its ports as one 32-bit word
/// at offset 16 + 4·d (ConntrackTableTests checks the offsets).
/// </remarks>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct ConntrackEntry
{
    public uint OriginalSource;
    public uint OriginalDestination;
    public uint ReplySource;
    public uint ReplyDestination;
    public ushort OriginalSourcePort;
    public ushort OriginalDestinationPort;
    public ushort ReplySourcePort;
    public ushort ReplyDestinationPort;

    /// <summary>Worker clock second at which the session expires.</summary>
    public uint Expires;

    /// <summary>IP protocol; 0 marks a free entry.</summary>
    public byte Protocol;

    public ConntrackState State;

    public FlowFlags Flags;

    /// <summary>Padding (free for a future flag).</summary>
    public byte Reserved;

    /// <summary>The original direction's cached forwarding result.</summary>
    public CachedForward Forward0;

    /// <summary>The reply direction's cached forwarding result.</summary>
    public CachedForward Forward1;
}

/// <summary>A flow tuple as the lookup sees it (for ICMP echo: requests carry the id as source port, replies as destination port).</summary>
public readonly record struct FlowTuple(uint Source, uint Destination, ushort SourcePort, ushort DestinationPort, byte Protocol)
{
    public FlowTuple Reverse() => new(Destination, Source, DestinationPort, SourcePort, Protocol);

    public override string ToString() =>
        $"{new Isthmus.Packets.Ipv4Address(Source)}:{SourcePort} → {new Isthmus.Packets.Ipv4Address(Destination)}:{DestinationPort} proto {Protocol}";
}

/// <summary>Told when a session leaves the table (timeout, reset, table replaced), so NAT mappings can be released.</summary>
public interface IConntrackObserver
{
    void Removed(in ConntrackEntry entry);
}

/// <summary>
/// One worker's session table: a packed array of 56-byte <see cref="ConntrackEntry"/> and one
/// open-addressing index (linear probing, backward-shift deletion, no tombstones) holding both
/// directions' keys, each pointing at the one entry. An index slot is 8 bytes (entry·2+direction,
/// full hash), sized to at most half full, so a session costs 56 + 2·2·8 + 4 (free list) = 92 bytes.
/// Expiry is lazy on lookup (exact) plus an incremental sweep from the heartbeat (reclaims memory).
/// </summary>
/// <remarks>Owned by one worker thread; no locks. Readers on other threads see possibly stale entries.</remarks>
public sealed class ConntrackTable
{
    private readonly ConntrackEntry[] _entries;
    private readonly Slot[] _index;
    private readonly int[] _free;
    private readonly int _mask;
    private int _freeCount;
    private int _sweepCursor;

    public ConntrackTable(int maxSessions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSessions, 1);
        MaxSessions = maxSessions;
        _entries = new ConntrackEntry[maxSessions];
        var slots = 16;
        while (slots < maxSessions * 4)
        {
            slots <<= 1;
        }

        _index = new Slot[slots];
        _mask = slots - 1;
        _free = new int[maxSessions];
        for (var i = 0; i < maxSessions; i++)
        {
            _free[i] = maxSessions - 1 - i;
        }

        _freeCount = maxSessions;
    }

    public int MaxSessions { get; }

    public int Count => MaxSessions - _freeCount;

    public bool IsFull => _freeCount == 0;

    public IConntrackObserver? Observer { get; set; }

    /// <summary>Bytes held by the table's arrays (entries, index, free list).</summary>
    public long AllocatedBytes =>
        ((long)_entries.Length * Unsafe.SizeOf<ConntrackEntry>()) + ((long)_index.Length * Unsafe.SizeOf<Slot>()) + ((long)_free.Length * sizeof(int));

    /// <summary>Sessions removed because they timed out (lazily or by the sweep).</summary>
    public long Expired { get; private set; }

    public ref ConntrackEntry this[int entry]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _entries[entry];
    }

    /// <summary>
    /// Finds the session for a packet's tuple, in either direction. An expired session is removed
    /// here and reported as absent, so expiry is exact to the second whatever the sweep's pace.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(in FlowTuple tuple, uint now, out int direction) =>
        Find(((ulong)tuple.Source << 32) | tuple.Destination, ((uint)tuple.SourcePort << 16) | tuple.DestinationPort, tuple.Protocol, now, out direction);

    /// <summary>
    /// <see cref="Find(in FlowTuple, uint, out int)"/> for a key as a packet carries it: the addresses
    /// as one 64-bit value (source in the high half, as the 8 bytes at IPv4 offset 12 read big-endian)
    /// and the ports as one 32-bit value (source port high, as the transport header's first 4 bytes
    /// read big-endian). The hash is computed once from them; a candidate entry is compared with two
    /// wide compares and the protocol (the tuple's fields lie side by side in <see cref="ConntrackEntry"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(ulong addresses, uint ports, byte protocol, uint now, out int direction)
    {
        var hash = Hash(addresses, ((ulong)ports << 8) | protocol);

        // The same key as the entry holds it in memory: OriginalSource (or ReplySource) first,
        // then the destination; the source port, then the destination port.
        var addressKey = BitConverter.IsLittleEndian ? BitOperations.RotateRight(addresses, 32) : addresses;
        var portKey = BitConverter.IsLittleEndian ? BitOperations.RotateRight(ports, 16) : ports;

        // The index's length is a power of two and i is masked by it; an index slot's reference
        // always names an entry of the table: no bounds checks needed below.
        ref var index = ref MemoryMarshal.GetArrayDataReference(_index);
        ref var entries = ref MemoryMarshal.GetArrayDataReference(_entries);
        var i = (int)hash & _mask;
        while (true)
        {
            var slot = Unsafe.Add(ref index, i);
            if (slot.Ref == 0)
            {
                direction = 0;
                return -1;
            }

            if (slot.Hash == hash)
            {
                var entry = (slot.Ref - 1) >> 1;
                var dir = (slot.Ref - 1) & 1;
                ref var e = ref Unsafe.Add(ref entries, entry);
                if (Unsafe.Add(ref Unsafe.As<uint, ulong>(ref e.OriginalSource), dir) == addressKey
                    && Unsafe.Add(ref Unsafe.As<ushort, uint>(ref e.OriginalSourcePort), dir) == portKey
                    && e.Protocol == protocol)
                {
                    if (e.Expires <= now)
                    {
                        Remove(entry);
                        Expired++;
                        direction = 0;
                        return -1;
                    }

                    direction = dir;
                    return entry;
                }
            }

            i = (i + 1) & _mask;
        }
    }

    /// <summary>True when some live session uses <paramref name="tuple"/> as a key (either direction).</summary>
    public bool Contains(in FlowTuple tuple, uint now) => Find(tuple, now, out _) >= 0;

    /// <summary>
    /// Adds a session with both keys. Returns its index, or -1 when the table is full. The caller
    /// has checked that neither key is in use.
    /// </summary>
    public int Insert(in FlowTuple original, in FlowTuple reply, ConntrackState state, FlowFlags flags, uint expires)
    {
        if (_freeCount == 0)
        {
            return -1;
        }

        var entry = _free[--_freeCount];
        ref var e = ref _entries[entry];
        e.OriginalSource = original.Source;
        e.OriginalDestination = original.Destination;
        e.OriginalSourcePort = original.SourcePort;
        e.OriginalDestinationPort = original.DestinationPort;
        e.ReplySource = reply.Source;
        e.ReplyDestination = reply.Destination;
        e.ReplySourcePort = reply.SourcePort;
        e.ReplyDestinationPort = reply.DestinationPort;
        e.Protocol = original.Protocol;
        e.State = state;
        e.Flags = flags;
        e.Expires = expires;
        e.Reserved = 0;
        e.Forward0 = default;
        e.Forward1 = default;
        AddKey(Hash(original), (entry << 1) + 1);
        AddKey(Hash(reply), (entry << 1) + 2);
        return entry;
    }

    /// <summary>Removes a session (both keys) and tells the observer.</summary>
    public void Remove(int entry)
    {
        ref var e = ref _entries[entry];
        if (e.Protocol == 0)
        {
            return;
        }

        RemoveKey(Hash(OriginalTuple(e)), (entry << 1) + 1);
        RemoveKey(Hash(ReplyTuple(e)), (entry << 1) + 2);
        Observer?.Removed(e);
        e = default;
        _free[_freeCount++] = entry;
    }

    /// <summary>
    /// Heartbeat work: visits up to <paramref name="budget"/> entries from where the last sweep
    /// stopped and removes the expired ones. Returns how many it removed.
    /// </summary>
    public int Sweep(uint now, int budget)
    {
        var removed = 0;
        var n = Math.Min(budget, _entries.Length);
        for (var k = 0; k < n; k++)
        {
            var i = _sweepCursor;
            _sweepCursor = i + 1 == _entries.Length ? 0 : i + 1;
            ref var e = ref _entries[i];
            if (e.Protocol != 0 && e.Expires <= now)
            {
                Remove(i);
                removed++;
            }
        }

        Expired += removed;
        return removed;
    }

    /// <summary>Removes every session (a new table size, or a flush).</summary>
    public void Clear()
    {
        for (var i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].Protocol != 0)
            {
                Remove(i);
            }
        }
    }

    /// <summary>Live sessions, for the API (allocates; not for the packet path).</summary>
    public List<(int Entry, ConntrackEntry Session)> Snapshot()
    {
        var list = new List<(int, ConntrackEntry)>();
        for (var i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].Protocol != 0)
            {
                list.Add((i, _entries[i]));
            }
        }

        return list;
    }

    public static FlowTuple OriginalTuple(in ConntrackEntry e) =>
        new(e.OriginalSource, e.OriginalDestination, e.OriginalSourcePort, e.OriginalDestinationPort, e.Protocol);

    public static FlowTuple ReplyTuple(in ConntrackEntry e) =>
        new(e.ReplySource, e.ReplyDestination, e.ReplySourcePort, e.ReplyDestinationPort, e.Protocol);

    /// <summary>The tuple packets of <paramref name="direction"/> arrive with.</summary>
    public static FlowTuple TupleOf(in ConntrackEntry e, int direction) => direction == 0 ? OriginalTuple(e) : ReplyTuple(e);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Hash(in FlowTuple t) =>
        Hash(((ulong)t.Source << 32) | t.Destination, ((ulong)t.SourcePort << 24) | ((ulong)t.DestinationPort << 8) | t.Protocol);

    /// <summary>The hash of addresses (source high) and ports·256 + protocol (source port highest).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Hash(ulong a, ulong b)
    {
        var h = (a * 0x9E37_79B9_7F4A_7C15UL) ^ (b * 0xC2B2_AE3D_27D4_EB4FUL);
        h ^= h >> 31;
        h *= 0xBF58_476D_1CE4_E5B9UL;
        return (uint)(h ^ (h >> 29));
    }

    private void AddKey(uint hash, int reference)
    {
        var i = (int)hash & _mask;
        while (_index[i].Ref != 0)
        {
            i = (i + 1) & _mask;
        }

        _index[i] = new Slot(reference, hash);
    }

    private void RemoveKey(uint hash, int reference)
    {
        var i = (int)hash & _mask;
        while (_index[i].Ref != reference)
        {
            if (_index[i].Ref == 0)
            {
                return;
            }

            i = (i + 1) & _mask;
        }

        // Backward-shift deletion (Knuth 6.4, algorithm R): pull later members of the probe run
        // into the hole unless their home slot lies cyclically in (hole, j].
        var j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            ref readonly var next = ref _index[j];
            if (next.Ref == 0)
            {
                break;
            }

            var home = (int)next.Hash & _mask;
            var stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
            {
                _index[i] = next;
                i = j;
            }
        }

        _index[i] = default;
    }

    /// <summary>An index slot: entry·2 + direction + 1 (0 = empty), and the key's full hash.</summary>
    private readonly record struct Slot(int Ref, uint Hash);
}
