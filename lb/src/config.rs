//! The lb's configuration, read once at start from the environment (or flags) under the
//! rules of `service::config`.
//!
//! Every variable name is a `pub const` here, its flag made from it (`service::flag!`), so
//! tests, `make run` and compose use the same spelling. Defaults are the right values for
//! the contest: one Pingora service thread (all services share 1.5 CPUs), a queue deep
//! enough to hold about two minutes of the contest's peak rate while both workers are
//! down (see [`Config`]), a drain that fits inside docker's 10 s stop timeout, and a cap on
//! client connections that keeps the lb inside its 100 MB compose limit whatever the
//! clients do.

use crate::delivery::workers::WorkerAddr;
use payment::intake::MAX_BATCH_PAYMENTS;
use service::config::{checked, micros_or_zero, millis, millis_or_zero, positive, text};
use service::flag;
use service::Address;
use std::path::PathBuf;
use std::time::Duration;

/// The variable of `Config::listen`.
pub const LB_LISTEN: &str = "LB_LISTEN";
/// The variable of `Config::workers`.
pub const API_ADDRS: &str = "API_ADDRS";
/// The variable of `Config::threads`.
pub const LB_THREADS: &str = "LB_THREADS";
/// The variable of `Config::queue_capacity`.
pub const LB_QUEUE_CAPACITY: &str = "LB_QUEUE_CAPACITY";
/// The variable of `Config::batch_max`.
pub const LB_BATCH_MAX: &str = "LB_BATCH_MAX";
/// The variable of `Config::batch_linger`.
pub const LB_BATCH_LINGER_MS: &str = "LB_BATCH_LINGER_MS";
/// The variable of `Config::forward_timeout`.
pub const LB_FORWARD_TIMEOUT_MS: &str = "LB_FORWARD_TIMEOUT_MS";
/// The variable of `Config::backoff_max`.
pub const LB_BACKOFF_MAX_MS: &str = "LB_BACKOFF_MAX_MS";
/// The variable of `Config::drain_timeout`.
pub const LB_DRAIN_TIMEOUT_MS: &str = "LB_DRAIN_TIMEOUT_MS";
/// The variable of `Config::health_interval`.
pub const LB_HEALTH_INTERVAL_MS: &str = "LB_HEALTH_INTERVAL_MS";
/// The variable of `Config::max_connections`.
pub const LB_MAX_CONNECTIONS: &str = "LB_MAX_CONNECTIONS";
/// The variable of `Config::avoid`.
pub const LB_AVOID_MS: &str = "LB_AVOID_MS";
/// The variable of `Config::journal`.
pub const LB_JOURNAL_PATH: &str = "LB_JOURNAL_PATH";
/// The variable of `Config::metrics_listen`.
pub const LB_METRICS_LISTEN: &str = "LB_METRICS_LISTEN";
/// The variable of `Config::slice`.
pub const LB_SLICE_US: &str = "LB_SLICE_US";

