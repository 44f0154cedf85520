using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Logging;
using Isthmus.ControlPlane.Store;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Apply;

/// <summary>The last committed revision (null for an empty store) and its parsed document.</summary>
public sealed record RunningConfig(Revision? Revision, ConfigDocument Document);

/// <summary>The result of a commit, a rollback or a validation.</summary>
/// <param name="CompileAndSwap">Validation + compilation + publication (not the store write): what a commit costs the data plane.</param>
public sealed record CommitOutcome(Revision? Revision, IReadOnlyList<ProgramError> Errors, TimeSpan CompileAndSwap)
{
    public bool Ok => Errors.Count == 0;
}

/// <summary>
/// The configuration's single writer: validate the whole document (control-plane rules and
/// <see cref="SnapshotCompiler"/>, every error at once), compile it, write the revision, then publish the
/// snapshot with one swap. Also commit-confirmed (an unconfirmed commit rolls back by itself on a
/// <see cref="TimeProvider"/> timer) and rollback.
/// </summary>
/// <remarks>
/// Order matters for crash safety: compile first (nothing is written if anything is wrong), write the
/// revision (one SQLite transaction), publish last. A crash between write and publish is harmless:
/// start-up applies the last committed revision. All writers go through one lock, so commits are
/// serialised and each one is validated against the revision it replaces.
/// </remarks>
public sealed partial class ConfigService : IDisposable
{
    private readonly Lock _gate = new();
    private readonly ConfigStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<ConfigService> _logger;
    private IDataPlaneTarget? _target;
    private ITimer? _confirmTimer;
    private RunningConfig _current;

    public ConfigService(ConfigStore store, TimeProvider time, ILogger<ConfigService> logger)
    {
        _store = store;
        _time = time;
        _logger = logger;
        var head = store.Head();
        var document = new ConfigDocument();
        if (head is not null)
        {
            var parsed = ConfigDocumentJson.Parse(head.Document);
            document = parsed.Document ?? throw new InvalidOperationException(
                $"revision {head.Id} in {store.Path} no longer parses:{Environment.NewLine}{string.Join(Environment.NewLine, parsed.Errors)}");
            LogLoaded(logger, head.Id, store.Path);
        }

        _current = new RunningConfig(head, document);
        ResumePendingConfirm();
    }

    public ConfigStore Store => _store;

    /// <summary>The last committed revision (null for an empty store) and its document.</summary>
    public RunningConfig Current => Volatile.Read(ref _current);

    public PendingConfirm? Pending => _store.Pending();

    /// <summary>
    /// Starts the data plane on the current revision and connects it, under the commit lock, so no commit
    /// can land between reading the revision and attaching: from now on every commit is published to it.
    /// </summary>
    public void Attach(IDataPlaneTarget target, Action<RunningConfig> start)
    {
        ArgumentNullException.ThrowIfNull(start);
        lock (_gate)
        {
            start(_current);
            _target = target;
        }
    }

    /// <summary>Validates a document as a commit would, against the running revision, without writing anything.</summary>
    public CommitOutcome Validate(JsonObject raw)
    {
        lock (_gate)
        {
            var started = Stopwatch.GetTimestamp();
            var (_, errors, _) = Prepare(raw);
            return new CommitOutcome(null, errors, Stopwatch.GetElapsedTime(started));
        }
    }

    /// <summary>
    /// Commits a document. A document without "users" or "apiTokens" keeps the current ones, so a
    /// network change never has to carry credentials. With <paramref name="confirmMinutes"/> the commit
    /// rolls back by itself unless <see cref="Confirm"/> is called in time.
    /// </summary>
    public CommitOutcome Commit(JsonObject raw, string? comment, int? confirmMinutes, Actor actor)
    {
        lock (_gate)
        {
            if (confirmMinutes is < 1 or > 24 * 60)
            {
                return new CommitOutcome(null, [new("confirmMinutes", "commit-confirmed takes 1 to 1440 minutes")], TimeSpan.Zero);
            }

            if (confirmMinutes is not null && _current.Revision is null)
            {
                return new CommitOutcome(null, [new("confirmMinutes", "the first revision cannot be commit-confirmed: there is nothing to roll back to")], TimeSpan.Zero);
            }

            return CommitLocked(raw, comment ?? "", confirmMinutes is { } m ? TimeSpan.FromMinutes(m) : null, actor, "commit");
        }
    }

