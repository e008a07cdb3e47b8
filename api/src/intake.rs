//! `POST /intake`: the lb forwards accepted payments here in batches
//! (`payment::intake` lines). The answer `200 {"recorded":n}` is sent only after the batch
//! is committed as pending, so an answered batch is never lost; then the new payments
//! join this worker's dispatch queue. A re-sent batch records nothing new (idempotent).
//!
//! The write and the queueing run in a task of their own: if the client (the lb) gives up
//! and closes the connection while the write waits (a slow disk, a held lock), the batch
//! is still queued once it is committed, instead of being left pending in the database
//! with this worker as its owner and in no queue, where nothing would ever send it.
//!
//! A write can also fail after it committed: on PostgreSQL the connection may drop after
//! COMMIT was sent, and the caller hears only the error. Intake then answers 503, the lb
//! sends the batch again (here or to another worker), and the store calls those payments
//! "not new": pending, owned by this live worker, in no queue, never to be paid. So a
//! failed write marks the `RecoveryHint`, and the next recovery scan reads back its own
//! pending payments and queues those it does not hold (`Held::push_unheld`,
//! `crate::recovery`). We chose this over having a re-sent batch queue them: the lb
//! re-sends to the other worker first, which may not take a live worker's payments.
//! The intake task marks the worker, not the request's handler: when the lb's forward
//! timeout closed the connection first, no handler is left to hear the error.
//! Exactly once still holds: a payment already held (waiting or in flight) is never
//! queued twice, and a copy read back just before its payment was processed or claimed
//! is dropped unsent, because dispatch sends nothing the store does not confirm as this
//! worker's and pending; one with an attempt keeps its processor and `requestedAt`.
//!
//! When the routing sends payments free to go anywhere to a processor that is up, the write
//! that records the batch also takes its new payments for sending there
//! (`Store::record_for_sending`: the attempt in the inserted rows, the heartbeat renewed in
//! the same transaction), and dispatch sends them on that proof without writing again: one
//! row write per payment fewer, and one commit fewer per batch. From that write on such a
//! payment counts as attempted: if this worker dies before sending it, a claim gives it
//! back pinned to that processor (a liveness cost only while that processor is down).
//!
//! While the queue holds `DISPATCH_QUEUE_MAX` payments, a batch is answered 503 and
//! nothing is recorded: the lb keeps it and sends it again (here or to the other worker).

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
/// that started it is gone (see the module doc).
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
