using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Bridge;

/// <summary>
/// DHCP snooping for mobility (issue 6: "IP↔MAC bindings are learned from ARP, ND and DHCP"): a DHCPACK
/// (RFC 2131: BOOTREPLY from server port 67 to client port 68 whose option 53 says ACK) bridged through
/// the appliance binds its <c>yiaddr</c> to its <c>chaddr</c>. The binding is posted as a
/// <see cref="MobilitySignalKind.DhcpBinding"/> signal located where the client's MAC was learned (the
/// ACK itself comes from the server's side), the same path as the ARP bindings.
/// </summary>
/// <remarks>
/// Worker-owned (set by the mobility service through a worker query; null = off). Snooping never changes
/// the frame's fate: it is forwarded as before. What is not a well-formed ACK is ignored and counted in
/// <see cref="Malformed"/> (UDP 67→68 that does not parse) or <see cref="NoLocation"/> (the client's MAC is
/// not in the table); nothing throws. No allocation.
/// </remarks>
public sealed class DhcpSnooping
{
    // RFC 2131 §2: fixed BOOTP header (236 octets), then the magic cookie and the options.
    private const int BootpFixed = 236;
    private const uint MagicCookie = 0x63825363;
    private const byte OptionPad = 0, OptionEnd = 255, OptionMessageType = 53, Ack = 5;

    /// <summary>DHCPACKs that bound an address (posted).</summary>
    public long Acks { get; private set; }

    /// <summary>UDP 67 → 68 datagrams that were not a well-formed BOOTREPLY (truncated header or options, bad cookie, no message type).</summary>
    public long Malformed { get; private set; }

    /// <summary>ACKs for a client MAC the bridge has not learned (nowhere to place the workload).</summary>
    public long NoLocation { get; private set; }

    /// <summary>Worker: looks at one bridged IPv4 frame (<paramref name="frame"/> from the Ethernet header on).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inspect(WorkerContext context, DomainState state, int domain, ReadOnlySpan<byte> frame, long now)
    {
        // Cheap filter first: IPv4 without options or with, protocol UDP, not a later fragment.
        const int ip = EthernetHeader.Length;
        if (frame.Length < ip + 20 + 8 || frame[ip + 9] != 17)
        {
            return;
        }

        var ihl = (frame[ip] & 0x0F) * 4;
        var udp = ip + ihl;
        if (ihl < 20 || frame.Length < udp + 8 || (BinaryPrimitives.ReadUInt16BigEndian(frame[(ip + 6)..]) & 0x1FFF) != 0
            || BinaryPrimitives.ReadUInt16BigEndian(frame[udp..]) != 67 || BinaryPrimitives.ReadUInt16BigEndian(frame[(udp + 2)..]) != 68)
        {
            return;
        }

        Snoop(context, state, domain, frame[(udp + 8)..], now);
    }

    /// <summary>Parses a DHCP message (the UDP payload); exposed for the malformed-message tests.</summary>
    public static DhcpAck Parse(ReadOnlySpan<byte> message)
    {
        // op = BOOTREPLY, htype = Ethernet, hlen = 6, then the cookie.
        if (message.Length < BootpFixed + 4 || message[0] != 2 || message[1] != 1 || message[2] != 6
            || BinaryPrimitives.ReadUInt32BigEndian(message[BootpFixed..]) != MagicCookie)
        {
            return new DhcpAck(DhcpParse.Malformed, 0, 0);
        }

        var yiaddr = BinaryPrimitives.ReadUInt32BigEndian(message[16..]);
        var chaddr = MacAddress.Read(message[28..]).Value;
        var options = message[(BootpFixed + 4)..];
        var type = -1;
        for (var i = 0; i < options.Length;)
        {
            var code = options[i];
            if (code == OptionEnd)
            {
                break;
            }

            if (code == OptionPad)
            {
                i++;
                continue;
            }

            if (i + 1 >= options.Length || i + 2 + options[i + 1] > options.Length)
            {
                return new DhcpAck(DhcpParse.Malformed, 0, 0); // an option overruns the message
            }

            if (code == OptionMessageType)
            {
                if (options[i + 1] != 1)
                {
                    return new DhcpAck(DhcpParse.Malformed, 0, 0);
                }

                type = options[i + 2];
            }

            i += 2 + options[i + 1];
        }

        if (type < 0)
        {
            return new DhcpAck(DhcpParse.Malformed, 0, 0);
        }

        // An ACK to a DHCPINFORM carries no yiaddr (RFC 2131 §4.3.5): nothing to bind.
        var mac = new MacAddress(chaddr);
        return type == Ack && yiaddr != 0 && mac.IsUnicast && !mac.IsZero
            ? new DhcpAck(DhcpParse.Ack, chaddr, yiaddr)
            : new DhcpAck(DhcpParse.NotAnAck, 0, 0);
    }

    private void Snoop(WorkerContext context, DomainState state, int domain, ReadOnlySpan<byte> message, long now)
    {
        var ack = Parse(message);
        switch (ack.Result)
        {
            case DhcpParse.Malformed:
                Malformed++;
                return;
            case DhcpParse.NotAnAck:
                return;
        }

        ref var client = ref state.Table.Find(ack.ClientMac);
        if (Unsafe.IsNullRef(ref client))
        {
            NoLocation++;
            return;
        }

        Acks++;
        context.Mobility.Post(new MobilitySignal(MobilitySignalKind.DhcpBinding, domain, client.Segment, client.Vtep, ack.ClientMac, false, 0, ack.Address, now));
    }
}

public enum DhcpParse : byte
{
    Ack,
    NotAnAck,
    Malformed,
}

/// <param name="ClientMac">chaddr.</param>
/// <param name="Address">yiaddr (host order).</param>
public readonly record struct DhcpAck(DhcpParse Result, ulong ClientMac, uint Address);
