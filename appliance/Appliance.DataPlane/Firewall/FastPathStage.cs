using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Gateway;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Firewall;

/// <summary>The fast path drops nothing: whatever it cannot forward goes on to the slow path, which counts its drops.</summary>
public enum FastPathDrop : ushort
{
}

/// <summary>
/// The established-flow fast path as one stage, right after the bridge (VPP's flow-offload and
/// nftables' flowtable sit at the same place: ingress, before the routing decision): an IPv4
/// TCP/UDP packet for a gateway MAC whose header holds (version 4, no options, lengths, checksum),
/// whose source is no martian and passes the ingress gateway's anti-spoofing, and whose session has
/// a cached forwarding result from the current <see cref="ForwardingEpoch"/>, is rewritten and
/// given its egress here (<see cref="FlowCache.TryForward"/>), and the batch counts it
/// <see cref="PacketBatch.Finished"/>: gateway, conntrack, lb, route, firewall and nat never look at
/// it, and a batch of finished packets only skips them (the runner). Everything else (ARP, IPv6,
/// options, fragments, SYN/FIN/RST, TTL ≤ 1, too big, a stale neighbor, traced packets, new flows)
/// goes on unchanged down the slow path, which does exactly what it did before this stage existed.
/// See README.md ("Established-flow fast path").
/// </summary>
/// <remarks>
/// The checks are the gateway's for such a packet (<see cref="GatewayStage"/>: parse, RFC 1812 header
/// checksum and martian source, anti-spoofing), made stricter where that is cheaper (no IPv4 options:
/// those go the slow way), so a packet this stage forwards is one the gateway would have passed to
/// conntrack, and conntrack would have forwarded from the same cache. One difference of order: the
/// slow path lets the gateway see a whole batch before conntrack forwards any of it, so an ARP that
/// changes a next hop's MAC applies to the batch's packets before it too. Here a packet is forwarded
/// with what was known when it arrived: at the first ARP or IPv6 frame of a batch (which may change a
/// neighbor, and so the epoch) the stage stops, and the rest of the batch takes the slow path. It also
/// stops at the first packet that goes the slow way and may step a session (a SYN/FIN/RST, a TTL of 1,
/// IPv4 options, anything the gateway may drop, a traced packet, a tracked bridged frame...), so
/// every session's packets reach its state machine in batch order; packets of no session (new
/// flows) do not stop it. After a stop, conntrack's own lookup still forwards established packets
/// from the cache (the session-3/4 path), only without skipping gateway.
/// </remarks>
public sealed class FastPathStage() : PipelineStage("fastpath", typeof(FastPathDrop))
{
    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var snapshot = context.Snapshot;
        var tables = snapshot.Firewall;
        var gateways = snapshot.L3.Gateways;
        if (!context.FastPathEnabled || !tables.Tracking || gateways.Length == 0)
        {
            return;
        }

        var flows = context.Flows;
        flows.Tick(context.Now, context.TicksPerSecond);

