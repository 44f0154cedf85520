using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Decap;

public enum DecapDrop : ushort
{
    /// <summary>Shorter than an Ethernet header once outer headers are removed.</summary>
    Truncated,

    /// <summary>Larger than a packet buffer: the port truncated it.</summary>
    Oversized,

    /// <summary>A UDP datagram on the VXLAN port shorter than the 8-byte VXLAN header.</summary>
    VxlanTooShort,

    /// <summary>The VXLAN I flag is clear (RFC 7348 §5: the VNI is not valid).</summary>
    VxlanBadFlags,

    /// <summary>VXLAN from an address that is no configured VTEP on this port (tenant isolation).</summary>
    UnknownVtep,

    /// <summary>A VNI that no segment on this port carries.</summary>
    UnknownVni,

    /// <summary>A known VTEP sending on a VNI it is not a peer of.</summary>
    VtepNotInVni,

    /// <summary>An untagged frame on a trunk (no native VLAN is configured).</summary>
    UntaggedOnTrunk,

    /// <summary>A VLAN the trunk does not carry.</summary>
    UnknownVlan,

    /// <summary>A frame with a VLAN id on an access port.</summary>
    TaggedOnAccess,

    /// <summary>A port that is no segment of any bridge domain.</summary>
    PortNotInDomain,

    /// <summary>A multicast or all-zero source MAC (IEEE 802.1D: never learned or forwarded).</summary>
    InvalidSourceMac,
}

