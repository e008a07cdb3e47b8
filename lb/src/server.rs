//! Assembles the lb from its parts and runs it: one Pingora server with
//!
//! - the HTTP service on `LB_LISTEN`, on `LB_THREADS` threads: `Front` (the cap on client
//!   connections, the read of each request head) in front of Pingora's proxy with `Gateway`;
//! - the workers' TCP health check (Pingora's load balancer as a background service),
//!   which the gateway consults to proxy the summary and the purge;
//! - the `Forwarder`, a background service draining the queue into the workers;
//! - the `MetricsListener` on `LB_METRICS_LISTEN` (unless `off`),
//!
//! and `DrainOnSignal` (see [`crate::shutdown`]) as the server's shutdown trigger.

use crate::config::{Config, JournalAt, MetricsListen};
use crate::delivery::forwarder::{self, Forwarder};
use crate::delivery::journal::{Journal, JournalError};
use crate::delivery::queue::{self, QueueSender, Queued};
use crate::delivery::workers;
use crate::front::{Connections, Front};
use crate::gateway::Gateway;
use crate::metrics::listener::{Gauges, MetricsListener};
use crate::metrics::Metrics;
use crate::shutdown::{DrainOnSignal, Shutdown};
use crate::slice;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::{selection::RoundRobin, Backend, Backends, LoadBalancer};
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A worker address that does not resolve, one way [`run`] fails to start.
pub use crate::delivery::workers::ResolveError;

