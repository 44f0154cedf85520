using System.Runtime.CompilerServices;
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

    public void Clear() => Count = 0;
}
