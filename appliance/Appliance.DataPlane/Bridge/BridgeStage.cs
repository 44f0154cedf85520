using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Bridge;

public enum BridgeDrop : ushort
{
    /// <summary>The destination MAC lives on the ingress segment: the frame needs no forwarding (IEEE 802.1D filtering).</summary>
    SameSegment,

    /// <summary>Broadcast, unknown unicast or multicast above the domain's storm-control rate.</summary>
    StormControl,

    /// <summary>The source MAC is flapping between locations (a loop, or a duplicate MAC) and is damped.</summary>
    MacFlapDamped,

    /// <summary>A static MAC seen from a location other than its configured one.</summary>
    StaticMacViolation,
}

/// <summary>
/// Learning bridge per domain: learns source MACs (with move detection and flap damping), finds the
/// destination's segment, and marks broadcast / unknown-unicast / multicast frames for flooding
/// within the domain's storm-control budget. See README.md.
/// </summary>
public sealed class BridgeStage() : PipelineStage("bridge", typeof(BridgeDrop))
{
    /// <summary>The low 48 bits of an 8-byte little-endian read at a MAC: the address's bytes, unswapped.</summary>
    private const ulong MacMask = 0xFFFF_FFFF_FFFF;

    /// <summary>No cached destination: no 8-byte read masked to 48 bits equals it.</summary>
    private const ulong NoMac = ulong.MaxValue;

    public override unsafe void Process(PacketBatch batch, WorkerContext context)
    {
        var pool = context.Pool;
        var packets = batch.Packets;
        var now = context.Now;
        var c = new Cursor { DhcpOff = context.DhcpSnooping is null };
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue)
            {
                continue;
            }

            // Decap dropped every frame shorter than an Ethernet header, and a slot always holds 14 bytes past
            // any offset a port gives: both MACs are read unchecked, as 8-byte words masked to their 6 bytes.
            var frame = pool.Pointer(p.Buffer) + p.Offset;
            var destination = Unsafe.ReadUnaligned<ulong>(frame) & MacMask;
            var source = Unsafe.ReadUnaligned<ulong>(frame + 6) & MacMask;

            // The common case, a train of frames between two stations: the same station at the same place as
            // the last frame learned (its entry was refreshed at this timestamp, in the domain whose gateway MAC
            // the cursor holds), to the last known unicast destination found since (not the gateway, not
            // multicast, not on the ingress segment: all checked when it was cached), untraced, no DHCP
            // snooping. Nothing to look up or learn.
            // A routed train (to the domain's gateway MAC) is as common: it leaves L2 here.
            if (source == c.Source && p.IngressSegment == c.Segment
                && (!c.IngressIsVxlan || p.RemoteVtep == c.Vtep) && (p.Flags & PacketFlags.Traced) == 0)
            {
                if (destination == c.Destination)
                {
                    p.EgressSegment = c.EgressSegment;
                    p.EgressVtep = c.EgressVtep;
                    continue;
                }

                if (destination == c.GatewayRaw)
                {
                    p.Flags |= PacketFlags.ToGateway;
                    continue;
                }
            }

            // The next most common case, interleaved stations: a unicast frame, not for the gateway, from a station
            // already learned at this place to one known on another segment, in the domain and from the ingress
            // segment of the frame before (the cursor's), untraced, no DHCP snooping. Two lookups and a refresh.
            if (p.Domain == c.DomainIndex && p.IngressSegment == c.IngressSegment && c.DhcpOff
                && ((destination & 1) | (uint)(p.Flags & PacketFlags.Traced)) == 0 && destination != c.GatewayRaw)
            {
                var table = c.State.Table;
                ref var known = ref table.Find(Raw(source));
                if (!Unsafe.IsNullRef(ref known) && known.Segment == p.IngressSegment && known.Vtep == (c.IngressIsVxlan ? p.RemoteVtep : 0))
                {
                    ref var to = ref table.Find(Raw(destination));
                    if (!Unsafe.IsNullRef(ref to) && to.Segment != p.IngressSegment)
                    {
                        known.LastSeen = now;
                        p.EgressSegment = to.Segment;
                        p.EgressVtep = to.Vtep;
                        continue;
                    }
                }
            }

