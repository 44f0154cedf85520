using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Diagnostics;
using Isthmus.Mobility.Threading;

namespace Isthmus.Mobility.Bgp.Session;

/// <summary>One peer's settings.</summary>
public sealed record BgpPeerOptions
{
    public required IPAddress PeerAddress { get; init; }

    public int PeerPort { get; init; } = 179;

    /// <summary>The source address to bind, if any.</summary>
    public IPAddress? LocalAddress { get; init; }

    public required BgpFsmOptions Fsm { get; init; }

    /// <summary>The IPv4 next hop when an advertisement names none; default: the session's local address.</summary>
    public IPAddress? NextHopIpv4 { get; init; }

    /// <summary>The IPv6 next hop when an advertisement names none; default: the local address if the session is IPv6.</summary>
    public IPAddress? NextHopIpv6 { get; init; }

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Makes the TCP socket for an outgoing connection (the appliance opens it in the data-plane network
    /// namespace); default: a plain socket in the process's namespace.
    /// </summary>
    public Func<AddressFamily, Socket>? SocketFactory { get; init; }

    /// <summary>
    /// Where the session records how long a change took (from the cause handed to
    /// <see cref="BgpSession.SetAdvertisementsAsync(IEnumerable{Advertisement}, long)"/>) to reach its loop
    /// and to leave through the socket; shared by the sessions of one speaker. Null: not recorded.
    /// </summary>
    public BgpLatency? Latency { get; init; }

    /// <summary>
    /// Who opens the TCP connection: <see cref="BgpConnectMode.Active"/> (we connect), <see cref="BgpConnectMode.Passive"/>
    /// (the peer connects: <see cref="BgpSession.AcceptIncoming"/>), or <see cref="BgpConnectMode.Both"/> (RFC 4271 §6.8
    /// collision detection picks one).
    /// </summary>
    public BgpConnectMode Mode { get; init; } = BgpConnectMode.Active;

    /// <summary>
    /// The event loop that runs the session (an urgent mailbox on it): the appliance runs every session on the mobility
    /// service's loop, so a desired set posted by the mobility decision is reconciled and its UPDATE written on the same
    /// thread, before it sleeps. Null: the session runs its own loop thread (<see cref="LoopPriority"/>, <see cref="LoopStarted"/>).
    /// </summary>
    public EventLoop? Loop { get; init; }

    /// <summary>The session's own loop thread (without <see cref="Loop"/>): ordinary by default.</summary>
    public LoopPriority LoopPriority { get; init; } = LoopPriority.Normal;

    /// <summary>Called on the session's own loop thread (without <see cref="Loop"/>) when it starts, with its scheduling class.</summary>
    public Action<string>? LoopStarted { get; init; }
}

public enum BgpConnectMode
{
    Active,
    Passive,
    Both,
}

/// <summary>Latency of advertisement changes inside the sessions (Stopwatch ticks from the change's cause).</summary>
public sealed class BgpLatency
{
    /// <summary>Cause → the session loop took the new desired set.</summary>
    public LatencyRecorder ToLoop { get; } = new("bgp loop");

    /// <summary>Cause → the first UPDATE it produced was written to the socket.</summary>
    public LatencyRecorder ToSocket { get; } = new("bgp socket write");
}

/// <summary>
/// One BGP session: a single loop task owns the FSM, the Adj-RIB-Out, the desired set and the
/// connection. Everything else (API calls, the socket reader, timers) posts inputs into its channel,
/// gobgp-style, so the peer state has exactly one writer. Readers get immutable snapshots.
/// </summary>
public sealed class BgpSession : IAsyncDisposable
{
    private const int MaxPrefixesPerUpdate = 400;

    /// <summary>IPv6 NLRI are up to 17 octets: 200 of them keep an UPDATE well inside 4096 octets (RFC 4271 §4).</summary>
    private const int MaxIpv6PrefixesPerUpdate = 200;

    private readonly BgpPeerOptions _options;
    private readonly TimeProvider _time;
    private DateTimeOffset? _establishedAt;
    private readonly Mailbox<Input> _inputs;

    /// <summary>The loop thread of this session alone (no <see cref="BgpPeerOptions.Loop"/>), stopped with it.</summary>
    private readonly EventLoop? _ownLoop;
    private readonly BgpFsm _fsm;
    private readonly AdjRibOut _ribOut = new();
    private readonly Scratch _scratch = new();

    /// <summary>eBGP's AS_PATH (RFC 4271 §5.1.2: our AS, one AS_SEQUENCE), built once.</summary>
    private readonly IReadOnlyList<AsPathSegment> _asPath;
    private readonly Dictionary<IPNetwork, Advertisement> _desired = [];
    private readonly Dictionary<IPNetwork, ReceivedRoute> _ribIn = [];
    private Connection? _connection;
    private long _connectionId;

