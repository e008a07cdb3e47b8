//! The worker's configuration, read once from the environment at start.
//!
//! Every variable name is a `pub const` here so tests, `make run` and compose use the
//! same spelling. Defaults are the right values for the contest (see the README `## api`
//! section for why each one is what it is).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `host:port` or `unix:/path/to/socket` the worker listens on.
pub const API_LISTEN: &str = "API_LISTEN";
/// The SQLite file shared by both workers.
pub const DATABASE_PATH: &str = "DATABASE_PATH";
/// Base URL of the default (cheap) processor.
pub const PROCESSOR_DEFAULT_URL: &str = "PROCESSOR_DEFAULT_URL";
/// Base URL of the fallback (expensive) processor.
pub const PROCESSOR_FALLBACK_URL: &str = "PROCESSOR_FALLBACK_URL";
/// A label for this worker; each process start adds a unique suffix (see [`Config::owner`]).
pub const WORKER_ID: &str = "WORKER_ID";
/// Tokio worker threads; 1 runs a single-threaded runtime.
pub const API_THREADS: &str = "API_THREADS";
/// Processor calls in flight at once, per worker.
pub const DISPATCH_CONCURRENCY: &str = "DISPATCH_CONCURRENCY";
/// A processor call not answered within this is a timeout (the payment stays pinned).
pub const PROCESSOR_TIMEOUT_MS: &str = "PROCESSOR_TIMEOUT_MS";
/// While a processor is down, one probe payment is sent to it this often.
pub const PROBE_INTERVAL_MS: &str = "PROBE_INTERVAL_MS";
/// New payments go to the fallback only once the default has been down this long.
pub const FALLBACK_AFTER_MS: &str = "FALLBACK_AFTER_MS";
/// The processors' health-check budget: one call per this window per processor, shared by all workers.
pub const HEALTH_WINDOW_MS: &str = "HEALTH_WINDOW_MS";
/// How often each worker reads the shared health records (and tries to take a health turn).
pub const HEALTH_READ_MS: &str = "HEALTH_READ_MS";
/// How often a worker writes its heartbeat.
pub const HEARTBEAT_MS: &str = "HEARTBEAT_MS";
/// A worker whose heartbeat is older than this is dead; its pending payments are claimed.
pub const WORKER_DEAD_AFTER_MS: &str = "WORKER_DEAD_AFTER_MS";
/// How often a worker looks for orphaned pending payments.
pub const ORPHAN_SCAN_MS: &str = "ORPHAN_SCAN_MS";
/// Longest wait for in-flight processor calls on graceful shutdown.
pub const SHUTDOWN_GRACE_MS: &str = "SHUTDOWN_GRACE_MS";
/// How long the database writer waits after a write for more to share its commit (0: none).
pub const WRITE_LINGER_US: &str = "WRITE_LINGER_US";
/// Most payments a worker holds in its dispatch queue; beyond, intake answers 503 (the lb
/// keeps the batch) and orphans are left for a later claim.
pub const DISPATCH_QUEUE_MAX: &str = "DISPATCH_QUEUE_MAX";

/// Where the worker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listen {
    /// `unix:/path` or `host:port` (an IP address; names are not resolved).
    pub fn parse(text: &str) -> Option<Listen> {
        match text.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Some(Listen::Unix(PathBuf::from(path))),
            Some(_) => None,
            None => text.parse().ok().map(Listen::Tcp),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}=`{value}` is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Everything the worker needs to know, with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub database_path: PathBuf,
    pub default_url: String,
    pub fallback_url: String,
    /// The storage owner of this process: `WORKER_ID` (default `api`) plus a random
    /// per-start suffix, so a restarted worker never mistakes its predecessor's pending
    /// payments for its own live ones: they become orphans and are claimed normally.
    pub owner: String,
    pub threads: usize,
    pub dispatch_concurrency: usize,
    pub processor_timeout: Duration,
    pub probe_interval: Duration,
    pub fallback_after: Duration,
    pub health_window: Duration,
    pub health_read: Duration,
    pub heartbeat: Duration,
    pub worker_dead_after: Duration,
    pub orphan_scan: Duration,
    pub shutdown_grace: Duration,
    pub write_linger: Duration,
    pub dispatch_queue_max: usize,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let listen_text = text(API_LISTEN, "127.0.0.1:9101");
        let listen = Listen::parse(&listen_text).ok_or(ConfigError::Invalid {
            name: API_LISTEN,
            value: listen_text.clone(),
            why: "expected ip:port or unix:/path",
        })?;
        let label = text(WORKER_ID, "api");
        Ok(Config {
            listen,
            database_path: PathBuf::from(text(DATABASE_PATH, "data/payments.db")),
            default_url: url(PROCESSOR_DEFAULT_URL, "http://127.0.0.1:8001")?,
            fallback_url: url(PROCESSOR_FALLBACK_URL, "http://127.0.0.1:8002")?,
            owner: format!("{label}-{}", payment::Uuid::new_v4().simple()),
            threads: number(API_THREADS, 1)? as usize,
            dispatch_concurrency: number(DISPATCH_CONCURRENCY, 256)? as usize,
            processor_timeout: millis(PROCESSOR_TIMEOUT_MS, 6000)?,
            probe_interval: millis(PROBE_INTERVAL_MS, 100)?,
            fallback_after: millis(FALLBACK_AFTER_MS, 60_000)?,
            health_window: millis(HEALTH_WINDOW_MS, 5000)?,
            health_read: millis(HEALTH_READ_MS, 1000)?,
            heartbeat: millis(HEARTBEAT_MS, 500)?,
            worker_dead_after: millis(WORKER_DEAD_AFTER_MS, 3000)?,
            orphan_scan: millis(ORPHAN_SCAN_MS, 1000)?,
            shutdown_grace: millis(SHUTDOWN_GRACE_MS, 3000)?,
            write_linger: micros_or_zero(WRITE_LINGER_US, 5000)?,
            dispatch_queue_max: number(DISPATCH_QUEUE_MAX, 100_000)? as usize,
        })
    }
}

fn text(name: &'static str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A positive integer (0 makes no sense for any of our counts or durations).
fn number(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let value = text(name, &default.to_string());
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            value,
            why: "expected a positive integer",
        }),
    }
}

fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    number(name, default).map(Duration::from_millis)
}

/// A duration where 0 means "none".
fn micros_or_zero(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    let value = text(name, &default.to_string());
    value
        .parse::<u64>()
        .map(Duration::from_micros)
        .map_err(|_| ConfigError::Invalid {
            name,
            value,
            why: "expected a whole number of microseconds (0 or more)",
        })
}

/// An `http://host:port` base URL, without a trailing slash.
fn url(name: &'static str, default: &str) -> Result<String, ConfigError> {
    let value = text(name, default);
    if !value.starts_with("http://") || value.parse::<hyper::Uri>().is_err() {
        return Err(ConfigError::Invalid {
            name,
            value,
            why: "expected http://host:port",
        });
    }
    Ok(value.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_forms() {
        assert_eq!(
            Listen::parse("127.0.0.1:9101"),
            Some(Listen::Tcp("127.0.0.1:9101".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("unix:/tmp/api.sock"),
            Some(Listen::Unix("/tmp/api.sock".into()))
        );
        assert_eq!(Listen::parse("unix:"), None);
        assert_eq!(Listen::parse("localhost"), None);
    }
}
