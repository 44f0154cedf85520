using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Io;

/// <summary>
/// The user side of an AF_XDP socket's RX ring and its UMEM fill ring: the kernel produces frame
/// descriptors into RX (each one names a chunk of the UMEM), we copy each frame into a pool buffer and
/// hand its chunk straight back on the fill ring. Both rings are single-producer single-consumer arrays
/// of power-of-two size with free-running 32-bit indices (the producer's index is read with acquire
/// semantics, ours written with release). No system call and no allocation.
/// </summary>
/// <remarks>Pointers may name kernel-mapped rings (<see cref="XdpSocket"/>) or plain memory (tests).</remarks>
public sealed unsafe class XdpRxRing
{
    private readonly uint* _rxProducer;
    private readonly uint* _rxConsumer;
    private readonly XdpDesc* _rx;
    private readonly uint _rxMask;
    private readonly uint* _fillProducer;
    private readonly uint* _fillConsumer;
    private readonly ulong* _fill;
    private readonly uint _fillMask;
    private readonly byte* _umem;
    private readonly ulong _chunkMask;

    public XdpRxRing(
        uint* rxProducer, uint* rxConsumer, XdpDesc* rx, int rxSize,
        uint* fillProducer, uint* fillConsumer, ulong* fill, int fillSize,
        byte* umem, int chunkSize)
    {
        if (!IsPowerOfTwo(rxSize) || !IsPowerOfTwo(fillSize) || !IsPowerOfTwo(chunkSize))
        {
            throw new ArgumentException("AF_XDP ring sizes and the chunk size are powers of two.");
        }

        _rxProducer = rxProducer;
        _rxConsumer = rxConsumer;
        _rx = rx;
        _rxMask = (uint)rxSize - 1;
        _fillProducer = fillProducer;
        _fillConsumer = fillConsumer;
        _fill = fill;
        _fillMask = (uint)fillSize - 1;
        _umem = umem;
        _chunkMask = ~(ulong)(chunkSize - 1);
    }

    /// <summary>
    /// Finish a partial TCP/UDP checksum (a veth peer's TX checksum offload) on each received frame
    /// (<see cref="XdpChecksum"/>), counted in <see cref="PortCounters.RxChecksumsFinished"/>. On by default.
    /// </summary>
    public bool FinishChecksums { get; set; } = true;

    /// <summary>
    /// The ring carries VXLAN underlay frames (<see cref="XdpSocket.UdpProgram"/>): each frame's outer
    /// Ethernet/IPv4/UDP headers are checked and stripped, and the datagram's payload enters the batch as the
    /// UDP socket would deliver it, with the sender in <see cref="PacketMeta.RemoteVtep"/>/<see cref="PacketMeta.RemotePort"/>.
    /// </summary>
    public bool UnderlayUdp { get; init; }

    /// <summary>Outer headers the program matched: Ethernet (14), IPv4 without options (20), UDP (8).</summary>
    public const int OuterLength = 42;

    /// <summary>Frames the kernel has put on the RX ring and we have not taken yet.</summary>
    public int Available => (int)(Volatile.Read(ref *_rxProducer) - *_rxConsumer);

    /// <summary>Puts <paramref name="count"/> chunks (from chunk 0 on) on the fill ring: the UMEM is the kernel's to fill.</summary>
    public void Prime(int count, int chunkSize)
    {
        var producer = *_fillProducer;
        for (var i = 0; i < count; i++)
        {
            _fill[(producer + (uint)i) & _fillMask] = (ulong)i * (ulong)chunkSize;
        }

        Volatile.Write(ref *_fillProducer, producer + (uint)count);
    }

