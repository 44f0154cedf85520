using System.Buffers.Binary;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Firewall.FlowFixture;

namespace Isthmus.DataPlane.Tests.Firewall;

public class FirewallStageTests
{
    private const string Host = "10.10.0.10";
    private const string Server = "198.51.100.7";

    private static FirewallSpec Policy(params RuleSpec[] rules) => DefaultFirewall with
    {
        AddressSets = [new AddressSetSpec { Name = "dns", Prefixes = ["198.51.100.0/24"] }],
        Policies = [new PolicySpec { From = "inside", To = "outside", Rules = rules }],
    };

    [Fact]
    public void Between_zones_the_default_is_deny_and_within_a_zone_allow()
    {
        using var f = new FlowFixture();
        Assert.Equal("firewall.DefaultDeny", f.Inbound(Tcp(Server, 1, Host, 22, TcpFlags.Syn)).Drop);
        var sameZone = f.Run(Tcp(Host, 1, "10.10.0.11", 22, TcpFlags.Syn), InsideSegment, InsideDomain, 1, InsideDomain);
        Assert.True(sameZone.Passed);
        Assert.Equal(1, f.Drops("firewall", "DefaultDeny"));
    }

    [Fact]
    public void The_first_matching_rule_wins_and_counts_hits()
    {
        using var f = new FlowFixture(Policy(
            new RuleSpec { Id = 100, Protocol = "udp", DestinationSets = ["dns"], DestinationPorts = ["53"] },
            new RuleSpec { Id = 200, Protocol = "udp", Action = FirewallAction.Drop },
            new RuleSpec { Id = 300, Protocol = "tcp", DestinationPorts = ["1000-2000"], Log = true }));
        Assert.True(f.Outbound(Udp(Host, 1, Server, 53)).Passed);
        Assert.Equal("firewall.RuleDrop", f.Outbound(Udp(Host, 1, Server, 54)).Drop);
        Assert.True(f.Outbound(Tcp(Host, 1, Server, 1500, TcpFlags.Syn)).Passed);
        Assert.Equal("firewall.DefaultDeny", f.Outbound(Tcp(Host, 1, Server, 2500, TcpFlags.Syn)).Drop);
        Assert.Equal(1, f.Flows.Hits(100));
        Assert.Equal(1, f.Flows.Hits(200));
        Assert.Equal(1, f.Flows.Hits(300));
        Assert.True(f.Flows.Log.TryTake(out var record));
        Assert.Equal(300, record.RuleId);
        Assert.False(f.Flows.Log.TryTake(out _));
    }

    [Fact]
    public void Established_flows_skip_the_classifier_and_replies_of_allowed_flows_get_back_in()
    {
        using var f = new FlowFixture(Policy(new RuleSpec { Id = 1, Protocol = "tcp", DestinationPorts = ["443"] }));
        Assert.True(f.Outbound(Tcp(Host, 5, Server, 443, TcpFlags.Syn)).Passed);
        Assert.True(f.Inbound(Tcp(Server, 443, Host, 5, TcpFlags.Syn | TcpFlags.Ack)).Passed);
        Assert.True(f.Outbound(Tcp(Host, 5, Server, 443, TcpFlags.Ack)).Passed);
        Assert.Equal(1, f.Flows.Hits(1));
    }

