//! The worker's configuration, read once at start from the environment (or flags) under
//! the rules of `service::config`.
//!
//! Every variable name is a `pub const` here, its flag made from it (`service::flag!`), so
//! tests, `make run` and compose use the same spelling. Defaults are the right values for
//! the contest (the README's configuration table says why each one is what it is).

use service::config::{
    checked, http_url, micros_or_zero, millis, millis_or_zero, path, positive, text,
};
use service::flag;
use std::path::PathBuf;
use std::time::Duration;

/// The variable of [`Config::listen`].
pub const API_LISTEN: &str = "API_LISTEN";
/// The variable of [`Config::database_path`].
pub const DATABASE_PATH: &str = "DATABASE_PATH";
/// The variable of [`Config::database_url`].
pub const DATABASE_URL: &str = "DATABASE_URL";
/// The variable of [`Config::default_url`].
pub const PROCESSOR_DEFAULT_URL: &str = "PROCESSOR_DEFAULT_URL";
/// The variable of [`Config::fallback_url`].
pub const PROCESSOR_FALLBACK_URL: &str = "PROCESSOR_FALLBACK_URL";
/// The variable of [`Config::worker_id`].
pub const WORKER_ID: &str = "WORKER_ID";
/// The variable of [`Config::threads`].
pub const API_THREADS: &str = "API_THREADS";
/// The variable of [`Config::dispatch_concurrency`].
pub const DISPATCH_CONCURRENCY: &str = "DISPATCH_CONCURRENCY";
/// The variable of [`Config::processor_timeout`].
pub const PROCESSOR_TIMEOUT_MS: &str = "PROCESSOR_TIMEOUT_MS";
/// The variable of [`Config::late_store_max`].
pub const LATE_STORE_MAX_MS: &str = "LATE_STORE_MAX_MS";
/// The variable of [`Config::probe_interval`].
pub const PROBE_INTERVAL_MS: &str = "PROBE_INTERVAL_MS";
/// The variable of [`Config::fallback_after`].
pub const FALLBACK_AFTER_MS: &str = "FALLBACK_AFTER_MS";
/// The variable of [`Config::latency_max`].
pub const PROCESSOR_LATENCY_MAX_MS: &str = "PROCESSOR_LATENCY_MAX_MS";
/// The variable of [`Config::overflow_after`].
pub const OVERFLOW_AFTER_MS: &str = "OVERFLOW_AFTER_MS";
/// The variable of [`Config::health_window`].
pub const HEALTH_WINDOW_MS: &str = "HEALTH_WINDOW_MS";
/// The variable of [`Config::health_read`].
pub const HEALTH_READ_MS: &str = "HEALTH_READ_MS";
/// The variable of [`Config::heartbeat`].
pub const HEARTBEAT_MS: &str = "HEARTBEAT_MS";
/// The variable of [`Config::worker_dead_after`].
pub const WORKER_DEAD_AFTER_MS: &str = "WORKER_DEAD_AFTER_MS";
/// The variable of [`Config::orphan_scan`].
pub const ORPHAN_SCAN_MS: &str = "ORPHAN_SCAN_MS";
/// The variable of [`Config::shutdown_grace`].
pub const SHUTDOWN_GRACE_MS: &str = "SHUTDOWN_GRACE_MS";
/// The variable of [`Config::write_linger`].
pub const WRITE_LINGER_US: &str = "WRITE_LINGER_US";
/// The variable of [`Config::dispatch_queue_max`].
pub const DISPATCH_QUEUE_MAX: &str = "DISPATCH_QUEUE_MAX";

/// Where the worker listens: `host:port` or `unix:/path`.
pub type Listen = service::Address;

