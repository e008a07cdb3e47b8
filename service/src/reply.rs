//! The answers our hyper servers (`api`, `sim`, `floor`) build, and the one error body of
//! every binary, `{"error":"<kind>","message":"..."}`: `kind` is stable and
//! machine-readable, `message` is for people. (The lb writes the same body through
//! Pingora, with [`error_body`].)

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub type Reply = Response<Full<Bytes>>;

/// The content type of the Prometheus text exposition.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4";

/// A body with its content type.
fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = empty(status);
    *reply.body_mut() = Full::new(body.into());
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// A JSON body that is already rendered.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    with_body(status, "application/json", body)
}

/// Prometheus text, 200.
pub fn prometheus(body: String) -> Reply {
    with_body(StatusCode::OK, PROMETHEUS, body)
}

/// A status with an empty body (204, or a bare 2xx).
pub fn empty(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

/// The error answer, [`error_body`] with `status`.
pub fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Reply {
    json(status, error_body(kind, &message.to_string()))
}

/// The JSON body of every error answer: `{"error":kind,"message":...}`.
pub fn error_body(kind: &str, message: &str) -> String {
    serde_json::json!({ "error": kind, "message": message }).to_string()
}

/// The message of a 404 (`not_found`).
pub fn no_route(path: &str) -> String {
    format!("no route {path}")
}

/// The message of a 405 (`method_not_allowed`).
pub fn takes_only(path: &str, allow: &str) -> String {
    format!("{path} takes {allow} only")
}

/// 404 for a path that is none of ours.
pub fn not_found(path: &str) -> Reply {
    error(StatusCode::NOT_FOUND, "not_found", no_route(path))
}

/// 405 naming the methods the path does take (also in `Allow`).
pub fn method_not_allowed(path: &str, allow: &'static str) -> Reply {
    let message = takes_only(path, allow);
    let mut reply = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    );
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    reply
}
