//! The `api` binary: reads the configuration (see `api::config`), starts the runtime and
//! runs the worker until SIGTERM/SIGINT.

use tracing_subscriber::EnvFilter;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match api::config::Config::from_env() {
        Ok(config) => config,
        Err(e) => fail(&e),
    };
    let runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => fail(&e),
    };
    if let Err(e) = runtime.block_on(api::run(config)) {
        fail(&e);
    }
}

fn fail(error: &dyn std::fmt::Display) -> ! {
    tracing::error!("{error}");
    eprintln!("api: {error}");
    std::process::exit(1);
}
