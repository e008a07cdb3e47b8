//! Restart recovery: no payment stays with a dead worker.
//!
//! Each worker writes a heartbeat every `HEARTBEAT_MS`. At start and every
//! `ORPHAN_SCAN_MS` it claims (atomically, in SQLite) the pending payments of workers
//! whose heartbeat is older than `WORKER_DEAD_AFTER_MS`, and queues them keeping their
//! attempt: they go back to the same processor with the same `requestedAt`, where a 422
//! means "already paid" (see `dispatch`). A worker that shuts down cleanly retires its
//! heartbeat so the other one claims its leftovers at once.
//!
//! A live worker whose heartbeat stalls (CPU starvation, a slow disk) can lose payments it
//! still holds in its queue this way. It simply carries on writing its heartbeat (the
//! upsert recreates a deleted row): dispatch sends nothing without the store confirming
//! ownership first, so the lost payments are dropped from its queue, not sent twice.

use crate::dispatch::{Job, Queue};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use payment::Millis;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use storage::{StorageError, Store};

/// Most payments claimed in one transaction; more are taken in the next one right away.
const CLAIM_BATCH: usize = 4096;

pub struct Recovery {
    pub store: Store,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub dead_after: Duration,
}

/// Writes the heartbeat until shutdown, whatever happened to the row or our payments meanwhile.
pub async fn heartbeat(store: Store, every: Duration, shutdown: Shutdown) {
    shutdown
        .every(every, || async {
            if let Err(e) = store.heartbeat(Millis::now()).await {
                tracing::warn!("cannot write the heartbeat: {e}");
            }
        })
        .await
}

impl Recovery {
    /// Claims orphans now and then every `every`, until shutdown.
    pub async fn run(self, every: Duration, shutdown: Shutdown) {
        shutdown
            .every(every, || async {
                if let Err(e) = self.claim_all().await {
                    tracing::warn!("cannot claim orphaned payments: {e}");
                }
            })
            .await
    }

    async fn claim_all(&self) -> Result<(), StorageError> {
        let dead_after_ms = self.dead_after.as_millis() as i64;
        loop {
            let claimed = self
                .store
                .claim_orphans(Millis::now(), dead_after_ms, CLAIM_BATCH)
                .await?;
            let count = claimed.len();
            if count > 0 {
                tracing::info!(count, "claimed payments of a dead worker");
                self.metrics.claimed.fetch_add(count as u64, Relaxed);
                self.queue.push_new(claimed.into_iter().map(Job::claimed));
            }
            if count < CLAIM_BATCH {
                return Ok(());
            }
        }
    }
}
