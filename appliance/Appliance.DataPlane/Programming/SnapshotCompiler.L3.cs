using System.Collections.Frozen;
using System.Globalization;
using Isthmus.DataPlane.Route;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Programming;

public static partial class SnapshotCompiler
{
    /// <summary>Validates gateways and routes and builds the L3 tables; sets <see cref="Domain.GatewayMac"/>.</summary>
    private static L3Tables CompileL3(DataPlaneProgram program, Segment[] segments, Domain[] domains, List<ProgramError> problems)
    {
        if (program.Gateways.Count == 0 && program.Routes.Count == 0)
        {
            return L3Tables.Empty;
        }

        var byName = new Dictionary<string, Domain>(StringComparer.Ordinal);
        foreach (var d in domains)
        {
            byName.TryAdd(d.Name, d);
        }

        var gateways = new GatewayInterface?[domains.Length];
        var gatewayPath = new string?[domains.Length];
        var local4 = new Dictionary<uint, int>();
        var local6 = new Dictionary<Ipv6Address, int>();
        var macs = new Dictionary<ulong, string>();
        var connected = new List<Connected>();

        for (var g = 0; g < program.Gateways.Count; g++)
        {
            var spec = program.Gateways[g];
            var path = $"gateways[{g}]";
            if (spec.Domain is null || !byName.TryGetValue(spec.Domain, out var domain))
            {
                problems.Add(new($"{path}.domain", $"no bridge domain named '{spec.Domain}'"));
                continue;
            }

            if (gatewayPath[domain.Index] is { } other)
            {
                problems.Add(new($"{path}.domain", $"bridge domain '{domain.Name}' already has a gateway ({other}); give it more addresses instead"));
                continue;
            }

            gatewayPath[domain.Index] = path;
            var mac = new MacAddress(0x02_15_7e_00_00_00UL | (uint)domain.Index);
            if (spec.Mac is not null && (!MacAddress.TryParse(spec.Mac, out mac) || !mac.IsUnicast || mac.IsZero))
            {
                problems.Add(new($"{path}.mac", $"'{spec.Mac}' is not a unicast MAC address (aa:bb:cc:dd:ee:ff)"));
            }
            else if (!macs.TryAdd(mac.Value, path))
            {
                problems.Add(new($"{path}.mac", $"MAC {mac} is already the gateway MAC of {macs[mac.Value]}"));
            }

            var v4 = new List<InterfaceAddress>();
            var v6 = new List<InterfaceAddress>();
            for (var a = 0; a < spec.Addresses.Count; a++)
            {
                var aPath = $"{path}.addresses[{a}]";
                var text = spec.Addresses[a];
                if (!TryParsePrefix(text, out var isV6, out var hi, out var lo, out var length))
                {
                    problems.Add(new(aPath, $"'{text}' is not an IPv4 or IPv6 prefix (such as 10.10.0.1/24 or fd00:10::1/64)"));
                    continue;
                }

                if (!CheckInterfaceAddress(text, isV6, hi, lo, length, aPath, problems))
                {
                    continue;
                }

                var duplicate = isV6 ? !local6.TryAdd(new Ipv6Address(hi, lo), domain.Index) : !local4.TryAdd((uint)lo, domain.Index);
                if (duplicate)
                {
                    problems.Add(new(aPath, $"address {AddressText(isV6, hi, lo)} is configured twice"));
                    continue;
                }

                var (nh, nl) = isV6 ? LpmTable.Mask128(hi, lo, length) : (0UL, LpmTable.Mask32(lo, length));
                var overlap = connected.Find(c => c.IsV6 == isV6 && Covers(c, nh, nl, length, isV6));
                if (overlap is not null)
                {
                    problems.Add(new(aPath, $"subnet {PrefixText(isV6, nh, nl, length)} overlaps {PrefixText(isV6, overlap.Hi, overlap.Lo, overlap.Length)} of {overlap.Path}"));
                    continue;
                }

                connected.Add(new Connected(isV6, nh, nl, length, domain.Index, aPath));
                (isV6 ? v6 : v4).Add(new InterfaceAddress(hi, lo, (byte)length));
            }

            if (spec.MssClamp is { } clamp && clamp is < 536 or > 65495)
            {
                problems.Add(new($"{path}.mssClamp", $"MSS {clamp} is outside 536-65495 (1410 suits IPv4 over VXLAN on a 1500-byte underlay)"));
            }

            var bindings4 = new Dictionary<uint, ulong>();
            var bindings6 = new Dictionary<Ipv6Address, ulong>();
            for (var b = 0; b < spec.Bindings.Count; b++)
            {
                var binding = spec.Bindings[b];
                var bPath = $"{path}.bindings[{b}]";
                if (!MacAddress.TryParse(binding.Mac ?? "", out var bindingMac) || !bindingMac.IsUnicast || bindingMac.IsZero)
                {
                    problems.Add(new($"{bPath}.mac", $"'{binding.Mac}' is not a unicast MAC address (aa:bb:cc:dd:ee:ff)"));
                    continue;
                }

                if (Ipv4Address.TryParse(binding.Ip ?? "", out var ip4))
                {
                    if (!bindings4.TryAdd(ip4.Value, bindingMac.Value))
                    {
                        problems.Add(new($"{bPath}.ip", $"{ip4} is bound twice"));
                    }
                    else if (!v4.Exists(x => LpmTable.Mask32(x.Lo, x.Length) == LpmTable.Mask32(ip4.Value, x.Length)))
                    {
                        problems.Add(new($"{bPath}.ip", $"{ip4} is not on a subnet of this gateway"));
                    }
                }
                else if (Ipv6Address.TryParse(binding.Ip ?? "", out var ip6))
                {
                    if (!bindings6.TryAdd(ip6, bindingMac.Value))
                    {
                        problems.Add(new($"{bPath}.ip", $"{ip6} is bound twice"));
                    }
                }
                else
                {
                    problems.Add(new($"{bPath}.ip", $"'{binding.Ip}' is not an IPv4 or IPv6 address"));
                }
            }

            var mtu = int.MaxValue;
            foreach (var s in domain.Segments)
            {
                if (s >= 0)
                {
                    mtu = Math.Min(mtu, segments[s].Mtu);
                }
            }

            gateways[domain.Index] = new GatewayInterface
            {
                Domain = domain.Index,
                DomainName = domain.Name,
                Mac = mac,
                Ipv4 = [.. v4],
                Ipv6 = [.. v6],
                MssClamp = (ushort)Math.Clamp(spec.MssClamp ?? 0, 0, 65535),
                AntiSpoofing = spec.AntiSpoofing,
                ProxyArp = spec.ProxyArp,
                Bindings4 = bindings4.ToFrozenDictionary(),
                Bindings6 = bindings6.ToFrozenDictionary(),
                Mtu = mtu == int.MaxValue ? 1500 : mtu,
            };
        }

        var prefixes4 = new List<(ulong, ulong, int, int)>();
        var prefixes6 = new List<(ulong, ulong, int, int)>();
        var routes4 = new List<FibEntry>();
        var routes6 = new List<FibEntry>();
        var seen = new Dictionary<(bool, ulong, ulong, int), string>();
        foreach (var c in connected)
        {
            seen[(c.IsV6, c.Hi, c.Lo, c.Length)] = $"a connected subnet of {domains[c.Domain].Name}";
            var entry = new FibEntry
            {
                Prefix = PrefixText(c.IsV6, c.Hi, c.Lo, c.Length),
                Kind = RouteKind.Connected,
                Length = (byte)c.Length,
                Domain = c.Domain,
                NextHopText = $"connected in {domains[c.Domain].Name}",
            };
            Add(c.IsV6, c.Hi, c.Lo, c.Length, entry);
        }

        for (var r = 0; r < program.Routes.Count; r++)
        {
            var route = program.Routes[r];
            var path = $"routes[{r}]";
            if (!TryParsePrefix(route.Prefix ?? "", out var isV6, out var hi, out var lo, out var length))
            {
                problems.Add(new($"{path}.prefix", $"'{route.Prefix}' is not an IPv4 or IPv6 prefix (such as 0.0.0.0/0 or 2001:db8::/32)"));
                continue;
            }

            var (mh, ml) = isV6 ? LpmTable.Mask128(hi, lo, length) : (0UL, LpmTable.Mask32(lo, length));
            if (mh != hi || ml != lo)
            {
                problems.Add(new($"{path}.prefix", $"'{route.Prefix}' has host bits set (did you mean {PrefixText(isV6, mh, ml, length)}?)"));
                continue;
            }

            if (seen.TryGetValue((isV6, hi, lo, length), out var where))
            {
                problems.Add(new($"{path}.prefix", $"{PrefixText(isV6, hi, lo, length)} is already {where}"));
                continue;
            }

            Domain? wanted = null;
            if (route.Domain is not null && !byName.TryGetValue(route.Domain, out wanted))
            {
                problems.Add(new($"{path}.domain", $"no bridge domain named '{route.Domain}'"));
                continue;
            }

            if (wanted is not null && gateways[wanted.Index] is null)
            {
                problems.Add(new($"{path}.domain", $"bridge domain '{wanted.Name}' has no gateway, so nothing can be routed into it"));
                continue;
            }

            ulong nhHi = 0, nhLo;
            bool nhV6;
            if (Ipv4Address.TryParse(route.NextHop ?? "", out var nh4))
            {
                nhV6 = false;
                nhLo = nh4.Value;
            }
            else if (Ipv6Address.TryParse(route.NextHop ?? "", out var nh6))
            {
                nhV6 = true;
                nhHi = nh6.High;
                nhLo = nh6.Low;
            }
            else
            {
                problems.Add(new($"{path}.nextHop", $"'{route.NextHop}' is not an IPv4 or IPv6 address"));
                continue;
            }

            if (nhV6 != isV6)
            {
                problems.Add(new($"{path}.nextHop", $"next hop {route.NextHop} is {(nhV6 ? "IPv6" : "IPv4")} but the prefix is {(isV6 ? "IPv6" : "IPv4")}"));
                continue;
            }

            if (isV6 ? local6.ContainsKey(new Ipv6Address(nhHi, nhLo)) : local4.ContainsKey((uint)nhLo))
            {
                problems.Add(new($"{path}.nextHop", $"next hop {route.NextHop} is the appliance's own address"));
                continue;
            }

            var onLink = connected.Find(c => c.IsV6 == isV6 && (wanted is null || c.Domain == wanted.Index) && Covers(c, nhHi, nhLo, c.Length, isV6));
            if (onLink is null)
            {
                problems.Add(new($"{path}.nextHop", wanted is null
                    ? $"next hop {route.NextHop} is not on any connected subnet (add a gateway address in its subnet)"
                    : $"next hop {route.NextHop} is not on a connected subnet of '{wanted.Name}'"));
                continue;
            }

            seen[(isV6, hi, lo, length)] = path;
            Add(isV6, hi, lo, length, new FibEntry
            {
                Prefix = PrefixText(isV6, hi, lo, length),
                Kind = RouteKind.Static,
                Length = (byte)length,
                Domain = onLink.Domain,
                NextHopHi = nhHi,
                NextHopLo = nhLo,
                NextHopText = $"via {AddressText(isV6, nhHi, nhLo)} in {domains[onLink.Domain].Name}",
            });
        }

        foreach (var gateway in gateways)
        {
            if (gateway is not null)
            {
                domains[gateway.Domain].GatewayMac = gateway.Mac.Value;
            }
        }

        return new L3Tables
        {
            Gateways = gateways,
            LocalIpv4 = local4.ToFrozenDictionary(),
            LocalIpv6 = local6.ToFrozenDictionary(),
            Fib4 = new LpmTable(32, prefixes4),
            Routes4 = [.. routes4],
            Fib6 = new LpmTable(128, prefixes6),
            Routes6 = [.. routes6],
        };

        void Add(bool v6, ulong h, ulong l, int len, FibEntry entry)
        {
            if (v6)
            {
                prefixes6.Add((h, l, len, routes6.Count));
                routes6.Add(entry);
            }
            else
            {
                prefixes4.Add((h, l, len, routes4.Count));
                routes4.Add(entry);
            }
        }
    }

