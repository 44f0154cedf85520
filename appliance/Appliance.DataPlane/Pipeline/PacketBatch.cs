using System.Runtime.CompilerServices;

namespace Isthmus.DataPlane.Pipeline;

/// <summary>
/// A vector of up to <see cref="MaxSize"/> packets that runs through every stage together
/// (VPP's frame). Ports append on receive; the worker runs the pipeline; the batch is cleared.
/// </summary>
public sealed class PacketBatch
{
    public const int MaxSize = 256;

    private readonly PacketMeta[] _packets = new PacketMeta[MaxSize];

    public int Count { get; private set; }

    public int Free => MaxSize - Count;

    public bool IsFull => Count == MaxSize;

    /// <summary>
    /// How many of the packets a shortcut stage forwarded completely (the established-flow fast path:
    /// rewritten, egress set, <see cref="PacketFlags.FastPath"/>), so that only encap is left for them.
    /// When every packet is finished the runner skips the stages that have nothing to do for such
    /// packets (<see cref="PipelineStage.SkipsFinished"/>).
    /// </summary>
    public int Finished { get; set; }

    /// <summary>
    /// How many packets the last stage (encap) found <see cref="Disposition.Consumed"/> when its walk ended: queued
    /// for transmission, or taken by a stage before it (a held neighbor packet, a gateway reply). When every packet
    /// is consumed the runner has nothing to settle (no drop to count, no buffer to return) and skips the walk.
    /// </summary>
    public int Consumed { get; set; }

    /// <summary>The live packets, by reference.</summary>
    public Span<PacketMeta> Packets => _packets.AsSpan(0, Count);

    public ref PacketMeta this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _packets[index];
    }

    /// <summary>Appends a packet that a port just received into <paramref name="buffer"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref PacketMeta Add(int buffer, int offset, int length, ushort ingressPort)
    {
        ref var m = ref _packets[Count++];
        m = default;
        m.Buffer = buffer;
        m.Offset = offset;
        m.Length = length;
        m.IngressPort = ingressPort;
        m.EgressSegment = -1;
        m.Flow = -1;
        return ref m;
    }

    public void Clear()
    {
        Count = 0;
        Finished = 0;
        Consumed = 0;
    }
}
