//! `POST /intake`: the lb forwards accepted payments here in batches
//! (`payment::intake` lines). The answer `200 {"recorded":n}` is sent only after the batch
//! is committed as pending, so an answered batch is never lost; then the new payments
//! join this worker's dispatch queue. A re-sent batch records nothing new (idempotent).
//! While the queue holds `DISPATCH_QUEUE_MAX` payments, a batch is answered 503 and
//! nothing is recorded: the lb keeps it and sends it again (here or to the other worker).

use crate::dispatch::{Job, Queue};
use crate::metrics::Metrics;
use crate::reply::{self, Reply};
use crate::shutdown::Shutdown;
use hyper::StatusCode;
use std::sync::atomic::Ordering::Relaxed;
use storage::{Destination, Pending, Store};

/// Largest intake body: 16 Ki lines of about 70 bytes, far above any batch the lb sends
/// (`LB_BATCH_MAX`), far below what would strain the worker's memory.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct Intake {
    pub store: Store,
    pub queue: std::sync::Arc<Queue>,
    pub metrics: std::sync::Arc<Metrics>,
    pub shutdown: Shutdown,
    /// `DISPATCH_QUEUE_MAX`.
    pub queue_max: usize,
}

impl Intake {
    pub async fn handle(&self, body: &[u8]) -> Reply {
        if self.shutdown.is_shutdown() {
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "this worker is shutting down; send to the other one",
            );
        }
        let batch = match payment::intake::decode(body) {
            Ok(batch) => batch,
            Err(e) => return reply::error(StatusCode::BAD_REQUEST, "bad_intake", e),
        };
        if batch.is_empty() {
            return reply::json(StatusCode::OK, r#"{"recorded":0}"#.into());
        }
        if self.queue.room(self.queue_max) == 0 {
            self.metrics.intake_refused.fetch_add(1, Relaxed);
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!("this worker holds {} payments (DISPATCH_QUEUE_MAX); send later or to the other one", self.queue_max),
            );
        }
        let new = match self.store.record_pending(batch).await {
            Ok(new) => new,
            Err(e) => {
                tracing::error!("cannot record an intake batch: {e}");
                return reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage", e);
            }
        };
        let recorded = new.len();
        self.metrics.recorded.fetch_add(recorded as u64, Relaxed);
        self.queue.push_new(new.into_iter().map(|a| {
            Job::new(Pending {
                payment: a.payment,
                accepted_at: a.accepted_at,
                attempt: None,
                destination: Destination::Anywhere,
            })
        }));
        reply::json(StatusCode::OK, format!(r#"{{"recorded":{recorded}}}"#))
    }
}
