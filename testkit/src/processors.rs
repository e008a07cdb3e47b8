//! The two payment processors as the api and lb tests see them: `sim` processes on free
//! ports, their admin API, and the summary JSON both they and we answer.

use crate::{free_addr, http, wait_listening, Service};
use payment::{Cents, Millis, Uuid};
use serde_json::Value;
use sim::config::{SIM_FEE, SIM_LISTEN};
use sim::routes::TOKEN_HEADER;
use std::collections::HashMap;
use std::time::Duration;

/// The simulators' initial admin token.
const TOKEN: &str = "123";

/// Count and exact amount of one processor's payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub requests: i64,
    pub amount: Cents,
}

impl Totals {
    /// From `{"totalRequests":N,"totalAmount":X,..}`.
    pub fn from_json(value: &Value) -> Totals {
        let requests = value["totalRequests"]
            .as_i64()
            .unwrap_or_else(|| panic!("no totalRequests in {value}"));
        let amount = value["totalAmount"]
            .as_f64()
            .unwrap_or_else(|| panic!("no totalAmount in {value}"));
        Totals {
            requests,
            amount: Cents::round_from_f64(amount),
        }
    }

    /// Our `{"default":..,"fallback":..}` summary as [default, fallback].
    pub fn pair(json: &Value) -> [Totals; 2] {
        [
            Totals::from_json(&json["default"]),
            Totals::from_json(&json["fallback"]),
        ]
    }
}

/// One payment as a processor stored it: the `requestedAt` it was sent and its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub requested_at: Millis,
    pub amount: Cents,
}

/// One simulated processor.
pub struct Sim {
    pub service: Service,
    pub addr: String,
}

impl Sim {
    /// A `sim` with fee `fee` (e.g. "0.05") and `env` on top.
    pub fn start(fee: &str, env: &[(&str, &str)]) -> Sim {
        let addr = free_addr();
        let mut all = vec![(SIM_LISTEN, addr.as_str()), (SIM_FEE, fee)];
        all.extend_from_slice(env);
        let service = Service::start("sim", &[], &all);
        wait_listening(&addr, Duration::from_secs(10));
        Sim { service, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An admin call with the initial token; panics unless it answers 2xx.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> http::Response {
        let headers = [(TOKEN_HEADER, TOKEN), ("Content-Type", "application/json")];
        let response = http::request(&self.addr, method, path, &headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path} on sim {}: {e}", self.addr));
        assert!(
            response.status < 300,
            "{method} {path}: {} {}",
            response.status,
            response.body
        );
        response
    }

    /// The processor's admin summary; `query` like `?from=..&to=..` or empty.
    pub fn summary(&self, query: &str) -> Totals {
        Totals::from_json(
            &self
                .admin("GET", &format!("/admin/payments-summary{query}"), "")
                .json(),
        )
    }

    /// Every payment the processor holds, by id, as it stored it (`GET /admin/payments`,
    /// one call).
    pub fn payments(&self) -> HashMap<Uuid, Stored> {
        let list = self.admin("GET", "/admin/payments", "").json();
        let payments = list["payments"]
            .as_array()
            .unwrap_or_else(|| panic!("no payments in {list}"));
        payments
            .iter()
            .map(|p| {
                let field = |name: &str| {
                    p.get(name)
                        .unwrap_or_else(|| panic!("no {name} in {p}"))
                        .clone()
                };
                let id = field("correlationId");
                let id = id
                    .as_str()
                    .and_then(|id| Uuid::try_parse(id).ok())
                    .unwrap_or_else(|| panic!("a bad correlationId in {p}"));
                let at = field("requestedAt");
                let requested_at = at
                    .as_str()
                    .and_then(|at| Millis::parse_iso(at).ok())
                    .unwrap_or_else(|| panic!("a bad requestedAt in {p}"));
                let amount = field("amount")
                    .as_f64()
                    .map(Cents::round_from_f64)
                    .unwrap_or_else(|| panic!("a bad amount in {p}"));
                (
                    id,
                    Stored {
                        requested_at,
                        amount,
                    },
                )
            })
            .collect()
    }

    /// The simulator's counters since start (`paymentsStored`, `payments422`, `health429`, ...).
    pub fn stats(&self) -> Value {
        self.admin("GET", "/admin/stats", "").json()
    }

    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.stats();
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    }

    pub fn set_failure(&self, failing: bool) {
        self.admin(
            "PUT",
            "/admin/configurations/failure",
            &format!(r#"{{"failure":{failing}}}"#),
        );
    }

    pub fn set_delay(&self, ms: u64) {
        self.admin(
            "PUT",
            "/admin/configurations/delay",
            &format!(r#"{{"delay":{ms}}}"#),
        );
    }
}

/// One sample of a Prometheus `/metrics` page at `addr`, e.g.
/// `api_health_429_total{processor="default"}`; panics if it is missing.
pub fn metric(addr: &str, sample: &str) -> f64 {
    let text = http::get(addr, "/metrics").body;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics of {addr}:\n{text}"))
}
