using System.Globalization;
using Isthmus.Mobility.Threading;

namespace Isthmus.Mobility.Tests.Threading;

/// <summary>
/// Real-time scheduling of the latency chain's threads (dataPlane.realtimePriority): what the kernel reports for the
/// thread afterwards (/proc/thread-self/stat: policy and rt_priority), refusal without CAP_SYS_NICE, and the
/// threads a real-time thread starts staying ordinary (SCHED_RESET_ON_FORK). With CAP_SYS_NICE (root) the thread must
/// get SCHED_FIFO; without it the call must fail with EPERM and leave the thread as it was. CI=true fails without
/// the capability (CI runs as root).
/// </summary>
public sealed class LoopThreadTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public void A_priority_outside_1_to_99_is_refused(int priority) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => LoopThread.TrySetFifo(priority, out _));

    [Fact]
    public void A_thread_gets_sched_fifo_at_the_priority_and_the_threads_it_starts_stay_ordinary()
    {
        var permitted = CanSetRealtime();
        Assert.False(!permitted && Environment.GetEnvironmentVariable("CI") == "true", "the real-time test needs CAP_SYS_NICE (root)");

        (bool Ok, string Result, int Policy, int Priority, int Flags) seen = default;
        var thread = new Thread(() =>
        {
            var ok = LoopThread.TrySetFifo(7, out var result);
            var (policy, priority) = Scheduling();
            seen = (ok, result, policy, priority, SchedGetScheduler(0));
        });
        thread.Start();
        thread.Join();

        if (permitted)
        {
            Assert.Equal((true, "SCHED_FIFO 7", SchedFifo, 7, SchedFifo | SchedResetOnFork), seen);
        }
        else
        {
            Assert.False(seen.Ok);
            Assert.Contains("EPERM", seen.Result, StringComparison.Ordinal);
            Assert.Equal((SchedOther, 0), (seen.Policy, seen.Priority));
        }
    }

    [Fact]
    public async Task An_event_loop_runs_at_the_fifo_priority_it_is_given_and_threads_it_starts_are_ordinary()
    {
        var permitted = CanSetRealtime();
        Assert.False(!permitted && Environment.GetEnvironmentVariable("CI") == "true", "the real-time test needs CAP_SYS_NICE (root)");
        var started = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var loop = new EventLoop("test-rt-loop", LoopPriority.RealTime, started.SetResult, fifoPriority: 12);
        var reported = await started.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var inside = new TaskCompletionSource<(int, int, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var box = loop.CreateMailbox<int>(_ =>
        {
            var (p, q) = Scheduling();
            inside.SetResult((p, q, SchedGetScheduler(0)));
        });
        Assert.True(box.TryWrite(0));
        var (policy, priority, flags) = await inside.Task.WaitAsync(TimeSpan.FromSeconds(20));

        if (permitted)
        {
            // sched_getscheduler(2) reports SCHED_RESET_ON_FORK: a thread the runtime creates from the loop (its tiered
            // compilation thread, natively, without the managed Thread's priority reset) starts ordinary.
            Assert.Equal(("SCHED_FIFO 12", SchedFifo, 12, SchedFifo | SchedResetOnFork), (reported, policy, priority, flags));
        }
        else
        {
            Assert.NotEqual("SCHED_FIFO 12", reported);
            Assert.NotEqual(SchedFifo, policy);
        }
    }

    private const int SchedOther = 0;
    private const int SchedFifo = 1;
    private const int SchedResetOnFork = 0x40000000;

    /// <summary>sched_getscheduler(2): the policy, with SCHED_RESET_ON_FORK or'ed in when set (proc's stat does not show that flag).</summary>
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "sched_getscheduler")]
    private static extern int SchedGetScheduler(int pid);

    /// <summary>The calling thread's policy and real-time priority as the kernel reports them (proc(5): stat fields 41 and 40).</summary>
    private static (int Policy, int Priority) Scheduling()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

        // fields[0] is field 3 (state): field n is fields[n - 3].
        return (int.Parse(fields[41 - 3], CultureInfo.InvariantCulture), int.Parse(fields[40 - 3], CultureInfo.InvariantCulture));
    }

    /// <summary>CAP_SYS_NICE (bit 23) in the effective set.</summary>
    private static bool CanSetRealtime()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        var caps = ulong.Parse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return (caps & (1UL << 23)) != 0;
    }
}
