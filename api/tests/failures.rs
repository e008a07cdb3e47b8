//! Processors failing, slow or timing out, and a slow database: nothing is lost, nothing
//! is paid twice, our summary ends equal to the processors', and the fallback is paid only
//! when the policy allows it.

mod common;

use common::{on_both, payments, window, Backend, Stack, Totals};
use payment::Millis;
use sim::config::{SIM_MAX_RUNNING, SIM_MAX_WAITING};
use std::time::Duration;
use testkit::wait_for;

on_both!(
    a_timed_out_payment_goes_back_only_to_its_processor,
    a_pin_is_not_released_by_the_500s_that_follow_a_timeout,
    a_database_whose_writes_wait_longer_than_the_send_deadline_still_gets_everything_paid,
);

const SETTLE: Duration = Duration::from_secs(40);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[test]
fn a_failing_default_is_waited_for_not_flooded_and_the_fallback_stays_unpaid() {
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    let worker = stack.worker(|_| {});
    let sent = payments(300);
    worker.send(&sent, 100);

    std::thread::sleep(Duration::from_millis(1000));
    let failed_before = stack.default.stat("payments500");
    std::thread::sleep(Duration::from_millis(2000));
    let probes = stack.default.stat("payments500") - failed_before;
    // One probe per 100 ms is about 20 calls in 2 s; resending the waiting payments would be hundreds.
    assert!(
        probes < 60,
        "{probes} calls to the failing default in 2 s while 300 payments wait"
    );
    assert_eq!(worker.processed(), 0);
    assert_eq!(
        stack.fallback.stat("paymentsStored"),
        0,
        "an outage shorter than FALLBACK_AFTER_MS is waited out: the fallback's fee is not paid"
    );

    stack.default.set_failure(false);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    assert_eq!(stack.fallback.summary("").requests, 0);
}

#[test]
fn with_a_short_fallback_threshold_a_failing_default_sends_payments_to_the_fallback() {
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    let worker = stack.worker(|c| c.fallback_after = ms(300));
    let sent = payments(300);
    worker.send(&sent, 100);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    assert_eq!(stack.default.summary("").requests, 0);
    assert_eq!(stack.fallback.summary("").requests, 300);
}

#[test]
fn both_failing_then_recovering_loses_nothing() {
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    stack.fallback.set_failure(true);
    let worker = stack.worker(|c| c.fallback_after = ms(300));
    let sent = payments(300);
    worker.send(&sent, 100);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(worker.processed(), 0);
    assert_eq!(stack.sims_total(), 0);

    stack.fallback.set_failure(false);
    stack.default.set_failure(false);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
}

#[test]
fn a_default_slow_within_the_latency_bound_keeps_getting_the_payments() {
    let stack = Stack::start(&[]);
    stack.default.set_delay(800);
    let worker = stack.worker(|c| c.fallback_after = ms(300));
    let sent = payments(400);
    for chunk in sent.chunks(100) {
        worker.send(chunk, 100);
        std::thread::sleep(Duration::from_millis(400));
    }
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    assert_eq!(
        stack.fallback.summary("").requests,
        0,
        "slow within the bound is not trouble"
    );
}

