using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Mobility;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Io;
using Isthmus.Packets;
using Microsoft.Extensions.DependencyInjection;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// The routed lab document with mobility: site "dc1", acc10 local, trunk0 VLAN 10 the interconnect to
/// "dc2", BGP attributes (no peer: the desired set is checked in the mobility status; the BIRD and FRR
/// interop tests cover the wire). The workload 00:50:56:00:00:50 / 10.10.0.50 moves between them.
/// </summary>
public sealed class MobileAppliance : IDisposable
{
    public static readonly MacAddress Vm = MacAddress.Parse("00:50:56:00:00:50");
    public static readonly Ipv4Address VmIp = Ipv4Address.Parse("10.10.0.50");

    public MobileAppliance()
    {
        Factory = new ApplianceFactory(Document());
        _ = Factory.Server;
    }

    public ApplianceFactory Factory { get; }

    public MobilityService Mobility => Factory.Services.GetRequiredService<MobilityService>();

    public static JsonObject Document()
    {
        var doc = RoutedAppliance.Document();
        doc["bgp"] = new JsonObject
        {
            ["localAs"] = 65010,
            ["routerId"] = "192.0.2.1",
            ["nextHop"] = "10.255.0.1",
            ["communities"] = new JsonArray("65010:100"),
            ["largeCommunities"] = new JsonArray("65010:1:2"),
        };
        doc["mobility"] = new JsonObject
        {
            ["site"] = "dc1",
            ["remoteSite"] = "dc2",
            ["localSegments"] = new JsonArray("acc10"),
            ["interconnectSegments"] = new JsonArray("trunk0/vlan10"),
            ["garpCount"] = 2,
            ["garpIntervalMs"] = 50,
            ["dampingMoves"] = 5,
            ["stunGapMs"] = 0,
        };
        return doc;
    }

    public void Rarp(string port, ushort? vlan = null)
    {
        var buffer = new byte[64];
        var n = PacketBuilder.RarpRequest(buffer, Vm);
        Factory.Ports[port].Enqueue(new MemoryFrame(buffer[..n], vlan));
    }

    public void Garp(string port, ushort? vlan = null)
    {
        var buffer = new byte[64];
        var n = PacketBuilder.GarpRequest(buffer, Vm, VmIp);
        Factory.Ports[port].Enqueue(new MemoryFrame(buffer[..n], vlan));
    }

    public static async Task Eventually(Func<bool> condition) => Assert.True(await Poll.Until(condition));

    public void Dispose() => Factory.Dispose();
}

public sealed class MobilityApiTests(MobileAppliance appliance) : IClassFixture<MobileAppliance>
{
    private readonly ApplianceFactory _factory = appliance.Factory;

    private static bool Announced(MobilityStatus status, string prefix) => status.Announced.Any(r => r.Prefix == prefix);

    [Fact]
    public async Task A_rarp_on_the_local_segment_announces_a_host_route_and_garps_and_the_move_back_withdraws_it()
    {
        // The workload announces itself across the interconnect (at the other site): known, not announced.
        var mobility = appliance.Mobility;
        appliance.Garp("trunk0", 10);
        await MobileAppliance.Eventually(() => mobility.Status.Workloads.Any(w => w.Mac == "00:50:56:00:00:50" && w.Addresses.Contains("10.10.0.50")));
        var remote = mobility.Status.Workloads.Single(w => w.Mac == "00:50:56:00:00:50");
        Assert.Equal(("dc2", "trunk0/vlan10", false), (remote.Site, remote.Segment, remote.Local));
        Assert.False(Announced(mobility.Status, "10.10.0.50/32"));
        var acc10 = _factory.Ports["acc10"];

        // The class's other tests share this appliance: a burst one of them started toward acc10 (own migration, the
        // freeze) may still have a pair to send. Count from a quiet segment, so only this move's burst is counted.
        var garpsBefore = await QuietGarps(acc10);

        // vMotion: ESXi sends a RARP from the VM's MAC on the local segment.
        appliance.Rarp("acc10");
        await MobileAppliance.Eventually(() => Announced(mobility.Status, "10.10.0.50/32"));
        var route = mobility.Status.Announced.Single(r => r.Prefix == "10.10.0.50/32");
        Assert.Equal("10.255.0.1", route.NextHop);
        Assert.Equal(["65010:100"], route.Communities);
        Assert.Equal(["65010:1:2"], route.LargeCommunities);
        var local = mobility.Status.Workloads.Single(w => w.Mac == "00:50:56:00:00:50");
        Assert.Equal(("dc1", "acc10", true), (local.Site, local.Segment, local.Local));
        Assert.True(local.Sequence > remote.Sequence);

        // The GARP burst for the gateway 10.10.0.1 toward the workload: at once, then once more 50 ms later (request + reply each).
        // The first pair left from the worker itself when it saw the RARP; the mobility loop sent only the rest of the burst.
        await MobileAppliance.Eventually(() => GarpsForGateway(acc10) - garpsBefore >= 4);
        await Task.Delay(300); // six burst intervals: nothing more may follow
        Assert.Equal(4, GarpsForGateway(acc10) - garpsBefore);
        Assert.True(mobility.Latency.WorkerGarpFrames >= 2);

        // Where the time went, hop by hop, from the worker seeing the RARP (the hops this move went through have samples).
        var latency = await _factory.Reader().GetFromJsonAsync<JsonObject>(new Uri("/api/v1/mobility/latency", UriKind.Relative));
        var hops = latency!["hops"]!.AsArray().ToDictionary(h => h!["hop"]!.GetValue<string>(), h => h!);
        Assert.True(hops["feed"]["count"]!.GetValue<long>() >= 1);
        Assert.True(hops["decision"]["count"]!.GetValue<long>() >= 1);
        Assert.True(hops["routes planned"]["count"]!.GetValue<long>() >= 1);
        Assert.Contains("bgp socket write", hops.Keys);

        // The move back withdraws it.
        appliance.Rarp("trunk0", 10);
        await MobileAppliance.Eventually(() => !Announced(mobility.Status, "10.10.0.50/32"));
        var moves = await _factory.Reader().GetFromJsonAsync<JsonArray>(new Uri("/api/v1/mobility/moves", UriKind.Relative));
        Assert.Contains(moves!, m => m!["mac"]!.GetValue<string>() == "00:50:56:00:00:50" && m["kind"]!.GetValue<string>() == "Moved");
    }

