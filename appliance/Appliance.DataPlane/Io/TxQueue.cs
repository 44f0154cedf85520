using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

/// <summary>Frames waiting to leave on one port. Flushed by the worker at the end of each batch.</summary>
public sealed class TxQueue
{
    /// <summary>A batch can flood each packet to several segments and peers.</summary>
    public const int Capacity = PacketBatch.MaxSize * 4;

    private readonly TxFrame[] _frames = new TxFrame[Capacity];

    public int Count { get; private set; }

    public bool IsFull => Count == Capacity;

    public ReadOnlySpan<TxFrame> Frames => _frames.AsSpan(0, Count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref TxFrame Add()
    {
        ref var f = ref _frames[Count++];
        f = default;
        return ref f;
    }

    /// <summary>
    /// The free tail of the queue, for a caller that fills frames in order (every field) and then commits how many
    /// with <see cref="Advance"/>: the encap stage's runs of unicast frames.
    /// </summary>
    public Span<TxFrame> Unused => _frames.AsSpan(Count);

    /// <summary>Commits the first <paramref name="count"/> frames of <see cref="Unused"/>.</summary>
    public void Advance(int count)
    {
        Debug.Assert(count >= 0 && Count + count <= Capacity);
        Count += count;
    }

    public void Clear() => Count = 0;
}
