using System.Collections.Frozen;
using Isthmus.DataPlane.Io;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Programming;

/// <summary>One validation error: where in the program, and what a network engineer should fix.</summary>
public sealed record ProgramError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>Thrown only by <see cref="SnapshotCompiler.Compile"/> callers that prefer exceptions.</summary>
public sealed class ProgramValidationException(IReadOnlyList<ProgramError> errors)
    : Exception("Invalid data-plane program:" + Environment.NewLine + string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<ProgramError> Errors { get; } = errors;
}

/// <summary>
/// Validates a whole <see cref="DataPlaneProgram"/> (every error at once, with its path) and
/// compiles it into a <see cref="DataPlaneSnapshot"/>. Nothing is published unless all of it is valid.
/// </summary>
public static partial class SnapshotCompiler
{
    public const int MaxVlan = 4094;

    public static IReadOnlyList<ProgramError> Validate(DataPlaneProgram program)
    {
        TryCompile(program, 0, TimeSpan.TicksPerSecond, out _, out var errors);
        return errors;
    }

    public static DataPlaneSnapshot Compile(DataPlaneProgram program, long version, long ticksPerSecond)
    {
        return TryCompile(program, version, ticksPerSecond, out var snapshot, out var errors)
            ? snapshot!
            : throw new ProgramValidationException(errors);
    }

    public static bool TryCompile(
        DataPlaneProgram program,
        long version,
        long ticksPerSecond,
        out DataPlaneSnapshot? snapshot,
        out IReadOnlyList<ProgramError> errors)
    {
        var problems = new List<ProgramError>();
        var portIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < program.Ports.Count; i++)
        {
            var port = program.Ports[i];
            var path = $"ports[{i}]";
            if (string.IsNullOrWhiteSpace(port.Name))
            {
                problems.Add(new($"{path}.name", "a port needs a name"));
            }
            else if (!portIndex.TryAdd(port.Name, i))
            {
                problems.Add(new($"{path}.name", $"port name '{port.Name}' is used twice"));
            }

            if (port.Kind == PortSpecKind.Vxlan)
            {
                if (port.LocalAddress is null || !Ipv4Address.TryParse(port.LocalAddress, out _))
                {
                    problems.Add(new($"{path}.localAddress", "a VXLAN port needs the underlay IPv4 address to bind, such as 192.0.2.1"));
                }

                if (port.UdpPort is < 1 or > 65535)
                {
                    problems.Add(new($"{path}.udpPort", $"UDP port {port.UdpPort} is out of range (VXLAN uses 4789; old Linux default 8472)"));
                }
            }
            else if (string.IsNullOrWhiteSpace(port.Interface))
            {
                problems.Add(new($"{path}.interface", $"a {port.Kind.ToString().ToLowerInvariant()} port needs the Linux interface it runs on"));
            }
        }

        var vlanSegments = new int[program.Ports.Count][];
        var vniSegments = new Dictionary<uint, int>[program.Ports.Count];
        var knownVteps = new HashSet<uint>[program.Ports.Count];
        var accessSegments = new int[program.Ports.Count];
        Array.Fill(accessSegments, -1);
        var segments = new List<Segment>();
        var domains = new List<Domain>();
        var domainNames = new HashSet<string>(StringComparer.Ordinal);

