//! The lb's configuration, read once from the environment at start.
//!
//! Every variable name is a `pub const` here so tests, `make run` and compose use the
//! same spelling. Defaults are the right values for the contest: one Pingora service
//! thread (all services share 1.5 CPUs), a queue deep enough to hold a minute of the
//! contest's peak rate while both workers are down, a drain that fits inside docker's
//! 10 s stop timeout, and a cap on client connections that keeps the lb inside its
//! 100 MB compose limit whatever the clients do.

use crate::workers::{AddrError, WorkerAddr};
use std::time::Duration;

/// `host:port` the public HTTP port listens on.
pub const LB_LISTEN: &str = "LB_LISTEN";
/// The api workers, comma-separated, each `host:port` or `unix:/path`.
pub const API_ADDRS: &str = "API_ADDRS";
/// Threads of the Pingora HTTP service (the 202 path and the proxy).
pub const LB_THREADS: &str = "LB_THREADS";
/// Payments the lb holds between the 202 and the workers' intake; beyond that, 503.
pub const LB_QUEUE_CAPACITY: &str = "LB_QUEUE_CAPACITY";
/// Most payments in one `POST /intake` batch.
pub const LB_BATCH_MAX: &str = "LB_BATCH_MAX";
/// How long the forwarder waits after the first queued payment for more to join its batch.
pub const LB_BATCH_LINGER_MS: &str = "LB_BATCH_LINGER_MS";
/// One intake round trip (connect, send, answer) not done within this counts as failed.
pub const LB_FORWARD_TIMEOUT_MS: &str = "LB_FORWARD_TIMEOUT_MS";
/// Cap of the exponential backoff between delivery rounds while no worker takes intake.
pub const LB_BACKOFF_MAX_MS: &str = "LB_BACKOFF_MAX_MS";
/// How long SIGTERM waits for the queue to reach the workers before the lb exits anyway.
pub const LB_DRAIN_TIMEOUT_MS: &str = "LB_DRAIN_TIMEOUT_MS";
/// How often the proxy's health check connects to each worker.
pub const LB_HEALTH_INTERVAL_MS: &str = "LB_HEALTH_INTERVAL_MS";
/// Client connections the lb serves at once; one more is answered 503 and closed.
pub const LB_MAX_CONNECTIONS: &str = "LB_MAX_CONNECTIONS";
/// After a worker's intake failed, how long the forwarder tries the other workers first.
pub const LB_AVOID_MS: &str = "LB_AVOID_MS";

const DEFAULT_LISTEN: &str = "0.0.0.0:9999";
const DEFAULT_API_ADDRS: &str = "127.0.0.1:9101,127.0.0.1:9102";
const DEFAULT_THREADS: usize = 1;
/// About two minutes of the contest's peak rate (550/s); 32 bytes each.
const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
const DEFAULT_BATCH_MAX: usize = 256;
const DEFAULT_BATCH_LINGER_MS: u64 = 20;
const DEFAULT_FORWARD_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_BACKOFF_MAX_MS: u64 = 500;
const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 8_000;
const DEFAULT_HEALTH_INTERVAL_MS: u64 = 1_000;
/// With every connection inside a request at once, the most a connection costs (about
/// 23 KB of Pingora's per-request state), 2,048 took the lb to 58 MiB of RSS
/// (lb/benches/lb-idle-connections.sh), leaving room under its 100 MB for the kernel's
/// socket memory (which the container's limit counts too) and a full queue; idle ones
/// cost about 6 KB each. The contest's clients hold about 550.
const DEFAULT_MAX_CONNECTIONS: usize = 2_048;
/// Several forward timeouts: a worker that hangs costs one timeout per this, not one per
/// batch; a worker that restarts gets intake again soon after.
const DEFAULT_AVOID_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}=`{value}` is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Everything the lb needs to know, with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub workers: Vec<WorkerAddr>,
    pub threads: usize,
    pub queue_capacity: usize,
    pub batch_max: usize,
    pub batch_linger: Duration,
    pub forward_timeout: Duration,
    pub backoff_max: Duration,
    pub drain_timeout: Duration,
    pub health_interval: Duration,
    pub max_connections: usize,
    pub avoid: Duration,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            listen: text(LB_LISTEN, DEFAULT_LISTEN),
            workers: workers(&text(API_ADDRS, DEFAULT_API_ADDRS))?,
            threads: positive(LB_THREADS, DEFAULT_THREADS)?,
            queue_capacity: positive(LB_QUEUE_CAPACITY, DEFAULT_QUEUE_CAPACITY)?,
            batch_max: positive(LB_BATCH_MAX, DEFAULT_BATCH_MAX)?,
            batch_linger: linger(DEFAULT_BATCH_LINGER_MS)?,
            forward_timeout: millis(LB_FORWARD_TIMEOUT_MS, DEFAULT_FORWARD_TIMEOUT_MS)?,
            backoff_max: millis(LB_BACKOFF_MAX_MS, DEFAULT_BACKOFF_MAX_MS)?,
            drain_timeout: millis(LB_DRAIN_TIMEOUT_MS, DEFAULT_DRAIN_TIMEOUT_MS)?,
            health_interval: millis(LB_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_INTERVAL_MS)?,
            max_connections: positive(LB_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS)?,
            avoid: millis(LB_AVOID_MS, DEFAULT_AVOID_MS)?,
        })
    }
}

fn text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn workers(list: &str) -> Result<Vec<WorkerAddr>, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        name: API_ADDRS,
        value: list.to_string(),
        why,
    };
    let addrs = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<WorkerAddr>())
        .collect::<Result<Vec<_>, AddrError>>()
        .map_err(|e| invalid(e.to_string()))?;
    if addrs.is_empty() {
        return Err(invalid("at least one worker address is needed".into()));
    }
    Ok(addrs)
}

fn positive(name: &'static str, default: usize) -> Result<usize, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                value,
                why: "expected a positive integer".into(),
            }),
        },
    }
}

fn millis(name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    positive(name, default as usize).map(|ms| Duration::from_millis(ms as u64))
}

/// `LB_BATCH_LINGER_MS`: any whole number of ms, 0 included (no linger).
fn linger(default: u64) -> Result<Duration, ConfigError> {
    match std::env::var(LB_BATCH_LINGER_MS) {
        Err(_) => Ok(Duration::from_millis(default)),
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => Err(ConfigError::Invalid {
                name: LB_BATCH_LINGER_MS,
                value,
                why: "expected a whole number of milliseconds (0 = no linger)".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lists_parse_both_kinds() {
        let list = workers(" 127.0.0.1:9101 , unix:/tmp/api.sock,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].to_string(), "unix:/tmp/api.sock");
        assert!(workers(" , ").is_err());
        assert!(workers("127.0.0.1").is_err());
    }
}
