//! The SQL of every SQLite read, and the small pool of read connections it runs on.
//!
//! Reads never go through the writer: in WAL mode they see the last committed state of
//! both workers without waiting for any write, so a summary is not delayed by a batch.
//! Each read runs on tokio's blocking pool, never on a runtime thread.

use crate::error::StorageError;
use crate::model::HealthRecord;
use crate::rows;
use payment::{Millis, Processor, Summary};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Read connections handed out one per query; at most `readers` queries run at once.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn open(path: PathBuf, count: usize) -> Result<Arc<Readers>, StorageError> {
        let count = count.max(1);
        let idle = (0..count)
            .map(|_| super::schema::open_reader(&path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Readers {
            path,
            idle: Mutex::new(idle),
            permits: Semaphore::new(count),
        }))
    }

    /// Runs `query` on an idle read connection in the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        operation: &'static str,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let lost = || StorageError::ReaderLost {
            database: self.path.display().to_string(),
            operation,
        };
        // The semaphore is never closed, so acquiring only waits for a free connection.
        let _permit = self.permits.acquire().await.map_err(|_| lost())?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // None only if a query panicked and took its connection along: open a new one.
            let conn = match readers.take() {
                Some(conn) => conn,
                None => super::schema::open_reader(&readers.path)?,
            };
            let result =
                query(&conn).map_err(|e| StorageError::sqlite(&readers.path, operation, e));
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|_| lost())?
    }

    fn take(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

/// Totals of processed payments per processor with `requested_at` in `[from, to]`
/// (inclusive; a missing bound is open). One range scan of the covering index per
/// processor; naming both processors lets SQLite use the index order for the grouping.
pub(crate) fn summary(
    conn: &Connection,
    from: Option<Millis>,
    to: Option<Millis>,
) -> rusqlite::Result<Summary> {
    let mut query = conn.prepare_cached(
        "SELECT processor, count(*), coalesce(sum(amount), 0) FROM payments
         WHERE status = 'processed' AND processor IN ('default', 'fallback')
           AND requested_at BETWEEN ?1 AND ?2
         GROUP BY processor",
    )?;
    let (from, to) = rows::summary_bounds(from, to);
    let mut summary = Summary::default();
    let mut rows = query.query(params![from, to])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        rows::add_totals(&mut summary, &name, row.get(1)?, row.get(2)?);
    }
    Ok(summary)
}

pub(crate) fn health(
    conn: &Connection,
    processor: Processor,
) -> rusqlite::Result<Option<HealthRecord>> {
    conn.prepare_cached(
        "SELECT failing, min_response_time_ms, checked_at FROM health_records WHERE processor = ?1",
    )?
    .query_row(params![processor.name()], |row| {
        Ok(rows::health_record(row.get(0)?, row.get(1)?, row.get(2)?))
    })
    .optional()
}

/// Whether some pending payment's owner shows no heartbeat newer than `now - dead_after`
/// (or none at all, or there is no owner): whether a claim would take anything. A read, so
/// a worker can look every scan and write only when there is something to claim.
pub(crate) fn orphans_exist(
    conn: &Connection,
    now: Millis,
    dead_after: Duration,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (
             SELECT 1 FROM payments p
             WHERE p.status = 'pending'
               AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = p.owner AND w.heartbeat_at > ?1))",
    )?
    .query_row(params![rows::claim_threshold(now, dead_after)], |row| row.get(0))
}

pub(crate) fn pending_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM payments WHERE status = 'pending'")?
        .query_row([], |row| row.get(0))
}
