//! `lb`: read the configuration, run until SIGTERM and the drain are over.
//! Exit 0 when every accepted payment reached a worker, 1 when the drain timed out,
//! 2 when it could not start.

use lb::config::Config;
use lb::server::{self, Exit};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Quiet by default; RUST_LOG overrides. Pingora's own `log` records land here too;
    // its health check's flips are multi-line dumps, and the forwarder already reports a
    // worker that stops (or resumes) taking intake.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,pingora_load_balancing=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("lb: {e}");
            return ExitCode::from(2);
        }
    };
    match server::run(config) {
        Ok(Exit::Drained) => ExitCode::SUCCESS,
        Ok(Exit::PaymentsLeft) => ExitCode::from(1),
        Err(e) => {
            tracing::error!("lb: {e}");
            ExitCode::from(2)
        }
    }
}
