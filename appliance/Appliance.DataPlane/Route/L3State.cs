using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Route;

/// <summary>
/// A worker's L3 state: its neighbor cache, the ICMP-error rate limiter, and the gateway/route
/// counters that are not drops. Owned by the worker thread; readers accept slightly stale values.
/// </summary>
public sealed class L3State(ForwardingEpoch epoch)
{
    private string _layout = "";

    public NeighborCache Neighbors { get; private set; } = new(L3Tables.Empty.NeighborCapacity, epoch: epoch);

    /// <summary>Next-hop rewrites bound for the established-flow fast path (Firewall/FlowCache.cs).</summary>
    public AdjacencyTable Adjacencies { get; } = new();

    /// <summary>Token bucket on originated ICMP errors (RFC 1812 section 4.3.2.8).</summary>
    public StormBucket IcmpErrors { get; } = new();

    /// <summary>ARP replies and NAs for the appliance's own addresses.</summary>
    public long ArpReplies;
    public long NdAdvertisements;

    /// <summary>ARP/ND requests for other stations answered from bindings or the neighbor cache (not flooded).</summary>
    public long ProxyReplies;

    public long EchoReplies;

    /// <summary>ARP/ND packets for the gateway MAC that ended here once learned from (replies to our requests).</summary>
    public long Absorbed;

    public long IcmpErrorsSent;
    public long IcmpErrorsRateLimited;

    /// <summary>Held packets sent once their next hop resolved.</summary>
    public long Released;

    /// <summary>Held packets returned to the pool because a commit renumbered the routed domains.</summary>
    public long FlushedOnCommit;

    /// <summary>Reconciles with a new snapshot: the cache survives unless the routed domains or the cache size changed.</summary>
    public void Apply(DataPlaneSnapshot snapshot, PacketPool pool, long now)
    {
        var l3 = snapshot.L3;
        IcmpErrors.Configure(l3.IcmpErrorsPerSecond, now);
        var layout = string.Join(',', l3.Gateways.Select(g => g is null ? "-" : g.DomainName));
        if (layout != _layout || l3.NeighborCapacity != Neighbors.Capacity)
        {
            FlushedOnCommit += Neighbors.Clear(pool);
            if (l3.NeighborCapacity != Neighbors.Capacity)
            {
                Neighbors = new NeighborCache(l3.NeighborCapacity, epoch: epoch);
            }

            _layout = layout;
        }
    }
}
