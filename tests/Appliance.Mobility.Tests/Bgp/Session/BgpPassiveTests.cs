using System.Net;
using System.Net.Sockets;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Tests.Support;

namespace Isthmus.Mobility.Tests.Bgp.Session;

/// <summary>The passive side (a listener hands the peer's connection to its session) and RFC 4271 §6.8 collision detection, over loopback TCP.</summary>
public class BgpPassiveTests
{
    private const string LocalId = "192.0.2.1";

    private static BgpSession NewSession(int port, BgpConnectMode mode) => new(
        new BgpPeerOptions
        {
            PeerAddress = IPAddress.Loopback,
            PeerPort = port,
            Mode = mode,
            Fsm = new BgpFsmOptions
            {
                LocalAs = 65001,
                PeerAs = 65002,
                RouterId = IPAddress.Parse(LocalId),
                HoldTime = TimeSpan.FromSeconds(30),
                ConnectRetryInitial = TimeSpan.FromSeconds(30),
            },
        },
        TimeProvider.System);

    private static BgpListener Listen(Func<IPAddress, BgpSession?> sessionFor) =>
        new(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp), new IPEndPoint(IPAddress.Loopback, 0), sessionFor);

    private static async Task Eventually(Func<bool> condition)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition());
    }

    private static void AssertCollisionCease(BgpMessage message)
    {
        var notification = Assert.IsType<NotificationMessage>(message);
        Assert.Equal((BgpErrorCode.Cease, BgpSubcode.ConnectionCollisionResolution), (notification.Code, notification.Subcode));
    }

    [Fact]
    public void The_higher_bgp_identifier_wins_compared_as_an_unsigned_integer()
    {
        Assert.True(BgpSession.LocalWinsCollision(IPAddress.Parse("192.0.2.1"), IPAddress.Parse("10.0.0.1")));
        Assert.False(BgpSession.LocalWinsCollision(IPAddress.Parse("10.0.0.1"), IPAddress.Parse("192.0.2.1")));
        Assert.True(BgpSession.LocalWinsCollision(IPAddress.Parse("255.0.0.0"), IPAddress.Parse("127.255.255.255"))); // not signed
        Assert.False(BgpSession.LocalWinsCollision(IPAddress.Parse("192.0.2.1"), IPAddress.Parse("192.0.2.1")));
    }

    [Fact]
    public async Task A_passive_session_never_connects_and_comes_up_on_the_peers_connection_while_strangers_are_refused()
    {
        await using var unused = new FakePeer(); // where an active session would connect
        await using var session = NewSession(unused.Port, BgpConnectMode.Passive);
        await using var listener = Listen(address => IPAddress.IsLoopback(address) ? session : null);
        await using var stranger = Listen(_ => null);
        session.Start();
        await Eventually(() => session.State == BgpState.Active);

        await using var peer = new FakePeer();
        await peer.ConnectAsync(listener.Port);
        var open = await peer.OpenAsync(65002);

        Assert.Equal(65001u, open.As);
        await Eventually(() => session.State == BgpState.Established);
        Assert.Equal((1L, 0L), (listener.Accepted, listener.Refused));

        using var knocking = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await knocking.ConnectAsync(new IPEndPoint(IPAddress.Loopback, stranger.Port));
        Assert.Equal(0, await knocking.ReceiveAsync(new byte[19], SocketFlags.None)); // closed at once
        Assert.Equal(1L, stranger.Refused);
    }

    [Fact]
    public async Task In_a_collision_with_a_higher_peer_identifier_our_connection_is_dumped_and_the_peers_connection_comes_up()
    {
        await using var ours = new FakePeer();
        await using var session = NewSession(ours.Port, BgpConnectMode.Both);
        await using var listener = Listen(_ => session);
        session.Start();
        await ours.AcceptAsync();
        await ours.SendOpenAsync(65002, identifier: "192.0.2.200");
        Assert.IsType<KeepaliveMessage>(await ours.NextAsync()); // the speaker is in OpenConfirm on its connection
        await Eventually(() => session.State == BgpState.OpenConfirm); // published after the KEEPALIVE is written

        await using var theirs = new FakePeer();
        await theirs.ConnectAsync(listener.Port);

        AssertCollisionCease(await ours.NextAsync());
        await theirs.OpenAsync(65002, identifier: "192.0.2.200");
        await Eventually(() => session.State == BgpState.Established);
        Assert.Equal((0, 1), session.Collisions);
    }

    [Fact]
    public async Task In_a_collision_with_a_lower_peer_identifier_the_peers_connection_is_refused_and_ours_comes_up()
    {
        await using var ours = new FakePeer();
        await using var session = NewSession(ours.Port, BgpConnectMode.Both);
        await using var listener = Listen(_ => session);
        session.Start();
        await ours.AcceptAsync();
        await ours.SendOpenAsync(65002, identifier: "10.0.0.1");
        Assert.IsType<KeepaliveMessage>(await ours.NextAsync());

        await using var theirs = new FakePeer();
        await theirs.ConnectAsync(listener.Port);

        AssertCollisionCease(await theirs.NextAsync());
        await ours.SendAsync(KeepaliveMessage.Instance);
        await Eventually(() => session.State == BgpState.Established);
        Assert.Equal((1, 0), session.Collisions);

        // Established: a further connection from the peer always loses (RFC 4271 §6.8).
        await using var late = new FakePeer();
        await late.ConnectAsync(listener.Port);
        AssertCollisionCease(await late.NextAsync());
        Assert.Equal(BgpState.Established, session.State);
        Assert.Equal((2, 0), session.Collisions);
    }

    [Fact]
    public async Task A_peer_connection_arriving_while_ours_waits_for_the_open_is_decided_once_the_peers_identifier_is_known()
    {
        await using var ours = new FakePeer();
        await using var session = NewSession(ours.Port, BgpConnectMode.Both);
        await using var listener = Listen(_ => session);
        session.Start();
        await ours.AcceptAsync();
        await Eventually(() => session.State == BgpState.OpenSent);

        await using var theirs = new FakePeer();
        await theirs.ConnectAsync(listener.Port);
        await Eventually(() => listener.Accepted == 1);
        Assert.Equal(BgpState.OpenSent, session.State); // held: nothing decided yet

        await ours.SendOpenAsync(65002, identifier: "192.0.2.200"); // the peer's Identifier is higher: its connection wins
        Assert.IsType<KeepaliveMessage>(await ours.NextAsync());
        AssertCollisionCease(await ours.NextAsync());
        await theirs.OpenAsync(65002, identifier: "192.0.2.200");
        await Eventually(() => session.State == BgpState.Established);
        Assert.Equal((0, 1), session.Collisions);
    }

    [Fact]
    public async Task An_active_only_session_closes_connections_from_the_peer()
    {
        await using var ours = new FakePeer();
        await using var session = NewSession(ours.Port, BgpConnectMode.Active);
        await using var listener = Listen(_ => session);
        session.Start();
        await ours.AcceptAndOpenAsync(65002);
        await Eventually(() => session.State == BgpState.Established);

        using var knocking = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await knocking.ConnectAsync(new IPEndPoint(IPAddress.Loopback, listener.Port));
        Assert.Equal(0, await knocking.ReceiveAsync(new byte[19], SocketFlags.None));
        Assert.Equal(BgpState.Established, session.State);
        Assert.Equal((0, 0), session.Collisions);
    }
}
