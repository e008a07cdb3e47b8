//! The SQL of every PostgreSQL read, on a small pool of read connections.
//!
//! Reads never go through the writer: each statement sees the last committed state of
//! all workers without waiting for any write (MVCC), so a summary is not delayed by a
//! batch. A connection pipelines the queries given to it, so the pool is just `readers`
//! connections taken in turn; their statements are prepared once, when they open. A
//! connection found closed (the server restarted) is opened again on the store's runtime
//! before the query; a query that met the loss fails, and the next one works.

use super::driver::Driver;
use crate::error::StorageError;
use crate::model::HealthRecord;
use crate::rows;
use futures_util::future::BoxFuture;
use payment::{Millis, Processor, Summary};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Statement};

/// Whether a claim would take something (see `sqlite::reads::orphans_exist`).
const ORPHANS_EXIST: &str = "SELECT EXISTS (
     SELECT 1 FROM payments p
     WHERE p.status = 'pending'
       AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = p.owner AND w.heartbeat_at > $1))";

/// The summary: per processor, one range scan of `payments_processed_by_requested_at`.
const SUMMARY: &str = "SELECT processor, count(*), coalesce(sum(amount), 0)::bigint FROM payments
     WHERE status = 'processed' AND processor IN ('default', 'fallback')
       AND requested_at BETWEEN $1 AND $2
     GROUP BY processor";

pub(crate) struct Reader {
    client: Client,
    summary: Statement,
    health: Statement,
    pending_count: Statement,
    orphans_exist: Statement,
}

impl Reader {
    pub(crate) async fn open(url: &str, owner: &str) -> Result<Reader, tokio_postgres::Error> {
        let client = super::connect(url, owner).await?;
        Ok(Reader {
            summary: client.prepare(SUMMARY).await?,
            health: client
                .prepare("SELECT failing, min_response_time_ms, checked_at FROM health_records WHERE processor = $1")
                .await?,
            pending_count: client.prepare("SELECT count(*) FROM payments WHERE status = 'pending'").await?,
            orphans_exist: client.prepare(ORPHANS_EXIST).await?,
            client,
        })
    }
}

pub(crate) struct Readers {
    slots: Vec<Mutex<Arc<Reader>>>,
    next: AtomicUsize,
    driver: Arc<Driver>,
    /// To reconnect; never shown (it may hold a password).
    url: String,
    /// The URL without its password, for errors.
    database: String,
    owner: String,
}

impl Readers {
    /// `readers` must not be empty.
    pub(crate) fn new(
        readers: Vec<Reader>,
        driver: Arc<Driver>,
        url: String,
        database: String,
        owner: String,
    ) -> Arc<Readers> {
        let slots = readers
            .into_iter()
            .map(|r| Mutex::new(Arc::new(r)))
            .collect();
        Arc::new(Readers {
            slots,
            next: AtomicUsize::new(0),
            driver,
            url,
            database,
            owner,
        })
    }

    /// The next connection in turn, opened again first if it was lost.
    async fn pick(&self, operation: &'static str) -> Result<Arc<Reader>, StorageError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if slot.client.is_closed() {
            tracing::warn!(
                "a read connection to {} was lost; reconnecting",
                self.database
            );
            let (url, owner) = (self.url.clone(), self.owner.clone());
            let reopened = self
                .driver
                .handle()
                .spawn(async move { Reader::open(&url, &owner).await })
                .await;
            let lost = || StorageError::ReaderLost {
                database: self.database.clone(),
                operation,
            };
            let refused = |e| StorageError::postgres_connect(&self.database, e);
            *slot = Arc::new(reopened.map_err(|_| lost())?.map_err(refused)?);
        }
        Ok(Arc::clone(&slot))
    }

    /// Runs `query` on the next connection in turn.
    pub(crate) async fn run<T>(
        &self,
        operation: &'static str,
        query: impl for<'a> FnOnce(&'a Reader) -> Read<'a, T>,
    ) -> Result<T, StorageError> {
        let reader = self.pick(operation).await?;
        query(&reader)
            .await
            .map_err(|e| StorageError::postgres(&self.database, operation, Arc::new(e)))
    }
}

/// A read's statements on one connection.
pub(crate) type Read<'a, T> = BoxFuture<'a, Result<T, tokio_postgres::Error>>;

/// Totals of processed payments per processor with `requested_at` in `[from, to]`.
pub(crate) fn summary(
    reader: &Reader,
    from: Option<Millis>,
    to: Option<Millis>,
) -> Read<'_, Summary> {
    Box::pin(async move {
        let (from, to) = rows::summary_bounds(from, to);
        let found = reader.client.query(&reader.summary, &[&from, &to]).await?;
        let mut summary = Summary::default();
        for row in &found {
            rows::add_totals(&mut summary, row.get(0), row.get(1), row.get(2));
        }
        Ok(summary)
    })
}

pub(crate) fn health(reader: &Reader, processor: Processor) -> Read<'_, Option<HealthRecord>> {
    Box::pin(async move {
        let found = reader
            .client
            .query_opt(&reader.health, &[&processor.name()])
            .await?;
        Ok(found.map(|row| rows::health_record(row.get(0), row.get(1), row.get(2))))
    })
}

pub(crate) fn pending_count(reader: &Reader) -> Read<'_, i64> {
    Box::pin(async move {
        Ok(reader
            .client
            .query_one(&reader.pending_count, &[])
            .await?
            .get(0))
    })
}

/// See `sqlite::reads::orphans_exist`.
pub(crate) fn orphans_exist(reader: &Reader, now: Millis, dead_after: Duration) -> Read<'_, bool> {
    Box::pin(async move {
        let threshold = rows::claim_threshold(now, dead_after);
        Ok(reader
            .client
            .query_one(&reader.orphans_exist, &[&threshold])
            .await?
            .get(0))
    })
}
