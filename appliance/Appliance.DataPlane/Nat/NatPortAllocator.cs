using Isthmus.DataPlane.Firewall;

namespace Isthmus.DataPlane.Nat;

/// <summary>
/// Chooses the outside address and port for a new SNAT session, per worker. Collisions are
/// impossible by construction: a candidate is taken only when no live session already uses the
/// resulting reply tuple (the conntrack table is the port map, so a port comes back as soon as its
/// session expires), and never when an endpoint-independent mapping holds it. With N workers each
/// takes a disjoint slice of the port range, so replies can be steered back by destination port.
/// </summary>
/// <remarks>
/// Endpoint-independent mapping (RFC 4787 section 4.1, REQ-1): one inside address:port keeps one
/// outside address:port for every destination while any of its sessions lives (reference counted).
/// Owned by one worker thread.
/// </remarks>
public sealed class NatPortAllocator : IConntrackObserver
{
    private const int MaxProbes = 1024;
    private readonly int _workerIndex;
    private readonly int _workerCount;
    private readonly Dictionary<ulong, Mapping> _byInside = new(1024);
    private readonly Dictionary<ulong, ulong> _byOutside = new(1024);

    public NatPortAllocator(int workerIndex, int workerCount)
    {
        _workerIndex = workerIndex;
        _workerCount = Math.Max(workerCount, 1);
    }

    /// <summary>Allocations that found no free port (the NAT stage drops the packet).</summary>
    public long Exhausted;

    /// <summary>Live endpoint-independent mappings.</summary>
    public int Mappings => _byInside.Count;

    /// <summary>
    /// Picks (address, port) for <paramref name="outgoing"/> (the packet after DNAT, before SNAT).
    /// The address is chosen per inside host (RFC 4787 REQ-2, "paired"); the port keeps the
    /// inside port when it is free (port preservation), else the first free one from a hashed start.
    /// </summary>
    /// <param name="masquerade">The egress gateway's address, used when the rule is a masquerade (empty pool).</param>
    public bool TryAllocate(ConntrackTable table, uint now, in FlowTuple outgoing, SnatRule rule, uint masquerade, out uint address, out ushort port)
    {
        var insidePort = outgoing.SourcePort;
        var hasPorts = outgoing.Protocol is 6 or 17 or 1;
        address = rule.Masquerade ? masquerade : rule.Pool[(int)(Mix(outgoing.Source) % (uint)rule.Pool.Length)];
        if (address == 0)
        {
            port = 0;
            Exhausted++;
            return false;
        }

        if (rule.EndpointIndependent && hasPorts && _byInside.TryGetValue(InsideKey(outgoing.Protocol, outgoing.Source, insidePort), out var existing))
        {
            address = existing.Address;
            port = existing.Port;
            return !table.Contains(Reply(outgoing, address, port), now);
        }

        if (!hasPorts)
        {
            port = 0;
            return !table.Contains(Reply(outgoing, address, 0), now);
        }

        var (low, high) = Slice(rule.PortLow, rule.PortHigh);
        var size = high - low + 1;
        if (insidePort >= low && insidePort <= high && Free(table, now, outgoing, address, insidePort))
        {
            port = insidePort;
            return true;
        }

        var start = (int)(ConntrackTable.Hash(outgoing) % (uint)size);
        var probes = Math.Min(size, MaxProbes);
        for (var k = 0; k < probes; k++)
        {
            var candidate = (ushort)(low + ((start + k) % size));
            if (Free(table, now, outgoing, address, candidate))
            {
                port = candidate;
                return true;
            }
        }

        Exhausted++;
        port = 0;
        return false;
    }

    /// <summary>Records an endpoint-independent mapping for a committed session (or adds a reference).</summary>
    public void Hold(byte protocol, uint insideAddress, ushort insidePort, uint outsideAddress, ushort outsidePort)
    {
        var key = InsideKey(protocol, insideAddress, insidePort);
        if (_byInside.TryGetValue(key, out var m))
        {
            _byInside[key] = m with { References = m.References + 1 };
            return;
        }

        _byInside[key] = new Mapping(outsideAddress, outsidePort, 1);
        _byOutside[OutsideKey(protocol, outsideAddress, outsidePort)] = key;
    }

    /// <summary>Conntrack removed a session: drop its reference on an endpoint-independent mapping.</summary>
    public void Removed(in ConntrackEntry entry)
    {
        if ((entry.Flags & FlowFlags.EndpointIndependent) == 0)
        {
            return;
        }

        var key = InsideKey(entry.Protocol, entry.OriginalSource, entry.OriginalSourcePort);
        if (!_byInside.TryGetValue(key, out var m))
        {
            return;
        }

        if (m.References > 1)
        {
            _byInside[key] = m with { References = m.References - 1 };
            return;
        }

        _byInside.Remove(key);
        _byOutside.Remove(OutsideKey(entry.Protocol, m.Address, m.Port));
    }

    private bool Free(ConntrackTable table, uint now, in FlowTuple outgoing, uint address, ushort port) =>
        (_byOutside.Count == 0 || !_byOutside.ContainsKey(OutsideKey(outgoing.Protocol, address, port)))
        && !table.Contains(Reply(outgoing, address, port), now);

    /// <summary>The reply tuple the session would have: ICMP echo replies carry the id as destination "port".</summary>
    public static FlowTuple Reply(in FlowTuple outgoing, uint address, ushort port) =>
        new(outgoing.Destination, address, outgoing.DestinationPort, port, outgoing.Protocol);

    private (int Low, int High) Slice(ushort low, ushort high)
    {
        var size = (high - low + 1) / _workerCount;
        if (size < 1)
        {
            return (low, high);
        }

        var first = low + (size * _workerIndex);
        return (first, _workerIndex == _workerCount - 1 ? high : first + size - 1);
    }

    private static ulong InsideKey(byte protocol, uint address, ushort port) => ((ulong)protocol << 48) | ((ulong)port << 32) | address;

    private static ulong OutsideKey(byte protocol, uint address, ushort port) => ((ulong)protocol << 48) | ((ulong)port << 32) | address;

    private static uint Mix(uint x)
    {
        x ^= x >> 16;
        x *= 0x7FEB_352D;
        x ^= x >> 15;
        return x;
    }

    private readonly record struct Mapping(uint Address, ushort Port, int References);
}
