using Isthmus.DataPlane.Gateway;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Diagnostics;

namespace Isthmus.ControlPlane.Mobility;

/// <summary>
/// Where the time goes from a worker seeing a move (a RARP: the signal's timestamp) to the reactions
/// leaving, hop by hop, each measured from that same cause (so the hops read as a timeline):
/// <list type="bullet">
/// <item><c>feed</c>: the mobility loop took the signal from the <see cref="DataPlane.Bridge.MobilityFeed"/>;</item>
/// <item><c>decision</c>: the registry observed it and the burst was decided;</item>
/// <item><c>routes planned</c>: the routes were planned, paced and diffed, about to be handed to the sessions;</item>
/// <item><c>bgp loop</c> / <c>bgp socket write</c>: each BGP session's loop took the new desired set, its first UPDATE was written to the socket;</item>
/// <item><c>garp query</c>: a GARP handed to the worker as a query → the worker served it (its wake-up; from the hand-over, not from the RARP).</item>
/// </list>
/// The first GARP after a RARP on a local segment is sent by the worker in the same batch as the RARP
/// (<see cref="ArrivalGarp"/>): counted in <see cref="WorkerGarpFrames"/>, no hop to time.
/// </summary>
public sealed class MobilityLatency
{
    private long _workerGarps;
    private RuntimeActivity _baseline = RuntimeActivity.Now(null);
    private readonly RuntimeSuspensions _suspensions = RuntimeSuspensions.Shared;
    private DateTime _resetUtc = DateTime.UtcNow;
    private long _demotionsBaseline;

    /// <summary>The mobility / BGP loop's allocated bytes (<see cref="Isthmus.Mobility.Threading.EventLoop.AllocatedBytes"/>), once it runs.</summary>
    public Func<long>? LoopAllocatedBytes { get; set; }

    /// <summary>Times the loop's budget took it off the worker's CPU (dataPlane.loopPlacement "aboveWorker"), once it runs so placed.</summary>
    public Func<long>? LoopDemotions { get; set; }

    public LatencyRecorder Feed { get; } = new("feed");

    public LatencyRecorder Decision { get; } = new("decision");

    public LatencyRecorder GarpQuery { get; } = new("garp query");

    public LatencyRecorder Planned { get; } = new("routes planned");

    public BgpLatency Bgp { get; } = new();

    /// <summary>GARP frames the workers sent themselves on seeing a RARP.</summary>
    public long WorkerGarpFrames => Volatile.Read(ref _workerGarps);

    /// <summary>The mobility loop thread's scheduling ("SCHED_FIFO 1", "nice -10", "normal").</summary>
    public string Scheduling { get; internal set; } = "normal";

    public void CountWorkerGarp(int frames) => Interlocked.Add(ref _workerGarps, frames);

    /// <summary>
    /// What the runtime did since the last <see cref="Reset"/> (tail suspects: every collection, and every other runtime suspension, stops every
    /// managed thread, the worker included; methods compiled = JIT work, first calls and tier-up, on the path).
    /// </summary>
    public RuntimeActivity Runtime()
    {
        var since = _baseline;
        var now = RuntimeActivity.Now(LoopAllocatedBytes);
        return new RuntimeActivity(
            now.Gen0 - since.Gen0, now.Gen1 - since.Gen1, now.Gen2 - since.Gen2, now.GcPauseMs - since.GcPauseMs, now.JitMethods - since.JitMethods,
            now.AllocatedBytes - since.AllocatedBytes, now.LoopAllocatedBytes - since.LoopAllocatedBytes)
        {
            Suspensions = _suspensions.Since(_resetUtc),
            LoopDemotions = LoopDemotions is { } demotions ? demotions() - _demotionsBaseline : null,
        };
    }

    public IReadOnlyList<LatencySummary> Read() => [Feed.Read(), Decision.Read(), Planned.Read(), Bgp.ToLoop.Read(), Bgp.ToSocket.Read(), GarpQuery.Read()];

    public void Reset()
    {
        Feed.Reset();
        Decision.Reset();
        Planned.Reset();
        GarpQuery.Reset();
        Bgp.ToLoop.Reset();
        Bgp.ToSocket.Reset();
        Interlocked.Exchange(ref _workerGarps, 0);
        _baseline = RuntimeActivity.Now(LoopAllocatedBytes);
        _resetUtc = DateTime.UtcNow;
        _demotionsBaseline = LoopDemotions?.Invoke() ?? 0;
    }
}

/// <summary>
/// Garbage collections per generation, their total pause, the methods the JIT compiled and the bytes the process
/// allocated, every thread (what fills gen0 and brings the next collection), and of them the mobility / BGP loop's, as
/// counts since a baseline.
/// </summary>
public sealed record RuntimeActivity(int Gen0, int Gen1, int Gen2, double GcPauseMs, long JitMethods, long AllocatedBytes, long LoopAllocatedBytes)
{
    /// <summary>
    /// The runtime's suspensions of every managed thread since the baseline (<see cref="RuntimeSuspensions"/>: for a
    /// collection, or for the runtime's own work such as tiered compilation's call-counting cleanup), with their start.
    /// </summary>
    public IReadOnlyList<Suspension> Suspensions { get; init; } = [];

    /// <summary>Times the loop's budget took it off the worker's CPU since the baseline (dataPlane.loopPlacement "aboveWorker"), else null.</summary>
    public long? LoopDemotions { get; init; }

    public static RuntimeActivity Now(Func<long>? loopAllocated) => new(
        GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration().TotalMilliseconds,
        System.Runtime.JitInfo.GetCompiledMethodCount(), GC.GetTotalAllocatedBytes(), loopAllocated?.Invoke() ?? 0);
}
