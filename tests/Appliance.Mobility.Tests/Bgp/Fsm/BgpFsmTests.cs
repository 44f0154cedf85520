using System.Net;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Tests.Support;

namespace Isthmus.Mobility.Tests.Bgp.Fsm;

/// <summary>RFC 4271 §8 transitions and timers, in virtual time.</summary>
public sealed class BgpFsmTests : IDisposable
{
    private readonly ManualTimeProvider _time = new();
    private readonly RecordingHost _host = new();
    private readonly BgpFsm _fsm;

    public BgpFsmTests()
    {
        BgpFsm? fsm = null;
        _fsm = fsm = new BgpFsm(
            new BgpFsmOptions
            {
                LocalAs = 65001,
                PeerAs = 65002,
                RouterId = IPAddress.Parse("192.0.2.1"),
                HoldTime = TimeSpan.FromSeconds(30),
                ConnectRetryInitial = TimeSpan.FromSeconds(2),
                ConnectRetryMax = TimeSpan.FromSeconds(60),
            },
            _host,
            _time,
            e => fsm!.Handle(e));
    }

    public void Dispose() => _fsm.Dispose();

    private static OpenMessage PeerOpen(uint asn = 65002, ushort hold = 90) => new()
    {
        As = asn,
        HoldTime = hold,
        BgpIdentifier = IPAddress.Parse("192.0.2.2"),
        Multiprotocol = [AfiSafi.Ipv4Unicast],
        RouteRefresh = true,
        FourOctetAs = true,
    };

