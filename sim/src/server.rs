//! The HTTP/1.1 plumbing shared by `sim` and `floor`: their `main` ([`run_service`]), a
//! tokio runtime of the configured size and an accept loop that serves keep-alive
//! connections with a handler.

use crate::reply::Reply;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signal(#[source] std::io::Error),
}

/// What `sim` and `floor` do once they have read their configuration: a bad one exits 2;
/// otherwise logging starts and `serve` runs on a runtime of `threads(&config)` threads
/// until it returns; an error starting or serving exits 1. Errors go to stderr, prefixed
/// with `name`.
pub fn run_service<C, E, Served>(
    name: &str,
    config: Result<C, E>,
    threads: impl FnOnce(&C) -> usize,
    serve: impl FnOnce(C) -> Served,
) -> ExitCode
where
    E: std::fmt::Display,
    Served: Future<Output = Result<(), ServeError>>,
{
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init();
    match runtime(threads(&config)).and_then(|rt| rt.block_on(serve(config))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One thread runs everything on the caller's thread (the cheapest for one core); more
/// threads get a multi-threaded runtime.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, ServeError> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().map_err(ServeError::Runtime)
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Accepts connections forever, each served on its own task with `handler` per request.
pub async fn serve<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small request/response pairs: waiting for Nagle would only add latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("set_nodelay: {e}");
        }
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let reply = handler(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("connection ended with an error: {e}");
            }
        });
    }
}
