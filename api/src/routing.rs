//! The routing state of one worker ([`Routing`]): what it observes of each processor (the
//! answers of its calls, the calls in flight and their tickets, the shared health record),
//! under one lock, turned into the [`View`] the pure policy ([`policy`]) gives. Keeps: a
//! processor's latency is the newest evidence, and failing or not is decided by the newest
//! answer or health record. How it learns: docs/architecture.md, "Decisions and why".

mod policy;

pub(crate) use policy::{choose, Access, Backlog, Observed, Policy, View, BLIP_MAX};

use crate::metrics::Metrics;
use crate::processor::CallOutcome;
use payment::{Millis, Processor};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::HealthRecord;

/// The newest evidence of a processor's latency.
#[derive(Debug, Default, Clone, Copy)]
struct Evidence {
    /// When the observation was made: a call's start, a health check's time.
    as_of: Millis,
    ms: i64,
}

#[derive(Debug, Default)]
struct State {
    /// A 5xx or no answer said so (or the health record), and nothing has said otherwise since.
    failing: bool,
    /// When failing or not was last decided, so an older health record cannot undo a newer answer.
    decided_at: Millis,
    probe_in_flight: bool,
    last_probe: Option<Millis>,
    latency: Evidence,
    /// The calls in flight: (start in ms, sequence number).
    in_flight: BTreeSet<(i64, u64)>,
    /// Since when the processor is not usable while the other is (across the other's
    /// blips); None otherwise.
    trouble_since: Option<Millis>,
    /// Since when the processor is not usable; None while it is.
    unusable_since: Option<Millis>,
}

impl State {
    fn observe(&self, now: Millis, probe_interval: i64) -> Observed {
        let since_evidence = (self.latency.as_of.0, 0);
        let oldest_new = self.in_flight.range(since_evidence..).next();
        let due = self
            .last_probe
            .is_none_or(|last| now.0 - last.0 >= probe_interval);
        Observed {
            failing: self.failing,
            probe_due: !self.probe_in_flight && due,
            latency_ms: self.latency.ms,
            overdue_ms: oldest_new.map_or(0, |(start, _)| (now.0 - start).max(0)),
            in_flight: self.in_flight.len(),
            trouble_ms: 0,
        }
    }

    fn learn(&mut self, evidence: Evidence) {
        if evidence.as_of >= self.latency.as_of {
            self.latency = evidence;
        }
    }
}

/// The routing state of one worker, shared by its dispatcher, intake, calls and health
/// pollers.
pub(crate) struct Routing {
    policy: Policy,
    probe_interval: i64,
    metrics: Arc<Metrics>,
    locked: Mutex<Locked>,
}

/// What [`Routing`] keeps under its one lock.
#[derive(Default)]
struct Locked {
    states: [State; 2],
    /// The sequence number of the last call started (it orders calls of the same ms).
    last_call: u64,
    /// Per processor: whether free payments went there at the last view (for the log).
    goes: [bool; 2],
}

