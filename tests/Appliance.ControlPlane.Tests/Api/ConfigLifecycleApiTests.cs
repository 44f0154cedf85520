using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Io;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>Commit, diff, rollback, commit-confirmed, users, tokens and audit over HTTP, on a fresh appliance per test.</summary>
public sealed class ConfigLifecycleApiTests : IDisposable
{
    private readonly ApplianceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Commit_creates_a_revision_applies_it_and_shows_in_revisions_and_diff()
    {
        var admin = _factory.Admin();
        var response = await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab(vlan: 11, credentials: false), comment = "move bd10 to VLAN 11" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(2, (long)body!["revision"]!);
        Assert.Equal(2, _factory.Runtime.SnapshotVersion);

        var revisions = await admin.GetFromJsonAsync<JsonArray>("/api/v1/config/revisions");
        Assert.Equal("move bd10 to VLAN 11", (string)revisions![0]!["comment"]!);
        Assert.Equal("automation", (string)revisions[0]!["author"]!);

        var diff = await admin.GetFromJsonAsync<JsonArray>("/api/v1/config/diff?from=1&to=2");
        var entry = Assert.Single(diff!);
        Assert.Equal("changed", (string)entry!["op"]!);
        Assert.Equal("bridgeDomains[0].segments[1].vlan", (string)entry["path"]!);
        Assert.Equal(10, (int)entry["old"]!);
        Assert.Equal(11, (int)entry["new"]!);

        // The users were carried over: the admin can still log in.
        Assert.Equal(HttpStatusCode.OK, (await _factory.WithBasic("admin", Documents.AdminPassword).GetAsync(new Uri("/api/v1/config", UriKind.Relative))).StatusCode);

        var candidate = await admin.PostAsJsonAsync("/api/v1/config/diff", Documents.Lab(vlan: 12, credentials: false));
        var candidateDiff = await candidate.Content.ReadFromJsonAsync<JsonArray>();
        Assert.Equal("bridgeDomains[0].segments[1].vlan", (string)Assert.Single(candidateDiff!)!["path"]!);
    }

