//! Opening the SQLite database file: connection settings (pragmas) and the versioned
//! schema (`PRAGMA user_version`, see `crate::schema` for the versions). Every connection,
//! writer or reader, in either worker process, is opened here, so all agree on the
//! settings: WAL, `synchronous = NORMAL` (a killed process loses nothing committed), a
//! busy handler that waits about 5 s for the lock, read connections `query_only`. Why
//! each setting: docs/architecture.md, "SQLite's settings".

use crate::error::StorageError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

use crate::schema::SCHEMA_VERSION;

/// `NORMAL`: a commit appends to the WAL without fsync (see "SQLite's settings").
const SYNCHRONOUS: &str = "NORMAL";
/// Per connection (SQLite's default is 2 MiB): the tails of the summary index and table.
const CACHE_SIZE_KIB: i64 = 8 * 1024;
/// The WAL file is truncated to this after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// 40 MiB of WAL between checkpoints (SQLite's default is 1000 pages).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// Version 1. Times are integer milliseconds since the epoch (UTC), amounts integer cents.
const SCHEMA_V1: &str = r#"
CREATE TABLE payments (
    correlation_id TEXT PRIMARY KEY NOT NULL,       -- lowercase hyphenated uuid
    amount         INTEGER NOT NULL CHECK (amount > 0),   -- cents
    processor      TEXT CHECK (processor IN ('default', 'fallback')),  -- NULL until the first attempt
    requested_at   INTEGER,                         -- ms UTC, the requestedAt sent; NULL until the first attempt
    status         TEXT NOT NULL CHECK (status IN ('pending', 'processed')),
    accepted_at    INTEGER NOT NULL,                -- ms UTC, when the lb accepted it
    owner          TEXT                             -- worker dispatching it while pending
);

-- The summary: per processor, a range over processed rows by requested_at, answered from
-- the index alone and already grouped (no sort).
CREATE INDEX payments_processed_by_requested_at
    ON payments (processor, requested_at, amount) WHERE status = 'processed';

-- Recovery and queue depth: only pending rows, by owner.
CREATE INDEX payments_pending_by_owner ON payments (owner) WHERE status = 'pending';

CREATE TABLE workers (
    id           TEXT PRIMARY KEY NOT NULL,
    heartbeat_at INTEGER NOT NULL                   -- ms UTC of the last heartbeat
);

-- The health-check budget shared by all workers: who may call a processor's health endpoint.
CREATE TABLE health_turns (
    processor    TEXT PRIMARY KEY NOT NULL CHECK (processor IN ('default', 'fallback')),
    last_turn_at INTEGER NOT NULL                   -- ms UTC of the last call taken
);

-- The last health answer per processor, for the worker that did not make the call.
CREATE TABLE health_records (
    processor            TEXT PRIMARY KEY NOT NULL CHECK (processor IN ('default', 'fallback')),
    failing              INTEGER NOT NULL,
    min_response_time_ms INTEGER NOT NULL,
    checked_at           INTEGER NOT NULL
);

"#;

/// Version 2: the unknown-outcome pin lives in the row (`pinned`), so it survives restarts
/// and claims.
const SCHEMA_V2: &str = r#"
ALTER TABLE payments ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1));
                                                 -- 1: a call to `processor` may have stored it;
                                                 -- it goes nowhere else until that one answers
"#;

/// Version 3: the purge fence, so a purge forgets for good the payments it deleted, even
/// those that reach a worker after it (a batch in flight, the lb's journal replayed).
const SCHEMA_V3: &str = r#"
CREATE TABLE purge_fence (
    id             INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    accepted_up_to INTEGER NOT NULL                 -- ms UTC: payments accepted until then are forgotten
);
"#;

/// The view for people at the sqlite3 prompt, in its current form: decimal amounts,
/// ISO-8601 UTC times, and `pinned_to`, the only processor a pending payment may still go
/// to. Views hold no data, so every migration simply recreates it.
const VIEW: &str = r#"
DROP VIEW IF EXISTS payments_view;
CREATE VIEW payments_view AS
SELECT correlation_id,
       printf('%d.%02d', amount / 100, amount % 100) AS amount,
       processor,
       status,
       strftime('%Y-%m-%dT%H:%M:%S', requested_at / 1000, 'unixepoch')
           || printf('.%03dZ', requested_at % 1000) AS requested_at,
       strftime('%Y-%m-%dT%H:%M:%S', accepted_at / 1000, 'unixepoch')
           || printf('.%03dZ', accepted_at % 1000) AS accepted_at,
       CASE WHEN status = 'pending' AND pinned = 1 THEN processor END AS pinned_to
FROM payments;
"#;

/// Opens the write connection: creates the directory and the file if missing, sets WAL
/// and the pragmas, creates or migrates the schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    create_parent_dir(path)?;
    let err = |operation| move |e| StorageError::sqlite(path, operation, e);
    let conn = Connection::open(path).map_err(err("open the database file"))?;
    apply_pragmas(&conn, path)?;
    enable_wal(&conn, path)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens a read connection on a database `open_writer` already prepared.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StorageError::sqlite(path, "open a read connection", e))?;
    apply_pragmas(&conn, path)?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(|e| StorageError::sqlite(path, "make the read connection read-only", e))?;
    Ok(conn)
}

fn create_parent_dir(path: &Path) -> Result<(), StorageError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                dir: dir.to_path_buf(),
                path: path.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

fn apply_pragmas(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let err = |e| StorageError::sqlite(path, "set the connection pragmas", e);
    conn.busy_handler(Some(super::busy::wait_for_lock))
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", SYNCHRONOUS)
        .map_err(err)?;
    conn.pragma_update(None, "cache_size", -CACHE_SIZE_KIB)
        .map_err(err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(err)?;
    Ok(())
}

/// Switches the file to WAL. The first statement that reads the file, so a file that is
/// not a database fails here.
fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let mode: String =
        super::busy::retry(|| conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)))
            .map_err(|e| StorageError::sqlite(path, "switch the database to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // SQLite answers with the mode it kept, e.g. for an in-memory database.
        return Err(StorageError::sqlite(
            path,
            "switch the database to WAL mode",
            rusqlite::Error::InvalidParameterName(format!("journal_mode stayed `{mode}`")),
        ));
    }
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(|e| StorageError::sqlite(path, "set the WAL size limit", e))?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(|e| StorageError::sqlite(path, "set the WAL checkpoint interval", e))
}

/// Creates or upgrades the schema inside one IMMEDIATE transaction, so two workers
/// starting at once on a fresh file create it exactly once.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let err = |e| StorageError::sqlite(path, "create or migrate the schema", e);
    super::busy::retry(|| conn.execute_batch("BEGIN IMMEDIATE")).map_err(err)?;
    let result = migrate_in_transaction(conn, path);
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(err),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_in_transaction(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let err = |e| StorageError::sqlite(path, "create or migrate the schema", e);
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(err)?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            database: path.display().to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        conn.execute_batch(SCHEMA_V1).map_err(err)?;
    }
    if found < 2 {
        conn.execute_batch(SCHEMA_V2).map_err(err)?;
    }
    if found < 3 {
        conn.execute_batch(SCHEMA_V3).map_err(err)?;
    }
    // Later versions: `if found < 4 { ... }`, each step moving the schema one version on.
    if found < SCHEMA_VERSION {
        conn.execute_batch(VIEW).map_err(err)?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(err)
}
