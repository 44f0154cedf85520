using System.Runtime.InteropServices;
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

    /// <summary>
    /// PACKET_VNET_HDR: receive GSO super-frames (up to 64 KB) whole and segment them, and finish partial
    /// checksums at the kernel's csum_start/csum_offset. Off only to measure what it costs.
    /// </summary>
    public bool VnetHeader { get; init; } = true;

    /// <summary>
    /// Receive through AF_XDP (<see cref="XdpSocket"/>, copy mode) instead of the AF_PACKET socket, which
    /// then only transmits. If the XDP set-up fails the port receives on the socket as usual and
    /// <see cref="AfPacketPort.XdpError"/> says why.
    /// </summary>
    public bool XdpReceive { get; init; }

    /// <summary>
    /// Transmit through AF_XDP (the TX ring of the same socket as <see cref="XdpReceive"/>, or a transmit-only
    /// one) instead of sendmmsg on the AF_PACKET socket. If the set-up fails the port transmits on the socket
    /// as usual and <see cref="AfPacketPort.XdpError"/> says why.
    /// </summary>
    public bool XdpTransmit { get; init; }

    /// <summary>
    /// With <see cref="XdpReceive"/>: the RX ring's, fill ring's and UMEM's receive chunks (<see cref="XdpSocket.DefaultFrames"/>;
    /// a power of two, <see cref="XdpSocket.MinFrames"/> to <see cref="XdpSocket.MaxFrames"/>): the burst the port absorbs
    /// while the worker is busy. Each chunk is 2 KiB of UMEM.
    /// </summary>
    public int XdpRingFrames { get; init; } = XdpSocket.DefaultFrames;
}

/// <summary>
/// An 802.1Q trunk or access port on an AF_PACKET SOCK_RAW socket bound to one interface.
/// </summary>
/// <remarks>
/// <para>Receive: the kernel strips the outer 802.1Q/802.1ad tag before the packet taps and reports it
/// in PACKET_AUXDATA, which becomes <see cref="PacketMeta.VlanTci"/>/<see cref="PacketMeta.VlanTpid"/> with
/// <see cref="PacketFlags.VlanFromAux"/>; further (inner) tags stay inline in the frame.</para>
/// <para>Offloads (PACKET_VNET_HDR, on by default): a kernel neighbour with TSO/GSO on hands a veth's
/// AF_PACKET sockets TCP super-frames of up to 64 KB, preceded, like every frame, by a struct
/// virtio_net_hdr. Each message receives the header into the 10 bytes in front of
/// <see cref="PacketPool.Headroom"/>, the frame at the headroom, and whatever does not fit the slot into a
/// per-message scratch area (64 KB). A super-frame is cut into segments of gso_size payload bytes, one
/// fresh pool buffer and batch entry each, with the super-frame's aux VLAN tag (<see cref="VirtioNet"/>);
/// what does not fit the batch or the pool waits for the next <see cref="Receive"/> (see
/// <see cref="HasPendingFrames"/>). A partial checksum (NEEDS_CSUM) is finished at
/// csum_start/csum_offset before the frame enters the batch. Without the option, partial checksums
/// (TP_STATUS_CSUMNOTREADY) set <see cref="PacketFlags.ChecksumNotReady"/> and super-frames are
/// truncated.</para>
/// <para><see cref="PortCounters.RxPackets"/>/<see cref="PortCounters.RxBytes"/> count what enters the
/// batch (segments, not super-frames).</para>
/// <para>Transmit: frames go out exactly as given; a tag written inline goes on the wire. With the
/// vnet header on, a zeroed header (no offload) goes in the 10 bytes in front of the frame (or, with less
/// headroom, in a separate iovec). PACKET_IGNORE_OUTGOING keeps the socket from reading its own
/// transmissions.</para>
/// <para>The socket lives in the network namespace of the thread that constructs the port
/// (see <see cref="NetworkNamespace"/>). Threading as in <see cref="IPacketPort"/>.</para>
/// </remarks>
public sealed unsafe class AfPacketPort : IPacketPort
{
    private readonly int _batchSize;
    private readonly bool _batchSyscalls;
    private readonly MessageVector _messages;
    private readonly int[] _rented;
    private readonly byte[] _scratch = GC.AllocateUninitializedArray<byte>(PacketPool.MaxFrame + VirtioNet.HeaderLength, pinned: true);
    private readonly bool _vnet;

