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
        var packets = batch.Packets;
        var unicast = new UnicastCache(snapshot.Segments, context.TxQueues);
        var pool = context.Pool;

        // Packets consumed when the walk ends (the runner skips its settle walk when that is all of them).
        var consumed = 0;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition == Disposition.Continue && !TryEmitUnicast(ref p, pool, ref unicast))
            {
                ProcessOne(ref p, context, snapshot);
            }

            consumed += p.Disposition == Disposition.Consumed ? 1 : 0;
        }

        batch.Consumed = consumed;
    }

    /// <summary>
    /// The last unicast egress segment of the batch and what sending there needs (its queue, MTU, the VXLAN
    /// header as one 8-byte word), and the last ingress segment's kind: a train of frames to one segment
    /// looks nothing up again.
    /// </summary>
    private struct UnicastCache(Segment[] segments, TxQueue[] queues)
    {
        public readonly Segment[] Segments = segments;
        public readonly TxQueue[] Queues = queues;
        public int Egress = -1;
        public PortKind Kind;
        public int Mtu;
        public TxQueue Queue = null!;
        public ulong VxlanWord;
        public ushort VtepPort;
        public VlanTag Tag;
        public int Ingress = -1;
        public bool IngressIsVxlan;

        public void Load(int egress)
        {
            var segment = Segments[egress];
            Egress = egress;
            Kind = segment.Kind;
            Mtu = segment.Mtu;
            Queue = Queues[segment.Port];
            VtepPort = segment.VtepUdpPort;
            Tag = VlanTag.Customer(segment.Vlan);
            VxlanWord = HeaderWord(segment.Vni);
        }

        /// <summary>The segment's 8-byte VXLAN header as the word that stores it (written by <see cref="VxlanHeader.Write"/>).</summary>
        private static ulong HeaderWord(uint vni)
        {
            Span<byte> header = stackalloc byte[VxlanHeader.Length];
            VxlanHeader.Write(header, vni);
            return MemoryMarshal.Read<ulong>(header);
        }
    }

    /// <summary>
    /// A bridged or routed unicast frame to a known segment (and VTEP), untraced, that fits the MTU and the
    /// queue: queued here with no per-frame lookups. Anything else (floods, split horizon, a static MAC on a
    /// VNI without a VTEP, MTU, a full queue, a traced packet) returns false for <see cref="ProcessOne"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool TryEmitUnicast(ref PacketMeta p, PacketPool pool, ref UnicastCache cache)
    {
        var flags = p.Flags;
        if ((flags & (PacketFlags.Flood | PacketFlags.Traced)) != 0)
        {
            return false;
        }

        if (p.EgressSegment != cache.Egress)
        {
            cache.Load(p.EgressSegment);
        }

        if (p.Length - EthernetHeader.Length > cache.Mtu || cache.Queue.IsFull)
        {
            return false;
        }

        var offset = p.Offset;
        var length = p.Length;
        switch (cache.Kind)
        {
            case PortKind.Vxlan:
            {
                if (p.EgressVtep == 0)
                {
                    return false;
                }

                if ((flags & (PacketFlags.Routed | PacketFlags.Local)) == 0)
                {
                    // Split horizon: a bridged frame from a VXLAN segment never goes back to one.
                    if (p.IngressSegment != cache.Ingress)
                    {
                        cache.Ingress = p.IngressSegment;
                        cache.IngressIsVxlan = cache.Segments[p.IngressSegment].Kind == PortKind.Vxlan;
                    }

                    if (cache.IngressIsVxlan)
                    {
                        return false;
                    }
                }

                var frame = pool.Pointer(p.Buffer) + offset;
                Unsafe.WriteUnaligned(frame - VxlanHeader.Length, cache.VxlanWord);
                var entropy = FlowEntropy(ref *frame, length);
                cache.Queue.Add(p.Buffer, offset - VxlanHeader.Length, length + VxlanHeader.Length, p.EgressVtep, cache.VtepPort, entropy);
                break;
            }

            case PortKind.Trunk:
                if (!VlanTags.TryInsert(pool.Slot(p.Buffer), offset, length, cache.Tag, out offset))
                {
                    return false;
                }

                cache.Queue.Add(p.Buffer, offset, length + VlanTag.Length, 0, 0, 0);
                break;
            default:
                cache.Queue.Add(p.Buffer, offset, length, 0, 0, 0);
                break;
        }

        p.Disposition = Disposition.Consumed;
        return true;
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
