//! Waiting for the signal that stops a binary. Both binaries keep everything in memory,
//! so stopping is simply returning from `main` once SIGINT or SIGTERM arrives.

use crate::server::ServeError;
use tokio::signal::unix::{signal, SignalKind};

/// Returns when SIGINT (Ctrl-C) or SIGTERM arrives.
pub async fn signalled() -> Result<(), ServeError> {
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
