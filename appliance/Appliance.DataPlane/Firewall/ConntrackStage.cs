using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Firewall;

public enum ConntrackDrop : ushort
{
    /// <summary>
    /// A fragment conntrack refuses: a TCP fragment at offset 8 (RFC 1858 section 3.2, the overlapping
    /// fragment attack on the TCP flags) or one whose header length runs past its total length.
    /// </summary>
    Fragment,

    /// <summary>The transport header is cut short (TCP &lt; 20, UDP or ICMP &lt; 8 bytes).</summary>
    TruncatedL4,

    /// <summary>A TCP flag combination no stack sends: SYN+FIN, SYN+RST, FIN without ACK, NULL, Xmas.</summary>
    BadTcpFlags,

    /// <summary>An ICMP error quoting a packet of no known session (a scan, or a spoofed error).</summary>
    IcmpErrorNoFlow,

    /// <summary>An ICMP error whose quoted packet is too short or not IPv4.</summary>
    IcmpErrorMalformed,

    /// <summary>
    /// A later IPv4 fragment whose first fragment was not seen (or was dropped, or its datagram
    /// was displaced from the fragment cache): no ports, so no flow.
    /// </summary>
    FragmentNoFlow,

    /// <summary>
    /// A new flow to one of the appliance's own addresses that no port forward claims. (Packets to
    /// the gateway's address must reach conntrack: replies to masqueraded flows and port forwards
    /// on that address are addressed to it.)
    /// </summary>
    ToApplianceNoFlow,
}

/// <summary>
/// Connection tracking: finds the packet's session in this worker's table. A known flow is marked
/// (KnownFlow, Flow, FlowDirection), its TCP state machine or UDP/ICMP pseudo-state advances and
/// its NAT translation for that direction is applied (including un-DNAT on replies). ICMP errors
/// are tied to the session of the packet they quote (RELATED) and translated back. An unknown flow
/// is marked NewFlow and DNAT / port-forward / 1:1 rules rewrite its destination; the firewall
/// classifies it and the NAT stage commits the session. See README.md.
/// </summary>
public sealed class ConntrackStage() : PipelineStage("conntrack", typeof(ConntrackDrop))
{
    /// <inheritdoc/>
    public override bool SkipsFinished => true;

    public override void Process(PacketBatch batch, WorkerContext context)
    {
        var tables = context.Snapshot.Firewall;
        if (!tables.Tracking)
        {
            return;
        }

        var flows = context.Flows;
        flows.Tick(context.Now, context.TicksPerSecond);
        var table = flows.Table!;
        var pool = context.Pool;
        var packets = batch.Packets;
        var fast = 0;
        var now = flows.Now;
        var fastPath = context.FastPathEnabled;
        for (var i = 0; i < packets.Length; i++)
        {
            ref var p = ref packets[i];
            if (p.Disposition != Disposition.Continue || (p.Flags & (PacketFlags.Local | PacketFlags.Ipv6 | PacketFlags.FastPath)) != 0)
            {
                // Originated, IPv6 (not tracked), or forwarded by the fast-path stage already.
                continue;
            }

            var found = NotLookedUp;
            var foundDirection = 0;
            if (fastPath && (p.Flags & (PacketFlags.L3Parsed | PacketFlags.Traced)) == PacketFlags.L3Parsed)
            {
                found = EstablishedHit(ref p, context, tables, table, now, out foundDirection);
                if (found == Forwarded)
                {
                    fast++;
                    continue;
                }
            }

            var bridged = false;
            if ((p.Flags & PacketFlags.L3Parsed) == 0)
            {
                if (!tables.L2Filter || (p.Flags & PacketFlags.ToGateway) != 0 || !ParseBridged(ref p, pool))
                {
                    continue;
                }

                bridged = true;
            }

            // Reset what firewall and NAT read for a known flow; the new-flow path clears the rest.
            ref var pending = ref flows.Pending[i];
            pending.Bridged = bridged;
            pending.InvalidTransition = false;
            pending.SourceRewrite = false;
            pending.LaterFragment = false;
            pending.FastCandidate = false;
            pending.Adjacency = 0;
            Track(ref p, ref pending, context, tables, table, now, found, foundDirection);
            if ((p.Flags & PacketFlags.FastPath) != 0)
            {
                fast++;
            }
        }

        flows.FastForwarded += fast;
    }

