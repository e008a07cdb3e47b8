//! `GET /payments/service-health` over HTTP: what it reports and its budget of one call
//! per window, two more waiting, the rest 429 with Retry-After.

mod common;

use common::{assert_json_error, TestSim};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::http::{self, Response};

#[test]
fn reports_failure_and_the_delay() {
    let sim = TestSim::start();
    sim.set_delay(250);
    sim.set_failure(true);
    let r = http::get(&sim.addr, "/payments/service-health");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"failing": true, "minResponseTime": 250})
    );
}

/// Sleeps until 50 ms into the next window of `window` (windows are aligned to the epoch).
fn sleep_to_window_start(window: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let window = window.as_millis();
    let to_next = window - now % window;
    std::thread::sleep(Duration::from_millis((to_next + 50) as u64));
}

#[test]
fn one_call_per_window_two_wait_the_rest_429() {
    let window = Duration::from_secs(1);
    let sim = TestSim::start_health_window("1");
    sleep_to_window_start(window);
    let start = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let addr = sim.addr.clone();
            std::thread::spawn(move || {
                let r = http::get(&addr, "/payments/service-health");
                (r, start.elapsed())
            })
        })
        .collect();
    let mut answers: Vec<(Response, Duration)> = calls
        .into_iter()
        .map(|c| c.join().expect("thread"))
        .collect();
    answers.sort_by_key(|(_, at)| *at);

    let refused: Vec<_> = answers.iter().filter(|(r, _)| r.status == 429).collect();
    assert_eq!(
        refused.len(),
        1,
        "exactly one of four is refused: {answers:?}"
    );
    assert_json_error(&refused[0].0, 429);
    let retry_after: u64 = refused[0]
        .0
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");

    let answered: Vec<_> = answers.iter().filter(|(r, _)| r.status == 200).collect();
    assert_eq!(answered.len(), 3, "{answers:?}");
    // The two extra calls are answered only when the next windows open: the last one
    // no earlier than two windows after the burst began in the first.
    let last = answered[2].1;
    assert!(
        last >= window + window / 2,
        "the third answer came after {last:?}: it did not wait"
    );

    let stats = sim.stats();
    assert_eq!(
        (
            stats["healthAnswered"].as_u64(),
            stats["health429"].as_u64()
        ),
        (Some(3), Some(1)),
        "{stats}"
    );

    // Once the taken windows have passed, a call is answered at once again.
    sleep_to_window_start(window);
    assert_eq!(http::get(&sim.addr, "/payments/service-health").status, 200);
}