    /// <summary>A connected subnet and where it was configured.</summary>
    private sealed record Connected(bool IsV6, ulong Hi, ulong Lo, int Length, int Domain, string Path);

    /// <summary>True when the two prefixes overlap (either covers the other) or <paramref name="length"/>-masked address falls in <paramref name="c"/>.</summary>
    private static bool Covers(Connected c, ulong hi, ulong lo, int length, bool v6)
    {
        var shortest = Math.Min(c.Length, length);
        return v6
            ? LpmTable.Mask128(c.Hi, c.Lo, shortest) == LpmTable.Mask128(hi, lo, shortest)
            : LpmTable.Mask32(c.Lo, shortest) == LpmTable.Mask32(lo, shortest);
    }

    private static bool CheckInterfaceAddress(string text, bool v6, ulong hi, ulong lo, int length, string path, List<ProgramError> problems)
    {
        if (v6)
        {
            var address = new Ipv6Address(hi, lo);
            if (address.IsAny || address.IsMulticast || address.IsLinkLocal || length == 0)
            {
                problems.Add(new(path, $"'{text}' is not a usable interface address (unicast, not link-local, prefix length 1-128)"));
                return false;
            }

            return true;
        }

        var v4 = new Ipv4Address((uint)lo);
        if (v4.IsAny || v4.IsMulticast || v4.IsBroadcast || v4.IsLoopback || length == 0)
        {
            problems.Add(new(path, $"'{text}' is not a usable interface address (unicast, prefix length 1-32)"));
            return false;
        }

        if (length <= 30)
        {
            var host = lo & ~LpmTable.Mask32(ulong.MaxValue, length) & 0xFFFF_FFFFUL;
            var hostMask = 0xFFFF_FFFFUL >> length;
            if (host == 0 || host == hostMask)
            {
                problems.Add(new(path, $"'{text}' is the {(host == 0 ? "network" : "broadcast")} address of its subnet; give the gateway's own address, such as {new Ipv4Address((uint)(LpmTable.Mask32(lo, length) + 1))}/{length}"));
                return false;
            }
        }

        return true;
    }

    /// <summary>Parses "a.b.c.d/n" or "x::y/n" (the prefix length is required). IPv4 lands in the low 32 bits of <paramref name="lo"/>.</summary>
    internal static bool TryParsePrefix(string text, out bool v6, out ulong hi, out ulong lo, out int length)
    {
        v6 = false;
        hi = lo = 0;
        length = 0;
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length))
        {
            return false;
        }

        var address = text.AsSpan(0, slash);
        if (Ipv4Address.TryParse(address, out var v4))
        {
            lo = v4.Value;
            return length <= 32;
        }

        if (Ipv6Address.TryParse(address, out var a6))
        {
            v6 = true;
            hi = a6.High;
            lo = a6.Low;
            return length <= 128;
        }

        return false;
    }

    private static string AddressText(bool v6, ulong hi, ulong lo) => v6 ? new Ipv6Address(hi, lo).ToString() : new Ipv4Address((uint)lo).ToString();

    private static string PrefixText(bool v6, ulong hi, ulong lo, int length) => $"{AddressText(v6, hi, lo)}/{length}";
}
