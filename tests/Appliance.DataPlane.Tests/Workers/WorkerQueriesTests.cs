using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Tests.Firewall;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Workers;

/// <summary>The worker's query seam: state it owns is copied on its own thread, between batches.</summary>
public sealed class WorkerQueriesTests
{
    private static byte[] RoutedTcp(Ipv4Address destination, ushort port)
    {
        var buffer = new byte[128];
        var n = PacketBuilder.Tcp(buffer, new Ipv4FrameSpec(L3Fixture.HostA, L3Fixture.Gw10, L3Fixture.HostAIp, destination), 40000, port, TcpFlags.Syn, 1000);
        return buffer[..n];
    }

    [Fact]
    public async Task Nothing_pending_until_asked_and_an_idle_turn_answers()
    {
        using var l3 = new L3Fixture();
        Assert.False(l3.Worker.Queries.Pending);
        var answer = l3.Worker.Queries.Ask(LiveState.Neighbors);
        Assert.True(l3.Worker.Queries.Pending);
        Assert.False(answer.IsCompleted);

        Assert.Equal(0, l3.Worker.RunOnce()); // no traffic: an idle turn still serves it
        var result = await answer.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(l3.Worker.Queries.Pending);
        Assert.Empty(result.Entries);
    }

    [Fact]
    public async Task A_running_idle_worker_answers()
    {
        using var l3 = new L3Fixture();
        l3.Worker.Start();
        try
        {
            // An idle worker wakes on its poll timeout and answers (not a timing assert: a loaded CI box stalls for seconds).
            var stats = await l3.Worker.Queries.Ask(LiveState.Statistics).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(0, stats.Sessions);
            Assert.Equal(0, stats.Neighbors);
        }
        finally
        {
            l3.Worker.Stop();
        }
    }

    [Fact]
    public async Task A_query_is_answered_between_batches_with_the_state_before_the_next_batch()
    {
        using var l3 = new L3Fixture();
        l3.Announce(1, L3Fixture.HostA, L3Fixture.HostAIp);

        // A packet to an unresolved next hop waits in the port; the query posted now is served at the
        // top of the turn, before that batch runs: it sees HostA only.
        l3.Ports[1].Enqueue(new MemoryFrame(RoutedTcp(L3Fixture.Host20Ip, 80)));
        var before = l3.Worker.Queries.Ask(LiveState.Neighbors);
        Assert.Equal(1, l3.Worker.RunOnce());
        var first = await before.WaitAsync(TimeSpan.FromSeconds(5));
        var only = Assert.Single(first.Entries);
        Assert.Equal(NeighborState.Reachable, only.State);
        Assert.Equal(L3Fixture.HostAIp.Value, (uint)only.AddressLo);
        Assert.Equal(L3Fixture.HostA.Value, only.Mac);
        Assert.Equal("bd10", only.Domain);

        // The next turn's answer has the incomplete entry holding the packet.
        var after = l3.Worker.Queries.Ask(LiveState.Neighbors);
        l3.Worker.RunOnce();
        var second = await after.WaitAsync(TimeSpan.FromSeconds(5));
        var pending = Assert.Single(second.Entries, e => e.State == NeighborState.Incomplete);
        Assert.Equal(L3Fixture.Host20Ip.Value, (uint)pending.AddressLo);
        Assert.Equal("bd20", pending.Domain);
        Assert.Equal(1, pending.HeldPackets);
        Assert.Equal(1, second.HeldPackets);

        // Let the resolution fail so the held buffer goes back to the pool (the fixture's leak check).
        l3.Tick(6);
        Assert.Equal(0, l3.Neighbors.HeldPackets);
    }

    [Fact]
    public async Task A_stale_neighbor_is_reported_as_such()
    {
        using var l3 = new L3Fixture();
        l3.Announce(1, L3Fixture.HostA, L3Fixture.HostAIp);
        l3.Tick(31);
        var answer = l3.Worker.Queries.Ask(LiveState.Neighbors);
        l3.Worker.RunOnce();
        var entry = Assert.Single((await answer.WaitAsync(TimeSpan.FromSeconds(5))).Entries);
        Assert.True(entry.Stale);
        Assert.InRange(entry.AgeSeconds, 31, 32);
    }

    [Fact]
    public async Task Stopping_the_worker_fails_unanswered_queries()
    {
        using var l3 = new L3Fixture();
        var answer = l3.Worker.Queries.Ask(LiveState.Neighbors);
        l3.Worker.Stop();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => answer.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_throwing_query_faults_its_task_and_the_worker_carries_on()
    {
        using var l3 = new L3Fixture();
        var bad = l3.Worker.Queries.Ask<int>(_ => throw new InvalidOperationException("boom"));
        var good = l3.Worker.Queries.Ask(LiveState.Neighbors);
        l3.Worker.RunOnce();
        await Assert.ThrowsAsync<InvalidOperationException>(() => bad.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.NotNull(await good.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Session_pages_are_filtered_and_paged_in_the_worker()
    {
        using var flows = new FlowFixture();
        for (ushort i = 0; i < 5; i++)
        {
            Assert.True(flows.Outbound(FlowFixture.Tcp("10.10.0.10", (ushort)(40000 + i), "10.20.0.5", 80, TcpFlags.Syn)).Passed);
        }

        Assert.True(flows.Outbound(FlowFixture.Udp("10.10.0.11", 5353, "10.20.0.5", 53)).Passed);

        var all = LiveState.Sessions(flows.Context, new SessionFilter(), 0, 100);
        Assert.Equal(6, all.Matched);
        Assert.Equal(6, all.Live);
        Assert.Equal(6, all.Items.Count);

        var tcp = LiveState.Sessions(flows.Context, new SessionFilter(Protocol: 6, State: ConntrackState.TcpSynSent), 0, 2);
        Assert.Equal(5, tcp.Matched);
        Assert.Equal(2, tcp.Items.Count);
        var lastPage = LiveState.Sessions(flows.Context, new SessionFilter(Protocol: 6), 4, 2);
        Assert.Single(lastPage.Items);

        var udp = LiveState.Sessions(flows.Context, new SessionFilter(Address: Ipv4Address.Parse("10.10.0.11").Value, Port: 53), 0, 100);
        var session = Assert.Single(udp.Items);
        Assert.Equal(17, session.Original.Protocol);
        Assert.Equal(ConntrackState.Unreplied, session.State);
        Assert.Equal(session.TimeoutSeconds, session.ExpiresInSeconds);

        Assert.Equal(0, LiveState.Sessions(flows.Context, new SessionFilter(State: ConntrackState.TcpEstablished), 0, 100).Matched);

        var stats = LiveState.Statistics(flows.Context);
        Assert.Equal(5, stats.SessionsByProtocol[6]);
        Assert.Equal(1, stats.SessionsByProtocol[17]);
        Assert.Equal([6L], stats.RuleHits);
    }
}
