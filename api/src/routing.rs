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

/// How a call to a processor may be made right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The processor is up: call it freely.
    Open,
    /// The processor is down: this call is its one probe; report its outcome with `probe = true`.
    Probe,
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

/// The shared routing view of one worker.
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

    /// Where a payment free to go anywhere should be sent now; None = it waits.
    pub fn preferred(&self, now: Millis) -> Option<Processor> {
        self.with(|s| {
            let default = s[Processor::Default.index()];
            let fallback = s[Processor::Fallback.index()];
            match default.down_since {
                None => Some(Processor::Default),
                Some(since)
                    if now.0 - since.0 >= self.fallback_after && fallback.down_since.is_none() =>
                {
                    Some(Processor::Fallback)
                }
                Some(_) => None,
            }
        })
    }

    /// Whether payments free to go anywhere would be sent to `processor` if it were up:
    /// always the default; the fallback once the default has been down long enough.
    pub fn wanted(&self, processor: Processor, now: Millis) -> bool {
        match processor {
            Processor::Default => true,
            Processor::Fallback => self.with(|s| {
                matches!(s[Processor::Default.index()].down_since, Some(since) if now.0 - since.0 >= self.fallback_after)
            }),
        }
    }

    /// May a call to `processor` start now? An up processor: [`Lane::Open`]. A down one:
    /// [`Lane::Probe`] if no probe is in flight and the last one is old enough (the probe
    /// slot is taken by this answer), else None.
    pub fn may_call(&self, processor: Processor, now: Millis) -> Option<Lane> {
        self.with(|s| {
            let state = &mut s[processor.index()];
            if state.down_since.is_none() {
                return Some(Lane::Open);
            }
            let due = state
                .last_probe
                .is_none_or(|last| now.0 - last.0 >= self.probe_interval);
            if state.probe_in_flight || !due {
                return None;
            }
            state.probe_in_flight = true;
            state.last_probe = Some(now);
            Some(Lane::Probe)
        })
    }

    /// A probe that was granted but not sent (e.g. its attempt could not be recorded).
    pub fn probe_abandoned(&self, processor: Processor) {
        self.with(|s| s[processor.index()].probe_in_flight = false);
    }

    /// What a payment call answered.
    pub fn report(&self, processor: Processor, outcome: CallOutcome, lane: Lane, now: Millis) {
        self.with(|s| {
            let state = &mut s[processor.index()];
            if lane == Lane::Probe {
                state.probe_in_flight = false;
            }
            match outcome {
                CallOutcome::Processed | CallOutcome::AlreadyProcessed => {
                    mark(processor, state, false, now)
                }
                CallOutcome::Failed | CallOutcome::Timeout => mark(processor, state, true, now),
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
        assert_eq!(r.preferred(Millis(0)), Some(Processor::Default));
        r.report(
            Processor::Default,
            CallOutcome::Failed,
            Lane::Open,
            Millis(10),
        );
        assert_eq!(r.preferred(Millis(500)), None);
        assert!(!r.wanted(Processor::Fallback, Millis(500)));
        assert_eq!(r.preferred(Millis(1010)), Some(Processor::Fallback));
        r.report(
            Processor::Default,
            CallOutcome::Processed,
            Lane::Open,
            Millis(1020),
        );
        assert_eq!(r.preferred(Millis(1030)), Some(Processor::Default));
    }

    #[test]
    fn probes_a_down_processor_one_at_a_time() {
        let r = routing();
        r.report(
            Processor::Default,
            CallOutcome::Timeout,
            Lane::Open,
            Millis(0),
        );
        assert_eq!(r.may_call(Processor::Default, Millis(1)), Some(Lane::Probe));
        assert_eq!(
            r.may_call(Processor::Default, Millis(500)),
            None,
            "probe still in flight"
        );
        r.report(
            Processor::Default,
            CallOutcome::Failed,
            Lane::Probe,
            Millis(501),
        );
        assert_eq!(
            r.may_call(Processor::Default, Millis(502)),
            Some(Lane::Probe)
        );
        r.report(
            Processor::Default,
            CallOutcome::Failed,
            Lane::Probe,
            Millis(510),
        );
        assert_eq!(
            r.may_call(Processor::Default, Millis(550)),
            None,
            "interval not over"
        );
        assert_eq!(
            r.may_call(Processor::Default, Millis(602)),
            Some(Lane::Probe)
        );
        r.report(
            Processor::Default,
            CallOutcome::AlreadyProcessed,
            Lane::Probe,
            Millis(610),
        );
        assert_eq!(
            r.may_call(Processor::Default, Millis(611)),
            Some(Lane::Open)
        );
    }

    #[test]
    fn an_older_health_record_does_not_undo_a_newer_answer() {
        let r = routing();
        r.report(
            Processor::Default,
            CallOutcome::Failed,
            Lane::Open,
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
