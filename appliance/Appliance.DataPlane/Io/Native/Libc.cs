using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Io.Native;

/// <summary>
/// The handful of libc calls the ports need. Every call sets errno (read it with
/// <see cref="Marshal.GetLastPInvokeError"/> or <see cref="Errno"/>). Layouts are Linux x86_64/arm64 (LP64).
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, void* address, uint addressLength);

    [LibraryImport(Lib, EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(int fd, void* address, uint* addressLength);

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, void* value, uint* valueLength);

    [LibraryImport(Lib, EntryPoint = "recvmmsg", SetLastError = true)]
    public static partial int RecvMMsg(int fd, MMsgHdr* vector, uint length, int flags, void* timeout);

    [LibraryImport(Lib, EntryPoint = "sendmmsg", SetLastError = true)]
    public static partial int SendMMsg(int fd, MMsgHdr* vector, uint length, int flags);

    [LibraryImport(Lib, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "sendto", SetLastError = true)]
    public static partial nint SendTo(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport(Lib, EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(int fd, void* buffer, nuint length, int flags);

    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Lib, EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate1(int flags);

    /// <summary>epoll_ctl with a struct epoll_event whose events word is at offset 0 (x86_64 packs it, arm64 does not: 16 bytes covers both).</summary>
    [LibraryImport(Lib, EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epfd, int op, int fd, void* ev);

    public const int EpollCtlAdd = 1;
    public const uint EpollIn = 1;
    public const int EpollCloExec = 0x80000;

    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initialValue, int flags);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint IfNameToIndex(string name);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int namespaceType);

    [LibraryImport(Lib, EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetAffinity(int tid, nuint size, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int tid, nuint size, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "gettid")]
    public static partial int GetTid();

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEUid();

    /// <summary>errno of the last call made through this class on this thread.</summary>
    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>"strerror"-style text for exceptions (setup paths only: it allocates).</summary>
    public static string Describe(int errno) => $"errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";

    /// <summary>Host to network byte order for 16-bit values.</summary>
    public static ushort Htons(ushort value) =>
        BitConverter.IsLittleEndian ? (ushort)((value >> 8) | (value << 8)) : value;

    // Address families, socket types.
    public const int AfInet = 2;
    public const int AfPacket = 17;
    public const int SockDgram = 2;
    public const int SockRaw = 3;
    public const int SockNonBlock = 0x800;
    public const int SockCloExec = 0x80000;
    public const int IpProtoUdp = 17;
    public const int AfNetlink = 16;
    public const int NetlinkRoute = 0;

    /// <summary>ETH_P_ALL, host order: pass through <see cref="Htons"/>.</summary>
    public const ushort EthPAll = 0x0003;

    // Socket options.
    public const int SolSocket = 1;
    public const int SoReuseAddr = 2;

    /// <summary>IPPROTO_IP options: IP_MTU_DISCOVER = IP_PMTUDISC_DO sets DF and refuses what exceeds the path MTU (EMSGSIZE).</summary>
    public const int SolIp = 0;
    public const int IpMtuDiscover = 10;
    public const int IpPmtuDiscDo = 2;

    /// <summary>SOL_UDP's UDP_SEGMENT (Linux 4.18+): a sendmsg's payload is cut into datagrams of this many bytes (GSO).</summary>
    public const int SolUdp = 17;
    public const int UdpSegment = 103;
    public const int SoSndBuf = 7;
    public const int SoRcvBuf = 8;

    /// <summary>SO_MEMINFO: u32[SK_MEMINFO_VARS]; index 8 (SK_MEMINFO_DROPS) counts packets the socket dropped.</summary>
    public const int SoMemInfo = 55;
    public const int SkMemInfoVars = 9;
    public const int SkMemInfoDrops = 8;
    public const int SoSndBufForce = 32;
    public const int SoRcvBufForce = 33;

    public const int SolPacket = 263;
    public const int PacketAddMembership = 1;
    public const int PacketAuxData = 8;
    public const int PacketVnetHdr = 15;
    public const int PacketIgnoreOutgoing = 23;

    /// <summary>PACKET_QDISC_BYPASS: transmit straight to the driver, skipping the qdisc layer.</summary>
    public const int PacketQdiscBypass = 20;
    public const ushort PacketMrPromisc = 1;

    // tpacket_auxdata.tp_status bits.
    public const uint TpStatusCsumNotReady = 0x8;
    public const uint TpStatusVlanValid = 0x10;
    public const uint TpStatusVlanTpidValid = 0x40;

    // Message flags.
    public const int MsgCTrunc = 0x8;
    public const int MsgTrunc = 0x20;
    public const int MsgDontWait = 0x40;

    // errno values.
    public const int EPerm = 1;
    public const int EIntr = 4;
    public const int EAcces = 13;
    public const int EAgain = 11;
    public const int EBusy = 16;
    public const int EInval = 22;
    public const int ENoBufs = 105;
    public const int EMsgSize = 90;
    public const int EAddrInUse = 98;

    // poll events.
    public const short PollIn = 0x1;
    public const short PollErr = 0x8;
    public const short PollHup = 0x10;
    public const short PollNVal = 0x20;

    // open flags, namespaces.
    public const int ORdOnly = 0;
    public const int OCloExec = 0x80000;

    /// <summary>eventfd(2) flags: EFD_NONBLOCK, EFD_CLOEXEC.</summary>
    public const int EfdNonBlock = 0x800;
    public const int EfdCloExec = 0x80000;
    public const int CloneNewNet = 0x40000000;

    /// <summary>CMSG_ALIGN(sizeof(struct cmsghdr)): where a control message's data starts.</summary>
    public const int CmsgHeaderSpace = 16;

    /// <summary>CMSG_SPACE(sizeof(uint16_t)): a UDP_SEGMENT control message.</summary>
    public const int CmsgUint16Space = CmsgHeaderSpace + 8;

    /// <summary>CMSG_SPACE(sizeof(struct tpacket_auxdata)).</summary>
    public const int CmsgAuxDataSpace = CmsgHeaderSpace + 24;
}

/// <summary>struct sockaddr_ll (20 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrLl
{
    public ushort Family;
    public ushort Protocol;       // network order
    public int IfIndex;
    public ushort HaType;
    public byte PktType;
    public byte HaLen;
    public fixed byte Addr[8];
}

/// <summary>struct sockaddr_in (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrIn
{
    public ushort Family;
    public ushort Port;           // network order
    public uint Addr;             // network order
    public fixed byte Zero[8];
}

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}

/// <summary>struct msghdr (56 bytes on LP64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>struct mmsghdr (64 bytes on LP64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MMsgHdr
{
    public MsgHdr Header;
    public uint Length;
}

/// <summary>struct cmsghdr (16 bytes on LP64); data follows at <see cref="Libc.CmsgHeaderSpace"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CmsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;
}

/// <summary>struct tpacket_auxdata (20 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TPacketAuxData
{
    public uint Status;
    public uint Len;
    public uint SnapLen;
    public ushort Mac;
    public ushort Net;
    public ushort VlanTci;
    public ushort VlanTpid;
}

/// <summary>
/// struct virtio_net_hdr (10 bytes), in front of every frame on a PACKET_VNET_HDR socket. The 16-bit
/// fields are in the host's byte order (the kernel writes them with vio_le(): little endian on a
/// little-endian host).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct VirtioNetHdr
{
    public byte Flags;
    public byte GsoType;
    public ushort HdrLen;
    public ushort GsoSize;
    public ushort CsumStart;
    public ushort CsumOffset;
}

/// <summary>struct packet_mreq (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct PacketMreq
{
    public int IfIndex;
    public ushort Type;
    public ushort AddrLength;
    public fixed byte Address[8];
}

/// <summary>struct pollfd.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}