    /// <summary>Confirms the pending commit-confirmed. False when nothing is pending.</summary>
    public bool Confirm(Actor actor)
    {
        lock (_gate)
        {
            if (_store.Pending() is not { } pending)
            {
                return false;
            }

            _confirmTimer?.Dispose();
            _confirmTimer = null;
            _store.Confirm(pending.Revision, new AuditRecord(actor.Name, actor.Address, $"confirm revision {pending.Revision}", "ok"));
            LogConfirmed(_logger, pending.Revision, actor.Name);
            return true;
        }
    }

    /// <summary>Rolls back to <paramref name="revision"/>: a new revision holding that revision's document.</summary>
    public CommitOutcome Rollback(long revision, string? comment, Actor actor)
    {
        lock (_gate)
        {
            return RollbackLocked(revision, comment ?? $"rollback to revision {revision}", actor, "rollback");
        }
    }

    /// <summary>Commits a change computed from the current document (users, tokens): read, modify, commit under one lock.</summary>
    public CommitOutcome Change(Func<ConfigDocument, ConfigDocument> change, string comment, Actor actor)
    {
        lock (_gate)
        {
            var next = change(_current.Document);
            return CommitLocked(ConfigDocumentJson.ToNode(next), comment, null, actor, "change");
        }
    }

    /// <summary>The diff between two revisions (0 = an empty document), or null when one does not exist.</summary>
    public IReadOnlyList<DiffEntry>? Diff(long from, long to)
    {
        var a = Load(from);
        var b = Load(to);
        return a is null || b is null ? null : ConfigDiff.Compare(a, b);
    }

    /// <summary>The diff from the running revision to a candidate document, as it would be committed.</summary>
    public IReadOnlyList<DiffEntry> DiffCandidate(JsonObject raw)
    {
        lock (_gate)
        {
            var candidate = WithCarriedCredentials(raw);
            var parsed = ConfigDocumentJson.Parse(candidate);
            JsonNode next = parsed.Document is { } d ? ConfigDocumentJson.ToNode(d) : candidate;
            return ConfigDiff.Compare(ConfigDocumentJson.ToNode(_current.Document), next);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _confirmTimer?.Dispose();
            _confirmTimer = null;
        }
    }

    private JsonObject? Load(long id)
    {
        if (id == 0)
        {
            return ConfigDocumentJson.ToNode(new ConfigDocument());
        }

        return _store.Get(id) is { } r ? JsonNode.Parse(r.Document)?.AsObject() : null;
    }

    private CommitOutcome RollbackLocked(long revision, string comment, Actor actor, string action)
    {
        if (_store.Get(revision) is not { } old)
        {
            return new CommitOutcome(null, [new("revision", $"there is no revision {revision}")], TimeSpan.Zero);
        }

        var raw = JsonNode.Parse(old.Document)!.AsObject();
        return CommitLocked(raw, comment, null, actor, action);
    }

