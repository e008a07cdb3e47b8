//! The PostgreSQL backend: one server shared by workers on any number of hosts. The same
//! shape as SQLite's: one write connection owned by the writer thread, which folds queued
//! writes into one transaction per batch (`crate::writer`, `writer`), and a few read
//! connections (`reads`). The connections are driven by the store's own small runtime
//! ([`writer::Driver`]), so the store works from any caller, async or not, like SQLite's.
//! The semantics of each method are [`crate::Store`]'s; `writes` says why each statement
//! keeps them between any number of workers.
//!
//! The client is `tokio-postgres` without TLS (the workers and the database share a
//! private network); a URL that requires TLS (`sslmode=require`) fails to connect.

mod reads;
mod schema;
mod writer;
mod writes;

use crate::config::{redact, StoreConfig};
use crate::error::StorageError;
use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Pending, Recorded, Taken};
use crate::writer::Batching;
use futures_util::future::BoxFuture;
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Summary, Uuid};
use reads::{Reader, Readers};
use std::sync::Arc;
use tokio_postgres::Client;
use writer::{Driver, PgSession, PgWriter, Tx};
use writes::Statements;

/// The writer thread and the readers each hold the [`Driver`], which keeps the
/// connections driven as long as either lives.
#[derive(Clone)]
pub struct Store {
    writer: PgWriter,
    readers: Arc<Readers>,
}

/// A write's statements, given its arguments (see `writes`).
type WriteFn<A, T> = for<'a> fn(&'a Tx<'a>, Arc<A>) -> BoxFuture<'a, Result<T, tokio_postgres::Error>>;

impl Store {
    /// Creates or migrates the schema, then connects the writer and the readers (on the
    /// store's own runtime, blocking this thread meanwhile, as opening a file does).
    pub fn open(url: &str, config: &StoreConfig) -> Result<Store, StorageError> {
        let database = redact(url);
        let runtime_error = |source| StorageError::WriterThread { database: database.clone(), source };
        let driver = Arc::new(Driver::start().map_err(runtime_error)?);
        let (client, sql, readers) = driver.block_on(connect_all(url, &database, config))?;
        let batching = Batching { max_batch: config.max_batch, linger: config.linger };
        let owner = config.owner.clone();
        let session =
            PgSession { client, sql, driver: Arc::clone(&driver), url: url.to_string(), database: database.clone(), owner };
        let writer = writer::start(session, batching)?;
        let readers = Readers::new(readers, driver, url.to_string(), database, config.owner.clone());
        Ok(Store { writer, readers })
    }

    /// Queues a write, to be folded with others into one transaction.
    async fn write<A, T>(&self, operation: &'static str, args: A, sql: WriteFn<A, T>) -> Result<T, StorageError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.write_in(operation, false, args, sql).await
    }

    /// Queues a write; `alone`: in a transaction of its own.
    async fn write_in<A, T>(&self, operation: &'static str, alone: bool, args: A, sql: WriteFn<A, T>) -> Result<T, StorageError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let args = Arc::new(args);
        writer::run(&self.writer, operation, alone, move |tx| sql(tx, Arc::clone(&args))).await
    }

    pub async fn record_pending(&self, batch: Vec<Accepted>) -> Result<Vec<Accepted>, StorageError> {
        self.write("record pending payments", batch, writes::record_pending).await
    }

    pub async fn record_for_sending(&self, batch: Vec<Accepted>, processor: Processor) -> Result<Recorded, StorageError> {
        self.write("record pending payments for sending", (batch, processor), writes::record_for_sending).await
    }

    pub async fn take_for_sending(&self, batch: Vec<(Uuid, Processor)>) -> Result<Taken, StorageError> {
        self.write("take payments for sending", batch, writes::take_for_sending).await
    }

    pub async fn pin(&self, batch: Vec<(Uuid, Processor)>) -> Result<usize, StorageError> {
        self.write("pin payments to a processor", batch, writes::pin).await
    }