        for (var d = 0; d < program.BridgeDomains.Count; d++)
        {
            var spec = program.BridgeDomains[d];
            var path = $"bridgeDomains[{d}]";
            if (string.IsNullOrWhiteSpace(spec.Name))
            {
                problems.Add(new($"{path}.name", "a bridge domain needs a name"));
            }
            else if (!domainNames.Add(spec.Name))
            {
                problems.Add(new($"{path}.name", $"bridge domain name '{spec.Name}' is used twice"));
            }

            CheckPositive(problems, $"{path}.macAgingSeconds", spec.MacAgingSeconds);
            CheckPositive(problems, $"{path}.maxMacs", spec.MaxMacs);
            CheckPositive(problems, $"{path}.macFlapMoves", spec.MacFlapMoves);
            CheckPositive(problems, $"{path}.macFlapWindowSeconds", spec.MacFlapWindowSeconds);
            CheckPositive(problems, $"{path}.macFlapHoldSeconds", spec.MacFlapHoldSeconds);
            if (spec.StormControlPps < 0)
            {
                problems.Add(new($"{path}.stormControlPps", "must be 0 (no limit) or a positive rate"));
            }

            var members = new int[spec.Segments.Count];
            for (var s = 0; s < spec.Segments.Count; s++)
            {
                var seg = spec.Segments[s];
                var segPath = $"{path}.segments[{s}]";
                members[s] = segments.Count;
                if (!portIndex.TryGetValue(seg.Port, out var p))
                {
                    problems.Add(new($"{segPath}.port", $"no port named '{seg.Port}'"));
                    continue;
                }

                var port = program.Ports[p];
                if (seg.Mtu is < 576 or > PacketPoolLimits.MaxMtu)
                {
                    problems.Add(new($"{segPath}.mtu", $"MTU {seg.Mtu} is outside 576-{PacketPoolLimits.MaxMtu}"));
                }

                var segment = port.Kind switch
                {
                    PortSpecKind.Access => AccessSegment(seg, segPath, p, d, port, accessSegments, segments.Count, problems),
                    PortSpecKind.Trunk => TrunkSegment(seg, segPath, p, d, port, vlanSegments, segments.Count, problems),
                    _ => VxlanSegment(seg, segPath, p, d, port, vniSegments, knownVteps, segments.Count, problems),
                };
                if (segment is not null)
                {
                    segments.Add(segment);
                }
                else
                {
                    members[s] = -1;
                }
            }

            var statics = new List<StaticMac>();
            for (var m = 0; m < spec.StaticMacs.Count; m++)
            {
                var st = spec.StaticMacs[m];
                var mPath = $"{path}.staticMacs[{m}]";
                if (!MacAddress.TryParse(st.Mac, out var mac) || !mac.IsUnicast || mac.IsZero)
                {
                    problems.Add(new($"{mPath}.mac", $"'{st.Mac}' is not a unicast MAC address (aa:bb:cc:dd:ee:ff)"));
                }

                if (st.Segment < 0 || st.Segment >= members.Length)
                {
                    problems.Add(new($"{mPath}.segment", $"segment {st.Segment} does not exist in this domain (0-{members.Length - 1})"));
                    continue;
                }

                var vtep = Ipv4Address.Any;
                if (st.Vtep is not null && !Ipv4Address.TryParse(st.Vtep, out vtep))
                {
                    problems.Add(new($"{mPath}.vtep", $"'{st.Vtep}' is not an IPv4 address"));
                }

                statics.Add(new StaticMac(mac, members[st.Segment], vtep.Value));
            }

            domains.Add(new Domain
            {
                Index = d,
                Name = spec.Name,
                Segments = members,
                MacAgingTicks = spec.MacAgingSeconds * ticksPerSecond,
                MaxMacs = spec.MaxMacs,
                StormControlPps = spec.StormControlPps,
                MacFlapMoves = spec.MacFlapMoves,
                MacFlapWindowTicks = spec.MacFlapWindowSeconds * ticksPerSecond,
                MacFlapHoldTicks = spec.MacFlapHoldSeconds * ticksPerSecond,
                StaticMacs = [.. statics],
            });
        }

        var compiledSegments = segments.ToArray();
        var compiledDomains = domains.ToArray();
        var l3 = CompileL3(program, compiledSegments, compiledDomains, problems);
        var firewall = CompileFirewall(program, compiledSegments, compiledDomains, l3, ticksPerSecond, problems);
        var loadBalancer = CompileLoadBalancer(program, firewall, l3, down: null, problems);

        errors = problems;
        if (problems.Count > 0)
        {
            snapshot = null;
            return false;
        }

        var ports = new PortBinding[program.Ports.Count];
        for (var i = 0; i < ports.Length; i++)
        {
            var spec = program.Ports[i];
            ports[i] = new PortBinding
            {
                Name = spec.Name,
                Kind = spec.Kind switch { PortSpecKind.Vxlan => PortKind.Vxlan, PortSpecKind.Trunk => PortKind.Trunk, _ => PortKind.Access },
                AccessSegment = accessSegments[i],
                VlanSegments = vlanSegments[i] ?? [],
                VniSegments = (vniSegments[i] ?? []).ToFrozenDictionary(),
                KnownVteps = (knownVteps[i] ?? []).ToFrozenSet(),
            };
        }

