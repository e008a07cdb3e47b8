//! `POST /payments`: read the body (size-limited), validate it, record it in the journal,
//! queue it and answer 202 at once.
//!
//! This is the path the contest's p99 is measured on, so nothing slow is on it: no
//! upstream round trip, no system call to the disk, no lock shared with the forwarder's
//! I/O. The only shared things are the journal's slot (a few stores into a memory
//! mapping) and the queue's non-blocking push. A payment is timestamped here
//! (`accepted_at`) and is the lb's responsibility from the moment it is journaled and
//! queued; a payment that cannot be is rejected (503) rather than accepted and lost.

use super::body;
use super::reply;
use crate::delivery::journal::Journal;
use crate::delivery::queue::{PushError, QueueSender, Queued};
use crate::metrics::{Metrics, Rejection};
use payment::intake::Accepted;
use payment::request::MAX_BODY_BYTES;
use payment::{Millis, PaymentRequest, RequestError};
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Acceptor {
    queue: QueueSender,
    journal: Arc<Journal>,
    metrics: Arc<Metrics>,
}

/// A rejected payment: why, and what to tell the client.
struct Rejected {
    why: Rejection,
    message: String,
}

impl Acceptor {
    pub(crate) fn new(
        queue: QueueSender,
        journal: Arc<Journal>,
        metrics: Arc<Metrics>,
    ) -> Acceptor {
        Acceptor {
            queue,
            journal,
            metrics,
        }
    }

    /// Answers one `POST /payments` completely, timed from here to the answer written (an
    /// answer that fails to be written is not timed). An `Err` is an I/O failure on the
    /// client's connection, left to Pingora.
    pub(crate) async fn answer(&self, session: &mut Session) -> pingora::Result<()> {
        let started = Instant::now();
        let answered = self.take_and_answer(session).await;
        if answered.is_ok() {
            self.metrics.answered(started.elapsed());
        }
        answered
    }

    async fn take_and_answer(&self, session: &mut Session) -> pingora::Result<()> {
        match self.take(session).await? {
            Ok(()) => {
                self.metrics.accepted();
                reply::empty(session, 202).await
            }
            // Boxed: the 202's future stays small (see `Gateway::request_filter`).
            Err(rejected) => Box::pin(self.reject(session, rejected)).await,
        }
    }

    async fn reject(&self, session: &mut Session, rejected: Rejected) -> pingora::Result<()> {
        let Rejected { why, message } = rejected;
        self.metrics.rejected(why);
        if why == Rejection::BodyTooLarge {
            body::discard_rest(session).await;
        }
        // A client told 503 may try again shortly: the queue drains fast.
        let retry: &[(&str, &str)] = if why.status() == 503 {
            &[("retry-after", "1")]
        } else {
            &[]
        };
        reply::error(session, why.status(), why.kind(), &message, retry).await
    }

    async fn take(&self, session: &mut Session) -> pingora::Result<Result<(), Rejected>> {
        let Some(body) = body::read_limited(session, MAX_BODY_BYTES).await? else {
            return Ok(Err(invalid(RequestError::TooLarge)));
        };
        let payment = match PaymentRequest::parse(&body) {
            Ok(payment) => payment,
            Err(e) => return Ok(Err(invalid(e))),
        };
        let accepted = Accepted {
            payment,
            accepted_at: Millis::now(),
        };
        let Some(seq) = self.journal.record(&accepted) else {
            return Ok(Err(not_queued(PushError::Full)));
        };
        Ok(self.queue.push(Queued { accepted, seq }).map_err(|e| {
            self.journal.retire(seq);
            not_queued(e)
        }))
    }
}

/// A payment the journal or the queue could not take.
fn not_queued(e: PushError) -> Rejected {
    match e {
        PushError::Full => Rejected {
            why: Rejection::QueueFull,
            message: "the lb's queue is full while the workers catch up; retry shortly".into(),
        },
        PushError::Closed => Rejected {
            why: Rejection::ShuttingDown,
            message: "the lb is shutting down; retry shortly".into(),
        },
    }
}

/// A body that is not a valid payment.
fn invalid(e: RequestError) -> Rejected {
    let why = match e {
        RequestError::TooLarge => Rejection::BodyTooLarge,
        RequestError::BadJson(_) => Rejection::BadJson,
        RequestError::BadCorrelationId(_) => Rejection::BadCorrelationId,
        RequestError::BadAmount(_) => Rejection::BadAmount,
    };
    Rejected {
        why,
        message: e.to_string(),
    }
}