/// Everything the worker needs to know, with defaults applied.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    about = "rinha-pay payment worker: intake from the lb, SQLite, dispatch to the processors"
)]
pub struct Config {
    /// Where the worker listens: host:port or unix:/path.
    #[arg(long = flag!(API_LISTEN), env = API_LISTEN, default_value = "127.0.0.1:9101", value_parser = checked(Listen::parse))]
    pub listen: Listen,
    /// The SQLite file shared by both workers (when no DATABASE_URL is set).
    #[arg(long = flag!(DATABASE_PATH), env = DATABASE_PATH, default_value = "data/payments.db", value_parser = checked(path))]
    pub database_path: PathBuf,
    /// A postgres:// URL: the workers share that PostgreSQL database instead of the SQLite file.
    #[arg(long = flag!(DATABASE_URL), env = DATABASE_URL, value_parser = checked(database_url))]
    pub database_url: Option<String>,
    /// Base URL of the default (cheap) processor.
    #[arg(long = flag!(PROCESSOR_DEFAULT_URL), env = PROCESSOR_DEFAULT_URL, default_value = "http://127.0.0.1:8001", value_parser = checked(http_url))]
    pub default_url: String,
    /// Base URL of the fallback (expensive) processor.
    #[arg(long = flag!(PROCESSOR_FALLBACK_URL), env = PROCESSOR_FALLBACK_URL, default_value = "http://127.0.0.1:8002", value_parser = checked(http_url))]
    pub fallback_url: String,
    /// The label of this worker (default `api`). Its owner in the store is this label plus
    /// a suffix each start makes (`crate::worker`), so a restarted worker never mistakes its
    /// predecessor's pending payments for its own live ones: they become orphans and are
    /// claimed normally.
    #[arg(help = "A label for this worker; each start adds a unique suffix")]
    #[arg(long = flag!(WORKER_ID), env = WORKER_ID, default_value = "api", value_parser = checked(text))]
    pub worker_id: String,
    /// Tokio worker threads; 1 runs a single-threaded runtime.
    #[arg(long = flag!(API_THREADS), env = API_THREADS, default_value = "1", value_parser = checked(positive))]
    pub threads: usize,
    /// Processor calls in flight at once, per processor, per worker.
    #[arg(long = flag!(DISPATCH_CONCURRENCY), env = DISPATCH_CONCURRENCY, default_value = "400", value_parser = checked(positive))]
    pub dispatch_concurrency: usize,
    /// A processor call not answered within this (ms) is a timeout (the payment stays pinned).
    #[arg(long = flag!(PROCESSOR_TIMEOUT_MS), env = PROCESSOR_TIMEOUT_MS, default_value = "6000", value_parser = checked(millis))]
    pub processor_timeout: Duration,
    /// How long (ms) after it was sent a call left without an answer may still be stored by
    /// the processor (its delay plus its queueing; at least PROCESSOR_TIMEOUT_MS is used).
    /// Past it, a failing processor that says it does not hold a payment pinned to it frees it.
    #[arg(long = flag!(LATE_STORE_MAX_MS), env = LATE_STORE_MAX_MS, default_value = "10000", value_parser = checked(millis))]
    pub late_store_max: Duration,
    /// While a processor is down, one probe payment is sent to it this often (ms).
    #[arg(long = flag!(PROBE_INTERVAL_MS), env = PROBE_INTERVAL_MS, default_value = "100", value_parser = checked(millis))]
    pub probe_interval: Duration,
    /// Payments wait this long (ms) for a default that is failing or too slow, then go to the fallback.
    #[arg(long = flag!(FALLBACK_AFTER_MS), env = FALLBACK_AFTER_MS, default_value = "12000", value_parser = checked(millis_or_zero))]
    pub fallback_after: Duration,
    /// A processor slower than this (ms) gets no payment that could go elsewhere.
    #[arg(long = flag!(PROCESSOR_LATENCY_MAX_MS), env = PROCESSOR_LATENCY_MAX_MS, default_value = "1200", value_parser = checked(millis))]
    pub latency_max: Duration,
    /// Payments the default would not start within this (ms) go to the fallback.
    #[arg(long = flag!(OVERFLOW_AFTER_MS), env = OVERFLOW_AFTER_MS, default_value = "5000", value_parser = checked(millis))]
    pub overflow_after: Duration,
    /// One health call per this window (ms) per processor, shared by all workers.
    #[arg(long = flag!(HEALTH_WINDOW_MS), env = HEALTH_WINDOW_MS, default_value = "5000", value_parser = checked(millis))]
    pub health_window: Duration,
    /// How often (ms) a worker reads the shared health records (and tries for the health turn).
    #[arg(long = flag!(HEALTH_READ_MS), env = HEALTH_READ_MS, default_value = "1000", value_parser = checked(millis))]
    pub health_read: Duration,
    /// How often (ms) a worker writes its heartbeat.
    #[arg(long = flag!(HEARTBEAT_MS), env = HEARTBEAT_MS, default_value = "500", value_parser = checked(millis))]
    pub heartbeat: Duration,
    /// A worker silent this long (ms) is dead; its pending payments are claimed.
    #[arg(long = flag!(WORKER_DEAD_AFTER_MS), env = WORKER_DEAD_AFTER_MS, default_value = "3000", value_parser = checked(millis))]
    pub worker_dead_after: Duration,
    /// How often (ms) a worker looks for orphaned pending payments.
    #[arg(long = flag!(ORPHAN_SCAN_MS), env = ORPHAN_SCAN_MS, default_value = "1000", value_parser = checked(millis))]
    pub orphan_scan: Duration,
    /// Longest wait (ms) for processor calls in flight on graceful shutdown.
    #[arg(long = flag!(SHUTDOWN_GRACE_MS), env = SHUTDOWN_GRACE_MS, default_value = "3000", value_parser = checked(millis))]
    pub shutdown_grace: Duration,
    /// How long (µs) the database writer waits for more writes to share a commit; 0: none.
    #[arg(long = flag!(WRITE_LINGER_US), env = WRITE_LINGER_US, default_value = "5000", value_parser = checked(micros_or_zero))]
    pub write_linger: Duration,
    /// Most payments in this worker's dispatch queue; beyond, intake answers 503 (the lb keeps
    /// the batch) and orphans are left for a later claim.
    #[arg(long = flag!(DISPATCH_QUEUE_MAX), env = DISPATCH_QUEUE_MAX, default_value = "100000", value_parser = checked(positive))]
    pub dispatch_queue_max: usize,
}

