using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Route;

public enum NeighborDrop : ushort
{
    /// <summary>The next hop's held queue already has <see cref="NeighborCache.MaxHeld"/> packets (or every held block is in use).</summary>
    HeldQueueFull,

    /// <summary>No answer to the last ARP request / NS: the held packets are dropped (RFC 4861 section 7.3.3 INCOMPLETE → gone).</summary>
    Unresolved,

    /// <summary>The neighbor cache is full of other entries.</summary>
    NeighborTableFull,

    /// <summary>A routed packet whose destination no longer has a route (changed after the route stage).</summary>
    NoRoute,

    /// <summary>A resolved packet found no room in the originated batch.</summary>
    ReleaseNoRoom,
}

/// <summary>
/// Neighbor output (Linux's neigh_output, VPP's ip4-arp): routed packets whose next hop has no MAC
/// yet wait here, after the firewall and NAT have seen them, while an ARP request / NS goes out.
/// When the gateway stage learns the answer, the held packets leave through encap with the MAC
/// filled in. The heartbeat retries requests, fails unanswered ones and ages the cache. See README.md.
/// </summary>
public sealed class NeighborStage() : PipelineStage("neighbor", typeof(NeighborDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var l3 = context.Snapshot.L3;
        if (l3.Gateways.Length == 0)
        {
            return;
        }

        var neighbors = context.L3.Neighbors;
        var pool = context.Pool;
        ReleaseResolved(context, neighbors);
        if (batch.Finished == batch.Count)
        {
            // Every packet was forwarded by the fast path (its next hop was resolved and fresh).
            return;
        }

        var packets = batch.Packets;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.Routed | PacketFlags.Local | PacketFlags.FastPath)) != PacketFlags.Routed)
            {
                // Not routed, originated, or forwarded from a cached result (its next hop was resolved).
                continue;
            }

            var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
            if (!MacAddress.Read(frame).IsZero)
            {
                continue;
            }

            Resolve(ref p, context, l3, neighbors, frame);
        }
    }

    private void Resolve(ref PacketMeta p, WorkerContext context, L3Tables l3, NeighborCache neighbors, Span<byte> frame)
    {
        // The next hop again from the bytes: the miss path is rare, and this keeps PacketMeta small.
        var ipv6 = (p.Flags & PacketFlags.Ipv6) != 0;
        ulong hi = 0, lo;
        FibEntry? route;
        if (ipv6)
        {
            var destination = new Ipv6Header(frame[p.L3Offset..]).Destination;
            var index = l3.Fib6.Lookup(destination.High, destination.Low);
            route = index < 0 ? null : l3.Routes6[index];
            (hi, lo) = route is { Kind: RouteKind.Static } ? (route.NextHopHi, route.NextHopLo) : (destination.High, destination.Low);
        }
        else
        {
            var destination = new Ipv4Header(frame[p.L3Offset..]).Destination.Value;
            var index = l3.Fib4.Lookup(destination);
            route = index < 0 ? null : l3.Routes4[index];
            lo = route is { Kind: RouteKind.Static } ? route.NextHopLo : destination;
        }

        if (route is null || route.Domain != p.Domain || l3.Gateway(route.Domain) is not { } gw)
        {
            Drop(ref p, (ushort)NeighborDrop.NoRoute);
            return;
        }

        var now = context.Now;
        ref var entry = ref neighbors.Find(gw.Domain, ipv6, hi, lo);
        if (Unsafe.IsNullRef(ref entry))
        {
            entry = ref neighbors.Add(gw.Domain, ipv6, hi, lo, NeighborState.Incomplete);
            if (Unsafe.IsNullRef(ref entry))
            {
                Drop(ref p, (ushort)NeighborDrop.NeighborTableFull);
                return;
            }

            entry.Probes = 1;
            entry.NextProbe = now + (l3.ProbeIntervalSeconds * context.TicksPerSecond);
            Solicit(context, gw, ipv6, hi, lo);
        }
        else if (entry.State == NeighborState.Reachable)
        {
            // Resolved earlier in this batch.
            new MacAddress(entry.Mac).WriteTo(frame);
            PlaceInDomain(ref p, context, entry.Mac);
            Trace(ref p, context, "resolved", (p.Flags & PacketFlags.Traced) != 0 ? $"next hop {Text(ipv6, hi, lo)} at {new MacAddress(entry.Mac)}" : "");
            return;
        }

        if (entry.HeldCount >= l3.HeldPerNeighbor || !neighbors.Hold(ref entry, p))
        {
            Drop(ref p, (ushort)NeighborDrop.HeldQueueFull);
            return;
        }

        // The held queue owns the buffer now.
        p.Disposition = Disposition.Consumed;
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            Trace(ref p, context, "held", $"waiting for {(ipv6 ? "NS" : "ARP")} answer from {Text(ipv6, hi, lo)} in {gw.DomainName} ({entry.HeldCount} held)");
        }
    }

    /// <summary>Sends the packets of every entry the gateway stage confirmed since the last batch.</summary>
    private void ReleaseResolved(WorkerContext context, NeighborCache neighbors)
    {
        var pool = context.Pool;
        while (true)
        {
            ref var entry = ref neighbors.NextReady();
            if (Unsafe.IsNullRef(ref entry))
            {
                return;
            }

            foreach (ref var held in neighbors.Held(ref entry))
            {
                var frame = pool.Frame(held.Buffer, held.Offset, held.Length);
                new MacAddress(entry.Mac).WriteTo(frame);
                ref var o = ref context.Originate(held.Buffer, held.Offset, held.Length);
                if (Unsafe.IsNullRef(ref o))
                {
                    pool.Return(held.Buffer);
                    context.Counters.CountDrop(Index, (ushort)NeighborDrop.ReleaseNoRoom);
                    continue;
                }

                o = held;
                o.Disposition = Disposition.Continue;
                PlaceInDomain(ref o, context, entry.Mac);
                context.L3.Released++;
                Trace(ref o, context, "released", (o.Flags & PacketFlags.Traced) != 0 ? $"next hop resolved to {new MacAddress(entry.Mac)}" : "");
            }

            neighbors.ClearHeld(ref entry);
        }
    }

    /// <summary>Retries unanswered requests, fails exhausted ones (dropping what they hold), and ages confirmed entries.</summary>
    public override void Heartbeat(WorkerContext context)
    {
        var l3 = context.Snapshot.L3;
        var neighbors = context.L3.Neighbors;
        var now = context.Now;
        var interval = l3.ProbeIntervalSeconds * context.TicksPerSecond;
        var lifetime = (l3.ReachableSeconds * context.TicksPerSecond) + ((l3.MaxProbes + 1) * interval);
        var i = 0;
        while (i < neighbors.SlotCount)
        {
            ref var e = ref neighbors.Slot(i);
            if (e.State == NeighborState.Incomplete && now >= e.NextProbe)
            {
                var gw = l3.Gateway(e.Domain);
                if (gw is not null && e.Probes < l3.MaxProbes)
                {
                    e.Probes++;
                    e.NextProbe = now + interval;
                    Solicit(context, gw, e.IsIpv6, e.AddressHi, e.AddressLo);
                    i++;
                    continue;
                }

                foreach (ref var held in neighbors.Held(ref e))
                {
                    Unreachable(context, l3, held);
                    context.Counters.CountDrop(Index, (ushort)NeighborDrop.Unresolved);
                    if ((held.Flags & PacketFlags.Traced) != 0)
                    {
                        context.Tracer.Record(held.TraceId, Name, "drop", $"{NeighborDrop.Unresolved}: no answer from {Text(e.IsIpv6, e.AddressHi, e.AddressLo)}");
                    }

                    context.Pool.Return(held.Buffer);
                }

                neighbors.ClearHeld(ref e);
                neighbors.Failed++;
                neighbors.RemoveAt(i);
                continue; // backward shift may have moved another entry into slot i
            }

            if (e.State == NeighborState.Reachable && now - e.Confirmed > lifetime && e.HeldCount == 0)
            {
                neighbors.RemoveAt(i);
                continue;
            }

            i++;
        }
    }

    public override void Release(WorkerContext context) => context.L3.Neighbors.Clear(context.Pool);

    /// <summary>
    /// A held packet whose next hop never answered: tell its source the host is unreachable (ICMP
    /// type 3 code 1, RFC 1812 section 5.2.7.1; ICMPv6 type 1 code 3, RFC 4443 section 3.1). The
    /// held packet's source MAC was already rewritten, so the error is routed like any packet: LPM
    /// on the source, and only to a next hop the cache already knows (no resolution for an error).
    /// </summary>
    private static void Unreachable(WorkerContext context, L3Tables l3, in PacketMeta held)
    {
        var pool = context.Pool;
        var frame = pool.Frame(held.Buffer, held.Offset, held.Length);
        var ipv6 = (held.Flags & PacketFlags.Ipv6) != 0;
        var offending = frame[held.L3Offset..];
        ulong hi = 0, lo;
        FibEntry? route;
        if (ipv6)
        {
            if (held.IpProtocol == IpProtocol.Icmpv6 && held.L4Offset != 0 && frame[held.L4Offset] < 128)
            {
                return;
            }

            var source = new Ipv6Header(offending).Source;
            var index = l3.Fib6.Lookup(source.High, source.Low);
            route = index < 0 ? null : l3.Routes6[index];
            (hi, lo) = route is { Kind: RouteKind.Static } ? (route.NextHopHi, route.NextHopLo) : (source.High, source.Low);
        }
        else
        {
            var ip = new Ipv4Header(offending);
            if (ip.IsLaterFragment || (held.IpProtocol == IpProtocol.Icmp && held.L4Offset != 0 && new Icmpv4Header(frame[held.L4Offset..]).IsError))
            {
                return;
            }

            var index = l3.Fib4.Lookup(ip.Source.Value);
            route = index < 0 ? null : l3.Routes4[index];
            lo = route is { Kind: RouteKind.Static } ? route.NextHopLo : ip.Source.Value;
        }

        if (route is null || l3.Gateway(route.Domain) is not { } gw || (ipv6 ? gw.Ipv6.Length : gw.Ipv4.Length) == 0)
        {
            return;
        }

        ref var neighbor = ref context.L3.Neighbors.Find(gw.Domain, ipv6, hi, lo);
        if (Unsafe.IsNullRef(ref neighbor) || neighbor.State != NeighborState.Reachable || !context.L3.IcmpErrors.TryTake(context.Now, context.TicksPerSecond))
        {
            return;
        }

        var buffer = pool.Rent();
        if (buffer < 0)
        {
            return;
        }

        var mac = new MacAddress(neighbor.Mac);
        var into = pool.Frame(buffer, PacketPool.Headroom, PacketPool.MaxFrame);
        var length = ipv6
            ? L3Messages.Icmpv6Error(into, mac, gw.Mac, gw.Ipv6[0].Ipv6, new Ipv6Header(offending).Packet, Icmpv6Type.DestinationUnreachable, 3, 0)
            : L3Messages.Icmpv4Error(into, mac, gw.Mac, new Ipv4Address(gw.Ipv4[0].Ipv4), new Ipv4Header(offending).Packet, Icmpv4Type.DestinationUnreachable, 1, 0);
        ref var error = ref context.Originate(buffer, PacketPool.Headroom, length);
        if (Unsafe.IsNullRef(ref error))
        {
            pool.Return(buffer);
            return;
        }

        error.Domain = (ushort)gw.Domain;
        PlaceInDomain(ref error, context, neighbor.Mac);
        context.L3.IcmpErrorsSent++;
    }

    /// <summary>
    /// Sends an ARP request (IPv4) or a neighbor solicitation (IPv6) for a next hop, flooded in its
    /// domain, from the gateway address on the next hop's subnet.
    /// </summary>
    public static void Solicit(WorkerContext context, GatewayInterface gw, bool ipv6, ulong hi, ulong lo)
    {
        var pool = context.Pool;
        var buffer = pool.Rent();
        if (buffer < 0)
        {
            return;
        }

        int length;
        var frame = pool.Frame(buffer, PacketPool.Headroom, 128);
        if (ipv6)
        {
            if (gw.Ipv6.Length == 0)
            {
                pool.Return(buffer);
                return;
            }

            var target = new Ipv6Address(hi, lo);
            var source = gw.Ipv6[0].Ipv6;
            foreach (var a in gw.Ipv6)
            {
                if (LpmTable.Mask128(a.Hi, a.Lo, a.Length) == LpmTable.Mask128(hi, lo, a.Length))
                {
                    source = a.Ipv6;
                    break;
                }
            }

            length = L3Messages.NeighborSolicitation(frame, gw.Mac, source, target);
        }
        else
        {
            if (gw.Ipv4.Length == 0)
            {
                pool.Return(buffer);
                return;
            }

            var source = gw.Ipv4[0].Ipv4;
            foreach (var a in gw.Ipv4)
            {
                if (LpmTable.Mask32(a.Lo, a.Length) == LpmTable.Mask32(lo, a.Length))
                {
                    source = a.Ipv4;
                    break;
                }
            }

            length = L3Messages.ArpFrame(frame, ArpOpcode.Request, MacAddress.Broadcast, gw.Mac, gw.Mac, new Ipv4Address(source), MacAddress.Zero, new Ipv4Address((uint)lo));
        }

        ref var request = ref context.Originate(buffer, PacketPool.Headroom, length);
        if (Unsafe.IsNullRef(ref request))
        {
            pool.Return(buffer);
            return;
        }

        request.Domain = (ushort)gw.Domain;
        request.Flags |= PacketFlags.Flood;
        context.L3.Neighbors.RequestsSent++;
    }

    /// <summary>The egress domain's MAC table picks the segment (and VTEP) for the next hop's MAC, or the packet floods.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PlaceInDomain(ref PacketMeta p, WorkerContext context, ulong mac)
    {
        ref var station = ref context.Bridge[p.Domain].Table.Find(mac);
        if (Unsafe.IsNullRef(ref station))
        {
            p.Flags |= PacketFlags.Flood;
            p.EgressSegment = -1;
            return;
        }

        p.EgressSegment = station.Segment;
        p.EgressVtep = station.Vtep;
    }

    private void Trace(ref PacketMeta p, WorkerContext context, string verdict, string detail)
    {
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, verdict, detail);
        }
    }

    private static string Text(bool ipv6, ulong hi, ulong lo) => ipv6 ? new Ipv6Address(hi, lo).ToString() : new Ipv4Address((uint)lo).ToString();
}
