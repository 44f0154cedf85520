using System.Net;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Tests.Support;
using Isthmus.Mobility.Threading;

namespace Isthmus.Mobility.Tests.Bgp.Session;

/// <summary>The session loop over real loopback TCP against a scripted peer.</summary>
public class BgpSessionTests
{
    private static BgpSession NewSession(int port, EventLoop? loop = null) => new(
        new BgpPeerOptions
        {
            Loop = loop,
            PeerAddress = IPAddress.Loopback,
            PeerPort = port,
            NextHopIpv6 = IPAddress.Parse("2001:db8::fe"),
            Fsm = new BgpFsmOptions
            {
                LocalAs = 4_200_000_001,
                PeerAs = 65002,
                RouterId = IPAddress.Parse("192.0.2.1"),
                HoldTime = TimeSpan.FromSeconds(30),
                ConnectRetryInitial = TimeSpan.FromSeconds(3),
            },
        },
        TimeProvider.System);

    private static async Task Eventually(Func<bool> condition)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition());
    }

    [Fact]
    public async Task An_incremental_update_sends_only_the_changed_prefixes_and_a_new_session_gets_the_whole_set()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);

        // Before the session is up: the desired set is kept, and the first UPDATE after OPEN carries all of it.
        var routes = Enumerable.Range(1, 300).Select(i => new Advertisement(IPNetwork.Parse($"10.8.{i >> 8}.{i & 0xFF}/32"))).ToDictionary(a => a.Prefix);
        session.UpdateAdvertisements(routes, [.. routes.Keys]);
        session.Start();
        await peer.AcceptAndOpenAsync(65002);
        var initial = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal(routes.Keys.Select(p => p.ToString()).Order(), initial.Nlri.Select(p => p.ToString()).Order());
        await Eventually(() => session.AdjRibOut.Count == 300);

        // One move among 300 routes: one UPDATE with that /32 alone.
        var moved = new Advertisement(IPNetwork.Parse("10.9.0.1/32")) { Communities = [new Community(65001, 100)] };
        var next = new Dictionary<IPNetwork, Advertisement>(routes) { [moved.Prefix] = moved };
        session.UpdateAdvertisements(next, [moved.Prefix]);
        var announce = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal([moved.Prefix], announce.Nlri);
        Assert.Equal([new Community(65001, 100)], announce.Communities);

        // Moved away: its withdrawal alone (an unchanged prefix listed as changed sends nothing).
        var gone = new Dictionary<IPNetwork, Advertisement>(routes);
        session.UpdateAdvertisements(gone, [moved.Prefix, routes.Keys.First()]);
        var withdraw = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal([moved.Prefix], withdraw.Withdrawn);
        Assert.Empty(withdraw.Nlri);
        await Eventually(() => session.AdjRibOut.Count == 300 && !session.AdjRibOut.Any(a => a.Prefix == moved.Prefix));
    }

    /// <summary>
    /// A move's reconciliation and UPDATE on the session's loop (bytes, not time): 1,000 routes announced, then /32s
    /// announced and withdrawn one at a time; the loop thread's allocations per change stay small and do not grow with
    /// the routes (no copy of the RIB, no per-move dictionary, list or byte array).
    /// </summary>
    [Fact]
    public async Task A_move_allocates_a_bounded_amount_on_the_session_loop_whatever_the_number_of_routes()
    {
        using var loop = new EventLoop("test-bgp", LoopPriority.Normal);
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port, loop);
        var routes = Enumerable.Range(1, 1000).Select(i => new Advertisement(IPNetwork.Parse($"10.8.{i >> 8}.{i & 0xFF}/32"))).ToDictionary(a => a.Prefix);
        session.UpdateAdvertisements(routes, [.. routes.Keys]);
        session.Start();
        await peer.AcceptAndOpenAsync(65002);
        for (var initial = 0; initial < 1000;)
        {
            initial += Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true)).Nlri.Count; // 400 per UPDATE
        }

        var communities = new[] { new Community(65001, 100) };
        async Task Move(int i)
        {
            var host = new Advertisement(IPNetwork.Parse($"10.9.{i >> 8}.{i & 0xFF}/32")) { Communities = communities };
            session.UpdateAdvertisements(new Dictionary<IPNetwork, Advertisement>(routes) { [host.Prefix] = host }, [host.Prefix]);
            Assert.Equal([host.Prefix], Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true)).Nlri);
            session.UpdateAdvertisements(routes, [host.Prefix]);
            Assert.Equal([host.Prefix], Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true)).Withdrawn);
        }

        for (var i = 0; i < 20; i++)
        {
            await Move(i);
        }

        await Eventually(() => session.AdjRibOut.Count == 1000);
        var before = loop.AllocatedBytes;
        const int Moves = 50;
        for (var i = 20; i < 20 + Moves; i++)
        {
            await Move(i);
        }

        // Two changes per move (announce, withdraw); the RIB's list view made by the reads above is not on the loop.
        var perChange = (loop.AllocatedBytes - before) / (2 * Moves);
        Assert.True(perChange < 3_000, $"{perChange} bytes per change on the loop");
    }

    [Fact]
    public async Task Announces_reconciles_learns_and_shuts_down_gracefully()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);
        await session.SetAdvertisementsAsync([]);
        session.Start();
        var open = await peer.AcceptAndOpenAsync(65002);
        Assert.Equal(4_200_000_001u, open.As);
        await Eventually(() => session.State == BgpState.Established);

        var host = new Advertisement(IPNetwork.Parse("10.9.0.7/32"))
        {
            Communities = [new Community(65001, 100)],
            LargeCommunities = [new LargeCommunity(4_200_000_001, 1, 2)],
        };
        var host6 = new Advertisement(IPNetwork.Parse("2001:db8:9::7/128"));
        await session.SetAdvertisementsAsync([host, host6]);

        var v4 = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal([host.Prefix], v4.Nlri);
        Assert.Equal(IPAddress.Loopback, v4.NextHop);
        Assert.Equal([new Community(65001, 100)], v4.Communities);
        Assert.Equal([new LargeCommunity(4_200_000_001, 1, 2)], v4.LargeCommunities);
        Assert.Equal([4_200_000_001u], Assert.Single(v4.AsPath!).Asns);
        var v6 = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal([host6.Prefix], v6.MpReach!.Nlri);
        Assert.Equal(IPAddress.Parse("2001:db8::fe"), v6.MpReach.NextHop);

        // The same set again sends nothing; dropping the /32 withdraws it.
        await session.SetAdvertisementsAsync([host, host6]);
        await session.SetAdvertisementsAsync([host6]);
        var withdraw = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal([host.Prefix], withdraw.Withdrawn);
        Assert.Equal([host6], session.AdjRibOut);

        // Routes from the peer land in the Adj-RIB-In; a treat-as-withdraw UPDATE removes them, session up.
        await peer.SendAsync(new UpdateMessage
        {
            Origin = BgpOrigin.Igp,
            AsPath = [new AsPathSegment(AsPathSegmentType.AsSequence, [65002])],
            NextHop = IPAddress.Parse("192.0.2.200"),
            Communities = [new Community(65002, 5)],
            Nlri = [IPNetwork.Parse("198.51.100.0/24")],
        });
        await Eventually(() => session.AdjRibIn.ContainsKey(IPNetwork.Parse("198.51.100.0/24")));
        Assert.Equal([new Community(65002, 5)], session.AdjRibIn[IPNetwork.Parse("198.51.100.0/24")].Communities);
        await peer.SendAsync(BgpFrames.Update([], [.. BgpFrames.Origin(9), .. BgpFrames.AsPath(65002), .. BgpFrames.NextHop("192.0.2.200")], BgpFrames.Prefix("198.51.100.0/24")));
        await Eventually(() => session.AdjRibIn.Count == 0);
        Assert.Equal(BgpState.Established, session.State);
        Assert.Equal(1, session.TreatAsWithdrawCount);

        await session.StopAsync("moving to site B");
        var cease = Assert.IsType<NotificationMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal((BgpErrorCode.Cease, BgpSubcode.AdministrativeShutdown), (cease.Code, cease.Subcode));
        Assert.Equal("moving to site B", cease.ShutdownMessage);
        Assert.Equal(BgpState.Idle, session.State);
    }

    [Fact]
    public async Task Sessions_on_the_deciding_loop_send_the_update_before_that_loop_goes_on()
    {
        // The appliance's shape: the mobility decision and both sessions on one event loop thread.
        using var loop = new EventLoop("test-mobility", LoopPriority.Normal);
        await using var peerA = new FakePeer();
        await using var peerB = new FakePeer();
        await using var a = NewSession(peerA.Port, loop);
        await using var b = NewSession(peerB.Port, loop);
        a.Start();
        b.Start();
        await peerA.AcceptAndOpenAsync(65002);
        await peerB.AcceptAndOpenAsync(65002);
        await Eventually(() => a.State == BgpState.Established && b.State == BgpState.Established);

        var host = new Advertisement(IPNetwork.Parse("10.9.0.9/32"));
        var afterDecision = new TaskCompletionSource<(int, int, bool)>(TaskCreationOptions.RunContinuationsAsynchronously);
        Mailbox<string>? decisions = null;
        decisions = loop.CreateMailbox<string>(input =>
        {
            if (input == "rarp")
            {
                a.SetAdvertisements([host]);
                b.SetAdvertisements([host]);
                decisions!.TryWrite("bookkeeping");
            }
            else
            {
                // Queued right behind the decision: both sessions already reconciled and wrote their UPDATE.
                afterDecision.SetResult((a.AdjRibOut.Count, b.AdjRibOut.Count, loop.IsLoopThread));
            }
        });
        decisions.TryWrite("rarp");
        Assert.Equal((1, 1, true), await afterDecision.Task.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal([host.Prefix], Assert.IsType<UpdateMessage>(await peerA.NextAsync(skipHousekeeping: true)).Nlri);
        Assert.Equal([host.Prefix], Assert.IsType<UpdateMessage>(await peerB.NextAsync(skipHousekeeping: true)).Nlri);

        // Stopping one session (its NOTIFICATION flushed) leaves the other served by the shared loop.
        await a.StopAsync("site B");
        Assert.IsType<NotificationMessage>(await peerA.NextAsync(skipHousekeeping: true));
        await b.SetAdvertisementsAsync([]);
        Assert.Equal([host.Prefix], Assert.IsType<UpdateMessage>(await peerB.NextAsync(skipHousekeeping: true)).Withdrawn);
        Assert.False(loop.Completion.IsCompleted);
    }

    [Fact]
    public async Task Advertisements_set_before_the_session_comes_up_go_out_on_establishment()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);
        await session.SetAdvertisementsAsync([new Advertisement(IPNetwork.Parse("10.9.0.8/32")) { NextHop = IPAddress.Parse("192.0.2.77") }]);
        session.Start();
        await peer.AcceptAndOpenAsync(65002);
        var update = Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal([IPNetwork.Parse("10.9.0.8/32")], update.Nlri);
        Assert.Equal(IPAddress.Parse("192.0.2.77"), update.NextHop);
    }

    [Fact]
    public async Task A_malformed_update_resets_the_session_with_the_right_notification()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);
        session.Start();
        await peer.AcceptAndOpenAsync(65002);
        await Eventually(() => session.State == BgpState.Established);

        await peer.SendAsync(BgpFrames.Update([33, 1, 2, 3, 4, 5], [], []));
        var notification = Assert.IsType<NotificationMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal((BgpErrorCode.UpdateMessage, BgpSubcode.InvalidNetworkField), (notification.Code, notification.Subcode));
        await Eventually(() => session.State != BgpState.Established);
    }

    [Fact]
    public async Task A_bad_header_length_on_the_stream_is_a_message_header_error()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);
        session.Start();
        await peer.AcceptAndOpenAsync(65002);
        await Eventually(() => session.State == BgpState.Established);

        var wire = BgpFrames.Frame(4);
        wire[17] = 5;
        await peer.SendAsync(wire);
        var notification = Assert.IsType<NotificationMessage>(await peer.NextAsync(skipHousekeeping: true));
        Assert.Equal((BgpErrorCode.MessageHeader, BgpSubcode.BadMessageLength), (notification.Code, notification.Subcode));
        Assert.Equal([0, 5], notification.Data);
    }

    [Fact]
    public async Task Wrong_peer_as_is_refused()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);
        session.Start();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await Assert.ThrowsAnyAsync<Exception>(() => peer.AcceptAndOpenAsync(64999));
        await Eventually(() => session.LastError?.Contains("64999", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task Prefixes_sharing_attributes_are_packed_and_a_refresh_sends_them_again()
    {
        await using var peer = new FakePeer();
        await using var session = NewSession(peer.Port);
        session.Start();
        await peer.AcceptAndOpenAsync(65002);
        await Eventually(() => session.State == BgpState.Established);

        var hosts = Enumerable.Range(1, 450)
            .Select(i => new Advertisement(IPNetwork.Parse($"10.8.{i / 256}.{i % 256}/32")) { Communities = [new Community(65001, 100)] })
            .Append(new Advertisement(IPNetwork.Parse("10.7.0.1/32")) { Communities = [new Community(65001, 200)] })
            .ToList();
        await session.SetAdvertisementsAsync(hosts);

        // 450 prefixes with one set of attributes: 400 + 50; the one with another community: its own UPDATE.
        var updates = new List<UpdateMessage>();
        for (var i = 0; i < 3; i++)
        {
            updates.Add(Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true)));
        }

        Assert.Equal([1, 50, 400], updates.Select(u => u.Nlri.Count).Order());
        Assert.Equal(hosts.Select(h => h.Prefix.ToString()).Order(StringComparer.Ordinal), updates.SelectMany(u => u.Nlri).Select(p => p.ToString()).Order(StringComparer.Ordinal));
        Assert.All(updates, u => Assert.Equal(u.Nlri.Contains(IPNetwork.Parse("10.7.0.1/32")) ? 200u : 100u, Assert.Single(u.Communities).Value & 0xFFFF));

        await session.RefreshAsync();
        var again = new List<UpdateMessage>();
        for (var i = 0; i < 3; i++)
        {
            again.Add(Assert.IsType<UpdateMessage>(await peer.NextAsync(skipHousekeeping: true)));
        }

        Assert.Equal(451, again.Sum(u => u.Nlri.Count));
        Assert.NotNull(session.EstablishedAt);
    }
}