#[test]
fn a_default_slower_than_the_latency_bound_is_waited_for_then_left_to_the_fallback() {
    // A payment stored by a processor later than an audit's lag behind its requestedAt can
    // show in the processor's summary before ours: such a processor gets no payment that
    // can go elsewhere, once FALLBACK_AFTER_MS of waiting for it is over.
    let stack = Stack::start(&[]);
    stack.default.set_delay(2000);
    let worker = stack.worker(|c| c.fallback_after = ms(3000));
    let first = payments(10);
    worker.send(&first, 10);
    // Its calls run on, overdue, then past the bound (1,200 ms): no more for the default.
    std::thread::sleep(Duration::from_millis(1500));
    let waiting = payments(50);
    worker.send(&waiting, 50);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        stack.sims_total(),
        0,
        "payments sent to a default answering in 2 s"
    );
    // The wait for the default is over after 3 s: the fallback takes what waits.
    std::thread::sleep(Duration::from_millis(2000));
    let later = payments(50);
    worker.send(&later, 50);

    let sent: Vec<_> = first
        .iter()
        .chain(&waiting)
        .chain(&later)
        .copied()
        .collect();
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    // The first 10 reach the default only if they were sent before its health record
    // (2,000 ms) was read; everything sent later goes to the fallback.
    let at_default = stack.default.summary("").requests;
    assert!(
        at_default <= 10,
        "{at_default} at the default: some sent once it was known slow"
    );
    assert_eq!(stack.fallback.summary("").requests, 110 - at_default);
}

#[test]
fn a_failing_default_slower_than_the_latency_bound_is_not_probed_and_its_health_record_brings_it_back(
) {
    // A probe is a payment: one sent to a default that fails after 2 s, and stops failing
    // during that delay, is stored 2 s after its requestedAt, later than an audit's lag. So
    // such a default gets no probe; its health record says when it is back.
    let stack = Stack::start(&[]);
    stack.default.set_delay(2000);
    stack.default.set_failure(true);
    let worker = stack.worker(|c| c.fallback_after = ms(60_000));
    let sent = payments(50);
    worker.send(&sent, 50);
    // Calls received: ended with a 500 or still in their delay.
    let calls = || stack.default.stat("payments500") + stack.default.stat("paymentsRunning");
    // The first calls (unless the health record came first) learn that it fails after 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    let learned = calls();
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        calls() - learned,
        0,
        "probes sent to a default failing after 2 s (one every 2 s would be 2 or more)"
    );
    assert_eq!(worker.processed(), 0);

    stack.default.set_delay(0);
    stack.default.set_failure(false);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    assert_eq!(stack.fallback.summary("").requests, 0);
}

fn a_timed_out_payment_goes_back_only_to_its_processor(backend: Backend) {
    let stack = Stack::on(backend, &[]);
    // Slower than our timeout: every call times out, yet the processor stores the payment.
    stack.default.set_delay(2000);
    let worker = stack.worker(|c| {
        c.processor_timeout = ms(1000);
        c.fallback_after = ms(300);
    });
    let first = payments(100);
    worker.send(&first, 100);
    std::thread::sleep(Duration::from_millis(2500));
    // The default is now down for us (timeouts) and the fallback is allowed: new payments
    // may go there, the timed-out ones may not.
    let second = payments(100);
    worker.send(&second, 100);
    std::thread::sleep(Duration::from_millis(1000));
    stack.default.set_delay(0);

    let sent: Vec<_> = first.iter().chain(&second).copied().collect();
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    // Settled at the default, by its 422 to a second call or by looking each one up there
    // (which of the two depends on when the default answers again): never at the fallback.
    let at_default = stack.default.payments();
    let elsewhere = first
        .iter()
        .filter(|a| !at_default.contains_key(&a.payment.correlation_id))
        .count();
    assert_eq!(
        elsewhere, 0,
        "payments whose call to the default timed out were stored elsewhere"
    );
}

