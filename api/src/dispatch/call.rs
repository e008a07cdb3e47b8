//! The [`Caller`]: makes a round's calls and carries out what their answers mean (decided
//! in `after_call`). Keeps: nothing is sent that the store did not just confirm as this
//! worker's (`take_for_sending`, or intake's `record_for_sending`), and a call starts only
//! within its send window of that write: half the dead-after, and what the audit budget
//! leaves the stamp. A new pin is durable before the payment can be sent again; a double
//! charge is always loud. Why: docs/architecture.md, "The life of a payment", step 4.

use super::after_call::{after_call, after_unrecorded, Next, RETRY_BACKOFF};
use super::Call;
use crate::held::{Job, Place};
use crate::metrics::Metrics;
use crate::processor::{CallOutcome, ProcessorClient};
use crate::shared::Shared;
use payment::{Millis, Processor, Uuid};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Attempt, Destination, DoubleCharge, Taken};
use tokio::sync::OwnedSemaphorePermit;

/// Makes a round's calls: takes their payments for sending, sends what is still this
/// worker's, and carries out what each answer means.
pub(super) struct Caller {
    shared: Shared,
    /// The default's client, the fallback's.
    clients: [Arc<ProcessorClient>; 2],
    /// A call must start within this of the write that proved this worker owns the payment:
    /// half of `WORKER_DEAD_AFTER_MS` (before that no other worker can have claimed it).
    /// One that write stamped must also start within what the audit budget leaves (see
    /// [`Caller::send_windows`]).
    owned_for: Duration,
}

impl Caller {
    pub(super) fn new(
        shared: Shared,
        clients: [Arc<ProcessorClient>; 2],
        owned_for: Duration,
    ) -> Caller {
        Caller {
            shared,
            clients,
            owned_for,
        }
    }

    /// Starts at once the calls whose payment intake already took for sending to the planned
    /// processor (docs/architecture.md, step 3); returns the others, for
    /// [`Caller::take_then_call`].
    pub(super) fn call_taken_at_intake(
        self: &Arc<Self>,
        calls: Vec<Call>,
        permits: &mut OwnedSemaphorePermit,
    ) -> Vec<Call> {
        let mut to_take = Vec::new();
        let mut send_windows = None; // read from the routing once a round, if needed
        for mut call in calls {
            let taken_at_instant = call.job.taken_at_instant.take();
            let attempt = call.job.pending.attempt;
            match (taken_at_instant, attempt) {
                (Some(taken_at_instant), Some(attempt))
                    if attempt.processor == call.processor() =>
                {
                    let windows = send_windows.get_or_insert_with(|| self.send_windows());
                    let send_by_instant = taken_at_instant + windows[attempt.processor.index()];
                    self.start_call(call, permits, send_by_instant)
                }
                _ => to_take.push(call),
            }
        }
        to_take
    }

    /// Makes the attempts of the round durable on the payments this worker still owns (the
    /// store stamps requestedAt now, except on a pinned payment, which keeps the one its
    /// unanswered call carried), then sends those and drops the others. If the database
    /// refuses, nothing is sent and they wait. `permits` holds one permit per call.
    pub(super) async fn take_then_call(
        self: Arc<Self>,
        calls: Vec<Call>,
        permits: OwnedSemaphorePermit,
    ) {
        let batch: Vec<(Uuid, Processor)> =
            calls.iter().map(|c| (c.job.id(), c.processor())).collect();
        match self.shared.store.take_for_sending(batch).await {
            Ok(taken) => self.call_taken(calls, permits, taken),
            Err(e) => {
                tracing::error!(
                    "cannot take payments for sending, {} payments wait: {e}",
                    calls.len()
                );
                tokio::time::sleep(RETRY_BACKOFF).await;
                for call in calls {
                    // Nothing was sent: the destination is what it was.
                    self.shared.held.requeue(call.job, Place::Front);
                }
            }
        }
    }

    /// Sends what the store gave us, with the attempt as stored; drops the rest.
    fn call_taken(
        self: &Arc<Self>,
        calls: Vec<Call>,
        mut permits: OwnedSemaphorePermit,
        taken: Taken,
    ) {
        let mut ours: HashMap<Uuid, Attempt> = taken.payments.into_iter().collect();
        let send_windows = self.send_windows();
        let mut lost = 0;
        for mut call in calls {
            match ours.remove(&call.job.id()) {
                Some(attempt) if attempt.processor == call.processor() => {
                    // A pinned payment kept an older requestedAt: only ownership bounds it.
                    let window = match attempt.requested_at == taken.alive_at {
                        true => send_windows[attempt.processor.index()],
                        false => self.owned_for,
                    };
                    call.job.pending.attempt = Some(attempt);
                    self.start_call(call, &mut permits, taken.alive_at_instant + window);
                }
                Some(attempt) => self.redirect(call, attempt),
                None => {
                    lost += 1;
                    self.shared.metrics.lost_ownership.fetch_add(1, Relaxed);
                    self.shared.held.done(&call.job);
                }
            }
        }
        if lost > 0 {
            tracing::warn!(
                lost,
                "payments dropped from the queue: another worker claimed them (our heartbeat was stale) or they were purged"
            );
        }
    }

    /// Per processor, how long after the write that proved this worker owns a payment, and
    /// stamped its requestedAt, its call there may start: within half the dead-after (no other
    /// worker can have claimed it before) and within what the audit budget leaves the
    /// stamp ([`crate::routing::Policy::stamp_age_max`]).
    fn send_windows(&self) -> [Duration; 2] {
        let now = Millis::now();
        Processor::ALL.map(|p| {
            self.owned_for
                .min(self.shared.routing.stamp_age_max(p, now))
        })
    }

