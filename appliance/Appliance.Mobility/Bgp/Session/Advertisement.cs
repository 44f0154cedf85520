using System.Collections.Immutable;
using System.Net;
using Isthmus.Mobility.Bgp.Codec;

namespace Isthmus.Mobility.Bgp.Session;

/// <summary>
/// One route the speaker should announce (MetalLB's <c>Advertisement</c>): a prefix, and optionally
/// a next hop (else the session's default), communities, large communities and LOCAL_PREF (iBGP only).
/// Two advertisements are equal when prefix and every attribute are equal, lists compared by content.
/// </summary>
public sealed record Advertisement(IPNetwork Prefix)
{
    public IPAddress? NextHop { get; init; }

    public IReadOnlyList<Community> Communities { get; init; } = [];

    public IReadOnlyList<LargeCommunity> LargeCommunities { get; init; } = [];

    public uint? LocalPref { get; init; }

    public bool IsIpv6 => Prefixes.IsIpv6(Prefix);

    public bool Equals(Advertisement? other) =>
        other is not null && Prefix.Equals(other.Prefix) && SameAttributes(other, NextHop);

    /// <summary>Every path attribute but the prefix equal, with <paramref name="nextHop"/> for this one's next hop (no allocation).</summary>
    public bool SameAttributes(Advertisement other, IPAddress? nextHop) =>
        other is not null && Equals(nextHop, other.NextHop) && LocalPref == other.LocalPref
        && SameItems(Communities, other.Communities) && SameItems(LargeCommunities, other.LargeCommunities);

    private static bool SameItems<T>(IReadOnlyList<T> a, IReadOnlyList<T> b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        if (a.Count != b.Count)
        {
            return false;
        }

        for (var i = 0; i < a.Count; i++)
        {
            if (!EqualityComparer<T>.Default.Equals(a[i], b[i]))
            {
                return false;
            }
        }

        return true;
    }

    public override int GetHashCode() => HashCode.Combine(Prefix, NextHop, LocalPref, Communities.Count, LargeCommunities.Count);
}

/// <summary>A route received from the peer, as kept in the Adj-RIB-In.</summary>
public sealed record ReceivedRoute(
    IPNetwork Prefix,
    IPAddress? NextHop,
    BgpOrigin? Origin,
    IReadOnlyList<AsPathSegment> AsPath,
    uint? MultiExitDisc,
    uint? LocalPref,
    IReadOnlyList<Community> Communities,
    IReadOnlyList<LargeCommunity> LargeCommunities);

/// <summary>What reconciling a desired set against the Adj-RIB-Out asks to send.</summary>
public sealed record RibDiff(IReadOnlyList<Advertisement> Announce, IReadOnlyList<IPNetwork> Withdraw)
{
    public bool IsEmpty => Announce.Count == 0 && Withdraw.Count == 0;
}

/// <summary>
/// The Adj-RIB-Out (RFC 4271 §3.2): what the peer has been told. <see cref="Reconcile"/> computes the
/// announcements (new or changed) and withdrawals (gone) that turn it into the desired set, and
/// records them as sent. Owned by the session loop; not thread-safe.
/// </summary>
public sealed class AdjRibOut
{
    /// <summary>Immutable (replaced on change): the session's readers' snapshot is this reference, not a copy per move.</summary>
    private ImmutableDictionary<IPNetwork, Advertisement> _sent = ImmutableDictionary<IPNetwork, Advertisement>.Empty;

    public int Count => _sent.Count;

    /// <summary>What the peer has been told, as an immutable snapshot.</summary>
    public ImmutableDictionary<IPNetwork, Advertisement> Sent => _sent;

    /// <summary>Raised by every change (announce, withdraw, clear): a reader's copy is current while it is unchanged.</summary>
    public long Version { get; private set; }

    public IEnumerable<Advertisement> Routes => _sent.Values;

    /// <summary>Reconciles every prefix: the wanted ones and the sent ones no longer wanted (withdrawn).</summary>
    public RibDiff Reconcile(IReadOnlyDictionary<IPNetwork, Advertisement> desired)
    {
        ArgumentNullException.ThrowIfNull(desired);
        var stale = _sent.Keys.Where(prefix => !desired.ContainsKey(prefix)).ToList();
        return Reconcile(desired, desired.Keys.Concat(stale));
    }

    /// <summary>
    /// Reconciles only the <paramref name="dirty"/> prefixes (<paramref name="desired"/> holds their wanted advertisements;
    /// a dirty prefix missing from it is withdrawn if it was sent). Every other prefix is left as it is: the same result
    /// as <see cref="Reconcile(IReadOnlyDictionary{IPNetwork, Advertisement})"/> when only the dirty ones changed, in
    /// time proportional to the dirty set.
    /// </summary>
    public RibDiff Reconcile(IReadOnlyDictionary<IPNetwork, Advertisement> desired, IEnumerable<IPNetwork> dirty)
    {
        var announce = new List<Advertisement>();
        var withdraw = new List<IPNetwork>();
        Reconcile(desired, dirty, announce, withdraw);
        return new RibDiff(announce, withdraw);
    }

    /// <summary>
    /// <see cref="Reconcile(IReadOnlyDictionary{IPNetwork, Advertisement}, IEnumerable{IPNetwork})"/> into the caller's
    /// lists (cleared first), so a session's per-move reconciliation reuses them.
    /// </summary>
    public void Reconcile(IReadOnlyDictionary<IPNetwork, Advertisement> desired, IEnumerable<IPNetwork> dirty, List<Advertisement> announce, List<IPNetwork> withdraw)
    {
        ArgumentNullException.ThrowIfNull(desired);
        ArgumentNullException.ThrowIfNull(dirty);
        ArgumentNullException.ThrowIfNull(announce);
        ArgumentNullException.ThrowIfNull(withdraw);
        announce.Clear();
        withdraw.Clear();
        var sentNow = _sent.ToBuilder();
        foreach (var prefix in dirty)
        {
            if (desired.TryGetValue(prefix, out var advertisement))
            {
                if (!sentNow.TryGetValue(prefix, out var sent) || !sent.Equals(advertisement))
                {
                    announce.Add(advertisement);
                    sentNow[prefix] = advertisement;
                }
            }
            else if (sentNow.Remove(prefix))
            {
                withdraw.Add(prefix);
            }
        }

        _sent = sentNow.ToImmutable();

        Version += announce.Count + withdraw.Count > 0 ? 1 : 0;
    }

    /// <summary>The session went down: without Graceful Restart (RFC 4724) the peer dropped all our routes.</summary>
    public void Clear()
    {
        _sent = ImmutableDictionary<IPNetwork, Advertisement>.Empty;
        Version++;
    }
}
