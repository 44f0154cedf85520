using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Pipeline;

/// <summary>
/// Everything one worker owns: its buffer pool, its transmit queues, its flow and MAC state, and
/// its counters. Stages get it with every batch. No other thread writes any of it.
/// </summary>
public sealed class WorkerContext
{
    public WorkerContext(PacketPool pool, int portCount, StageCounters counters, PacketTracer tracer, MacMoveFeed moves, long ticksPerSecond)
    {
        Pool = pool;
        Counters = counters;
        Tracer = tracer;
        Moves = moves;
        TicksPerSecond = ticksPerSecond;
        TxQueues = new TxQueue[portCount];
        for (var i = 0; i < portCount; i++)
        {
            TxQueues[i] = new TxQueue();
        }
    }

    public PacketPool Pool { get; }

    public TxQueue[] TxQueues { get; }

    public StageCounters Counters { get; }

    public PacketTracer Tracer { get; }

    public MacMoveFeed Moves { get; }

    public BridgeState Bridge { get; } = new();

    /// <summary>The snapshot this batch runs against; read once per batch.</summary>
    public DataPlaneSnapshot Snapshot { get; private set; } = null!;

    /// <summary>TimeProvider timestamp taken once per batch.</summary>
    public long Now { get; set; }

    public long TicksPerSecond { get; }

    /// <summary>Switches to a new snapshot (between batches), rebuilding per-domain state.</summary>
    public void Apply(DataPlaneSnapshot snapshot)
    {
        if (ReferenceEquals(snapshot, Snapshot))
        {
            return;
        }

        if (snapshot.Ports.Length != TxQueues.Length)
        {
            throw new InvalidOperationException("A snapshot must keep the worker's port table; ports are opened by the host.");
        }

        Bridge.Apply(snapshot, Now);
        Snapshot = snapshot;
    }
}