    private void Establish(ushort peerHold = 90)
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
        _fsm.Handle(new BgpEvent.OpenReceived(PeerOpen(hold: peerHold)));
        _fsm.Handle(new BgpEvent.KeepaliveReceived());
        Assert.Equal(BgpState.Established, _fsm.State);
        _host.Sent.Clear();
    }

    [Fact]
    public void Manual_start_connects_with_the_connect_retry_timer_running()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        Assert.Equal(BgpState.Connect, _fsm.State);
        Assert.Equal(1, _host.Connects);
        Assert.True(_fsm.IsTimerRunning(BgpTimer.ConnectRetry));
    }

    [Fact]
    public void Open_exchange_reaches_established_and_negotiates()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
        Assert.Equal(BgpState.OpenSent, _fsm.State);
        var open = Assert.IsType<OpenMessage>(Assert.Single(_host.Sent));
        Assert.Equal((65001u, (ushort)30, true, true), (open.As, open.HoldTime, open.FourOctetAs, open.RouteRefresh));
        Assert.Equal([AfiSafi.Ipv4Unicast, AfiSafi.Ipv6Unicast], open.Multiprotocol);
        Assert.False(_fsm.IsTimerRunning(BgpTimer.ConnectRetry));

        _fsm.Handle(new BgpEvent.OpenReceived(PeerOpen()));
        Assert.Equal(BgpState.OpenConfirm, _fsm.State);
        Assert.IsType<KeepaliveMessage>(_host.Sent[^1]);

        _fsm.Handle(new BgpEvent.KeepaliveReceived());
        Assert.Equal(BgpState.Established, _fsm.State);
        Assert.Equal(1, _host.Established);
        Assert.Equal((ushort)30, _fsm.Negotiated!.HoldTime);
        Assert.Equal([AfiSafi.Ipv4Unicast], _fsm.Negotiated.Families);
    }

    [Fact]
    public void Keepalives_go_out_every_third_of_the_hold_time()
    {
        Establish();
        _time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.Empty(_host.Sent);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.IsType<KeepaliveMessage>(Assert.Single(_host.Sent));
        _fsm.Handle(new BgpEvent.KeepaliveReceived());
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(2, _host.Sent.Count);
    }

    [Fact]
    public void Hold_timer_expiry_sends_notification_and_restarts_after_backoff()
    {
        Establish();
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(BgpState.Established, _fsm.State);
        _time.Advance(TimeSpan.FromSeconds(1));

        var notification = Assert.IsType<NotificationMessage>(_host.Sent[^1]);
        Assert.Equal(BgpErrorCode.HoldTimerExpired, notification.Code);
        Assert.Equal(BgpState.Idle, _fsm.State);
        Assert.Equal(1, _host.Downs);
        Assert.True(_host.Disconnects > 0);

        // Automatic restart, damped: one failure means 4 s in Idle.
        _time.Advance(TimeSpan.FromSeconds(3.9));
        Assert.Equal(BgpState.Idle, _fsm.State);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(BgpState.Connect, _fsm.State);
        Assert.Equal(2, _host.Connects);
    }

    [Fact]
    public void Traffic_from_the_peer_restarts_the_hold_timer()
    {
        Establish();
        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(20));
            _fsm.Handle(i % 2 == 0 ? new BgpEvent.KeepaliveReceived() : new BgpEvent.UpdateReceived(new UpdateMessage(), null));
        }

        Assert.Equal(BgpState.Established, _fsm.State);
        Assert.Equal(5, _host.Updates);
    }

    [Fact]
    public void Connect_retry_backs_off_exponentially_up_to_the_cap()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionFails("refused"));
        Assert.Equal(BgpState.Active, _fsm.State);
        _time.Advance(TimeSpan.FromSeconds(3.9));
        Assert.Equal(BgpState.Active, _fsm.State);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(BgpState.Connect, _fsm.State);
        Assert.Equal(2, _host.Connects);

        _fsm.Handle(new BgpEvent.TcpConnectionFails("refused"));
        _time.Advance(TimeSpan.FromSeconds(7.9));
        Assert.Equal(BgpState.Active, _fsm.State);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(3, _host.Connects);

        Assert.Equal(TimeSpan.FromSeconds(2), _fsm.ConnectRetryInterval(0));
        Assert.Equal(TimeSpan.FromSeconds(32), _fsm.ConnectRetryInterval(4));
        Assert.Equal(TimeSpan.FromSeconds(60), _fsm.ConnectRetryInterval(5));
        Assert.Equal(TimeSpan.FromSeconds(60), _fsm.ConnectRetryInterval(1000));
    }

    [Fact]
    public void Connect_retry_expiry_in_connect_drops_the_attempt_and_tries_again()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(BgpState.Connect, _fsm.State);
        Assert.Equal(2, _host.Connects);
        Assert.Equal(1, _host.Disconnects);
    }

    [Fact]
    public void Wrong_peer_as_is_a_bad_peer_as_notification()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
        _fsm.Handle(new BgpEvent.OpenReceived(PeerOpen(asn: 64999)));
        var notification = Assert.IsType<NotificationMessage>(_host.Sent[^1]);
        Assert.Equal((BgpErrorCode.OpenMessage, BgpSubcode.BadPeerAs), (notification.Code, notification.Subcode));
        Assert.Equal(BgpState.Idle, _fsm.State);
    }

    [Fact]
    public void Manual_stop_sends_administrative_shutdown_and_stays_idle()
    {
        Establish();
        _fsm.Handle(new BgpEvent.ManualStop("appliance moving"));
        var notification = Assert.IsType<NotificationMessage>(Assert.Single(_host.Sent));
        Assert.Equal((BgpErrorCode.Cease, BgpSubcode.AdministrativeShutdown), (notification.Code, notification.Subcode));
        Assert.Equal("appliance moving", notification.ShutdownMessage);
        Assert.Equal(BgpState.Idle, _fsm.State);
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(BgpState.Idle, _fsm.State);
        Assert.Equal(1, _host.Connects);
    }

    [Fact]
    public void Unexpected_message_in_open_sent_is_an_fsm_error()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
        _fsm.Handle(new BgpEvent.UpdateReceived(new UpdateMessage(), null));
        var notification = Assert.IsType<NotificationMessage>(_host.Sent[^1]);
        Assert.Equal((BgpErrorCode.FiniteStateMachine, (byte)1), (notification.Code, notification.Subcode));
        Assert.Equal(BgpState.Idle, _fsm.State);
    }

    [Fact]
    public void Decode_error_sends_its_notification()
    {
        Establish();
        _fsm.Handle(new BgpEvent.MessageError(BgpError.Reset(BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList)));
        var notification = Assert.IsType<NotificationMessage>(Assert.Single(_host.Sent));
        Assert.Equal((BgpErrorCode.UpdateMessage, BgpSubcode.MalformedAttributeList), (notification.Code, notification.Subcode));
        Assert.Equal(BgpState.Idle, _fsm.State);
        Assert.Equal(1, _host.Downs);
    }

    [Fact]
    public void Notification_from_the_peer_closes_without_answering()
    {
        Establish();
        _fsm.Handle(new BgpEvent.NotificationReceived(NotificationMessage.AdministrativeShutdown("bye")));
        Assert.Empty(_host.Sent);
        Assert.Equal(BgpState.Idle, _fsm.State);
        Assert.Contains("bye", _fsm.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public void Hold_time_zero_means_no_keepalives_and_no_hold_timer()
    {
        Establish(peerHold: 0);
        Assert.False(_fsm.IsTimerRunning(BgpTimer.Hold));
        Assert.False(_fsm.IsTimerRunning(BgpTimer.Keepalive));
        _time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(BgpState.Established, _fsm.State);
        Assert.Empty(_host.Sent);
    }

    [Fact]
    public void Open_sent_gives_up_after_the_large_hold_time()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
        _time.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(BgpErrorCode.HoldTimerExpired, Assert.IsType<NotificationMessage>(_host.Sent[^1]).Code);
        Assert.Equal(BgpState.Idle, _fsm.State);
    }

    [Fact]
    public void Connection_loss_in_open_sent_goes_to_active()
    {
        _fsm.Handle(new BgpEvent.ManualStart());
        _fsm.Handle(new BgpEvent.TcpConnectionConfirmed());
        _fsm.Handle(new BgpEvent.TcpConnectionFails("reset"));
        Assert.Equal(BgpState.Active, _fsm.State);
        Assert.True(_fsm.IsTimerRunning(BgpTimer.ConnectRetry));
        Assert.False(_fsm.IsTimerRunning(BgpTimer.Hold));
    }

    private sealed class RecordingHost : IBgpFsmHost
    {
        public List<BgpMessage> Sent { get; } = [];

        public int Connects { get; private set; }

        public int Disconnects { get; private set; }

        public int Established { get; private set; }

        public int Downs { get; private set; }

        public int Updates { get; private set; }

        public void Connect() => Connects++;

        public void Disconnect() => Disconnects++;

        public void Send(BgpMessage message) => Sent.Add(message);

        public void SessionEstablished(BgpNegotiated negotiated) => Established++;

        public void SessionDown(string reason) => Downs++;

        public void UpdateReceived(UpdateMessage update, BgpError? softError) => Updates++;

        public void RouteRefreshReceived(RouteRefreshMessage routeRefresh)
        {
        }
    }
}
