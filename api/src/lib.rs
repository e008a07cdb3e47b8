//! The payment worker. Two of these run side by side behind the lb, sharing one SQLite
//! file (crate `storage`): each records the payments the lb forwards (`intake`), pays them
//! through the processors (`dispatch`, `processor`) as the policy says (`routing`, fed by
//! call answers and the shared `health` records), takes over the payments of a dead worker
//! (`recovery`), and answers the summary and the purge from the database (`records`), so
//! both agree.
//!
//! [`Worker`] builds the parts from one set of shared handles (`shared`), owns every
//! background task it starts and shuts them down in order (see `worker`); [`run`] is a
//! worker until SIGTERM/SIGINT.

pub mod config;
mod dispatch;
mod health;
mod held;
mod intake;
mod metrics;
mod processor;
mod records;
mod recovery;
mod routing;
mod server;
mod shared;
mod shutdown;
mod worker;

pub use worker::Worker;

use config::{Config, Listen};
use hyper::http::uri::InvalidUri;
use service::Signals;
use storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("database {database}: {source}")]
    Storage {
        /// The SQLite path or the PostgreSQL URL, password hidden.
        database: String,
        source: StorageError,
    },
    #[error("cannot listen on {listen:?}: {source}")]
    Listen {
        listen: Listen,
        source: std::io::Error,
    },
    #[error("bad processor URL: {0}")]
    ProcessorUrl(#[from] InvalidUri),
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs the worker until SIGTERM/SIGINT, then shuts it down (see [`Worker::shutdown`]).
pub async fn run(config: Config) -> Result<(), ApiError> {
    // Installed before anything starts, so an early signal is not lost.
    let mut signals = Signals::install().map_err(ApiError::Signals)?;
    let worker = Worker::start(config).await?;
    signals.recv().await;
    worker.shutdown().await;
    Ok(())
}
