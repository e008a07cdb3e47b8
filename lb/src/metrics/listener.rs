//! The lb's `GET /metrics` on a listener of its own (`LB_METRICS_LISTEN`: TCP, by default
//! `127.0.0.1:9990`, or a Unix socket), off the public port: the counters are for whoever
//! runs the lb, not for its clients. A Pingora background service with a small hyper server.
//!
//! Invariant: the listener never costs the lb its payments: one that cannot be bound is
//! logged and skipped, and at most [`SCRAPERS_MAX`] connections are served at once (past
//! that one is closed unanswered), so it costs bounded memory whoever connects.

use super::Metrics;
use crate::delivery::queue::QueueSender;
use crate::front::{Connections, Permits};
use async_trait::async_trait;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use service::reply::{self, Reply};
use service::Address;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// Connections to the metrics listener served at once.
pub(crate) const SCRAPERS_MAX: usize = 16;
/// The one path the listener answers.
const PATH: &str = "/metrics";
/// A scraper's connection is closed after this long, so a silent one does not keep its
/// permit: a scrape takes milliseconds, a sampler reconnects.
const SCRAPER_CONNECTION_MAX: Duration = Duration::from_secs(30);

/// What a scrape reads: the counters, the queue's depth, the client connections open.
#[derive(Clone)]
pub(crate) struct Gauges {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) queue: QueueSender,
    pub(crate) connections: Arc<Connections>,
}

impl Gauges {
    fn render(&self) -> String {
        let (open, idle) = (self.connections.open(), self.connections.idle());
        self.metrics.render(self.queue.depth(), open, idle)
    }
}

/// The background service serving `GET /metrics` on `address` until shutdown.
pub(crate) struct MetricsListener {
    address: Address,
    gauges: Gauges,
    scrapers: Arc<Permits>,
}

impl MetricsListener {
    pub(crate) fn new(address: Address, gauges: Gauges) -> MetricsListener {
        MetricsListener {
            address,
            gauges,
            scrapers: Arc::new(Permits::new(SCRAPERS_MAX)),
        }
    }

    async fn accept_one(&self, listener: &Listener) -> std::io::Result<()> {
        match listener {
            Listener::Tcp(l) => self.serve(l.accept().await?.0),
            Listener::Unix(l) => self.serve(l.accept().await?.0),
        }
        Ok(())
    }

    /// Serves one scraper's connection on its own task (dropped at once past the cap).
    fn serve<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (gauges, scrapers) = (self.gauges.clone(), self.scrapers.clone());
        tokio::spawn(async move {
            let Some(_permit) = scrapers.take() else {
                return;
            };
            let answer = service_fn(move |request| {
                let reply = answer(&gauges, &request);
                async move { Ok::<_, Infallible>(reply) }
            });
            let served = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), answer);
            if let Ok(Err(e)) = tokio::time::timeout(SCRAPER_CONNECTION_MAX, served).await {
                tracing::debug!("metrics connection ended: {e}");
            }
        });
    }
}

#[async_trait]
impl BackgroundService for MetricsListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match Listener::bind(&self.address).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(
                    "cannot listen for GET /metrics on {}: {e}; the lb runs without its metrics",
                    self.address
                );
                return;
            }
        };
        loop {
            tokio::select! {
                accepted = self.accept_one(&listener) => {
                    if let Err(e) = accepted {
                        // EMFILE, or a connection reset before accept: keep serving.
                        tracing::warn!("metrics listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// 200 with the Prometheus text for `GET /metrics`; 404 or 405 for anything else.
fn answer(gauges: &Gauges, request: &Request<Incoming>) -> Reply {
    let path = request.uri().path();
    match (path, request.method()) {
        (PATH, &Method::GET) => reply::prometheus(gauges.render()),
        (PATH, _) => reply::method_not_allowed(PATH, "GET"),
        _ => reply::not_found(path),
    }
}

/// A bound listener, TCP or Unix.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds; for a Unix socket, a file left by an earlier lb (killed, so it did not
    /// remove it) is removed first.
    async fn bind(address: &Address) -> std::io::Result<Listener> {
        match address {
            Address::Tcp(hostport) => Ok(Listener::Tcp(TcpListener::bind(hostport).await?)),
            Address::Unix(path) => {
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                Ok(Listener::Unix(UnixListener::bind(path)?))
            }
        }
    }
}
