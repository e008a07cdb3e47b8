//! Workers die and come back; every payment the lb answered 202 is processed exactly
//! once, and the summary keeps answering while at least one worker is up.

mod common;

use common::{assert_settled, worker_metric, Lb, Listen, Stack};
use lb::config as lb_env;
use std::time::{Duration, Instant};
use testkit::{http, wait_for};

const SETTLE: Duration = Duration::from_secs(30);

#[test]
fn one_worker_down_the_other_carries_on_and_the_restarted_one_rejoins() {
    let stack = Stack::start();
    let (one, two) = (stack.tcp(), stack.tcp());
    let mut first = stack.worker(&one);
    let _second = stack.worker(&two);
    let lb = Lb::start(
        &[&one, &two],
        &[
            (lb_env::LB_HEALTH_INTERVAL_MS, "200"),
            (lb_env::LB_AVOID_MS, "500"),
        ],
    );
    assert_eq!(lb.pay_many(50), 50);

    first.kill();
    let mut accepted = 50;
    for _ in 0..5 {
        assert_eq!(
            lb.pay_many(20),
            20,
            "payments are accepted with one worker down"
        );
        let _ = lb.summary(); // answers 200 (asserted inside) with one worker down
        accepted += 20;
    }
    assert_settled(&stack, &lb, accepted, SETTLE);

    let _first = stack.worker(&one);
    let Listen::Tcp(first_addr) = &one else {
        unreachable!("a TCP worker")
    };
    // Payments keep coming: once LB_AVOID_MS has passed since its last failure, the
    // forwarder tries the restarted worker again in its turn.
    wait_for("the restarted worker takes intake again", SETTLE, || {
        accepted += lb.pay_many(5);
        worker_metric(first_addr, "api_recorded_total") > 0.0
    });
    assert_settled(&stack, &lb, accepted, SETTLE);
}

#[test]
fn both_workers_down_for_three_seconds_loses_nothing() {
    let stack = Stack::start();
    let (one, two) = (stack.tcp(), stack.tcp());
    let mut workers = [stack.worker(&one), stack.worker(&two)];
    let lb = Lb::start(&[&one, &two], &[]);
    let mut accepted = lb.pay_many(20);

    workers.iter_mut().for_each(|w| w.kill());
    let outage = Instant::now();
    let mut during = 0;
    while outage.elapsed() < Duration::from_secs(3) {
        during += lb.pay_many(5);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lb.metric("lb_queue_depth") > 0,
        "payments wait in the lb during the outage"
    );
    let _workers = [stack.worker(&one), stack.worker(&two)];
    accepted += during;
    assert!(
        during >= 50,
        "only {during} payments were accepted during the outage"
    );
    assert_settled(&stack, &lb, accepted, SETTLE);
    assert_eq!(lb.metric("lb_payments_accepted_total"), accepted as u64);
}

#[test]
fn a_purge_right_after_a_worker_died_is_answered_by_the_other() {
    let stack = Stack::start();
    let (one, two) = (stack.tcp(), stack.tcp());
    let mut first = stack.worker(&one);
    let _second = stack.worker(&two);
    // The health check never runs during the test: only the proxy's own handling of a
    // dead worker is at work.
    let lb = Lb::start(&[&one, &two], &[(lb_env::LB_HEALTH_INTERVAL_MS, "600000")]);
    // Round robin leaves a pooled keep-alive connection to each worker.
    for _ in 0..4 {
        let _ = lb.summary();
    }

    first.kill();
    for round in 0..4 {
        let purge = http::post(&lb.addr, "/purge-payments", "");
        assert!(
            (200..300).contains(&purge.status),
            "purge {round} after a worker died: {} {}",
            purge.status,
            purge.body
        );
        let _ = lb.summary(); // answers 200 (asserted inside)
    }
}