    private CommitOutcome CommitLocked(JsonObject raw, string comment, TimeSpan? confirm, Actor actor, string action)
    {
        var started = Stopwatch.GetTimestamp();
        var (document, errors, snapshot) = Prepare(raw);
        var prepared = Stopwatch.GetElapsedTime(started);
        if (errors.Count > 0)
        {
            LogRejected(_logger, action, actor.Name, errors.Count, errors[0].ToString());
            return new CommitOutcome(null, errors, prepared);
        }

        var confirmBy = confirm is { } c ? _time.GetUtcNow() + c : (DateTimeOffset?)null;
        var revision = _store.Commit(
            actor.Name,
            comment,
            ConfigDocumentJson.ToJson(document!),
            confirmBy,
            new AuditRecord(actor.Name, actor.Address, $"{action}: {comment}", $"revision {_store.Count + 1}"));
        Volatile.Write(ref _current, new RunningConfig(revision, document!));

        _confirmTimer?.Dispose();
        _confirmTimer = null;
        var publishStarted = Stopwatch.GetTimestamp();
        _target?.Publish(snapshot!);
        var elapsed = prepared + Stopwatch.GetElapsedTime(publishStarted);
        LogCommitted(_logger, revision.Id, actor.Name, actor.Address, comment, elapsed.TotalMilliseconds);
        if (confirmBy is { } deadline)
        {
            ArmConfirmTimer(revision.Id, deadline);
            LogConfirmArmed(_logger, revision.Id, deadline);
        }

        return new CommitOutcome(revision, [], elapsed);
    }

    /// <summary>Validates everything and compiles: the errors of every layer together, or a snapshot ready to publish.</summary>
    private (ConfigDocument? Document, List<ProgramError> Errors, DataPlaneSnapshot? Snapshot) Prepare(JsonObject raw)
    {
        var parsed = ConfigDocumentJson.Parse(raw);
        var errors = new List<ProgramError>(parsed.Errors);
        if (parsed.Document is not { } document)
        {
            return (null, errors, null);
        }

        var current = _current.Document;
        document = WithCarriedCredentials(raw, document, current);
        var requireAdmin = current.Users.Any(u => u.Role == Role.Admin) || current.ApiTokens.Any(t => t.Role == Role.Admin);
        errors.AddRange(ConfigValidator.Validate(document, requireAdmin));
        var nextVersion = (_current.Revision?.Id ?? 0) + 1;
        DataPlaneSnapshot? snapshot = null;
        try
        {
            SnapshotCompiler.TryCompile(document.Program, nextVersion, _time.TimestampFrequency, out snapshot, out var compileErrors);
            errors.AddRange(compileErrors);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A compiler bug must not take the API down or half-apply anything: the running revision stays.
            errors.Add(new ProgramError("$", $"the data-plane compiler failed on this document ({e.GetType().Name}: {e.Message}); nothing was applied"));
        }
        if (_target?.Started is { } running)
        {
            errors.AddRange(FixedWhileRunning(running, document));
        }

        return (document, errors, errors.Count == 0 ? snapshot : null);
    }

    /// <summary>
    /// Ports and data-plane settings are opened once, at start (sockets, namespaces, the pool). A commit
    /// that changes them is refused with the reason; import it offline and restart (README). The exception is
    /// <c>dataPlane.cpuIdleLatencyUs</c>, a PM QoS request the runtime changes in place at publish.
    /// </summary>
    private static IEnumerable<ProgramError> FixedWhileRunning(ConfigDocument running, ConfigDocument next)
    {
        if (running.DataPlane with { CpuIdleLatencyUs = null } != next.DataPlane with { CpuIdleLatencyUs = null })
        {
            yield return new("dataPlane", "data-plane settings (namespace, pool, batch) are fixed while the appliance runs: import the document with `Appliance.Host import` and restart");
        }

        var a = running.Program.Ports;
        var b = next.Program.Ports;
        var same = a.Count == b.Count;
        for (var i = 0; same && i < a.Count; i++)
        {
            same = a[i] == b[i];
        }

        if (!same)
        {
            yield return new("ports", $"the port list differs from the running one ({string.Join(", ", a.Select(p => p.Name))}); ports are opened at start: import the document with `Appliance.Host import` and restart");
        }
    }

