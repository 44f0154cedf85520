using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Logging;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Gateway;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Diagnostics;
using Isthmus.Mobility.Threading;
using Isthmus.Mobility.Workloads;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Mobility;

/// <summary>
/// The anti-trombone feature, wired: data-plane signals (RARP, GARP, bindings, MAC moves) and API reports
/// feed the <see cref="WorkloadRegistry"/>; a workload that arrives on a local segment gets a GARP burst
/// for its gateway and, through the <see cref="HostRoutePlanner"/> and the <see cref="AnnouncementPacer"/>,
/// its /32 (/128) in every BGP session's desired set (<see cref="BgpSession.SetAdvertisementsAsync"/>);
/// one that leaves is withdrawn. It also runs the BGP sessions of the <c>bgp</c> section (sockets in the
/// data-plane namespace), the interconnect ARP filter, VIP announcements, and the own-migration reaction.
/// </summary>
/// <remarks>
/// Threading: one loop owns the registry, the pacer, the sessions and the bursts; the feed, timers
/// and API calls only post into its mailbox (as in <see cref="BgpSession"/>). The BGP sessions run on the same
/// <see cref="EventLoop"/> thread (urgent mailboxes, each still the only owner of its peer state), so the desired
/// set the decision hands them is reconciled and its UPDATE written straight after the decision, on this thread,
/// before the status and the move log (<see cref="Input.Settle"/>). Readers get the immutable <see cref="Status"/>
/// published after each input. The data plane is only touched through worker queries (GARP frames, the ARP filter),
/// never directly.
/// </remarks>
public sealed partial class MobilityService(ConfigService config, DataPlaneRuntime runtime, IVipHealth vips, TimeProvider time, ILogger<MobilityService> logger)
    : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan StunInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Route recomputation at most once per window while moves pour in (a site failover): the first move
    /// after a quiet period is planned at once (latency), the rest of a flood in batches (the planner and
    /// each session's reconciliation walk every route).
    /// </summary>
    private static readonly TimeSpan RouteBatchWindow = TimeSpan.FromMilliseconds(20);

    /// <summary>A burst toward a target that sent less than this long ago does not send again at once.</summary>
    private static readonly TimeSpan CoalesceWindow = TimeSpan.FromMilliseconds(50);

    /// <summary>The thread of the mobility loop and every BGP session (from <see cref="StartAsync"/>).</summary>
    private EventLoop? _eventLoop;
    private Mailbox<Input>? _inputs;

    /// <summary>The worker's wake-up (<see cref="MobilityFeed.Wake"/>): rung without a lock or an allocation, it runs <see cref="Input.Signals"/> on the loop.</summary>
    private LoopSignal? _feedSignal;

    /// <summary>A <see cref="Input.Settle"/> is queued (loop only).</summary>
    private bool _settlePending;
    private readonly WorkloadRegistry _registry = new(new DampingPolicy(), time);
    private readonly AnnouncementPacer _pacer = new(time);
    private readonly List<Peer> _peers = [];
    private readonly List<GarpBurst> _bursts = [];
    private BgpListener? _listener;
    private readonly List<(Workload Workload, WorkloadLocation Location, MoveSource Source)> _moveLog = [];

    /// <summary>The snooper handed to the worker (its counters are written there and read here for the status).</summary>
    private DhcpSnooping? _dhcp;
    /// <summary>What the sessions were handed last; immutable (replaced, never mutated), so they and the status read it without a copy.</summary>
    private IReadOnlyDictionary<IPNetwork, Advertisement> _announced = ImmutableDictionary<IPNetwork, Advertisement>.Empty;

    /// <summary>The plan, kept one workload at a time (a move re-plans its own routes, not every workload).</summary>
    private readonly IncrementalHostRoutePlanner _planner = new();

    /// <summary>The planner's desired set when its changes were last taken: while <see cref="_announced"/> is it, those changes are the sessions' dirty set.</summary>
    private ImmutableDictionary<IPNetwork, Advertisement>? _lastPlanned;

    /// <summary>The next route update re-plans from scratch (config or VIPs changed).</summary>
    private bool _replan = true;
    private HostRoutePlan _plan = new(ImmutableDictionary<IPNetwork, Advertisement>.Empty, 0, []);
    private HostRoutePolicy _policy = new();
    private MobilitySettings? _settings;
    private RunningConfig? _applied;
    private string _appliedBgp = "";
    private long _appliedSnapshot = -1;
    private int _waiting;
    private StunGapDetector? _stun;
    private ITimer? _tick;
    private ITimer? _stunTimer;
    private ITimer? _routesTimer;
    private long _lastRoutesUpdate;
    private bool _routesPending;
    private long _signals;
    private long _ignored;
    private long _garpFrames;
    private long _selfMigrations;
    private long _frozenAlerts;
    private volatile Lazy<MobilityStatus> _status = new(MobilityStatus.Empty);
    private PublishedState _published;

    /// <summary>The cause (Stopwatch timestamp of the RARP / signal) of the route change being planned; 0 = none.</summary>
    private long _routeCause;

    /// <summary>Where the time goes between a worker seeing a move and the reactions leaving (GET /api/v1/mobility/latency).</summary>
    public MobilityLatency Latency { get; } = new();

    /// <summary>What the API shows; replaced after every input.</summary>
    public MobilityStatus Status => _status.Value;

    /// <summary>The BGP sessions (their state and RIBs are immutable snapshots, safe to read anywhere).</summary>
    public IReadOnlyList<(string Name, BgpPeerSpec Spec, BgpSession Session)> Peers { get; private set; } = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // dataPlane.realtimePriority (fixed while running) sets the loop's SCHED_FIFO priority, beside the worker's.
        var settings = config.Current.Document.DataPlane;
        var realtime = settings.RealtimePriority;

        // dataPlane.loopPlacement "aboveWorker" (validated: realtimePriority 2-98, interrupt mode, no workerCpu): on the
        // worker's CPU one priority above it, with a budget (AboveWorkerPlacement).
        var placement = settings.LoopPlacement == "aboveWorker" && realtime is { } workerPriority && AboveWorkerPlacement.ChooseCpu() is { } cpu
            ? new AboveWorkerPlacement(cpu, workerPriority, time)
            : null;
        runtime.LoopPlacement = placement;
        Latency.LoopDemotions = placement is null ? null : () => placement.Budget.Demotions;
        _eventLoop = new EventLoop("isthmus-mobility", LoopPriority.RealTime, scheduling =>
        {
            if (placement is not null)
            {
                Latency.Scheduling = scheduling;
                if (placement.Failures > 0)
                {
                    runtime.CountRealtimeFailure();
                    DataPlaneRuntime.LogLoopPlacementFailed(logger, "mobility loop", placement.Cpu, placement.LastError ?? "");
                }
                else
                {
                    DataPlaneRuntime.LogLoopPlacement(logger, scheduling);
                }

                return;
            }

            Latency.Scheduling = scheduling + Placement();
            if (realtime is { } priority && scheduling != $"SCHED_FIFO {priority}")
            {
                runtime.CountRealtimeFailure();
                DataPlaneRuntime.LogRealtimeFailed(logger, "mobility loop", priority, scheduling);
            }
        }, realtime, placement);
        _inputs = _eventLoop.CreateMailbox<Input>(OnInput);
        var loop = _eventLoop;
        Latency.LoopAllocatedBytes = () => loop.AllocatedBytes;

        // Nothing posts to the mailbox yet: applying the running document here is still single-threaded (the
        // sessions it starts only post to their own mailboxes).
        CheckConfig();
        Publish();

        // The worker wakes the loop itself (one thread hop from the RARP to the registry, and none to the sessions): a
        // signal, not a mailbox post, so the worker takes no lock (the mailbox's and the loop's queues are locked, and
        // their holder, the loop, may be preempted or its vCPU paused) and makes one system call (an eventfd write).
        var inputs = _inputs;
        var feed = _feedSignal = _eventLoop.CreateSignal(() => OnInput(Input.Signals.Instance));
        runtime.Mobility.Wake = feed.Ring;
        feed.Ring();
        _routesTimer = time.CreateTimer(_ => inputs.TryWrite(new Input.FlushRoutes()), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _tick = time.CreateTimer(_ => inputs.TryWrite(new Input.Tick()), null, TimeSpan.Zero, TickInterval);
        _stunTimer = time.CreateTimer(_ => inputs.TryWrite(new Input.StunCheck(time.GetTimestamp())), null, StunInterval, StunInterval);
        vips.Changed += OnVipsChanged;
        return Task.CompletedTask;
    }

    /// <summary>Posts into the loop's mailbox; false before start and after stop.</summary>
    private bool Post(Input input) => _inputs?.TryWrite(input) ?? false;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        vips.Changed -= OnVipsChanged;
        runtime.Mobility.Wake = null;
        _feedSignal?.Close();
        _tick?.Dispose();
        _stunTimer?.Dispose();
        _routesTimer?.Dispose();
        if (_inputs is { } inputs)
        {
            inputs.TryComplete();
            await inputs.Completion.ConfigureAwait(false);
        }

        // Graceful shutdown: every peer gets Cease / Administrative Shutdown (RFC 8203), on the loop that still runs them.
        await Task.WhenAll(_peers.Select(p => p.Session.StopAsync("appliance stopping"))).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var burst in _bursts)
        {
            burst.Timer?.Dispose();
        }

        if (_listener is { } listener)
        {
            _listener = null;
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var peer in _peers)
        {
            await peer.Session.DisposeAsync().ConfigureAwait(false);
        }

        _peers.Clear();
        _tick?.Dispose();
        _stunTimer?.Dispose();
        _routesTimer?.Dispose();

        // Last: the sessions' mailboxes were served by it until they completed.
        _eventLoop?.Stop();
    }

    /// <summary>An orchestrator reports a move: the MAC is now on <paramref name="segment"/> (behind <paramref name="vtep"/>), with these addresses.</summary>
    public Task<MoveReport> ReportMoveAsync(ulong mac, string segment, uint vtep, IReadOnlyList<IPAddress> addresses) =>
        Ask<MoveReport>(done => new Input.ReportMove(mac, segment, vtep, addresses, done));

    /// <summary>The appliance itself was migrated: GARP every own address and VIP on every segment, refresh BGP.</summary>
    public Task<int> SelfMigratedAsync(string reason) => Ask<int>(done => new Input.SelfMigrated(reason, done));

    /// <summary>Clears a duplicate-MAC freeze; false when the MAC is not frozen.</summary>
    public Task<bool> UnfreezeAsync(ulong mac) => Ask<bool>(done => new Input.Unfreeze(mac, done));

    private Task<T> Ask<T>(Func<TaskCompletionSource<T>, Input> input)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!Post(input(done)))
        {
            done.TrySetException(new InvalidOperationException("the mobility service is stopped"));
        }

        return done.Task;
    }

    private void OnVipsChanged() => Post(new Input.VipsChanged());

    private void OnInput(Input input)
    {
        if (input is Input.Settle)
        {
            _settlePending = false;
            Settle();
            return;
        }

        try
        {
            Handle(input);
        }
#pragma warning disable CA1031 // one bad input must not stop mobility; it is logged and the loop goes on
        catch (Exception e)
#pragma warning restore CA1031
        {
            LogFailed(logger, input.GetType().Name, e);
        }

        // The status and the move log once the sessions (urgent mailboxes on this thread) sent what this input changed.
        if (!_settlePending)
        {
            _settlePending = Post(Input.Settle.Instance);
            if (!_settlePending)
            {
                Settle(); // stopping: nothing is queued any more
            }
        }
    }

    /// <summary>After an input: publish the status, log the moves it caused.</summary>
    private void Settle()
    {
        Publish();
        foreach (var (workload, location, source) in _moveLog)
        {
            LogMoved(logger, workload.MacText, workload.Sequence, location, source);
        }

        _moveLog.Clear();
    }

    private void Handle(Input input)
    {
        switch (input)
        {
            case Input.Signals:
                runtime.Mobility.Rearm();
                CheckConfig();
                var dirty = false;
                while (runtime.Mobility.TryTake(out var signal))
                {
                    if (OnSignal(signal))
                    {
                        // The oldest change of the batch times the routes it causes.
                        _routeCause = dirty ? _routeCause : Cause(signal.Timestamp);
                        dirty = true;
                    }
                }

                if (dirty)
                {
                    RoutesChanged();
                }

                _routeCause = 0;
                break;
            case Input.Tick:
                CheckConfig();
                if (_waiting > 0)
                {
                    UpdateRoutes();
                }

                break;
            case Input.VipsChanged:
                _replan = true;
                UpdateRoutes();
                break;
            case Input.FlushRoutes:
                if (_routesPending)
                {
                    UpdateRoutes();
                }

                break;
            case Input.StunCheck stun:
                if (_stun?.Tick(stun.Timestamp) == true)
                {
                    SelfMigrate($"stun gap of {_stun.LastGap.TotalMilliseconds:F0} ms");
                }

                break;
            case Input.GarpDue due:
                SendBurst(due.Burst);
                break;
            case Input.ReportMove move:
                CheckConfig();
                var report = OnReportedMove(move);
                Publish(); // the caller sees its own change in the status
                move.Done.TrySetResult(report);
                break;
            case Input.SelfMigrated self:
                CheckConfig();
                var bursts = SelfMigrate(self.Reason);
                Publish();
                self.Done.TrySetResult(bursts);
                break;
            case Input.Unfreeze unfreeze:
                var cleared = _registry.Unfreeze(unfreeze.Mac);
                if (cleared)
                {
                    PushArrivalGarp();
                    UpdateRoutes();
                }

                Publish();
                unfreeze.Done.TrySetResult(cleared);
                break;
        }
    }

    // ------------------------------------------------------------------ signals and moves

    /// <summary>One data-plane signal into the registry; returns whether routes may have changed.</summary>
    private bool OnSignal(in MobilitySignal signal)
    {
        _signals++;
        var cause = Cause(signal.Timestamp);
        Latency.Feed.RecordSince(cause);
        var snapshot = runtime.Slot?.Current;
        if (_settings is null || snapshot is null || (uint)signal.Segment >= (uint)snapshot.Segments.Length)
        {
            _ignored++;
            return false;
        }

        var segment = snapshot.Segments[signal.Segment];
        var source = signal.Kind switch
        {
            MobilitySignalKind.Rarp => MoveSource.Rarp,
            MobilitySignalKind.Garp => MoveSource.Garp,
            MobilitySignalKind.MacMove => MoveSource.MacMove,
            MobilitySignalKind.DhcpBinding => MoveSource.Dhcp,
            _ => MoveSource.Binding,
        };
        IPAddress? address = null;
        if (signal.HasAddress)
        {
            address = signal.Ipv6 ? Ipv6(signal.AddressHi, signal.AddressLo) : Ipv4((uint)signal.AddressLo);
        }

        // The worker already sent the burst's first GARP (the RARP, and the MAC move the same frame caused, say so).
        var changed = Observe(signal.Mac, segment, signal.Vtep, source, address is null ? [] : [address], signal.GarpFrames > 0 ? signal.Timestamp : 0).Changed;
        if (signal is { Kind: MobilitySignalKind.Rarp, GarpFrames: > 0 })
        {
            Latency.CountWorkerGarp(signal.GarpFrames);
            Interlocked.Add(ref _garpFrames, signal.GarpFrames);
        }

        Latency.Decision.RecordSince(cause);
        return changed;
    }

    /// <summary>A worker's timestamp as a latency cause: Stopwatch ticks when the clock is the real one (virtual time in tests records nothing).</summary>
    private long Cause(long timestamp) => ReferenceEquals(time, TimeProvider.System) ? timestamp : 0;

    private MoveReport OnReportedMove(Input.ReportMove move)
    {
        var snapshot = runtime.Slot?.Current;
        var segment = snapshot?.Segments.FirstOrDefault(s => string.Equals(s.Name, move.Segment, StringComparison.Ordinal));
        if (_settings is null || segment is null)
        {
            return new MoveReport(_settings is null ? "mobility is not configured" : $"no segment '{move.Segment}'", null, 0, false);
        }

        var (kind, workload, changed) = Observe(move.Mac, segment, move.Vtep, MoveSource.Api, move.Addresses, 0);
        if (changed)
        {
            RoutesChanged();
        }

        return new MoveReport(kind.ToString(), View(workload), workload.Sequence, workload.Frozen);
    }

    /// <param name="garpSentAt">When the worker already sent the burst's first GARP toward the segment itself (<see cref="ArrivalGarp"/>), its timestamp; else 0.</param>
    private (MoveKind Kind, Workload Workload, bool Changed) Observe(ulong mac, Segment segment, uint vtep, MoveSource source, IReadOnlyList<IPAddress> addresses, long garpSentAt)
    {
        var location = Classify(segment.Name, segment.Kind == PortKind.Vxlan ? vtep : 0);
        var (kind, workload) = _registry.Observe(mac, location, source);
        var changed = kind is MoveKind.Learned or MoveKind.Moved or MoveKind.Froze;
        foreach (var address in addresses)
        {
            if (_registry.Bind(mac, address) is { } bound)
            {
                workload = bound;
                changed = true;
            }
        }

        switch (kind)
        {
            case MoveKind.Froze:
                _frozenAlerts++;
                PushArrivalGarp();
                LogFrozen(logger, workload.MacText, _settings!.DampingMoves, _settings.DampingWindowSeconds, location);
                break;
            case MoveKind.Moved:
                if (location.Local)
                {
                    StartBurst(segment.Domain, segment.Index, vtep, [], garpSentAt);
                }

                // Logged after the input's reactions (the GARP query and the UPDATE) have been handed on.
                _moveLog.Add((workload, location, source));

                break;
            case MoveKind.Learned when location.Local && source is MoveSource.Rarp or MoveSource.Api:
                // A VM we never saw announces itself right after arriving (vMotion from a host we do not watch).
                StartBurst(segment.Domain, segment.Index, vtep, [], garpSentAt);
                break;
        }

        return (kind, workload, changed);
    }

    private WorkloadLocation Classify(string segment, uint vtep)
    {
        var settings = _settings ?? new MobilitySettings();
        if (Listed(settings.InterconnectSegments, segment))
        {
            return new WorkloadLocation(segment, vtep, false, settings.RemoteSite);
        }

        var local = settings.LocalSegments.Count == 0 || Listed(settings.LocalSegments, segment);
        return new WorkloadLocation(segment, vtep, local, settings.Site);
    }

    /// <summary>Ordinal membership without LINQ's boxed enumerator (on every signal's path).</summary>
    private static bool Listed(IReadOnlyList<string> segments, string segment)
    {
        for (var i = 0; i < segments.Count; i++)
        {
            if (string.Equals(segments[i], segment, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    // ------------------------------------------------------------------ routes

    /// <summary>Routes may have changed: plan now, or within <see cref="RouteBatchWindow"/> if a plan just ran.</summary>
    private void RoutesChanged()
    {
        if (time.GetElapsedTime(_lastRoutesUpdate) >= RouteBatchWindow)
        {
            UpdateRoutes();
        }
        else if (!_routesPending)
        {
            _routesPending = true;
            _routesTimer?.Change(RouteBatchWindow, Timeout.InfiniteTimeSpan);
        }
    }

    private void UpdateRoutes()
    {
        _routesPending = false;
        _lastRoutesUpdate = time.GetTimestamp();
        if (_settings is null || _replan || !ReferenceEquals(_planner.Policy, _policy))
        {
            // Config or VIPs changed: the full planner over every workload (mobility off: none).
            _replan = _settings is null;
            if (_settings is null)
            {
                _registry.ClearChanged();
                _planner.Reset([], [], _policy);
            }
            else
            {
                _planner.Reset(_registry, vips.Vips.Where(v => v.Up).Select(v => v.Address), _policy);
            }
        }
        else
        {
            // A move: only the workloads that changed since the last plan are re-planned.
            _planner.Update(_registry);
        }

        var desired = _planner.Desired;
        var planChanges = _planner.TakeChanged();
        _plan = new HostRoutePlan(desired, _planner.Capped, _planner.Aggregated);

        IReadOnlyDictionary<IPNetwork, Advertisement> next;
        IReadOnlyCollection<IPNetwork> changed;
        if (_pacer.PerSecond > 0)
        {
            (var paced, _waiting) = _pacer.Pace(desired, _announced);
            (next, changed) = (paced, Changed(_announced, paced));
        }
        else
        {
            // Unpaced, the sessions get the plan itself: its changes since the last hand-over are their dirty set.
            _waiting = 0;
            (next, changed) = (desired, ReferenceEquals(_announced, _lastPlanned) ? planChanges : Changed(_announced, desired));
        }

        _lastPlanned = desired;
        if (_plan.Capped > 0 && _waiting == 0)
        {
            LogCapped(logger, _plan.Capped, _policy.MaxHostRoutes);
        }

        if (changed.Count == 0)
        {
            _announced = next;
            return;
        }

        // Every session was given _announced last (RestartPeers empties it with the new sessions): each reconciles
        // only the changed prefixes; next is never mutated (it is replaced), so the sessions read it without a copy.
        _announced = next;
        Latency.Planned.RecordSince(_routeCause);
        foreach (var peer in _peers)
        {
            peer.Session.UpdateAdvertisements(next, changed, _routeCause);
        }
    }

    /// <summary>The prefixes added, changed or removed from <paramref name="before"/> to <paramref name="after"/>.</summary>
    private static List<IPNetwork> Changed(IReadOnlyDictionary<IPNetwork, Advertisement> before, IReadOnlyDictionary<IPNetwork, Advertisement> after)
    {
        var changed = new List<IPNetwork>();
        foreach (var (prefix, advertisement) in after)
        {
            if (!before.TryGetValue(prefix, out var old) || !advertisement.Equals(old))
            {
                changed.Add(prefix);
            }
        }

        foreach (var prefix in before.Keys)
        {
            if (!after.ContainsKey(prefix))
            {
                changed.Add(prefix);
            }
        }

        return changed;
    }

    // ------------------------------------------------------------------ GARP

    /// <param name="sentAt">Non-zero: the worker already sent this burst's first GARP at that timestamp (<see cref="ArrivalGarp"/>); the burst goes on from there.</param>
    private void StartBurst(int domain, int segment, uint vtep, uint[] extra, long sentAt = 0)
    {
        var count = _settings?.GarpCount ?? 0;
        if (count <= 0)
        {
            return;
        }

        var interval = TimeSpan.FromMilliseconds(_settings!.GarpIntervalMs);

        // One burst per target: the GARP is broadcast on the segment, so it serves every workload that
        // arrived there. A running burst restarts its count instead (10,000 VMs arriving on one segment
        // cause one burst, not 10,000), and sends at once unless it just did.
        GarpBurst? running = null;
        foreach (var b in _bursts)
        {
            if (b.Domain == domain && b.Segment == segment && b.Vtep == vtep && b.Extra.AsSpan().SequenceEqual(extra))
            {
                running = b;
                break;
            }
        }

        if (sentAt != 0)
        {
            // The worker sent the first GARP when it saw the RARP: the rest of the burst follows every interval.
            var burst = running ?? new GarpBurst(domain, segment, vtep, extra);
            burst.Remaining = count - 1;
            burst.LastSent = sentAt;
            if (burst.Remaining <= 0)
            {
                burst.Timer?.Dispose();
                _bursts.Remove(burst);
            }
            else if (burst.Timer is null)
            {
                burst.Timer = time.CreateTimer(_ => Post(new Input.GarpDue(burst)), null, interval, interval);
                _bursts.Add(burst);
            }
            else
            {
                burst.Timer.Change(interval, interval);
            }

            return;
        }

        if (running is not null)
        {
            // The newcomer must see a GARP sent after it arrived: at once, or (if one just left) as soon as
            // the coalescing window ends; the period restarts from that send.
            running.Remaining = count;
            var since = time.GetElapsedTime(running.LastSent);
            if (since >= CoalesceWindow)
            {
                SendBurst(running);
                running.Timer?.Change(interval, interval);
            }
            else
            {
                running.Timer?.Change(CoalesceWindow - since, interval);
            }

            return;
        }

        var started = new GarpBurst(domain, segment, vtep, extra) { Remaining = count };
        SendBurst(started);
        if (started.Remaining > 0)
        {
            var burst = started;
            burst.Timer = time.CreateTimer(_ => Post(new Input.GarpDue(burst)), null, interval, interval);
            _bursts.Add(burst);
        }
    }

    private void SendBurst(GarpBurst burst)
    {
        if (burst.Remaining <= 0)
        {
            return;
        }

        burst.Remaining--;
        burst.LastSent = time.GetTimestamp();
        if (burst.Remaining == 0 && burst.Timer is not null)
        {
            burst.Timer.Dispose();
            _bursts.Remove(burst);
        }

        if (runtime.Worker is not { } worker)
        {
            return;
        }

        var (domain, segment, vtep, extra) = (burst.Domain, burst.Segment, burst.Vtep, burst.Extra);
        var handed = System.Diagnostics.Stopwatch.GetTimestamp();
        var served = Latency.GarpQuery;
        _ = worker.Queries.Ask(context =>
            {
                served.RecordSince(handed);
                return GarpAnnouncer.Announce(context, domain, segment, vtep, extra);
            })
            .ContinueWith(t => Interlocked.Add(ref _garpFrames, t.IsCompletedSuccessfully ? t.Result : 0), TaskScheduler.Default);
    }

    private int SelfMigrate(string reason)
    {
        _selfMigrations++;
        var snapshot = runtime.Slot?.Current;
        var bursts = 0;
        if (snapshot is not null)
        {
            var upVips = vips.Vips.Where(v => v.Address.AddressFamily == AddressFamily.InterNetwork).Select(v => Ipv4Value(v.Address)).ToList();
            foreach (var gw in snapshot.L3.Gateways)
            {
                if (gw is null)
                {
                    continue;
                }

                StartBurst(gw.Domain, -1, 0, [.. upVips.Where(gw.OnLink)]);
                bursts++;
            }
        }

        foreach (var peer in _peers)
        {
            _ = peer.Session.RefreshAsync();
        }

        LogSelfMigrated(logger, reason, bursts, _peers.Count);
        return bursts;
    }

    // ------------------------------------------------------------------ configuration

    /// <summary>Applies the running document's mobility and BGP sections when a commit changed them (checked every tick and before each input that needs them).</summary>
    private void CheckConfig()
    {
        var current = config.Current;
        var snapshotVersion = runtime.SnapshotVersion;
        if (ReferenceEquals(current, _applied) && snapshotVersion == _appliedSnapshot)
        {
            return;
        }

        _applied = current;
        _appliedSnapshot = snapshotVersion;
        var document = current.Document;
        _settings = document.Mobility;
        var bgp = document.Bgp;
        if (_settings is { } settings)
        {
            _registry.Policy = new DampingPolicy { Moves = settings.DampingMoves, Window = TimeSpan.FromSeconds(settings.DampingWindowSeconds) };
            if (_pacer.PerSecond != settings.AnnouncementsPerSecond)
            {
                _pacer.PerSecond = settings.AnnouncementsPerSecond;
            }

            _stun = settings.StunGapMs > 0 && _stun?.Threshold.TotalMilliseconds != settings.StunGapMs
                ? new StunGapDetector(StunInterval, TimeSpan.FromMilliseconds(settings.StunGapMs), time.TimestampFrequency)
                : settings.StunGapMs > 0 ? _stun : null;
            _registry.Reclassify(l => Classify(l.Segment, l.Vtep));
        }
        else
        {
            _stun = null;
        }

        _policy = new HostRoutePolicy
        {
            NextHopIpv4 = bgp?.NextHop is { } nh4 ? IPAddress.Parse(nh4) : null,
            NextHopIpv6 = bgp?.NextHopIpv6 is { } nh6 ? IPAddress.Parse(nh6) : null,
            Communities = [.. (bgp?.Communities ?? []).Select(c => ConfigValidator.TryParseCommunity(c, out var community) ? community : default)],
            LargeCommunities = [.. (bgp?.LargeCommunities ?? []).Select(c => ConfigValidator.TryParseLargeCommunity(c, out var community) ? community : default)],
            MaxHostRoutes = _settings?.MaxHostRoutes ?? 0,
            Aggregates = [.. (_settings?.Aggregates ?? []).Select(IPNetwork.Parse)],
        };

        ApplyArpFilter();
        PushArrivalGarp();
        PushDhcpSnooping();
        var bgpJson = bgp is null ? "" : JsonSerializer.Serialize(bgp, ConfigDocumentJson.Options);
        if (!string.Equals(bgpJson, _appliedBgp, StringComparison.Ordinal))
        {
            _appliedBgp = bgpJson;
            RestartPeers(bgp);
        }

        _replan = true;
        UpdateRoutes();
        LogApplied(logger, _settings?.Site ?? "(off)", _settings?.LocalSegments.Count ?? 0, _settings?.InterconnectSegments.Count ?? 0, _peers.Count);
    }

    private void ApplyArpFilter()
    {
        if (runtime.Worker is not { } worker || runtime.Slot?.Current is not { } snapshot)
        {
            return;
        }

        var filter = new bool[snapshot.Segments.Length];
        if (_settings is { FilterGatewayArp: true } settings)
        {
            foreach (var segment in snapshot.Segments)
            {
                filter[segment.Index] = settings.InterconnectSegments.Contains(segment.Name, StringComparer.Ordinal);
            }
        }

        _ = worker.Queries.Ask(context =>
        {
            context.GatewayArpFilter = filter;
            return filter.Length;
        });
    }

    /// <summary>
    /// Tells the worker which segments are local and which MACs are frozen, so it answers a RARP there
    /// with the first GARP itself (<see cref="ArrivalGarp"/>); off when mobility or the GARP burst is off.
    /// </summary>
    private void PushArrivalGarp()
    {
        if (runtime.Worker is not { } worker || runtime.Slot?.Current is not { } snapshot)
        {
            return;
        }

        ArrivalGarp? arrival = null;
        if (_settings is { GarpCount: > 0 })
        {
            var local = new bool[snapshot.Segments.Length];
            foreach (var segment in snapshot.Segments)
            {
                local[segment.Index] = Classify(segment.Name, 0).Local;
            }

            var frozen = _registry.Workloads.Where(w => w.Frozen).Select(w => w.Mac);
            arrival = new ArrivalGarp(local, frozen, (long)(CoalesceWindow.TotalSeconds * time.TimestampFrequency));
        }

        _ = worker.Queries.Ask(context =>
        {
            context.ArrivalGarp = arrival;
            return 0;
        });
    }

    /// <summary>DHCPACK snooping in the worker's bridge while mobility is on (bindings as from ARP; <see cref="DhcpSnooping"/>).</summary>
    private void PushDhcpSnooping()
    {
        if (runtime.Worker is not { } worker || (_settings is not null) == (_dhcp is not null))
        {
            return;
        }

        var dhcp = _settings is null ? null : new DhcpSnooping();
        _dhcp = dhcp;
        _ = worker.Queries.Ask(context =>
        {
            context.DhcpSnooping = dhcp;
            return 0;
        });
    }

    /// <summary>The passive side: one IPv4 listener (bgp.listenPort, data-plane namespace) for the peers whose mode is passive or both.</summary>
    private void StartListener(BgpSettings bgp, string? netns)
    {
        var listening = _peers.Where(p => p.Spec.Mode is "passive" or "both").ToDictionary(p => IPAddress.Parse(p.Spec.Address), p => p.Session);
        if (listening.Count == 0)
        {
            return;
        }

        try
        {
            var socket = netns is null ? new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) : SocketIn(netns, AddressFamily.InterNetwork);
            _listener = new BgpListener(socket, new IPEndPoint(IPAddress.Any, bgp.ListenPort), address => listening.GetValueOrDefault(address));
        }
        catch (SocketException e)
        {
            LogListenFailed(logger, bgp.ListenPort, e.Message);
        }
    }

    private void RestartPeers(BgpSettings? bgp)
    {
        if (_listener is { } listener)
        {
            _listener = null;
            _ = listener.DisposeAsync().AsTask();
        }

        foreach (var old in _peers)
        {
            _ = old.Session.DisposeAsync().AsTask();
        }

        _peers.Clear();
        _announced = ImmutableDictionary<IPNetwork, Advertisement>.Empty;
        if (bgp is not null)
        {
            var netns = runtime.Started?.DataPlane.Netns;
            foreach (var spec in bgp.Peers)
            {
                var session = new BgpSession(
                    new BgpPeerOptions
                    {
                        PeerAddress = IPAddress.Parse(spec.Address),
                        PeerPort = spec.Port,
                        LocalAddress = spec.LocalAddress is { } local ? IPAddress.Parse(local) : null,
                        NextHopIpv4 = bgp.NextHop is { } nh4 ? IPAddress.Parse(nh4) : null,
                        NextHopIpv6 = bgp.NextHopIpv6 is { } nh6 ? IPAddress.Parse(nh6) : null,
                        SocketFactory = netns is null ? null : family => SocketIn(netns, family),
                        Latency = Latency.Bgp,
                        Loop = _eventLoop,
                        Mode = spec.Mode switch { "passive" => BgpConnectMode.Passive, "both" => BgpConnectMode.Both, _ => BgpConnectMode.Active },
                        Fsm = new BgpFsmOptions
                        {
                            LocalAs = bgp.LocalAs,
                            PeerAs = spec.PeerAs,
                            RouterId = IPAddress.Parse(bgp.RouterId),
                            HoldTime = TimeSpan.FromSeconds(spec.HoldTimeSeconds),
                            ConnectRetryInitial = TimeSpan.FromSeconds(spec.ConnectRetrySeconds),
                        },
                    },
                    time);
                session.Start();
                _peers.Add(new Peer(spec.Name, spec, session));
            }

            LogPeers(logger, _peers.Count, bgp.LocalAs, netns ?? "(own)");
            StartListener(bgp, netns);
        }

        Peers = [.. _peers.Select(p => (p.Name, p.Spec, p.Session))];
    }

    /// <summary>
    /// On a loop thread as it starts: with the worker busy-polling on its own CPU, the loop joins it there
    /// (<see cref="DataPlaneWorker.ShareCpu"/>), so the worker → mobility loop → session loop hops are preemptions on
    /// a CPU that never idles. Returns where the thread runs, for the latency view.
    /// </summary>
    private string Placement() => runtime.Worker?.ShareCpu() is >= 0 and var cpu ? $", on the worker's CPU {cpu}" : "";

    /// <summary>A TCP socket in the data-plane namespace (setns on this thread only, restored before returning).</summary>
    private static Socket SocketIn(string netns, AddressFamily family)
    {
        using var scope = NetworkNamespace.Enter(netns);
        return new Socket(family, SocketType.Stream, ProtocolType.Tcp);
    }

    // ------------------------------------------------------------------ views

    /// <summary>
    /// Publishes what the API shows: the loop copies references to its immutable pieces (workloads, moves,
    /// the announced set, which it replaces and never mutates); the views are built only when someone reads
    /// them, so a flood of moves does not format 10,000 workloads per input.
    /// </summary>
    private void Publish()
    {
        var announced = _announced;
        var plan = _plan;
        var (enabled, site, waiting, signals, ignored, discarded) = (_settings is not null, _settings?.Site, _waiting, _signals, _ignored, runtime.Mobility.Discarded);
        var (garps, self, gaps, alerts) = (Interlocked.Read(ref _garpFrames), _selfMigrations, _stun?.GapsDetected ?? 0, _frozenAlerts);
        var (dhcpAcks, dhcpMalformed, dhcpNoLocation) = ((_dhcp?.Acks ?? 0) + (_dhcp?.Replies6 ?? 0), _dhcp?.Malformed ?? 0, _dhcp?.NoLocation ?? 0);

        // Most inputs (timer ticks, stun checks, keepalive-only rounds) change nothing the status shows: no new view.
        var published = new PublishedState(
            _registry.Version, announced, plan.Capped, plan.Aggregated.Count, waiting, enabled, site, signals, ignored, discarded, garps, self, gaps, alerts, dhcpAcks, dhcpMalformed, dhcpNoLocation);
        if (published == _published)
        {
            return;
        }

        _published = published;
        var workloads = _registry.Snapshot.Values;
        var history = _registry.History;
        _status = new Lazy<MobilityStatus>(() => new MobilityStatus(
            enabled,
            site,
            [.. workloads.Select(View).OrderBy(w => w.Mac, StringComparer.Ordinal)],
            [.. history.Reverse().Select(m => new MoveView(m.At, m.MacText, m.From?.ToString(), m.To.ToString(), m.Sequence, m.Source.ToString(), m.Kind.ToString()))],
            [.. announced.Values.OrderBy(a => a.Prefix.ToString(), StringComparer.Ordinal).Select(RouteView.Of)],
            plan.Capped,
            waiting,
            [.. plan.Aggregated.Select(p => p.ToString())],
            signals,
            ignored,
            discarded,
            garps,
            self,
            gaps,
            alerts,
            dhcpAcks,
            dhcpMalformed,
            dhcpNoLocation));
    }

    private static WorkloadView View(Workload w) => new(
        w.MacText, [.. w.Addresses.Select(a => a.ToString())], w.Location.Site, w.Location.Segment, w.Location.VtepText, w.Location.Local, w.Sequence, w.Frozen, w.Since);

    private static IPAddress Ipv4(uint value) => new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);

    private static uint Ipv4Value(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }

    private static IPAddress Ipv6(ulong hi, ulong lo)
    {
        var bytes = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes, hi);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), lo);
        return new IPAddress(bytes);
    }

    private sealed record Peer(string Name, BgpPeerSpec Spec, BgpSession Session);

    /// <summary>What the last published status was made of (<see cref="Publish"/> skips an input that changed none of it).</summary>
    private readonly record struct PublishedState(
        long Registry,
        IReadOnlyDictionary<IPNetwork, Advertisement> Announced,
        int Capped,
        int Aggregated,
        int Waiting,
        bool Enabled,
        string? Site,
        long Signals,
        long Ignored,
        long Discarded,
        long Garps,
        long SelfMigrations,
        long Gaps,
        long Alerts,
        long DhcpAcks,
        long DhcpMalformed,
        long DhcpNoLocation);

    private sealed class GarpBurst(int domain, int segment, uint vtep, uint[] extra)
    {
        public int Domain { get; } = domain;

        public int Segment { get; } = segment;

        public uint Vtep { get; } = vtep;

        public uint[] Extra { get; } = extra;

        public int Remaining { get; set; }

        public long LastSent { get; set; }

        public ITimer? Timer { get; set; }
    }

    private abstract record Input
    {
        public sealed record Signals : Input
        {
            public static readonly Signals Instance = new();
        }

        public sealed record Tick : Input;

        public sealed record VipsChanged : Input;

        public sealed record FlushRoutes : Input;

        /// <summary>Publish the status and log the moves (queued behind the sessions' sends).</summary>
        public sealed record Settle : Input
        {
            public static readonly Settle Instance = new();
        }

        public sealed record StunCheck(long Timestamp) : Input;

        public sealed record GarpDue(GarpBurst Burst) : Input;

        public sealed record ReportMove(ulong Mac, string Segment, uint Vtep, IReadOnlyList<IPAddress> Addresses, TaskCompletionSource<MoveReport> Done) : Input;

        public sealed record SelfMigrated(string Reason, TaskCompletionSource<int> Done) : Input;

        public sealed record Unfreeze(ulong Mac, TaskCompletionSource<bool> Done) : Input;
    }

    [LoggerMessage(EventId = LogEvents.WorkloadMoved, Level = LogLevel.Information, Message = "Workload {Mac} moved to {Location} (sequence {Sequence}, from {Source})")]
    private static partial void LogMoved(ILogger logger, string mac, long sequence, WorkloadLocation location, MoveSource source);

    [LoggerMessage(EventId = LogEvents.WorkloadFrozen, Level = LogLevel.Warning, Message = "Duplicate MAC {Mac}: {Moves} moves within {Seconds} s (last toward {Location}); frozen and no longer advertised until unfrozen")]
    private static partial void LogFrozen(ILogger logger, string mac, int moves, int seconds, WorkloadLocation location);

    [LoggerMessage(EventId = LogEvents.SelfMigrated, Level = LogLevel.Warning, Message = "Own migration ({Reason}): GARP bursts in {Domains} domains, BGP refresh toward {Peers} peers")]
    private static partial void LogSelfMigrated(ILogger logger, string reason, int domains, int peers);

    [LoggerMessage(EventId = LogEvents.MobilityApplied, Level = LogLevel.Information, Message = "Mobility applied: site {Site}, {Local} local and {Interconnect} interconnect segments, {Peers} BGP peers")]
    private static partial void LogApplied(ILogger logger, string site, int local, int interconnect, int peers);

    [LoggerMessage(EventId = LogEvents.HostRoutesCapped, Level = LogLevel.Warning, Message = "{Capped} host routes not announced: the cap is {Cap}")]
    private static partial void LogCapped(ILogger logger, int capped, int cap);

    [LoggerMessage(EventId = LogEvents.BgpPeersStarted, Level = LogLevel.Information, Message = "BGP: {Peers} sessions as AS {LocalAs}, sockets in namespace {Netns}")]
    private static partial void LogPeers(ILogger logger, int peers, uint localAs, string netns);

    [LoggerMessage(EventId = LogEvents.BgpListenFailed, Level = LogLevel.Error, Message = "BGP: cannot listen on TCP port {Port} for passive peers: {Reason}")]
    private static partial void LogListenFailed(ILogger logger, int port, string reason);

    [LoggerMessage(EventId = LogEvents.WorkloadMoved + 90, Level = LogLevel.Error, Message = "Mobility input {Input} failed")]
    private static partial void LogFailed(ILogger logger, string input, Exception exception);
}

