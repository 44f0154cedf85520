using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Firewall;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Firewall.FlowFixture;

namespace Isthmus.DataPlane.Tests.Nat;

public class NatStageTests
{
    private const string Host = "10.10.0.10";
    private const string Host2 = "10.10.0.11";
    private const string Server = "198.51.100.7";
    private const string Public = "203.0.113.1";
    private const string WebServer = "10.10.0.5";

    public static NatSpec SnatToPool => new()
    {
        Snat = [new SnatRuleSpec { EgressZone = "outside", Sources = ["10.10.0.0/24"], ToAddresses = [Public], Ports = "20000-20009" }],
    };

    private static FirewallSpec WithInbound(params RuleSpec[] rules) => DefaultFirewall with
    {
        Policies =
        [
            .. DefaultFirewall.Policies,
            new PolicySpec { From = "outside", To = "inside", Rules = rules },
        ],
    };

    [Fact]
    public void Snat_rewrites_the_source_and_replies_are_translated_back()
    {
        using var f = new FlowFixture(nat: SnatToPool);
        var syn = f.Outbound(Tcp(Host, 40000, Server, 80, TcpFlags.Syn));
        Assert.True(syn.Passed);
        Assert.Equal(Public, syn.Source.ToString());
        Assert.InRange(syn.SourcePort, (ushort)20000, (ushort)20009);
        AssertChecksums(syn.Frame);

        var synAck = f.Inbound(Tcp(Server, 80, Public, syn.SourcePort, TcpFlags.Syn | TcpFlags.Ack));
        Assert.True(synAck.Passed);
        Assert.Equal(Host, synAck.Destination.ToString());
        Assert.Equal(40000, synAck.DestinationPort);
        AssertChecksums(synAck.Frame);

        var ack = f.Outbound(Tcp(Host, 40000, Server, 80, TcpFlags.Ack));
        Assert.Equal(syn.SourcePort, ack.SourcePort);
        AssertChecksums(ack.Frame);
    }

    [Fact]
    public void Ports_never_collide_run_out_as_a_counted_drop_and_come_back_after_timeout()
    {
        using var f = new FlowFixture(nat: SnatToPool);
        var ports = new HashSet<ushort>();
        for (var i = 0; i < 10; i++)
        {
            // Every inside host uses source port 5000 toward the same server: only the pool port tells them apart.
            var r = f.Outbound(Udp($"10.10.0.{20 + i}", 5000, Server, 53));
            Assert.True(r.Passed);
            Assert.True(ports.Add(r.SourcePort), $"port {r.SourcePort} handed out twice");
            AssertChecksums(r.Frame);
        }

        Assert.Equal("nat.PortsExhausted", f.Outbound(Udp("10.10.0.99", 5000, Server, 53)).Drop);

        // Each reply reaches its own host.
        foreach (var port in ports)
        {
            var reply = f.Inbound(Udp(Server, 53, Public, port));
            Assert.True(reply.Passed);
            Assert.StartsWith("10.10.0.", reply.Destination.ToString(), StringComparison.Ordinal);
        }

        f.Advance(TimeSpan.FromSeconds(121));
        Assert.True(f.Outbound(Udp("10.10.0.99", 5000, Server, 53)).Passed);
    }

