using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Nat;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// Builds the answer to a rejected new flow and originates it back out of the ingress segment,
/// to the sender's MAC, from the address the sender addressed (before DNAT): a TCP RST for TCP
/// (RFC 9293 section 3.10.7.1: seq = SEG.ACK if ACK was set, else ACK = SEG.SEQ + SEG.LEN), or an
/// ICMP destination unreachable, code 13 "communication administratively prohibited" (RFC 1812
/// section 5.2.7.1), quoting the IP header and first 8 bytes as the sender sent them (RFC 792).
/// No answer to a RST, and never to an ICMP error (RFC 1122 section 3.2.2: errors are not tracked as new).
/// </summary>
public static class RejectBuilder
{
    public const byte AdministrativelyProhibited = 13;

    public static bool Send(WorkerContext context, ref PacketMeta p, in PendingFlow pending)
    {
        var original = pending.Original;
        if (original.Protocol == IpProtocol.Tcp && ((TcpFlags)pending.TcpFlags & TcpFlags.Rst) != 0)
        {
            return false;
        }

        var pool = context.Pool;
        var buffer = pool.Rent();
        if (buffer < 0)
        {
            return false;
        }

        var packet = pool.Frame(p.Buffer, p.Offset, p.Length);
        var output = pool.Slot(buffer)[PacketPool.Headroom..];
        var length = original.Protocol == IpProtocol.Tcp
            ? Reset(output, packet, p, pending)
            : Unreachable(output, packet, p, pending);
        if (length <= 0)
        {
            pool.Return(buffer);
            return false;
        }

        ref var m = ref context.Originate(buffer, PacketPool.Headroom, length);
        if (Unsafe.IsNullRef(ref m))
        {
            pool.Return(buffer);
            return false;
        }

        m.Domain = (p.Flags & PacketFlags.Routed) != 0 ? p.IngressDomain : p.Domain;
        m.EgressSegment = p.IngressSegment;
        m.EgressVtep = p.RemoteVtep;
        if ((p.Flags & PacketFlags.Traced) != 0)
        {
            m.Flags |= PacketFlags.Traced;
            m.TraceId = p.TraceId;
        }

        return true;
    }

    private static int Reset(Span<byte> output, Span<byte> packet, in PacketMeta p, in PendingFlow pending)
    {
        var ip = new Ipv4Header(packet[p.L3Offset..]);
        var segment = packet[p.L4Offset..Math.Min(packet.Length, p.L3Offset + ip.TotalLength)];
        var tcp = new TcpHeader(segment);
        var flags = tcp.Flags;
        var dataLength = segment.Length - tcp.HeaderLength;
        var original = pending.Original;
        uint sequence = 0, acknowledgment = 0;
        TcpFlags resetFlags;
        if ((flags & TcpFlags.Ack) != 0)
        {
            sequence = tcp.AcknowledgmentNumber;
            resetFlags = TcpFlags.Rst;
        }
        else
        {
            acknowledgment = tcp.SequenceNumber + (uint)Math.Max(dataLength, 0)
                + ((flags & TcpFlags.Syn) != 0 ? 1u : 0u) + ((flags & TcpFlags.Fin) != 0 ? 1u : 0u);
            resetFlags = TcpFlags.Rst | TcpFlags.Ack;
        }

        EthernetHeader.Write(output, new MacAddress(pending.SourceMac), new MacAddress(pending.DestinationMac), EtherType.Ipv4);
        var l3 = output[EthernetHeader.Length..];
        Ipv4Header.Write(l3, new Ipv4Address(original.Destination), new Ipv4Address(original.Source), IpProtocol.Tcp, TcpHeader.MinLength);
        var rst = l3.Slice(Ipv4Header.MinLength, TcpHeader.MinLength);
        TcpHeader.Write(rst, original.DestinationPort, original.SourcePort, sequence, acknowledgment, resetFlags, 0);
        var pseudo = Checksum.PseudoHeaderSum(new Ipv4Address(original.Destination), new Ipv4Address(original.Source), IpProtocol.Tcp, TcpHeader.MinLength);
        BinaryPrimitives.WriteUInt16BigEndian(rst[16..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(rst[16..], Checksum.Finish(Checksum.Add(rst, pseudo)));
        return EthernetHeader.Length + Ipv4Header.MinLength + TcpHeader.MinLength;
    }

    private static int Unreachable(Span<byte> output, Span<byte> packet, in PacketMeta p, in PendingFlow pending)
    {
        var ip = new Ipv4Header(packet[p.L3Offset..]);
        var ihl = ip.HeaderLength;
        var available = Math.Min(packet.Length, p.L3Offset + ip.TotalLength) - p.L3Offset;
        var quoteLength = Math.Min(available, ihl + 8);
        var original = pending.Original;
        EthernetHeader.Write(output, new MacAddress(pending.SourceMac), new MacAddress(pending.DestinationMac), EtherType.Ipv4);
        var l3 = output[EthernetHeader.Length..];
        Ipv4Header.Write(l3, new Ipv4Address(original.Destination), new Ipv4Address(original.Source), IpProtocol.Icmp, (ushort)(Icmpv4Header.Length + quoteLength));
        var icmp = l3.Slice(Ipv4Header.MinLength, Icmpv4Header.Length + quoteLength);
        Icmpv4Header.Write(icmp, Icmpv4Type.DestinationUnreachable, AdministrativelyProhibited, 0);
        var quote = icmp[Icmpv4Header.Length..];
        packet.Slice(p.L3Offset, quoteLength).CopyTo(quote);

        // Quote the packet as its sender sent it: undo DNAT in the copy (checksums patched).
        if (pending.Current != original)
        {
            NatRewriter.RewriteQuote(icmp, original.Protocol, original);
        }

        new Icmpv4Header(icmp).UpdateChecksum();
        return EthernetHeader.Length + Ipv4Header.MinLength + icmp.Length;
    }
}
