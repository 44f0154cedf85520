using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>Why a VXLAN datagram the UDP GSO sender was given did not leave (<see cref="PortCounters.TxDropped"/>).</summary>
public enum VxlanTransmitDrop
{
    /// <summary>EAGAIN / ENOBUFS: the socket's send buffer or the device had no room; the rest of the socket's trains too.</summary>
    NoRoom,

    /// <summary>EMSGSIZE: the datagram with its outer headers exceeds the underlay path's MTU (DF is set).</summary>
    TooBig,

    /// <summary>Any other error (EINVAL: e.g. a segment size the route's MTU cannot take; ENETUNREACH, EPERM, ...).</summary>
    Refused,
}

/// <summary>
/// VXLAN transmit through the kernel's UDP stack with UDP GSO (<c>UDP_SEGMENT</c>, Linux 4.18+): a run of same-size
/// datagrams to one VTEP leaves as one <c>sendmsg</c>, one skb that the kernel cuts into datagrams on its way out
/// (<see cref="VxlanTrainPlan"/>). The kernel routes, picks the source address, ARPs and fills the outer headers, so no
/// <see cref="UnderlayPath"/> is needed.
/// </summary>
/// <remarks>
/// <para>Why: copy-mode AF_XDP and AF_PACKET transmit hand each frame to the device alone and re-enable bottom halves
/// after it, so on a veth the receiving namespace's softirq runs once per frame inside the sender's system call. A GSO
/// skb is cut in <c>validate_xmit_skb</c> and the whole list goes to the driver inside <c>__dev_queue_xmit</c>'s
/// <c>rcu_read_lock_bh</c> section: one softirq round per train. An egress device that can take UDP segmentation
/// (<c>tx-udp-segmentation</c>: a NIC with USO, or a veth, which passes the train whole to its peer) does the cut
/// itself.</para>
/// <para>RFC 7348 §5's flow entropy: a train has one source port, so the sender holds <see cref="SocketCount"/> UDP
/// sockets bound to the underlay address, each on its own source port in the dynamic range, and a datagram goes
/// through the socket its flow's entropy hash picks (the hash's low bits). 16 ports spread flows over an underlay's
/// ECMP paths (up to 8-16 next hops get a share each) while a batch of many flows still forms trains of ~batch/16
/// datagrams; the full 14-bit entropy would leave one datagram per train in a many-flow batch.</para>
/// <para>IP_PMTUDISC_DO on every socket: DF set, as on the raw path. The kernel computes the UDP checksum (GSO needs
/// it; RFC 7348 §5 allows a non-zero checksum over IPv4 if it is correct), or leaves it to the device's offload.
/// Errors are counted drops (<see cref="VxlanTransmitDrop"/>), never retried. Threading: the port's worker only.</para>
/// </remarks>
internal sealed unsafe class VxlanGsoSender : IDisposable
{
    /// <summary>Sockets = distinct outer source ports (a power of two).</summary>
    public const int SocketCount = 16;

    /// <summary>First port tried per socket: 49152 + k · 1024 (+ j on EADDRINUSE).</summary>
    private const int PortStride = 16384 / SocketCount;

    private readonly int[] _fds = new int[SocketCount];
    private readonly ushort[] _ports = new ushort[SocketCount];
    private readonly ushort _defaultPortNetworkOrder;
    private readonly VxlanTrainPlan _plan;
    private readonly int _capacity;
    private byte* _memory;
    private readonly MMsgHdr* _messages;
    private readonly IoVec* _iovs;
    private readonly byte* _control;
    private readonly SockAddrIn* _names;

