using System.Collections.Concurrent;
using Isthmus.ControlPlane.HealthChecks;
using Isthmus.ControlPlane.Mobility;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isthmus.ControlPlane.Tests.HealthChecks;

/// <summary>The rise/fall state machine and the monitor's schedule, in virtual time with a scripted probe.</summary>
public class HealthMonitorTests
{
    private const int Interval = 1000;
    private const int Jitter = 10;
    private const int Rise = 2;
    private const int Fall = 3;
    private static readonly string[] Keys = ["web/10.30.0.11:80", "web/10.30.0.12:80", "web/10.30.0.13:80"];

    /// <summary>Answers from a table the test flips; records when each backend was checked.</summary>
    private sealed class ScriptedProbe(ManualTimeProvider time) : IHealthProbe
    {
        public ConcurrentDictionary<string, bool> Healthy { get; } = new();

        public ConcurrentDictionary<string, List<DateTimeOffset>> Calls { get; } = new();

        public bool Hang { get; set; }

        public Task<ProbeResult> ProbeAsync(HealthTarget target, CancellationToken cancellationToken)
        {
            Calls.GetOrAdd(target.Key, _ => []).Add(time.GetUtcNow());
            if (Hang)
            {
                var never = new TaskCompletionSource<ProbeResult>();
                cancellationToken.Register(() => never.TrySetCanceled(cancellationToken));
                return never.Task;
            }

            var ok = Healthy.GetValueOrDefault(target.Key, true);
            return Task.FromResult(new ProbeResult(ok, ok ? "connected" : "ConnectionRefused"));
        }
    }

    private static DataPlaneProgram Program(string type = "tcp") => new()
    {
        LoadBalancer = new LoadBalancerSpec
        {
            VirtualServers = [new VirtualServerSpec { Name = "web", Address = "10.20.0.100", Ports = "80", Pool = "web" }],
            Pools =
            [
                new PoolSpec
                {
                    Name = "web",
                    Backends = [new BackendSpec { Address = "10.30.0.11", Port = 80 }, new BackendSpec { Address = "10.30.0.12", Port = 80 }, new BackendSpec { Address = "10.30.0.13", Port = 80 }],
                    HealthCheck = new HealthCheckSpec { Type = type, IntervalMs = Interval, TimeoutMs = 500, Rise = Rise, Fall = Fall, JitterPercent = Jitter },
                },
            ],
        },
    };

    private static void Run(ManualTimeProvider time, int milliseconds)
    {
        for (var t = 0; t < milliseconds; t += 50)
        {
            time.Advance(TimeSpan.FromMilliseconds(50));
        }
    }

    [Fact]
    public void Rise_and_fall_count_consecutive_results()
    {
        var m = new HealthStateMachine(rise: 2, fall: 3);
        Assert.True(m.Up);
        Assert.False(m.Observe(false));
        Assert.False(m.Observe(false));
        Assert.False(m.Observe(true)); // a success resets the failure streak
        Assert.False(m.Observe(false));
        Assert.False(m.Observe(false));
        Assert.True(m.Observe(false));
        Assert.False(m.Up);
        Assert.False(m.Observe(true));
        Assert.False(m.Observe(false)); // a failure resets the success streak
        Assert.False(m.Observe(true));
        Assert.True(m.Observe(true));
        Assert.True(m.Up);
    }

    [Fact]
    public void A_failing_backend_goes_down_within_fall_intervals_and_comes_back_after_rise_checks()
    {
        var time = new ManualTimeProvider();
        var probe = new ScriptedProbe(time);
        using var monitor = new HealthMonitor(time, NullLogger<HealthMonitor>.Instance, probe);
        var changes = 0;
        monitor.BackendsChanged += (_, _) => changes++;
        monitor.Configure(Program());
        Run(time, 5000);
        Assert.Empty(monitor.Down);
        Assert.Equal(0, changes);

        probe.Healthy[Keys[0]] = false;
        var failedAt = time.GetUtcNow();
        // The next check comes at most interval + jitter later; then fall − 1 more intervals.
        var bound = (Interval * (1 + (Jitter / 100.0))) * Fall;
        while (!monitor.Down.Contains(Keys[0]))
        {
            Run(time, 50);
            Assert.True((time.GetUtcNow() - failedAt).TotalMilliseconds <= bound, "not down within fall × (interval + jitter)");
        }

        Assert.Equal(1, changes);
        Assert.True(monitor.VirtualServers.Single().Up);
        Assert.Equal(2, monitor.VirtualServers.Single().UpBackends);
        var down = monitor.Backends().Single(b => b.Key == Keys[0]);
        Assert.False(down.Up);
        Assert.Equal("ConnectionRefused", down.LastResult);

        probe.Healthy[Keys[0]] = true;
        var healedAt = time.GetUtcNow();
        var checksBefore = probe.Calls[Keys[0]].Count;
        while (monitor.Down.Contains(Keys[0]))
        {
            Run(time, 50);
            Assert.True((time.GetUtcNow() - healedAt).TotalMilliseconds <= Interval * (1 + (Jitter / 100.0)) * Rise, "not up within rise × (interval + jitter)");
        }

        Assert.Equal(Rise, probe.Calls[Keys[0]].Count - checksBefore);
        Assert.Equal(2, changes);
        Assert.Contains(monitor.History(), e => e.Kind == "backend" && e.Name == Keys[0] && e.To == "down");
        Assert.Contains(monitor.History(), e => e.Kind == "backend" && e.Name == Keys[0] && e.To == "up");
    }

