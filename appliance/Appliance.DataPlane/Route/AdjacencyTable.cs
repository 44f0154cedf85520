using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Route;

/// <summary>
/// A rewrite toward one IPv4 next hop in one egress domain (VPP's adjacency): everything the route
/// and neighbor stages decide for a routed packet once its next hop is resolved. Valid only in the
/// <see cref="ForwardingEpoch"/> it was bound in.
/// </summary>
public struct Adjacency
{
    /// <summary>(egress domain &lt;&lt; 32) | next hop: the key.</summary>
    public ulong Key;

    /// <summary>The next hop's MAC (destination of the rewritten frame).</summary>
    public ulong Mac;

    /// <summary>The egress gateway's MAC (source of the rewritten frame).</summary>
    public ulong GatewayMac;

    /// <summary>
    /// Worker clock (TimeProvider ticks) until which the neighbor counts as reachable without a probe
    /// (RFC 4861 section 7.3.3); after it the slow path runs, which probes the neighbor.
    /// </summary>
    public long FreshUntil;

    /// <summary>Egress segment where the next hop's MAC sits in the egress domain.</summary>
    public int Segment;

    /// <summary>VTEP behind which the MAC sits (VXLAN segments), else 0.</summary>
    public uint Vtep;

    /// <summary>Largest IPv4 packet the egress domain routes (route's frag-needed check).</summary>
    public int Mtu;

    public ushort Domain;
}

/// <summary>
/// One worker's adjacencies, indexed 1..<see cref="Capacity"/>-1 (0 = none), looked up by (egress
/// domain, next hop) when the route stage binds a flow. The table empties itself lazily when the
/// forwarding epoch moves, so indices handed out in an older epoch are never trusted (the flow
/// cache checks the epoch before it reads an adjacency). Owned by the worker thread; no locks.
/// </summary>
public sealed class AdjacencyTable
{
    public const int Capacity = 4096;
    private const int IndexSize = Capacity * 2;

    private readonly Adjacency[] _entries = new Adjacency[Capacity];
    private readonly ushort[] _index = new ushort[IndexSize];
    private int _count;
    private uint _epoch;

    public int Count => _count;

    public ref Adjacency this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _entries[index];
    }

    /// <summary>
    /// Finds or adds the adjacency for (<paramref name="domain"/>, <paramref name="nextHop"/>) in
    /// <paramref name="epoch"/> and sets its rewrite. Returns its index, or 0 when the table is full.
    /// </summary>
    public ushort Bind(uint epoch, ushort domain, uint nextHop, ulong mac, ulong gatewayMac, int segment, uint vtep, int mtu, long freshUntil)
    {
        if (_epoch != epoch)
        {
            Array.Clear(_index);
            _count = 0;
            _epoch = epoch;
        }

        var key = ((ulong)domain << 32) | nextHop;
        var i = Hash(key);
        ushort slot;
        while (true)
        {
            slot = _index[i];
            if (slot == 0)
            {
                if (_count + 1 >= Capacity)
                {
                    return 0;
                }

                slot = (ushort)++_count;
                _index[i] = slot;
                break;
            }

            if (_entries[slot].Key == key)
            {
                break;
            }

            i = (i + 1) & (IndexSize - 1);
        }

        ref var a = ref _entries[slot];
        a.Key = key;
        a.Mac = mac;
        a.GatewayMac = gatewayMac;
        a.Segment = segment;
        a.Vtep = vtep;
        a.Mtu = mtu;
        a.Domain = domain;
        a.FreshUntil = freshUntil;
        return slot;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong key) => (int)((key * 0x9E37_79B9_7F4A_7C15UL) >> 51) & (IndexSize - 1);
}
