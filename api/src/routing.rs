//! The routing policy: which processor a payment goes to, and when it must wait.
//!
//! The profit of a payment is its amount minus the fee: 5 % on the default, 15 % on the
//! fallback. A payment that waits loses nothing as long as it is paid before the end, so
//! waiting for the default beats paying the fallback. The policy:
//!
//! - **Default first.** New payments go to the default while it is up.
//! - **Down means: stop sending, probe.** A 5xx or a timeout from a processor (or a
//!   newer shared health record saying `failing`) marks it down. Nothing more is sent to
//!   a down processor except ONE probe payment at a time, at most every
//!   `PROBE_INTERVAL_MS`: a real payment, so its 200 both pays it and tells us the
//!   processor is back. A 200/422 (or a newer health record saying not failing) marks it
//!   up again. This never floods a failing processor.
//! - **Fallback only after a long outage.** New payments go to the fallback only when the
//!   default has been down for `FALLBACK_AFTER_MS` and the fallback is up. The default is
//!   60 s: in the contest the default is down for 20 s at most, so the contest never pays
//!   the 15 % fee; a real deployment lowers it to trade fee for latency.
//! - **Slow is not down.** A slow default still answers 200; the dispatch concurrency
//!   covers the latency, so it keeps getting the payments.
//! - 429 (processor busy) and other 4xx (this request refused) change nothing here; the
//!   payment retries later.
//!
//! Pinning (a payment whose last call timed out may only go back to that processor) is
//! the dispatcher's business; this module only says which processor may be called now.

use crate::metrics::CallOutcome;
use payment::{Millis, Processor};
use std::sync::Mutex;
use std::time::Duration;
use storage::HealthRecord;

/// How a call may reach a processor right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The processor is up: call it freely.
    Open,
    /// The processor is down: this call is its one probe; report its outcome with this access.
    Probe,
}

/// What the routing allows at one instant, taken under one lock: the input of the
/// dispatcher's planner (`dispatch::plan`), which must not lock or read the clock itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Where payments free to go anywhere go now; None: they wait.
    pub preferred: Option<Processor>,
    /// Per processor (default, fallback): how a call may reach it now; None: not now (down,
    /// with its probe in flight or not due yet).
    pub access: [Option<Access>; 2],
    /// Per processor: whether payments free to go anywhere would go there if it were up,
    /// so that probing it with one of them is worth it.
    pub wanted: [bool; 2],
}

impl View {
    pub fn access(&self, processor: Processor) -> Option<Access> {
        self.access[processor.index()]
    }