    /// <summary>Per-message overflow area for frames longer than a slot (vnet header on), or null.</summary>
    private byte* _overflow;

    /// <summary>A zeroed virtio_net_hdr for frames without the headroom to carry one.</summary>
    private byte* _zeroHeader;

    // Received messages not yet (fully) in a batch: [_pendingStart, _pendingEnd) of _messages/_rented, and
    // the next segment of the super-frame at _pendingStart. _pendingPool is the pool their buffers came from.
    private int _pendingStart;
    private int _pendingEnd;
    private int _pendingSegment;
    private PacketPool? _pendingPool;
    private int _fd;
    private XdpSocket? _xdp;

    /// <summary>Bytes of overflow per message: a 64 KB GSO frame beyond the slot, plus slack.</summary>
    internal const int OverflowSize = (64 << 10) + 512;

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
        _vnet = options.VnetHeader;

        var ifIndex = (int)Libc.IfNameToIndex(options.InterfaceName);
        if (ifIndex == 0)
        {
            throw new IOException($"Interface '{options.InterfaceName}' not found: {Libc.Describe(Libc.Errno)}");
        }

        InterfaceIndex = ifIndex;
        if (options.XdpReceive || options.XdpTransmit)
        {
            try
            {
                _xdp = new XdpSocket(ifIndex, options.XdpReceive, options.XdpTransmit ? XdpSocket.DefaultTxFrames : 0, options.XdpRingFrames);
            }
            catch (IOException e)
            {
                XdpError = e.Message;
            }
        }

        // Protocol 0 receives nothing until bind() names the protocol and interface, so no frame from
        // another interface can slip into the queue in between.
        _fd = Libc.Socket(Libc.AfPacket, Libc.SockRaw | Libc.SockNonBlock | Libc.SockCloExec, 0);
        if (_fd < 0)
        {
            var errno = Libc.Errno;
            _xdp?.Dispose();
            throw new IOException($"socket(AF_PACKET) failed: {Libc.Describe(errno)}");
        }

