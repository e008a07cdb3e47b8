//! What every sim test needs: a simulator on a free port and short-hands for its API.
#![allow(dead_code)] // each test file uses a different part of this

use payment::Uuid;
use serde_json::Value;
use sim::config::{
    SIM_HEALTH_WINDOW_SECS, SIM_LISTEN, SIM_MAX_RUNNING, SIM_MAX_WAITING, SIM_TOKEN,
};
use sim::routes::TOKEN_HEADER;
use std::time::Duration;
use testkit::http::{self, Response};
use testkit::Service;

pub(crate) const TOKEN: &str = "test-token";
pub(crate) const AT: &str = "2025-07-10T12:34:56.789Z";

pub(crate) struct TestSim {
    pub addr: String,
    _service: Service,
}

impl TestSim {
    /// A simulator with the contest's limits and token [`TOKEN`].
    pub(crate) fn start() -> TestSim {
        TestSim::start_with(&[], &[])
    }

    /// A simulator with extra flags and environment (added after the defaults, so they win).
    pub(crate) fn start_with(args: &[&str], env: &[(&str, &str)]) -> TestSim {
        let addr = testkit::free_addr();
        let mut all_env = vec![(SIM_LISTEN, addr.as_str()), (SIM_TOKEN, TOKEN)];
        all_env.extend_from_slice(env);
        let service = Service::start("sim", args, &all_env);
        testkit::wait_listening(&addr, Duration::from_secs(10));
        TestSim {
            addr,
            _service: service,
        }
    }

    /// A simulator whose concurrency bound is `running` + `waiting`.
    pub(crate) fn start_limited(running: &str, waiting: &str) -> TestSim {
        TestSim::start_with(
            &[],
            &[(SIM_MAX_RUNNING, running), (SIM_MAX_WAITING, waiting)],
        )
    }

    /// A simulator with a health window of `secs` seconds.
    pub(crate) fn start_health_window(secs: &str) -> TestSim {
        TestSim::start_with(&[], &[(SIM_HEALTH_WINDOW_SECS, secs)])
    }

    pub(crate) fn pay(&self, id: &Uuid, amount: &str, requested_at: &str) -> Response {
        http::post(
            &self.addr,
            "/payments",
            &payment_body(id, amount, requested_at),
        )
    }

    pub(crate) fn payment(&self, id: &Uuid) -> Response {
        http::get(&self.addr, &format!("/payments/{id}"))
    }

    /// An admin call with the right token.
    pub(crate) fn admin(&self, method: &str, path: &str, body: &str) -> Response {
        self.admin_as(TOKEN, method, path, body)
    }

    pub(crate) fn admin_as(&self, token: &str, method: &str, path: &str, body: &str) -> Response {
        http::request(
            &self.addr,
            method,
            path,
            &[(TOKEN_HEADER, token)],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub(crate) fn set_delay(&self, ms: u64) {
        let r = self.admin(
            "PUT",
            "/admin/configurations/delay",
            &format!(r#"{{"delay":{ms}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub(crate) fn set_failure(&self, failing: bool) {
        let r = self.admin(
            "PUT",
            "/admin/configurations/failure",
            &format!(r#"{{"failure":{failing}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub(crate) fn stats(&self) -> Value {
        let r = self.admin("GET", "/admin/stats", "");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    pub(crate) fn summary(&self, query: &str) -> Value {
        let r = self.admin("GET", &format!("/admin/payments-summary{query}"), "");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Waits until `n` payment requests hold a running slot (i.e. are in their delay).
    pub(crate) fn wait_running(&self, n: u64) {
        testkit::wait_for(
            &format!("{n} payments running"),
            Duration::from_secs(10),
            || self.stats()["paymentsRunning"] == n,
        );
    }
}

pub(crate) fn payment_body(id: &Uuid, amount: &str, requested_at: &str) -> String {
    format!(r#"{{"correlationId":"{id}","amount":{amount},"requestedAt":"{requested_at}"}}"#)
}

/// Asserts a 4xx/5xx with the JSON error body every service uses.
pub(crate) fn assert_json_error(r: &Response, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
    let body = r.json();
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{}",
        r.body
    );
}
