using System.Collections.Concurrent;

namespace Isthmus.DataPlane.Bridge;

/// <summary>What a worker saw that may mean a workload moved (issue 6, move detection).</summary>
public enum MobilitySignalKind : byte
{
    /// <summary>A RARP request from the station's MAC: what ESXi sends for a VM right after vMotion.</summary>
    Rarp,

    /// <summary>A gratuitous ARP (sender IP = target IP) or an unsolicited neighbor advertisement.</summary>
    Garp,

    /// <summary>A known MAC arrived from another segment or VTEP (the bridge's move detection).</summary>
    MacMove,

    /// <summary>An ARP / ND exchange bound an address to a MAC for the first time, or to another MAC.</summary>
    Binding,

    /// <summary>A DHCPACK bound its address to the client's MAC (<see cref="DhcpSnooping"/>); located where that MAC was learned.</summary>
    DhcpBinding,
}

/// <summary>
/// One mobility signal: where (domain, ingress segment, VTEP for VXLAN segments), which MAC, and for
/// <see cref="MobilitySignalKind.Garp"/> and <see cref="MobilitySignalKind.Binding"/> the address
/// (IPv4 in <see cref="AddressLo"/>, or IPv6). Indexes refer to the snapshot the worker ran.
/// </summary>
public readonly record struct MobilitySignal(
    MobilitySignalKind Kind,
    int Domain,
    int Segment,
    uint Vtep,
    ulong Mac,
    bool Ipv6,
    ulong AddressHi,
    ulong AddressLo,
    long Timestamp)
{
    public bool HasAddress => Ipv6 || AddressLo != 0;

    /// <summary>
    /// Frames the worker already sent in reaction (<see cref="Gateway.ArrivalGarp"/>: the first GARP of the
    /// burst for a RARP on a local segment), so the control plane starts the burst after that send.
    /// </summary>
    public int GarpFrames { get; init; }
}

/// <summary>
/// Where workers post mobility signals for the control plane. Bounded like <see cref="MacMoveFeed"/>
/// (the oldest are discarded and counted). Signals are rare (RARP, GARP, new bindings and moves, not
/// every frame), so they wake the consumer: the worker calls <see cref="WakeIfPosted"/> after the batch's
/// frames were sent (the consumer may run at a higher priority than the worker and must not delay them);
/// at most one wake-up is pending at a time, and the consumer clears it before draining, so a burst of
/// signals costs one wake-up.
/// </summary>
public sealed class MobilityFeed : IDisposable
{
    public const int Capacity = 16384;

    private readonly ConcurrentQueue<MobilitySignal> _queue = new();
    private readonly SemaphoreSlim _available = new(0, 1);
    private long _discarded;
    private long _posted;
    private int _signalled;
    private int _unannounced;

    public long Discarded => Volatile.Read(ref _discarded);

    public long Posted => Volatile.Read(ref _posted);

    public void Post(in MobilitySignal signal)
    {
        _queue.Enqueue(signal);
        _posted++;
        if (_queue.Count > Capacity && _queue.TryDequeue(out _))
        {
            Interlocked.Increment(ref _discarded);
        }

        Volatile.Write(ref _unannounced, 1);
    }

    /// <summary>
    /// Worker, after each batch: wakes the consumer if something was posted since the last call (one
    /// volatile read when nothing was). Also usable by any other poster right after posting.
    /// </summary>
    public void WakeIfPosted()
    {
        if (Volatile.Read(ref _unannounced) == 0 || Interlocked.Exchange(ref _unannounced, 0) == 0)
        {
            return;
        }

        if (Interlocked.Exchange(ref _signalled, 1) == 0)
        {
            if (Wake is { } wake)
            {
                wake();
            }
            else
            {
                _available.Release();
            }
        }
    }

    /// <summary>
    /// Called (on the posting worker's thread) instead of releasing <see cref="WaitAsync"/> when set: the
    /// consumer's own wake-up, so a signal reaches it with one thread hop. It must only post, never block.
    /// After a wake the consumer calls <see cref="Rearm"/> before draining.
    /// </summary>
    public Action? Wake { get; set; }

    /// <summary>Consumer: the next post wakes again (call before draining with <see cref="TryTake"/>).</summary>
    public void Rearm() => Volatile.Write(ref _signalled, 0);

    /// <summary>Consumer without <see cref="Wake"/>: waits until something was posted since the last wait.</summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        await _available.WaitAsync(cancellationToken).ConfigureAwait(false);
        Rearm();
    }

    public bool TryTake(out MobilitySignal signal) => _queue.TryDequeue(out signal);

    public void Dispose() => _available.Dispose();
}
