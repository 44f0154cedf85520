using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Route;

public enum RouteDrop : ushort
{
    /// <summary>No FIB entry covers the destination; an ICMP net unreachable (ICMPv6 no route) goes back.</summary>
    NoRoute,

    /// <summary>TTL / hop limit would reach 0; an ICMP time exceeded goes back (RFC 1812 section 5.3.1, RFC 4443 section 3.3).</summary>
    TtlExpired,

    /// <summary>Bigger than the egress MTU with DF set (RFC 1191) or IPv6 (RFC 8201); frag-needed / packet too big goes back.</summary>
    FragmentationNeeded,

    /// <summary>The destination is multicast, broadcast (also a connected subnet's directed broadcast), unspecified, loopback or link-local: never routed.</summary>
    BadDestination,

    /// <summary>An IPv6 link-local source may not leave its link (RFC 4291 section 2.5.6).</summary>
    LinkLocalSource,
}

/// <summary>
/// IPv4/IPv6 forwarding for packets the gateway stage parsed: longest-prefix match on the
/// destination (read from the packet bytes, after any DNAT), TTL/hop limit, egress MTU, TCP MSS
/// clamping, and the MAC rewrite toward the next hop from the neighbor cache. A next hop that is not
/// resolved yet leaves the packet with a zero destination MAC for the neighbor stage. See README.md.
/// </summary>
public sealed class RouteStage() : PipelineStage("route", typeof(RouteDrop))
{
    /// <inheritdoc/>
    public override bool SkipsFinished => true;

    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var l3 = context.Snapshot.L3;
        if (l3.Gateways.Length == 0)
        {
            return;
        }

