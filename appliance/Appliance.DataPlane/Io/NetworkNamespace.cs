using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// Moves the current thread into a named network namespace (<c>ip netns</c>) until disposed.
/// Sockets keep the namespace they were created in, so one process can serve its API in the root
/// namespace while its data-plane sockets live in a lab namespace:
/// <code>
/// using (NetworkNamespace.Enter("ist-app"))
/// {
///     trunk = new AfPacketPort(new() { InterfaceName = "eth1" });
/// }
/// </code>
/// </summary>
/// <remarks>
/// setns(2) switches only the calling OS thread. Inside the scope stay on that thread: no
/// <c>await</c>, no work handed to the thread pool, and dispose on the same thread (it throws
/// otherwise, because restoring from another thread would move the wrong thread). Needs
/// CAP_SYS_ADMIN. Interface names (if_nametoindex) resolve in the namespace that is current.
/// </remarks>
public sealed class NetworkNamespace : IDisposable
{
    /// <summary>Where <c>ip netns add</c> bind-mounts named namespaces.</summary>
    public const string RunDirectory = "/var/run/netns";

    private const string ThreadNamespacePath = "/proc/thread-self/ns/net";

    private readonly int _threadId;
    private int _originalFd;

    private NetworkNamespace(string name, int originalFd)
    {
        Name = name;
        _originalFd = originalFd;
        _threadId = Environment.CurrentManagedThreadId;
    }

    /// <summary>The namespace entered.</summary>
    public string Name { get; }

    /// <summary>
    /// The calling thread's network namespace identity, such as <c>net:[4026531840]</c>
    /// (for logs and tests).
    /// </summary>
    public static string CurrentId =>
        new FileInfo(ThreadNamespacePath).LinkTarget ?? throw new IOException($"Cannot read {ThreadNamespacePath}.");

    /// <summary>Enters the namespace <paramref name="name"/> (a file in <see cref="RunDirectory"/>) on this thread.</summary>
    public static NetworkNamespace Enter(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
        {
            throw new ArgumentException($"Invalid namespace name '{name}'.", nameof(name));
        }

        return EnterPath(Path.Combine(RunDirectory, name), name);
    }

    /// <summary>Enters the namespace behind any nsfs path, such as <c>/proc/PID/ns/net</c>.</summary>
    public static NetworkNamespace EnterPath(string path, string? name = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var original = Libc.Open(ThreadNamespacePath, Libc.ORdOnly | Libc.OCloExec);
        if (original < 0)
        {
            throw new IOException($"open({ThreadNamespacePath}) failed: {Libc.Describe(Libc.Errno)}");
        }

        var target = Libc.Open(path, Libc.ORdOnly | Libc.OCloExec);
        if (target < 0)
        {
            var errno = Libc.Errno;
            SocketSetup.CloseQuietly(original);
            throw new IOException($"Network namespace '{path}' cannot be opened: {Libc.Describe(errno)}");
        }

        Thread.BeginThreadAffinity();
        var rc = Libc.SetNs(target, Libc.CloneNewNet);
        var setnsErrno = Libc.Errno;
        SocketSetup.CloseQuietly(target);
        if (rc != 0)
        {
            Thread.EndThreadAffinity();
            SocketSetup.CloseQuietly(original);
            throw new IOException($"setns({path}) failed: {Libc.Describe(setnsErrno)}");
        }

        return new NetworkNamespace(name ?? path, original);
    }

    /// <summary>Returns the thread to the namespace it was in before <see cref="Enter"/>.</summary>
    public void Dispose()
    {
        if (_originalFd < 0)
        {
            return;
        }

        if (Environment.CurrentManagedThreadId != _threadId)
        {
            throw new InvalidOperationException(
                $"NetworkNamespace '{Name}' disposed on another thread; the entering thread is still inside it.");
        }

        var rc = Libc.SetNs(_originalFd, Libc.CloneNewNet);
        var errno = Libc.Errno;
        SocketSetup.CloseQuietly(_originalFd);
        _originalFd = -1;
        Thread.EndThreadAffinity();
        if (rc != 0)
        {
            // The thread is stranded in the wrong namespace: nothing safe can run on it any more.
            Environment.FailFast($"setns back from network namespace '{Name}' failed: {Libc.Describe(errno)}");
        }
    }
}
