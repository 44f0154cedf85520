using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FsCheck;
using FsCheck.Fluent;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Firewall;

/// <summary>
/// The established-flow fast path (<see cref="FlowCache"/>): the same frames through two workers, one
/// with the fast path and one without, must leave byte for byte alike (NAT, TTL, checksums, MACs,
/// encapsulation), with the same drops and session states; and a cached result must not outlive a
/// commit, a neighbor's new MAC or a MAC move.
/// </summary>
public class FlowCacheTests
{
    private static readonly Ipv4Address Vip = Ipv4Address.Parse("10.20.0.100");

    /// <summary>Masquerade inside → outside, and port forwards from the outside to host A (TCP) and host B (UDP).</summary>
    private static DataPlaneProgram Program(bool antiSpoofing = false) => L3Program.Create(tweak10: antiSpoofing
        ? g => g with { AntiSpoofing = true, Bindings = [new(HostAIp.ToString(), HostA.ToString()), new(HostBIp.ToString(), HostB.ToString())] }
        : null) with
    {
        Firewall = new FirewallSpec
        {
            Zones = [new ZoneSpec { Name = "inside", Domains = ["bd10"] }, new ZoneSpec { Name = "outside", Domains = ["bd20"] }],
            Policies =
            [
                new PolicySpec { From = "inside", To = "outside", Rules = [new RuleSpec { Id = 1 }] },
                new PolicySpec { From = "outside", To = "inside", Rules = [new RuleSpec { Id = 2, Protocol = "tcp" }, new RuleSpec { Id = 3, Protocol = "udp" }] },
            ],
        },
        Nat = new NatSpec
        {
            Snat = [new SnatRuleSpec { EgressZone = "outside" }],
            Dnat =
            [
                new DnatRuleSpec { Destination = Gw20Ip.ToString(), Protocol = "tcp", Port = 8080, ToAddress = HostAIp.ToString(), ToPort = 80, Hairpin = false },
                new DnatRuleSpec { Destination = Gw20Ip.ToString(), Protocol = "udp", Port = 5353, ToAddress = HostBIp.ToString(), ToPort = 53, Hairpin = false },
            ],
        },
    };

    private static DataPlaneProgram Balanced(params string[] backends) => L3Program.Create() with
    {
        LoadBalancer = new LoadBalancerSpec
        {
            VirtualServers = [new VirtualServerSpec { Name = "dns", Address = Vip.ToString(), Protocol = "udp", Ports = "53", Pool = "dns", Mode = "full-nat" }],
            Pools = [new PoolSpec { Name = "dns", Backends = [.. backends.Select(b => new BackendSpec { Address = b, Port = 53 })] }],
        },
    };

    private enum Kind
    {
        OutboundTcp,
        OutboundUdp,
        ForwardedTcp,
        ForwardedUdp,
    }

    /// <summary>One session: who opens it, from which port to which outside address.</summary>
    private sealed record Flow(Kind Kind, ushort Port, Ipv4Address Outside)
    {
        public bool Tcp => Kind is Kind.OutboundTcp or Kind.ForwardedTcp;

        public bool Outbound => Kind is Kind.OutboundTcp or Kind.OutboundUdp;

        public MacAddress InsideMac => Kind == Kind.ForwardedUdp ? HostB : HostA;

        public Ipv4Address InsideIp => Kind == Kind.ForwardedUdp ? HostBIp : HostAIp;

        /// <summary>The outside peer's view of the session (address:port it talks to), learned from the first packet that left.</summary>
        public ushort OutsidePeerPort { get; set; }
    }

    [Fact]
    public void The_fast_path_forwards_exactly_what_the_slow_path_forwards()
    {
        var scenario = Gen.Choose(0, int.MaxValue);
        Prop.ForAll(scenario.ToArbitrary(), seed =>
        {
            using var twin = new Twin(Program());
            Run(twin, new Random(seed));
        }).QuickCheckThrowOnFailure();
    }

