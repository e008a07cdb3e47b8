//! The public port: a Pingora [`ProxyHttp`] whose filters, in the order Pingora calls them,
//! read like the life of a request: route it; answer `POST /payments` here ([`accept`]),
//! never reaching a worker; proxy the summary and the purge to a worker the health check
//! saw up, retrying a refused connection on another; answer every error with a JSON body.
//! Invariant: no body larger than its route takes ([`Route::max_body`]) is read, and a
//! request refused for its body goes no further (a purge with a body is not performed).

mod accept;
mod body;
mod reply;
mod routes;

use crate::delivery::journal::Journal;
use crate::delivery::queue::QueueSender;
use crate::metrics::Metrics;
use accept::Acceptor;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::{selection::RoundRobin, Backend, LoadBalancer};
use pingora::modules::http::HttpModules;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use routes::{route, Miss, Route};
use std::sync::Arc;
use std::time::Duration;

/// A worker that does not accept the connection within this is skipped for the request.
/// A whole second: Pingora times anything shorter on a clock thread of its own, which the
/// lb does without (see `server`); a worker that is down refuses at once anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A worker that accepted the connection but stays silent this long (hung, stopped) gets
/// the request a 502 instead of holding it forever.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Gateway {
    acceptor: Acceptor,
    workers: Arc<LoadBalancer<RoundRobin>>,
    worker_count: usize,
    journal: Arc<Journal>,
}

/// What one request carries between the filters.
#[derive(Default)]
pub(crate) struct RequestCtx {
    /// The worker the current proxy attempt goes to.
    current: Option<Backend>,
    /// Workers that refused this request's connection.
    refused: Vec<Backend>,
    /// The client sent a (small) body, read and dropped: the worker gets none.
    body_dropped: bool,
    /// The request is a purge.
    purge: bool,
}

impl Gateway {
    pub(crate) fn new(
        queue: QueueSender,
        journal: Arc<Journal>,
        workers: Arc<LoadBalancer<RoundRobin>>,
        worker_count: usize,
        metrics: Arc<Metrics>,
    ) -> Gateway {
        let acceptor = Acceptor::new(queue, journal.clone(), metrics);
        Gateway {
            acceptor,
            workers,
            worker_count,
            journal,
        }
    }

    fn pick_worker(&self, ctx: &RequestCtx) -> Option<Backend> {
        let untried = |b: &Backend| !ctx.refused.contains(b);
        self.workers
            .select_with(b"", 256, |b, healthy| healthy && untried(b))
            // The health check's view is up to one interval old: before giving up, try the
            // workers it last saw down.
            .or_else(|| self.workers.select_with(b"", 256, |b, _| untried(b)))
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    /// No downstream modules: Pingora's default is a (disabled) compression module that
    /// every response would pass through; our answers are a few bytes.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// Routes the request: answers `POST /payments` here, unknown paths and wrong methods
    /// with their 404/405 (`GET /metrics` is not on this port: it has its own listener).
    /// The routes without a body take at most [`routes::NO_BODY_MAX_BYTES`] of one, read
    /// and dropped here; more is 413 and the request goes no further.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let header = session.req_header();
        let route = match route(&header.method, header.uri.path()) {
            Ok(route) => route,
            Err(miss) => {
                Box::pin(answer_miss(session, miss)).await?;
                return Ok(true);
            }
        };
        if route == Route::Payments {
            self.acceptor.answer(session).await?;
            return Ok(true);
        }
        // Every path but the 202's is boxed: Pingora boxes this filter's future for each
        // request, and one under 1 KiB comes from the allocator's per-thread cache.
        Box::pin(read_for_worker(session, ctx, route)).await
    }

    /// Tells the worker there is no body when the client's (small) one was dropped.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.body_dropped {
            upstream_request.remove_header("transfer-encoding");
            upstream_request.insert_header("content-length", "0")?;
        }
        Ok(())
    }

    /// Picks a worker for the summary and the purge: round robin over the workers the
    /// health check last saw up, skipping any that already refused this request's
    /// connection.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let backend = self.pick_worker(ctx).ok_or_else(|| {
            Error::explain(
                ErrorType::HTTPStatus(502),
                "no api worker accepts connections",
            )
        })?;
        let peer = peer_of(&backend)?;
        ctx.current = Some(backend);
        Ok(peer)
    }

    /// Clears the journal once a worker answered a purge with 200. A payment of before the
    /// purge that still reaches a worker (queued here, or replayed after a crash before
    /// this clear) is not recorded: the workers keep the purge's fence.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.purge && upstream_response.status.is_success() {
            self.journal.clear();
        }
        Ok(())
    }

    /// Marks a refused connection as retryable while an untried worker is left, so the
    /// summary keeps answering while one worker is down, even before the health check
    /// notices.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.refused.extend(ctx.current.take());
        if ctx.refused.len() < self.worker_count {
            e.set_retry(true);
        }
        e
    }

    /// Answers what could not be proxied with a JSON error, like every other error of ours.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(code), _) => *code,
            // The client is gone: nobody to answer.
            (
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => 0,
            (_, ErrorSource::Downstream) => 400,
            (_, ErrorSource::Upstream) => 502,
            (_, ErrorSource::Internal | ErrorSource::Unset) => 500,
        };
        let kind = match code {
            400..=499 => "bad_request",
            502..=504 => "worker_unavailable",
            _ => "internal",
        };
        if code > 0 {
            let message = e.to_string();
            session.set_keepalive(None);
            if let Err(write) = reply::error(session, code, kind, &message, &[]).await {
                tracing::debug!("cannot send the error answer: {write}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// 404 or 405 (with `Allow`).
/// Reads the body a proxied route may carry and drops it; more than the route takes is
/// answered 413 here (true: answered).
async fn read_for_worker(
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: Route,
) -> Result<bool> {
    ctx.body_dropped = body::declared(session);
    ctx.purge = route == Route::Purge;
    if body::read_limited(session, route.max_body())
        .await?
        .is_none()
    {
        answer_too_large(session, route.max_body()).await?;
        return Ok(true);
    }
    Ok(false)
}

async fn answer_miss(session: &mut Session, miss: Miss) -> Result<()> {
    let path = session.req_header().uri.path();
    let (message, allow) = match miss {
        Miss::NotFound => (service::reply::no_route(path), None),
        Miss::MethodNotAllowed { allowed } => (
            service::reply::takes_only(path, allowed),
            Some(("allow", allowed)),
        ),
    };
    let headers: Vec<_> = allow.into_iter().collect();
    reply::error(session, miss.status(), miss.kind(), &message, &headers).await
}

/// 413 for a body on a route that takes none.
async fn answer_too_large(session: &mut Session, limit: usize) -> Result<()> {
    body::discard_rest(session).await;
    let message = format!(
        "{} takes no body (at most {limit} bytes)",
        session.req_header().uri.path()
    );
    reply::error(session, 413, "body_too_large", &message, &[]).await
}

/// How Pingora reaches a worker.
fn peer_of(backend: &Backend) -> Result<Box<HttpPeer>> {
    let mut peer = match &backend.addr {
        PingoraAddr::Inet(addr) => HttpPeer::new(*addr, false, String::new()),
        PingoraAddr::Unix(addr) => {
            let path = addr.as_pathname().and_then(|p| p.to_str()).ok_or_else(|| {
                Error::explain(
                    ErrorType::InternalError,
                    "worker socket address has no path",
                )
            })?;
            HttpPeer::new_uds(path, false, String::new())?
        }
    };
    peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
    peer.options.read_timeout = Some(READ_TIMEOUT);
    Ok(Box::new(peer))
}
