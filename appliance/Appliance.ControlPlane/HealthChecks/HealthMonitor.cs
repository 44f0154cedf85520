using System.Net;
using Isthmus.ControlPlane.Logging;
using Isthmus.ControlPlane.Mobility;
using Isthmus.DataPlane.LoadBalancer;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.HealthChecks;

/// <summary>One backend's check state, for the API.</summary>
public sealed record BackendHealthView(
    string Key, string Pool, string Address, int Port, string Type, bool Up, long Checks, long Successes, long Failures,
    int ConsecutiveSuccesses, int ConsecutiveFailures, string? LastResult, DateTimeOffset? LastCheck, DateTimeOffset? LastChange);

/// <summary>One virtual server's state: up while at least one backend is enabled, not draining and passing its checks.</summary>
public sealed record VipHealthState(string VirtualServer, IPAddress Vip, string Protocol, string Ports, bool Up, int UpBackends, int Backends);

/// <summary>One state change of a backend or a virtual server (the API's history).</summary>
public sealed record HealthEvent(DateTimeOffset Time, string Kind, string Name, string From, string To, string Detail);

/// <summary>
/// Active health checks of every pool that has one: one timer per backend on the injected
/// <see cref="TimeProvider"/>; each check is bounded by its timeout, fed to a rise/fall
/// <see cref="HealthStateMachine"/>, and the next one is scheduled interval ± jitter later (a
/// deterministic per-backend random sequence, so checks of many backends do not synchronise and
/// tests are repeatable). A backend state change raises <see cref="BackendsChanged"/>: the
/// runtime recompiles only the load balancer's tables and swaps the snapshot
/// (<see cref="SnapshotCompiler.WithBackendHealth"/>). It is also the load balancer's
/// <see cref="IVipHealth"/> (the seam mobility defined): a VIP address is up while any virtual
/// server on it is up; <see cref="Changed"/> is raised (outside the lock, after the data plane has
/// the new state) when a VIP appears, disappears, or goes up or down.
/// </summary>
/// <remarks>
/// Threading: timers fire on thread-pool threads; one lock guards the check table, counters and
/// history; events are raised outside it. <see cref="Configure"/> is called for every published
/// program: checks of unchanged backends keep their state and schedule.
/// </remarks>
public sealed partial class HealthMonitor : IVipHealth, IDisposable
{
    private const int HistoryCapacity = 1000;
    private readonly TimeProvider _time;
    private readonly ILogger<HealthMonitor> _logger;
    private readonly IHealthProbe _probe;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, BackendCheck> _checks = new(StringComparer.Ordinal);
    private readonly Queue<HealthEvent> _history = new();
    private DataPlaneProgram _program = new();
    private IReadOnlyList<VipHealthState> _vips = [];
    private bool _disposed;

    public HealthMonitor(TimeProvider time, ILogger<HealthMonitor> logger, IHealthProbe? probe = null)
    {
        _time = time;
        _logger = logger;
        _probe = probe ?? new SocketHealthProbe(() => Netns);
    }

    /// <summary>The data plane's network namespace, where probes open their sockets (null: the process's own).</summary>
    public string? Netns { get; set; }

    /// <summary>Raised (outside the lock) when a backend goes up or down: the runtime republishes with <see cref="Down"/>.</summary>
    public event EventHandler? BackendsChanged;

    /// <summary>A VIP appeared, disappeared, or went up or down (<see cref="IVipHealth"/>).</summary>
    public event Action? Changed;

