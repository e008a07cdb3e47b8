//! The routing policy, pure: where payments free to go anywhere go now, how many, and
//! which processor gets a probe ([`choose`]), from what is observed of each processor
//! ([`Observed`]), the backlog ([`Backlog`]) and the knobs ([`Policy`]). No lock, no
//! clock: every situation is a row of the table test in `routing/tests.rs`. Keeps: no
//! payment free to go anywhere goes to a processor slower than `PROCESSOR_LATENCY_MAX_MS`
//! or suspect. Why these rules: docs/architecture.md, "Decisions and why".

use payment::Processor;
use std::time::Duration;

/// How far past its expected latency a call may run before its processor is suspect: this
/// plus half the expected latency.
const SUSPECT_SLACK_MS: i64 = 100;

/// How a call may reach a processor right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The processor is not failing: call it freely.
    Open,
    /// The processor is failing: this call is its one probe.
    Probe,
}

/// The policy's knobs, in milliseconds (see the README's configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// `PROCESSOR_LATENCY_MAX_MS`: slower processors get no payments free to go anywhere.
    pub latency_max: i64,
    /// `FALLBACK_AFTER_MS`: how long payments wait for a default in trouble.
    pub fallback_after: i64,
    /// `OVERFLOW_AFTER_MS`: payments the default would not start within this go to the fallback.
    pub overflow_after: i64,
    /// `DISPATCH_CONCURRENCY`: calls in flight per processor, this worker.
    pub concurrency: usize,
    /// The longest the other processor may be unusable and still count as a blip: the wait
    /// for a processor in trouble goes on across it; a longer outage starts it again.
    pub blip_max: i64,
}

/// [`Policy::blip_max`]: longer than one health window, the soonest a fallback marked
/// failing by one call can be seen back (free payments never probe it).
pub(crate) const BLIP_MAX: Duration = Duration::from_secs(7);

/// The margin for a stamp's age above `latency_max` in the audit budget (see
/// [`Policy::stamp_age_max`]): a call stamped this long ago is always on time, even to the slowest usable processor.
pub(crate) const STAMP_MARGIN: Duration = Duration::from_millis(250);

impl Policy {
    /// Whether payments free to go anywhere may be sent to a processor so observed: not
    /// failing, not slower than the bound, no call overdue.
    pub(crate) fn usable(&self, o: &Observed) -> bool {
        let expected = o.latency_ms;
        !o.failing
            && expected.max(o.overdue_ms) <= self.latency_max
            && o.overdue_ms <= expected + expected / 2 + SUSPECT_SLACK_MS
    }

    /// How old (ms) the requestedAt a call carries may be when the call starts. The stamp's
    /// age, the processor's delay and the recording of its answer share one audit budget,
    /// `latency_max` + [`STAMP_MARGIN`]: what the delay leaves is split evenly between the
    /// stamp (a slow database needs it) and the recording (a starved worker is late at
    /// both), and the stamp gets at least the margin.
    pub(crate) fn stamp_age_max(&self, o: &Observed) -> i64 {
        let expected = o.latency_ms.max(o.overdue_ms);
        let margin = STAMP_MARGIN.as_millis() as i64;
        ((self.latency_max + margin - expected) / 2).max(margin)
    }

    /// How many of `waiting` payments the default would not start within `overflow_after`:
    /// its free slots now, then `concurrency` per latency as its calls end.
    fn overflow(&self, default: &Observed, waiting: usize, room: usize) -> usize {
        let latency = default.latency_ms.max(default.overdue_ms).max(1);
        let per_bound = self.concurrency as i64 * self.overflow_after / latency;
        let in_time = room.saturating_add(usize::try_from(per_bound).unwrap_or(usize::MAX));
        waiting.saturating_sub(in_time)
    }
}

/// One processor as this worker sees it at one instant: the policy's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Observed {
    /// A 5xx, no answer or the health record said so, and nothing has said otherwise since.
    pub failing: bool,
    /// When failing: whether its one probe may go now (none in flight, the interval over).
    pub probe_due: bool,
    /// What a call takes, by the newest evidence (ms).
    pub latency_ms: i64,
    /// Age of the oldest call in flight sent after that evidence (ms; 0: none).
    pub overdue_ms: i64,
    /// Calls planned and not ended.
    pub in_flight: usize,
    /// How long it has been, without a break, not usable while the other processor was
    /// (ms; 0 otherwise): the wait for it that only a fee can end.
    pub trouble_ms: i64,
}

/// The payments free to go anywhere that wait in this worker's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Backlog {
    pub waiting: usize,
}

/// What the routing allows at one instant: the input of the dispatcher's planner, which
/// must not lock or read the clock itself. Arrays are per processor (default, fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// How a call may reach each processor now; None: not now (failing, its probe in
    /// flight or not due).
    pub access: [Option<Access>; 2],
    /// Calls each may still take (`DISPATCH_CONCURRENCY` less those in flight).
    pub room: [usize; 2],
    /// How many payments free to go anywhere each takes now (its room bounds it too).
    pub free: [usize; 2],
    /// Whether each is failing and wanted back: probe it with a payment free to go anywhere.
    pub wanted: [bool; 2],
}

impl View {
    pub(crate) fn access(&self, processor: Processor) -> Option<Access> {
        self.access[processor.index()]
    }

    /// The processor that takes payments free to go anywhere at once, without a probe,
    /// while nothing waits: where intake records for sending (docs/architecture.md, step 3).
    pub(crate) fn sends_at_once(&self) -> Option<Processor> {
        Processor::ALL.into_iter().find(|p| {
            let i = p.index();
            self.free[i] > 0 && self.room[i] > 0 && self.access[i] == Some(Access::Open)
        })
    }
}

/// The policy: where payments go now, from what is observed of each processor (see
/// docs/architecture.md, "Decisions and why", on the routing).
pub(crate) fn choose(observed: &[Observed; 2], backlog: Backlog, policy: &Policy) -> View {
    let [default, _] = observed;
    let usable = observed.map(|o| policy.usable(&o));
    let room = observed.map(|o| policy.concurrency.saturating_sub(o.in_flight));
    let waited_long = default.trouble_ms >= policy.fallback_after;
    let free = match usable {
        [true, true] => [
            usize::MAX,
            policy.overflow(default, backlog.waiting, room[0]),
        ],
        [true, false] => [usize::MAX, 0],
        [false, true] if waited_long => [0, usize::MAX],
        _ => [0, 0],
    };
    let access = observed.map(|o| match (o.failing, o.probe_due) {
        (false, _) => Some(Access::Open),
        (true, true) => Some(Access::Probe),
        (true, false) => None,
    });
    View {
        access,
        room,
        free,
        // A probe is a payment: one that answers 200 later than the bound is stored later than
        // an audit allows, so a failing default that slow is not probed. A fallback probe that
        // answers 200 pays the higher fee, and a fallback back from an outage only starts the
        // wait again. Those returns are read from the health record.
        wanted: [
            default.failing && default.latency_ms <= policy.latency_max,
            false,
        ],
    }
}
