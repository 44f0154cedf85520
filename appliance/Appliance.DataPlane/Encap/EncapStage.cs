using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Encap;

public enum EncapDrop : ushort
{
    /// <summary>The frame's L3 payload is bigger than the egress segment's MTU.</summary>
    MtuExceeded,

    /// <summary>A flood found no segment to go to (a one-segment domain, or split horizon).</summary>
    NoEgress,

    /// <summary>Never from a VXLAN segment to a VXLAN segment: the VTEPs reach each other directly.</summary>
    SplitHorizon,

    /// <summary>No buffer left in the pool for a flood copy.</summary>
    NoBuffer,

    /// <summary>The egress port's transmit queue is full for this batch.</summary>
    TxQueueFull,
}

/// <summary>
/// The last stage: writes each frame's egress encapsulation (802.1Q tag inline on a trunk, a VXLAN
/// header toward each VTEP) and queues it on its port. Floods replicate head-end: one copy per
/// segment and per VTEP peer, with split horizon. See README.md.
/// </summary>
public sealed class EncapStage() : PipelineStage("encap", typeof(EncapDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var snapshot = context.Snapshot;
        var segments = snapshot.Segments;
        var packets = batch.Packets;

        // Packets consumed when the walk ends (the runner skips its settle walk when that is all of them).
        var consumed = 0;
        var i = 0;
        while (i < packets.Length)
        {
            ref var p = ref packets[i];
            if (p.Disposition == Disposition.Continue && (p.Flags & (PacketFlags.Flood | PacketFlags.Traced)) == 0
                && (uint)p.EgressSegment < (uint)segments.Length)
            {
                // A run of unicast frames to this frame's segment; it ends at the first frame it cannot send as they do.
                var segment = segments[p.EgressSegment];
                var end = segment.Kind switch
                {
                    PortKind.Vxlan => EmitVxlanRun(packets, i, segment, segments, context),
                    PortKind.Trunk => EmitTrunkRun(packets, i, segment, context),
                    _ => EmitAccessRun(packets, i, segment, context),
                };
                if (end > i)
                {
                    consumed += end - i;
                    i = end;
                    continue;
                }
            }

            if (p.Disposition == Disposition.Continue)
            {
                ProcessOne(ref p, context, snapshot);
            }

            consumed += p.Disposition == Disposition.Consumed ? 1 : 0;
            i++;
        }

        batch.Consumed = consumed;
    }

    /// <summary>
    /// Queues the run of frames from <paramref name="start"/> that go to the VXLAN <paramref name="segment"/> as
    /// unicast, each with the segment's VXLAN header (one 8-byte store) toward its learned VTEP, and returns the
    /// index of the first frame it left (= <paramref name="start"/> when it sent none). It stops at a frame that
    /// is not a plain unicast to this segment (dropped or consumed earlier, flooded, traced, another segment), has
    /// no VTEP (a static MAC on the VNI: replicated by <see cref="ProcessOne"/>), exceeds the MTU, would be sent
    /// back from a VXLAN segment (split horizon), or finds the queue full. The segment's fields and the queue's
    /// free tail are locals for the run, so the loop keeps them in registers.
    /// </summary>
    private static unsafe int EmitVxlanRun(Span<PacketMeta> packets, int start, Segment segment, Segment[] segments, WorkerContext context)
    {
        var queue = context.TxQueues[segment.Port];
        var free = queue.Unused;
        var slots = context.Pool.Slots;
        var egress = segment.Index;
        var mtu = segment.Mtu;
        var vtepPort = segment.VtepUdpPort;
        var word = HeaderWord(segment.Vni);
        var ingress = -1;
        var ingressIsVxlan = false;
        var queued = 0;
        var i = start;
        for (; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            var flags = p.Flags;
            var length = p.Length;
            if (p.Disposition != Disposition.Continue || (flags & (PacketFlags.Flood | PacketFlags.Traced)) != 0
                || p.EgressSegment != egress || p.EgressVtep == 0 || length - EthernetHeader.Length > mtu
                || (uint)queued >= (uint)free.Length)
            {
                break;
            }

            if ((flags & (PacketFlags.Routed | PacketFlags.Local)) == 0)
            {
                // Split horizon: a bridged frame from a VXLAN segment never goes back to one.
                if (p.IngressSegment != ingress)
                {
                    ingress = p.IngressSegment;
                    ingressIsVxlan = segments[ingress].Kind == PortKind.Vxlan;
                }

                if (ingressIsVxlan)
                {
                    break;
                }
            }

            var offset = p.Offset;
            var frame = slots + ((nint)p.Buffer * PacketPool.SlotSize) + offset;
            Unsafe.WriteUnaligned(frame - VxlanHeader.Length, word);
            ref var tx = ref free[queued++];
            tx.Buffer = p.Buffer;
            tx.Offset = offset - VxlanHeader.Length;
            tx.Length = length + VxlanHeader.Length;
            tx.DestinationIp = p.EgressVtep;
            tx.DestinationPort = vtepPort;
            tx.SourcePort = FlowEntropy(ref *frame, length);
            p.Disposition = Disposition.Consumed;
        }

        queue.Advance(queued);
        return i;
    }

    /// <summary>
    /// <see cref="EmitVxlanRun"/> for an access segment: the frames leave as they are. It stops where the VXLAN
    /// run does (but a VTEP and split horizon do not apply).
    /// </summary>
    private static int EmitAccessRun(Span<PacketMeta> packets, int start, Segment segment, WorkerContext context)
    {
        var queue = context.TxQueues[segment.Port];
        var free = queue.Unused;
        var egress = segment.Index;
        var mtu = segment.Mtu;
        var queued = 0;
        var i = start;
        for (; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.Flood | PacketFlags.Traced)) != 0
                || p.EgressSegment != egress || p.Length - EthernetHeader.Length > mtu || (uint)queued >= (uint)free.Length)
            {
                break;
            }

            ref var tx = ref free[queued++];
            tx.Buffer = p.Buffer;
            tx.Offset = p.Offset;
            tx.Length = p.Length;
            tx.DestinationIp = 0;
            tx.DestinationPort = 0;
            tx.SourcePort = 0;
            p.Disposition = Disposition.Consumed;
        }

        queue.Advance(queued);
        return i;
    }

    /// <summary>
    /// <see cref="EmitAccessRun"/> for a trunk segment: each frame gets the segment's 802.1Q tag inline; a frame
    /// the tag does not fit in front of ends the run.
    /// </summary>
    private static int EmitTrunkRun(Span<PacketMeta> packets, int start, Segment segment, WorkerContext context)
    {
        var queue = context.TxQueues[segment.Port];
        var free = queue.Unused;
        var pool = context.Pool;
        var egress = segment.Index;
        var mtu = segment.Mtu;
        var tag = VlanTag.Customer(segment.Vlan);
        var queued = 0;
        var i = start;
        for (; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.Flood | PacketFlags.Traced)) != 0
                || p.EgressSegment != egress || p.Length - EthernetHeader.Length > mtu || (uint)queued >= (uint)free.Length
                || !VlanTags.TryInsert(pool.Slot(p.Buffer), p.Offset, p.Length, tag, out var offset))
            {
                break;
            }

            ref var tx = ref free[queued++];
            tx.Buffer = p.Buffer;
            tx.Offset = offset;
            tx.Length = p.Length + VlanTag.Length;
            tx.DestinationIp = 0;
            tx.DestinationPort = 0;
            tx.SourcePort = 0;
            p.Disposition = Disposition.Consumed;
        }

        queue.Advance(queued);
        return i;
    }

    /// <summary>A segment's 8-byte VXLAN header as the word that stores it (written by <see cref="VxlanHeader.Write"/>).</summary>
    private static ulong HeaderWord(uint vni)
    {
        Span<byte> header = stackalloc byte[VxlanHeader.Length];
        VxlanHeader.Write(header, vni);
        return MemoryMarshal.Read<ulong>(header);
    }

    /// <summary>One packet the unicast path left: floods, split horizon, MTU, full queues, traced packets.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ProcessOne(ref PacketMeta p, WorkerContext context, DataPlaneSnapshot snapshot)
    {
        // Split horizon and "not back where it came from" apply to bridged frames only: a routed
        // or appliance-originated packet may leave on any segment of its (egress) domain.
        var bridged = (p.Flags & (PacketFlags.Routed | PacketFlags.Local)) == 0;
        var ingressIsVxlan = bridged && snapshot.Segments[p.IngressSegment].Kind == PortKind.Vxlan;
        if ((p.Flags & PacketFlags.Flood) == 0)
        {
            var egress = snapshot.Segments[p.EgressSegment];
            if (ingressIsVxlan && egress.Kind == PortKind.Vxlan)
            {
                Drop(ref p, (ushort)EncapDrop.SplitHorizon);
            }
            else if (egress.Kind != PortKind.Vxlan || p.EgressVtep != 0)
            {
                Emit(ref p, context, egress, p.EgressVtep, original: true);
            }
            else
            {
                // A MAC known on the VNI but not behind a particular VTEP (a static entry): replicate.
                var pending = new Target(-1, 0);
                FloodSegment(ref p, context, egress, ref pending);
                Finish(ref p, context, snapshot, pending);
            }

            return;
        }

        var next = new Target(-1, 0);
        foreach (var s in snapshot.Domains[p.Domain].Segments)
        {
            if (s < 0 || (bridged && s == p.IngressSegment))
            {
                continue;
            }

            var segment = snapshot.Segments[s];
            if (ingressIsVxlan && segment.Kind == PortKind.Vxlan)
            {
                continue;
            }

            FloodSegment(ref p, context, segment, ref next);
        }

        Finish(ref p, context, snapshot, next);
    }

    /// <summary>A destination: a segment, and a VTEP when the segment is VXLAN.</summary>
    private readonly record struct Target(int Segment, uint Vtep);

    /// <summary>
    /// Adds a segment's destinations. Each destination but the last gets a copy; the previous
    /// pending one is emitted as a copy when a new one appears, so the original buffer is kept
    /// for whichever comes last and a single-destination flood copies nothing.
    /// </summary>
    private void FloodSegment(ref PacketMeta p, WorkerContext context, Segment segment, ref Target pending)
    {
        if (segment.Kind != PortKind.Vxlan)
        {
            Push(ref p, context, new Target(segment.Index, 0), ref pending);
            return;
        }

        foreach (var vtep in segment.Vteps)
        {
            Push(ref p, context, new Target(segment.Index, vtep), ref pending);
        }
    }

    private void Push(ref PacketMeta p, WorkerContext context, Target target, ref Target pending)
    {
        if (pending.Segment >= 0)
        {
            Emit(ref p, context, context.Snapshot.Segments[pending.Segment], pending.Vtep, original: false);
        }

        pending = target;
    }

    private void Finish(ref PacketMeta p, WorkerContext context, DataPlaneSnapshot snapshot, Target pending)
    {
        if (pending.Segment < 0)
        {
            Drop(ref p, (ushort)EncapDrop.NoEgress);
            return;
        }

        Emit(ref p, context, snapshot.Segments[pending.Segment], pending.Vtep, original: true);
    }

    /// <summary>Queues the frame (or a copy of it) on the segment's port with that segment's encapsulation.</summary>
    private void Emit(ref PacketMeta p, WorkerContext context, Segment segment, uint vtep, bool original)
    {
        var pool = context.Pool;
        if (p.Length - EthernetHeader.Length > segment.Mtu)
        {
            // A routed IPv4 packet without DF is fragmented (RFC 791, RFC 1812 section 4.2.2.7): the
            // route stage already answered DF packets with frag-needed. Bridged frames never are.
            if ((p.Flags & (PacketFlags.Routed | PacketFlags.L3Parsed | PacketFlags.Ipv6)) == (PacketFlags.Routed | PacketFlags.L3Parsed)
                && EmitFragments(ref p, context, segment, vtep, original))
            {
                return;
            }

            Fail(ref p, context, EncapDrop.MtuExceeded, original);
            return;
        }

        var queue = context.TxQueues[segment.Port];
        if (queue.IsFull)
        {
            Fail(ref p, context, EncapDrop.TxQueueFull, original);
            return;
        }

        int buffer;
        int offset;
        if (original)
        {
            buffer = p.Buffer;
            offset = p.Offset;
        }
        else
        {
            buffer = pool.Rent();
            if (buffer < 0)
            {
                Fail(ref p, context, EncapDrop.NoBuffer, original);
                return;
            }

            offset = PacketPool.Headroom;
            pool.Frame(p.Buffer, p.Offset, p.Length).CopyTo(pool.Frame(buffer, offset, p.Length));
        }

        var length = p.Length;
        ref var tx = ref queue.Add();
        switch (segment.Kind)
        {
            case PortKind.Trunk:
                VlanTags.TryInsert(pool.Slot(buffer), offset, length, VlanTag.Customer(segment.Vlan), out offset);
                length += VlanTag.Length;
                break;
            case PortKind.Vxlan:
                offset -= VxlanHeader.Length;
                length += VxlanHeader.Length;
                VxlanHeader.Write(pool.Frame(buffer, offset, VxlanHeader.Length), segment.Vni);
                tx.DestinationIp = vtep;
                tx.DestinationPort = segment.VtepUdpPort;
                tx.SourcePort = FlowEntropy(pool.Frame(buffer, offset + VxlanHeader.Length, p.Length));
                break;
        }

        tx.Buffer = buffer;
        tx.Offset = offset;
        tx.Length = length;
        if (original)
        {
            p.Disposition = Disposition.Consumed;
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, original ? "transmit" : "transmit copy",
                segment.Kind == PortKind.Vxlan ? $"{segment.Name} → VTEP {new Ipv4Address(vtep)}" : segment.Name);
        }
    }

    /// <summary>
    /// Sends a routed IPv4 packet that does not fit the segment as fragments of at most its MTU,
    /// each in a buffer of its own (the original's buffer is returned when it was the original).
    /// Options without the copy flag stay in the first fragment only (RFC 791). Returns false when
    /// the packet may not or cannot be fragmented (DF, or an MTU too small for any data).
    /// </summary>
    private bool EmitFragments(ref PacketMeta p, WorkerContext context, Segment segment, uint vtep, bool original)
    {
        var pool = context.Pool;
        var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
        int l3 = p.L3Offset;
        var ip = new Ipv4Header(frame[l3..]);
        var ihl = ip.HeaderLength;
        var payload = Math.Min(ip.TotalLength, frame.Length - l3) - ihl;
        var chunk = (segment.Mtu - ihl) & ~7;
        if (ip.DontFragment || chunk < 8 || payload <= chunk)
        {
            return false;
        }

        var count = (payload + chunk - 1) / chunk;
        if (pool.Available < count)
        {
            Fail(ref p, context, EncapDrop.NoBuffer, original);
            return true;
        }

        var baseOffset = ip.FragmentOffset;
        var moreAfter = ip.MoreFragments;
        for (var k = 0; k < count; k++)
        {
            var start = k * chunk;
            var length = Math.Min(chunk, payload - start);
            var buffer = pool.Rent();
            var fragment = pool.Frame(buffer, PacketPool.Headroom, l3 + ihl + length);
            frame[..(l3 + ihl)].CopyTo(fragment);
            frame.Slice(l3 + ihl + start, length).CopyTo(fragment[(l3 + ihl)..]);
            if (k > 0 && ihl > Ipv4Header.MinLength)
            {
                KeepCopiedOptions(fragment.Slice(l3 + Ipv4Header.MinLength, ihl - Ipv4Header.MinLength));
            }

            var header = new Ipv4Header(fragment[l3..]);
            header.TotalLength = (ushort)(ihl + length);
            header.FragmentOffset = (ushort)(baseOffset + (start / 8));
            header.MoreFragments = moreAfter || start + length < payload;
            header.UpdateHeaderChecksum();

            var f = p;
            f.Buffer = buffer;
            f.Offset = PacketPool.Headroom;
            f.Length = l3 + ihl + length;
            f.Disposition = Disposition.Continue;
            Emit(ref f, context, segment, vtep, original: true);
            if (f.Disposition == Disposition.Drop)
            {
                context.Counters.CountDrop(Index, f.DropCode);
                pool.Return(buffer);
            }
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "fragment", $"{ip.TotalLength} bytes > MTU {segment.Mtu} of {segment.Name}: {count} fragments");
        }

        if (original)
        {
            pool.Return(p.Buffer);
            p.Disposition = Disposition.Consumed;
        }

        return true;
    }

    /// <summary>Turns every option without the copy flag (RFC 791: type bit 0x80) into NOPs.</summary>
    private static void KeepCopiedOptions(Span<byte> options)
    {
        var i = 0;
        while (i < options.Length)
        {
            var type = options[i];
            if (type == 0)
            {
                return; // end of options
            }

            if (type == 1 || i + 1 >= options.Length)
            {
                i++;
                continue;
            }

            var length = Math.Clamp((int)options[i + 1], 2, options.Length - i);
            if ((type & 0x80) == 0)
            {
                options.Slice(i, length).Fill(1);
            }

            i += length;
        }
    }

    private void Fail(ref PacketMeta p, WorkerContext context, EncapDrop reason, bool original)
    {
        if (original)
        {
            Drop(ref p, (ushort)reason);
            return;
        }

        // A copy that never got a buffer of its own: count it against the same reason.
        context.Counters.CountDrop(Index, (ushort)reason);
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "drop copy", reason.ToString());
        }
    }

    /// <summary>
    /// RFC 7348 §5: the outer UDP source port should be a hash of the inner frame so the underlay's
    /// ECMP spreads flows; dynamic range 49152-65535. The hash covers the inner MACs and, for IPv4, the
    /// addresses, protocol and (unfragmented TCP/UDP/SCTP) ports, so two flows between the same pair of
    /// stations (or through a router's MAC) still differ, and every packet of a flow gets the same port.
    /// </summary>
    internal static ushort FlowEntropy(ReadOnlySpan<byte> frame) => FlowEntropy(ref MemoryMarshal.GetReference(frame), frame.Length);

    /// <summary><see cref="FlowEntropy(ReadOnlySpan{byte})"/> on <paramref name="length"/> bytes at <paramref name="frame"/>; every read is checked against the length once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort FlowEntropy(ref byte frame, int length)
    {
        if (length < EthernetHeader.Length)
        {
            // Never for a frame past decap (it drops anything shorter than an Ethernet header).
            return 49152;
        }

        var a = UncheckedBytes.ReadUInt64LittleEndian(ref frame, 0);
        var b = (ulong)UncheckedBytes.ReadUInt32LittleEndian(ref frame, 8);
        if (length >= EthernetHeader.Length + 20 && UncheckedBytes.ReadUInt16BigEndian(ref frame, 12) == EtherType.Ipv4)
        {
            // The length check above covers every read of the 20-byte header.
            ref var ip = ref Unsafe.Add(ref frame, EthernetHeader.Length);
            var protocol = Unsafe.Add(ref ip, 9);
            b ^= UncheckedBytes.ReadUInt64LittleEndian(ref ip, 12) + ((ulong)protocol << 40);
            var headerLength = (ip & 0x0F) * 4;
            var fragment = UncheckedBytes.ReadUInt16BigEndian(ref ip, 6) & 0x3FFF; // MF + offset
            if (fragment == 0 && protocol is (IpProtocol.Tcp or IpProtocol.Udp or 132) && length - EthernetHeader.Length >= headerLength + 4)
            {
                a ^= (ulong)UncheckedBytes.ReadUInt32LittleEndian(ref ip, headerLength) << 13;
            }
        }

        // One multiply (Fibonacci hashing): its top 14 bits depend on every bit of the folded key.
        var h = (a ^ (b << 17) ^ (b >> 29)) * 0x9E37_79B9_7F4A_7C15UL;
        return (ushort)(49152 | (int)(h >> 50));
    }
}
