//! Restart recovery: claims the pending payments of dead workers and queues them here,
//! reads back this worker's own after a write whose outcome it did not learn
//! ([`RecoveryHint`](crate::shared::RecoveryHint)), and writes the heartbeat. Keeps: no
//! payment stays with a dead worker, or in no queue, and a claimed or read-back payment
//! with an attempt is not sent again before the dead worker's calls could have ended.
//! Why: docs/architecture.md, "The life of a payment", on a worker that dies.

use crate::held::Job;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use payment::Millis;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;
use std::time::Instant;
use storage::{Claimed, Pending, StorageError, Store};

/// Most payments claimed in one transaction; more are taken in the next one right away.
const CLAIM_BATCH: usize = 4096;

/// The orphan scans of one worker: claims, and reading back after an unsure write.
pub(crate) struct Recovery {
    shared: Shared,
    dead_after: Duration,
    /// How long after its last heartbeat a dead worker may still have sent a call: its
    /// send deadline.
    sends_outlive_heartbeat_by: Duration,
    /// How long after its last heartbeat a dead worker's calls may still run: its send
    /// deadline plus the processor call timeout.
    calls_outlive_heartbeat_by: Duration,
    /// The latest heartbeat (ms) a worker whose payments a failed claim may have taken
    /// can have written (0: no failed claim). Wall clock, as in the database.
    lost_claim_last_alive_at: AtomicI64,
}

/// Writes the heartbeat until shutdown, whatever happened to the row or our payments
/// meanwhile; skipped while the writes that take payments for sending renew it anyway (at
/// contest rates, every few milliseconds).
pub(crate) async fn heartbeat(store: Store, every: Duration, shutdown: Shutdown) {
    shutdown
        .every(every, || async {
            let now = Millis::now();
            let renewed = store.heartbeat_written_at();
            if renewed.is_some_and(|at| now.0.saturating_sub(at.0) < every.as_millis() as i64) {
                return;
            }
            if let Err(e) = store.heartbeat(now).await {
                tracing::warn!("cannot write the heartbeat: {e}");
            }
        })
        .await
}

impl Recovery {
    /// `dead_after`: `WORKER_DEAD_AFTER_MS`; a dead worker's calls may start up to
    /// `owned_for` after its last heartbeat and run for `call_timeout`.
    pub(crate) fn new(
        shared: Shared,
        dead_after: Duration,
        (owned_for, call_timeout): (Duration, Duration),
    ) -> Recovery {
        Recovery {
            shared,
            dead_after,
            sends_outlive_heartbeat_by: owned_for,
            calls_outlive_heartbeat_by: owned_for + call_timeout,
            lost_claim_last_alive_at: AtomicI64::new(0),
        }
    }

    /// Claims orphans now and then every `every`, until shutdown.
    pub(crate) async fn run(self, every: Duration, shutdown: Shutdown) {
        shutdown
            .every(every, || async {
                if let Err(e) = self.claim_all().await {
                    tracing::warn!("cannot claim orphaned payments: {e}");
                }
                if let Err(e) = self.adopt_own().await {
                    tracing::warn!("cannot read back this worker's pending payments: {e}");
                }
            })
            .await
    }

    async fn claim_all(&self) -> Result<(), StorageError> {
        // A claim is a write, and nearly always finds nothing: look first.
        if !self
            .shared
            .store
            .orphans_exist(Millis::now(), self.dead_after)
            .await?
        {
            return Ok(());
        }
        loop {
            // Claims stop where the queue is full.
            let limit = self.shared.held.room().min(CLAIM_BATCH);
            if limit == 0 {
                return Ok(()); // the rest waits for room, at a later scan
            }
            let now = Millis::now();
            let claimed = self
                .shared
                .store
                .claim_orphans(now, self.dead_after, limit)
                .await
                .inspect_err(|_| self.claim_unsure(now))?;
            let count = claimed.payments.len();
            if count > 0 {
                tracing::info!(count, "claimed payments of a dead worker");
                self.shared.metrics.claimed.fetch_add(count as u64, Relaxed);
                self.queue_claimed(claimed);
            }
            if count < limit {
                return Ok(());
            }
        }
    }

    /// A claim at `now` failed and may have committed: whatever it took is read back by
    /// [`Recovery::adopt_own`]. The workers it may have taken from were last alive at
    /// `now - dead_after` at the latest.
    fn claim_unsure(&self, now: Millis) {
        let dead_since_at = now.0.saturating_sub(self.dead_after.as_millis() as i64);
        // Before the flag: a scan that sees the flag sees this too.
        self.lost_claim_last_alive_at
            .fetch_max(dead_since_at, SeqCst);
        self.shared.recovery_hint.mark();
    }

