//! The client connections, before Pingora's HTTP layer: at most `LB_MAX_CONNECTIONS` served
//! at once, each request's head read here ([`head`]) so that a connection between two
//! requests holds no Pingora state and no head grows past [`HEAD_MAX_BYTES`].
//!
//! At the cap a new connection is served in place of the one idle the longest ([`idle`]),
//! which is closed; only when none is idle is it answered `503 too_many_connections`
//! (`Retry-After: 1`) and closed. Invariant: a connection that has sent a byte of a request
//! is never closed for room, so nothing the lb read (and answered 202) is lost; one idle for
//! [`IDLE_TIMEOUT`] is closed, as Pingora's keep-alive would. docs/architecture.md says why.

mod head;
mod idle;

use crate::config::LB_MAX_CONNECTIONS;
use crate::metrics::Metrics;
use async_trait::async_trait;
use head::{Head, HeadBuffer, HEAD_MAX_BYTES};
use idle::{IdleConnections, IdleSpot};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// A connection without a new request for this long is closed (Pingora's keep-alive).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An answer that closes the connection (a refusal, a head too large): longest wait for
/// the request, for the answer to leave, and for the client to close after it.
const CLOSING_STEP: Duration = Duration::from_secs(1);
/// Refused connections being answered at once; past that (a flood of connections) a
/// refused connection is closed without an answer, so refusing costs bounded memory too.
const REFUSING_MAX: usize = 256;

/// The lb's HTTP service as Pingora runs it: the cap, the head read, then `http` (the
/// Pingora proxy with our [`crate::gateway::Gateway`]) for each request.
pub(crate) struct Front<A> {
    http: Arc<A>,
    connections: Arc<Connections>,
    refusing: Permits,
    metrics: Arc<Metrics>,
}

