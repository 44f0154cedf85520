using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.DataPlane.Workers;

using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Workers;

/// <summary>
/// The heartbeat never delays a frame that was already waiting, is timed, and is spread over 8 ticks a second that still
/// age every MAC on time and refresh the kernel counters and run the stages' timers once a second (virtual time).
/// </summary>
public sealed class WorkerHeartbeatTests
{
    [Fact]
    public void A_due_heartbeat_runs_after_the_batch_it_woke_for()
    {
        var log = new List<string>();
        var time = new ManualTimeProvider();
        var program = L2Fixture.LabProgram();
        var memory = new MemoryPort[] { new("und0", PortKind.Vxlan), new("acc10", PortKind.Access), new("acc20", PortKind.Access), new("trunk0", PortKind.Trunk) };
        var ports = memory.Select(p => (IPacketPort)new LoggingPort(p, log)).ToArray();
        var slot = new SnapshotSlot(SnapshotCompiler.Compile(program, 1, time.TimestampFrequency));
        var worker = new DataPlaneWorker(ports, slot, PacketPipeline.CreateDefault(), time, poolSize: 1024);

        worker.RunOnce();
        time.Advance(TimeSpan.FromSeconds(1));
        log.Clear();

        // A broadcast on acc10 floods to the trunk and the VTEPs in the turn whose heartbeat is due.
        memory[L2Fixture.Acc10].Enqueue(Frames.Ethernet(Frames.Broadcast, Frames.Mac("02:00:00:00:00:10")));
        Assert.Equal(1, worker.RunOnce());

        var firstSend = log.FindIndex(e => e.StartsWith("tx ", StringComparison.Ordinal));
        var firstRefresh = log.FindIndex(e => e.StartsWith("refresh ", StringComparison.Ordinal));
        Assert.True(firstSend >= 0, string.Join(", ", log));
        Assert.True(firstRefresh >= 0, $"the heartbeat was due and did not run: {string.Join(", ", log)}");
        Assert.True(firstSend < firstRefresh, $"the heartbeat ran before the waiting frame left: {string.Join(", ", log)}");
        Assert.Equal(ports.Length, log.Count(e => e.StartsWith("refresh ", StringComparison.Ordinal)));

        // Not due again within the second.
        log.Clear();
        time.Advance(TimeSpan.FromMilliseconds(900));
        worker.RunOnce();
        Assert.DoesNotContain(log, e => e.StartsWith("refresh ", StringComparison.Ordinal));
    }

    [Fact]
    public void Each_heartbeat_is_timed_and_counted_in_its_bucket()
    {
        using var lab = new L2Fixture();
        var (time, worker) = (lab.Time, lab.Worker);
        worker.RunOnce();
        Assert.Equal(0, worker.HeartbeatTimings.Count);

        time.Advance(TimeSpan.FromSeconds(1));
        worker.RunOnce();
        var timings = worker.HeartbeatTimings;
        Assert.Equal(1, timings.Count);

        // The virtual clock does not move during the heartbeat: it took 0 µs, in the first bucket.
        Assert.Equal(0, timings.LastUs);
        Assert.All(timings.Cumulative(), c => Assert.Equal(1, c));
    }

    [Fact]
    public void Heartbeat_durations_fall_in_the_bucket_of_their_upper_bound()
    {
        var timings = new HeartbeatTimings();
        const long perUs = 1_000_000; // a timestamp frequency of 1e12: a tick is a picosecond
        foreach (var us in new long[] { 0, 10, 11, 120, 4_000, 60_000 })
        {
            timings.Record(us * perUs, perUs * 1_000_000);
        }

        Assert.Equal(6, timings.Count);
        Assert.Equal(64_141, timings.SumUs);
        Assert.Equal(60_000, timings.LastUs);
        Assert.Equal(60_000, timings.MaxUs);

        // le 10: 0 and 10; 25: + 11; 50, 100: the same; 250: + 120; ... 5000: + 4,000; 10,000: the same; +Inf: + 60,000.
        Assert.Equal([2L, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6], timings.Cumulative());
        timings.Record(5 * perUs, perUs * 1_000_000);
        Assert.Equal(5, timings.LastUs);
        Assert.Equal(60_000, timings.MaxUs);
    }

