//! `POST /payments` and `GET /payments/{id}` over HTTP: the order of delay, failure,
//! duplicate and store; rounding; the requestedAt kept; bad bodies; the concurrency bound;
//! a client that hangs up mid-delay (`SIM_STORE_AFTER_DISCONNECT` on and off).

mod common;

use common::{assert_json_error, payment_body, TestSim, AT};
use payment::Uuid;
use sim::config::SIM_STORE_AFTER_DISCONNECT;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use testkit::http;

#[test]
fn stores_the_rounded_amount_and_our_requested_at() {
    let sim = TestSim::start();
    let id = Uuid::new_v4();
    let r = sim.pay(&id, "19.899", AT);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "payment processed successfully"})
    );

    let stored = sim.payment(&id);
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json()["correlationId"], id.to_string());
    assert!(stored.body.contains(r#""amount":19.90"#), "{}", stored.body);
    assert_eq!(stored.json()["requestedAt"], AT);

    // An offset is kept as the same instant, shown in UTC with milliseconds.
    let other = Uuid::new_v4();
    assert_eq!(
        sim.pay(&other, "0.005", "2025-07-10T14:34:56.5+02:00")
            .status,
        200
    );
    assert_eq!(
        sim.payment(&other).json()["requestedAt"],
        "2025-07-10T12:34:56.500Z"
    );
    assert!(sim.payment(&other).body.contains(r#""amount":0.01"#));
    assert_eq!(sim.stats()["paymentsStored"], 2);
}

#[test]
fn unknown_payments_are_404() {
    let sim = TestSim::start();
    assert_json_error(&sim.payment(&Uuid::new_v4()), 404);
    assert_json_error(&http::get(&sim.addr, "/payments/not-a-uuid"), 404);
}

#[test]
fn a_duplicate_is_422_and_changes_nothing() {
    let sim = TestSim::start();
    let id = Uuid::new_v4();
    assert_eq!(sim.pay(&id, "10", AT).status, 200);
    let again = sim.pay(&id, "20", "2025-07-10T13:00:00.000Z");
    assert_json_error(&again, 422);

    let stored = sim.payment(&id).json();
    assert_eq!(
        (stored["amount"].as_f64(), stored["requestedAt"].as_str()),
        (Some(10.0), Some(AT))
    );
    let all = sim.summary("");
    assert_eq!(
        (all["totalRequests"].as_i64(), all["totalAmount"].as_f64()),
        (Some(1), Some(10.0))
    );
    let stats = sim.stats();
    assert_eq!(
        (
            stats["paymentsStored"].as_u64(),
            stats["payments422"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn failure_is_500_and_stores_nothing() {
    let sim = TestSim::start();
    sim.set_failure(true);
    let id = Uuid::new_v4();
    assert_json_error(&sim.pay(&id, "10", AT), 500);
    assert_json_error(&sim.payment(&id), 404);
    assert_eq!(sim.summary("")["totalRequests"], 0);
    assert_eq!(sim.stats()["payments500"], 1);

    // Not stored means the same id is new once the processor recovers.
    sim.set_failure(false);
    assert_eq!(sim.pay(&id, "10", AT).status, 200);
    assert_eq!(sim.stats()["paymentsStored"], 1);
}

#[test]
fn bad_bodies_are_400_and_store_nothing() {
    let sim = TestSim::start();
    let id = Uuid::new_v4();
    let bodies = [
        "not json".to_string(),
        format!(r#"{{"correlationId":"{id}","amount":10}}"#),
        format!(r#"{{"correlationId":"{id}","requestedAt":"{AT}"}}"#),
        format!(r#"{{"correlationId":"nope","amount":10,"requestedAt":"{AT}"}}"#),
        format!(r#"{{"correlationId":"{id}","amount":"10","requestedAt":"{AT}"}}"#),
        format!(r#"{{"correlationId":"{id}","amount":-5,"requestedAt":"{AT}"}}"#),
        format!(r#"{{"correlationId":"{id}","amount":10,"requestedAt":"yesterday"}}"#),
        "x".repeat(20_000),
    ];
    for body in &bodies {
        // Never 422: our api reads 422 as "already processed".
        assert_json_error(&http::post(&sim.addr, "/payments", body), 400);
    }
    assert_eq!(sim.summary("")["totalRequests"], 0);
    assert_json_error(&sim.payment(&id), 404);
}

#[test]
fn failure_is_checked_after_the_delay() {
    let sim = TestSim::start();
    sim.set_delay(1500);

    // Failing when the request arrives, healthy when its delay ends: stored.
    sim.set_failure(true);
    let id = Uuid::new_v4();
    let addr = sim.addr.clone();
    let slow =
        std::thread::spawn(move || http::post(&addr, "/payments", &payment_body(&id, "10", AT)));
    sim.wait_running(1);
    sim.set_failure(false);
    let r = slow.join().expect("request thread");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(sim.payment(&id).status, 200);

    // Healthy when it arrives, failing when its delay ends: 500, nothing stored.
    let id = Uuid::new_v4();
    let addr = sim.addr.clone();
    let slow =
        std::thread::spawn(move || http::post(&addr, "/payments", &payment_body(&id, "10", AT)));
    sim.wait_running(1);
    sim.set_failure(true);
    assert_json_error(&slow.join().expect("request thread"), 500);
    assert_json_error(&sim.payment(&id), 404);
}

#[test]
fn the_duplicate_check_comes_after_the_delay() {
    let sim = TestSim::start();
    let id = Uuid::new_v4();
    assert_eq!(sim.pay(&id, "10", AT).status, 200);
    sim.set_delay(1500);
    let addr = sim.addr.clone();
    let later = "2025-07-10T13:00:00.000Z";
    let slow =
        std::thread::spawn(move || http::post(&addr, "/payments", &payment_body(&id, "20", later)));
    sim.wait_running(1);
    // Purged while the repeat sleeps: by the time it is checked, the id is new again.
    assert_eq!(sim.admin("POST", "/admin/purge-payments", "").status, 200);
    let r = slow.join().expect("request thread");
    assert_eq!(r.status, 200, "{}", r.body);
    sim.set_delay(0);
    assert_eq!(sim.payment(&id).json()["requestedAt"], later);
}

/// Sends a payment with a 1 s delay on a raw socket and hangs up while it sleeps;
/// returns its id once the request no longer runs (stored, or dropped with its connection).
fn pay_and_hang_up_mid_delay(sim: &TestSim) -> Uuid {
    sim.set_delay(1000);
    let id = Uuid::new_v4();
    let body = payment_body(&id, "10", AT);
    let mut stream = TcpStream::connect(&sim.addr).expect("connect");
    let head = format!(
        "POST /payments HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .expect("send");
    sim.wait_running(1);
    drop(stream);
    sim.wait_running(0);
    id
}

#[test]
fn a_client_hanging_up_mid_delay_does_not_cancel_the_payment() {
    // The default, and what `--sim-store-after-disconnect 1` asks for explicitly.
    for sim in [
        TestSim::start(),
        TestSim::start_with(&["--sim-store-after-disconnect", "1"], &[]),
    ] {
        let id = pay_and_hang_up_mid_delay(&sim);
        assert_eq!(
            sim.payment(&id).status,
            200,
            "the abandoned payment is stored"
        );
        assert_eq!(sim.stats()["paymentsStored"], 1);
        // The client's retry learns it was charged.
        sim.set_delay(0);
        assert_json_error(&sim.pay(&id, "10", AT), 422);
    }
}

#[test]
fn with_store_after_disconnect_off_a_client_hanging_up_mid_delay_cancels_the_payment() {
    let sim = TestSim::start_with(&[], &[(SIM_STORE_AFTER_DISCONNECT, "0")]);
    let id = pay_and_hang_up_mid_delay(&sim);
    // Past the end of the delay: still nothing stored.
    std::thread::sleep(Duration::from_millis(1200));
    assert_json_error(&sim.payment(&id), 404);
    assert_eq!(sim.stats()["paymentsStored"], 0);
    // A client that waits is answered as usual.
    let other = Uuid::new_v4();
    assert_eq!(sim.pay(&other, "10", AT).status, 200);
    assert_eq!(sim.payment(&other).status, 200);
}

#[test]
fn beyond_running_plus_waiting_is_429() {
    let sim = TestSim::start_limited("1", "1");
    sim.set_delay(1000);
    let post = |id: Uuid| {
        let addr = sim.addr.clone();
        std::thread::spawn(move || http::post(&addr, "/payments", &payment_body(&id, "10", AT)))
    };
    let running = post(Uuid::new_v4());
    sim.wait_running(1);
    let waiting = post(Uuid::new_v4());
    testkit::wait_for("one payment waiting", Duration::from_secs(10), || {
        sim.stats()["paymentsWaiting"] == 1
    });

    assert_json_error(&sim.pay(&Uuid::new_v4(), "10", AT), 429);
    assert_eq!(running.join().expect("thread").status, 200);
    assert_eq!(waiting.join().expect("thread").status, 200);
    let stats = sim.stats();
    assert_eq!(
        (
            stats["paymentsStored"].as_u64(),
            stats["payments429"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        (
            stats["paymentsRunning"].as_u64(),
            stats["paymentsWaiting"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    let sim = TestSim::start();
    let call = |method: &str, path: &str| {
        http::request(&sim.addr, method, path, &[], b"")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    };
    assert_json_error(&call("GET", "/nope"), 404);
    assert_json_error(&call("GET", "/payments/a/b"), 404);
    assert_json_error(&call("GET", "/payments-summary"), 404);
    assert_json_error(&call("GET", "/payments"), 405);
    assert_json_error(&call("POST", "/payments/service-health"), 405);
    assert_json_error(
        &call("DELETE", &format!("/payments/{}", Uuid::new_v4())),
        405,
    );
    assert_eq!(call("GET", "/payments").header("allow"), Some("POST"));
}

#[test]
fn one_connection_carries_many_requests() {
    use std::io::Read;
    let sim = TestSim::start();
    let mut stream = TcpStream::connect(&sim.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut requests = String::new();
    for _ in 0..2 {
        let body = payment_body(&Uuid::new_v4(), "10", AT);
        requests.push_str(&format!(
            "POST /payments HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    stream.write_all(requests.as_bytes()).expect("send");
    let mut received = Vec::new();
    let answered = |r: &[u8]| {
        String::from_utf8_lossy(r)
            .matches("payment processed successfully")
            .count()
    };
    for _ in 0..50 {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(_) => {} // read timeout: poll again
        }
        if answered(&received) == 2 {
            break;
        }
    }
    assert_eq!(
        answered(&received),
        2,
        "{}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(sim.stats()["paymentsStored"], 2);
}
