using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// The established-flow fast path (in the spirit of nftables' flowtable, VPP's flow cache and OVS's
/// datapath cache): once the slow path (route → firewall → nat → neighbor) has forwarded a packet
/// of an established TCP/UDP session, the session remembers, per direction, what it decided: the
/// next hop's adjacency (egress domain, segment, VTEP, MACs, MTU) and the NAT rewrite's RFC 1624
/// checksum sums with the TTL decrement folded in. A later conntrack hit with a result learned in
/// the current <see cref="ForwardingEpoch"/> is rewritten here in one place and marked
/// <see cref="PacketFlags.Routed"/> | <see cref="PacketFlags.FastPath"/>, so route, firewall, nat and
/// neighbor pass it by with their usual per-packet checks. See README.md ("Established-flow fast path").
/// </summary>
public static class FlowCache
{
    /// <summary>TCP flags that change the session's course: such segments always take the slow path.</summary>
    private const TcpFlags SlowFlags = TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst;

    /// <summary>
    /// Whether a known flow's packet may use (or teach) the fast path: TCP or UDP, a whole datagram
    /// (no fragment), no SYN/FIN/RST, not traced, routed (not L2-filtered), a valid state transition.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Eligible(in PacketMeta p, in PendingFlow pending, ReadOnlySpan<byte> frame, int l3, byte protocol, TcpFlags tcpFlags) =>
        (protocol == IpProtocol.Udp || (protocol == IpProtocol.Tcp && (tcpFlags & SlowFlags) == 0))
        && (p.Flags & PacketFlags.Traced) == 0
        && !pending.Bridged && !pending.LaterFragment && !pending.InvalidTransition
        && (BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 6)..]) & 0x3FFF) == 0;

    /// <summary>
    /// Forwards an eligible packet from its session's cached result when that result is current:
    /// the TTL allows forwarding, the packet fits the egress MTU and the neighbor needs no probe.
    /// Returns false (nothing touched) when the slow path must run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryForward(ref PacketMeta p, Span<byte> frame, int l3, int l4, in ConntrackEntry e, int direction, WorkerContext context)
    {
        ref readonly var cached = ref direction == 0 ? ref e.Forward0 : ref e.Forward1;
        if (cached.Epoch != context.Epoch.Value)
        {
            return false;
        }

        // One length check for every byte read or written by TryRewrite (MACs, the IPv4 header, the
        // transport checksum); then unchecked accesses (Packets/UncheckedBytes).
        var checksumAt = l4 + (e.Protocol == IpProtocol.Tcp ? 16 : 6);
        if (l3 < EthernetHeader.Length || l4 < l3 + Ipv4Header.MinLength || checksumAt + 2 > frame.Length)
        {
            return false;
        }

        ref var b = ref MemoryMarshal.GetReference(frame);
        return TryRewrite(ref p, ref b, l3, l4, UncheckedBytes.ReadUInt16BigEndian(ref b, l3 + 2), e, direction, cached, context.L3.Adjacencies, context.Now);
    }

    /// <summary>
    /// <see cref="TryForward"/> once its caller has checked the cached result's epoch and that the
    /// frame at <paramref name="b"/> holds the Ethernet and IPv4 headers (at <paramref name="l3"/>) and
    /// the transport header up to its checksum (at <paramref name="l4"/>); <paramref name="totalLength"/>
    /// is the IPv4 total length, <paramref name="now"/> the worker's clock (the neighbor's freshness);
    /// <paramref name="alsoSet"/> joins the flags a forwarded packet gets in the same write.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool TryRewrite(ref PacketMeta p, ref byte b, int l3, int l4, int totalLength, in ConntrackEntry e, int direction, in CachedForward cached, AdjacencyTable adjacencies, long now, PacketFlags alsoSet = PacketFlags.None)
    {
        ref readonly var adjacency = ref adjacencies[cached.Adjacency];
        var ttl = Unsafe.Add(ref b, l3 + 8);
        if (ttl <= 1 || totalLength > adjacency.Mtu || now >= adjacency.FreshUntil)
        {
            return false;
        }

        if (cached.Translated != 0)
        {
            // Translating direction d is "the other direction's tuple, reversed" (ConntrackEntry). The
            // other direction's addresses as they lie in the entry (source, then destination, each
            // native) read as one little-endian 64-bit word are (destination << 32 | source): written
            // big-endian, that is the reversed pair in network order at IPv4 offset 12; the ports likewise.
            var other = 1 - direction;
            var addresses = Unsafe.Add(ref Unsafe.As<uint, ulong>(ref Unsafe.AsRef(in e.OriginalSource)), other);
            var ports = Unsafe.Add(ref Unsafe.As<ushort, uint>(ref Unsafe.AsRef(in e.OriginalSourcePort)), other);
            UncheckedBytes.WriteUInt64BigEndian(ref b, l3 + 12, BitConverter.IsLittleEndian ? addresses : BitOperations.RotateRight(addresses, 32));
            UncheckedBytes.WriteUInt32BigEndian(ref b, l4, BitConverter.IsLittleEndian ? ports : BitOperations.RotateRight(ports, 16));

            var tcp = e.Protocol == IpProtocol.Tcp;
            var checksumAt = l4 + (tcp ? 16 : 6);
            var checksum = UncheckedBytes.ReadUInt16BigEndian(ref b, checksumAt);
            if (checksum != 0 || tcp)
            {
                // RFC 1624 eqn. 3; a UDP checksum that comes out 0 is sent as 0xFFFF (RFC 768), and
                // a zero UDP checksum (none) stays zero, as in NatRewriter.
                checksum = Checksum.ApplyFolded(checksum, cached.L4Delta);
                if (checksum == 0 && !tcp)
                {
                    checksum = 0xFFFF;
                }

                UncheckedBytes.WriteUInt16BigEndian(ref b, checksumAt, checksum);
            }
        }

        Unsafe.Add(ref b, l3 + 8) = (byte)(ttl - 1);
        UncheckedBytes.WriteUInt16BigEndian(ref b, l3 + 10, Checksum.ApplyFolded(UncheckedBytes.ReadUInt16BigEndian(ref b, l3 + 10), cached.IpDelta));

        // The next hop's MAC, then the egress gateway's (48-bit values: high 32 bits, then low 16).
        UncheckedBytes.WriteUInt32BigEndian(ref b, 0, (uint)(adjacency.Mac >> 16));
        UncheckedBytes.WriteUInt16BigEndian(ref b, 4, (ushort)adjacency.Mac);
        UncheckedBytes.WriteUInt32BigEndian(ref b, 6, (uint)(adjacency.GatewayMac >> 16));
        UncheckedBytes.WriteUInt16BigEndian(ref b, 10, (ushort)adjacency.GatewayMac);
        p.IngressDomain = p.Domain;
        p.Domain = adjacency.Domain;
        p.EgressSegment = adjacency.Segment;
        p.EgressVtep = adjacency.Vtep;
        p.Flags = (p.Flags & ~(PacketFlags.Flood | PacketFlags.Bum | PacketFlags.ToGateway)) | PacketFlags.Routed | PacketFlags.FastPath | alsoSet;
        return true;
    }

    /// <summary>
    /// Remembers what the slow path did to a packet of direction <paramref name="direction"/>: its
    /// next hop's <paramref name="adjacency"/> and the checksum sums of its rewrite (the other
    /// direction's tuple reversed, plus the TTL decrement), learned in <paramref name="epoch"/>.
    /// </summary>
    public static void Learn(ref ConntrackEntry e, int direction, ushort adjacency, uint epoch)
    {
        var here = ConntrackTable.TupleOf(e, direction);
        var other = ConntrackTable.TupleOf(e, 1 - direction);
        ulong ip = 0xFEFF; // TTL - 1 in the (TTL, protocol) word: ~w + (w - 0x100) = 0xFEFF
        ulong l4 = 0;
        var translated = false;
        if (here.Source != other.Destination)
        {
            var sum = Checksum.Delta(here.Source, other.Destination);
            ip += sum;
            l4 += sum;
            translated = true;
        }

        if (here.Destination != other.Source)
        {
            var sum = Checksum.Delta(here.Destination, other.Source);
            ip += sum;
            l4 += sum;
            translated = true;
        }

        if (here.SourcePort != other.DestinationPort)
        {
            l4 += Checksum.Delta(here.SourcePort, other.DestinationPort);
            translated = true;
        }

        if (here.DestinationPort != other.SourcePort)
        {
            l4 += Checksum.Delta(here.DestinationPort, other.SourcePort);
            translated = true;
        }

        ref var cached = ref direction == 0 ? ref e.Forward0 : ref e.Forward1;
        cached.Adjacency = adjacency;
        cached.IpDelta = Checksum.Fold(ip);
        cached.L4Delta = Checksum.Fold(l4);
        cached.Translated = (ushort)(translated ? 1 : 0);
        cached.Epoch = epoch;
    }
}
