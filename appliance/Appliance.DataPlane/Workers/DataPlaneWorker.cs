using System.Collections.Concurrent;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;

namespace Isthmus.DataPlane.Workers;

/// <summary>
/// One data-plane thread: receive a batch from its ports, run it to completion through the
/// pipeline, flush the transmit queues, repeat. It owns its pool, queues, MAC tables and counters,
/// so nothing on the packet path takes a lock. It reads the snapshot once per batch, and a
/// heartbeat driven by the injected <see cref="TimeProvider"/> ages MAC entries.
/// </summary>
/// <remarks>
/// The heartbeat: a second's work (every MAC table aged once, an eighth of conntrack swept, the kernel counters refreshed,
/// the stages' timers) is spread over <see cref="HeartbeatTicksPerSecond"/> ticks, each a slice of it, so that a frame
/// arriving during one waits for a slice, not for the whole (session 11; <see cref="HeartbeatTimings"/> measures them).
/// <para>
/// Livelock: the loop drains each port a batch at a time in turn and never blocks while any
/// port has frames, so receive and transmit keep pace; it sleeps in poll() only when every
/// port is idle, and never in <see cref="WorkerPollMode.Busy"/>.
/// </para>
/// </remarks>
public sealed class DataPlaneWorker : IDisposable
{
    public const int DefaultPoolSize = 16384;

    /// <summary>
    /// Heartbeat ticks per second (every 125 ms): each ages 1/8 of every MAC table's slots (a pass of 8 ticks, one
    /// second, looks at every entry, so an entry leaves at most ~1 s after its deadline, as with one heartbeat a second)
    /// and sweeps 1/8 of conntrack's per-second share. A tick that comes late (the worker busy or stalled) does the
    /// slices it missed, at most a second's, so aging keeps to the clock. Once a second the kernel counters are
    /// refreshed (system calls), one port per tick, and the stages' heartbeats (neighbor probes and expiry) run in a
    /// tick half a second from the counters' start.
    /// </summary>
    public const int HeartbeatTicksPerSecond = 8;

    private readonly IPacketPort[] _ports;
    private readonly SnapshotSlot _slot;
    private readonly PacketPipeline _pipeline;
    private readonly TimeProvider _time;
    private readonly PacketBatch _batch = new();
    private readonly ConcurrentQueue<InjectedFrame> _injected = new();
    private readonly Poller? _poller;
    private readonly WorkerWakeup? _wakeup;
    private readonly int _wakeupIndex = -1;

    /// <summary>Per port: its index in <see cref="_poller"/>, or -1 when it has no file descriptor.</summary>
    private readonly int[] _pollIndex;

    /// <summary>Per port: frames are probably waiting (its last receive filled the batch, or it holds some).</summary>
    private readonly bool[] _hot;

    /// <summary>Per port: its receive ring is visible without a system call (<see cref="IPacketPort.ReceiveRingVisible"/>).</summary>
    private readonly bool[] _ringVisible;

    /// <summary>Most turns between two poll(0)s of the cold ports while frames keep coming (see <see cref="PollCold"/>).</summary>
    private const int PollEveryTurns = 16;

    /// <summary>While idling in <see cref="Loop"/>, one turn in this many asks the kernel about cold ports.</summary>
    private const int SpinPollEvery = 8;

    // PollCold's schedule: a poll(0) is due (after an idle turn), turns and time since the last one, and the
    // longest the cold ports wait while other ports keep the worker busy (50 µs).
    private bool _pollDue = true;
    private int _turnsSincePoll;
    private long _lastPoll;
    private readonly long _pollInterval;

    /// <summary>Consecutive idle turns inside <see cref="Loop"/> (0 outside it, so a caller's every idle RunOnce polls).</summary>
    private int _spin;
    private long _lastTick;
    private long _lastCounters;
    private int _refreshNext;
    private long _lastStages;
    private readonly long _tickInterval;
    private int _nextPort;
    private Thread? _thread;
    private volatile bool _stopping;

    // CPU isolation (Cpu set): the worker's kernel thread id, the CPUs the process had, the one-second sweep.
    private int _tid = -1;
    private IReadOnlyList<int> _processCpus = [];
    private ITimer? _affinityGuard;