    /// <summary>Health keys (<see cref="LbBackend.HealthKey"/>) of the backends that failed their checks.</summary>
    public IReadOnlySet<string> Down
    {
        get
        {
            lock (_gate)
            {
                return _checks.Values.Where(c => !c.Machine.Up).Select(c => c.Key).ToHashSet(StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Every configured virtual server's state now.</summary>
    public IReadOnlyList<VipHealthState> VirtualServers => Volatile.Read(ref _vips);

    /// <summary>Every VIP address: up while any virtual server on it is up (<see cref="IVipHealth"/>).</summary>
    public IReadOnlyList<VipStatus> Vips => [.. VirtualServers.GroupBy(v => v.Vip).Select(g => new VipStatus(g.Key, g.Any(v => v.Up)))];

    /// <summary>
    /// Adopts a program: starts checks for new backends, stops those of removed ones, restarts a
    /// backend's schedule when its check changed (keeping its up/down state), and recomputes the
    /// VIP states.
    /// </summary>
    public void Configure(DataPlaneProgram program)
    {
        bool changes;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _program = program;
            var wanted = new Dictionary<string, HealthTarget>(StringComparer.Ordinal);
            foreach (var pool in program.LoadBalancer.Pools)
            {
                if (pool.HealthCheck is not { } check)
                {
                    continue;
                }

                foreach (var b in pool.Backends)
                {
                    if (!IPAddress.TryParse(b.Address, out var address) || (check.Port ?? b.Port) is not { } port)
                    {
                        continue;
                    }

                    var key = LoadBalancerTables.HealthKey(pool.Name, Packets.Ipv4Address.Parse(b.Address).Value, (ushort)(b.Port ?? 0));
                    wanted[key] = new HealthTarget(key, address, port, check);
                }
            }

            foreach (var key in _checks.Keys.Where(k => !wanted.ContainsKey(k)).ToList())
            {
                _checks[key].Dispose();
                _checks.Remove(key);
            }

            foreach (var (key, target) in wanted)
            {
                if (_checks.TryGetValue(key, out var existing))
                {
                    if (existing.Target == target)
                    {
                        continue;
                    }

                    existing.Dispose();
                    _checks[key] = new BackendCheck(this, target, existing.Machine.Up);
                }
                else
                {
                    _checks[key] = new BackendCheck(this, target, up: true);
                }

                _checks[key].Start();
            }

            changes = RecomputeVipsLocked();
        }

        Raise(changes);
    }

    /// <summary>Every checked backend's state and counters.</summary>
    public IReadOnlyList<BackendHealthView> Backends()
    {
        lock (_gate)
        {
            return [.. _checks.Values.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => c.View())];
        }
    }

    /// <summary>The last state changes, oldest first (at most 1000).</summary>
    public IReadOnlyList<HealthEvent> History()
    {
        lock (_gate)
        {
            return [.. _history];
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            foreach (var check in _checks.Values)
            {
                check.Dispose();
            }

            _checks.Clear();
        }
    }

    private void Record(HealthEvent e)
    {
        if (_history.Count == HistoryCapacity)
        {
            _history.Dequeue();
        }

        _history.Enqueue(e);
    }

    /// <summary>Recomputes every virtual server's state; true when the VIP view (addresses or their up/down) changed.</summary>
    private bool RecomputeVipsLocked()
    {
        var vipsBefore = Vips;
        var previous = _vips.ToDictionary(v => v.VirtualServer, StringComparer.Ordinal);
        var pools = _program.LoadBalancer.Pools.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var next = new List<VipHealthState>();
        foreach (var vs in _program.LoadBalancer.VirtualServers)
        {
            if (!pools.TryGetValue(vs.Pool, out var pool) || !IPAddress.TryParse(vs.Address, out var vip))
            {
                continue;
            }

            var up = 0;
            foreach (var b in pool.Backends)
            {
                var key = LoadBalancerTables.HealthKey(pool.Name, Packets.Ipv4Address.TryParse(b.Address, out var a) ? a.Value : 0, (ushort)(b.Port ?? 0));
                if (b.Enabled && !b.Drain && (!_checks.TryGetValue(key, out var check) || check.Machine.Up))
                {
                    up++;
                }
            }

            var state = new VipHealthState(vs.Name, vip, vs.Protocol, vs.Ports, up > 0, up, pool.Backends.Count);
            next.Add(state);
            var wasUp = !previous.TryGetValue(vs.Name, out var before) || before.Up;
            if (wasUp != state.Up)
            {
                Record(new HealthEvent(_time.GetUtcNow(), "virtual-server", vs.Name, wasUp ? "up" : "down", state.Up ? "up" : "down", $"{up} of {pool.Backends.Count} backends take new flows"));
                if (state.Up)
                {
                    LogVipUp(_logger, vs.Name, vs.Address, up);
                }
                else
                {
                    LogVipDown(_logger, vs.Name, vs.Address);
                }
            }
        }

        Volatile.Write(ref _vips, next);
        var after = Vips;
        return vipsBefore.Count != after.Count || vipsBefore.Zip(after).Any(p => !p.First.Address.Equals(p.Second.Address) || p.First.Up != p.Second.Up);
    }

    private void Raise(bool changed)
    {
        if (changed)
        {
            Changed?.Invoke();
        }
    }

    /// <summary>A check finished: count it, feed the state machine, and on a change tell the runtime and the VIP listeners.</summary>
    private void Completed(BackendCheck check, ProbeResult result)
    {
        bool changed;
        var vipChanges = false;
        lock (_gate)
        {
            if (_disposed || !_checks.TryGetValue(check.Key, out var current) || !ReferenceEquals(current, check))
            {
                return;
            }

            var now = _time.GetUtcNow();
            check.Checks++;
            if (result.Healthy)
            {
                check.Successes++;
            }
            else
            {
                check.Failures++;
            }

            check.LastResult = result.Detail;
            check.LastCheck = now;
            changed = check.Machine.Observe(result.Healthy);
            if (changed)
            {
                check.LastChange = now;
                var to = check.Machine.Up ? "up" : "down";
                Record(new HealthEvent(now, "backend", check.Key, check.Machine.Up ? "down" : "up", to, result.Detail));
                if (check.Machine.Up)
                {
                    LogBackendUp(_logger, check.Key, check.Machine.Rise, result.Detail);
                }
                else
                {
                    LogBackendDown(_logger, check.Key, check.Machine.Fall, result.Detail);
                }
            }

            check.ScheduleNext();
        }

        if (changed)
        {
            // The data plane first, then the listeners, so a VIP announced up already forwards.
            BackendsChanged?.Invoke(this, EventArgs.Empty);
            lock (_gate)
            {
                vipChanges = RecomputeVipsLocked();
            }

            Raise(vipChanges);
        }
    }

    [LoggerMessage(EventId = LogEvents.BackendDown, Level = LogLevel.Warning, Message = "Backend {Backend} is down after {Fall} failed checks: {Detail}")]
    private static partial void LogBackendDown(ILogger logger, string backend, int fall, string detail);

    [LoggerMessage(EventId = LogEvents.BackendUp, Level = LogLevel.Information, Message = "Backend {Backend} is up after {Rise} passed checks: {Detail}")]
    private static partial void LogBackendUp(ILogger logger, string backend, int rise, string detail);

    [LoggerMessage(EventId = LogEvents.VipDown, Level = LogLevel.Warning, Message = "Virtual server {Name} ({Vip}) is down: no backend takes new flows")]
    private static partial void LogVipDown(ILogger logger, string name, string vip);

    [LoggerMessage(EventId = LogEvents.VipUp, Level = LogLevel.Information, Message = "Virtual server {Name} ({Vip}) is up: {Backends} backends take new flows")]
    private static partial void LogVipUp(ILogger logger, string name, string vip, int backends);

    /// <summary>One backend's check: its timer, state machine and counters (guarded by the monitor's lock).</summary>
    private sealed class BackendCheck : IDisposable
    {
        private readonly HealthMonitor _monitor;
        private readonly Random _jitter;
        private readonly CancellationTokenSource _stop = new();
        private ITimer? _timer;

        public BackendCheck(HealthMonitor monitor, HealthTarget target, bool up)
        {
            _monitor = monitor;
            Target = target;
            Machine = new HealthStateMachine(target.Check.Rise, target.Check.Fall);
            if (!up)
            {
                // Carry a down state over a check change: it must rise again.
                for (var i = 0; i < Machine.Fall; i++)
                {
                    Machine.Observe(false);
                }
            }

            // Deterministic per backend (FNV-1a of the key), different between backends.
            _jitter = new Random(unchecked((int)MaglevHash.Name(target.Key)));
        }

        public string Key => Target.Key;

        public HealthTarget Target { get; }

        public HealthStateMachine Machine { get; }

        public long Checks;
        public long Successes;
        public long Failures;
        public string? LastResult;
        public DateTimeOffset? LastCheck;
        public DateTimeOffset? LastChange;

        /// <summary>The first check comes after a random fraction of the interval, so a pool's checks start spread out.</summary>
        public void Start()
        {
            _timer = _monitor._time.CreateTimer(static s => ((BackendCheck)s!).Fire(), this, TimeSpan.FromMilliseconds(_jitter.NextDouble() * Target.Check.IntervalMs), Timeout.InfiniteTimeSpan);
        }

        /// <summary>Interval ± jitter% from the end of this check.</summary>
        public void ScheduleNext()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            var check = Target.Check;
            var spread = check.IntervalMs * check.JitterPercent / 100.0;
            var delay = check.IntervalMs + ((_jitter.NextDouble() * 2) - 1) * spread;
            _timer?.Change(TimeSpan.FromMilliseconds(delay), Timeout.InfiniteTimeSpan);
        }

        public BackendHealthView View() =>
            new(Key, Key[..Key.LastIndexOf('/')], Target.Address.ToString(), Target.Port, Target.Check.Type, Machine.Up, Checks, Successes, Failures,
                Machine.Successes, Machine.Failures, LastResult, LastCheck, LastChange);

        public void Dispose()
        {
            _stop.Cancel();
            _timer?.Dispose();
        }

        private void Fire() => _ = RunAsync();

        private async Task RunAsync()
        {
            ProbeResult result;
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(Target.Check.TimeoutMs), _monitor._time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _stop.Token);
            try
            {
                result = await _monitor._probe.ProbeAsync(Target, linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                result = new ProbeResult(false, $"timeout after {Target.Check.TimeoutMs} ms");
            }
#pragma warning disable CA1031 // A probe's unexpected failure is a failed check, never a dead monitor.
            catch (Exception e)
#pragma warning restore CA1031
            {
                result = new ProbeResult(false, e.GetType().Name + ": " + e.Message);
            }

            _monitor.Completed(this, result);
        }
    }
}
