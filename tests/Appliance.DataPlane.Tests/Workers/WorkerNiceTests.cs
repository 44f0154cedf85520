using System.Globalization;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.DataPlane.Workers;

namespace Isthmus.DataPlane.Tests.Workers;

/// <summary>
/// dataPlane.workerNice: the nice value the worker thread runs at, as the kernel reports it (/proc/self/task/TID/stat):
/// -20 by default for a worker with a CPU of its own or a busy one, left alone for an unpinned interrupt-mode worker, the
/// requested value otherwise. Lowering a nice value needs CAP_SYS_NICE: CI=true runs as root, where the -20 must hold.
/// </summary>
[Collection(WorkerCpuCollection.Name)]
public sealed class WorkerNiceTests
{
    [Fact]
    public void The_default_is_minus_20_for_a_worker_with_its_own_cpu_or_a_busy_one_and_unchanged_otherwise()
    {
        Assert.Equal(-20, DataPlaneWorker.DedicatedNice);
        Assert.Equal(DataPlaneWorker.DedicatedNice, DataPlaneWorker.DefaultNice(WorkerPollMode.Interrupt, 1));
        Assert.Equal(DataPlaneWorker.DedicatedNice, DataPlaneWorker.DefaultNice(WorkerPollMode.Busy, null));
        Assert.Equal(DataPlaneWorker.DedicatedNice, DataPlaneWorker.DefaultNice(WorkerPollMode.Busy, 0));
        Assert.Null(DataPlaneWorker.DefaultNice(WorkerPollMode.Interrupt, null));
    }

    [Fact]
    public void A_pinned_worker_runs_at_nice_minus_20_by_default_as_the_kernel_reports_it()
    {
        var root = RootInCi();
        var cpu = CpuAffinity.Get()[^1];
        using var l2 = new L2Fixture();
        using var worker = new DataPlaneWorker(l2.Ports, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024) { Cpu = cpu };
        worker.Start();
        try
        {
            WorkerAffinityTests.WaitUntil(() => worker.PinnedCpu == cpu && (worker.Nice is not null || worker.NiceError is not null), "the worker's set-up");
            if (root)
            {
                Assert.Null(worker.NiceError);
                Assert.Equal(-20, worker.Nice);
                Assert.Equal(-20, KernelNice(worker.ThreadId));
                Assert.Equal(-20, worker.RunningNice);
            }
            else
            {
                // Without CAP_SYS_NICE the kernel refuses, and the worker runs on at the nice value it started with.
                Assert.Null(worker.Nice);
                Assert.Contains("setpriority(-20)", worker.NiceError, StringComparison.Ordinal);
                Assert.Equal(KernelNice(0), worker.RunningNice);
            }
        }
        finally
        {
            worker.Stop();
        }
    }

    [Fact]
    public void An_unpinned_interrupt_worker_keeps_the_nice_value_it_started_with_and_a_requested_one_is_set()
    {
        using var l2 = new L2Fixture();
        using (var plain = new DataPlaneWorker(l2.Ports, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024))
        {
            plain.Start();
            try
            {
                WorkerAffinityTests.WaitUntil(() => plain.ThreadId > 0, "the worker thread");

                // A thread starts at its creator's nice value: this test thread's.
                Assert.Null(plain.Nice);
                Assert.Null(plain.NiceError);
                Assert.Equal(KernelNice(0), KernelNice(plain.ThreadId));
            }
            finally
            {
                plain.Stop();
            }
        }

        // A higher nice value needs no privilege: this runs as any user.
        using var l2b = new L2Fixture();
        using var nice = new DataPlaneWorker(l2b.Ports, l2b.Slot, PacketPipeline.CreateDefault(), l2b.Time, poolSize: 1024) { NiceRequest = 7 };
        nice.Start();
        try
        {
            WorkerAffinityTests.WaitUntil(() => nice.Nice is not null || nice.NiceError is not null, "the worker's nice value");
            Assert.Null(nice.NiceError);
            Assert.Equal(7, nice.Nice);
            Assert.Equal(7, KernelNice(nice.ThreadId));
            Assert.Equal(7, nice.RunningNice);
            Assert.NotEqual(7, KernelNice(0));
        }
        finally
        {
            nice.Stop();
        }
    }

    [Fact]
    public void The_nice_value_is_read_back_for_a_thread_and_null_for_one_that_is_gone()
    {
        Assert.Equal(KernelNice(0), CpuAffinity.ReadNice(CpuAffinity.CurrentThreadId));
        Assert.Null(CpuAffinity.ReadNice(int.MaxValue));
    }

    /// <summary>True as root; CI=true without root fails (the default's -20 is what the test is about).</summary>
    private static bool RootInCi()
    {
        var root = Libc.GetEUid() == 0;
        Assert.False(!root && Environment.GetEnvironmentVariable("CI") == "true", "the nice test needs CAP_SYS_NICE (root)");
        return root;
    }

    /// <summary>proc(5): field 19 of /proc/self/task/TID/stat (0 = the calling thread), parsed here independently of the product.</summary>
    internal static int KernelNice(int tid)
    {
        var path = tid == 0 ? "/proc/thread-self/stat" : $"/proc/self/task/{tid.ToString(CultureInfo.InvariantCulture)}/stat";
        var stat = File.ReadAllText(path);
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[19 - 3], CultureInfo.InvariantCulture);
    }
}
