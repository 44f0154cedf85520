using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>
/// Issue 3, tests in the lab: routed + SNAT to the outside (ist-out, 203.0.113.10 behind the access port
/// up0), the port forward 203.0.113.1:8080 → ist-vm10:80, what the policy blocks and rejects, and replies
/// of allowed flows. Config: appliance/lab/lab-config-l3.json (the lab's default).
/// </summary>
[Collection(LabCollection.Name)]
public sealed class GatewayNatTests(LabFixture lab, ITestOutputHelper output)
{
    private static readonly TimeSpan Curl = TimeSpan.FromSeconds(15);

    [Fact(Timeout = 90_000)]
    public async Task Vlan_and_access_hosts_reach_the_outside_through_snat_and_the_outside_sees_203_0_113_1()
    {
        if (!lab.Ready())
        {
            return;
        }

        using var server = await Probes.StartServer("ist-out", $"{Probes.Python} -m http.server 8000 --bind 203.0.113.10", 8000);
        // What the outside receives: every packet from the tenant must carry the appliance's address.
        using var cap = await Lab.Tshark("ist-out", "eth0", "ip and not arp and (icmp or tcp port 8000)",
            "ip.src", "ip.dst", "ip.proto", "tcp.srcport", "tcp.dstport", "icmp.type");
        // ist-t10 is the VLAN 10 host on the 802.1Q trunk; ist-h10 the untagged access host; ist-h20 is in bd20.
        // Everything is sent first and judged after: what the outside saw (the translation) is asserted
        // before whether the answers made it back (the replies' way through conntrack), so a failure says which half broke.
        const string ping = "ping -n -c 3 -i 0.2 -W 2 203.0.113.10";
        var pings = new List<(string Ns, ExecResult R)>();
        foreach (string ns in new[] { "ist-t10", "ist-h10", "ist-h20" })
        {
            pings.Add((ns, await Lab.Exec(ns, ping, Curl)));
        }

        var get = await Lab.Exec("ist-t10", "curl -sS -m 8 -o /dev/null -w '%{http_code} %{size_download}' http://203.0.113.10:8000/", Curl);
        var lines = await cap.StopWhenAsync(l =>
            l.Any(x => x.StartsWith("203.0.113.1|203.0.113.10|1|", StringComparison.Ordinal) && x.EndsWith("|8", StringComparison.Ordinal))
            && l.Any(x => x.StartsWith("203.0.113.1|203.0.113.10|6|", StringComparison.Ordinal) && x.Contains("|8000|", StringComparison.Ordinal))
            && l.Any(x => x.StartsWith("203.0.113.10|203.0.113.1|1|", StringComparison.Ordinal)));
        output.WriteLine("tshark in ist-out (ip.src|ip.dst|proto|tcp.srcport|tcp.dstport|icmp.type):\n" + string.Join('\n', lines));
        output.WriteLine($"ist-t10 GET http://203.0.113.10:8000/ -> {get}");

        var fromTenant = lines.Where(l => !l.StartsWith("203.0.113.10|", StringComparison.Ordinal)).ToList();
        Assert.True(fromTenant.Count > 0, "tshark in ist-out saw nothing from the tenant\n" + await Lab.Diagnostics());
        Assert.All(fromTenant, l => Assert.StartsWith("203.0.113.1|203.0.113.10|", l, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("10.10.0.", StringComparison.Ordinal) || l.Contains("10.20.0.", StringComparison.Ordinal));
        // Echo requests (type 8) and the HTTP flow came in translated; ist-out answered 203.0.113.1.
        Assert.Contains(fromTenant, l => l.StartsWith("203.0.113.1|203.0.113.10|1|", StringComparison.Ordinal) && l.EndsWith("|8", StringComparison.Ordinal));
        Assert.Contains(fromTenant, l => l.StartsWith("203.0.113.1|203.0.113.10|6|", StringComparison.Ordinal) && l.Contains("|8000|", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("203.0.113.10|203.0.113.1|1|", StringComparison.Ordinal));

        // The answers reached the hosts: translated back through conntrack.
        string diag = await Lab.Diagnostics();
        foreach (var (ns, r) in pings)
        {
            Assert.True(r.Ok, $"[{ns}] {ping}: ist-out answered 203.0.113.1 (see the capture), the answer did not reach {ns}\n{r}\n{diag}");
        }

        Assert.True(get.Ok && get.Stdout.StartsWith("200 ", StringComparison.Ordinal), $"ist-t10 GET through SNAT failed:\n{get}\n{diag}");
    }

    [Fact(Timeout = 90_000)]
    public async Task Fragmented_datagrams_cross_snat_both_ways_every_fragment_translated()
    {
        if (!lab.Ready())
        {
            return;
        }

        // 3000-byte pings leave ist-h10 as three IPv4 fragments (MTU 1500), and the echo replies come
        // back fragmented: conntrack's virtual reassembly must carry the later fragments (no ports)
        // through the same session, masqueraded on the way out and un-NATted on the way back.
        using var cap = await Lab.Tshark("ist-out", "eth0", "ip and not arp", "ip.src", "ip.dst", "ip.flags.mf", "ip.frag_offset");
        var ping = await Lab.Exec("ist-h10", "ping -n -c 3 -i 0.3 -W 2 -s 3000 203.0.113.10", Curl);
        var lines = await cap.StopWhenAsync(l => l.Count(x => !x.StartsWith("203.0.113.10|", StringComparison.Ordinal)) >= 9);
        output.WriteLine("tshark in ist-out (ip.src|ip.dst|mf|offset):\n" + string.Join('\n', lines));
        var fromTenant = lines.Where(l => !l.StartsWith("203.0.113.10|", StringComparison.Ordinal)).ToList();
        Assert.True(fromTenant.Count >= 9, $"expected 3 pings × 3 fragments at ist-out, saw {fromTenant.Count}\n" + await Lab.Diagnostics());
        Assert.All(fromTenant, l => Assert.StartsWith("203.0.113.1|203.0.113.10|", l, StringComparison.Ordinal));
        Assert.Contains(fromTenant, l => !l.EndsWith("|0", StringComparison.Ordinal));   // later fragments (offset > 0) made it out
        Assert.True(ping.Ok, $"fragmented echo replies did not reach ist-h10:\n{ping}\n{await Lab.Diagnostics()}");
    }

    [Fact(Timeout = 90_000)]
    public async Task Port_forward_from_the_outside_serves_an_http_get_from_the_vxlan_vm()
    {
        if (!lab.Ready())
        {
            return;
        }

        using var server = await Probes.StartServer("ist-vm10", $"{Probes.Python} -m http.server 80 --bind 10.10.0.11", 80);
        // The VM sees the client's real address (DNAT only, no SNAT on the way in).
        using var cap = await Lab.Tcpdump("ist-vm10", "eth0", "tcp port 80", "in");
        string outMac = await Lab.Mac("ist-out");
        long seq = await L3Api.LastTraceSequence();
        await L3Api.ArmTrace("up0", outMac, 4);
        var get = await Lab.Exec("ist-out", "curl -sS -m 10 -D - http://203.0.113.1:8080/", Curl);
        var lines = await cap.StopWhenAsync(l => l.Any(x => x.Contains("203.0.113.10.", StringComparison.Ordinal) && x.Contains("> 10.10.0.11.80:", StringComparison.Ordinal)));
        output.WriteLine("curl from ist-out to 203.0.113.1:8080:\n" + get);
        output.WriteLine("tcpdump in ist-vm10:\n" + string.Join('\n', lines));
        var trace = await L3Api.TraceSince(seq);
        output.WriteLine("trace (up0, from ist-out):\n" + L3Api.Format(trace));
        Assert.True(get.Ok && get.Stdout.StartsWith("HTTP/1.0 200", StringComparison.Ordinal) && get.Stdout.Contains("Directory listing", StringComparison.Ordinal),
            $"port forward GET failed:\n{get}\n{await Lab.Diagnostics()}");
        Assert.Contains(lines, l => l.Contains("203.0.113.10.", StringComparison.Ordinal) && l.Contains("> 10.10.0.11.80:", StringComparison.Ordinal));
        Assert.Contains(trace, e => e.Stage == "firewall" && e.Verdict == "allow" && e.Detail.Contains("rule 200", StringComparison.Ordinal));
        Assert.Contains(trace, e => e.Stage == "conntrack" && e.Detail.Contains("10.10.0.11", StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task Policy_rejects_with_a_visible_rst_or_icmp_and_drops_silently()
    {
        if (!lab.Ready())
        {
            return;
        }

        using var inside = await Probes.StartServers("ist-vm10", Probes.InsideServers);
        using var outside = await Probes.StartServers("ist-out", Probes.OutsideServers);
        // What the outside prober receives: RSTs and ICMP errors, with tcpdump's own decoding.
        using var cap = await Lab.Tcpdump("ist-out", "eth0", "icmp or (tcp[tcpflags] & tcp-rst != 0)", "in");
        using var capIn = await Lab.Tcpdump("ist-vm10", "eth0", "tcp[tcpflags] & tcp-rst != 0", "in");
        var before = await Lab.Counters();
        string outMac = await Lab.Mac("ist-out");
        long seq = await L3Api.LastTraceSequence();
        await L3Api.ArmTrace("up0", outMac, 16);

        var results = new List<string[]>();
        async Task Check(string ns, Probe p)
        {
            var (verdict, raw) = await Probes.Run(ns, p);
            results.Add([p.Name, p.Expected, verdict]);
            Assert.True(verdict == p.Expected, $"{p.Name}: expected {p.Expected}, got {verdict}\n{raw}\n{await Lab.Diagnostics()}");
        }

        await Check("ist-out", new("out->in tcp/22 reject", "outside", "tcp", "10.10.0.11", 22, "refused"));
        await Check("ist-out", new("out->in udp/5353 reject", "outside", "udp", "10.10.0.11", 5353, "unreachable"));
        await Check("ist-out", new("out->in icmp echo reject", "outside", "icmp", "10.10.0.11", 0, "unreachable"));
        await Check("ist-out", new("out->in tcp/23 drop", "outside", "tcp", "10.10.0.11", 23, "timeout"));
        await Check("ist-out", new("out->in tcp/443 default", "outside", "tcp", "10.10.0.11", 443, "timeout"));
        await Check("ist-vm10", new("in->out tcp/25 reject", "inside", "tcp", "203.0.113.10", 25, "refused"));
        // Routed between bd20 and bd10 (both "inside"): the inside -> inside policy denies it.
        await Check("ist-h20", new("bd20->bd10 tcp/80 denied", "inside", "tcp", "10.10.0.11", 80, "timeout"));
        // And the allowed neighbour of those flows still works (routed, no NAT: the port forward and SNAT
        // have their own tests).
        await Check("ist-out", new("out->in tcp/80 direct (rule 200)", "outside", "tcp", "10.10.0.11", 80, "open"));

        // The RST and both ICMP errors must be there (waited for: a loaded machine's capture lags); the rest of the
        // capture, which must not answer the dropped ports, gets the usual settle.
        var lines = await cap.StopWhenAsync(l =>
            l.Any(x => x.Contains("10.10.0.11.22 > 203.0.113.10.", StringComparison.Ordinal) && x.Contains("Flags [R", StringComparison.Ordinal))
            && l.Count(x => x.Contains("ICMP host 10.10.0.11 unreachable - admin prohibited", StringComparison.Ordinal)) >= 2, 700);
        var linesIn = await capIn.StopWhenAsync(l => l.Any(x => x.Contains("203.0.113.10.25 > 10.10.0.11.", StringComparison.Ordinal) && x.Contains("Flags [R", StringComparison.Ordinal)), 0);
        var after = await Lab.Counters();
        var trace = await L3Api.TraceSince(seq);
        output.WriteLine(Probes.Table(results, "probe", "expected", "seen"));
        output.WriteLine("tcpdump in ist-out (RST / ICMP in):\n" + string.Join('\n', lines));
        output.WriteLine("tcpdump in ist-vm10 (RST in):\n" + string.Join('\n', linesIn));
        output.WriteLine("trace (up0, from ist-out):\n" + L3Api.Format(trace));
        foreach (string k in new[] { "firewall.RuleReject", "firewall.RuleDrop", "firewall.DefaultDeny", "firewall.InvalidState" })
        {
            output.WriteLine($"{k}: {before.Drop(k)} -> {after.Drop(k)}");
        }

        // The RST for tcp/22 comes from 10.10.0.11:22, the ICMP errors are administratively prohibited (code 13).
        Assert.Contains(lines, l => l.Contains("10.10.0.11.22 > 203.0.113.10.", StringComparison.Ordinal) && l.Contains("Flags [R", StringComparison.Ordinal));
        // (tcpdump prints code 13 as "ICMP host 10.10.0.11 unreachable - admin prohibited filter": one for udp/5353, one for the ping.)
        Assert.True(lines.Count(l => l.Contains("ICMP host 10.10.0.11 unreachable - admin prohibited", StringComparison.Ordinal)) >= 2,
            "expected two ICMP admin-prohibited errors (udp/5353 and echo) in ist-out:\n" + string.Join('\n', lines));
        // The inside client's RST for SMTP comes "from" 203.0.113.10:25.
        Assert.Contains(linesIn, l => l.Contains("203.0.113.10.25 > 10.10.0.11.", StringComparison.Ordinal) && l.Contains("Flags [R", StringComparison.Ordinal));
        // Nothing answers the dropped ports.
        Assert.DoesNotContain(lines, l => l.Contains("10.10.0.11.23 >", StringComparison.Ordinal) || l.Contains("10.10.0.11.443 >", StringComparison.Ordinal));

        Assert.True(after.Drop("firewall.RuleReject") >= before.Drop("firewall.RuleReject") + 4, "firewall.RuleReject did not count 4 rejects");
        Assert.True(after.Drop("firewall.RuleDrop") >= before.Drop("firewall.RuleDrop") + 1, "firewall.RuleDrop did not count the tcp/23 drop");
        Assert.True(after.Drop("firewall.DefaultDeny") >= before.Drop("firewall.DefaultDeny") + 2, "firewall.DefaultDeny did not count tcp/443 and bd20 -> bd10");
        foreach (int rule in new[] { 201, 202, 203, 204 })
        {
            Assert.Contains(trace, e => e.Stage == "firewall" && e.Detail.Contains($"rule {rule} ", StringComparison.Ordinal));
        }

        Assert.Contains(trace, e => e.Stage == "firewall" && e.Verdict == "drop" && e.Detail.Contains("no rule matched", StringComparison.Ordinal));
    }

    [Fact(Timeout = 90_000)]
    public async Task Replies_of_allowed_flows_pass_and_unsolicited_ones_do_not()
    {
        if (!lab.Ready())
        {
            return;
        }

        using var outside = await Probes.StartServers("ist-out", Probes.OutsideServers);
        await Lab.Must("ist-out", "mkdir -p /tmp/isthmus-l3-www && head -c 2000000 /dev/urandom > /tmp/isthmus-l3-www/blob && sha256sum /tmp/isthmus-l3-www/blob | cut -c1-64 > /tmp/isthmus-l3-www/blob.sha");
        using var web = await Probes.StartServer("ist-out", $"{Probes.Python} -m http.server 8001 --bind 203.0.113.10 --directory /tmp/isthmus-l3-www", 8001);
        string want = (await Lab.Must("ist-out", "cat /tmp/isthmus-l3-www/blob.sha")).Stdout.Trim();

        // A 2 MB download through SNAT: every reply segment (and the VM's ACKs) must pass and be translated back.
        foreach (string client in new[] { "ist-vm10", "ist-t10" })
        {
            string file = $"/tmp/isthmus-l3-dl-{client}";
            var dl = await Lab.Exec(client, $"curl -sS -m 20 -o {file} http://203.0.113.10:8001/blob && sha256sum {file} | cut -c1-64; rm -f {file}", TimeSpan.FromSeconds(30));
            Assert.True(dl.Ok && dl.Stdout.Trim() == want,
                $"2 MB download from 203.0.113.10 (through SNAT) to {client}: expected sha256 {want}\n{dl}\n{await Lab.Diagnostics()}");
        }

        var results = new List<string[]>();
        foreach (var (ns, p) in new (string, Probe)[]
                 {
                     ("ist-vm10", new("in->out udp/7 echo reply", "inside", "udp", "203.0.113.10", 7, "reply")),
                     ("ist-h20", new("bd20 in->out udp/7 echo reply", "inside", "udp", "203.0.113.10", 7, "reply")),
                     ("ist-vm10", new("in->out udp/9 port unreachable back", "inside", "udp", "203.0.113.10", 9, "refused")),
                     ("ist-vm10", new("in->out tcp/9 RST back", "inside", "tcp", "203.0.113.10", 9, "refused")),
                 })
        {
            var (verdict, raw) = await Probes.Run(ns, p);
            results.Add([ns, p.Name, p.Expected, verdict]);
            Assert.True(verdict == p.Expected, $"{p.Name} from {ns}: expected {p.Expected}, got {verdict}\n{raw}\n{await Lab.Diagnostics()}");
        }

        // Unsolicited "replies" from the outside (a SYN-ACK and an echo reply nobody asked for) are invalid
        // for conntrack: the inside never sees them.
        using var capIn = await Lab.Tcpdump("ist-vm10", "eth0", "host 203.0.113.10", "in");
        await Lab.MustScapy("ist-out",
            "send(IP(src='203.0.113.10', dst='10.10.0.11')/TCP(sport=80, dport=40123, flags='SA', seq=1000, ack=2000), count=2)\n" +
            "send(IP(src='203.0.113.10', dst='10.10.0.11')/ICMP(type=0, id=4242, seq=1), count=2)");
        var unsolicited = await capIn.StopAsync(1000);
        output.WriteLine(Probes.Table(results, "from", "probe", "expected", "seen"));
        output.WriteLine("unsolicited replies seen by ist-vm10:\n" + string.Join('\n', unsolicited));
        Assert.Empty(unsolicited);
    }
}
