//! Request bodies, read with a bound: the lb never holds more of a body than its route
//! takes ([`crate::gateway::routes::Route::max_body`]), whatever the client sends or declares.

use bytes::BytesMut;
use pingora::proxy::Session;
use std::time::Duration;

/// After a 413, how long the unread rest of the body may take to arrive and be discarded
/// before the connection is closed instead.
const DISCARD_MAX: Duration = Duration::from_secs(1);

/// The whole request body, or `None` as soon as it is known to exceed `limit` bytes
/// (from `Content-Length` up front, or while reading a chunked one).
pub(crate) async fn read_limited(
    session: &mut Session,
    limit: usize,
) -> pingora::Result<Option<BytesMut>> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::with_capacity(declared.map_or(128.min(limit), |len| len as usize));
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Before answering 413: reads and discards the rest of the body, for at most
/// [`DISCARD_MAX`]. A client that sends its whole body before it reads (most simple
/// clients do) then gets to read the 413; answering first and closing with the body
/// still arriving makes the kernel reset the connection, and such a client sees only a
/// broken pipe. Discarded in time, the connection can carry the next request; if not,
/// Pingora closes it after the answer.
pub(crate) async fn discard_rest(session: &mut Session) {
    session.set_total_drain_timeout(Some(DISCARD_MAX));
    if let Err(e) = session.drain_request_body().await {
        tracing::debug!("the rest of a body too large was not read: {e}");
    }
}

/// Whether the request says it carries a body (`Content-Length` above 0, or any
/// `Transfer-Encoding`).
pub(crate) fn declared(session: &Session) -> bool {
    let headers = &session.req_header().headers;
    headers.contains_key("transfer-encoding")
        || headers
            .get("content-length")
            .is_some_and(|v| v.as_bytes() != b"0")
}
