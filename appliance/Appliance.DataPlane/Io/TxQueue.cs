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
    /// Queues a frame with every field given (no zeroing first): the encap stage's unicast path. The caller
    /// checked <see cref="IsFull"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int buffer, int offset, int length, uint destinationIp, ushort destinationPort, ushort sourcePort)
    {
        // Unchecked: the caller saw !IsFull, so Count < Capacity, the array's length.
        Debug.Assert(Count < Capacity);
        ref var f = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_frames), Count++);
        f.Buffer = buffer;
        f.Offset = offset;
        f.Length = length;
        f.DestinationIp = destinationIp;
        f.DestinationPort = destinationPort;
        f.SourcePort = sourcePort;
    }

    public void Clear() => Count = 0;
}
