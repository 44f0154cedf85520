using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// The user side of an AF_XDP socket's TX ring and its UMEM completion ring: we copy each frame into a free
/// TX chunk of the UMEM and produce its descriptor on TX; the kernel consumes descriptors, sends the frames
/// and hands each chunk back on the completion ring once the frame has left (in copy mode: when its skb is
/// freed). Chunks that are neither free nor on the completion ring are in flight. Both rings are
/// single-producer single-consumer arrays of power-of-two size with free-running 32-bit indices. No
/// system call (the socket's owner kicks the kernel when <see cref="NeedsWakeup"/>) and no allocation.
/// </summary>
/// <remarks>Pointers may name kernel-mapped rings (<see cref="XdpSocket"/>) or plain memory (tests).</remarks>
public sealed unsafe class XdpTxRing
{
    /// <summary>XDP_RING_NEED_WAKEUP in a ring's flags word.</summary>
    public const uint NeedWakeupFlag = 1;

    private readonly uint* _txProducer;
    private readonly uint* _txConsumer;
    private readonly uint* _txFlags;
    private readonly XdpDesc* _tx;
    private readonly uint _txMask;
    private readonly int _txSize;
    private readonly uint* _completionProducer;
    private readonly uint* _completionConsumer;
    private readonly ulong* _completion;
    private readonly uint _completionMask;
    private readonly byte* _umem;
    private readonly int _chunkSize;
    private readonly ulong _chunkMask;
    private readonly ulong[] _free;
    private int _freeCount;

    /// <param name="txFlags">The TX ring's flags word (XDP_RING_NEED_WAKEUP), or null when the kernel always needs a kick.</param>
    /// <param name="firstChunk">UMEM offset of the first TX chunk; <paramref name="chunks"/> chunks follow it.</param>
    public XdpTxRing(
        uint* txProducer, uint* txConsumer, uint* txFlags, XdpDesc* tx, int txSize,
        uint* completionProducer, uint* completionConsumer, ulong* completion, int completionSize,
        byte* umem, ulong firstChunk, int chunks, int chunkSize)
    {
        if (!IsPowerOfTwo(txSize) || !IsPowerOfTwo(completionSize) || !IsPowerOfTwo(chunkSize))
        {
            throw new ArgumentException("AF_XDP ring sizes and the chunk size are powers of two.");
        }

        // Every chunk in flight may sit on the completion ring at once: it must hold them all.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunks, completionSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunks, 1);
        _txProducer = txProducer;
        _txConsumer = txConsumer;
        _txFlags = txFlags;
        _tx = tx;
        _txMask = (uint)txSize - 1;
        _txSize = txSize;
        _completionProducer = completionProducer;
        _completionConsumer = completionConsumer;
        _completion = completion;
        _completionMask = (uint)completionSize - 1;
        _umem = umem;
        _chunkSize = chunkSize;
        _chunkMask = ~(ulong)(chunkSize - 1);
        _free = new ulong[chunks];
        for (var i = 0; i < chunks; i++)
        {
            _free[i] = firstChunk + ((ulong)(chunks - 1 - i) * (ulong)chunkSize);
        }

        _freeCount = chunks;
        Chunks = chunks;
    }

    /// <summary>TX chunks in all.</summary>
    public int Chunks { get; }

    /// <summary>Chunks holding a frame the kernel has not given back yet (on TX, being sent, or on the completion ring).</summary>
    public int InFlight => Chunks - _freeCount;

    /// <summary>Descriptors on the TX ring the kernel has not taken yet.</summary>
    public int Pending => (int)(*_txProducer - Volatile.Read(ref *_txConsumer));

    /// <summary>The kernel asks for a sendto() to process the TX ring (always so in copy mode).</summary>
    public bool NeedsWakeup => _txFlags == null || (Volatile.Read(ref *_txFlags) & NeedWakeupFlag) != 0;

    /// <summary>Takes back every chunk the kernel has completed; returns how many.</summary>
    public int Reclaim()
    {
        var consumer = *_completionConsumer;
        var n = (int)(Volatile.Read(ref *_completionProducer) - consumer);
        for (var i = 0; i < n; i++)
        {
            _free[_freeCount++] = _completion[(consumer + (uint)i) & _completionMask] & _chunkMask;
        }

        Volatile.Write(ref *_completionConsumer, consumer + (uint)n);
        return n;
    }

    /// <summary>
    /// Reclaims completed chunks, then copies <paramref name="frames"/> (their buffers stay the caller's) into
    /// free chunks and produces their descriptors, in order. A frame with no room (TX ring full or every chunk
    /// in flight) is dropped and counted in <see cref="PortCounters.TxRingFull"/>; one longer than a chunk in
    /// <see cref="PortCounters.TxErrors"/>. Returns the frames produced.
    /// </summary>
    public int Enqueue(ReadOnlySpan<TxFrame> frames, PacketPool pool, PortCounters counters)
    {
        Reclaim();
        var producer = *_txProducer;
        var room = _txSize - (int)(producer - Volatile.Read(ref *_txConsumer));
        var n = 0;
        foreach (ref readonly var f in frames)
        {
            if (n == room || _freeCount == 0)
            {
                counters.TxRingFull++;
                continue;
            }

            if ((uint)f.Length > (uint)_chunkSize)
            {
                counters.TxErrors++;
                continue;
            }

            var address = _free[--_freeCount];
            Unsafe.CopyBlockUnaligned(_umem + address, pool.Pointer(f.Buffer) + f.Offset, (uint)f.Length);
            ref var desc = ref _tx[(producer + (uint)n) & _txMask];
            desc.Address = address;
            desc.Length = (uint)f.Length;
            desc.Options = 0;
            n++;
            counters.TxPackets++;
            counters.TxBytes += f.Length;
        }

        // Descriptors and frame bytes written before the kernel may read them.
        Volatile.Write(ref *_txProducer, producer + (uint)n);
        return n;
    }

    private static bool IsPowerOfTwo(int value) => value > 0 && (value & (value - 1)) == 0;
}