    /// <param name="localAddress">The underlay address (host order) every socket binds.</param>
    /// <param name="defaultPort">The destination port when a frame names none (host order).</param>
    /// <param name="capacity">The most frames one <see cref="Send"/> gets.</param>
    public VxlanGsoSender(uint localAddress, ushort defaultPort, int capacity, int socketBufferBytes)
    {
        _capacity = capacity;
        _defaultPortNetworkOrder = Libc.Htons(defaultPort);
        _plan = new VxlanTrainPlan(capacity, SocketCount);
        Array.Fill(_fds, -1);
        try
        {
            for (var k = 0; k < SocketCount; k++)
            {
                (_fds[k], _ports[k]) = Open(localAddress, 49152 + (k * PortStride), socketBufferBytes);
            }

            // Per frame an iovec; per train (at most one per frame) an mmsghdr, a UDP_SEGMENT cmsg and an address.
            var messageBytes = capacity * sizeof(MMsgHdr);
            var iovBytes = capacity * sizeof(IoVec);
            var controlBytes = capacity * Libc.CmsgUint16Space;
            var total = (nuint)(messageBytes + iovBytes + controlBytes + (capacity * sizeof(SockAddrIn)));
            _memory = (byte*)NativeMemory.AlignedAlloc(total, 64);
            NativeMemory.Clear(_memory, total);
            _messages = (MMsgHdr*)_memory;
            _iovs = (IoVec*)(_memory + messageBytes);
            _control = _memory + messageBytes + iovBytes;
            _names = (SockAddrIn*)(_control + controlBytes);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The outer UDP source port of each socket, in socket order (diagnostics and tests).</summary>
    public ReadOnlySpan<ushort> SourcePorts => _ports;

    /// <summary>The source port a frame with flow entropy <paramref name="entropy"/> leaves from.</summary>
    public ushort SourcePortFor(ushort entropy) => _ports[_plan.SocketOf(entropy)];

    /// <summary>
    /// Sends <paramref name="frames"/> (VXLAN header + inner frame each, in <paramref name="pool"/>'s buffers) as trains,
    /// counting sent datagrams, syscalls, trains and drops into <paramref name="counters"/>. Returns no buffer: the caller
    /// does, sent or not.
    /// </summary>
    public void Send(ReadOnlySpan<TxFrame> frames, PacketPool pool, PortCounters counters)
    {
        for (var start = 0; start < frames.Length; start += _capacity)
        {
            SendChunk(frames.Slice(start, Math.Min(_capacity, frames.Length - start)), pool, counters);
        }
    }

    public void Dispose()
    {
        for (var k = 0; k < SocketCount; k++)
        {
            if (_fds[k] >= 0)
            {
                SocketSetup.CloseQuietly(_fds[k]);
                _fds[k] = -1;
            }
        }

        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
    }

    private static (int Fd, ushort Port) Open(uint localAddress, int firstPort, int socketBufferBytes)
    {
        var fd = Libc.Socket(Libc.AfInet, Libc.SockDgram | Libc.SockNonBlock | Libc.SockCloExec, Libc.IpProtoUdp);
        if (fd < 0)
        {
            throw new IOException($"socket(AF_INET, SOCK_DGRAM) for UDP GSO transmit failed: {Libc.Describe(Libc.Errno)}");
        }

        try
        {
            // A kernel without UDP GSO (before 4.18) has no such option: refuse here rather than drop every train later.
            var segment = 0;
            var length = (uint)sizeof(int);
            if (Libc.GetSockOpt(fd, Libc.SolUdp, Libc.UdpSegment, &segment, &length) != 0)
            {
                throw new IOException($"UDP GSO transmit: this kernel has no UDP_SEGMENT ({Libc.Describe(Libc.Errno)}); use dataPlane.vxlanTransmit \"raw\"");
            }

            SocketSetup.SetInt(fd, Libc.SolIp, Libc.IpMtuDiscover, Libc.IpPmtuDiscDo, "IP_MTU_DISCOVER");
            SocketSetup.SetBuffers(fd, socketBufferBytes);
            var sin = default(SockAddrIn);
            sin.Family = Libc.AfInet;
            sin.Addr = BinaryPrimitives.ReverseEndianness(localAddress);

            // A port of this socket's slice of the dynamic range; another process may hold one, so try a few.
            for (var port = firstPort; port < firstPort + PortStride; port++)
            {
                sin.Port = Libc.Htons((ushort)port);
                if (Libc.Bind(fd, &sin, (uint)sizeof(SockAddrIn)) == 0)
                {
                    return (fd, (ushort)port);
                }

                if (Libc.Errno != Libc.EAddrInUse)
                {
                    throw new IOException($"bind(UDP GSO source port {port}) failed: {Libc.Describe(Libc.Errno)}");
                }
            }

            throw new IOException($"UDP GSO transmit: every source port from {firstPort} to {firstPort + PortStride - 1} is in use");
        }
        catch
        {
            SocketSetup.CloseQuietly(fd);
            throw;
        }
    }

    private void SendChunk(ReadOnlySpan<TxFrame> frames, PacketPool pool, PortCounters counters)
    {
        _plan.Plan(frames);
        var order = _plan.Order;
        var trains = _plan.Trains;
        for (var t = 0; t < _plan.TrainCount; t++)
        {
            ref readonly var train = ref trains[t];
            for (var j = 0; j < train.Count; j++)
            {
                ref readonly var f = ref frames[order[train.First + j]];
                var iov = _iovs + train.First + j;
                iov->Base = pool.Pointer(f.Buffer) + f.Offset;
                iov->Length = (nuint)f.Length;
            }

            ref readonly var head = ref frames[order[train.First]];
            var name = _names + t;
            name->Family = Libc.AfInet;
            name->Addr = BinaryPrimitives.ReverseEndianness(head.DestinationIp);
            name->Port = head.DestinationPort == 0 ? _defaultPortNetworkOrder : BinaryPrimitives.ReverseEndianness(head.DestinationPort);
            ref var h = ref _messages[t].Header;
            h.Name = name;
            h.NameLength = (uint)sizeof(SockAddrIn);
            h.Iov = _iovs + train.First;
            h.IovLength = (nuint)train.Count;
            h.Flags = 0;
            _messages[t].Length = 0;
            if (train.Count > 1)
            {
                // The segment size rides with each message: trains of one socket differ in it.
                var cmsg = (CmsgHdr*)(_control + (t * Libc.CmsgUint16Space));
                cmsg->Length = (nuint)(Libc.CmsgHeaderSpace + sizeof(ushort));
                cmsg->Level = Libc.SolUdp;
                cmsg->Type = Libc.UdpSegment;
                *(ushort*)((byte*)cmsg + Libc.CmsgHeaderSpace) = (ushort)train.SegmentSize;
                h.Control = cmsg;
                h.ControlLength = Libc.CmsgUint16Space;
            }
            else
            {
                h.Control = null;
                h.ControlLength = 0;
            }
        }

        for (var u = 0; u < _plan.UsedSocketCount; u++)
        {
            var s = _plan.UsedSockets[u];
            SendTrains(_fds[s], _plan.SocketFirst[s], _plan.SocketTrains[s], counters);
        }
    }

    /// <summary>One socket's trains [first, first + count) with as few sendmmsg calls as the kernel allows.</summary>
    private void SendTrains(int fd, int first, int count, PortCounters counters)
    {
        var trains = _plan.Trains;
        var done = 0;
        var interrupts = 0;
        while (done < count)
        {
            counters.TxSyscalls++;
            var n = Libc.SendMMsg(fd, _messages + first + done, (uint)(count - done), Libc.MsgDontWait);
            if (n > 0)
            {
                for (var i = 0; i < n; i++)
                {
                    ref readonly var train = ref trains[first + done + i];
                    counters.TxPackets += train.Count;
                    counters.TxBytes += train.Bytes;
                    counters.TxGsoTrains++;
                }

                done += n;
                continue;
            }

            // sendmmsg reports an error only for its first message: it belongs to that train.
            var errno = n < 0 ? Libc.Errno : Libc.EAgain;
            if (errno == Libc.EIntr && ++interrupts < 4)
            {
                continue;
            }

            if (errno is Libc.EAgain or Libc.ENoBufs)
            {
                // No room: this socket's remaining trains are dropped, not retried (the next socket may have room).
                for (var i = first + done; i < first + count; i++)
                {
                    Drop(counters, VxlanTransmitDrop.NoRoom, trains[i].Count);
                }

                return;
            }

            Drop(counters, errno == Libc.EMsgSize ? VxlanTransmitDrop.TooBig : VxlanTransmitDrop.Refused, trains[first + done].Count);
            done++;
        }
    }

    private static void Drop(PortCounters counters, VxlanTransmitDrop reason, int datagrams)
    {
        counters.TxErrors += datagrams;
        counters.TxDropped[(int)reason] += datagrams;
    }
}