    [Fact]
    public void Checks_are_jittered_within_the_bound_and_backends_do_not_synchronise()
    {
        var time = new ManualTimeProvider();
        var probe = new ScriptedProbe(time);
        using var monitor = new HealthMonitor(time, NullLogger<HealthMonitor>.Instance, probe);
        monitor.Configure(Program());
        Run(time, 30_000);
        var gaps = new List<double>();
        foreach (var key in Keys)
        {
            var calls = probe.Calls[key];
            Assert.True(calls.Count >= 25);
            for (var i = 1; i < calls.Count; i++)
            {
                var gap = (calls[i] - calls[i - 1]).TotalMilliseconds;
                // Virtual time advances in 50 ms steps, so a timer fires up to 50 ms late.
                Assert.InRange(gap, Interval * (1 - (Jitter / 100.0)) - 50, Interval * (1 + (Jitter / 100.0)) + 50);
                gaps.Add(gap);
            }
        }

        Assert.True(gaps.Distinct().Count() > 5, "intervals are not jittered");
        Assert.NotEqual(probe.Calls[Keys[0]][5], probe.Calls[Keys[1]][5]);
    }

    [Fact]
    public void The_vip_goes_down_when_every_backend_is_down_and_listeners_hear_it()
    {
        var time = new ManualTimeProvider();
        var probe = new ScriptedProbe(time);
        using var monitor = new HealthMonitor(time, NullLogger<HealthMonitor>.Instance, probe);
        var events = new List<IReadOnlyList<VipStatus>>();
        monitor.Changed += () => events.Add(monitor.Vips);
        monitor.Configure(Program());
        Assert.True(Assert.Single(Assert.Single(events)).Up); // the VIP appeared, up
        events.Clear();

        foreach (var key in Keys)
        {
            probe.Healthy[key] = false;
        }

        Run(time, 5000);
        Assert.Equal(3, monitor.Down.Count);
        Assert.False(Assert.Single(Assert.Single(events)).Up);
        Assert.False(monitor.VirtualServers.Single().Up);
        Assert.Contains(monitor.History(), e => e.Kind == "virtual-server" && e.To == "down");

        probe.Healthy[Keys[2]] = true;
        Run(time, 3000);
        Assert.Equal(2, events.Count);
        var vip = Assert.Single(events[1]);
        Assert.True(vip.Up);
        Assert.Equal("10.20.0.100", vip.Address.ToString());
    }

    [Fact]
    public void A_check_that_does_not_answer_within_its_timeout_fails()
    {
        var time = new ManualTimeProvider();
        var probe = new ScriptedProbe(time) { Hang = true };
        using var monitor = new HealthMonitor(time, NullLogger<HealthMonitor>.Instance, probe);
        monitor.Configure(Program());
        // A cancelled probe's continuation may run on a thread-pool thread: let each round of
        // checks finish (bounded real-time wait) before moving virtual time on.
        for (var i = 0; i < 20 && monitor.Down.Count < 3; i++)
        {
            var before = monitor.Backends().Sum(b => b.Checks);
            Run(time, 1600); // first checks start within one interval; each times out 500 ms later
            SpinWait.SpinUntil(() => monitor.Backends().Sum(b => b.Checks) >= before + 3, TimeSpan.FromSeconds(10));
        }

        Assert.True(monitor.Down.Count == 3, string.Join("; ", monitor.Backends().Select(b => $"{b.Key} {b.Up} {b.Checks} {b.LastResult}")) + " calls " + string.Join(",", probe.Calls.Select(c => c.Value.Count)));
        Assert.All(monitor.Backends(), b => Assert.Equal("timeout after 500 ms", b.LastResult));
    }

    [Fact]
    public void A_commit_that_keeps_a_backend_keeps_its_state_and_one_that_removes_it_stops_its_checks()
    {
        var time = new ManualTimeProvider();
        var probe = new ScriptedProbe(time);
        using var monitor = new HealthMonitor(time, NullLogger<HealthMonitor>.Instance, probe);
        monitor.Configure(Program());
        probe.Healthy[Keys[1]] = false;
        Run(time, 5000);
        Assert.Contains(Keys[1], monitor.Down);

        var program = Program();
        var pool = program.LoadBalancer.Pools[0];
        monitor.Configure(program with { LoadBalancer = program.LoadBalancer with { Pools = [pool with { Backends = pool.Backends.Take(2).ToList() }] } });
        Assert.Contains(Keys[1], monitor.Down);
        var calls = probe.Calls[Keys[2]].Count;
        Run(time, 5000);
        Assert.Equal(calls, probe.Calls[Keys[2]].Count);
        Assert.Equal(2, monitor.Backends().Count);
    }
}
