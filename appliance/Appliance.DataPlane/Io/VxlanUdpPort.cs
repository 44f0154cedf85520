using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>Options for <see cref="VxlanUdpPort"/>.</summary>
public sealed class VxlanUdpPortOptions
{
    /// <summary>Underlay IPv4 address to bind (<see cref="IPAddress.Any"/> for all).</summary>
    public required IPAddress LocalAddress { get; init; }

    /// <summary>UDP port to bind, and the destination port when a frame names none.</summary>
    public ushort Port { get; init; } = VxlanUdpPort.DefaultPort;

    public string Name { get; init; } = "vxlan";

    /// <summary>Most datagrams moved by one recvmmsg/sendmmsg.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>false = one recvmsg/sendto per datagram (to measure what batching buys).</summary>
    public bool BatchSyscalls { get; init; } = true;

    /// <summary>SO_RCVBUF and SO_SNDBUF in bytes (the FORCE variants when privileged); 0 = kernel default.</summary>
    public int SocketBufferBytes { get; init; } = 4 << 20;

    /// <summary>
    /// Send datagrams toward VTEPs whose next hop the kernel has resolved as raw Ethernet frames on the
    /// underlay interface (<see cref="VxlanRawSender"/>); the rest still go through the UDP socket.
    /// </summary>
    public bool RawTransmit { get; init; } = true;

    /// <summary>
    /// With <see cref="RawTransmit"/>: raw frames whose path leaves through the interface holding
    /// <see cref="LocalAddress"/> go out through the TX ring of a transmit-only AF_XDP socket on it.
    /// </summary>
    public bool XdpTransmit { get; init; }

    /// <summary>
    /// Send every datagram through the kernel's UDP stack with UDP GSO (<see cref="VxlanGsoSender"/>): runs of same-size
    /// datagrams to one VTEP and source port leave as one sendmsg. Replaces <see cref="RawTransmit"/> and
    /// <see cref="XdpTransmit"/> for this port; the UDP socket on <see cref="Port"/> still receives.
    /// </summary>
    public bool UdpGsoTransmit { get; init; }

    /// <summary>
    /// Receive the VXLAN datagrams to <see cref="LocalAddress"/>:<see cref="Port"/> through AF_XDP on the
    /// interface holding the address: an XDP program redirects IPv4 UDP frames to that address and port
    /// (no IP options, not fragmented) to the socket, and passes everything else to the kernel (ARP, ICMP,
    /// fragments and options still reach the UDP socket, which stays bound). If the set-up fails the port
    /// receives on the UDP socket alone and <see cref="VxlanUdpPort.XdpError"/> says why.
    /// </summary>
    public bool XdpReceive { get; init; }

    /// <summary>With <see cref="XdpReceive"/>: the AF_XDP receive ring's size in frames (<see cref="AfPacketPortOptions.XdpRingFrames"/>).</summary>
    public int XdpRingFrames { get; init; } = XdpSocket.DefaultFrames;

    /// <summary>Resolves raw transmit paths; null = rtnetlink in the namespace the port is created in. Owned by the port.</summary>
    public IUnderlayResolver? Resolver { get; init; }
}

/// <summary>
/// The VXLAN underlay port: a UDP socket on the underlay address. A received datagram's payload
/// (VXLAN header + inner frame) lands at <see cref="PacketPool.Headroom"/>, with the sender in
/// <see cref="PacketMeta.RemoteVtep"/>/<see cref="PacketMeta.RemotePort"/>; decap validates peers and VNIs.
/// A transmitted frame is a VXLAN header + inner frame, sent to <see cref="TxFrame.DestinationIp"/>.
/// </summary>
/// <remarks>
/// With <see cref="VxlanUdpPortOptions.RawTransmit"/> (the default) a datagram toward a VTEP whose next
/// hop is resolved leaves as a raw frame built in place (<see cref="VxlanRawSender"/>) and carries
/// <see cref="TxFrame.SourcePort"/> (RFC 7348 §5 flow entropy). Through the UDP socket (raw transmit off,
/// or the fallback) the source port cannot vary per packet: every such datagram leaves from
/// <see cref="VxlanUdpPortOptions.Port"/>. With <see cref="VxlanUdpPortOptions.UdpGsoTransmit"/> every datagram goes
/// through <see cref="VxlanGsoSender"/>'s sockets instead, in UDP GSO trains, from one of its 16 source ports chosen by
/// <see cref="TxFrame.SourcePort"/>.
/// </remarks>
public sealed unsafe class VxlanUdpPort : IPacketPort
{
    public const ushort DefaultPort = 4789;

