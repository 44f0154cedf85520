using System.Net;
using Isthmus.Mobility.Bgp.Codec;

namespace Isthmus.Mobility.Bgp.Fsm;

/// <summary>The FSM's settings for one peer.</summary>
public sealed record BgpFsmOptions
{
    public required uint LocalAs { get; init; }

    public required uint PeerAs { get; init; }

    public required IPAddress RouterId { get; init; }

    /// <summary>Our proposed hold time (RFC 4271 §10 suggests 90 s). Zero disables keepalives.</summary>
    public TimeSpan HoldTime { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>The first connect-retry interval; it doubles on every failure up to <see cref="ConnectRetryMax"/>.</summary>
    public TimeSpan ConnectRetryInitial { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan ConnectRetryMax { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>The hold timer in OpenSent (RFC 4271 §8.2.2 suggests 4 minutes).</summary>
    public TimeSpan LargeHoldTime { get; init; } = TimeSpan.FromMinutes(4);

    /// <summary>After an error, restart automatically (RFC 4271 §8.1.1 AutomaticStart with the IdleHold damping).</summary>
    public bool AutomaticRestart { get; init; } = true;

    public IReadOnlyList<AfiSafi> Families { get; init; } = [AfiSafi.Ipv4Unicast, AfiSafi.Ipv6Unicast];

    /// <summary>
    /// RFC 4271 §8.1.1 PassiveTcpEstablishment: never connect out; wait in Active for the peer's connection
    /// (which the session hands over as <see cref="BgpEvent.TcpConnectionConfirmed"/>).
    /// </summary>
    public bool Passive { get; init; }
}

/// <summary>
/// The RFC 4271 §8 finite state machine, one method per state. It is not thread-safe: one owner (the
/// session loop) feeds it events, including the timer events its own timers post back through
/// <c>post</c>. Timers come from the injected <see cref="TimeProvider"/>, so tests run in virtual time.
/// Connection collision detection (§6.8) is the session's: it owns the connections, compares the BGP
/// Identifiers and, when the peer's connection wins, dumps the current one with
/// <see cref="BgpEvent.OpenCollisionDump"/> and hands the other over as a new connection.
/// </summary>
public sealed class BgpFsm : IDisposable
{
    private readonly BgpFsmOptions _options;
    private readonly IBgpFsmHost _host;
    private readonly TimeProvider _time;
    private readonly Action<BgpEvent> _post;
    private readonly ITimer?[] _timers = new ITimer?[4];
    private readonly long[] _generations = new long[4];
    private int _failures;
    private bool _stopped = true;
    private TimeSpan _keepaliveInterval;

    public BgpFsm(BgpFsmOptions options, IBgpFsmHost host, TimeProvider time, Action<BgpEvent> post)
    {
        _options = options;
        _host = host;
        _time = time;
        _post = post;
    }

    public BgpState State { get; private set; } = BgpState.Idle;

    public BgpNegotiated? Negotiated { get; private set; }

    /// <summary>The last reason the session left Established or failed to get there.</summary>
    public string? LastError { get; private set; }

    /// <summary>The connect-retry interval after <paramref name="failures"/> failures: exponential backoff, capped.</summary>
    public TimeSpan ConnectRetryInterval(int failures)
    {
        var ticks = _options.ConnectRetryInitial.Ticks * Math.Pow(2, Math.Min(failures, 20));
        return TimeSpan.FromTicks((long)Math.Min(ticks, _options.ConnectRetryMax.Ticks));
    }

    public bool IsTimerRunning(BgpTimer timer) => _timers[(int)timer] is not null;

    public void Handle(BgpEvent e)
    {
        if (e is BgpEvent.TimerExpired expired)
        {
            // A timer that was stopped or restarted after it fired posts a stale event: drop it.
            if (expired.Generation != _generations[(int)expired.Timer] || _timers[(int)expired.Timer] is null)
            {
                return;
            }

            StopTimer(expired.Timer);
        }

        switch (State)
        {
            case BgpState.Idle:
                Idle(e);
                break;
            case BgpState.Connect:
                Connect(e);
                break;
            case BgpState.Active:
                Active(e);
                break;
            case BgpState.OpenSent:
                OpenSent(e);
                break;
            case BgpState.OpenConfirm:
                OpenConfirm(e);
                break;
            case BgpState.Established:
                Established(e);
                break;
        }
    }

    public void Dispose()
    {
        foreach (BgpTimer timer in Enum.GetValues<BgpTimer>())
        {
            StopTimer(timer);
        }
    }

    private void Idle(BgpEvent e)
    {
        switch (e)
        {
            case BgpEvent.ManualStart:
                _stopped = false;
                _failures = 0;
                StartConnecting();
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.IdleHold } when !_stopped:
                StartConnecting();
                break;
            case BgpEvent.ManualStop:
                _stopped = true;
                StopTimer(BgpTimer.IdleHold);
                break;
            default:
                // RFC 4271 §8.2.2: Idle ignores everything else.
                break;
        }
    }

    private void Connect(BgpEvent e)
    {
        switch (e)
        {
            case BgpEvent.ManualStop:
                Stop(null);
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.ConnectRetry }:
                _host.Disconnect();
                _failures++;
                StartConnecting();
                break;
            case BgpEvent.TcpConnectionConfirmed:
                StopTimer(BgpTimer.ConnectRetry);
                SendOpen();
                break;
            case BgpEvent.TcpConnectionFails:
                _failures++;
                StartTimer(BgpTimer.ConnectRetry, ConnectRetryInterval(_failures));
                State = BgpState.Active;
                break;
            default:
                GoIdle("unexpected event in Connect: " + e.GetType().Name, null);
                break;
        }
    }

    private void Active(BgpEvent e)
    {
        switch (e)
        {
            case BgpEvent.ManualStop:
                Stop(null);
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.ConnectRetry }:
                StartConnecting();
                break;
            case BgpEvent.TcpConnectionConfirmed:
                StopTimer(BgpTimer.ConnectRetry);
                SendOpen();
                break;
            case BgpEvent.TcpConnectionFails:
                break;
            default:
                GoIdle("unexpected event in Active: " + e.GetType().Name, null);
                break;
        }
    }

