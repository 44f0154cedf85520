using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Pipeline;

/// <summary>
/// A pool of fixed-size packet buffers carved out of one pinned allocation.
/// Ownership is explicit: a port rents a buffer on receive, and whoever ends the packet's life
/// (transmit or drop) returns it. There is no reference counting; a flood copies.
/// </summary>
/// <remarks>
/// Threading: a pool belongs to one worker; it takes no locks. Returning a buffer twice, or one
/// that was never rented, is a bug and throws.
/// </remarks>
public sealed unsafe class PacketPool
{
    /// <summary>Bytes in front of a received frame, so encap can prepend tags and headers in place.</summary>
    public const int Headroom = 128;

    /// <summary>Bytes per buffer slot: headroom plus a 1518-byte frame, two tags and slack, cache-line aligned.</summary>
    public const int SlotSize = 2048 + Headroom;

    /// <summary>Largest frame a slot can hold after the headroom.</summary>
    public const int MaxFrame = SlotSize - Headroom;

    private readonly byte[] _memory;
    private readonly byte* _base;
    private readonly int[] _free;
    private readonly bool[] _rented;
    private int _freeCount;

    public PacketPool(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _memory = GC.AllocateUninitializedArray<byte>(capacity * SlotSize, pinned: true);
        _base = (byte*)Unsafe.AsPointer(ref _memory[0]);
        _free = new int[capacity];
        _rented = new bool[capacity];
        for (var i = 0; i < capacity; i++)
        {
            _free[i] = capacity - 1 - i;
        }

        _freeCount = capacity;
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>Buffers currently rented. A test pool must be back at zero when the test ends.</summary>
    public int Outstanding => Capacity - _freeCount;

    public int Available => _freeCount;

    /// <summary>Rents a buffer, or returns -1 when the pool is empty (the caller counts a drop).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Rent()
    {
        if (_freeCount == 0)
        {
            return -1;
        }

        // Unchecked: 0 < _freeCount <= Capacity (Return refuses anything not rented), and the free list
        // holds only indexes below Capacity; both arrays have Capacity entries.
        var buffer = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_free), --_freeCount);
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_rented), buffer) = true;
        return buffer;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Return(int buffer)
    {
        if ((uint)buffer >= (uint)Capacity)
        {
            ThrowBadReturn(buffer);
        }

        // Unchecked from here: buffer < Capacity, and a rented buffer is off the free list, so _freeCount < Capacity.
        ref var rented = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_rented), buffer);
        if (!rented)
        {
            ThrowBadReturn(buffer);
        }

        rented = false;
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_free), _freeCount++) = buffer;
    }

    /// <summary>The whole slot of a buffer, headroom included.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Slot(int buffer) => new(_base + ((nint)buffer * SlotSize), SlotSize);

    /// <summary>The bytes of a frame that starts at <paramref name="offset"/> within its slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Frame(int buffer, int offset, int length) => new(_base + ((nint)buffer * SlotSize) + offset, length);

    /// <summary>Start of slot 0: slot n starts <see cref="SlotSize"/> × n bytes further (a loop keeps it in a register).</summary>
    public byte* Slots => _base;

    /// <summary>Start of a slot, for scatter/gather system calls.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Pointer(int buffer) => _base + ((nint)buffer * SlotSize);

    private static void ThrowBadReturn(int buffer) =>
        throw new InvalidOperationException($"Packet buffer {buffer} returned twice or never rented.");
}
