//! The `floor` responder over HTTP: the three contest endpoints answered with no work.

use sim::config::FLOOR_LISTEN;
use std::time::Duration;
use testkit::http;
use testkit::Service;

#[test]
fn answers_the_contest_endpoints_and_nothing_else() {
    let addr = testkit::free_addr();
    let _floor = Service::start("floor", &[], &[(FLOOR_LISTEN, &addr)]);
    testkit::wait_listening(&addr, Duration::from_secs(10));

    let body = r#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.90}"#;
    assert_eq!(http::post(&addr, "/payments", body).status, 202);
    let summary = http::get(&addr, "/payments-summary?from=2025-07-10T12:00:00.000Z");
    assert_eq!(summary.status, 200);
    assert_eq!(summary.body, payment::Summary::default().to_json());
    assert_eq!(http::post(&addr, "/purge-payments", "").status, 200);
    assert_eq!(http::get(&addr, "/nope").status, 404);
    assert_eq!(http::get(&addr, "/payments").status, 405);
}
