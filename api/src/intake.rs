//! `POST /intake`: the lb forwards accepted payments here in batches
//! (`payment::intake` lines). The answer `200 {"recorded":n}` is sent only after the batch
//! is committed as pending, so an answered batch is never lost; then the new payments
//! join this worker's dispatch queue. A re-sent batch records nothing new (idempotent).

use crate::dispatch::{Job, Queue};
use crate::metrics::Metrics;
use crate::reply::{self, Reply};
use crate::shutdown::Shutdown;
use hyper::StatusCode;
use std::sync::atomic::Ordering::Relaxed;
use storage::{Pending, Store};

/// Largest intake body: 256 Ki lines of about 60 bytes; the lb sends far smaller batches.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub struct Intake {
    pub store: Store,
    pub queue: std::sync::Arc<Queue>,
    pub metrics: std::sync::Arc<Metrics>,
    pub shutdown: Shutdown,
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
            Job::fresh(Pending {
                payment: a.payment,
                accepted_at: a.accepted_at,
                attempt: None,
            })
        }));
        reply::json(StatusCode::OK, format!(r#"{{"recorded":{recorded}}}"#))
    }
}
