//! The HTTP/1.1 plumbing shared by `sim` and `floor`: an accept loop that serves
//! keep-alive connections with a handler until SIGTERM or SIGINT.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use service::reply::Reply;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signal(#[source] std::io::Error),
}

/// Serves `handler` on `addr` until SIGTERM or SIGINT: both binaries keep everything in
/// memory, so stopping is simply returning.
pub async fn serve_until_signal<H, F>(addr: SocketAddr, handler: H) -> Result<(), ServeError>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    // The handlers before the listener: whoever sees us listening may signal at once.
    let mut signals = service::signals::Signals::install().map_err(ServeError::Signal)?;
    let listener = bind(addr).await?;
    tracing::info!("listening on {addr}");
    tokio::select! {
        () = serve(listener, handler) => Ok(()),
        _ = signals.recv() => Ok(()),
    }
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
