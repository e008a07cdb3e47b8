//! What every service binary of this project (`lb`, `api`, `sim`, `floor`) shares, so the
//! four start, stop, fail and report the same way:
//!
//! - [`config`]: configuration declared once per binary with clap (flags and environment
//!   variables): values trimmed, an empty one unset, a bad one exits 2 naming the variable;
//! - [`logging`], [`run`], [`exit`]: the rest of every `main`; [`signals`]: SIGTERM, SIGINT;
//! - [`reply`]: JSON answers and the one error body `{"error":kind,"message":...}`;
//! - [`prometheus`]: the text exposition and the one latency histogram layout;
//! - [`address`]: `host:port` or `unix:/path`, as workers listen and the lb reaches them.

pub mod address;
pub mod config;
pub mod prometheus;
pub mod reply;
pub mod signals;

pub use address::{Address, AddressError};
pub use config::config;
pub use signals::Signals;

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The log filter of a binary that has nothing to add: warnings and errors only.
pub const QUIET: &str = "warn";

/// Why a binary could not get going (after its configuration was read).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` or else by `default_filter`
/// (quiet by default: logging costs CPU the contest counts); colours only on a terminal,
/// so a container's or a test's log file reads as plain text.
pub fn logging(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A tokio runtime of `threads` threads: one runs everything on the calling thread (the
/// cheapest on one core), more get a multi-threaded runtime.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, StartError> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build().map_err(StartError::Runtime)
}

/// Runs `serve` to its end on a runtime of `threads` threads: exit 0 when it returns
/// `Ok`, 1 when it (or the runtime) fails.
pub fn run<E: Display>(
    binary: &str,
    threads: usize,
    serve: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let ended = match runtime(threads) {
        Ok(runtime) => runtime.block_on(serve).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    exit(binary, ended.map(|()| ExitCode::SUCCESS), ExitCode::FAILURE)
}

/// What `main` returns: the code of `ended`, or `on_error` once the error is logged and
/// printed as `<binary>: <error>` (the log may be filtered away; stderr is not).
pub fn exit<E: Display>(binary: &str, ended: Result<ExitCode, E>, on_error: ExitCode) -> ExitCode {
    ended.unwrap_or_else(|e| {
        tracing::error!("{e}");
        eprintln!("{binary}: {e}");
        on_error
    })
}
