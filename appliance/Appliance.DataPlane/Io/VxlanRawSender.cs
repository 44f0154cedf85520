using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// Raw VXLAN transmit for <see cref="VxlanUdpPort"/>: frames toward a VTEP whose next hop the kernel has
/// resolved leave as whole Ethernet frames on an AF_PACKET socket (PACKET_QDISC_BYPASS), with outer
/// Ethernet/IPv4/UDP headers written in place into the buffer's headroom from a per-VTEP
/// <see cref="UnderlayPath"/>. That skips, per datagram, the UDP socket's route lookup, skb build,
/// IP output, neighbor lookup and qdisc. Everything else (an unresolved or stale neighbor, a local
/// route, a frame with too little headroom or too long for the interface MTU) goes through the UDP
/// socket, which also makes the kernel ARP for the next hop.
/// </summary>
/// <remarks>
/// <para>Paths are resolved through <see cref="IUnderlayResolver"/> when a VTEP is first seen and again on
/// every <see cref="Refresh"/> (the worker's one-second heartbeat), so a next-hop MAC change or a route
/// change is picked up within a second. While the kernel's entry is STALE/DELAY/PROBE, the first frame
/// after each refresh goes through the UDP socket: that is what makes the kernel confirm the neighbor,
/// because raw frames never touch its neighbor entry.</para>
/// <para>The UDP socket stays bound for receive (the kernel VTEPs' traffic arrives there, and without it
/// the kernel would answer them with ICMP port unreachable). Threading: the port's worker only.</para>
/// </remarks>
internal sealed unsafe class VxlanRawSender : IDisposable
{
    /// <summary>VTEPs with a cached path; frames to more go through the UDP socket.</summary>
    public const int MaxPaths = 256;

    private readonly IUnderlayResolver _resolver;
    private readonly uint _sourceIp;
    private readonly ushort _defaultPort;
    private readonly MessageVector _messages;
    private readonly TxFrame[] _frames;
    private readonly TxFrame[] _xdpFrames;
    private readonly XdpSocket? _xsk;
    private readonly int _xskInterface;
    private int _messageCount;
    private int _xdpCount;
    private PacketPool? _pool;
    private readonly Entry[] _entries = new Entry[MaxPaths];
    private int _count;
    private int _last;
    private int _fd;

    private struct Entry
    {
        public UnderlayPath Path;
        public uint HeaderSum;

        /// <summary>The next frame goes through the UDP socket so the kernel re-confirms the neighbor.</summary>
        public bool Confirm;
    }

