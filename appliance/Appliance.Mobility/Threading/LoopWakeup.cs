using System.Runtime.InteropServices;

namespace Isthmus.Mobility.Threading;

/// <summary>
/// How an idle <see cref="EventLoop"/> sleeps and is woken: on Linux an eventfd(2), the loop blocking in read(2) and a
/// waker doing one write(2), so a wake-up costs each side one system call and takes no lock (a monitor-based semaphore
/// takes its lock on both sides, and the woken thread retakes it). Elsewhere a <see cref="SemaphoreSlim"/>.
/// </summary>
/// <remarks>
/// The descriptor is closed by the loop's thread when it ends (<see cref="Dispose"/>), while a late waker on another
/// thread may still be about to write: every <see cref="Signal"/> counts itself in <see cref="_writers"/> before it looks at
/// <see cref="_closed"/>, and <see cref="Dispose"/> sets <see cref="_closed"/> before it waits for that count to reach
/// zero (both with full fences), so either the waker sees the descriptor closed and writes nothing, or the close waits
/// for its write: a write never reaches a descriptor number the process reused.
/// </remarks>
internal sealed unsafe partial class LoopWakeup : IDisposable
{
    private readonly int _fd = -1;
    private readonly SemaphoreSlim? _semaphore;
    private int _writers;
    private int _closed;

    public LoopWakeup()
    {
        if (!OperatingSystem.IsLinux())
        {
            _semaphore = new SemaphoreSlim(0);
            return;
        }

        // Blocking (no EFD_NONBLOCK): the loop sleeps in read().
        _fd = EventFd(0, EfdCloExec);
        if (_fd < 0)
        {
            throw new IOException($"eventfd failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Wakes <see cref="Wait"/> (now, or the next one if the loop is not asleep yet). Any thread; never blocks, allocates nothing.</summary>
    public void Signal()
    {
        if (_semaphore is not null)
        {
            _semaphore.Release();
            return;
        }

        Interlocked.Increment(ref _writers);
        if (Volatile.Read(ref _closed) == 0)
        {
            ulong one = 1;
            _ = Write(_fd, &one, sizeof(ulong));
        }

        Interlocked.Decrement(ref _writers);
    }

    /// <summary>The loop's thread: sleeps until signalled since the last wait (several signals count as one).</summary>
    public void Wait()
    {
        if (_semaphore is not null)
        {
            _semaphore.Wait();
            return;
        }

        ulong value;
        while (Read(_fd, &value, sizeof(ulong)) < 0 && Marshal.GetLastPInvokeError() == EIntr)
        {
        }
    }

    /// <summary>The loop's thread, once it will not wait again.</summary>
    public void Dispose()
    {
        if (_semaphore is not null || Interlocked.Exchange(ref _closed, 1) == 1)
        {
            // The semaphore is not disposed: a late signal may still release it (it holds no kernel handle).
            return;
        }

        var spin = new SpinWait();
        while (Volatile.Read(ref _writers) != 0)
        {
            spin.SpinOnce();
        }

        _ = Close(_fd);
    }

    private const int EfdCloExec = 0x80000;
    private const int EIntr = 4;

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initialValue, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(int fd, void* buffer, nuint count);

    // No SetLastError: a failed wake-up (the loop ended) needs no reason, and the waker's call stays a bare write().
    [LibraryImport("libc", EntryPoint = "write")]
    private static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
