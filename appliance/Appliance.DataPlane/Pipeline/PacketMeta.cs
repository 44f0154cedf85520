using System.Runtime.InteropServices;

namespace Isthmus.DataPlane.Pipeline;

/// <summary>What happens to a packet when the current stage is done with it.</summary>
public enum Disposition : byte
{
    /// <summary>Go on to the next stage.</summary>
    Continue = 0,

    /// <summary>Dropped: <see cref="PacketMeta.DropStage"/> and <see cref="PacketMeta.DropCode"/> say why.</summary>
    Drop,

    /// <summary>Handed to the control plane (ARP for the gateway, BGP, and so on).</summary>
    Punt,

    /// <summary>Queued for transmission by the encap stage; the pipeline no longer owns the buffer.</summary>
    Consumed,
}

[Flags]
public enum PacketFlags : ushort
{
    None = 0,

    /// <summary>The ingress port reported an 802.1Q tag out of band (PACKET_AUXDATA): see <see cref="PacketMeta.VlanTci"/>.</summary>
    VlanFromAux = 1 << 0,

    /// <summary>The kernel left the L4 checksum partial (TP_STATUS_CSUMNOTREADY); it must be finished before the frame leaves.</summary>
    ChecksumNotReady = 1 << 1,

    /// <summary>The packet matched the trace filter (or was injected): every stage records its verdict.</summary>
    Traced = 1 << 2,

    /// <summary>The bridge found no unicast destination: the encap stage floods it.</summary>
    Flood = 1 << 3,

    /// <summary>The destination MAC is broadcast or multicast (counted as BUM for storm control).</summary>
    Bum = 1 << 4,

    /// <summary>The frame was truncated by the port (larger than a slot).</summary>
    Truncated = 1 << 5,

    /// <summary>The destination MAC is the domain's gateway MAC: the frame leaves L2 for the L3 stages.</summary>
    ToGateway = 1 << 6,

    /// <summary>The L3 fields (<see cref="PacketMeta.L3Offset"/> and on) are parsed and valid.</summary>
    L3Parsed = 1 << 7,

    /// <summary>The packet is IPv6 (else IPv4), valid with <see cref="L3Parsed"/>.</summary>
    Ipv6 = 1 << 8,

    /// <summary>Routed: the route stage chose <see cref="PacketMeta.Domain"/> as the egress domain and rewrote the MACs.</summary>
    Routed = 1 << 9,

    /// <summary>Originated by the appliance (ARP/ND replies, ICMP errors, resets): no split horizon, no ingress segment.</summary>
    Local = 1 << 10,

    /// <summary>Conntrack found no flow: the firewall classifies it and NAT commits a new flow.</summary>
    NewFlow = 1 << 11,

    /// <summary>The packet belongs to a known flow (in either direction).</summary>
    KnownFlow = 1 << 12,

    /// <summary>
    /// Forwarded by conntrack from its session's cached result (Firewall/FlowCache.cs): rewritten and
    /// <see cref="Routed"/> already, so route, firewall, nat and neighbor leave it alone.
    /// </summary>
    FastPath = 1 << 13,
}

/// <summary>
/// Per-packet metadata that travels with a buffer through the pipeline. It is a plain struct in an
/// array owned by the batch: stages read and write it by reference.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct PacketMeta
{
    /// <summary>Buffer index in the worker's <see cref="PacketPool"/>.</summary>
    public int Buffer;

    /// <summary>Where the current frame starts within the buffer's slot (moves as headers are added or removed).</summary>
    public int Offset;

    /// <summary>Length of the current frame.</summary>
    public int Length;

    /// <summary>Index of the ingress port in the worker's port table.</summary>
    public ushort IngressPort;

    public PacketFlags Flags;

    public Disposition Disposition;

    /// <summary>Index of the stage that dropped the packet.</summary>
    public byte DropStage;

    /// <summary>The stage's drop reason, as its enum's numeric value.</summary>
    public ushort DropCode;

    /// <summary>802.1Q TCI delivered out of band by the port (valid when <see cref="PacketFlags.VlanFromAux"/>).</summary>
    public ushort VlanTci;

    /// <summary>
    /// TPID of the out-of-band tag (valid with <see cref="PacketFlags.VlanFromAux"/>): 0x8100, or 0x88a8 when
    /// the kernel moved a QinQ S-tag to aux data (the inner C-tag then stays inline).
    /// </summary>
    public ushort VlanTpid;

    /// <summary>For VXLAN ingress: the remote VTEP's IPv4 address (network order folded to a host-order uint).</summary>
    public uint RemoteVtep;

    /// <summary>For VXLAN ingress: the remote VTEP's UDP source port.</summary>
    public ushort RemotePort;

    /// <summary>Bridge domain index in the current snapshot, set by decap.</summary>
    public ushort Domain;

    /// <summary>Ingress segment index in the current snapshot, set by decap.</summary>
    public int IngressSegment;

    /// <summary>Unicast egress segment chosen by the bridge (valid unless <see cref="PacketFlags.Flood"/>), or -1.</summary>
    public int EgressSegment;

    /// <summary>For unicast to a VXLAN segment: the VTEP the destination MAC was learned behind (0 = unknown, flood to the VNI's peers).</summary>
    public uint EgressVtep;

    /// <summary>Trace id when traced.</summary>
    public int TraceId;

    // ---- L3 (valid with PacketFlags.L3Parsed; offsets are relative to Offset, i.e. within the frame) ----

    /// <summary>Start of the IPv4/IPv6 header within the frame.</summary>
    public ushort L3Offset;

    /// <summary>Start of the transport header (after IPv4 options / IPv6 extension headers), 0 when absent (a later fragment).</summary>
    public ushort L4Offset;

    /// <summary>IP protocol / final IPv6 next header.</summary>
    public byte IpProtocol;

    /// <summary>Ingress bridge domain, kept when routing changes <see cref="Domain"/> to the egress domain.</summary>
    public ushort IngressDomain;

    /// <summary>Conntrack: index of the flow entry in the worker's table, or -1.</summary>
    public int Flow;

    /// <summary>Conntrack: 0 = original direction, 1 = reply direction.</summary>
    public byte FlowDirection;
}