    /// <summary>
    /// The gateway GARPs sent on <paramref name="port"/> so far, once none has followed for twenty burst intervals (a
    /// second: a loop held up in the middle of another test's burst on a loaded machine must not end the quiet early).
    /// </summary>
    private static async Task<int> QuietGarps(ThreadSafePort port)
    {
        var count = GarpsForGateway(port);
        for (var i = 0; i < 20; i++)
        {
            await Task.Delay(1000);
            var now = GarpsForGateway(port);
            if (now == count)
            {
                return now;
            }

            count = now;
        }

        Assert.Fail($"GARPs for the gateway kept coming on {port}: {count}");
        return count;
    }

    private static int GarpsForGateway(ThreadSafePort port) => port.Transmitted.Count(f =>
        f.Bytes.Length >= 42 && MacAddress.Read(f.Bytes.AsSpan(6)) == MacAddress.Parse("02:15:7e:00:00:10")
        && ArpPacket.TryParse(f.Bytes.AsSpan(14), out var arp) == ParseError.None && arp.IsGratuitous && arp.SenderIp == Ipv4Address.Parse("10.10.0.1"));

    [Fact]
    public async Task Five_quick_moves_freeze_the_workload_withdraw_it_and_unfreeze_clears_it()
    {
        var admin = _factory.Admin();
        const string mac = "00:50:56:00:00:77";
        async Task<JsonObject> Move(string segment)
        {
            var response = await admin.PostAsJsonAsync("/api/v1/mobility/moves", new { mac, segment, addresses = new[] { "10.10.0.77" } });
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        }

        Assert.Equal("Learned", (await Move("acc10"))["outcome"]!.GetValue<string>());
        await MobileAppliance.Eventually(() => Announced(appliance.Mobility.Status, "10.10.0.77/32"));
        var outcomes = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            outcomes.Add((await Move(i % 2 == 0 ? "trunk0/vlan10" : "acc10"))["outcome"]!.GetValue<string>());
        }

        Assert.Equal(["Moved", "Moved", "Moved", "Moved", "Froze"], outcomes);
        var workload = (await admin.GetFromJsonAsync<JsonArray>(new Uri("/api/v1/mobility/workloads", UriKind.Relative)))!
            .Single(w => w!["mac"]!.GetValue<string>() == mac)!;
        Assert.True(workload["frozen"]!.GetValue<bool>());
        await MobileAppliance.Eventually(() => !Announced(appliance.Mobility.Status, "10.10.0.77/32")); // frozen: not advertised
        Assert.True(appliance.Mobility.Status.DuplicateAlerts >= 1);
        Assert.Equal("Ignored", (await Move("acc10"))["outcome"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsync(new Uri($"/api/v1/mobility/workloads/{mac}/unfreeze", UriKind.Relative), null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PostAsync(new Uri($"/api/v1/mobility/workloads/{mac}/unfreeze", UriKind.Relative), null)).StatusCode);
        Assert.Equal("Moved", (await Move("trunk0/vlan10"))["outcome"]!.GetValue<string>()); // it froze where it was: acc10
        Assert.Equal("Moved", (await Move("acc10"))["outcome"]!.GetValue<string>());
        await MobileAppliance.Eventually(() => Announced(appliance.Mobility.Status, "10.10.0.77/32"));
    }

