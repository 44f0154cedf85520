using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.DataPlane.Workers;

namespace Isthmus.DataPlane.Tests.Workers;

/// <summary>
/// dataPlane.pollMode: a running worker forwards, answers queries and keeps its heartbeat in both modes (busy never
/// sleeps in poll()); in busy mode with a worker CPU the latency loops may share that CPU and the sweep leaves them there.
/// </summary>
[Collection(WorkerCpuCollection.Name)]
public sealed class WorkerPollModeTests
{
    private static readonly byte[] FromHost = Frames.Ethernet(Frames.Broadcast, Frames.Mac("02:00:00:00:10:0a"));

    [Theory]
    [InlineData(WorkerPollMode.Interrupt)]
    [InlineData(WorkerPollMode.Busy)]
    public async Task A_running_worker_forwards_frames_from_pollable_ports_answers_queries_and_keeps_its_heartbeat(WorkerPollMode mode)
    {
        using var l2 = new L2Fixture();
        using var ports = new PolledPorts(l2.Ports);
        using var worker = new DataPlaneWorker(ports.All, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024) { PollMode = mode };
        worker.Start();
        try
        {
            // A broadcast on acc10 reaches its port through poll(): it is flooded to the trunk (VLAN 10) and to the VTEPs.
            ports.Enqueue(L2Fixture.Acc10, FromHost);
            WorkerAffinityTests.WaitUntil(() => ports.Transmitted(L2Fixture.Trunk0) == 1 && ports.Transmitted(L2Fixture.Und0) == 2, "the flood");

            // A query is served by the running worker (its wake-up, or the busy loop's next turn).
            var stats = await worker.Queries.Ask(LiveState.Statistics).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(0, stats.Sessions);

            // The heartbeat runs on the injected clock: each second of it refreshes every port's kernel counters.
            WorkerAffinityTests.WaitUntil(
                () =>
                {
                    l2.Time.Advance(TimeSpan.FromSeconds(1));
                    return ports.Refreshes(L2Fixture.Acc20) > 0;
                },
                "a heartbeat");

            // Still forwarding after idling.
            ports.Enqueue(L2Fixture.Acc10, FromHost);
            WorkerAffinityTests.WaitUntil(() => ports.Transmitted(L2Fixture.Trunk0) == 2, "the second flood");

            // A busy worker runs at nice -20 when permitted (root here); an interrupt-mode one is left as it was.
            Assert.Equal(mode == WorkerPollMode.Busy && Environment.IsPrivilegedProcess ? DataPlaneWorker.DedicatedNice : null, worker.Nice);
        }
        finally
        {
            worker.Stop();
        }

        Assert.Equal(2, worker.Counters.Packets);
    }

    [Fact]
    public void A_ring_port_is_seen_without_poll_and_the_other_ports_are_polled_every_few_turns_while_it_keeps_the_worker_busy()
    {
        using var l2 = new L2Fixture();
        using var ports = new PolledPorts(l2.Ports, L2Fixture.Acc10);
        using var worker = new DataPlaneWorker(ports.All, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024);

        // A frame on a ring is received on the next turn though its handle never becomes readable.
        Assert.Equal(0, worker.RunOnce());
        ports.Enqueue(L2Fixture.Acc10, FromHost);
        Assert.Equal(1, worker.RunOnce());

        // The ring delivers a frame every turn (the clock stands still: only the turn count schedules polls). A frame
        // on acc20 (a socket: readable handle) is found by a poll(0) within PollEveryTurns turns, and 48 busy turns
        // cost at most 48 / 16 + 1 polls, not one per turn.
        var polls = worker.ColdPolls;
        var acc20Seen = -1;
        for (var turn = 0; turn < 48; turn++)
        {
            ports.Enqueue(L2Fixture.Acc10, FromHost);
            if (turn == 4)
            {
                ports.Enqueue(L2Fixture.Acc20, FromHost);
            }

            var got = worker.RunOnce();
            if (got == 2 && acc20Seen < 0)
            {
                acc20Seen = turn;
            }

            Assert.Equal(turn >= 4 && acc20Seen == turn ? 2 : 1, got);
        }

        Assert.InRange(acc20Seen, 4, 4 + 16);
        Assert.InRange(worker.ColdPolls - polls, 1, (48 / 16) + 1);

        // Idle turns outside the loop each ask the kernel again (a caller driving RunOnce misses nothing).
        polls = worker.ColdPolls;
        for (var turn = 0; turn < 4; turn++)
        {
            Assert.Equal(0, worker.RunOnce());
        }

        Assert.Equal(3, worker.ColdPolls - polls);
        Assert.Equal(0, worker.Pool.Outstanding);
    }

