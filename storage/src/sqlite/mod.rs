//! The SQLite backend: one database file in WAL mode, shared by the worker processes of
//! one host. Writes go to the single writer thread (`writer`, batching in
//! `crate::write_thread`), reads to a small pool of read connections (`reads`); nothing here
//! blocks a runtime thread on SQLite. Each operation's body is in [`crate::Store`]: a
//! closure over a connection, given to [`Store::write`] or [`Store::read`].

mod busy;
pub(crate) mod reads;
pub(crate) mod schema;
mod write_session;
pub(crate) mod write_sql;

use crate::config::StoreConfig;
use crate::error::StorageError;
use crate::write_thread::Batching;
use reads::Readers;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use write_session::SqliteWriter;

#[derive(Clone)]
pub(crate) struct Store {
    writer: SqliteWriter,
    readers: Arc<Readers>,
}

impl Store {
    pub(crate) fn open(path: PathBuf, config: &StoreConfig) -> Result<Store, StorageError> {
        let conn = schema::open_writer(&path)?;
        let readers = Readers::open(path.clone(), config.readers)?;
        let batching = Batching {
            max_batch: config.max_batch,
            linger: config.linger,
        };
        let writer = write_session::start(conn, path, config.owner.clone(), batching)?;
        Ok(Store { writer, readers })
    }

    /// Queues `sql` for the writer thread and waits until it is committed (or failed).
    /// `sql` gets the open transaction's connection and the store's owner id.
    pub(crate) async fn write<T, F>(
        &self,
        operation: &'static str,
        sql: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    {
        write_session::run(&self.writer, operation, sql).await
    }

    /// Runs `query` on a read connection, in the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.readers.run(operation, query).await
    }

    pub(crate) async fn close(&self) {
        self.writer.close().await;
    }
}
