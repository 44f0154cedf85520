using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Config;

/// <summary>
/// The control plane's own rules for a document (settings, users, tokens). The data-plane sections are
/// validated by <see cref="SnapshotCompiler"/>; <see cref="Apply.ConfigService"/> reports both lists
/// together, so an operator sees every error at once.
/// </summary>
public static class ConfigValidator
{
    /// <summary>The range of dataPlane.workerNice (setpriority(2)).</summary>
    public const int MinNice = -20;

    public const int MaxNice = 19;

    public static List<ProgramError> Validate(ConfigDocument document, bool requireAdmin)
    {
        var errors = new List<ProgramError>();
        if (document.DataPlane.PoolSize is < 1024 or > 1 << 20)
        {
            errors.Add(new("dataPlane.poolSize", $"{document.DataPlane.PoolSize} packet buffers is out of range (1024 to 1048576)"));
        }

        if (document.DataPlane.RxBatch is < 1 or > 256)
        {
            errors.Add(new("dataPlane.rxBatch", $"{document.DataPlane.RxBatch} frames per receive call is out of range (1 to 256)"));
        }

        if (document.DataPlane.WorkerCpu is { } cpu && (cpu < 0 || cpu >= Environment.ProcessorCount))
        {
            errors.Add(new("dataPlane.workerCpu", $"CPU {cpu} does not exist on this machine (0 to {Environment.ProcessorCount - 1})"));
        }

        if (document.DataPlane.PollMode is not ("interrupt" or "busy"))
        {
            errors.Add(new("dataPlane.pollMode", $"'{document.DataPlane.PollMode}' is not a poll mode: interrupt (sleep in poll() when idle) or busy (poll without sleeping, costs one CPU)"));
        }

        if (document.DataPlane.VxlanTransmit is not (DataPlaneSettings.VxlanTransmitRaw or DataPlaneSettings.VxlanTransmitUdpGso))
        {
            errors.Add(new("dataPlane.vxlanTransmit", $"'{document.DataPlane.VxlanTransmit}' is not a VXLAN transmit method: raw (outer headers built by the appliance, AF_XDP or AF_PACKET on the underlay interface; rawVxlanTransmit and xdpTransmit choose) or udpGso (the kernel's UDP stack, runs of same-size datagrams as one UDP GSO send)"));
        }

        if (!Isthmus.DataPlane.Io.XdpSocket.IsValidRingSize(document.DataPlane.XdpRingFrames))
        {
            errors.Add(new("dataPlane.xdpRingFrames", $"{document.DataPlane.XdpRingFrames} frames is not an AF_XDP ring size: a power of two from {Isthmus.DataPlane.Io.XdpSocket.MinFrames} to {Isthmus.DataPlane.Io.XdpSocket.MaxFrames} (each frame is 2 KiB of memory per port: the default, {Isthmus.DataPlane.Io.XdpSocket.DefaultFrames}, is {(long)Isthmus.DataPlane.Io.XdpSocket.DefaultFrames * Isthmus.DataPlane.Io.XdpSocket.ChunkSize >> 20} MiB)"));
        }

        if (document.DataPlane.CpuIdleLatencyUs is { } latency and (< 0 or > Runtime.CpuIdleLatency.MaxMicroseconds))
        {
            errors.Add(new("dataPlane.cpuIdleLatencyUs", $"{latency} µs is out of range: 0 (CPUs never halt) to {Runtime.CpuIdleLatency.MaxMicroseconds}, or null for no request"));
        }

        if (document.DataPlane.RealtimePriority is { } rt)
        {
            if (rt is < global::Isthmus.Mobility.Threading.LoopThread.MinFifoPriority or > global::Isthmus.Mobility.Threading.LoopThread.MaxFifoPriority)
            {
                errors.Add(new("dataPlane.realtimePriority", $"{rt} is not a SCHED_FIFO priority: {(global::Isthmus.Mobility.Threading.LoopThread.MinFifoPriority)} to {(global::Isthmus.Mobility.Threading.LoopThread.MaxFifoPriority)}, or null for ordinary scheduling"));
            }
            else if (document.DataPlane.PollMode == "busy")
            {
                errors.Add(new("dataPlane.realtimePriority", "a busy-polling worker never sleeps: at a real-time priority it would starve its CPU; use pollMode \"interrupt\" with realtimePriority, or busy without it"));
            }
        }

        if (document.DataPlane.LoopPlacement is { } placement and not "scheduler")
        {
            if (placement != "aboveWorker")
            {
                errors.Add(new("dataPlane.loopPlacement", $"'{placement}' is not a loop placement: \"scheduler\" (the default) or \"aboveWorker\""));
            }
            else if (document.DataPlane.RealtimePriority is not (>= global::Isthmus.Mobility.Threading.LoopThread.MinFifoPriority + 1 and <= global::Isthmus.Mobility.Threading.LoopThread.MaxFifoPriority - 1))
            {
                errors.Add(new("dataPlane.loopPlacement", "\"aboveWorker\" runs the loop one SCHED_FIFO priority above the worker and demotes it one below: it needs realtimePriority 2 to 98"));
            }
            else if (document.DataPlane.WorkerCpu is not null)
            {
                errors.Add(new("dataPlane.loopPlacement", "\"aboveWorker\" pins the worker to the last CPU itself; workerCpu (a CPU for the worker alone) keeps every other thread, the loop included, off it: set one or the other"));
            }
        }

        if (document.DataPlane.WorkerNice is { } nice and (< MinNice or > MaxNice))
        {
            errors.Add(new("dataPlane.workerNice", $"{nice} is not a nice value: {MinNice} (the highest ordinary priority) to {MaxNice}, or null for the default (-20 with workerCpu or pollMode busy, else unchanged)"));
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < document.Users.Count; i++)
        {
            var user = document.Users[i];
            var path = $"users[{i}]";
            if (string.IsNullOrWhiteSpace(user.Name) || user.Name.Contains(':', StringComparison.Ordinal))
            {
                errors.Add(new($"{path}.name", "a user needs a name without ':' (HTTP Basic separates name and password with it)"));
            }
            else if (!names.Add(user.Name))
            {
                errors.Add(new($"{path}.name", $"user '{user.Name}' is listed twice"));
            }

            if (!Enum.IsDefined(user.Role))
            {
                errors.Add(new($"{path}.role", "the role must be admin or read-only"));
            }

            if (!Credentials.LooksLikePasswordHash(user.PasswordHash))
            {
                errors.Add(new($"{path}.passwordHash", "not a password hash: set passwords with POST /api/v1/users, never in clear"));
            }
        }

        var tokenNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < document.ApiTokens.Count; i++)
        {
            var token = document.ApiTokens[i];
            var path = $"apiTokens[{i}]";
            if (string.IsNullOrWhiteSpace(token.Name))
            {
                errors.Add(new($"{path}.name", "a token needs a name"));
            }
            else if (!tokenNames.Add(token.Name))
            {
                errors.Add(new($"{path}.name", $"token '{token.Name}' is listed twice"));
            }

            if (!Enum.IsDefined(token.Role))
            {
                errors.Add(new($"{path}.role", "the role must be admin or read-only"));
            }

            if (!Credentials.LooksLikeTokenHash(token.TokenHash))
            {
                errors.Add(new($"{path}.tokenHash", "not a token hash (sha256:<64 hex digits>): create tokens with POST /api/v1/tokens"));
            }
        }

