//! The HTTP/1.1 server: keep-alive connections on TCP or a Unix socket, and the routes.
//!
//! | route | method | what |
//! |---|---|---|
//! | `/intake` | POST | batch from the lb (see `intake`) |
//! | `/payments-summary` | GET | the contest summary (see `records`) |
//! | `/purge-payments` | POST | deletes all payments (see `records`) |
//! | `/metrics` | GET | Prometheus text (see `metrics`) |
//!
//! Else 404 (405: another method), JSON bodies. Shutdown stops accepting; open ones go on.

use crate::config::Listen;
use crate::intake::{self, Intake};
use crate::metrics::Gauges;
use crate::records;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use service::reply::{self, Reply};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// What the routes need.
pub(crate) struct App {
    intake: Intake,
    shared: Shared,
}

impl App {
    /// The routes of a worker; intake answers 503 once `shutdown` fires.
    pub(crate) fn new(shared: Shared, shutdown: Shutdown) -> App {
        App {
            intake: Intake::new(shared.clone(), shutdown),
            shared,
        }
    }
}

/// A bound listener.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds; for a Unix socket the directory is created if missing and a stale socket
    /// file left by a killed worker is removed first.
    pub(crate) async fn bind(listen: &Listen) -> std::io::Result<Listener> {
        match listen {
            Listen::Tcp(hostport) => Ok(Listener::Tcp(TcpListener::bind(hostport.as_str()).await?)),
            Listen::Unix(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                Ok(Listener::Unix(UnixListener::bind(path)?))
            }
        }
    }

    /// The TCP address bound, with the port the system chose for port 0; None for a
    /// Unix socket.
    pub(crate) fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }
}

/// Accepts connections until shutdown. Open ones keep being served (intake then answers
/// 503) until the process exits, or, for a worker run inside a test, its runtime is dropped.
pub(crate) async fn serve(listener: Listener, app: Arc<App>, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            accepted = accept(&listener, &app) => {
                if let Err(e) = accepted {
                    // Usually EMFILE or a connection reset before accept; keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
            _ = shutdown.recv() => return,
        }
    }
}

async fn accept(listener: &Listener, app: &Arc<App>) -> std::io::Result<()> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, _) = l.accept().await?;
            stream.set_nodelay(true)?;
            spawn_connection(stream, Arc::clone(app));
        }
        Listener::Unix(l) => {
            let (stream, _) = l.accept().await?;
            spawn_connection(stream, Arc::clone(app));
        }
    }
    Ok(())
}

fn spawn_connection<S>(stream: S, app: Arc<App>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(route(&app, request).await) }
        });
        if let Err(e) = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!("connection ended: {e}");
        }
    });
}

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Intake,
    Summary,
    Purge,
    Metrics,
}

/// Why a request names no endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoEndpoint {
    /// No such path: 404.
    Unknown,
    /// A known path with another method: 405, with the one it takes.
    WrongMethod(&'static str),
}

impl NoEndpoint {
    fn answer(self, path: &str) -> Reply {
        match self {
            NoEndpoint::Unknown => reply::not_found(path),
            NoEndpoint::WrongMethod(allow) => reply::method_not_allowed(path, allow),
        }
    }
}

impl Endpoint {
    /// The endpoint `method path` names.
    fn of(method: &Method, path: &str) -> Result<Endpoint, NoEndpoint> {
        let (endpoint, allowed, allow) = match path {
            "/intake" => (Endpoint::Intake, Method::POST, "POST"),
            "/purge-payments" => (Endpoint::Purge, Method::POST, "POST"),
            "/payments-summary" => (Endpoint::Summary, Method::GET, "GET"),
            "/metrics" => (Endpoint::Metrics, Method::GET, "GET"),
            _ => return Err(NoEndpoint::Unknown),
        };
        if *method != allowed {
            return Err(NoEndpoint::WrongMethod(allow));
        }
        Ok(endpoint)
    }

    /// The most body bytes kept in memory: one intake batch, or next to nothing for the
    /// routes that take no body (room for `{}` or a stray newline).
    fn body_limit(self) -> usize {
        match self {
            Endpoint::Intake => intake::MAX_BODY_BYTES,
            _ => 64,
        }
    }
}

/// Every answer, errors included, is sent only after the whole request body was read: a
/// connection closed with unread bytes in its receive buffer is reset by the kernel, and a
/// client still writing its body then sees a broken pipe or a reset instead of our answer.
async fn route(app: &App, request: Request<Incoming>) -> Reply {
    let (head, body) = request.into_parts();
    let endpoint = match Endpoint::of(&head.method, head.uri.path()) {
        Ok(endpoint) => endpoint,
        Err(none) => {
            let _ = read_body(body, 0).await;
            return none.answer(head.uri.path());
        }
    };
    let body = match read_body(body, endpoint.body_limit()).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    match endpoint {
        Endpoint::Intake => app.intake.handle(&body).await,
        Endpoint::Summary => records::summary(&app.shared.store, head.uri.query()).await,
        Endpoint::Purge => records::purge(&app.shared.store).await,
        Endpoint::Metrics => {
            let pending_in_db = app.shared.store.pending_count().await.unwrap_or_else(|e| {
                tracing::warn!("cannot count pending payments: {e}");
                -1
            });
            let held = &app.shared.held;
            reply::prometheus(app.shared.metrics.render(Gauges {
                held: held.count(),
                pinned_waiting: held.pinned_waiting(),
                pending_in_db,
            }))
        }
    }
}

/// Longest body read to its end (and dropped) before an error answer; beyond it the
/// connection is closed with the rest unread, and that client may see a reset.
const DRAIN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The whole body, keeping at most `limit` bytes in memory. A longer one is 413, nothing
/// done; it is still read to its end (discarded as it arrives, up to `DRAIN_MAX_BYTES`)
/// so that the answer reaches a client still sending.
async fn read_body(mut body: Incoming, limit: usize) -> Result<bytes::Bytes, Reply> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| reply::error(StatusCode::BAD_REQUEST, "bad_body", e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total > DRAIN_MAX_BYTES {
            break;
        }
        if total <= limit {
            kept.extend_from_slice(&data);
        }
    }
    if total > limit {
        return Err(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a request body on this route may be at most {limit} bytes"),
        ));
    }
    Ok(bytes::Bytes::from(kept))
}
