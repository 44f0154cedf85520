using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>Options for <see cref="AfPacketPort"/>.</summary>
public sealed class AfPacketPortOptions
{
    /// <summary>Kernel interface to bind to (looked up in the calling thread's network namespace).</summary>
    public required string InterfaceName { get; init; }

    /// <summary>Port name for counters and logs; defaults to <see cref="InterfaceName"/>.</summary>
    public string? Name { get; init; }

    /// <summary><see cref="PortKind.Trunk"/> or <see cref="PortKind.Access"/>.</summary>
    public PortKind Kind { get; init; } = PortKind.Trunk;

    /// <summary>Most frames moved by one recvmmsg/sendmmsg.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>false = one recvmsg/sendto per frame (to measure what batching buys).</summary>
    public bool BatchSyscalls { get; init; } = true;

    /// <summary>SO_RCVBUF and SO_SNDBUF in bytes (the FORCE variants when privileged); 0 = kernel default.</summary>
    public int SocketBufferBytes { get; init; } = 4 << 20;

    /// <summary>Put the interface in promiscuous mode (PACKET_MR_PROMISC) while the port is open.</summary>
    public bool Promiscuous { get; init; } = true;
}

/// <summary>
/// An 802.1Q trunk or access port on an AF_PACKET SOCK_RAW socket bound to one interface.
/// </summary>
/// <remarks>
/// <para>Receive: the kernel strips the outer 802.1Q/802.1ad tag before the packet taps and reports it
/// in PACKET_AUXDATA, which becomes <see cref="PacketMeta.VlanTci"/>/<see cref="PacketMeta.VlanTpid"/> with
/// <see cref="PacketFlags.VlanFromAux"/>; further (inner) tags stay inline in the frame. Partial
/// checksums (TP_STATUS_CSUMNOTREADY) set <see cref="PacketFlags.ChecksumNotReady"/>.</para>
/// <para>Transmit: frames go out exactly as given; a tag written inline goes on the wire.
/// PACKET_IGNORE_OUTGOING keeps the socket from reading its own transmissions.</para>
/// <para>The socket lives in the network namespace of the thread that constructs the port
/// (see <see cref="NetworkNamespace"/>). Threading as in <see cref="IPacketPort"/>.</para>
/// </remarks>
public sealed unsafe class AfPacketPort : IPacketPort
{
    private readonly int _batchSize;
    private readonly bool _batchSyscalls;
    private readonly MessageVector _messages;
    private readonly int[] _rented;
    private readonly byte[] _scratch = GC.AllocateUninitializedArray<byte>(PacketPool.MaxFrame, pinned: true);
    private int _fd;

