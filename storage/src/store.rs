//! [`Store`]: the async API the api worker uses, the same whatever the database. Each
//! operation is declared here once, with what it guarantees, and holds its body for each
//! backend the [`Database`] chose: a closure over SQLite's connection (`sqlite::write_sql`,
//! `sqlite::reads`), a function of PostgreSQL's transaction or read connection
//! (`postgres::write_sql`, `postgres::reads`).
//!
//! Why one `match` per operation: there are two backends, both known here, so a trait
//! would only add a layer that forwards; here an operation, its name in errors and both its
//! bodies are read in one place. `tests/store_*.rs` run every test against both.

use crate::config::{Database, StoreConfig};
use crate::error::StorageError;
use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Pending, Recorded, Taken};
use crate::{postgres, sqlite};
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Summary, Uuid};
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

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
        Ok(Store {
            backend,
            database: config.database,
            heartbeat_written: Arc::default(),
        })
    }

    /// Records accepted payments as pending, owned by this store's owner. Returns the ones
    /// that were new: a re-sent batch returns none of the already known ones, and payments
    /// a purge forgot (accepted at or before its fence) are neither recorded nor returned.
    pub async fn record_pending(
        &self,
        batch: Vec<Accepted>,
    ) -> Result<Vec<Accepted>, StorageError> {
        let operation = "record pending payments";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::record_pending(conn, owner, &batch)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(operation, batch, postgres::write_sql::record_pending)
                    .await
            }
        }
    }

    /// [`Store::record_pending`] and, in the same transaction, [`Store::take_for_sending`]
    /// for the new payments to `processor`: for a worker that sends what it records right
    /// away, one write instead of two. Every new payment gets the attempt (`processor`,
    /// requestedAt = the time of the write) and the heartbeat is renewed to that time, the
    /// proof of ownership. Known payments of a re-sent batch are neither returned nor
    /// changed. A payment recorded this way counts as attempted even before it is sent:
    /// a claim or [`Store::own_pending`] gives it back pinned to `processor`.
    pub async fn record_for_sending(
        &self,
        batch: Vec<Accepted>,
        processor: Processor,
    ) -> Result<Recorded, StorageError> {
        let operation = "record pending payments for sending";
        let recorded = match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::record_for_sending(conn, owner, &batch, processor)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(
                    operation,
                    (batch, processor),
                    postgres::write_sql::record_for_sending,
                )
                .await
            }
        }?;
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
    pub async fn take_for_sending(
        &self,
        batch: Vec<(Uuid, Processor)>,
    ) -> Result<Taken, StorageError> {
        let operation = "take payments for sending";
        let taken = match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::take_for_sending(conn, owner, &batch)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(operation, batch, postgres::write_sql::take_for_sending)
                    .await
            }
        }?;
        self.heartbeat_written(taken.alive_at);
        Ok(taken)
    }

    /// Pins pending payments to the processor of their last attempt, for good: a call there
    /// ended without an answer, so it may have stored them. Survives restarts and claims.
    pub async fn pin(&self, batch: Vec<(Uuid, Processor)>) -> Result<usize, StorageError> {
        let operation = "pin payments to a processor";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, _| {
                    sqlite::write_sql::pin(conn, &batch)
                })
                .await
            }
            Backend::Postgres(db) => db.write(operation, batch, postgres::write_sql::pin).await,
        }
    }

    /// Frees payments of this store's owner pinned to `processor` (see [`Store::pin`]):
    /// the caller asked that processor, which does not hold them, and no earlier call to it
    /// can still land. Returns those freed; the others are no longer this owner's, or
    /// pending. A take then stamps a new requestedAt, as for a payment never sent.
    pub async fn unpin(
        &self,
        processor: Processor,
        ids: Vec<Uuid>,
    ) -> Result<Vec<Uuid>, StorageError> {
        let operation = "free payments pinned to a processor";
        let batch: Vec<(Uuid, Processor)> = ids.into_iter().map(|id| (id, processor)).collect();
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::unpin(conn, owner, &batch)
                })
                .await
            }
            Backend::Postgres(db) => db.write(operation, batch, postgres::write_sql::unpin).await,
        }
    }

    /// Marks pending payments processed on that processor with that requestedAt. An
    /// already processed row is left unchanged, and returned if it was processed at the
    /// other processor: that payment was charged twice. A row purged meanwhile is not
    /// recreated: a purge forgets for good.
    pub async fn mark_processed(
        &self,
        batch: Vec<(Payment, Attempt)>,
    ) -> Result<Vec<DoubleCharge>, StorageError> {
        let operation = "mark payments processed";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, _| {
                    sqlite::write_sql::mark_processed(conn, &batch)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(operation, batch, postgres::write_sql::mark_processed)
                    .await
            }
        }
    }

    /// This worker is alive at `now`. The row never goes back: a heartbeat stamped before
    /// a later take's proof of ownership (the writer stalled between them) leaves that proof.
    pub async fn heartbeat(&self, now: Millis) -> Result<(), StorageError> {
        let operation = "record a worker heartbeat";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::heartbeat(conn, owner, now)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(operation, now, postgres::write_sql::heartbeat)
                    .await
            }
        }?;
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
        let operation = "retire the worker";
        match &self.backend {
            Backend::Sqlite(db) => db.write(operation, sqlite::write_sql::retire).await,
            Backend::Postgres(db) => db.write(operation, (), postgres::write_sql::retire).await,
        }
    }

    /// Takes over up to `limit` pending payments whose owner has no heartbeat newer than
    /// `now - dead_after` (or no heartbeat row, or no owner) and returns them with their
    /// attempt; those with an attempt come back pinned to its processor. Atomic across
    /// processes and hosts: two workers with live heartbeats never both get a payment.
    /// The owner is judged only by its heartbeat, so a worker restarted under the
    /// same id gets its own old payments back only if it claims before its first heartbeat.
    pub async fn claim_orphans(
        &self,
        now: Millis,
        dead_after: Duration,
        limit: usize,
    ) -> Result<Claimed, StorageError> {
        let operation = "claim orphaned payments";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::claim_orphans(conn, owner, now, dead_after, limit)
                })
                .await
            }
            // In a transaction of its own: see `postgres::write_sql::claim_orphans`.
            Backend::Postgres(db) => {
                db.write_alone(
                    operation,
                    (now, dead_after, limit),
                    postgres::write_sql::claim_orphans,
                )
                .await
            }
        }
    }

    /// Whether [`Store::claim_orphans`] with the same `now` and `dead_after` would take
    /// anything right now. A read: a worker looks every scan and claims (a write) only when
    /// there is something to take.
    pub async fn orphans_exist(
        &self,
        now: Millis,
        dead_after: Duration,
    ) -> Result<bool, StorageError> {
        let operation = "look for orphaned payments";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.read(operation, move |conn| {
                    sqlite::reads::orphans_exist(conn, now, dead_after)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.read(operation, move |reader| {
                    postgres::reads::orphans_exist(reader, now, dead_after)
                })
                .await
            }
        }
    }

    /// Up to `limit` pending payments owned by this store's owner, with their attempt;
    /// those with one come back pinned to its processor, in their rows too, as a claim
    /// gives them (a call may be running or may have stored it). For a worker that lost
    /// track of what it owns: a write that failed after it may have committed (see
    /// `api::intake`).
    pub async fn own_pending(&self, limit: usize) -> Result<Vec<Pending>, StorageError> {
        let operation = "read this worker's pending payments";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, owner| {
                    sqlite::write_sql::own_pending(conn, owner, limit)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(operation, limit, postgres::write_sql::own_pending)
                    .await
            }
        }
    }

    /// The shared health-check budget: true iff no worker took a turn for `processor` in
    /// the last `window`, in which case `now` is recorded as the last turn (atomically,
    /// across processes and hosts).
    pub async fn take_health_turn(
        &self,
        processor: Processor,
        now: Millis,
        window: Duration,
    ) -> Result<bool, StorageError> {
        let operation = "take a health-check turn";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, _| {
                    sqlite::write_sql::take_health_turn(conn, processor, now, window)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(
                    operation,
                    (processor, now, window),
                    postgres::write_sql::take_health_turn,
                )
                .await
            }
        }
    }

    /// Stores a processor's health answer for all workers to read.
    pub async fn save_health(
        &self,
        processor: Processor,
        record: HealthRecord,
    ) -> Result<(), StorageError> {
        let operation = "save a health record";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, _| {
                    sqlite::write_sql::save_health(conn, processor, &record)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.write(
                    operation,
                    (processor, record),
                    postgres::write_sql::save_health,
                )
                .await
            }
        }
    }

    /// Forgets every payment accepted at or before `fence`, pending and processed, for
    /// good: the rows go, and the fence is kept, so such a payment reaching intake later (a
    /// batch in flight, the lb's journal replayed) is not recorded, and one whose call was in
    /// flight is not recreated by [`Store::mark_processed`]. Queued payments are dropped at
    /// their next [`Store::take_for_sending`]. A processor may still store a call that was in
    /// flight: our summary then differs from its own by those, as the purge asked.
    pub async fn purge(&self, fence: Millis) -> Result<(), StorageError> {
        let operation = "purge payments";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(operation, move |conn, _| {
                    sqlite::write_sql::purge(conn, fence)
                })
                .await
            }
            Backend::Postgres(db) => db.write(operation, fence, postgres::write_sql::purge).await,
        }
    }

    /// Processed payments per processor with requestedAt in `[from, to]` (inclusive, a
    /// missing bound is open), in exact cents.
    pub async fn summary(
        &self,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<Summary, StorageError> {
        let operation = "compute the payments summary";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.read(operation, move |conn| {
                    sqlite::reads::summary(conn, from, to)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.read(operation, move |reader| {
                    postgres::reads::summary(reader, from, to)
                })
                .await
            }
        }
    }

    /// The last health answer saved for `processor`, by any worker.
    pub async fn health(&self, processor: Processor) -> Result<Option<HealthRecord>, StorageError> {
        let operation = "read a health record";
        match &self.backend {
            Backend::Sqlite(db) => {
                db.read(operation, move |conn| {
                    sqlite::reads::health(conn, processor)
                })
                .await
            }
            Backend::Postgres(db) => {
                db.read(operation, move |reader| {
                    postgres::reads::health(reader, processor)
                })
                .await
            }
        }
    }

    /// How many payments are pending (all workers).
    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        let operation = "count pending payments";
        match &self.backend {
            Backend::Sqlite(db) => db.read(operation, sqlite::reads::pending_count).await,
            Backend::Postgres(db) => db.read(operation, postgres::reads::pending_count).await,
        }
    }

    /// Flushes the writer and stops its thread (graceful shutdown). Writes through other
    /// clones fail with [`StorageError::Closed`] afterwards; reads keep working.
    pub async fn close(self) {
        match &self.backend {
            Backend::Sqlite(db) => db.close().await,
            Backend::Postgres(db) => db.close().await,
        }
    }

    /// The database this store speaks to; its Display is the path or the URL without
    /// its password, fit for a log line.
    pub fn database(&self) -> &Database {
        &self.database
    }
}