    /// <summary>The cause of the change being sent (0 when none or already recorded); loop only.</summary>
    private long _cause;

    /// <summary>The peer's connection waiting for a collision decision (ours is in OpenSent); loop only.</summary>
    private Socket? _pendingIncoming;
    private int _collisionsIncomingRejected;

    /// <summary>The Adj-RIB-In changed since the last <see cref="Publish"/> (loop only).</summary>
    private bool _ribInChanged;
    private int _collisionsExistingDumped;
    private volatile Snapshot _snapshot = new(BgpState.Idle, null, null, null, ImmutableDictionary<IPNetwork, ReceivedRoute>.Empty, ImmutableDictionary<IPNetwork, Advertisement>.Empty);

    public BgpSession(BgpPeerOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        _asPath = [new AsPathSegment(AsPathSegmentType.AsSequence, [options.Fsm.LocalAs])];
        _ownLoop = options.Loop is null ? new EventLoop("isthmus-bgp", options.LoopPriority, options.LoopStarted) : null;
        _inputs = (options.Loop ?? _ownLoop!).CreateMailbox<Input>(Handle, urgent: true);
        _fsm = new BgpFsm(options.Mode == BgpConnectMode.Passive ? options.Fsm with { Passive = true } : options.Fsm, new Host(this), time, e => _inputs.TryWrite(new Input.Fsm(e)));
    }

    public BgpState State => _snapshot.State;

    public BgpNegotiated? Negotiated => _snapshot.Negotiated;

    public string? LastError => _snapshot.LastError;

    /// <summary>When the session last reached Established; null while it is not.</summary>
    public DateTimeOffset? EstablishedAt => _snapshot.EstablishedAt;

    public BgpPeerOptions Options => _options;

    /// <summary>The routes the peer sent us (Adj-RIB-In), read-only.</summary>
    public IReadOnlyDictionary<IPNetwork, ReceivedRoute> AdjRibIn => _snapshot.AdjRibIn;

    /// <summary>What the peer has been told (Adj-RIB-Out).</summary>
    public IReadOnlyList<Advertisement> AdjRibOut => _snapshot.AdjRibOut;

    /// <summary>Counts UPDATEs that RFC 7606 treated as withdraw, for diagnostics.</summary>
    public int TreatAsWithdrawCount { get; private set; }

    public void Start()
    {
        _inputs.TryWrite(new Input.Fsm(new BgpEvent.ManualStart()));
    }

    /// <summary>
    /// Replaces the desired set (MetalLB's <c>Session.Set</c>). The loop announces what is new or changed
    /// and withdraws what is gone; the task completes when the loop has queued those UPDATEs.
    /// </summary>
    public Task SetAdvertisementsAsync(IEnumerable<Advertisement> desired) => SetAdvertisementsAsync(desired, 0);

    /// <param name="cause">The Stopwatch timestamp of what caused the change (a RARP seen by a worker), for <see cref="BgpPeerOptions.Latency"/>; 0 = none.</param>
    public Task SetAdvertisementsAsync(IEnumerable<Advertisement> desired, long cause)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _inputs.TryWrite(new Input.SetAdvertisements([.. desired], done, cause));
        return done.Task;
    }

    public void SetAdvertisements(IEnumerable<Advertisement> desired, long cause = 0) => _ = SetAdvertisementsAsync(desired, cause);

    /// <summary>
    /// Incremental form of <see cref="SetAdvertisementsAsync(IEnumerable{Advertisement}, long)"/> for one move among many
    /// routes: <paramref name="desired"/> is the whole new desired set (not copied: the caller never mutates it), and
    /// <paramref name="changed"/> the prefixes whose advertisement was added, changed or removed since the set this
    /// session was last given. The loop updates its desired set and reconciles only those prefixes against the
    /// Adj-RIB-Out (a dirty set, not a walk of every route), so a /32 move costs the same with 10 or 10,000 routes.
    /// </summary>
    public void UpdateAdvertisements(IReadOnlyDictionary<IPNetwork, Advertisement> desired, IReadOnlyCollection<IPNetwork> changed, long cause = 0)
    {
        ArgumentNullException.ThrowIfNull(desired);
        ArgumentNullException.ThrowIfNull(changed);
        _inputs.TryWrite(new Input.UpdateAdvertisements(desired, changed, cause));
    }

