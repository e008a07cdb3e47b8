//! Counters for `GET /metrics`, rendered as Prometheus text by `service::prometheus`.
//!
//! Plain atomics: every update is one relaxed add on the hot path.

use crate::processor::CallOutcome;
use payment::Processor;
use service::prometheus::{Exposition, Histogram, Kind};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Default)]
struct PerProcessor {
    calls: [AtomicU64; 6],
    processed: AtomicU64,
    latency: Histogram,
    health_calls: AtomicU64,
    health_429: AtomicU64,
    /// Payments pinned to this processor after a call without an answer.
    pins: AtomicU64,
    /// Calls to this processor planned and not yet ended.
    in_flight: AtomicI64,
    /// Calls re-sending a payment pinned here (an earlier call's outcome is unknown).
    resends: AtomicU64,
}

/// The gauges [`Metrics::render`] reads from the parts that own them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    /// The payments this worker holds, waiting or in a call (`Held::count`).
    pub held: usize,
    /// The held payments that may only go to the default, the fallback.
    pub pinned_waiting: [usize; 2],
    /// Pending rows in the database, every worker's (-1: could not be read).
    pub pending_in_db: i64,
}

/// All counters of one worker process.
#[derive(Default)]
pub(crate) struct Metrics {
    processors: [PerProcessor; 2],
    /// Calls that did not pay the payment, which was queued again.
    pub retries: AtomicU64,
    /// Payments recorded by `POST /intake` (new ones only).
    pub recorded: AtomicU64,
    /// Payments claimed from dead workers.
    pub claimed: AtomicU64,
    /// Payments dropped from the queue unsent: claimed by another worker meanwhile, or purged.
    pub lost_ownership: AtomicU64,
    /// Successes recorded for payments already processed at the other processor (must stay 0).
    pub double_charges: AtomicU64,
    /// Intake batches refused because the dispatch queue was full.
    pub intake_refused: AtomicU64,
    /// Planned sends that went back to be taken again because the write that stamped
    /// their `requestedAt` (and proved them ours) was too old by the time of the call.
    pub stale_proofs: AtomicU64,
}

impl Metrics {
    fn of(&self, processor: Processor) -> &PerProcessor {
        &self.processors[processor.index()]
    }

    pub(crate) fn call(&self, processor: Processor, outcome: CallOutcome, latency: Duration) {
        let p = self.of(processor);
        let slot = CallOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        p.calls[slot].fetch_add(1, Relaxed);
        p.latency.observe(latency);
    }

    pub(crate) fn processed(&self, processor: Processor) {
        self.of(processor).processed.fetch_add(1, Relaxed);
    }

    pub(crate) fn health_call(&self, processor: Processor) {
        self.of(processor).health_calls.fetch_add(1, Relaxed);
    }

    pub(crate) fn pinned(&self, processor: Processor) {
        self.of(processor).pins.fetch_add(1, Relaxed);
    }

    /// A call to `processor` was planned (`started`) or ended (`!started`).
    pub(crate) fn in_flight(&self, processor: Processor, started: bool) {
        self.of(processor)
            .in_flight
            .fetch_add(if started { 1 } else { -1 }, Relaxed);
    }

    pub(crate) fn resend(&self, processor: Processor) {
        self.of(processor).resends.fetch_add(1, Relaxed);
    }

