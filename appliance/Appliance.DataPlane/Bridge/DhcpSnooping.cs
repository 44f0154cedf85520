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
/// ACK itself comes from the server's side), the same path as the ARP bindings. DHCPv6 the same way: a Reply
/// (RFC 8415 §7.3, server/relay port 547 to client port 546) binds every address of its IA_NA options (IAADDR with a
/// non-zero valid lifetime, in an IA without a failure status) to the Reply's destination MAC (the client: a Reply is
/// sent to the client's link-local address), signalled as an IPv6 <see cref="MobilitySignalKind.DhcpBinding"/>.
/// A Relay-Reply (RFC 8415 §9.2, server to relay agent, 547 → 547) is unwrapped down to the Reply it carries for the
/// client (<see cref="UnwrapRelayReply6"/>); its client is the MAC named by the innermost relay's peer-address (a
/// modified EUI-64 link-local address) or by the Reply's Client Identifier (DUID-LLT / DUID-LL), whichever the bridge
/// has learned (<see cref="RelayedClientMac"/>).
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

    // RFC 8415: §7.2 ports, §7.3 message type Reply, §21.4 IA_NA (IAID, T1, T2, options), §21.6 IAADDR (address,
    // preferred and valid lifetimes, options), §21.13 Status Code (0 = Success).
    private const ushort ServerPort6 = 547, ClientPort6 = 546;
    private const byte Reply6 = 7;
    private const ushort OptionIaNa = 3, OptionIaAddr = 5, OptionStatusCode = 13;

    // RFC 8415 §9: relay messages (msg-type, hop-count, link-address, peer-address, options); §21.10 Relay Message
    // option; §21.2 Client Identifier; §11.2 DUID-LLT and §11.4 DUID-LL (hardware type 1 = Ethernet); §7.6 HOP_COUNT_LIMIT.
    private const byte RelayReply6 = 13;
    private const int RelayHeader6 = 34;
    private const ushort OptionClientId = 1, OptionRelayMessage = 9;
    private const int HopCountLimit = 8;

    /// <summary>Addresses of one Reply bound at most (the rest are ignored): a client asks for a few, not hundreds.</summary>
    public const int MaxAddresses6 = 8;

    /// <summary>DHCPACKs that bound an address (posted).</summary>
    public long Acks { get; private set; }

    /// <summary>DHCPv6 Replies that bound at least one address (one signal per address).</summary>
    public long Replies6 { get; private set; }

    /// <summary>UDP 67 → 68 (or 547 → 546) datagrams that were not a well-formed BOOTREPLY (truncated header or options, bad cookie, no message type).</summary>
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

    /// <summary>Worker: looks at one bridged IPv6 frame (<paramref name="frame"/> from the Ethernet header on; UDP right after the fixed header).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inspect6(WorkerContext context, DomainState state, int domain, ReadOnlySpan<byte> frame, long now)
    {
        const int ip = EthernetHeader.Length;
        const int udp = ip + 40;
        if (frame.Length < udp + 8 || frame[ip + 6] != 17 || BinaryPrimitives.ReadUInt16BigEndian(frame[udp..]) != ServerPort6)
        {
            return;
        }

        var destinationPort = BinaryPrimitives.ReadUInt16BigEndian(frame[(udp + 2)..]);
        var message = frame[(udp + 8)..];
        var peer = default(Ipv6Address);
        var relayed = destinationPort == ServerPort6;
        if (relayed)
        {
            // Server (or relay) to relay agent: only a Relay-Reply carries a client's Reply; a Relay-Forward is ignored.
            var unwrapped = UnwrapRelayReply6(message, out message, out peer);
            if (unwrapped != DhcpParse.Ack)
            {
                Malformed += unwrapped == DhcpParse.Malformed ? 1 : 0;
                return;
            }
        }
        else if (destinationPort != ClientPort6)
        {
            return;
        }

        Span<Ipv6Address> bound = stackalloc Ipv6Address[MaxAddresses6];
        var result = ParseReply6(message, bound, out var count);
        if (result != DhcpParse.Ack)
        {
            Malformed += result == DhcpParse.Malformed ? 1 : 0;
            return;
        }

        // The client: the Reply's destination (a Reply goes to the client's link-local address, RFC 8415 §18.3); a
        // relayed Reply goes to the relay, so its client is named inside it.
        var mac = relayed ? RelayedClientMac(state, peer, message) : MacAddress.Read(frame);
        ref var client = ref state.Table.Find(mac.Value);
        if (!mac.IsUnicast || mac.IsZero || Unsafe.IsNullRef(ref client))
        {
            NoLocation++;
            return;
        }

        Replies6++;
        for (var i = 0; i < count; i++)
        {
            context.Mobility.Post(new MobilitySignal(MobilitySignalKind.DhcpBinding, domain, client.Segment, client.Vtep, mac.Value, true, bound[i].High, bound[i].Low, now));
        }
    }

    /// <summary>
    /// Unwraps a Relay-Reply (RFC 8415 §9.2) to the message for the client: each level's Relay Message option holds the
    /// message for the next hop down, itself a Relay-Reply while relays are chained (at most <see cref="HopCountLimit"/>
    /// + 1 levels). <see cref="DhcpParse.Ack"/>: <paramref name="inner"/> is that message and <paramref name="peer"/> the
    /// innermost relay's peer-address (the client's address on its link); <see cref="DhcpParse.NotAnAck"/>: not a
    /// Relay-Reply; <see cref="DhcpParse.Malformed"/>: a header cut short, an option overrunning, no or an empty Relay
    /// Message, or nested deeper than the hop-count limit.
    /// </summary>
    public static DhcpParse UnwrapRelayReply6(ReadOnlySpan<byte> message, out ReadOnlySpan<byte> inner, out Ipv6Address peer)
    {
        inner = default;
        peer = default;
        if (message.Length < 1 || message[0] != RelayReply6)
        {
            return message.Length < 1 ? DhcpParse.Malformed : DhcpParse.NotAnAck;
        }

        for (var level = 0; level <= HopCountLimit; level++)
        {
            if (message.Length < RelayHeader6)
            {
                return DhcpParse.Malformed;
            }

            peer = Ipv6Address.Read(message[18..]);
            var options = message[RelayHeader6..];
            var (start, length) = (0, 0);
            while (options.Length > 0)
            {
                if (!NextOption(ref options, out var code, out var body))
                {
                    return DhcpParse.Malformed;
                }

                if (code == OptionRelayMessage)
                {
                    // The option's body ends where the rest of the options begin.
                    (start, length) = (message.Length - options.Length - body.Length, body.Length);
                }
            }

            if (length == 0)
            {
                return DhcpParse.Malformed;
            }

            var relayed = message.Slice(start, length);

            if (relayed[0] != RelayReply6)
            {
                inner = relayed;
                return DhcpParse.Ack;
            }

            message = relayed;
        }

        return DhcpParse.Malformed;
    }

    /// <summary>
    /// The client of a relayed Reply: the MAC in <paramref name="peer"/>'s modified EUI-64 interface identifier (a
    /// link-local address made from the MAC, RFC 4291 Appendix A) if the bridge has learned it, else the link-layer
    /// address of the Reply's Client Identifier (DUID-LLT or DUID-LL with hardware type Ethernet) if learned; else that
    /// candidate which exists (0 when none), for the caller to count.
    /// </summary>
    public static MacAddress RelayedClientMac(DomainState state, Ipv6Address peer, ReadOnlySpan<byte> reply)
    {
        ArgumentNullException.ThrowIfNull(state);
        var eui = EuiMac(peer);
        if (eui != 0 && !Unsafe.IsNullRef(ref state.Table.Find(eui)))
        {
            return new MacAddress(eui);
        }

        var duid = DuidMac(reply);
        return new MacAddress(duid != 0 ? duid : eui);
    }

    /// <summary>The MAC of a link-local address whose interface identifier is a modified EUI-64 (ff:fe in its middle, U/L bit flipped back); 0 otherwise.</summary>
    public static ulong EuiMac(Ipv6Address address)
    {
        var id = address.Low;
        if (!address.IsLinkLocal || ((id >> 24) & 0xFFFF) != 0xFFFE)
        {
            return 0;
        }

        return ((((id >> 56) ^ 0x02) & 0xFF) << 40) | (((id >> 40) & 0xFFFF) << 24) | (id & 0xFF_FFFF);
    }

    /// <summary>The Ethernet address in a DHCPv6 message's Client Identifier (DUID-LLT: type 1, DUID-LL: type 3; hardware type 1, 6 octets); 0 otherwise.</summary>
    public static ulong DuidMac(ReadOnlySpan<byte> message)
    {
        var options = message.Length >= 4 ? message[4..] : default;
        while (options.Length > 0 && NextOption(ref options, out var code, out var duid))
        {
            if (code != OptionClientId || duid.Length < 4 || BinaryPrimitives.ReadUInt16BigEndian(duid[2..]) != 1)
            {
                continue;
            }

            var address = BinaryPrimitives.ReadUInt16BigEndian(duid) switch
            {
                1 when duid.Length >= 8 => duid[8..], // type, hardware type, time, link-layer address
                3 => duid[4..], // type, hardware type, link-layer address
                _ => default,
            };
            return address.Length == 6 ? MacAddress.Read(address).Value : 0;
        }

        return 0;
    }

    /// <summary>
    /// Parses a DHCPv6 message (the UDP payload): a Reply whose IA_NA options bind addresses is
    /// <see cref="DhcpParse.Ack"/> with them in <paramref name="bound"/> (at most its length); another message type, a
    /// Reply with a failure status or without a usable address is <see cref="DhcpParse.NotAnAck"/>; an option or
    /// sub-option overrunning its container, or shorter than its fixed part, is <see cref="DhcpParse.Malformed"/>.
    /// </summary>
    public static DhcpParse ParseReply6(ReadOnlySpan<byte> message, Span<Ipv6Address> bound, out int count)
    {
        count = 0;
        if (message.Length < 4)
        {
            return DhcpParse.Malformed;
        }

        if (message[0] != Reply6)
        {
            return DhcpParse.NotAnAck;
        }

        var failed = false;
        var options = message[4..];
        while (options.Length > 0)
        {
            if (!NextOption(ref options, out var code, out var body))
            {
                return DhcpParse.Malformed;
            }

            if (code == OptionStatusCode)
            {
                if (body.Length < 2)
                {
                    return DhcpParse.Malformed;
                }

                failed |= BinaryPrimitives.ReadUInt16BigEndian(body) != 0;
            }
            else if (code == OptionIaNa && !IaNa(body, bound, ref count))
            {
                return DhcpParse.Malformed;
            }
        }

        if (failed)
        {
            count = 0;
        }

        return count > 0 ? DhcpParse.Ack : DhcpParse.NotAnAck;
    }

    /// <summary>One IA_NA's body: its IAADDRs with a valid lifetime go to <paramref name="bound"/> unless its own status says failure; false = malformed.</summary>
    private static bool IaNa(ReadOnlySpan<byte> body, Span<Ipv6Address> bound, ref int count)
    {
        if (body.Length < 12)
        {
            return false;
        }

        // First pass: well-formed, and the IA's status (NoAddrsAvail and the like leave it without addresses).
        var failed = false;
        var options = body[12..];
        while (options.Length > 0)
        {
            if (!NextOption(ref options, out var code, out var sub))
            {
                return false;
            }

            if ((code == OptionIaAddr && sub.Length < 24) || (code == OptionStatusCode && sub.Length < 2))
            {
                return false;
            }

            failed |= code == OptionStatusCode && BinaryPrimitives.ReadUInt16BigEndian(sub) != 0;
        }

        options = body[12..];
        while (!failed && options.Length > 0 && NextOption(ref options, out var code, out var sub))
        {
            if (code != OptionIaAddr || BinaryPrimitives.ReadUInt32BigEndian(sub[20..]) == 0 || count >= bound.Length)
            {
                continue; // another sub-option, a released address (valid lifetime 0), or no room
            }

            var address = Ipv6Address.Read(sub);
            if (!address.IsAny && !address.IsMulticast && !address.IsLinkLocal)
            {
                bound[count++] = address;
            }
        }

        return true;
    }

    /// <summary>Takes one option (code, length, body) off the front of <paramref name="options"/>; false when it overruns.</summary>
    private static bool NextOption(ref ReadOnlySpan<byte> options, out ushort code, out ReadOnlySpan<byte> body)
    {
        code = 0;
        body = default;
        if (options.Length < 4)
        {
            return false;
        }

        code = BinaryPrimitives.ReadUInt16BigEndian(options);
        var length = BinaryPrimitives.ReadUInt16BigEndian(options[2..]);
        if (4 + length > options.Length)
        {
            return false;
        }

        body = options.Slice(4, length);
        options = options[(4 + length)..];
        return true;
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
