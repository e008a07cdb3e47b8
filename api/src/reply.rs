//! Building the HTTP answers: JSON bodies, and the one error shape every endpoint uses,
//! `{"error":"<kind>","message":"..."}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

pub type Reply = Response<Full<Bytes>>;

fn with_body(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    reply
}

/// A JSON body that is already rendered.
pub fn json(status: StatusCode, body: String) -> Reply {
    with_body(status, "application/json", body)
}

/// Prometheus text exposition.
pub fn prometheus(body: String) -> Reply {
    with_body(StatusCode::OK, "text/plain; version=0.0.4", body)
}

/// The error body: `kind` is stable and machine-readable, `message` is for people.
pub fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Reply {
    let body = serde_json::json!({ "error": kind, "message": message.to_string() });
    json(status, body.to_string())
}
