//! Graceful shutdown: on SIGTERM (or SIGINT) stop accepting payments, deliver every
//! queued one to the workers (at most `LB_DRAIN_TIMEOUT_MS`), then let Pingora close the
//! port and exit: Pingora is handed `DrainOnSignal` as its shutdown trigger, which runs the
//! drain first and only then reports a graceful terminate.
//!
//! Invariant: no signal skips the drain. During it the port still answers (the summary
//! works, new payments get 503), and `main` holds both signals pending
//! ([`hold_stop_signals`]) until the trigger's handler is installed.

use crate::delivery::queue::QueueSender;
use crate::metrics::Metrics;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The signals that stop the lb.
const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// Holds SIGTERM and SIGINT pending in the calling thread and in every thread it starts
/// afterwards; call it first in `main`, before any thread exists.
pub fn hold_stop_signals() -> io::Result<()> {
    set_stop_signals_mask(libc::SIG_BLOCK)
}

/// Lets SIGTERM and SIGINT through again to the calling thread (a pending one at once).
fn release_stop_signals() -> io::Result<()> {
    set_stop_signals_mask(libc::SIG_UNBLOCK)
}

fn set_stop_signals_mask(how: libc::c_int) -> io::Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is initialised by sigemptyset before any other use; pthread_sigmask
    // only changes the calling thread's mask and is given no old-mask pointer.
    let failed = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for signal in STOP_SIGNALS {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        libc::pthread_sigmask(how, set.as_ptr(), std::ptr::null_mut())
    };
    match failed {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

/// The drain's two moments, shared by the signal watch and the forwarder.
pub(crate) struct Shutdown {
    draining: watch::Sender<bool>,
    drained: watch::Sender<bool>,
}

impl Shutdown {
    pub(crate) fn new() -> Arc<Shutdown> {
        Arc::new(Shutdown {
            draining: watch::Sender::new(false),
            drained: watch::Sender::new(false),
        })
    }

    /// Becomes true when the drain starts.
    pub(crate) fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// The forwarder calls this once the queue is closed and empty.
    pub(crate) fn mark_drained(&self) {
        self.drained.send_replace(true);
    }

    pub(crate) fn is_drained(&self) -> bool {
        *self.drained.borrow()
    }

    /// Starts the drain and waits for it, at most `timeout`; true if it finished.
    async fn drain(&self, timeout: Duration) -> bool {
        self.draining.send_replace(true);
        let mut drained = self.drained.subscribe();
        let finished = tokio::time::timeout(timeout, drained.wait_for(|d| *d)).await;
        matches!(finished, Ok(Ok(_)))
    }
}

/// Pingora's shutdown trigger: a signal, then the drain, then Pingora's own shutdown.
pub(crate) struct DrainOnSignal {
    shutdown: Arc<Shutdown>,
    timeout: Duration,
    queue: QueueSender,
    metrics: Arc<Metrics>,
}

impl DrainOnSignal {
    pub(crate) fn new(
        shutdown: Arc<Shutdown>,
        timeout: Duration,
        queue: QueueSender,
        metrics: Arc<Metrics>,
    ) -> Self {
        DrainOnSignal {
            shutdown,
            timeout,
            queue,
            metrics,
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        let installed = service::signals::Signals::install();
        // Installed or not, the signals are held back no longer: without our handler,
        // their default action (exit) is better than being ignored.
        if let Err(e) = release_stop_signals() {
            tracing::error!("cannot unblock SIGTERM/SIGINT, graceful shutdown is off: {e}");
        }
        let name = match installed {
            Ok(mut signals) => signals.recv().await,
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM/SIGINT, graceful shutdown is off: {e}");
                return std::future::pending().await;
            }
        };
        // At once, even while the forwarder is still busy retrying a batch.
        self.queue.refuse_new();
        tracing::info!(
            "{name}: delivering {} payments to the workers",
            self.metrics.undelivered()
        );
        if !self.shutdown.drain(self.timeout).await {
            tracing::error!(
                "drain timed out after {:?}: {} accepted payments reached no worker and are lost",
                self.timeout,
                self.metrics.undelivered()
            );
        }
        ShutdownSignal::GracefulTerminate
    }
}