    [Fact]
    public void In_busy_mode_with_a_worker_cpu_a_sharing_thread_joins_it_and_the_sweep_leaves_it_there()
    {
        var processCpus = CpuAffinity.Get();
        var cpu = processCpus[^1];
        using var l2 = new L2Fixture();
        using var worker = new DataPlaneWorker(l2.Ports, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024) { Cpu = cpu, PollMode = WorkerPollMode.Busy };
        using var release = new ManualResetEventSlim();
        var shared = -2;
        var sharingTid = -1;
        var sharing = new Thread(() =>
        {
            Volatile.Write(ref sharingTid, CpuAffinity.CurrentThreadId);
            Volatile.Write(ref shared, worker.ShareCpu());
            release.Wait();
        });
        var strayTid = -1;
        var stray = new Thread(() =>
        {
            Volatile.Write(ref strayTid, CpuAffinity.CurrentThreadId);
            release.Wait();
        });

        worker.Start();
        try
        {
            WorkerAffinityTests.WaitUntil(() => worker.PinnedCpu == cpu, "the worker to pin itself");
            sharing.Start();
            stray.Start();
            WorkerAffinityTests.WaitUntil(() => Volatile.Read(ref shared) != -2 && Volatile.Read(ref strayTid) > 0, "the threads");
            Assert.Equal(cpu, shared);
            Assert.Equal([cpu], CpuAffinity.Get(sharingTid));
            if (processCpus.Count > 1)
            {
                // A thread forced onto the worker's CPU is moved off by the next sweep; the sharing one stays.
                Assert.True(CpuAffinity.Pin(strayTid, cpu, out var error), error);
                WorkerAffinityTests.WaitUntil(() => !CpuAffinity.Get(strayTid).Contains(cpu), "the one-second sweep");
                Assert.Equal([cpu], CpuAffinity.Get(sharingTid));
            }
        }
        finally
        {
            worker.Stop();
            release.Set();
            sharing.Join();
            stray.Join();
        }
    }

    [Theory]
    [InlineData(WorkerPollMode.Interrupt, true)]
    [InlineData(WorkerPollMode.Busy, false)]
    public void Without_busy_mode_and_a_worker_cpu_a_thread_stays_where_it_was(WorkerPollMode mode, bool withCpu)
    {
        var processCpus = CpuAffinity.Get();
        using var l2 = new L2Fixture();
        using var worker = new DataPlaneWorker(l2.Ports, l2.Slot, PacketPipeline.CreateDefault(), l2.Time, poolSize: 1024)
        {
            Cpu = withCpu ? processCpus[^1] : null,
            PollMode = mode,
        };
        var result = 0;
        var mask = (IReadOnlyList<int>)[];
        var thread = new Thread(() =>
        {
            result = worker.ShareCpu();
            mask = CpuAffinity.Get();
        });
        thread.Start();
        thread.Join();
        Assert.Equal(-1, result);
        Assert.Equal(processCpus, mask);
    }

    /// <summary>
    /// The fixture's in-memory ports with a file descriptor each (an eventfd, readable while frames wait), so the
    /// worker polls them as it polls sockets; safe to fill and read from the test thread.
    /// </summary>
    private sealed class PolledPorts : IDisposable
    {
        private readonly Port[] _ports;

        /// <param name="ringVisible">Ports that behave as AF_XDP rings: <see cref="IPacketPort.ReceiveRingVisible"/>, and their handle never becomes readable.</param>
        public PolledPorts(MemoryPort[] inner, params int[] ringVisible) => _ports = [.. inner.Select((p, i) => new Port(p, ringVisible.Contains(i)))];

        public IReadOnlyList<IPacketPort> All => _ports;

        public void Enqueue(int port, byte[] frame) => _ports[port].Enqueue(frame);

        public int Transmitted(int port) => _ports[port].TransmittedCount;

        public int Refreshes(int port) => Volatile.Read(ref _ports[port].RefreshCount);

        public void Dispose()
        {
            foreach (var port in _ports)
            {
                port.Dispose();
            }
        }

        private sealed class Port(MemoryPort inner, bool ringVisible) : IPacketPort
        {
            private readonly WorkerWakeup _readable = new();
            private readonly Lock _gate = new();
            public int RefreshCount;

            public string Name => inner.Name;

            public PortKind Kind => inner.Kind;

            public int PollHandle => _readable.Handle;

            public PortCounters Counters => inner.Counters;

            public bool ReceiveRingVisible => ringVisible;

            public bool HasPendingFrames
            {
                get
                {
                    lock (_gate)
                    {
                        return inner.HasPendingFrames;
                    }
                }
            }

            public int TransmittedCount
            {
                get
                {
                    lock (_gate)
                    {
                        return inner.Transmitted.Count;
                    }
                }
            }

            public void Enqueue(byte[] frame)
            {
                lock (_gate)
                {
                    inner.Enqueue(frame);
                    if (!ringVisible)
                    {
                        _readable.Signal();
                    }
                }
            }

            public void RefreshKernelCounters() => Interlocked.Increment(ref RefreshCount);

            public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex)
            {
                lock (_gate)
                {
                    var received = inner.Receive(batch, pool, portIndex);
                    if (!inner.HasPendingFrames)
                    {
                        _readable.Drain();
                    }

                    return received;
                }
            }

            public void Transmit(TxQueue queue, PacketPool pool)
            {
                lock (_gate)
                {
                    inner.Transmit(queue, pool);
                }
            }

            public void Dispose() => _readable.Dispose();
        }
    }
}

/// <summary>Tests that pin a worker to a CPU run one at a time: each worker's sweep moves every other thread of the process (another test's worker too) off its CPU.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WorkerCpuCollection
{
    public const string Name = "worker CPU";
}
