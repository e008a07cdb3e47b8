//! `lb`: read the configuration, run until SIGTERM and the drain are over.
//! Exit 0 when every accepted payment reached a worker, 1 when the drain timed out,
//! 2 when it could not start (a bad configuration included).

use lb::server::{self, Exit};
use std::process::ExitCode;

/// Quiet by default; RUST_LOG overrides. Pingora's own `log` records land here too; its
/// health check's flips are multi-line dumps, and the forwarder already reports a worker
/// that stops (or resumes) taking intake.
const LOG_FILTER: &str = "warn,pingora_load_balancing=error";

fn main() -> ExitCode {
    // First, before any thread exists (see `lb::shutdown`).
    let held = lb::shutdown::hold_stop_signals();
    let config: lb::config::Config = service::config("lb");
    service::logging(LOG_FILTER);
    if let Err(e) = held {
        tracing::warn!("cannot hold SIGTERM/SIGINT back while starting: {e}");
    }
    service::exit("lb", server::run(config).map(Exit::code), ExitCode::from(2))
}
