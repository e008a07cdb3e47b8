//! The single writer: one thread owns the write connection and commits whatever is queued
//! in one transaction (group commit).
//!
//! Why: a commit costs about the same for one row or a thousand, so the write rate is
//! bounded by batches, not rows. Callers send a job through a channel and await a oneshot;
//! the thread takes everything queued (up to `max_batch` jobs), runs it inside
//! `BEGIN IMMEDIATE … COMMIT`, and answers every caller only after the commit, so an
//! answer means "durable" (see `schema` for what durable means here). A job that fails
//! must not take its neighbours down with it: the batch is rolled back and its jobs are
//! run again one per transaction, so each caller gets its own result.
//!
//! At a low steady rate (the contest sends a worker one payment every few milliseconds, and
//! each payment needs three writes) the queue rarely holds more than one job when the
//! thread wakes, so every write would pay a whole commit: the lock round trip, one WAL frame
//! per dirty page (two `pwrite`s each), the wake-ups. So the thread may *linger* (`linger`,
//! the api's `WRITE_LINGER_US`): after the first job of a batch it waits that long for
//! more before committing. Neighbouring payments then share the commit and most of its
//! pages (the table's last page, the pending and processed indexes, the heartbeat row);
//! each caller waits at most `linger` longer for its answer. Zero turns it off.
//!
//! Async callers never touch SQLite: sending and awaiting the answer are plain channel
//! operations. The other worker process has its own writer; `BEGIN IMMEDIATE` plus
//! the busy handler (`busy::wait_for_lock`) plus `busy::retry` make the two take turns.

use crate::busy;
use crate::error::StorageError;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// One queued write: runs its SQL (possibly twice, if its first batch was rolled back)
/// and then answers its caller.
trait Queued: Send {
    fn run(&mut self, conn: &Connection, owner: &str) -> rusqlite::Result<()>;
    /// `None` after a successful commit, else what went wrong.
    fn answer(self: Box<Self>, path: &Path, failure: Option<rusqlite::Error>);
}

struct Job<T, F> {
    operation: &'static str,
    sql: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, StorageError>>,
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

    fn answer(self: Box<Self>, path: &Path, failure: Option<rusqlite::Error>) {
        let result = match (failure, self.output) {
            (Some(e), _) => Err(StorageError::sqlite(path, self.operation, e)),
            (None, Some(output)) => Ok(output),
            // Committed without having run cannot happen; dropping the reply makes the
            // caller see `Closed` rather than a made-up value.
            (None, None) => return,
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = self.reply.send(result);
    }
}

enum Message {
    Job(Box<dyn Queued>),
    /// Finish what was queued before, close the connection, then acknowledge.
    Close(oneshot::Sender<()>),
}

/// The handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Message>,
    path: Arc<PathBuf>,
}

impl Writer {
    /// Starts the writer thread on `conn` (already migrated, see `schema::open_writer`).
    pub fn start(conn: Connection, path: PathBuf, owner: String, max_batch: usize, linger: Duration) -> Result<Writer, StorageError> {
        let max_batch = max_batch.max(1);
        // Room for a few batches; beyond that callers wait, which is the backpressure we want.
        let (queue, jobs) = mpsc::channel(max_batch.saturating_mul(4));
        let thread_path = path.clone();
        let batching = Batching { max_batch, linger };
        std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || write_loop(conn, &thread_path, &owner, batching, jobs))
            .map_err(|source| StorageError::WriterThread { path: path.clone(), source })?;
        Ok(Writer { queue, path: Arc::new(path) })
    }

    /// Queues `sql` and waits until it is committed (or failed). `sql` gets the open
    /// transaction's connection and the store's owner id.
    pub async fn run<T, F>(&self, operation: &'static str, sql: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    {
        let closed = || StorageError::Closed { path: self.path.to_path_buf(), operation };
        let (reply, answer) = oneshot::channel();
        let job = Job { operation, sql, output: None, reply };
        self.queue.send(Message::Job(Box::new(job))).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Flushes everything queued so far and stops the thread; later writes get `Closed`.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Message::Close(ack)).await.is_ok() {
            // An error here means the thread is already gone, which is what we want.
            let _ = done.await;
        }
    }
}

