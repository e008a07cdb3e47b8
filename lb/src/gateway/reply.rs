//! The answers the lb writes itself (everything but the proxied routes) through Pingora:
//! an empty status, or the JSON error body of every binary (`service::reply::error_body`).
//!
//! Headers are built without Pingora's case map (HTTP/1.1 names are case-insensitive, so
//! they go out in lower case) and with room for the two Pingora adds (`date`,
//! `connection`): the 202 then costs one small header map, never grown.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// A status with an empty body (the 202 of an accepted payment).
pub(crate) async fn empty(session: &mut Session, status: u16) -> Result<()> {
    let mut header = head(status, 1)?;
    header.insert_header("content-length", "0")?;
    session.write_response_header(Box::new(header), true).await
}

/// A JSON error body, with `headers` added (`retry-after`, `allow`).
pub(crate) async fn error(
    session: &mut Session,
    status: u16,
    kind: &str,
    message: &str,
    headers: &[(&'static str, &str)],
) -> Result<()> {
    let body = service::reply::error_body(kind, message);
    let mut header = head(status, 3 + headers.len())?;
    header.insert_header("content-type", "application/json")?;
    for (name, value) in headers {
        header.insert_header(*name, *value)?;
    }
    with_body(session, header, Bytes::from(body)).await
}

/// A response head with room for `ours` headers plus Pingora's two.
fn head(status: u16, ours: usize) -> Result<ResponseHeader> {
    ResponseHeader::build_no_case(status, Some(ours + 2))
}

async fn with_body(session: &mut Session, mut header: ResponseHeader, body: Bytes) -> Result<()> {
    header.insert_header("content-length", body.len().to_string())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}
