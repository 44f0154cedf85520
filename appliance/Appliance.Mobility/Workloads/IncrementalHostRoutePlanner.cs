using System.Collections.Immutable;
using System.Net;
using Isthmus.Mobility.Bgp.Session;

namespace Isthmus.Mobility.Workloads;

/// <summary>
/// <see cref="HostRoutePlanner.Plan"/> kept up to date one workload at a time: a move re-plans the moved workload's
/// host routes only, not a walk of every workload. The aggregates' eligibility ("every known workload of the subnet is
/// local and unfrozen") is two counters per configured subnet (addresses known in it, and those not here), and the cap
/// is a counter of host-route candidates (VIPs and the addresses of local, unfrozen workloads, less those an announced
/// aggregate covers). While the candidates fit under the cap no host route is left out, so the plan is the eligible
/// aggregates plus every uncovered candidate, and a move changes only its own prefixes (and, when it flips a subnet's
/// eligibility, the candidates inside that subnet). Over the cap, which routes stay depends on the age of every move:
/// then (and for a <see cref="Reset"/>: config, VIPs) the full planner decides and its result is diffed in.
/// </summary>
/// <remarks>
/// The changed prefixes accumulate until <see cref="TakeChanged"/>, so the caller hands the BGP sessions exactly the
/// dirty set. <see cref="Desired"/> is immutable (replaced on change), so the sessions and the status read it without
/// a copy. Single-threaded: the mobility loop owns it. Tests: HostRoutePlannerTests (incremental == full over random
/// sequences of moves, bindings, freezes, unfreezes, re-classifications, VIP and config changes).
/// </remarks>
public sealed class IncrementalHostRoutePlanner
{
    /// <summary>What the plan was last told about each workload (its contribution to the counters).</summary>
    private readonly Dictionary<ulong, Workload> _planned = [];

    /// <summary>Workload host-route candidates and how many addresses each has (an aggregate may cover them).</summary>
    private readonly Dictionary<IPNetwork, int> _hostRefs = [];

    /// <summary>Up VIPs' host routes: never covered by an aggregate (they are announced as themselves).</summary>
    private readonly Dictionary<IPNetwork, int> _vipRefs = [];

    /// <summary>Host prefixes whose wanted state may have changed in the current batch.</summary>
    private readonly HashSet<IPNetwork> _touched = [];

    private readonly HashSet<IPNetwork> _changedSet = [];
    private readonly List<IPNetwork> _changed = [];
    private readonly List<ulong> _macs = [];
    private IPAddress[] _vips = [];
    private HostRoutePolicy _policy = new();

    /// <summary>Per aggregate: known addresses inside it, those of them not here (remote or frozen), and whether it is announced.</summary>
    private int[] _seen = [];
    private int[] _away = [];
    private bool[] _eligible = [];
    private bool[] _next = [];

    /// <summary>Host-route candidates (with their multiplicity): VIPs, and workload addresses no announced aggregate covers.</summary>
    private int _uncovered;
    private ImmutableDictionary<IPNetwork, Advertisement> _desired = ImmutableDictionary<IPNetwork, Advertisement>.Empty;
    private ImmutableArray<IPNetwork> _aggregated = [];

    /// <summary>Prefix → advertisement, as <see cref="HostRoutePlan.Desired"/>; never mutated (replaced on change).</summary>
    public ImmutableDictionary<IPNetwork, Advertisement> Desired => _desired;

    /// <summary>Host routes left out because of the cap.</summary>
    public int Capped { get; private set; }

    public ImmutableArray<IPNetwork> Aggregated => _aggregated;

    public HostRoutePolicy Policy => _policy;

    /// <summary>Re-plans from scratch (the policy or the VIPs changed, or a resync): the differences count as changes.</summary>
    public void Reset(IEnumerable<Workload> workloads, IEnumerable<IPAddress> upVips, HostRoutePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(workloads);
        ArgumentNullException.ThrowIfNull(upVips);
        ArgumentNullException.ThrowIfNull(policy);
        _policy = policy;
        _planned.Clear();
        _hostRefs.Clear();
        _vipRefs.Clear();
        _touched.Clear();
        var count = policy.Aggregates.Count;
        (_seen, _away, _eligible, _next) = (new int[count], new int[count], new bool[count], new bool[count]);
        _uncovered = 0;
        _aggregated = [];
        _vips = [.. upVips];
        foreach (var vip in _vips)
        {
            var prefix = HostRoutePlanner.Host(vip);
            _vipRefs[prefix] = _vipRefs.GetValueOrDefault(prefix) + 1;
            _uncovered++;
            _touched.Add(prefix);
        }

        foreach (var workload in workloads)
        {
            Update(workload.Mac, workload);
        }

        CommitAggregates();
        _touched.Clear();
        Replan();
    }

    /// <summary>Re-plans from scratch over the registry's workloads (and forgets its changes: they are all read).</summary>
    public void Reset(WorkloadRegistry registry, IEnumerable<IPAddress> upVips, HostRoutePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.ClearChanged();
        Reset(registry.Workloads, upVips, policy);
    }

    /// <summary>A move: re-plans the workloads the registry changed since the last call (<see cref="WorkloadRegistry.TakeChanged"/>) and commits.</summary>
    public void Update(WorkloadRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.TakeChanged(_macs);
        foreach (var mac in _macs)
        {
            Update(mac, registry.Find(mac));
        }

        _macs.Clear();
        Commit();
    }

