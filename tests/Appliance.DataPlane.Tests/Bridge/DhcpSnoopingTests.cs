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
        var random = new Random(6);
        var ack = Ack(Client, Leased);
        for (var i = 0; i < 20_000; i++)
        {
            var message = ack[..random.Next(0, ack.Length + 1)];
            for (var flips = random.Next(1, 6); flips > 0 && message.Length > 0; flips--)
            {
                message[random.Next(message.Length)] = (byte)random.Next(256);
            }

            var parsed = DhcpSnooping.Parse(message);
            if (parsed.Result == DhcpParse.Ack)
            {
                Assert.NotEqual(0u, parsed.Address);
                Assert.True(new MacAddress(parsed.ClientMac).IsUnicast);
            }
        }

        Assert.Equal(new DhcpAck(DhcpParse.Ack, Client.Value, Leased.Value), DhcpSnooping.Parse(ack));
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
