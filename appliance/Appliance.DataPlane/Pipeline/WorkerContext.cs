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
        L3 = new Route.L3State(Epoch);
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

    /// <summary>RARP, GARP, new bindings and MAC moves for the mobility service (rare events, not per frame).</summary>
    public MobilityFeed Mobility { get; init; } = new();

    /// <summary>
    /// The port of the first GARP the worker sent for a RARP in this batch (<see cref="Gateway.ArrivalGarp"/>), or -1:
    /// the worker flushes it first and wakes the mobility loop before flushing the rest (the RARP's flood).
    /// </summary>
    public int ArrivalGarpPort { get; set; } = -1;

    /// <summary>
    /// Per segment index: ARP for the gateway's own addresses is filtered there (the interconnect, so the
    /// remote site's gateway cannot answer for the shared gateway address, nor ours for it). Set by the
    /// mobility service through a worker query; empty = no filter.
    /// </summary>
    public bool[] GatewayArpFilter { get; set; } = [];

    /// <summary>The first GARP for a RARP on a local segment, sent by the worker itself; set by the mobility service (null = off).</summary>
    public Gateway.ArrivalGarp? ArrivalGarp { get; set; }

    /// <summary>DHCPACK snooping in the bridge (bindings for mobility); set by the mobility service (null = off).</summary>
    public DhcpSnooping? DhcpSnooping { get; set; }

    public BridgeState Bridge { get; } = new();

    /// <summary>Conntrack table, NAT ports, firewall rule counters and log (Firewall/, Nat/).</summary>
    public Firewall.FlowState Flows { get; } = new();

    /// <summary>Neighbor (ARP/ND) cache, ICMP-error limiter and gateway counters (Gateway/ and Route/ stages).</summary>
    public Route.L3State L3 { get; }

    /// <summary>Advanced whenever a cached forwarding result may have become wrong (new snapshot, neighbor or MAC change).</summary>
    public ForwardingEpoch Epoch { get; } = new();

    /// <summary>
    /// The established-flow fast path (Firewall/FlowCache.cs); on by default. Off, every packet takes
    /// the slow path: the tests compare the two, and the benchmarks measure both in one run.
    /// </summary>
    public bool FastPathEnabled { get; set; } = true;

    /// <summary>
    /// Packets the appliance itself originates while a batch runs (ARP and ND replies, ICMP errors,
    /// TCP resets, ARP requests for next hops, packets released from the neighbor queue). The
    /// runner sends them through the encap stage after the batch, so they share its egress path,
    /// counters and trace.
    /// </summary>
    public PacketBatch Originated { get; } = new();

    /// <summary>
    /// Claims a slot for an originated packet in <paramref name="buffer"/> (frame at
    /// <paramref name="offset"/>). Set its <see cref="PacketMeta.Domain"/> and either
    /// <see cref="PacketMeta.EgressSegment"/> (+ <see cref="PacketMeta.EgressVtep"/>) or the
    /// <see cref="PacketFlags.Flood"/> flag. Returns a null reference when the batch is full: the
    /// caller still owns the buffer then.
    /// </summary>
    public ref PacketMeta Originate(int buffer, int offset, int length)
    {
        if (Originated.IsFull)
        {
            return ref System.Runtime.CompilerServices.Unsafe.NullRef<PacketMeta>();
        }

        ref var p = ref Originated.Add(buffer, offset, length, 0);
        p.Flags = PacketFlags.Local;
        p.IngressSegment = -1;
        return ref p;
    }

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
        L3.Apply(snapshot, Pool, Now);
        Flows.Apply(snapshot.Firewall);
        Flows.Balancer.Apply(snapshot.LoadBalancer);
        Snapshot = snapshot;

        // Routes, gateways, NAT and policy may all have changed: no cached forwarding result survives.
        Epoch.Advance();
    }
}