    /// <summary>
    /// Moves up to <paramref name="max"/> frames into the batch (copied into pool buffers at
    /// <see cref="PacketPool.Headroom"/>) and returns their chunks to the fill ring. A frame longer than a
    /// pool slot is counted in <see cref="PortCounters.RxTruncated"/> and dropped; with the pool empty the
    /// frame is dropped and counted in <see cref="PortCounters.RxNoBuffer"/> (its chunk still goes back).
    /// </summary>
    public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex, int max, PortCounters counters)
    {
        var consumer = *_rxConsumer;
        var available = (int)(Volatile.Read(ref *_rxProducer) - consumer);
        var n = Math.Min(Math.Min(available, max), batch.Free);
        if (n <= 0)
        {
            return 0;
        }

        var fillProducer = *_fillProducer;
        var added = 0;
        for (var i = 0; i < n; i++)
        {
            ref readonly var desc = ref _rx[(consumer + (uint)i) & _rxMask];
            var length = (int)desc.Length;
            if (UnderlayUdp)
            {
                added += TakeDatagram(_umem + desc.Address, length, batch, pool, portIndex, counters);
                _fill[(fillProducer + (uint)i) & _fillMask] = desc.Address & _chunkMask;
                continue;
            }

            var buffer = length <= PacketPool.MaxFrame ? pool.Rent() : -2;
            if (buffer >= 0)
            {
                var frame = pool.Pointer(buffer) + PacketPool.Headroom;
                Unsafe.CopyBlockUnaligned(frame, _umem + desc.Address, (uint)length);
                if (FinishChecksums && XdpChecksum.FinishIfPartial(frame, length))
                {
                    counters.RxChecksumsFinished++;
                }

                batch.Add(buffer, PacketPool.Headroom, length, portIndex);
                counters.RxPackets++;
                counters.RxBytes += length;
                added++;
            }
            else if (buffer == -2)
            {
                counters.RxTruncated++;
            }
            else
            {
                counters.RxNoBuffer++;
            }

            _fill[(fillProducer + (uint)i) & _fillMask] = desc.Address & _chunkMask;
        }

        // Frames read before the kernel may reuse their slots; chunks written before the kernel may fill them.
        Volatile.Write(ref *_rxConsumer, consumer + (uint)n);
        Volatile.Write(ref *_fillProducer, fillProducer + (uint)n);
        return added;
    }

    /// <summary>
    /// An underlay frame: checks what the program could not (IPv4 total length within the frame, UDP length,
    /// the IPv4 header checksum, a non-zero UDP checksum), then copies the UDP payload into a pool buffer.
    /// A frame failing a check is counted in <see cref="PortCounters.RxMalformed"/>; 1 when it entered the batch.
    /// </summary>
    private int TakeDatagram(byte* frame, int length, PacketBatch batch, PacketPool pool, ushort portIndex, PortCounters counters)
    {
        var ip = frame + 14;
        if (length < OuterLength)
        {
            counters.RxMalformed++;
            return 0;
        }

        // A kernel sender's UDP checksum may be partial (veth TX offload), like an access port's frames.
        if (FinishChecksums && XdpChecksum.FinishIfPartial(frame, length))
        {
            counters.RxChecksumsFinished++;
        }

        var total = (ip[2] << 8) | ip[3];
        var udpLength = (ip[24] << 8) | ip[25];
        if (total < 28 || 14 + total > length || udpLength != total - 20
            || Checksum.Fold(Checksum.Add(new ReadOnlySpan<byte>(ip, 20))) != 0xFFFF)
        {
            counters.RxMalformed++;
            return 0;
        }

        if ((ip[26] | ip[27]) != 0)
        {
            var pseudo = Checksum.Add(new ReadOnlySpan<byte>(ip + 12, 8)) + IpProtocol.Udp + (ulong)udpLength;
            if (!Checksum.IsValid(new ReadOnlySpan<byte>(ip + 20, udpLength), pseudo))
            {
                counters.RxMalformed++;
                return 0;
            }
        }

        var payload = udpLength - 8;
        if (payload > PacketPool.MaxFrame)
        {
            counters.RxTruncated++;
            return 0;
        }

        var buffer = pool.Rent();
        if (buffer < 0)
        {
            counters.RxNoBuffer++;
            return 0;
        }

        Unsafe.CopyBlockUnaligned(pool.Pointer(buffer) + PacketPool.Headroom, frame + OuterLength, (uint)payload);
        ref var meta = ref batch.Add(buffer, PacketPool.Headroom, payload, portIndex);
        meta.RemoteVtep = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(ip + 12, 4));
        meta.RemotePort = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 20, 2));
        counters.RxPackets++;
        counters.RxBytes += payload;
        return 1;
    }

    /// <summary>Chunks on the fill ring the kernel has not taken yet.</summary>
    public int FillQueued => (int)(*_fillProducer - Volatile.Read(ref *_fillConsumer));

    private static bool IsPowerOfTwo(int value) => value > 0 && (value & (value - 1)) == 0;
}
