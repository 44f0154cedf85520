using Xunit.Abstractions;

namespace Isthmus.Integration.Tests;

/// <summary>
/// Issue 3, semantics cross-check: the lab's policy and NAT (appliance/lab/lab-config-l3.json) expressed in
/// nftables on a Linux router namespace, and the same probe flows against both. The kernel is the reference
/// implementation nobody here wrote: per probe, the appliance's verdict must equal the kernel's.
/// </summary>
/// <remarks>
/// The reference is three namespaces outside the lab's lifecycle (prefix istt-, made and removed by this test
/// by exact name): istt-nfti (10.10.0.11, like ist-vm10) — istt-nftr (10.10.0.1 on in0, 203.0.113.1 on out0,
/// nftables) — istt-nfto (203.0.113.10, like ist-out). Same addresses, same servers, same probe script, so the
/// only difference is the forwarder in the middle.
/// </remarks>
[Collection(LabCollection.Name)]
public sealed class NftCrossCheckTests(LabFixture lab, ITestOutputHelper output)
{
    private const string Router = "istt-nftr";
    private const string Inside = "istt-nfti";
    private const string Outside = "istt-nfto";
    private static readonly string[] RefNamespaces = [Router, Inside, Outside];

    /// <summary>
    /// lab-config-l3.json's firewall and NAT, rule for rule. Appliance rules classify new flows only and
    /// established/related packets skip them (conntrack), so: ct state established,related accept; invalid drop
    /// (a stray ACK / echo reply is INVALID for both: tcp_loose is turned off below); then the zone pair's rules
    /// in order; then the policy default (drop). The appliance's own addresses serve only ping (input chain).
    /// </summary>
    public const string Ruleset = """
        flush ruleset
        table inet isthmus {
            chain prerouting {
                type nat hook prerouting priority dstnat; policy accept;
                iifname "out0" ip daddr 203.0.113.1 tcp dport 8080 dnat ip to 10.10.0.11:80
            }
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "out0" masquerade
            }
            chain input {
                type filter hook input priority filter; policy drop;
                ct state established,related accept
                icmp type echo-request accept
            }
            chain forward {
                type filter hook forward priority filter; policy drop;
                ct state established,related accept
                ct state invalid drop
                iifname "in0" oifname "out0" jump inside_outside
                iifname "out0" oifname "in0" jump outside_inside
            }
            chain inside_outside {
                meta l4proto tcp tcp dport 25 counter reject with tcp reset comment "rule 100"
                meta l4proto tcp counter accept comment "rule 101"
                meta l4proto udp counter accept comment "rule 102"
                meta l4proto icmp counter accept comment "rule 103"
            }
            chain outside_inside {
                ip daddr 10.10.0.11 tcp dport 80 counter accept comment "rule 200"
                tcp dport 22 counter reject with tcp reset comment "rule 201"
                udp dport 5000-5999 counter reject with icmp type admin-prohibited comment "rule 202"
                icmp type echo-request counter reject with icmp type admin-prohibited comment "rule 203"
                tcp dport 23 counter drop comment "rule 204"
            }
        }
        """;

