using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Firewall.FlowFixture;

namespace Isthmus.DataPlane.Tests.Firewall;

public class ConntrackStageTests
{
    private const string Host = "10.10.0.10";
    private const string Server = "198.51.100.7";

    private static ConntrackState StateOf(FlowFixture f, in FlowResult r) => f.Table[r.Meta.Flow].State;

    [Fact]
    public void Tcp_open_and_graceful_close_walks_the_state_machine_to_time_wait()
    {
        using var f = new FlowFixture();
        var syn = f.Outbound(Tcp(Host, 40000, Server, 80, TcpFlags.Syn));
        Assert.True(syn.Passed);
        Assert.True((syn.Meta.Flags & PacketFlags.NewFlow) != 0);
        Assert.Equal(ConntrackState.TcpSynSent, StateOf(f, syn));

        var synAck = f.Inbound(Tcp(Server, 80, Host, 40000, TcpFlags.Syn | TcpFlags.Ack));
        Assert.True(synAck.Passed);
        Assert.True((synAck.Meta.Flags & PacketFlags.KnownFlow) != 0);
        Assert.Equal(1, synAck.Meta.FlowDirection);
        Assert.Equal(syn.Meta.Flow, synAck.Meta.Flow);
        Assert.Equal(ConntrackState.TcpSynRecv, StateOf(f, synAck));

        Assert.Equal(ConntrackState.TcpEstablished, StateOf(f, f.Outbound(Tcp(Host, 40000, Server, 80, TcpFlags.Ack))));
        Assert.Equal(ConntrackState.TcpFinWait, StateOf(f, f.Outbound(Tcp(Host, 40000, Server, 80, TcpFlags.Fin | TcpFlags.Ack))));
        Assert.Equal(ConntrackState.TcpCloseWait, StateOf(f, f.Inbound(Tcp(Server, 80, Host, 40000, TcpFlags.Ack))));
        Assert.Equal(ConntrackState.TcpTimeWait, StateOf(f, f.Inbound(Tcp(Server, 80, Host, 40000, TcpFlags.Fin | TcpFlags.Ack))));
        var last = f.Outbound(Tcp(Host, 40000, Server, 80, TcpFlags.Ack));
        Assert.True(last.Passed);

        // TIME_WAIT lasts 120 s by default.
        var tuple = new FlowTuple(Ip(Host), Ip(Server), 40000, 80, 6);
        f.Advance(TimeSpan.FromSeconds(119));
        Assert.True(f.Table.Contains(tuple, f.Flows.Now));
        f.Advance(TimeSpan.FromSeconds(2));
        Assert.False(f.Table.Contains(tuple, f.Flows.Now));
    }

    [Fact]
    public void A_reset_closes_the_session_and_a_new_syn_reopens_it_as_new()
    {
        using var f = new FlowFixture();
        f.Outbound(Tcp(Host, 40001, Server, 80, TcpFlags.Syn));
        f.Inbound(Tcp(Server, 80, Host, 40001, TcpFlags.Syn | TcpFlags.Ack));
        f.Outbound(Tcp(Host, 40001, Server, 80, TcpFlags.Ack));
        var rst = f.Inbound(Tcp(Server, 80, Host, 40001, TcpFlags.Rst | TcpFlags.Ack));
        Assert.True(rst.Passed);
        Assert.Equal(ConntrackState.TcpClose, StateOf(f, rst));

        var again = f.Outbound(Tcp(Host, 40001, Server, 80, TcpFlags.Syn));
        Assert.True((again.Meta.Flags & PacketFlags.NewFlow) != 0);
        Assert.Equal(ConntrackState.TcpSynSent, StateOf(f, again));

        // CLOSE lasts 10 s.
        f.Inbound(Tcp(Server, 80, Host, 40001, TcpFlags.Rst | TcpFlags.Ack));
        f.Advance(TimeSpan.FromSeconds(11));
        Assert.False(f.Table.Contains(new FlowTuple(Ip(Host), Ip(Server), 40001, 80, 6), f.Flows.Now));
    }