    /// <summary><see cref="EstablishedHit"/>: the packet was not looked up (Track looks it up).</summary>
    internal const int NotLookedUp = -2;

    /// <summary><see cref="EstablishedHit"/>: forwarded from its session's cached result.</summary>
    internal const int Forwarded = -3;

    /// <summary>
    /// The established-flow fast path's lookup, ahead of <see cref="Track"/>: a whole (unfragmented)
    /// TCP/UDP datagram with no SYN/FIN/RST, whose lengths hold, is looked up once and, when its
    /// session has a current cached forwarding result, advanced and forwarded here without touching
    /// the per-packet scratch (<see cref="FlowState.Pending"/>). Returns <see cref="Forwarded"/>;
    /// otherwise the lookup's result (an entry, -1 for none) for Track to reuse, or
    /// <see cref="NotLookedUp"/> when the packet is not such a datagram. Track does the same work on
    /// every other packet; the FsCheck twin tests hold both paths to the same bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int EstablishedHit(ref PacketMeta p, WorkerContext context, FirewallTables tables, ConntrackTable table, uint now, out int direction)
    {
        direction = 0;
        int l3 = p.L3Offset;
        int l4 = p.L4Offset;
        var frame = context.Pool.Frame(p.Buffer, p.Offset, p.Length);
        if (l3 < EthernetHeader.Length || frame.Length < l3 + Ipv4Header.MinLength || l4 < l3 + Ipv4Header.MinLength)
        {
            return NotLookedUp;
        }

        // One bounds check above for the IPv4 header; ForwardEstablished checks the transport header's.
        ref var b = ref MemoryMarshal.GetReference(frame);
        var totalLength = UncheckedBytes.ReadUInt16BigEndian(ref b, l3 + 2);
        var at = new EstablishedLookup(table, now, context.Epoch.Value, tables.Timeouts, context.L3.Adjacencies, context.Now);
        return ForwardEstablished(ref p, ref b, l3, l4, Math.Min(frame.Length, l3 + totalLength), totalLength, p.IpProtocol, at, PacketFlags.KnownFlow, out direction);
    }

    /// <summary>What <see cref="ForwardEstablished"/> reads besides the packet (the fast-path stage loads it once per batch).</summary>
    internal readonly record struct EstablishedLookup(ConntrackTable Table, uint Now, uint Epoch, ConntrackTimeouts Timeouts, AdjacencyTable Adjacencies, long Ticks);

    /// <summary>
    /// The established-flow forwarding both the fast-path stage and <see cref="EstablishedHit"/> run, once the caller
    /// has checked that the frame at <paramref name="b"/> holds the Ethernet header and the IPv4 header at
    /// <paramref name="l3"/> and the packet up to <paramref name="end"/> (l3 + the total length, within the frame):
    /// a whole TCP segment with ACK and no SYN/FIN/RST or a UDP datagram, looked up by its address and port words
    /// (<see cref="ConntrackTable.Find(ulong, uint, byte, uint, out int)"/>), stepped and rewritten from its
    /// session's cached result, with <paramref name="alsoSet"/> joining its flags. Returns <see cref="Forwarded"/>,
    /// the entry (or -1, no session) when the cache cannot serve it, or <see cref="NotLookedUp"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int ForwardEstablished(ref PacketMeta p, ref byte b, int l3, int l4, int end, int totalLength, byte protocol, in EstablishedLookup at, PacketFlags alsoSet, out int direction)
    {
        direction = 0;
        var tcpFlags = TcpFlags.None;
        if (protocol == IpProtocol.Tcp)
        {
            if (l4 + TcpHeader.MinLength > end)
            {
                return NotLookedUp;
            }

            // ACK without SYN, FIN or RST: of the valid combinations without SYN/FIN/RST
            // (TcpConntrack.IsValid) the only one.
            tcpFlags = (TcpFlags)Unsafe.Add(ref b, l4 + 13);
            if ((tcpFlags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst | TcpFlags.Ack)) != TcpFlags.Ack)
            {
                return NotLookedUp;
            }
        }
        else if (protocol != IpProtocol.Udp || l4 + UdpHeader.Length > end)
        {
            return NotLookedUp;
        }

