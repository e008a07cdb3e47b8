//! [`Shared`]: the handles every part of a worker works with (the store, the payments it
//! holds, the routing, the metrics and the recovery hint), made once when the worker
//! starts.
//!
//! Why one named set: intake, dispatch, recovery, the health pollers and the server act on
//! the same payments and the same view of the processors. Each part's constructor takes a
//! clone of this and keeps what is its own beside it, so how the parts are joined is read
//! in one place (`crate::worker`), and no part reaches into another for a handle.

use crate::held::Held;
use crate::metrics::Metrics;
use crate::routing::{Policy, Routing};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;
use storage::Store;

/// The handles a worker's parts share; cheap to clone (every clone sees the same ones).
#[derive(Clone)]
pub(crate) struct Shared {
    /// The database all workers share.
    pub store: Store,
    /// The payments this worker holds, waiting or in a call.
    pub held: Arc<Held>,
    /// Where payments may go now, from what this worker observes of the processors.
    pub routing: Arc<Routing>,
    pub metrics: Arc<Metrics>,
    /// Raised by a write that failed and may have committed; recovery then reads back this
    /// worker's pending payments.
    pub recovery_hint: RecoveryHint,
}

impl Shared {
    /// The handles of a worker on `store`: new metrics, no payments held, at most
    /// `queue_max` payments (`DISPATCH_QUEUE_MAX`), a routing with `policy` that probes a
    /// failing processor at most every `probe_interval`.
    pub(crate) fn new(
        store: Store,
        queue_max: usize,
        policy: Policy,
        probe_interval: Duration,
    ) -> Shared {
        let metrics = Arc::new(Metrics::default());
        let routing = Routing::new(policy, probe_interval, Arc::clone(&metrics));
        Shared {
            store,
            held: Arc::new(Held::new(queue_max)),
            routing: Arc::new(routing),
            metrics,
            recovery_hint: RecoveryHint::default(),
        }
    }
}

/// The signal from a write that failed and may have committed anyway (intake's, or a
/// claim) to the next scan: read back this worker's pending payments. Clones share it.
#[derive(Clone, Default)]
pub(crate) struct RecoveryHint(Arc<AtomicBool>);

impl RecoveryHint {
    /// A write's outcome is unknown: the next scan reads back what this worker owns.
    pub(crate) fn mark(&self) {
        self.0.store(true, SeqCst);
    }

    /// Whether a write was marked since the last take; clears the mark.
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, SeqCst)
    }
}