    /// <summary>
    /// The same with anti-spoofing bindings on the inside and hostile packets among the established
    /// ones: a damaged IPv4 header checksum, an inside packet from the other host's MAC (a binding
    /// violation), and the upstream router's gratuitous ARP in the middle of batches. The fast-path
    /// stage must leave all of them to the gateway, which drops or learns exactly as without it.
    /// </summary>
    [Fact]
    public void The_fast_path_forwards_exactly_what_the_slow_path_forwards_among_hostile_packets()
    {
        var scenario = Gen.Choose(0, int.MaxValue);
        Prop.ForAll(scenario.ToArbitrary(), seed =>
        {
            using var twin = new Twin(Program(antiSpoofing: true));
            Run(twin, new Random(seed), hostile: true);
            Assert.True(twin.Fast.Drops("gateway", "BadIpChecksum") > 0, "no damaged header was sent");
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void An_established_packet_with_a_bad_header_checksum_or_a_spoofed_source_is_dropped_by_the_gateway()
    {
        using var twin = new Twin(Program(antiSpoofing: true));
        var internet = Ipv4Address.Parse("198.51.100.7");
        byte[] Udp(MacAddress from) => Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(from, Gw10, HostAIp, internet), 40000, 53, new byte[18]));
        twin.Send(Acc10, Udp(HostA)); // commits the session
        twin.Send(Acc10, Udp(HostA)); // teaches it
        twin.Send(Acc10, Udp(HostA), Udp(HostA));
        var flows = twin.Fast.Worker.Context.Flows;
        Assert.Equal(2, flows.FastForwarded);

        var damaged = Udp(HostA);
        damaged[EthernetHeader.Length + 10] ^= 0x40;
        twin.Send(Acc10, damaged, Udp(HostB), Udp(HostA));
        Assert.Equal(1, twin.Fast.Drops("gateway", "BadIpChecksum"));
        Assert.Equal(1, twin.Fast.Drops("gateway", "Spoofed"));
        Assert.Single(twin.LastSent[Acc20]);
    }

    [Fact]
    public void A_batch_is_forwarded_with_what_was_known_when_each_packet_arrived()
    {
        // A station on the trunk's VLAN 10 talks to the internet; the upstream router's replacement
        // announces itself on the trunk's VLAN 20 in the middle of one batch of the trunk's frames.
        using var fixture = new L3Fixture(Program());
        var station = MacAddress.Parse("02:00:00:00:10:30");
        var stationIp = Ipv4Address.Parse("10.10.0.30");
        var announce = new byte[64];
        fixture.Receive(Trunk0, new MemoryFrame(announce[..PacketBuilder.GarpRequest(announce, station, stationIp)], VlanTci: 10));
        fixture.Announce(Acc20, Upstream, UpstreamIp);
        var packet = new MemoryFrame(Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(station, Gw10, stationIp, Ipv4Address.Parse("198.51.100.7")), 40000, 53, new byte[18])), VlanTci: 10);
        foreach (var _ in Enumerable.Range(0, 3))
        {
            fixture.Receive(Trunk0, packet);
        }

        Assert.True(fixture.Worker.Context.Flows.FastForwarded >= 1);
        fixture.ClearSent();

        var replacement = MacAddress.Parse("02:00:00:00:20:fc");
        var garp = new byte[64];
        fixture.Ports[Trunk0].Enqueue(packet);
        fixture.Ports[Trunk0].Enqueue(new MemoryFrame(garp[..PacketBuilder.GarpRequest(garp, replacement, UpstreamIp)], VlanTci: 20));
        fixture.Ports[Trunk0].Enqueue(packet);
        fixture.Ports[Trunk0].Enqueue(packet);
        fixture.Run();

