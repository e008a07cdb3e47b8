//! `POST /intake`: the lb forwards accepted payments here in batches (`payment::intake`
//! lines). Keeps: the answer `200 {"recorded":n}` is sent only once the batch is committed
//! as pending, so an answered batch is never lost; a re-sent batch records nothing new
//! (idempotent). The new payments then join what the worker holds, from a task of their
//! own so a closed connection cannot leave them in no queue; a failed write that may have
//! committed marks the `RecoveryHint`; while the worker holds `DISPATCH_QUEUE_MAX`, a batch
//! is 503. Recording for sending in the same write, and why: docs/architecture.md, "The
//! life of a payment", step 3.

use crate::held::Job;
use crate::routing::Backlog;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use hyper::StatusCode;
use payment::intake::Accepted;
use payment::{Millis, Processor};
use service::reply::{self, Reply};
use std::sync::atomic::Ordering::Relaxed;
use storage::{Attempt, Destination, Pending, StorageError};

/// Largest intake body: the wire format's bound, which also bounds `LB_BATCH_MAX`.
pub(crate) const MAX_BODY_BYTES: usize = payment::intake::MAX_BATCH_BYTES;

/// The intake route of one worker.
pub(crate) struct Intake {
    shared: Shared,
    /// Once fired, batches are answered 503.
    shutdown: Shutdown,
}

impl Intake {
    pub(crate) fn new(shared: Shared, shutdown: Shutdown) -> Intake {
        Intake { shared, shutdown }
    }

    pub(crate) async fn handle(&self, body: &[u8]) -> Reply {
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
            return reply::json(StatusCode::OK, r#"{"recorded":0}"#);
        }
        if self.shared.held.room() == 0 {
            self.shared.metrics.intake_refused.fetch_add(1, Relaxed);
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                format!("this worker holds {} payments (DISPATCH_QUEUE_MAX); send later or to the other one", self.shared.held.capacity()),
            );
        }
        let send_to = self.send_to();
        let recording = Recording {
            shared: self.shared.clone(),
        };
        let recorded = tokio::spawn(async move { recording.run(batch, send_to).await });
        match recorded.await {
            Ok(Ok(recorded)) => {
                reply::json(StatusCode::OK, format!(r#"{{"recorded":{recorded}}}"#))
            }
            // The task marked the recovery hint and logged it.
            Ok(Err(e)) => reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage", e),
            Err(e) => {
                self.shared.recovery_hint.mark();
                reply::error(StatusCode::INTERNAL_SERVER_ERROR, "intake_task", e)
            }
        }
    }

    /// Where the routing sends payments free to go anywhere at once (not only a probe, and
    /// nothing waiting before them): new payments are then taken for sending there in the
    /// write that records them. Otherwise they are recorded only, and stamped when sent.
    fn send_to(&self) -> Option<Processor> {
        let backlog = Backlog {
            waiting: self.shared.held.waiting_anywhere(),
        };
        if backlog.waiting > 0 {
            return None;
        }
        self.shared
            .routing
            .view(Millis::now(), backlog)
            .sends_at_once()
    }
}

/// The intake task's share of the worker: the task runs to its end even when the request
/// that started it is gone (docs/architecture.md, step 3).
struct Recording {
    shared: Shared,
}

impl Recording {
    /// Commits the batch as pending (taken for sending to `send_to`, if set), then queues
    /// the new payments; returns how many were new. A failed write may have committed: the
    /// recovery hint is marked here, whether or not a request still waits for the answer.
    async fn run(
        self,
        batch: Vec<Accepted>,
        send_to: Option<Processor>,
    ) -> Result<usize, StorageError> {
        let new = self.record(batch, send_to).await.inspect_err(|e| {
            self.shared.recovery_hint.mark();
            tracing::error!("cannot record an intake batch; this worker's pending payments will be read back: {e}");
        })?;
        let recorded = new.len();
        self.shared
            .metrics
            .recorded
            .fetch_add(recorded as u64, Relaxed);
        self.shared.held.push_unheld(new);
        Ok(recorded)
    }

    /// The write: the new payments, as jobs for the queue.
    async fn record(
        &self,
        batch: Vec<Accepted>,
        send_to: Option<Processor>,
    ) -> Result<Vec<Job>, StorageError> {
        let Some(processor) = send_to else {
            let new = self.shared.store.record_pending(batch).await?.into_iter();
            return Ok(new.map(|a| Job::new(pending(a, None))).collect());
        };
        let recorded = self
            .shared
            .store
            .record_for_sending(batch, processor)
            .await?;
        let jobs = recorded.new.into_iter();
        Ok(jobs
            .map(|a| {
                Job::taken(
                    pending(a, Some(recorded.attempt)),
                    recorded.alive_at_instant,
                )
            })
            .collect())
    }
}

fn pending(accepted: Accepted, attempt: Option<Attempt>) -> Pending {
    Pending {
        payment: accepted.payment,
        accepted_at: accepted.accepted_at,
        attempt,
        destination: Destination::Anywhere,
    }
}