    pub fn wanted(&self, processor: Processor) -> bool {
        self.wanted[processor.index()]
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Since when the processor is considered down; None = up.
    down_since: Option<Millis>,
    /// When up/down was last decided, so an older health record cannot undo a newer answer.
    decided_at: Millis,
    probe_in_flight: bool,
    last_probe: Option<Millis>,
}

/// The routing state of one worker, shared by its dispatcher, calls and health pollers.
pub struct Routing {
    probe_interval: i64,
    fallback_after: i64,
    states: Mutex<[State; 2]>,
}


impl Routing {
    pub fn new(probe_interval: Duration, fallback_after: Duration) -> Routing {
        Routing {
            probe_interval: probe_interval.as_millis() as i64,
            fallback_after: fallback_after.as_millis() as i64,
            states: Mutex::new([State::default(); 2]),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut [State; 2]) -> T) -> T {
        // A panic while holding this lock cannot leave the small state inconsistent, so a
        // poisoned lock is still usable.
        let mut guard = self.states.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn is_up(&self, processor: Processor) -> bool {
        self.with(|s| s[processor.index()].down_since.is_none())
    }

    /// What may be called at `now`, for one round of the dispatcher.
    pub fn view(&self, now: Millis) -> View {
        self.with(|s| {
            let [default, fallback] = *s;
            let fallback_allowed =
                matches!(default.down_since, Some(since) if now.0 - since.0 >= self.fallback_after);
            let preferred = match (default.down_since, fallback.down_since) {
                (None, _) => Some(Processor::Default),
                (Some(_), None) if fallback_allowed => Some(Processor::Fallback),
                _ => None,
            };
            View {
                preferred,
                access: [self.access(&default, now), self.access(&fallback, now)],
                wanted: [true, fallback_allowed],
            }
        })
    }

    /// An up processor: [`Access::Open`]. A down one: [`Access::Probe`] if no probe is in
    /// flight and the last one is old enough, else None.
    fn access(&self, state: &State, now: Millis) -> Option<Access> {
        if state.down_since.is_none() {
            return Some(Access::Open);
        }
        let due = state
            .last_probe
            .is_none_or(|last| now.0 - last.0 >= self.probe_interval);
        (!state.probe_in_flight && due).then_some(Access::Probe)
    }

    /// A probe the view allowed is being sent: no other until it is reported or abandoned.
    /// Only the dispatcher starts probes, one round at a time, each from that round's view,
    /// so nothing can have taken the slot in between.
    pub fn start_probe(&self, processor: Processor, now: Millis) {
        self.with(|s| {
            let state = &mut s[processor.index()];
            state.probe_in_flight = true;
            state.last_probe = Some(now);
        });
    }

    /// A probe that was granted but not sent (e.g. its attempt could not be recorded).
    pub fn probe_abandoned(&self, processor: Processor) {
        self.with(|s| s[processor.index()].probe_in_flight = false);
    }

    /// What a payment call answered.
    pub fn report(&self, processor: Processor, outcome: CallOutcome, access: Access, now: Millis) {
        self.with(|s| {
            let state = &mut s[processor.index()];
            if access == Access::Probe {
                state.probe_in_flight = false;
            }
            match outcome {
                CallOutcome::Processed | CallOutcome::AlreadyProcessed => {
                    mark(processor, state, false, now)
                }
                CallOutcome::Failed | CallOutcome::NoAnswer => mark(processor, state, true, now),
                CallOutcome::Busy | CallOutcome::Rejected => {}
            }
        });
    }

    /// A shared health record, applied only if it is newer than what decided the state.
    pub fn apply_health(&self, processor: Processor, record: &HealthRecord) {
        self.with(|s| {
            let state = &mut s[processor.index()];
            if record.checked_at > state.decided_at {
                mark(processor, state, record.failing, record.checked_at);
            }
        });
    }
}

fn mark(processor: Processor, state: &mut State, down: bool, now: Millis) {
    match (down, state.down_since) {
        (true, None) => {
            tracing::info!(%processor, "processor marked down");
            state.down_since = Some(now);
        }
        (false, Some(_)) => {
            tracing::info!(%processor, "processor marked up");
            state.down_since = None;
        }
        _ => {}
    }
    state.decided_at = state.decided_at.max(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Routing {
        Routing::new(Duration::from_millis(100), Duration::from_millis(1000))
    }

    #[test]
    fn waits_for_the_default_before_paying_the_fallback() {
        let r = routing();
        let preferred = |now| r.view(Millis(now)).preferred;
        assert_eq!(preferred(0), Some(Processor::Default));
        r.report(
            Processor::Default,
            CallOutcome::Failed,
            Access::Open,
            Millis(10),
        );
        assert_eq!(preferred(500), None);
        assert!(!r.view(Millis(500)).wanted(Processor::Fallback));
        assert_eq!(preferred(1010), Some(Processor::Fallback));
        r.report(
            Processor::Default,
            CallOutcome::Processed,
            Access::Open,
            Millis(1020),
        );
        assert_eq!(preferred(1030), Some(Processor::Default));
    }

    #[test]
    fn probes_a_down_processor_one_at_a_time() {
        let r = routing();
        // What the dispatcher does: take a view, start the probe it allows.
        let call = |now| {
            let access = r.view(Millis(now)).access(Processor::Default);
            if access == Some(Access::Probe) {
                r.start_probe(Processor::Default, Millis(now));
            }
            access
        };
        let report =
            |outcome, access, now| r.report(Processor::Default, outcome, access, Millis(now));
        report(CallOutcome::NoAnswer, Access::Open, 0);
        assert_eq!(call(1), Some(Access::Probe));
        assert_eq!(call(500), None, "probe still in flight");
        report(CallOutcome::Failed, Access::Probe, 501);
        assert_eq!(call(502), Some(Access::Probe));
        report(CallOutcome::Failed, Access::Probe, 510);
        assert_eq!(call(550), None, "interval not over");
        assert_eq!(call(602), Some(Access::Probe));
        report(CallOutcome::AlreadyProcessed, Access::Probe, 610);
        assert_eq!(call(611), Some(Access::Open));
    }

    #[test]
    fn an_older_health_record_does_not_undo_a_newer_answer() {
        let r = routing();
        r.report(
            Processor::Default,
            CallOutcome::Failed,
            Access::Open,
            Millis(100),
        );
        let stale = HealthRecord {
            failing: false,
            min_response_time_ms: 0,
            checked_at: Millis(50),
        };
        r.apply_health(Processor::Default, &stale);
        assert!(!r.is_up(Processor::Default));
        let fresh = HealthRecord {
            failing: false,
            min_response_time_ms: 0,
            checked_at: Millis(150),
        };
        r.apply_health(Processor::Default, &fresh);
        assert!(r.is_up(Processor::Default));
    }
}