    /// After a write that failed and may have committed (intake's or a claim): queues this
    /// worker's pending payments it does not hold. The flag is cleared before the read, so
    /// a write that fails during it (and was flagged after its commit) is read back next
    /// time. Not limited by `DISPATCH_QUEUE_MAX`: such rows are at most what the queue
    /// holds plus the batches and one claim page whose answer was lost, and leaving one
    /// out would lose it. Those with an attempt may come from a lost claim: they wait
    /// until the dead worker's calls could have ended, as claimed ones do.
    async fn adopt_own(&self) -> Result<(), StorageError> {
        if !self.shared.recovery_hint.take() {
            return Ok(());
        }
        let own = self
            .shared
            .store
            .own_pending(usize::MAX)
            .await
            .inspect_err(|_| self.shared.recovery_hint.mark())?;
        let last_alive_at = Millis(self.lost_claim_last_alive_at.load(SeqCst));
        let (attempted, fresh) = self.split_attempted(own, Some(last_alive_at));
        let mut adopted = self.shared.held.push_unheld(fresh);
        let wait = self.until_calls_end(last_alive_at);
        if wait.is_zero() {
            adopted += self.shared.held.push_unheld(attempted);
        } else if !attempted.is_empty() {
            tracing::warn!(
                count = attempted.len(),
                wait_ms = wait.as_millis() as u64,
                "payments read back with an attempt wait until a dead worker's calls could have ended"
            );
            self.shared.held.push_unheld_after(attempted, wait);
        }
        if adopted > 0 {
            tracing::warn!(
                adopted,
                "queued payments whose write (intake or claim) failed after it committed"
            );
        }
        Ok(())
    }

    /// How long from now until the calls of a worker last alive at `last_alive_at` could
    /// have ended. Wall clock on purpose: `last_alive_at` is a heartbeat time shared through
    /// the database (written by another process, or the bound of one), and only our own
    /// wall clock compares with it (the workers' clocks must agree, see `storage`). The
    /// wait itself then runs on the monotonic clock (`tokio::time`): a later clock step
    /// does not move it.
    fn until_calls_end(&self, last_alive_at: Millis) -> Duration {
        let outlive = self.calls_outlive_heartbeat_by.as_millis() as i64;
        let until = last_alive_at.0.saturating_add(outlive);
        Duration::from_millis(u64::try_from(until.saturating_sub(Millis::now().0)).unwrap_or(0))
    }

    /// The payments with an attempt, each marked with the latest time a dead worker last
    /// alive at `last_alive_at` (now, if unknown) could have sent it; and the others.
    fn split_attempted(
        &self,
        payments: Vec<Pending>,
        last_alive_at: Option<Millis>,
    ) -> (Vec<Job>, Vec<Job>) {
        let sends_outlive = self.sends_outlive_heartbeat_by.as_millis() as i64;
        let sends_until_instant = last_alive_at.map_or_else(Instant::now, |alive| {
            instant_of(Millis(alive.0.saturating_add(sends_outlive)))
        });
        let (attempted, fresh): (Vec<_>, Vec<_>) = payments
            .into_iter()
            .map(Job::new)
            .partition(|job| job.pending.attempt.is_some());
        let attempted = attempted
            .into_iter()
            .map(|job| job.unanswered_since_instant(sends_until_instant))
            .collect();
        (attempted, fresh)
    }

    /// Queues the claimed payments: those never sent at once, those with an attempt once
    /// the dead worker's calls could have ended.
    fn queue_claimed(&self, claimed: Claimed) {
        let (attempted, fresh) = self.split_attempted(claimed.payments, claimed.last_alive);
        self.shared.held.push_replacing(fresh);
        let wait = claimed
            .last_alive
            .map_or(Duration::ZERO, |alive| self.until_calls_end(alive));
        if attempted.is_empty() {
            return;
        }
        if wait.is_zero() {
            self.shared.held.push_replacing(attempted);
            return;
        }
        tracing::info!(
            count = attempted.len(),
            wait_ms = wait.as_millis() as u64,
            "claimed payments with an attempt wait until the dead worker's calls could have ended"
        );
        self.shared.held.push_replacing_after(attempted, wait);
    }
}

/// The instant of the monotonic clock at which the wall clock read `at` (now, if that is
/// before the monotonic clock began).
fn instant_of(at: Millis) -> Instant {
    let (now, wall) = (Instant::now(), Millis::now());
    let span = Duration::from_millis(wall.0.abs_diff(at.0));
    match at <= wall {
        true => now.checked_sub(span).unwrap_or(now),
        false => now + span,
    }
}

#[cfg(test)]
mod tests;
