//! The SQL of every PostgreSQL read, on a small pool of read connections.
//!
//! Reads never go through the writer: each statement sees the last committed state of
//! all workers without waiting for any write (MVCC), so a summary is not delayed by a
//! batch. A connection pipelines the queries given to it, so the pool is just `readers`
//! connections taken in turn; their statements are prepared once, when they open.

use crate::error::StorageError;
use crate::model::HealthRecord;
use crate::rows;
use payment::{Millis, Processor, Summary};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_postgres::{Client, Statement};

/// The summary: per processor, one range scan of `payments_processed_by_requested_at`.
const SUMMARY: &str = "SELECT processor, count(*), coalesce(sum(amount), 0)::bigint FROM payments
     WHERE status = 'processed' AND processor IN ('default', 'fallback')
       AND requested_at BETWEEN $1 AND $2
     GROUP BY processor";

pub struct Reader {
    client: Client,
    summary: Statement,
    health: Statement,
    pending_count: Statement,
}

impl Reader {
    pub async fn prepare(client: Client) -> Result<Reader, tokio_postgres::Error> {
        Ok(Reader {
            summary: client.prepare(SUMMARY).await?,
            health: client
                .prepare("SELECT failing, min_response_time_ms, checked_at FROM health_records WHERE processor = $1")
                .await?,
            pending_count: client.prepare("SELECT count(*) FROM payments WHERE status = 'pending'").await?,
            client,
        })
    }
}

pub struct Readers {
    readers: Vec<Reader>,
    next: AtomicUsize,
    database: String,
}

impl Readers {
    /// `readers` must not be empty.
    pub fn new(readers: Vec<Reader>, database: String) -> Arc<Readers> {
        Arc::new(Readers { readers, next: AtomicUsize::new(0), database })
    }

    fn pick(&self) -> &Reader {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        &self.readers[i]
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StorageError + '_ {
        move |e| StorageError::postgres(&self.database, operation, Arc::new(e))
    }

    /// Totals of processed payments per processor with `requested_at` in `[from, to]`.
    pub async fn summary(&self, from: Option<Millis>, to: Option<Millis>) -> Result<Summary, StorageError> {
        let (from, to) = rows::summary_bounds(from, to);
        let reader = self.pick();
        let found = reader.client.query(&reader.summary, &[&from, &to]).await.map_err(self.error("compute the payments summary"))?;
        let mut summary = Summary::default();
        for row in &found {
            rows::add_totals(&mut summary, row.get(0), row.get(1), row.get(2));
        }
        Ok(summary)
    }

    pub async fn health(&self, processor: Processor) -> Result<Option<HealthRecord>, StorageError> {
        let reader = self.pick();
        let found = reader.client.query_opt(&reader.health, &[&processor.name()]).await.map_err(self.error("read a health record"))?;
        Ok(found.map(|row| rows::health_record(row.get(0), row.get(1), row.get(2))))
    }

    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        let reader = self.pick();
        let row = reader.client.query_one(&reader.pending_count, &[]).await.map_err(self.error("count pending payments"))?;
        Ok(row.get(0))
    }
}