impl Routing {
    pub(crate) fn new(policy: Policy, probe_interval: Duration, metrics: Arc<Metrics>) -> Routing {
        Routing {
            policy,
            probe_interval: probe_interval.as_millis() as i64,
            metrics,
            locked: Mutex::new(Locked {
                goes: [true, false],
                ..Locked::default()
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Locked) -> T) -> T {
        // A panic while holding this lock cannot leave the small state inconsistent, so a
        // poisoned lock is still usable.
        f(&mut self.locked.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// What the policy allows at `now` for this backlog; also starts or ends each
    /// processor's trouble: it runs while the processor is not usable and the other is.
    pub(crate) fn view(&self, now: Millis, backlog: Backlog) -> View {
        self.with(|locked| {
            let states = &mut locked.states;
            let mut observed = states
                .each_ref()
                .map(|s| s.observe(now, self.probe_interval));
            let usable = observed.map(|o| self.policy.usable(&o));
            // How long each has been out, up to now (an outage that just ended included).
            let out_for = states
                .each_ref()
                .map(|s| s.unusable_since.map(|since| now.0 - since.0));
            for (state, usable) in states.iter_mut().zip(usable) {
                state.unusable_since = match usable {
                    true => None,
                    false => Some(state.unusable_since.unwrap_or(now)),
                };
            }
            for (i, (state, o)) in states.iter_mut().zip(&mut observed).enumerate() {
                if usable[i] {
                    state.trouble_since = None;
                    continue;
                }
                // The other out for longer than a blip: the wait starts again once it is back.
                if out_for[1 - i].is_some_and(|ms| ms >= self.policy.blip_max) {
                    state.trouble_since = None;
                }
                // While the other is out there is nothing to trade: the wait pauses.
                if usable[1 - i] {
                    let since = *state.trouble_since.get_or_insert(now);
                    o.trouble_ms = now.0 - since.0;
                }
            }
            let view = choose(&observed, backlog, &self.policy);
            note_change(&mut locked.goes, &view, &observed);
            view
        })
    }

    /// [`Policy::stamp_age_max`] for `processor` as observed at `now`.
    pub(crate) fn stamp_age_max(&self, processor: Processor, now: Millis) -> Duration {
        let observed =
            self.with(|locked| locked.states[processor.index()].observe(now, self.probe_interval));
        let ms = self.policy.stamp_age_max(&observed);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// A call the view allowed is planned: it counts as in flight (and, as a probe, holds
    /// the processor's one probe slot) until its ticket is reported or dropped.
    pub(crate) fn start(
        self: &Arc<Self>,
        processor: Processor,
        access: Access,
        now: Millis,
    ) -> Ticket {
        let key = self.with(|locked| {
            locked.last_call += 1;
            let state = &mut locked.states[processor.index()];
            if access == Access::Probe {
                state.probe_in_flight = true;
                state.last_probe = Some(now);
            }
            let key = (now.0, locked.last_call);
            state.in_flight.insert(key);
            key
        });
        self.metrics.in_flight(processor, true);
        Ticket {
            routing: Arc::clone(self),
            processor,
            access,
            key,
            ended: false,
        }
    }

    /// A call ended: with its answer, or unsent (`outcome` None).
    fn end(&self, ticket: &Ticket, outcome: Option<CallOutcome>, now: Millis) {
        self.with(|locked| {
            let state = &mut locked.states[ticket.processor.index()];
            state.in_flight.remove(&ticket.key);
            if ticket.access == Access::Probe {
                state.probe_in_flight = false;
            }
            let Some(outcome) = outcome else { return };
            let (started, failing) = (
                Millis(ticket.key.0),
                match outcome {
                    CallOutcome::Processed | CallOutcome::AlreadyProcessed => false,
                    CallOutcome::Failed | CallOutcome::NoAnswer => true,
                    // Answered at once: says nothing of failing or latency.
                    CallOutcome::Busy | CallOutcome::Rejected => return,
                },
            );
            state.learn(Evidence {
                as_of: started,
                ms: now.0 - started.0,
            });
            mark(ticket.processor, state, failing, now);
        });
        self.metrics.in_flight(ticket.processor, false);
    }

    /// A shared health record: its failing flag applies if it is newer than what decided
    /// the state, its `minResponseTime` if newer than the latency evidence.
    pub(crate) fn apply_health(&self, processor: Processor, record: &HealthRecord) {
        self.with(|locked| {
            let state = &mut locked.states[processor.index()];
            state.learn(Evidence {
                as_of: record.checked_at,
                ms: i64::try_from(record.min_response_time_ms).unwrap_or(i64::MAX),
            });
            if record.checked_at > state.decided_at {
                mark(processor, state, record.failing, record.checked_at);
            }
        });
    }
}

/// A planned call to one processor, counted in flight until reported (or dropped unsent).
pub(crate) struct Ticket {
    routing: Arc<Routing>,
    processor: Processor,
    access: Access,
    key: (i64, u64),
    ended: bool,
}

impl Ticket {
    pub(crate) fn processor(&self) -> Processor {
        self.processor
    }

    /// What the call answered, at `now`.
    pub(crate) fn report(mut self, outcome: CallOutcome, now: Millis) {
        self.ended = true;
        self.routing.end(&self, Some(outcome), now);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.ended {
            self.routing.end(self, None, Millis::now());
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ticket({} {:?} {:?})",
            self.processor, self.access, self.key
        )
    }
}

/// Logs (at info) each change of where payments free to go anywhere go, with what
/// decided it; `goes` is where they went at the last view.
fn note_change(goes: &mut [bool; 2], view: &View, observed: &[Observed; 2]) {
    let now_goes = view.free.map(|n| n > 0);
    if *goes != now_goes {
        *goes = now_goes;
        tracing::info!(
            default = now_goes[0],
            fallback = now_goes[1],
            ?observed,
            "free payments now go to"
        );
    }
}

fn mark(processor: Processor, state: &mut State, failing: bool, now: Millis) {
    match (failing, state.failing) {
        (true, false) => tracing::info!(%processor, "processor failing"),
        (false, true) => tracing::info!(%processor, "processor answering again"),
        _ => {}
    }
    state.failing = failing;
    state.decided_at = state.decided_at.max(now);
}

#[cfg(test)]
mod tests;