    private readonly int _batchSize;
    private readonly bool _batchSyscalls;
    private readonly ushort _defaultPortNetworkOrder;
    private readonly MessageVector _messages;
    private readonly int[] _rented;
    private readonly TxFrame[] _udpFrames;
    private readonly VxlanRawSender? _raw;
    private readonly VxlanGsoSender? _gso;
    private readonly XdpSocket? _xdp;
    private readonly int _epoll = -1;
    private readonly int _xdpInterface;
    private readonly byte[] _scratch = GC.AllocateUninitializedArray<byte>(PacketPool.MaxFrame, pinned: true);
    private int _fd;

    public VxlanUdpPort(VxlanUdpPortOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.LocalAddress);
        if (options.LocalAddress.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("The VXLAN underlay is IPv4.", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.BatchSize, TxQueue.Capacity);
        Name = options.Name;
        _batchSize = options.BatchSize;
        _batchSyscalls = options.BatchSyscalls;
        _defaultPortNetworkOrder = Libc.Htons(options.Port);

        _fd = Libc.Socket(Libc.AfInet, Libc.SockDgram | Libc.SockNonBlock | Libc.SockCloExec, Libc.IpProtoUdp);
        if (_fd < 0)
        {
            throw new IOException($"socket(AF_INET, SOCK_DGRAM) failed: {Libc.Describe(Libc.Errno)}");
        }

        try
        {
            SocketSetup.SetInt(_fd, Libc.SolSocket, Libc.SoReuseAddr, 1, "SO_REUSEADDR");
            SocketSetup.SetBuffers(_fd, options.SocketBufferBytes);
            var sin = default(SockAddrIn);
            sin.Family = Libc.AfInet;
            sin.Port = _defaultPortNetworkOrder;
            sin.Addr = BitConverter.ToUInt32(options.LocalAddress.GetAddressBytes()); // bytes are in network order
            if (Libc.Bind(_fd, &sin, (uint)sizeof(SockAddrIn)) != 0)
            {
                throw new IOException($"bind({options.LocalAddress}:{options.Port}) failed: {Libc.Describe(Libc.Errno)}");
            }

            var bound = default(SockAddrIn);
            var length = (uint)sizeof(SockAddrIn);
            _ = Libc.GetSockName(_fd, &bound, &length);
            LocalEndPoint = new IPEndPoint(new IPAddress(bound.Addr), BinaryPrimitives.ReverseEndianness(bound.Port));

            _messages = new MessageVector(_batchSize, 0, sizeof(SockAddrIn));
            _rented = new int[_batchSize];
            _udpFrames = new TxFrame[_batchSize];
            var local = BinaryPrimitives.ReadUInt32BigEndian(options.LocalAddress.GetAddressBytes());
            var xdpTransmit = options.XdpTransmit && options.RawTransmit && !options.UdpGsoTransmit;
            if (options.XdpReceive || xdpTransmit)
            {
                var ifIndex = XdpSocket.InterfaceOf(local);
                try
                {
                    if (ifIndex <= 0)
                    {
                        throw new IOException("AF_XDP: no interface holds the underlay address");
                    }

                    _xdp = new XdpSocket(
                        ifIndex, options.XdpReceive, xdpTransmit ? XdpSocket.DefaultTxFrames : 0, options.XdpRingFrames,
                        udpMatch: options.XdpReceive ? (local, options.Port) : null);
                    _xdpInterface = ifIndex;
                    if (_xdp.Ring is not null)
                    {
                        // One handle for the worker to poll: the AF_XDP socket and the UDP socket (what the program passes).
                        _epoll = Libc.EpollCreate1(Libc.EpollCloExec);
                        if (_epoll < 0 || !EpollAdd(_epoll, _xdp.Handle) || !EpollAdd(_epoll, _fd))
                        {
                            throw new IOException($"epoll for AF_XDP + UDP failed: {Libc.Describe(Libc.Errno)}");
                        }
                    }
                }
                catch (IOException e)
                {
                    XdpError = e.Message;
                    _xdp?.Dispose();
                    _xdp = null;
                    if (_epoll >= 0)
                    {
                        SocketSetup.CloseQuietly(_epoll);
                        _epoll = -1;
                    }
                }
            }

            if (options.UdpGsoTransmit)
            {
                _gso = new VxlanGsoSender(local, options.Port, TxQueue.Capacity, options.SocketBufferBytes);
            }
            else if (options.RawTransmit)
            {
                try
                {
                    _raw = new VxlanRawSender(
                        options.Resolver ?? new NetlinkUnderlayResolver(),
                        BinaryPrimitives.ReadUInt32BigEndian(options.LocalAddress.GetAddressBytes()),
                        options.Port,
                        _batchSize,
                        options.SocketBufferBytes,
                        _xdp,
                        _xdpInterface);
                }
                catch (UnauthorizedAccessException e)
                {
                    // Unprivileged (no CAP_NET_RAW): the UDP socket alone still works.
                    RawTransmitError = e.Message;
                }
            }
        }
        catch
        {
            options.Resolver?.Dispose();
            _gso?.Dispose();
            _xdp?.Dispose();
            if (_epoll >= 0)
            {
                SocketSetup.CloseQuietly(_epoll);
            }

            _messages?.Dispose();
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            throw;
        }
    }