/// Why these defaults: the queue holds about two minutes of the contest's peak rate
/// (65,536 at 550 per s; 40 bytes each in the queue, 40 more in the journal). The
/// connection cap leaves room under the lb's 100 MB for every served connection being
/// inside a request (the most one costs), for the kernel's socket memory (which the
/// container's limit counts too) and for a full queue (bench/RESULTS.md, "Connections and
/// memory"). `LB_AVOID_MS` is several forward timeouts: a worker that hangs costs one
/// timeout per this, not one per batch; a worker that restarts gets intake again soon.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    about = "rinha-pay load balancer: answers POST /payments with 202 and forwards payments to the api workers"
)]
pub struct Config {
    /// `host:port` the public HTTP port listens on.
    #[arg(long = flag!(LB_LISTEN), env = LB_LISTEN, default_value = "0.0.0.0:9999", value_parser = checked(text))]
    pub(crate) listen: String,
    /// The api workers, comma-separated, each host:port or unix:/path.
    #[arg(long = flag!(API_ADDRS), env = API_ADDRS, default_value = "127.0.0.1:9101,127.0.0.1:9102", value_parser = checked(WorkerAddr::parse_list))]
    pub(crate) workers: Workers,
    /// Threads of the Pingora HTTP service (the 202 path and the proxy).
    #[arg(long = flag!(LB_THREADS), env = LB_THREADS, default_value = "1", value_parser = checked(positive))]
    pub(crate) threads: usize,
    /// Payments held between the 202 and the workers' intake; beyond that, 503.
    #[arg(long = flag!(LB_QUEUE_CAPACITY), env = LB_QUEUE_CAPACITY, default_value = "65536", value_parser = checked(positive))]
    pub(crate) queue_capacity: usize,
    /// Most payments in one POST /intake batch (at most what fits in a worker's 1 MiB intake body).
    #[arg(long = flag!(LB_BATCH_MAX), env = LB_BATCH_MAX, default_value = "256", value_parser = checked(batch_size))]
    pub(crate) batch_max: usize,
    /// How long (ms) the forwarder waits after the first queued payment for more; 0: none.
    #[arg(long = flag!(LB_BATCH_LINGER_MS), env = LB_BATCH_LINGER_MS, default_value = "100", value_parser = checked(millis_or_zero))]
    pub(crate) batch_linger: Duration,
    /// An intake round trip (connect, send, answer) not done within this (ms) counts as failed.
    #[arg(long = flag!(LB_FORWARD_TIMEOUT_MS), env = LB_FORWARD_TIMEOUT_MS, default_value = "2000", value_parser = checked(millis))]
    pub(crate) forward_timeout: Duration,
    /// Cap (ms) of the exponential backoff between delivery rounds while no worker takes intake.
    #[arg(long = flag!(LB_BACKOFF_MAX_MS), env = LB_BACKOFF_MAX_MS, default_value = "500", value_parser = checked(millis))]
    pub(crate) backoff_max: Duration,
    /// How long (ms) SIGTERM waits for the queue to reach the workers before the lb exits.
    #[arg(long = flag!(LB_DRAIN_TIMEOUT_MS), env = LB_DRAIN_TIMEOUT_MS, default_value = "8000", value_parser = checked(millis))]
    pub(crate) drain_timeout: Duration,
    /// How often (ms) the proxy's health check connects to each worker.
    #[arg(long = flag!(LB_HEALTH_INTERVAL_MS), env = LB_HEALTH_INTERVAL_MS, default_value = "1000", value_parser = checked(millis))]
    pub(crate) health_interval: Duration,
    /// Client connections served at once; one more is answered 503 and closed.
    #[arg(long = flag!(LB_MAX_CONNECTIONS), env = LB_MAX_CONNECTIONS, default_value = "2048", value_parser = checked(positive))]
    pub(crate) max_connections: usize,
    /// After a worker's intake failed, how long (ms) the forwarder tries the others first.
    #[arg(long = flag!(LB_AVOID_MS), env = LB_AVOID_MS, default_value = "5000", value_parser = checked(millis))]
    pub(crate) avoid: Duration,
    /// Where GET /metrics answers, off the public port: host:port, unix:/path, or `off`.
    #[arg(long = flag!(LB_METRICS_LISTEN), env = LB_METRICS_LISTEN, default_value = "127.0.0.1:9990", value_parser = checked(MetricsListen::parse))]
    pub(crate) metrics_listen: MetricsListen,
    /// The file (on the data volume) that keeps accepted payments until a worker commits
    /// them, replayed at start; `off`: a killed lb loses the payments it holds.
    #[arg(long = flag!(LB_JOURNAL_PATH), env = LB_JOURNAL_PATH, default_value = "data/lb.journal", value_parser = checked(JournalAt::parse))]
    pub(crate) journal: JournalAt,
    /// The CPU slice (µs) the lb's threads ask of the kernel, so a woken one runs before
    /// a busy neighbour's slice ends (see [`crate::slice`]); 0: the kernel's default.
    #[arg(long = flag!(LB_SLICE_US), env = LB_SLICE_US, default_value = "100", value_parser = checked(micros_or_zero))]
    pub(crate) slice: Duration,
}

/// Where the journal is (see [`crate::delivery::journal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JournalAt {
    Off,
    File(PathBuf),
}

impl JournalAt {
    fn parse(text: &str) -> Result<JournalAt, std::convert::Infallible> {
        Ok(match text {
            "off" => JournalAt::Off,
            path => JournalAt::File(PathBuf::from(path)),
        })
    }
}

