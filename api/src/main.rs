//! The `api` binary: reads the configuration (see `api::config`), starts the runtime and
//! runs the worker until SIGTERM/SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config: api::config::Config = service::config("api");
    service::logging(service::QUIET);
    service::run("api", config.threads, api::run(config))
}
