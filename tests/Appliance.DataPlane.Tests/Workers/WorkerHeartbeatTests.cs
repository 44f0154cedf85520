using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.DataPlane.Workers;

namespace Isthmus.DataPlane.Tests.Workers;

/// <summary>The once-a-second heartbeat never delays a frame that was already waiting.</summary>
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
