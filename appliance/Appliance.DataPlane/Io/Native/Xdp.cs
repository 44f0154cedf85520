using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Io.Native;

/// <summary>
/// bpf(2), mmap(2) and the AF_XDP constants and layouts (linux/bpf.h, linux/if_xdp.h) that
/// <see cref="XdpSocket"/> needs. LP64 Linux (x86_64, arm64).
/// </summary>
internal static unsafe partial class Xdp
{
    private const string Lib = "libc";

    public const int AfXdp = 44;
    public const int SolXdp = 283;

    // setsockopt/getsockopt(SOL_XDP)
    public const int XdpMmapOffsets = 1;
    public const int XdpRxRing = 2;
    public const int XdpTxRing = 3;
    public const int XdpUmemReg = 4;
    public const int XdpUmemFillRing = 5;
    public const int XdpUmemCompletionRing = 6;

    /// <summary>
    /// XDP_MAX_TX_SKB_BUDGET (Linux 6.17): how many descriptors one copy-mode sendto() may send, from the kernel's
    /// 32 (TX_BATCH_SIZE) up to the TX ring's size. Older kernels answer ENOPROTOOPT.
    /// </summary>
    public const int XdpMaxTxSkbBudget = 9;

    /// <summary>Descriptors a copy-mode sendto() sends when <see cref="XdpMaxTxSkbBudget"/> is not set (TX_BATCH_SIZE).</summary>
    public const int DefaultTxBudget = 32;

    // sockaddr_xdp.sxdp_flags
    public const ushort XdpCopy = 1 << 1;
    public const ushort XdpUseNeedWakeup = 1 << 3;

    // mmap offsets of the rings
    public const long PgOffRxRing = 0;
    public const long PgOffTxRing = 0x80000000;
    public const long PgOffFillRing = 0x100000000;
    public const long PgOffCompletionRing = 0x180000000;

    // bpf(2) commands, map and program types
    public const int BpfMapCreate = 0;
    public const int BpfMapUpdateElem = 2;
    public const int BpfProgLoad = 5;
    public const int BpfLinkCreate = 28;
    public const int BpfMapTypeXskMap = 17;
    public const int BpfProgTypeXdp = 6;
    public const int BpfAttachXdp = 37;

    // XDP attach flags: native (driver) mode; generic (skb) mode
    public const uint XdpFlagsSkbMode = 1 << 1;
    public const uint XdpFlagsDrvMode = 1 << 2;

    public const int ProtRead = 1;
    public const int ProtWrite = 2;
    public const int MapShared = 1;
    public const int MapPrivate = 2;
    public const int MapAnonymous = 0x20;
    public const int MapPopulate = 0x8000;

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a1, long a2, long a3);

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    public static readonly void* MapFailed = (void*)-1;

    /// <summary>bpf(cmd, attr, size).</summary>
    public static int Bpf(int command, void* attr, int size)
    {
        long number = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 321,
            Architecture.Arm64 => 280,
            _ => throw new PlatformNotSupportedException("bpf(2): x86_64 and arm64 only"),
        };
        return (int)Syscall(number, command, (long)attr, size);
    }
}

/// <summary>struct xdp_ring_offset.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpRingOffset
{
    public ulong Producer;
    public ulong Consumer;
    public ulong Desc;
    public ulong Flags;
}

/// <summary>struct xdp_mmap_offsets.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpMmapOffsets
{
    public XdpRingOffset Rx;
    public XdpRingOffset Tx;
    public XdpRingOffset Fill;
    public XdpRingOffset Completion;
}

/// <summary>struct xdp_umem_reg (the 32-byte form; the kernel also takes the older 24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct XdpUmemReg
{
    public ulong Address;
    public ulong Length;
    public uint ChunkSize;
    public uint Headroom;
    public uint Flags;
    public uint TxMetadataLength;
}

/// <summary>struct sockaddr_xdp.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SockAddrXdp
{
    public ushort Family;
    public ushort Flags;
    public uint IfIndex;
    public uint QueueId;
    public uint SharedUmemFd;
}

/// <summary>struct xdp_desc: a frame in the UMEM.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct XdpDesc
{
    public ulong Address;
    public uint Length;
    public uint Options;
}