        if ((UncheckedBytes.ReadUInt16BigEndian(ref b, l3 + 6) & 0x3FFF) != 0)
        {
            // A fragment: Track remembers or recalls its ports.
            return NotLookedUp;
        }

        // The transport header lies within the frame (end), so the rewrite's checksum field does too.
        var entry = at.Table.Find(UncheckedBytes.ReadUInt64BigEndian(ref b, l3 + 12), UncheckedBytes.ReadUInt32BigEndian(ref b, l4), protocol, at.Now, out direction);
        if (entry < 0)
        {
            return entry;
        }

        ref var e = ref at.Table[entry];
        ref readonly var cached = ref direction == 0 ? ref e.Forward0 : ref e.Forward1;
        if (cached.Epoch != at.Epoch
            || !StepEstablished(ref e, direction, protocol, tcpFlags, at.Now, at.Timeouts)
            || !FlowCache.TryRewrite(ref p, ref b, l3, l4, totalLength, e, direction, cached, at.Adjacencies, at.Ticks, alsoSet))
        {
            return entry;
        }

        p.Flow = entry;
        p.FlowDirection = (byte)direction;
        return Forwarded;
    }

    /// <summary>
    /// Known()'s state step for a whole TCP segment without SYN/FIN/RST or a UDP datagram of a session
    /// (idempotent, so Track may repeat it when the cache turns out unusable afterwards): TCP advances
    /// (false, nothing changed, when the state refuses the segment), UDP is replied by its first reply;
    /// the session's expiry moves on.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool StepEstablished(ref ConntrackEntry e, int direction, byte protocol, TcpFlags tcpFlags, uint now, ConntrackTimeouts timeouts)
    {
        if (protocol == IpProtocol.Tcp)
        {
            if (!TcpConntrack.Advance(ref e, direction, tcpFlags))
            {
                return false;
            }
        }
        else if (direction == 1 && e.State == ConntrackState.Unreplied)
        {
            e.State = ConntrackState.Replied;
        }

        e.Expires = now + timeouts.For(protocol, e.State);
        return true;
    }

    private void Track(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, ConntrackTable table, uint now, int found, int foundDirection)
    {
        var frame = context.Pool.Frame(p.Buffer, p.Offset, p.Length);
        int l3 = p.L3Offset;
        if (frame.Length < l3 + Ipv4Header.MinLength)
        {
            Drop(ref p, (ushort)ConntrackDrop.TruncatedL4);
            return;
        }

        var ip = new Ipv4Header(frame[l3..]);
        var end = Math.Min(frame.Length, l3 + ip.TotalLength);
        int l4 = p.L4Offset;
        if (ip.IsLaterFragment)
        {
            LaterFragment(ref p, ref pending, context, tables, table, frame[..end], l3, ip, now);
            return;
        }

        if (l4 == 0 || l4 > end)
        {
            Drop(ref p, (ushort)ConntrackDrop.Fragment);
            return;
        }

        frame = frame[..end];
        var segment = frame[l4..];
        var source = ip.Source.Value;
        var destination = ip.Destination.Value;
        var protocol = p.IpProtocol;
        var tcpFlags = TcpFlags.None;
        var trackable = true;
        pending.IcmpType = 0;
        FlowTuple tuple;
        switch (protocol)
        {
            case IpProtocol.Tcp:
                if (segment.Length < TcpHeader.MinLength)
                {
                    Drop(ref p, (ushort)ConntrackDrop.TruncatedL4);
                    return;
                }

                tcpFlags = (TcpFlags)segment[13];
                if (!TcpConntrack.IsValid(tcpFlags))
                {
                    Drop(ref p, (ushort)ConntrackDrop.BadTcpFlags);
                    return;
                }

                tuple = new FlowTuple(source, destination, BinaryPrimitives.ReadUInt16BigEndian(segment), BinaryPrimitives.ReadUInt16BigEndian(segment[2..]), protocol);
                break;

            case IpProtocol.Udp:
                if (segment.Length < UdpHeader.Length)
                {
                    Drop(ref p, (ushort)ConntrackDrop.TruncatedL4);
                    return;
                }

                tuple = new FlowTuple(source, destination, BinaryPrimitives.ReadUInt16BigEndian(segment), BinaryPrimitives.ReadUInt16BigEndian(segment[2..]), protocol);
                break;

            case IpProtocol.Icmp:
                if (segment.Length < Icmpv4Header.Length)
                {
                    Drop(ref p, (ushort)ConntrackDrop.TruncatedL4);
                    return;
                }

                var type = segment[0];
                pending.IcmpType = type;
                var id = BinaryPrimitives.ReadUInt16BigEndian(segment[4..]);
                switch (type)
                {
                    case Icmpv4Type.EchoRequest:
                        tuple = new FlowTuple(source, destination, id, 0, protocol);
                        break;
                    case Icmpv4Type.EchoReply:
                        tuple = new FlowTuple(source, destination, 0, id, protocol);
                        break;
                    case Icmpv4Type.DestinationUnreachable or Icmpv4Type.TimeExceeded or Icmpv4Type.ParameterProblem:
                        Related(ref p, ref pending, context, table, frame, l3, l4, now);
                        return;
                    default:
                        // Timestamp, router advertisement and the like: classified, never tracked or translated.
                        tuple = new FlowTuple(source, destination, 0, 0, protocol);
                        trackable = false;
                        break;
                }

                break;

            default:
                tuple = new FlowTuple(source, destination, 0, 0, protocol);
                break;
        }

        if (ip.MoreFragments)
        {
            context.Flows.Fragments.Remember(source, destination, protocol, ip.Identification, tuple.SourcePort, tuple.DestinationPort, now);
        }

        var direction = foundDirection;
        var entry = found != NotLookedUp ? found : trackable ? table.Find(tuple, now, out direction) : -1;
        if (entry >= 0 && protocol == IpProtocol.Tcp && direction == 0 && TcpConntrack.Opens(tcpFlags)
            && table[entry].State is ConntrackState.TcpTimeWait or ConntrackState.TcpClose)
        {
            // A new connection reusing the tuple of one that has closed: start over, policy included.
            table.Remove(entry);
            entry = -1;
        }

        if (entry >= 0)
        {
            Known(ref p, ref pending, context, tables, table, entry, direction, frame, l3, l4, tuple, tcpFlags, now);
            return;
        }

        NewFlow(ref p, ref pending, context, tables, frame, l3, l4, tuple, tcpFlags, trackable);
    }

    /// <summary>
    /// A packet of no known session. Kept out of <see cref="Track"/> (never inlined) so the hit path's
    /// frame stays small: the JIT zeroes every span local of an inlined callee on each call.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void NewFlow(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, Span<byte> frame, int l3, int l4, in FlowTuple tuple, TcpFlags tcpFlags, bool trackable)
    {
        var protocol = tuple.Protocol;
        var invalid = false;

        // A new flow. Only a SYN opens TCP; a stray ACK, FIN or RST (or an echo reply) is INVALID:
        // it is classified as such and never creates a session.
        if (protocol == IpProtocol.Tcp && !TcpConntrack.Opens(tcpFlags))
        {
            invalid = true;
        }
        else if (protocol == IpProtocol.Icmp && pending.IcmpType == Icmpv4Type.EchoReply)
        {
            invalid = true;
        }

        StartNewFlow(ref p, ref pending, tuple, frame, invalid ? ConnectionStates.Invalid : ConnectionStates.New, trackable && !invalid, tcpFlags);
        if (!invalid && !pending.Bridged && tables.DnatIndex.Count > 0)
        {
            Dnat(ref p, ref pending, context, tables, frame, l3, l4, tuple);
        }

        if (pending.DnatRule == 0 && !pending.Bridged && context.Snapshot.L3.LocalIpv4.ContainsKey(tuple.Destination))
        {
            Drop(ref p, (ushort)ConntrackDrop.ToApplianceNoFlow);
            return;
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, invalid ? "invalid" : "new", pending.DnatRule > 0
                ? $"{tuple} DNAT → {pending.Current} ({tables.Dnat[pending.DnatRule - 1].Description})"
                : tuple.ToString());
        }
    }

    private void Known(
        ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, ConntrackTable table,
        int entry, int direction, Span<byte> frame, int l3, int l4, in FlowTuple tuple, TcpFlags tcpFlags, uint now)
    {
        ref var e = ref table[entry];
        var protocol = tuple.Protocol;
        if (pending.LaterFragment)
        {
            // No transport header: the first fragment advanced the state; this one only follows it.
        }
        else if (protocol == IpProtocol.Tcp)
        {
            if (!TcpConntrack.Advance(ref e, direction, tcpFlags))
            {
                pending.InvalidTransition = true;
            }
        }
        else if (direction == 1 && e.State == ConntrackState.Unreplied)
        {
            e.State = ConntrackState.Replied;
        }

        if (!pending.InvalidTransition)
        {
            e.Expires = now + tables.Timeouts.For(protocol, e.State);
        }

        p.Flags |= PacketFlags.KnownFlow;
        p.Flow = entry;
        p.FlowDirection = (byte)direction;
        if (context.FastPathEnabled && FlowCache.Eligible(p, pending, frame, l3, protocol, tcpFlags))
        {
            // Forwarded from the cache: no later stage reads this packet's scratch.
            if (FlowCache.TryForward(ref p, frame, l3, l4, e, direction, context))
            {
                return;
            }

            // The slow path forwards it and teaches the session (route binds the next hop, nat stores it).
            pending.FastCandidate = true;
        }

        pending.State = ConnectionStates.Established;
        pending.Original = tuple;
        pending.Current = tuple;

        if ((e.Flags & (FlowFlags.SourceNat | FlowFlags.DestinationNat)) != 0)
        {
            Translate(ref pending, e, direction, frame, l3, l4, tuple);
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            TraceKnown(ref p, pending, context, entry, direction, e.State, tuple);
        }
    }

    /// <summary>
    /// The slow path's translation of a known flow's packet. Translating direction d: the other
    /// direction's tuple, reversed. The destination is rewritten here, before the route lookup
    /// (netfilter's prerouting); the source in the NAT stage, after route and firewall
    /// (postrouting), so ICMP errors the route stage sends about this packet still quote what its
    /// sender sent.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Translate(ref PendingFlow pending, in ConntrackEntry e, int direction, Span<byte> frame, int l3, int l4, in FlowTuple tuple)
    {
        var other = ConntrackTable.TupleOf(e, 1 - direction);
        if (other.Source != tuple.Destination || other.SourcePort != tuple.DestinationPort)
        {
            var target = tuple with { Destination = other.Source, DestinationPort = other.SourcePort };
            NatRewriter.Rewrite(frame, l3, l4, tuple, target);
            pending.Current = target;
        }

        if (other.Destination != tuple.Source || other.DestinationPort != tuple.SourcePort)
        {
            pending.SourceRewrite = true;
            pending.SourceTo = other.Destination;
            pending.SourcePortTo = other.DestinationPort;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void TraceKnown(ref PacketMeta p, in PendingFlow pending, WorkerContext context, int entry, int direction, ConntrackState state, in FlowTuple tuple) =>
        context.Tracer.Record(p.TraceId, Name, pending.InvalidTransition ? "invalid" : "established",
            $"flow {entry} {(direction == 0 ? "original" : "reply")} {state}"
            + (pending.Current != tuple ? $", destination {tuple} → {pending.Current}" : "")
            + (pending.SourceRewrite ? $", source → {new Ipv4Address(pending.SourceTo)}:{pending.SourcePortTo} in nat" : ""));

    /// <summary>
    /// Marks a packet NewFlow and resets the per-packet scratch the firewall and NAT read for it,
    /// keeping what conntrack learnt before (bridged, ICMP type, later fragment).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StartNewFlow(ref PacketMeta p, ref PendingFlow pending, in FlowTuple tuple, Span<byte> frame, ConnectionStates state, bool trackable, TcpFlags tcpFlags)
    {
        p.Flags |= PacketFlags.NewFlow;
        var bridged = pending.Bridged;
        var icmpType = pending.IcmpType;
        var laterFragment = pending.LaterFragment;
        pending = default;
        pending.Bridged = bridged;
        pending.IcmpType = icmpType;
        pending.LaterFragment = laterFragment;
        pending.Original = tuple;
        pending.Current = tuple;
        pending.State = state;
        pending.Trackable = trackable;
        pending.TcpFlags = (byte)tcpFlags;
        pending.DestinationMac = MacAddress.Read(frame).Value;
        pending.SourceMac = MacAddress.Read(frame[6..]).Value;
    }

    /// <summary>
    /// An IPv4 fragment after the first: its ports come from the first fragment (<see cref="FragmentCache"/>).
    /// With its session known it is translated (addresses only: it has no transport header) and
    /// forwarded like the rest of the flow. Its session may not exist yet when the first fragment
    /// of a new flow is in the same batch (the NAT stage commits sessions after the firewall): it
    /// is then classified like a new flow's packet, never creates a session, and the NAT stage
    /// joins it to the session its first fragment committed.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void LaterFragment(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, ConntrackTable table, Span<byte> frame, int l3, Ipv4Header ip, uint now)
    {
        var protocol = p.IpProtocol;
        if (protocol == IpProtocol.Tcp && ip.FragmentOffset == 1)
        {
            Drop(ref p, (ushort)ConntrackDrop.Fragment);
            return;
        }

        var source = ip.Source.Value;
        var destination = ip.Destination.Value;
        if (!context.Flows.Fragments.TryRecall(source, destination, protocol, ip.Identification, now, out var sourcePort, out var destinationPort))
        {
            Drop(ref p, (ushort)ConntrackDrop.FragmentNoFlow);
            return;
        }

        pending.LaterFragment = true;
        pending.IcmpType = 0;
        var tuple = new FlowTuple(source, destination, sourcePort, destinationPort, protocol);
        var entry = table.Find(tuple, now, out var direction);
        if (entry >= 0)
        {
            Known(ref p, ref pending, context, tables, table, entry, direction, frame, l3, 0, tuple, TcpFlags.None, now);
            return;
        }

        StartNewFlow(ref p, ref pending, tuple, frame, ConnectionStates.New, trackable: false, TcpFlags.None);
        if (!pending.Bridged && tables.DnatIndex.Count > 0)
        {
            Dnat(ref p, ref pending, context, tables, frame, l3, 0, tuple);
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "fragment", $"{tuple} (ports of its first fragment), session not committed yet");
        }
    }

    /// <summary>An ICMP error: find the session of the quoted packet (RFC 792; RFC 5508 section 4.2 for the NAT part).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Related(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, ConntrackTable table, Span<byte> frame, int l3, int l4, uint now)
    {
        var quote = frame[(l4 + Icmpv4Header.QuotedPacketOffset)..];
        if (quote.Length < Ipv4Header.MinLength + 8 || (quote[0] >> 4) != 4)
        {
            Drop(ref p, (ushort)ConntrackDrop.IcmpErrorMalformed);
            return;
        }

        var qihl = (quote[0] & 0x0F) * 4;
        if (qihl < Ipv4Header.MinLength || quote.Length < qihl + 8)
        {
            Drop(ref p, (ushort)ConntrackDrop.IcmpErrorMalformed);
            return;
        }

        var qprotocol = quote[9];
        var qsource = BinaryPrimitives.ReadUInt32BigEndian(quote[12..]);
        var qdestination = BinaryPrimitives.ReadUInt32BigEndian(quote[16..]);
        var ql4 = quote[qihl..];
        FlowTuple quoted;
        switch (qprotocol)
        {
            case IpProtocol.Tcp or IpProtocol.Udp:
                quoted = new FlowTuple(qsource, qdestination, BinaryPrimitives.ReadUInt16BigEndian(ql4), BinaryPrimitives.ReadUInt16BigEndian(ql4[2..]), qprotocol);
                break;
            case IpProtocol.Icmp when ql4[0] == Icmpv4Type.EchoRequest:
                quoted = new FlowTuple(qsource, qdestination, BinaryPrimitives.ReadUInt16BigEndian(ql4[4..]), 0, qprotocol);
                break;
            case IpProtocol.Icmp when ql4[0] == Icmpv4Type.EchoReply:
                quoted = new FlowTuple(qsource, qdestination, 0, BinaryPrimitives.ReadUInt16BigEndian(ql4[4..]), qprotocol);
                break;
            case IpProtocol.Icmp:
                // An error about an error is never sent (RFC 1122 section 3.2.2).
                Drop(ref p, (ushort)ConntrackDrop.IcmpErrorNoFlow);
                return;
            default:
                quoted = new FlowTuple(qsource, qdestination, 0, 0, qprotocol);
                break;
        }

        // The error travels back toward the quoted packet's sender: the reversed quote is a key of
        // the session in the direction the error goes.
        var entry = table.Find(quoted.Reverse(), now, out var direction);
        if (entry < 0)
        {
            Drop(ref p, (ushort)ConntrackDrop.IcmpErrorNoFlow);
            return;
        }

        ref var e = ref table[entry];
        p.Flags |= PacketFlags.KnownFlow;
        p.Flow = entry;
        p.FlowDirection = (byte)direction;
        pending.State = ConnectionStates.Related;
        if ((e.Flags & (FlowFlags.SourceNat | FlowFlags.DestinationNat)) != 0 && !NatRewriter.TranslateIcmpError(frame, l3, l4, e, direction))
        {
            Drop(ref p, (ushort)ConntrackDrop.IcmpErrorMalformed);
            return;
        }

        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            context.Tracer.Record(p.TraceId, Name, "related", $"ICMP error about flow {entry} ({quoted}), {(direction == 0 ? "original" : "reply")} direction");
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Dnat(ref PacketMeta p, ref PendingFlow pending, WorkerContext context, FirewallTables tables, Span<byte> frame, int l3, int l4, in FlowTuple tuple)
    {
        var index = tables.DnatIndex;
        var hasPorts = tuple.Protocol is IpProtocol.Tcp or IpProtocol.Udp;
        if (!(hasPorts && index.TryGetValue(FirewallTables.DnatKey(tuple.Destination, tuple.Protocol, tuple.DestinationPort), out var rule))
            && !index.TryGetValue(FirewallTables.DnatKey(tuple.Destination, tuple.Protocol, 0), out rule)
            && !index.TryGetValue(FirewallTables.DnatKey(tuple.Destination, 0, 0), out rule))
        {
            return;
        }

        var dnat = tables.Dnat[rule];
        if (dnat.IngressZone >= 0 && dnat.IngressZone != tables.IngressZone(p.IngressSegment))
        {
            return;
        }

        var target = tuple with
        {
            Destination = dnat.ToAddress,
            DestinationPort = hasPorts && dnat.ToPort != 0 ? dnat.ToPort : tuple.DestinationPort,
        };
        NatRewriter.Rewrite(context.Pool.Frame(p.Buffer, p.Offset, p.Length), l3, l4, tuple, target);
        _ = frame;
        pending.Current = target;
        pending.DnatRule = rule + 1;
    }

    /// <summary>L2 filter: finds the IPv4 header of a bridged frame (decap removed any tags).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool ParseBridged(ref PacketMeta p, PacketPool pool)
    {
        var frame = pool.Frame(p.Buffer, p.Offset, p.Length);
        if (frame.Length < EthernetHeader.Length + Ipv4Header.MinLength
            || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherType.Ipv4
            || Ipv4Header.TryParse(frame[EthernetHeader.Length..], out var ip) != ParseError.None)
        {
            return false;
        }

        p.L3Offset = EthernetHeader.Length;
        p.L4Offset = ip.IsLaterFragment ? (ushort)0 : (ushort)(EthernetHeader.Length + ip.HeaderLength);
        p.IpProtocol = ip.Protocol;
        return true;
    }
}