    pub(crate) fn health_429(&self, processor: Processor) {
        self.of(processor).health_429.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition: these counters, and the gauges read from their
    /// owners (the queue, the database) for this rendering.
    pub(crate) fn render(&self, gauges: Gauges) -> String {
        let Gauges {
            held,
            pinned_waiting,
            pending_in_db,
        } = gauges;
        let mut out = Exposition::default();
        out.gauge(
            "api_payments_held",
            "Payments in this worker's hands: waiting in its dispatch queue or in a call.",
            held,
        )
        .gauge(
            "api_pending_payments",
            "Pending payments in the database (all workers).",
            pending_in_db,
        );
        out.counters(&[
            ("api_recorded_total", "New payments recorded by intake.", &self.recorded),
            ("api_claimed_total", "Payments claimed from dead workers.", &self.claimed),
            (
                "api_payments_lost_ownership_total",
                "Payments dropped unsent: another worker claimed them (our heartbeat was stale) or they were purged.",
                &self.lost_ownership,
            ),
            (
                "api_retries_total",
                "Calls that did not pay the payment (it was queued again).",
                &self.retries,
            ),
            (
                "api_double_charges_total",
                "Successes at one processor for payments already processed at the other (must stay 0).",
                &self.double_charges,
            ),
            (
                "api_stale_proofs_total",
                "Planned sends taken again because their requestedAt was stamped too long before the call.",
                &self.stale_proofs,
            ),
            (
                "api_intake_refused_total",
                "Intake batches answered 503 because the dispatch queue was full (the lb keeps them).",
                &self.intake_refused,
            ),
        ]);
        let name = "api_pinned_waiting";
        out.family(
            name,
            Kind::Gauge,
            "Queued payments that may only go to this processor (a call there may have stored them).",
        );
        for processor in Processor::ALL {
            out.sample(
                name,
                &[("processor", processor.name())],
                pinned_waiting[processor.index()],
            );
        }
        let name = "api_calls_in_flight";
        out.family(
            name,
            Kind::Gauge,
            "Payment calls to this processor planned and not yet ended.",
        );
        for processor in Processor::ALL {
            let count = self.of(processor).in_flight.load(Relaxed);
            out.sample(name, &[("processor", processor.name())], count);
        }
        self.render_per_processor(&mut out);
        out.finish()
    }

    fn render_per_processor(&self, out: &mut Exposition) {
        type Family = (&'static str, &'static str, fn(&PerProcessor) -> u64);
        let families: [Family; 5] = [
            (
                "api_processed_total",
                "Payments marked processed, per processor.",
                |p| p.processed.load(Relaxed),
            ),
            (
                "api_pinned_total",
                "Payments pinned to this processor after a call without an answer.",
                |p| p.pins.load(Relaxed),
            ),
            (
                "api_resends_total",
                "Calls re-sending a payment pinned to this processor (an earlier call's outcome was unknown).",
                |p| p.resends.load(Relaxed),
            ),
            (
                "api_health_calls_total",
                "Health checks made, per processor.",
                |p| p.health_calls.load(Relaxed),
            ),
            (
                "api_health_429_total",
                "Health checks answered 429 (must stay 0).",
                |p| p.health_429.load(Relaxed),
            ),
        ];
        for (name, help, read) in families {
            out.family(name, Kind::Counter, help);
            for processor in Processor::ALL {
                out.sample(
                    name,
                    &[("processor", processor.name())],
                    read(self.of(processor)),
                );
            }
        }
        let name = "api_processor_calls_total";
        out.family(name, Kind::Counter, "Processor payment calls by outcome.");
        for processor in Processor::ALL {
            for (slot, outcome) in CallOutcome::ALL.iter().enumerate() {
                let labels = [
                    ("processor", processor.name()),
                    ("outcome", outcome_label(*outcome)),
                ];
                out.sample(name, &labels, self.of(processor).calls[slot].load(Relaxed));
            }
        }
        let name = "api_processor_call_seconds";
        out.family(name, Kind::Histogram, "Processor payment call latency.");
        for processor in Processor::ALL {
            out.histogram(
                name,
                &[("processor", processor.name())],
                &self.of(processor).latency,
            );
        }
    }
}

/// The `outcome` label of `api_processor_calls_total`.
fn outcome_label(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Processed => "processed",
        CallOutcome::AlreadyProcessed => "already_processed",
        CallOutcome::Failed => "failed",
        CallOutcome::Rejected => "rejected",
        CallOutcome::Busy => "busy",
        // The label predates the variant's name; kept for dashboards and scripts.
        CallOutcome::NoAnswer => "timeout",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.call(
            Processor::Default,
            CallOutcome::Processed,
            Duration::from_millis(3),
        );
        m.call(
            Processor::Default,
            CallOutcome::Failed,
            Duration::from_millis(30_000),
        );
        let text = m.render(Gauges {
            held: 3,
            pinned_waiting: [2, 0],
            pending_in_db: 7,
        });
        assert!(text.contains("api_payments_held 3"));
        assert!(text.contains("api_pending_payments 7"));
        assert!(text.contains(r#"api_pinned_waiting{processor="default"} 2"#));
        assert!(
            text.contains(r#"api_processor_call_seconds_bucket{processor="default",le="0.005"} 1"#)
        );
        assert!(text.contains(r#"api_processor_call_seconds_bucket{processor="default",le="5"} 1"#));
        assert!(
            text.contains(r#"api_processor_call_seconds_bucket{processor="default",le="+Inf"} 2"#)
        );
        assert!(
            text.contains(r#"api_processor_calls_total{processor="default",outcome="failed"} 1"#)
        );
    }
}