    public DataPlaneWorker(
        IReadOnlyList<IPacketPort> ports,
        SnapshotSlot slot,
        PacketPipeline pipeline,
        TimeProvider time,
        PacketTracer? tracer = null,
        MacMoveFeed? moves = null,
        int poolSize = DefaultPoolSize,
        MobilityFeed? mobility = null)
    {
        _ports = [.. ports];
        _slot = slot;
        _pipeline = pipeline;
        _time = time;
        Pool = new PacketPool(poolSize);
        Counters = new StageCounters([.. pipeline.Stages.Select(s => s.DropReasons.Count)]);
        Context = new WorkerContext(Pool, _ports.Length, Counters, tracer ?? new PacketTracer(), moves ?? new MacMoveFeed(), time.TimestampFrequency)
        {
            Mobility = mobility ?? new MobilityFeed(),
        };
        Context.Now = time.GetTimestamp();
        Context.Apply(slot.Current);
        _lastTick = Context.Now;
        _lastCounters = Context.Now;
        _refreshNext = _ports.Length;
        _lastStages = Context.Now - (Context.TicksPerSecond / 2);
        _tickInterval = Math.Max(1, time.TimestampFrequency / HeartbeatTicksPerSecond);
        _pollIndex = new int[_ports.Length];
        _hot = new bool[_ports.Length];
        _ringVisible = [.. _ports.Select(p => p.PollHandle >= 0 && p.ReceiveRingVisible)];
        _pollInterval = Math.Max(1, time.TimestampFrequency / 20_000);
        var pollable = _ports.Count(p => p.PollHandle >= 0);
        _poller = pollable > 0 ? new Poller(pollable + 1) : null;
        for (var i = 0; i < _ports.Length; i++)
        {
            _pollIndex[i] = _ports[i].PollHandle >= 0 ? _poller!.Add(_ports[i]) : -1;
        }

        if (_poller is not null)
        {
            // Queries (GARP bursts, live state) end the idle poll at once.
            _wakeup = new WorkerWakeup();
            _wakeupIndex = _poller.Add(_wakeup.Handle);
            Queries.Wake = _wakeup.Signal;
        }
    }

    public PacketPool Pool { get; }

    public WorkerContext Context { get; }

    public StageCounters Counters { get; }

    public IReadOnlyList<IPacketPort> Ports => _ports;

    /// <summary>
    /// A CPU for the worker alone (dataPlane.workerCpu): the thread pins itself to it when it starts and
    /// keeps every other thread of the process off it (<see cref="CpuAffinity"/>); null = the scheduler decides.
    /// </summary>
    public int? Cpu { get; init; }

    /// <summary>How the loop waits when every port is idle (dataPlane.pollMode).</summary>
    public WorkerPollMode PollMode { get; init; }

    /// <summary>
    /// Runs first on the worker thread, after its pinning (the control plane's thread setup: SCHED_FIFO for
    /// dataPlane.realtimePriority); it must not throw.
    /// </summary>
    public Action? ThreadStarted { get; init; }

    /// <summary>How long the heartbeats take (a frame arriving meanwhile waits): /metrics isthmus_worker_heartbeat_*.</summary>
    public HeartbeatTimings HeartbeatTimings { get; } = new();

    /// <summary>poll(0) system calls made to find frames on cold ports (<see cref="PollCold"/>); written by the worker only.</summary>
    public long ColdPolls { get; private set; }

    /// <summary>Threads allowed on <see cref="PinnedCpu"/> beside the worker (<see cref="ShareCpu"/>), by kernel thread id.</summary>
    private readonly ConcurrentDictionary<int, bool> _sharing = new();

    /// <summary>
    /// dataPlane.workerNice: the nice value the worker thread sets when it starts (-20 to 19), or null for
    /// <see cref="DefaultNice"/>. Ignored by the kernel while the thread runs under SCHED_FIFO
    /// (<see cref="ThreadStarted"/>: dataPlane.realtimePriority), kept for when it runs ordinary again.
    /// </summary>
    public int? NiceRequest { get; init; }

    /// <summary>The nice value the worker thread set when it started (its request, when permitted), or null when it set none or was refused (<see cref="NiceError"/>).</summary>
    public int? Nice { get; private set; }

