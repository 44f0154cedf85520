using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Store;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isthmus.ControlPlane.Tests.Apply;

public sealed class ConfigServiceTests : IDisposable
{
    private static readonly Actor Alice = new("alice", "192.0.2.50");
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _time = new();
    private readonly ConfigStore _store;
    private readonly RecordingTarget _target = new();

    public ConfigServiceTests()
    {
        _store = _dir.OpenStore(_time);
    }

    public void Dispose()
    {
        _store.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Every_error_of_every_layer_is_reported_at_once_and_nothing_is_written()
    {
        using var service = Service();
        var doc = Documents.Lab(vlan: 0);
        doc["dataPlane"] = new JsonObject { ["rxBatch"] = 1000, ["workerCpu"] = 4096, ["pollMode"] = "spin", ["xdpRingFrames"] = 10000, ["cpuIdleLatencyUs"] = -5, ["vxlanTransmit"] = "sendmmsg" };
        doc["apiTokens"]![0]!["tokenHash"] = "plain-text";
        var outcome = service.Commit(doc, "bad", null, Alice);

        Assert.False(outcome.Ok);
        Assert.Equal(
            ["apiTokens[0].tokenHash", "bridgeDomains[0].segments[1].vlan", "dataPlane.cpuIdleLatencyUs", "dataPlane.pollMode", "dataPlane.rxBatch", "dataPlane.vxlanTransmit", "dataPlane.workerCpu", "dataPlane.xdpRingFrames"],
            outcome.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.Null(_store.Head());
        Assert.Empty(_target.Published);
    }

    [Fact]
    public void A_commit_is_written_then_published_as_one_snapshot_of_that_revision()
    {
        using var service = Service();
        var r1 = service.Commit(Documents.Lab(), "one", null, Alice);
        var r2 = service.Commit(Documents.Lab(vlan: 20, credentials: false), "two", null, Alice);

        Assert.Equal([1L, 2L], _target.Published.Select(s => s.Version));
        Assert.Equal(2, r2.Revision!.Id);
        Assert.Single(service.Current.Document.Users); // carried over from revision 1
        Assert.True(r1.CompileAndSwap > TimeSpan.Zero);
        var audit = Assert.Single(_store.AuditLog(), a => a.Action == "commit: two");
        Assert.Equal(("alice", "192.0.2.50"), (audit.Actor, audit.Address));
    }

    [Fact]
    public void An_unconfirmed_commit_rolls_back_by_itself_when_its_time_is_up()
    {
        using var service = Service();
        service.Commit(Documents.Lab(), "good", null, Alice);
        var risky = service.Commit(Documents.Lab(vlan: 99, credentials: false), "risky", 10, Alice);
        Assert.Equal(_time.GetUtcNow().AddMinutes(10), risky.Revision!.ConfirmBy);

        _time.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(2, service.Current.Revision!.Id);

        _time.Advance(TimeSpan.FromMinutes(1));
        var head = service.Current.Revision!;
        Assert.Equal(3, head.Id);
        Assert.Equal("commit-confirmed", head.Author);
        Assert.Empty(service.Diff(1, 3)!);
        Assert.Equal(3, _target.Published[^1].Version);
        Assert.Null(service.Pending);
        Assert.Contains(_store.AuditLog(), a => a.Actor == "commit-confirmed" && a.Action.StartsWith("auto-rollback", StringComparison.Ordinal));
    }

    [Fact]
    public void A_confirmed_commit_stays()
    {
        using var service = Service();
        service.Commit(Documents.Lab(), "good", null, Alice);
        service.Commit(Documents.Lab(vlan: 99, credentials: false), "risky", 10, Alice);
        Assert.True(service.Confirm(Alice));
        _time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(2, service.Current.Revision!.Id);
        Assert.False(service.Confirm(Alice));
    }

    [Fact]
    public void A_pending_confirmation_survives_a_restart_and_still_rolls_back()
    {
        using (var before = Service())
        {
            before.Commit(Documents.Lab(), "good", null, Alice);
            before.Commit(Documents.Lab(vlan: 99, credentials: false), "risky", 5, Alice);
        }

        _time.Advance(TimeSpan.FromMinutes(7)); // the appliance was down past the deadline
        using var after = Service();
        Assert.Equal(2, after.Current.Revision!.Id);
        _time.Advance(TimeSpan.Zero);
        Assert.Equal(3, after.Current.Revision!.Id);
        Assert.Equal(10, after.Current.Document.Program.BridgeDomains[0].Segments[1].Vlan);
    }

    [Fact]
    public void Rollback_to_any_revision_and_diff_between_any_two()
    {
        using var service = Service();
        service.Commit(Documents.Lab(), "v10", null, Alice);
        service.Commit(Documents.Lab(vlan: 20, credentials: false), "v20", null, Alice);
        service.Commit(Documents.Lab(vlan: 30, extraDomains: 1, credentials: false), "v30+bdx0", null, Alice);

        var diff = service.Diff(2, 3)!;
        Assert.Contains(diff, d => d.Op == DiffOp.Changed && d.Path == "bridgeDomains[0].segments[1].vlan");
        Assert.Contains(diff, d => d.Op == DiffOp.Added && d.Path == "bridgeDomains[1]");
        Assert.Contains(service.Diff(0, 1)!, d => d.Op == DiffOp.Added && d.Path == "ports[0]");
        Assert.Null(service.Diff(1, 42));

        var back = service.Rollback(1, null, Alice);
        Assert.True(back.Ok);
        Assert.Equal("rollback to revision 1", back.Revision!.Comment);
        Assert.Empty(service.Diff(1, 4)!);
        Assert.False(service.Rollback(77, null, Alice).Ok);
    }

    [Fact]
    public void Concurrent_commits_through_the_service_are_serialised()
    {
        using var service = Service();
        service.Commit(Documents.Lab(), "base", null, Alice);
        Parallel.For(0, 40, i => Assert.True(service.Commit(Documents.Lab(vlan: 100 + i, credentials: false), $"c{i}", null, Alice).Ok));
        Assert.Equal(41, _store.Count);
        Assert.Equal(Enumerable.Range(1, 41).Select(i => (long)i), _target.Published.Select(s => s.Version));
        Assert.Equal("ok", _store.IntegrityCheck());
    }

    [Fact]
    public void Ports_and_settings_are_fixed_while_the_data_plane_runs()
    {
        using var service = Service();
        service.Commit(Documents.Lab(), "base", null, Alice);
        _target.Started = service.Current.Document;
        var doc = Documents.Lab(credentials: false);
        doc["ports"]![1]!["interface"] = "eth9";
        doc["dataPlane"] = new JsonObject { ["poolSize"] = 4096 };
        var outcome = service.Validate(doc);
        Assert.Equal(["dataPlane", "ports"], outcome.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_new_program_section_flows_through_the_document_unchanged()
    {
        // Whatever DataPlaneProgram serialises (firewall, NAT, gateways as they land) is a top-level key.
        var program = ConfigDocumentJson.ToNode(new ConfigDocument());
        var expected = System.Text.Json.JsonSerializer.SerializeToNode(new DataPlaneProgram(), ConfigDocumentJson.Options)!.AsObject().Select(p => p.Key);
        Assert.Superset(expected.ToHashSet(), program.Select(p => p.Key).ToHashSet());
        var parsed = ConfigDocumentJson.Parse(program.ToJsonString());
        Assert.Empty(parsed.Errors);
        Assert.Equal(ConfigDocumentJson.ToJson(new ConfigDocument()), ConfigDocumentJson.ToJson(parsed.Document!));
    }

    private ConfigService Service()
    {
        var service = new ConfigService(_store, _time, NullLogger<ConfigService>.Instance);
        service.Attach(_target, _ => { });
        return service;
    }

    private sealed class RecordingTarget : IDataPlaneTarget
    {
        public List<DataPlaneSnapshot> Published { get; } = [];

        public ConfigDocument? Started { get; set; }

        public void Publish(DataPlaneSnapshot snapshot)
        {
            lock (Published)
            {
                Published.Add(snapshot);
            }
        }
    }
}