    /// <param name="resolver">Owned: disposed with the sender.</param>
    /// <param name="sourceIp">Outer source address (host order); 0 = each route's preferred source.</param>
    /// <param name="defaultPort">Destination (and default source) UDP port, host order.</param>
    /// <param name="batchSize">Most frames per sendmmsg.</param>
    /// <param name="xdp">
    /// An AF_XDP socket with a TX ring on interface <paramref name="xdpInterface"/> (owned by the caller): frames
    /// whose path leaves through that interface go to its TX ring instead of sendmmsg.
    /// </param>
    /// <exception cref="UnauthorizedAccessException">The process may not open AF_PACKET sockets (no CAP_NET_RAW).</exception>
    public VxlanRawSender(IUnderlayResolver resolver, uint sourceIp, ushort defaultPort, int batchSize, int socketBufferBytes, XdpSocket? xdp = null, int xdpInterface = 0)
    {
        _resolver = resolver;
        _sourceIp = sourceIp;
        _defaultPort = defaultPort;

        // Protocol 0: this socket only sends; it never receives a copy of anything.
        _fd = Libc.Socket(Libc.AfPacket, Libc.SockRaw | Libc.SockNonBlock | Libc.SockCloExec, 0);
        if (_fd < 0)
        {
            var errno = Libc.Errno;
            resolver.Dispose();
            var message = $"socket(AF_PACKET) for raw VXLAN transmit failed: {Libc.Describe(errno)}";
            throw errno is Libc.EPerm or Libc.EAcces ? new UnauthorizedAccessException(message + " (needs CAP_NET_RAW)") : new IOException(message);
        }

        try
        {
            SocketSetup.SetInt(_fd, Libc.SolPacket, Libc.PacketQdiscBypass, 1, "PACKET_QDISC_BYPASS");
            SocketSetup.SetBuffers(_fd, socketBufferBytes);
            _messages = new MessageVector(batchSize, 0, sizeof(SockAddrLl));
            _frames = new TxFrame[batchSize];
            _xdpFrames = new TxFrame[batchSize];
            if (xdp?.TxRing is not null)
            {
                _xsk = xdp;
                _xskInterface = xdpInterface;
            }
        }
        catch
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            resolver.Dispose();
            throw;
        }
    }

    /// <summary>Frames prepared by <see cref="TryPrepare"/> since the last <see cref="Send"/>.</summary>
    public int Prepared => _messageCount + _xdpCount;

    /// <summary>Raw frames on the underlay interface leave through an AF_XDP TX ring.</summary>
    public bool TransmitsWithXdp => _xsk is not null;

    /// <summary>The AF_XDP transmit ring, or null (diagnostics and tests).</summary>
    public XdpTxRing? XdpTxRing => _xsk?.TxRing;

    /// <summary>A copy of the cached paths, for diagnostics and tests (allocates).</summary>
    public UnderlayPath[] CopyPaths() => [.. _entries.AsSpan(0, _count).ToArray().Select(e => e.Path)];

    /// <summary>
    /// Writes the outer headers in front of frame <paramref name="f"/> and queues it as raw message
    /// <see cref="Prepared"/>; false when it must go through the UDP socket instead.
    /// </summary>
    public bool TryPrepare(in TxFrame f, PacketPool pool)
    {
        if (_messageCount == _frames.Length || _xdpCount == _xdpFrames.Length)
        {
            return false;
        }

        var index = Find(f.DestinationIp);
        if (index < 0)
        {
            return false;
        }

        ref var e = ref _entries[index];
        if (!e.Path.Usable || f.Offset < UnderlayPath.OuterLength || 20 + 8 + f.Length > e.Path.Mtu)
        {
            return false;
        }

        if (e.Confirm)
        {
            e.Confirm = false;
            return false;
        }

        var start = pool.Pointer(f.Buffer) + f.Offset - UnderlayPath.OuterLength;
        e.Path.Write(
            new Span<byte>(start, UnderlayPath.OuterLength),
            f.Length,
            f.SourcePort == 0 ? _defaultPort : f.SourcePort,
            f.DestinationPort == 0 ? _defaultPort : f.DestinationPort,
            e.HeaderSum);

        if (e.Path.InterfaceIndex == _xskInterface && _xsk is not null)
        {
            ref var x = ref _xdpFrames[_xdpCount++];
            x = f;
            x.Offset = f.Offset - UnderlayPath.OuterLength;
            x.Length = f.Length + UnderlayPath.OuterLength;
            _pool = pool;
            return true;
        }

        var i = _messageCount;
        var sll = (SockAddrLl*)_messages.Name(i);
        *sll = default;
        sll->Family = Libc.AfPacket;
        sll->Protocol = Libc.Htons(0x0800);
        sll->IfIndex = e.Path.InterfaceIndex;
        sll->HaLen = 6;
        new Packets.MacAddress(e.Path.NextHopMac).WriteTo(new Span<byte>(sll->Addr, 6));
        _messages.PrepareSend(i, start, f.Length + UnderlayPath.OuterLength, (uint)sizeof(SockAddrLl));
        _frames[i] = f;
        _messageCount = i + 1;
        return true;
    }

    /// <summary>Sends the prepared frames (counted in the port's counters by payload, like the UDP socket's).</summary>
    public void Send(PortCounters counters)
    {
        if (Prepared == 0)
        {
            return;
        }

        if (_messageCount > 0)
        {
            _ = _messages.SendPrepared(_fd, _messageCount, _frames.AsSpan(0, _messageCount), 0, counters);
        }

        if (_xdpCount > 0)
        {
            // Counted by payload like the socket's sends: the ring counts whole frames.
            var before = counters.TxPackets;
            _xsk!.Transmit(_xdpFrames.AsSpan(0, _xdpCount), _pool!, counters);
            counters.TxBytes -= (counters.TxPackets - before) * UnderlayPath.OuterLength;
        }

        counters.TxRaw += Prepared;
        _messageCount = _xdpCount = 0;
    }

    /// <summary>Re-resolves every cached path (the worker's heartbeat).</summary>
    public void Refresh()
    {
        for (var i = 0; i < _count; i++)
        {
            Set(ref _entries[i], _resolver.Resolve(_entries[i].Path.DestinationIp, _sourceIp));
        }
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            _messages.Dispose();
            _resolver.Dispose();
        }
    }

    private static void Set(ref Entry e, UnderlayPath path)
    {
        e.Path = path;
        e.HeaderSum = path.HeaderSum;
        e.Confirm = path.State == UnderlayState.Stale;
    }

    /// <summary>The entry for <paramref name="destination"/>, resolving it on first sight; -1 when the cache is full.</summary>
    private int Find(uint destination)
    {
        if (_last < _count && _entries[_last].Path.DestinationIp == destination)
        {
            return _last;
        }

        for (var i = 0; i < _count; i++)
        {
            if (_entries[i].Path.DestinationIp == destination)
            {
                return _last = i;
            }
        }

        if (_count == MaxPaths)
        {
            return -1;
        }

        Set(ref _entries[_count], _resolver.Resolve(destination, _sourceIp));
        return _last = _count++;
    }
}
