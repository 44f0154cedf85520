using System.Collections.Frozen;
using System.Globalization;
using Isthmus.DataPlane.Firewall;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Programming;

public static partial class SnapshotCompiler
{
    private const string Unzoned = "unzoned";

    /// <summary>Validates zones, policies and NAT (every error, with its path), and compiles the classifier and NAT tables.</summary>
    private static FirewallTables CompileFirewall(DataPlaneProgram program, Segment[] segments, Domain[] domains, L3Tables l3, long ticksPerSecond, List<ProgramError> problems)
    {
        _ = ticksPerSecond;
        var gatewayAddress = new uint[domains.Length];
        for (var d = 0; d < domains.Length; d++)
        {
            var gateway = l3.Gateway(d);
            gatewayAddress[d] = gateway is { Ipv4.Length: > 0 } ? gateway.Ipv4[0].Ipv4 : 0;
        }

        var fw = program.Firewall;
        var nat = program.Nat;
        var zoneIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        var zoneNames = new List<string>();
        var zoneOfSegment = new int[segments.Length];
        Array.Fill(zoneOfSegment, -1);
        var segmentByName = new Dictionary<string, Segment>(StringComparer.Ordinal);
        foreach (var s in segments)
        {
            segmentByName[s.Name] = s;
        }

        var domainByName = new Dictionary<string, Domain>(StringComparer.Ordinal);
        foreach (var d in domains)
        {
            domainByName[d.Name] = d;
        }

        for (var z = 0; z < fw.Zones.Count; z++)
        {
            var zone = fw.Zones[z];
            var path = $"firewall.zones[{z}]";
            if (string.IsNullOrWhiteSpace(zone.Name) || zone.Name == Unzoned)
            {
                problems.Add(new($"{path}.name", $"a zone needs a name other than '{Unzoned}'"));
                continue;
            }

            if (!zoneIndex.TryAdd(zone.Name, zoneNames.Count))
            {
                problems.Add(new($"{path}.name", $"zone name '{zone.Name}' is used twice"));
                continue;
            }

            var id = zoneNames.Count;
            zoneNames.Add(zone.Name);
            for (var i = 0; i < zone.Segments.Count; i++)
            {
                if (!segmentByName.TryGetValue(zone.Segments[i], out var seg))
                {
                    problems.Add(new($"{path}.segments[{i}]", $"no segment named '{zone.Segments[i]}' (segments are named like acc10, trunk0/vlan10, und0/vni5010)"));
                    continue;
                }

                Claim(seg.Index, id, $"{path}.segments[{i}]", seg.Name);
            }

            for (var i = 0; i < zone.Domains.Count; i++)
            {
                if (!domainByName.TryGetValue(zone.Domains[i], out var dom))
                {
                    problems.Add(new($"{path}.domains[{i}]", $"no bridge domain named '{zone.Domains[i]}'"));
                    continue;
                }

                foreach (var s in dom.Segments)
                {
                    // A segment that failed validation may leave a dangling index: skip it.
                    if (s >= 0 && s < segments.Length)
                    {
                        Claim(s, id, $"{path}.domains[{i}]", segments[s].Name);
                    }
                }
            }
        }

        var unzoned = zoneNames.Count;
        zoneNames.Add(Unzoned);
        for (var s = 0; s < zoneOfSegment.Length; s++)
        {
            if (zoneOfSegment[s] < 0)
            {
                zoneOfSegment[s] = unzoned;
            }
        }

        var zoneOfDomain = new int[domains.Length];
        for (var d = 0; d < domains.Length; d++)
        {
            var zone = -1;
            foreach (var s in domains[d].Segments)
            {
                if (s < 0 || s >= segments.Length)
                {
                    continue;
                }

                zone = zone == -1 || zone == zoneOfSegment[s] ? zoneOfSegment[s] : unzoned;
            }

            zoneOfDomain[d] = zone < 0 ? unzoned : zone;
        }

        // Address sets.
        var sets = new Dictionary<string, List<(uint, int)>>(StringComparer.Ordinal);
        for (var i = 0; i < fw.AddressSets.Count; i++)
        {
            var set = fw.AddressSets[i];
            var path = $"firewall.addressSets[{i}]";
            var prefixes = new List<(uint, int)>();
            for (var k = 0; k < set.Prefixes.Count; k++)
            {
                if (TryParsePrefix(set.Prefixes[k], out var net, out var len))
                {
                    prefixes.Add((net, len));
                }
                else
                {
                    problems.Add(new($"{path}.prefixes[{k}]", $"'{set.Prefixes[k]}' is not an IPv4 prefix such as 10.0.0.0/8"));
                }
            }

            if (string.IsNullOrWhiteSpace(set.Name) || !sets.TryAdd(set.Name, prefixes))
            {
                problems.Add(new($"{path}.name", $"address set name '{set.Name}' is empty or used twice"));
            }
        }

        // Policies.
        var zc = zoneNames.Count;
        var pairPolicy = new int[zc * zc];
        Array.Fill(pairPolicy, -1);
        var policies = new List<CompiledPolicy>();
        var ruleIds = new List<int>();
        var seenIds = new HashSet<int>();
        for (var pi = 0; pi < fw.Policies.Count; pi++)
        {
            var policy = fw.Policies[pi];
            var path = $"firewall.policies[{pi}]";
            var from = ZoneRef(policy.From, $"{path}.from");
            var to = ZoneRef(policy.To, $"{path}.to");
            if (from >= 0 && to >= 0 && pairPolicy[(from * zc) + to] >= 0)
            {
                problems.Add(new(path, $"zone pair {policy.From} → {policy.To} already has a policy"));
            }

            var atoms = new List<RuleAtom>();
            var rules = new CompiledRule[policy.Rules.Count];
            for (var ri = 0; ri < policy.Rules.Count; ri++)
            {
                var rule = policy.Rules[ri];
                var rpath = $"{path}.rules[{ri}]";
                if (!seenIds.Add(rule.Id))
                {
                    problems.Add(new($"{rpath}.id", $"rule id {rule.Id} is used twice"));
                }

                rules[ri] = new CompiledRule(rule.Id, rule.Action, rule.Log, ruleIds.Count);
                ruleIds.Add(rule.Id);
                var sources = Addresses(rule.Sources, rule.SourceSets, $"{rpath}.sources", $"{rpath}.sourceSets");
                var destinations = Addresses(rule.Destinations, rule.DestinationSets, $"{rpath}.destinations", $"{rpath}.destinationSets");
                var protocol = ParseProtocol(rule.Protocol, $"{rpath}.protocol");
                var sports = Ports(rule.SourcePorts, $"{rpath}.sourcePorts", protocol);
                var dports = Ports(rule.DestinationPorts, $"{rpath}.destinationPorts", protocol);
                if (rule.IcmpType is { } icmpType)
                {
                    if (protocol != IpProtocol.Icmp)
                    {
                        problems.Add(new($"{rpath}.icmpType", "an ICMP type needs protocol icmp"));
                    }
                    else if (icmpType is < 0 or > 255)
                    {
                        problems.Add(new($"{rpath}.icmpType", $"ICMP type {icmpType} is outside 0-255"));
                    }
                    else
                    {
                        dports = [((ushort)icmpType, (ushort)icmpType)];
                    }
                }

                if ((rule.States & ConnectionStates.Any) == 0 || (rule.States & ~ConnectionStates.Any) != 0)
                {
                    problems.Add(new($"{rpath}.states", "name at least one of new, established, related, invalid"));
                }

                foreach (var (sn, sl) in sources)
                {
                    foreach (var (dn, dl) in destinations)
                    {
                        foreach (var (spl, sph) in sports)
                        {
                            foreach (var (dpl, dph) in dports)
                            {
                                atoms.Add(new RuleAtom(ri, sn, sl, dn, dl, protocol, spl, sph, dpl, dph, rule.States));
                            }
                        }
                    }
                }
            }

            if (from >= 0 && to >= 0)
            {
                pairPolicy[(from * zc) + to] = policies.Count;
            }

            policies.Add(new CompiledPolicy
            {
                From = policy.From,
                To = policy.To,
                Classifier = new TupleSpaceClassifier(atoms),
                Rules = rules,
                DefaultAction = policy.DefaultAction,
            });
        }

        var ct = fw.Conntrack;
        CheckPositive(problems, "firewall.conntrack.maxSessions", ct.MaxSessions);
        if (ct.MaxSessions > 1 << 24)
        {
            problems.Add(new("firewall.conntrack.maxSessions", $"{ct.MaxSessions} sessions per worker is more than 16M (about 68 bytes each)"));
        }

        foreach (var (name, value) in new[]
        {
            ("tcpSynSentSeconds", ct.TcpSynSentSeconds), ("tcpSynRecvSeconds", ct.TcpSynRecvSeconds), ("tcpEstablishedSeconds", ct.TcpEstablishedSeconds),
            ("tcpFinWaitSeconds", ct.TcpFinWaitSeconds), ("tcpCloseWaitSeconds", ct.TcpCloseWaitSeconds), ("tcpTimeWaitSeconds", ct.TcpTimeWaitSeconds),
            ("tcpCloseSeconds", ct.TcpCloseSeconds), ("udpUnrepliedSeconds", ct.UdpUnrepliedSeconds), ("udpAssuredSeconds", ct.UdpAssuredSeconds),
            ("icmpSeconds", ct.IcmpSeconds), ("genericSeconds", ct.GenericSeconds),
        })
        {
            CheckPositive(problems, $"firewall.conntrack.{name}", value);
        }

        if (fw.LogRatePerSecond < 0)
        {
            problems.Add(new("firewall.logRatePerSecond", "must be 0 (no log) or positive"));
        }

        // NAT.
        var dnat = new List<DnatRule>();
        var dnatIndex = new Dictionary<ulong, int>();
        for (var i = 0; i < nat.Dnat.Count; i++)
        {
            var rule = nat.Dnat[i];
            var path = $"nat.dnat[{i}]";
            var zone = rule.IngressZone is null ? -1 : ZoneRef(rule.IngressZone, $"{path}.ingressZone");
            var dst = Address(rule.Destination, $"{path}.destination");
            var to = Address(rule.ToAddress, $"{path}.toAddress");
            var hairpin = rule.HairpinAddress is null ? 0u : Address(rule.HairpinAddress, $"{path}.hairpinAddress");
            if (rule.Hairpin && hairpin == 0 && gatewayAddress.All(a => a == 0))
            {
                problems.Add(new($"{path}.hairpin", "hairpin translates to the gateway address, and no gateway has an IPv4 address: set hairpinAddress or hairpin: false"));
            }

            var protocol = rule.Protocol switch
            {
                "tcp" => IpProtocol.Tcp,
                "udp" => IpProtocol.Udp,
                "icmp" => IpProtocol.Icmp,
                _ => Fail<byte>($"{path}.protocol", $"'{rule.Protocol}' is not tcp, udp or icmp"),
            };
            if (rule.Port is { } port && (port is < 1 or > 65535 || protocol == IpProtocol.Icmp))
            {
                problems.Add(new($"{path}.port", protocol == IpProtocol.Icmp ? "ICMP has no ports" : $"port {port} is outside 1-65535"));
            }

            if (rule.ToPort is { } toPort && (toPort is < 1 or > 65535 || protocol == IpProtocol.Icmp))
            {
                problems.Add(new($"{path}.toPort", protocol == IpProtocol.Icmp ? "ICMP has no ports" : $"port {toPort} is outside 1-65535"));
            }

            var key = FirewallTables.DnatKey(dst, protocol, (ushort)(rule.Port ?? 0));
            if (!dnatIndex.TryAdd(key, dnat.Count))
            {
                problems.Add(new(path, $"{rule.Destination} {rule.Protocol} port {rule.Port?.ToString(CultureInfo.InvariantCulture) ?? "any"} is forwarded twice"));
            }

            dnat.Add(new DnatRule(zone, to, (ushort)(rule.ToPort ?? 0), rule.Hairpin ? HairpinRule(hairpin, $"dnat[{i}] hairpin") : null, $"dnat[{i}]"));
        }

        var staticOut = new Dictionary<uint, uint>();
        for (var i = 0; i < nat.Static.Count; i++)
        {
            var rule = nat.Static[i];
            var path = $"nat.static[{i}]";
            var ext = Address(rule.External, $"{path}.external");
            var inside = Address(rule.Internal, $"{path}.internal");
            var zone = rule.IngressZone is null ? -1 : ZoneRef(rule.IngressZone, $"{path}.ingressZone");
            var hairpin = rule.HairpinAddress is null ? 0u : Address(rule.HairpinAddress, $"{path}.hairpinAddress");
            if (!dnatIndex.TryAdd(FirewallTables.DnatKey(ext, 0, 0), dnat.Count))
            {
                problems.Add(new($"{path}.external", $"{rule.External} is the external address of another 1:1 rule"));
            }

            if (!staticOut.TryAdd(inside, ext))
            {
                problems.Add(new($"{path}.internal", $"{rule.Internal} already has a 1:1 external address"));
            }

            dnat.Add(new DnatRule(zone, inside, 0, rule.Hairpin ? HairpinRule(hairpin, $"static[{i}] hairpin") : null, $"static[{i}]"));
        }

        var snat = new List<SnatRule>();
        for (var i = 0; i < nat.Snat.Count; i++)
        {
            var rule = nat.Snat[i];
            var path = $"nat.snat[{i}]";
            var zone = rule.EgressZone is null ? -1 : ZoneRef(rule.EgressZone, $"{path}.egressZone");
            var domain = -1;
            if (rule.EgressDomain is not null)
            {
                if (domainByName.TryGetValue(rule.EgressDomain, out var dom))
                {
                    domain = dom.Index;
                }
                else
                {
                    problems.Add(new($"{path}.egressDomain", $"no bridge domain named '{rule.EgressDomain}'"));
                }
            }

            if (rule.EgressZone is null && rule.EgressDomain is null)
            {
                problems.Add(new(path, "name the egressZone or egressDomain the rule translates traffic leaving through"));
            }

            var sources = new List<(uint, uint)>();
            for (var k = 0; k < rule.Sources.Count; k++)
            {
                if (TryParsePrefix(rule.Sources[k], out var net, out var len))
                {
                    sources.Add((net & RuleAtom.Mask(len), RuleAtom.Mask(len)));
                }
                else
                {
                    problems.Add(new($"{path}.sources[{k}]", $"'{rule.Sources[k]}' is not an IPv4 prefix"));
                }
            }

            var pool = new List<uint>();
            for (var k = 0; k < rule.ToAddresses.Count; k++)
            {
                pool.Add(Address(rule.ToAddresses[k], $"{path}.toAddresses[{k}]"));
            }

            if (pool.Count == 0 && (domain >= 0 ? gatewayAddress[domain] == 0 : gatewayAddress.All(a => a == 0)))
            {
                problems.Add(new($"{path}.toAddresses", "masquerade needs a gateway with an IPv4 address in the egress domain; configure one or list toAddresses"));
            }

            if (!TryParseRange(rule.Ports, out var low, out var high) || low == 0)
            {
                problems.Add(new($"{path}.ports", $"'{rule.Ports}' is not a port range such as 1024-65535"));
            }

            snat.Add(new SnatRule(zone, domain, [.. sources], [.. pool], low, high, rule.EndpointIndependent, $"snat[{i}]"));
        }

        var natAddresses = new HashSet<uint>();
        foreach (var rule in snat)
        {
            natAddresses.UnionWith(rule.Pool);
        }

        foreach (var (key, _) in dnatIndex)
        {
            natAddresses.Add((uint)(key >> 32));
        }

        foreach (var rule in dnat)
        {
            if (rule.Hairpin is { Masquerade: false } hairpinRule)
            {
                natAddresses.UnionWith(hairpinRule.Pool);
            }
        }

        // VIPs: the gateway answers ARP for them and hands their packets to conntrack and the lb stage.
        foreach (var vs in program.LoadBalancer.VirtualServers)
        {
            if (Ipv4Address.TryParse(vs.Address, out var vip))
            {
                natAddresses.Add(vip.Value);
            }
        }

        natAddresses.ExceptWith(gatewayAddress);
        natAddresses.Remove(0);

        var filtering = fw.Zones.Count > 0 || fw.Policies.Count > 0;
        return new FirewallTables
        {
            Filtering = filtering,
            Tracking = filtering || fw.L2Filter || dnat.Count > 0 || snat.Count > 0 || program.LoadBalancer.VirtualServers.Count > 0,
            L2Filter = fw.L2Filter,
            AllowIpv6BetweenZones = fw.AllowIpv6BetweenZones,
            LogRatePerSecond = fw.LogRatePerSecond,
            ZoneNames = [.. zoneNames],
            ZoneOfSegment = zoneOfSegment,
            ZoneOfDomain = zoneOfDomain,
            PairPolicy = pairPolicy,
            Policies = [.. policies],
            RuleIds = [.. ruleIds],
            Timeouts = ConntrackTimeouts.From(ct),
            MaxSessions = Math.Max(ct.MaxSessions, 1),
            Dnat = [.. dnat],
            DnatIndex = dnatIndex.ToFrozenDictionary(),
            Snat = [.. snat],
            StaticOutbound = staticOut.ToFrozenDictionary(),
            GatewayAddress = gatewayAddress,
            NatAddresses = natAddresses.ToFrozenSet(),
        };

        void Claim(int segment, int zone, string path, string name)
        {
            if (zoneOfSegment[segment] >= 0 && zoneOfSegment[segment] != zone)
            {
                problems.Add(new(path, $"segment {name} is already in zone '{zoneNames[zoneOfSegment[segment]]}'"));
                return;
            }

            zoneOfSegment[segment] = zone;
        }

        int ZoneRef(string name, string path)
        {
            if (name == Unzoned)
            {
                return unzoned;
            }

            if (zoneIndex.TryGetValue(name, out var z))
            {
                return z;
            }

            problems.Add(new(path, $"no zone named '{name}'"));
            return -1;
        }

        uint Address(string text, string path)
        {
            if (Ipv4Address.TryParse(text, out var a))
            {
                return a.Value;
            }

            problems.Add(new(path, $"'{text}' is not an IPv4 address"));
            return 0;
        }

        T Fail<T>(string path, string message)
        {
            problems.Add(new(path, message));
            return default!;
        }

        List<(uint, int)> Addresses(IReadOnlyList<string> prefixes, IReadOnlyList<string> setNames, string path, string setPath)
        {
            var list = new List<(uint, int)>();
            for (var k = 0; k < prefixes.Count; k++)
            {
                if (TryParsePrefix(prefixes[k], out var net, out var len))
                {
                    list.Add((net, len));
                }
                else
                {
                    problems.Add(new($"{path}[{k}]", $"'{prefixes[k]}' is not a prefix (IPv4 address or a.b.c.d/0-32)"));
                }
            }

            for (var k = 0; k < setNames.Count; k++)
            {
                if (sets.TryGetValue(setNames[k], out var members))
                {
                    list.AddRange(members);
                }
                else
                {
                    problems.Add(new($"{setPath}[{k}]", $"no address set named '{setNames[k]}'"));
                }
            }

            if (list.Count == 0 && prefixes.Count == 0 && setNames.Count == 0)
            {
                list.Add((0, 0));
            }

            return list;
        }

        int ParseProtocol(string text, string path)
        {
            switch (text)
            {
                case "any" or "":
                    return -1;
                case "tcp":
                    return IpProtocol.Tcp;
                case "udp":
                    return IpProtocol.Udp;
                case "icmp":
                    return IpProtocol.Icmp;
            }

            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 0 and <= 255)
            {
                return n;
            }

            problems.Add(new(path, $"'{text}' is not any, tcp, udp, icmp or a protocol number 0-255"));
            return -1;
        }

