using System.Runtime.InteropServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.Benchmarks.Wire;

/// <summary>What one <see cref="Sender.Send"/> did with the frames it was asked for.</summary>
/// <param name="Accepted">Handed to the kernel.</param>
/// <param name="Dropped">Handed over and refused by the receiving side's ingress (offered, lost).</param>
/// <param name="Errors">Refused for another reason.</param>
/// <param name="Full">The sender has no room now (the rest are still due).</param>
internal readonly record struct SendResult(int Accepted, int Dropped, int Errors, bool Full);

/// <summary>One way of putting the frame on the interface.</summary>
internal abstract class Sender : IDisposable
{
    public long Syscalls { get; protected set; }

    public abstract string Method { get; }

    /// <summary>Hands up to <paramref name="count"/> copies of the frame to the kernel.</summary>
    public abstract SendResult Send(int count);

    /// <summary>At the end: pushes out what is still queued; returns drops found among frames already counted as accepted.</summary>
    public virtual SendResult Drain() => default;

    public abstract void Dispose();
}

/// <summary>AF_PACKET, sendmmsg of up to a batch of message headers all naming the one frame.</summary>
internal sealed unsafe class PacketSender : Sender
{
    private readonly int _fd;
    private readonly byte* _frame;
    private readonly IoVec* _iov;
    private readonly MMsgHdr* _msgs;

    public PacketSender(int ifIndex, string name, ReadOnlySpan<byte> frame, int batch, bool qdiscBypass)
    {
        // Protocol 0: a send-only socket, it receives nothing.
        _fd = Libc.Socket(Libc.AfPacket, Libc.SockRaw | Libc.SockCloExec, 0);
        if (_fd < 0)
        {
            throw new IOException($"socket(AF_PACKET) failed (errno {Marshal.GetLastPInvokeError()}); run as root");
        }

        _frame = (byte*)NativeMemory.AlignedAlloc((nuint)frame.Length, 64);
        _iov = (IoVec*)NativeMemory.AlignedAlloc((nuint)sizeof(IoVec), 64);
        _msgs = (MMsgHdr*)NativeMemory.AlignedAlloc((nuint)(batch * sizeof(MMsgHdr)), 64);
        frame.CopyTo(new Span<byte>(_frame, frame.Length));
        *_iov = new IoVec { Base = _frame, Length = (nuint)frame.Length };
        for (var i = 0; i < batch; i++)
        {
            _msgs[i] = default;
            _msgs[i].Header.Iov = _iov;
            _msgs[i].Header.IovLength = 1;
        }

        if (qdiscBypass)
        {
            var one = 1;
            _ = Libc.SetSockOpt(_fd, Libc.SolPacket, Libc.PacketQdiscBypass, &one, sizeof(int));
        }

        var sll = stackalloc byte[20];
        new Span<byte>(sll, 20).Clear();
        *(ushort*)sll = Libc.AfPacket;                 // sll_family
        *(ushort*)(sll + 2) = 0;                  // sll_protocol: 0 = send only
        *(int*)(sll + 4) = ifIndex;               // sll_ifindex
        if (Libc.Bind(_fd, sll, 20) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Dispose();
            throw new IOException($"bind({name}) failed (errno {errno})");
        }
    }

    public override string Method => "sendmmsg";

    public override SendResult Send(int count)
    {
        while (true)
        {
            Syscalls++;
            var r = Libc.SendMMsg(_fd, _msgs, (uint)count, Libc.MsgDontWait);
            if (r > 0)
            {
                return new SendResult(r, 0, 0, false);
            }

            var errno = r < 0 ? Marshal.GetLastPInvokeError() : Libc.EAgain;
            switch (errno)
            {
                case Libc.EIntr: continue;
                case Libc.EAgain: return new SendResult(0, 0, 0, true);
                // ENOBUFS: the frame reached the veth and its peer's backlog dropped it (offered, lost).
                case Libc.ENoBufs: return new SendResult(0, 1, 0, false);
                default: return new SendResult(0, 0, 1, false);
            }
        }
    }

    public override void Dispose()
    {
        _ = Libc.Close(_fd);
        NativeMemory.AlignedFree(_frame);
        NativeMemory.AlignedFree(_iov);
        NativeMemory.AlignedFree(_msgs);
    }
}

/// <summary>
/// An AF_XDP socket's TX ring (copy mode, transmit only, the appliance's <see cref="XdpSocket"/>): the frame is
/// copied into free UMEM chunks and produced on the ring, then one sendto() kick sends the batch
/// (dev_direct_xmit per frame: no per-message header walk, no qdisc). A frame the receiving veth's ingress drops
/// ends the kick with EBUSY (it was consumed: offered, lost); EAGAIN (the device refuses) leaves it on the ring.
/// </summary>
internal sealed unsafe class XdpSender : Sender
{
    private readonly XdpSocket _xsk;
    private readonly PacketPool _pool = new(1);
    private readonly PortCounters _counters = new();
    private readonly TxFrame[] _frames;

    public XdpSender(int ifIndex, string name, ReadOnlySpan<byte> frame, int batch)
    {
        try
        {
            _xsk = new XdpSocket(ifIndex, receive: false, txFrames: XdpSocket.DefaultTxFrames);
        }
        catch (IOException e)
        {
            throw new IOException($"AF_XDP transmit on {name}: {e.Message}", e);
        }

        var buffer = _pool.Rent();
        frame.CopyTo(_pool.Frame(buffer, PacketPool.Headroom, frame.Length));
        _frames = new TxFrame[batch];
        Array.Fill(_frames, new TxFrame { Buffer = buffer, Offset = PacketPool.Headroom, Length = frame.Length });
    }

    public override string Method => $"af_xdp(budget {_xsk.TxBudget})";

    public override SendResult Send(int count)
    {
        var produced = _xsk.TxRing!.Enqueue(_frames.AsSpan(0, count), _pool, _counters);
        var dropped = Kick();
        // Frames the ring had no room for stay due; the ones a kick's EBUSY dropped were offered and lost.
        return new SendResult(produced - dropped, dropped, 0, produced < count);
    }

    public override SendResult Drain()
    {
        var dropped = 0;
        for (var i = 0; i < 1000 && _xsk.TxRing!.Pending > 0; i++)
        {
            dropped += Kick();
        }

        // Still on the ring after a thousand kicks: counted as accepted, never sent.
        return new SendResult(-_xsk.TxRing!.Pending, dropped, 0, false);
    }

    /// <summary>Kicks while the kernel takes frames; returns the frames the receiving side dropped (EBUSY).</summary>
    private int Kick()
    {
        var tx = _xsk.TxRing!;
        var dropped = 0;
        var pending = tx.Pending;
        while (pending > 0 && tx.NeedsWakeup)
        {
            Syscalls++;
            if (Libc.SendTo(_xsk.Handle, null, 0, Libc.MsgDontWait, null, 0) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EBusy)
                {
                    dropped++;
                }
                else if (errno != Libc.EIntr && errno != Libc.ENoBufs && errno != Libc.EAgain)
                {
                    throw new IOException($"sendto(AF_XDP) failed (errno {errno})");
                }
            }

            var left = tx.Pending;
            if (left >= pending)
            {
                break; // the device takes nothing now: the rest goes with the next kick
            }

            pending = left;
        }

        return dropped;
    }

    public override void Dispose() => _xsk.Dispose();
}
