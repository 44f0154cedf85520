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
