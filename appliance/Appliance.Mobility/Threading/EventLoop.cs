namespace Isthmus.Mobility.Threading;

/// <summary>
/// One dedicated thread serving several mailboxes (Netty's event loop with several channels): the mobility service's
/// and every BGP session's. Each mailbox keeps its own order and has exactly one handler, run only on this thread, so
/// "one loop owns the state" holds per mailbox; what the shared thread removes is the hop between them. A post from a
/// handler to another mailbox of the same loop (the mobility decision's desired set to each session) is served on
/// this thread before it sleeps, with no wake-up: the UPDATE is written straight after the decision.
/// </summary>
/// <remarks>
/// <para>Scheduling: a mailbox with items is queued once (ready queue); the loop takes urgent mailboxes
/// (<see cref="CreateMailbox{T}(Action{T}, bool)"/>: the BGP sessions) before ordinary ones, and checks for an urgent one
/// after every item of an ordinary mailbox, so a session's UPDATE leaves before the mobility loop's bookkeeping that
/// was queued behind the decision. Within a mailbox, items run in order.</para>
/// <para>Waking: a post from another thread wakes the loop only when the loop announced it is going idle (one write to
/// its eventfd per idle period, none while it runs; <see cref="LoopWakeup"/>); a post from the loop's own thread never
/// wakes.</para>
/// <para>Signals (<see cref="CreateSignal"/>): a wake-up source for a thread that must not take a lock or allocate (the
/// data-plane worker telling the mobility service that its feed has signals): ringing one is an interlocked flag and,
/// when the loop is idle, that one write. The loop runs a rung signal's handler after the urgent mailboxes, taking turns
/// with the ordinary ones.</para>
/// <para>Failures: an exception from a handler completes that mailbox with the exception (its owner sees it in
/// <see cref="Mailbox{T}.Completion"/>); the other mailboxes go on. The thread runs at <see cref="LoopPriority"/>
/// (<see cref="LoopThread.Elevate"/>) and blocks while idle.</para>
/// </remarks>
public sealed class EventLoop : IDisposable
{
    /// <summary>Items one ordinary mailbox runs before the others get a turn.</summary>
    internal const int Budget = 64;

    private readonly Queue<IMailbox> _urgent = new();
    private readonly Queue<IMailbox> _ordinary = new();
    private readonly List<IMailbox> _mailboxes = [];
    private readonly LoopWakeup _wake = new();
    private LoopSignal[] _signals = [];
    private int _anyRung;

    /// <summary>The next turn without an urgent mailbox serves the signals before the ordinary mailboxes (they alternate).</summary>
    private bool _signalsFirst = true;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private int _idle;
    private bool _stopping;
    private int _threadId;
    private long _allocated;

    /// <param name="started">Called on the loop's thread when it starts, with what <see cref="LoopThread.Elevate"/> got.</param>
    /// <param name="fifoPriority">The SCHED_FIFO priority of a real-time loop (null = 1; <see cref="LoopThread.Elevate"/>).</param>
    /// <param name="placement">
    /// dataPlane.loopPlacement "aboveWorker": the thread goes onto the worker's CPU above the worker instead of
    /// <paramref name="priority"/>, and its <see cref="AboveWorkerPlacement.Budget"/> takes it off that CPU during a long burst.
    /// </param>
    public EventLoop(string name, LoopPriority priority, Action<string>? started = null, int? fifoPriority = null, AboveWorkerPlacement? placement = null)
    {
        var thread = new Thread(() => Run(priority, fifoPriority, started, placement)) { IsBackground = true, Name = name };
        thread.Start();
    }

    /// <summary>Completes when the thread ended (after <see cref="Stop"/>).</summary>
    public Task Completion => _done.Task;

    /// <summary>True on the loop's own thread.</summary>
    public bool IsLoopThread => Environment.CurrentManagedThreadId == Volatile.Read(ref _threadId);

    /// <summary>Bytes the loop thread allocated since it started, as of its last input (diagnostics: what a move costs the GC).</summary>
    public long AllocatedBytes => Volatile.Read(ref _allocated);

    /// <summary>A new input queue served by this loop: <paramref name="handle"/> runs for each item, on the loop's thread, in order.</summary>
    /// <param name="urgent">Served before ordinary mailboxes (and between their items).</param>
    public Mailbox<T> CreateMailbox<T>(Action<T> handle, bool urgent = false)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var mailbox = new Mailbox<T>(this, handle, urgent);
        bool stopped;
        lock (_gate)
        {
            stopped = _stopping;
            if (!stopped)
            {
                _mailboxes.Add(mailbox);
            }
        }

