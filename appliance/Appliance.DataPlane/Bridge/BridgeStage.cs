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
    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var snapshot = context.Snapshot;
        var now = context.Now;
        var pool = context.Pool;
        var packets = batch.Packets;
        var lastLearned = new Location(0, -1, 0);

        // Per-batch caches for trains of frames: the last domain's objects, and the last unicast
        // destination found in the MAC table (forgotten whenever the table may change, i.e. on any
        // learn; aging runs in the heartbeat, never during a batch).
        var lastDomain = -1;
        Domain domain = null!;
        DomainState state = null!;
        var lastDestination = new Destination(0, -1, 0, 0);

        // The last ingress segment and whether it is VXLAN (its frames' stations live behind a VTEP).
        var lastSegment = -1;
        var segmentIsVxlan = false;
        var dhcpSnooping = context.DhcpSnooping;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue)
            {
                continue;
            }

            if (p.Domain != lastDomain)
            {
                lastDomain = p.Domain;
                domain = snapshot.Domains[lastDomain];
                state = context.Bridge[lastDomain];
            }

            var frame = pool.Frame(p.Buffer, p.Offset, EthernetHeader.Length);
            var source = MacAddress.Read(frame[6..]).Value;
            if (p.IngressSegment != lastSegment)
            {
                lastSegment = p.IngressSegment;
                segmentIsVxlan = snapshot.Segments[lastSegment].Kind == PortKind.Vxlan;
            }

            var vtep = segmentIsVxlan ? p.RemoteVtep : 0;

            // A train of frames from one station in one batch: the first refreshed the entry at this
            // same timestamp, so the rest need no table access. (Segments are unique across domains.)
            var location = new Location(source, p.IngressSegment, vtep);

            // ESXi announces a VM that just arrived with a broadcast RARP from its MAC: a move signal. On a
            // local segment the worker sends the first GARP for the gateway at once (Gateway/ArrivalGarp.cs),
            // before learning, so the MAC move this frame causes carries that fact too.
            var rarp = (frame[0] & 1) != 0 && L3Messages.EtherTypeOf(frame) == EtherType.Rarp;
            var garps = rarp ? context.ArrivalGarp?.OnRarp(context, lastDomain, p.IngressSegment, vtep, source, now) ?? 0 : 0;
            if (garps > 0)
            {
                // The GARP leaves on the RARP's own segment, so on its ingress port.
                context.ArrivalGarpPort = p.IngressPort;
            }
            if (location != lastLearned || (p.Flags & PacketFlags.Traced) != 0)
            {
                lastDestination = new Destination(0, -1, 0, 0);
                if (!Learn(ref p, context, domain, state, source, vtep, now, garps))
                {
                    lastLearned = default;
                    continue;
                }

                lastLearned = location;
            }

            var destination = MacAddress.Read(frame);
            if (destination.Value == domain.GatewayMac && domain.GatewayMac != 0)
            {
                // Addressed to the appliance's own gateway interface: L3 takes it from here.
                p.Flags |= PacketFlags.ToGateway;
                if ((p.Flags & PacketFlags.Traced) != 0)
                {
                    context.Tracer.Record(p.TraceId, Name, "to gateway", $"{destination} is the gateway of {domain.Name}");
                }

                continue;
            }

            if (dhcpSnooping is { } dhcp)
            {
                var etherType = L3Messages.EtherTypeOf(frame);
                if (etherType == EtherType.Ipv4)
                {
                    dhcp.Inspect(context, state, lastDomain, pool.Frame(p.Buffer, p.Offset, p.Length), now);
                }
                else if (etherType == EtherType.Ipv6)
                {
                    dhcp.Inspect6(context, state, lastDomain, pool.Frame(p.Buffer, p.Offset, p.Length), now);
                }
            }

            if (destination.IsMulticast)
            {
                if (rarp)
                {
                    context.Mobility.Post(new MobilitySignal(MobilitySignalKind.Rarp, lastDomain, p.IngressSegment, vtep, source, false, 0, 0, now) { GarpFrames = garps });
                }

                p.Flags |= PacketFlags.Bum;
                Flood(ref p, context, state, now, "broadcast/multicast");
                continue;
            }

            int egressSegment;
            uint egressVtep;
            if (lastDestination.Mac == destination.Value && lastDestination.Domain == lastDomain)
            {
                egressSegment = lastDestination.Segment;
                egressVtep = lastDestination.Vtep;
            }
            else
            {
                ref var entry = ref state.Table.Find(destination.Value);
                if (Unsafe.IsNullRef(ref entry))
                {
                    p.Flags |= PacketFlags.Bum;
                    Flood(ref p, context, state, now, "unknown unicast");
                    continue;
                }

                egressSegment = entry.Segment;
                egressVtep = entry.Vtep;
                lastDestination = new Destination(destination.Value, lastDomain, egressSegment, egressVtep);
            }

            if (egressSegment == p.IngressSegment)
            {
                Drop(ref p, (ushort)BridgeDrop.SameSegment);
                continue;
            }

            p.EgressSegment = egressSegment;
            p.EgressVtep = egressVtep;
            if ((p.Flags & PacketFlags.Traced) != 0)
            {
                context.Tracer.Record(p.TraceId, Name, "forward", $"{destination} known on {snapshot.Segments[egressSegment].Name}{VtepText(egressVtep)}");
            }
        }
    }

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

    /// <summary>A unicast destination found in a domain's MAC table: where it is (segment, VTEP).</summary>
    private readonly record struct Destination(ulong Mac, int Domain, int Segment, uint Vtep);

    /// <summary>A station's place: MAC, segment, and VTEP for VXLAN segments.</summary>
    private readonly record struct Location(ulong Mac, int Segment, uint Vtep);

    private static string VtepText(uint vtep) => vtep == 0 ? "" : $" behind VTEP {new Ipv4Address(vtep)}";
}
