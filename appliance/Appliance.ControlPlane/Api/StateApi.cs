using System.Buffers.Binary;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.Packets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Isthmus.ControlPlane.Api;

/// <summary>
/// Live state of the data plane: health, interfaces and counters, drop reasons, MAC tables, packet
/// trace and packet capture. The counters and bridge-domain shapes are the ones the lab and the
/// integration tests have read since the foundation issue.
/// </summary>
/// <remarks>
/// Counters and MAC tables are written by the worker thread and read here without locks: values
/// may be a moment stale, never torn (aligned 64-bit fields on x64).
/// </remarks>
public static class StateApi
{
    public sealed record PortCountersView(
        string Name, string Kind, long RxPackets, long RxBytes, long TxPackets, long TxBytes,
        long TxErrors, long RxNoBuffer, long RxTruncated, long RxSyscalls, long TxSyscalls,
        long RxKernelDrops, long RxGsoSegmented, long RxGsoSegments, long RxGsoDropped, long RxChecksumsFinished,
        long TxRaw, long TxRawFallback, long TxRingFull, long TxGsoTrains, IReadOnlyDictionary<string, long> TxDropped);

    public sealed record CountersView(IReadOnlyList<PortCountersView> Ports, IReadOnlyDictionary<string, long> Drops, long Batches, long Packets);

    public sealed record InterfaceView(string Name, string Kind, string? Interface, string? LocalAddress, int? UdpPort, IReadOnlyList<string> Segments, PortCountersView Counters);

    public sealed record DropView(string Stage, string Reason, long Count);

    public sealed record MacView(string Mac, string Segment, string? Vtep, bool Static, double AgeSeconds);

    public sealed record BridgeDomainView(string Name, IReadOnlyList<MacView> Macs, long Moves, long LearnRefused);

    /// <summary>Arm a trace filter, or inject one synthetic frame (hex) on a port.</summary>
    public sealed record TraceRequest(string? Port, string? SourceMac, string? DestinationMac, int MaxPackets = 16, string? InjectHex = null, int? Vlan = null, string? RemoteVtep = null);

