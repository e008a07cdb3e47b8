//! Dispatch: pays the payments of this worker's in-memory queue through the processors.
//!
//! Intake and recovery push payments (already pending in SQLite) into the [`Queue`]; one
//! dispatcher task takes them in rounds and starts a bounded number of concurrent calls
//! (`DISPATCH_CONCURRENCY` permits). The rules that keep a payment from being charged twice
//! (invariant 2) live here:
//!
//! - **Ownership is checked at every send.** Another worker may claim this worker's payments
//!   while they wait in its queue (its heartbeat stalled past `WORKER_DEAD_AFTER_MS`: CPU
//!   starvation, a slow disk, SIGSTOP). So every payment of a round, first sends and retries
//!   alike, goes through one `take_for_sending` (one group commit per round): it makes the
//!   attempt (processor, `requestedAt` = now for a first send) durable on the rows this
//!   worker still owns, and returns only those, with the attempt as stored. Only those are
//!   sent; the others are dropped from the queue (another worker owns them now, or a purge
//!   forgot them), counted in `api_payments_lost_ownership_total`. Every later send reuses
//!   the stored `requestedAt`.
//! - The same write renews this worker's heartbeat: no other worker can claim the payments
//!   for `WORKER_DEAD_AFTER_MS` after it. A call starts only within half of that (else the
//!   payment goes back to be checked again), so a worker stalled between the check and the
//!   send cannot race the one that took its payments over.
//! - 200 or 422 -> `mark_processed` on that processor with that `requestedAt`.
//! - 500 (or another non-2xx): the processor did not store it. The payment is free again:
//!   the routing policy may later move it to the other processor (`take_for_sending`
//!   updates the attempt's processor before that send, `requestedAt` kept).
//! - Timeout / dropped connection: the processor may have stored it. The payment is
//!   **pinned**: it goes back only to that processor, until that processor answers.
//!   Payments claimed from a dead worker with an attempt are pinned too (we cannot know
//!   how their last call ended).
//! - 429: pinned, retried after a short backoff.
//! - Another 4xx (the processor refused the request itself): not stored, retried after a
//!   second from the back of the queue; the processor is not marked down for it.
//!
//! Waiting payments sit in lanes: one for payments free to go anywhere, one per processor
//! for pinned ones. A round empties what the routing policy lets through; the rest waits
//! for the next wake-up (a push, a finished call, or the probe timer).
//!
//! A payment that comes back from a call goes to the front of its lane, so while a
//! processor is down every probe is the SAME payment. This matters for the contest's audit
//! (summaries for `[now - 15 s, now - 1.5 s]` compared with the processors'): a retry that
//! succeeds is stored by the processor a moment before we record it, and it carries its
//! first `requestedAt`; if that instant fell inside an audit window, an audit landing in
//! that moment would count it there and not here. Probing with a new payment each time
//! would give hundreds of payments `requestedAt`s spread over the outage, all stored in the
//! same burst when the processor recovers; reusing one probe payment leaves one, whose
//! `requestedAt` is from the start of the outage (outside the window once it lasted 15 s).

use crate::metrics::{CallOutcome, Metrics};
use crate::processor::ProcessorClient;
use crate::routing::{Lane, Routing};
use crate::shutdown::Shutdown;
use payment::{Millis, Processor, Uuid};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage::{Attempt, Pending, Store, Taken};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Wait before re-queueing a payment a processor answered 429, or one whose database
/// write failed: long enough not to spin, short against the contest's 1.5 s audit lag.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Wait before retrying a payment the processor refused as malformed (a 4xx other than
/// 422/429: a bug on one side; the payment stays pending, retried now and then).
const REJECTED_BACKOFF: Duration = Duration::from_secs(1);

/// A payment in this worker's hands.
#[derive(Debug, Clone)]
pub struct Job {
    pub pending: Pending,
    /// May only be sent to `pending.attempt`'s processor (its last call's fate is unknown).
    pub pinned: bool,
    /// Which copy of the payment this is, set by the queue (see [`Queue::push_new`]).
    copy: u64,
}

impl Job {
    /// A payment just recorded by intake: never sent, free to go anywhere.
    pub fn fresh(pending: Pending) -> Job {
        Job {
            pending,
            pinned: false,
            copy: 0,
        }
    }

    /// A payment claimed from a dead worker: if it had an attempt, it may be at that
    /// processor already, so it is pinned there.
    pub fn claimed(pending: Pending) -> Job {
        let pinned = pending.attempt.is_some();
        Job {
            pending,
            pinned,
            copy: 0,
        }
    }
}

#[derive(Default)]
struct Lanes {
    free: VecDeque<Job>,
    pinned: [VecDeque<Job>; 2],
    /// Every payment in this worker's hands (waiting or in flight) and its current copy.
    held: HashMap<Uuid, u64>,
    last_copy: u64,
}

