using Isthmus.ControlPlane.Store;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Store;

public sealed class ConfigStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ManualTimeProvider _time = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Every_commit_is_a_revision_with_author_time_comment_and_document()
    {
        using var store = _dir.OpenStore(_time);
        Assert.Null(store.Head());
        var first = store.Commit("alice", "initial", "{\"a\":1}");
        _time.Advance(TimeSpan.FromMinutes(5));
        var second = store.Commit("bob", "second", "{\"a\":2}");

        Assert.Equal(1, first.Id);
        Assert.Equal(2, second.Id);
        var head = store.Head()!;
        Assert.Equal("bob", head.Author);
        Assert.Equal("second", head.Comment);
        Assert.Equal("{\"a\":2}", head.Document);
        Assert.Equal(_time.GetUtcNow(), head.Time);
        Assert.Equal("{\"a\":1}", store.Get(1)!.Document);
        Assert.Equal([2L, 1L], store.List().Select(r => r.Id));
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public void The_store_is_in_WAL_mode_and_survives_reopening()
    {
        var path = _dir.File("config.db");
        using (var store = ConfigStore.Open(path, _time))
        {
            store.Commit("alice", "one", "{}");
        }

        using (var again = ConfigStore.Open(path, _time))
        {
            Assert.Equal(1, again.Head()!.Id);
            Assert.Equal("ok", again.IntegrityCheck());
        }

        Assert.True(File.Exists(path + "-wal") || File.Exists(path), "WAL side file or database");
    }

    [Fact]
    public void Commit_confirmed_marker_is_written_with_the_revision_and_cleared_by_confirm()
    {
        using var store = _dir.OpenStore(_time);
        store.Commit("alice", "base", "{}");
        var deadline = _time.GetUtcNow().AddMinutes(5);
        var r = store.Commit("alice", "risky", "{\"x\":1}", deadline);

        Assert.Equal(new PendingConfirm(r.Id, 1, deadline), store.Pending());
        Assert.True(store.Confirm(r.Id, new AuditRecord("alice", "10.0.0.1", "confirm", "ok")));
        Assert.Null(store.Pending());
        Assert.False(store.Confirm(r.Id));
    }

    [Fact]
    public void A_later_commit_supersedes_a_pending_confirmation()
    {
        using var store = _dir.OpenStore(_time);
        store.Commit("alice", "base", "{}");
        store.Commit("alice", "risky", "{}", _time.GetUtcNow().AddMinutes(5));
        store.Commit("alice", "next", "{}");
        Assert.Null(store.Pending());
    }

    [Fact]
    public void Audit_lines_record_who_what_when_and_from_where()
    {
        using var store = _dir.OpenStore(_time);
        store.Commit("alice", "initial", "{}", audit: new AuditRecord("alice", "192.0.2.9", "commit: initial", "revision 1"));
        store.Audit(new AuditRecord("bob", "192.0.2.10", "POST /api/v1/trace", "202"));

        var log = store.AuditLog();
        Assert.Equal(2, log.Count);
        Assert.Equal(("bob", "192.0.2.10", "POST /api/v1/trace", "202"), (log[0].Actor, log[0].Address, log[0].Action, log[0].Outcome));
        Assert.Equal(("alice", "192.0.2.9"), (log[1].Actor, log[1].Address));
        Assert.Equal(_time.GetUtcNow(), log[1].Time);
    }

    [Fact]
    public void Concurrent_commits_are_serialised_into_consecutive_revisions()
    {
        using var store = _dir.OpenStore(TimeProvider.System);
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => store.Commit($"writer{i % 8}", $"c{i}", $"{{\"i\":{i}}}"));
        var ids = store.List(1000).Select(r => r.Id).Order().ToList();
        Assert.Equal(Enumerable.Range(1, 200).Select(i => (long)i), ids);
        Assert.Equal("ok", store.IntegrityCheck());
    }

    [Fact]
    public void Two_connections_to_one_file_do_not_lose_commits()
    {
        var path = _dir.File("shared.db");
        using var a = ConfigStore.Open(path, TimeProvider.System);
        using var b = ConfigStore.Open(path, TimeProvider.System);
        Parallel.For(0, 100, i => (i % 2 == 0 ? a : b).Commit("w", $"c{i}", "{}"));
        Assert.Equal(100, a.Count);
        Assert.Equal(100, b.Head()!.Id);
    }
}
