//! Settling pinned payments by asking their processor while it fails.
//!
//! A payment whose call got no answer may go to that processor only (invariant 2); while it
//! fails, its one probe at a time would pay them one by one, long after an outage of the
//! worker that sent them. Once no unanswered call can still be stored (`LATE_STORE_MAX_MS`
//! after the last one was sent), `GET /payments/{id}` settles each: held there, it is
//! recorded with the processor's own requestedAt and never sent again; not held, it is freed
//! (in its row first) to go anywhere with a new requestedAt; no usable answer, it stays pinned.

use super::call::alarm;
use crate::held::{Job, Place};
use crate::processor::{Lookup, ProcessorClient};
use crate::routing::{Access, View};
use crate::shared::Shared;
use payment::Processor;
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Attempt, Destination};
use tokio::task::JoinSet;

/// Most payments asked about at once, per processor.
const LOOKUP_BATCH: usize = 64;

/// The lookups of one worker's pinned payments, at most one running per processor.
pub(super) struct Lookups {
    shared: Shared,
    /// The default's client, the fallback's.
    clients: [Arc<ProcessorClient>; 2],
    /// How long after it was sent a call without an answer may still be stored
    /// (`LATE_STORE_MAX_MS`, at least the call timeout).
    late_store_max: Duration,
    /// Per processor: a lookup is running.
    running: [AtomicBool; 2],
}

impl Lookups {
    pub(super) fn new(
        shared: Shared,
        clients: [Arc<ProcessorClient>; 2],
        late_store_max: Duration,
    ) -> Lookups {
        Lookups {
            shared,
            clients,
            late_store_max,
            running: Default::default(),
        }
    }

    /// For each processor the view does not call freely (failing), with no lookup running:
    /// starts one over its pinned payments whose unanswered calls can no longer be stored.
    pub(super) fn look_up_pinned(self: &Arc<Self>, view: &View) {
        for processor in Processor::ALL {
            let running = &self.running[processor.index()];
            if view.access(processor) == Some(Access::Open) || running.load(SeqCst) {
                continue;
            }
            let (now, bound) = (Instant::now(), self.late_store_max);
            let jobs = self
                .shared
                .held
                .with_lanes(|lanes| take_settled(lanes.pinned_to(processor), now, bound));
            if jobs.is_empty() {
                continue;
            }
            running.store(true, SeqCst);
            let this = Arc::clone(self);
            tokio::spawn(async move {
                this.look_up(processor, jobs).await;
                this.running[processor.index()].store(false, SeqCst);
            });
        }
    }

    /// Asks `processor` about each payment, then records, frees or puts back each.
    async fn look_up(&self, processor: Processor, jobs: Vec<Job>) {
        let mut asks = JoinSet::new();
        for job in jobs {
            let client = Arc::clone(&self.clients[processor.index()]);
            asks.spawn(async move { (client.lookup(job.id()).await, job) });
        }
        let (mut stored, mut absent) = (Vec::new(), Vec::new());
        while let Some(Ok((answer, job))) = asks.join_next().await {
            match answer {
                Lookup::Stored {
                    requested_at,
                    amount,
                } => {
                    if amount != job.pending.payment.amount {
                        tracing::error!(payment = %job.id(), %processor, ours = %job.pending.payment.amount, theirs = %amount,
                            "the processor holds this payment with another amount");
                    }
                    let attempt = Attempt {
                        processor,
                        requested_at,
                    };
                    stored.push((job, attempt));
                }
                Lookup::NotFound => absent.push(job),
                Lookup::Unknown => self.shared.held.requeue(job, Place::Back),
            }
        }
        tracing::info!(%processor, stored = stored.len(), absent = absent.len(),
            "asked a failing processor about payments pinned to it");
        self.record_stored(stored).await;
        self.free(processor, absent).await;
    }

    /// Records payments the processor holds, with its requestedAt: they are paid.
    async fn record_stored(&self, stored: Vec<(Job, Attempt)>) {
        if stored.is_empty() {
            return;
        }
        let batch = stored
            .iter()
            .map(|(j, a)| (j.pending.payment, *a))
            .collect();
        match self.shared.store.mark_processed(batch).await {
            Ok(double) => {
                alarm(&self.shared.metrics, &double);
                for (job, attempt) in stored {
                    self.shared.metrics.processed(attempt.processor);
                    self.shared.held.done(&job);
                }
            }
            Err(e) => {
                tracing::error!("cannot record payments a processor holds, will ask again: {e}");
                stored
                    .into_iter()
                    .for_each(|(job, _)| self.shared.held.requeue(job, Place::Back));
            }
        }
    }

    /// Frees payments the processor does not hold: in their rows, then in the queue. Those
    /// the store does not free are no longer this worker's (claimed, processed, purged).
    async fn free(&self, processor: Processor, absent: Vec<Job>) {
        if absent.is_empty() {
            return;
        }
        let ids = absent.iter().map(Job::id).collect();
        let freed = match self.shared.store.unpin(processor, ids).await {
            Ok(freed) => freed,
            Err(e) => {
                tracing::warn!(%processor, "cannot free pinned payments, will ask again: {e}");
                absent
                    .into_iter()
                    .for_each(|job| self.shared.held.requeue(job, Place::Back));
                return;
            }
        };
        for mut job in absent {
            if !freed.contains(&job.id()) {
                self.shared.metrics.lost_ownership.fetch_add(1, Relaxed);
                self.shared.held.done(&job);
                continue;
            }
            job.pending.destination = Destination::Anywhere;
            job.unanswered_since_instant = None;
            self.shared.held.requeue(job, Place::Front);
        }
    }
}

/// Takes out of a pinned lane up to [`LOOKUP_BATCH`] payments none of whose calls can still
/// be stored at `now` (the last unanswered one is older than `bound`), keeping the order of
/// the rest.
fn take_settled(lane: &mut VecDeque<Job>, now: Instant, bound: Duration) -> Vec<Job> {
    let settled = |job: &Job| {
        job.unanswered_since_instant
            .is_none_or(|at| now.saturating_duration_since(at) >= bound)
    };
    if !lane.iter().any(settled) {
        return Vec::new();
    }
    let mut taken = Vec::new();
    let mut kept = VecDeque::with_capacity(lane.len());
    for job in lane.drain(..) {
        if taken.len() < LOOKUP_BATCH && settled(&job) {
            taken.push(job);
        } else {
            kept.push_back(job);
        }
    }
    *lane = kept;
    taken
}
