//! The worker's HTTP surface with healthy processors: intake, summary, purge, metrics,
//! errors, and the Unix-socket listener.

mod common;

use api::config::Listen;
use common::{on_both, payments, window, Backend, Stack, Totals};
use payment::{Cents, Millis};
use std::io::{Read, Write};
use std::time::Duration;
use testkit::http;

on_both!(
    healthy_processors_get_everything_on_the_default_exactly_once,
    summary_windows_and_purge,
);

fn healthy_processors_get_everything_on_the_default_exactly_once(backend: Backend) {
    let stack = Stack::on(backend, &[]);
    let worker = stack.worker(|_| {});
    let sent = payments(600);
    worker.send(&sent, 100);
    worker.wait_processed(sent.len(), Duration::from_secs(30));
    stack.assert_settled(&worker, &sent);
    assert_eq!(
        stack.fallback.summary("").requests,
        0,
        "nothing goes to the fallback while the default is fine"
    );
    assert_eq!(stack.default.stat("payments422"), 0);

    // A re-sent batch is recorded once: nothing new, nothing sent again.
    let again = worker.intake(&sent[..100]);
    assert_eq!(
        (again.status, again.json()["recorded"].as_i64()),
        (200, Some(0))
    );
    assert_eq!(
        worker.metric(r#"api_processed_total{processor="default"}"#),
        600.0
    );
    assert_eq!(worker.metric("api_pending_payments"), 0.0);
    stack.assert_settled(&worker, &sent);
}

fn summary_windows_and_purge(backend: Backend) {
    let stack = Stack::on(backend, &[]);
    let worker = stack.worker(|_| {});
    let before = Millis::now();
    let sent = payments(50);
    worker.send(&sent, 50);
    worker.wait_processed(50, Duration::from_secs(20));
    let after = Millis::now();

    let all = worker.summary(&window(Millis(before.0 - 1000), Millis(after.0 + 1000)));
    assert_eq!(all[0].requests, 50);
    assert_eq!(
        all,
        stack.sims_summary(&window(Millis(before.0 - 1000), Millis(after.0 + 1000)))
    );
    let earlier = worker.summary(&window(Millis(before.0 - 60_000), Millis(before.0 - 1000)));
    assert_eq!(earlier, [Totals::default(); 2]);
    let open_ended = worker.summary(&format!("?from={}", Millis(before.0 - 1000)));
    assert_eq!(open_ended, all);

    let purged = http::post(&worker.addr, "/purge-payments", "");
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert_eq!(
        worker.summary(""),
        [Totals {
            requests: 0,
            amount: Cents(0)
        }; 2]
    );
}

#[test]
fn bad_input_gets_a_json_error_and_changes_nothing() {
    let stack = Stack::start(&[]);
    let worker = stack.worker(|_| {});
    let good = payments(3);
    let mut body = Vec::new();
    good.iter()
        .for_each(|a| payment::intake::encode(a, &mut body));
    body.extend_from_slice(b"not-a-uuid 1990 1\n");
    let refused =
        http::request(&worker.addr, "POST", "/intake", &[], &body).expect("intake answers");
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["error"], "bad_intake");
    assert_eq!(
        worker.metric("api_pending_payments"),
        0.0,
        "no line of a refused batch is recorded"
    );
    assert_eq!(worker.metric("api_recorded_total"), 0.0);

    for query in [
        "?from=yesterday",
        "?to=2025-13-01T00:00:00Z",
        "?since=2025-07-10T12:34:56.000Z",
        "?to=%zz",
    ] {
        let answer = http::get(&worker.addr, &format!("/payments-summary{query}"));
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert_eq!(answer.json()["error"], "bad_query", "{query}");
    }
    let unknown = http::get(&worker.addr, "/payments");
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let wrong = http::get(&worker.addr, "/intake");
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(
        http::post(&worker.addr, "/payments-summary", "").status,
        405
    );
    assert_eq!(stack.sims_total(), 0);
}

/// An error is answered only after the request body was read: a server that answers and
/// closes with the body still arriving makes the kernel reset the connection, and the
/// client sees a broken pipe instead of the answer (it did, for bodies of a few MB).
#[test]
fn errors_reach_a_client_still_sending_its_body() {
    let stack = Stack::start(&[]);
    let worker = stack.worker(|_| {});
    let big = vec![b'x'; 4 * 1024 * 1024];
    for (method, path, status, kind) in [
        ("POST", "/payments", 404, "not_found"),
        ("POST", "/metrics", 405, "method_not_allowed"),
        ("PUT", "/intake", 405, "method_not_allowed"),
        // Beyond one batch: refused as too large, after the body was read to its end.
        ("POST", "/intake", 413, "body_too_large"),
        ("POST", "/purge-payments", 413, "body_too_large"),
    ] {
        let answer = http::request(&worker.addr, method, path, &[], &big)
            .unwrap_or_else(|e| panic!("{method} {path} with a 4 MiB body: {e}"));
        assert_eq!(
            (answer.status, answer.json()["error"].as_str()),
            (status, Some(kind)),
            "{method} {path}"
        );
    }
    assert_eq!(worker.metric("api_pending_payments"), 0.0);
}

#[test]
fn listens_on_a_unix_socket() {
    let stack = Stack::start(&[]);
    // In a directory that does not exist yet: the worker creates it.
    let socket = stack.dir.path().join("run").join("api.sock");
    let _worker = stack.worker(|c| c.listen = Listen::Unix(socket.clone()));
    let mut stream =
        std::os::unix::net::UnixStream::connect(&socket).expect("connect to the socket");
    stream
        .write_all(b"GET /payments-summary HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        .expect("write the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(r#""default":{"totalRequests":0"#),
        "{answer}"
    );
}

#[test]
fn a_full_dispatch_queue_refuses_intake_and_records_nothing() {
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    let worker = stack.worker(|c| c.dispatch_queue_max = 10);
    let sent = payments(20);
    worker.send(&sent[..10], 10);
    let refused = worker.intake(&sent[10..]);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"], "queue_full", "{}", refused.body);
    assert_eq!(
        worker.metric("api_pending_payments"),
        10.0,
        "a refused batch is not recorded"
    );
    assert_eq!(worker.metric("api_intake_refused_total"), 1.0);

    // Once the queue drains, the same batch is taken.
    stack.default.set_failure(false);
    worker.wait_processed(10, Duration::from_secs(20));
    worker.send(&sent[10..], 10);
    worker.wait_processed(sent.len(), Duration::from_secs(20));
    stack.assert_settled(&worker, &sent);
}

#[test]
fn routes_without_a_body_refuse_one_and_do_nothing() {
    let stack = Stack::start(&[]);
    let worker = stack.worker(|_| {});
    let sent = payments(5);
    worker.send(&sent, 5);
    worker.wait_processed(5, Duration::from_secs(20));
    let big = vec![b'x'; 1000];
    let purge = http::request(&worker.addr, "POST", "/purge-payments", &[], &big).unwrap();
    assert_eq!(purge.status, 413, "{}", purge.body);
    assert_eq!(worker.processed(), 5, "a purge with a body purged");
    // An empty JSON object is tolerated.
    let purge = http::request(&worker.addr, "POST", "/purge-payments", &[], b"{}").unwrap();
    assert_eq!(purge.status, 200, "{}", purge.body);
    assert_eq!(worker.processed(), 0);
}
