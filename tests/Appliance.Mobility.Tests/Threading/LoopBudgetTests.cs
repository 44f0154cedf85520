using System.Globalization;
using Isthmus.Mobility.Threading;
using Isthmus.Testing;

namespace Isthmus.Mobility.Tests.Threading;

/// <summary>
/// The budget of a loop placed above the worker on its CPU (dataPlane.loopPlacement "aboveWorker"), in virtual time:
/// demoted once it worked past the budget without blocking, restored only when it goes idle after the cooldown; short
/// busy periods never add up. Then the real thing on an <see cref="EventLoop"/>: its policy and CPUs read back from the
/// kernel at start, demoted and restored (root: CI=true fails without CAP_SYS_NICE).
/// </summary>
public sealed class LoopBudgetTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan Cooldown = TimeSpan.FromMilliseconds(100);

    [Fact]
    public void Work_within_the_budget_never_demotes_however_many_busy_periods()
    {
        var clock = new ManualTimeProvider();
        var calls = new List<string>();
        var budget = new LoopBudget(clock, Budget, Cooldown, () => calls.Add("demote"), () => calls.Add("restore"));
        for (var i = 0; i < 1000; i++)
        {
            budget.Woke();
            clock.Advance(TimeSpan.FromMilliseconds(1.9));
            budget.Ran();
            budget.GoingIdle();
            clock.Advance(TimeSpan.FromMilliseconds(0.1));
        }

        Assert.Empty(calls);
        Assert.Equal(0, budget.Demotions);
        Assert.False(budget.Demoted);
    }

    [Fact]
    public void Past_the_budget_it_is_demoted_once_and_restored_when_idle_after_the_cooldown()
    {
        var clock = new ManualTimeProvider();
        var calls = new List<string>();
        var budget = new LoopBudget(clock, Budget, Cooldown, () => calls.Add("demote"), () => calls.Add("restore"));

        budget.Woke();
        clock.Advance(TimeSpan.FromMilliseconds(1));
        budget.Ran();
        Assert.Empty(calls);
        clock.Advance(TimeSpan.FromMilliseconds(1.5));
        budget.Ran();
        Assert.Equal(["demote"], calls);
        Assert.True(budget.Demoted);

        // Still busy: no second demotion.
        clock.Advance(TimeSpan.FromMilliseconds(50));
        budget.Ran();
        Assert.Equal(1, budget.Demotions);

        // Idle before the cooldown (a failover's next RARP is due): stays off the worker's CPU, whatever it does meanwhile.
        budget.GoingIdle();
        budget.Woke();
        clock.Advance(TimeSpan.FromMilliseconds(10));
        budget.Ran();
        budget.GoingIdle();
        Assert.Equal(["demote"], calls);

        // Idle after the cooldown: back.
        clock.Advance(TimeSpan.FromMilliseconds(40));
        budget.GoingIdle();
        Assert.Equal(["demote", "restore"], calls);
        Assert.False(budget.Demoted);

        // The next long burst is demoted again, and counted.
        budget.Woke();
        clock.Advance(TimeSpan.FromMilliseconds(3));
        budget.Ran();
        Assert.Equal(["demote", "restore", "demote"], calls);
        Assert.Equal(2, budget.Demotions);
    }

    [Fact]
    public void Waking_starts_a_new_busy_period()
    {
        var clock = new ManualTimeProvider();
        var demoted = 0;
        var budget = new LoopBudget(clock, Budget, Cooldown, () => demoted++, () => { });
        budget.Woke();
        clock.Advance(TimeSpan.FromMilliseconds(1.5));
        budget.Ran();
        budget.GoingIdle();
        clock.Advance(TimeSpan.FromSeconds(1));
        budget.Woke();
        clock.Advance(TimeSpan.FromMilliseconds(1.5));
        budget.Ran();
        Assert.Equal(0, demoted);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var clock = new ManualTimeProvider();
        Assert.Throws<ArgumentOutOfRangeException>(() => new LoopBudget(clock, TimeSpan.Zero, Cooldown, () => { }, () => { }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LoopBudget(clock, Budget, TimeSpan.FromTicks(-1), () => { }, () => { }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AboveWorkerPlacement(0, 1, clock));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AboveWorkerPlacement(0, 99, clock));
    }

    [Fact]
    public async Task An_event_loop_above_the_worker_runs_on_its_cpu_one_priority_up_leaves_it_past_the_budget_and_comes_back_idle()
    {
        var permitted = CanSetRealtime();
        Assert.False(!permitted && Environment.GetEnvironmentVariable("CI") == "true", "the placement test needs CAP_SYS_NICE (root)");
        var cpu = AboveWorkerPlacement.ChooseCpu();
        Assert.NotNull(cpu);
        var all = LoopThread.Affinity();
        var others = all.Where(c => c != cpu).ToArray();
        var clock = new ManualTimeProvider();
        var placement = new AboveWorkerPlacement(cpu.Value, 5, clock, Budget, Cooldown);
        var started = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var loop = new EventLoop("test-above-loop", LoopPriority.RealTime, started.SetResult, placement: placement);
        var reported = await started.Task.WaitAsync(TimeSpan.FromSeconds(20));

        var seen = new TaskCompletionSource<(int Tid, (string, int)? Scheduling, int[] Cpus)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var read = loop.CreateMailbox<int>(_ =>
            seen.TrySetResult((LoopThread.CurrentThreadId, LoopThread.Scheduling(LoopThread.CurrentThreadId), [.. LoopThread.Affinity()])));
        Assert.True(read.TryWrite(0));
        var atStart = await seen.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var tid = atStart.Tid;

        // A long burst: one turn advances the (virtual) clock past the budget and queues another turn, which sees the demotion.
        seen = new(TaskCreationOptions.RunContinuationsAsynchronously);
        var burst = loop.CreateMailbox<int>(_ =>
        {
            clock.Advance(TimeSpan.FromMilliseconds(5));
            read.TryWrite(1);
        });
        Assert.True(burst.TryWrite(0));
        var during = await seen.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, placement.Budget.Demotions);

        // Idle before the cooldown: still demoted. After it, one more input; going idle, the loop comes back.
        await WaitFor(() => !IsRunning(tid));
        Assert.True(placement.Budget.Demoted);
        clock.Advance(TimeSpan.FromMilliseconds(150));
        Assert.True(read.TryWrite(2));
        await WaitFor(() => !placement.Budget.Demoted);

        if (permitted)
        {
            Assert.StartsWith($"SCHED_FIFO 6, on the worker's CPU {cpu}", reported, StringComparison.Ordinal);
            Assert.Equal(("SCHED_FIFO", 6), atStart.Scheduling);
            Assert.Equal([cpu.Value], atStart.Cpus);
            Assert.Equal(("SCHED_FIFO", 4), during.Scheduling);
            Assert.Equal(others.Length > 0 ? others : all.ToArray(), during.Cpus);
            await WaitFor(() => LoopThread.Scheduling(tid) == ("SCHED_FIFO", 6) && LoopThread.Affinity(tid).SequenceEqual([cpu.Value]));
            Assert.Equal(0, placement.Failures);
        }
        else
        {
            Assert.StartsWith("aboveWorker refused", reported, StringComparison.Ordinal);
            Assert.True(placement.Failures > 0);
            Assert.NotEqual(("SCHED_FIFO", 6), atStart.Scheduling);
        }
    }

    /// <summary>Polls (up to 20 s) until <paramref name="condition"/> holds: the loop thread's state changes asynchronously.</summary>
    private static async Task WaitFor(Func<bool> condition)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition());
    }

    /// <summary>The thread's state in /proc (R = running or runnable); false once it sleeps.</summary>
    private static bool IsRunning(int tid)
    {
        var stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('R');
    }

    /// <summary>CAP_SYS_NICE (bit 23) in the effective set.</summary>
    private static bool CanSetRealtime()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        var caps = ulong.Parse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return (caps & (1UL << 23)) != 0;
    }
}
