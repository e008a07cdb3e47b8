//! What every api test needs: two simulators (default 5 %, fallback 15 %), api workers on
//! one database (a SQLite file in a temporary directory, or a database of its own on the
//! test binary's PostgreSQL server, `testkit::postgres`), and the calls a user of the
//! stack makes, all over HTTP on 127.0.0.1. A worker runs inside the test process unless
//! the test signals or kills it; run `cargo build -p sim -p api --bins` first.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use api::config::{self as knobs, Config, Listen};
use payment::intake::{self, Accepted};
use payment::{Cents, Millis, Payment, Processor, Uuid};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use testkit::postgres::PgServer;
use testkit::{free_addr, http, wait_for, wait_listening, Service};

pub(crate) use testkit::{on_both, Backend};

pub(crate) use testkit::processors::{Sim, Stored, Totals};

/// One payment as our database holds it (what `assert_settled` compares with the
/// processors').
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OurRow {
    pub amount: Cents,
    /// `pending` or `processed`.
    pub status: String,
    /// The processor of the last attempt (`None` before the first).
    pub processor: Option<Processor>,
    /// The `requestedAt` sent with that attempt.
    pub requested_at: Option<Millis>,
}

/// The one read of our rows the tests make. The storage crate has no read of single
/// payments (only totals), so the tests read the table directly, read-only, as a person at
/// the `sqlite3` or `psql` prompt would: on SQLite through rusqlite, on PostgreSQL through
/// `psql` (`testkit::postgres`), which the tests already use to disturb the database.
const OUR_ROWS: &str =
    "SELECT correlation_id, amount, status, processor, requested_at FROM payments";

/// Two simulators and a database; workers are started on demand.
pub(crate) struct Stack {
    pub default: Sim,
    pub fallback: Sim,
    pub dir: tempfile::TempDir,
    /// The workers' `DATABASE_URL` on PostgreSQL; `None`: the SQLite file in `dir`.
    pub database_url: Option<String>,
    /// Keeps the PostgreSQL server up while the stack is.
    pub server: Option<Arc<PgServer>>,
}

impl Stack {
    /// On SQLite; `sim_env` is given to both simulators.
    pub(crate) fn start(sim_env: &[(&str, &str)]) -> Stack {
        Stack::on(Backend::Sqlite, sim_env)
    }

    /// On `backend` (PostgreSQL: a new database on this test binary's shared server).
    pub(crate) fn on(backend: Backend, sim_env: &[(&str, &str)]) -> Stack {
        match backend {
            Backend::Sqlite => Stack::with(None, sim_env),
            Backend::Postgres => Stack::with(Some(testkit::postgres::server()), sim_env),
        }
    }

    /// On a new database of `server` (e.g. a dedicated one, for a test that disturbs it).
    pub(crate) fn on_server(server: Arc<PgServer>, sim_env: &[(&str, &str)]) -> Stack {
        Stack::with(Some(server), sim_env)
    }

    fn with(server: Option<Arc<PgServer>>, sim_env: &[(&str, &str)]) -> Stack {
        Stack {
            default: Sim::start("0.05", sim_env),
            fallback: Sim::start("0.15", sim_env),
            dir: tempfile::tempdir().expect("a temporary directory"),
            database_url: server.as_ref().map(|server| server.create_database()),
            server,
        }
    }

    pub(crate) fn db(&self) -> String {
        self.dir.path().join("payments.db").display().to_string()
    }

    pub(crate) fn sim(&self, processor: Processor) -> &Sim {
        match processor {
            Processor::Default => &self.default,
            Processor::Fallback => &self.fallback,
        }
    }

    /// The configuration of a worker on this stack: the defaults, fast recovery knobs for
    /// tests, then `tweak`.
    pub(crate) fn config(&self, tweak: impl FnOnce(&mut Config)) -> Config {
        let mut config: Config =
            service::config::from_flags("api", &[]).expect("the default api configuration");
        config.listen = Listen::Tcp(free_addr());
        config.database_path = self.db().into();
        config.database_url = self.database_url.clone();
        config.default_url = self.default.url();
        config.fallback_url = self.fallback.url();
        config.heartbeat = Duration::from_millis(200);
        config.worker_dead_after = Duration::from_millis(1000);
        config.orphan_scan = Duration::from_millis(200);
        tweak(&mut config);
        config
    }