    [Fact]
    public void An_unanswered_syn_times_out_and_a_reply_direction_syn_is_invalid()
    {
        using var f = new FlowFixture();
        f.Outbound(Tcp(Host, 40002, Server, 80, TcpFlags.Syn));
        var bogus = f.Inbound(Tcp(Server, 80, Host, 40002, TcpFlags.Syn));
        Assert.Equal("firewall.InvalidState", bogus.Drop);

        f.Advance(TimeSpan.FromSeconds(121));
        Assert.False(f.Table.Contains(new FlowTuple(Ip(Host), Ip(Server), 40002, 80, 6), f.Flows.Now));
    }

    [Fact]
    public void Udp_is_unreplied_then_replied_with_their_own_timeouts()
    {
        using var f = new FlowFixture();
        var tuple = new FlowTuple(Ip(Host), Ip(Server), 5353, 53, 17);
        var query = f.Outbound(Udp(Host, 5353, Server, 53));
        Assert.Equal(ConntrackState.Unreplied, StateOf(f, query));
        f.Advance(TimeSpan.FromSeconds(29));
        Assert.True(f.Table.Contains(tuple, f.Flows.Now));
        f.Advance(TimeSpan.FromSeconds(2));
        Assert.False(f.Table.Contains(tuple, f.Flows.Now));

        f.Outbound(Udp(Host, 5353, Server, 53));
        var answer = f.Inbound(Udp(Server, 53, Host, 5353));
        Assert.True(answer.Passed);
        Assert.Equal(ConntrackState.Replied, StateOf(f, answer));
        f.Advance(TimeSpan.FromSeconds(119));
        Assert.True(f.Table.Contains(tuple, f.Flows.Now));
        f.Advance(TimeSpan.FromSeconds(2));
        Assert.False(f.Table.Contains(tuple, f.Flows.Now));
    }

    [Fact]
    public void The_heartbeat_sweep_reclaims_every_expired_session_within_one_cycle()
    {
        using var f = new FlowFixture();
        for (ushort port = 1; port <= 100; port++)
        {
            f.Outbound(Udp(Host, port, Server, 53));
        }

        Assert.Equal(100, f.Table.Count);

        // Nothing looks them up again; one second at a time, the sweep visits 1/8 of the table per tick.
        for (var s = 0; s < 31 + 8; s++)
        {
            f.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(0, f.Table.Count);
    }

    [Fact]
    public void Icmp_echo_is_tracked_by_identifier_and_the_reply_gets_in()
    {
        using var f = new FlowFixture();
        var request = f.Outbound(Echo(Host, Server, id: 77));
        Assert.True(request.Passed);
        var reply = f.Inbound(Echo(Server, Host, id: 77, reply: true));
        Assert.True(reply.Passed);
        Assert.Equal(ConntrackState.Replied, StateOf(f, reply));

        // A reply nobody asked for is INVALID: outside → inside has no policy, so it is denied.
        Assert.Equal("firewall.DefaultDeny", f.Inbound(Echo(Server, Host, id: 78, reply: true)).Drop);
        f.Advance(TimeSpan.FromSeconds(31));
        Assert.False(f.Table.Contains(new FlowTuple(Ip(Host), Ip(Server), 77, 0, 1), f.Flows.Now));
    }

    [Fact]
    public void A_full_table_drops_new_flows_and_established_ones_carry_on()
    {
        var firewall = DefaultFirewall with { Conntrack = new ConntrackSpec { MaxSessions = 2 } };
        using var f = new FlowFixture(firewall);
        f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Syn));
        f.Outbound(Udp(Host, 2, Server, 53));
        Assert.Equal("nat.ConntrackFull", f.Outbound(Tcp(Host, 3, Server, 80, TcpFlags.Syn)).Drop);
        Assert.Equal(1, f.Drops("nat", "ConntrackFull"));

