using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Io.Native;

/// <summary>
/// The native arrays one port hands to recvmmsg/sendmmsg: <c>mmsghdr[n]</c>, <c>iovec[n]</c>, a
/// control buffer per message and an address per message. Allocated once (zeroed) and reused for
/// every batch, so the hot path never allocates.
/// </summary>
internal sealed unsafe class MessageVector : IDisposable
{
    private readonly int _controlSize;
    private readonly int _nameSize;
    private readonly int _iovsPerMessage;
    private byte* _memory;

    /// <param name="capacity">Messages.</param>
    /// <param name="controlSize">Control buffer bytes per message.</param>
    /// <param name="nameSize">Address bytes per message.</param>
    /// <param name="iovsPerMessage">1, or 2 for a second (scatter) buffer per message.</param>
    public MessageVector(int capacity, int controlSize, int nameSize, int iovsPerMessage = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(iovsPerMessage, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(iovsPerMessage, 2);
        Capacity = capacity;
        _controlSize = Align(controlSize);
        _nameSize = Align(nameSize);
        _iovsPerMessage = iovsPerMessage;
        var msgBytes = capacity * sizeof(MMsgHdr);
        var iovBytes = capacity * iovsPerMessage * sizeof(IoVec);
        var total = (nuint)(msgBytes + iovBytes + (capacity * _controlSize) + (capacity * _nameSize));
        _memory = (byte*)NativeMemory.AlignedAlloc(total, 64);
        NativeMemory.Clear(_memory, total);
        Messages = (MMsgHdr*)_memory;
        Iovs = (IoVec*)(_memory + msgBytes);
        Control = _memory + msgBytes + iovBytes;
        Names = Control + (capacity * _controlSize);
    }

    public int Capacity { get; }

    public MMsgHdr* Messages { get; }

    public IoVec* Iovs { get; }

    public byte* Control { get; }

    public byte* Names { get; }

    /// <summary>Points message <paramref name="i"/> at one receive buffer, resetting what the kernel overwrote.</summary>
    public void PrepareReceive(int i, byte* data, int length) => PrepareReceive(i, data, length, null, 0);

    /// <summary>
    /// Points message <paramref name="i"/> at a receive buffer and, when <paramref name="overflow"/> is not
    /// null (two iovecs per message), at a second buffer that takes whatever does not fit in the first.
    /// </summary>
    public void PrepareReceive(int i, byte* data, int length, byte* overflow, int overflowLength)
    {
        var iov = Iovs + (i * _iovsPerMessage);
        iov->Base = data;
        iov->Length = (nuint)length;
        ref var h = ref Messages[i].Header;
        h.Iov = iov;
        h.IovLength = 1;
        if (overflow != null && _iovsPerMessage > 1)
        {
            iov[1].Base = overflow;
            iov[1].Length = (nuint)overflowLength;
            h.IovLength = 2;
        }

        h.Name = _nameSize == 0 ? null : Names + (i * _nameSize);
        h.NameLength = (uint)_nameSize;
        h.Control = _controlSize == 0 ? null : Control + (i * _controlSize);
        h.ControlLength = (nuint)_controlSize;
        h.Flags = 0;
        Messages[i].Length = 0;
    }

    /// <summary>Points message <paramref name="i"/> at one frame to send; <paramref name="nameLength"/> 0 = no address.</summary>
    public void PrepareSend(int i, byte* data, int length, uint nameLength) => PrepareSend(i, null, 0, data, length, nameLength);

    /// <summary>
    /// Points message <paramref name="i"/> at <paramref name="head"/> (when not null; needs two iovecs per
    /// message) followed by <paramref name="data"/>.
    /// </summary>
    public void PrepareSend(int i, byte* head, int headLength, byte* data, int length, uint nameLength)
    {
        var iov = Iovs + (i * _iovsPerMessage);
        ref var h = ref Messages[i].Header;
        h.Iov = iov;
        if (head != null && _iovsPerMessage > 1)
        {
            iov[0].Base = head;
            iov[0].Length = (nuint)headLength;
            iov[1].Base = data;
            iov[1].Length = (nuint)length;
            h.IovLength = 2;
        }
        else
        {
            iov->Base = data;
            iov->Length = (nuint)length;
            h.IovLength = 1;
        }

        h.Name = nameLength == 0 ? null : Names + (i * _nameSize);
        h.NameLength = nameLength;
        h.Control = null;
        h.ControlLength = 0;
        h.Flags = 0;
        Messages[i].Length = 0;
    }

    /// <summary>The address slot of message <paramref name="i"/>.</summary>
    /// <summary>
    /// Sends messages [0, <paramref name="count"/>), prepared for <paramref name="frames"/> from
    /// <paramref name="index"/> on, with as few sendmmsg calls as the kernel allows, counting into
    /// <paramref name="counters"/>. EINTR is retried a few times; any other error belongs to the first
    /// unsent frame (EMSGSIZE, ENETDOWN, ...), which is skipped. Returns false when the kernel refused for
    /// lack of room (EAGAIN/ENOBUFS): every frame left in <paramref name="frames"/> is then counted as a
    /// transmit error, and the caller stops rather than spin.
    /// </summary>
    public bool SendPrepared(int fd, int count, ReadOnlySpan<TxFrame> frames, int index, PortCounters counters)
    {
        var done = 0;
        var interrupts = 0;
        while (done < count)
        {
            counters.TxSyscalls++;
            var n = Libc.SendMMsg(fd, Messages + done, (uint)(count - done), Libc.MsgDontWait);
            if (n > 0)
            {
                for (var i = 0; i < n; i++)
                {
                    counters.TxBytes += frames[index + done + i].Length;
                }

                counters.TxPackets += n;
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
                counters.TxErrors += frames.Length - (index + done);
                return false;
            }

            counters.TxErrors++;
            done++;
        }

        return true;
    }

    public byte* Name(int i) => Names + (i * _nameSize);

    /// <summary>
    /// Finds the first control message of <paramref name="level"/>/<paramref name="type"/> in
    /// message <paramref name="i"/>'s control data, or null.
    /// </summary>
    public byte* FindControl(int i, int level, int type)
    {
        ref var h = ref Messages[i].Header;
        var start = (byte*)h.Control;
        if (start == null)
        {
            return null;
        }

        var end = start + h.ControlLength;
        var p = start;
        while (p + Libc.CmsgHeaderSpace <= end)
        {
            var c = (CmsgHdr*)p;
            if (c->Length < (nuint)Libc.CmsgHeaderSpace)
            {
                return null;
            }

            if (c->Level == level && c->Type == type)
            {
                return p + Libc.CmsgHeaderSpace;
            }

            p += Align((int)c->Length);
        }

        return null;
    }

    public void Dispose()
    {
        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
    }

    private static int Align(int size) => (size + 7) & ~7;
}