        if (stopped)
        {
            // A loop that ended serves nothing: every write to this mailbox fails.
            ((IMailbox)mailbox).Abandon();
        }

        return mailbox;
    }

    /// <summary>
    /// A wake-up source whose <see cref="LoopSignal.Ring"/> (any thread: no lock, no allocation) makes the loop run
    /// <paramref name="handle"/> on its thread; rings before the handler starts count once, a ring while it runs runs it
    /// again. The handler finds its work elsewhere (a lock-free queue it drains).
    /// </summary>
    public LoopSignal CreateSignal(Action handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var signal = new LoopSignal(this, handle);
        bool stopped;
        lock (_gate)
        {
            stopped = _stopping;
            if (!stopped)
            {
                _signals = [.. _signals, signal];
            }
        }

        if (stopped)
        {
            signal.Abandon();
        }

        return signal;
    }

    /// <summary>
    /// Ends the thread once it is idle; mailboxes still open are completed then (their queued items are not run, and
    /// writes fail from then on).
    /// </summary>
    public void Stop()
    {
        lock (_gate)
        {
            _stopping = true;
        }

        _wake.Signal();
    }

    public void Dispose() => Stop();

    internal void Ready(IMailbox mailbox, bool urgent)
    {
        lock (_gate)
        {
            (urgent ? _urgent : _ordinary).Enqueue(mailbox);
        }

        WakeIfIdle();
    }

    /// <summary>A signal was rung (its own flag is set): no lock, no allocation.</summary>
    internal void Rung()
    {
        Interlocked.Exchange(ref _anyRung, 1);
        WakeIfIdle();
    }

    internal void Forget(LoopSignal signal)
    {
        lock (_gate)
        {
            _signals = Array.FindAll(_signals, s => s != signal);
        }
    }

    /// <summary>The loop's own posts are seen before it sleeps; another thread wakes it only if it is (going) idle.</summary>
    private void WakeIfIdle()
    {
        if (!IsLoopThread && Interlocked.Exchange(ref _idle, 0) == 1)
        {
            _wake.Signal();
        }
    }

    internal bool UrgentWaiting
    {
        get
        {
            lock (_gate)
            {
                return _urgent.Count > 0;
            }
        }
    }

    internal void Forget(IMailbox mailbox)
    {
        lock (_gate)
        {
            _mailboxes.Remove(mailbox);
        }
    }

    /// <summary>One turn: an urgent mailbox, else the rung signals and an ordinary mailbox, taking turns; false when nothing was to do.</summary>
    private bool RunNext()
    {
        IMailbox? mailbox;
        var ordinary = false;
        lock (_gate)
        {
            if (!_urgent.TryDequeue(out mailbox) && !(_signalsFirst && Volatile.Read(ref _anyRung) == 1))
            {
                ordinary = _ordinary.TryDequeue(out mailbox);
            }
        }

        if (mailbox is not null)
        {
            mailbox.Run();

            // After an ordinary mailbox's turn the signals go first (an urgent one changes nothing: a signal's handler
            // that posts to a session must not keep the ordinary mailboxes, the timers' inputs among them, waiting).
            _signalsFirst |= ordinary;
            return true;
        }

        _signalsFirst = false;
        return RunSignals();
    }

    private bool RunSignals()
    {
        if (Interlocked.Exchange(ref _anyRung, 0) == 0)
        {
            return false;
        }

        foreach (var signal in Volatile.Read(ref _signals))
        {
            signal.RunIfRung();
        }

        return true;
    }

    private void Run(LoopPriority priority, int? fifoPriority, Action<string>? started, AboveWorkerPlacement? placement)
    {
        Volatile.Write(ref _threadId, Environment.CurrentManagedThreadId);
        var budget = placement?.Budget;
        try
        {
            started?.Invoke(placement is null ? LoopThread.Elevate(priority, fifoPriority) : placement.Apply());
            budget?.Woke();
            while (true)
            {
                if (RunNext())
                {
                    Volatile.Write(ref _allocated, GC.GetAllocatedBytesForCurrentThread());
                    budget?.Ran();
                    continue;
                }

                // Going idle: announce it, then look once more (a post or ring between the two saw _idle = 0 and did not wake).
                Interlocked.Exchange(ref _idle, 1);
                if (RunNext())
                {
                    Volatile.Write(ref _idle, 0);
                    Volatile.Write(ref _allocated, GC.GetAllocatedBytesForCurrentThread());
                    budget?.Ran();
                    continue;
                }

                lock (_gate)
                {
                    if (_stopping)
                    {
                        break;
                    }
                }

                // A demoted loop comes back onto the worker's CPU only here, idle (a ring meanwhile makes the wait return at once).
                budget?.GoingIdle();
                _wake.Wait();
                budget?.Woke();
            }
        }
        finally
        {
            IMailbox[] open;
            LoopSignal[] signals;
            lock (_gate)
            {
                _stopping = true;
                open = [.. _mailboxes];
                _mailboxes.Clear();
                signals = _signals;
                _signals = [];
            }

            foreach (var mailbox in open)
            {
                mailbox.Abandon();
            }

            foreach (var signal in signals)
            {
                signal.Abandon();
            }

            // A late post, ring or Stop from another thread finds it closed and writes nothing.
            _wake.Dispose();
            _done.TrySetResult();
        }
    }

    internal interface IMailbox
    {
        void Run();

        void Abandon();
    }
}

