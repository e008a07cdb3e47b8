//! What every api test needs: two simulators (default 5 %, fallback 15 %), api workers on
//! one database file in a temporary directory, and the calls a user of the stack makes,
//! all over HTTP on 127.0.0.1. Run `cargo build -p sim -p api --bins` first.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use api::config as knobs;
use payment::intake::{self, Accepted};
use payment::{Cents, Millis, Payment, Processor, Uuid};
use std::time::Duration;
use testkit::{free_addr, http, wait_for, wait_listening, Service};

pub use testkit::processors::{Sim, Totals};

/// Two simulators and a database directory; workers are started on demand.
pub struct Stack {
    pub default: Sim,
    pub fallback: Sim,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// `sim_env` is given to both simulators.
    pub fn start(sim_env: &[(&str, &str)]) -> Stack {
        Stack {
            default: Sim::start("0.05", sim_env),
            fallback: Sim::start("0.15", sim_env),
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn db(&self) -> String {
        self.dir.path().join("payments.db").display().to_string()
    }

    pub fn sim(&self, processor: Processor) -> &Sim {
        match processor {
            Processor::Default => &self.default,
            Processor::Fallback => &self.fallback,
        }
    }

    /// Starts an api worker on this stack's database, with fast recovery knobs for tests
    /// and `env` on top (later entries win).
    pub fn worker(&self, env: &[(&str, &str)]) -> Worker {
        let addr = free_addr();
        let (db, default_url, fallback_url) = (self.db(), self.default.url(), self.fallback.url());
        let mut all: Vec<(&str, &str)> = vec![
            (knobs::API_LISTEN, &addr),
            (knobs::DATABASE_PATH, &db),
            (knobs::PROCESSOR_DEFAULT_URL, &default_url),
            (knobs::PROCESSOR_FALLBACK_URL, &fallback_url),
            (knobs::HEARTBEAT_MS, "200"),
            (knobs::WORKER_DEAD_AFTER_MS, "1000"),
            (knobs::ORPHAN_SCAN_MS, "200"),
        ];
        all.extend_from_slice(env);
        let service = Service::start("api", &[], &all);
        wait_listening(&addr, Duration::from_secs(10));
        Worker { service, addr }
    }

    /// Both simulators' admin summaries for `query`.
    pub fn sims_summary(&self, query: &str) -> [Totals; 2] {
        [self.default.summary(query), self.fallback.summary(query)]
    }

    /// Payments stored by the two simulators together.
    pub fn sims_total(&self) -> i64 {
        self.sims_summary("").iter().map(|t| t.requests).sum()
    }

    /// The end state every scenario must reach: our summary equals the simulators' per
    /// processor, in count and amount, and together they hold each payment exactly once.
    pub fn assert_settled(&self, worker: &Worker, sent: &[Accepted]) {
        let ours = worker.summary("");
        let theirs = self.sims_summary("");
        assert_eq!(
            ours, theirs,
            "our summary (left) differs from the processors' (right)"
        );
        let count: i64 = ours.iter().map(|t| t.requests).sum();
        let amount: i64 = ours.iter().map(|t| t.amount.0).sum();
        assert_eq!(
            count,
            sent.len() as i64,
            "every payment processed exactly once"
        );
        assert_eq!(
            Cents(amount),
            Cents(sent.iter().map(|a| a.payment.amount.0).sum())
        );
    }
}

/// One api worker process.
pub struct Worker {
    pub service: Service,
    pub addr: String,
}

impl Worker {
    /// Posts one intake batch and returns the answer.
    pub fn intake(&self, batch: &[Accepted]) -> http::Response {
        let mut body = Vec::new();
        batch.iter().for_each(|a| intake::encode(a, &mut body));
        http::request(&self.addr, "POST", "/intake", &[], &body)
            .unwrap_or_else(|e| panic!("POST /intake to {}: {e}", self.addr))
    }

    /// Posts `payments` in batches of `batch`, each answered 200 with all of them new.
    pub fn send(&self, payments: &[Accepted], batch: usize) {
        for chunk in payments.chunks(batch) {
            let answer = self.intake(chunk);
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.json()["recorded"], chunk.len(), "{}", answer.body);
        }
    }

    /// Our summary for `query`, per processor [default, fallback].
    pub fn summary(&self, query: &str) -> [Totals; 2] {
        let answer = http::get(&self.addr, &format!("/payments-summary{query}"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        Totals::pair(&answer.json())
    }

    pub fn processed(&self) -> i64 {
        self.summary("").iter().map(|t| t.requests).sum()
    }

    /// Waits (bounded) until `n` payments are processed in all.
    pub fn wait_processed(&self, n: usize, timeout: Duration) {
        wait_for(&format!("{n} payments processed"), timeout, || {
            self.processed() >= n as i64
        });
    }

    /// One sample of `/metrics`, e.g. `api_health_429_total{processor="default"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        testkit::processors::metric(&self.addr, sample)
    }
}

/// `n` fresh payments with varied amounts (so amounts are checked, not just counts).
pub fn payments(n: usize) -> Vec<Accepted> {
    let now = Millis::now();
    (0..n)
        .map(|i| Accepted {
            payment: Payment {
                correlation_id: Uuid::new_v4(),
                amount: Cents(1990 + (i % 7) as i64),
            },
            accepted_at: now,
        })
        .collect()
}

/// `?from=..&to=..` for a window, the `:` percent-encoded as a browser would.
pub fn window(from: Millis, to: Millis) -> String {
    let enc = |m: Millis| m.to_string().replace(':', "%3A");
    format!("?from={}&to={}", enc(from), enc(to))
}
