using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Workers;

/// <summary>
/// An eventfd(2) the worker polls beside its ports, so another thread can end its idle poll at once
/// instead of waiting out the 50 ms timeout: a query that sends frames (a GARP burst after a workload
/// moved) then leaves within microseconds. Signal from any thread; drain on the worker.
/// </summary>
public sealed unsafe class WorkerWakeup : IDisposable
{
    private int _fd;

    public WorkerWakeup()
    {
        _fd = Libc.EventFd(0, Libc.EfdNonBlock | Libc.EfdCloExec);
        if (_fd < 0)
        {
            throw new IOException($"eventfd failed: {Libc.Describe(Libc.Errno)}");
        }
    }

    public int Handle => _fd;

    /// <summary>Makes the descriptor readable (adds 1 to the counter). A failure (closed) is ignored: the worker stopped.</summary>
    public void Signal()
    {
        ulong one = 1;
        _ = Libc.Write(_fd, &one, sizeof(ulong));
    }

    /// <summary>Resets the counter so the next poll sleeps again.</summary>
    public void Drain()
    {
        ulong value;
        _ = Libc.Read(_fd, &value, sizeof(ulong));
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = Libc.Close(fd);
        }
    }
}