        Assert.True(f.Inbound(Tcp(Server, 80, Host, 1, TcpFlags.Syn | TcpFlags.Ack)).Passed);
        Assert.True(f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Ack)).Passed);
        Assert.True(f.Inbound(Udp(Server, 53, Host, 2)).Passed);
        Assert.Equal(2, f.Table.Count);
    }

    [Fact]
    public void Hostile_and_malformed_packets_are_counted_drops()
    {
        using var f = new FlowFixture();
        Assert.Equal("conntrack.BadTcpFlags", f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Syn | TcpFlags.Fin)).Drop);
        Assert.Equal("conntrack.BadTcpFlags", f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Fin)).Drop);
        Assert.Equal("conntrack.BadTcpFlags", f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.None)).Drop);
        Assert.Equal("conntrack.BadTcpFlags", f.Outbound(Tcp(Host, 1, Server, 80, TcpFlags.Fin | TcpFlags.Psh | TcpFlags.Urg)).Drop);

        // A later fragment whose first fragment was never seen: no ports, no flow.
        var fragment = Udp(Host, 1, Server, 53);
        fragment[EthernetHeader.Length + 6] = 0x00;
        fragment[EthernetHeader.Length + 7] = 0x10;
        Assert.Equal("conntrack.FragmentNoFlow", f.Outbound(fragment).Drop);

        // Truncated TCP: IP total length says 20 + 10.
        var truncated = Tcp(Host, 1, Server, 80, TcpFlags.Syn)[..(EthernetHeader.Length + 30)];
        new Ipv4Header(truncated.AsSpan(EthernetHeader.Length)).TotalLength = 30;
        Assert.Equal("conntrack.TruncatedL4", f.Outbound(truncated).Drop);

        // An ICMP error quoting a flow nobody opened.
        var error = IcmpError(Server, Host, Icmpv4Type.DestinationUnreachable, 3, Udp(Host, 9, Server, 9999));
        Assert.Equal("conntrack.IcmpErrorNoFlow", f.Inbound(error).Drop);

        // An ICMP error whose quote is cut short.
        var shortError = IcmpError(Server, Host, Icmpv4Type.DestinationUnreachable, 3, Udp(Host, 9, Server, 9999), quoteBytes: 2);
        Assert.Equal("conntrack.IcmpErrorMalformed", f.Inbound(shortError).Drop);

        // A stray ACK with no session is INVALID: not tracked, and outside → inside denies it.
        Assert.Equal("firewall.DefaultDeny", f.Inbound(Tcp(Server, 80, Host, 5, TcpFlags.Ack)).Drop);
        Assert.Equal(0, f.Table.Count);
        Assert.Equal(4, f.Drops("conntrack", "BadTcpFlags"));
    }

    [Fact]
    public void Random_bytes_never_crash_the_flow_stages()
    {
        using var f = new FlowFixture(nat: Nat.NatStageTests.SnatToPool);
        var random = new Random(11);
        for (var i = 0; i < 3000; i++)
        {
            var frame = Tcp(Host, 1, Server, 80, TcpFlags.Syn);
            if (i % 3 == 1)
            {
                frame = Echo(Host, Server, 5);
            }
            else if (i % 3 == 2)
            {
                frame = IcmpError(Server, Host, 3, 4, Udp(Host, 1, Server, 2), quoteBytes: random.Next(0, 8));
            }

            // Scribble over everything after the IP header's first byte, keep the length plausible.
            for (var k = 0; k < 6; k++)
            {
                frame[random.Next(EthernetHeader.Length + 1, frame.Length)] = (byte)random.Next(256);
            }

            frame = frame[..random.Next(EthernetHeader.Length + Ipv4Header.MinLength, frame.Length + 1)];
            _ = i % 2 == 0 ? f.Outbound(frame) : f.Inbound(frame);
        }
    }

    [Fact]
    public void Traced_packets_record_the_conntrack_state()
    {
        using var f = new FlowFixture();
        var syn = f.Run(Tcp(Host, 40000, Server, 80, TcpFlags.Syn), InsideSegment, InsideDomain, OutsideSegment, OutsideDomain, traced: true);
        var entries = f.Context.Tracer.Entries(syn.Meta.TraceId);
        Assert.Contains(entries, e => e.Stage == "conntrack" && e.Verdict == "new");
        Assert.Contains(entries, e => e.Stage == "firewall" && e.Verdict == "allow" && e.Detail.Contains("rule 1", StringComparison.Ordinal));
        Assert.Contains(entries, e => e.Stage == "nat" && e.Verdict == "commit");
    }

    private static uint Ip(string text) => Ipv4Address.Parse(text).Value;
}
