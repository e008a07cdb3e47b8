//! SIGTERM and SIGINT: every binary stops on either (docker sends the first, a person at
//! the terminal the second). What stopping means is each binary's business.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The two handlers, installed at start so an early signal is not lost.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Returns the name of the first SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> &'static str {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        tracing::info!("{name}: shutting down");
        name
    }
}

/// Installs the handlers and waits for the first signal; its name.
pub async fn terminated() -> std::io::Result<&'static str> {
    Ok(Signals::install()?.recv().await)
}