/// How the thread forms a batch: at most `max_batch` jobs, waiting `linger` after the first.
#[derive(Clone, Copy)]
struct Batching {
    max_batch: usize,
    linger: Duration,
}

fn write_loop(conn: Connection, path: &Path, owner: &str, batching: Batching, mut jobs: mpsc::Receiver<Message>) {
    let mut batch: Vec<Box<dyn Queued>> = Vec::with_capacity(batching.max_batch);
    let mut close_ack = None;
    // blocking_recv is fine: this is our own thread, not a runtime thread.
    while let Some(message) = jobs.blocking_recv() {
        take(message, &mut batch, &mut close_ack);
        take_queued(&mut jobs, &mut batch, &mut close_ack, batching.max_batch);
        if close_ack.is_none() && batch.len() < batching.max_batch && !batching.linger.is_zero() {
            std::thread::sleep(batching.linger);
            take_queued(&mut jobs, &mut batch, &mut close_ack, batching.max_batch);
        }
        commit_batch(&conn, path, owner, &mut batch);
        if close_ack.is_some() {
            break;
        }
    }
    // Closing the last connection checkpoints the WAL into the database file.
    if let Err((_, e)) = conn.close() {
        tracing::warn!("closing the write connection to {} failed: {e}", path.display());
    }
    if let Some(ack) = close_ack {
        let _ = ack.send(());
    }
}

fn take(message: Message, batch: &mut Vec<Box<dyn Queued>>, close_ack: &mut Option<oneshot::Sender<()>>) {
    match message {
        Message::Job(job) => batch.push(job),
        Message::Close(ack) => *close_ack = Some(ack),
    }
}

/// Adds what is queued now to the batch, until it is full or a close request came.
fn take_queued(
    jobs: &mut mpsc::Receiver<Message>,
    batch: &mut Vec<Box<dyn Queued>>,
    close_ack: &mut Option<oneshot::Sender<()>>,
    max_batch: usize,
) {
    while close_ack.is_none() && batch.len() < max_batch {
        match jobs.try_recv() {
            Ok(message) => take(message, batch, close_ack),
            Err(_) => return,
        }
    }
}

/// Commits the whole batch in one transaction; if a write inside fails, runs each job
/// alone so each caller gets its own result.
fn commit_batch(conn: &Connection, path: &Path, owner: &str, batch: &mut Vec<Box<dyn Queued>>) {
    if batch.is_empty() {
        return;
    }
    let outcome = in_transaction(conn, |conn| batch.iter_mut().try_for_each(|job| job.run(conn, owner)));
    match outcome {
        Ok(()) => batch.drain(..).for_each(|job| job.answer(path, None)),
        // The file stayed locked through the busy handler's wait and the retries (someone holds a
        // write transaction open, e.g. in the sqlite3 shell): trying each job alone would
        // only wait that long again, once per job.
        Err(Failure::Lock(e)) => batch.drain(..).for_each(|job| job.answer(path, Some(duplicate(&e)))),
        Err(Failure::Work(e)) if batch.len() == 1 => batch.drain(..).for_each(|job| job.answer(path, Some(duplicate(&e)))),
        Err(Failure::Work(e)) => {
            tracing::warn!("a batch of {} writes to {} failed ({e}); retrying them one by one", batch.len(), path.display());
            for mut job in batch.drain(..) {
                let failure = in_transaction(conn, |conn| job.run(conn, owner)).err();
                job.answer(path, failure.map(Failure::into_error));
            }
        }
    }
}

enum Failure {
    /// The write lock could not be had.
    Lock(rusqlite::Error),
    /// A write, or the commit, failed; the transaction was rolled back.
    Work(rusqlite::Error),
}

impl Failure {
    fn into_error(self) -> rusqlite::Error {
        match self {
            Failure::Lock(e) | Failure::Work(e) => e,
        }
    }
}

/// `BEGIN IMMEDIATE` takes the file's write lock up front (waiting for the other worker,
/// retrying busy), so nothing inside can fail for lack of it.
fn in_transaction(conn: &Connection, body: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> Result<(), Failure> {
    busy::retry(|| run_cached(conn, "BEGIN IMMEDIATE")).map_err(Failure::Lock)?;
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
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
