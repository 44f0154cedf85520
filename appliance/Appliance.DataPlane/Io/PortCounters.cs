namespace Isthmus.DataPlane.Io;

/// <summary>
/// Per-port counters. Written only by the owning worker thread; read by anyone (a torn 64-bit read
/// cannot happen on x64, and a slightly stale value is fine for monitoring).
/// </summary>
public sealed class PortCounters
{
    public long RxPackets;
    public long RxBytes;
    public long TxPackets;
    public long TxBytes;

    /// <summary>Frames that could not be received because the pool was empty.</summary>
    public long RxNoBuffer;

    /// <summary>Frames larger than a buffer slot (truncated by the kernel).</summary>
    public long RxTruncated;

    /// <summary>VXLAN over AF_XDP: underlay frames with a bad IPv4/UDP length or checksum, dropped.</summary>
    public long RxMalformed;

    /// <summary>GSO super-frames (PACKET_VNET_HDR) cut into wire-sized segments.</summary>
    public long RxGsoSegmented;

    /// <summary>Segments those super-frames became (each counted in <see cref="RxPackets"/>).</summary>
    public long RxGsoSegments;

    /// <summary>
    /// GSO super-frames (or their remaining segments) lost: an offload type that cannot be cut (legacy
    /// UFO, one the kernel cannot describe), unparsable headers, a frame beyond 64 KB, or no buffers.
    /// </summary>
    public long RxGsoDropped;

    /// <summary>Partial checksums (virtio NEEDS_CSUM) the port finished at csum_start/csum_offset.</summary>
    public long RxChecksumsFinished;

    /// <summary>
    /// Frames the kernel dropped before the port could read them (the socket's receive queue was
    /// full: the worker fell behind). Read from the socket on the worker's heartbeat.
    /// </summary>
    public long RxKernelDrops;

    /// <summary>VXLAN: datagrams sent as raw frames with pre-built outer headers (also in <see cref="TxPackets"/>).</summary>
    public long TxRaw;

    /// <summary>
    /// VXLAN with raw transmit on: datagrams that went through the UDP socket instead (next hop not resolved
    /// yet, a neighbor to re-confirm, a local route, too long for the underlay MTU).
    /// </summary>
    public long TxRawFallback;

    /// <summary>AF_XDP transmit: frames dropped because the TX ring was full or every TX chunk was in flight.</summary>
    public long TxRingFull;

    /// <summary>
    /// Frames the kernel refused to send (ENOBUFS, EAGAIN, and so on). AF_XDP: also each frame a kick reports the device
    /// dropped (EBUSY: a veth whose peer is down or whose backlog is full); those were counted in <see cref="TxPackets"/>
    /// when they went on the ring.
    /// </summary>
    public long TxErrors;

    /// <summary>VXLAN with UDP GSO transmit: sendmsg trains that left (their datagrams are in <see cref="TxPackets"/>).</summary>
    public long TxGsoTrains;

    /// <summary>
    /// VXLAN with UDP GSO transmit: datagrams dropped per <see cref="VxlanTransmitDrop"/> reason (also in
    /// <see cref="TxErrors"/>).
    /// </summary>
    public readonly long[] TxDropped = new long[Enum.GetValues<VxlanTransmitDrop>().Length];

    /// <summary>System calls made, to show what batching buys.</summary>
    public long RxSyscalls;
    public long TxSyscalls;
}