    private void OpenSent(BgpEvent e)
    {
        switch (e)
        {
            case BgpEvent.ManualStop stop:
                Stop(stop.Reason);
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.Hold }:
                GoIdle("hold timer expired in OpenSent", new NotificationMessage(BgpErrorCode.HoldTimerExpired, 0, []));
                break;
            case BgpEvent.TcpConnectionFails fails:
                // RFC 4271 §8.2.2: close, restart the connect-retry timer, go to Active.
                _host.Disconnect();
                StopTimer(BgpTimer.Hold);
                _failures++;
                LastError = fails.Reason;
                StartTimer(BgpTimer.ConnectRetry, ConnectRetryInterval(_failures));
                State = BgpState.Active;
                break;
            case BgpEvent.OpenReceived open:
                ReceiveOpen(open.Open);
                break;
            case BgpEvent.OpenCollisionDump:
                DumpForCollision();
                break;
            case BgpEvent.MessageError error:
                GoIdle("bad message: " + error.Error, error.Error.ToNotification());
                break;
            case BgpEvent.NotificationReceived notification:
                GoIdle(Describe(notification.Notification), null);
                break;
            default:
                // RFC 6608: Unexpected Message in OpenSent.
                GoIdle("unexpected message in OpenSent", new NotificationMessage(BgpErrorCode.FiniteStateMachine, 1, []));
                break;
        }
    }

    private void OpenConfirm(BgpEvent e)
    {
        switch (e)
        {
            case BgpEvent.ManualStop stop:
                Stop(stop.Reason);
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.Hold }:
                GoIdle("hold timer expired in OpenConfirm", new NotificationMessage(BgpErrorCode.HoldTimerExpired, 0, []));
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.Keepalive }:
                SendKeepalive();
                break;
            case BgpEvent.KeepaliveReceived:
                RestartHoldTimer();
                _failures = 0;
                State = BgpState.Established;
                _host.SessionEstablished(Negotiated!);
                break;
            case BgpEvent.TcpConnectionFails fails:
                GoIdle("connection lost in OpenConfirm: " + fails.Reason, null);
                break;
            case BgpEvent.OpenCollisionDump:
                DumpForCollision();
                break;
            case BgpEvent.MessageError error:
                GoIdle("bad message: " + error.Error, error.Error.ToNotification());
                break;
            case BgpEvent.NotificationReceived notification:
                GoIdle(Describe(notification.Notification), null);
                break;
            default:
                GoIdle("unexpected message in OpenConfirm", new NotificationMessage(BgpErrorCode.FiniteStateMachine, 2, []));
                break;
        }
    }

    private void Established(BgpEvent e)
    {
        switch (e)
        {
            case BgpEvent.ManualStop stop:
                Stop(stop.Reason);
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.Hold }:
                GoIdle("hold timer expired", new NotificationMessage(BgpErrorCode.HoldTimerExpired, 0, []));
                break;
            case BgpEvent.TimerExpired { Timer: BgpTimer.Keepalive }:
                SendKeepalive();
                break;
            case BgpEvent.KeepaliveReceived:
                RestartHoldTimer();
                break;
            case BgpEvent.UpdateReceived update:
                RestartHoldTimer();
                _host.UpdateReceived(update.Update, update.SoftError);
                break;
            case BgpEvent.RouteRefreshReceived refresh:
                RestartHoldTimer();
                _host.RouteRefreshReceived(refresh.RouteRefresh);
                break;
            case BgpEvent.TcpConnectionFails fails:
                GoIdle("connection lost: " + fails.Reason, null);
                break;
            case BgpEvent.MessageError error:
                GoIdle("bad message: " + error.Error, error.Error.ToNotification());
                break;
            case BgpEvent.NotificationReceived notification:
                GoIdle(Describe(notification.Notification), null);
                break;
            default:
                GoIdle("unexpected message in Established", new NotificationMessage(BgpErrorCode.FiniteStateMachine, 3, []));
                break;
        }
    }

    private void StartConnecting()
    {
        StartTimer(BgpTimer.ConnectRetry, ConnectRetryInterval(_failures));
        if (_options.Passive)
        {
            // Passive: Active is where the FSM listens (RFC 4271 §8.2.2, ManualStart_with_PassiveTcpEstablishment).
            State = BgpState.Active;
            return;
        }

        State = BgpState.Connect;
        _host.Connect();
    }

    /// <summary>
    /// RFC 4271 §6.8 / event 23: the connection in OpenSent or OpenConfirm lost a collision. Cease /
    /// Connection Collision Resolution (RFC 4486) goes out on it, it is closed, and the FSM waits in Active
    /// for the connection that won (handed over next). Not a failure: no backoff.
    /// </summary>
    private void DumpForCollision()
    {
        _host.Send(new NotificationMessage(BgpErrorCode.Cease, BgpSubcode.ConnectionCollisionResolution, []));
        StopTimer(BgpTimer.Hold);
        StopTimer(BgpTimer.Keepalive);
        _host.Disconnect();
        Negotiated = null;
        StartTimer(BgpTimer.ConnectRetry, ConnectRetryInterval(_failures));
        State = BgpState.Active;
    }

    private void SendOpen()
    {
        _host.Send(new OpenMessage
        {
            As = _options.LocalAs,
            HoldTime = (ushort)_options.HoldTime.TotalSeconds,
            BgpIdentifier = _options.RouterId,
            Multiprotocol = _options.Families,
            RouteRefresh = true,
            FourOctetAs = true,
        });
        StartTimer(BgpTimer.Hold, _options.LargeHoldTime);
        State = BgpState.OpenSent;
    }

    private void ReceiveOpen(OpenMessage open)
    {
        if (open.As != _options.PeerAs)
        {
            GoIdle($"peer AS {open.As}, expected {_options.PeerAs}", new NotificationMessage(BgpErrorCode.OpenMessage, BgpSubcode.BadPeerAs, []));
            return;
        }

        // RFC 4271 §4.2: the hold time is the smaller of the two; zero means no keepalives at all.
        var hold = (ushort)Math.Min(open.HoldTime, (ushort)_options.HoldTime.TotalSeconds);
        var families = _options.Families.Intersect(open.Families).ToArray();
        Negotiated = new BgpNegotiated(open, hold, open.FourOctetAs, open.RouteRefresh, families);
        _host.Send(KeepaliveMessage.Instance);
        if (hold == 0)
        {
            StopTimer(BgpTimer.Hold);
            _keepaliveInterval = TimeSpan.Zero;
        }
        else
        {
            _keepaliveInterval = TimeSpan.FromSeconds(hold / 3.0);
            StartTimer(BgpTimer.Hold, TimeSpan.FromSeconds(hold));
            StartTimer(BgpTimer.Keepalive, _keepaliveInterval);
        }

        State = BgpState.OpenConfirm;
    }

    private void SendKeepalive()
    {
        _host.Send(KeepaliveMessage.Instance);
        if (_keepaliveInterval > TimeSpan.Zero)
        {
            StartTimer(BgpTimer.Keepalive, _keepaliveInterval);
        }
    }

    private void RestartHoldTimer()
    {
        if (Negotiated is { HoldTime: > 0 } negotiated)
        {
            StartTimer(BgpTimer.Hold, TimeSpan.FromSeconds(negotiated.HoldTime));
        }
    }

    private void Stop(string? reason)
    {
        _stopped = true;
        if (State is BgpState.OpenSent or BgpState.OpenConfirm or BgpState.Established)
        {
            _host.Send(NotificationMessage.AdministrativeShutdown(reason));
        }

        LeaveToIdle("administrative shutdown");
    }

    private void GoIdle(string reason, NotificationMessage? notification)
    {
        if (notification is not null)
        {
            _host.Send(notification);
        }

        _failures++;
        LeaveToIdle(reason);

        // RFC 4271 §8.1.1: restart automatically, damped by the backoff.
        if (_options.AutomaticRestart && !_stopped)
        {
            StartTimer(BgpTimer.IdleHold, ConnectRetryInterval(_failures));
        }
    }

    private void LeaveToIdle(string reason)
    {
        var wasUp = State == BgpState.Established;
        foreach (BgpTimer timer in Enum.GetValues<BgpTimer>())
        {
            StopTimer(timer);
        }

        _host.Disconnect();
        LastError = reason;
        Negotiated = null;
        State = BgpState.Idle;
        if (wasUp)
        {
            _host.SessionDown(reason);
        }
    }

    private void StartTimer(BgpTimer timer, TimeSpan due)
    {
        StopTimer(timer);
        var index = (int)timer;
        var generation = ++_generations[index];
        _timers[index] = _time.CreateTimer(
            static state =>
            {
                var (fsm, timer, generation) = ((BgpFsm, BgpTimer, long))state!;
                fsm._post(new BgpEvent.TimerExpired(timer, generation));
            },
            (this, timer, generation),
            due,
            Timeout.InfiniteTimeSpan);
    }

    private void StopTimer(BgpTimer timer)
    {
        var index = (int)timer;
        _timers[index]?.Dispose();
        _timers[index] = null;
    }

    private static string Describe(NotificationMessage notification) =>
        $"NOTIFICATION from peer {notification.Code}/{notification.Subcode}"
        + (notification.ShutdownMessage is { } text ? ": " + text : string.Empty);
}
