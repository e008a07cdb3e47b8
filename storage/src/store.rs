//! [`Store`]: the async API the api worker uses. Writes go to the single writer thread,
//! reads to the read pool; nothing here blocks a runtime thread on SQLite.

use crate::config::StoreConfig;
use crate::error::StorageError;
use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Taken};
use crate::reads::{self, Readers};
use crate::writer::Writer;
use crate::{schema, writes};
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Summary, Uuid};
use std::path::Path;
use std::sync::Arc;

/// A handle on the database; cheap to clone, all clones share one writer thread and one
/// read pool.
#[derive(Clone)]
pub struct Store {
    writer: Writer,
    readers: Arc<Readers>,
}

impl Store {
    /// Creates missing directories, opens or migrates the schema, sets WAL and the pragmas
    /// (see [`crate::schema`]) and starts the writer thread. A file that is not a database
    /// gives [`StorageError::NotADatabase`].
    pub fn open(config: StoreConfig) -> Result<Store, StorageError> {
        let conn = schema::open_writer(&config.path)?;
        let readers = Readers::open(config.path.clone(), config.readers)?;
        let writer = Writer::start(conn, config.path, config.owner, config.max_batch, config.linger)?;
        Ok(Store { writer, readers })
    }

    /// Records accepted payments as pending, owned by this store's owner. Returns the ones
    /// that were new: a re-sent batch returns none of the already known ones.
    pub async fn record_pending(&self, batch: Vec<Accepted>) -> Result<Vec<Accepted>, StorageError> {
        self.writer.run("record pending payments", move |conn, owner| writes::record_pending(conn, owner, &batch)).await
    }

    /// The ownership check before every send, and the attempt made durable BEFORE the
    /// payment is sent. For each payment that is still pending AND owned by this store's
    /// owner: records the processor it goes to (a payment pinned to a processor keeps that
    /// one, whatever was asked) and, on its first attempt, the requestedAt, which is the
    /// time of this write: the caller sends right after it. Returns each with the attempt
    /// as stored (later attempts keep the first requestedAt). Everything else is not
    /// returned and not changed: payments claimed by another worker (this one's heartbeat
    /// went stale), processed, or purged. The caller sends only what is returned, and only
    /// to the processor returned.
    ///
    /// Also renews this worker's heartbeat in the same transaction; [`Taken::alive_at`] is
    /// that time, the proof of ownership: nobody can claim the returned payments before
    /// `alive_at + dead_after`.
    pub async fn take_for_sending(&self, batch: Vec<(Uuid, Processor)>) -> Result<Taken, StorageError> {
        self.writer.run("take payments for sending", move |conn, owner| writes::take_for_sending(conn, owner, &batch)).await
    }

    /// Pins pending payments to the processor of their last attempt, for good: a call there
    /// ended without an answer, so it may have stored them. Survives restarts and claims.
    pub async fn pin(&self, batch: Vec<(Uuid, Processor)>) -> Result<usize, StorageError> {
        self.writer.run("pin payments to a processor", move |conn, _| writes::pin(conn, &batch)).await
    }

    /// Marks payments processed on that processor with that requestedAt. A row purged
    /// meanwhile is recreated; an already processed row is left unchanged, and returned if
    /// it was processed at the other processor: that payment was charged twice.
    pub async fn mark_processed(&self, batch: Vec<(Payment, Attempt)>) -> Result<Vec<DoubleCharge>, StorageError> {
        self.writer.run("mark payments processed", move |conn, _| writes::mark_processed(conn, &batch)).await
    }

    /// This worker is alive at `now`.
    pub async fn heartbeat(&self, now: Millis) -> Result<(), StorageError> {
        self.writer.run("record a worker heartbeat", move |conn, owner| writes::heartbeat(conn, owner, now)).await
    }

    /// This worker leaves cleanly: its heartbeat row goes, so its pending payments are
    /// claimable at once.
    pub async fn retire(&self) -> Result<(), StorageError> {
        self.writer.run("retire the worker", writes::retire).await
    }

    /// Takes over up to `limit` pending payments whose owner has no heartbeat newer than
    /// `now - dead_after_ms` (or no heartbeat row, or no owner) and returns them with their
    /// attempt; those with an attempt come back pinned to its processor. Atomic across
    /// processes: two workers with live heartbeats never both get a payment. The owner is judged only by its heartbeat, so a worker restarted under the
    /// same id gets its own old payments back only if it claims before its first heartbeat.
    pub async fn claim_orphans(&self, now: Millis, dead_after_ms: i64, limit: usize) -> Result<Claimed, StorageError> {
        self.writer
            .run("claim orphaned payments", move |conn, owner| writes::claim_orphans(conn, owner, now, dead_after_ms, limit))
            .await
    }

    /// The shared health-check budget: true iff no worker took a turn for `processor` in
    /// the last `window_ms`, in which case `now` is recorded as the last turn (atomically,
    /// across processes).
    pub async fn take_health_turn(&self, processor: Processor, now: Millis, window_ms: i64) -> Result<bool, StorageError> {
        self.writer
            .run("take a health-check turn", move |conn, _| writes::take_health_turn(conn, processor, now, window_ms))
            .await
    }

    /// Stores a processor's health answer for both workers to read.
    pub async fn save_health(&self, processor: Processor, record: HealthRecord) -> Result<(), StorageError> {
        self.writer.run("save a health record", move |conn, _| writes::save_health(conn, processor, &record)).await
    }

    /// Deletes all payments, pending and processed: the database forgets everything. A
    /// worker's queued payments are dropped at their next [`Store::take_for_sending`] (the
    /// rows are gone); one whose call is in flight is recreated by [`Store::mark_processed`]
    /// if the processor stored it, so our summary keeps matching the processor's.
    pub async fn purge(&self) -> Result<(), StorageError> {
        self.writer.run("purge payments", |conn, _| writes::purge(conn)).await
    }

    /// Processed payments per processor with requestedAt in `[from, to]` (inclusive, a
    /// missing bound is open), in exact cents.
    pub async fn summary(&self, from: Option<Millis>, to: Option<Millis>) -> Result<Summary, StorageError> {
        self.readers.run("compute the payments summary", move |conn| reads::summary(conn, from, to)).await
    }

    /// The last health answer saved for `processor`, by either worker.
    pub async fn health(&self, processor: Processor) -> Result<Option<HealthRecord>, StorageError> {
        self.readers.run("read a health record", move |conn| reads::health(conn, processor)).await
    }

    /// How many payments are pending (all workers).
    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        self.readers.run("count pending payments", reads::pending_count).await
    }

    /// Flushes the writer and stops its thread (graceful shutdown). Writes through other
    /// clones fail with [`StorageError::Closed`] afterwards; reads keep working.
    pub async fn close(self) -> Result<(), StorageError> {
        self.writer.close().await;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.readers.path()
    }
}