fn a_pin_is_not_released_by_the_500s_that_follow_a_timeout(backend: Backend) {
    // The double charge a production-like configuration used to show: calls time out at
    // the default (which stores them anyway), then the default fails fast with 500 while
    // the fallback is healthy and allowed. A 500 says nothing about the earlier call: the
    // payments must wait for the default, not go to the fallback.
    let stack = Stack::on(backend, &[]);
    stack.default.set_delay(1200);
    let worker = stack.worker(|c| {
        c.processor_timeout = ms(800);
        c.fallback_after = ms(300);
    });
    let sent = payments(200);
    worker.send(&sent, 100);
    std::thread::sleep(Duration::from_millis(1500));
    stack.default.set_delay(0);
    stack.default.set_failure(true);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        stack.fallback.summary("").requests,
        0,
        "payments whose call to the default timed out were sent to the fallback"
    );
    assert!(worker.metric(r#"api_pinned_total{processor="default"}"#) >= 200.0);
    stack.default.set_failure(false);

    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    assert_eq!(
        stack.sims_total(),
        sent.len() as i64,
        "payments stored by both processors"
    );
    assert_eq!(worker.metric("api_double_charges_total"), 0.0);
}

#[test]
fn payments_retried_after_an_outage_carry_no_requested_at_from_inside_it() {
    // The contest audits [now - 15 s, now - 1.5 s]. Probing a down processor with a new
    // payment each time would date hundreds of payments inside the outage, all stored in
    // one burst at recovery, a moment before we record them: an audit in that moment
    // disagrees. One reused probe payment keeps the outage window empty.
    let stack = Stack::start(&[]);
    let worker = stack.worker(|_| {});
    stack.default.set_failure(true);
    let failed_at = Millis::now();
    let mut sent = payments(1);
    worker.send(&sent, 1);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let more = payments(10);
        worker.send(&more, 10);
        sent.extend(more);
    }
    let recovered_at = Millis::now();
    stack.default.set_failure(false);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);

    let outage = window(Millis(failed_at.0 + 500), Millis(recovered_at.0 - 100));
    assert_eq!(
        stack.sims_summary(&outage),
        [Totals::default(); 2],
        "payments dated inside the outage"
    );
}

#[test]
fn a_processor_answering_429_is_retried_until_it_takes_everything() {
    // Five running, none waiting: most of our 400 concurrent calls get 429 at first.
    let stack = Stack::start(&[(SIM_MAX_RUNNING, "5"), (SIM_MAX_WAITING, "0")]);
    stack.default.set_delay(50);
    let worker = stack.worker(|_| {});
    let sent = payments(300);
    worker.send(&sent, 100);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
    assert!(
        stack.default.stat("payments429") > 0,
        "the scenario produced 429s"
    );
    assert_eq!(stack.fallback.summary("").requests, 0, "busy is not down");
}

#[test]
fn a_purge_while_calls_are_in_flight_forgets_every_payment_accepted_before_it() {
    let stack = Stack::start(&[]);
    stack.default.set_delay(500);
    let worker = stack.worker(|_| {});
    let sent = payments(200);
    // Accepted before the purge, reaching the worker after it (the lb's queue, its journal).
    let late = payments(20);
    worker.send(&sent, 50);
    wait_for(
        "calls in flight at the default",
        Duration::from_secs(10),
        || stack.default.stat("paymentsRunning") > 0,
    );
    let purged = testkit::http::post(&worker.addr, "/purge-payments", "");
    assert_eq!(purged.status, 200, "{}", purged.body);
    let again = worker.intake(&late);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["recorded"], 0, "forgotten before they arrived");

    wait_for("the calls in flight ended", SETTLE, || {
        stack.default.stat("paymentsRunning") == 0
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(worker.processed(), 0, "the purge forgot them for good");
    let after = payments(5);
    worker.send(&after, 5);
    worker.wait_processed(after.len(), SETTLE);
}

fn a_database_whose_writes_wait_longer_than_the_send_deadline_still_gets_everything_paid(
    backend: Backend,
) {
    // Every write waits 400 ms in the writer's queue before it runs, longer than the 250 ms
    // a call may start after the write that stamped it: a database throttled or slow to
    // sync. The deadline counts from the stamp, so the calls still start; counted from the
    // queueing, every take was stale on arrival and dispatch took the same payments again
    // and again, paying none.
    let stack = Stack::on(backend, &[]);
    let worker = stack.worker(|c| c.write_linger = ms(400));
    let sent = payments(200);
    worker.send(&sent, 50);
    worker.wait_processed(sent.len(), SETTLE);
    stack.assert_settled(&worker, &sent);
}