/// <summary>
/// One input queue of an <see cref="EventLoop"/> (the <c>ChannelWriter</c> of a single-reader loop): any thread writes,
/// the loop's thread runs the handler for each item in order.
/// </summary>
public sealed class Mailbox<T> : EventLoop.IMailbox
{
    private readonly EventLoop _loop;
    private readonly Action<T> _handle;
    private readonly bool _urgent;
    private readonly Queue<T> _items = new();
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _scheduled;
    private bool _closed;
    private bool _finished;

    internal Mailbox(EventLoop loop, Action<T> handle, bool urgent)
    {
        _loop = loop;
        _handle = handle;
        _urgent = urgent;
    }

    /// <summary>Completes when the mailbox was completed and its last item ran (faulted if a handler threw).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Queues <paramref name="item"/>; false once the mailbox is completed (the item is not queued).</summary>
    public bool TryWrite(T item)
    {
        bool schedule;
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            _items.Enqueue(item);
            schedule = !_scheduled;
            _scheduled = true;
        }

        if (schedule)
        {
            _loop.Ready(this, _urgent);
        }

        return true;
    }

    /// <summary>No more writes; <see cref="Completion"/> completes once the items already queued have run.</summary>
    public void TryComplete()
    {
        bool schedule;
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            schedule = !_scheduled;
            _scheduled = true;
        }

        if (schedule)
        {
            _loop.Ready(this, _urgent);
        }
    }

    void EventLoop.IMailbox.Run()
    {
        for (var n = 0; ; n++)
        {
            T item;
            lock (_gate)
            {
                if (_finished)
                {
                    return;
                }

                if (!_items.TryDequeue(out item!))
                {
                    _scheduled = false;
                    if (_closed)
                    {
                        Finish(null);
                    }

                    return;
                }
            }

            try
            {
                _handle(item);
            }
#pragma warning disable CA1031 // the mailbox's owner sees the failure through Completion; the loop serves the others
            catch (Exception e)
#pragma warning restore CA1031
            {
                lock (_gate)
                {
                    _closed = true;
                    _items.Clear();
                    Finish(e);
                }

                return;
            }

            // An ordinary mailbox yields to urgent ones after each item, and to the others after its budget.
            if (!_urgent && (n + 1 >= EventLoop.Budget || _loop.UrgentWaiting))
            {
                lock (_gate)
                {
                    if (_items.Count == 0 && !_closed)
                    {
                        _scheduled = false;
                        return;
                    }
                }

                _loop.Ready(this, _urgent);
                return;
            }
        }
    }

    void EventLoop.IMailbox.Abandon()
    {
        lock (_gate)
        {
            _closed = true;
            _items.Clear();
            Finish(null);
        }
    }

    /// <summary>Under <see cref="_gate"/>.</summary>
    private void Finish(Exception? error)
    {
        if (_finished)
        {
            return;
        }

        _finished = true;
        _loop.Forget(this);
        if (error is null)
        {
            _completion.TrySetResult();
        }
        else
        {
            _completion.TrySetException(error);
        }
    }
}
