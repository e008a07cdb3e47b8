//! Counters of what the lb did, served as Prometheus text (`service::prometheus`) on
//! `GET /metrics` (of [`crate::metrics::listener`]).
//!
//! Plain atomics, updated with relaxed ordering: a scrape that is a few increments
//! behind is fine, and the accept path must not pay for anything stronger.

pub(crate) mod listener;

use service::prometheus::{Exposition, Histogram, Kind};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why `POST /payments` answered something other than 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    BodyTooLarge,
    BadJson,
    BadCorrelationId,
    BadAmount,
    QueueFull,
    ShuttingDown,
}

impl Rejection {
    const ALL: [Rejection; 6] = [
        Rejection::BodyTooLarge,
        Rejection::BadJson,
        Rejection::BadCorrelationId,
        Rejection::BadAmount,
        Rejection::QueueFull,
        Rejection::ShuttingDown,
    ];

    /// The `error` field of the JSON answer and the `reason` label of the metric.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::BadJson => "bad_json",
            Rejection::BadCorrelationId => "bad_correlation_id",
            Rejection::BadAmount => "bad_amount",
            Rejection::QueueFull => "queue_full",
            Rejection::ShuttingDown => "shutting_down",
        }
    }

    pub(crate) fn status(self) -> u16 {
        match self {
            Rejection::BodyTooLarge => 413,
            Rejection::BadJson => 400,
            Rejection::BadCorrelationId | Rejection::BadAmount => 422,
            Rejection::QueueFull | Rejection::ShuttingDown => 503,
        }
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    accepted: AtomicU64,
    replayed: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    forwarded: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    connections_refused: AtomicU64,
    idle_connections_closed: AtomicU64,
    latency: Histogram,
    answer: Histogram,
}

impl Metrics {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    /// Payments a killed lb accepted and left undelivered, queued again from the journal.
    pub(crate) fn replayed(&self, payments: usize) {
        self.replayed.fetch_add(payments as u64, Relaxed);
    }

    /// A `POST /payments` was answered (202 or a refusal) `took` after its body was first read.
    pub(crate) fn answered(&self, took: Duration) {
        self.answer.observe(took);
    }

    pub(crate) fn rejected(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Relaxed);
    }

    /// A batch of `payments` was recorded by a worker after `took`.
    pub(crate) fn forwarded(&self, payments: usize, took: Duration) {
        self.forwarded.fetch_add(payments as u64, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.latency.observe(took);
    }

    /// An intake attempt failed and the batch will be sent again.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    /// A worker refused a batch as malformed (a bug): its payments are gone.
    pub(crate) fn dropped(&self, payments: usize) {
        self.dropped.fetch_add(payments as u64, Relaxed);
    }

    /// A client connection was refused because `LB_MAX_CONNECTIONS` were open; returns
    /// how many were refused so far.
    pub(crate) fn connection_refused(&self) -> u64 {
        self.connections_refused.fetch_add(1, Relaxed) + 1
    }

    /// An idle client connection was closed to serve a new one at `LB_MAX_CONNECTIONS`.
    pub(crate) fn idle_connection_closed(&self) {
        self.idle_connections_closed.fetch_add(1, Relaxed);
    }

    /// Payments answered 202 (by this lb or a killed one) that no worker has recorded yet
    /// (queued or in flight).
    pub(crate) fn undelivered(&self) -> u64 {
        let done = self.forwarded.load(Relaxed) + self.dropped.load(Relaxed);
        let taken = self.accepted.load(Relaxed) + self.replayed.load(Relaxed);
        taken.saturating_sub(done)
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(
        &self,
        queue_depth: usize,
        connections_open: usize,
        connections_idle: usize,
    ) -> String {
        let mut out = Exposition::default();
        out.counter(
            "lb_payments_accepted_total",
            "Payments answered 202.",
            self.accepted.load(Relaxed),
        );
        let name = "lb_payments_rejected_total";
        out.family(name, Kind::Counter, "Payments answered 4xx/5xx, by reason.");
        for why in Rejection::ALL {
            out.sample(
                name,
                &[("reason", why.kind())],
                self.rejected[why as usize].load(Relaxed),
            );
        }
        out.gauge(
            "lb_queue_depth",
            "Payments accepted and not yet handed to the forwarder.",
            queue_depth,
        );
        out.counters(&[
            (
                "lb_payments_replayed_total",
                "Payments a killed lb accepted and did not deliver, queued again from the journal at start.",
                &self.replayed,
            ),
            (
                "lb_payments_forwarded_total",
                "Payments recorded by a worker.",
                &self.forwarded,
            ),
            (
                "lb_forward_batches_total",
                "Intake batches recorded by a worker.",
                &self.batches,
            ),
            (
                "lb_forward_retries_total",
                "Intake attempts that failed and were retried.",
                &self.retries,
            ),
            (
                "lb_payments_dropped_total",
                "Payments in batches a worker refused as malformed.",
                &self.dropped,
            ),
        ]);
        out.gauge(
            "lb_connections_open",
            "Client connections being served.",
            connections_open,
        )
        .gauge(
            "lb_connections_idle",
            "Client connections waiting for a request, no byte of it read.",
            connections_idle,
        )
        .counter(
            "lb_connections_idle_closed_total",
            "Idle client connections closed to serve a new one at LB_MAX_CONNECTIONS.",
            self.idle_connections_closed.load(Relaxed),
        )
        .counter(
            "lb_connections_refused_total",
            "Client connections answered 503: LB_MAX_CONNECTIONS open, none idle.",
            self.connections_refused.load(Relaxed),
        );
        let name = "lb_forward_seconds";
        out.family(
            name,
            Kind::Histogram,
            "Round trip of one intake batch that a worker recorded.",
        )
        .histogram(name, &[], &self.latency);
        let name = "lb_payment_answer_seconds";
        out.family(
            name,
            Kind::Histogram,
            "POST /payments from the first read of its body to its answer written: the lb's own time.",
        )
        .histogram(name, &[], &self.answer);
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.accepted();
        m.rejected(Rejection::BadAmount);
        m.forwarded(3, Duration::from_micros(800));
        m.forwarded(1, Duration::from_secs(5));
        m.connection_refused();
        let text = m.render(7, 3, 2);
        assert!(text.contains("lb_payments_accepted_total 1\n"), "{text}");
        assert!(
            text.contains("lb_payments_rejected_total{reason=\"bad_amount\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("lb_queue_depth 7\n"), "{text}");
        assert!(text.contains("lb_connections_open 3\n"), "{text}");
        assert!(text.contains("lb_connections_idle 2\n"), "{text}");
        assert!(text.contains("lb_connections_refused_total 1\n"), "{text}");
        assert!(text.contains("lb_payments_forwarded_total 4\n"), "{text}");
        assert!(
            text.contains("lb_forward_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lb_forward_seconds_bucket{le=\"2.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lb_forward_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("lb_forward_seconds_count 2\n"), "{text}");
    }
}