        var pool = context.Pool;
        var packets = batch.Packets;
        var cache = new TrainCache(0, -1, -1, 0, 0, 0, 0, 0, 0);
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.L3Parsed | PacketFlags.Local | PacketFlags.Routed)) != PacketFlags.L3Parsed)
            {
                continue;
            }

            var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
            if ((p.Flags & PacketFlags.Ipv6) == 0)
            {
                Route4(ref p, i, context, l3, frame, ref cache);
            }
            else
            {
                Route6(ref p, context, l3, frame);
            }
        }
    }

    /// <summary>
    /// The last IPv4 route of this batch, for trains of packets to one destination: the FIB entry
    /// (<see cref="Index"/>, immutable per snapshot), and when its next hop was reachable the
    /// neighbor's MAC and where that MAC sits in the egress domain (<see cref="Segment"/>, -1 to
    /// flood). The neighbor cache and MAC tables do not change while this stage runs, and the first
    /// packet of the train ran the stale-entry probe, so the rest find exactly what it found. With it,
    /// until when the neighbor needs no probe, and the adjacency bound for fast-path candidates (0: none yet).
    /// </summary>
    private record struct TrainCache(uint Destination, int Index, int NeighborDomain, uint NextHop, ulong Mac, int Segment, uint Vtep, long FreshUntil, ushort Adjacency);

    private void Route4(ref PacketMeta p, int slot, WorkerContext context, L3Tables l3, Span<byte> frame, ref TrainCache cache)
    {
        var ip = new Ipv4Header(frame[p.L3Offset..]);
        var destination = ip.Destination;
        if (destination.IsMulticast || destination.IsBroadcast || destination.IsAny || destination.IsLoopback)
        {
            Drop(ref p, (ushort)RouteDrop.BadDestination);
            return;
        }

        int index;
        if (cache.Index >= 0 && cache.Destination == destination.Value)
        {
            index = cache.Index;
        }
        else
        {
            index = l3.Fib4.Lookup(destination.Value);
            if (index >= 0)
            {
                cache = new TrainCache(destination.Value, index, -1, 0, 0, 0, 0, 0, 0);
            }
        }

        if (index < 0)
        {
            Icmp4Error(ref p, slot, context, frame, Icmpv4Type.DestinationUnreachable, 0, 0);
            Drop(ref p, (ushort)RouteDrop.NoRoute);
            return;
        }

        var route = l3.Routes4[index];
        if (route.Kind == RouteKind.Connected && route.Length <= 30 && (destination.Value | (0xFFFF_FFFFu << (32 - route.Length))) == 0xFFFF_FFFFu)
        {
            // A connected subnet's directed broadcast is not forwarded (RFC 2644).
            Drop(ref p, (ushort)RouteDrop.BadDestination);
            return;
        }

        var egress = l3.Gateways[route.Domain]!;
        if (ip.Ttl <= 1)
        {
            Icmp4Error(ref p, slot, context, frame, Icmpv4Type.TimeExceeded, 0, 0);
            Drop(ref p, (ushort)RouteDrop.TtlExpired);
            return;
        }

        if (ip.TotalLength > egress.Mtu && ip.DontFragment)
        {
            // RFC 1191 section 4: code 4 with the next-hop MTU in the low 16 bits. Without DF the
            // packet goes on; encap fragments it for the segment it leaves on (after NAT, as Linux
            // fragments after POSTROUTING).
            Icmp4Error(ref p, slot, context, frame, Icmpv4Type.DestinationUnreachable, 4, (uint)egress.Mtu);
            Drop(ref p, (ushort)RouteDrop.FragmentationNeeded);
            return;
        }

        ip.TryDecrementTtl();
        if (p.IpProtocol == IpProtocol.Tcp && p.L4Offset != 0)
        {
            ClampMss(frame[p.L4Offset..(p.L3Offset + ip.TotalLength)], l3.Gateway(p.Domain), egress);
        }

        var nextHop = route.Kind == RouteKind.Static ? route.NextHopLo : destination.Value;
        if (cache.NeighborDomain == egress.Domain && cache.NextHop == (uint)nextHop && (p.Flags & PacketFlags.Traced) == 0)
        {
            // Same as Forward with a reachable neighbor, from the train cache.
            p.IngressDomain = p.Domain;
            p.Domain = (ushort)egress.Domain;
            p.Flags = (p.Flags & ~(PacketFlags.Flood | PacketFlags.Bum | PacketFlags.ToGateway)) | PacketFlags.Routed;
            p.EgressVtep = 0;
            egress.Mac.WriteTo(frame[6..]);
            new MacAddress(cache.Mac).WriteTo(frame);
            if (cache.Segment < 0)
            {
                p.Flags |= PacketFlags.Flood;
                p.EgressSegment = -1;
            }
            else
            {
                p.EgressSegment = cache.Segment;
                p.EgressVtep = cache.Vtep;
            }

            BindFastPath(ref p, slot, context, egress, ref cache);
            return;
        }

        if (Forward(ref p, context, frame, egress, false, 0, nextHop, route, out var mac, out var freshUntil))
        {
            cache = cache with { NeighborDomain = egress.Domain, NextHop = (uint)nextHop, Mac = mac, Segment = p.EgressSegment, Vtep = p.EgressVtep, FreshUntil = freshUntil, Adjacency = 0 };
            BindFastPath(ref p, slot, context, egress, ref cache);
        }
    }

    /// <summary>
    /// A known flow's packet that may teach its session the fast path (Firewall/FlowCache.cs) gets
    /// the adjacency of its next hop: unicast to a known segment, and a neighbor that needs no probe.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BindFastPath(ref PacketMeta p, int slot, WorkerContext context, GatewayInterface egress, ref TrainCache cache)
    {
        if ((p.Flags & PacketFlags.KnownFlow) == 0)
        {
            return;
        }

        ref var pending = ref context.Flows.Pending[slot];
        if (!pending.FastCandidate || cache.Segment < 0 || context.Now >= cache.FreshUntil)
        {
            return;
        }

        if (cache.Adjacency == 0)
        {
            cache.Adjacency = context.L3.Adjacencies.Bind(context.Epoch.Value, (ushort)egress.Domain, cache.NextHop, cache.Mac, egress.Mac.Value, cache.Segment, cache.Vtep, egress.Mtu, cache.FreshUntil);
        }

        pending.Adjacency = cache.Adjacency;
    }

    private void Route6(ref PacketMeta p, WorkerContext context, L3Tables l3, Span<byte> frame)
    {
        var ip = new Ipv6Header(frame[p.L3Offset..]);
        var destination = ip.Destination;
        if (destination.IsMulticast || destination.IsLinkLocal || destination.IsAny || (destination.High == 0 && destination.Low == 1))
        {
            Drop(ref p, (ushort)RouteDrop.BadDestination);
            return;
        }

        if (ip.Source.IsLinkLocal)
        {
            // RFC 4443 section 3.1 code 2 would apply; a link-local sender cannot be routed to anyway.
            Drop(ref p, (ushort)RouteDrop.LinkLocalSource);
            return;
        }

        var index = l3.Fib6.Lookup(destination.High, destination.Low);
        if (index < 0)
        {
            Icmp6Error(ref p, context, frame, Icmpv6Type.DestinationUnreachable, 0, 0);
            Drop(ref p, (ushort)RouteDrop.NoRoute);
            return;
        }

        var route = l3.Routes6[index];
        var egress = l3.Gateways[route.Domain]!;
        if (ip.HopLimit <= 1)
        {
            Icmp6Error(ref p, context, frame, Icmpv6Type.TimeExceeded, 0, 0);
            Drop(ref p, (ushort)RouteDrop.TtlExpired);
            return;
        }

        if (Ipv6Header.Length + ip.PayloadLength > egress.Mtu)
        {
            // RFC 8201 / RFC 4443 section 3.2: routers never fragment IPv6; tell the source the MTU.
            Icmp6Error(ref p, context, frame, Icmpv6Type.PacketTooBig, 0, (uint)egress.Mtu);
            Drop(ref p, (ushort)RouteDrop.FragmentationNeeded);
            return;
        }

        ip.HopLimit--;
        if (p.IpProtocol == IpProtocol.Tcp && p.L4Offset != 0)
        {
            ClampMss(frame[p.L4Offset..(p.L3Offset + Ipv6Header.Length + ip.PayloadLength)], l3.Gateway(p.Domain), egress);
        }

        var nextHop = route.Kind == RouteKind.Static ? new Ipv6Address(route.NextHopHi, route.NextHopLo) : destination;
        Forward(ref p, context, frame, egress, true, nextHop.High, nextHop.Low, route, out _, out _);
    }

    /// <summary>TCP MSS clamping on SYNs (both directions) to the smaller clamp of the two interfaces.</summary>
    private static void ClampMss(Span<byte> segment, GatewayInterface? ingress, GatewayInterface egress)
    {
        var clamp = Smaller(ingress?.MssClamp ?? 0, egress.MssClamp);
        if (clamp == 0 || TcpHeader.TryParse(segment, out var tcp) != ParseError.None || (tcp.Flags & TcpFlags.Syn) == 0)
        {
            return;
        }

        tcp.ClampMss(clamp);
    }

    private static ushort Smaller(ushort a, ushort b) => a == 0 ? b : b == 0 ? a : Math.Min(a, b);

    /// <summary>
    /// Hands the packet to the egress domain: source MAC = egress gateway, destination MAC = next hop
    /// (when resolved), then the egress domain's MAC table decides the segment, as the bridge would.
    /// </summary>
    /// <returns>
    /// Whether the next hop was reachable (its MAC in <paramref name="mac"/>, and until when it needs no
    /// probe in <paramref name="freshUntil"/>).
    /// </returns>
    private bool Forward(ref PacketMeta p, WorkerContext context, Span<byte> frame, GatewayInterface egress, bool ipv6, ulong hi, ulong lo, FibEntry route, out ulong mac, out long freshUntil)
    {
        mac = 0;
        freshUntil = 0;
        p.IngressDomain = p.Domain;
        p.Domain = (ushort)egress.Domain;
        p.Flags = (p.Flags & ~(PacketFlags.Flood | PacketFlags.Bum | PacketFlags.ToGateway)) | PacketFlags.Routed;
        p.EgressSegment = -1;
        p.EgressVtep = 0;
        egress.Mac.WriteTo(frame[6..]);

        var neighbors = context.L3.Neighbors;
        ref var neighbor = ref neighbors.Find(egress.Domain, ipv6, hi, lo);
        if (Unsafe.IsNullRef(ref neighbor) || neighbor.State != NeighborState.Reachable)
        {
            // Zero destination MAC: the neighbor stage resolves it after firewall and NAT have seen the packet.
            MacAddress.Zero.WriteTo(frame);
            Trace(ref p, context, route, "next hop unresolved: the neighbor stage resolves it");
            return false;
        }

        var l3 = context.Snapshot.L3;
        var now = context.Now;
        freshUntil = neighbor.Confirmed + (l3.ReachableSeconds * context.TicksPerSecond);
        if (now - neighbor.Confirmed > l3.ReachableSeconds * context.TicksPerSecond && now >= neighbor.NextProbe)
        {
            // RFC 4861 section 7.3.3: a stale entry is still used while a probe re-confirms it.
            neighbor.NextProbe = now + (l3.ProbeIntervalSeconds * context.TicksPerSecond);
            NeighborStage.Solicit(context, egress, ipv6, hi, lo);
        }

        new MacAddress(neighbor.Mac).WriteTo(frame);
        NeighborStage.PlaceInDomain(ref p, context, neighbor.Mac);
        Trace(ref p, context, route, (p.Flags & PacketFlags.Traced) != 0 ? $"next hop at {new MacAddress(neighbor.Mac)}" : "");
        mac = neighbor.Mac;
        return true;
    }

    private void Trace(ref PacketMeta p, WorkerContext context, FibEntry route, string detail)
    {
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "routed", $"{route.Prefix} {route.NextHopText} → {context.Snapshot.Domains[p.Domain].Name}; {detail}");
        }
    }

    // ---------------------------------------------------------------- ICMP errors back to the sender

    private void Icmp4Error(ref PacketMeta p, int slot, WorkerContext context, Span<byte> frame, byte type, byte code, uint rest)
    {
        var offending = frame[p.L3Offset..];
        var ip = new Ipv4Header(offending);
        // RFC 1812 section 4.3.2.7: never about an ICMP error or a non-first fragment.
        if (ip.IsLaterFragment || (p.IpProtocol == IpProtocol.Icmp && p.L4Offset != 0 && new Icmpv4Header(frame[p.L4Offset..]).IsError))
        {
            return;
        }

        var gw = context.Snapshot.L3.Gateway(p.Domain);
        if (gw is null || gw.Ipv4.Length == 0 || !TryErrorBuffer(context, out var buffer))
        {
            return;
        }

        var source = new Ipv4Address(gw.Ipv4[0].Ipv4);
        var error = context.Pool.Frame(buffer, PacketPool.Headroom, PacketPool.MaxFrame);
        var length = L3Messages.Icmpv4Error(error, MacAddress.Read(frame[6..]), gw.Mac, source, ip.Packet, type, code, rest);
        if ((p.Flags & (PacketFlags.KnownFlow | PacketFlags.NewFlow)) != 0)
        {
            // Conntrack (or the lb stage) already rewrote the destination (DNAT, un-SNAT of a reply):
            // quote the packet as its sender sent it, or the sender cannot match the error to its
            // socket (PMTU discovery through a port forward would black-hole). RFC 5508 section 4.2.
            ref var pending = ref context.Flows.Pending[slot];
            if (pending.Current != pending.Original)
            {
                NatRewriter.RewriteQuote(error[(EthernetHeader.Length + Ipv4Header.MinLength)..length], pending.Original.Protocol, pending.Original);
            }
        }

        SendError(ref p, context, buffer, length, type, code);
    }

    private void Icmp6Error(ref PacketMeta p, WorkerContext context, Span<byte> frame, byte type, byte code, uint rest)
    {
        var ip = new Ipv6Header(frame[p.L3Offset..]);
        // RFC 4443 section 2.4 (e): never about an ICMPv6 error.
        if (p.IpProtocol == IpProtocol.Icmpv6 && p.L4Offset != 0 && frame[p.L4Offset] < 128)
        {
            return;
        }

        var gw = context.Snapshot.L3.Gateway(p.Domain);
        if (gw is null || gw.Ipv6.Length == 0 || !TryErrorBuffer(context, out var buffer))
        {
            return;
        }

        var length = L3Messages.Icmpv6Error(context.Pool.Frame(buffer, PacketPool.Headroom, PacketPool.MaxFrame), MacAddress.Read(frame[6..]), gw.Mac, gw.Ipv6[0].Ipv6, ip.Packet, type, code, rest);
        SendError(ref p, context, buffer, length, type, code);
    }

    private static bool TryErrorBuffer(WorkerContext context, out int buffer)
    {
        buffer = -1;
        if (!context.L3.IcmpErrors.TryTake(context.Now, context.TicksPerSecond))
        {
            context.L3.IcmpErrorsRateLimited++;
            return false;
        }

        buffer = context.Pool.Rent();
        return buffer >= 0;
    }

    /// <summary>
    /// The error goes back the way the packet came: to its source MAC on its ingress segment (and VTEP).
    /// That is the previous hop, so no route lookup or neighbor resolution is needed.
    /// </summary>
    private void SendError(ref PacketMeta p, WorkerContext context, int buffer, int length, byte type, byte code)
    {
        ref var error = ref context.Originate(buffer, PacketPool.Headroom, length);
        if (Unsafe.IsNullRef(ref error))
        {
            context.Pool.Return(buffer);
            return;
        }

        context.L3.IcmpErrorsSent++;
        error.Domain = p.Domain;
        error.EgressSegment = p.IngressSegment;
        error.EgressVtep = context.Snapshot.Segments[p.IngressSegment].Kind == PortKind.Vxlan ? p.RemoteVtep : 0;
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            error.Flags |= PacketFlags.Traced;
            error.TraceId = p.TraceId;
            context.Tracer.Record(p.TraceId, Name, "icmp error", $"type {type} code {code} sent back to the source");
        }
    }
}
