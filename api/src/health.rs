//! The health poller: keeps this worker's routing view in step with the processors'
//! `GET /payments/service-health`, without ever exceeding its budget. Keeps: one call per
//! 5 s per processor across BOTH workers, by taking the turn in the database
//! (`store.take_health_turn`) before calling; every worker reads the saved record every
//! `HEALTH_READ_MS` and applies it (a newer record wins over an older call answer, never
//! the reverse). A 429 here would be a bug: logged as a warning and counted in `/metrics`.
//! Why: docs/architecture.md, "Decisions and why".

use crate::processor::{HealthError, ProcessorClient};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use payment::Millis;
use std::sync::Arc;
use std::time::Duration;
use storage::HealthRecord;

/// The health polls of one worker, one task per processor.
pub(crate) struct HealthPoller {
    shared: Shared,
    /// `HEALTH_WINDOW_MS`: one health call per window per processor, all workers together.
    window: Duration,
    /// `HEALTH_READ_MS`: how often the shared record is read.
    read_every: Duration,
}

impl HealthPoller {
    pub(crate) fn new(shared: Shared, window: Duration, read_every: Duration) -> HealthPoller {
        HealthPoller {
            shared,
            window,
            read_every,
        }
    }

    /// Polls one processor until shutdown.
    pub(crate) async fn run(self: Arc<Self>, client: Arc<ProcessorClient>, shutdown: Shutdown) {
        shutdown
            .every(self.read_every, || async {
                let saved = self.refresh(&client).await;
                if self.due(saved) {
                    self.check(&client).await;
                }
            })
            .await
    }

    /// Whether a health call may be due: no record saved a window ago or later (none read,
    /// or none could be read: the shared turn decides).
    fn due(&self, saved: Option<HealthRecord>) -> bool {
        let window_ms = self.window.as_millis() as i64;
        saved.is_none_or(|record| Millis::now().0.saturating_sub(record.checked_at.0) >= window_ms)
    }

    /// Calls the health endpoint if this worker holds the shared turn, saves the answer
    /// for all workers and applies it here.
    async fn check(&self, client: &ProcessorClient) {
        let processor = client.processor();
        match self
            .shared
            .store
            .take_health_turn(processor, Millis::now(), self.window)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(%processor, "cannot take the health turn: {e}");
                return;
            }
        }
        self.shared.metrics.health_call(processor);
        match client.health().await {
            Ok(health) => {
                let record = HealthRecord {
                    failing: health.failing,
                    min_response_time_ms: health.min_response_time_ms,
                    checked_at: Millis::now(),
                };
                self.shared.routing.apply_health(processor, &record);
                if let Err(e) = self.shared.store.save_health(processor, record).await {
                    tracing::warn!(%processor, "cannot save the health record: {e}");
                }
            }
            Err(e @ HealthError::TooManyRequests { .. }) => {
                self.shared.metrics.health_429(processor);
                tracing::warn!("{e}");
            }
            Err(e) => tracing::debug!("{e}"),
        }
    }

    /// Applies the latest shared record (saved by any worker) to the routing; returns it
    /// (None: none saved yet, or it cannot be read).
    async fn refresh(&self, client: &ProcessorClient) -> Option<HealthRecord> {
        let processor = client.processor();
        let record = self
            .shared
            .store
            .health(processor)
            .await
            .inspect_err(|e| tracing::warn!(%processor, "cannot read the health record: {e}"))
            .ok()
            .flatten()?;
        self.shared.routing.apply_health(processor, &record);
        Some(record)
    }
}