    [Fact]
    public async Task A_dhcpack_bridged_from_the_interconnect_binds_the_leased_address_to_the_local_client_and_announces_it()
    {
        var client = MacAddress.Parse("00:50:56:00:00:d1");
        var server = MacAddress.Parse("00:50:56:00:00:d2");
        static byte[] Dhcp(byte op, MacAddress chaddr, Ipv4Address yiaddr, byte type)
        {
            var message = new byte[244];
            (message[0], message[1], message[2]) = (op, 1, 6);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(16), yiaddr.Value);
            chaddr.WriteTo(message.AsSpan(28));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(236), 0x6382_5363);
            (message[240], message[241], message[242], message[243]) = (53, 1, type, 255);
            return message;
        }

        static MemoryFrame Frame(MacAddress from, MacAddress to, ushort sport, ushort dport, byte[] dhcp, ushort? vlan)
        {
            var buffer = new byte[600];
            var n = PacketBuilder.Udp(buffer, new Ipv4FrameSpec(from, to, Ipv4Address.Parse("0.0.0.0"), Ipv4Address.Parse("255.255.255.255")), sport, dport, dhcp);
            return new MemoryFrame(buffer[..n], vlan);
        }

        // The client asks on the local segment; the DHCP server answers from the other site (across the interconnect).
        _factory.Ports["acc10"].Enqueue(Frame(client, MacAddress.Broadcast, 68, 67, Dhcp(1, client, default, 3), null));
        await MobileAppliance.Eventually(() => _factory.Ports["trunk0"].Transmitted.Any(f => MacAddress.Read(f.Bytes.AsSpan(6)) == client)); // flooded: learned
        _factory.Ports["trunk0"].Enqueue(Frame(server, client, 67, 68, Dhcp(2, client, Ipv4Address.Parse("10.10.0.88"), 5), 10));

        await MobileAppliance.Eventually(() => Announced(appliance.Mobility.Status, "10.10.0.88/32"));
        var workload = appliance.Mobility.Status.Workloads.Single(w => w.Mac == "00:50:56:00:00:d1");
        Assert.Equal(["10.10.0.88"], workload.Addresses);
        Assert.Equal(("acc10", true), (workload.Segment, workload.Local));
        Assert.True(appliance.Mobility.Status.DhcpAcks >= 1);
        Assert.Contains(appliance.Mobility.Status.Moves, m => m.Mac == "00:50:56:00:00:d1" && m.Source == "Dhcp");
    }

    [Fact]
    public async Task A_bad_move_report_is_a_problem_keyed_by_field()
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/mobility/moves", new { mac = "zz", segment = "", vtep = "x", addresses = new[] { "10.0.0.300" } });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(["addresses[0]", "mac", "segment", "vtep"], problem!["errors"]!.AsObject().Select(e => e.Key).Order(StringComparer.Ordinal));

        var unknown = await _factory.Admin().PostAsJsonAsync("/api/v1/mobility/moves", new { mac = "00:50:56:00:00:99", segment = "acc99" });
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Equal(["segment"], (await unknown.Content.ReadFromJsonAsync<JsonObject>())!["errors"]!.AsObject().Select(e => e.Key));

        Assert.Equal(HttpStatusCode.Forbidden, (await _factory.Reader().PostAsJsonAsync("/api/v1/mobility/moves", new { mac = "00:50:56:00:00:99", segment = "acc10" })).StatusCode);
    }

    [Fact]
    public async Task Own_migration_floods_garps_for_every_gateway_and_the_status_counts_it()
    {
        var before = appliance.Mobility.Status.SelfMigrations;
        var trunkBefore = _factory.Ports["trunk0"].Transmitted.Count;

        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/mobility/self-migrated", new { reason = "test" });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal(2, (await response.Content.ReadFromJsonAsync<JsonObject>())!["garpBursts"]!.GetValue<int>()); // bd10 and bd20
        Assert.Equal(before + 1, appliance.Mobility.Status.SelfMigrations);
        await MobileAppliance.Eventually(() => _factory.Ports["trunk0"].Transmitted.Count > trunkBefore); // flooded to the trunk too
    }

    [Fact]
    public async Task The_mobility_and_bgp_views_are_readable_by_a_read_only_caller()
    {
        var reader = _factory.Reader();
        var status = await reader.GetFromJsonAsync<JsonObject>(new Uri("/api/v1/mobility", UriKind.Relative));
        Assert.True(status!["enabled"]!.GetValue<bool>());
        Assert.Equal("dc1", status["site"]!.GetValue<string>());
        Assert.Empty((await reader.GetFromJsonAsync<JsonArray>(new Uri("/api/v1/bgp/peers", UriKind.Relative)))!);
    }
}