    /// <summary>The workload of <paramref name="mac"/> is now <paramref name="now"/> (null: gone). Takes effect at <see cref="Commit"/>.</summary>
    public void Update(ulong mac, Workload? now)
    {
        if (_planned.Remove(mac, out var before))
        {
            Contribute(before, -1);
        }

        if (now is not null)
        {
            _planned[mac] = now;
            Contribute(now, +1);
        }
    }

    /// <summary>Re-plans what the updates since the last commit touched.</summary>
    public void Commit()
    {
        CommitAggregates();
        if (_uncovered > _policy.MaxHostRoutes || Capped > 0)
        {
            // Over the cap (or leaving it): which host routes stay depends on every move's age.
            _touched.Clear();
            Replan();
            return;
        }

        foreach (var prefix in _touched)
        {
            Set(prefix, Wanted(prefix));
        }

        _touched.Clear();
    }

    /// <summary>The prefixes whose advertisement was added, changed or removed since the last call.</summary>
    public IPNetwork[] TakeChanged()
    {
        if (_changed.Count == 0)
        {
            return [];
        }

        var changed = _changed.ToArray();
        _changed.Clear();
        _changedSet.Clear();
        return changed;
    }

    private void Contribute(Workload workload, int sign)
    {
        var here = workload.Location.Local && !workload.Frozen;
        var aggregates = _policy.Aggregates;
        foreach (var address in workload.Addresses)
        {
            for (var a = 0; a < aggregates.Count; a++)
            {
                if (aggregates[a].Contains(address))
                {
                    _seen[a] += sign;
                    _away[a] += here ? 0 : sign;
                }
            }

            if (here)
            {
                AddHost(HostRoutePlanner.Host(address), sign);
            }
        }
    }

    private void AddHost(IPNetwork prefix, int sign)
    {
        var refs = _hostRefs.GetValueOrDefault(prefix) + sign;
        if (refs == 0)
        {
            _hostRefs.Remove(prefix);
        }
        else
        {
            _hostRefs[prefix] = refs;
        }

        _uncovered += Covered(prefix, _eligible) ? 0 : sign;
        _touched.Add(prefix);
    }

    /// <summary>Aggregates whose eligibility flipped: their prefix, and the candidates inside them, are re-planned.</summary>
    private void CommitAggregates()
    {
        var flipped = false;
        for (var a = 0; a < _eligible.Length; a++)
        {
            _next[a] = _seen[a] > 0 && _away[a] == 0;
            flipped |= _next[a] != _eligible[a];
        }

        if (!flipped)
        {
            return;
        }

        // Rare (a subnet becoming wholly local or not): the candidates' coverage is re-derived.
        foreach (var (prefix, refs) in _hostRefs)
        {
            var before = Covered(prefix, _eligible);
            var after = Covered(prefix, _next);
            if (before != after)
            {
                _uncovered += after ? -refs : refs;
                _touched.Add(prefix);
            }
        }

        var aggregated = ImmutableArray.CreateBuilder<IPNetwork>();
        for (var a = 0; a < _eligible.Length; a++)
        {
            if (_next[a] != _eligible[a])
            {
                _touched.Add(_policy.Aggregates[a]);
            }

            _eligible[a] = _next[a];
            if (_eligible[a])
            {
                aggregated.Add(_policy.Aggregates[a]);
            }
        }

        _aggregated = aggregated.ToImmutable();
    }

    /// <summary>Under the cap: an announced aggregate, or a candidate no announced aggregate covers.</summary>
    private Advertisement? Wanted(IPNetwork prefix)
    {
        var wanted = _vipRefs.ContainsKey(prefix) || (_hostRefs.ContainsKey(prefix) && !Covered(prefix, _eligible));
        for (var a = 0; a < _eligible.Length && !wanted; a++)
        {
            wanted = _eligible[a] && _policy.Aggregates[a].Equals(prefix);
        }

        if (!wanted)
        {
            return null;
        }

        // The policy changes only with a Reset, so an advertisement already there is the one wanted.
        return _desired.TryGetValue(prefix, out var current) ? current : HostRoutePlanner.Route(prefix, _policy);
    }

    private void Set(IPNetwork prefix, Advertisement? advertisement)
    {
        if (advertisement is null)
        {
            var removed = _desired.Remove(prefix);
            if (!ReferenceEquals(removed, _desired))
            {
                _desired = removed;
                Changed(prefix);
            }
        }
        else if (!_desired.TryGetValue(prefix, out var current) || !current.Equals(advertisement))
        {
            _desired = _desired.SetItem(prefix, advertisement);
            Changed(prefix);
        }
    }

    /// <summary>The full planner over what the plan knows, diffed into <see cref="Desired"/>.</summary>
    private void Replan()
    {
        var plan = HostRoutePlanner.Plan(_planned.Values, _vips, _policy);
        Capped = plan.Capped;
        var desired = _desired.ToBuilder();
        foreach (var (prefix, advertisement) in plan.Desired)
        {
            if (!desired.TryGetValue(prefix, out var current) || !current.Equals(advertisement))
            {
                desired[prefix] = advertisement;
                Changed(prefix);
            }
        }

        foreach (var prefix in _desired.Keys)
        {
            if (!plan.Desired.ContainsKey(prefix))
            {
                desired.Remove(prefix);
                Changed(prefix);
            }
        }

        _desired = desired.ToImmutable();
    }

    private void Changed(IPNetwork prefix)
    {
        if (_changedSet.Add(prefix))
        {
            _changed.Add(prefix);
        }
    }

    private bool Covered(IPNetwork prefix, bool[] eligible)
    {
        for (var a = 0; a < eligible.Length; a++)
        {
            if (eligible[a] && _policy.Aggregates[a].Contains(prefix.BaseAddress))
            {
                return true;
            }
        }

        return false;
    }
}