    public string Name { get; }

    public PortKind Kind => PortKind.Vxlan;

    /// <summary>The address and port actually bound.</summary>
    public IPEndPoint LocalEndPoint { get; }

    public int PollHandle => _epoll >= 0 ? _epoll : _fd;

    /// <summary>VXLAN datagrams arrive through AF_XDP (<see cref="VxlanUdpPortOptions.XdpReceive"/> and its set-up worked).</summary>
    public bool ReceivesWithXdp => _xdp?.Ring is not null;

    public PortCounters Counters { get; } = new();

    /// <inheritdoc />
    /// <remarks>With AF_XDP: datagrams are waiting on the RX ring.</remarks>
    public bool HasPendingFrames => _xdp?.Ring is { } ring && ring.Available > 0;

    /// <inheritdoc />
    public bool ReceiveRingVisible => _xdp?.Ring is not null;

    /// <inheritdoc />
    public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(pool);
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        if (_xdp?.Ring is { } ring && ring.Receive(batch, pool, portIndex, PacketBatch.MaxSize, Counters) is var fromRing and > 0)
        {
            // The UDP socket (fragments, IP options: what the program passes) is read when the ring is empty.
            return fromRing;
        }

        var want = Math.Min(batch.Free, _batchSize);
        if (want <= 0)
        {
            return 0;
        }

        var rented = 0;
        while (rented < want)
        {
            var b = pool.Rent();
            if (b < 0)
            {
                break;
            }

            _rented[rented] = b;
            _messages.PrepareReceive(rented, pool.Pointer(b) + PacketPool.Headroom, PacketPool.MaxFrame);
            rented++;
        }

        if (rented == 0)
        {
            DrainWithoutBuffers(want);
            return 0;
        }