            Forward(ref p, ref c, context, frame, source, destination);
        }
    }

    /// <summary>
    /// The per-batch caches (the last domain's objects, the last ingress segment's kind, the last location
    /// learned and the last unicast destination found since), shared by the loop's common case and
    /// <see cref="Forward"/>.
    /// </summary>
    private struct Cursor()
    {
        public int DomainIndex = -1;
        public Domain DomainSpec = null!;
        public DomainState State = null!;
        public ulong GatewayRaw = NoMac;

        public int IngressSegment = -1;
        public bool IngressIsVxlan;
        public bool DhcpOff;

        // The last location learned (raw source MAC, segment, VTEP; Segment -1 = none; a learned Segment is always
        // IngressSegment, so IngressIsVxlan is its kind) and, while it holds, the last unicast destination found
        // (Destination = NoMac: none).
        public ulong Source = NoMac;
        public int Segment = -1;
        public uint Vtep;
        public ulong Destination = NoMac;
        public int EgressSegment;
        public uint EgressVtep;
    }

    /// <summary>
    /// Everything but the common case: a new station or place (learning, moves, flap damping), RARP, the
    /// gateway, DHCP snooping, floods, a destination not yet cached, same-segment filtering and traced frames.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe void Forward(ref PacketMeta p, ref Cursor c, WorkerContext context, byte* frame, ulong sourceRaw, ulong destinationRaw)
    {
        var snapshot = context.Snapshot;
        var now = context.Now;
        if (p.Domain != c.DomainIndex)
        {
            c.DomainIndex = p.Domain;
            c.DomainSpec = snapshot.Domains[c.DomainIndex];
            c.State = context.Bridge[c.DomainIndex];
            c.GatewayRaw = c.DomainSpec.GatewayMac == 0 ? NoMac : Raw(c.DomainSpec.GatewayMac);
        }

        var domain = c.DomainSpec;
        var state = c.State;
        var header = new ReadOnlySpan<byte>(frame, EthernetHeader.Length);
        var source = MacAddress.Read(header[6..]).Value;
        if (p.IngressSegment != c.IngressSegment)
        {
            c.IngressSegment = p.IngressSegment;
            c.IngressIsVxlan = snapshot.Segments[c.IngressSegment].Kind == PortKind.Vxlan;
        }

        var vtep = c.IngressIsVxlan ? p.RemoteVtep : 0;

        // ESXi announces a VM that just arrived with a broadcast RARP from its MAC: a move signal. On a
        // local segment the worker sends the first GARP for the gateway at once (Gateway/ArrivalGarp.cs),
        // before learning, so the MAC move this frame causes carries that fact too.
        var rarp = (header[0] & 1) != 0 && L3Messages.EtherTypeOf(header) == EtherType.Rarp;
        var garps = rarp ? context.ArrivalGarp?.OnRarp(context, c.DomainIndex, p.IngressSegment, vtep, source, now) ?? 0 : 0;
        if (garps > 0)
        {
            // The GARP leaves on the RARP's own segment, so on its ingress port.
            context.ArrivalGarpPort = p.IngressPort;
        }

        // A train of frames from one station in one batch: the first refreshed the entry at this
        // same timestamp, so the rest need no table access. (Segments are unique across domains.)
        if (sourceRaw != c.Source || p.IngressSegment != c.Segment || vtep != c.Vtep || (p.Flags & PacketFlags.Traced) != 0)
        {
            c.Destination = NoMac;
            if (!Learn(ref p, context, domain, state, source, vtep, now, garps))
            {
                c.Source = NoMac;
                c.Segment = -1;
                return;
            }

            c.Source = sourceRaw;
            c.Segment = p.IngressSegment;
            c.Vtep = vtep;
        }

        if (destinationRaw == c.GatewayRaw)
        {
            // Addressed to the appliance's own gateway interface: L3 takes it from here.
            p.Flags |= PacketFlags.ToGateway;
            if ((p.Flags & PacketFlags.Traced) != 0)
            {
                context.Tracer.Record(p.TraceId, Name, "to gateway", $"{MacAddress.Read(header)} is the gateway of {domain.Name}");
            }

            return;
        }

        var dhcpSnooping = context.DhcpSnooping;
        if (dhcpSnooping is { } dhcp)
        {
            var etherType = L3Messages.EtherTypeOf(header);
            var pool = context.Pool;
            if (etherType == EtherType.Ipv4)
            {
                dhcp.Inspect(context, state, c.DomainIndex, pool.Frame(p.Buffer, p.Offset, p.Length), now);
            }
            else if (etherType == EtherType.Ipv6)
            {
                dhcp.Inspect6(context, state, c.DomainIndex, pool.Frame(p.Buffer, p.Offset, p.Length), now);
            }
        }

        if ((destinationRaw & 1) != 0)
        {
            // Broadcast or multicast (the I/G bit of the first byte).
            if (rarp)
            {
                context.Mobility.Post(new MobilitySignal(MobilitySignalKind.Rarp, c.DomainIndex, p.IngressSegment, vtep, source, false, 0, 0, now) { GarpFrames = garps });
            }

            p.Flags |= PacketFlags.Bum;
            Flood(ref p, context, state, now, "broadcast/multicast");
            return;
        }

        int egressSegment;
        uint egressVtep;
        if (destinationRaw == c.Destination)
        {
            egressSegment = c.EgressSegment;
            egressVtep = c.EgressVtep;
        }
        else
        {
            ref var entry = ref state.Table.Find(Raw(destinationRaw));
            if (Unsafe.IsNullRef(ref entry))
            {
                p.Flags |= PacketFlags.Bum;
                Flood(ref p, context, state, now, "unknown unicast");
                return;
            }

            egressSegment = entry.Segment;
            egressVtep = entry.Vtep;
            if (dhcpSnooping is null && egressSegment != p.IngressSegment && c.Segment == p.IngressSegment)
            {
                // Cached for the loop's common case, which is valid while the learned location holds.
                c.Destination = destinationRaw;
                c.EgressSegment = egressSegment;
                c.EgressVtep = egressVtep;
            }
        }

        if (egressSegment == p.IngressSegment)
        {
            Drop(ref p, (ushort)BridgeDrop.SameSegment);
            return;
        }

        p.EgressSegment = egressSegment;
        p.EgressVtep = egressVtep;
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "forward", $"{MacAddress.Read(header)} known on {snapshot.Segments[egressSegment].Name}{VtepText(egressVtep)}");
        }
    }

    /// <summary>
    /// A MAC between its numeric form (<see cref="MacAddress.Value"/>, the first byte most significant) and the
    /// raw form the loop reads (its six bytes as a little-endian word): a byte swap of the 48 bits, either way.
    /// </summary>
    private static ulong Raw(ulong mac) => BinaryPrimitives.ReverseEndianness(mac) >> 16;

    private bool Learn(ref PacketMeta p, WorkerContext context, Domain domain, DomainState state, ulong mac, uint vtep, long now, int garpFrames)
    {
        ref var entry = ref state.Table.Find(mac);
        if (Unsafe.IsNullRef(ref entry))
        {
            entry = ref state.Table.Add(mac);
            if (Unsafe.IsNullRef(ref entry))
            {
                state.LearnRefused++;
                return true;
            }

            entry.Segment = p.IngressSegment;
            entry.Vtep = vtep;
            entry.LastSeen = now;
            return true;
        }

        if (entry.Segment == p.IngressSegment && entry.Vtep == vtep)
        {
            entry.LastSeen = now;
            return true;
        }

        if (entry.Static)
        {
            Drop(ref p, (ushort)BridgeDrop.StaticMacViolation);
            return false;
        }

        if (now < entry.FrozenUntil)
        {
            Drop(ref p, (ushort)BridgeDrop.MacFlapDamped);
            return false;
        }

        // A move. Count it in the flap window; too many moves means a loop or a duplicate MAC:
        // freeze the entry where it is and drop the frames from the other location for a while.
        if (now - entry.WindowStart > domain.MacFlapWindowTicks)
        {
            entry.WindowStart = now;
            entry.Moves = 0;
        }

        var damped = ++entry.Moves > domain.MacFlapMoves;
        context.Moves.Post(new MacMoveEvent(domain.Name, mac, entry.Segment, entry.Vtep, p.IngressSegment, vtep, now, damped));
        state.Moves++;
        if (damped)
        {
            entry.FrozenUntil = now + domain.MacFlapHoldTicks;
            Drop(ref p, (ushort)BridgeDrop.MacFlapDamped);
            return false;
        }

        entry.Segment = p.IngressSegment;
        entry.Vtep = vtep;
        entry.LastSeen = now;
        context.Epoch.Advance(); // routed flows toward this MAC must find its new segment
        context.Mobility.Post(new MobilitySignal(MobilitySignalKind.MacMove, domain.Index, p.IngressSegment, vtep, mac, false, 0, 0, now) { GarpFrames = garpFrames });
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "learn", $"{new MacAddress(mac)} moved to {context.Snapshot.Segments[p.IngressSegment].Name}{VtepText(vtep)}");
        }

        return true;
    }

    private void Flood(ref PacketMeta p, WorkerContext context, DomainState state, long now, string why)
    {
        if (!state.Storm.TryTake(now, context.TicksPerSecond))
        {
            Drop(ref p, (ushort)BridgeDrop.StormControl);
            return;
        }

        p.Flags |= PacketFlags.Flood;
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "flood", why);
        }
    }

    private static string VtepText(uint vtep) => vtep == 0 ? "" : $" behind VTEP {new Ipv4Address(vtep)}";
}