        if (requireAdmin && !document.Users.Any(u => u.Role == Role.Admin) && !document.ApiTokens.Any(t => t.Role == Role.Admin))
        {
            errors.Add(new(ConfigDocumentJson.UsersKey, "the configuration would leave no admin user or admin token: nobody could change it again"));
        }

        ValidateBgp(document.Bgp, errors);
        ValidateMobility(document, errors);
        return errors;
    }

    /// <summary>Segment names as the data plane and the API spell them: "acc10", "trunk0/vlan10", "und0/vni5010".</summary>
    public static IEnumerable<string> SegmentNames(DataPlaneProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        var kinds = program.Ports.GroupBy(p => p.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Kind, StringComparer.Ordinal);
        foreach (var domain in program.BridgeDomains)
        {
            foreach (var segment in domain.Segments)
            {
                yield return kinds.GetValueOrDefault(segment.Port) switch
                {
                    PortSpecKind.Trunk => $"{segment.Port}/vlan{segment.Vlan}",
                    PortSpecKind.Vxlan => $"{segment.Port}/vni{segment.Vni}",
                    _ => segment.Port,
                };
            }
        }
    }

    private static void ValidateBgp(BgpSettings? bgp, List<ProgramError> errors)
    {
        if (bgp is null)
        {
            return;
        }

        if (bgp.LocalAs is 0 or 23456 or 65535 or 4294967295)
        {
            errors.Add(new("bgp.localAs", $"{bgp.LocalAs} is reserved (0, AS_TRANS 23456, 65535 and 4294967295 cannot be used)"));
        }

        if (!System.Net.IPAddress.TryParse(bgp.RouterId, out var routerId) || routerId.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || routerId.Equals(System.Net.IPAddress.Any))
        {
            errors.Add(new("bgp.routerId", "the router id must be a non-zero IPv4 address (RFC 4271 §4.2 BGP Identifier)"));
        }

        Address(bgp.NextHop, "bgp.nextHop", System.Net.Sockets.AddressFamily.InterNetwork, errors);
        Address(bgp.NextHopIpv6, "bgp.nextHopIpv6", System.Net.Sockets.AddressFamily.InterNetworkV6, errors);
        for (var i = 0; i < bgp.Communities.Count; i++)
        {
            if (!TryParseCommunity(bgp.Communities[i], out _))
            {
                errors.Add(new($"bgp.communities[{i}]", $"'{bgp.Communities[i]}' is not a community: asn:value, each 0-65535 (RFC 1997)"));
            }
        }

        for (var i = 0; i < bgp.LargeCommunities.Count; i++)
        {
            if (!TryParseLargeCommunity(bgp.LargeCommunities[i], out _))
            {
                errors.Add(new($"bgp.largeCommunities[{i}]", $"'{bgp.LargeCommunities[i]}' is not a large community: global:local1:local2, each 0-4294967295 (RFC 8092)"));
            }
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < bgp.Peers.Count; i++)
        {
            var peer = bgp.Peers[i];
            var path = $"bgp.peers[{i}]";
            if (string.IsNullOrWhiteSpace(peer.Name) || !names.Add(peer.Name))
            {
                errors.Add(new($"{path}.name", string.IsNullOrWhiteSpace(peer.Name) ? "a peer needs a name" : $"peer '{peer.Name}' is listed twice"));
            }

            if (!System.Net.IPAddress.TryParse(peer.Address, out _))
            {
                errors.Add(new($"{path}.address", $"'{peer.Address}' is not an IP address"));
            }

            if (peer.PeerAs is 0 or 23456 or 65535 or 4294967295)
            {
                errors.Add(new($"{path}.peerAs", $"{peer.PeerAs} is reserved"));
            }

            if (peer.Port is < 1 or > 65535)
            {
                errors.Add(new($"{path}.port", $"{peer.Port} is not a TCP port"));
            }

            if (peer.HoldTimeSeconds is 1 or 2 or < 0 or > 65535)
            {
                errors.Add(new($"{path}.holdTimeSeconds", "the hold time is 0 or 3 to 65535 seconds (RFC 4271 §4.2)"));
            }

            if (peer.ConnectRetrySeconds is < 1 or > 3600)
            {
                errors.Add(new($"{path}.connectRetrySeconds", "connect retry is 1 to 3600 seconds"));
            }

            Address(peer.LocalAddress, $"{path}.localAddress", null, errors);
            if (peer.Mode is not ("active" or "passive" or "both"))
            {
                errors.Add(new($"{path}.mode", $"'{peer.Mode}' is not a mode: active, passive or both"));
            }
            else if (peer.Mode != "active" && System.Net.IPAddress.TryParse(peer.Address, out var listened) && listened.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            {
                errors.Add(new($"{path}.mode", "the passive side listens on IPv4 only"));
            }
        }

        if (bgp.ListenPort is < 1 or > 65535)
        {
            errors.Add(new("bgp.listenPort", $"{bgp.ListenPort} is not a TCP port"));
        }
    }

    private static void ValidateMobility(ConfigDocument document, List<ProgramError> errors)
    {
        if (document.Mobility is not { } mobility)
        {
            return;
        }

        var segments = SegmentNames(document.Program).ToHashSet(StringComparer.Ordinal);
        var known = string.Join(", ", segments.Order(StringComparer.Ordinal));
        for (var i = 0; i < mobility.LocalSegments.Count; i++)
        {
            if (!segments.Contains(mobility.LocalSegments[i]))
            {
                errors.Add(new($"mobility.localSegments[{i}]", $"no segment '{mobility.LocalSegments[i]}' (known: {known})"));
            }
        }

        for (var i = 0; i < mobility.InterconnectSegments.Count; i++)
        {
            var name = mobility.InterconnectSegments[i];
            if (!segments.Contains(name))
            {
                errors.Add(new($"mobility.interconnectSegments[{i}]", $"no segment '{name}' (known: {known})"));
            }
            else if (mobility.LocalSegments.Contains(name, StringComparer.Ordinal))
            {
                errors.Add(new($"mobility.interconnectSegments[{i}]", $"'{name}' cannot be both local and interconnect"));
            }
        }

        if (string.IsNullOrWhiteSpace(mobility.Site))
        {
            errors.Add(new("mobility.site", "the site needs a name"));
        }

        if (mobility.MaxHostRoutes is < 0 or > 1_000_000)
        {
            errors.Add(new("mobility.maxHostRoutes", "0 to 1000000 host routes"));
        }

        if (mobility.AnnouncementsPerSecond is < 0 or > 1_000_000)
        {
            errors.Add(new("mobility.announcementsPerSecond", "0 (unlimited) to 1000000 per second"));
        }

        for (var i = 0; i < mobility.Aggregates.Count; i++)
        {
            var text = mobility.Aggregates[i];
            if (!System.Net.IPNetwork.TryParse(text, out var aggregate) || !System.Net.IPAddress.TryParse(text.Split('/')[0], out var address) || !aggregate.BaseAddress.Equals(address))
            {
                errors.Add(new($"mobility.aggregates[{i}]", $"'{mobility.Aggregates[i]}' is not a prefix (address/length with no host bits)"));
            }
        }

        if (mobility.DampingMoves is < 2 or > 1000)
        {
            errors.Add(new("mobility.dampingMoves", "2 to 1000 moves"));
        }

        if (mobility.DampingWindowSeconds is < 1 or > 86400)
        {
            errors.Add(new("mobility.dampingWindowSeconds", "1 to 86400 seconds"));
        }

        if (mobility.GarpCount is < 0 or > 100)
        {
            errors.Add(new("mobility.garpCount", "0 to 100 GARPs per burst"));
        }

        if (mobility.GarpIntervalMs is < 10 or > 60_000)
        {
            errors.Add(new("mobility.garpIntervalMs", "10 to 60000 ms"));
        }

        if (mobility.StunGapMs is < 0 or (> 0 and < 200) or > 600_000)
        {
            errors.Add(new("mobility.stunGapMs", "0 (off) or 200 to 600000 ms"));
        }
    }

    private static void Address(string? text, string path, System.Net.Sockets.AddressFamily? family, List<ProgramError> errors)
    {
        if (text is null)
        {
            return;
        }

        if (!System.Net.IPAddress.TryParse(text, out var address) || (family is { } f && address.AddressFamily != f))
        {
            errors.Add(new(path, $"'{text}' is not an {(family == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "IPv6" : family is null ? "IP" : "IPv4")} address"));
        }
    }

    public static bool TryParseCommunity(string text, out global::Isthmus.Mobility.Bgp.Codec.Community community)
    {
        community = default;
        var parts = text?.Split(':') ?? [];
        if (parts.Length != 2 || !ushort.TryParse(parts[0], out var asn) || !ushort.TryParse(parts[1], out var value))
        {
            return false;
        }

        community = new global::Isthmus.Mobility.Bgp.Codec.Community(asn, value);
        return true;
    }

    public static bool TryParseLargeCommunity(string text, out global::Isthmus.Mobility.Bgp.Codec.LargeCommunity community)
    {
        community = default;
        var parts = text?.Split(':') ?? [];
        if (parts.Length != 3 || !uint.TryParse(parts[0], out var global) || !uint.TryParse(parts[1], out var one) || !uint.TryParse(parts[2], out var two))
        {
            return false;
        }

        community = new global::Isthmus.Mobility.Bgp.Codec.LargeCommunity(global, one, two);
        return true;
    }
}
