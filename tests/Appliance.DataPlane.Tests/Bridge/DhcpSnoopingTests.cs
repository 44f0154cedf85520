using System.Buffers.Binary;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Bridge;

/// <summary>DHCPACK snooping: a bridged ACK binds yiaddr to chaddr where the client was learned; bad messages are counted, never thrown, and the frame is forwarded as before.</summary>
public class DhcpSnoopingTests
{
    private static readonly MacAddress Client = MacAddress.Parse("00:50:56:aa:bb:01");
    private static readonly MacAddress Server = MacAddress.Parse("00:50:56:dd:00:01");
    private static readonly Ipv4Address ServerIp = Ipv4Address.Parse("10.10.0.2");
    private static readonly Ipv4Address Leased = Ipv4Address.Parse("10.10.0.77");

    /// <summary>A DHCP message (RFC 2131 §2): BOOTP header, magic cookie, then <paramref name="options"/> (an END is appended).</summary>
    private static byte[] Dhcp(byte op, MacAddress chaddr, Ipv4Address yiaddr, params byte[] options)
    {
        var message = new byte[240 + options.Length + 1];
        message[0] = op;
        message[1] = 1; // Ethernet
        message[2] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(4), 0x1234_5678); // xid
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(16), yiaddr.Value);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(20), ServerIp.Value); // siaddr
        chaddr.WriteTo(message.AsSpan(28));
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(236), 0x6382_5363);
        options.CopyTo(message.AsSpan(240));
        message[^1] = 255;
        return message;
    }

    private static byte[] Ack(MacAddress chaddr, Ipv4Address yiaddr) =>
        Dhcp(2, chaddr, yiaddr, 53, 1, 5, 54, 4, 10, 10, 0, 2, 51, 4, 0, 0, 0x0e, 0x10);

    private static byte[] Frame(byte[] dhcp, MacAddress destination, ushort sourcePort = 67, ushort destinationPort = 68) =>
        Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Server, destination, ServerIp, Ipv4Address.Parse("255.255.255.255")), sourcePort, destinationPort, dhcp));

    private static MemoryFrame FromServer(byte[] frame) => new(Frames.Vxlan(5010, frame), RemoteVtep: Vtep2);

    private static L3Fixture Armed(out DhcpSnooping dhcp)
    {
        var lab = new L3Fixture();
        var snooping = new DhcpSnooping();
        lab.Worker.Queries.Ask(context =>
        {
            context.DhcpSnooping = snooping;
            return 0;
        });
        lab.Worker.RunOnce();
        dhcp = snooping;

        // The client asks (DHCPREQUEST from 0.0.0.0, broadcast): the bridge learns its MAC on acc10.
        lab.Receive(Acc10, Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Client, MacAddress.Broadcast, Ipv4Address.Parse("0.0.0.0"), Ipv4Address.Parse("255.255.255.255")), 68, 67, Dhcp(1, Client, default, 53, 1, 3))));
        lab.ClearSent();
        return lab;
    }

    /// <summary>20,000 seeded mutations of <paramref name="valid"/>: cut at a random length, then 1 to 5 random octets overwritten.</summary>
    private static IEnumerable<byte[]> Mutations(byte[] valid, int seed)
    {
        var random = new Random(seed);
        for (var i = 0; i < 20_000; i++)
        {
            var message = valid[..random.Next(0, valid.Length + 1)];
            for (var flips = random.Next(1, 6); flips > 0 && message.Length > 0; flips--)
            {
                message[random.Next(message.Length)] = (byte)random.Next(256);
            }

            yield return message;
        }
    }

    private static List<MobilitySignal> Signals(L3Fixture lab) => Gateway.MobilityDetectionTests.Signals(lab);

    [Fact]
    public void A_dhcpack_from_the_server_side_binds_the_leased_address_where_the_client_was_learned()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);

        lab.Receive(Und0, FromServer(Frame(Ack(Client, Leased), Client)));

        var signal = Assert.Single(Signals(lab));
        Assert.Equal(MobilitySignalKind.DhcpBinding, signal.Kind);
        Assert.Equal((Client.Value, Leased.Value, false), (signal.Mac, (uint)signal.AddressLo, signal.Ipv6));
        Assert.Equal(lab.Slot.Current.Segments.Single(s => s.Name == "acc10").Index, signal.Segment); // the client's side, not the server's
        Assert.Equal(0u, signal.Vtep);
        Assert.Equal((1L, 0L, 0L), (dhcp.Acks, dhcp.Malformed, dhcp.NoLocation));
        Assert.Single(lab.Sent(Acc10)); // the ACK itself is forwarded to the client as before
    }

    [Fact]
    public void Offers_naks_acks_to_inform_and_acks_for_an_unknown_client_bind_nothing()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);

        lab.Receive(Und0, FromServer(Frame(Dhcp(2, Client, Leased, 53, 1, 2), Client))); // OFFER
        lab.Receive(Und0, FromServer(Frame(Dhcp(2, Client, default, 53, 1, 6), Client))); // NAK
        lab.Receive(Und0, FromServer(Frame(Dhcp(2, Client, default, 53, 1, 5), Client))); // ACK to an INFORM: no yiaddr
        lab.Receive(Und0, FromServer(Frame(Ack(Client, Leased), Client, 67, 67))); // relay-to-server traffic, not to a client
        lab.Receive(Und0, FromServer(Frame(Ack(MacAddress.Parse("00:50:56:aa:bb:99"), Leased), MacAddress.Broadcast))); // nobody learned

        Assert.Empty(Signals(lab));
        Assert.Equal((0L, 0L, 1L), (dhcp.Acks, dhcp.Malformed, dhcp.NoLocation));
        lab.ClearSent();
    }

    [Fact]
    public void Malformed_dhcp_messages_are_counted_forwarded_and_never_bind()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);
        var ack = Ack(Client, Leased);
        var badCookie = (byte[])ack.Clone();
        badCookie[236] = 0;
        var overrun = Dhcp(2, Client, Leased, 53, 1, 5, 54, 40, 10); // option 54 claims 40 octets
        var noType = Dhcp(2, Client, Leased, 54, 4, 10, 10, 0, 2);
        var badTypeLength = Dhcp(2, Client, Leased, 53, 2, 5, 0);
        var request = Dhcp(1, Client, Leased, 53, 1, 5); // BOOTREQUEST from port 67

        foreach (var message in new[] { ack[..100], ack[..239], badCookie, overrun, noType, badTypeLength, request })
        {
            lab.Receive(Und0, FromServer(Frame(message, Client)));
        }

        Assert.Empty(Signals(lab));
        Assert.Equal((0L, 7L), (dhcp.Acks, dhcp.Malformed));
        Assert.Equal(7, lab.Sent(Acc10).Count);
    }

    [Fact]
    public void Random_mutations_of_an_ack_never_throw_and_an_ack_is_only_reported_with_a_unicast_client_and_an_address()
    {
        var ack = Ack(Client, Leased);
        foreach (var message in Mutations(ack, seed: 6))
        {
            var parsed = DhcpSnooping.Parse(message);
            if (parsed.Result == DhcpParse.Ack)
            {
                Assert.NotEqual(0u, parsed.Address);
                Assert.True(new MacAddress(parsed.ClientMac).IsUnicast);
            }
        }

        Assert.Equal(new DhcpAck(DhcpParse.Ack, Client.Value, Leased.Value), DhcpSnooping.Parse(ack));
    }

    // ------------------------------------------------------------------ DHCPv6 (RFC 8415)
    private static readonly Ipv6Address ServerIp6 = Ipv6Address.Parse("fe80::50:56ff:fedd:1");
    private static readonly Ipv6Address ClientLinkLocal = Ipv6Address.Parse("fe80::250:56ff:feaa:bb01");
    private static readonly Ipv6Address Leased6 = Ipv6Address.Parse("2001:db8:10::77");
    private static readonly Ipv6Address Second6 = Ipv6Address.Parse("2001:db8:10::78");

    private static byte[] Option6(ushort code, params byte[][] parts)
    {
        var body = parts.SelectMany(p => p).ToArray();
        var option = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt16BigEndian(option, code);
        BinaryPrimitives.WriteUInt16BigEndian(option.AsSpan(2), (ushort)body.Length);
        body.CopyTo(option, 4);
        return option;
    }

    /// <summary>A DHCPv6 message: type, transaction id, options (RFC 8415 §8).</summary>
    private static byte[] Message6(byte type, params byte[][] options) => [type, 0x12, 0x34, 0x56, .. options.SelectMany(o => o)];

    private static byte[] Reply6(params byte[][] options) => Message6(7, options);

    /// <summary>IA_NA (§21.4): IAID 1, T1 3600, T2 5400, then the sub-options.</summary>
    private static byte[] IaNa(params byte[][] sub) => Option6(3, [[0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 0x15, 0x18], .. sub]);

    /// <summary>IAADDR (§21.6): address, preferred lifetime 3600, valid lifetime <paramref name="valid"/>.</summary>
    private static byte[] IaAddr(Ipv6Address address, uint valid = 7200)
    {
        var body = new byte[24];
        address.WriteTo(body);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(16), 3600);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(20), valid);
        return Option6(5, body);
    }

    private static byte[] Status6(ushort code) => Option6(13, [(byte)(code >> 8), (byte)code, (byte)'x']);

    private static byte[] ServerId6 => Option6(2, [0, 3, 0, 1, 0, 0x50, 0x56, 0xdd, 0, 1]);

    private static byte[] Frame6(byte[] dhcp, MacAddress destination, ushort sourcePort = 547, ushort destinationPort = 546) =>
        Build(b => PacketBuilder.Udp(b, new Ipv6FrameSpec(Server, destination, ServerIp6, ClientLinkLocal), sourcePort, destinationPort, dhcp));

    [Fact]
    public void A_dhcpv6_reply_binds_every_address_of_its_ia_na_to_the_reply_destination_where_it_was_learned()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);

        lab.Receive(Und0, FromServer(Frame6(Reply6(ServerId6, IaNa(IaAddr(Leased6), IaAddr(Second6), Status6(0))), Client)));

        var signals = Signals(lab);
        Assert.Equal(2, signals.Count);
        var acc10 = lab.Slot.Current.Segments.Single(s => s.Name == "acc10").Index;
        Assert.All(signals, s => Assert.Equal((MobilitySignalKind.DhcpBinding, Client.Value, true, acc10, 0u), (s.Kind, s.Mac, s.Ipv6, s.Segment, s.Vtep)));
        Assert.Equal([Leased6, Second6], signals.Select(s => new Ipv6Address(s.AddressHi, s.AddressLo)));
        Assert.Equal((1L, 0L, 0L, 0L), (dhcp.Replies6, dhcp.Acks, dhcp.Malformed, dhcp.NoLocation));
        Assert.Single(lab.Sent(Acc10)); // the Reply itself is forwarded to the client as before
    }

    [Fact]
    public void Dhcpv6_messages_that_lease_nothing_bind_nothing()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);

        var messages = new[]
        {
            Frame6(Message6(2, IaNa(IaAddr(Leased6))), Client), // ADVERTISE: an offer, not a lease
            Frame6(Reply6(IaNa(Status6(2))), Client), // NoAddrsAvail in the IA
            Frame6(Reply6(IaNa(IaAddr(Leased6)), Status6(1)), Client), // UnspecFail for the whole Reply
            Frame6(Reply6(IaNa(IaAddr(Leased6, valid: 0))), Client), // released (valid lifetime 0)
            Frame6(Reply6(IaNa(IaAddr(Ipv6Address.Parse("ff02::1")), IaAddr(Ipv6Address.Parse("fe80::1")))), Client), // not an address to route
            Frame6(Reply6(ServerId6), Client), // no IA_NA (a Reply to an Information-request)
            Frame6(Reply6(IaNa(IaAddr(Leased6))), Client, 547, 547), // relay traffic, not to a client
            Frame6(Reply6(IaNa(IaAddr(Leased6))), MacAddress.Parse("00:50:56:aa:bb:99")), // nobody learned
        };
        foreach (var frame in messages)
        {
            lab.Receive(Und0, FromServer(frame));
        }

        Assert.Empty(Signals(lab));
        Assert.Equal((0L, 0L, 1L), (dhcp.Replies6, dhcp.Malformed, dhcp.NoLocation));
        lab.ClearSent();
    }

    [Fact]
    public void Malformed_dhcpv6_replies_are_counted_forwarded_and_never_bind()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);
        var good = Reply6(IaNa(IaAddr(Leased6)));
        var overrun = (byte[])good.Clone();
        overrun[7] = 200; // IA_NA claims 200 octets
        var messages = new[]
        {
            good[..3], // shorter than type + transaction id
            good[..6], // an option header cut short
            overrun,
            Reply6(Option6(3, [0, 0, 0, 1])), // IA_NA shorter than IAID, T1, T2
            Reply6(IaNa(Option6(5, new byte[20]))), // IAADDR shorter than address + lifetimes
            Reply6(IaNa(Option6(13, [0]))), // status code without its code
            Reply6(Option6(13, [])),
        };
        foreach (var message in messages)
        {
            lab.Receive(Und0, FromServer(Frame6(message, Client)));
        }

        Assert.Empty(Signals(lab));
        Assert.Equal((0L, 7L), (dhcp.Replies6, dhcp.Malformed));
        Assert.Equal(7, lab.Sent(Acc10).Count);
    }

    [Fact]
    public void A_dhcpv6_reply_binds_at_most_eight_addresses_and_random_mutations_never_throw()
    {
        var many = Reply6(IaNa([.. Enumerable.Range(1, 12).Select(i => IaAddr(new Ipv6Address(Leased6.High, (ulong)i)))]));
        var bound = new Ipv6Address[DhcpSnooping.MaxAddresses6];
        Assert.Equal(DhcpParse.Ack, DhcpSnooping.ParseReply6(many, bound, out var count));
        Assert.Equal(8, count);

        foreach (var message in Mutations(Reply6(ServerId6, IaNa(IaAddr(Leased6), IaAddr(Second6))), seed: 66))
        {
            if (DhcpSnooping.ParseReply6(message, bound, out count) == DhcpParse.Ack)
            {
                Assert.InRange(count, 1, DhcpSnooping.MaxAddresses6);
                Assert.All(bound[..count], a => Assert.False(a.IsAny || a.IsMulticast || a.IsLinkLocal));
            }
        }
    }

    /// <summary>A Relay-Reply (RFC 8415 §9.2): type 13, hop count, link-address, peer-address, then the Relay Message option (9).</summary>
    private static byte[] RelayReply6(Ipv6Address peer, byte[] relayed, byte type = 13)
    {
        var header = new byte[34];
        header[0] = type;
        Ipv6Address.Parse("2001:db8:10::1").WriteTo(header.AsSpan(2));
        peer.WriteTo(header.AsSpan(18));
        return [.. header, .. Option6(18, [0, 0, 0, 1]), .. Option6(9, relayed)]; // an Interface-Id, then the message
    }

    /// <summary>Client Identifier (§21.2) holding DUID-LL (§11.4: type 3, hardware type 1, the MAC).</summary>
    private static byte[] ClientIdLl(MacAddress mac) => Option6(1, [0, 3, 0, 1, .. MacBytes(mac)]);

    /// <summary>Client Identifier holding DUID-LLT (§11.2: type 1, hardware type 1, time, the MAC).</summary>
    private static byte[] ClientIdLlt(MacAddress mac) => Option6(1, [0, 1, 0, 1, 0x2a, 0, 0, 1, .. MacBytes(mac)]);

    private static byte[] MacBytes(MacAddress mac) => [.. Enumerable.Range(0, 6).Select(i => (byte)(mac.Value >> (40 - (8 * i))))];

    private static readonly MacAddress Relay = MacAddress.Parse("00:50:56:ee:00:01");

    /// <summary>A modified EUI-64 link-local address of a MAC the bridge never learned.</summary>
    private static readonly Ipv6Address Stranger = Ipv6Address.Parse("fe80::250:56ff:feaa:bb99");

    [Fact]
    public void A_relay_reply_is_unwrapped_and_binds_to_the_client_its_peer_address_names()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);

        // Server → relay agent (547 → 547, to the relay's MAC): the client is fe80::250:56ff:feaa:bb01 = 00:50:56:aa:bb:01.
        var reply = Reply6(ServerId6, IaNa(IaAddr(Leased6)));
        lab.Receive(Und0, FromServer(Frame6(RelayReply6(ClientLinkLocal, reply), Relay, 547, 547)));

        var signal = Assert.Single(Signals(lab));
        var acc10 = lab.Slot.Current.Segments.Single(s => s.Name == "acc10").Index;
        Assert.Equal((MobilitySignalKind.DhcpBinding, Client.Value, true, acc10), (signal.Kind, signal.Mac, signal.Ipv6, signal.Segment));
        Assert.Equal(Leased6, new Ipv6Address(signal.AddressHi, signal.AddressLo));
        Assert.Equal((1L, 0L, 0L), (dhcp.Replies6, dhcp.Malformed, dhcp.NoLocation));
        lab.ClearSent();
    }

    [Fact]
    public void Chained_relays_are_unwrapped_and_a_client_identifier_names_the_client_when_the_peer_address_does_not()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);

        // Two relays; the innermost peer-address is a stable-privacy link-local (no ff:fe): the DUID names the client.
        var privacy = Ipv6Address.Parse("fe80::1c3a:9d2f:5b41:7e08");
        var inner = RelayReply6(privacy, Reply6(ClientIdLl(Client), IaNa(IaAddr(Leased6))));
        lab.Receive(Und0, FromServer(Frame6(RelayReply6(Ipv6Address.Parse("2001:db8:20::1"), inner), Relay, 547, 547)));
        var signal = Assert.Single(Signals(lab));
        Assert.Equal((Client.Value, Leased6), (signal.Mac, new Ipv6Address(signal.AddressHi, signal.AddressLo)));

        // DUID-LLT the same way; an EUI-64 peer-address of a MAC nobody learned falls back to the DUID too.
        lab.Receive(Und0, FromServer(Frame6(RelayReply6(Stranger, Reply6(ClientIdLlt(Client), IaNa(IaAddr(Second6)))), Relay, 547, 547)));
        signal = Assert.Single(Signals(lab));
        Assert.Equal((Client.Value, Second6), (signal.Mac, new Ipv6Address(signal.AddressHi, signal.AddressLo)));
        Assert.Equal((2L, 0L, 0L), (dhcp.Replies6, dhcp.Malformed, dhcp.NoLocation));
        lab.ClearSent();
    }

    [Fact]
    public void Relay_messages_that_name_no_learned_client_or_do_not_parse_bind_nothing_and_are_counted()
    {
        using var lab = Armed(out var dhcp);
        Signals(lab);
        var reply = Reply6(IaNa(IaAddr(Leased6)));
        var tooDeep = reply;
        for (var i = 0; i < 10; i++)
        {
            tooDeep = RelayReply6(ClientLinkLocal, tooDeep);
        }

        var ignored = new[]
        {
            RelayReply6(ClientLinkLocal, Message6(1, IaNa(IaAddr(Leased6))), type: 12), // a Relay-Forward (relay → server)
            RelayReply6(ClientLinkLocal, Message6(2, IaNa(IaAddr(Leased6)))), // a relayed ADVERTISE
            RelayReply6(Stranger, reply), // the peer-address names a MAC nobody learned, and no Client Identifier
            RelayReply6(Ipv6Address.Parse("fe80::1c3a:9d2f:5b41:7e08"), reply), // neither peer-address nor DUID names one
        };
        var malformed = new[]
        {
            RelayReply6(ClientLinkLocal, reply)[..20], // the relay header cut short
            RelayReply6(ClientLinkLocal, reply)[..40], // an option cut short
            [.. RelayReply6(ClientLinkLocal, reply)[..34], .. Option6(18, [1])], // no Relay Message
            RelayReply6(ClientLinkLocal, []), // an empty Relay Message
            tooDeep, // more relays than the hop-count limit
            RelayReply6(ClientLinkLocal, reply[..6]), // the relayed Reply malformed
        };
        foreach (var message in ignored.Concat(malformed))
        {
            lab.Receive(Und0, FromServer(Frame6(message, Relay, 547, 547)));
        }

        Assert.Empty(Signals(lab));
        Assert.Equal((0L, 6L, 2L), (dhcp.Replies6, dhcp.Malformed, dhcp.NoLocation));
        lab.ClearSent();
    }

    [Fact]
    public void Eui64_and_duid_macs_are_read_exactly_and_random_mutations_of_a_relay_reply_never_throw()
    {
        Assert.Equal(Client.Value, DhcpSnooping.EuiMac(ClientLinkLocal));
        Assert.Equal(0UL, DhcpSnooping.EuiMac(Ipv6Address.Parse("2001:db8::250:56ff:feaa:bb01"))); // not link-local
        Assert.Equal(0UL, DhcpSnooping.EuiMac(Ipv6Address.Parse("fe80::1c3a:9d2f:5b41:7e08")));
        Assert.Equal(MacAddress.Parse("02:00:00:00:00:01").Value, DhcpSnooping.EuiMac(Ipv6Address.Parse("fe80::ff:fe00:1"))); // U/L bit flipped back
        Assert.Equal(Client.Value, DhcpSnooping.DuidMac(Reply6(ServerId6, ClientIdLl(Client))));
        Assert.Equal(Client.Value, DhcpSnooping.DuidMac(Reply6(ClientIdLlt(Client))));
        Assert.Equal(0UL, DhcpSnooping.DuidMac(Reply6(Option6(1, [0, 3, 0, 6, 1, 2, 3, 4, 5, 6])))); // not Ethernet
        Assert.Equal(0UL, DhcpSnooping.DuidMac(Reply6(Option6(1, [0, 2, 0, 0, 0, 9, 1, 2])))); // DUID-EN: no MAC

        var valid = RelayReply6(Ipv6Address.Parse("2001:db8:20::1"), RelayReply6(ClientLinkLocal, Reply6(ClientIdLlt(Client), IaNa(IaAddr(Leased6)))));
        var bound = new Ipv6Address[DhcpSnooping.MaxAddresses6];
        Assert.Equal(DhcpParse.Ack, DhcpSnooping.UnwrapRelayReply6(valid, out var inner, out var peer));
        Assert.Equal((ClientLinkLocal, DhcpParse.Ack), (peer, DhcpSnooping.ParseReply6(inner, bound, out _)));
        foreach (var message in Mutations(valid, seed: 67))
        {
            if (DhcpSnooping.UnwrapRelayReply6(message, out inner, out _) == DhcpParse.Ack)
            {
                Assert.NotEqual(13, inner[0]);
                _ = DhcpSnooping.ParseReply6(inner, bound, out _);
                _ = DhcpSnooping.DuidMac(inner);
            }
        }
    }

    [Fact]
    public void With_snooping_off_an_ack_is_only_forwarded()
    {
        using var lab = new L3Fixture();
        lab.Receive(Acc10, Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Client, MacAddress.Broadcast, Ipv4Address.Parse("0.0.0.0"), Ipv4Address.Parse("255.255.255.255")), 68, 67, Dhcp(1, Client, default, 53, 1, 3))));
        Signals(lab);
        lab.ClearSent();

        lab.Receive(Und0, FromServer(Frame(Ack(Client, Leased), Client)));

        Assert.DoesNotContain(Signals(lab), s => s.Kind == MobilitySignalKind.DhcpBinding);
        Assert.Single(lab.Sent(Acc10));
    }
}