    /// An api worker inside this test process (see [`Stack::config`] for `tweak`).
    pub(crate) fn worker(&self, tweak: impl FnOnce(&mut Config)) -> Worker {
        Worker::in_process(self.config(tweak))
    }

    /// An api worker process, for a test that signals or kills it.
    pub(crate) fn worker_process(&self, tweak: impl FnOnce(&mut Config)) -> Worker {
        Worker::process(self.config(tweak))
    }

    /// Both simulators' admin summaries for `query`.
    pub(crate) fn sims_summary(&self, query: &str) -> [Totals; 2] {
        [self.default.summary(query), self.fallback.summary(query)]
    }

    /// Payments stored by the two simulators together.
    pub(crate) fn sims_total(&self) -> i64 {
        self.sims_summary("").iter().map(|t| t.requests).sum()
    }

    /// The end state every scenario must reach: our summary equals the simulators' per
    /// processor, in count and amount, and together they hold each payment exactly once;
    /// then, payment by payment (what no total shows), see [`Stack::assert_each_payment`].
    pub(crate) fn assert_settled(&self, worker: &Worker, sent: &[Accepted]) {
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
        self.assert_each_payment(sent);
    }

    /// Payment by payment: each of `sent` is stored by exactly one processor, with its
    /// amount; the processors hold no other payment; and our row of it is `processed` at
    /// that processor with the very `requestedAt` and amount the processor stored (a
    /// payment stored with another `requestedAt` than ours changes no total, but moves it
    /// between an audit's windows).
    pub(crate) fn assert_each_payment(&self, sent: &[Accepted]) {
        let stored = Processor::ALL.map(|p| self.sim(p).payments());
        let ours = self.our_rows();
        let mut problems = Vec::new();
        for accepted in sent {
            let id = accepted.payment.correlation_id;
            let at: Vec<(Processor, Stored)> = Processor::ALL
                .into_iter()
                .filter_map(|p| stored[p.index()].get(&id).map(|s| (p, *s)))
                .collect();
            let (processor, theirs) = match at.as_slice() {
                [one] => *one,
                [] => {
                    problems.push(format!("{id}: stored by no processor"));
                    continue;
                }
                _ => {
                    problems.push(format!("{id}: stored by both processors"));
                    continue;
                }
            };
            if theirs.amount != accepted.payment.amount {
                problems.push(format!(
                    "{id}: sent {} but {processor} stored {}",
                    accepted.payment.amount, theirs.amount
                ));
            }
            let Some(row) = ours.get(&id) else {
                problems.push(format!("{id}: stored by {processor}, not in our database"));
                continue;
            };
            if row.status != "processed" || row.processor != Some(processor) {
                problems.push(format!(
                    "{id}: stored by {processor}, ours {} at {}",
                    row.status,
                    row.processor.map_or("no processor", Processor::name)
                ));
            }
            if row.requested_at != Some(theirs.requested_at) {
                problems.push(format!(
                    "{id}: requestedAt {} at {processor}, ours {}",
                    theirs.requested_at,
                    row.requested_at
                        .map_or_else(|| "none".to_string(), |at| at.to_string())
                ));
            }
            if row.amount != theirs.amount {
                problems.push(format!(
                    "{id}: amount {} at {processor}, ours {}",
                    theirs.amount, row.amount
                ));
            }
        }
        let sent_ids: HashSet<Uuid> = sent.iter().map(|a| a.payment.correlation_id).collect();
        for processor in Processor::ALL {
            let mut extra: Vec<&Uuid> = stored[processor.index()]
                .keys()
                .filter(|id| !sent_ids.contains(id))
                .collect();
            extra.sort();
            problems.extend(
                extra
                    .into_iter()
                    .map(|id| format!("{id}: stored by {processor}, never sent")),
            );
        }
        assert!(
            problems.is_empty(),
            "{} differences, payment by payment, over {} payments sent (first 10):\n{}",
            problems.len(),
            sent.len(),
            problems[..problems.len().min(10)].join("\n")
        );
    }

