using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// poll(2) over a fixed set of file descriptors, for a worker that waits on its ports when idle.
/// <see cref="Wait"/> does not allocate. Not thread-safe: one worker owns it.
/// </summary>
public sealed unsafe class Poller
{
    private readonly PollFd[] _fds;

    public Poller(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _fds = GC.AllocateArray<PollFd>(capacity, pinned: true);
    }

    public int Count { get; private set; }

    /// <summary>Watches <paramref name="fd"/> for readability and returns its index.</summary>
    public int Add(int fd)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        if (Count == _fds.Length)
        {
            throw new InvalidOperationException("Poller is full.");
        }

        _fds[Count] = new PollFd { Fd = fd, Events = Libc.PollIn };
        return Count++;
    }

    /// <summary>Watches a port's <see cref="IPacketPort.PollHandle"/> and returns its index.</summary>
    public int Add(IPacketPort port)
    {
        ArgumentNullException.ThrowIfNull(port);
        return Add(port.PollHandle);
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> milliseconds (0 = just check, -1 = forever) and
    /// returns how many descriptors are ready; 0 on timeout or when a signal interrupted the wait.
    /// </summary>
    public int Wait(int timeoutMs)
    {
        fixed (PollFd* fds = _fds)
        {
            for (var i = 0; i < Count; i++)
            {
                fds[i].Revents = 0;
            }

            var n = Libc.Poll(fds, (nuint)Count, timeoutMs);
            if (n >= 0)
            {
                return n;
            }

            var errno = Libc.Errno;
            return errno == Libc.EIntr ? 0 : throw new IOException($"poll failed: {Libc.Describe(errno)}");
        }
    }

    /// <summary>After <see cref="Wait"/>: data is waiting on descriptor <paramref name="index"/>.</summary>
    public bool IsReadable(int index) => (_fds[index].Revents & Libc.PollIn) != 0;

    /// <summary>After <see cref="Wait"/>: the descriptor reported an error, hang-up or is invalid.</summary>
    public bool HasError(int index) => (_fds[index].Revents & (Libc.PollErr | Libc.PollHup | Libc.PollNVal)) != 0;
}