        // The packet ahead of the announcement left toward the old router; the two after it toward the new one (trunk, VLAN 20).
        Assert.Equal(Upstream, Destination(Assert.Single(fixture.Sent(Acc20), f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == EtherType.Ipv4)));
        var tagged = fixture.Sent(Trunk0).Where(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == EtherType.Vlan && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16)) == EtherType.Ipv4).ToList();
        Assert.Equal(2, tagged.Count);
        Assert.All(tagged, f => Assert.Equal(replacement, MacAddress.Read(f)));
        Assert.All(tagged, f => Assert.Equal(20, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14)) & 0x0FFF));
    }

    [Fact]
    public void A_batch_of_fast_forwarded_packets_skips_the_stages_that_have_nothing_to_do_for_them()
    {
        var probe = new Probe();
        var pipeline = new PacketPipeline([.. PacketPipeline.CreateDefault().Stages.Skip(1).SkipLast(1), probe]);
        using var fixture = new L3Fixture(Program(), pipeline);
        fixture.Announce(Acc10, HostA, HostAIp);
        fixture.Announce(Acc20, Upstream, UpstreamIp);
        byte[] Udp(ushort port) => Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), port, 53, new byte[18]));
        fixture.Receive(Acc10, Udp(40000));
        fixture.Receive(Acc10, Udp(40000));
        fixture.Receive(Acc10, Udp(40000));
        fixture.ClearSent();
        var calls = probe.Calls;
        var fast = fixture.Worker.Context.Flows.FastForwarded;

        // Every packet forwarded by the fast path: the probe (like gateway ... neighbor) is not called.
        fixture.Ports[Acc10].Enqueue(Udp(40000));
        fixture.Ports[Acc10].Enqueue(Udp(40000));
        fixture.Run();
        Assert.Equal(calls, probe.Calls);
        Assert.Equal(2, fixture.Sent(Acc20).Count);
        Assert.Equal(fast + 2, fixture.Worker.Context.Flows.FastForwarded);

        // One new flow among them: the whole batch walks every stage again.
        fixture.Ports[Acc10].Enqueue(Udp(40000));
        fixture.Ports[Acc10].Enqueue(Udp(40001));
        fixture.Run();
        Assert.Equal(calls + 1, probe.Calls);
        Assert.Equal(2, fixture.Sent(Acc20).Count);
        Assert.Equal(fast + 3, fixture.Worker.Context.Flows.FastForwarded);
    }

    /// <summary>A stage that only counts its calls and, like the L3 stages, has nothing to do for finished packets.</summary>
    private sealed class Probe() : PipelineStage("probe", typeof(FastPathDrop))
    {
        public int Calls { get; private set; }

        public override bool SkipsFinished => true;

        public override void Process(PacketBatch batch, WorkerContext context) => Calls++;
    }

    [Fact]
    public void Established_packets_take_the_fast_path_after_the_first_and_leave_like_the_first()
    {
        using var twin = new Twin(Program());
        var frame = Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), 40000, 53, new byte[18]));
        twin.Send(Acc10, frame); // commits the session
        twin.Send(Acc10, frame); // a known flow's packet through the slow path: the session learns
        twin.Send(Acc10, frame, frame, frame);
        var flows = twin.Fast.Worker.Context.Flows;
        Assert.Equal(1, flows.FastLearned);
        Assert.Equal(3, flows.FastForwarded);
        Assert.Equal(0, twin.Slow.Worker.Context.Flows.FastForwarded);
        var sent = twin.LastSent[Acc20];
        Assert.Equal(3, sent.Count);
        Assert.All(sent, f => Assert.Equal(Upstream, Destination(f)));
        Assert.All(sent, f => Assert.Equal(Gw20Ip, Ip4(f).Source));
        Assert.All(sent, f => Assert.Equal(63, Ip4(f).Ttl));
        Assert.All(sent, AssertChecksums);
    }

    [Fact]
    public void A_commit_that_moves_the_default_route_sends_established_flows_to_the_new_next_hop()
    {
        using var twin = new Twin(Program());
        var other = MacAddress.Parse("02:00:00:00:20:fd");
        twin.Announce(Acc20, other, Ipv4Address.Parse("10.20.0.253"));
        var frame = Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), 40000, 53, new byte[18]));
        twin.Send(Acc10, frame, frame);
        Assert.All(twin.LastSent[Acc20], f => Assert.Equal(Upstream, Destination(f)));

        var moved = Program() with { Routes = [new RouteSpec { Prefix = "0.0.0.0/0", NextHop = "10.20.0.253" }] };
        twin.Commit(moved);
        twin.Send(Acc10, frame);
        twin.Send(Acc10, frame, frame, frame);
        Assert.All(twin.LastSent[Acc20], f => Assert.Equal(other, Destination(f)));
        Assert.All(twin.LastSent[Acc20], f => Assert.Equal(Gw20Ip, Ip4(f).Source));
        Assert.True(twin.Fast.Worker.Context.Flows.FastForwarded >= 3, "the flow went back to the fast path after the commit");
    }

    [Fact]
    public void A_neighbor_that_changes_its_mac_gets_the_next_packet_at_the_new_mac()
    {
        using var twin = new Twin(Program());
        var frame = Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), 40000, 53, new byte[18]));
        twin.Send(Acc10, frame, frame);
        var epoch = twin.Fast.Worker.Context.Epoch.Value;

        // The upstream router is replaced (same address, new MAC) and announces itself.
        var replacement = MacAddress.Parse("02:00:00:00:20:fc");
        twin.Announce(Acc20, replacement, UpstreamIp);
        Assert.NotEqual(epoch, twin.Fast.Worker.Context.Epoch.Value);
        twin.Send(Acc10, frame, frame);
        Assert.All(twin.LastSent[Acc20], f => Assert.Equal(replacement, Destination(f)));
    }

    [Fact]
    public void A_next_hop_whose_mac_moves_to_another_segment_is_followed_there()
    {
        using var twin = new Twin(Program());
        var frame = Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), 40000, 53, new byte[18]));
        twin.Send(Acc10, frame, frame);
        Assert.Equal(2, twin.LastSent[Acc20].Count);

        // The upstream router now speaks from VLAN 20 on the trunk (a MAC move in bd20).
        var garp = new byte[64];
        var length = PacketBuilder.GarpRequest(garp, Upstream, UpstreamIp);
        twin.Send(Trunk0, new MemoryFrame(garp[..length], VlanTci: 20));
        twin.Send(Acc10, frame, frame);
        Assert.Empty(twin.LastSent[Acc20]);
        var tagged = twin.LastSent[Trunk0];
        Assert.Equal(2, tagged.Count);
        Assert.All(tagged, f => Assert.Equal(EtherType.Vlan, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12))));
        Assert.All(tagged, f => Assert.Equal(20, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14)) & 0x0FFF));
    }

    [Fact]
    public void A_reset_still_ends_a_fast_forwarded_session()
    {
        using var twin = new Twin(Program());
        var outside = Ipv4Address.Parse("198.51.100.9");
        byte[] Tcp(TcpFlags flags) => Build(b => PacketBuilder.Tcp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, outside), 40010, 443, flags, sequence: 1));
        twin.Send(Acc10, Tcp(TcpFlags.Syn));
        var port = new TcpHeader(Ip4(twin.LastSent[Acc20][0]).Payload).SourcePort;
        twin.Send(Acc20, Build(b => PacketBuilder.Tcp(b, new Ipv4FrameSpec(Upstream, Gw20, outside, Gw20Ip), 443, port, TcpFlags.Syn | TcpFlags.Ack, sequence: 9, acknowledgment: 2)));
        twin.Send(Acc10, Tcp(TcpFlags.Ack));
        twin.Send(Acc10, Tcp(TcpFlags.Ack | TcpFlags.Psh), Tcp(TcpFlags.Ack));
        Assert.True(twin.Fast.Worker.Context.Flows.FastForwarded >= 1);
        var table = twin.Fast.Worker.Context.Flows.Table!;
        Assert.Equal(ConntrackState.TcpEstablished, Assert.Single(table.Snapshot()).Session.State);

        twin.Send(Acc10, Tcp(TcpFlags.Rst));
        Assert.Single(twin.LastSent[Acc20]);
        Assert.Equal(ConntrackState.TcpClose, Assert.Single(table.Snapshot()).Session.State);

        // After the reset the session only lives out its short close timeout; a late ACK is handled
        // exactly as without the fast path.
        twin.Send(Acc10, Tcp(TcpFlags.Ack));
    }

    [Fact]
    public void Load_balanced_flows_stay_on_their_backend_through_a_pool_change()
    {
        using var twin = new Twin(Balanced(HostAIp.ToString(), HostBIp.ToString()));
        var frames = Enumerable.Range(0, 32)
            .Select(i => Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(Upstream, Gw20, UpstreamIp, Vip), (ushort)(41000 + i), 53, new byte[18])))
            .ToArray();
        twin.Send(Acc20, frames);
        var first = twin.LastSent[Acc10].Select(f => Ip4(f).Destination).ToArray();
        Assert.Contains(HostAIp, first);
        Assert.Contains(HostBIp, first);

        // A third backend joins: new flows may go there; established ones stay where they are.
        twin.Commit(Balanced(HostAIp.ToString(), HostBIp.ToString(), "10.10.0.12"));
        twin.Send(Acc20, frames);
        twin.Send(Acc20, frames);
        Assert.Equal(first, twin.LastSent[Acc10].Select(f => Ip4(f).Destination).ToArray());
        Assert.True(twin.Fast.Worker.Context.Flows.FastForwarded >= 32);
    }

    [Fact]
    public void A_traced_packet_of_a_fast_flow_takes_the_slow_path_and_shows_every_stage()
    {
        using var twin = new Twin(Program());
        var frame = Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, Ipv4Address.Parse("198.51.100.7")), 40000, 53, new byte[18]));
        twin.Send(Acc10, frame);
        twin.Send(Acc10, frame);
        twin.Send(Acc10, frame);
        var flows = twin.Fast.Worker.Context.Flows;
        var before = flows.FastForwarded;
        Assert.True(before >= 1);

        var tracer = twin.Fast.Worker.Context.Tracer;
        tracer.Arm(new Diagnostics.TraceFilter { SourceMac = HostA, MaxPackets = 1 });
        twin.Slow.Worker.Context.Tracer.Arm(new Diagnostics.TraceFilter { SourceMac = HostA, MaxPackets = 1 });
        twin.Send(Acc10, frame);
        Assert.Equal(before, flows.FastForwarded);
        var stages = tracer.Entries().Select(e => e.Stage).ToList();
        Assert.Contains("conntrack", stages);
        Assert.Contains("route", stages);
        Assert.Contains("encap", stages);
        Assert.Equal(Gw20Ip, Ip4(Assert.Single(twin.LastSent[Acc20])).Source);
    }

    [Fact]
    public void Ttl_one_in_a_fast_flow_still_gets_time_exceeded()
    {
        using var twin = new Twin(Program());
        var internet = Ipv4Address.Parse("198.51.100.7");
        byte[] Udp(byte ttl) => Build(b => PacketBuilder.Udp(b, new Ipv4FrameSpec(HostA, Gw10, HostAIp, internet) { Ttl = ttl }, 40000, 53, new byte[18]));
        twin.Send(Acc10, Udp(64));
        twin.Send(Acc10, Udp(64));
        twin.Send(Acc10, Udp(64));
        Assert.True(twin.Fast.Worker.Context.Flows.FastForwarded >= 1);

        twin.Send(Acc10, Udp(1));
        Assert.Empty(twin.LastSent[Acc20]);
        var error = Assert.Single(twin.LastSent[Acc10]);
        Assert.Equal(Icmpv4Type.TimeExceeded, Ip4(error).Payload[0]);
        Assert.Equal(1, twin.Fast.Drops("route", "TtlExpired"));
    }

    [Fact]
    public void A_session_entry_with_both_cached_directions_is_56_bytes()
    {
        Assert.Equal(12, Unsafe.SizeOf<CachedForward>());
        Assert.Equal(56, Unsafe.SizeOf<ConntrackEntry>());
    }

    /// <summary>
    /// A random scenario: sessions opened (both TCP handshakes and UDP, outbound masqueraded and
    /// inbound port-forwarded), then batches of mixed packets both ways with random TTLs (1 and 2
    /// included), payload sizes, zero UDP checksums, and finally FINs and resets.
    /// </summary>
    private static void Run(Twin twin, Random random, bool hostile = false)
    {
        var flows = new List<Flow>();
        var count = random.Next(1, 10);
        for (var i = 0; i < count; i++)
        {
            var kind = (Kind)random.Next(4);
            var outside = new Ipv4Address(0xC633_6400u + (uint)random.Next(1, 250)); // 198.51.100.x
            flows.Add(new Flow(kind, (ushort)(20000 + (i * 7) + random.Next(7)), outside));
        }

        // Open every session, one packet at a time, and learn the port the outside sees.
        foreach (var flow in flows)
        {
            twin.Send(flow.Outbound ? Acc10 : Acc20, Packet(flow, fromInside: flow.Outbound, flow.Tcp ? TcpFlags.Syn : TcpFlags.None, 64, 10, random));
            if (flow.Outbound)
            {
                var left = Assert.Single(twin.LastSent[Acc20]);
                var ip = Ip4(left);
                flow.OutsidePeerPort = flow.Tcp ? new TcpHeader(ip.Payload).SourcePort : new UdpHeader(ip.Payload).SourcePort;
            }

            if (flow.Tcp)
            {
                twin.Send(flow.Outbound ? Acc20 : Acc10, Packet(flow, fromInside: !flow.Outbound, TcpFlags.Syn | TcpFlags.Ack, 64, 0, random));
            }
        }

        // Established traffic: the first two rounds carry each direction once (the first teaches the
        // sessions, the second uses what they learned), then random packets either way.
        for (var round = 0; round < 4; round++)
        {
            var batch = new List<(int Port, byte[] Frame)>();
            foreach (var flow in flows)
            {
                if (round < 2)
                {
                    var flags = flow.Tcp ? TcpFlags.Ack : TcpFlags.None;
                    batch.Add((Acc10, Packet(flow, fromInside: true, flags, 64, random.Next(0, 200), random)));
                    batch.Add((Acc20, Packet(flow, fromInside: false, flags, 64, random.Next(0, 200), random)));
                }

                for (var k = random.Next(1, 4); k > 0; k--)
                {
                    var fromInside = random.Next(2) == 0;
                    var ttl = (byte)(random.Next(8) switch { 0 => 1, 1 => 2, _ => random.Next(2, 255) });
                    var flags = flow.Tcp ? TcpFlags.Ack | (random.Next(2) == 0 ? TcpFlags.Psh : TcpFlags.None) : TcpFlags.None;
                    batch.Add((fromInside ? Acc10 : Acc20, Packet(flow, fromInside, flags, ttl, random.Next(0, 200), random)));
                    if (hostile && round >= 2)
                    {
                        // The first is always a damaged header, so every scenario has one.
                        batch.Add(Hostile(flow, random, round == 2 && flow == flows[0] ? 0 : random.Next(3)));
                    }
                }
            }

            twin.Send(batch);
        }

        // The end of TCP sessions: FIN or RST from either side, then stragglers.
        var closing = new List<(int Port, byte[] Frame)>();
        foreach (var flow in flows.Where(f => f.Tcp))
        {
            var fromInside = random.Next(2) == 0;
            var flags = random.Next(2) == 0 ? TcpFlags.Fin | TcpFlags.Ack : TcpFlags.Rst;
            closing.Add((fromInside ? Acc10 : Acc20, Packet(flow, fromInside, flags, 64, 0, random)));
            closing.Add((fromInside ? Acc20 : Acc10, Packet(flow, !fromInside, TcpFlags.Ack, 64, 0, random)));
        }

        twin.Send(closing);
        Assert.True(twin.Fast.Worker.Context.Flows.FastForwarded > 0, "no packet took the fast path");
    }

    /// <summary>
    /// A hostile or disturbing frame among a flow's packets: its packet with a damaged IPv4 header
    /// checksum, its inside packet from the other inside host's MAC (a binding violation), or the
    /// upstream router's gratuitous ARP.
    /// </summary>
    private static (int Port, byte[] Frame) Hostile(Flow flow, Random random, int kind)
    {
        var flags = flow.Tcp ? TcpFlags.Ack : TcpFlags.None;
        switch (kind)
        {
            case 0:
                var fromInside = random.Next(2) == 0;
                var damaged = Packet(flow, fromInside, flags, 64, random.Next(0, 40), random);
                damaged[EthernetHeader.Length + 10] ^= (byte)(1 << random.Next(8));
                return (fromInside ? Acc10 : Acc20, damaged);
            case 1:
                var spoofed = Packet(flow, fromInside: true, flags, 64, random.Next(0, 40), random);
                (flow.InsideMac == HostA ? HostB : HostA).WriteTo(spoofed.AsSpan(6));
                return (Acc10, spoofed);
            default:
                var garp = new byte[64];
                return (Acc20, garp[..PacketBuilder.GarpRequest(garp, Upstream, UpstreamIp)]);
        }
    }

    /// <summary>A packet of <paramref name="flow"/> as its inside or outside end sends it.</summary>
    private static byte[] Packet(Flow flow, bool fromInside, TcpFlags flags, byte ttl, int payload, Random random)
    {
        Ipv4FrameSpec spec;
        ushort sourcePort, destinationPort;
        if (fromInside)
        {
            // Outbound: to the outside address; forwarded: the reply from the server's port.
            spec = new Ipv4FrameSpec(flow.InsideMac, Gw10, flow.InsideIp, flow.Outside) { Ttl = ttl };
            (sourcePort, destinationPort) = flow.Outbound ? (flow.Port, (ushort)443) : (flow.Tcp ? (ushort)80 : (ushort)53, flow.Port);
        }
        else
        {
            spec = new Ipv4FrameSpec(Upstream, Gw20, flow.Outside, Gw20Ip) { Ttl = ttl };
            (sourcePort, destinationPort) = flow.Outbound ? ((ushort)443, flow.OutsidePeerPort) : (flow.Port, flow.Tcp ? (ushort)8080 : (ushort)5353);
        }

        var data = new byte[payload];
        random.NextBytes(data);
        if (flow.Tcp)
        {
            return Build(b => PacketBuilder.Tcp(b, spec, sourcePort, destinationPort, flags, sequence: (uint)random.Next(), acknowledgment: (uint)random.Next(), payload: data));
        }

        var frame = Build(b => PacketBuilder.Udp(b, spec, sourcePort, destinationPort, data));
        if (random.Next(4) == 0)
        {
            // No UDP checksum (RFC 768): it must stay zero through the rewrite.
            frame[EthernetHeader.Length + Ipv4Header.MinLength + 6] = 0;
            frame[EthernetHeader.Length + Ipv4Header.MinLength + 7] = 0;
        }

        return frame;
    }

    /// <summary>Two workers on the same program, one with the fast path, one without; every input goes to both.</summary>
    private sealed class Twin : IDisposable
    {
        public Twin(DataPlaneProgram program)
        {
            Fast = new L3Fixture(program);
            Slow = new L3Fixture(program);
            Slow.Worker.Context.FastPathEnabled = false;
            Announce(Acc10, HostA, HostAIp);
            Announce(Acc10, HostB, HostBIp);
            Announce(Acc20, Upstream, UpstreamIp);
        }

        public L3Fixture Fast { get; }

        public L3Fixture Slow { get; }

        /// <summary>What each port transmitted in the last <see cref="Send(IReadOnlyList{ValueTuple{int, byte[]}})"/> (identical in both workers).</summary>
        public Dictionary<int, List<byte[]>> LastSent { get; private set; } = [];

        public void Announce(int port, MacAddress mac, Ipv4Address ip)
        {
            Fast.Announce(port, mac, ip);
            Slow.Announce(port, mac, ip);
        }

        public void Commit(DataPlaneProgram program)
        {
            Fast.Slot.Publish(SnapshotCompiler.Compile(program, 2, Fast.Time.TimestampFrequency));
            Slow.Slot.Publish(SnapshotCompiler.Compile(program, 2, Slow.Time.TimestampFrequency));
        }

        public void Send(int port, params byte[][] frames) => Send([.. frames.Select(f => (port, f))]);

        public void Send(int port, MemoryFrame frame)
        {
            Fast.Ports[port].Enqueue(frame);
            Slow.Ports[port].Enqueue(frame);
            Collect();
        }

        /// <summary>Enqueues every frame on both workers (one batch when they fit), runs both, and compares all they did.</summary>
        public void Send(IReadOnlyList<(int Port, byte[] Frame)> frames)
        {
            foreach (var (port, frame) in frames)
            {
                Fast.Ports[port].Enqueue(frame);
                Slow.Ports[port].Enqueue(frame);
            }

            Collect();
        }

        private void Collect()
        {
            Fast.Run();
            Slow.Run();
            LastSent = [];
            for (var port = 0; port < Fast.Ports.Length; port++)
            {
                var fast = Fast.SentFrames(port);
                var slow = Slow.SentFrames(port);
                Assert.Equal(slow.Count, fast.Count);
                for (var i = 0; i < fast.Count; i++)
                {
                    Assert.Equal(Convert.ToHexString(slow[i].Bytes), Convert.ToHexString(fast[i].Bytes));
                    Assert.Equal((slow[i].DestinationIp, slow[i].DestinationPort), (fast[i].DestinationIp, fast[i].DestinationPort));
                }

                LastSent[port] = [.. fast.Select(f => f.Bytes)];
            }

            var counters = Fast.Worker.Counters;
            var stages = Fast.Worker.Pipeline.Stages;
            for (var s = 0; s < stages.Count; s++)
            {
                for (var code = 0; code < stages[s].DropReasons.Count; code++)
                {
                    Assert.True(Slow.Worker.Counters.Drops(s, code) == counters.Drops(s, code), $"{stages[s].Name}.{stages[s].DropReasons[code]}");
                }
            }

            var fastSessions = Fast.Worker.Context.Flows.Table!.Snapshot();
            var slowSessions = Slow.Worker.Context.Flows.Table!.Snapshot();
            Assert.Equal(slowSessions.Count, fastSessions.Count);
            for (var i = 0; i < fastSessions.Count; i++)
            {
                var (a, b) = (fastSessions[i].Session, slowSessions[i].Session);
                Assert.Equal(ConntrackTable.OriginalTuple(b), ConntrackTable.OriginalTuple(a));
                Assert.Equal(ConntrackTable.ReplyTuple(b), ConntrackTable.ReplyTuple(a));
                Assert.Equal((b.State, b.Flags, b.Expires), (a.State, a.Flags, a.Expires));
            }

            Assert.Equal(Slow.Worker.Context.Flows.Committed, Fast.Worker.Context.Flows.Committed);
        }

        public void Dispose()
        {
            Fast.Dispose();
            Slow.Dispose();
        }
    }
}