    /// Starts one call in a task of its own, with one of the round's permits; it goes back
    /// to be taken again if it cannot start by `send_by_instant`.
    fn start_call(
        self: &Arc<Self>,
        call: Call,
        permits: &mut OwnedSemaphorePermit,
        send_by_instant: Instant,
    ) {
        // The round took one permit per planned call, so this cannot come up short.
        let Some(permit) = permits.split(1) else {
            self.shared.held.requeue(call.job, Place::Front);
            return;
        };
        let this = Arc::clone(self);
        tokio::spawn(async move { this.call(call, permit, send_by_instant).await });
    }

    /// A payment whose row is pinned to another processor than planned (this copy did not
    /// know): it goes back to wait for that one, not sent here.
    fn redirect(&self, call: Call, attempt: Attempt) {
        tracing::warn!(payment = %call.job.id(), pinned_to = %attempt.processor,
            "payment not sent to {}: its row is pinned to {}", call.processor(), attempt.processor);
        let mut job = call.job;
        job.pending.attempt = Some(attempt);
        job.pending.destination = Destination::PinnedTo(attempt.processor);
        job.unanswered_since_instant
            .get_or_insert_with(Instant::now);
        self.shared.held.requeue(job, Place::Front);
    }

    /// One processor call and what follows from its answer. `send_by_instant`: see [`Caller::sendable`].
    async fn call(&self, call: Call, permit: OwnedSemaphorePermit, send_by_instant: Instant) {
        let Some(attempt) = self.sendable(&call.job, send_by_instant) else {
            drop(permit);
            self.shared.held.requeue(call.job, Place::Front);
            return;
        };
        let Call { mut job, ticket } = call;
        let processor = ticket.processor();
        if let Destination::PinnedTo(_) = job.pending.destination {
            self.shared.metrics.resend(processor);
        }
        let started = Instant::now();
        let outcome = self.clients[processor.index()]
            .pay(&job.pending.payment, attempt.requested_at)
            .await;
        self.shared
            .metrics
            .call(processor, outcome, started.elapsed());
        ticket.report(outcome, Millis::now());
        if outcome == CallOutcome::NoAnswer {
            job.unanswered_since_instant = Some(started);
        }
        let next = match after_call(outcome, job.pending.destination, processor) {
            Next::Record => self.record(&job, attempt).await,
            retry => retry,
        };
        // Held until the answer is recorded: a shutdown's drain waits for it.
        drop(permit);
        match next {
            Next::Record => self.shared.held.done(&job),
            Next::Retry {
                destination,
                wait,
                place,
            } => self.retry(job, destination, wait, place).await,
        }
    }

    /// The attempt to send with, unless it is past `send_by_instant`, the deadline the write
    /// that proved the payment ours (and stamped its requestedAt) set, on the monotonic clock
    /// from that write's stamp ([`Caller::send_windows`]): the payment then goes back to be
    /// taken again, counted in `api_stale_proofs_total` (logged now and then, not per
    /// payment). Why from the stamp: docs/architecture.md, step 4.
    fn sendable(&self, job: &Job, send_by_instant: Instant) -> Option<Attempt> {
        // take_then_call always sets the attempt before a call.
        let attempt = job.pending.attempt?;
        if Instant::now() > send_by_instant {
            self.shared.metrics.stale_proofs.fetch_add(1, Relaxed);
            return None;
        }
        Some(attempt)
    }

    /// Records a payment paid at `attempt.processor`: [`Next::Record`] once it is, what
    /// [`after_unrecorded`] says if the database refuses.
    async fn record(&self, job: &Job, attempt: Attempt) -> Next {
        let (payment, processor) = (job.pending.payment, attempt.processor);
        match self
            .shared
            .store
            .mark_processed(vec![(payment, attempt)])
            .await
        {
            Ok(double) => {
                alarm(&self.shared.metrics, &double);
                self.shared.metrics.processed(processor);
                Next::Record
            }
            Err(e) => {
                tracing::error!(%processor, "cannot mark {} processed, will ask again: {e}", payment.correlation_id);
                after_unrecorded(processor)
            }
        }
    }

    /// Puts a payment that was not paid back in its lane, after `wait`, first making a
    /// new pin durable (a destination only ever changes by being pinned).
    async fn retry(&self, mut job: Job, destination: Destination, wait: Duration, place: Place) {
        if destination != job.pending.destination {
            if let Destination::PinnedTo(processor) = destination {
                self.pin(&job, processor).await;
            }
            job.pending.destination = destination;
        }
        self.shared.metrics.retries.fetch_add(1, Relaxed);
        tokio::time::sleep(wait).await;
        self.shared.held.requeue(job, place);
    }

    /// Makes a new pin durable in the payment's row before the payment can be sent again,
    /// so a restart or a claim keeps it, and so the next take keeps its requestedAt (a take
    /// stamps a new one on a row that is not pinned). A failed write is tried again.
    async fn pin(&self, job: &Job, processor: Processor) {
        self.shared.metrics.pinned(processor);
        tracing::debug!(payment = %job.id(), %processor, "payment pinned: its call's outcome is unknown");
        while let Err(e) = self.shared.store.pin(vec![(job.id(), processor)]).await {
            tracing::warn!(payment = %job.id(), %processor, "cannot write the pin, trying again: {e}");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }
}

/// A payment charged by both processors: never expected, always loud.
pub(super) fn alarm(metrics: &Metrics, double: &[DoubleCharge]) {
    for d in double {
        metrics.double_charges.fetch_add(1, Relaxed);
        tracing::error!(
            payment = %d.payment.correlation_id,
            recorded_at = %d.recorded_at,
            also_at = %d.also_at,
            "payment charged by BOTH processors: our summary counts it at {}, {} answered success too",
            d.recorded_at, d.also_at
        );
    }
}
