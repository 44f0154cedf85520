using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Bridge;

/// <summary>
/// A worker's bridging state: one MAC table and one storm-control bucket per bridge domain.
/// Rebuilt against each new snapshot: tables of domains whose segments did not change survive a
/// commit; the others are flushed of dynamic entries, and static MACs are always reinstalled.
/// </summary>
public sealed class BridgeState
{
    private DomainState[] _domains = [];

    public ReadOnlySpan<DomainState> Domains => _domains;

    public DomainState this[int domain] => _domains[domain];

    public void Apply(DataPlaneSnapshot snapshot, long now)
    {
        var previous = _domains.ToDictionary(d => d.Name, StringComparer.Ordinal);
        var next = new DomainState[snapshot.Domains.Length];
        foreach (var domain in snapshot.Domains)
        {
            var layout = string.Join(',', domain.Segments.Select(s => s < 0 ? "-" : snapshot.Segments[s].Name + "#" + s));
            if (!previous.TryGetValue(domain.Name, out var state) || state.Layout != layout || state.Table.Count > domain.MaxMacs)
            {
                state = new DomainState(domain.Name, layout, new MacTable(domain.MaxMacs));
            }
            else
            {
                // Static entries are reinstalled from the new snapshot below.
                foreach (var entry in state.Table.Snapshot())
                {
                    if (entry.Static)
                    {
                        state.Table.Remove(entry.Mac);
                    }
                }
            }

            state.Storm.Configure(domain.StormControlPps, now);
            foreach (var st in domain.StaticMacs)
            {
                ref var e = ref state.Table.Find(st.Mac.Value);
                if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref e))
                {
                    e = ref state.Table.Add(st.Mac.Value);
                }

                if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref e))
                {
                    e.Segment = st.Segment;
                    e.Vtep = st.Vtep;
                    e.Static = true;
                    e.LastSeen = now;
                }
            }

            next[domain.Index] = state;
        }

        _domains = next;
    }
}

public sealed class DomainState(string name, string layout, MacTable table)
{
    public string Name { get; } = name;

    /// <summary>The segment layout the table was learned against.</summary>
    public string Layout { get; } = layout;

    public MacTable Table { get; } = table;

    public StormBucket Storm { get; } = new();

    /// <summary>Learning attempts refused because the table was full.</summary>
    public long LearnRefused;

    public long Moves;
}

/// <summary>
/// Storm control: a token bucket on broadcast, unknown-unicast and multicast frames per domain.
/// Tokens are kept in units of (packets × ticks per second) so refills need no division.
/// </summary>
public sealed class StormBucket
{
    private long _rate;
    private long _capacity;
    private long _tokens;
    private long _last;
    private long _cost;

    public bool Enabled => _rate > 0;

    public void Configure(int packetsPerSecond, long now)
    {
        _rate = packetsPerSecond;
        _last = now;
        _cost = 0;
    }

    /// <summary>Takes one token; false means the frame exceeds the storm-control rate.</summary>
    public bool TryTake(long now, long ticksPerSecond)
    {
        if (_rate == 0)
        {
            return true;
        }

        if (_cost != ticksPerSecond)
        {
            // First use after Configure: allow a burst of a tenth of a second (at least 64 frames).
            _cost = ticksPerSecond;
            _capacity = Math.Max(_rate / 10, 64) * ticksPerSecond;
            _tokens = _capacity;
        }

        var elapsed = now - _last;
        if (elapsed > 0)
        {
            _last = now;
            _tokens = elapsed >= ticksPerSecond ? _capacity : Math.Min(_capacity, _tokens + (elapsed * _rate));
        }

        if (_tokens < _cost)
        {
            return false;
        }

        _tokens -= _cost;
        return true;
    }
}