    [Fact(Timeout = 180_000)]
    public async Task Appliance_and_nftables_agree_on_every_probe()
    {
        if (!lab.Ready())
        {
            return;
        }

        await BuildReference();
        try
        {
            using var appIn = await Probes.StartServers("ist-vm10", Probes.InsideServers);
            using var appOut = await Probes.StartServers("ist-out", Probes.OutsideServers);
            using var refIn = await Probes.StartServers(Inside, Probes.InsideServers);
            using var refOut = await Probes.StartServers(Outside, Probes.OutsideServers);

            var rows = new List<string[]>();
            var disagreements = new List<string>();
            var notAsWritten = new List<string>();
            foreach (var p in Probes.PolicyProbes)
            {
                // Both forwarders at once: they share nothing, and it halves the time spent in drop timeouts.
                var appTask = Probes.Run(p.From == "inside" ? "ist-vm10" : "ist-out", p);
                var refTask = Probes.Run(p.From == "inside" ? Inside : Outside, p);
                var (app, appRaw) = await appTask;
                var (kernel, kernelRaw) = await refTask;
                bool agree = app == kernel;
                rows.Add([p.Name, kernel, app, agree ? "yes" : "NO", p.Expected]);
                if (!agree)
                {
                    disagreements.Add($"{p.Name}: appliance {app}, nftables {kernel}\n  appliance probe: {appRaw.Replace("\n", "\n    ", StringComparison.Ordinal)}\n  kernel probe: {kernelRaw.Replace("\n", "\n    ", StringComparison.Ordinal)}");
                }

                if (kernel != p.Expected)
                {
                    notAsWritten.Add($"{p.Name}: the nftables mirror says {kernel}, the policy as written says {p.Expected}");
                }
            }

            string table = Probes.Table(rows, "probe", "nftables", "appliance", "agree", "policy says");
            output.WriteLine(table);
            var nftCounters = await Lab.Exec(Router, "nft list chain inet isthmus inside_outside; nft list chain inet isthmus outside_inside");
            output.WriteLine("nftables rule counters:\n" + nftCounters.Stdout);
            var counters = await Lab.Counters();
            output.WriteLine(string.Join('\n', counters.Drops.Where(d => d.Key.StartsWith("firewall.", StringComparison.Ordinal) || d.Key.StartsWith("conntrack.", StringComparison.Ordinal) || d.Key.StartsWith("nat.", StringComparison.Ordinal)).Select(d => $"{d.Key} = {d.Value}")));

            Assert.True(notAsWritten.Count == 0, "the nftables reference does not implement the policy as written (a test bug):\n" + string.Join('\n', notAsWritten) + "\n" + table);
            Assert.True(disagreements.Count == 0, $"{disagreements.Count} of {Probes.PolicyProbes.Length} probes disagree:\n{table}\n{string.Join('\n', disagreements)}\n{await Lab.Diagnostics()}");
        }
        finally
        {
            await RemoveReference();
        }
    }

    private static async Task BuildReference()
    {
        await RemoveReference();
        string rules = Path.Combine(Path.GetTempPath(), $"istt-nft-{Guid.NewGuid():N}.nft");
        await File.WriteAllTextAsync(rules, Ruleset);
        string script = $"""
            set -e
            for n in {Router} {Inside} {Outside}; do
                ip netns add $n
                ip -n $n link set lo up
                ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
            done
            ip link add in0 netns {Router} type veth peer name eth0 netns {Inside}
            ip link add out0 netns {Router} type veth peer name eth0 netns {Outside}
            ip -n {Router} link set in0 up
            ip -n {Router} link set out0 up
            ip -n {Inside} link set eth0 up
            ip -n {Outside} link set eth0 up
            ip -n {Router} addr add 10.10.0.1/24 dev in0
            ip -n {Router} addr add 203.0.113.1/24 dev out0
            ip -n {Inside} addr add 10.10.0.11/24 dev eth0
            ip -n {Outside} addr add 203.0.113.10/24 dev eth0
            ip -n {Inside} route add default via 10.10.0.1
            ip -n {Outside} route add 10.0.0.0/8 via 203.0.113.1
            ip netns exec {Router} sysctl -qw net.ipv4.ip_forward=1
            ip netns exec {Router} nft -f {rules}
            # Only a SYN opens a TCP flow, as in the appliance's conntrack (Linux's default picks up mid-stream).
            ip netns exec {Router} sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
            """;
        try
        {
            var r = await Lab.RunAsync("bash", ["-c", script], TimeSpan.FromSeconds(30));
            Assert.True(r.Ok, "building the nftables reference failed:\n" + r);
        }
        finally
        {
            File.Delete(rules);
        }
    }

    private static async Task RemoveReference()
    {
        foreach (string ns in RefNamespaces)
        {
            // By exact name; kill what still runs inside (servers, probes), then delete.
            await Lab.RunAsync("bash", ["-c", $"if ip netns list | awk '{{print $1}}' | grep -qx {ns}; then for p in $(ip netns pids {ns}); do kill -KILL $p 2>/dev/null || true; done; ip netns del {ns}; fi"], TimeSpan.FromSeconds(15));
        }
    }
}