    /// <summary>
    /// Sends every route of the Adj-RIB-Out again (what the appliance does after its own migration, so
    /// that peers which lost state relearn them; as for an RFC 2918 ROUTE-REFRESH from the peer).
    /// </summary>
    public Task RefreshAsync()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _inputs.TryWrite(new Input.Refresh(done));
        return done.Task;
    }

    /// <summary>
    /// A TCP connection the peer opened to us (the listener matched its address to this session). Refused
    /// (closed) in <see cref="BgpConnectMode.Active"/> mode and while the session is Idle; taken when no
    /// connection is up yet; otherwise RFC 4271 §6.8 decides which connection stays.
    /// </summary>
    public void AcceptIncoming(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!_inputs.TryWrite(new Input.Incoming(socket)))
        {
            socket.Dispose();
        }
    }

    /// <summary>How many incoming connections lost a collision, and how many existing ones were dumped for an incoming one.</summary>
    public (int IncomingRejected, int ExistingDumped) Collisions => (_collisionsIncomingRejected, _collisionsExistingDumped);

    /// <summary>Graceful shutdown: Cease / Administrative Shutdown with an RFC 8203 message, then the loop ends.</summary>
    public async Task StopAsync(string? reason = null)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_inputs.TryWrite(new Input.Stop(reason, done)))
        {
            await done.Task.ConfigureAwait(false);
        }

        try
        {
            await _inputs.Completion.ConfigureAwait(false);
        }
        finally
        {
            _ownLoop?.Stop();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync("session disposed").ConfigureAwait(false);
        _fsm.Dispose();
    }

    private void Handle(Input input)
    {
        switch (input)
        {
            case Input.Fsm fsm:
                _fsm.Handle(fsm.Event);
                break;
            case Input.Connected connected:
                OnConnected(connected);
                break;
            case Input.Incoming incoming:
                OnIncoming(incoming.Socket);
                break;
            case Input.ConnectFailed failed when failed.ConnectionId == _connectionId:
                _fsm.Handle(new BgpEvent.TcpConnectionFails(failed.Reason));
                break;
            case Input.Frame frame when frame.ConnectionId == _connectionId:
                OnFrame(frame.Bytes);
                break;
            case Input.FrameError frameError when frameError.ConnectionId == _connectionId:
                _fsm.Handle(new BgpEvent.MessageError(frameError.Error));
                break;
            case Input.Closed closed when closed.ConnectionId == _connectionId:
                _fsm.Handle(new BgpEvent.TcpConnectionFails(closed.Reason));
                break;
            case Input.SetAdvertisements set:
                _options.Latency?.ToLoop.RecordSince(set.Cause);
                _cause = set.Cause;
                _desired.Clear();
                foreach (var advertisement in set.Desired)
                {
                    _desired[advertisement.Prefix] = advertisement;
                }

                if (_fsm.State == BgpState.Established)
                {
                    SendDiff();
                }

                _cause = 0;
                set.Done.TrySetResult();
                break;
            case Input.UpdateAdvertisements update:
                _options.Latency?.ToLoop.RecordSince(update.Cause);
                _cause = update.Cause;
                foreach (var prefix in update.Changed)
                {
                    if (update.Desired.TryGetValue(prefix, out var advertisement))
                    {
                        _desired[prefix] = advertisement;
                    }
                    else
                    {
                        _desired.Remove(prefix);
                    }
                }

                if (_fsm.State == BgpState.Established)
                {
                    SendDiff(update.Changed);
                }

                _cause = 0;
                break;
            case Input.Refresh refresh:
                if (_fsm.State == BgpState.Established)
                {
                    Announce(_ribOut.Routes.ToList());
                }

                refresh.Done.TrySetResult();
                break;
            case Input.Stop stop:
                _pendingIncoming?.Dispose();
                _pendingIncoming = null;
                _fsm.Handle(new BgpEvent.ManualStop(stop.Reason));
                _fsm.Dispose();
                var closing = _connection?.Closed ?? Task.CompletedTask;
                Publish();
                _inputs.TryComplete();

                // Done once the final NOTIFICATION was flushed (at most 5 s); the loop, maybe shared, does not wait for it.
                var stopped = stop.Done;
                _ = closing.ContinueWith(_ => stopped.TrySetResult(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                break;
        }

        SettlePendingIncoming();
        Publish();
    }

    /// <summary>
    /// RFC 4271 §6.8: a connection from the peer while ours is in OpenSent waits until the peer's BGP
    /// Identifier is known (its OPEN on our connection: OpenConfirm) or ours fails.
    /// </summary>
    private void OnIncoming(Socket socket)
    {
        if (_options.Mode == BgpConnectMode.Active || _fsm.State == BgpState.Idle)
        {
            socket.Dispose(); // not listening for this peer, or stopped / backing off (RFC 4271 §8.2.2: Idle refuses)
            return;
        }

        switch (_fsm.State)
        {
            case BgpState.Connect or BgpState.Active:
                Adopt(socket);
                break;
            case BgpState.OpenSent:
                _pendingIncoming?.Dispose();
                _pendingIncoming = socket;
                break;
            case BgpState.OpenConfirm:
                ResolveCollision(socket);
                break;
            default:
                // Established: the new connection loses (RFC 4271 §6.8).
                Reject(socket);
                break;
        }
    }

    private void SettlePendingIncoming()
    {
        if (_pendingIncoming is not { } pending || _fsm.State == BgpState.OpenSent)
        {
            return;
        }

        _pendingIncoming = null;
        switch (_fsm.State)
        {
            case BgpState.OpenConfirm:
                ResolveCollision(pending);
                break;
            case BgpState.Connect or BgpState.Active:
                Adopt(pending); // ours failed meanwhile
                break;
            default:
                pending.Dispose();
                break;
        }
    }

    /// <summary>
    /// RFC 4271 §6.8: the connection opened by the speaker with the higher BGP Identifier stays. Ours in
    /// OpenConfirm knows the peer's Identifier: if ours is lower, ours is dumped (Cease / Connection Collision
    /// Resolution) and the peer's connection taken; else the peer's connection gets that NOTIFICATION and closes.
    /// </summary>
    private void ResolveCollision(Socket incoming)
    {
        if (LocalWinsCollision(_options.Fsm.RouterId, _fsm.Negotiated!.PeerOpen.BgpIdentifier))
        {
            Reject(incoming);
            return;
        }

        _collisionsExistingDumped++;
        _fsm.Handle(new BgpEvent.OpenCollisionDump());
        Adopt(incoming);
    }

    /// <summary>True when the local BGP Identifier is the higher one (compared as 32-bit unsigned integers, RFC 4271 §6.8).</summary>
    public static bool LocalWinsCollision(IPAddress local, IPAddress remote) => Identifier(local) > Identifier(remote);

    private static uint Identifier(IPAddress address) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes());

    private void Adopt(Socket socket)
    {
        // A connect still in progress becomes stale (its Connected is disposed on arrival).
        CloseConnection();
        try
        {
            socket.NoDelay = true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        var id = _connectionId;
        _connection = new Connection(socket, id, _inputs, _options.Latency);
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
    }

    /// <summary>The peer's connection loses: Cease / Connection Collision Resolution on it, then it closes (its events carry a stale id).</summary>
    private void Reject(Socket socket)
    {
        _collisionsIncomingRejected++;
        var loser = new Connection(socket, -1, _inputs, null);
        var context = _fsm.Negotiated?.DecodeContext ?? BgpDecodeContext.Default;
        loser.Send(new NotificationMessage(BgpErrorCode.Cease, BgpSubcode.ConnectionCollisionResolution, []).Encode(context), 0);
        loser.Close();
    }

    private void OnConnected(Input.Connected connected)
    {
        if (connected.ConnectionId != _connectionId || _fsm.State is not (BgpState.Connect or BgpState.Active))
        {
            connected.Socket.Dispose();
            return;
        }

        _connection = new Connection(connected.Socket, connected.ConnectionId, _inputs, _options.Latency);
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
    }

    private void OnFrame(byte[] bytes)
    {
        var context = _fsm.Negotiated?.DecodeContext ?? BgpDecodeContext.Default;
        var result = BgpMessage.Decode(bytes, context);
        if (result.IsSessionReset)
        {
            _fsm.Handle(new BgpEvent.MessageError(result.Error!));
            return;
        }

        _fsm.Handle(result.Message switch
        {
            OpenMessage open => new BgpEvent.OpenReceived(open),
            KeepaliveMessage => new BgpEvent.KeepaliveReceived(),
            UpdateMessage update => new BgpEvent.UpdateReceived(update, result.Error),
            NotificationMessage notification => new BgpEvent.NotificationReceived(notification),
            RouteRefreshMessage refresh => new BgpEvent.RouteRefreshReceived(refresh),
            _ => new BgpEvent.MessageError(BgpError.Reset(BgpErrorCode.MessageHeader, BgpSubcode.BadMessageType)),
        });
    }

    private void SendDiff() => Send(_ribOut.Reconcile(NegotiatedDesired()));

    /// <summary>
    /// Reconciles only <paramref name="dirty"/>: the Adj-RIB-Out matched the (negotiable) desired set for every other
    /// prefix after the last reconciliation, so this sends exactly what a full <see cref="SendDiff()"/> would.
    /// </summary>
    private void SendDiff(IReadOnlyCollection<IPNetwork> dirty)
    {
        // The loop's reused scratch: a move's reconciliation allocates no dictionary or list of its own.
        var desired = _scratch.Desired;
        desired.Clear();
        foreach (var prefix in dirty)
        {
            if (_desired.TryGetValue(prefix, out var advertisement) && Negotiable(advertisement))
            {
                desired[prefix] = advertisement;
            }
        }

        _ribOut.Reconcile(desired, dirty, _scratch.Announce, _scratch.Withdraw);
        desired.Clear();
        Send(_scratch.Announce, _scratch.Withdraw);
    }

    private void Send(RibDiff diff) => Send(diff.Announce, diff.Withdraw);

    private void Send(IReadOnlyList<Advertisement> announce, IReadOnlyList<IPNetwork> withdraw)
    {
        var context = _fsm.Negotiated!.DecodeContext;
        Announce(announce);

        // Withdrawals per family, MaxPrefixesPerUpdate per UPDATE (the chunk list is encoded before it is reused).
        var chunk = _scratch.Chunk;
        for (var family = 0; family < 2; family++)
        {
            var ipv6 = family == 1;
            chunk.Clear();
            for (var i = 0; i < withdraw.Count; i++)
            {
                if (Prefixes.IsIpv6(withdraw[i]) != ipv6)
                {
                    continue;
                }

                chunk.Add(withdraw[i]);
                if (chunk.Count == MaxPrefixesPerUpdate)
                {
                    SendWithdrawal(chunk, ipv6, context);
                    chunk.Clear();
                }
            }

            if (chunk.Count > 0)
            {
                SendWithdrawal(chunk, ipv6, context);
            }
        }

        chunk.Clear();
    }

    private void SendWithdrawal(List<IPNetwork> chunk, bool ipv6, BgpDecodeContext context) =>
        Send(ipv6 ? new UpdateMessage { MpUnreach = new MpUnreachNlri(AfiSafi.Ipv6Unicast, chunk) } : new UpdateMessage { Withdrawn = chunk }, context);

    // Only the families the peer negotiated can be sent; the rest wait in the desired set.
    private Dictionary<IPNetwork, Advertisement> NegotiatedDesired()
    {
        return _desired.Where(kv => Negotiable(kv.Value)).ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    private bool Negotiable(Advertisement advertisement) =>
        _fsm.Negotiated!.Families.Contains(advertisement.IsIpv6 ? AfiSafi.Ipv6Unicast : AfiSafi.Ipv4Unicast) && ResolveNextHop(advertisement) is not null;

    private IPAddress? ResolveNextHop(Advertisement advertisement)
    {
        var local = _connection?.LocalAddress;
        return advertisement.NextHop ?? (advertisement.IsIpv6
            ? _options.NextHopIpv6 ?? (local?.AddressFamily == AddressFamily.InterNetworkV6 ? local : null)
            : _options.NextHopIpv4 ?? (local?.AddressFamily == AddressFamily.InterNetwork ? local : null));
    }

    /// <summary>
    /// Announces <paramref name="advertisements"/>, packing the prefixes that share every path attribute
    /// (next hop, communities, LOCAL_PREF) into one UPDATE each (RFC 4271 §4.3: one set of attributes per
    /// UPDATE, many NLRI): 10,000 host routes with the same attributes take 25 UPDATEs, not 10,000.
    /// </summary>
    private void Announce(IReadOnlyCollection<Advertisement> advertisements)
    {
        var context = _fsm.Negotiated!.DecodeContext;
        var groups = _scratch.Groups;
        var used = 0;
        foreach (var advertisement in advertisements)
        {
            if (ResolveNextHop(advertisement) is not { } nextHop)
            {
                continue;
            }

            // The groups in order of their first advertisement (a linear scan: a plan has one or two attribute sets).
            var g = 0;
            while (g < used && (groups[g].Key.IsIpv6 != advertisement.IsIpv6 || !advertisement.SameAttributes(groups[g].Key, nextHop)))
            {
                g++;
            }

            if (g == used)
            {
                var key = advertisement with { Prefix = advertisement.IsIpv6 ? Ipv6Key : Ipv4Key, NextHop = nextHop };
                if (used == groups.Count)
                {
                    groups.Add(new AnnouncementGroup(key, []));
                }
                else
                {
                    groups[used] = groups[used] with { Key = key };
                }

                used++;
            }

            groups[g].Prefixes.Add(advertisement.Prefix);
        }

        for (var g = 0; g < used; g++)
        {
            var (key, prefixes) = groups[g];
            var size = key.IsIpv6 ? MaxIpv6PrefixesPerUpdate : MaxPrefixesPerUpdate;
            for (var start = 0; start < prefixes.Count; start += size)
            {
                // A plan's usual UPDATE carries one list whole (encoded before it is cleared); a failover's are cut.
                IReadOnlyList<IPNetwork> chunk = start == 0 && prefixes.Count <= size ? prefixes : prefixes.GetRange(start, Math.Min(size, prefixes.Count - start));
                Send(BuildAnnouncement(key, chunk), context);
            }

            prefixes.Clear();
        }
    }

    /// <summary>Prefixes that share every path attribute (<see cref="Advertisement.SameAttributes"/>) under one key.</summary>
    private sealed record AnnouncementGroup(Advertisement Key, List<IPNetwork> Prefixes);

    /// <summary>The loop's reused collections for one reconciliation and its UPDATEs (loop only).</summary>
    private sealed class Scratch
    {
        public Dictionary<IPNetwork, Advertisement> Desired { get; } = [];

        public List<Advertisement> Announce { get; } = [];

        public List<IPNetwork> Withdraw { get; } = [];

        public List<IPNetwork> Chunk { get; } = [];

        public List<AnnouncementGroup> Groups { get; } = [];

        /// <summary>Each UPDATE is encoded here and written from it (<see cref="Connection.Send(BgpWriter, long)"/>).</summary>
        public BgpWriter Writer { get; } = new(BgpMessage.MaxLength);
    }

    private static readonly IPNetwork Ipv4Key = new(IPAddress.Any, 0);
    private static readonly IPNetwork Ipv6Key = new(IPAddress.IPv6Any, 0);

    private UpdateMessage BuildAnnouncement(Advertisement advertisement, IReadOnlyList<IPNetwork> prefixes)
    {
        var fsm = _options.Fsm;
        var ibgp = fsm.LocalAs == fsm.PeerAs;
        var nextHop = ResolveNextHop(advertisement)!;
        return new UpdateMessage
        {
            Origin = BgpOrigin.Igp,

            // RFC 4271 §5.1.2: eBGP prepends our AS; iBGP sends an empty AS_PATH and a LOCAL_PREF.
            AsPath = ibgp ? [] : _asPath,
            LocalPref = ibgp ? advertisement.LocalPref ?? 100 : null,
            NextHop = advertisement.IsIpv6 ? null : nextHop,
            Nlri = advertisement.IsIpv6 ? [] : prefixes,
            MpReach = advertisement.IsIpv6 ? new MpReachNlri(AfiSafi.Ipv6Unicast, nextHop, null, prefixes) : null,
            Communities = advertisement.Communities,
            LargeCommunities = advertisement.LargeCommunities,
        };
    }

    private void Send(BgpMessage message, BgpDecodeContext context)
    {
        // The first UPDATE of a timed change carries its cause to the socket write. Encoded into the loop's writer and
        // written from it (copied only when it must wait behind another send).
        if (_connection is { } connection)
        {
            var writer = _scratch.Writer;
            writer.Clear();
            message.Encode(writer, context);
            connection.Send(writer, _cause);
        }

        _cause = 0;
    }

    private void OnEstablished()
    {
        _establishedAt = _time.GetUtcNow();
        _ribOut.Clear();
        SendDiff();

        // End-of-RIB (RFC 4724 §2) for each family: the initial table is complete.
        var context = _fsm.Negotiated!.DecodeContext;
        foreach (var family in _fsm.Negotiated.Families)
        {
            Send(family == AfiSafi.Ipv4Unicast ? new UpdateMessage() : new UpdateMessage { MpUnreach = new MpUnreachNlri(family, []) }, context);
        }
    }

    private void OnUpdate(UpdateMessage update, BgpError? softError)
    {
        _ribInChanged = true;
        foreach (var prefix in update.AllWithdrawn)
        {
            _ribIn.Remove(prefix);
        }

        if (softError is { Action: BgpErrorAction.TreatAsWithdraw })
        {
            // RFC 7606 §2: keep the session, withdraw what the UPDATE would have announced.
            TreatAsWithdrawCount++;
            foreach (var prefix in update.Announced)
            {
                _ribIn.Remove(prefix);
            }

            return;
        }

        foreach (var prefix in update.Nlri)
        {
            _ribIn[prefix] = Received(prefix, update.NextHop, update);
        }

        if (update.MpReach is { } reach)
        {
            foreach (var prefix in reach.Nlri)
            {
                _ribIn[prefix] = Received(prefix, reach.NextHop, update);
            }
        }
    }

    private static ReceivedRoute Received(IPNetwork prefix, IPAddress? nextHop, UpdateMessage update) =>
        new(prefix, nextHop, update.Origin, update.AsPath ?? [], update.MultiExitDisc, update.LocalPref, update.Communities, update.LargeCommunities);

    private void OnRouteRefresh(RouteRefreshMessage refresh)
    {
        // RFC 2918 §4: re-advertise the Adj-RIB-Out for the family.
        var ipv6 = refresh.Family == AfiSafi.Ipv6Unicast;
        Announce(_ribOut.Routes.Where(a => a.IsIpv6 == ipv6).ToList());
    }

    /// <summary>
    /// The readers' snapshot after an input. The RIB copies are made only when the RIB changed since the last one: with
    /// 10,000 routes announced, an input that leaves them alone (a keepalive, the other families) does not copy them.
    /// </summary>
    private void Publish()
    {
        var previous = _snapshot;
        var ribIn = _ribInChanged ? _ribIn.ToImmutableDictionary() : previous.AdjRibIn;
        var ribOut = _ribOut.Sent;
        _ribInChanged = false;
        _snapshot = new Snapshot(
            _fsm.State,
            _fsm.Negotiated,
            _fsm.LastError,
            _fsm.State == BgpState.Established ? _establishedAt : null,
            ribIn,
            ribOut);
    }

    private void StartConnect()
    {
        var id = ++_connectionId;
        var endpoint = new IPEndPoint(_options.PeerAddress, _options.PeerPort);
        var local = _options.LocalAddress;
        var timeout = _options.ConnectTimeout;
        var factory = _options.SocketFactory;
        var writer = _inputs;
        _ = Task.Run(async () =>
        {
            Socket socket;
            try
            {
                socket = factory?.Invoke(endpoint.AddressFamily) ?? new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                socket.NoDelay = true;
            }
            catch (Exception ex) when (ex is SocketException or IOException or UnauthorizedAccessException)
            {
                writer.TryWrite(new Input.ConnectFailed(id, ex.Message));
                return;
            }

            try
            {
                if (local is not null)
                {
                    socket.Bind(new IPEndPoint(local, 0));
                }

                using var cts = new CancellationTokenSource(timeout);
                await socket.ConnectAsync(endpoint, cts.Token).ConfigureAwait(false);
                if (!writer.TryWrite(new Input.Connected(socket, id)))
                {
                    socket.Dispose();
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                writer.TryWrite(new Input.ConnectFailed(id, ex.Message));
            }
        });
    }

    private void CloseConnection()
    {
        // A new id makes every late event from the old connection stale.
        _connectionId++;
        _connection?.Close();
        _connection = null;
    }

    /// <summary>A message for the writer: bytes to send, or a send the loop started that must finish first.</summary>
    private sealed record Outgoing(byte[]? Bytes, long Cause, Task<int>? InFlight);

    private sealed record Snapshot(
        BgpState State,
        BgpNegotiated? Negotiated,
        string? LastError,
        DateTimeOffset? EstablishedAt,
        ImmutableDictionary<IPNetwork, ReceivedRoute> AdjRibIn,
        ImmutableDictionary<IPNetwork, Advertisement> RibOut)
    {
        private ImmutableArray<Advertisement> _adjRibOut;

        /// <summary>The Adj-RIB-Out as a list, made on the first read of this snapshot (the loop publishes the immutable RIB itself).</summary>
        public ImmutableArray<Advertisement> AdjRibOut
        {
            get
            {
                if (_adjRibOut.IsDefault)
                {
                    _adjRibOut = [.. RibOut.Values];
                }

                return _adjRibOut;
            }
        }
    }

    private abstract record Input
    {
        public sealed record Fsm(BgpEvent Event) : Input;

        public sealed record Connected(Socket Socket, long ConnectionId) : Input;

        public sealed record Incoming(Socket Socket) : Input;

        public sealed record ConnectFailed(long ConnectionId, string Reason) : Input;

        public sealed record Frame(long ConnectionId, byte[] Bytes) : Input;

        public sealed record FrameError(long ConnectionId, BgpError Error) : Input;

        public sealed record Closed(long ConnectionId, string Reason) : Input;

        public sealed record SetAdvertisements(Advertisement[] Desired, TaskCompletionSource Done, long Cause) : Input;

        public sealed record Stop(string? Reason, TaskCompletionSource Done) : Input;

        public sealed record UpdateAdvertisements(IReadOnlyDictionary<IPNetwork, Advertisement> Desired, IReadOnlyCollection<IPNetwork> Changed, long Cause) : Input;

        public sealed record Refresh(TaskCompletionSource Done) : Input;
    }

    /// <summary>The FSM's actions, run on the loop.</summary>
    private sealed class Host(BgpSession session) : IBgpFsmHost
    {
        public void Connect() => session.StartConnect();

        public void Disconnect() => session.CloseConnection();

        public void Send(BgpMessage message) =>
            session.Send(message, session._fsm.Negotiated?.DecodeContext ?? BgpDecodeContext.Default);

        public void SessionEstablished(BgpNegotiated negotiated) => session.OnEstablished();

        public void SessionDown(string reason)
        {
            session._ribIn.Clear();
            session._ribInChanged = true;
            session._ribOut.Clear();
        }

        public void UpdateReceived(UpdateMessage update, BgpError? softError) => session.OnUpdate(update, softError);

        public void RouteRefreshReceived(RouteRefreshMessage routeRefresh) => session.OnRouteRefresh(routeRefresh);
    }

    /// <summary>
    /// One TCP connection: a reader task that frames messages and posts them to the loop, and a writer
    /// task that drains a send queue, so the loop never blocks on the socket. When nothing is queued or
    /// being written, the loop starts the send itself: on Linux an asynchronous send first tries to write
    /// at once, so an UPDATE leaves without a thread hop; if the kernel did not take it all, the writer
    /// waits for that send before the next message (order kept). Close flushes the queue (a final
    /// NOTIFICATION goes out) before the socket closes.
    /// </summary>
    private sealed class Connection : IDisposable
    {
        private readonly Socket _socket;
        private readonly Channel<Outgoing> _sendQueue = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
        private readonly CancellationTokenSource _cancel = new();
        private readonly BgpLatency? _latency;

        /// <summary>Messages queued or being written by the writer task: the loop (the only producer) sends directly only at 0.</summary>
        private int _queued;
        private bool _closing;

        public Connection(Socket socket, long id, Mailbox<Input> inputs, BgpLatency? latency)
        {
            _socket = socket;
            _latency = latency;
            LocalAddress = (socket.LocalEndPoint as IPEndPoint)?.Address;
            _ = Task.Run(() => ReadAsync(id, inputs));
            Closed = Task.Run(WriteAsync);
        }

        public IPAddress? LocalAddress { get; }

        public Task Closed { get; }

        /// <summary>
        /// Loop only: writes what <paramref name="writer"/> holds. Nothing queued: straight from the writer's buffer; a
        /// send that did not complete at once keeps that buffer (the writer takes a new one); behind others: a copy.
        /// </summary>
        public void Send(BgpWriter writer, long cause)
        {
            if (_closing)
            {
                return;
            }

            if (Volatile.Read(ref _queued) != 0)
            {
                Send(writer.ToArray(), cause);
            }
            else if (SendDirect(writer.WrittenMemory, cause))
            {
                writer.Detach();
            }
        }

        /// <summary>Loop only.</summary>
        public void Send(byte[] bytes, long cause)
        {
            if (_closing)
            {
                return;
            }

            if (Volatile.Read(ref _queued) == 0)
            {
                SendDirect(bytes, cause);
                return;
            }

            Interlocked.Increment(ref _queued);
            if (!_sendQueue.Writer.TryWrite(new Outgoing(bytes, cause, null)))
            {
                Interlocked.Decrement(ref _queued);
            }
        }

        /// <summary>
        /// Nothing queued or in flight (the loop is the only producer): the loop starts the send itself. Returns true when
        /// it is still in flight: <paramref name="bytes"/> must stay as they are until it completes.
        /// </summary>
        private bool SendDirect(ReadOnlyMemory<byte> bytes, long cause)
        {
            Interlocked.Increment(ref _queued);
            ValueTask<int> direct;
            try
            {
                direct = _socket.SendAsync(bytes, SocketFlags.None, _cancel.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // The reader reports the broken connection.
                Interlocked.Decrement(ref _queued);
                return false;
            }

            if (direct.IsCompletedSuccessfully)
            {
                Interlocked.Decrement(ref _queued);
                _latency?.ToSocket.RecordSince(cause);
                return false;
            }

            // Still in flight (or failed): the writer waits for it before anything queued after it.
            _sendQueue.Writer.TryWrite(new Outgoing(null, cause, direct.AsTask()));
            return true;
        }

        public void Close()
        {
            _closing = true;
            _sendQueue.Writer.TryComplete();
            try
            {
                _cancel.CancelAfter(TimeSpan.FromSeconds(5));
            }
            catch (ObjectDisposedException)
            {
            }
        }

        public void Dispose() => Close();

        private async Task WriteAsync()
        {
            try
            {
                await foreach (var outgoing in _sendQueue.Reader.ReadAllAsync(_cancel.Token).ConfigureAwait(false))
                {
                    if (outgoing.InFlight is { } inFlight)
                    {
                        await inFlight.ConfigureAwait(false);
                    }
                    else
                    {
                        await _socket.SendAsync(outgoing.Bytes!, SocketFlags.None, _cancel.Token).ConfigureAwait(false);
                    }

                    _latency?.ToSocket.RecordSince(outgoing.Cause);
                    Interlocked.Decrement(ref _queued);
                }

                _socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
            finally
            {
                _socket.Dispose();
            }
        }

        private async Task ReadAsync(long id, Mailbox<Input> inputs)
        {
            var buffer = new byte[BgpMessage.MaxLength * 4];
            var filled = 0;
            var reason = "connection closed by peer";
            try
            {
                while (true)
                {
                    var read = await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, _cancel.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    filled += read;
                    var consumed = 0;
                    while (true)
                    {
                        var length = BgpMessage.FrameLength(buffer.AsSpan(consumed, filled - consumed), out var error);
                        if (error is not null)
                        {
                            inputs.TryWrite(new Input.FrameError(id, error));
                            return;
                        }

                        if (length == 0)
                        {
                            break;
                        }

                        inputs.TryWrite(new Input.Frame(id, buffer.AsSpan(consumed, length).ToArray()));
                        consumed += length;
                    }

                    buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                    filled -= consumed;
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                reason = ex.Message;
            }

            inputs.TryWrite(new Input.Closed(id, reason));
        }
    }
}
