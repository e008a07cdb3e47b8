//! Reading request bodies whole, with a size bound so a stranger cannot make us buffer
//! without end.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Bodies of this API are tiny JSON objects; anything bigger is refused.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot read the request body (at most {MAX_BODY_BYTES} bytes): {0}")]
pub struct BodyError(String);

pub async fn read(body: Incoming) -> Result<Bytes, BodyError> {
    Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| BodyError(e.to_string()))
}
