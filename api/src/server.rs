//! The HTTP/1.1 server: keep-alive connections on TCP or a Unix socket, and the routes.
//!
//! | route | method | what |
//! |---|---|---|
//! | `/intake` | POST | batch from the lb (see `intake`) |
//! | `/payments-summary` | GET | the contest summary (see `summary`) |
//! | `/purge-payments` | POST | deletes all payments |
//! | `/metrics` | GET | Prometheus text (see `metrics`) |
//!
//! An unknown path is 404, a known path with another method 405, both with JSON bodies.
//! On shutdown the server stops accepting connections; open ones keep being served (intake
//! then answers 503) until the process exits.

use crate::config::Listen;
use crate::intake::{self, Intake};
use crate::metrics::Metrics;
use crate::reply::{self, Reply};
use crate::shutdown::Shutdown;
use crate::summary;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use storage::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// What the routes need.
pub struct App {
    pub intake: Intake,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds; for a Unix socket the directory is created if missing and a stale socket
    /// file left by a killed worker is removed first.
    pub async fn bind(listen: &Listen) -> std::io::Result<Listener> {
        match listen {
            Listen::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
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
}

/// Accepts connections until shutdown.
pub async fn serve(listener: Listener, app: Arc<App>, mut shutdown: Shutdown) {
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

/// Every answer, errors included, is sent only after the whole request body was read: a
/// connection closed with unread bytes in its receive buffer is reset by the kernel, and a
/// client still writing its body then sees a broken pipe or a reset instead of our answer.
async fn route(app: &App, request: Request<Incoming>) -> Reply {
    let (head, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let path = head.uri.path();
    let (allowed, allow) = match path {
        "/intake" | "/purge-payments" => (Method::POST, "POST"),
        "/payments-summary" | "/metrics" => (Method::GET, "GET"),
        _ => {
            return reply::error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {path}"),
            )
        }
    };
    if head.method != allowed {
        let mut answer = reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {allowed}, not {}", head.method),
        );
        answer.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static(allow),
        );
        return answer;
    }
    match path {
        "/intake" => app.intake.handle(&body).await,
        "/payments-summary" => summary::summary(&app.store, head.uri.query()).await,
        "/purge-payments" => summary::purge(&app.store).await,
        _ => {
            let pending = app.store.pending_count().await.unwrap_or_else(|e| {
                tracing::warn!("cannot count pending payments: {e}");
                -1
            });
            reply::prometheus(app.metrics.render(pending))
        }
    }
}

/// The whole body, at most `intake::MAX_BODY_BYTES` (beyond that 413, and the connection
/// is closed with the rest unread: that client may see a reset).
async fn read_body(body: Incoming) -> Result<bytes::Bytes, Reply> {
    match Limited::new(body, intake::MAX_BODY_BYTES).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "a request body may be at most {} bytes",
                intake::MAX_BODY_BYTES
            ),
        )),
        Err(e) => Err(reply::error(StatusCode::BAD_REQUEST, "bad_body", e)),
    }
}
