//! The payment worker. Two of these run side by side behind the lb, sharing one SQLite
//! file (crate `storage`): each records the payments the lb forwards (`intake`), pays them
//! through the processors (`dispatch`, `processor`) as the policy says (`routing`, fed by
//! call answers and the shared `health` records), takes over the payments of a dead worker
//! (`recovery`), and answers the summary from the database, so both agree.
//!
//! [`run`] wires the parts together and owns the shutdown order.

pub mod config;
pub mod dispatch;
pub mod health;
pub mod intake;
pub mod metrics;
pub mod processor;
pub mod recovery;
pub mod reply;
pub mod routing;
pub mod server;
pub mod shutdown;
pub mod summary;

use config::{Config, Listen};
use dispatch::{Dispatcher, Queue};
use health::HealthPoller;
use hyper::http::uri::InvalidUri;
use payment::{Millis, Processor};
use processor::ProcessorClient;
use recovery::Recovery;
use routing::Routing;
use server::{App, Listener};
use shutdown::Signals;
use std::sync::Arc;
use storage::{StorageError, Store, StoreConfig};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("database {path}: {source}")]
    Storage {
        path: std::path::PathBuf,
        source: StorageError,
    },
    #[error("cannot listen on {listen:?}: {source}")]
    Listen {
        listen: Listen,
        source: std::io::Error,
    },
    #[error("bad processor URL: {0}")]
    ProcessorUrl(#[from] InvalidUri),
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs the worker until SIGTERM/SIGINT, then shuts down in order: stop intake and new
/// sends, let calls in flight finish (at most `SHUTDOWN_GRACE_MS`), retire the heartbeat
/// so the other worker claims what is left at once, flush and close the store.
pub async fn run(config: Config) -> Result<(), ApiError> {
    let mut signals = Signals::install().map_err(ApiError::Signals)?;
    let storage_error = |source| ApiError::Storage {
        path: config.database_path.clone(),
        source,
    };
    let store = Store::open(StoreConfig {
        linger: config.write_linger,
        ..StoreConfig::new(&config.database_path, &config.owner)
    })
    .map_err(storage_error)?;
    store
        .heartbeat(Millis::now())
        .await
        .map_err(storage_error)?;
    let listener = Listener::bind(&config.listen)
        .await
        .map_err(|source| ApiError::Listen {
            listen: config.listen.clone(),
            source,
        })?;

    let metrics = Arc::new(metrics::Metrics::default());
    let routing = Arc::new(Routing::new(config.probe_interval, config.fallback_after));
    let queue = Arc::new(Queue::new(Arc::clone(&metrics)));
    let client = |processor, url: &str| {
        ProcessorClient::new(
            processor,
            url,
            config.processor_timeout,
            config.dispatch_concurrency,
        )
        .map(Arc::new)
    };
    let clients = [
        client(Processor::Default, &config.default_url)?,
        client(Processor::Fallback, &config.fallback_url)?,
    ];
    // A call starts within this of the proof that the payment is ours: before that, no
    // other worker can have claimed it.
    let send_within = config.worker_dead_after / 2;
    let (stop_work, work) = shutdown::channel();
    let (stop_heartbeat, heartbeat) = shutdown::channel();

    let dispatcher = Arc::new(Dispatcher {
        queue: Arc::clone(&queue),
        store: store.clone(),
        routing: Arc::clone(&routing),
        metrics: Arc::clone(&metrics),
        clients: clients.clone(),
        concurrency: config.dispatch_concurrency,
        permits: Arc::new(Semaphore::new(config.dispatch_concurrency)),
        probe_interval: config.probe_interval,
        send_within,
    });
    tokio::spawn(Arc::clone(&dispatcher).run(work.clone()));
    let poller = Arc::new(HealthPoller {
        store: store.clone(),
        routing,
        metrics: Arc::clone(&metrics),
        window: config.health_window,
        read_every: config.health_read,
    });
    for client in clients {
        tokio::spawn(Arc::clone(&poller).run(client, work.clone()));
    }
    tokio::spawn(recovery::heartbeat(
        store.clone(),
        config.heartbeat,
        heartbeat,
    ));
    let recovery = Recovery {
        store: store.clone(),
        queue: Arc::clone(&queue),
        metrics: Arc::clone(&metrics),
        dead_after: config.worker_dead_after,
        calls_outlive_heartbeat_by: send_within + config.processor_timeout,
        queue_max: config.dispatch_queue_max,
    };
    tokio::spawn(recovery.run(config.orphan_scan, work.clone()));
    let app = Arc::new(App {
        intake: intake::Intake {
            store: store.clone(),
            queue,
            metrics: Arc::clone(&metrics),
            shutdown: work.clone(),
            queue_max: config.dispatch_queue_max,
        },
        store: store.clone(),
        metrics,
    });
    tokio::spawn(server::serve(listener, app, work));
    tracing::info!(owner = %config.owner, listen = ?config.listen, "api worker ready");

    signals.recv().await;
    stop_work.fire();
    let drained = dispatcher.drain(config.shutdown_grace).await;
    stop_heartbeat.fire();
    if drained {
        // No call of ours can still be running: the other worker may take over at once.
        if let Err(e) = store.retire().await {
            tracing::warn!("cannot retire the heartbeat (the other worker claims our payments once it is stale): {e}");
        }
    } else {
        // Not retiring leaves our heartbeat to go stale: the other worker then waits, as
        // for a crash, until our calls could have ended before it sends their payments.
        tracing::warn!("processor calls still in flight at shutdown; their payments stay pending for the other worker");
    }
    store.close().await.map_err(storage_error)
}