impl<A> Front<A> {
    pub(crate) fn new(http: A, connections: Arc<Connections>, metrics: Arc<Metrics>) -> Front<A> {
        Front {
            http: Arc::new(http),
            connections,
            refusing: Permits::new(REFUSING_MAX),
            metrics,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Front<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let open = &self.connections.open;
        let permit = match open.take() {
            Some(permit) => permit,
            None if self.connections.idle.close_oldest() => {
                self.metrics.idle_connection_closed();
                // The closed one releases its permit as soon as its task runs.
                open.take_over()
            }
            None => {
                self.refuse(stream).await;
                return None;
            }
        };
        self.serve(stream, shutdown).await;
        drop(permit);
        None
    }

    async fn cleanup(&self) {
        // Wakes the requests Pingora is waiting for, so their connections close.
        self.http.http_cleanup().await;
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Front<A> {
    /// Serves the requests of one admitted connection until it closes, idles out or
    /// breaks (what Pingora's own `ServerApp` does for HTTP/1.1, with the head read first).
    async fn serve(&self, mut stream: Stream, shutdown: &ShutdownWatch) {
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut buffer = HeadBuffer::new();
        let mut spot = IdleSpot::new(&self.connections.idle);
        loop {
            stream = match head::read(stream, &mut buffer, IDLE_TIMEOUT, &mut spot).await {
                Head::Complete(stream) => stream,
                Head::TooLarge(stream) => {
                    Box::pin(answer_and_close(stream, head_too_large(), false)).await;
                    return;
                }
                Head::Gone | Head::ClosedIdle => return,
            };
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(kept) => kept.apply_to_session(&mut session),
                None if *shutdown.borrow() => session.set_keepalive(None),
                None => session.set_keepalive(Some(IDLE_TIMEOUT.as_secs())),
            }
            let Some(reused) = self.http.process_new_http(session, shutdown).await else {
                return;
            };
            (stream, settings) = reused.consume();
        }
    }

    /// Answers a connection beyond the cap with a 503 and closes it.
    async fn refuse(&self, stream: Stream) {
        let refused = self.metrics.connection_refused();
        if refused.is_power_of_two() {
            tracing::warn!(
                "{} client connections open, the most {LB_MAX_CONNECTIONS} allows, none idle: new ones are refused with 503 ({refused} so far)",
                self.connections.open.max()
            );
        }
        if let Some(_refusing) = self.refusing.take() {
            // Boxed: its buffer is not part of every admitted connection's future.
            let answer = too_many_connections(self.connections.open.max());
            Box::pin(answer_and_close(stream, answer, true)).await;
        }
    }
}

/// Writes a whole answer and closes the connection, each step bounded by
/// [`CLOSING_STEP`]: the request is read first if `read_first` (so the answer follows
/// it), and after the answer whatever the client still sends is read until it closes,
/// so that closing does not reset the connection under the answer.
async fn answer_and_close(mut stream: Stream, answer: Vec<u8>, read_first: bool) {
    let mut scratch = [0u8; 512];
    if read_first {
        let _ = timeout(CLOSING_STEP, stream.read(&mut scratch)).await;
    }
    let sent = timeout(CLOSING_STEP, async {
        stream.write_all(&answer).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(&mut stream).await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = timeout(CLOSING_STEP, async {
            while stream.read(&mut scratch).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    }
}

/// The 503 of a connection beyond the cap.
fn too_many_connections(max: usize) -> Vec<u8> {
    let message = format!("the lb serves at most {max} connections at once; retry shortly");
    closing_answer(
        "503 Service Unavailable",
        "too_many_connections",
        &message,
        true,
    )
}

/// The 431 of a request head longer than [`HEAD_MAX_BYTES`].
fn head_too_large() -> Vec<u8> {
    let message = format!("the request head is longer than {HEAD_MAX_BYTES} bytes");
    closing_answer(
        "431 Request Header Fields Too Large",
        "header_too_large",
        &message,
        false,
    )
}

/// A whole HTTP/1.1 answer with a JSON error body and `connection: close`.
fn closing_answer(status: &str, kind: &str, message: &str, retry: bool) -> Vec<u8> {
    let body = service::reply::error_body(kind, message);
    let retry = if retry { "retry-after: 1\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The client connections: how many are open, at most `LB_MAX_CONNECTIONS` (plus, for a
/// moment, those closed for room whose task has not run yet), and which are idle.
pub(crate) struct Connections {
    open: Permits,
    idle: IdleConnections,
}

impl Connections {
    pub(crate) fn new(max: usize) -> Connections {
        Connections {
            open: Permits::new(max),
            idle: IdleConnections::new(max),
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.held()
    }

    /// Connections idle now (open, waiting for a request, no byte of it read).
    pub(crate) fn idle(&self) -> usize {
        self.idle.count()
    }
}

/// A count of things held at once with a maximum; taking one past it fails at once.
/// Lock-free: one atomic update per take and per release.
#[derive(Debug)]
pub(crate) struct Permits {
    held: AtomicUsize,
    max: usize,
}

/// One held permit, released when dropped.
#[derive(Debug)]
pub(crate) struct Permit<'a>(&'a Permits);

impl Permits {
    pub(crate) fn new(max: usize) -> Permits {
        Permits {
            held: AtomicUsize::new(0),
            max,
        }
    }

    pub(crate) fn take(&self) -> Option<Permit<'_>> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .ok()
            .map(|_| Permit(self))
    }

    /// A permit even past the maximum: for a connection served in place of one being
    /// closed, which releases its own permit soon after.
    pub(crate) fn take_over(&self) -> Permit<'_> {
        self.held.fetch_add(1, Ordering::AcqRel);
        Permit(self)
    }

    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_maximum_and_free_on_drop() {
        let permits = Permits::new(2);
        let first = permits.take().expect("first permit");
        let second = permits.take().expect("second permit");
        assert!(permits.take().is_none(), "a third is refused");
        assert_eq!(permits.held(), 2);
        drop(first);
        let third = permits.take().expect("a permit again after one was freed");
        drop((second, third));
        assert_eq!(permits.held(), 0);
    }

    #[test]
    fn the_refusal_is_a_complete_json_503_that_closes() {
        let answer = String::from_utf8(too_many_connections(7)).expect("text");
        let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(json["error"], "too_many_connections");
    }
}