    public static void MapStateApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("Live state");
        api.MapGet("/health", (DataPlaneRuntime dp) =>
                dp.Forwarding ? Results.Ok(new { status = "forwarding", revision = dp.SnapshotVersion }) : Results.Problem("data plane is not forwarding", statusCode: 503))
            .WithSummary("Liveness: 200 while the data plane forwards (no authentication)")
            .AllowAnonymous();
        api.MapGet("/counters", (DataPlaneRuntime dp) => Counters(dp)).WithSummary("Per-port counters and per-stage drop reasons");
        api.MapGet("/interfaces", (DataPlaneRuntime dp) => Interfaces(dp)).WithSummary("Ports with their configuration, segments and counters");
        api.MapGet("/drops", (DataPlaneRuntime dp) => Drops(dp)).WithSummary("Drop counters per stage and reason (zeros included)");
        api.MapGet("/bridge-domains", (DataPlaneRuntime dp, TimeProvider time) => BridgeDomains(dp, time)).WithSummary("Bridge domains and their MAC tables");
        api.MapPost("/trace", (DataPlaneRuntime dp, TraceRequest request) => Trace(dp, request))
            .WithSummary("Arm a trace filter or inject a synthetic frame")
            .RequireAuthorization(Roles.AdminPolicy);
        api.MapGet("/trace", (DataPlaneRuntime dp, int? id) => dp.Tracer.Entries(id)).WithSummary("Per-stage verdicts of traced packets");
        api.MapGet("/capture", Capture)
            .WithSummary("Capture N received frames matching a filter as a pcap file")
            .Produces(200, contentType: "application/vnd.tcpdump.pcap")
            .RequireAuthorization(Roles.AdminPolicy);
    }

    public static PortCountersView PortCounters(DataPlane.Io.IPacketPort p)
    {
        var c = p.Counters;
        return new PortCountersView(p.Name, p.Kind.ToString().ToLowerInvariant(), c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes,
            c.TxErrors, c.RxNoBuffer, c.RxTruncated, c.RxSyscalls, c.TxSyscalls,
                c.RxKernelDrops, c.RxGsoSegmented, c.RxGsoSegments, c.RxGsoDropped, c.RxChecksumsFinished,
                c.TxRaw, c.TxRawFallback, c.TxRingFull, c.TxGsoTrains, TxDropped(c));
    }

    /// <summary>A port's transmit drops per reason (VXLAN with UDP GSO transmit), zeros included, by the reason's wire name.</summary>
    public static Dictionary<string, long> TxDropped(DataPlane.Io.PortCounters c)
    {
        ArgumentNullException.ThrowIfNull(c);
        var result = new Dictionary<string, long>();
        foreach (var reason in Enum.GetValues<DataPlane.Io.VxlanTransmitDrop>())
        {
            result[TxDropName(reason)] = c.TxDropped[(int)reason];
        }

        return result;
    }

    private static string TxDropName(DataPlane.Io.VxlanTransmitDrop reason) => reason switch
    {
        DataPlane.Io.VxlanTransmitDrop.NoRoom => "no_room",
        DataPlane.Io.VxlanTransmitDrop.TooBig => "too_big",
        _ => "refused",
    };

    public static List<DropView> Drops(DataPlaneRuntime dp)
    {
        var worker = dp.Worker;
        var result = new List<DropView>();
        var stages = worker.Pipeline.Stages;
        for (var s = 0; s < stages.Count; s++)
        {
            for (var r = 0; r < stages[s].DropReasons.Count; r++)
            {
                result.Add(new DropView(stages[s].Name, stages[s].DropReasons[r], worker.Counters.Drops(s, r)));
            }
        }

        return result;
    }

    private static CountersView Counters(DataPlaneRuntime dp)
    {
        var worker = dp.Worker;
        var ports = worker.Ports.Select(PortCounters).ToList();
        var drops = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var d in Drops(dp))
        {
            drops[$"{d.Stage}.{d.Reason}"] = d.Count;
        }

        return new CountersView(ports, drops, worker.Counters.Batches, worker.Counters.Packets);
    }

    private static List<InterfaceView> Interfaces(DataPlaneRuntime dp)
    {
        var specs = dp.Started?.Program.Ports ?? [];
        var snapshot = dp.Slot.Current;
        return dp.Worker.Ports.Select((p, i) =>
        {
            var spec = specs.FirstOrDefault(s => s.Name == p.Name);
            var segments = snapshot.Segments.Where(s => s.Port == i).Select(s => s.Name).ToList();
            return new InterfaceView(p.Name, p.Kind.ToString().ToLowerInvariant(), spec?.Interface, spec?.LocalAddress,
                spec?.Kind == DataPlane.Programming.PortSpecKind.Vxlan ? spec.UdpPort : null, segments, PortCounters(p));
        }).ToList();
    }

    private static List<BridgeDomainView> BridgeDomains(DataPlaneRuntime dp, TimeProvider time)
    {
        var context = dp.Worker.Context;
        var snapshot = context.Snapshot;
        var now = time.GetTimestamp();
        var result = new List<BridgeDomainView>();
        var states = context.Bridge.Domains;
        for (var d = 0; d < states.Length; d++)
        {
            var state = states[d];
            var macs = state.Table.Snapshot()
                .Where(e => (uint)e.Segment < (uint)snapshot.Segments.Length)
                .Select(e => new MacView(
                    new MacAddress(e.Mac).ToString(),
                    snapshot.Segments[e.Segment].Name,
                    e.Vtep == 0 ? null : new Ipv4Address(e.Vtep).ToString(),
                    e.Static,
                    Math.Round((now - e.LastSeen) / (double)context.TicksPerSecond, 1)))
                .OrderBy(m => m.Mac, StringComparer.Ordinal)
                .ToList();
            result.Add(new BridgeDomainView(state.Name, macs, state.Moves, state.LearnRefused));
        }

        return result;
    }

    private static IResult Trace(DataPlaneRuntime dp, TraceRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        var port = request.Port is null ? -1 : dp.Worker.Ports.ToList().FindIndex(p => p.Name == request.Port);
        if (request.Port is not null && port < 0)
        {
            errors["port"] = [$"no port named '{request.Port}'"];
        }

        MacAddress? source = null, destination = null;
        if (request.SourceMac is not null)
        {
            if (MacAddress.TryParse(request.SourceMac, out var mac)) { source = mac; } else { errors["sourceMac"] = ["not a MAC address"]; }
        }

        if (request.DestinationMac is not null)
        {
            if (MacAddress.TryParse(request.DestinationMac, out var mac)) { destination = mac; } else { errors["destinationMac"] = ["not a MAC address"]; }
        }

        byte[]? frame = null;
        if (request.InjectHex is not null)
        {
            try
            {
                frame = Convert.FromHexString(request.InjectHex);
            }
            catch (FormatException)
            {
                errors["injectHex"] = ["not hexadecimal"];
            }

            if (port < 0)
            {
                errors["port"] = ["an injected frame needs the port it enters on"];
            }
        }

        var vtep = Ipv4Address.Any;
        if (request.RemoteVtep is not null && !Ipv4Address.TryParse(request.RemoteVtep, out vtep))
        {
            errors["remoteVtep"] = ["not an IPv4 address"];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The trace request is not valid");
        }

        if (frame is not null)
        {
            var id = dp.Worker.Inject(frame, port, request.Vlan is { } v ? (ushort)v : null, vtep.Value);
            return Results.Accepted($"/api/v1/trace?id={id}", new { traceId = id });
        }

        dp.Tracer.Arm(new TraceFilter { IngressPort = request.Port, SourceMac = source, DestinationMac = destination, MaxPackets = request.MaxPackets });
        return Results.Accepted("/api/v1/trace", new { armed = true });
    }

    /// <summary>GET /api/v1/capture?port=acc10&amp;count=N[&amp;vlan=&amp;vni=&amp;mac=&amp;etherType=0x0806&amp;timeoutSeconds=10]</summary>
    private static async Task<IResult> Capture(
        DataPlaneRuntime dp, TimeProvider time, HttpContext context,
        string? port, int? count, int? vlan, int? vni, string? mac, string? etherType, int? timeoutSeconds)
    {
        var errors = new Dictionary<string, string[]>();
        var index = port is null ? -1 : dp.Worker.Ports.ToList().FindIndex(p => p.Name == port);
        if (port is not null && index < 0)
        {
            errors["port"] = [$"no port named '{port}' (ports: {string.Join(", ", dp.Worker.Ports.Select(p => p.Name))})"];
        }

        var n = count ?? 100;
        if (n is < 1 or > 100_000)
        {
            errors["count"] = ["capture 1 to 100000 packets"];
        }

        if (vlan is < 1 or > 4094)
        {
            errors["vlan"] = ["a VLAN id is 1 to 4094"];
        }

        MacAddress? macFilter = null;
        if (mac is not null)
        {
            if (MacAddress.TryParse(mac, out var m)) { macFilter = m; } else { errors["mac"] = ["not a MAC address"]; }
        }

        ushort? type = null;
        if (etherType is not null)
        {
            var text = etherType.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? etherType[2..] : etherType;
            if (ushort.TryParse(text, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out var t)) { type = t; } else { errors["etherType"] = ["an EtherType in hex, such as 0x0806"]; }
        }

        var timeout = TimeSpan.FromSeconds(Math.Clamp(timeoutSeconds ?? 10, 1, 300));
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The capture request is not valid");
        }

        var session = dp.Worker.Capture.Arm(new CaptureFilter { Port = index < 0 ? null : index, Vlan = (ushort?)vlan, Vni = vni, Mac = macFilter, EtherType = type }, n);
        if (session is null)
        {
            return Results.Problem("another capture is running; try again when it ends", statusCode: 409);
        }

        var wallAtStart = time.GetUtcNow();
        var ticksAtStart = time.GetTimestamp();
        IReadOnlyList<CapturedFrame> frames;
        try
        {
            await session.Full.WaitAsync(timeout, time, context.RequestAborted).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A capture that times out returns what it has, like tcpdump -c N with a deadline.
        }
        finally
        {
            frames = session.Stop();
        }

        var pcap = Pcap.Write(frames, f => wallAtStart + TimeSpan.FromSeconds((f.Timestamp - ticksAtStart) / (double)time.TimestampFrequency));
        return Results.File(pcap, "application/vnd.tcpdump.pcap", $"isthmus-{port ?? "all"}.pcap");
    }
}