    /// Every row of our `payments` table, by id (see [`OUR_ROWS`]).
    pub(crate) fn our_rows(&self) -> HashMap<Uuid, OurRow> {
        let rows: Vec<[String; 5]> = match (&self.server, &self.database_url) {
            (Some(server), Some(url)) => {
                let name = url.rsplit('/').next().expect("a database name in the URL");
                let lines = server
                    .psql(name, OUR_ROWS)
                    .unwrap_or_else(|e| panic!("{e}"));
                lines
                    .iter()
                    .filter(|l| !l.is_empty())
                    .map(|line| {
                        let fields: Vec<&str> = line.split('|').collect();
                        let fields: [&str; 5] = fields
                            .try_into()
                            .unwrap_or_else(|_| panic!("5 fields in {line:?}"));
                        fields.map(str::to_string)
                    })
                    .collect()
            }
            _ => {
                let db = rusqlite::Connection::open_with_flags(
                    self.db(),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open our database");
                let mut query = db.prepare(OUR_ROWS).expect("our rows");
                let text = |row: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<String> {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        other => panic!("column {i}: unexpected {other:?}"),
                    })
                };
                let rows = query
                    .query_map([], |row| {
                        Ok([
                            text(row, 0)?,
                            text(row, 1)?,
                            text(row, 2)?,
                            text(row, 3)?,
                            text(row, 4)?,
                        ])
                    })
                    .expect("read our rows");
                rows.map(|row| row.expect("a row")).collect()
            }
        };
        rows.into_iter()
            .map(|[id, amount, status, processor, requested_at]| {
                let id = Uuid::try_parse(&id).unwrap_or_else(|_| panic!("a bad id {id:?}"));
                let number = |text: &str| -> i64 {
                    text.parse()
                        .unwrap_or_else(|_| panic!("{id}: not a number: {text:?}"))
                };
                let row = OurRow {
                    amount: Cents(number(&amount)),
                    status,
                    processor: (!processor.is_empty()).then(|| {
                        Processor::from_name(&processor)
                            .unwrap_or_else(|| panic!("{id}: a bad processor {processor:?}"))
                    }),
                    requested_at: (!requested_at.is_empty()).then(|| Millis(number(&requested_at))),
                };
                (id, row)
            })
            .collect()
    }
}

/// One api worker, in this process or in its own.
pub(crate) struct Worker {
    /// Where it listens (`host:port`, or the socket path).
    pub addr: String,
    run: Run,
}

enum Run {
    Process(Service),
    InProcess(InProcess),
}

/// A worker on a runtime of its own, shut down (and checked to shut down cleanly) on drop.
struct InProcess {
    runtime: tokio::runtime::Runtime,
    worker: Option<api::Worker>,
}

impl InProcess {
    /// Shuts the worker down, once; the runtime lives on, with any connection still open.
    fn shutdown(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.runtime.block_on(worker.shutdown());
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Worker {
    /// Starts `config` inside this process; it answers as soon as this returns.
    pub(crate) fn in_process(config: Config) -> Worker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let socket = match &config.listen {
            Listen::Unix(path) => Some(path.display().to_string()),
            Listen::Tcp(_) => None,
        };
        let worker = runtime
            .block_on(api::Worker::start(config))
            .unwrap_or_else(|e| panic!("the api worker does not start: {e}"));
        let addr = worker.tcp_addr().map(|a| a.to_string()).or(socket);
        Worker {
            addr: addr.expect("a TCP address or a socket path"),
            run: Run::InProcess(InProcess {
                runtime,
                worker: Some(worker),
            }),
        }
    }

    /// Starts `config` as an `api` process on a free port, once it listens.
    pub(crate) fn process(mut config: Config) -> Worker {
        let addr = free_addr();
        config.listen = Listen::parse(&addr).expect("free_addr gives ip:port");
        let env = environment(&config);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let service = Service::start("api", &[], &env);
        wait_listening(&addr, Duration::from_secs(10));
        Worker {
            addr,
            run: Run::Process(service),
        }
    }

    /// Shuts down a worker running in this process, as SIGTERM does a worker process.
    pub(crate) fn shutdown(&mut self) {
        match &mut self.run {
            Run::InProcess(worker) => worker.shutdown(),
            Run::Process(_) => panic!("signal a worker process instead"),
        }
    }

    /// The process of a worker started by [`Worker::process`].
    pub(crate) fn service(&self) -> &Service {
        match &self.run {
            Run::Process(service) => service,
            Run::InProcess(_) => panic!("this worker runs inside the test process"),
        }
    }

    pub(crate) fn service_mut(&mut self) -> &mut Service {
        match &mut self.run {
            Run::Process(service) => service,
            Run::InProcess(_) => panic!("this worker runs inside the test process"),
        }
    }

    /// Posts one intake batch and returns the answer.
    pub(crate) fn intake(&self, batch: &[Accepted]) -> http::Response {
        let mut body = Vec::new();
        batch.iter().for_each(|a| intake::encode(a, &mut body));
        http::request(&self.addr, "POST", "/intake", &[], &body)
            .unwrap_or_else(|e| panic!("POST /intake to {}: {e}", self.addr))
    }

    /// Posts `payments` in batches of `batch`, each answered 200 with all of them new.
    pub(crate) fn send(&self, payments: &[Accepted], batch: usize) {
        for chunk in payments.chunks(batch) {
            let answer = self.intake(chunk);
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.json()["recorded"], chunk.len(), "{}", answer.body);
        }
    }

