//! [`Store`]: the async API the api worker uses, the same whatever the database. Each
//! method dispatches to the backend the [`Database`] chose (`sqlite`, `postgres`); the
//! semantics documented here hold for both, and `tests/store.rs` proves it by running every
//! test against both.

use crate::config::{Database, StoreConfig};
use crate::error::StorageError;
use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Pending, Recorded, Taken};
use crate::{postgres, sqlite};
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Summary, Uuid};
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A handle on the database; cheap to clone, all clones share one writer thread and one
/// read pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    database: Database,
    /// The heartbeat this store committed last (ms; 0: none yet), whichever write carried
    /// it: see [`Store::heartbeat_written_at`].
    heartbeat_written: Arc<AtomicI64>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Store),
    Postgres(postgres::Store),
}

/// `dispatch!(self.method(args))`: the same call on whichever backend this store has.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(backend) => backend.$method($($arg),*).await,
            Backend::Postgres(backend) => backend.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens the database and starts the writer thread.
    ///
    /// SQLite: creates missing directories, opens or migrates the schema, sets WAL and the
    /// pragmas (see `sqlite::schema`). A file that is not a database gives
    /// [`StorageError::NotADatabase`].
    ///
    /// PostgreSQL: connects the writer and the readers (blocking this thread until they
    /// are connected, as opening a file does), creates or migrates the schema (see
    /// `postgres::schema`). An unreachable server gives [`StorageError::PostgresConnect`].
    pub fn open(config: StoreConfig) -> Result<Store, StorageError> {
        let backend = match &config.database {
            Database::Sqlite(path) => Backend::Sqlite(sqlite::Store::open(path.clone(), &config)?),
            Database::Postgres(url) => Backend::Postgres(postgres::Store::open(url, &config)?),
        };
        Ok(Store { backend, database: config.database, heartbeat_written: Arc::default() })
    }

    /// Records accepted payments as pending, owned by this store's owner. Returns the ones
    /// that were new: a re-sent batch returns none of the already known ones.
    pub async fn record_pending(&self, batch: Vec<Accepted>) -> Result<Vec<Accepted>, StorageError> {
        dispatch!(self.record_pending(batch))
    }

    /// [`Store::record_pending`] and, in the same transaction, [`Store::take_for_sending`]
    /// for the new payments to `processor`: for a worker that sends what it records right
    /// away, one write instead of two. Every new payment gets the attempt (`processor`,
    /// requestedAt = the time of the write) and the heartbeat is renewed to that time, the
    /// proof of ownership. Known payments of a re-sent batch are neither returned nor
    /// changed. A payment recorded this way counts as attempted even before it is sent:
    /// a claim or [`Store::own_pending`] gives it back pinned to `processor`.
    pub async fn record_for_sending(&self, batch: Vec<Accepted>, processor: Processor) -> Result<Recorded, StorageError> {
        let recorded = dispatch!(self.record_for_sending(batch, processor))?;
        self.heartbeat_written(recorded.alive_at);
        Ok(recorded)
    }

    /// The ownership check before every send, and the attempt made durable BEFORE the
    /// payment is sent. For each payment that is still pending AND owned by this store's
    /// owner: records the processor it goes to (a payment pinned to a processor keeps that
    /// one, whatever was asked) and the requestedAt, which is the time of this write: the
    /// caller sends right after it. A pinned payment keeps the requestedAt of the attempt
    /// whose outcome is unknown: the processor may hold it with that one. Returns each with
    /// the attempt as stored. Everything else is not
    /// returned and not changed: payments claimed by another worker (this one's heartbeat
    /// went stale), processed, or purged. The caller sends only what is returned, and only
    /// to the processor returned.
    ///
    /// Also renews this worker's heartbeat in the same transaction; [`Taken::alive_at`] is
    /// that time, the proof of ownership: nobody can claim the returned payments before
    /// `alive_at + dead_after`.
    pub async fn take_for_sending(&self, batch: Vec<(Uuid, Processor)>) -> Result<Taken, StorageError> {
        let taken = dispatch!(self.take_for_sending(batch))?;
        self.heartbeat_written(taken.alive_at);
        Ok(taken)
    }

    /// Pins pending payments to the processor of their last attempt, for good: a call there
    /// ended without an answer, so it may have stored them. Survives restarts and claims.
    pub async fn pin(&self, batch: Vec<(Uuid, Processor)>) -> Result<usize, StorageError> {
        dispatch!(self.pin(batch))
    }

    /// Marks payments processed on that processor with that requestedAt. A row purged
    /// meanwhile is recreated; an already processed row is left unchanged, and returned if
    /// it was processed at the other processor: that payment was charged twice.
    pub async fn mark_processed(&self, batch: Vec<(Payment, Attempt)>) -> Result<Vec<DoubleCharge>, StorageError> {
        dispatch!(self.mark_processed(batch))
    }

    /// This worker is alive at `now`. The row never goes back: a heartbeat stamped before
    /// a later take's proof of ownership (the writer stalled between them) leaves that proof.
    pub async fn heartbeat(&self, now: Millis) -> Result<(), StorageError> {
        dispatch!(self.heartbeat(now))?;
        self.heartbeat_written(now);
        Ok(())
    }

    /// The heartbeat this store committed last, by [`Store::heartbeat`] or along with
    /// [`Store::take_for_sending`] or [`Store::record_for_sending`]: a worker whose writes
    /// renew its heartbeat anyway need not write one on its own (see `api::recovery`).
    /// Never goes back, as the row does not.
    pub fn heartbeat_written_at(&self) -> Option<Millis> {
        let at = self.heartbeat_written.load(Relaxed);
        (at > 0).then_some(Millis(at))
    }

    fn heartbeat_written(&self, at: Millis) {
        self.heartbeat_written.fetch_max(at.0, Relaxed);
    }

    /// This worker leaves cleanly: its heartbeat row goes, so its pending payments are
    /// claimable at once.
    pub async fn retire(&self) -> Result<(), StorageError> {
        dispatch!(self.retire())
    }

    /// Takes over up to `limit` pending payments whose owner has no heartbeat newer than
    /// `now - dead_after_ms` (or no heartbeat row, or no owner) and returns them with their
    /// attempt; those with an attempt come back pinned to its processor. Atomic across
    /// processes and hosts: two workers with live heartbeats never both get a payment.
    /// The owner is judged only by its heartbeat, so a worker restarted under the
    /// same id gets its own old payments back only if it claims before its first heartbeat.
    pub async fn claim_orphans(&self, now: Millis, dead_after_ms: i64, limit: usize) -> Result<Claimed, StorageError> {
        dispatch!(self.claim_orphans(now, dead_after_ms, limit))
    }

    /// Whether [`Store::claim_orphans`] with the same `now` and `dead_after_ms` would take
    /// anything right now. A read: a worker looks every scan and claims (a write) only when
    /// there is something to take.
    pub async fn orphans_exist(&self, now: Millis, dead_after_ms: i64) -> Result<bool, StorageError> {
        dispatch!(self.orphans_exist(now, dead_after_ms))
    }

    /// Up to `limit` pending payments owned by this store's owner, with their attempt;
    /// those with one come back pinned to its processor, as a claim gives them (a call
    /// may be running or may have stored it). Changes nothing. For a worker that lost
    /// track of what it owns: a write that failed after it may have committed (see
    /// `api::intake`).
    pub async fn own_pending(&self, limit: usize) -> Result<Vec<Pending>, StorageError> {
        dispatch!(self.own_pending(limit))
    }

    /// The shared health-check budget: true iff no worker took a turn for `processor` in
    /// the last `window_ms`, in which case `now` is recorded as the last turn (atomically,
    /// across processes and hosts).
    pub async fn take_health_turn(&self, processor: Processor, now: Millis, window_ms: i64) -> Result<bool, StorageError> {
        dispatch!(self.take_health_turn(processor, now, window_ms))
    }

    /// Stores a processor's health answer for all workers to read.
    pub async fn save_health(&self, processor: Processor, record: HealthRecord) -> Result<(), StorageError> {
        dispatch!(self.save_health(processor, record))
    }

    /// Deletes all payments, pending and processed: the database forgets everything. A
    /// worker's queued payments are dropped at their next [`Store::take_for_sending`] (the
    /// rows are gone); one whose call is in flight is recreated by [`Store::mark_processed`]
    /// if the processor stored it, so our summary keeps matching the processor's.
    pub async fn purge(&self) -> Result<(), StorageError> {
        dispatch!(self.purge())
    }

    /// Processed payments per processor with requestedAt in `[from, to]` (inclusive, a
    /// missing bound is open), in exact cents.
    pub async fn summary(&self, from: Option<Millis>, to: Option<Millis>) -> Result<Summary, StorageError> {
        dispatch!(self.summary(from, to))
    }

    /// The last health answer saved for `processor`, by any worker.
    pub async fn health(&self, processor: Processor) -> Result<Option<HealthRecord>, StorageError> {
        dispatch!(self.health(processor))
    }

    /// How many payments are pending (all workers).
    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        dispatch!(self.pending_count())
    }

    /// Flushes the writer and stops its thread (graceful shutdown). Writes through other
    /// clones fail with [`StorageError::Closed`] afterwards; reads keep working.
    pub async fn close(self) -> Result<(), StorageError> {
        dispatch!(self.close());
        Ok(())
    }

    /// The database this store speaks to; its Display is the path or the URL without
    /// its password, fit for a log line.
    pub fn database(&self) -> &Database {
        &self.database
    }
}