    [Fact]
    public void Mac_aging_in_ticks_removes_every_learned_mac_within_a_second_after_its_deadline_and_none_before()
    {
        // 200 MACs learned in one batch at t0, aged after 10 s; the idle worker turns every 50 ms (its poll timeout).
        using var lab = new L2Fixture(d => d with { MacAgingSeconds = 10 });
        var (time, worker) = (lab.Time, lab.Worker);
        var macs = Enumerable.Range(1, 200).Select(i => new MacAddress(0x02_00_00_00_10_00UL + (ulong)(i * 7919))).ToList();
        foreach (var mac in macs)
        {
            lab.Port(L2Fixture.Acc10).Enqueue(Frames.Ethernet(Frames.Broadcast, mac));
        }

        lab.Run();
        lab.ClearSent();
        var table = worker.Context.Bridge.Domains[0].Table;
        Assert.Equal(200, table.Count);

        // Never before the deadline (the 10 s after learning) ...
        var step = TimeSpan.FromMilliseconds(50);
        var elapsed = TimeSpan.Zero;
        while (elapsed + step < TimeSpan.FromSeconds(10))
        {
            time.Advance(step);
            elapsed += step;
            worker.RunOnce();
            Assert.Equal(200, table.Count);
        }

        // ... and each within a pass of 8 ticks (one second) after it: all of them, wherever their slots are.
        while (elapsed < TimeSpan.FromSeconds(11) && table.Count > 0)
        {
            time.Advance(step);
            elapsed += step;
            worker.RunOnce();
        }

        Assert.Equal(0, table.Count);
        Assert.True(elapsed <= TimeSpan.FromSeconds(11), $"the last MAC left {elapsed} after it was learned");
    }

    [Fact]
    public void Eight_ticks_a_second_refresh_each_ports_counters_once_a_second_one_port_a_tick_and_a_late_turn_catches_up()
    {
        var log = new List<string>();
        var time = new ManualTimeProvider();
        var memory = new MemoryPort[] { new("und0", PortKind.Vxlan), new("acc10", PortKind.Access), new("acc20", PortKind.Access), new("trunk0", PortKind.Trunk) };
        var ports = memory.Select(p => (IPacketPort)new LoggingPort(p, log)).ToArray();
        var slot = new SnapshotSlot(SnapshotCompiler.Compile(L2Fixture.LabProgram(), 1, time.TimestampFrequency));
        var worker = new DataPlaneWorker(ports, slot, PacketPipeline.CreateDefault(), time, poolSize: 1024);

        // 4.5 s of turns every 25 ms: 36 ticks; from 1 s on, once a second, the 4 ports' counters in 4 ticks in a row.
        for (var t = 0; t < 180; t++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            var before = log.Count;
            worker.RunOnce();
            Assert.InRange(log.Count - before, 0, 1);
        }

        Assert.Equal(36, worker.HeartbeatTimings.Count);
        foreach (var port in ports)
        {
            Assert.Equal(4, log.Count(e => e == "refresh " + port.Name));
        }

        // A turn 3 s late (a stall) is one tick (no burst of ticks), and does a second's worth of slices: every port.
        time.Advance(TimeSpan.FromSeconds(3));
        log.Clear();
        worker.RunOnce();
        Assert.Equal(37, worker.HeartbeatTimings.Count);
        Assert.Equal(ports.Select(p => "refresh " + p.Name), log);
    }

    [Theory]
    [InlineData(262_144)]
    [InlineData(1_000)]
    [InlineData(1_000_003)]
    public void Conntrack_is_swept_at_the_same_rate_in_eight_slices_a_second_as_in_one(int maxSessions)
    {
        var perSecond = FlowState.SweepBudget(maxSessions, 1);
        Assert.Equal(Math.Max(4096, maxSessions / 8), perSecond);
        var perSlice = FlowState.SweepBudget(maxSessions, DataPlaneWorker.HeartbeatTicksPerSecond);
        Assert.InRange(perSlice * DataPlaneWorker.HeartbeatTicksPerSecond, perSecond, perSecond + DataPlaneWorker.HeartbeatTicksPerSecond - 1);
    }

    /// <summary>A port that logs its transmits and its kernel-counter refreshes (the heartbeat's first step), in order.</summary>
    private sealed class LoggingPort(MemoryPort inner, List<string> log) : IPacketPort
    {
        public string Name => inner.Name;

        public PortKind Kind => inner.Kind;

        public int PollHandle => inner.PollHandle;

        public PortCounters Counters => inner.Counters;

        public bool HasPendingFrames => inner.HasPendingFrames;

        public void RefreshKernelCounters() => log.Add("refresh " + Name);

        public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex) => inner.Receive(batch, pool, portIndex);

        public void Transmit(TxQueue queue, PacketPool pool)
        {
            if (queue.Count > 0)
            {
                log.Add("tx " + Name);
            }

            inner.Transmit(queue, pool);
        }

        public void Dispose() => inner.Dispose();
    }
}
