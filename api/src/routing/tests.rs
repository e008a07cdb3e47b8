//! The policy's table, row by row: every stage of the contest's two scenarios as the
//! workers observe them, an outage that lasts to the end, and the edges of each rule; then
//! how [`Routing`] turns calls and health records into those observations.

use super::*;
use Processor::*;

const POLICY: Policy = Policy {
    latency_max: 1200,
    fallback_after: 10_000,
    overflow_after: 500,
    concurrency: 400,
    blip_max: 700,
};

/// Answering in `ms`, nothing overdue, nothing in flight.
const fn ok(ms: i64) -> Observed {
    Observed {
        failing: false,
        probe_due: false,
        latency_ms: ms,
        overdue_ms: 0,
        in_flight: 0,
        trouble_ms: 0,
    }
}

/// Answering 500 after `ms`, for `trouble_ms`, its probe due.
const fn failing(ms: i64, trouble_ms: i64) -> Observed {
    Observed {
        failing: true,
        probe_due: true,
        trouble_ms,
        ..ok(ms)
    }
}

/// Answering 200 after `ms` (over the bound), for `trouble_ms`.
const fn slow(ms: i64, trouble_ms: i64) -> Observed {
    Observed {
        trouble_ms,
        ..ok(ms)
    }
}

/// Where payments free to go anywhere go, in a row's words.
#[derive(Debug, PartialEq, Eq)]
enum Goes {
    /// All to the default (as its room allows).
    Default,
    /// To the default, and this many beyond what it starts in time to the fallback.
    DefaultOverflowing(usize),
    /// All to the fallback.
    Fallback,
    /// Nowhere now: they wait.
    Wait,
}

fn goes(view: &View) -> Goes {
    match view.free {
        [0, 0] => Goes::Wait,
        [0, _] => Goes::Fallback,
        [_, 0] => Goes::Default,
        [_, n] => Goes::DefaultOverflowing(n),
    }
}

/// (situation, default, fallback, waiting, where free payments go, probed with one of them)
type Row = (
    &'static str,
    Observed,
    Observed,
    usize,
    Goes,
    &'static [Processor],
);

