//! Dispatch: pays the payments this worker holds ([`crate::held`]) through the processors.
//! The [`Dispatcher`] plans rounds and holds the permits (`DISPATCH_CONCURRENCY` per
//! processor); each call holds a routing [`Ticket`] until it ends. The decisions are pure
//! and tested apart: [`plan`](mod@plan) chooses a round's calls,
//! [`after_call`](mod@after_call) what an answer means (the one place "never charge twice",
//! invariant 2, is decided); [`call`] carries them out, [`lookup`] asks a failing
//! processor about its pinned payments.
//! Rounds and lanes: docs/architecture.md, "The life of a payment", step 4.

mod after_call;
mod call;
mod lookup;
mod plan;

use crate::held::{Job, Place};
use crate::processor::ProcessorClient;
use crate::routing::{Backlog, Ticket};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use call::Caller;
use lookup::Lookups;
use payment::{Millis, Processor};
use plan::plan;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How often the payments that wait for the processor they are pinned to, and the sends
/// taken again for a stale stamp, are logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The dispatcher of one worker: its rounds, which hand their calls to the [`Caller`] and
/// their pinned payments to the [`Lookups`].
pub(crate) struct Dispatcher {
    shared: Shared,
    caller: Arc<Caller>,
    lookups: Arc<Lookups>,
    /// Calls in flight at once, all processors together: the permits of `permits`.
    concurrency: usize,
    permits: Arc<Semaphore>,
    probe_interval: Duration,
}

/// A planned call, counted by the routing as in flight until it ends (its ticket).
struct Call {
    job: Job,
    ticket: Ticket,
}

impl Call {
    fn processor(&self) -> Processor {
        self.ticket.processor()
    }
}

impl Dispatcher {
    /// `per_processor`: calls in flight at once per processor (`DISPATCH_CONCURRENCY`);
    /// a round runs at least every `probe_interval`; `owned_for` bounds each send (see
    /// [`Caller`]), `late_store_max` each lookup (see [`Lookups`]).
    pub(crate) fn new(
        shared: Shared,
        clients: [Arc<ProcessorClient>; 2],
        per_processor: usize,
        probe_interval: Duration,
        (owned_for, late_store_max): (Duration, Duration),
    ) -> Dispatcher {
        let concurrency = per_processor * clients.len();
        Dispatcher {
            caller: Arc::new(Caller::new(shared.clone(), clients.clone(), owned_for)),
            lookups: Arc::new(Lookups::new(shared.clone(), clients, late_store_max)),
            shared,
            concurrency,
            permits: Arc::new(Semaphore::new(concurrency)),
            probe_interval,
        }
    }

    /// Runs rounds until shutdown. Calls already started keep running; see [`Dispatcher::drain`].
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut reported = (Instant::now(), 0);
        while !shutdown.is_shutdown() {
            self.round(Millis::now());
            self.report(&mut reported);
            tokio::select! {
                _ = self.shared.held.changed() => {}
                _ = tokio::time::sleep(self.probe_interval) => {}
                _ = shutdown.recv() => {}
            }
        }
    }

    /// Waits until every started call finished, at most until `deadline`. True if all did.
    /// Only once [`Dispatcher::run`] has returned: no round may take permits meanwhile.
    pub(crate) async fn drain(&self, deadline: tokio::time::Instant) -> bool {
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        tokio::time::timeout_at(deadline, self.permits.acquire_many(all))
            .await
            .is_ok()
    }

    /// Plans the calls of this round and starts them: their permits and tickets are taken
    /// here, the store's confirmation and the calls follow in a task of their own.
    fn round(&self, now: Millis) {
        let backlog = Backlog {
            waiting: self.shared.held.waiting_anywhere(),
        };
        let view = self.shared.routing.view(now, backlog);
        self.lookups.look_up_pinned(&view);
        let free = self.permits.available_permits();
        let planned = self
            .shared
            .held
            .with_lanes(|lanes| plan(lanes, &view, free));
        if planned.is_empty() {
            return;
        }
        let count = u32::try_from(planned.len()).unwrap_or(u32::MAX);
        // Only this task takes permits, and the plan took at most the free ones.
        let Ok(mut permits) = Arc::clone(&self.permits).try_acquire_many_owned(count) else {
            tracing::error!("the permits of a round are gone; its payments wait");
            planned
                .into_iter()
                .for_each(|c| self.shared.held.requeue(c.job, Place::Front));
            return;
        };
        let calls = planned
            .into_iter()
            .map(|c| Call {
                job: c.job,
                ticket: self.shared.routing.start(c.processor, c.access, now),
            })
            .collect();
        let to_take = self.caller.call_taken_at_intake(calls, &mut permits);
        if to_take.is_empty() {
            return;
        }
        let caller = Arc::clone(&self.caller);
        tokio::spawn(async move { caller.take_then_call(to_take, permits).await });
    }

    /// Logs, now and then, the payments that wait for a processor they are pinned to, and
    /// how many sends were taken again because their stamp was stale.
    fn report(&self, last: &mut (Instant, u64)) {
        if last.0.elapsed() < REPORT_EVERY {
            return;
        }
        let stale = self.shared.metrics.stale_proofs.load(Relaxed);
        if stale > last.1 {
            tracing::warn!(count = stale - last.1,
                "sends taken again: the write that stamped them was too old when their call could start (a busy worker)");
        }
        *last = (Instant::now(), stale);
        let waiting = self.shared.held.pinned_waiting();
        for processor in Processor::ALL {
            let count = waiting[processor.index()];
            if count > 0 {
                tracing::warn!(%processor, count,
                    "payments wait for {processor} only: a call there may have stored them, so they are not moved");
            }
        }
    }
}