/// <summary>A route as the API shows it.</summary>
public sealed record RouteView(string Prefix, string? NextHop, IReadOnlyList<string> Communities, IReadOnlyList<string> LargeCommunities)
{
    public static RouteView Of(Advertisement a) => new(
        a.Prefix.ToString(), a.NextHop?.ToString(), [.. a.Communities.Select(c => $"{c.Value >> 16}:{c.Value & 0xFFFF}")], [.. a.LargeCommunities.Select(c => c.ToString())]);

    public static RouteView Of(ReceivedRoute r) => new(
        r.Prefix.ToString(), r.NextHop?.ToString(), [.. r.Communities.Select(c => $"{c.Value >> 16}:{c.Value & 0xFFFF}")], [.. r.LargeCommunities.Select(c => c.ToString())]);
}

public sealed record WorkloadView(string Mac, IReadOnlyList<string> Addresses, string Site, string Segment, string? Vtep, bool Local, long Sequence, bool Frozen, DateTimeOffset Since);

public sealed record MoveView(DateTimeOffset At, string Mac, string? From, string To, long Sequence, string Source, string Kind);

/// <param name="Outcome">learned, unchanged, moved, froze, ignored (frozen) — or why nothing happened.</param>
public sealed record MoveReport(string Outcome, WorkloadView? Workload, long Sequence, bool Frozen);

/// <param name="Capped">Host routes left out by the cap.</param>
/// <param name="Waiting">New prefixes held back by the rate limit.</param>
/// <param name="DhcpAcks">DHCPACKs and DHCPv6 Replies the data plane snooped into bindings; <paramref name="DhcpMalformed"/>: UDP 67→68 or 547→546 that did not parse (ignored); <paramref name="DhcpNoLocation"/>: ACKs or Replies for a client MAC not learned yet.</param>
public sealed record MobilityStatus(
    bool Enabled,
    string? Site,
    IReadOnlyList<WorkloadView> Workloads,
    IReadOnlyList<MoveView> Moves,
    IReadOnlyList<RouteView> Announced,
    int Capped,
    int Waiting,
    IReadOnlyList<string> Aggregated,
    long Signals,
    long SignalsIgnored,
    long SignalsDiscarded,
    long GarpFrames,
    long SelfMigrations,
    long StunGaps,
    long DuplicateAlerts,
    long DhcpAcks,
    long DhcpMalformed,
    long DhcpNoLocation)
{
    public static readonly MobilityStatus Empty = new(false, null, [], [], [], 0, 0, [], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}
