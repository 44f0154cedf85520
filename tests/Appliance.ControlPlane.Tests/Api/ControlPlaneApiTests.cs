using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Io;

namespace Isthmus.ControlPlane.Tests.Api;

public sealed class ControlPlaneApiTests : IClassFixture<ApplianceFactory>
{
    private readonly ApplianceFactory _factory;

    public ControlPlaneApiTests(ApplianceFactory factory)
    {
        _factory = factory;
        _ = _factory.Server; // start: first boot done by the seed, data plane running
    }

    public static TheoryData<string, string> ProtectedEndpoints => new()
    {
        { "GET", "/api/v1/config" },
        { "GET", "/api/v1/config/revisions" },
        { "GET", "/api/v1/config/revisions/1" },
        { "GET", "/api/v1/config/pending" },
        { "GET", "/api/v1/config/diff?from=1&to=1" },
        { "POST", "/api/v1/config/diff" },
        { "POST", "/api/v1/config/validate" },
        { "POST", "/api/v1/config/commit" },
        { "POST", "/api/v1/config/confirm" },
        { "POST", "/api/v1/config/rollback" },
        { "GET", "/api/v1/audit" },
        { "GET", "/api/v1/counters" },
        { "GET", "/api/v1/interfaces" },
        { "GET", "/api/v1/drops" },
        { "GET", "/api/v1/bridge-domains" },
        { "POST", "/api/v1/trace" },
        { "GET", "/api/v1/trace" },
        { "GET", "/api/v1/capture?port=acc10&count=1" },
        { "GET", "/api/v1/users" },
        { "POST", "/api/v1/users" },
        { "DELETE", "/api/v1/users/admin" },
        { "GET", "/api/v1/tokens" },
        { "POST", "/api/v1/tokens" },
        { "DELETE", "/api/v1/tokens/automation" },
        { "GET", "/metrics" },
        { "GET", "/api/v1/lb/virtual-servers" },
        { "GET", "/api/v1/lb/history" },
        { "GET", "/openapi/v1.json" },
    };

    public static TheoryData<string, string> AdminOnlyEndpoints => new()
    {
        { "POST", "/api/v1/config/diff" },
        { "POST", "/api/v1/config/validate" },
        { "POST", "/api/v1/config/commit" },
        { "POST", "/api/v1/config/confirm" },
        { "POST", "/api/v1/config/rollback" },
        { "GET", "/api/v1/audit" },
        { "POST", "/api/v1/trace" },
        { "GET", "/api/v1/capture?port=acc10&count=1" },
        { "GET", "/api/v1/users" },
        { "POST", "/api/v1/users" },
        { "DELETE", "/api/v1/users/admin" },
        { "POST", "/api/v1/tokens" },
        { "DELETE", "/api/v1/tokens/automation" },
    };

    [Fact]
    public async Task Health_answers_without_credentials()
    {
        var response = await _factory.CreateClient().GetAsync(new Uri("/api/v1/health", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("forwarding", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(ProtectedEndpoints))]
    public async Task Every_other_endpoint_needs_credentials(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : JsonContent.Create(new { }) };
        var response = await _factory.CreateClient().SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
        Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Basic");
    }

    [Theory]
    [MemberData(nameof(AdminOnlyEndpoints))]
    public async Task Read_only_callers_get_403_on_changes(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : JsonContent.Create(new { }) };
        var response = await _factory.Reader().SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(403, (int)problem!["status"]!);
    }

