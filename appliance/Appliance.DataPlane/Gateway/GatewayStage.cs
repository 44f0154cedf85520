using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Gateway;

public enum GatewayDrop : ushort
{
    /// <summary>Addressed to the gateway MAC but neither IPv4, IPv6 nor ARP.</summary>
    NotIp,

    /// <summary>An IPv4/IPv6 header that does not parse (version, lengths, extension header chain).</summary>
    BadIpHeader,

    /// <summary>IPv4 header checksum wrong (RFC 1812 section 5.2.2: a router must verify it).</summary>
    BadIpChecksum,

    /// <summary>Source is unspecified, multicast, broadcast or loopback (RFC 1812 section 5.3.7).</summary>
    MartianSource,

    /// <summary>Anti-spoofing: the source IP is outside the domain's prefixes, or not bound to the sending MAC.</summary>
    Spoofed,

    /// <summary>For one of the appliance's own addresses, but not ARP, ND or echo: the data plane serves nothing else.</summary>
    NotServed,

    /// <summary>An ARP packet for the gateway MAC that is not Ethernet/IPv4 ARP.</summary>
    BadArp,

    /// <summary>A neighbor discovery message that fails RFC 4861 section 7.1 validation (hop limit, checksum, length).</summary>
    BadNd,

    /// <summary>No buffer (or no room in the originated batch) for a reply; the request itself goes on.</summary>
    NoBuffer,

    /// <summary>
    /// ARP for one of the gateway's own addresses on a segment where the mobility settings filter it (the
    /// interconnect): the other site's gateway shares the address, and each site's workloads must reach
    /// their local one.
    /// </summary>
    GatewayArpFiltered,
}

