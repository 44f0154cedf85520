using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>A frame as a test or benchmark hands it to a <see cref="MemoryPort"/>, or gets it back.</summary>
/// <remarks>Transmitted VXLAN frames carry the VTEP, its UDP port and the flow-entropy source port encap chose.</remarks>
public sealed record MemoryFrame(byte[] Bytes, ushort? VlanTci = null, uint RemoteVtep = 0, ushort RemotePort = 0, uint DestinationIp = 0, ushort DestinationPort = 0, ushort SourcePort = 0);

/// <summary>
/// An in-memory port (Kestrel's in-memory transport, for packets): tests enqueue frames to be
/// "received" and read back what was transmitted. With <see cref="Replay"/> it receives the same
/// frames forever without allocating, which is what the benchmarks use.
/// </summary>
public sealed class MemoryPort(string name, PortKind kind) : IPacketPort
{
    private readonly Queue<MemoryFrame> _rx = new();
    private MemoryFrame[] _replay = [];
    private int _replayNext;

    public string Name { get; } = name;

    public PortKind Kind { get; } = kind;

    public int PollHandle => -1;

    public PortCounters Counters { get; } = new();

    public bool HasPendingFrames => _rx.Count > 0 || _replay.Length > 0;

    /// <summary>What the port transmitted, in order (only when <see cref="CaptureTransmitted"/>).</summary>
    public List<MemoryFrame> Transmitted { get; } = [];

    public bool CaptureTransmitted { get; set; } = true;

    public void Enqueue(MemoryFrame frame) => _rx.Enqueue(frame);

    public void Enqueue(byte[] frame) => _rx.Enqueue(new MemoryFrame(frame));

    /// <summary>Receive these frames round-robin forever (benchmarks).</summary>
    public void Replay(IEnumerable<MemoryFrame> frames)
    {
        _replay = [.. frames];
        _replayNext = 0;
    }

    public int Receive(PacketBatch batch, PacketPool pool, ushort portIndex)
    {
        var received = 0;
        long bytes = 0;
        while (!batch.IsFull)
        {
            MemoryFrame? frame;
            if (_replay.Length > 0)
            {
                frame = _replay[_replayNext];
                _replayNext = _replayNext + 1 == _replay.Length ? 0 : _replayNext + 1;
            }
            else if (!_rx.TryDequeue(out frame))
            {
                break;
            }

            var buffer = pool.Rent();
            if (buffer < 0)
            {
                Counters.RxNoBuffer++;
                break;
            }

            var length = Math.Min(frame.Bytes.Length, PacketPool.MaxFrame);
            frame.Bytes.AsSpan(0, length).CopyTo(pool.Frame(buffer, PacketPool.Headroom, length));
            ref var p = ref batch.Add(buffer, PacketPool.Headroom, length, portIndex);
            if (length < frame.Bytes.Length)
            {
                p.Flags |= PacketFlags.Truncated;
                Counters.RxTruncated++;
            }

            if (frame.VlanTci is { } tci)
            {
                p.VlanTci = tci;
                p.Flags |= PacketFlags.VlanFromAux;
            }

            p.RemoteVtep = frame.RemoteVtep;
            p.RemotePort = frame.RemotePort;
            bytes += length;
            received++;
        }

        // Counted once per call, as the socket ports do per system call.
        Counters.RxPackets += received;
        Counters.RxBytes += bytes;
        Counters.RxSyscalls++;
        return received;
    }

    public void Transmit(TxQueue queue, PacketPool pool)
    {
        long bytes = 0;
        var capture = CaptureTransmitted;
        foreach (ref readonly var tx in queue.Frames)
        {
            if (capture)
            {
                Transmitted.Add(new MemoryFrame(pool.Frame(tx.Buffer, tx.Offset, tx.Length).ToArray(), DestinationIp: tx.DestinationIp, DestinationPort: tx.DestinationPort, SourcePort: tx.SourcePort));
            }

            bytes += tx.Length;
            pool.Return(tx.Buffer);
        }

        Counters.TxPackets += queue.Count;
        Counters.TxBytes += bytes;
        Counters.TxSyscalls++;
        queue.Clear();
    }

    public void Dispose()
    {
    }
}
