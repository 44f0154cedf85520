using System.Buffers.Binary;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Programming;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Firewall.FlowFixture;

namespace Isthmus.DataPlane.Tests.Firewall;

/// <summary>IPv4 fragments through conntrack and NAT (virtual reassembly, <see cref="FragmentCache"/>).</summary>
public class FragmentTests
{
    private const string Host = "10.10.0.10";
    private const string Server = "198.51.100.7";
    private const string Public = "203.0.113.1";

    private static NatSpec Snat => new()
    {
        Snat = [new SnatRuleSpec { EgressZone = "outside", Sources = ["10.10.0.0/24"], ToAddresses = [Public], Ports = "20000-20009" }],
    };

    /// <summary>Splits a frame's IP payload into fragments of <paramref name="chunk"/> bytes (a multiple of 8).</summary>
    private static List<byte[]> Fragment(byte[] frame, int chunk, ushort id = 0x4242)
    {
        const int l3 = EthernetHeader.Length;
        var ihl = (frame[l3] & 0x0F) * 4;
        var payload = frame.AsSpan(l3 + ihl);
        var fragments = new List<byte[]>();
        for (var offset = 0; offset < payload.Length; offset += chunk)
        {
            var length = Math.Min(chunk, payload.Length - offset);
            var fragment = new byte[l3 + ihl + length];
            frame.AsSpan(0, l3 + ihl).CopyTo(fragment);
            payload.Slice(offset, length).CopyTo(fragment.AsSpan(l3 + ihl));
            var ip = new Ipv4Header(fragment.AsSpan(l3));
            ip.TotalLength = (ushort)(ihl + length);
            ip.Identification = id;
            ip.DontFragment = false;
            ip.MoreFragments = offset + length < payload.Length;
            ip.FragmentOffset = (ushort)(offset / 8);
            ip.UpdateHeaderChecksum();
            fragments.Add(fragment);
        }

        return fragments;
    }

    private static Ipv4Header Ip(FlowResult r) => new(r.Frame.AsSpan(EthernetHeader.Length));

    [Fact]
    public void Fragments_of_a_new_flow_in_one_batch_all_leave_translated_and_make_one_session()
    {
        using var f = new FlowFixture(nat: Snat);
        var datagram = Udp(Host, 5000, Server, 53, payload: 40);
        var fragments = Fragment(datagram, 16);
        Assert.Equal(3, fragments.Count);
        var results = f.RunBatch([.. fragments.Select(x => (x, InsideSegment, InsideDomain, OutsideSegment, OutsideDomain))]);

        Assert.All(results, r => Assert.True(r.Passed, r.Drop));
        Assert.All(results, r => Assert.Equal(Public, Ip(r).Source.ToString()));
        Assert.All(results, r => Assert.True(Ip(r).IsHeaderChecksumValid));
        Assert.Equal(1, f.Table.Count);

        // Put back together, the datagram's UDP checksum (in the first fragment) matches the translated header.
        var port = results[0].SourcePort;
        Assert.InRange(port, 20000, 20009);
        var udp = results.SelectMany(r => r.Frame.Skip(EthernetHeader.Length + Ipv4Header.MinLength)).ToArray();
        Assert.True(Checksum.IsValid(udp, Checksum.PseudoHeaderSum(Ipv4Address.Parse(Public), Ipv4Address.Parse(Server), IpProtocol.Udp, (ushort)udp.Length)));
    }

    [Fact]
    public void Later_fragments_in_later_batches_follow_their_session_both_ways()
    {
        using var f = new FlowFixture(nat: Snat);
        var out1 = Fragment(Udp(Host, 5001, Server, 53, payload: 40), 24, id: 7);
        Assert.True(f.Outbound(out1[0]).Passed);
        var later = f.Outbound(out1[1]);
        Assert.True(later.Passed, later.Drop);
        Assert.Equal(Public, Ip(later).Source.ToString());
        var port = f.Outbound(Udp(Host, 5001, Server, 53)).SourcePort;

        // The reply is fragmented too: every fragment is un-SNATted to the host.
        var reply = Fragment(Udp(Server, 53, Public, port, payload: 64), 32, id: 9);
        foreach (var fragment in reply)
        {
            var back = f.Inbound(fragment);
            Assert.True(back.Passed, back.Drop);
            Assert.Equal(Host, Ip(back).Destination.ToString());
            Assert.True(Ip(back).IsHeaderChecksumValid);
        }

        Assert.Equal(5001, f.Inbound(Udp(Server, 53, Public, port)).DestinationPort);
        Assert.Equal(1, f.Table.Count);
    }

    [Fact]
    public void Orphan_overlapping_and_denied_fragments_are_counted_drops()
    {
        using var f = new FlowFixture(nat: Snat);

        // A later fragment whose first fragment never came.
        var orphan = Fragment(Udp(Host, 5002, Server, 53, payload: 40), 16, id: 11);
        Assert.Equal("conntrack.FragmentNoFlow", f.Outbound(orphan[1]).Drop);

        // RFC 1858 section 3.2: a TCP fragment at offset 8 could rewrite the flags the first one showed.
        var tcp = Fragment(Tcp(Host, 5003, Server, 80, TcpFlags.Syn), 8, id: 12);
        Assert.Equal("conntrack.Fragment", f.Outbound(tcp[1]).Drop);

        // Outside → inside has no policy: the first fragment is denied, so the rest find no session,
        // whether they share its batch (the firewall denies them too) or come later.
        var denied = Fragment(Udp(Server, 53, Host, 5004, payload: 40), 16, id: 13);
        var results = f.RunBatch([(denied[0], OutsideSegment, OutsideDomain, InsideSegment, InsideDomain), (denied[1], OutsideSegment, OutsideDomain, InsideSegment, InsideDomain)]);
        Assert.All(results, r => Assert.Equal("firewall.DefaultDeny", r.Drop));
        Assert.Equal("firewall.DefaultDeny", f.Inbound(denied[2]).Drop);
        Assert.Equal(0, f.Table.Count);
    }

    [Fact]
    public void The_cache_recalls_only_the_same_datagram_within_its_lifetime()
    {
        var cache = new FragmentCache();
        cache.Remember(1, 2, IpProtocol.Udp, 77, 1000, 53, now: 10);
        Assert.True(cache.TryRecall(1, 2, IpProtocol.Udp, 77, 11, out var sp, out var dp));
        Assert.Equal((1000, 53), (sp, dp));
        Assert.False(cache.TryRecall(1, 2, IpProtocol.Udp, 78, 11, out _, out _));
        Assert.False(cache.TryRecall(1, 3, IpProtocol.Udp, 77, 11, out _, out _));
        Assert.False(cache.TryRecall(1, 2, IpProtocol.Tcp, 77, 11, out _, out _));
        Assert.False(cache.TryRecall(1, 2, IpProtocol.Udp, 77, 10 + FragmentCache.LifetimeSeconds, out _, out _));
    }
}
