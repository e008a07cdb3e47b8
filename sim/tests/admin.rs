//! The `/admin/` endpoints over HTTP: the token on every route, token change, the summary
//! (inclusive window, exact fee), delay/failure answers, purge, the stats counters and the
//! list of stored payments (id, requestedAt, amount).

mod common;

use common::{assert_json_error, TestSim, AT};
use payment::Uuid;
use serde_json::json;

/// Every admin route with a body it would accept.
const ROUTES: [(&str, &str, &str); 7] = [
    ("GET", "/admin/payments-summary", ""),
    ("PUT", "/admin/configurations/delay", r#"{"delay":0}"#),
    (
        "PUT",
        "/admin/configurations/failure",
        r#"{"failure":false}"#,
    ),
    ("POST", "/admin/purge-payments", ""),
    ("GET", "/admin/stats", ""),
    ("GET", "/admin/payments", ""),
    (
        "PUT",
        "/admin/configurations/token",
        r#"{"token":"test-token"}"#,
    ),
];

#[test]
fn every_admin_route_wants_the_token() {
    let sim = TestSim::start();
    for (method, path, body) in ROUTES {
        let without =
            testkit::http::request(&sim.addr, method, path, &[], body.as_bytes()).expect("request");
        assert_json_error(&without, 401);
        assert_json_error(&sim.admin_as("123", method, path, body), 401);
        let with = sim.admin(method, path, body);
        assert!(
            with.status == 200 || with.status == 204,
            "{method} {path}: {} {}",
            with.status,
            with.body
        );
    }
    assert_json_error(&sim.admin_as("wrong", "GET", "/admin/nope", ""), 401);
    assert_json_error(&sim.admin("GET", "/admin/nope", ""), 404);
    assert_json_error(&sim.admin("POST", "/admin/stats", ""), 405);
    assert_json_error(&sim.admin("DELETE", "/admin/payments", ""), 405);
    assert_json_error(&sim.admin("GET", "/admin/configurations/delay", ""), 405);
    assert_json_error(&sim.admin("GET", "/admin/purge-payments", ""), 405);
}

#[test]
fn the_initial_token_is_123_and_a_new_one_replaces_it() {
    let sim = TestSim::start_with(&[], &[(sim::config::SIM_TOKEN, "123")]);
    let r = sim.admin_as(
        "123",
        "PUT",
        "/admin/configurations/token",
        r#"{"token":"fresh"}"#,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_json_error(&sim.admin_as("123", "GET", "/admin/stats", ""), 401);
    assert_eq!(sim.admin_as("fresh", "GET", "/admin/stats", "").status, 200);
    // A bad body changes nothing.
    assert_json_error(
        &sim.admin_as(
            "fresh",
            "PUT",
            "/admin/configurations/token",
            r#"{"token":""}"#,
        ),
        400,
    );
    assert_json_error(
        &sim.admin_as("fresh", "PUT", "/admin/configurations/token", "{}"),
        400,
    );
    assert_eq!(sim.admin_as("fresh", "GET", "/admin/stats", "").status, 200);
}

#[test]
fn the_summary_window_is_inclusive_and_the_fee_exact() {
    let sim = TestSim::start_with(&["--sim-fee", "0.15"], &[]);
    let times = [
        "2025-07-10T12:00:00.000Z",
        "2025-07-10T12:00:00.001Z",
        "2025-07-10T12:00:00.002Z",
    ];
    for (time, amount) in times.iter().zip(["19.90", "10", "0.1"]) {
        assert_eq!(sim.pay(&Uuid::new_v4(), amount, time).status, 200);
    }
    let check = |query: &str, requests: i64, amount: &str, fee: &str| {
        let r = sim.admin("GET", &format!("/admin/payments-summary{query}"), "");
        assert_eq!(r.status, 200, "{}", r.body);
        let expected = format!(
            r#"{{"totalRequests":{requests},"totalAmount":{amount},"totalFee":{fee},"feePerTransaction":0.15}}"#
        );
        assert_eq!(r.body, expected, "{query}");
    };
    check("", 3, "30.00", "4.50");
    check(
        &format!("?from={}&to={}", times[0], times[1]),
        2,
        "29.90",
        "4.485",
    );
    check(
        &format!("?from={}&to={}", times[1], times[1]),
        1,
        "10.00",
        "1.50",
    );
    check(&format!("?from={}", times[1]), 2, "10.10", "1.515");
    check(&format!("?to={}", times[0]), 1, "19.90", "2.985");
    check("?from=2025-07-10T12%3A00%3A00.003Z", 0, "0.00", "0.00");
    assert_json_error(
        &sim.admin("GET", "/admin/payments-summary?from=yesterday", ""),
        400,
    );
}

#[test]
fn delay_and_failure_answer_what_was_and_what_is() {
    let sim = TestSim::start();
    let put = |path: &str, body: &str| sim.admin("PUT", path, body);
    let delay = put("/admin/configurations/delay", r#"{"delay":250}"#);
    assert_eq!(
        delay.json(),
        json!({"config": "delay", "was": 0, "is": 250})
    );
    let delay = put("/admin/configurations/delay", r#"{"delay":0}"#);
    assert_eq!(
        delay.json(),
        json!({"config": "delay", "was": 250, "is": 0})
    );
    let failure = put("/admin/configurations/failure", r#"{"failure":true}"#);
    assert_eq!(
        failure.json(),
        json!({"config": "failure", "was": false, "is": true})
    );

    // Bad bodies are refused and change nothing.
    assert_json_error(&put("/admin/configurations/delay", r#"{"delay":-1}"#), 400);
    assert_json_error(
        &put("/admin/configurations/failure", r#"{"failure":"yes"}"#),
        400,
    );
    let failure = put("/admin/configurations/failure", r#"{"failure":false}"#);
    assert_eq!(
        failure.json(),
        json!({"config": "failure", "was": true, "is": false})
    );
    let delay = put("/admin/configurations/delay", r#"{"delay":0}"#);
    assert_eq!(delay.json()["was"], 0);
}

#[test]
fn purge_forgets_payments_but_not_the_counters() {
    let sim = TestSim::start();
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    for id in &ids {
        assert_eq!(sim.pay(id, "10", AT).status, 200);
    }
    let r = sim.admin("POST", "/admin/purge-payments", "");
    assert_eq!(r.json(), json!({"message": "All payments purged."}));
    assert_eq!(sim.summary("")["totalRequests"], 0);
    assert_eq!(sim.payment(&ids[0]).status, 404);
    assert_eq!(sim.stats()["paymentsStored"], 2);
    // A purged id is new again.
    assert_eq!(sim.pay(&ids[0], "10", AT).status, 200);
}

#[test]
fn the_stored_payments_are_listed_in_one_call_with_their_time_and_amount() {
    let sim = TestSim::start();
    let list = |sim: &TestSim| {
        let r = sim.admin("GET", "/admin/payments", "");
        assert_eq!(r.status, 200, "{}", r.body);
        r
    };
    assert_eq!(list(&sim).json(), json!({"payments": []}));
    // (id, amount sent, requestedAt sent, amount stored, requestedAt stored): the amount
    // rounded to cents, the time to the millisecond in UTC, as the summary counts them.
    let mut stored = [
        (Uuid::new_v4(), "19.90", AT, "19.90", AT),
        (
            Uuid::new_v4(),
            "10",
            "2025-07-10T12:00:00.001Z",
            "10.00",
            "2025-07-10T12:00:00.001Z",
        ),
        (
            Uuid::new_v4(),
            "0.125",
            "2025-07-10T14:00:00.5+02:00",
            "0.13",
            "2025-07-10T12:00:00.500Z",
        ),
    ];
    for (id, amount, at, _, _) in &stored {
        assert_eq!(sim.pay(id, amount, at).status, 200);
    }
    // Neither a duplicate nor a failed payment is listed.
    assert_eq!(sim.pay(&stored[0].0, "1", AT).status, 422);
    sim.set_failure(true);
    assert_json_error(&sim.pay(&Uuid::new_v4(), "10", AT), 500);

    stored.sort_by_key(|(id, ..)| *id);
    let r = list(&sim);
    let expected: Vec<String> = stored
        .iter()
        .map(|(id, _, _, amount, at)| {
            format!(r#"{{"correlationId":"{id}","requestedAt":"{at}","amount":{amount}}}"#)
        })
        .collect();
    // The body itself: amounts with their two places (19.90, not 19.9).
    assert_eq!(
        r.body,
        format!(r#"{{"payments":[{}]}}"#, expected.join(","))
    );
    let payments = r.json()["payments"].as_array().cloned().expect("a list");
    assert_eq!(payments.len(), 3);
    for (p, (id, _, _, amount, at)) in payments.iter().zip(&stored) {
        assert_eq!(p["correlationId"], id.to_string());
        assert_eq!(p["requestedAt"], *at);
        assert_eq!(p["amount"].as_f64(), amount.parse::<f64>().ok());
    }
    // The same payments as GET /payments/{id} shows them.
    for (id, _, _, amount, at) in &stored {
        let one = sim.payment(id).json();
        assert_eq!(one["requestedAt"], *at);
        assert_eq!(one["amount"].as_f64(), amount.parse::<f64>().ok());
    }

    sim.admin("POST", "/admin/purge-payments", "");
    assert_eq!(list(&sim).json(), json!({"payments": []}));
}

#[test]
fn stats_count_since_start() {
    let sim = TestSim::start();
    let zero = json!({
        "paymentsStored": 0, "payments500": 0, "payments422": 0, "payments429": 0,
        "healthAnswered": 0, "health429": 0, "paymentsRunning": 0, "paymentsWaiting": 0,
    });
    assert_eq!(sim.stats(), zero);
    let id = Uuid::new_v4();
    sim.pay(&id, "10", AT);
    sim.pay(&id, "10", AT);
    sim.set_failure(true);
    sim.pay(&Uuid::new_v4(), "10", AT);
    assert_eq!(
        testkit::http::get(&sim.addr, "/payments/service-health").status,
        200
    );
    let stats = sim.stats();
    for (name, n) in [
        ("paymentsStored", 1),
        ("payments422", 1),
        ("payments500", 1),
        ("healthAnswered", 1),
    ] {
        assert_eq!(stats[name], n, "{name}: {stats}");
    }
}
