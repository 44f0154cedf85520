using System.Runtime.InteropServices;
using System.Text;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// An AF_XDP socket in copy mode on queue 0 of an interface, receiving, transmitting or both over one UMEM.
/// Receive: a six-instruction XDP program, attached in native (driver) mode with BPF_LINK_CREATE, redirects
/// every frame of queue 0 into an XSKMAP holding the socket; the kernel copies each frame into a chunk of the
/// UMEM and posts it on the RX ring (<see cref="XdpRxRing"/>). Transmit: frames are copied into the UMEM's TX
/// chunks and produced on the TX ring (<see cref="XdpTxRing"/>); <see cref="Flush"/> kicks the kernel with
/// sendto() when the ring's need-wakeup flag asks for it, and completed chunks come back on the completion ring.
/// </summary>
/// <remarks>
/// <para>Why receive: with an AF_PACKET tap every frame costs the forwarding CPU an skb's trip through
/// netif_receive_skb (and, past the socket's queue limit, the drop) before the worker ever sees it: under
/// overload that softirq work starves the worker (receive livelock). Here a frame is taken in the driver's
/// XDP hook, before any skb or stack work, and when the RX ring is full the kernel drops it right there
/// (counted in XDP_STATISTICS, <see cref="PortCounters.RxKernelDrops"/>).</para>
/// <para>Why transmit: the frames go to the driver's transmit (dev_direct_xmit) with no socket lookup,
/// no per-frame message header and no qdisc, and a batch costs one sendto() (XDP_MAX_TX_SKB_BUDGET raised to the
/// TX ring's size; one per 32 frames, the kernel's copy-mode default, before Linux 6.17) instead of a sendmmsg
/// walking a message vector.</para>
/// <para>The program: <c>r2 = ctx->rx_queue_index; r1 = xskmap; r3 = XDP_PASS; return bpf_redirect_map(r1, r2, r3)</c>.
/// Without a socket in the map (before bind, or another queue) frames pass to the stack. A transmit-only
/// socket loads no program. The link, the program and the map go away with their file descriptors when the
/// socket is disposed (or the process dies).</para>
/// <para>UMEM layout: receive chunks [0, rxFrames), then transmit chunks [rxFrames, rxFrames + txFrames).</para>
/// <para>Limits: the frame is what the driver holds, so on veth a peer's partial checksums (TX checksum
/// offload) arrive unfinished (<see cref="XdpChecksum"/> finishes them); 802.1Q tags stay inline.</para>
/// </remarks>
public sealed unsafe class XdpSocket : IDisposable
{
    /// <summary>
    /// Receive chunks (RX ring, fill ring and UMEM alike) by default: 32,768 × 2 KiB = 64 MiB of UMEM per receiving
    /// socket. It must hold a site failover's burst (10,000 RARPs in ~0.1 s while the worker is busy with the signals
    /// before them; 4,096 lost 40 % of it) and the frames that pile up while the host pauses a worker running near its
    /// limit (up to ~75 ms at 430k frames/s): with 16,384 one such pause made a lossless step lossy in one quiet wire run
    /// of five; 32,768 and 65,536 held in six of six (docs/benchmarks.md "Session 9, quiet re-run", "Session 10: wire").
    /// </summary>
    public const int DefaultFrames = 32768;

    /// <summary>The smallest and largest receive ring (<c>dataPlane.xdpRingFrames</c>); powers of two.</summary>
    public const int MinFrames = 64;

    /// <inheritdoc cref="MinFrames"/>
    public const int MaxFrames = 65536;

    public const int DefaultTxFrames = 2048;
    public const int ChunkSize = 2048;

    private readonly nuint _umemLength;
    private byte* _umem;
    private void* _rxMap;
    private readonly nuint _rxMapLength;
    private void* _txMap;
    private readonly nuint _txMapLength;
    private void* _fillMap;
    private readonly nuint _fillMapLength;
    private void* _completionMap;
    private readonly nuint _completionMapLength;
    private int _xsk = -1;
    private int _map = -1;
    private int _program = -1;
    private int _link = -1;