#[test]
fn where_payments_go_in_each_stage() {
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // The preview (stages of 10 s).
        ("preview 0-10: both fast", ok(1), ok(1), 0, Goes::Default, &[]),
        ("preview 10-20: default at 100 ms", ok(100), ok(1), 0, Goes::Default, &[]),
        ("preview 20-30: default failing 3 s: wait, probing it", failing(100, 3_000), ok(1), 50, Goes::Wait, &[Default]),
        ("preview 30-40: both failing (no trouble count: nothing to trade), the default too slow to probe",
            failing(2000, 0), failing(1000, 0), 900, Goes::Wait, &[]),
        ("preview 40: the fallback back first, the default still failing: wait again",
            failing(2000, 500), ok(20), 5000, Goes::Wait, &[]),
        ("preview 40: the default's health record says it is back, failing after 20 ms at the last probe",
            failing(20, 500), ok(20), 5000, Goes::Wait, &[Default]),
        ("preview 40-50: both back at 20 ms", ok(20), ok(20), 2000, Goes::Default, &[]),
        ("preview 50-60: the fallback slow, unused anyway", ok(1), slow(5000, 5_000), 0, Goes::Default, &[]),
        // The final (stages of 30 s).
        ("final 0-30: both fast", ok(1), ok(1), 0, Goes::Default, &[]),
        ("final 30-60: default at 1,000 ms, within the bound", ok(1000), ok(1), 0, Goes::Default, &[]),
        ("final 60-90: default at 500 ms", ok(500), ok(1), 0, Goes::Default, &[]),
        ("final 90-120: default failing after 2 s, 5 s into it: wait, too slow to probe",
            failing(2000, 5_000), ok(1000), 1000, Goes::Wait, &[]),
        ("final 90-120: 12 s into it: the fallback",
            failing(2000, 12_000), ok(1000), 2000, Goes::Fallback, &[]),
        ("final 120-150: default failing after 5 s", failing(5000, 40_000), ok(5), 0, Goes::Fallback, &[]),
        ("final 150-180: default back, fallback failing: not wanted", ok(1), failing(5, 2_000), 3000, Goes::Default, &[]),
        ("final 180-210: default at 100 ms", ok(100), ok(5), 0, Goes::Default, &[]),
        ("final 210-240", ok(50), ok(1), 0, Goes::Default, &[]),
        ("final 240-270: default at 103 ms", ok(103), ok(10), 0, Goes::Default, &[]),
        ("final 270-300: default slow (2 s) for 3 s: wait, no probe", slow(2000, 3_000), ok(1), 1500, Goes::Wait, &[]),
        ("final 270-300: slow for 10 s: the fallback", slow(2000, 10_000), ok(1), 5000, Goes::Fallback, &[]),
        // The final with the default failing in its last 30 s, to the end.
        ("outage to the end, 9 s in: wait", failing(2000, 9_000), ok(1), 5000, Goes::Wait, &[]),
        ("outage to the end, 10 s in: the fallback", failing(2000, 10_000), ok(1), 5500, Goes::Fallback, &[]),
        // The edges of each rule.
        ("exactly at the latency bound: usable", ok(1200), ok(1), 0, Goes::Default, &[]),
        ("failing at the latency bound: probed", failing(1200, 0), ok(1), 10, Goes::Wait, &[Default]),
        ("failing past the bound: a probe answering 200 would be stored too late for the audits",
            failing(1201, 0), ok(1), 10, Goes::Wait, &[]),
        ("a call overdue by more than half its latency + 100 ms: suspect, wait",
            Observed { overdue_ms: 255, ..ok(103) }, ok(1), 10, Goes::Wait, &[]),
        ("a call overdue within the slack: still the default",
            Observed { overdue_ms: 250, ..ok(103) }, ok(1), 10, Goes::Default, &[]),
        ("overdue past the bound, even if expected fast: slow",
            Observed { overdue_ms: 1300, ..ok(1000) }, ok(1), 10, Goes::Wait, &[]),
        ("default full at 1 s: what it cannot start within 500 ms overflows",
            Observed { in_flight: 400, ..ok(1000) }, ok(1), 300, Goes::DefaultOverflowing(100), &[]),
        ("default full but fast: the backlog waits for it",
            Observed { in_flight: 400, ..ok(2) }, ok(1), 30_000, Goes::Default, &[]),
        ("default full, fallback failing: nothing overflows", Observed { in_flight: 400, ..ok(1000) },
            failing(1, 1_000), 300, Goes::Default, &[]),
        ("both failing: the default probed; the fallback's return read from its health record",
            failing(1, 0), failing(1, 0), 10, Goes::Wait, &[Default]),
        ("the default slow, the fallback failing: wait, no probe",
            slow(3000, 0), failing(1, 0), 10, Goes::Wait, &[]),
        ("the default up, the fallback failing: not probed", ok(1), failing(1, 0), 10, Goes::Default, &[]),
    ];
    for (situation, default, fallback, waiting, want, probed) in table {
        let view = choose(&[default, fallback], Backlog { waiting }, &POLICY);
        assert_eq!(goes(&view), want, "{situation}: where free payments go");
        let got: Vec<Processor> = Processor::ALL
            .into_iter()
            .filter(|p| view.wanted[p.index()])
            .collect();
        assert_eq!(got, probed, "{situation}: probed");
    }
}

#[test]
fn a_stamp_may_take_half_of_what_the_processor_s_latency_leaves_of_the_audit_budget() {
    // latency_max 1200 + the 250 ms margin: 1450 ms for the stamp's age, the delay and the
    // recording of the answer.
    let overdue = Observed {
        overdue_ms: 900,
        ..ok(20)
    };
    let rows = [
        (
            ok(20),
            715,
            "a fast processor leaves the stamp half the budget, the recording the other half",
        ),
        (ok(1200), 250, "a processor at the bound leaves the margin"),
        (slow(3000, 0), 250, "never less than the margin"),
        (overdue, 275, "a call overdue counts as the latency"),
    ];
    for (observed, age_max, why) in rows {
        assert_eq!(POLICY.stamp_age_max(&observed), age_max, "{why}");
    }
}