fn index(processor: Processor) -> usize {
    match processor {
        Processor::Default => 0,
        Processor::Fallback => 1,
    }
}

/// The in-memory queue of one worker.
pub struct Queue {
    lanes: Mutex<Lanes>,
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl Queue {
    pub fn new(metrics: Arc<Metrics>) -> Queue {
        Queue {
            lanes: Mutex::new(Lanes::default()),
            wake: Notify::new(),
            metrics,
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        // The lanes are plain deques; a panic elsewhere cannot leave them half-updated.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds payments just recorded or claimed. A payment this worker still holds can come
    /// back in a claim: it lost the payment to another worker (its heartbeat stalled), that
    /// worker died, and this one claimed it back. The claimed copy carries the attempt as
    /// stored (maybe another processor, pinned), so it replaces the old one: a waiting old
    /// copy is removed, one in flight is dropped when its call ends.
    pub fn push_new(&self, jobs: impl IntoIterator<Item = Job>) {
        let mut count = 0;
        {
            let mut lanes = self.lanes();
            for mut job in jobs {
                lanes.last_copy += 1;
                job.copy = lanes.last_copy;
                let id = job.pending.payment.correlation_id;
                if lanes.held.insert(id, job.copy).is_some() {
                    lanes.remove(id);
                } else {
                    count += 1;
                }
                lanes.put(job);
            }
        }
        self.metrics.queued.fetch_add(count, Relaxed);
        self.wake.notify_one();
    }

    /// Puts back a payment taken by the dispatcher, at the FRONT of its lane: it is older
    /// than what waits behind it, and while a processor is down the next probe is the same
    /// payment again (see the module doc: audit windows).
    fn put_back(&self, job: Job) {
        self.requeue(job, Lanes::put_front);
    }

    /// Puts back a payment at the END of its lane.
    fn put_last(&self, job: Job) {
        self.requeue(job, Lanes::put);
    }

    /// Returns `job` to its lane with `place`, unless a newer copy replaced it meanwhile.
    fn requeue(&self, job: Job, place: fn(&mut Lanes, Job)) {
        let mut lanes = self.lanes();
        if lanes.is_current(&job) {
            place(&mut lanes, job);
        }
        drop(lanes);
        self.wake.notify_one();
    }

    /// A payment left the queue for good (processed, or no longer this worker's to send).
    /// A replaced copy leaves nothing: the payment stays in hand as its newer copy.
    fn done(&self, job: &Job) {
        let mut lanes = self.lanes();
        if lanes.is_current(job) {
            lanes.held.remove(&job.pending.payment.correlation_id);
            self.metrics.queued.fetch_sub(1, Relaxed);
        }
        drop(lanes);
        self.wake.notify_one();
    }
}

impl Lanes {
    fn lane(&mut self, job: &Job) -> &mut VecDeque<Job> {
        match (job.pinned, job.pending.attempt) {
            (true, Some(attempt)) => &mut self.pinned[index(attempt.processor)],
            _ => &mut self.free,
        }
    }

    fn put(&mut self, job: Job) {
        self.lane(&job).push_back(job);
    }

    fn put_front(&mut self, job: Job) {
        self.lane(&job).push_front(job);
    }

    /// False for a copy replaced by a newer one (see [`Queue::push_new`]).
    fn is_current(&self, job: &Job) -> bool {
        self.held.get(&job.pending.payment.correlation_id) == Some(&job.copy)
    }

    /// Removes the waiting copies of a payment (rare: a payment claimed back).
    fn remove(&mut self, id: Uuid) {
        let [default, fallback] = &mut self.pinned;
        for lane in [&mut self.free, default, fallback] {
            lane.retain(|job| job.pending.payment.correlation_id != id);
        }
    }
}

/// One call the dispatcher decided to make.
struct Send {
    job: Job,
    processor: Processor,
    lane: Lane,
    permit: OwnedSemaphorePermit,
}

/// Everything a call needs; shared by the dispatcher and its call tasks.
pub struct Dispatcher {
    pub queue: Arc<Queue>,
    pub store: Store,
    pub routing: Arc<Routing>,
    pub metrics: Arc<Metrics>,
    pub clients: [Arc<ProcessorClient>; 2],
    pub permits: Arc<Semaphore>,
    pub probe_interval: Duration,
    /// A call must start within this of the proof that this worker owns the payment (half of
    /// `WORKER_DEAD_AFTER_MS`: before that, no other worker can have claimed it).
    pub send_within: Duration,
}

impl Dispatcher {
    /// Runs rounds until shutdown. Calls already started keep running; see [`Dispatcher::drain`].
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        while !shutdown.is_shutdown() {
            self.round();
            tokio::select! {
                _ = self.queue.wake.notified() => {}
                _ = tokio::time::sleep(self.probe_interval) => {}
                _ = shutdown.recv() => {}
            }
        }
    }

    /// Waits until every started call finished, at most `grace`. True if all did.
    pub async fn drain(&self, total_permits: usize, grace: Duration) -> bool {
        let all = u32::try_from(total_permits).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.permits.acquire_many(all))
            .await
            .is_ok()
    }

    /// Takes what may be sent now and starts it, once the store confirmed it is still ours.
    fn round(self: &Arc<Self>) {
        let sends = self.plan(Millis::now());
        if sends.is_empty() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move { this.take_then_call(sends, Millis::now()).await });
    }

