//! The SQLite side of the writer (see `crate::write_thread` for the batching): a job is a
//! closure over the write connection, and a transaction is `BEGIN IMMEDIATE … COMMIT`.
//!
//! The other worker process has its own writer; `BEGIN IMMEDIATE` plus the busy handler
//! (`busy::wait_for_lock`) plus `busy::retry` make the two take turns.

use super::busy;
use crate::error::StorageError;
use crate::write_thread::{Batching, Failure, Job, Session, Writer};
use rusqlite::Connection;
use std::path::PathBuf;

/// One queued write: runs its SQL (possibly twice, if its first batch was rolled back)
/// and then answers its caller.
pub(super) trait Queued: Send {
    fn run(&mut self, conn: &Connection, owner: &str) -> rusqlite::Result<()>;
    /// `None` after a successful commit, else what went wrong.
    fn answer(self: Box<Self>, path: &std::path::Path, failure: Option<rusqlite::Error>);
}

impl<T, F> Queued for Job<T, F>
where
    T: Send,
    F: FnMut(&Connection, &str) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, owner: &str) -> rusqlite::Result<()> {
        self.output = Some((self.sql)(conn, owner)?);
        Ok(())
    }

    fn answer(self: Box<Self>, path: &std::path::Path, failure: Option<rusqlite::Error>) {
        let operation = self.operation;
        (*self).answer(failure.map(|e| StorageError::sqlite(path, operation, e)));
    }
}

pub(super) type SqliteWriter = Writer<Box<dyn Queued>>;

/// Starts the writer thread on `conn` (already migrated, see `schema::open_writer`).
pub(super) fn start(
    conn: Connection,
    path: PathBuf,
    owner: String,
    batching: Batching,
) -> Result<SqliteWriter, StorageError> {
    let database = path.display().to_string();
    Writer::start(SqliteSession { conn, path, owner }, database, batching)
}

/// Queues `sql` and waits until it is committed (or failed). `sql` gets the open
/// transaction's connection and the store's owner id.
pub(super) async fn run<T, F>(
    writer: &SqliteWriter,
    operation: &'static str,
    sql: F,
) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnMut(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
{
    writer
        .call(operation, |reply| {
            Box::new(Job::new(operation, sql, reply)) as Box<dyn Queued>
        })
        .await
}

struct SqliteSession {
    conn: Connection,
    path: PathBuf,
    owner: String,
}

impl Session for SqliteSession {
    type Job = Box<dyn Queued>;
    type Error = rusqlite::Error;

    fn transact(&mut self, jobs: &mut [Box<dyn Queued>]) -> Result<(), Failure<rusqlite::Error>> {
        let owner = self.owner.as_str();
        in_transaction(&self.conn, |conn| {
            jobs.iter_mut().try_for_each(|job| job.run(conn, owner))
        })
    }

    fn answer(&self, job: Box<dyn Queued>, failure: Option<&rusqlite::Error>) {
        job.answer(&self.path, failure.map(duplicate));
    }

    fn close(self) {
        // Closing the last connection checkpoints the WAL into the database file.
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(
                "closing the write connection to {} failed: {e}",
                self.path.display()
            );
        }
    }
}

/// `BEGIN IMMEDIATE` takes the file's write lock up front (waiting for the other worker,
/// retrying busy), so nothing inside can fail for lack of it. A lock still held after the
/// busy handler's wait (someone holds a write transaction open, e.g. in the sqlite3 shell)
/// is a [`Failure::Whole`]: trying each job alone would only wait that long again.
fn in_transaction(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<(), Failure<rusqlite::Error>> {
    busy::retry(|| run_cached(conn, "BEGIN IMMEDIATE")).map_err(Failure::Whole)?;
    let result = body(conn).and_then(|()| run_cached(conn, "COMMIT"));
    if let Err(e) = result {
        if !conn.is_autocommit() {
            // A failed rollback leaves nothing to undo that SQLite would not undo itself.
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Err(Failure::Work(e));
    }
    Ok(())
}

/// Runs a statement from the connection's cache: `execute_batch` would parse BEGIN and
/// COMMIT again for every transaction (about 2.5 % of a worker's CPU at contest rates).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// One error for many callers (`rusqlite::Error` is not `Clone`).
fn duplicate(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
