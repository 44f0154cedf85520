using System.Net;
using System.Net.Sockets;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Session;

namespace Isthmus.Mobility.Workloads;

/// <summary>How workloads and VIPs become routes: attributes, the cap and the aggregates.</summary>
public sealed record HostRoutePolicy
{
    /// <summary>The next hop for IPv4 routes; null = the session's local address.</summary>
    public IPAddress? NextHopIpv4 { get; init; }

    public IPAddress? NextHopIpv6 { get; init; }

    public IReadOnlyList<Community> Communities { get; init; } = [];

    public IReadOnlyList<LargeCommunity> LargeCommunities { get; init; } = [];

    /// <summary>At most this many host routes (/32 and /128, VIPs included); the rest are counted as capped.</summary>
    public int MaxHostRoutes { get; init; } = 10_000;

    /// <summary>Subnets announced instead of their host routes while every known workload in them is local.</summary>
    public IReadOnlyList<IPNetwork> Aggregates { get; init; } = [];
}

/// <param name="Desired">Prefix → advertisement: what every session should announce.</param>
/// <param name="Capped">Host routes left out because of <see cref="HostRoutePolicy.MaxHostRoutes"/>.</param>
/// <param name="Aggregated">Aggregates announced instead of their host routes.</param>
public sealed record HostRoutePlan(IReadOnlyDictionary<IPNetwork, Advertisement> Desired, int Capped, IReadOnlyList<IPNetwork> Aggregated);

/// <summary>
/// The anti-trombone rule as a pure function: a workload whose location is local (and that is not
/// frozen) gets a /32 (/128) per address; a VIP whose pool is up gets a /32; a subnet whose known
/// workloads are all local is announced as the covering prefix instead of its host routes; host
/// routes beyond the cap are left out (the oldest moves keep theirs, so a flood of new arrivals cannot
/// push out routes that are already announced).
/// </summary>
/// <remarks>
/// The mobility service keeps the plan with <see cref="IncrementalHostRoutePlanner"/> (a move re-plans its own routes);
/// this full form is its oracle in the tests and what it falls back to over the cap and after a config change.
/// </remarks>
public static class HostRoutePlanner
{
    public static HostRoutePlan Plan(IEnumerable<Workload> workloads, IEnumerable<IPAddress> upVips, HostRoutePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(workloads);
        ArgumentNullException.ThrowIfNull(upVips);
        ArgumentNullException.ThrowIfNull(policy);

        // Per aggregate: are all its known workloads local (and not frozen)? Any workload outside makes it
        // ineligible; an aggregate with no known workload is not announced at all.
        var all = workloads as IReadOnlyCollection<Workload> ?? [.. workloads];
        var eligible = new bool[policy.Aggregates.Count];
        var seen = new bool[policy.Aggregates.Count];
        Array.Fill(eligible, true);
        foreach (var workload in all)
        {
            var here = workload.Location.Local && !workload.Frozen;
            foreach (var address in workload.Addresses)
            {
                for (var a = 0; a < policy.Aggregates.Count; a++)
                {
                    if (policy.Aggregates[a].Contains(address))
                    {
                        seen[a] = true;
                        eligible[a] &= here;
                    }
                }
            }
        }

        var desired = new Dictionary<IPNetwork, Advertisement>();
        var aggregated = new List<IPNetwork>();
        for (var a = 0; a < policy.Aggregates.Count; a++)
        {
            if (seen[a] && eligible[a])
            {
                var prefix = policy.Aggregates[a];
                desired[prefix] = Route(prefix, policy);
                aggregated.Add(prefix);
            }
        }

        // VIPs first, then workloads by the age of their move: the cap keeps what was there first.
        var capped = 0;
        var hostRoutes = 0;
        var hosts = upVips.Concat(all.Where(w => w.Location.Local && !w.Frozen).OrderBy(w => w.Since).ThenBy(w => w.Mac)
            .SelectMany(w => w.Addresses).Where(a => !Covered(a, aggregated)));
        foreach (var address in hosts)
        {
            if (hostRoutes >= policy.MaxHostRoutes)
            {
                capped++;
                continue;
            }

            var prefix = Host(address);
            if (desired.TryAdd(prefix, Route(prefix, policy)))
            {
                hostRoutes++;
            }
        }

        return new HostRoutePlan(desired, capped, aggregated);
    }

    public static IPNetwork Host(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32);
    }

    private static bool Covered(IPAddress address, List<IPNetwork> aggregates)
    {
        foreach (var aggregate in aggregates)
        {
            if (aggregate.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    internal static Advertisement Route(IPNetwork prefix, HostRoutePolicy policy) => new(prefix)
    {
        NextHop = prefix.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 ? policy.NextHopIpv6 : policy.NextHopIpv4,
        Communities = policy.Communities,
        LargeCommunities = policy.LargeCommunities,
    };
}

/// <summary>
/// Rate limiting for announcements (the "10,000 VMs flip to the backup site" guard rail): a token
/// bucket of <c>perSecond</c> new prefixes, burst one second's worth. Withdrawals and changes to
/// prefixes already announced pass at once; only new prefixes wait for tokens. Pure; virtual time.
/// </summary>
public sealed class AnnouncementPacer(TimeProvider time)
{
    private double _tokens;
    private long _last = time.GetTimestamp();
    private int _perSecond;

    /// <summary>New prefixes per second; 0 = unlimited. Setting it fills the bucket.</summary>
    public int PerSecond
    {
        get => _perSecond;
        set
        {
            _perSecond = Math.Max(0, value);
            _tokens = _perSecond;
            _last = time.GetTimestamp();
        }
    }

    /// <summary>
    /// From what should be announced (<paramref name="desired"/>) and what is announced now
    /// (<paramref name="current"/>), what to announce next, and how many new prefixes still wait.
    /// </summary>
    public (Dictionary<IPNetwork, Advertisement> Next, int Waiting) Pace(IReadOnlyDictionary<IPNetwork, Advertisement> desired, IReadOnlyDictionary<IPNetwork, Advertisement> current)
    {
        ArgumentNullException.ThrowIfNull(desired);
        ArgumentNullException.ThrowIfNull(current);
        var next = new Dictionary<IPNetwork, Advertisement>(desired.Count);
        var fresh = new List<KeyValuePair<IPNetwork, Advertisement>>();
        foreach (var entry in desired)
        {
            if (current.ContainsKey(entry.Key) || PerSecond <= 0)
            {
                next.Add(entry.Key, entry.Value);
            }
            else
            {
                fresh.Add(entry);
            }
        }

        if (fresh.Count == 0)
        {
            return (next, 0);
        }

        var now = time.GetTimestamp();
        _tokens = Math.Min(PerSecond, _tokens + (PerSecond * (double)(now - _last) / time.TimestampFrequency));
        _last = now;
        var allowed = (int)Math.Min(fresh.Count, Math.Floor(_tokens));
        _tokens -= allowed;
        for (var i = 0; i < allowed; i++)
        {
            next.Add(fresh[i].Key, fresh[i].Value);
        }

        return (next, fresh.Count - allowed);
    }
}
