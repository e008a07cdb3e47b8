//! `floor`: the bare responder our benchmarks compare the real stack against. It answers
//! the contest's three endpoints with no work at all, so its latency is the floor that
//! HTTP over loopback allows.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use service::reply::{self, Reply};
use sim::config::FloorConfig;
use sim::server::{self, ServeError};
use std::process::ExitCode;

fn main() -> ExitCode {
    let config: FloorConfig = service::config("floor");
    service::logging(service::QUIET);
    service::run("floor", config.threads, serve(config))
}

async fn serve(config: FloorConfig) -> Result<(), ServeError> {
    let summary = Bytes::from(payment::Summary::default().to_json());
    server::serve_until_signal(config.listen, move |req| answer(summary.clone(), req)).await
}

async fn answer(summary: Bytes, req: Request<Incoming>) -> Reply {
    match (req.uri().path(), req.method()) {
        ("/payments", &Method::POST) => {
            // Read the body so the connection stays usable for the next request.
            let _ = req.into_body().collect().await;
            reply::empty(StatusCode::ACCEPTED)
        }
        ("/payments-summary", &Method::GET) => reply::json(StatusCode::OK, summary),
        ("/purge-payments", &Method::POST) => reply::empty(StatusCode::OK),
        ("/payments" | "/purge-payments", _) => reply::method_not_allowed(req.uri().path(), "POST"),
        ("/payments-summary", _) => reply::method_not_allowed(req.uri().path(), "GET"),
        _ => reply::not_found(req.uri().path()),
    }
}
