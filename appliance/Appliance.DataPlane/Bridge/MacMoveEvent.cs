using System.Collections.Concurrent;

namespace Isthmus.DataPlane.Bridge;

/// <summary>
/// A known MAC was seen at a new location (segment or VTEP). The mobility feature consumes these
/// to detect workload moves (RFC 7432 §15 style). <see cref="Damped"/> marks a move that tripped
/// the flap detector instead of being accepted.
/// </summary>
public readonly record struct MacMoveEvent(
    string Domain,
    ulong Mac,
    int FromSegment,
    uint FromVtep,
    int ToSegment,
    uint ToVtep,
    long Timestamp,
    bool Damped);

/// <summary>
/// Where workers post MAC moves for the control plane. Bounded: when nobody reads, the oldest
/// events are discarded and counted, so a flapping loop cannot grow memory.
/// </summary>
public sealed class MacMoveFeed
{
    public const int Capacity = 4096;

    private readonly ConcurrentQueue<MacMoveEvent> _queue = new();
    private long _discarded;

    public long Discarded => Volatile.Read(ref _discarded);

    public void Post(in MacMoveEvent move)
    {
        _queue.Enqueue(move);
        if (_queue.Count > Capacity && _queue.TryDequeue(out _))
        {
            Interlocked.Increment(ref _discarded);
        }
    }

    public bool TryTake(out MacMoveEvent move) => _queue.TryDequeue(out move);
}
