//! What the forwarder puts on the wire, seen by a stand-in worker that records every
//! `POST /intake` and answers with a chosen status: the lines carry the client's id,
//! the amount in cents and the accept time; a 400 (a malformed batch, i.e. a bug) drops
//! the batch, counted, instead of retrying it forever. A worker whose intake fails is
//! tried after the other for a while, and still when the other fails too.

mod common;

use common::{payment_body, Lb, Listen};
use lb::config as lb_env;
use payment::intake::{self, Accepted};
use payment::{Cents, Millis, Uuid};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::wait_for;

/// A stand-in worker on a loopback port: answers every request with its status (which
/// the test may change) and keeps the bodies of the `POST /intake` requests it got.
struct StandIn {
    addr: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    status: Arc<AtomicU16>,
}

impl StandIn {
    fn start(status: u16) -> StandIn {
        let listener = TcpListener::bind(testkit::free_addr()).expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address").to_string();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let status = Arc::new(AtomicU16::new(status));
        let answering = status.clone();
        // Ends with the test process; serves one connection at a time, as the forwarder uses one.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                while let Some((path, body)) = read_request(&mut reader) {
                    if path == "/intake" {
                        seen.lock().expect("bodies lock").push(body);
                    }
                    let status = answering.load(Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n{{\"error\":\"refused\"}}"
                    );
                    if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        });
        StandIn {
            addr,
            bodies,
            status,
        }
    }

    fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn listen(&self) -> Listen {
        Listen::Tcp(self.addr.clone())
    }

    fn batches(&self) -> Vec<Vec<Accepted>> {
        let bodies = self.bodies.lock().expect("bodies lock");
        bodies
            .iter()
            .map(|b| intake::decode(b).expect("intake lines the api can read"))
            .collect()
    }
}

/// One request from a keep-alive connection: (path, body), or None when it closed.
fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let path = line.split(' ').nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok().filter(|n| *n > 0)?;
        if header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

#[test]
fn intake_lines_carry_id_cents_and_accept_time() {
    let worker = StandIn::start(200);
    let lb = Lb::start(&[&Listen::Tcp(worker.addr.clone())], &[]);
    let id = Uuid::new_v4();
    let before = Millis::now();
    assert_eq!(lb.post(&payment_body(id, "1234.5")).status, 202);
    let after = Millis::now();
    wait_for("the payment forwarded", Duration::from_secs(10), || {
        lb.metric("lb_payments_forwarded_total") == 1
    });

    let batches = worker.batches();
    assert_eq!(batches.len(), 1, "one batch, sent once");
    let [sent] = batches[0][..] else {
        panic!("one payment in the batch: {:?}", batches[0])
    };
    assert_eq!(sent.payment.correlation_id, id);
    assert_eq!(sent.payment.amount, Cents(123_450));
    assert!(
        before <= sent.accepted_at && sent.accepted_at <= after,
        "accepted at {:?}",
        sent.accepted_at
    );
}

#[test]
fn a_batch_the_worker_calls_malformed_is_dropped_and_counted() {
    let worker = StandIn::start(400);
    let lb = Lb::start(&[&Listen::Tcp(worker.addr.clone())], &[]);
    assert_eq!(lb.pay(), 202);
    wait_for("the refused batch dropped", Duration::from_secs(10), || {
        lb.metric("lb_payments_dropped_total") == 1
    });
    assert_eq!(
        worker.batches().len(),
        1,
        "a refused batch is not sent again"
    );
    assert_eq!(lb.metric("lb_forward_retries_total"), 0);
    assert_eq!(lb.metric("lb_payments_forwarded_total"), 0);
    assert_eq!(lb.metric("lb_queue_depth"), 0);
}

#[test]
fn a_failing_worker_is_tried_last_for_a_while_and_still_when_the_other_fails() {
    let (first, second) = (StandIn::start(503), StandIn::start(200));
    let lb = Lb::start(
        &[&first.listen(), &second.listen()],
        &[(lb_env::LB_AVOID_MS, "600000")],
    );
    // One payment at a time: each one a batch of its own, the first tried on `first`.
    for forwarded in 1..=10 {
        assert_eq!(lb.pay(), 202);
        wait_for("the payment forwarded", Duration::from_secs(10), || {
            lb.metric("lb_payments_forwarded_total") == forwarded
        });
    }
    assert_eq!(
        first.batches().len(),
        1,
        "the worker that failed was not tried again while the other took intake"
    );
    assert_eq!(second.batches().len(), 10);

    // The other one fails too and the first one is back: the batch still gets through.
    second.answer_with(503);
    first.answer_with(200);
    assert_eq!(lb.pay(), 202);
    wait_for("the payment forwarded", Duration::from_secs(10), || {
        lb.metric("lb_payments_forwarded_total") == 11
    });
    assert_eq!(first.batches().len(), 2);
    assert_eq!(second.batches().len(), 11, "tried first, and failed");
    assert_eq!(lb.metric("lb_queue_depth"), 0);
}