        // What every packet's forwarding reads, loaded once per batch: the stage stops before anything
        // that may change them (an ARP can move the epoch; only the slow path binds adjacencies).
        var at = new ConntrackStage.EstablishedLookup(flows.Table!, flows.Now, context.Epoch.Value, tables.Timeouts, context.L3.Adjacencies, context.Now);
        var pool = context.Pool;
        var packets = batch.Packets;
        var forwarded = 0;
        var l2Filter = tables.L2Filter;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue)
            {
                continue;
            }

            var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
            if (frame.Length < EthernetHeader.Length + Ipv4Header.MinLength)
            {
                continue;
            }

            ref var b = ref MemoryMarshal.GetReference(frame);
            var etherType = UncheckedBytes.ReadUInt16BigEndian(ref b, EthernetHeader.EtherTypeOffset);
            if (etherType != EtherType.Ipv4)
            {
                if (etherType is EtherType.Arp or EtherType.Ipv6)
                {
                    // It may change a neighbor (and the epoch) in the gateway: the rest of the batch goes after it.
                    break;
                }

                continue;
            }

            if ((p.Flags & PacketFlags.ToGateway) == 0)
            {
                if (l2Filter)
                {
                    // Bridged IPv4 is tracked too: it may change a session the rest of the batch belongs to.
                    break;
                }

                continue;
            }

            if ((p.Flags & PacketFlags.Traced) != 0 || !Admissible(ref b, frame.Length, gateways, p.Domain, out var totalLength))
            {
                // The slow path may track it (or drop it): the rest of the batch goes after it.
                break;
            }

            p.L3Offset = EthernetHeader.Length;
            p.L4Offset = EthernetHeader.Length + Ipv4Header.MinLength;
            p.IpProtocol = Unsafe.Add(ref b, EthernetHeader.Length + 9);
            const int l3 = EthernetHeader.Length;
            var found = ConntrackStage.ForwardEstablished(ref p, ref b, l3, l3 + Ipv4Header.MinLength, l3 + totalLength, totalLength, p.IpProtocol, at, PacketFlags.KnownFlow | PacketFlags.L3Parsed, out _);
            if (found == ConntrackStage.Forwarded)
            {
                forwarded++;
                continue;
            }

            if (found != -1)
            {
                // A session's packet the cache cannot serve (TTL 1, SYN/FIN/RST, a fragment, too big, not
                // learned yet...), or one not looked up: conntrack steps it later, in batch order with the
                // packets after it, which therefore go the slow way too (a FIN and the ACK after it must
                // reach the state machine in that order). A packet of no session (-1) changes no
                // session: the packets after it may still go the fast way.
                break;
            }
        }

        batch.Finished += forwarded;
        flows.FastForwarded += forwarded;
    }

    /// <summary>
    /// What the gateway checks on an IPv4 packet for its MAC, for a header without options: version
    /// 4 and IHL 5, total length within the frame, a valid header checksum (RFC 1812 section 5.2.2),
    /// no martian source (section 5.3.7), anti-spoofing on the ingress domain's gateway.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Admissible(ref byte b, int frameLength, GatewayInterface?[] gateways, int domain, out int totalLength)
    {
        const int l3 = EthernetHeader.Length;
        totalLength = UncheckedBytes.ReadUInt16BigEndian(ref b, l3 + 2);
        if (Unsafe.Add(ref b, l3) != 0x45 || totalLength < Ipv4Header.MinLength || totalLength > frameLength - l3)
        {
            return false;
        }

        // The one's complement sum of the header's 16-bit words is all ones exactly when their plain
        // sum is a non-zero multiple of 0xFFFF (end-around carry is arithmetic modulo 0xFFFF; the first
        // byte, 0x45, makes the sum non-zero). Five native-order 32-bit words have the same sum modulo
        // 0xFFFF up to a factor of 256 (2^16 ≡ 1, and a byte swap multiplies by 256, a unit): so the
        // test holds in either byte order (RFC 1071 section 2(B)) and costs one multiply, not a fold.
        var sum = (ulong)UncheckedBytes.ReadUInt32LittleEndian(ref b, l3) + UncheckedBytes.ReadUInt32LittleEndian(ref b, l3 + 4)
            + UncheckedBytes.ReadUInt32LittleEndian(ref b, l3 + 8) + UncheckedBytes.ReadUInt32LittleEndian(ref b, l3 + 12)
            + UncheckedBytes.ReadUInt32LittleEndian(ref b, l3 + 16);
        if (sum % 0xFFFF != 0)
        {
            return false;
        }

        var source = new Ipv4Address(UncheckedBytes.ReadUInt32BigEndian(ref b, l3 + 12));
        if (source.IsAny || source.IsMulticast || source.IsBroadcast || source.IsLoopback)
        {
            return false;
        }

        var gw = (uint)domain < (uint)gateways.Length ? gateways[domain] : null;
        return gw is not null && (!gw.AntiSpoofing
            || GatewayStage.Allowed(gw, source.Value, ((ulong)UncheckedBytes.ReadUInt32BigEndian(ref b, 6) << 16) | UncheckedBytes.ReadUInt16BigEndian(ref b, 10)));
    }
}
