//! SIGTERM with a full queue: the lb refuses new payments, delivers every accepted one
//! as soon as a worker takes intake, and only then exits (0).

mod common;

use common::{payment_body, Lb, Stack};
use lb::config as lb_env;
use payment::Uuid;
use std::time::Duration;
use testkit::{http, wait_for};

#[test]
fn sigterm_delivers_the_whole_queue_before_exiting() {
    let stack = Stack::start();
    // One worker on TCP, one on a Unix socket, as compose may run them.
    let (one, two) = (stack.tcp(), stack.unix("api-2"));
    let mut workers = [stack.worker(&one), stack.worker(&two)];
    let lb = Lb::start(&[&one, &two], &[(lb_env::LB_DRAIN_TIMEOUT_MS, "20000")]);
    let mut accepted = lb.pay_many(20);
    for _ in 0..4 {
        let _ = lb.summary(); // proxied round robin, over TCP and over the Unix socket
    }

    // The workers stop; payments keep being accepted into the lb's queue.
    workers.iter_mut().for_each(|w| w.kill());
    accepted += lb.pay_many(200);
    assert_eq!(accepted, 220);
    assert!(lb.metric("lb_queue_depth") > 0);

    // SIGTERM while no worker can take the queue: new payments are refused at once...
    lb.service.signal(libc::SIGTERM);
    // (A payment posted before the signal lands is still accepted, and counted.)
    wait_for(
        "the lb refuses new payments",
        Duration::from_secs(5),
        || match lb.pay() {
            202 => {
                accepted += 1;
                false
            }
            status => status == 503,
        },
    );
    let late = lb.post(&payment_body(Uuid::new_v4(), "19.90"));
    assert_eq!(late.json()["error"], "shutting_down", "{}", late.body);

    // ...and the queue goes out once the workers are back, before the lb exits.
    let _workers = [stack.worker(&one), stack.worker(&two)];
    let mut service = lb.service;
    assert_eq!(
        service.wait_exit(Duration::from_secs(30)),
        Some(0),
        "the lb drained and exited 0"
    );

    let common::Listen::Tcp(worker) = &one else {
        unreachable!("a TCP worker")
    };
    let processed = || {
        let json = http::get(worker, "/payments-summary").json();
        json["default"]["totalRequests"].as_i64().unwrap_or(0)
            + json["fallback"]["totalRequests"].as_i64().unwrap_or(0)
    };
    wait_for(
        "every accepted payment processed",
        Duration::from_secs(30),
        || processed() >= accepted as i64,
    );
    assert_eq!(processed(), accepted as i64, "exactly once");
    assert_eq!(stack.sims_total(), accepted as i64);
}

#[test]
fn sigterm_while_the_workers_catch_up_still_delivers_everything() {
    let stack = Stack::start();
    let (one, two) = (stack.unix("api-1"), stack.unix("api-2"));
    let mut workers = [stack.worker(&one), stack.worker(&two)];
    let lb = Lb::start(&[&one, &two], &[(lb_env::LB_BATCH_MAX, "16")]);
    workers.iter_mut().for_each(|w| w.kill());
    let accepted = lb.pay_many(300);
    assert_eq!(accepted, 300);

    // The workers return and the lb is told to stop while it forwards the backlog.
    let _workers = [stack.worker(&one), stack.worker(&two)];
    let mut service = lb.service;
    service.signal(libc::SIGTERM);
    assert_eq!(
        service.wait_exit(Duration::from_secs(30)),
        Some(0),
        "the lb drained and exited 0"
    );

    wait_for(
        "every accepted payment processed",
        Duration::from_secs(30),
        || stack.sims_total() >= accepted as i64,
    );
    assert_eq!(stack.sims_total(), accepted as i64, "exactly once");
}