    /// <summary>
    /// Opens the socket and UMEM; with <paramref name="receive"/>, loads and attaches the program to
    /// <paramref name="ifIndex"/>; with <paramref name="txFrames"/> &gt; 0, a TX ring of that many chunks.
    /// Throws <see cref="IOException"/> saying which step failed.
    /// </summary>
    /// <param name="udpMatch">
    /// Receive only IPv4 (no options, not fragmented) UDP frames to this destination address (host order;
    /// 0 = any) and port (<see cref="UdpProgram"/>), stripped to their payload (<see cref="XdpRxRing.UnderlayUdp"/>);
    /// everything else passes to the kernel. null = every frame of the queue.
    /// </param>
    public XdpSocket(int ifIndex, bool receive = true, int txFrames = 0, int frames = DefaultFrames, (uint Address, ushort Port)? udpMatch = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frames, MinFrames);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(frames, MaxFrames);
        if ((frames & (frames - 1)) != 0 || (txFrames & (txFrames - 1)) != 0)
        {
            throw new ArgumentException("The frame counts are powers of two.", nameof(frames));
        }

        if (!receive && txFrames == 0)
        {
            throw new ArgumentException("An AF_XDP socket receives, transmits or both.", nameof(txFrames));
        }

        var rxFrames = receive ? frames : 0;
        var fillSize = receive ? frames : 64;
        var completionSize = txFrames > 0 ? txFrames : 64;
        _umemLength = (nuint)(rxFrames + txFrames) * ChunkSize;
        try
        {
            _umem = (byte*)Xdp.Mmap(null, _umemLength, Xdp.ProtRead | Xdp.ProtWrite, Xdp.MapPrivate | Xdp.MapAnonymous | Xdp.MapPopulate, -1, 0);
            Check(_umem != Xdp.MapFailed, "mmap(UMEM)");
            _xsk = Libc.Socket(Xdp.AfXdp, Libc.SockRaw | Libc.SockCloExec, 0);
            Check(_xsk >= 0, "socket(AF_XDP)");

            var reg = new XdpUmemReg { Address = (ulong)_umem, Length = _umemLength, ChunkSize = ChunkSize };
            Check(Libc.SetSockOpt(_xsk, Xdp.SolXdp, Xdp.XdpUmemReg, &reg, (uint)sizeof(XdpUmemReg)) == 0, "XDP_UMEM_REG");
            // The kernel wants both UMEM rings even on a socket that only receives or only transmits.
            SetRingSize(Xdp.XdpUmemFillRing, fillSize, "XDP_UMEM_FILL_RING");
            SetRingSize(Xdp.XdpUmemCompletionRing, completionSize, "XDP_UMEM_COMPLETION_RING");
            if (receive)
            {
                SetRingSize(Xdp.XdpRxRing, frames, "XDP_RX_RING");
            }

            if (txFrames > 0)
            {
                SetRingSize(Xdp.XdpTxRing, txFrames, "XDP_TX_RING");
            }

            XdpMmapOffsets off;
            var offLength = (uint)sizeof(XdpMmapOffsets);
            Check(Libc.GetSockOpt(_xsk, Xdp.SolXdp, Xdp.XdpMmapOffsets, &off, &offLength) == 0, "XDP_MMAP_OFFSETS");
            _fillMapLength = (nuint)(off.Fill.Desc + ((ulong)fillSize * sizeof(ulong)));
            _fillMap = MapRing(_fillMapLength, Xdp.PgOffFillRing, "fill ring");
            _completionMapLength = (nuint)(off.Completion.Desc + ((ulong)completionSize * sizeof(ulong)));
            _completionMap = MapRing(_completionMapLength, Xdp.PgOffCompletionRing, "completion ring");
            if (receive)
            {
                _rxMapLength = (nuint)(off.Rx.Desc + ((ulong)frames * (ulong)sizeof(XdpDesc)));
                _rxMap = MapRing(_rxMapLength, Xdp.PgOffRxRing, "RX ring");
                var rx = (byte*)_rxMap;
                var fill = (byte*)_fillMap;
                Ring = new XdpRxRing(
                    (uint*)(rx + off.Rx.Producer), (uint*)(rx + off.Rx.Consumer), (XdpDesc*)(rx + off.Rx.Desc), frames,
                    (uint*)(fill + off.Fill.Producer), (uint*)(fill + off.Fill.Consumer), (ulong*)(fill + off.Fill.Desc), frames,
                    _umem, ChunkSize)
                { UnderlayUdp = udpMatch is not null };
                Ring.Prime(frames, ChunkSize);
            }

            if (txFrames > 0)
            {
                _txMapLength = (nuint)(off.Tx.Desc + ((ulong)txFrames * (ulong)sizeof(XdpDesc)));
                _txMap = MapRing(_txMapLength, Xdp.PgOffTxRing, "TX ring");
                var tx = (byte*)_txMap;
                var completion = (byte*)_completionMap;
                TxRing = new XdpTxRing(
                    (uint*)(tx + off.Tx.Producer), (uint*)(tx + off.Tx.Consumer), (uint*)(tx + off.Tx.Flags), (XdpDesc*)(tx + off.Tx.Desc), txFrames,
                    (uint*)(completion + off.Completion.Producer), (uint*)(completion + off.Completion.Consumer), (ulong*)(completion + off.Completion.Desc), completionSize,
                    _umem, (ulong)rxFrames * ChunkSize, txFrames, ChunkSize);

                // One kick for a whole batch instead of one per 32 frames, where the kernel allows it.
                var budget = txFrames;
                TxBudget = Libc.SetSockOpt(_xsk, Xdp.SolXdp, Xdp.XdpMaxTxSkbBudget, &budget, sizeof(int)) == 0 ? budget : Xdp.DefaultTxBudget;
            }

            var sxdp = new SockAddrXdp { Family = Xdp.AfXdp, Flags = Xdp.XdpCopy | Xdp.XdpUseNeedWakeup, IfIndex = (uint)ifIndex, QueueId = 0 };
            Check(Libc.Bind(_xsk, &sxdp, (uint)sizeof(SockAddrXdp)) == 0, "bind(AF_XDP)");

            if (receive)
            {
                _map = CreateXskMap();
                var key = 0;
                var value = _xsk;
                UpdateElement(_map, &key, &value);
                _program = LoadProgram(udpMatch is { } m ? UdpProgram(_map, m.Address, m.Port) : Program(_map));
                _link = AttachNative(_program, ifIndex);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="frames"/> is a receive ring size this socket takes: a power of two from <see cref="MinFrames"/> to <see cref="MaxFrames"/>.</summary>
    public static bool IsValidRingSize(int frames) => frames is >= MinFrames and <= MaxFrames && (frames & (frames - 1)) == 0;

    /// <summary>The index of the interface holding IPv4 <paramref name="address"/> (host order) in this thread's namespace, or 0.</summary>
    public static int InterfaceOf(uint address)
    {
        if (address == 0)
        {
            return 0;
        }

        var ip = new System.Net.IPAddress(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(address));
        foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
        {
            var properties = nic.GetIPProperties();
            if (properties.UnicastAddresses.Any(u => u.Address.Equals(ip)))
            {
                return properties.GetIPv4Properties()?.Index ?? 0;
            }
        }

        return 0;
    }

    /// <summary>The AF_XDP socket: readable when the RX ring holds frames.</summary>
    public int Handle => _xsk;

    /// <summary>The RX and fill rings, or null on a transmit-only socket.</summary>
    public XdpRxRing? Ring { get; }

    /// <summary>The TX and completion rings, or null on a receive-only socket.</summary>
    public XdpTxRing? TxRing { get; }

    /// <summary>
    /// Most frames one sendto() kick sends: the TX ring's size where the kernel takes XDP_MAX_TX_SKB_BUDGET
    /// (Linux 6.17), else its copy-mode default of 32.
    /// </summary>
    public int TxBudget { get; } = Xdp.DefaultTxBudget;

    /// <summary>
    /// Copies <paramref name="frames"/> onto the TX ring (<see cref="XdpTxRing.Enqueue"/>), then kicks the
    /// kernel while it asks for it and makes progress: in copy mode each sendto() sends at most <see cref="TxBudget"/> frames.
    /// The frames' buffers stay the caller's.
    /// </summary>
    public void Transmit(ReadOnlySpan<TxFrame> frames, PacketPool pool, PortCounters counters)
    {
        var tx = TxRing!;
        _ = tx.Enqueue(frames, pool, counters);
        Flush(counters);
    }

    /// <summary>
    /// Kicks the kernel until the TX ring is empty, it stops asking, or a kick makes no progress. A kick that ends with
    /// EBUSY dropped one frame in the device: counted in <see cref="PortCounters.TxErrors"/>, and the kicks go on.
    /// </summary>
    public void Flush(PortCounters counters)
    {
        var tx = TxRing!;
        var pending = tx.Pending;
        while (pending > 0 && tx.NeedsWakeup)
        {
            counters.TxSyscalls++;
            if (Libc.SendTo(_xsk, null, 0, Libc.MsgDontWait, null, 0) < 0)
            {
                var errno = Libc.Errno;
                if (errno == Libc.EBusy)
                {
                    // The device dropped the frame the kick was sending (dev_direct_xmit: NET_XMIT_DROP, e.g. a veth
                    // whose peer is down or whose backlog is full); the kernel consumed it and completes its chunk.
                    counters.TxErrors++;
                }
                else if (errno is not (Libc.EAgain or Libc.ENoBufs))
                {
                    counters.TxErrors += pending;
                    return;
                }
            }

            var left = tx.Pending;
            if (left >= pending)
            {
                // Nothing taken (the device queue is full): the rest goes with the next batch's kick.
                return;
            }

            pending = left;
        }
    }

    /// <summary>Frames the kernel dropped for us: RX ring full, no fill chunk, too long or invalid (XDP_STATISTICS); -1 if unreadable.</summary>
    /// <remarks>
    /// rx_dropped + rx_invalid_descs + rx_ring_full. Not rx_fill_ring_empty_descs: in copy mode a frame that finds the
    /// fill ring empty is counted there and in rx_dropped alike (the chunk allocation failing counts the empty ring,
    /// the receive counts the drop), so adding it counted such a drop twice; with every chunk on the fill ring or the
    /// RX ring, that is every drop of a worker falling behind (a full RX ring leaves the fill ring empty).
    /// </remarks>
    public long ReadDrops()
    {
        // struct xdp_statistics: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs
        var stats = stackalloc ulong[6];
        var length = (uint)(6 * sizeof(ulong));
        if (_xsk < 0 || Libc.GetSockOpt(_xsk, Xdp.SolXdp, 7, stats, &length) != 0)
        {
            return -1;
        }

        return (long)(stats[0] + stats[1] + stats[3]);
    }

    public void Dispose()
    {
        // The link first: frames stop coming before the socket and its memory go.
        foreach (ref var fd in new Span<int>([_link, _program, _map, _xsk]))
        {
            if (fd >= 0)
            {
                SocketSetup.CloseQuietly(fd);
            }
        }

        _link = _program = _map = _xsk = -1;
        Unmap(ref _rxMap, _rxMapLength);
        Unmap(ref _txMap, _txMapLength);
        Unmap(ref _fillMap, _fillMapLength);
        Unmap(ref _completionMap, _completionMapLength);
        var umem = (void*)_umem;
        Unmap(ref umem, _umemLength);
        _umem = null;
    }

    /// <summary>The program's instructions with <paramref name="mapFd"/> in its map load (struct bpf_insn, 8 bytes each).</summary>
    public static ulong[] Program(int mapFd) =>
    [
        Insn(0x61, dst: 2, src: 1, off: 16, imm: 0),   // r2 = *(u32 *)(r1 + 16): ctx->rx_queue_index
        Insn(0x18, dst: 1, src: 1, off: 0, imm: mapFd), // r1 = map (BPF_LD | BPF_IMM | BPF_DW, src = BPF_PSEUDO_MAP_FD)
        Insn(0x00, dst: 0, src: 0, off: 0, imm: 0),     //      (upper 32 bits of the 64-bit immediate)
        Insn(0xb7, dst: 3, src: 0, off: 0, imm: 2),     // r3 = XDP_PASS: the action when the map has no socket for the queue
        Insn(0x85, dst: 0, src: 0, off: 0, imm: 51),    // call bpf_redirect_map
        Insn(0x95, dst: 0, src: 0, off: 0, imm: 0),     // exit
    ];

    /// <summary>
    /// The underlay program: frames that are Ethernet + IPv4 with a 20-byte header, not a fragment, UDP, to
    /// <paramref name="port"/> and (unless 0) <paramref name="address"/> (both host order) go to the socket;
    /// all else (ARP, ICMP, IP options, fragments, other ports) passes to the kernel. Loads are
    /// little-endian, so the network-order fields are compared with byte-swapped constants.
    /// </summary>
    public static ulong[] UdpProgram(int mapFd, uint address, ushort port)
    {
        var portLe = (int)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(port);
        var addressLe = (int)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(address);
        const int Pass = 25;
        ulong Jne(int at, int dst, int imm, bool jmp32 = false) => Insn(jmp32 ? (byte)0x56 : (byte)0x55, dst, 0, (short)(Pass - (at + 1)), imm);
        return
        [
            Insn(0xbf, dst: 6, src: 1, off: 0, imm: 0),    //  0: r6 = ctx
            Insn(0x61, dst: 2, src: 1, off: 0, imm: 0),    //  1: r2 = ctx->data
            Insn(0x61, dst: 3, src: 1, off: 4, imm: 0),    //  2: r3 = ctx->data_end
            Insn(0xbf, dst: 4, src: 2, off: 0, imm: 0),    //  3: r4 = r2
            Insn(0x07, dst: 4, src: 0, off: 0, imm: 42),   //  4: r4 += 42 (Ethernet + IPv4 + UDP)
            Insn(0x2d, dst: 4, src: 3, off: Pass - 6, imm: 0), // 5: if r4 > r3 goto pass
            Insn(0x69, dst: 5, src: 2, off: 12, imm: 0),   //  6: r5 = EtherType
            Jne(7, 5, 0x0008),                             //  7: != 0x0800
            Insn(0x71, dst: 5, src: 2, off: 14, imm: 0),   //  8: r5 = version/IHL
            Jne(9, 5, 0x45),                               //  9: != IPv4, 20 bytes
            Insn(0x71, dst: 5, src: 2, off: 23, imm: 0),   // 10: r5 = protocol
            Jne(11, 5, 17),                                // 11: != UDP
            Insn(0x69, dst: 5, src: 2, off: 20, imm: 0),   // 12: r5 = flags/fragment offset
            Insn(0x57, dst: 5, src: 0, off: 0, imm: 0xff3f), // 13: r5 &= MF | offset
            Jne(14, 5, 0),                                 // 14: a fragment
            Insn(0x69, dst: 5, src: 2, off: 36, imm: 0),   // 15: r5 = UDP destination port
            Jne(16, 5, portLe),                            // 16: != port
            address == 0 ? Insn(0x05, 0, 0, 0, 0) : Insn(0x61, dst: 5, src: 2, off: 30, imm: 0), // 17: r5 = IPv4 destination
            address == 0 ? Insn(0x05, 0, 0, 0, 0) : Jne(18, 5, addressLe, jmp32: true),          // 18: != address
            Insn(0x61, dst: 2, src: 6, off: 16, imm: 0),   // 19: r2 = ctx->rx_queue_index
            Insn(0x18, dst: 1, src: 1, off: 0, imm: mapFd), // 20: r1 = map
            Insn(0x00, dst: 0, src: 0, off: 0, imm: 0),    // 21
            Insn(0xb7, dst: 3, src: 0, off: 0, imm: 2),    // 22: r3 = XDP_PASS
            Insn(0x85, dst: 0, src: 0, off: 0, imm: 51),   // 23: call bpf_redirect_map
            Insn(0x95, dst: 0, src: 0, off: 0, imm: 0),    // 24: exit
            Insn(0xb7, dst: 0, src: 0, off: 0, imm: 2),    // 25: pass: r0 = XDP_PASS
            Insn(0x95, dst: 0, src: 0, off: 0, imm: 0),    // 26: exit
        ];
    }

    public static ulong Insn(byte code, int dst, int src, short off, int imm) =>
        code | ((ulong)(byte)((src << 4) | dst) << 8) | ((ulong)(ushort)off << 16) | ((ulong)(uint)imm << 32);

    private void SetRingSize(int option, int size, string what) =>
        Check(Libc.SetSockOpt(_xsk, Xdp.SolXdp, option, &size, sizeof(int)) == 0, what);

    private void* MapRing(nuint length, long offset, string what)
    {
        var p = Xdp.Mmap(null, length, Xdp.ProtRead | Xdp.ProtWrite, Xdp.MapShared | Xdp.MapPopulate, _xsk, offset);
        Check(p != Xdp.MapFailed, $"mmap({what})");
        return p;
    }

    private static void Unmap(ref void* p, nuint length)
    {
        if (p != null && p != Xdp.MapFailed)
        {
            _ = Xdp.Munmap(p, length);
        }

        p = null;
    }

    private static int CreateXskMap()
    {
        var attr = stackalloc uint[32];
        new Span<uint>(attr, 32).Clear();
        attr[0] = Xdp.BpfMapTypeXskMap;
        attr[1] = 4; // key: queue index
        attr[2] = 4; // value: socket fd
        attr[3] = 1; // entries: queue 0
        var fd = Xdp.Bpf(Xdp.BpfMapCreate, attr, 128);
        Check(fd >= 0, "bpf(BPF_MAP_CREATE, XSKMAP)");
        return fd;
    }

    private static void UpdateElement(int map, int* key, int* value)
    {
        var attr = stackalloc ulong[16];
        new Span<ulong>(attr, 16).Clear();
        attr[0] = (uint)map;
        attr[1] = (ulong)key;
        attr[2] = (ulong)value;
        Check(Xdp.Bpf(Xdp.BpfMapUpdateElem, attr, 128) == 0, "bpf(BPF_MAP_UPDATE_ELEM)");
    }

    internal static int LoadProgram(ulong[] insns)
    {
        var license = "GPL\0"u8;
        const int LogSize = 16 << 10;
        var log = (byte*)NativeMemory.AllocZeroed(LogSize);
        try
        {
            fixed (ulong* code = insns)
            fixed (byte* gpl = license)
            {
                var attr = stackalloc byte[128];
                new Span<byte>(attr, 128).Clear();
                *(uint*)attr = Xdp.BpfProgTypeXdp;
                *(uint*)(attr + 4) = (uint)insns.Length;
                *(ulong*)(attr + 8) = (ulong)code;
                *(ulong*)(attr + 16) = (ulong)gpl;
                *(uint*)(attr + 24) = 1; // log level: the verifier says why it refuses
                *(uint*)(attr + 28) = LogSize;
                *(ulong*)(attr + 32) = (ulong)log;
                "isthmus_xsk"u8.CopyTo(new Span<byte>(attr + 48, 16));
                *(uint*)(attr + 68) = Xdp.BpfAttachXdp; // expected_attach_type
                var fd = Xdp.Bpf(Xdp.BpfProgLoad, attr, 128);
                if (fd < 0)
                {
                    var errno = Libc.Errno;
                    var end = new ReadOnlySpan<byte>(log, LogSize).IndexOf((byte)0);
                    var text = Encoding.ASCII.GetString(log, end >= 0 ? end : LogSize).Trim();
                    throw new IOException($"bpf(BPF_PROG_LOAD, XDP) failed: {Libc.Describe(errno)}{(text.Length > 0 ? $": {text}" : "")}");
                }

                return fd;
            }
        }
        finally
        {
            NativeMemory.Free(log);
        }
    }

    internal static int AttachNative(int program, int ifIndex)
    {
        var attr = stackalloc uint[32];
        new Span<uint>(attr, 32).Clear();
        attr[0] = (uint)program;
        attr[1] = (uint)ifIndex;
        attr[2] = Xdp.BpfAttachXdp;
        attr[3] = Xdp.XdpFlagsDrvMode;
        var fd = Xdp.Bpf(Xdp.BpfLinkCreate, attr, 128);
        Check(fd >= 0, "bpf(BPF_LINK_CREATE, XDP native)");
        return fd;
    }

    private static void Check(bool ok, string what)
    {
        if (!ok)
        {
            throw new IOException($"{what} failed: {Libc.Describe(Libc.Errno)}");
        }
    }
}