/// A `DATABASE_URL` the store can open (empty means none: the SQLite file).
fn database_url(url: &str) -> Result<String, storage::StorageError> {
    storage::Database::from_url_or_path(Some(url), "").map(|_| url.to_string())
}

impl Config {
    /// The database the workers share: `DATABASE_URL` when set, else the SQLite file.
    pub fn database(&self) -> Result<storage::Database, storage::StorageError> {
        storage::Database::from_url_or_path(self.database_url.as_deref(), &self.database_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service::config::{from_flags, Refused};

    fn config(args: &[&str]) -> Result<Config, Refused> {
        from_flags("api", args)
    }

    #[test]
    fn defaults_and_flags() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen, Listen::Tcp("127.0.0.1:9101".into()));
        assert_eq!(c.worker_id, "api");
        assert_eq!(c.write_linger, Duration::from_millis(5));
        let c = config(&[
            "--api-listen",
            " unix:/tmp/api.sock ",
            "--processor-default-url",
            "http://p:1/",
        ])
        .unwrap();
        assert_eq!(c.listen, Listen::Unix("/tmp/api.sock".into()));
        assert_eq!(c.default_url, "http://p:1");
        assert_eq!(
            config(&["--write-linger-us", "0"]).unwrap().write_linger,
            Duration::ZERO
        );
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        for (flag, bad) in [
            ("--api-listen", "unix:"),
            ("--api-threads", "0"),
            ("--processor-default-url", "https://x"),
        ] {
            let Err(Refused::Bad(said)) = config(&[flag, bad]) else {
                panic!("{flag} {bad} should be refused");
            };
            assert!(
                said.starts_with(&format!("api: {flag}=\"{bad}\": ")),
                "{said}"
            );
        }
    }
}