    [Fact]
    public async Task Wrong_token_or_password_is_401()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.WithBearer("ist_nope").GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.WithBasic("admin", "wrong").GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _factory.WithBasic("admin", Documents.AdminPassword).GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Read_only_sees_state_and_config_without_credentials()
    {
        var reader = _factory.Reader();
        foreach (var path in new[] { "/api/v1/counters", "/api/v1/bridge-domains", "/api/v1/interfaces", "/api/v1/drops", "/api/v1/config/revisions", "/metrics", "/api/v1/trace" })
        {
            Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync(new Uri(path, UriKind.Relative))).StatusCode);
        }

        var config = await reader.GetFromJsonAsync<JsonObject>("/api/v1/config");
        Assert.NotNull(config!["bridgeDomains"]);
        Assert.False(config.ContainsKey("users"));
        Assert.False(config.ContainsKey("apiTokens"));
    }

    [Fact]
    public async Task Counters_and_bridge_domains_keep_their_shapes()
    {
        var counters = await _factory.Admin().GetFromJsonAsync<JsonObject>("/api/v1/counters");
        var ports = counters!["ports"]!.AsArray();
        Assert.Equal(["und0", "acc10", "trunk0"], ports.Select(p => (string)p!["name"]!));
        Assert.Equal("access", (string)ports[1]!["kind"]!);
        Assert.NotNull(ports[0]!["rxPackets"]);
        Assert.NotNull(counters["drops"]!["decap.UnknownVtep"]);

        var domains = await _factory.Admin().GetFromJsonAsync<JsonArray>("/api/v1/bridge-domains");
        Assert.Equal("bd10", (string)domains![0]!["name"]!);
        Assert.NotNull(domains[0]!["macs"]);

        var interfaces = await _factory.Admin().GetFromJsonAsync<JsonArray>("/api/v1/interfaces");
        Assert.Equal("192.0.2.1", (string)interfaces![0]!["localAddress"]!);
        var drops = await _factory.Admin().GetFromJsonAsync<JsonArray>("/api/v1/drops");
        Assert.Contains(drops!, d => (string)d!["stage"]! == "decap" && (string)d["reason"]! == "UnknownVtep");
    }

    [Fact]
    public async Task An_invalid_commit_returns_every_error_with_its_path_and_applies_nothing()
    {
        var before = (await _factory.Admin().GetAsync(new Uri("/api/v1/config", UriKind.Relative))).Headers.GetValues("X-Isthmus-Revision").Single();
        var version = _factory.Runtime.SnapshotVersion;
        var doc = Documents.Lab(vlan: 5000);
        doc["users"] = new JsonArray(new JsonObject { ["name"] = "admin", ["role"] = "admin", ["passwordHash"] = "hunter2" });
        doc["bridgeDomains"]![0]!["segments"]![2]!["vteps"] = new JsonArray("not-an-address");

        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/config/commit", new { document = doc, comment = "bad" });

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, await response.Content.ReadAsStringAsync() + string.Join("\n", _factory.Logs.Lines.Select(l => l.Message)));
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        var errors = problem!["errors"]!.AsObject();
        Assert.Contains("bridgeDomains[0].segments[1].vlan", errors.Select(e => e.Key));
        Assert.Contains("users[0].passwordHash", errors.Select(e => e.Key));
        Assert.Contains(errors, e => e.Key.StartsWith("bridgeDomains[0].segments[2].vteps", StringComparison.Ordinal));
        Assert.Equal(before, (await _factory.Admin().GetAsync(new Uri("/api/v1/config", UriKind.Relative))).Headers.GetValues("X-Isthmus-Revision").Single());
        Assert.Equal(version, _factory.Runtime.SnapshotVersion);
    }

    [Fact]
    public async Task A_json_binding_error_is_reported_at_its_path()
    {
        var doc = Documents.Lab();
        doc["bridgeDomains"]![0]!["segments"]![1]!["vlan"] = "ten";
        doc["bridgeDomains"]![0]!["colour"] = "blue";
        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Single(problem!["errors"]!.AsObject(), e => e.Key.StartsWith("bridgeDomains[0]", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("turbo")]
    [InlineData("Busy")]
    [InlineData("")]
    public async Task An_unknown_poll_mode_is_reported_at_its_path(string mode)
    {
        Assert.Contains("interrupt", await DataPlaneRefusal("pollMode", mode), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gso")]
    [InlineData("UdpGso")]
    [InlineData("xdp")]
    [InlineData("")]
    public async Task An_unknown_vxlan_transmit_method_is_reported_at_its_path(string method)
    {
        var message = await DataPlaneRefusal("vxlanTransmit", method);
        Assert.Contains("raw", message, StringComparison.Ordinal);
        Assert.Contains("udpGso", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("udpGso")]
    public void A_vxlan_transmit_method_validates(string method)
    {
        var document = new ConfigDocument { DataPlane = new DataPlaneSettings { VxlanTransmit = method } };
        Assert.DoesNotContain(ConfigValidator.Validate(document, requireAdmin: false), e => e.Path.StartsWith("dataPlane", StringComparison.Ordinal));
        Assert.Equal("udpGso", new DataPlaneSettings().VxlanTransmit);
    }

    [Theory]
    [InlineData(10000)]
    [InlineData(32)]
    [InlineData(131072)]
    [InlineData(0)]
    [InlineData(-16384)]
    public async Task An_af_xdp_ring_size_that_is_no_power_of_two_in_range_is_reported_at_its_path(int frames)
    {
        var message = await DataPlaneRefusal("xdpRingFrames", frames);
        Assert.Contains("power of two from 64 to 65536", message, StringComparison.Ordinal);
        Assert.Contains("the default, 32768, is 64 MiB", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(16384)]
    [InlineData(32768)]
    [InlineData(65536)]
    public void An_af_xdp_ring_size_in_range_validates(int frames)
    {
        var document = new ConfigDocument { DataPlane = new DataPlaneSettings { XdpRingFrames = frames } };
        Assert.DoesNotContain(ConfigValidator.Validate(document, requireAdmin: false), e => e.Path.StartsWith("dataPlane", StringComparison.Ordinal));
        Assert.Equal(32768, new DataPlaneSettings().XdpRingFrames);
    }

    [Fact]
    public async Task Changing_ports_at_run_time_is_refused_with_the_reason()
    {
        var doc = Documents.Lab();
        doc["ports"]!.AsArray().Add(new JsonObject { ["name"] = "acc20", ["kind"] = "access", ["interface"] = "acc20" });
        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Contains("restart", (string)problem!["errors"]!["ports"]![0]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_accepts_a_good_document()
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/config/validate", Documents.Lab(vlan: 11));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task OpenApi_document_lists_the_api()
    {
        var text = await _factory.Admin().GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Contains("/api/v1/config/commit", text, StringComparison.Ordinal);
        Assert.Contains("/api/v1/capture", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Trace_arms_a_filter_and_injected_frames_are_traced()
    {
        var admin = _factory.Admin();
        var armed = await admin.PostAsJsonAsync("/api/v1/trace", new { port = "acc10", maxPackets = 2 });
        Assert.Equal(HttpStatusCode.Accepted, armed.StatusCode);

        var frame = Convert.ToHexString(Frames.Ethernet(Frames.Broadcast, Frames.HostA));
        var injected = await admin.PostAsJsonAsync("/api/v1/trace", new { port = "acc10", injectHex = frame });
        var id = (int)(await injected.Content.ReadFromJsonAsync<JsonObject>())!["traceId"]!;
        JsonArray? entries = null;
        var deadline = DateTime.UtcNow + Poll.Bound;
        while ((entries is null || entries.Count == 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
            entries = await admin.GetFromJsonAsync<JsonArray>($"/api/v1/trace?id={id}");
        }

        Assert.NotEmpty(entries!);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.PostAsJsonAsync("/api/v1/trace", new { port = "nope" })).StatusCode);
    }

    [Fact]
    public async Task Capture_returns_a_pcap_of_the_matching_frames()
    {
        var admin = _factory.Admin();
        var capture = admin.GetAsync(new Uri("/api/v1/capture?port=acc10&count=3&etherType=0x0806&timeoutSeconds=20", UriKind.Relative));
        var port = _factory.Ports["acc10"];
        for (var i = 0; i < 50 && !capture.IsCompleted; i++)
        {
            port.Enqueue(new MemoryFrame(Frames.Ethernet(Frames.Broadcast, Frames.HostA, etherType: 0x0800)));
            port.Enqueue(new MemoryFrame(Frames.Ethernet(Frames.Broadcast, Frames.HostA, etherType: 0x0806)));
            await Task.Delay(50);
        }

        var response = await capture;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/vnd.tcpdump.pcap", response.Content.Headers.ContentType?.MediaType);
        var pcap = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(0xa1b2c3d4u, BinaryPrimitives.ReadUInt32LittleEndian(pcap));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(pcap.AsSpan(20)));
        var records = 0;
        for (var at = 24; at < pcap.Length; records++)
        {
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(pcap.AsSpan(at + 8));
            Assert.Equal(0x0806, BinaryPrimitives.ReadUInt16BigEndian(pcap.AsSpan(at + 16 + 12)));
            at += 16 + length;
        }

        Assert.Equal(3, records);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync(new Uri("/api/v1/capture?port=nope", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Metrics_are_prometheus_text()
    {
        var response = await _factory.Reader().GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE isthmus_port_rx_packets_total counter", text, StringComparison.Ordinal);
        Assert.Contains("isthmus_port_rx_packets_total{port=\"acc10\",kind=\"access\"} ", text, StringComparison.Ordinal);
        Assert.Contains("isthmus_drops_total{stage=\"decap\",reason=\"UnknownVtep\"} ", text, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^isthmus_config_commits_total \d+$", text);
        Assert.DoesNotContain("\r", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_show_the_workers_heartbeat_durations_as_a_histogram()
    {
        // The worker's first heartbeat falls due within its first second of running.
        Assert.True(await Poll.Until(() => _factory.Runtime.Worker.HeartbeatTimings.Count > 0), "the worker ran no heartbeat");
        var text = await _factory.Reader().GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("# TYPE isthmus_worker_heartbeat_duration_us histogram\n", text, StringComparison.Ordinal);
        var buckets = Regex.Matches(text, @"(?m)^isthmus_worker_heartbeat_duration_us_bucket\{le=""([^""]+)""\} (\d+)$");
        Assert.Equal(["10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "+Inf"], buckets.Select(m => m.Groups[1].Value));
        var counts = buckets.Select(m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.True(counts.Zip(counts.Skip(1)).All(p => p.First <= p.Second), string.Join(", ", counts));
        var count = long.Parse(Regex.Match(text, @"(?m)^isthmus_worker_heartbeat_duration_us_count (\d+)$").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(count >= 1);
        Assert.Equal(count, counts[^1]);
        Assert.Matches(@"(?m)^isthmus_worker_heartbeat_duration_us_sum \d+$", text);
        var last = long.Parse(Regex.Match(text, @"(?m)^isthmus_worker_heartbeat_last_us (\d+)$").Groups[1].Value, CultureInfo.InvariantCulture);
        var max = long.Parse(Regex.Match(text, @"(?m)^isthmus_worker_heartbeat_max_us (\d+)$").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(last <= max, $"last {last} us, max {max} us");
    }

    /// <summary>Validates the lab's document with one <c>dataPlane</c> field set; asserts a 400 ProblemDetails and returns the message at its path.</summary>
    private async Task<string> DataPlaneRefusal(string field, JsonNode? value)
    {
        var doc = Documents.Lab();
        doc["dataPlane"] = new JsonObject { [field] = value };
        var response = await _factory.Admin().PostAsJsonAsync("/api/v1/config/validate", doc);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonObject>();
        return (string)problem!["errors"]![$"dataPlane.{field}"]![0]!;
    }
}
