//! SIGTERM with a full queue: the lb refuses new payments, delivers every accepted one
//! as soon as a worker takes intake, and only then exits (0). A SIGTERM that lands while
//! the lb is still starting drains and exits 0 as well.

mod common;

use common::{payment_body, Lb, Stack};
use lb::config as lb_env;
use payment::Uuid;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use testkit::{free_addr, http, wait_for, Service, SilentAddr};

/// Starts of the lb, each stopped by a SIGTERM as soon as its port accepts a connection.
const EARLY_SIGTERM_ROUNDS: usize = 10;

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
    // Held by the lb: in its queue, or in the batch the forwarder keeps retrying (which
    // may be all of them, so the queue's depth alone could be 0).
    let held = lb.metric("lb_payments_accepted_total") - lb.metric("lb_payments_forwarded_total");
    assert!(held >= 200, "{held} payments held");

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

#[test]
fn sigterm_as_soon_as_the_port_opens_still_drains_and_exits_0() {
    // Nothing to deliver: the queue is empty, so the drain is over at once.
    let silent = SilentAddr::bind();
    let nowhere = silent.to_string();
    for round in 0..EARLY_SIGTERM_ROUNDS {
        let addr = free_addr();
        let mut lb = Service::start(
            "lb",
            &[],
            &[
                (lb_env::LB_LISTEN, &addr),
                (lb_env::API_ADDRS, &nowhere),
                (lb_env::LB_DRAIN_TIMEOUT_MS, "2000"),
                (lb_env::LB_METRICS_LISTEN, "off"),
            ],
        );
        wait_accepting(&addr);
        lb.signal(libc::SIGTERM);
        assert_eq!(
            lb.wait_exit(Duration::from_secs(10)),
            Some(0),
            "round {round}: the lb drained and exited 0 (None: killed by the signal)"
        );
    }
}

/// Returns as soon as something accepts connections on `addr`: tries again at once
/// (`wait_listening` sleeps between tries, which would let the lb finish starting).
fn wait_accepting(addr: &str) {
    let sock: SocketAddr = addr.parse().expect("ip:port");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // A connect to a port nobody listens on may connect to itself (same port as source).
        if let Ok(stream) = TcpStream::connect(sock) {
            if stream.local_addr().ok() != Some(sock) {
                return;
            }
        }
        std::thread::yield_now();
    }
    panic!("nothing listens on {addr} after 10 s");
}
