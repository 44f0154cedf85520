using System.Runtime.InteropServices;
using System.Text;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// Receive on an interface through AF_XDP (copy mode): a six-instruction XDP program, attached in native
/// (driver) mode with BPF_LINK_CREATE, redirects every frame of queue 0 into an XSKMAP holding our socket;
/// the kernel copies each frame into a chunk of our UMEM and posts it on the RX ring (<see cref="XdpRxRing"/>).
/// </summary>
/// <remarks>
/// <para>Why: with an AF_PACKET tap every frame costs the forwarding CPU an skb's trip through
/// netif_receive_skb (and, past the socket's queue limit, the drop) before the worker ever sees it: under
/// overload that softirq work starves the worker (receive livelock). Here a frame is taken in the driver's
/// XDP hook, before any skb or stack work, and when the RX ring is full the kernel drops it right there
/// (counted in XDP_STATISTICS, <see cref="PortCounters.RxKernelDrops"/>).</para>
/// <para>The program: <c>r2 = ctx->rx_queue_index; r1 = xskmap; r3 = XDP_PASS; return bpf_redirect_map(r1, r2, r3)</c>.
/// Without a socket in the map (before bind, or another queue) frames pass to the stack. The link, the
/// program and the map go away with their file descriptors when the receiver is disposed (or the process dies).</para>
/// <para>Limits: the frame is what the driver holds, so on veth a peer's partial checksums (TX checksum
/// offload) and GSO are not finished for us as PACKET_VNET_HDR does; 802.1Q tags stay inline. Used for
/// access ports whose senders fill their checksums (the wire benchmark; real NICs).</para>
/// </remarks>
public sealed unsafe class XdpReceiver : IDisposable
{
    public const int DefaultFrames = 4096;
    public const int ChunkSize = 2048;

    private readonly int _frames;
    private readonly nuint _umemLength;
    private byte* _umem;
    private void* _rxMap;
    private readonly nuint _rxMapLength;
    private void* _fillMap;
    private readonly nuint _fillMapLength;
    private void* _completionMap;
    private readonly nuint _completionMapLength;
    private int _xsk = -1;
    private int _map = -1;
    private int _program = -1;
    private int _link = -1;

    /// <summary>Opens the socket and UMEM, loads and attaches the program to <paramref name="ifIndex"/>; throws <see cref="IOException"/> saying which step failed.</summary>
    public XdpReceiver(int ifIndex, int frames = DefaultFrames)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frames, 64);
        if ((frames & (frames - 1)) != 0)
        {
            throw new ArgumentException("The frame count is a power of two.", nameof(frames));
        }

        _frames = frames;
        _umemLength = (nuint)frames * ChunkSize;
        try
        {
            _umem = (byte*)Xdp.Mmap(null, _umemLength, Xdp.ProtRead | Xdp.ProtWrite, Xdp.MapPrivate | Xdp.MapAnonymous | Xdp.MapPopulate, -1, 0);
            Check(_umem != Xdp.MapFailed, "mmap(UMEM)");
            _xsk = Libc.Socket(Xdp.AfXdp, Libc.SockRaw | Libc.SockCloExec, 0);
            Check(_xsk >= 0, "socket(AF_XDP)");

            var reg = new XdpUmemReg { Address = (ulong)_umem, Length = _umemLength, ChunkSize = ChunkSize };
            Check(Libc.SetSockOpt(_xsk, Xdp.SolXdp, Xdp.XdpUmemReg, &reg, (uint)sizeof(XdpUmemReg)) == 0, "XDP_UMEM_REG");
            SetRingSize(Xdp.XdpUmemFillRing, frames, "XDP_UMEM_FILL_RING");
            SetRingSize(Xdp.XdpUmemCompletionRing, 64, "XDP_UMEM_COMPLETION_RING");
            SetRingSize(Xdp.XdpRxRing, frames, "XDP_RX_RING");

            XdpMmapOffsets off;
            var offLength = (uint)sizeof(XdpMmapOffsets);
            Check(Libc.GetSockOpt(_xsk, Xdp.SolXdp, Xdp.XdpMmapOffsets, &off, &offLength) == 0, "XDP_MMAP_OFFSETS");
            _rxMapLength = (nuint)(off.Rx.Desc + ((ulong)frames * (ulong)sizeof(XdpDesc)));
            _rxMap = MapRing(_rxMapLength, Xdp.PgOffRxRing, "RX ring");
            _fillMapLength = (nuint)(off.Fill.Desc + ((ulong)frames * sizeof(ulong)));
            _fillMap = MapRing(_fillMapLength, Xdp.PgOffFillRing, "fill ring");
            _completionMapLength = (nuint)(off.Completion.Desc + (64UL * sizeof(ulong)));
            _completionMap = MapRing(_completionMapLength, Xdp.PgOffCompletionRing, "completion ring");

            var rx = (byte*)_rxMap;
            var fill = (byte*)_fillMap;
            Ring = new XdpRxRing(
                (uint*)(rx + off.Rx.Producer), (uint*)(rx + off.Rx.Consumer), (XdpDesc*)(rx + off.Rx.Desc), frames,
                (uint*)(fill + off.Fill.Producer), (uint*)(fill + off.Fill.Consumer), (ulong*)(fill + off.Fill.Desc), frames,
                _umem, ChunkSize);
            Ring.Prime(frames, ChunkSize);

            var sxdp = new SockAddrXdp { Family = Xdp.AfXdp, Flags = Xdp.XdpCopy, IfIndex = (uint)ifIndex, QueueId = 0 };
            Check(Libc.Bind(_xsk, &sxdp, (uint)sizeof(SockAddrXdp)) == 0, "bind(AF_XDP)");

            _map = CreateXskMap();
            var key = 0;
            var value = _xsk;
            UpdateElement(_map, &key, &value);
            _program = LoadProgram(_map);
            _link = AttachNative(_program, ifIndex);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The AF_XDP socket: readable when the RX ring holds frames.</summary>
    public int Handle => _xsk;

    public XdpRxRing Ring { get; } = null!;

    /// <summary>Frames the kernel dropped for us: RX ring full, no fill chunk, or invalid (XDP_STATISTICS); -1 if unreadable.</summary>
    public long ReadDrops()
    {
        // struct xdp_statistics: rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs
        var stats = stackalloc ulong[6];
        var length = (uint)(6 * sizeof(ulong));
        if (_xsk < 0 || Libc.GetSockOpt(_xsk, Xdp.SolXdp, 7, stats, &length) != 0)
        {
            return -1;
        }

        return (long)(stats[0] + stats[1] + stats[3] + (length >= 5 * sizeof(ulong) ? stats[4] : 0));
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

    private static int LoadProgram(int map)
    {
        var insns = Program(map);
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

    private static int AttachNative(int program, int ifIndex)
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