/// <summary>
/// The appliance's own L3 interface per bridge domain: answers ARP and IPv6 NS for its addresses and
/// ping to them, learns neighbors from every ARP/ND it sees, answers for known stations when proxy
/// ARP (ARP suppression) is on, enforces anti-spoofing, and parses L3 for the stages after it.
/// See README.md.
/// </summary>
public sealed class GatewayStage() : PipelineStage("gateway", typeof(GatewayDrop))
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

        // The last IPv4 destination of this batch known not to be one of the appliance's own
        // addresses (LocalIpv4 is immutable per snapshot): a train to one destination looks it up once.
        var foreign = new ForeignCache(0, false);
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.ToGateway | PacketFlags.Bum)) == 0)
            {
                continue;
            }

            var gw = l3.Gateway(p.Domain);
            if (gw is null || p.Length < EthernetHeader.Length)
            {
                continue;
            }

            var toGateway = (p.Flags & PacketFlags.ToGateway) != 0;
            var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
            switch (L3Messages.EtherTypeOf(frame))
            {
                case EtherType.Arp:
                    Arp(ref p, context, frame, gw, toGateway);
                    break;
                case EtherType.Ipv4 when toGateway:
                    Ipv4(ref p, context, frame, gw, ref foreign);
                    break;
                case EtherType.Ipv6:
                    Ipv6(ref p, context, frame, gw, toGateway);
                    break;
                default:
                    if (toGateway)
                    {
                        Drop(ref p, (ushort)GatewayDrop.NotIp);
                    }

                    break;
            }
        }
    }

    // ---------------------------------------------------------------- ARP (RFC 826, RFC 5227)

    private void Arp(ref PacketMeta p, WorkerContext context, Span<byte> frame, GatewayInterface gw, bool toGateway)
    {
        if (ArpPacket.TryParse(frame[EthernetHeader.Length..], out var arp) != ParseError.None)
        {
            if (toGateway)
            {
                Drop(ref p, (ushort)GatewayDrop.BadArp);
            }

            return;
        }

        var l3 = context.Snapshot.L3;
        var opcode = arp.Opcode;
        var senderMac = arp.SenderMac;
        var senderIp = arp.SenderIp;
        var targetIp = arp.TargetIp;
        var traced = (p.Flags & PacketFlags.Traced) != 0;
        var filter = context.GatewayArpFilter;
        if ((uint)p.IngressSegment < (uint)filter.Length && filter[p.IngressSegment] && (gw.Owns(targetIp.Value) || gw.Owns(senderIp.Value)))
        {
            Drop(ref p, (ushort)GatewayDrop.GatewayArpFiltered);
            return;
        }

        var allowed = senderIp.IsAny || Allowed(gw, senderIp.Value, senderMac.Value);
        if (!allowed)
        {
            // A station claiming an address it may not use learns nothing and gets no answer.
            if (toGateway)
            {
                Drop(ref p, (ushort)GatewayDrop.Spoofed);
            }
            else if (traced)
            {
                context.Tracer.Record(p.TraceId, Name, "ignore", $"ARP from {senderMac} claims {senderIp}: not allowed (anti-spoofing)");
            }

            return;
        }

        // Learn from every ARP (requests, replies, gratuitous ARP): sender IP → sender MAC.
        if (!senderIp.IsAny && senderMac.IsUnicast && !senderMac.IsZero && gw.OnLink(senderIp.Value) && !l3.LocalIpv4.ContainsKey(senderIp.Value))
        {
            // Mobility: a gratuitous ARP, or a binding that is new or points to another MAC, is a signal.
            ref var known = ref context.L3.Neighbors.Find(gw.Domain, false, 0, senderIp.Value);
            var changed = Unsafe.IsNullRef(ref known) || known.State != NeighborState.Reachable || known.Mac != senderMac.Value;
            if (changed || arp.IsGratuitous)
            {
                Signal(ref p, context, arp.IsGratuitous ? MobilitySignalKind.Garp : MobilitySignalKind.Binding, senderMac.Value, false, 0, senderIp.Value);
            }

            context.L3.Neighbors.Confirm(gw.Domain, false, 0, senderIp.Value, senderMac.Value, context.Now);
            if (traced)
            {
                context.Tracer.Record(p.TraceId, Name, "learn", $"{senderIp} is at {senderMac} in {gw.DomainName}{(arp.IsGratuitous ? " (gratuitous ARP)" : "")}");
            }
        }

        // Our interface addresses, and NAT addresses on this link (SNAT pools, DNAT and 1:1 externals)
        // that the upstream router must resolve to us.
        if (opcode == ArpOpcode.Request
            && (gw.Owns(targetIp.Value) || (gw.OnLink(targetIp.Value) && context.Snapshot.Firewall.NatAddresses.Contains(targetIp.Value))))
        {
            context.L3.ArpReplies++;
            Answer(ref p, context, gw, toGateway, gw.Mac, targetIp, senderMac, senderIp, "ARP reply", (p.Flags & PacketFlags.Traced) != 0 ? $"{targetIp} is at {gw.Mac}" : "");
            return;
        }

        if (opcode == ArpOpcode.Request && !toGateway && gw.ProxyArp && targetIp != senderIp && gw.OnLink(targetIp.Value)
            && TryKnown(context, gw, targetIp.Value, out var owner) && owner != senderMac.Value)
        {
            // ARP suppression: the owner is known, so answer for it and do not flood the request.
            context.L3.ProxyReplies++;
            var ownerMac = new MacAddress(owner);
            Answer(ref p, context, gw, toGateway: true, ownerMac, targetIp, senderMac, senderIp, "proxy ARP reply", (p.Flags & PacketFlags.Traced) != 0 ? $"{targetIp} is at {ownerMac} (suppressed flood)" : "");
            return;
        }

        if (toGateway)
        {
            // A reply to our request (learned above) or anything else unicast to the gateway: it ends here.
            Absorb(ref p, context, (p.Flags & PacketFlags.Traced) != 0 ? $"ARP {opcode} for the gateway" : "");
        }
    }

    /// <summary>
    /// Sends an ARP reply (<paramref name="replyMac"/> has <paramref name="replyIp"/>) to the asker: in
    /// place when the request was for the gateway MAC (or is suppressed), as a copy when the request is
    /// also being flooded.
    /// </summary>
    private void Answer(ref PacketMeta p, WorkerContext context, GatewayInterface gw, bool toGateway, MacAddress replyMac, Ipv4Address replyIp, MacAddress askerMac, Ipv4Address askerIp, string verdict, string detail)
    {
        var pool = context.Pool;
        if (toGateway)
        {
            var frame = pool.Frame(p.Buffer, p.Offset, EthernetHeader.Length + ArpPacket.Length);
            p.Length = L3Messages.ArpFrame(frame, ArpOpcode.Reply, askerMac, gw.Mac, replyMac, replyIp, askerMac, askerIp);
            TurnAround(ref p, context);
            Trace(ref p, context, verdict, detail);
            return;
        }

        var buffer = pool.Rent();
        if (buffer < 0)
        {
            context.Counters.CountDrop(Index, (ushort)GatewayDrop.NoBuffer);
            return;
        }

        var length = L3Messages.ArpFrame(pool.Frame(buffer, PacketPool.Headroom, 64), ArpOpcode.Reply, askerMac, gw.Mac, replyMac, replyIp, askerMac, askerIp);
        SendCopy(ref p, context, buffer, length, verdict, detail);
    }

    // ---------------------------------------------------------------- IPv4

    /// <summary>An IPv4 destination that is none of the appliance's addresses.</summary>
    private readonly record struct ForeignCache(uint Destination, bool Valid);

    private void Ipv4(ref PacketMeta p, WorkerContext context, Span<byte> frame, GatewayInterface gw, ref ForeignCache foreign)
    {
        const int l3Offset = EthernetHeader.Length;
        if (Ipv4Header.TryParse(frame[l3Offset..], out var ip) != ParseError.None)
        {
            Drop(ref p, (ushort)GatewayDrop.BadIpHeader);
            return;
        }

        if (!ip.IsHeaderChecksumValid)
        {
            Drop(ref p, (ushort)GatewayDrop.BadIpChecksum);
            return;
        }

        var source = ip.Source;
        if (source.IsAny || source.IsMulticast || source.IsBroadcast || source.IsLoopback)
        {
            Drop(ref p, (ushort)GatewayDrop.MartianSource);
            return;
        }

        var sourceMac = MacAddress.Read(frame[6..]).Value;
        if (!Allowed(gw, source.Value, sourceMac))
        {
            Drop(ref p, (ushort)GatewayDrop.Spoofed);
            return;
        }

        p.L3Offset = l3Offset;
        p.IpProtocol = ip.Protocol;
        p.L4Offset = ip.IsLaterFragment ? (ushort)0 : (ushort)(l3Offset + ip.HeaderLength);
        p.Flags = (p.Flags & ~PacketFlags.Ipv6) | PacketFlags.L3Parsed;

        var to = ip.Destination.Value;
        if ((foreign.Valid && foreign.Destination == to) || !context.Snapshot.L3.LocalIpv4.ContainsKey(to))
        {
            foreign = new ForeignCache(to, true);
            return;
        }

        // For the appliance itself: only echo is served here (RFC 1122 section 3.2.2.6).
        if (ip.Protocol == IpProtocol.Icmp && !ip.IsFragment && Icmpv4Header.TryParse(ip.Payload, out var icmp) == ParseError.None
            && icmp.Type == Icmpv4Type.EchoRequest && icmp.Code == 0)
        {
            var destination = ip.Destination;
            ip.Source = destination;
            ip.Destination = source;
            ip.Ttl = 64;
            ip.UpdateHeaderChecksum();
            icmp.Type = Icmpv4Type.EchoReply;
            icmp.Checksum = Checksum.Update(icmp.Checksum, (ushort)(Icmpv4Type.EchoRequest << 8), (ushort)(Icmpv4Type.EchoReply << 8));
            SwapMacs(frame, gw);
            context.L3.EchoReplies++;
            TurnAround(ref p, context);
            Trace(ref p, context, "echo reply", (p.Flags & PacketFlags.Traced) != 0 ? $"{destination} answers ping from {source}" : "");
            return;
        }

        // With NAT on, anything else to our own address may be a reply to a masqueraded flow, an ICMP
        // error about one, or a port forward: conntrack decides (unclaimed: conntrack.ToApplianceNoFlow).
        if (context.Snapshot.Firewall.Tracking)
        {
            return;
        }

        Drop(ref p, (ushort)GatewayDrop.NotServed);
    }

    // ---------------------------------------------------------------- IPv6 and ND (RFC 8200, RFC 4861)

    private void Ipv6(ref PacketMeta p, WorkerContext context, Span<byte> frame, GatewayInterface gw, bool toGateway)
    {
        const int l3Offset = EthernetHeader.Length;
        if (Ipv6Header.TryParse(frame[l3Offset..], out var ip) != ParseError.None || ip.TryWalkExtensionHeaders(out var upper) != ParseError.None)
        {
            if (toGateway)
            {
                Drop(ref p, (ushort)GatewayDrop.BadIpHeader);
            }

            return;
        }

        var isIcmp = upper.Protocol == IpProtocol.Icmpv6 && !upper.IsFragment && upper.Length >= Icmpv6Header.Length;
        var icmpType = isIcmp ? frame[l3Offset + upper.Offset] : (byte)0;
        if (!toGateway)
        {
            // Flooded multicast: only neighbor solicitations and unsolicited advertisements concern the gateway.
            if (icmpType is Icmpv6Type.NeighborSolicitation or Icmpv6Type.NeighborAdvertisement)
            {
                Neighbor(ref p, context, frame, ip, upper, gw, toGateway: false);
            }

            return;
        }

        var source = ip.Source;
        if (source.IsMulticast || source.IsAny || (source.High == 0 && source.Low == 1))
        {
            Drop(ref p, (ushort)GatewayDrop.MartianSource);
            return;
        }

        if (icmpType is >= Icmpv6Type.RouterSolicitation and <= Icmpv6Type.NeighborAdvertisement + 1)
        {
            // ND for the gateway MAC: unicast NS (reachability confirmation), NA answering our NS, RS/RA/redirect.
            Neighbor(ref p, context, frame, ip, upper, gw, toGateway: true);
            return;
        }

        var sourceMac = MacAddress.Read(frame[6..]).Value;
        if (!Allowed(gw, source, sourceMac))
        {
            Drop(ref p, (ushort)GatewayDrop.Spoofed);
            return;
        }

        p.L3Offset = l3Offset;
        p.IpProtocol = upper.Protocol;
        p.L4Offset = upper.IsLaterFragment ? (ushort)0 : (ushort)(l3Offset + upper.Offset);
        p.Flags |= PacketFlags.L3Parsed | PacketFlags.Ipv6;

        var destination = ip.Destination;
        if (!context.Snapshot.L3.LocalIpv6.ContainsKey(destination))
        {
            return;
        }

        if (icmpType == Icmpv6Type.EchoRequest && frame[l3Offset + upper.Offset + 1] == 0)
        {
            // RFC 4443 section 4.2: the reply carries the request's data; swapping the addresses keeps
            // the pseudo-header sum, so only the type word changes in the checksum.
            var icmp = new Icmpv6Header(frame.Slice(l3Offset + upper.Offset, upper.Length));
            ip.Source = destination;
            ip.Destination = source;
            ip.HopLimit = 64;
            icmp.Type = Icmpv6Type.EchoReply;
            icmp.Checksum = Checksum.Update(icmp.Checksum, (ushort)(Icmpv6Type.EchoRequest << 8), (ushort)(Icmpv6Type.EchoReply << 8));
            SwapMacs(frame, gw);
            context.L3.EchoReplies++;
            TurnAround(ref p, context);
            Trace(ref p, context, "echo reply", (p.Flags & PacketFlags.Traced) != 0 ? $"{destination} answers ping from {source}" : "");
            return;
        }

        Drop(ref p, (ushort)GatewayDrop.NotServed);
    }

    private void Neighbor(ref PacketMeta p, WorkerContext context, Span<byte> frame, Ipv6Header ip, Ipv6UpperLayer upper, GatewayInterface gw, bool toGateway)
    {
        const int l3Offset = EthernetHeader.Length;
        var message = frame.Slice(l3Offset + upper.Offset, upper.Length);
        var type = message[0];
        if (type is not (Icmpv6Type.NeighborSolicitation or Icmpv6Type.NeighborAdvertisement))
        {
            // RS, RA, redirect: the appliance sends no RAs and takes no redirects.
            Absorb(ref p, context, (p.Flags & PacketFlags.Traced) != 0 ? $"ICMPv6 type {type} for the gateway" : "");
            return;
        }

        // RFC 4861 sections 7.1.1 and 7.1.2.
        var source = ip.Source;
        var destination = ip.Destination;
        if (ip.HopLimit != L3Messages.NdHopLimit || message.Length < L3Messages.NdFixedLength || message[1] != 0
            || !new Icmpv6Header(message).IsChecksumValid(source, destination))
        {
            if (toGateway)
            {
                Drop(ref p, (ushort)GatewayDrop.BadNd);
            }

            return;
        }

        var target = Ipv6Address.Read(message[8..]);
        var options = message[L3Messages.NdFixedLength..];
        var senderMac = MacAddress.Read(frame[6..]);
        var traced = (p.Flags & PacketFlags.Traced) != 0;
        var l3 = context.Snapshot.L3;
        if (type == Icmpv6Type.NeighborAdvertisement)
        {
            // A solicited answer to our NS, or an unsolicited announcement (the IPv6 GARP).
            if (L3Messages.TryGetLinkLayerOption(options, L3Messages.OptionTargetLinkLayer, out var targetMac)
                && targetMac.IsUnicast && !targetMac.IsZero && gw.OnLink(target) && !l3.LocalIpv6.ContainsKey(target)
                && Allowed(gw, target, targetMac.Value))
            {
                // Mobility: an unsolicited NA (Solicited flag clear: the IPv6 GARP) or a new binding is a signal.
                ref var known = ref context.L3.Neighbors.Find(gw.Domain, true, target.High, target.Low);
                var unsolicited = (message[4] & 0x40) == 0;
                if (unsolicited || Unsafe.IsNullRef(ref known) || known.State != NeighborState.Reachable || known.Mac != targetMac.Value)
                {
                    Signal(ref p, context, unsolicited ? MobilitySignalKind.Garp : MobilitySignalKind.Binding, targetMac.Value, true, target.High, target.Low);
                }

                context.L3.Neighbors.Confirm(gw.Domain, true, target.High, target.Low, targetMac.Value, context.Now);
                if (traced)
                {
                    context.Tracer.Record(p.TraceId, Name, "learn", $"{target} is at {targetMac} in {gw.DomainName} (neighbor advertisement)");
                }
            }

            if (toGateway)
            {
                Absorb(ref p, context, "neighbor advertisement for the gateway");
            }

            return;
        }

        if (target.IsMulticast)
        {
            if (toGateway)
            {
                Drop(ref p, (ushort)GatewayDrop.BadNd);
            }

            return;
        }

        if (source.IsAny)
        {
            // Duplicate address detection (RFC 4862 section 5.4): nothing to learn, nothing to answer
            // unless someone probes our own address, which we do not defend here.
            return;
        }

        if (!Allowed(gw, source, senderMac.Value))
        {
            if (toGateway)
            {
                Drop(ref p, (ushort)GatewayDrop.Spoofed);
            }

            return;
        }

        var askerMac = senderMac;
        if (L3Messages.TryGetLinkLayerOption(options, L3Messages.OptionSourceLinkLayer, out var sourceLinkLayer))
        {
            askerMac = sourceLinkLayer;
            if (sourceLinkLayer.IsUnicast && !sourceLinkLayer.IsZero && gw.OnLink(source) && !l3.LocalIpv6.ContainsKey(source))
            {
                ref var known = ref context.L3.Neighbors.Find(gw.Domain, true, source.High, source.Low);
                if (Unsafe.IsNullRef(ref known) || known.State != NeighborState.Reachable || known.Mac != sourceLinkLayer.Value)
                {
                    Signal(ref p, context, MobilitySignalKind.Binding, sourceLinkLayer.Value, true, source.High, source.Low);
                }

                context.L3.Neighbors.Confirm(gw.Domain, true, source.High, source.Low, sourceLinkLayer.Value, context.Now);
                if (traced)
                {
                    context.Tracer.Record(p.TraceId, Name, "learn", $"{source} is at {sourceLinkLayer} in {gw.DomainName} (neighbor solicitation)");
                }
            }
        }

        if (gw.Owns(target))
        {
            context.L3.NdAdvertisements++;
            Advertise(ref p, context, gw, toGateway, target, gw.Mac, source, askerMac, router: true, "neighbor advertisement", (p.Flags & PacketFlags.Traced) != 0 ? $"{target} is at {gw.Mac}" : "");
            return;
        }

        if (!toGateway && gw.ProxyArp && target != source && gw.OnLink(target) && TryKnown(context, gw, target, out var owner) && owner != askerMac.Value)
        {
            context.L3.ProxyReplies++;
            var ownerMac = new MacAddress(owner);
            Advertise(ref p, context, gw, toGateway: true, target, ownerMac, source, askerMac, router: false, "proxy neighbor advertisement", (p.Flags & PacketFlags.Traced) != 0 ? $"{target} is at {ownerMac} (suppressed flood)" : "");
            return;
        }

        if (toGateway)
        {
            Absorb(ref p, context, (p.Flags & PacketFlags.Traced) != 0 ? $"neighbor solicitation for {target}" : "");
        }
    }

    private void Advertise(ref PacketMeta p, WorkerContext context, GatewayInterface gw, bool toGateway, in Ipv6Address target, MacAddress targetMac, in Ipv6Address asker, MacAddress askerMac, bool router, string verdict, string detail)
    {
        const int length = EthernetHeader.Length + Ipv6Header.Length + L3Messages.NdFixedLength + 8;
        var pool = context.Pool;
        if (toGateway)
        {
            p.Length = L3Messages.NeighborAdvertisement(pool.Frame(p.Buffer, p.Offset, length), gw.Mac, askerMac, target, asker, targetMac, router);
            TurnAround(ref p, context);
            Trace(ref p, context, verdict, detail);
            return;
        }

        var buffer = pool.Rent();
        if (buffer < 0)
        {
            context.Counters.CountDrop(Index, (ushort)GatewayDrop.NoBuffer);
            return;
        }

        var written = L3Messages.NeighborAdvertisement(pool.Frame(buffer, PacketPool.Headroom, length), gw.Mac, askerMac, target, asker, targetMac, router);
        SendCopy(ref p, context, buffer, written, verdict, detail);
    }

    // ---------------------------------------------------------------- shared

    /// <summary>Posts a mobility signal (GARP or binding) for the station behind <paramref name="p"/>'s ingress.</summary>
    private static void Signal(ref PacketMeta p, WorkerContext context, MobilitySignalKind kind, ulong mac, bool ipv6, ulong hi, ulong lo)
    {
        var vtep = context.Snapshot.Segments[p.IngressSegment].Kind == PortKind.Vxlan ? p.RemoteVtep : 0;
        context.Mobility.Post(new MobilitySignal(kind, p.Domain, p.IngressSegment, vtep, mac, ipv6, hi, lo, context.Now));
    }

    /// <summary>Anti-spoofing (IPv4): on a connected subnet and, when bindings are configured, bound to this MAC.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Allowed(GatewayInterface gw, uint source, ulong mac)
    {
        if (!gw.AntiSpoofing)
        {
            return true;
        }

        if (gw.Bindings4.Count > 0)
        {
            return gw.Bindings4.TryGetValue(source, out var bound) && bound == mac;
        }

        return gw.OnLink(source);
    }

    /// <summary>Anti-spoofing (IPv6): link-local sources are always on the link.</summary>
    private static bool Allowed(GatewayInterface gw, in Ipv6Address source, ulong mac)
    {
        if (!gw.AntiSpoofing)
        {
            return true;
        }

        if (gw.Bindings6.Count > 0 && !source.IsLinkLocal)
        {
            return gw.Bindings6.TryGetValue(source, out var bound) && bound == mac;
        }

        return gw.OnLink(source);
    }

    /// <summary>A station's MAC from the configured bindings or the learned neighbor cache (proxy ARP / ND).</summary>
    private static bool TryKnown(WorkerContext context, GatewayInterface gw, uint ip, out ulong mac)
    {
        if (gw.Bindings4.TryGetValue(ip, out mac))
        {
            return true;
        }

        ref var e = ref context.L3.Neighbors.Find(gw.Domain, false, 0, ip);
        mac = !Unsafe.IsNullRef(ref e) && e.State == NeighborState.Reachable ? e.Mac : 0;
        return mac != 0;
    }

    private static bool TryKnown(WorkerContext context, GatewayInterface gw, in Ipv6Address ip, out ulong mac)
    {
        if (gw.Bindings6.TryGetValue(ip, out mac))
        {
            return true;
        }

        ref var e = ref context.L3.Neighbors.Find(gw.Domain, true, ip.High, ip.Low);
        mac = !Unsafe.IsNullRef(ref e) && e.State == NeighborState.Reachable ? e.Mac : 0;
        return mac != 0;
    }

    private static void SwapMacs(Span<byte> frame, GatewayInterface gw)
    {
        frame.Slice(6, 6).CopyTo(frame);
        gw.Mac.WriteTo(frame[6..]);
    }

    /// <summary>
    /// The packet becomes the appliance's answer, sent back where it came from: the ingress segment
    /// (and the VTEP behind which the asker sits). Local packets skip the L3 stages after this one.
    /// </summary>
    private static void TurnAround(ref PacketMeta p, WorkerContext context)
    {
        p.Flags = (p.Flags & PacketFlags.Traced) | PacketFlags.Local;
        p.EgressSegment = p.IngressSegment;
        p.EgressVtep = context.Snapshot.Segments[p.IngressSegment].Kind == PortKind.Vxlan ? p.RemoteVtep : 0;
    }

    /// <summary>Originates a reply built in <paramref name="buffer"/> toward where <paramref name="p"/> came from.</summary>
    private void SendCopy(ref PacketMeta p, WorkerContext context, int buffer, int length, string verdict, string detail)
    {
        ref var reply = ref context.Originate(buffer, PacketPool.Headroom, length);
        if (Unsafe.IsNullRef(ref reply))
        {
            context.Pool.Return(buffer);
            context.Counters.CountDrop(Index, (ushort)GatewayDrop.NoBuffer);
            return;
        }

        reply.Domain = p.Domain;
        reply.EgressSegment = p.IngressSegment;
        reply.EgressVtep = context.Snapshot.Segments[p.IngressSegment].Kind == PortKind.Vxlan ? p.RemoteVtep : 0;
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            reply.Flags |= PacketFlags.Traced;
            reply.TraceId = p.TraceId;
            context.Tracer.Record(p.TraceId, Name, verdict, detail + " (reply sent; the request is flooded too)");
        }
    }

    /// <summary>The packet was only information for the gateway (learned from): its life ends here.</summary>
    private void Absorb(ref PacketMeta p, WorkerContext context, string what)
    {
        context.L3.Absorbed++;
        Trace(ref p, context, "absorbed", what);
        context.Pool.Return(p.Buffer);
        p.Disposition = Disposition.Consumed;
    }

    private void Trace(ref PacketMeta p, WorkerContext context, string verdict, string detail)
    {
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, verdict, detail);
        }
    }
}