    public AfPacketPort(AfPacketPortOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Kind is not (PortKind.Trunk or PortKind.Access))
        {
            throw new ArgumentException("An AF_PACKET port is a trunk or an access port.", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.BatchSize, TxQueue.Capacity);
        Name = options.Name ?? options.InterfaceName;
        Kind = options.Kind;
        InterfaceName = options.InterfaceName;
        _batchSize = options.BatchSize;
        _batchSyscalls = options.BatchSyscalls;

        var ifIndex = (int)Libc.IfNameToIndex(options.InterfaceName);
        if (ifIndex == 0)
        {
            throw new IOException($"Interface '{options.InterfaceName}' not found: {Libc.Describe(Libc.Errno)}");
        }

        InterfaceIndex = ifIndex;

        // Protocol 0 receives nothing until bind() names the protocol and interface, so no frame from
        // another interface can slip into the queue in between.
        _fd = Libc.Socket(Libc.AfPacket, Libc.SockRaw | Libc.SockNonBlock | Libc.SockCloExec, 0);
        if (_fd < 0)
        {
            throw new IOException($"socket(AF_PACKET) failed: {Libc.Describe(Libc.Errno)}");
        }

        try
        {
            SocketSetup.SetInt(_fd, Libc.SolPacket, Libc.PacketAuxData, 1, "PACKET_AUXDATA");
            SocketSetup.SetInt(_fd, Libc.SolPacket, Libc.PacketIgnoreOutgoing, 1, "PACKET_IGNORE_OUTGOING");
            SocketSetup.SetBuffers(_fd, options.SocketBufferBytes);

            var sll = default(SockAddrLl);
            sll.Family = Libc.AfPacket;
            sll.Protocol = Libc.Htons(Libc.EthPAll);
            sll.IfIndex = ifIndex;
            if (Libc.Bind(_fd, &sll, (uint)sizeof(SockAddrLl)) != 0)
            {
                throw new IOException($"bind(AF_PACKET, {options.InterfaceName}) failed: {Libc.Describe(Libc.Errno)}");
            }

            if (options.Promiscuous)
            {
                var mreq = default(PacketMreq);
                mreq.IfIndex = ifIndex;
                mreq.Type = Libc.PacketMrPromisc;
                if (Libc.SetSockOpt(_fd, Libc.SolPacket, Libc.PacketAddMembership, &mreq, (uint)sizeof(PacketMreq)) != 0)
                {
                    throw new IOException($"PACKET_ADD_MEMBERSHIP(PROMISC) failed: {Libc.Describe(Libc.Errno)}");
                }
            }

            _messages = new MessageVector(_batchSize, Libc.CmsgAuxDataSpace, 0);
            _rented = new int[_batchSize];
        }
        catch
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            throw;
        }
    }

    public string Name { get; }

    public PortKind Kind { get; }

    public string InterfaceName { get; }

    public int InterfaceIndex { get; }

    public int PollHandle => _fd;

    public PortCounters Counters { get; } = new();

    /// <inheritdoc />
    public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(pool);
        ObjectDisposedException.ThrowIf(_fd < 0, this);
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

            var aux = (TPacketAuxData*)_messages.FindControl(i, Libc.SolPacket, Libc.PacketAuxData);
            if (aux != null)
            {
                var status = aux->Status;
                if ((status & Libc.TpStatusVlanValid) != 0)
                {
                    meta.VlanTci = aux->VlanTci;
                    meta.VlanTpid = (status & Libc.TpStatusVlanTpidValid) != 0 ? aux->VlanTpid : (ushort)0x8100;
                    meta.Flags |= PacketFlags.VlanFromAux;
                }

                if ((status & Libc.TpStatusCsumNotReady) != 0)
                {
                    meta.Flags |= PacketFlags.ChecksumNotReady;
                }
            }

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
        if (_batchSyscalls)
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

    public void Dispose()
    {
        if (_fd >= 0)
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            _messages.Dispose();
        }
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

    /// <summary>
    /// The pool is empty: read and discard what is waiting (counted as <see cref="PortCounters.RxNoBuffer"/>)
    /// so the socket does not stay readable and spin the worker's poll loop.
    /// </summary>
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
            for (var i = 0; i < chunk; i++)
            {
                ref readonly var f = ref frames[index + i];
                _messages.PrepareSend(i, pool.Pointer(f.Buffer) + f.Offset, f.Length, 0);
            }

            var done = 0;
            var interrupts = 0;
            while (done < chunk)
            {
                Counters.TxSyscalls++;
                var n = Libc.SendMMsg(_fd, _messages.Messages + done, (uint)(chunk - done), Libc.MsgDontWait);
                if (n > 0)
                {
                    for (var i = 0; i < n; i++)
                    {
                        Counters.TxBytes += frames[index + done + i].Length;
                    }

                    Counters.TxPackets += n;
                    done += n;
                    continue;
                }

                var errno = n < 0 ? Libc.Errno : Libc.EAgain;
                if (errno == Libc.EIntr && ++interrupts < 4)
                {
                    continue;
                }

                if (errno is Libc.EAgain or Libc.ENoBufs)
                {
                    // The device queue or socket buffer is full: drop the rest rather than spin.
                    Counters.TxErrors += frames.Length - (index + done);
                    return;
                }

                // Any other error belongs to the first unsent frame (EMSGSIZE, ENETDOWN...): skip it.
                Counters.TxErrors++;
                done++;
            }

            index += chunk;
        }
    }

    private void TransmitEach(ReadOnlySpan<TxFrame> frames, PacketPool pool)
    {
        foreach (ref readonly var f in frames)
        {
            Counters.TxSyscalls++;
            var n = Libc.SendTo(_fd, pool.Pointer(f.Buffer) + f.Offset, (nuint)f.Length, Libc.MsgDontWait, null, 0);
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