    /// <summary>Why the kernel refused the worker's nice value (no CAP_SYS_NICE for a negative one), or null.</summary>
    public string? NiceError { get; private set; }

    /// <summary>The nice value a worker with a CPU of its own or a busy-polling one asks for by default: the highest ordinary priority.</summary>
    public const int DedicatedNice = -20;

    /// <summary>
    /// The nice value when dataPlane.workerNice is not set: <see cref="DedicatedNice"/> for a worker pinned to a CPU of its
    /// own (<paramref name="cpu"/> set) or a busy-polling one, which should not lose that CPU to whatever ordinary task
    /// (a kernel thread, another process, a shell) the scheduler puts there; null (left as started) for an unpinned
    /// interrupt-mode worker, which shares the machine's CPUs with everything else.
    /// </summary>
    public static int? DefaultNice(WorkerPollMode mode, int? cpu) => mode == WorkerPollMode.Busy || cpu is not null ? DedicatedNice : null;

    /// <summary>The nice value the worker thread sets when it starts: <see cref="NiceRequest"/>, else <see cref="DefaultNice"/>; null = none.</summary>
    public int? NiceTarget => NiceRequest ?? DefaultNice(PollMode, Cpu);

    /// <summary>The nice value the worker thread runs at now, read back from the kernel (/proc), or null before it runs.</summary>
    public int? RunningNice => ThreadId is > 0 and var tid ? CpuAffinity.ReadNice(tid) : null;

    /// <summary>The CPU the worker runs pinned to, or -1.</summary>
    public int PinnedCpu { get; private set; } = -1;

    /// <summary>The worker thread's kernel thread id once it runs, or -1.</summary>
    public int ThreadId => Volatile.Read(ref _tid);

    /// <summary>Why the worker could not be pinned to <see cref="Cpu"/>, or null.</summary>
    public string? AffinityError { get; private set; }

    /// <summary>Threads of the process moved off <see cref="PinnedCpu"/> (the first sweep and the later ones).</summary>
    public int ThreadsMovedOff => _threadsMovedOff;

    private int _threadsMovedOff;

    /// <summary>
    /// Called on a latency-critical thread (the mobility loop, a BGP session loop): in <see cref="WorkerPollMode.Busy"/>
    /// with <see cref="Cpu"/> set, pins the calling thread to the worker's CPU and keeps it there (the sweep that
    /// keeps other threads off leaves it alone). That CPU never idles, so the worker waking the thread (or one such
    /// thread waking another) is a preemption on a running CPU instead of an inter-processor interrupt to a halted one.
    /// Returns the CPU, or -1 when the thread stays where it was (interrupt mode, no worker CPU, or the kernel refused).
    /// </summary>
    /// <remarks>A real-time thread on this CPU preempts the worker whenever it runs: only short, event-driven loops belong here.</remarks>
    public int ShareCpu()
    {
        if (PollMode != WorkerPollMode.Busy || Cpu is not { } cpu)
        {
            return -1;
        }

        var tid = CpuAffinity.CurrentThreadId;
        _sharing[tid] = true;
        if (CpuAffinity.Pin(0, cpu, out _))
        {
            return cpu;
        }

        _sharing.TryRemove(tid, out _);
        return -1;
    }

    public PacketPipeline Pipeline => _pipeline;

    /// <summary>Packet capture at receive; costs one volatile read per batch when nothing is armed.</summary>
    public PacketCapture Capture { get; } = new();

    /// <summary>Snapshot requests for state only this thread may walk (conntrack, neighbors); answered between batches.</summary>
    public WorkerQueries Queries { get; } = new();