    /// Chooses the calls of this round, within the free permits and the routing policy.
    fn plan(&self, now: Millis) -> Vec<Send> {
        let mut sends = Vec::new();
        let mut lanes = self.queue.lanes();
        // Pinned payments first: they can go nowhere else.
        for processor in Processor::ALL {
            while !lanes.pinned[index(processor)].is_empty() {
                let Some((lane, permit)) = self.grant(processor, now) else {
                    break;
                };
                if let Some(job) = lanes.pinned[index(processor)].pop_front() {
                    sends.push(Send {
                        job,
                        processor,
                        lane,
                        permit,
                    });
                }
                if lane == Lane::Probe {
                    break;
                }
            }
        }
        while !lanes.free.is_empty() {
            let Some(processor) = self.routing.preferred(now) else {
                break;
            };
            let Some((lane, permit)) = self.grant(processor, now) else {
                break;
            };
            if let Some(job) = lanes.free.pop_front() {
                sends.push(Send {
                    job,
                    processor,
                    lane,
                    permit,
                });
            }
        }
        // Nowhere to send free payments: probe the processors we want back with one of them.
        if !lanes.free.is_empty() && self.routing.preferred(now).is_none() {
            for processor in Processor::ALL {
                if !self.routing.wanted(processor, now) {
                    continue;
                }
                if let Some((lane, permit)) = self.grant(processor, now) {
                    if let Some(job) = lanes.free.pop_front() {
                        sends.push(Send {
                            job,
                            processor,
                            lane,
                            permit,
                        });
                    }
                }
            }
        }
        sends
    }