    [Fact]
    public void Reject_answers_tcp_with_a_reset_from_the_destination()
    {
        using var f = new FlowFixture(Policy(new RuleSpec { Id = 7, Protocol = "tcp", Action = FirewallAction.Reject }));
        var r = f.Outbound(Tcp(Host, 40000, Server, 25, TcpFlags.Syn, seq: 5000));
        Assert.Equal("firewall.RuleReject", r.Drop);
        var (meta, frame) = Assert.Single(f.TakeOriginated());
        Assert.Equal(InsideSegment, meta.EgressSegment);
        Assert.Equal(InsideDomain, meta.Domain);
        Assert.Equal(HostMac, MacAddress.Read(frame));
        Assert.Equal(GatewayMac, MacAddress.Read(frame.AsSpan(6)));
        AssertChecksums(frame);
        var ip = new Ipv4Header(frame.AsSpan(EthernetHeader.Length));
        Assert.Equal(Server, ip.Source.ToString());
        Assert.Equal(Host, ip.Destination.ToString());
        var tcp = new TcpHeader(ip.Payload);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, tcp.Flags);
        Assert.Equal(25, tcp.SourcePort);
        Assert.Equal(40000, tcp.DestinationPort);
        Assert.Equal(5001u, tcp.AcknowledgmentNumber);
        Assert.Equal(0, f.Table.Count);
    }

    [Fact]
    public void Reject_answers_udp_with_icmp_administratively_prohibited_quoting_the_packet()
    {
        using var f = new FlowFixture(Policy(new RuleSpec { Id = 7, Protocol = "udp", Action = FirewallAction.Reject }));
        var sent = Udp(Host, 40000, Server, 161);
        Assert.Equal("firewall.RuleReject", f.Outbound(sent).Drop);
        var (_, frame) = Assert.Single(f.TakeOriginated());
        AssertChecksums(frame);
        var ip = new Ipv4Header(frame.AsSpan(EthernetHeader.Length));
        Assert.Equal(Host, ip.Destination.ToString());
        var icmp = new Icmpv4Header(ip.Payload);
        Assert.Equal(Icmpv4Type.DestinationUnreachable, icmp.Type);
        Assert.Equal(RejectBuilder.AdministrativelyProhibited, icmp.Code);
        Assert.Equal(sent.AsSpan(EthernetHeader.Length, 28).ToArray(), icmp.Body[..28].ToArray());
    }

    [Fact]
    public void Rules_can_admit_invalid_packets_and_match_icmp_types()
    {
        using var f = new FlowFixture(Policy(
            new RuleSpec { Id = 1, Protocol = "icmp", IcmpType = Icmpv4Type.EchoRequest },
            new RuleSpec { Id = 2, Protocol = "tcp", States = ConnectionStates.Invalid }));
        Assert.True(f.Outbound(Echo(Host, Server, 1)).Passed);
        Assert.True(f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Ack)).Passed);
        Assert.Equal("firewall.DefaultDeny", f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Syn)).Drop);
        Assert.Equal(1, f.Table.Count);
    }

    [Fact]
    public void The_l2_filter_applies_zone_policy_to_bridged_traffic_when_on()
    {
        var firewall = new FirewallSpec
        {
            L2Filter = true,
            Zones = [new ZoneSpec { Name = "hosts", Segments = ["acc10"] }, new ZoneSpec { Name = "vms", Segments = ["und0/vni5010"] }],
            Policies = [new PolicySpec { From = "hosts", To = "vms", Rules = [new RuleSpec { Id = 1, Protocol = "tcp", DestinationPorts = ["22"] }] }],
        };
        using var f = new FlowFixture(firewall);
        Assert.True(Bridged(f, Tcp(Host, 1, "10.10.0.20", 22, TcpFlags.Syn), 0, 2).Passed);
        Assert.Equal("firewall.DefaultDeny", Bridged(f, Tcp(Host, 1, "10.10.0.20", 80, TcpFlags.Syn), 0, 2).Drop);
        Assert.True(Bridged(f, Tcp("10.10.0.20", 22, Host, 1, TcpFlags.Syn | TcpFlags.Ack), 2, 0).Passed);

        using var off = new FlowFixture(firewall with { L2Filter = false });
        Assert.True(Bridged(off, Tcp(Host, 1, "10.10.0.20", 80, TcpFlags.Syn), 0, 2).Passed);
    }

    [Fact]
    public void Ipv6_is_not_tracked_allowed_within_a_zone_and_dropped_between_zones_unless_allowed()
    {
        var buffer = new byte[128];
        var spec = new Ipv6FrameSpec(HostMac, GatewayMac, Ipv6Address.Parse("fd00:10::a"), Ipv6Address.Parse("fd00:20::5"));
        var frame = buffer[..PacketBuilder.Udp(buffer, spec, 1, 53, new byte[8])];

        using var f = new FlowFixture();
        Assert.Equal("firewall.Ipv6BetweenZones", Ipv6(f, frame, OutsideSegment, OutsideDomain).Drop);
        Assert.True(Ipv6(f, frame, 1, InsideDomain).Passed);
        Assert.Equal(0, f.Table.Count);

        using var open = new FlowFixture(DefaultFirewall with { AllowIpv6BetweenZones = true });
        Assert.True(Ipv6(open, frame, OutsideSegment, OutsideDomain).Passed);
    }

    private static FlowResult Ipv6(FlowFixture f, byte[] frame, int egressSegment, int egressDomain)
    {
        var batch = new PacketBatch();
        var buffer = f.Pool.Rent();
        frame.CopyTo(f.Pool.Frame(buffer, PacketPool.Headroom, frame.Length));
        ref var p = ref batch.Add(buffer, PacketPool.Headroom, frame.Length, 0);
        p.IngressSegment = InsideSegment;
        p.IngressDomain = InsideDomain;
        p.EgressSegment = egressSegment;
        p.Domain = (ushort)egressDomain;
        p.Flags = PacketFlags.L3Parsed | PacketFlags.Ipv6 | PacketFlags.Routed;
        p.L3Offset = EthernetHeader.Length;
        p.L4Offset = EthernetHeader.Length + Ipv6Header.Length;
        p.IpProtocol = IpProtocol.Udp;
        foreach (var stage in f.Stages)
        {
            stage.Process(batch, f.Context);
        }

        var result = new FlowResult(p, frame, p.Disposition == Disposition.Drop ? $"{f.Stages[p.DropStage].Name}.{f.Stages[p.DropStage].DropReasons[p.DropCode]}" : null);
        f.Pool.Return(buffer);
        return result;
    }

    [Fact]
    public void Invalid_configuration_is_reported_with_paths()
    {
        var program = L2FixtureProgram() with
        {
            Firewall = new FirewallSpec
            {
                Zones = [new ZoneSpec { Name = "a", Segments = ["acc10", "nope"] }, new ZoneSpec { Name = "b", Domains = ["bd10"] }],
                Policies =
                [
                    new PolicySpec { From = "a", To = "c", Rules = [new RuleSpec { Id = 1, Destinations = ["10.0.0.0/33"] }] },
                    new PolicySpec { From = "a", To = "b", Rules = [new RuleSpec { Id = 1, Protocol = "udp", DestinationPorts = ["70000"], SourceSets = ["x"] }] },
                ],
            },
            Nat = new NatSpec { Snat = [new SnatRuleSpec { Ports = "9-1" }] },
        };
        var errors = SnapshotCompiler.Validate(program).Select(e => e.ToString()).ToList();
        Assert.Contains(errors, e => e.StartsWith("firewall.zones[0].segments[1]: no segment named 'nope'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("firewall.zones[1].domains[0]: segment acc10 is already in zone 'a'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("firewall.policies[0].to: no zone named 'c'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("firewall.policies[0].rules[0].destinations[0]: '10.0.0.0/33' is not a prefix", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("firewall.policies[1].rules[0].id: rule id 1 is used twice", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("firewall.policies[1].rules[0].destinationPorts[0]:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("firewall.policies[1].rules[0].sourceSets[0]: no address set named 'x'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("nat.snat[0]: name the egressZone", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("nat.snat[0].ports:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("nat.snat[0].toAddresses: masquerade needs a gateway", StringComparison.Ordinal));
    }

    private static DataPlaneProgram L2FixtureProgram() => Support.L2Fixture.LabProgram();

    /// <summary>A bridged frame inside bd10: no L3 metadata, the L2 filter parses it.</summary>
    private static FlowResult Bridged(FlowFixture f, byte[] frame, int ingressSegment, int egressSegment)
    {
        var batch = new PacketBatch();
        var buffer = f.Pool.Rent();
        frame.CopyTo(f.Pool.Frame(buffer, PacketPool.Headroom, frame.Length));
        ref var p = ref batch.Add(buffer, PacketPool.Headroom, frame.Length, 0);
        p.IngressSegment = ingressSegment;
        p.EgressSegment = egressSegment;
        p.Domain = InsideDomain;
        foreach (var stage in f.Stages)
        {
            stage.Process(batch, f.Context);
        }

        var result = new FlowResult(p, f.Pool.Frame(p.Buffer, p.Offset, p.Length).ToArray(),
            p.Disposition == Disposition.Drop ? $"{f.Stages[p.DropStage].Name}.{f.Stages[p.DropStage].DropReasons[p.DropCode]}" : null);
        f.Pool.Return(buffer);
        _ = BinaryPrimitives.ReadUInt16BigEndian(result.Frame.AsSpan(12));
        return result;
    }
}
