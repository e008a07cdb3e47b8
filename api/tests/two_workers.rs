//! Two workers on one database (a SQLite file, or PostgreSQL), as deployed: they share the processors' health
//! budget without a single 429, and their summaries match the processors' for the
//! contest's audit windows while payments flow.

mod common;

use common::{on_both, payments, window, Backend, Stack};
use payment::{Millis, Processor};
use sim::config::SIM_HEALTH_WINDOW_SECS;
use std::time::{Duration, Instant};

on_both!(
    two_workers_share_the_health_budget_without_a_429,
    summaries_match_the_processors_for_audit_windows_while_payments_flow,
);

fn two_workers_share_the_health_budget_without_a_429(backend: Backend) {
    let stack = Stack::on(backend, &[(SIM_HEALTH_WINDOW_SECS, "1")]);
    // Both workers try for the turn every 50 ms; only the shared turn keeps them at one call per second.
    let knobs = |c: &mut api::config::Config| {
        c.health_window = Duration::from_millis(1000);
        c.health_read = Duration::from_millis(50);
    };
    let started = Instant::now();
    let workers = [stack.worker(knobs), stack.worker(knobs)];
    std::thread::sleep(Duration::from_secs(6));

    for processor in Processor::ALL {
        let sim = stack.sim(processor);
        assert_eq!(sim.stat("health429"), 0, "{processor}: {}", sim.stats());
        let answered = sim.stat("healthAnswered");
        // Calls at least 1 s apart: at most one per started second, plus the first.
        let budget = started.elapsed().as_secs() + 1;
        assert!(
            (2..=budget).contains(&answered),
            "{processor}: {answered} health calls, budget {budget}"
        );
        for worker in &workers {
            assert_eq!(
                worker.metric(&format!(
                    r#"api_health_429_total{{processor="{processor}"}}"#
                )),
                0.0
            );
        }
    }
}

fn summaries_match_the_processors_for_audit_windows_while_payments_flow(backend: Backend) {
    let stack = Stack::on(backend, &[]);
    stack.default.set_delay(50);
    let workers = [stack.worker(|_| {}), stack.worker(|_| {})];
    let start = Instant::now();
    let mut sent = Vec::new();
    let mut audits = 0;
    let mut next_audit = Instant::now() + Duration::from_millis(1600);
    while start.elapsed() < Duration::from_secs(6) {
        let batch = payments(25);
        workers[sent.len() / 25 % 2].send(&batch, 25);
        sent.extend(batch);
        if Instant::now() >= next_audit {
            // The contest's audit: [now - 15 s, now - 1.5 s], ours against both processors'.
            let now = Millis::now();
            let query = window(Millis(now.0 - 15_000), Millis(now.0 - 1500));
            let theirs = stack.sims_summary(&query);
            for worker in &workers {
                assert_eq!(worker.summary(&query), theirs, "audit {audits} for {query}");
            }
            assert!(theirs[0].requests > 0, "the audit window holds payments");
            audits += 1;
            next_audit += Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(audits >= 5, "only {audits} audits");
    workers[0].wait_processed(sent.len(), Duration::from_secs(20));
    stack.assert_settled(&workers[1], &sent);
}
