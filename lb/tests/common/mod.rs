//! What every lb test needs: two simulators (default 5 %, fallback 15 %), api workers on
//! one database file in a temporary directory (restartable on the same address), the lb
//! in front, and the calls a client makes, all over real sockets on 127.0.0.1.
//! Run `cargo build -p sim -p api -p lb --bins` first.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use api::config as api_env;
use lb::config as lb_env;
use payment::Uuid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::{free_addr, http, wait_for, wait_listening, Service, SilentAddr};

use testkit::processors::{Sim, Totals};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a worker listens: TCP, or a Unix socket (as in the compose deployment); its
/// `Display` is the `API_LISTEN` / `API_ADDRS` spelling.
pub(crate) use service::Address as Listen;

/// Waits until the worker on `listen` accepts connections.
fn wait(listen: &Listen) {
    match listen {
        Listen::Tcp(addr) => wait_listening(addr, START_TIMEOUT),
        Listen::Unix(path) => wait_for(
            &format!("worker on {}", path.display()),
            START_TIMEOUT,
            || std::os::unix::net::UnixStream::connect(path).is_ok(),
        ),
    }
}

/// Two simulators and a database directory; workers and the lb are started on demand.
pub(crate) struct Stack {
    pub(crate) default: Sim,
    pub(crate) fallback: Sim,
    pub(crate) dir: tempfile::TempDir,
}