#[test]
fn access_and_room_follow_failing_probes_and_calls_in_flight() {
    let busy_default = Observed {
        in_flight: 150,
        ..ok(1)
    };
    let probing = Observed {
        probe_due: false,
        ..failing(1, 1)
    };
    let view = choose(&[busy_default, probing], Backlog::default(), &POLICY);
    assert_eq!(view.access, [Some(Access::Open), None]);
    assert_eq!(view.room, [250, 400]);
    let view = choose(&[failing(1, 1), ok(1)], Backlog::default(), &POLICY);
    assert_eq!(view.access, [Some(Access::Probe), Some(Access::Open)]);
    assert_eq!(view.sends_at_once(), None, "a probe is not a send at once");
    let view = choose(&[ok(1), ok(1)], Backlog::default(), &POLICY);
    assert_eq!(view.sends_at_once(), Some(Default));
}

fn routing() -> Arc<Routing> {
    let policy = Policy {
        fallback_after: 1000,
        ..POLICY
    };
    Arc::new(Routing::new(
        policy,
        Duration::from_millis(100),
        Arc::new(Metrics::default()),
    ))
}

fn view(r: &Routing, now: i64) -> View {
    r.view(Millis(now), Backlog { waiting: 10 })
}

#[test]
fn waits_for_a_failing_default_then_pays_the_fallback() {
    let r = routing();
    assert_eq!(goes(&view(&r, 0)), Goes::Default);
    r.start(Default, Access::Open, Millis(0))
        .report(CallOutcome::Failed, Millis(10));
    assert_eq!(goes(&view(&r, 500)), Goes::Wait);
    assert_eq!(goes(&view(&r, 1499)), Goes::Wait);
    assert_eq!(
        goes(&view(&r, 1500)),
        Goes::Fallback,
        "1 s after trouble was seen"
    );
    r.start(Default, Access::Probe, Millis(1500))
        .report(CallOutcome::Processed, Millis(1510));
    assert_eq!(goes(&view(&r, 1520)), Goes::Default);
}

#[test]
fn a_fallback_that_comes_back_starts_the_wait_again() {
    let r = routing();
    for processor in Processor::ALL {
        r.start(processor, Access::Open, Millis(0))
            .report(CallOutcome::Failed, Millis(10));
    }
    assert_eq!(goes(&view(&r, 500)), Goes::Wait);
    assert_eq!(
        goes(&view(&r, 1500)),
        Goes::Wait,
        "both down: nothing to trade"
    );
    r.start(Fallback, Access::Probe, Millis(1500))
        .report(CallOutcome::Processed, Millis(1510));
    assert_eq!(goes(&view(&r, 1600)), Goes::Wait, "the wait starts now");
    assert_eq!(goes(&view(&r, 2599)), Goes::Wait);
    assert_eq!(goes(&view(&r, 2600)), Goes::Fallback);
}

#[test]
fn a_fallback_blip_does_not_start_the_wait_again() {
    let r = routing();
    r.start(Default, Access::Open, Millis(0))
        .report(CallOutcome::Failed, Millis(10));
    assert_eq!(goes(&view(&r, 500)), Goes::Wait);
    assert_eq!(goes(&view(&r, 1500)), Goes::Fallback, "waited 1 s");
    r.start(Fallback, Access::Open, Millis(1500))
        .report(CallOutcome::NoAnswer, Millis(1600));
    assert_eq!(goes(&view(&r, 1700)), Goes::Wait, "the fallback is out");
    let back = HealthRecord {
        failing: false,
        min_response_time_ms: 0,
        checked_at: Millis(2100),
    };
    r.apply_health(Fallback, &back);
    assert_eq!(
        goes(&view(&r, 2100)),
        Goes::Fallback,
        "out for 0.5 s, under the blip bound: the wait goes on"
    );
    r.start(Fallback, Access::Open, Millis(2200))
        .report(CallOutcome::Failed, Millis(2210));
    assert_eq!(goes(&view(&r, 2300)), Goes::Wait);
    r.apply_health(
        Fallback,
        &HealthRecord {
            checked_at: Millis(3000),
            ..back
        },
    );
    assert_eq!(
        goes(&view(&r, 3000)),
        Goes::Wait,
        "out for 0.8 s, an outage: the wait starts again"
    );
    assert_eq!(goes(&view(&r, 4000)), Goes::Fallback);
}