        var received = _batchSyscalls ? ReceiveBatched(rented) : ReceiveEach(rented);
        for (var i = 0; i < received; i++)
        {
            var m = _messages.Messages + i;
            var length = (int)m->Length;
            ref var meta = ref batch.Add(_rented[i], PacketPool.Headroom, Math.Min(length, PacketPool.MaxFrame), portIndex);
            if ((m->Header.Flags & Libc.MsgTrunc) != 0 || length > PacketPool.MaxFrame)
            {
                meta.Flags |= PacketFlags.Truncated;
                Counters.RxTruncated++;
            }

            var from = (SockAddrIn*)_messages.Name(i);
            meta.RemoteVtep = BinaryPrimitives.ReverseEndianness(from->Addr);
            meta.RemotePort = BinaryPrimitives.ReverseEndianness(from->Port);
            Counters.RxPackets++;
            Counters.RxBytes += length;
        }

        for (var i = received; i < rented; i++)
        {
            pool.Return(_rented[i]);
        }

        return received;
    }

    /// <inheritdoc />
    public void Transmit(TxQueue queue, PacketPool pool)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(pool);
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        var frames = queue.Frames;
        if (_gso is not null)
        {
            _gso.Send(frames, pool, Counters);
        }
        else if (_batchSyscalls)
        {
            TransmitBatched(frames, pool);
        }
        else
        {
            TransmitEach(frames, pool);
        }

        foreach (ref readonly var f in frames)
        {
            pool.Return(f.Buffer);
        }

        queue.Clear();
    }

    /// <inheritdoc />
    /// <remarks>Also re-resolves the raw transmit paths (next-hop MACs, routes), once a second.</remarks>
    public void RefreshKernelCounters()
    {
        if (_fd >= 0 && SocketSetup.ReadDrops(_fd) is var drops and >= 0)
        {
            Counters.RxKernelDrops = drops + (_xdp?.Ring is not null && _xdp.ReadDrops() is var xdpDrops and >= 0 ? xdpDrops : 0);
        }

        _raw?.Refresh();
    }

    /// <summary>Why raw transmit was requested but is off (no CAP_NET_RAW), or null.</summary>
    public string? RawTransmitError { get; }

    /// <summary>Raw frames leave through AF_XDP (<see cref="VxlanUdpPortOptions.XdpTransmit"/> and its set-up worked).</summary>
    public bool TransmitsWithXdp => _raw?.TransmitsWithXdp ?? false;

    /// <summary>Datagrams leave through UDP GSO trains (<see cref="VxlanUdpPortOptions.UdpGsoTransmit"/>).</summary>
    public bool TransmitsWithUdpGso => _gso is not null;

    /// <summary>With UDP GSO transmit: the outer source port of each of its sockets, else empty (diagnostics and tests).</summary>
    public ReadOnlySpan<ushort> GsoSourcePorts => _gso is null ? default : _gso.SourcePorts;

    /// <summary>With UDP GSO transmit: the outer source port a frame with flow entropy <paramref name="entropy"/> leaves from.</summary>
    public ushort GsoSourcePortFor(ushort entropy) => _gso?.SourcePortFor(entropy) ?? 0;

    /// <summary>Why AF_XDP receive or transmit was asked for but the port uses its sockets, or null.</summary>
    public string? XdpError { get; }

    /// <summary>The raw sender's AF_XDP transmit ring, or null (diagnostics and tests).</summary>
    public XdpTxRing? XdpTxRing => _raw?.XdpTxRing;

    /// <summary>Raw transmit paths resolved so far (empty when raw transmit is off); allocates.</summary>
    public UnderlayPath[] RawPaths() => _raw?.CopyPaths() ?? [];

    public void Dispose()
    {
        if (_fd >= 0)
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            _messages.Dispose();
            _raw?.Dispose();
            _gso?.Dispose();
            _xdp?.Dispose();
            if (_epoll >= 0)
            {
                SocketSetup.CloseQuietly(_epoll);
            }
        }
    }

    private static bool EpollAdd(int epoll, int fd)
    {
        var ev = stackalloc ulong[2];
        ev[0] = Libc.EpollIn;
        ev[1] = 0;
        return Libc.EpollCtl(epoll, Libc.EpollCtlAdd, fd, ev) == 0;
    }

    private void WriteDestination(SockAddrIn* sin, in TxFrame frame)
    {
        *sin = default;
        sin->Family = Libc.AfInet;
        sin->Addr = BinaryPrimitives.ReverseEndianness(frame.DestinationIp);
        sin->Port = frame.DestinationPort == 0 ? _defaultPortNetworkOrder : BinaryPrimitives.ReverseEndianness(frame.DestinationPort);
    }

    private int ReceiveBatched(int count)
    {
        Counters.RxSyscalls++;
        var n = Libc.RecvMMsg(_fd, _messages.Messages, (uint)count, Libc.MsgDontWait, null);
        return n < 0 ? 0 : n;
    }

    private int ReceiveEach(int count)
    {
        var received = 0;
        while (received < count)
        {
            Counters.RxSyscalls++;
            var n = Libc.RecvMsg(_fd, &_messages.Messages[received].Header, Libc.MsgDontWait);
            if (n < 0)
            {
                break;
            }

            _messages.Messages[received].Length = (uint)n;
            received++;
        }

        return received;
    }

    private void DrainWithoutBuffers(int count)
    {
        fixed (byte* scratch = _scratch)
        {
            for (var i = 0; i < count; i++)
            {
                _messages.PrepareReceive(i, scratch, _scratch.Length);
            }

            Counters.RxSyscalls++;
            var n = Libc.RecvMMsg(_fd, _messages.Messages, (uint)count, Libc.MsgDontWait, null);
            if (n > 0)
            {
                Counters.RxNoBuffer += n;
            }
        }
    }

    private void TransmitBatched(ReadOnlySpan<TxFrame> frames, PacketPool pool)
    {
        var index = 0;
        while (index < frames.Length)
        {
            var chunk = Math.Min(_batchSize, frames.Length - index);
            var udp = 0;
            for (var i = 0; i < chunk; i++)
            {
                ref readonly var f = ref frames[index + i];
                if (_raw is not null)
                {
                    if (_raw.TryPrepare(f, pool))
                    {
                        continue;
                    }

                    Counters.TxRawFallback++;
                }

                WriteDestination((SockAddrIn*)_messages.Name(udp), f);
                _messages.PrepareSend(udp, pool.Pointer(f.Buffer) + f.Offset, f.Length, (uint)sizeof(SockAddrIn));
                _udpFrames[udp++] = f;
            }

            // Socket first: a VTEP's first datagram after a heartbeat may be its neighbor re-confirmation
            // (see VxlanRawSender), and it must not overtake the raw frames behind it.
            var sent = udp == 0 || _messages.SendPrepared(_fd, udp, _udpFrames.AsSpan(0, udp), 0, Counters);
            _raw?.Send(Counters);
            if (!sent)
            {
                // No room in the socket: what is left of the queue is counted as errors, not retried.
                Counters.TxErrors += frames.Length - (index + chunk);
                return;
            }

            index += chunk;
        }
    }

    private void TransmitEach(ReadOnlySpan<TxFrame> frames, PacketPool pool)
    {
        var sin = (SockAddrIn*)_messages.Name(0);
        foreach (ref readonly var f in frames)
        {
            WriteDestination(sin, f);
            Counters.TxSyscalls++;
            var n = Libc.SendTo(_fd, pool.Pointer(f.Buffer) + f.Offset, (nuint)f.Length, Libc.MsgDontWait, sin, (uint)sizeof(SockAddrIn));
            if (n < 0)
            {
                Counters.TxErrors++;
            }
            else
            {
                Counters.TxPackets++;
                Counters.TxBytes += f.Length;
            }
        }
    }
}