        List<(ushort, ushort)> Ports(IReadOnlyList<string> ranges, string path, int protocol)
        {
            var list = new List<(ushort, ushort)>();
            for (var k = 0; k < ranges.Count; k++)
            {
                if (TryParseRange(ranges[k], out var low, out var high))
                {
                    list.Add((low, high));
                }
                else
                {
                    problems.Add(new($"{path}[{k}]", $"'{ranges[k]}' is not a port or a range such as 1000-2000"));
                }
            }

            if (ranges.Count > 0 && protocol != IpProtocol.Tcp && protocol != IpProtocol.Udp)
            {
                problems.Add(new(path, "ports need protocol tcp or udp"));
            }

            if (list.Count == 0)
            {
                list.Add((0, ushort.MaxValue));
            }

            return list;
        }
    }

    /// <summary>Hairpin: the given address, or (none given) masquerade to the server domain's gateway.</summary>
    private static SnatRule HairpinRule(uint address, string description) =>
        new(-1, -1, [], address == 0 ? [] : [address], 1024, 65535, false, description);

    /// <summary>"10.0.0.0/8" or "10.0.0.1" (a /32). Host bits must be zero.</summary>
    internal static bool TryParsePrefix(string text, out uint network, out int length)
    {
        network = 0;
        length = 32;
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? text.AsSpan() : text.AsSpan(0, slash);
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > 32))
        {
            return false;
        }

        if (!Ipv4Address.TryParse(addressText, out var address))
        {
            return false;
        }

        network = address.Value;
        return (network & ~RuleAtom.Mask(length)) == 0;
    }

    internal static bool TryParseRange(string text, out ushort low, out ushort high)
    {
        low = high = 0;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        var lowText = dash < 0 ? text.AsSpan() : text.AsSpan(0, dash);
        var highText = dash < 0 ? text.AsSpan() : text.AsSpan(dash + 1);
        return ushort.TryParse(lowText, NumberStyles.None, CultureInfo.InvariantCulture, out low)
            && ushort.TryParse(highText, NumberStyles.None, CultureInfo.InvariantCulture, out high)
            && low <= high;
    }
}
