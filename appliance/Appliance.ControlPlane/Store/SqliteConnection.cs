using SQLitePCL;

namespace Isthmus.ControlPlane.Store;

/// <summary>
/// A thin owner of one SQLite connection over SQLitePCL.raw (Microsoft.Data.Sqlite is not in the
/// registry). Every failure is an <see cref="SqliteException"/> carrying SQLite's own message.
/// </summary>
/// <remarks>Not thread-safe: <see cref="ConfigStore"/> serialises every use behind its lock.</remarks>
internal sealed class SqliteConnection : IDisposable
{
    private static readonly Lazy<bool> Initialised = new(() =>
    {
        Batteries_V2.Init();
        return true;
    });

    private readonly sqlite3 _db;

    public SqliteConnection(string path)
    {
        _ = Initialised.Value;
        var rc = raw.sqlite3_open_v2(path, out _db, raw.SQLITE_OPEN_READWRITE | raw.SQLITE_OPEN_CREATE | raw.SQLITE_OPEN_FULLMUTEX, null);
        if (rc != raw.SQLITE_OK)
        {
            var message = _db is null ? $"error {rc}" : raw.sqlite3_errmsg(_db).utf8_to_string();
            _db?.Dispose();
            throw new SqliteException($"cannot open {path}: {message}", rc);
        }

        raw.sqlite3_busy_timeout(_db, 5000);
    }

    public void Execute(string sql)
    {
        var rc = raw.sqlite3_exec(_db, sql, null, null, out var error);
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException($"{error ?? raw.sqlite3_errmsg(_db).utf8_to_string()} ({sql})", rc);
        }
    }

    public SqliteStatement Prepare(string sql)
    {
        var rc = raw.sqlite3_prepare_v2(_db, sql, out var stmt);
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException($"{raw.sqlite3_errmsg(_db).utf8_to_string()} ({sql})", rc);
        }

        return new SqliteStatement(_db, stmt);
    }

    /// <summary>Runs a query returning one text value in its first row (PRAGMA results and the like).</summary>
    public string? Scalar(string sql)
    {
        using var statement = Prepare(sql);
        return statement.Step() ? statement.Text(0) : null;
    }

    public long LastInsertRowId => raw.sqlite3_last_insert_rowid(_db);

    public void Dispose() => _db.Dispose();
}

internal sealed class SqliteStatement(sqlite3 db, sqlite3_stmt stmt) : IDisposable
{
    public SqliteStatement Bind(int index, string? value)
    {
        Check(value is null ? raw.sqlite3_bind_null(stmt, index) : raw.sqlite3_bind_text(stmt, index, value));
        return this;
    }

    public SqliteStatement Bind(int index, long? value)
    {
        Check(value is { } v ? raw.sqlite3_bind_int64(stmt, index, v) : raw.sqlite3_bind_null(stmt, index));
        return this;
    }

    /// <summary>Advances to the next row: true when there is one, false when the statement is done.</summary>
    public bool Step()
    {
        var rc = raw.sqlite3_step(stmt);
        return rc switch
        {
            raw.SQLITE_ROW => true,
            raw.SQLITE_DONE => false,
            _ => throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc),
        };
    }

    public void Run()
    {
        while (Step())
        {
        }
    }

    public bool IsNull(int column) => raw.sqlite3_column_type(stmt, column) == raw.SQLITE_NULL;

    public string? Text(int column) => IsNull(column) ? null : raw.sqlite3_column_text(stmt, column).utf8_to_string();

    public long Int64(int column) => raw.sqlite3_column_int64(stmt, column);

    public long? NullableInt64(int column) => IsNull(column) ? null : Int64(column);

    public void Dispose() => stmt.Dispose();

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
        }
    }
}

public sealed class SqliteException(string message, int code) : Exception(message)
{
    public int Code { get; } = code;
}
