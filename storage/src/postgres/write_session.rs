//! The PostgreSQL side of the writer (see `crate::write_thread` for the batching): a job is a
//! closure that returns the future of its statements, and a transaction is `BEGIN …
//! COMMIT` on the one write connection, with `synchronous_commit` left at its default
//! (on): the commit returns once the server has flushed its WAL, so an answered write
//! survives the server crashing too.
//!
//! The writer thread is a plain thread, like SQLite's; it runs each batch with
//! `block_on` on the store's own runtime ([`Driver`]), which also drives the connections.
//! A batch that fails (a deadlock detected by the server, a constraint) is rolled back by
//! dropping its transaction, and its jobs are retried alone by `crate::write_thread`.

use super::driver::Driver;
use super::write_sql::{Statements, Tx};
use crate::error::StorageError;
use crate::write_thread::{Batching, Failure, Job, Session, Writer};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Error};

/// One queued write: runs its statements (possibly twice, if its first batch was rolled
/// back) and then answers its caller.
pub(super) trait Queued: Send {
    fn run<'a>(&'a mut self, tx: &'a Tx<'a>) -> BoxFuture<'a, Result<(), Error>>;
    fn answer(self: Box<Self>, database: &str, failure: Option<Arc<Error>>);
    fn alone(&self) -> bool;
}

impl<T, F> Queued for Job<T, F>
where
    T: Send,
    F: for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, Result<T, Error>> + Send,
{
    fn run<'a>(&'a mut self, tx: &'a Tx<'a>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.output = Some((self.sql)(tx).await?);
            Ok(())
        })
    }

    fn answer(self: Box<Self>, database: &str, failure: Option<Arc<Error>>) {
        let operation = self.operation;
        (*self).answer(failure.map(|e| StorageError::postgres(database, operation, e)));
    }

    fn alone(&self) -> bool {
        self.alone
    }
}

pub(super) type PgWriter = Writer<Box<dyn Queued>>;

/// The write connection, owned by the writer thread.
pub(super) struct PgSession {
    pub client: Client,
    pub sql: Statements,
    pub driver: Arc<Driver>,
    /// To reconnect; never shown (it may hold a password).
    pub url: String,
    /// The URL without its password, for errors.
    pub database: String,
    pub owner: String,
}

pub(super) fn start(session: PgSession, batching: Batching) -> Result<PgWriter, StorageError> {
    let database = session.database.clone();
    Writer::start(session, database, batching)
}

/// Queues `sql` and waits until it is committed (or failed); `alone`: in a transaction of
/// its own.
pub(super) async fn run<T, F>(
    writer: &PgWriter,
    operation: &'static str,
    alone: bool,
    sql: F,
) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: for<'a> FnMut(&'a Tx<'a>) -> BoxFuture<'a, Result<T, Error>> + Send + 'static,
{
    let job = |reply| {
        let mut job = Job::new(operation, sql, reply);
        job.alone = alone;
        Box::new(job) as Box<dyn Queued>
    };
    writer.call(operation, job).await
}

/// Times a batch is run again after the server broke a deadlock or a serialization
/// conflict by rolling it back (nothing of it was committed, so running it again is safe).
const CONFLICT_RETRIES: usize = 3;

impl Session for PgSession {
    type Job = Box<dyn Queued>;
    type Error = Arc<Error>;

    fn transact(&mut self, jobs: &mut [Box<dyn Queued>]) -> Result<(), Failure<Arc<Error>>> {
        let driver = Arc::clone(&self.driver);
        driver.handle().block_on(async {
            let mut conflicts = 0;
            loop {
                self.reconnect_if_closed()
                    .await
                    .map_err(|e| Failure::Whole(Arc::new(e)))?;
                match transact(&mut self.client, &self.sql, &self.owner, jobs).await {
                    Err(Failure::Work(e)) if is_conflict(&e) && conflicts < CONFLICT_RETRIES => {
                        tracing::debug!(
                            "a batch was rolled back by a conflict, running it again: {e}"
                        );
                        conflicts += 1;
                    }
                    outcome => return outcome,
                }
            }
        })
    }

    fn answer(&self, job: Box<dyn Queued>, failure: Option<&Arc<Error>>) {
        job.answer(&self.database, failure.cloned());
    }

    fn alone(&self, job: &Box<dyn Queued>) -> bool {
        job.alone()
    }

    /// Dropping the client ends its connection task.
    fn close(self) {}
}

impl PgSession {
    /// A connection lost (the server restarted, a network cut) is opened again before the
    /// next batch; the batch that met the loss has failed already.
    async fn reconnect_if_closed(&mut self) -> Result<(), Error> {
        if self.client.is_closed() {
            tracing::warn!(
                "the write connection to {} was lost; reconnecting",
                self.database
            );
            (self.client, self.sql) = super::open_writer(&self.url, &self.owner).await?;
        }
        Ok(())
    }
}

fn is_conflict(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

/// How long a write waits for a lock someone else holds before it fails, like SQLite's
/// busy handler: another worker's batch holds its locks for milliseconds; a lock held
/// longer is someone at the `psql` prompt, and the caller should hear so.
pub(super) const LOCK_TIMEOUT: &str = "SET lock_timeout = '5s'";

/// A connection that cannot begin, a lock that could not be had, or a commit without an
/// answer fail the whole batch (see [`Failure::Whole`]); a statement that fails rolls the
/// transaction back, and its jobs are retried alone.
async fn transact(
    client: &mut Client,
    sql: &Statements,
    owner: &str,
    jobs: &mut [Box<dyn Queued>],
) -> Result<(), Failure<Arc<Error>>> {
    let whole = |e| Failure::Whole(Arc::new(e));
    let work = |e: Error| match e.code() {
        Some(&SqlState::LOCK_NOT_AVAILABLE) => Failure::Whole(Arc::new(e)),
        _ => Failure::Work(Arc::new(e)),
    };
    let tx = client.transaction().await.map_err(whole)?;
    let context = Tx {
        tx: &tx,
        owner,
        sql,
    };
    for job in jobs.iter_mut() {
        job.run(&context).await.map_err(work)?;
    }
    tx.commit().await.map_err(whole)
}