    /// <summary>
    /// Queues a synthetic frame to enter as if received on port <paramref name="port"/>, traced
    /// through every stage. Returns its trace id. Safe from any thread.
    /// </summary>
    public int Inject(ReadOnlySpan<byte> frame, int port, ushort? vlanTci = null, uint remoteVtep = 0)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(frame.Length, PacketPool.MaxFrame);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)port, (uint)_ports.Length);
        var id = Context.Tracer.NewId();
        _injected.Enqueue(new InjectedFrame(frame.ToArray(), (ushort)port, vlanTci, remoteVtep, id));
        return id;
    }

    /// <summary>One turn of the loop: returns how many frames it processed.</summary>
    public int RunOnce()
    {
        Context.Now = _time.GetTimestamp();
        Context.Apply(_slot.Current);
        if (Queries.Pending)
        {
            Queries.Serve(Context);
            if (Context.Originated.Count > 0)
            {
                // A query originated frames (a GARP burst): they leave now, not after the next batch.
                _pipeline.SendOriginated(Context);
                Flush();
            }
        }

        TakeInjected();
        PollCold();
        var first = _nextPort;
        for (var n = 0; n < _ports.Length && !_batch.IsFull; n++)
        {
            var index = (first + n) % _ports.Length;
            if (_pollIndex[index] >= 0 && !_hot[index])
            {
                continue;
            }

            var port = _ports[index];
            var got = port.Receive(_batch, Pool, (ushort)index);
            var filled = got > 0 && _batch.IsFull;
            _hot[index] = filled || port.HasPendingFrames;
            if (filled)
            {
                // Fairness: the next turn starts after the port that filled this batch.
                _nextPort = (index + 1) % _ports.Length;
            }
        }

        var count = _batch.Count;

        // An idle turn makes the next one ask the kernel about cold ports; while the loop spins, one in SpinPollEvery.
        _pollDue |= count == 0 && _spin % SpinPollEvery == 0;
        if (count > 0)
        {
            if (Capture.Armed)
            {
                Capture.Offer(_batch, Pool, _ports, Context.Now);
            }

            Counters.Batches++;
            Counters.Packets += count;
            _pipeline.Run(_batch, Context);
            _batch.Clear();
            if (Context.ArrivalGarpPort is >= 0 and var garpPort && garpPort < _ports.Length)
            {
                // A RARP answered with the first GARP: that port first, then the mobility loop, then the rest (the
                // RARP's flood toward the VTEPs and trunks, whose kernel paths run inside these sends).
                Context.ArrivalGarpPort = -1;
                if (Context.TxQueues[garpPort].Count > 0)
                {
                    _ports[garpPort].Transmit(Context.TxQueues[garpPort], Pool);
                }

                Context.Mobility.WakeIfPosted();
            }

            Flush();

            // Mobility signals of this batch wake the mobility loop only now: its thread runs at real-time
            // priority and would otherwise preempt this worker before the batch's frames (the first GARP) left.
            Context.Mobility.WakeIfPosted();
        }

        // The heartbeat tick (a slice of the second's aging, sweeping and refreshing) runs after the batch it woke for,
        // so a frame that was waiting (a RARP) never waits for it (session 10: every other move of a 0.5 s schedule met
        // a due heartbeat first). Ticks keep their 125 ms grid: a late one does the slices it missed (at most a second's)
        // and the next is not delayed.
        var due = (Context.Now - _lastTick) / _tickInterval;
        if (due > 0)
        {
            if (due > HeartbeatTicksPerSecond)
            {
                due = HeartbeatTicksPerSecond;
                _lastTick = Context.Now;
            }
            else
            {
                _lastTick += due * _tickInterval;
            }

            var started = _time.GetTimestamp();
            Heartbeat((int)due);
            HeartbeatTimings.Record(_time.GetTimestamp() - started, _time.TimestampFrequency);
        }

        return count;
    }

    public void Start()
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "isthmus-worker" };
        _thread.Start();
    }

    public void Stop()
    {
        _stopping = true;
        _thread?.Join();
        _thread = null;
        Queries.Abandon();
        if (PinnedCpu >= 0)
        {
            // The other threads get the process's CPUs back.
            _affinityGuard?.Dispose();
            _affinityGuard = null;
            CpuAffinity.Restore(_processCpus, _tid);
            PinnedCpu = -1;
        }
    }

    public void Dispose()
    {
        Stop();
        Queries.Wake = null;
        _wakeup?.Dispose();

        // Buffers the stages still hold (packets waiting for ARP/ND) go back to the pool.
        _pipeline.Release(Context);
    }

    private void Loop()
    {
        Volatile.Write(ref _tid, CpuAffinity.CurrentThreadId);
        if (Cpu is { } cpu)
        {
            Isolate(cpu);
        }

        // A worker on its own CPU (or a busy one) at nice -20: an ordinary task woken on its CPU does not take it at once
        // (the CFS weight of nice -20 is ~87x nice 0's; session 8's traces caught shells and kernel threads holding a
        // nice-0 worker off its CPU for milliseconds while its AF_XDP ring filled: docs/benchmarks.md "Session 8: wire").
        if (NiceTarget is { } nice)
        {
            if (CpuAffinity.TrySetNice(nice, out var niceError))
            {
                Nice = nice;
            }
            else
            {
                NiceError = niceError;
            }
        }

        // After the nice value: a SCHED_FIFO request there (realtimePriority) makes it irrelevant while it holds.
        ThreadStarted?.Invoke();

        while (!_stopping)
        {
            if (RunOnce() > 0)
            {
                _spin = 0;
                continue;
            }

            // Spin briefly before sleeping (NAPI's idea: a burst that is still arriving is picked up without a
            // wake-up), then sleep in poll() until a port is readable. While spinning, AF_XDP rings are peeked every
            // turn and the kernel is asked about the other ports one turn in SpinPollEvery (PollCold). Busy mode
            // never sleeps, and its CPU never idles.
            if (++_spin < 64 || PollMode == WorkerPollMode.Busy)
            {
                if (_spin >= 1 << 16)
                {
                    _spin = 64; // a busy worker idling for long: keep the count small, the schedule the same
                }

                Thread.SpinWait(20);
                continue;
            }

            _spin = 0;
            if (_poller is null)
            {
                Thread.Sleep(1);
                continue;
            }

            if (_poller.Wait(timeoutMs: 50) > 0)
            {
                // What woke us is what the next turn receives from: no second poll(0) to learn it again.
                if (_poller.IsReadable(_wakeupIndex))
                {
                    _wakeup!.Drain();
                }

                for (var i = 0; i < _ports.Length; i++)
                {
                    _hot[i] |= _pollIndex[i] >= 0 && _poller.IsReadable(_pollIndex[i]);
                }

                _pollDue = false;
                _turnsSincePoll = 0;
                _lastPoll = _time.GetTimestamp();
            }
        }
    }

    /// <summary>Pins this thread to <paramref name="cpu"/> and moves every other thread of the process off it, now and each second.</summary>
    private void Isolate(int cpu)
    {
        _processCpus = CpuAffinity.Get();
        if (!CpuAffinity.Pin(0, cpu, out var error))
        {
            AffinityError = error;
            return;
        }

        PinnedCpu = cpu;
        KeepOthersOff(cpu);
        _affinityGuard = _time.CreateTimer(
            _ =>
            {
                if (!_stopping)
                {
                    KeepOthersOff(cpu);
                }
            },
            null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Every thread but the worker and those sharing its CPU off <paramref name="cpu"/>; the sharing ones pinned again (a sweep may have raced their pinning).</summary>
    private void KeepOthersOff(int cpu)
    {
        Interlocked.Add(ref _threadsMovedOff, CpuAffinity.KeepOthersOff(cpu, _tid, _processCpus, _sharing.ContainsKey));
        foreach (var tid in _sharing.Keys)
        {
            if (!CpuAffinity.Pin(tid, cpu, out _))
            {
                // The thread ended.
                _sharing.TryRemove(tid, out _);
            }
        }
    }

    /// <summary>
    /// Finds which cold ports (not known to have frames) have some. An AF_XDP ring is peeked in memory every turn.
    /// The others take one poll(0) for all of them, instead of one empty recvmmsg per idle port per turn, and
    /// only when due: after an idle turn (while the loop spins, one in <see cref="SpinPollEvery"/>), or once
    /// <see cref="PollEveryTurns"/> turns or 50 µs have passed since the last one while other ports keep the
    /// worker busy. On veth a poll(0) also runs the kernel's copy-mode transmit of every AF_XDP socket polled
    /// (xsk_poll), so one per turn cost more than the batch it found when frames trickle in.
    /// </summary>
    private void PollCold()
    {
        if (_poller is null)
        {
            return;
        }

        var cold = false;
        for (var i = 0; i < _ports.Length; i++)
        {
            if (_pollIndex[i] < 0 || _hot[i])
            {
                continue;
            }

            if (_ringVisible[i] && _ports[i].HasPendingFrames)
            {
                _hot[i] = true;
                continue;
            }

            cold = true;
        }

        var due = _pollDue || ++_turnsSincePoll >= PollEveryTurns || Context.Now - _lastPoll >= _pollInterval;
        if (!cold || !due)
        {
            return;
        }

        _pollDue = false;
        _turnsSincePoll = 0;
        _lastPoll = Context.Now;
        ColdPolls++;
        if (_poller.Wait(timeoutMs: 0) <= 0)
        {
            return;
        }

        if (_poller.IsReadable(_wakeupIndex))
        {
            // A query's wake-up seen here (it is served at the next turn's start): reset, or every poll(0) of a
            // busy-polling worker would report it again.
            _wakeup!.Drain();
        }

        for (var i = 0; i < _ports.Length; i++)
        {
            if (_pollIndex[i] >= 0 && !_hot[i])
            {
                _hot[i] = _poller.IsReadable(_pollIndex[i]);
            }
        }
    }

    /// <summary>One heartbeat tick: <paramref name="slices"/> slices of the second's work (<see cref="HeartbeatTicksPerSecond"/> a second).</summary>
    private void Heartbeat(int slices)
    {
        // The kernel counters once a second, one port per tick (a VXLAN port's refresh also re-resolves its raw transmit
        // paths: netlink round trips, the costliest part of a heartbeat).
        if (_refreshNext >= _ports.Length && Context.Now - _lastCounters >= Context.TicksPerSecond)
        {
            _lastCounters = Context.Now;
            _refreshNext = 0;
        }

        for (var k = 0; k < slices && _refreshNext < _ports.Length; k++)
        {
            _ports[_refreshNext++].RefreshKernelCounters();
        }

        var snapshot = Context.Snapshot;
        var domains = Context.Bridge.Domains;
        for (var d = 0; d < domains.Length; d++)
        {
            var table = domains[d].Table;
            var slice = (table.SlotCount + HeartbeatTicksPerSecond - 1) / HeartbeatTicksPerSecond;
            if (table.AgeSlice(Context.Now - snapshot.Domains[d].MacAgingTicks, slice * slices) > 0)
            {
                // A next hop's MAC that aged out is flooded again by the slow path, not sent to its old segment.
                Context.Epoch.Advance();
            }
        }

        Context.Flows.Heartbeat(Context.Now, Context.TicksPerSecond, slices, HeartbeatTicksPerSecond);

        if (Context.Now - _lastStages >= Context.TicksPerSecond)
        {
            _lastStages = Context.Now;
            // Stage aging (neighbor cache: ARP/ND retries, expiry), once a second; what it originates is sent now.
            _pipeline.Heartbeat(Context);
            Flush();
        }
    }

    private void TakeInjected()
    {
        while (!_batch.IsFull && _injected.TryDequeue(out var frame))
        {
            var buffer = Pool.Rent();
            if (buffer < 0)
            {
                return;
            }

            frame.Bytes.CopyTo(Pool.Frame(buffer, PacketPool.Headroom, frame.Bytes.Length));
            ref var p = ref _batch.Add(buffer, PacketPool.Headroom, frame.Bytes.Length, frame.Port);
            p.Flags |= PacketFlags.Traced;
            p.TraceId = frame.TraceId;
            p.RemoteVtep = frame.RemoteVtep;
            if (frame.VlanTci is { } tci)
            {
                p.VlanTci = tci;
                p.Flags |= PacketFlags.VlanFromAux;
            }
        }
    }

    private void Flush()
    {
        var queues = Context.TxQueues;
        for (var i = 0; i < queues.Length; i++)
        {
            if (queues[i].Count > 0)
            {
                _ports[i].Transmit(queues[i], Pool);
            }
        }
    }

    private sealed record InjectedFrame(byte[] Bytes, ushort Port, ushort? VlanTci, uint RemoteVtep, int TraceId);
}

/// <summary>How a <see cref="DataPlaneWorker"/> waits while its ports are idle (dataPlane.pollMode).</summary>
public enum WorkerPollMode
{
    /// <summary>Spin briefly, then sleep in poll() (50 ms at most) until a port or a query wakes it.</summary>
    Interrupt,

    /// <summary>Never sleep: poll the ports without waiting, all the time (one CPU busy, as in VPP's polling mode).</summary>
    Busy,
}
