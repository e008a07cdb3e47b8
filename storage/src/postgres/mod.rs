//! The PostgreSQL backend: one server shared by workers on any number of hosts, in the
//! same shape as SQLite's: one write connection owned by the writer thread
//! (`crate::write_thread`, run by `write_session`), a few read connections (`reads`), all
//! driven by the store's own small runtime (`driver`), so any caller, async or not, can use
//! the store. Each operation's body is in [`crate::Store`]: a function of `write_sql` given
//! to [`Store::write`], or of `reads` given to [`Store::read`]; `write_sql` says why each
//! statement keeps [`crate::Store`]'s guarantees between any number of workers. The client
//! is `tokio-postgres` without TLS: a URL that requires TLS (`sslmode=require`) fails.

mod driver;
pub(crate) mod reads;
mod schema;
mod write_session;
pub(crate) mod write_sql;

use crate::config::{redact, StoreConfig};
use crate::error::StorageError;
use crate::write_thread::Batching;
use driver::Driver;
use futures_util::future::BoxFuture;
use reads::{Read, Reader, Readers};
use std::sync::Arc;
use tokio_postgres::Client;
use write_session::{PgSession, PgWriter};
use write_sql::{Statements, Tx};

/// The writer thread and the readers each hold the [`Driver`], which keeps the
/// connections driven as long as either lives.
#[derive(Clone)]
pub(crate) struct Store {
    writer: PgWriter,
    readers: Arc<Readers>,
}

/// A write's statements, given its arguments (see `write_sql`).
type WriteFn<A, T> =
    for<'a> fn(&'a Tx<'a>, Arc<A>) -> BoxFuture<'a, Result<T, tokio_postgres::Error>>;

impl Store {
    /// Creates or migrates the schema, then connects the writer and the readers (on the
    /// store's own runtime, blocking this thread meanwhile, as opening a file does).
    pub(crate) fn open(url: &str, config: &StoreConfig) -> Result<Store, StorageError> {
        let database = redact(url);
        let runtime_error = |source| StorageError::WriterThread {
            database: database.clone(),
            source,
        };
        let driver = Arc::new(Driver::start().map_err(runtime_error)?);
        let (client, sql, readers) = driver.block_on(connect_all(url, &database, config))?;
        let batching = Batching {
            max_batch: config.max_batch,
            linger: config.linger,
        };
        let owner = config.owner.clone();
        let session = PgSession {
            client,
            sql,
            driver: Arc::clone(&driver),
            url: url.to_string(),
            database: database.clone(),
            owner,
        };
        let writer = write_session::start(session, batching)?;
        let readers = Readers::new(
            readers,
            driver,
            url.to_string(),
            database,
            config.owner.clone(),
        );
        Ok(Store { writer, readers })
    }

    /// Queues the write `sql` of `args`, to be folded with others into one transaction, and
    /// waits until it is committed (or failed).
    pub(crate) async fn write<A, T>(
        &self,
        operation: &'static str,
        args: A,
        sql: WriteFn<A, T>,
    ) -> Result<T, StorageError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.write_in(operation, false, args, sql).await
    }

    /// [`Store::write`] in a transaction of its own.
    pub(crate) async fn write_alone<A, T>(
        &self,
        operation: &'static str,
        args: A,
        sql: WriteFn<A, T>,
    ) -> Result<T, StorageError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.write_in(operation, true, args, sql).await
    }

    async fn write_in<A, T>(
        &self,
        operation: &'static str,
        alone: bool,
        args: A,
        sql: WriteFn<A, T>,
    ) -> Result<T, StorageError>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let args = Arc::new(args);
        write_session::run(&self.writer, operation, alone, move |tx| {
            sql(tx, Arc::clone(&args))
        })
        .await
    }

    /// Runs `query` on a read connection.
    pub(crate) async fn read<T>(
        &self,
        operation: &'static str,
        query: impl for<'a> FnOnce(&'a Reader) -> Read<'a, T>,
    ) -> Result<T, StorageError> {
        self.readers.run(operation, query).await
    }

    pub(crate) async fn close(&self) {
        self.writer.close().await;
    }
}

/// Migrates the schema on a connection of its own, then opens the write connection and
/// the readers.
async fn connect_all(
    url: &str,
    database: &str,
    config: &StoreConfig,
) -> Result<(Client, Statements, Vec<Reader>), StorageError> {
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
async fn open_writer(
    url: &str,
    owner: &str,
) -> Result<(Client, Statements), tokio_postgres::Error> {
    let client = connect(url, owner).await?;
    client.batch_execute(write_session::LOCK_TIMEOUT).await?;
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
