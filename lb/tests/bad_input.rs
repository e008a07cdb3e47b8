//! Bad input gets its 4xx with a JSON error body and changes nothing; a full queue
//! says 503 instead of accepting what the lb could not keep.

mod common;

use common::{assert_error, assert_settled, payment_body, Lb, Stack};
use lb::config as lb_env;
use payment::request::MAX_BODY_BYTES;
use payment::Uuid;
use std::io::{Read, Write};
use std::time::Duration;
use testkit::{http, wait_for, SilentAddr};

/// A chunked request (no Content-Length up front), `total` bytes in chunks of at most
/// 1 KiB; returns the raw answer.
fn send_chunked(addr: &str, method: &str, path: &str, total: usize) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the lb");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    let mut left = total;
    while left > 0 {
        let size = left.min(1024);
        left -= size;
        // The lb may answer and stop reading before the last chunks.
        if stream
            .write_all(format!("{size:x}\r\n{}\r\n", " ".repeat(size)).as_bytes())
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    raw
}

#[test]
fn bad_requests_get_their_4xx_and_change_nothing() {
    let stack = Stack::start();
    let (one, two) = (stack.tcp(), stack.tcp());
    let _workers = [stack.worker(&one), stack.worker(&two)];
    let lb = Lb::start(&[&one, &two], &[]);
    let id = Uuid::new_v4();

    let bodies: Vec<(String, u16, &str)> = vec![
        ("not json".into(), 400, "bad_json"),
        ("".into(), 400, "bad_json"),
        ("[]".into(), 400, "bad_json"),
        (format!(r#"{{"correlationId":"{id}"}}"#), 400, "bad_json"),
        (r#"{"amount":19.90}"#.into(), 400, "bad_json"),
        (
            format!(r#"{{"correlationId":"{id}","amount":19.90,"extra":1}}"#),
            400,
            "bad_json",
        ),
        (
            r#"{"correlationId":42,"amount":19.90}"#.into(),
            422,
            "bad_correlation_id",
        ),
        (payment_body(id, "\"19.90\""), 422, "bad_amount"),
        (
            r#"{"correlationId":"not-a-uuid","amount":19.90}"#.into(),
            422,
            "bad_correlation_id",
        ),
        (payment_body(id, "0"), 422, "bad_amount"),
        (payment_body(id, "-19.90"), 422, "bad_amount"),
        (payment_body(id, "19.999"), 422, "bad_amount"),
        (
            format!(
                "{}{}",
                payment_body(id, "19.90"),
                " ".repeat(MAX_BODY_BYTES)
            ),
            413,
            "body_too_large",
        ),
    ];
    for (body, status, kind) in &bodies {
        assert_error(
            &lb.post(body),
            *status,
            kind,
            &format!("POST /payments {body:.80}"),
        );
    }
    let raw = send_chunked(&lb.addr, "POST", "/payments", 4 * MAX_BODY_BYTES);
    assert!(
        raw.starts_with("HTTP/1.1 413"),
        "chunked oversized body: {raw:.200}"
    );

    let routes = [
        ("GET", "/nope", 404, "not_found", None),
        ("POST", "/payments/", 404, "not_found", None),
        ("POST", "/intake", 404, "not_found", None),
        ("GET", "/payments", 405, "method_not_allowed", Some("POST")),
        (
            "DELETE",
            "/payments-summary",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
        (
            "GET",
            "/purge-payments",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
    ];
    for (method, path, status, kind, allow) in routes {
        let answer = http::request(&lb.addr, method, path, &[], b"").expect("the lb answers");
        assert_error(&answer, status, kind, &format!("{method} {path}"));
        assert_eq!(answer.header("allow"), allow, "{method} {path}");
    }

    // A request head up to 8 KiB is read as usual; a longer one is 431.
    let filler = "x".repeat(7_000);
    let answer = http::request(&lb.addr, "GET", "/nope", &[("x-filler", &filler)], b"")
        .expect("the lb answers a 7 KB head");
    assert_error(&answer, 404, "not_found", "a 7 KB head");
    let filler = "x".repeat(9_000);
    let answer = http::request(
        &lb.addr,
        "POST",
        "/payments",
        &[("x-filler", &filler)],
        b"{}",
    )
    .expect("the lb answers a 9 KB head");
    assert_error(&answer, 431, "header_too_large", "a 9 KB head");

    // Nothing reached a worker or a processor...
    assert_eq!(lb.metric("lb_payments_accepted_total"), 0);
    assert_eq!(lb.metric("lb_payments_forwarded_total"), 0);
    assert_eq!(lb.processed(), 0);
    assert_eq!(stack.sims_total(), 0);
    // ...while the same stack does process a good payment, the one with the id used above.
    assert_eq!(lb.post(&payment_body(id, "19.90")).status, 202);
    assert_settled(&stack, &lb, 1, Duration::from_secs(20));
    assert_eq!(
        lb.metric(r#"lb_payments_rejected_total{reason="bad_amount"}"#),
        4
    );

    // The purge is proxied to a worker too.
    let purge = http::post(&lb.addr, "/purge-payments", "");
    assert!(
        (200..300).contains(&purge.status),
        "purge through the lb: {} {}",
        purge.status,
        purge.body
    );
    assert_eq!(lb.processed(), 0);
}

#[test]
fn the_summary_and_the_purge_take_no_body_and_a_refused_purge_purges_nothing() {
    let stack = Stack::start();
    let (one, two) = (stack.tcp(), stack.tcp());
    let _workers = [stack.worker(&one), stack.worker(&two)];
    let lb = Lb::start(&[&one, &two], &[]);
    assert_eq!(lb.pay_many(3), 3);
    assert_settled(&stack, &lb, 3, Duration::from_secs(20));

    let twelve_mb = vec![b'x'; 12 << 20];
    let purge = http::request(&lb.addr, "POST", "/purge-payments", &[], &twelve_mb)
        .expect("the lb answers a 12 MB purge");
    assert_error(
        &purge,
        413,
        "body_too_large",
        "POST /purge-payments with 12 MB",
    );
    let raw = send_chunked(&lb.addr, "POST", "/purge-payments", 100);
    assert!(
        raw.starts_with("HTTP/1.1 413"),
        "chunked purge of 100 bytes: {raw:.200}"
    );
    let summary = http::request(&lb.addr, "GET", "/payments-summary", &[], &[b' '; 65])
        .expect("the lb answers");
    assert_error(
        &summary,
        413,
        "body_too_large",
        "GET /payments-summary with 65 bytes",
    );
    assert_eq!(lb.processed(), 3, "no purge reached a worker");

    // A few bytes are tolerated, and dropped: the worker gets no body to wait for.
    let raw = send_chunked(&lb.addr, "GET", "/payments-summary", 2);
    assert!(
        raw.starts_with("HTTP/1.1 200"),
        "chunked summary of 2 bytes: {raw:.200}"
    );
    let purge = http::post(&lb.addr, "/purge-payments", "{}");
    assert!(
        (200..300).contains(&purge.status),
        "purge with a 2-byte body: {} {}",
        purge.status,
        purge.body
    );
    assert_eq!(lb.processed(), 0);
}

#[test]
fn a_full_queue_answers_503_and_keeps_what_it_accepted() {
    // Workers that never answer, a queue of 3 and batches of 1: one payment in flight
    // (retried forever) and three queued is all the lb may accept.
    let (silent1, silent2) = (SilentAddr::bind(), SilentAddr::bind());
    let nowhere = format!("{silent1},{silent2}");
    let lb = Lb::start(
        &[],
        &[
            (lb_env::API_ADDRS, &nowhere),
            (lb_env::LB_QUEUE_CAPACITY, "3"),
            (lb_env::LB_BATCH_MAX, "1"),
            (lb_env::LB_DRAIN_TIMEOUT_MS, "300"),
        ],
    );
    assert_eq!(lb.pay(), 202);
    wait_for(
        "the forwarder takes the first payment",
        Duration::from_secs(5),
        || lb.metric("lb_queue_depth") == 0,
    );
    let statuses: Vec<u16> = (0..3).map(|_| lb.pay()).collect();
    assert_eq!(statuses, [202, 202, 202]);
    let accepted = 4;
    let full = lb.post(&payment_body(Uuid::new_v4(), "19.90"));
    assert_error(&full, 503, "queue_full", "POST /payments with a full queue");
    assert_eq!(full.header("retry-after"), Some("1"));
    assert_eq!(lb.metric("lb_payments_accepted_total"), accepted as u64);
    assert_eq!(lb.metric("lb_queue_depth"), 3);

    // The summary cannot be proxied anywhere: a JSON 502, not a hang.
    let summary = http::get(&lb.addr, "/payments-summary");
    assert_error(
        &summary,
        502,
        "worker_unavailable",
        "summary with no worker",
    );

    // SIGTERM cannot deliver them either: the lb says so with its exit code.
    let mut service = lb.service;
    service.signal(libc::SIGTERM);
    assert_eq!(
        service.wait_exit(Duration::from_secs(10)),
        Some(1),
        "payments were left behind"
    );
}