    /// Our summary for `query`, per processor [default, fallback].
    pub(crate) fn summary(&self, query: &str) -> [Totals; 2] {
        let answer = http::get(&self.addr, &format!("/payments-summary{query}"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        Totals::pair(&answer.json())
    }

    pub(crate) fn processed(&self) -> i64 {
        self.summary("").iter().map(|t| t.requests).sum()
    }

    /// Waits (bounded) until `n` payments are processed in all.
    pub(crate) fn wait_processed(&self, n: usize, timeout: Duration) {
        wait_for(&format!("{n} payments processed"), timeout, || {
            self.processed() >= n as i64
        });
    }

    /// One sample of `/metrics`, e.g. `api_health_429_total{processor="default"}`.
    pub(crate) fn metric(&self, sample: &str) -> f64 {
        testkit::processors::metric(&self.addr, sample)
    }
}

/// `n` fresh payments with varied amounts (so amounts are checked, not just counts).
pub(crate) fn payments(n: usize) -> Vec<Accepted> {
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
pub(crate) fn window(from: Millis, to: Millis) -> String {
    let enc = |m: Millis| m.to_string().replace(':', "%3A");
    format!("?from={}&to={}", enc(from), enc(to))
}

/// `config` as the environment of a worker process: what the worker's configuration reads back
/// (the process adds its own suffix to `WORKER_ID` for its owner in the store).
fn environment(config: &Config) -> Vec<(&'static str, String)> {
    let ms = |d: Duration| d.as_millis().to_string();
    vec![
        (knobs::API_LISTEN, config.listen.to_string()),
        (
            knobs::DATABASE_PATH,
            config.database_path.display().to_string(),
        ),
        (
            knobs::DATABASE_URL,
            config.database_url.clone().unwrap_or_default(),
        ),
        (knobs::PROCESSOR_DEFAULT_URL, config.default_url.clone()),
        (knobs::PROCESSOR_FALLBACK_URL, config.fallback_url.clone()),
        (knobs::WORKER_ID, config.worker_id.clone()),
        (knobs::API_THREADS, config.threads.to_string()),
        (
            knobs::DISPATCH_CONCURRENCY,
            config.dispatch_concurrency.to_string(),
        ),
        (knobs::PROCESSOR_TIMEOUT_MS, ms(config.processor_timeout)),
        (knobs::PROBE_INTERVAL_MS, ms(config.probe_interval)),
        (knobs::FALLBACK_AFTER_MS, ms(config.fallback_after)),
        (knobs::PROCESSOR_LATENCY_MAX_MS, ms(config.latency_max)),
        (knobs::OVERFLOW_AFTER_MS, ms(config.overflow_after)),
        (knobs::HEALTH_WINDOW_MS, ms(config.health_window)),
        (knobs::HEALTH_READ_MS, ms(config.health_read)),
        (knobs::HEARTBEAT_MS, ms(config.heartbeat)),
        (knobs::WORKER_DEAD_AFTER_MS, ms(config.worker_dead_after)),
        (knobs::ORPHAN_SCAN_MS, ms(config.orphan_scan)),
        (knobs::SHUTDOWN_GRACE_MS, ms(config.shutdown_grace)),
        (
            knobs::WRITE_LINGER_US,
            config.write_linger.as_micros().to_string(),
        ),
        (
            knobs::DISPATCH_QUEUE_MAX,
            config.dispatch_queue_max.to_string(),
        ),
    ]
}