#[test]
fn probes_a_failing_processor_one_at_a_time() {
    let r = routing();
    let access = |now| view(&r, now).access(Default);
    r.start(Default, Access::Open, Millis(0))
        .report(CallOutcome::NoAnswer, Millis(0));
    assert_eq!(access(1), Some(Access::Probe));
    let probe = r.start(Default, Access::Probe, Millis(1));
    assert_eq!(access(500), None, "probe still in flight");
    probe.report(CallOutcome::Failed, Millis(501));
    assert_eq!(access(502), Some(Access::Probe));
    let unsent = r.start(Default, Access::Probe, Millis(502));
    drop(unsent);
    assert_eq!(access(550), None, "interval not over");
    assert_eq!(
        access(602),
        Some(Access::Probe),
        "an unsent probe freed its slot"
    );
    r.start(Default, Access::Probe, Millis(602))
        .report(CallOutcome::AlreadyProcessed, Millis(610));
    assert_eq!(access(611), Some(Access::Open));
}

#[test]
fn a_stage_change_shows_within_a_fraction_of_a_second() {
    let r = routing();
    // The default answers in about 100 ms...
    r.start(Default, Access::Open, Millis(1000))
        .report(CallOutcome::Processed, Millis(1103));
    // ...then a call sent after that answer runs on: 2 s, as it turns out.
    let late = r.start(Default, Access::Open, Millis(1200));
    assert_eq!(
        goes(&view(&r, 1350)),
        Goes::Default,
        "150 ms old: within the slack"
    );
    assert_eq!(goes(&view(&r, 1500)), Goes::Wait, "300 ms old: suspect");
    assert_eq!(
        r.view(Millis(1500), Backlog::default()).sends_at_once(),
        None
    );
    assert_eq!(
        goes(&view(&r, 2400)),
        Goes::Wait,
        "1.2 s old: slow; trouble since 1500"
    );
    assert_eq!(goes(&view(&r, 2500)), Goes::Fallback, "1 s of trouble");
    late.report(CallOutcome::Processed, Millis(3200));
    assert_eq!(
        goes(&view(&r, 3300)),
        Goes::Fallback,
        "2 s is over the bound"
    );
    // A newer health record says it is fast again.
    let fast = HealthRecord {
        failing: false,
        min_response_time_ms: 5,
        checked_at: Millis(4400),
    };
    r.apply_health(Default, &fast);
    assert_eq!(goes(&view(&r, 4500)), Goes::Default);
}

#[test]
fn calls_started_before_the_newest_evidence_are_not_overdue() {
    let r = routing();
    let old = r.start(Default, Access::Open, Millis(0));
    // The health record says 0 ms as of 100: the old call (2 s delay) is from before.
    let fast = HealthRecord {
        failing: false,
        min_response_time_ms: 0,
        checked_at: Millis(100),
    };
    r.apply_health(Default, &fast);
    assert_eq!(goes(&view(&r, 1900)), Goes::Default);
    old.report(CallOutcome::Processed, Millis(2000));
    assert_eq!(
        goes(&view(&r, 2001)),
        Goes::Default,
        "older evidence than the record"
    );
}

#[test]
fn an_older_health_record_does_not_undo_a_newer_answer() {
    let r = routing();
    r.start(Default, Access::Open, Millis(90))
        .report(CallOutcome::Failed, Millis(100));
    let stale = HealthRecord {
        failing: false,
        min_response_time_ms: 0,
        checked_at: Millis(50),
    };
    r.apply_health(Default, &stale);
    assert!(view(&r, 120).access(Default) != Some(Access::Open));
    let fresh = HealthRecord {
        checked_at: Millis(150),
        ..stale
    };
    r.apply_health(Default, &fresh);
    assert_eq!(view(&r, 160).access(Default), Some(Access::Open));
}

#[test]
fn answers_at_once_say_nothing_of_latency_or_failing() {
    let r = routing();
    r.start(Default, Access::Open, Millis(0))
        .report(CallOutcome::Processed, Millis(900));
    r.start(Default, Access::Open, Millis(1000))
        .report(CallOutcome::Busy, Millis(1001));
    // Still 900 ms expected: a call 1,100 ms old is within its slack.
    let _running = r.start(Default, Access::Open, Millis(1000));
    assert_eq!(goes(&view(&r, 2100)), Goes::Default);
}
