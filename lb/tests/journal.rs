//! The lb is SIGKILLed while it holds payments no worker has recorded; the next lb on the
//! same journal delivers every one of them, exactly once, and none a purge removed, even
//! when it was killed after the workers' delete and before its own journal was cleared.

mod common;

use common::{assert_settled, Lb, Listen, Stack};
use lb::config as lb_env;
use std::time::Duration;
use testkit::http;

const SETTLE: Duration = Duration::from_secs(30);

#[test]
fn a_killed_lb_s_payments_are_delivered_by_the_next_one() {
    let stack = Stack::start();
    let (one, two) = (stack.tcp(), stack.tcp());
    // No worker up yet: every accepted payment stays in the lb.
    let mut lb = Lb::start(&[&one, &two], &[]);
    assert_eq!(lb.pay_many(60), 60);
    let journal = lb.journal.clone();
    lb.service.kill();

    let _workers = [stack.worker(&one), stack.worker(&two)];
    let lb = Lb::start_on_journal(&[&one, &two], &[], &journal);
    assert_eq!(lb.pay_many(10), 10);
    assert_settled(&stack, &lb, 70, SETTLE);
    assert_eq!(lb.metric("lb_payments_replayed_total"), 60);
}

#[test]
fn a_killed_lb_s_payments_delivered_already_are_not_paid_twice() {
    let stack = Stack::start();
    let one = stack.tcp();
    let _worker = stack.worker(&one);
    let mut lb = Lb::start(&[&one], &[]);
    assert_eq!(lb.pay_many(40), 40);
    assert_settled(&stack, &lb, 40, SETTLE);
    let journal = lb.journal.clone();
    lb.service.kill();

    let lb = Lb::start_on_journal(&[&one], &[], &journal);
    assert_eq!(lb.pay_many(5), 5);
    assert_settled(&stack, &lb, 45, SETTLE);
}

#[test]
fn a_purge_empties_the_journal() {
    let stack = Stack::start();
    let one = stack.tcp();
    let _worker = stack.worker(&one);
    // Batches of up to 1,000 that linger a minute: the payments stay in the lb.
    let lingering = [
        (lb_env::LB_BATCH_MAX, "1000"),
        (lb_env::LB_BATCH_LINGER_MS, "60000"),
    ];
    let mut lb = Lb::start(&[&one], &lingering);
    assert_eq!(lb.pay_many(30), 30);
    let purge = http::post(&lb.addr, "/purge-payments", "");
    assert_eq!(purge.status, 200, "{}", purge.body);
    let journal = lb.journal.clone();
    lb.service.kill();

    let lb = Lb::start_on_journal(&[&one], &[], &journal);
    // Anything replayed is queued before this payment, so it would be paid by then.
    assert_eq!(lb.pay_many(1), 1);
    assert_settled(&stack, &lb, 1, SETTLE);
}

#[test]
fn payments_replayed_after_a_purge_the_killed_lb_never_saw_answered_stay_forgotten() {
    let stack = Stack::start();
    let one = stack.tcp();
    let Listen::Tcp(worker_addr) = &one else {
        unreachable!("stack.tcp() is a TCP address")
    };
    let _worker = stack.worker(&one);
    let lingering = [
        (lb_env::LB_BATCH_MAX, "1000"),
        (lb_env::LB_BATCH_LINGER_MS, "60000"),
    ];
    let mut lb = Lb::start(&[&one], &lingering);
    assert_eq!(lb.pay_many(30), 30);
    // The worker deleted, and the lb died before it could clear its journal.
    let purge = http::post(worker_addr, "/purge-payments", "");
    assert_eq!(purge.status, 200, "{}", purge.body);
    let journal = lb.journal.clone();
    lb.service.kill();

    let lb = Lb::start_on_journal(&[&one], &[], &journal);
    assert_eq!(lb.pay_many(1), 1);
    assert_settled(&stack, &lb, 1, SETTLE);
    assert_eq!(
        lb.metric("lb_payments_replayed_total"),
        30,
        "replayed, not recorded"
    );
}
