using Isthmus.DataPlane.Pipeline;

namespace Isthmus.DataPlane.Io;

public enum PortKind : byte
{
    /// <summary>UDP socket on the underlay; frames carry a VXLAN header (RFC 7348).</summary>
    Vxlan,

    /// <summary>802.1Q trunk: tags arrive in PACKET_AUXDATA or inline; transmit writes them inline.</summary>
    Trunk,

    /// <summary>Untagged access port: one VLAN.</summary>
    Access,
}

/// <summary>One frame waiting for transmission on a port.</summary>
public struct TxFrame
{
    public int Buffer;
    public int Offset;
    public int Length;

    /// <summary>VXLAN only: destination VTEP IPv4 address (host order) and UDP port.</summary>
    public uint DestinationIp;
    public ushort DestinationPort;

    /// <summary>VXLAN only: UDP source port carrying flow entropy (RFC 7348 §5), 0 = the socket's own.</summary>
    public ushort SourcePort;
}

/// <summary>
/// A port moves frames between the wire and the worker's pool. It never parses: decap and encap do.
/// </summary>
/// <remarks>
/// Threading: a port is driven by exactly one worker thread. <see cref="Receive"/> and
/// <see cref="Transmit"/> never block; the worker waits on <see cref="PollHandle"/> when idle.
/// </remarks>
public interface IPacketPort : IDisposable
{
    string Name { get; }

    PortKind Kind { get; }

    /// <summary>File descriptor to poll for readability, or -1 (in-memory ports).</summary>
    int PollHandle { get; }

    PortCounters Counters { get; }

    /// <summary>
    /// Frames the port already holds (a GSO super-frame's remaining segments, a test queue) that the
    /// next <see cref="Receive"/> delivers even though <see cref="PollHandle"/> may not be readable.
    /// </summary>
    bool HasPendingFrames { get; }

    /// <summary>
    /// The port's receive path is a ring in user memory (an AF_XDP RX ring): <see cref="HasPendingFrames"/> sees its
    /// frames without a system call. While it is awake the worker peeks such rings every turn and asks the kernel
    /// about <see cref="PollHandle"/> only now and then (for what else the handle reports: the VXLAN port's UDP
    /// socket).
    /// </summary>
    bool ReceiveRingVisible => false;

    /// <summary>Refreshes counters the kernel keeps for the port (<see cref="PortCounters.RxKernelDrops"/>); called once a second.</summary>
    void RefreshKernelCounters()
    {
    }

    /// <summary>
    /// Receives up to <see cref="PacketBatch.Free"/> frames into buffers rented from
    /// <paramref name="pool"/>, appends them to <paramref name="batch"/> at offset
    /// <see cref="PacketPool.Headroom"/>, and returns how many arrived (0 when nothing is waiting).
    /// </summary>
    int Receive(PacketBatch batch, PacketPool pool, ushort portIndex);

    /// <summary>
    /// Sends every queued frame and returns all their buffers to <paramref name="pool"/>, sent or not
    /// (a failed send is counted, never retried). Leaves <paramref name="queue"/> empty.
    /// </summary>
    void Transmit(TxQueue queue, PacketPool pool);
}