        try
        {
            SocketSetup.SetInt(_fd, Libc.SolPacket, Libc.PacketAuxData, 1, "PACKET_AUXDATA");
            SocketSetup.SetInt(_fd, Libc.SolPacket, Libc.PacketIgnoreOutgoing, 1, "PACKET_IGNORE_OUTGOING");
            if (_vnet)
            {
                SocketSetup.SetInt(_fd, Libc.SolPacket, Libc.PacketVnetHdr, 1, "PACKET_VNET_HDR");
            }

            SocketSetup.SetBuffers(_fd, options.SocketBufferBytes);

            var sll = default(SockAddrLl);
            sll.Family = Libc.AfPacket;
            // With AF_XDP receiving, protocol 0: the socket transmits and never queues a frame.
            sll.Protocol = _xdp?.Ring is null ? Libc.Htons(Libc.EthPAll) : (ushort)0;
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

            _messages = new MessageVector(_batchSize, Libc.CmsgAuxDataSpace, 0, _vnet ? 2 : 1);
            _rented = new int[_batchSize];
            if (_vnet)
            {
                // Address space only: the kernel touches a page of it when a long frame arrives.
                _overflow = (byte*)NativeMemory.AlignedAlloc((nuint)_batchSize * OverflowSize, 64);
                _zeroHeader = (byte*)NativeMemory.AlignedAlloc(VirtioNet.HeaderLength, 16);
                NativeMemory.Clear(_zeroHeader, VirtioNet.HeaderLength);
            }
        }
        catch
        {
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            _xdp?.Dispose();
            _messages?.Dispose();
            FreeNative();
            throw;
        }
    }

    public string Name { get; }

    public PortKind Kind { get; }

    public string InterfaceName { get; }

    public int InterfaceIndex { get; }

    public int PollHandle => _xdp?.Ring is not null ? _xdp.Handle : _fd;

    /// <summary>Frames arrive through AF_XDP (<see cref="AfPacketPortOptions.XdpReceive"/> and its set-up worked).</summary>
    public bool ReceivesWithXdp => _xdp?.Ring is not null;

    /// <summary>Frames leave through AF_XDP (<see cref="AfPacketPortOptions.XdpTransmit"/> and its set-up worked).</summary>
    public bool TransmitsWithXdp => _xdp?.TxRing is not null;

    /// <summary>The AF_XDP transmit ring, or null (diagnostics and tests).</summary>
    public XdpTxRing? XdpTxRing => _xdp?.TxRing;

    /// <summary>Most frames one AF_XDP transmit kick sends (<see cref="XdpSocket.TxBudget"/>), or 0 without AF_XDP transmit.</summary>
    public int XdpTxBudget => _xdp?.TxRing is not null ? _xdp.TxBudget : 0;

    /// <summary>Why AF_XDP receive or transmit was asked for but the port uses its AF_PACKET socket, or null.</summary>
    public string? XdpError { get; }

    public PortCounters Counters { get; } = new();

    /// <summary>
    /// Frames (segments of a super-frame, or frames received behind one) that arrived but did not fit the
    /// last batch or pool: the next <see cref="Receive"/> delivers them before reading the socket, so call
    /// it even when the socket is not readable.
    /// </summary>
    /// <remarks>With AF_XDP: frames are waiting on the RX ring (no poll() needed to know).</remarks>
    public bool HasPendingFrames => _xdp?.Ring is { } ring ? ring.Available > 0 : _pendingStart < _pendingEnd;

    /// <inheritdoc />
    public bool ReceiveRingVisible => _xdp?.Ring is not null;

    /// <inheritdoc />
    public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(pool);
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        if (_xdp?.Ring is { } ring)
        {
            // No system call per batch on a ring: take as many as the batch holds (BatchSize sizes recvmmsg's vector).
            return ring.Receive(batch, pool, portIndex, PacketBatch.MaxSize, Counters);
        }

        var before = batch.Count;
        if (_pendingStart < _pendingEnd)
        {
            if (!ReferenceEquals(pool, _pendingPool))
            {
                throw new InvalidOperationException("An AF_PACKET port with pending frames must be drained into the same pool.");
            }

            if (!DeliverPending(batch, pool, portIndex))
            {
                return batch.Count - before;
            }
        }

        var want = Math.Min(batch.Free, _batchSize);
        if (want <= 0)
        {
            return batch.Count - before;
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
            if (_vnet)
            {
                _messages.PrepareReceive(
                    rented,
                    pool.Pointer(b) + PacketPool.Headroom - VirtioNet.HeaderLength,
                    PacketPool.MaxFrame + VirtioNet.HeaderLength,
                    _overflow + ((nint)rented * OverflowSize),
                    OverflowSize);
            }
            else
            {
                _messages.PrepareReceive(rented, pool.Pointer(b) + PacketPool.Headroom, PacketPool.MaxFrame);
            }

            rented++;
        }

        if (rented == 0)
        {
            DrainWithoutBuffers(want);
            return batch.Count - before;
        }

        var received = _batchSyscalls ? ReceiveBatched(rented) : ReceiveEach(rented);
        for (var i = received; i < rented; i++)
        {
            pool.Return(_rented[i]);
        }

        _pendingStart = 0;
        _pendingEnd = received;
        _pendingSegment = 0;
        _pendingPool = pool;
        _ = DeliverPending(batch, pool, portIndex);
        return batch.Count - before;
    }

    /// <summary>Moves received messages into the batch in order; false when some must wait.</summary>
    private bool DeliverPending(PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        for (var i = _pendingStart; i < _pendingEnd; i++)
        {
            if (!Deliver(i, batch, pool, portIndex))
            {
                _pendingStart = i;
                return false;
            }

            _pendingSegment = 0;
        }

        _pendingStart = _pendingEnd = 0;
        _pendingPool = null;
        return true;
    }

    /// <summary>
    /// Appends message <paramref name="i"/> (or the rest of its segments, from <see cref="_pendingSegment"/>)
    /// to the batch. False when the batch is full or the pool empty before it is all in.
    /// </summary>
    private bool Deliver(int i, PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        var m = _messages.Messages + i;
        var buffer = _rented[i];
        var received = (int)m->Length;
        var truncated = (m->Header.Flags & Libc.MsgTrunc) != 0;

        ushort tci = 0, tpid = 0;
        var flags = PacketFlags.None;
        var aux = (TPacketAuxData*)_messages.FindControl(i, Libc.SolPacket, Libc.PacketAuxData);
        if (aux != null)
        {
            var status = aux->Status;
            if ((status & Libc.TpStatusVlanValid) != 0)
            {
                tci = aux->VlanTci;
                tpid = (status & Libc.TpStatusVlanTpidValid) != 0 ? aux->VlanTpid : (ushort)0x8100;
                flags |= PacketFlags.VlanFromAux;
            }

            if (!_vnet && (status & Libc.TpStatusCsumNotReady) != 0)
            {
                flags |= PacketFlags.ChecksumNotReady;
            }
        }

        var frame = pool.Pointer(buffer) + PacketPool.Headroom;
        var length = received;
        if (_vnet)
        {
            length -= VirtioNet.HeaderLength;
            if (length <= 0)
            {
                pool.Return(buffer);
                return true;
            }

            var header = (VirtioNetHdr*)(frame - VirtioNet.HeaderLength);
            if (header->GsoType != VirtioNet.GsoNone)
            {
                return Segment(i, header, frame, length, truncated, batch, pool, portIndex, flags, tci, tpid);
            }

            if (batch.IsFull)
            {
                return false;
            }

            if ((header->Flags & VirtioNet.FlagNeedsCsum) != 0
                && (length > PacketPool.MaxFrame || !FinishChecksum(frame, length, header)))
            {
                flags |= PacketFlags.ChecksumNotReady;
            }
        }
        else if (batch.IsFull)
        {
            return false;
        }

        ref var meta = ref batch.Add(buffer, PacketPool.Headroom, Math.Min(length, PacketPool.MaxFrame), portIndex);
        meta.Flags = flags;
        meta.VlanTci = tci;
        meta.VlanTpid = tpid;
        if (truncated || length > PacketPool.MaxFrame)
        {
            meta.Flags |= PacketFlags.Truncated;
            Counters.RxTruncated++;
        }

        Counters.RxPackets++;
        Counters.RxBytes += meta.Length;
        return true;
    }

    private bool FinishChecksum(byte* frame, int length, VirtioNetHdr* header)
    {
        // SCTP's CRC32c is left partial the same way (csum_offset 8); only the Internet checksum is done here.
        if (header->CsumOffset == 8 && VirtioNet.IpProtocolOf(frame, length) == 132)
        {
            return false;
        }

        if (!VirtioNet.FinishChecksum(frame, length, header->CsumStart, header->CsumOffset))
        {
            return false;
        }

        Counters.RxChecksumsFinished++;
        return true;
    }

    /// <summary>Cuts the super-frame of message <paramref name="i"/> into the batch, from <see cref="_pendingSegment"/>.</summary>
    private bool Segment(
        int i, VirtioNetHdr* header, byte* frame, int length, bool truncated,
        PacketBatch batch, PacketPool pool, ushort portIndex, PacketFlags flags, ushort tci, ushort tpid)
    {
        var buffer = _rented[i];
        var firstLength = Math.Min(length, PacketPool.MaxFrame);
        var rest = _overflow + ((nint)i * OverflowSize);
        if (truncated
            || !VirtioNet.TryParseGso(
                frame, firstLength, length, header->GsoType, header->GsoSize, header->CsumStart,
                (header->Flags & VirtioNet.FlagNeedsCsum) != 0, PacketPool.MaxFrame, out var layout))
        {
            // Legacy UFO (gso_type 3), a frame longer than the overflow, or headers we cannot cut.
            if (truncated)
            {
                Counters.RxTruncated++;
            }

            Counters.RxGsoDropped++;
            pool.Return(buffer);
            return true;
        }

        if (layout.Segments == 1 && length <= PacketPool.MaxFrame)
        {
            // Already wire-sized (a short GSO skb): fix it up in place, no copy.
            if (batch.IsFull)
            {
                return false;
            }

            var fixedLength = VirtioNet.WriteSegment(layout, frame, firstLength, rest, 0, frame);
            ref var single = ref batch.Add(buffer, PacketPool.Headroom, fixedLength, portIndex);
            single.Flags = flags;
            single.VlanTci = tci;
            single.VlanTpid = tpid;
            Counters.RxPackets++;
            Counters.RxBytes += fixedLength;
            return true;
        }

        for (var k = _pendingSegment; k < layout.Segments; k++)
        {
            if (batch.IsFull)
            {
                _pendingSegment = k;
                return false;
            }

            var b = pool.Rent();
            if (b < 0)
            {
                if (batch.Count > 0)
                {
                    // The worker frees buffers when it has run this batch: carry on in the next Receive.
                    _pendingSegment = k;
                    return false;
                }

                // Nothing in flight will give a buffer back: the rest of the super-frame is lost.
                Counters.RxGsoDropped++;
                pool.Return(buffer);
                return true;
            }

            var segmentLength = VirtioNet.WriteSegment(layout, frame, firstLength, rest, k, pool.Pointer(b) + PacketPool.Headroom);
            ref var meta = ref batch.Add(b, PacketPool.Headroom, segmentLength, portIndex);
            meta.Flags = flags;
            meta.VlanTci = tci;
            meta.VlanTpid = tpid;
            Counters.RxPackets++;
            Counters.RxBytes += segmentLength;
            Counters.RxGsoSegments++;
        }

        Counters.RxGsoSegmented++;
        pool.Return(buffer);
        return true;
    }

    /// <inheritdoc />
    public void Transmit(TxQueue queue, PacketPool pool)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(pool);
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        var frames = queue.Frames;
        if (_xdp?.TxRing is not null)
        {
            _xdp.Transmit(frames, pool, Counters);
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
    public void RefreshKernelCounters()
    {
        if (_xdp?.Ring is not null)
        {
            if (_xdp.ReadDrops() is var xdpDrops and >= 0)
            {
                Counters.RxKernelDrops = xdpDrops;
            }
        }
        else if (_fd >= 0 && SocketSetup.ReadDrops(_fd) is var drops and >= 0)
        {
            Counters.RxKernelDrops = drops;
        }
    }

    /// <summary>
    /// Closes the socket. Buffers of frames still pending go back to their pool, so dispose a port only
    /// once its worker has stopped.
    /// </summary>
    public void Dispose()
    {
        if (_fd >= 0)
        {
            _xdp?.Dispose();
            _xdp = null;
            SocketSetup.CloseQuietly(_fd);
            _fd = -1;
            if (_pendingPool is not null)
            {
                for (var i = _pendingStart; i < _pendingEnd; i++)
                {
                    _pendingPool.Return(_rented[i]);
                }

                _pendingStart = _pendingEnd = 0;
                _pendingPool = null;
            }

            _messages.Dispose();
            FreeNative();
        }
    }

    private void FreeNative()
    {
        if (_overflow != null)
        {
            NativeMemory.AlignedFree(_overflow);
            _overflow = null;
        }

        if (_zeroHeader != null)
        {
            NativeMemory.AlignedFree(_zeroHeader);
            _zeroHeader = null;
        }
    }

    private int ReceiveBatched(int count)
    {
        Counters.RxSyscalls++;
        var n = Libc.RecvMMsg(_fd, _messages.Messages, (uint)count, Libc.MsgDontWait, null);
        if (n < 0 && _vnet && Libc.Errno == Libc.EInval)
        {
            // The kernel could not describe a GSO frame in a virtio_net_hdr (an offload it has no type for)
            // and dropped it.
            Counters.RxGsoDropped++;
        }

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
                if (_vnet && Libc.Errno == Libc.EInval)
                {
                    Counters.RxGsoDropped++;
                    continue;
                }

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
                _messages.PrepareReceive(i, scratch, _scratch.Length, _overflow, _overflow == null ? 0 : OverflowSize);
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
                PrepareSend(i, pool.Pointer(f.Buffer) + f.Offset, f.Offset, f.Length);
            }

            if (!_messages.SendPrepared(_fd, chunk, frames, index, Counters))
            {
                return;
            }

            index += chunk;
        }
    }

    /// <summary>
    /// Message <paramref name="i"/> sends the frame at <paramref name="data"/>, behind a zeroed
    /// virtio_net_hdr when the vnet header is on: written into the headroom when there is room, else from
    /// a separate iovec.
    /// </summary>
    private void PrepareSend(int i, byte* data, int offset, int length)
    {
        if (!_vnet)
        {
            _messages.PrepareSend(i, data, length, 0);
        }
        else if (offset >= VirtioNet.HeaderLength)
        {
            var header = data - VirtioNet.HeaderLength;
            *(ulong*)header = 0;
            *(ushort*)(header + 8) = 0;
            _messages.PrepareSend(i, header, length + VirtioNet.HeaderLength, 0);
        }
        else
        {
            _messages.PrepareSend(i, _zeroHeader, VirtioNet.HeaderLength, data, length, 0);
        }
    }

    private void TransmitEach(ReadOnlySpan<TxFrame> frames, PacketPool pool)
    {
        foreach (ref readonly var f in frames)
        {
            Counters.TxSyscalls++;
            PrepareSend(0, pool.Pointer(f.Buffer) + f.Offset, f.Offset, f.Length);
            var n = Libc.SendMsg(_fd, &_messages.Messages[0].Header, Libc.MsgDontWait);
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
