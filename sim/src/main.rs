//! `sim`: one simulated payment processor. See the crate docs and docs/architecture.md.

use sim::config::SimConfig;
use sim::server::{self, ServeError};
use sim::{routes, state::Sim};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let config: SimConfig = service::config("sim");
    service::logging(service::QUIET);
    service::run("sim", config.threads, serve(config))
}

async fn serve(config: SimConfig) -> Result<(), ServeError> {
    let sim = Arc::new(Sim::new(&config));
    server::serve_until_signal(config.listen, move |req| routes::handle(sim.clone(), req)).await
}
