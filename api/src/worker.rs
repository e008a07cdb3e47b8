//! The life of one worker: [`Worker::start`] opens the store, listens, builds the parts
//! from one [`Shared`] set of handles and starts every background task, holding their
//! handles; [`Worker::shutdown`] stops them in the one order that hands the payments over
//! safely.
//!
//! Both run inside any tokio runtime, so a test can run a worker in its own process; how
//! the parts are joined is written only here (`spawn_work`).

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::health::HealthPoller;
use crate::processor::ProcessorClient;
use crate::recovery::{self, Recovery};
use crate::routing::{self, Policy};
use crate::server::{self, App, Listener};
use crate::shared::Shared;
use crate::shutdown::{self, Shutdown, Trigger};
use crate::ApiError;
use hyper::http::uri::InvalidUri;
use payment::{Millis, Processor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use storage::{Store, StoreConfig};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A running worker: every background task it started, and what its shutdown needs.
/// Dropped without [`Worker::shutdown`], its tasks run on until their runtime ends.
pub struct Worker {
    store: Store,
    dispatcher: Arc<Dispatcher>,
    /// Stops the server's accepting, intake, the dispatcher's rounds, health polls and
    /// orphan scans: everything that takes work in.
    stop_work: Trigger,
    work: JoinSet<()>,
    /// The heartbeat stops last: while calls drain it keeps their payments ours.
    stop_heartbeat: Trigger,
    heartbeat: JoinHandle<()>,
    shutdown_grace: Duration,
    tcp_addr: Option<SocketAddr>,
}

impl Worker {
    /// Opens the store, listens, and starts the dispatcher, the health pollers, the
    /// heartbeat, the orphan scans and the server.
    pub async fn start(config: Config) -> Result<Worker, ApiError> {
        let owner = owner_of_this_start(&config.worker_id);
        let store = open_store(&config, &owner).await?;
        let listener = Listener::bind(&config.listen)
            .await
            .map_err(|source| ApiError::Listen {
                listen: config.listen.clone(),
                source,
            })?;
        let tcp_addr = listener.tcp_addr();
        let clients = processor_clients(&config)?;
        let shared = Shared::new(
            store.clone(),
            config.dispatch_queue_max,
            policy(&config),
            config.probe_interval,
        );
        let (stop_work, work_signal) = shutdown::channel();
        let (dispatcher, work) = spawn_work(&config, &shared, clients, listener, work_signal);
        let (stop_heartbeat, heartbeat_signal) = shutdown::channel();
        let heartbeat = tokio::spawn(recovery::heartbeat(
            store.clone(),
            config.heartbeat,
            heartbeat_signal,
        ));
        tracing::info!(%owner, listen = ?config.listen, "api worker ready");
        Ok(Worker {
            store,
            dispatcher,
            stop_work,
            work,
            stop_heartbeat,
            heartbeat,
            shutdown_grace: config.shutdown_grace,
            tcp_addr,
        })
    }

    /// Where the worker listens, for a TCP listener (the port chosen for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Shuts down in order, within about `SHUTDOWN_GRACE_MS`, and hands what is left to the
    /// other worker.
    pub async fn shutdown(mut self) {
        let deadline = Instant::now() + self.shutdown_grace;
        // 1. Stop taking work: the server stops accepting, intake answers 503, and no round,
        //    health poll or orphan scan starts.
        self.stop_work.fire();
        // 2. Join those tasks: after this no call can start.
        self.join_work(deadline).await;
        // 3. Drain: let the calls in flight end, until the deadline.
        let drained = self.dispatcher.drain(deadline).await;
        // 4. Stop the heartbeat, only now: until the calls ended it kept their payments ours.
        self.stop_heartbeat.fire();
        if let Err(e) = self.heartbeat.await {
            tracing::warn!("the heartbeat task failed: {e}");
        }
        // 5. Retire, only if the drain finished.
        if drained {
            // No call of ours can still be running: the other worker may take over at once.
            if let Err(e) = self.store.retire().await {
                tracing::warn!("cannot retire the heartbeat (the other worker claims our payments once it is stale): {e}");
            }
        } else {
            // Not retiring leaves our heartbeat to go stale: the other worker then waits, as
            // for a crash, until our calls could have ended before it sends their payments.
            tracing::warn!("processor calls still in flight at shutdown; their payments stay pending for the other worker");
        }
        // 6. Close the store: what is queued for the writer is committed first.
        self.store.close().await;
    }

    /// Waits for the tasks stopped by `stop_work`; one still busy at `deadline` (a health
    /// call waiting for its timeout) is aborted, which sends no payment.
    async fn join_work(&mut self, deadline: Instant) {
        let joined = tokio::time::timeout_at(deadline, async {
            while let Some(ended) = self.work.join_next().await {
                if let Err(e) = ended {
                    tracing::error!("a worker task failed: {e}");
                }
            }
        });
        if joined.await.is_err() {
            self.work.shutdown().await;
        }
    }
}

/// Builds the parts that take work in from `shared` and starts them, all stopped by `stop`:
/// the dispatcher (returned too, for the drain), a health poller per processor, the orphan
/// scans and the server.
fn spawn_work(
    config: &Config,
    shared: &Shared,
    clients: [Arc<ProcessorClient>; 2],
    listener: Listener,
    stop: Shutdown,
) -> (Arc<Dispatcher>, JoinSet<()>) {
    let owned_for = config.worker_dead_after / 2;
    let dispatcher = Arc::new(Dispatcher::new(
        shared.clone(),
        clients.clone(),
        config.dispatch_concurrency,
        config.probe_interval,
        (
            owned_for,
            config.late_store_max.max(config.processor_timeout),
        ),
    ));
    let poller = Arc::new(HealthPoller::new(
        shared.clone(),
        config.health_window,
        config.health_read,
    ));
    // A dead worker's calls may start up to its send deadline after its last heartbeat.
    let recovery = Recovery::new(
        shared.clone(),
        config.worker_dead_after,
        (owned_for, config.processor_timeout),
    );
    let app = Arc::new(App::new(shared.clone(), stop.clone()));
    let mut work = JoinSet::new();
    work.spawn(Arc::clone(&dispatcher).run(stop.clone()));
    for client in clients {
        work.spawn(Arc::clone(&poller).run(client, stop.clone()));
    }
    work.spawn(recovery.run(config.orphan_scan, stop.clone()));
    work.spawn(server::serve(listener, app, stop));
    (dispatcher, work)
}

/// The store's owner for this start of the worker: its `WORKER_ID` label plus a random
/// suffix, so a restarted worker never mistakes its predecessor's pending payments for its
/// own live ones: they become orphans and are claimed normally.
fn owner_of_this_start(label: &str) -> String {
    format!("{label}-{}", payment::Uuid::new_v4().simple())
}

/// The shared database as `owner`, with this worker's first heartbeat written.
async fn open_store(config: &Config, owner: &str) -> Result<Store, ApiError> {
    let database = config.database().map_err(|source| ApiError::Storage {
        database: config.database_path.display().to_string(),
        source,
    })?;
    let shown = database.to_string();
    let storage_error = |source| ApiError::Storage {
        database: shown.clone(),
        source,
    };
    let store = Store::open(StoreConfig {
        linger: config.write_linger,
        ..StoreConfig::with_database(database, owner)
    })
    .map_err(storage_error)?;
    store
        .heartbeat(Millis::now())
        .await
        .map_err(storage_error)?;
    Ok(store)
}

/// The routing policy's knobs, from the configuration.
fn policy(config: &Config) -> Policy {
    Policy {
        latency_max: config.latency_max.as_millis() as i64,
        fallback_after: config.fallback_after.as_millis() as i64,
        overflow_after: config.overflow_after.as_millis() as i64,
        concurrency: config.dispatch_concurrency,
        blip_max: routing::BLIP_MAX.as_millis() as i64,
    }
}

/// A client for each processor, the default's first.
fn processor_clients(config: &Config) -> Result<[Arc<ProcessorClient>; 2], InvalidUri> {
    let client = |processor, url: &str| {
        ProcessorClient::new(
            processor,
            url,
            config.processor_timeout,
            config.dispatch_concurrency,
        )
        .map(Arc::new)
    };
    Ok([
        client(Processor::Default, &config.default_url)?,
        client(Processor::Fallback, &config.fallback_url)?,
    ])
}
