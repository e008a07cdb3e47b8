//! `sim`: one simulated payment processor. See the crate docs and README's `## sim`.

use sim::config::{SimConfig, SIM_USAGE};
use sim::server::{self, ServeError};
use sim::state::Sim;
use sim::{routes, shutdown};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{SIM_USAGE}");
        return ExitCode::SUCCESS;
    }
    server::run_service(
        "sim",
        SimConfig::from_args_and_env(&args),
        |c| c.threads,
        run,
    )
}

async fn run(config: SimConfig) -> Result<(), ServeError> {
    let listener = server::bind(config.listen).await?;
    let sim = Arc::new(Sim::new(&config));
    tracing::info!("sim listening on {}", config.listen);
    tokio::select! {
        () = server::serve(listener, move |req| routes::handle(sim.clone(), req)) => Ok(()),
        stopped = shutdown::signalled() => stopped,
    }
}
