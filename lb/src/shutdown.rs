//! Graceful shutdown: on SIGTERM (or SIGINT) stop accepting payments, deliver every
//! queued one to the workers, then let Pingora close the port and exit.
//!
//! Why not just Pingora's own SIGTERM handling: it broadcasts shutdown to the services
//! and then sleeps a *fixed* grace period before tearing the runtimes down (cancelling
//! whatever still runs), and it treats SIGINT as "drop everything now". We want "as
//! long as the drain takes, bounded by `LB_DRAIN_TIMEOUT_MS`" for both signals. So the
//! lb hands Pingora a custom [`ShutdownSignalWatch`], [`DrainOnSignal`], which on a
//! signal first runs the drain and only then reports `GracefulTerminate`; Pingora is
//! configured with a zero grace period, so its part (stop listening, close idle
//! keep-alive connections, stop runtimes) follows at once.
//!
//! During the drain the port still answers: the summary keeps working and new payments
//! get 503 (the queue refuses them from the signal on), so nothing is accepted that
//! could be lost.
//!
//! Until [`DrainOnSignal`] has installed its handler, the default action of SIGTERM is
//! to kill the process, and the port opens (on a service thread) before Pingora asks
//! for the trigger (on the main thread): a SIGTERM in that window would skip the drain
//! (`lb/tests/shutdown.rs` saw it in about 1 start in 30). So `main` first holds both
//! signals back ([`hold_stop_signals`]): every thread started later inherits the mask,
//! a signal that arrives is kept pending, and the handler lets it through once
//! installed, which then starts the drain as for any later signal.

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