        snapshot = new DataPlaneSnapshot(version, program, ports, compiledSegments, compiledDomains) { L3 = l3, Firewall = firewall, LoadBalancer = loadBalancer };
        return true;
    }

    private static Segment? AccessSegment(SegmentSpec seg, string path, int p, int d, PortSpec port, int[] accessSegments, int index, List<ProgramError> problems)
    {
        if (seg.Vni is not null || seg.Vlan is not null)
        {
            problems.Add(new(path, $"'{port.Name}' is an access port: it carries one untagged segment, so give neither vlan nor vni"));
            return null;
        }

        if (accessSegments[p] >= 0)
        {
            problems.Add(new($"{path}.port", $"access port '{port.Name}' is already a segment of another domain"));
            return null;
        }

        accessSegments[p] = index;
        return new Segment { Index = index, Name = port.Name, Port = p, Kind = PortKind.Access, Domain = d, Mtu = seg.Mtu };
    }

    private static Segment? TrunkSegment(SegmentSpec seg, string path, int p, int d, PortSpec port, int[][] vlanSegments, int index, List<ProgramError> problems)
    {
        if (seg.Vlan is not { } vlan || vlan < 1 || vlan > MaxVlan)
        {
            problems.Add(new($"{path}.vlan", $"trunk port '{port.Name}' needs a VLAN id from 1 to {MaxVlan}"));
            return null;
        }

        var map = vlanSegments[p] ??= NewVlanMap();
        if (map[vlan] >= 0)
        {
            problems.Add(new($"{path}.vlan", $"VLAN {vlan} on '{port.Name}' already belongs to another segment"));
            return null;
        }

        map[vlan] = index;
        return new Segment { Index = index, Name = $"{port.Name}/vlan{vlan}", Port = p, Kind = PortKind.Trunk, Domain = d, Vlan = (ushort)vlan, Mtu = seg.Mtu };
    }

    private static Segment? VxlanSegment(
        SegmentSpec seg, string path, int p, int d, PortSpec port, Dictionary<uint, int>[] vniSegments, HashSet<uint>[] knownVteps, int index, List<ProgramError> problems)
    {
        if (seg.Vni is not { } vni || vni < 1 || vni > VxlanHeader.MaxVni)
        {
            problems.Add(new($"{path}.vni", $"VXLAN port '{port.Name}' needs a VNI from 1 to {VxlanHeader.MaxVni}"));
            return null;
        }

        var map = vniSegments[p] ??= [];
        if (!map.TryAdd((uint)vni, index))
        {
            problems.Add(new($"{path}.vni", $"VNI {vni} on '{port.Name}' already belongs to another segment"));
            return null;
        }

        var vteps = new List<uint>();
        var known = knownVteps[p] ??= [];
        for (var v = 0; v < seg.Vteps.Count; v++)
        {
            if (!Ipv4Address.TryParse(seg.Vteps[v], out var vtep) || vtep.IsAny || vtep.IsMulticast || vtep.IsBroadcast)
            {
                problems.Add(new($"{path}.vteps[{v}]", $"'{seg.Vteps[v]}' is not a unicast IPv4 VTEP address"));
                continue;
            }

            if (vteps.Contains(vtep.Value))
            {
                problems.Add(new($"{path}.vteps[{v}]", $"VTEP {seg.Vteps[v]} is listed twice"));
                continue;
            }

            vteps.Add(vtep.Value);
            known.Add(vtep.Value);
        }

        return new Segment
        {
            Index = index,
            Name = $"{port.Name}/vni{vni}",
            Port = p,
            Kind = PortKind.Vxlan,
            Domain = d,
            Vni = (uint)vni,
            Mtu = seg.Mtu,
            Vteps = [.. vteps],
            VtepUdpPort = (ushort)port.UdpPort,
        };
    }

    private static int[] NewVlanMap()
    {
        var map = new int[MaxVlan + 2];
        Array.Fill(map, -1);
        return map;
    }

    private static void CheckPositive(List<ProgramError> problems, string path, int value)
    {
        if (value <= 0)
        {
            problems.Add(new(path, $"must be positive (got {value})"));
        }
    }
}

internal static class PacketPoolLimits
{
    /// <summary>An L3 MTU that still fits a slot with Ethernet, two tags and VXLAN.</summary>
    public const int MaxMtu = Pipeline.PacketPool.MaxFrame - 14 - 8 - 8;
}
