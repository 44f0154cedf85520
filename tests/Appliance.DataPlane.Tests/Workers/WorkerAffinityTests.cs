using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.DataPlane.Workers;

namespace Isthmus.DataPlane.Tests.Workers;

/// <summary>dataPlane.workerCpu: the worker runs on its CPU alone, and gives it back when it stops.</summary>
[Collection(WorkerCpuCollection.Name)]
public sealed class WorkerAffinityTests
{
    /// <summary>Polls <paramref name="condition"/> for up to 20 s (a bound for a stuck test, not a timing assert).</summary>
    internal static void WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            Thread.Sleep(10);
        }
    }

    private static bool Excludes(int tid, int cpu) => CpuAffinity.Get(tid) is var cpus && (cpus.Count == 0 || !cpus.Contains(cpu));

    [Fact]
    public void The_worker_runs_on_its_cpu_alone_other_threads_are_kept_off_it_and_get_it_back_at_stop()
    {
        var processCpus = CpuAffinity.Get();
        Assert.NotEmpty(processCpus);
        var cpu = processCpus[^1];
        var alone = processCpus.Count > 1;
        using var l2 = new L2Fixture();
        using var worker = new DataPlaneWorker(l2.Ports, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024) { Cpu = cpu };

        // A thread that ends up on the worker's CPU later (as one the worker thread itself would create).
        using var release = new ManualResetEventSlim();
        var strayTid = -1;
        var stray = new Thread(() =>
        {
            Volatile.Write(ref strayTid, CpuAffinity.CurrentThreadId);
            release.Wait();
        });

        worker.Start();
        try
        {
            WaitUntil(() => worker.PinnedCpu == cpu, "the worker to pin itself");
            Assert.Null(worker.AffinityError);
            Assert.Equal([cpu], CpuAffinity.Get(worker.ThreadId));
            if (alone)
            {
                // A thread created while the first sweep ran may have inherited the old mask: a later sweep moves it.
                WaitUntil(() => CpuAffinity.Threads().Where(t => t != worker.ThreadId).All(t => Excludes(t, cpu)), $"every other thread off CPU {cpu}");
                Assert.True(worker.ThreadsMovedOff > 0);
            }

            stray.Start();
            WaitUntil(() => Volatile.Read(ref strayTid) > 0, "the stray thread");
            Assert.True(Excludes(strayTid, cpu), "a new thread inherits a mask without the worker's CPU");
            if (alone)
            {
                // Forced onto the CPU, as a thread created by the worker would be: the next sweep moves it.
                Assert.True(CpuAffinity.Pin(strayTid, cpu, out var error), error);
                WaitUntil(() => Excludes(strayTid, cpu), "the one-second sweep to move the stray thread");
            }
        }
        finally
        {
            worker.Stop();
        }

        Assert.Equal(-1, worker.PinnedCpu);
        Assert.Equal(processCpus, CpuAffinity.Get(strayTid));
        Assert.Equal(processCpus, CpuAffinity.Get());
        release.Set();
        stray.Join();
    }

    [Fact]
    public void A_cpu_the_process_may_not_use_leaves_the_worker_unpinned_with_the_reason()
    {
        var processCpus = CpuAffinity.Get();
        var missing = Enumerable.Range(0, CpuAffinity.MaxCpus).First(c => !processCpus.Contains(c));
        using var l2 = new L2Fixture();
        using var worker = new DataPlaneWorker(l2.Ports, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024) { Cpu = missing };
        worker.Start();
        try
        {
            WaitUntil(() => worker.AffinityError is not null, "the affinity error");
            Assert.Contains($"CPU {missing}", worker.AffinityError, StringComparison.Ordinal);
            Assert.Equal(-1, worker.PinnedCpu);
            Assert.Equal(processCpus, CpuAffinity.Get());
        }
        finally
        {
            worker.Stop();
        }
    }
}