impl Stack {
    pub(crate) fn start() -> Stack {
        Stack {
            default: Sim::start("0.05", &[]),
            fallback: Sim::start("0.15", &[]),
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// A fresh TCP address for a worker.
    pub(crate) fn tcp(&self) -> Listen {
        Listen::Tcp(free_addr())
    }

    /// A fresh Unix socket path for a worker, inside this stack's directory.
    pub(crate) fn unix(&self, name: &str) -> Listen {
        Listen::Unix(self.dir.path().join(format!("{name}.sock")))
    }

    /// Starts an api worker on `listen` (again after a kill: same address, same
    /// database), with the fast recovery knobs the api's own tests use.
    pub(crate) fn worker(&self, listen: &Listen) -> Service {
        if let Listen::Unix(path) = listen {
            // A killed worker leaves its socket file behind.
            let _ = std::fs::remove_file(path);
        }
        let db = self.dir.path().join("payments.db").display().to_string();
        let (spelled, default_url, fallback_url) =
            (listen.to_string(), self.default.url(), self.fallback.url());
        let env: [(&str, &str); 7] = [
            (api_env::API_LISTEN, &spelled),
            (api_env::DATABASE_PATH, &db),
            (api_env::PROCESSOR_DEFAULT_URL, &default_url),
            (api_env::PROCESSOR_FALLBACK_URL, &fallback_url),
            (api_env::HEARTBEAT_MS, "200"),
            (api_env::WORKER_DEAD_AFTER_MS, "1000"),
            (api_env::ORPHAN_SCAN_MS, "200"),
        ];
        let service = Service::start("api", &[], &env);
        wait(listen);
        service
    }

    /// Both simulators' admin summaries, [default, fallback].
    pub(crate) fn sims_summary(&self) -> [Totals; 2] {
        [self.default.summary(""), self.fallback.summary("")]
    }

    /// Payments stored by the two simulators together.
    pub(crate) fn sims_total(&self) -> i64 {
        self.sims_summary().iter().map(|t| t.requests).sum()
    }
}

/// The lb process.
pub(crate) struct Lb {
    pub(crate) service: Service,
    /// The public port.
    pub(crate) addr: String,
    /// Its journal file (`LB_JOURNAL_PATH`), in a temporary directory of its own unless
    /// given.
    pub(crate) journal: PathBuf,
    _journal_dir: Option<tempfile::TempDir>,
    /// Where its `GET /metrics` answers (`LB_METRICS_LISTEN`), off the public port: a
    /// free TCP port unless `env` says otherwise.
    pub(crate) metrics_addr: String,
}

impl Lb {
    /// Starts the lb in front of `workers`, with `env` on top, and a journal of its own.
    pub(crate) fn start(workers: &[&Listen], env: &[(&str, &str)]) -> Lb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut lb = Lb::start_on_journal(workers, env, &dir.path().join("lb.journal"));
        lb._journal_dir = Some(dir);
        lb
    }

    /// Starts the lb with one worker address that accepts and never answers (a 202 needs
    /// no worker: the payments are only queued), a short drain, and `env` on top.
    pub(crate) fn start_without_workers(nowhere: &SilentAddr, env: &[(&str, &str)]) -> Lb {
        let nowhere = nowhere.to_string();
        let mut all = vec![
            (lb_env::API_ADDRS, nowhere.as_str()),
            (lb_env::LB_DRAIN_TIMEOUT_MS, "300"),
        ];
        all.extend_from_slice(env);
        Lb::start(&[], &all)
    }

    /// Starts the lb with the journal at `journal` (the one a killed lb left).
    pub(crate) fn start_on_journal(
        workers: &[&Listen],
        env: &[(&str, &str)],
        journal: &Path,
    ) -> Lb {
        let addr = free_addr();
        let chosen = env
            .iter()
            .find(|(name, _)| *name == lb_env::LB_METRICS_LISTEN);
        let metrics_addr = chosen.map_or_else(free_addr, |(_, value)| value.to_string());
        let api_addrs = workers
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let journal_path = journal.display().to_string();
        let mut all = vec![
            (lb_env::LB_LISTEN, addr.as_str()),
            (lb_env::API_ADDRS, api_addrs.as_str()),
            (lb_env::LB_JOURNAL_PATH, journal_path.as_str()),
            (lb_env::LB_METRICS_LISTEN, metrics_addr.as_str()),
        ];
        all.extend_from_slice(env);
        let service = Service::start("lb", &[], &all);
        wait_listening(&addr, START_TIMEOUT);
        if chosen.is_none() {
            wait_listening(&metrics_addr, START_TIMEOUT);
        }
        Lb {
            service,
            addr,
            metrics_addr,
            journal: journal.to_path_buf(),
            _journal_dir: None,
        }
    }

    /// `POST /payments` with a raw body.
    pub(crate) fn post(&self, body: &str) -> http::Response {
        http::post(&self.addr, "/payments", body)
    }

    /// Posts one fresh payment of 19.90 and returns the status.
    pub(crate) fn pay(&self) -> u16 {
        self.post(&payment_body(Uuid::new_v4(), "19.90")).status
    }

    /// Posts `n` fresh payments and returns how many got 202 (panics on any other 2xx).
    pub(crate) fn pay_many(&self, n: usize) -> usize {
        (0..n)
            .map(|_| self.pay())
            .inspect(|s| assert!(*s == 202 || *s >= 400, "status {s}"))
            .filter(|s| *s == 202)
            .count()
    }

    /// Our summary through the lb, [default, fallback]; panics unless 200.
    pub(crate) fn summary(&self) -> [Totals; 2] {
        let answer = http::get(&self.addr, "/payments-summary");
        assert_eq!(
            answer.status, 200,
            "summary through the lb: {}",
            answer.body
        );
        Totals::pair(&answer.json())
    }

    /// Payments processed according to our summary.
    pub(crate) fn processed(&self) -> i64 {
        self.summary().iter().map(|t| t.requests).sum()
    }

    /// One sample of the lb's `/metrics`, e.g. `lb_payments_accepted_total`.
    pub(crate) fn metric(&self, sample: &str) -> u64 {
        testkit::processors::metric(&self.metrics_addr, sample) as u64
    }
}

/// A `POST /payments` body; `amount` is spliced in as written.
pub(crate) fn payment_body(id: Uuid, amount: &str) -> String {
    format!(r#"{{"correlationId":"{id}","amount":{amount}}}"#)
}

/// Waits (bounded) until our summary through the lb and the simulators both count
/// `n` payments, then asserts they agree per processor, in count and amount.
pub(crate) fn assert_settled(stack: &Stack, lb: &Lb, n: usize, timeout: Duration) {
    let start = Instant::now();
    wait_for(&format!("{n} payments processed"), timeout, || {
        lb.processed() >= n as i64 && stack.sims_total() >= n as i64
    });
    assert_eq!(
        lb.summary(),
        stack.sims_summary(),
        "our summary (left) differs from the processors' (right)"
    );
    assert_eq!(
        lb.processed(),
        n as i64,
        "every accepted payment processed exactly once (after {:?})",
        start.elapsed()
    );
    let amount: i64 = lb.summary().iter().map(|t| t.amount.0).sum();
    assert_eq!(amount, 1990 * n as i64, "the amounts add up");
}

/// Asserts a JSON error answer: status and `error` kind, with a message.
pub(crate) fn assert_error(answer: &http::Response, status: u16, kind: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    let json = answer.json();
    assert_eq!(json["error"], kind, "{what}: {}", answer.body);
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        answer.body
    );
}

/// One api worker's `/metrics` sample, over TCP.
pub(crate) fn worker_metric(addr: &str, sample: &str) -> f64 {
    testkit::processors::metric(addr, sample)
}