/// Buffers of each client connection: no read buffer (Pingora reads a request's head into
/// its own 4 KiB buffer anyway; its default 64 KiB read buffer per connection cost memory
/// per keep-alive client: bench/RESULTS.md, "Component benchmarks", the lb's "Memory"),
/// and Pingora's default one-segment write buffer, so an answer leaves in one write.
const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: None,
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Worker(#[from] ResolveError),
    #[error("cannot load the worker list into the load balancer: {0}")]
    Backends(String),
    #[error("cannot prepare the load balancer: {0}")]
    Runtime(#[from] service::StartError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How the lb ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every accepted payment reached a worker before the lb stopped.
    Drained,
    /// The drain timed out; payments were left behind (logged).
    PaymentsLeft,
}

impl Exit {
    /// 0 drained, 1 payments left (2, could not start, is `main`'s).
    pub fn code(self) -> std::process::ExitCode {
        match self {
            Exit::Drained => std::process::ExitCode::SUCCESS,
            Exit::PaymentsLeft => std::process::ExitCode::from(1),
        }
    }
}

/// Runs the lb until SIGTERM/SIGINT and its drain are over.
pub fn run(config: Config) -> Result<Exit, StartError> {
    // Before any of the lb's threads exists: they inherit it.
    if !config.slice.is_zero() {
        if let Err(e) = slice::ask_for(config.slice) {
            tracing::warn!("{e}");
        }
    }
    let server_conf = ServerConf {
        threads: config.threads,
        // Our drain already ran when Pingora hears about the shutdown (see `shutdown`).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        // Pingora's own timeouts (its reads, its connects) of a second or more on tokio's
        // timer, like ours, instead of pingora-timeout's: the first of those that waits
        // starts a clock thread that then wakes every 10 ms for the life of the process
        // (about 6 % of the lb's CPU in a contest run, started by the first health check).
        // Every timeout the lb gives Pingora is a second or more (see `gateway`).
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        // Each service on single-threaded tokio runtimes (one per thread) rather than one
        // work-stealing runtime: at the default of one thread per service there is nothing
        // to steal, and the current-thread scheduler does less per wake-up. With
        // LB_THREADS above 1, each thread serves the connections it accepted.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::default());
    let connections = Arc::new(Connections::new(config.max_connections));
    let shutdown = Shutdown::new();
    let (journal, left) = open_journal(&config)?;
    // Room for what the previous lb left too (at most two batches more than configured).
    let capacity = config.queue_capacity.max(left.len());
    let (queue_tx, queue_rx) = queue::bounded(capacity, config.batch_max);
    metrics.replayed(requeue(left, &queue_tx, &config.journal));
    let journal = Arc::new(journal);

    let health = background_service("worker health check", health_checked_workers(&config)?);
    let gateway = Gateway::new(
        queue_tx.clone(),
        journal.clone(),
        health.task(),
        config.workers.len(),
        metrics.clone(),
    );
    let gauges = Gauges {
        metrics: metrics.clone(),
        queue: queue_tx.clone(),
        connections: connections.clone(),
    };
    let proxy = http_proxy(&server.configuration, gateway);
    let front = Front::new(proxy, connections, metrics.clone());
    let mut http = Service::new("lb".to_string(), front);
    http.add_listener(ListenerConfig::tcp(&config.listen).l4_buffer(CLIENT_BUFFERS));

    let settings = forwarder::Settings {
        workers: config.workers.clone(),
        batch_max: config.batch_max,
        batch_linger: config.batch_linger,
        forward_timeout: config.forward_timeout,
        backoff_max: config.backoff_max,
        avoid: config.avoid,
    };
    let forwarder = Forwarder::new(
        queue_rx,
        settings,
        metrics.clone(),
        journal,
        shutdown.clone(),
    );

    server.add_service(http);
    server.add_service(health);
    server.add_service(background_service("forwarder", forwarder));
    if let MetricsListen::At(address) = &config.metrics_listen {
        let listener = MetricsListener::new(address.clone(), gauges);
        server.add_service(background_service("metrics listener", listener));
    }
    let trigger = DrainOnSignal::new(shutdown.clone(), config.drain_timeout, queue_tx, metrics);
    server.run(RunArgs {
        shutdown_signal: Box::new(trigger),
    });
    Ok(if shutdown.is_drained() {
        Exit::Drained
    } else {
        Exit::PaymentsLeft
    })
}

/// The journal of `LB_JOURNAL_PATH`, and the payments the previous lb accepted and did
/// not deliver, oldest first.
fn open_journal(config: &Config) -> Result<(Journal, Vec<Queued>), StartError> {
    let JournalAt::File(path) = &config.journal else {
        return Ok((Journal::off(), Vec::new()));
    };
    let (journal, left) = Journal::open(path, config.journal_slots())?;
    let left = left
        .into_iter()
        .map(|(seq, accepted)| Queued { accepted, seq })
        .collect();
    Ok((journal, left))
}

/// Queues `left` (the queue has room for all of them) before the lb takes new payments;
/// returns how many were queued.
fn requeue(left: Vec<Queued>, queue: &QueueSender, journal: &JournalAt) -> usize {
    let count = left.len();
    let queued = left.into_iter().filter(|q| queue.push(*q).is_ok()).count();
    if let (JournalAt::File(path), 1..) = (journal, count) {
        tracing::warn!("{queued} of {count} payments the previous lb accepted and did not deliver are queued again from {}", path.display());
    }
    queued
}

/// The workers as a round-robin load balancer with a TCP health check every
/// `LB_HEALTH_INTERVAL_MS`.
fn health_checked_workers(config: &Config) -> Result<LoadBalancer<RoundRobin>, StartError> {
    let backends: BTreeSet<Backend> = config
        .workers
        .iter()
        .map(workers::backend)
        .collect::<Result<_, _>>()?;
    let mut workers =
        LoadBalancer::<RoundRobin>::from_backends(Backends::new(Static::new(backends)));
    // Static discovery answers at once; run it now so the first request finds the workers.
    service::runtime(1)?
        .block_on(workers.update())
        .map_err(|e| StartError::Backends(e.to_string()))?;
    workers.set_health_check(TcpHealthCheck::new());
    workers.health_check_frequency = Some(config.health_interval);
    Ok(workers)
}