    /// A permit and the routing's consent for one call to `processor`.
    fn grant(&self, processor: Processor, now: Millis) -> Option<(Lane, OwnedSemaphorePermit)> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        let lane = self.routing.may_call(processor, now)?;
        Some((lane, permit))
    }

    /// Makes the attempts of the round durable on the payments this worker still owns, then
    /// sends those and drops the others. If the database refuses, nothing is sent and they wait.
    async fn take_then_call(self: Arc<Self>, mut sends: Vec<Send>, now: Millis) {
        for send in &mut sends {
            let requested_at = send.job.pending.attempt.map_or(now, |a| a.requested_at);
            send.job.pending.attempt = Some(Attempt {
                processor: send.processor,
                requested_at,
            });
        }
        let batch: Vec<(Uuid, Attempt)> = sends
            .iter()
            .filter_map(|s| {
                s.job
                    .pending
                    .attempt
                    .map(|a| (s.job.pending.payment.correlation_id, a))
            })
            .collect();
        match self.store.take_for_sending(batch).await {
            Ok(taken) => self.call_taken(sends, taken),
            Err(e) => {
                tracing::error!(
                    "cannot take payments for sending, {} payments wait: {e}",
                    sends.len()
                );
                tokio::time::sleep(RETRY_BACKOFF).await;
                for send in sends {
                    if send.lane == Lane::Probe {
                        self.routing.probe_abandoned(send.processor);
                    }
                    // The attempt may or may not be durable; sending it later to the same
                    // processor with the same requestedAt is right either way.
                    self.queue.put_back(Job {
                        pinned: true,
                        ..send.job
                    });
                }
            }
        }
    }

    /// Sends what the store gave us, with the attempt as stored; drops the rest.
    fn call_taken(self: &Arc<Self>, sends: Vec<Send>, taken: Taken) {
        let mut ours: HashMap<Uuid, Attempt> = taken.payments.into_iter().collect();
        let mut lost = 0;
        for mut send in sends {
            match ours.remove(&send.job.pending.payment.correlation_id) {
                Some(attempt) => {
                    send.job.pending.attempt = Some(attempt);
                    self.spawn_call(send, taken.alive_at);
                }
                None => {
                    lost += 1;
                    self.drop_lost(send);
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

    /// A payment this worker may no longer send: it leaves the queue unsent.
    fn drop_lost(&self, send: Send) {
        if send.lane == Lane::Probe {
            self.routing.probe_abandoned(send.processor);
        }
        drop(send.permit);
        self.metrics.lost_ownership.fetch_add(1, Relaxed);
        self.queue.done(&send.job);
    }

    fn spawn_call(self: &Arc<Self>, send: Send, owned_at: Millis) {
        let this = Arc::clone(self);
        tokio::spawn(async move { this.call(send, owned_at).await });
    }

    /// One processor call and what follows from its answer. `owned_at`: when the store
    /// last proved this worker owns the payment.
    async fn call(&self, send: Send, owned_at: Millis) {
        let Send {
            mut job,
            processor,
            lane,
            permit,
        } = send;
        let Some(attempt) = job.pending.attempt else {
            // take_then_call always sets the attempt before a call; keep the payment.
            self.queue.put_back(job);
            return;
        };
        let proof_age = Millis::now().0.saturating_sub(owned_at.0);
        if proof_age > self.send_within.as_millis() as i64 {
            // Stalled since the check: another worker may be about to claim it. Check again.
            tracing::warn!(
                proof_age,
                "payment not sent: the proof of ownership is too old"
            );
            if lane == Lane::Probe {
                self.routing.probe_abandoned(processor);
            }
            drop(permit);
            self.queue.put_back(job);
            return;
        }
        let payment = job.pending.payment;
        let started = Instant::now();
        let outcome = self.clients[index(processor)]
            .pay(&payment, attempt.requested_at)
            .await;
        self.metrics.call(processor, outcome, started.elapsed());
        self.routing.report(processor, outcome, lane, Millis::now());
        let wait = match outcome {
            CallOutcome::Processed | CallOutcome::AlreadyProcessed => {
                match self.store.mark_processed(vec![(payment, attempt)]).await {
                    Ok(()) => {
                        self.metrics.processed(processor);
                        drop(permit);
                        self.queue.done(&job);
                        return;
                    }
                    Err(e) => {
                        // The processor has it; asking it again will answer 422 and we retry the write.
                        tracing::error!(%processor, "cannot mark {} processed, will ask again: {e}", payment.correlation_id);
                        job.pinned = true;
                        RETRY_BACKOFF
                    }
                }
            }
            CallOutcome::Failed => {
                job.pinned = false;
                Duration::ZERO
            }
            CallOutcome::Timeout => {
                job.pinned = true;
                Duration::ZERO
            }
            CallOutcome::Busy => {
                job.pinned = true;
                RETRY_BACKOFF
            }
            CallOutcome::Rejected => {
                job.pinned = false;
                REJECTED_BACKOFF
            }
        };
        self.metrics.retries.fetch_add(1, Relaxed);
        drop(permit);
        tokio::time::sleep(wait).await;
        if outcome == CallOutcome::Rejected {
            // Behind everything else: a payment the processor refuses must not block the others.
            self.queue.put_last(job);
        } else {
            self.queue.put_back(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payment::{Cents, Payment};

    fn pending(attempt: Option<Attempt>) -> Pending {
        Pending {
            payment: Payment {
                correlation_id: Uuid::from_u128(7),
                amount: Cents(1990),
            },
            accepted_at: Millis(0),
            attempt,
        }
    }

    fn queued(queue: &Queue) -> Vec<(bool, Option<Attempt>)> {
        let lanes = queue.lanes();
        let all = lanes.free.iter().chain(lanes.pinned.iter().flatten());
        all.map(|job| (job.pinned, job.pending.attempt)).collect()
    }

    #[test]
    fn a_payment_claimed_back_replaces_the_copy_still_held() {
        let metrics = Arc::new(Metrics::default());
        let queue = Queue::new(Arc::clone(&metrics));
        // Lost to another worker that sent it to the fallback, then claimed back from it.
        let elsewhere = Attempt {
            processor: Processor::Fallback,
            requested_at: Millis(5),
        };
        queue.push_new([Job::fresh(pending(None))]);
        queue.push_new([Job::claimed(pending(Some(elsewhere)))]);
        assert_eq!(queued(&queue), vec![(true, Some(elsewhere))]);
        assert_eq!(metrics.queued.load(Relaxed), 1);

        // The same with the old copy in flight: when its call ends it is dropped.
        let in_flight = queue.lanes().pinned[index(Processor::Fallback)].pop_front();
        let in_flight = in_flight.expect("the claimed copy waits in the fallback lane");
        queue.push_new([Job::claimed(pending(Some(elsewhere)))]);
        queue.put_back(in_flight.clone());
        queue.done(&in_flight);
        assert_eq!(queued(&queue), vec![(true, Some(elsewhere))]);
        assert_eq!(metrics.queued.load(Relaxed), 1);
    }
}
