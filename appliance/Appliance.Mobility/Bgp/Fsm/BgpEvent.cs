using Isthmus.Mobility.Bgp.Codec;

namespace Isthmus.Mobility.Bgp.Fsm;

/// <summary>BGP FSM states (RFC 4271 §8.2.2).</summary>
public enum BgpState
{
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// <summary>The FSM's timers (RFC 4271 §8.1.3, §10). IdleHold is the automatic-restart damping timer (§8.1.1).</summary>
public enum BgpTimer
{
    ConnectRetry,
    Hold,
    Keepalive,
    IdleHold,
}

/// <summary>FSM input events (RFC 4271 §8.1), the ones this speaker generates.</summary>
public abstract record BgpEvent
{
    /// <summary>Event 1, ManualStart.</summary>
    public sealed record ManualStart : BgpEvent;

    /// <summary>Event 2, ManualStop; the text goes into the RFC 8203 shutdown communication.</summary>
    public sealed record ManualStop(string? Reason) : BgpEvent;

    /// <summary>Events 3 (AutomaticStart via IdleHold), 9, 10 and 11: a timer fired. Stale generations are ignored.</summary>
    public sealed record TimerExpired(BgpTimer Timer, long Generation) : BgpEvent;

    /// <summary>Events 16/17: the TCP connection is up.</summary>
    public sealed record TcpConnectionConfirmed : BgpEvent;

    /// <summary>Event 18, TcpConnectionFails (connect failed, or the peer closed).</summary>
    public sealed record TcpConnectionFails(string? Reason) : BgpEvent;

    /// <summary>Event 19, BGPOpen.</summary>
    public sealed record OpenReceived(OpenMessage Open) : BgpEvent;

    /// <summary>Events 21/22/28: a message failed to decode with a session reset error.</summary>
    public sealed record MessageError(BgpError Error) : BgpEvent;

    /// <summary>Events 24/25, NotifMsg.</summary>
    public sealed record NotificationReceived(NotificationMessage Notification) : BgpEvent;

    /// <summary>Event 23, OpenCollisionDump: this connection lost a collision (RFC 4271 §6.8); another one takes over.</summary>
    public sealed record OpenCollisionDump : BgpEvent;

    /// <summary>Event 26, KeepAliveMsg.</summary>
    public sealed record KeepaliveReceived : BgpEvent;

    /// <summary>Event 27, UpdateMsg (possibly with an RFC 7606 soft error).</summary>
    public sealed record UpdateReceived(UpdateMessage Update, BgpError? SoftError) : BgpEvent;

    /// <summary>ROUTE-REFRESH (RFC 2918), only valid in Established.</summary>
    public sealed record RouteRefreshReceived(RouteRefreshMessage RouteRefresh) : BgpEvent;
}
