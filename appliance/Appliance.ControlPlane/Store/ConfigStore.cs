using System.Globalization;

namespace Isthmus.ControlPlane.Store;

/// <summary>
/// The configuration store: SQLite in WAL mode, one transaction per commit. Every commit is a
/// revision holding the whole document, so rollback is "commit an old document again" and diff is
/// "compare two documents". A pending commit-confirmed and the audit log live beside them.
/// </summary>
/// <remarks>
/// Crash safety comes from SQLite: the revision row, the commit-confirmed marker and the audit line
/// of one commit are written in one transaction with synchronous=FULL, so a kill -9 at any point leaves
/// the store at the old revision or the new one. The store is document-agnostic (it keeps JSON text);
/// validating and applying is <see cref="Apply.ConfigService"/>'s job. One connection, one lock:
/// commits are serialised.
/// </remarks>
public sealed class ConfigStore : IDisposable
{
    public const string DefaultPath = "/var/lib/isthmus/config.db";

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS revisions(
            id INTEGER PRIMARY KEY,
            author TEXT NOT NULL,
            time TEXT NOT NULL,
            comment TEXT NOT NULL,
            document TEXT NOT NULL,
            confirm_by TEXT NULL);
        CREATE TABLE IF NOT EXISTS pending_confirm(
            singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            revision INTEGER NOT NULL REFERENCES revisions(id),
            previous INTEGER NOT NULL REFERENCES revisions(id),
            deadline TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS audit(
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            address TEXT NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL);
        """;

    private readonly Lock _gate = new();
    private readonly SqliteConnection _db;
    private readonly TimeProvider _time;

    private ConfigStore(SqliteConnection db, string path, TimeProvider time)
    {
        _db = db;
        _time = time;
        Path = path;
    }

    public string Path { get; }

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>.</summary>
    public static ConfigStore Open(string path, TimeProvider time)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        var db = new SqliteConnection(path);
        try
        {
            var mode = db.Scalar("PRAGMA journal_mode=WAL;");
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new SqliteException($"{path}: SQLite refused WAL mode (journal_mode={mode})", 0);
            }

            db.Execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
            db.Execute(Schema);
            return new ConfigStore(db, path, time);
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>Writes a new revision in one transaction, with its commit-confirmed marker (or none) and its audit line.</summary>
    /// <param name="confirmBy">Deadline for a commit-confirmed; it rolls back to the revision before.</param>
    public Revision Commit(string author, string comment, string document, DateTimeOffset? confirmBy = null, AuditRecord? audit = null)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            _db.Execute("BEGIN IMMEDIATE;");
            try
            {
                var previous = HeadIdLocked();
                long id;
                using (var insert = _db.Prepare("INSERT INTO revisions(author, time, comment, document, confirm_by) VALUES(?1, ?2, ?3, ?4, ?5);"))
                {
                    insert.Bind(1, author).Bind(2, Format(now)).Bind(3, comment).Bind(4, document).Bind(5, confirmBy is { } c ? Format(c) : null).Run();
                    id = _db.LastInsertRowId;
                }

                // A new commit supersedes any pending confirmation: what is running now is this revision.
                _db.Execute("DELETE FROM pending_confirm;");
                if (confirmBy is { } deadline)
                {
                    if (previous is not { } p)
                    {
                        throw new InvalidOperationException("the first revision cannot be commit-confirmed: there is nothing to roll back to");
                    }

                    using var pending = _db.Prepare("INSERT INTO pending_confirm(singleton, revision, previous, deadline) VALUES(1, ?1, ?2, ?3);");
                    pending.Bind(1, id).Bind(2, p).Bind(3, Format(deadline)).Run();
                }

                if (audit is { } a)
                {
                    InsertAuditLocked(now, a);
                }

                _db.Execute("COMMIT;");
                return new Revision(id, author, now, comment, document, confirmBy);
            }
            catch
            {
                _db.Execute("ROLLBACK;");
                throw;
            }
        }
    }

    /// <summary>Clears the pending commit-confirmed (if it is still <paramref name="revision"/>) and audits it, in one transaction.</summary>
    public bool Confirm(long revision, AuditRecord? audit = null)
    {
        lock (_gate)
        {
            _db.Execute("BEGIN IMMEDIATE;");
            try
            {
                using var delete = _db.Prepare("DELETE FROM pending_confirm WHERE revision = ?1;");
                delete.Bind(1, revision).Run();
                var changed = _db.Scalar("SELECT changes();") != "0";
                if (audit is { } a)
                {
                    InsertAuditLocked(_time.GetUtcNow(), a);
                }

                _db.Execute("COMMIT;");
                return changed;
            }
            catch
            {
                _db.Execute("ROLLBACK;");
                throw;
            }
        }
    }

    public Revision? Head()
    {
        lock (_gate)
        {
            return HeadIdLocked() is { } id ? GetLocked(id) : null;
        }
    }

    public Revision? Get(long id)
    {
        lock (_gate)
        {
            return GetLocked(id);
        }
    }

    /// <summary>Newest first.</summary>
    public IReadOnlyList<RevisionInfo> List(int limit = 100, long? before = null)
    {
        lock (_gate)
        {
            using var q = _db.Prepare("SELECT id, author, time, comment, confirm_by FROM revisions WHERE id < ?1 ORDER BY id DESC LIMIT ?2;");
            q.Bind(1, before ?? long.MaxValue).Bind(2, limit);
            var result = new List<RevisionInfo>();
            while (q.Step())
            {
                result.Add(new RevisionInfo(q.Int64(0), q.Text(1)!, Parse(q.Text(2)!), q.Text(3)!, q.Text(4) is { } c ? Parse(c) : null));
            }

            return result;
        }
    }

    public long Count
    {
        get
        {
            lock (_gate)
            {
                return long.Parse(_db.Scalar("SELECT COUNT(*) FROM revisions;") ?? "0", CultureInfo.InvariantCulture);
            }
        }
    }

    public PendingConfirm? Pending()
    {
        lock (_gate)
        {
            using var q = _db.Prepare("SELECT revision, previous, deadline FROM pending_confirm;");
            return q.Step() ? new PendingConfirm(q.Int64(0), q.Int64(1), Parse(q.Text(2)!)) : null;
        }
    }

    public void Audit(AuditRecord record)
    {
        lock (_gate)
        {
            InsertAuditLocked(_time.GetUtcNow(), record);
        }
    }

    /// <summary>Newest first.</summary>
    public IReadOnlyList<AuditEntry> AuditLog(int limit = 200)
    {
        lock (_gate)
        {
            using var q = _db.Prepare("SELECT id, time, actor, address, action, outcome FROM audit ORDER BY id DESC LIMIT ?1;");
            q.Bind(1, limit);
            var result = new List<AuditEntry>();
            while (q.Step())
            {
                result.Add(new AuditEntry(q.Int64(0), Parse(q.Text(1)!), q.Text(2)!, q.Text(3)!, q.Text(4)!, q.Text(5)!));
            }

            return result;
        }
    }

    /// <summary>SQLite's own consistency check: "ok" when the file is sound.</summary>
    public string IntegrityCheck()
    {
        lock (_gate)
        {
            return _db.Scalar("PRAGMA integrity_check;") ?? "(no answer)";
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _db.Dispose();
        }
    }

    private long? HeadIdLocked()
    {
        using var q = _db.Prepare("SELECT MAX(id) FROM revisions;");
        return q.Step() ? q.NullableInt64(0) : null;
    }

    private Revision? GetLocked(long id)
    {
        using var q = _db.Prepare("SELECT id, author, time, comment, document, confirm_by FROM revisions WHERE id = ?1;");
        q.Bind(1, id);
        return q.Step()
            ? new Revision(q.Int64(0), q.Text(1)!, Parse(q.Text(2)!), q.Text(3)!, q.Text(4)!, q.Text(5) is { } c ? Parse(c) : null)
            : null;
    }

    private void InsertAuditLocked(DateTimeOffset now, AuditRecord record)
    {
        using var insert = _db.Prepare("INSERT INTO audit(time, actor, address, action, outcome) VALUES(?1, ?2, ?3, ?4, ?5);");
        insert.Bind(1, Format(now)).Bind(2, record.Actor).Bind(3, record.Address).Bind(4, record.Action).Bind(5, record.Outcome).Run();
    }

    private static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset Parse(string text) =>
        DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
}

/// <summary>An audit line to write: who, from which address, what, and the outcome.</summary>
public readonly record struct AuditRecord(string Actor, string Address, string Action, string Outcome);
