//! `floor`: the bare responder our benchmarks compare the real stack against. It answers
//! the contest's three endpoints with no work at all, so its latency is the floor that
//! HTTP over loopback allows.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use sim::config::FloorConfig;
use sim::reply::{self, Reply};
use sim::server::{self, ServeError};
use sim::shutdown;
use std::process::ExitCode;

fn main() -> ExitCode {
    server::run_service("floor", FloorConfig::from_env(), |c| c.threads, run)
}

async fn run(config: FloorConfig) -> Result<(), ServeError> {
    let listener = server::bind(config.listen).await?;
    let summary = Bytes::from(payment::Summary::default().to_json());
    tokio::select! {
        () = server::serve(listener, move |req| answer(summary.clone(), req)) => Ok(()),
        stopped = shutdown::signalled() => stopped,
    }
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
        ("/payments" | "/purge-payments", _) => reply::method_not_allowed("POST"),
        ("/payments-summary", _) => reply::method_not_allowed("GET"),
        _ => reply::not_found(),
    }
}
