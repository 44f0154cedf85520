namespace Isthmus.DataPlane.Io.Native;

/// <summary>Setup-time socket helpers (they throw on failure; never on the hot path).</summary>
internal static unsafe class SocketSetup
{
    public static void SetInt(int fd, int level, int name, int value, string what)
    {
        if (Libc.SetSockOpt(fd, level, name, &value, sizeof(int)) != 0)
        {
            throw new IOException($"setsockopt({what}) failed: {Libc.Describe(Libc.Errno)}");
        }
    }

    public static int GetInt(int fd, int level, int name)
    {
        int value = 0;
        uint length = sizeof(int);
        return Libc.GetSockOpt(fd, level, name, &value, &length) == 0 ? value : -1;
    }

    /// <summary>
    /// Sets SO_RCVBUF/SO_SNDBUF, preferring the *FORCE variants (root, CAP_NET_ADMIN) that ignore
    /// net.core.rmem_max/wmem_max. Best effort: a smaller buffer is not an error.
    /// </summary>
    public static void SetBuffers(int fd, int bytes)
    {
        if (bytes <= 0)
        {
            return;
        }

        if (Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoRcvBufForce, &bytes, sizeof(int)) != 0)
        {
            _ = Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoRcvBuf, &bytes, sizeof(int));
        }

        if (Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoSndBufForce, &bytes, sizeof(int)) != 0)
        {
            _ = Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoSndBuf, &bytes, sizeof(int));
        }
    }

    /// <summary>
    /// Packets the kernel dropped at this socket (receive queue full), cumulative: SO_MEMINFO's
    /// SK_MEMINFO_DROPS. Both packet sockets and UDP sockets count their overflow there. -1 if unknown.
    /// </summary>
    public static long ReadDrops(int fd)
    {
        var info = stackalloc uint[Libc.SkMemInfoVars];
        var length = (uint)(Libc.SkMemInfoVars * sizeof(uint));
        return Libc.GetSockOpt(fd, Libc.SolSocket, Libc.SoMemInfo, info, &length) == 0 && length > Libc.SkMemInfoDrops * sizeof(uint)
            ? info[Libc.SkMemInfoDrops]
            : -1;
    }

    public static void CloseQuietly(int fd)
    {
        if (fd >= 0)
        {
            _ = Libc.Close(fd);
        }
    }
}