/// `LB_METRICS_LISTEN`: an address, or `off` for no metrics listener at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetricsListen {
    Off,
    At(Address),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is none of `host:port`, `unix:/path`, `off`")]
pub(crate) struct MetricsListenError(String);

impl MetricsListen {
    /// A [`service::config::checked`] parser: `off`, or what `service::Address` takes.
    pub(crate) fn parse(text: &str) -> Result<MetricsListen, MetricsListenError> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(MetricsListen::Off);
        }
        Address::parse(text)
            .map(MetricsListen::At)
            .map_err(|_| MetricsListenError(text.to_string()))
    }
}

impl Config {
    /// The journal's slots: the queue, the batch the forwarder holds, and one batch of slack.
    pub(crate) fn journal_slots(&self) -> usize {
        self.queue_capacity + 2 * self.batch_max
    }
}

/// A batch size from 1 to what always fits in a worker's intake body.
fn batch_size(text: &str) -> Result<usize, String> {
    let n = positive(text)?;
    if n > MAX_BATCH_PAYMENTS {
        return Err(format!(
            "at most {MAX_BATCH_PAYMENTS} payments fit in a worker's {} KiB intake body",
            payment::intake::MAX_BATCH_BYTES / 1024
        ));
    }
    Ok(n)
}

/// The worker list of `API_ADDRS`; named so clap's derive takes it as one value, not as a
/// repeated flag (which it does for a field spelled `Vec`).
pub(crate) type Workers = std::vec::Vec<WorkerAddr>;

#[cfg(test)]
mod tests {
    use super::*;
    use service::config::{from_flags, Refused};

    fn config(args: &[&str]) -> Result<Config, Refused> {
        from_flags("lb", args)
    }

    #[test]
    fn worker_lists_parse_both_kinds() {
        let c = config(&["--api-addrs", " 127.0.0.1:9101 , unix:/tmp/api.sock,"]).unwrap();
        assert_eq!(c.workers.len(), 2);
        assert_eq!(c.workers[1].to_string(), "unix:/tmp/api.sock");
        assert!(config(&["--api-addrs", " , "]).is_err());
        assert!(config(&["--api-addrs", "127.0.0.1"]).is_err());
        assert_eq!(config(&[]).unwrap().workers.len(), 2);
    }

    #[test]
    fn linger_may_be_zero_other_periods_not() {
        assert_eq!(
            config(&["--lb-batch-linger-ms", "0"]).unwrap().batch_linger,
            Duration::ZERO
        );
        assert!(config(&["--lb-forward-timeout-ms", "0"]).is_err());
    }

    #[test]
    fn a_batch_that_cannot_fit_a_worker_s_intake_is_refused() {
        let most = MAX_BATCH_PAYMENTS.to_string();
        assert_eq!(
            config(&["--lb-batch-max", &most]).unwrap().batch_max,
            MAX_BATCH_PAYMENTS
        );
        let over = (MAX_BATCH_PAYMENTS + 1).to_string();
        assert!(config(&["--lb-batch-max", &over]).is_err());
    }

    #[test]
    fn the_journal_is_a_file_unless_off() {
        let at = |v: &str| config(&["--lb-journal-path", v]).unwrap().journal;
        assert_eq!(at("off"), JournalAt::Off);
        assert_eq!(
            at("/data/lb.journal"),
            JournalAt::File("/data/lb.journal".into())
        );
        assert_eq!(
            config(&[]).unwrap().journal,
            JournalAt::File("data/lb.journal".into())
        );
    }

    #[test]
    fn the_listen_value_is_an_address_or_off() {
        assert_eq!(MetricsListen::parse("off"), Ok(MetricsListen::Off));
        assert_eq!(
            MetricsListen::parse("127.0.0.1:9990"),
            Ok(MetricsListen::At(Address::Tcp("127.0.0.1:9990".into())))
        );
        assert_eq!(
            MetricsListen::parse("unix:/run/rinha/lb-metrics.sock"),
            Ok(MetricsListen::At(Address::Unix(
                "/run/rinha/lb-metrics.sock".into()
            )))
        );
        assert!(MetricsListen::parse("9990").is_err());
    }
}
