namespace Isthmus.Mobility.Threading;

/// <summary>
/// A wake-up source of an <see cref="EventLoop"/> (<see cref="EventLoop.CreateSignal"/>) for a thread that must take no
/// lock and allocate nothing: the data-plane worker after it posted mobility signals into its lock-free feed.
/// <see cref="Ring"/> is an interlocked flag, plus one eventfd write when the loop sleeps; the loop then runs the
/// handler on its thread, which drains the work from where the ringer left it.
/// </summary>
/// <remarks>
/// Rings before the handler starts count once (the flag is cleared just before it runs, so a ring while it runs runs it
/// again). A handler that throws closes the signal (<see cref="Completion"/> faults; later rings do nothing); the loop
/// and its other mailboxes and signals go on. <see cref="Close"/> stops it from the owner's side.
/// </remarks>
public sealed class LoopSignal
{
    private readonly EventLoop _loop;
    private readonly Action _handle;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _rung;
    private volatile bool _closed;

    internal LoopSignal(EventLoop loop, Action handle)
    {
        _loop = loop;
        _handle = handle;
    }

    /// <summary>Completes when the signal was closed (faulted if its handler threw).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Makes the loop run the handler soon (any thread, the loop's too): no lock, no allocation, at most one write(2).</summary>
    public void Ring()
    {
        if (!_closed && Interlocked.Exchange(ref _rung, 1) == 0)
        {
            _loop.Rung();
        }
    }

    /// <summary>No more runs: a ring from now on does nothing (a run already started finishes).</summary>
    public void Close()
    {
        _closed = true;
        _loop.Forget(this);
        _completion.TrySetResult();
    }

    /// <summary>The loop's thread.</summary>
    internal void RunIfRung()
    {
        if (_closed || Interlocked.Exchange(ref _rung, 0) == 0)
        {
            return;
        }

        try
        {
            _handle();
        }
#pragma warning disable CA1031 // the signal's owner sees the failure through Completion; the loop serves the others
        catch (Exception e)
#pragma warning restore CA1031
        {
            _closed = true;
            _loop.Forget(this);
            _completion.TrySetException(e);
        }
    }

    /// <summary>The loop ended (or had before the signal was made).</summary>
    internal void Abandon()
    {
        _closed = true;
        _completion.TrySetResult();
    }
}
