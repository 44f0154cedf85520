using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.HealthChecks;
using Isthmus.ControlPlane.Logging;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;
using Isthmus.Packets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Runtime;

/// <summary>
/// The running data plane: at start it compiles the last committed revision, opens its ports and
/// starts the worker; from then on <see cref="ConfigService"/> publishes every commit to it with one
/// <see cref="SnapshotSlot.Publish"/>. It also drains MAC moves into the rate-limited log.
/// </summary>
public sealed partial class DataPlaneRuntime(ConfigService config, IPortFactory portFactory, TimeProvider time, HealthMonitor health, ILogger<DataPlaneRuntime> logger, CpuIdleLatency? cpuIdle = null)
    : IHostedService, IDataPlaneTarget, IDisposable
{
    private readonly RateLimitedLog _rateLimited = new(logger, time);

    // Serialises the two publishers: commits (ConfigService) and health changes (HealthMonitor).
    private readonly Lock _publishGate = new();
    private DataPlaneSnapshot? _configured;
    private IReadOnlyList<IPacketPort> _ports = [];
    private ITimer? _drain;

    public DataPlaneWorker Worker { get; private set; } = null!;

    public SnapshotSlot Slot { get; private set; } = null!;

    public PacketTracer Tracer { get; } = new();

    public MacMoveFeed Moves { get; } = new();

    /// <summary>RARP / GARP / binding / move signals for the mobility service.</summary>
    public MobilityFeed Mobility { get; } = new();

    public bool Forwarding { get; private set; }

    public ConfigDocument? Started { get; private set; }

    public long SnapshotVersion => Slot?.Current.Version ?? 0;

    public long SuppressedLogLines => _rateLimited.Suppressed;

    /// <summary>dataPlane.cpuIdleLatencyUs: the PM QoS request held while the data plane runs.</summary>
    public CpuIdleLatency CpuIdle { get; } = cpuIdle ?? new CpuIdleLatency();

    /// <summary>
    /// The worker thread's scheduling under dataPlane.realtimePriority: "SCHED_FIFO n", "ordinary" (not asked), or
    /// "ordinary (...)" with the reason the kernel refused (<see cref="RealtimeFailures"/> counts those).
    /// </summary>
    public string WorkerScheduling { get; private set; } = "ordinary";

    /// <summary>The SCHED_FIFO priority the worker thread runs at; 0 = ordinary (CFS).</summary>
    public int WorkerRealtimePriority { get; private set; }

    /// <summary>Real-time priority requests (dataPlane.realtimePriority) the kernel refused.</summary>
    public long RealtimeFailures => Interlocked.Read(ref _realtimeFailures);

    private long _realtimeFailures;

    /// <summary>Nice values (dataPlane.workerNice or its default) the kernel refused the worker.</summary>
    public long NiceFailures => Interlocked.Read(ref _niceFailures);

    private long _niceFailures;

    /// <summary>The load balancer's health checks (their verdicts are overlaid on every published snapshot).</summary>
    public HealthMonitor Health => health;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        config.Attach(this, current =>
        {
            var document = current.Document;
            health.Netns = document.DataPlane.Netns;
            ApplyCpuIdle(document.DataPlane.CpuIdleLatencyUs);
            var compiled = SnapshotCompiler.Compile(document.Program, current.Revision?.Id ?? 0, time.TimestampFrequency);
            lock (_publishGate)
            {
                _configured = compiled;
                health.Configure(compiled.Program);
                Slot = new SnapshotSlot(WithHealth(compiled));
            }

            health.BackendsChanged += OnBackendsChanged;
            _ports = portFactory.Open(document);
            Worker = new DataPlaneWorker(_ports, Slot, PacketPipeline.CreateDefault(), time, Tracer, Moves, document.DataPlane.PoolSize, Mobility)
            {
                Cpu = document.DataPlane.WorkerCpu,
                PollMode = document.DataPlane.PollMode == "busy" ? WorkerPollMode.Busy : WorkerPollMode.Interrupt,
                NiceRequest = document.DataPlane.WorkerNice,
                ThreadStarted = () => OnWorkerStarted(document.DataPlane),
            };
            Worker.Start();
            Started = document;
            Forwarding = true;
            LogForwarding(logger, current.Revision?.Id ?? 0, _ports.Count, document.Program.BridgeDomains.Count, document.DataPlane.Netns ?? "(own)");
        });
        _drain = time.CreateTimer(_ => DrainMoves(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        return Task.CompletedTask;
    }

    public void Publish(DataPlaneSnapshot snapshot)
    {
        lock (_publishGate)
        {
            _configured = snapshot;
            health.Configure(snapshot.Program);
            Slot.Publish(WithHealth(snapshot));
        }

        ApplyCpuIdle(config.Current.Document.DataPlane.CpuIdleLatencyUs);
        LogPublished(logger, snapshot.Version);
    }

    /// <summary>
    /// On the worker thread at its start, after it set its nice value (dataPlane.workerNice, or the default): that result
    /// logged (a refusal counted), then SCHED_FIFO at dataPlane.realtimePriority in interrupt mode.
    /// </summary>
    private void OnWorkerStarted(DataPlaneSettings settings)
    {
        var worker = Worker;
        var realtime = settings.PollMode != "busy" ? settings.RealtimePriority : null;
        if (worker.NiceError is { } error)
        {
            Interlocked.Increment(ref _niceFailures);
            LogNiceFailed(logger, worker.NiceTarget ?? 0, error);
        }
        else if (worker.Nice is { } nice)
        {
            LogNice(logger, nice, realtime is not null ? " (ignored by the kernel while the worker runs under SCHED_FIFO)" : "");
        }

        if (realtime is { } rt)
        {
            PinForLoopAbove(settings);
            ElevateWorker(rt);
        }
    }

    /// <summary>
    /// dataPlane.loopPlacement "aboveWorker": the worker pins itself (only itself: other threads may still run there) to
    /// the CPU the mobility loop goes to above it (<see cref="Isthmus.Mobility.Threading.AboveWorkerPlacement.ChooseCpu"/>).
    /// Refused = it runs unpinned (logged, counted with the real-time failures).
    /// </summary>
    private void PinForLoopAbove(DataPlaneSettings settings)
    {
        if (settings.LoopPlacement != "aboveWorker" || Isthmus.Mobility.Threading.AboveWorkerPlacement.ChooseCpu() is not { } cpu)
        {
            return;
        }

        if (CpuAffinity.Pin(0, cpu, out var error))
        {
            WorkerPlacement = $", pinned to CPU {cpu} (loopPlacement aboveWorker)";
        }
        else
        {
            Interlocked.Increment(ref _realtimeFailures);
            WorkerPlacement = $", not pinned ({error})";
            LogLoopPlacementFailed(logger, "worker", cpu, error ?? "");
        }
    }

    /// <summary>The mobility loop's placement under dataPlane.loopPlacement "aboveWorker" (set by the mobility service, read by the metrics), or null.</summary>
    public Isthmus.Mobility.Threading.AboveWorkerPlacement? LoopPlacement { get; internal set; }

    /// <summary>Where dataPlane.loopPlacement "aboveWorker" pinned the worker (appended to <see cref="WorkerScheduling"/>), or "".</summary>
    public string WorkerPlacement { get; private set; } = "";

    /// <summary>SCHED_FIFO at dataPlane.realtimePriority; refused = it runs as before (logged, counted).</summary>
    private void ElevateWorker(int priority)
    {
        if (Isthmus.Mobility.Threading.LoopThread.TrySetFifo(priority, out var result))
        {
            WorkerRealtimePriority = priority;
            WorkerScheduling = result;
            LogRealtime(logger, "worker", result);
        }
        else
        {
            Interlocked.Increment(ref _realtimeFailures);
            WorkerScheduling = $"ordinary ({result})";
            LogRealtimeFailed(logger, "worker", priority, result);
        }
    }

    /// <summary>Counts a real-time request another thread (the mobility loop) could not get.</summary>
    internal void CountRealtimeFailure() => Interlocked.Increment(ref _realtimeFailures);

    /// <summary>Makes (or changes, or drops) the PM QoS request; a device that cannot be used is logged, and the data plane runs without it.</summary>
    private void ApplyCpuIdle(int? microseconds)
    {
        var before = CpuIdle.Status;
        if (before.Requested == microseconds && (microseconds is null || before.Held is not null))
        {
            return;
        }

        if (CpuIdle.Apply(microseconds))
        {
            LogCpuIdle(logger, microseconds is { } us ? $"{us} µs" : "none", CpuIdle.DevicePath);
        }
        else
        {
            LogCpuIdleFailed(logger, microseconds ?? 0, CpuIdle.Status.LastError ?? "");
        }
    }

    /// <summary>A backend went up or down: the committed snapshot again, with only its load-balancer tables recompiled (one swap, no packet lost).</summary>
    private void OnBackendsChanged(object? sender, EventArgs e)
    {
        lock (_publishGate)
        {
            if (_configured is { } configured)
            {
                Slot.Publish(WithHealth(configured));
            }
        }
    }

    private DataPlaneSnapshot WithHealth(DataPlaneSnapshot snapshot)
    {
        var down = health.Down;
        return snapshot.LoadBalancer.Servers.Length == 0 || down.Count == 0 ? snapshot : SnapshotCompiler.WithBackendHealth(snapshot, down);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Forwarding = false;
        health.BackendsChanged -= OnBackendsChanged;
        health.Dispose();
        _drain?.Dispose();
        Worker?.Stop();
        LogStopped(logger);
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _drain?.Dispose();
        Worker?.Dispose();
        Mobility.Dispose();
        CpuIdle.Dispose();
        foreach (var port in _ports)
        {
            port.Dispose();
        }
    }

    /// <summary>MAC moves are diagnostics, not per-packet logs: through the token bucket, a bounded number per second.</summary>
    private void DrainMoves()
    {
        while (Moves.TryTake(out var move))
        {
            if (move.Damped)
            {
                _rateLimited.TryLog(LogEvents.MacDamped, move, static (l, m) => LogDamped(l, new MacAddress(m.Mac), m.Domain, m.FromSegment, m.ToSegment));
            }
            else
            {
                _rateLimited.TryLog(LogEvents.MacMoved, move, static (l, m) => LogMoved(l, new MacAddress(m.Mac), m.Domain, m.FromSegment, m.ToSegment, new Ipv4Address(m.ToVtep)));
            }
        }
    }

    [LoggerMessage(EventId = LogEvents.DataPlaneForwarding, Level = LogLevel.Information, Message = "Data plane forwarding revision {Revision}: {Ports} ports, {Domains} bridge domains, namespace {Netns}")]
    private static partial void LogForwarding(ILogger logger, long revision, int ports, int domains, string netns);

    [LoggerMessage(EventId = LogEvents.CpuIdleLatency, Level = LogLevel.Information, Message = "CPU idle latency request (PM QoS): {Value} through {Device}")]
    private static partial void LogCpuIdle(ILogger logger, string value, string device);

    [LoggerMessage(EventId = LogEvents.CpuIdleLatencyFailed, Level = LogLevel.Warning, Message = "CPU idle latency request of {Value} µs not made, running without it: {Reason}")]
    private static partial void LogCpuIdleFailed(ILogger logger, int value, string reason);

    [LoggerMessage(EventId = LogEvents.RealtimePriority, Level = LogLevel.Information, Message = "Real-time scheduling (dataPlane.realtimePriority) of the {Thread} thread: {Scheduling}")]
    internal static partial void LogRealtime(ILogger logger, string thread, string scheduling);

    [LoggerMessage(EventId = LogEvents.LoopPlacement, Level = LogLevel.Information, Message = "Loop placement (dataPlane.loopPlacement) of the mobility / BGP loop: {Placement}")]
    internal static partial void LogLoopPlacement(ILogger logger, string placement);

    [LoggerMessage(EventId = LogEvents.LoopPlacementFailed, Level = LogLevel.Warning, Message = "Loop placement aboveWorker (dataPlane.loopPlacement): the {Thread} thread not moved to CPU {Cpu} or its priority, running it as before: {Reason}")]
    internal static partial void LogLoopPlacementFailed(ILogger logger, string thread, int cpu, string reason);

    [LoggerMessage(EventId = LogEvents.RealtimePriorityFailed, Level = LogLevel.Warning, Message = "Real-time priority {Priority} (dataPlane.realtimePriority) not given to the {Thread} thread, running it as before: {Reason}")]
    internal static partial void LogRealtimeFailed(ILogger logger, string thread, int priority, string reason);

    [LoggerMessage(EventId = LogEvents.WorkerNice, Level = LogLevel.Information, Message = "Data-plane worker thread at nice {Nice} (dataPlane.workerNice){Note}")]
    private static partial void LogNice(ILogger logger, int nice, string note);

    [LoggerMessage(EventId = LogEvents.WorkerNiceFailed, Level = LogLevel.Warning, Message = "Nice {Nice} (dataPlane.workerNice) not given to the data-plane worker thread, running it as before: {Reason}")]
    private static partial void LogNiceFailed(ILogger logger, int nice, string reason);

    [LoggerMessage(EventId = LogEvents.DataPlaneStopped, Level = LogLevel.Information, Message = "Data plane stopped")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(EventId = LogEvents.SnapshotPublished, Level = LogLevel.Debug, Message = "Snapshot {Version} published")]
    private static partial void LogPublished(ILogger logger, long version);

    [LoggerMessage(EventId = LogEvents.MacMoved, Level = LogLevel.Information, Message = "MAC {Mac} moved in {Domain}: segment {From} -> {To} (VTEP {Vtep})")]
    private static partial void LogMoved(ILogger logger, MacAddress mac, string domain, int from, int to, Ipv4Address vtep);

    [LoggerMessage(EventId = LogEvents.MacDamped, Level = LogLevel.Warning, Message = "MAC {Mac} in {Domain} is flapping between segments {From} and {To}: damped (loop?)")]
    private static partial void LogDamped(ILogger logger, MacAddress mac, string domain, int from, int to);
}