/// <summary>The classic libpcap file format (not pcapng): what tcpdump -r and Wireshark read everywhere.</summary>
public static class Pcap
{
    public const uint Magic = 0xa1b2c3d4;
    public const uint LinkTypeEthernet = 1;
    public const int SnapLength = 65535;

    public static byte[] Write(IReadOnlyList<CapturedFrame> frames, Func<CapturedFrame, DateTimeOffset> timeOf)
    {
        ArgumentNullException.ThrowIfNull(frames);
        ArgumentNullException.ThrowIfNull(timeOf);
        var size = 24 + frames.Sum(f => 16 + f.Bytes.Length);
        var bytes = new byte[size];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], SnapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], LinkTypeEthernet);
        var at = 24;
        foreach (var frame in frames)
        {
            var when = timeOf(frame);
            var unixMicros = (when - DateTimeOffset.UnixEpoch).Ticks / 10;
            BinaryPrimitives.WriteUInt32LittleEndian(span[at..], (uint)(unixMicros / 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], (uint)(unixMicros % 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 8)..], (uint)frame.Bytes.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 12)..], (uint)frame.Bytes.Length);
            frame.Bytes.CopyTo(span[(at + 16)..]);
            at += 16 + frame.Bytes.Length;
        }

        return bytes;
    }
}