    [Fact]
    public async Task A_committed_program_forwards_at_once()
    {
        var admin = _factory.Admin();
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab(vlan: 42, credentials: false) })).StatusCode);
        _factory.Ports["acc10"].Enqueue(new MemoryFrame(Frames.Ethernet(Frames.Broadcast, Frames.HostA)));
        var trunk = _factory.Ports["trunk0"];
        _ = await Poll.Until(() => trunk.Transmitted.Count > 0);
        var sent = Assert.Single(trunk.Transmitted).Bytes;
        Assert.Equal(42, ((sent[14] << 8) | sent[15]) & 0x0FFF);
    }

    [Fact]
    public async Task Rollback_commits_the_old_document_as_a_new_revision()
    {
        var admin = _factory.Admin();
        await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab(vlan: 11, credentials: false) });
        var response = await admin.PostAsJsonAsync("/api/v1/config/rollback", new { revision = 1 });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(3, (long)(await response.Content.ReadFromJsonAsync<JsonObject>())!["revision"]!);
        Assert.Empty((await admin.GetFromJsonAsync<JsonArray>("/api/v1/config/diff?from=1&to=3"))!);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.PostAsJsonAsync("/api/v1/config/rollback", new { revision = 99 })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync(new Uri("/api/v1/config/revisions/99", UriKind.Relative))).StatusCode);
        var one = await admin.GetFromJsonAsync<JsonObject>("/api/v1/config/revisions/1");
        Assert.Equal("seed", (string)one!["revision"]!["comment"]!);
    }

    [Fact]
    public async Task Commit_confirmed_waits_for_confirm()
    {
        var admin = _factory.Admin();
        var response = await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab(vlan: 11, credentials: false), confirmMinutes = 5 });
        Assert.NotNull((await response.Content.ReadFromJsonAsync<JsonObject>())!["confirmBy"]);
        var pending = await admin.GetFromJsonAsync<JsonObject>("/api/v1/config/pending");
        Assert.Equal(2, (long)pending!["revision"]!);
        Assert.Equal(1, (long)pending["previous"]!);

        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync(new Uri("/api/v1/config/confirm", UriKind.Relative), null)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.GetAsync(new Uri("/api/v1/config/pending", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await admin.PostAsync(new Uri("/api/v1/config/confirm", UriKind.Relative), null)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab(), confirmMinutes = 0 })).StatusCode);
    }

    [Fact]
    public async Task Users_and_tokens_are_managed_through_revisions()
    {
        var admin = _factory.Admin();
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsJsonAsync("/api/v1/users", new { name = "noc", role = "read-only", password = "a long enough password" })).StatusCode);
        var noc = _factory.WithBasic("noc", "a long enough password");
        Assert.Equal(HttpStatusCode.OK, (await noc.GetAsync(new Uri("/api/v1/counters", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await noc.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab() })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.PostAsJsonAsync("/api/v1/users", new { name = "x", role = "admin", password = "short" })).StatusCode);

        var issued = await admin.PostAsJsonAsync("/api/v1/tokens", new { name = "ci", role = "admin" });
        var token = (string)(await issued.Content.ReadFromJsonAsync<JsonObject>())!["token"]!;
        Assert.StartsWith("ist_", token, StringComparison.Ordinal);
        var config = await _factory.WithBearer(token).GetFromJsonAsync<JsonObject>("/api/v1/config");
        Assert.DoesNotContain(token, config!.ToJsonString(), StringComparison.Ordinal);
        Assert.Contains(config["apiTokens"]!.AsArray(), t => (string)t!["name"]! == "ci" && ((string)t["tokenHash"]!).StartsWith("sha256:", StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.OK, (await admin.DeleteAsync(new Uri("/api/v1/tokens/ci", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.WithBearer(token).GetAsync(new Uri("/api/v1/config", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.DeleteAsync(new Uri("/api/v1/users/noc", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync(new Uri("/api/v1/users/noc", UriKind.Relative))).StatusCode);
        var users = await admin.GetFromJsonAsync<JsonArray>("/api/v1/users");
        Assert.Equal(["admin"], users!.Select(u => (string)u!["name"]!));
        var tokens = await admin.GetFromJsonAsync<JsonArray>("/api/v1/tokens");
        Assert.Equal(2, tokens!.Count);
    }

    [Fact]
    public async Task The_last_admin_cannot_be_removed()
    {
        var admin = _factory.Admin();
        var doc = Documents.Lab();
        doc["users"] = new JsonArray();
        doc["apiTokens"] = new JsonArray();
        var response = await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = doc });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotNull((await response.Content.ReadFromJsonAsync<JsonObject>())!["errors"]!["users"]);
    }

    [Fact]
    public async Task Every_change_is_audited_with_who_and_where_including_refusals()
    {
        var admin = _factory.Admin();
        await admin.PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab(vlan: 11, credentials: false), comment = "audit me" });
        await _factory.Reader().PostAsJsonAsync("/api/v1/config/commit", new { document = Documents.Lab() });
        await _factory.CreateClient().PostAsJsonAsync("/api/v1/trace", new { port = "acc10" });
        await admin.PostAsJsonAsync("/api/v1/trace", new { port = "acc10" });

        var audit = await admin.GetFromJsonAsync<JsonArray>("/api/v1/audit");
        var lines = audit!.Select(a => ((string)a!["actor"]!, (string)a["action"]!, (string)a["outcome"]!)).ToList();
        Assert.Contains(lines, l => l.Item1 == "automation" && l.Item2.Contains("audit me", StringComparison.Ordinal) && l.Item3 == "revision 2");
        Assert.Contains(("grafana", "POST /api/v1/config/commit", "403"), lines);
        Assert.Contains(("anonymous", "POST /api/v1/trace", "401"), lines);
        Assert.Contains(("automation", "POST /api/v1/trace", "202"), lines);
        Assert.All(audit!, a => Assert.False(string.IsNullOrEmpty((string)a!["address"]!)));
    }
}