public sealed class MobilityConfigTests
{
    [Fact]
    public async Task Bad_bgp_and_mobility_settings_are_reported_with_their_paths()
    {
        using var factory = new ApplianceFactory();
        var doc = MobileAppliance.Document();
        doc["bgp"]!["routerId"] = "::1";
        doc["bgp"]!["communities"] = new JsonArray("65010:70000");
        doc["bgp"]!["listenPort"] = 0;
        doc["bgp"]!["peers"] = new JsonArray(
            new JsonObject { ["name"] = "rr", ["address"] = "10.255.0.300", ["peerAs"] = 65000, ["holdTimeSeconds"] = 2 },
            new JsonObject { ["name"] = "tor", ["address"] = "10.255.0.9", ["peerAs"] = 65001, ["mode"] = "sideways" },
            new JsonObject { ["name"] = "v6", ["address"] = "2001:db8::9", ["peerAs"] = 65001, ["mode"] = "passive" },
            new JsonObject { ["name"] = "ok", ["address"] = "10.255.0.10", ["peerAs"] = 65001, ["mode"] = "both" });
        doc["mobility"]!["localSegments"] = new JsonArray("acc99");
        doc["mobility"]!["interconnectSegments"] = new JsonArray("trunk0/vlan10", "acc10x");
        doc["mobility"]!["aggregates"] = new JsonArray("10.10.0.1/24");

        var response = await factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);

        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(
            ["bgp.communities[0]", "bgp.listenPort", "bgp.peers[0].address", "bgp.peers[0].holdTimeSeconds", "bgp.peers[1].mode", "bgp.peers[2].mode", "bgp.routerId", "mobility.aggregates[0]", "mobility.interconnectSegments[1]", "mobility.localSegments[0]"],
            problem!["errors"]!.AsObject().Select(e => e.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task With_the_arp_filter_on_arp_for_the_gateway_across_the_interconnect_is_dropped_and_counted()
    {
        var doc = MobileAppliance.Document();
        doc["mobility"]!["filterGatewayArp"] = true;
        using var factory = new ApplianceFactory(doc);
        var reader = factory.Reader();
        var buffer = new byte[64];
        var n = PacketBuilder.Arp(buffer, ArpOpcode.Request, MobileAppliance.Vm, MobileAppliance.VmIp, MacAddress.Zero, Ipv4Address.Parse("10.10.0.1"));

        // The mobility service posts the filter to the worker at start; until it lands the request is answered.
        long filtered = 0;
        for (var i = 0; i < 200 && filtered == 0; i++)
        {
            factory.Ports["trunk0"].Enqueue(new MemoryFrame(buffer[..n], 10));
            await Task.Delay(20);
            var drops = await reader.GetFromJsonAsync<JsonArray>(new Uri("/api/v1/drops", UriKind.Relative));
            filtered = drops!.Single(d => (string)d!["stage"]! == "gateway" && (string)d["reason"]! == "GatewayArpFiltered")!["count"]!.GetValue<long>();
        }

        Assert.True(filtered > 0);

        // On the local segment the gateway still answers.
        var acc10 = factory.Ports["acc10"];
        acc10.Enqueue(new MemoryFrame(buffer[..n]));
        await MobileAppliance.Eventually(() => acc10.Transmitted.Any(f => ArpPacket.TryParse(f.Bytes.AsSpan(14), out var arp) == ParseError.None && arp.Opcode == ArpOpcode.Reply));
    }

    [Fact]
    public async Task A_valid_mobility_document_round_trips_through_the_store()
    {
        using var factory = new ApplianceFactory();
        var admin = factory.Admin();

        var commit = await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = MobileAppliance.Document(), comment = "mobility" });
        Assert.Equal(HttpStatusCode.Created, commit.StatusCode);
        var running = await admin.GetFromJsonAsync<JsonObject>(new Uri("/api/v1/config", UriKind.Relative));
        Assert.Equal("dc1", running!["mobility"]!["site"]!.GetValue<string>());
        Assert.Equal(65010u, running["bgp"]!["localAs"]!.GetValue<uint>());
    }
}
