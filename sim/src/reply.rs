//! Building responses: every answer of `sim` and `floor` is a small JSON document (or
//! nothing), so one body type and three constructors cover them all.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub type Reply = Response<Full<Bytes>>;

/// A JSON body with `status`.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"error":"<kind>","message":"..."}` with `status`.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "error": kind, "message": message });
    json(status, body.to_string())
}

/// A status with an empty body (204, or a bare 2xx).
pub fn empty(status: StatusCode) -> Reply {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

pub fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "not_found", "no such resource")
}

/// 405 naming the methods the path does take.
pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this path takes {allow}"),
    );
    response
        .headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    response
}