    pub async fn mark_processed(&self, batch: Vec<(Payment, Attempt)>) -> Result<Vec<DoubleCharge>, StorageError> {
        self.write("mark payments processed", batch, writes::mark_processed).await
    }

    pub async fn heartbeat(&self, now: Millis) -> Result<(), StorageError> {
        self.write("record a worker heartbeat", now, writes::heartbeat).await
    }

    pub async fn retire(&self) -> Result<(), StorageError> {
        self.write("retire the worker", (), writes::retire).await
    }

    pub async fn claim_orphans(&self, now: Millis, dead_after_ms: i64, limit: usize) -> Result<Claimed, StorageError> {
        // In a transaction of its own: see `writes::claim_orphans`.
        self.write_in("claim orphaned payments", true, (now, dead_after_ms, limit), writes::claim_orphans).await
    }

    pub async fn own_pending(&self, limit: usize) -> Result<Vec<Pending>, StorageError> {
        self.write("read this worker's pending payments", limit, writes::own_pending).await
    }

    pub async fn take_health_turn(&self, processor: Processor, now: Millis, window_ms: i64) -> Result<bool, StorageError> {
        self.write("take a health-check turn", (processor, now, window_ms), writes::take_health_turn).await
    }

    pub async fn save_health(&self, processor: Processor, record: HealthRecord) -> Result<(), StorageError> {
        self.write("save a health record", (processor, record), writes::save_health).await
    }

    pub async fn purge(&self) -> Result<(), StorageError> {
        self.write("purge payments", (), writes::purge).await
    }

    pub async fn summary(&self, from: Option<Millis>, to: Option<Millis>) -> Result<Summary, StorageError> {
        self.readers.summary(from, to).await
    }

    pub async fn health(&self, processor: Processor) -> Result<Option<HealthRecord>, StorageError> {
        self.readers.health(processor).await
    }

    pub async fn orphans_exist(&self, now: Millis, dead_after_ms: i64) -> Result<bool, StorageError> {
        self.readers.orphans_exist(now, dead_after_ms).await
    }

    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        self.readers.pending_count().await
    }

    pub async fn close(&self) {
        self.writer.close().await;
    }
}

/// Migrates the schema on a connection of its own, then opens the write connection and
/// the readers.
async fn connect_all(url: &str, database: &str, config: &StoreConfig) -> Result<(Client, Statements, Vec<Reader>), StorageError> {
    let refused = |source| StorageError::postgres_connect(database, source);
    let mut client = connect(url, &config.owner).await.map_err(refused)?;
    schema::migrate(&mut client, database).await?;
    drop(client);
    let prepare = |e| StorageError::postgres(database, "prepare the statements", Arc::new(e));
    let (client, sql) = open_writer(url, &config.owner).await.map_err(prepare)?;
    let mut readers = Vec::new();
    for _ in 0..config.readers.max(1) {
        readers.push(Reader::open(url, &config.owner).await.map_err(prepare)?);
    }
    Ok((client, sql, readers))
}

/// The writer's connection: its lock timeout set, its statements prepared.
async fn open_writer(url: &str, owner: &str) -> Result<(Client, Statements), tokio_postgres::Error> {
    let client = connect(url, owner).await?;
    client.batch_execute(writer::LOCK_TIMEOUT).await?;
    let sql = Statements::prepare(&client).await?;
    Ok((client, sql))
}

/// How long a connection attempt may take when the URL does not say (`connect_timeout`):
/// without one, a host that drops packets would hold the worker's start for minutes.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One connection, named after the worker in `pg_stat_activity`, its task spawned on the
/// runtime this runs on (the store's own: see [`Driver`]).
async fn connect(url: &str, owner: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.application_name(format!("rinha-pay {owner}"));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("a connection to PostgreSQL ended: {e}");
        }
    });
    Ok(client)
}