    /// <summary>A document that does not mention users or tokens keeps the current ones.</summary>
    private static ConfigDocument WithCarriedCredentials(JsonObject raw, ConfigDocument document, ConfigDocument current)
    {
        bool Mentions(string key) => raw.Any(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase));
        return document with
        {
            Users = Mentions(ConfigDocumentJson.UsersKey) ? document.Users : current.Users,
            ApiTokens = Mentions(ConfigDocumentJson.ApiTokensKey) ? document.ApiTokens : current.ApiTokens,
        };
    }

    private JsonObject WithCarriedCredentials(JsonObject raw)
    {
        var copy = raw.DeepClone().AsObject();
        var current = ConfigDocumentJson.ToNode(_current.Document);
        foreach (var key in new[] { ConfigDocumentJson.UsersKey, ConfigDocumentJson.ApiTokensKey })
        {
            if (!copy.Any(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase)))
            {
                copy[key] = current[key]!.DeepClone();
            }
        }

        return copy;
    }

    private void ResumePendingConfirm()
    {
        // A commit-confirmed outlives a restart: its deadline is in the store.
        if (_store.Pending() is { } pending)
        {
            lock (_gate)
            {
                ArmConfirmTimer(pending.Revision, pending.Deadline);
            }
        }
    }

    private void ArmConfirmTimer(long revision, DateTimeOffset deadline)
    {
        var due = deadline - _time.GetUtcNow();
        if (due < TimeSpan.Zero)
        {
            due = TimeSpan.Zero;
        }

        _confirmTimer?.Dispose();
        _confirmTimer = _time.CreateTimer(_ => Expire(revision), null, due, Timeout.InfiniteTimeSpan);
    }

    private void Expire(long revision)
    {
        lock (_gate)
        {
            if (_store.Pending() is not { } pending || pending.Revision != revision)
            {
                return;
            }

            LogConfirmExpired(_logger, revision, pending.Previous);
            var outcome = RollbackLocked(
                pending.Previous,
                string.Create(CultureInfo.InvariantCulture, $"commit-confirmed: revision {revision} was not confirmed by {pending.Deadline:O}; back to revision {pending.Previous}"),
                new Actor("commit-confirmed", "local"),
                "auto-rollback");
            if (!outcome.Ok)
            {
                LogRejected(_logger, "auto-rollback", "commit-confirmed", outcome.Errors.Count, outcome.Errors[0].ToString());
            }
        }
    }

    [LoggerMessage(EventId = LogEvents.ConfigLoaded, Level = LogLevel.Information, Message = "Configuration revision {Revision} loaded from {Path}")]
    private static partial void LogLoaded(ILogger logger, long revision, string path);

    [LoggerMessage(EventId = LogEvents.ConfigCommitted, Level = LogLevel.Information, Message = "Revision {Revision} committed by {Actor} from {Address} ({Comment}); validate+compile+swap {Milliseconds:F1} ms")]
    private static partial void LogCommitted(ILogger logger, long revision, string actor, string address, string comment, double milliseconds);

    [LoggerMessage(EventId = LogEvents.ConfigRejected, Level = LogLevel.Warning, Message = "{Action} by {Actor} rejected with {Count} error(s), first: {First}")]
    private static partial void LogRejected(ILogger logger, string action, string actor, int count, string first);

    [LoggerMessage(EventId = LogEvents.CommitConfirmArmed, Level = LogLevel.Warning, Message = "Revision {Revision} is commit-confirmed: it rolls back unless confirmed by {Deadline:O}")]
    private static partial void LogConfirmArmed(ILogger logger, long revision, DateTimeOffset deadline);

    [LoggerMessage(EventId = LogEvents.CommitConfirmed, Level = LogLevel.Information, Message = "Revision {Revision} confirmed by {Actor}")]
    private static partial void LogConfirmed(ILogger logger, long revision, string actor);

    [LoggerMessage(EventId = LogEvents.CommitConfirmExpired, Level = LogLevel.Warning, Message = "Revision {Revision} was not confirmed in time: rolling back to revision {Previous}")]
    private static partial void LogConfirmExpired(ILogger logger, long revision, long previous);
}