/// <summary>
/// The first stage: takes each frame off its port's encapsulation (VXLAN header, 802.1Q tag from
/// aux data or inline), finds its segment and bridge domain, finishes checksums the kernel left
/// partial, and arms the trace for matching frames. See README.md.
/// </summary>
public sealed class DecapStage() : PipelineStage("decap", typeof(DecapDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var snapshot = context.Snapshot;
        var pool = context.Pool;
        var tracing = context.Tracer.Armed;
        var packets = batch.Packets;
        var lastTunnel = new TunnelCache(0, 0, -1);

        // Per-batch caches for trains of frames: the last ingress port's binding, the last segment's domain.
        var lastPort = -1;
        PortBinding port = null!;
        var lastSegment = -1;
        ushort domain = 0;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue)
            {
                continue;
            }

            if ((p.Flags & PacketFlags.Truncated) != 0)
            {
                Drop(ref p, (ushort)DecapDrop.Oversized);
                continue;
            }

            if (p.IngressPort != lastPort)
            {
                lastPort = p.IngressPort;
                port = snapshot.Ports[lastPort];
            }

            var slot = pool.Slot(p.Buffer);
            var segment = port.Kind switch
            {
                PortKind.Vxlan => DecapVxlan(ref p, slot, port, snapshot.Segments, ref lastTunnel),
                PortKind.Trunk => DecapTrunk(ref p, slot, port.VlanSegments),
                _ => DecapAccess(ref p, slot, port.AccessSegment),
            };
            if (segment < 0)
            {
                continue;
            }

            if (p.Length < EthernetHeader.Length)
            {
                Drop(ref p, (ushort)DecapDrop.Truncated);
                continue;
            }

            // One slice for the frame's bounds; the 14 bytes checked above are read unchecked.
            var frame = slot.Slice(p.Offset, p.Length);
            ref var start = ref MemoryMarshal.GetReference(frame);
            var sourceHigh = UncheckedBytes.ReadUInt32BigEndian(ref start, 6);
            if ((sourceHigh & 0x0100_0000) != 0 || (sourceHigh | UncheckedBytes.ReadUInt16BigEndian(ref start, 10)) == 0)
            {
                // Multicast or all-zero source.
                Drop(ref p, (ushort)DecapDrop.InvalidSourceMac);
                continue;
            }

            if ((p.Flags & PacketFlags.ChecksumNotReady) != 0)
            {
                // The sender's kernel offloaded the L4 checksum and nobody filled it in (veth):
                // a forwarder must, or the receiver drops TCP and UDP (FIELD-NOTES: checksum trap).
                L4Checksum.TryComplete(frame);
                p.Flags &= ~PacketFlags.ChecksumNotReady;
            }

            p.IngressSegment = segment;
            if (segment != lastSegment)
            {
                lastSegment = segment;
                domain = (ushort)snapshot.Segments[segment].Domain;
            }

            p.Domain = domain;
            if (tracing || (p.Flags & PacketFlags.Traced) != 0)
            {
                Trace(ref p, context, port, frame, tracing);
            }
        }
    }

    /// <summary>Arms the trace for a frame matching the filter and records decap's verdict for traced ones.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Trace(ref PacketMeta p, WorkerContext context, PortBinding port, ReadOnlySpan<byte> frame, bool tracing)
    {
        var tracer = context.Tracer;
        if (tracing && (p.Flags & PacketFlags.Traced) == 0 && Matches(tracer.Filter, port.Name, frame))
        {
            p.TraceId = tracer.Claim();
            if (p.TraceId != 0)
            {
                p.Flags |= PacketFlags.Traced;
            }
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            var snapshot = context.Snapshot;
            var seg = snapshot.Segments[p.IngressSegment];
            tracer.Record(p.TraceId, Name, "continue",
                $"port {port.Name} → segment {seg.Name}, domain {snapshot.Domains[seg.Domain].Name}, {MacAddress.Read(frame[6..])} → {MacAddress.Read(frame)}, {p.Length} bytes");
        }
    }

    /// <summary>The last (VTEP, VNI) validated in this batch: consecutive frames of a tunnel skip the lookups.</summary>
    private readonly record struct TunnelCache(uint Vtep, uint Vni, int Segment);

    private int DecapVxlan(ref PacketMeta p, Span<byte> slot, PortBinding port, Segment[] segments, ref TunnelCache last)
    {
        // Tenant isolation first: a stranger learns nothing from our answers, not even whether the VNI exists.
        var cached = last.Segment >= 0 && last.Vtep == p.RemoteVtep;
        if (!cached && !port.KnownVteps.Contains(p.RemoteVtep))
        {
            Drop(ref p, (ushort)DecapDrop.UnknownVtep);
            return -1;
        }

        var error = VxlanHeader.TryParse(slot.Slice(p.Offset, p.Length), out var vxlan);
        if (error != ParseError.None)
        {
            Drop(ref p, (ushort)(error == ParseError.BadVxlanFlags ? DecapDrop.VxlanBadFlags : DecapDrop.VxlanTooShort));
            return -1;
        }

        var vni = vxlan.Vni;
        int segment;
        if (cached && last.Vni == vni)
        {
            segment = last.Segment;
        }
        else
        {
            if (!port.VniSegments.TryGetValue(vni, out segment))
            {
                Drop(ref p, (ushort)DecapDrop.UnknownVni);
                return -1;
            }

            if (Array.IndexOf(segments[segment].Vteps, p.RemoteVtep) < 0)
            {
                Drop(ref p, (ushort)DecapDrop.VtepNotInVni);
                return -1;
            }

            last = new TunnelCache(p.RemoteVtep, vni, segment);
        }

        p.Offset += VxlanHeader.Length;
        p.Length -= VxlanHeader.Length;
        return segment;
    }

    private int DecapTrunk(ref PacketMeta p, Span<byte> slot, int[] vlanSegments)
    {
        int vlan;
        if ((p.Flags & PacketFlags.VlanFromAux) != 0)
        {
            vlan = p.VlanTci & 0x0FFF;
        }
        else if (p.Length >= EthernetHeader.Length + VlanTag.Length && IsTagged(slot.Slice(p.Offset, p.Length)))
        {
            var frame = slot.Slice(p.Offset, p.Length);
            vlan = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) & 0x0FFF;
            VlanTags.TryStripOuter(slot, p.Offset, p.Length, out p.Offset, out _);
            p.Length -= VlanTag.Length;
        }
        else
        {
            Drop(ref p, (ushort)DecapDrop.UntaggedOnTrunk);
            return -1;
        }

        var segment = vlan < vlanSegments.Length ? vlanSegments[vlan] : -1;
        if (segment < 0)
        {
            Drop(ref p, (ushort)DecapDrop.UnknownVlan);
        }

        return segment;
    }

    private int DecapAccess(ref PacketMeta p, Span<byte> slot, int segment)
    {
        // A priority tag (VID 0, IEEE 802.1Q §6.9) is allowed on an access port; a real VLAN is not.
        var auxVlan = (p.Flags & PacketFlags.VlanFromAux) != 0 ? p.VlanTci & 0x0FFF : 0;
        var inlineVlan = p.Length >= EthernetHeader.Length + VlanTag.Length && IsTagged(slot.Slice(p.Offset, p.Length))
            ? BinaryPrimitives.ReadUInt16BigEndian(slot[(p.Offset + 14)..]) & 0x0FFF
            : 0;
        if (auxVlan != 0 || inlineVlan != 0)
        {
            Drop(ref p, (ushort)DecapDrop.TaggedOnAccess);
            return -1;
        }

        if (segment < 0)
        {
            Drop(ref p, (ushort)DecapDrop.PortNotInDomain);
        }

        return segment;
    }

    private static bool IsTagged(ReadOnlySpan<byte> frame)
    {
        var type = BinaryPrimitives.ReadUInt16BigEndian(frame[EthernetHeader.EtherTypeOffset..]);
        return type is EtherType.Vlan or EtherType.QinQ;
    }

    private static bool Matches(TraceFilter? filter, string port, ReadOnlySpan<byte> frame)
    {
        if (filter is null)
        {
            return false;
        }

        return (filter.IngressPort is null || filter.IngressPort == port)
            && (filter.DestinationMac is not { } dst || dst == MacAddress.Read(frame))
            && (filter.SourceMac is not { } src || src == MacAddress.Read(frame[6..]))
            && (filter.EtherType is not { } type || type == BinaryPrimitives.ReadUInt16BigEndian(frame[12..]));
    }
}