    [Fact]
    public void Endpoint_independent_mapping_keeps_one_outside_port_for_every_destination()
    {
        var nat = new NatSpec
        {
            Snat = [new SnatRuleSpec { EgressZone = "outside", ToAddresses = [Public], Ports = "30000-30100", EndpointIndependent = true }],
        };
        using var f = new FlowFixture(nat: nat);
        var a = f.Outbound(Udp(Host, 3478, "198.51.100.1", 3478));
        var b = f.Outbound(Udp(Host, 3478, "198.51.100.2", 3478));
        var c = f.Outbound(Udp(Host2, 3478, "198.51.100.1", 3478));
        Assert.Equal(a.SourcePort, b.SourcePort);
        Assert.NotEqual(a.SourcePort, c.SourcePort);
        Assert.Equal(2, f.Flows.Nat.Mappings);

        // The mapping lives as long as its sessions (reclaimed by the heartbeat sweep).
        for (var s = 0; s < 31 + 8; s++)
        {
            f.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(0, f.Flows.Nat.Mappings);
    }

    [Fact]
    public void Icmp_echo_ids_are_translated_like_ports()
    {
        using var f = new FlowFixture(nat: SnatToPool);
        var request = f.Outbound(Echo(Host, Server, id: 4242));
        Assert.Equal(Public, request.Source.ToString());
        AssertChecksums(request.Frame);
        var reply = f.Inbound(Echo(Server, Public, id: request.IcmpId, reply: true));
        Assert.True(reply.Passed);
        Assert.Equal(Host, reply.Destination.ToString());
        Assert.Equal(4242, reply.IcmpId);
        AssertChecksums(reply.Frame);
    }

    [Fact]
    public void Icmp_errors_are_related_to_their_flow_and_translated_back_through_snat()
    {
        using var f = new FlowFixture(nat: SnatToPool);
        var probe = f.Outbound(Udp(Host, 33434, Server, 33434));
        var translated = probe.Frame;

        // A router on the way answers the translated packet: time exceeded, quoting 28+ bytes.
        var error = IcmpError("192.0.2.254", Public, Icmpv4Type.TimeExceeded, 0, translated, quoteBytes: 16);
        var back = f.Inbound(error);
        Assert.True(back.Passed);
        Assert.True((back.Meta.Flags & PacketFlags.KnownFlow) != 0);
        Assert.Equal(Host, back.Destination.ToString());
        Assert.Equal("192.0.2.254", back.Source.ToString());
        AssertChecksums(back.Frame);

        // The quote is the packet as the host sent it, with its checksums intact.
        var quote = back.Frame.AsSpan(EthernetHeader.Length + Ipv4Header.MinLength + Icmpv4Header.Length);
        var quotedIp = new Ipv4Header(quote);
        Assert.Equal(Host, quotedIp.Source.ToString());
        Assert.Equal(Server, quotedIp.Destination.ToString());
        Assert.True(quotedIp.IsHeaderChecksumValid);
        Assert.Equal(33434, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(quote[20..]));
        var original = Udp(Host, 33434, Server, 33434);
        Assert.Equal(original.AsSpan(EthernetHeader.Length + 20, 8).ToArray(), quote.Slice(20, 8).ToArray());
    }

    [Fact]
    public void Port_unreachable_from_a_port_forwarded_server_reaches_the_outside_client_un_dnatted()
    {
        var nat = new NatSpec { Dnat = [new DnatRuleSpec { Destination = Public, Protocol = "udp", Port = 5353, ToAddress = WebServer, ToPort = 53, Hairpin = false }] };
        using var f = new FlowFixture(WithInbound(new RuleSpec { Id = 10, Protocol = "udp", DestinationPorts = ["53"] }), nat);
        var query = f.Inbound(Udp(Server, 50000, Public, 5353));
        Assert.True(query.Passed);

        // The server has nothing on port 53: it answers port unreachable, quoting what it received.
        var error = IcmpError(WebServer, Server, Icmpv4Type.DestinationUnreachable, 3, query.Frame, quoteBytes: 8);
        var back = f.Outbound(error);
        Assert.True(back.Passed);
        Assert.Equal(Public, back.Source.ToString());
        Assert.Equal(Server, back.Destination.ToString());
        AssertChecksums(back.Frame);
        var quote = back.Frame.AsSpan(EthernetHeader.Length + Ipv4Header.MinLength + Icmpv4Header.Length);
        var quoted = new Ipv4Header(quote);
        Assert.Equal(Server, quoted.Source.ToString());
        Assert.Equal(Public, quoted.Destination.ToString());
        Assert.True(quoted.IsHeaderChecksumValid);
        Assert.Equal(5353, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(quote[22..]));
        var sent = Udp(Server, 50000, Public, 5353);
        Assert.Equal(sent.AsSpan(EthernetHeader.Length + 20, 8).ToArray(), quote.Slice(20, 8).ToArray());
    }

    [Fact]
    public void A_port_forward_reaches_the_inside_server_and_replies_leave_as_the_public_address()
    {
        var nat = new NatSpec { Dnat = [new DnatRuleSpec { IngressZone = "outside", Destination = Public, Port = 8080, ToAddress = WebServer, ToPort = 80, Hairpin = false }] };
        using var f = new FlowFixture(WithInbound(new RuleSpec { Id = 10, Protocol = "tcp", Destinations = [WebServer], DestinationPorts = ["80"] }), nat);
        var syn = f.Inbound(Tcp(Server, 50000, Public, 8080, TcpFlags.Syn));
        Assert.True(syn.Passed);
        Assert.Equal(WebServer, syn.Destination.ToString());
        Assert.Equal(80, syn.DestinationPort);
        AssertChecksums(syn.Frame);
        Assert.Equal(1, f.Flows.Hits(10));

        var synAck = f.Outbound(Tcp(WebServer, 80, Server, 50000, TcpFlags.Syn | TcpFlags.Ack));
        Assert.True(synAck.Passed);
        Assert.Equal(Public, synAck.Source.ToString());
        Assert.Equal(8080, synAck.SourcePort);
        AssertChecksums(synAck.Frame);

        // Other ports of the public address are not forwarded (and outside → inside only allows port 80).
        Assert.Equal("firewall.DefaultDeny", f.Inbound(Tcp(Server, 50001, Public, 22, TcpFlags.Syn)).Drop);
    }

    [Fact]
    public void Static_one_to_one_translates_both_ways_and_keeps_ports()
    {
        var nat = new NatSpec { Static = [new StaticNatSpec { External = "203.0.113.50", Internal = WebServer, Hairpin = false }] };
        using var f = new FlowFixture(WithInbound(new RuleSpec { Id = 10 }), nat);
        Assert.Equal([Ipv4Address.Parse("203.0.113.50").Value], f.Context.Snapshot.Firewall.NatAddresses);
        var outbound = f.Outbound(Tcp(WebServer, 1234, Server, 443, TcpFlags.Syn));
        Assert.Equal("203.0.113.50", outbound.Source.ToString());
        Assert.Equal(1234, outbound.SourcePort);
        AssertChecksums(outbound.Frame);

        var inbound = f.Inbound(Udp(Server, 999, "203.0.113.50", 53));
        Assert.True(inbound.Passed);
        Assert.Equal(WebServer, inbound.Destination.ToString());
        Assert.Equal(53, inbound.DestinationPort);
        AssertChecksums(inbound.Frame);
    }

    [Fact]
    public void Hairpin_translates_an_inside_client_to_the_gateway_so_the_server_answers_through_the_appliance()
    {
        var nat = new NatSpec { Dnat = [new DnatRuleSpec { Destination = Public, Port = 443, ToAddress = WebServer, HairpinAddress = "10.10.0.1" }] };
        using var f = new FlowFixture(nat: nat);

        // Inside client → public address: routed back into bd10 (the server's domain).
        var syn = f.Run(Tcp(Host, 41000, Public, 443, TcpFlags.Syn), InsideSegment, InsideDomain, InsideSegment, InsideDomain);
        Assert.True(syn.Passed);
        Assert.Equal(WebServer, syn.Destination.ToString());
        Assert.Equal("10.10.0.1", syn.Source.ToString());
        AssertChecksums(syn.Frame);

        var synAck = f.Run(Tcp(WebServer, 443, "10.10.0.1", syn.SourcePort, TcpFlags.Syn | TcpFlags.Ack), InsideSegment, InsideDomain, InsideSegment, InsideDomain);
        Assert.True(synAck.Passed);
        Assert.Equal(Public, synAck.Source.ToString());
        Assert.Equal(Host, synAck.Destination.ToString());
        Assert.Equal(41000, synAck.DestinationPort);
        AssertChecksums(synAck.Frame);
    }

    [Fact]
    public void Masquerade_and_hairpin_use_the_gateway_addresses()
    {
        var gateways = new[]
        {
            new GatewaySpec { Domain = "bd10", Addresses = ["10.10.0.1/24"] },
            new GatewaySpec { Domain = "bd20", Addresses = ["203.0.113.1/24"] },
        };
        var nat = new NatSpec
        {
            Snat = [new SnatRuleSpec { EgressDomain = "bd20" }],
            Dnat = [new DnatRuleSpec { Destination = "203.0.113.1", Port = 443, ToAddress = WebServer }],
        };
        using var f = new FlowFixture(nat: nat, gateways: gateways);
        Assert.Empty(f.Context.Snapshot.Firewall.NatAddresses);
        var masqueraded = f.Outbound(Udp(Host, 1111, Server, 53));
        Assert.Equal("203.0.113.1", masqueraded.Source.ToString());
        AssertChecksums(masqueraded.Frame);
        var reply = f.Inbound(Udp(Server, 53, "203.0.113.1", masqueraded.SourcePort));
        Assert.True(reply.Passed);
        Assert.Equal(Host, reply.Destination.ToString());

        // To the gateway's address, not a reply and not forwarded: not the firewall's to pass on.
        Assert.Equal("conntrack.ToApplianceNoFlow", f.Inbound(Udp(Server, 53, "203.0.113.1", 9)).Drop);

        var hairpinned = f.Run(Tcp(Host, 41000, "203.0.113.1", 443, TcpFlags.Syn), InsideSegment, InsideDomain, InsideSegment, InsideDomain);
        Assert.Equal(WebServer, hairpinned.Destination.ToString());
        Assert.Equal("10.10.0.1", hairpinned.Source.ToString());
        AssertChecksums(hairpinned.Frame);
    }

    [Fact]
    public void A_burst_of_one_new_flow_in_one_batch_commits_one_session()
    {
        using var f = new FlowFixture(nat: SnatToPool);
        var frame = Udp(Host, 7000, Server, 7000);
        var results = f.RunBatch([.. Enumerable.Repeat((frame, InsideSegment, InsideDomain, OutsideSegment, OutsideDomain), 5)]);
        Assert.All(results, r => Assert.True(r.Passed));
        Assert.Single(results.Select(r => r.SourcePort).Distinct());
        Assert.Equal(1, f.Table.Count);
    }
}
