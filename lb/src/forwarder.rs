//! The forwarder: a Pingora background service that moves accepted payments from the
//! queue to the workers' `POST /intake`.
//!
//! - **Batches after a short linger**: once a payment is queued it waits
//!   `LB_BATCH_LINGER_MS` for more to join it, or less once `LB_BATCH_MAX` are queued,
//!   then takes what is queued (up to `LB_BATCH_MAX`); under load the batches also grow
//!   while the previous one is in flight. The linger is on the forwarder only, never on
//!   the 202: it trades some milliseconds before a payment reaches a worker for several
//!   times fewer intake requests. Each batch costs the workers about the same whatever
//!   its size (an HTTP exchange, two commits, their wake-ups), so at the contest's rate
//!   (~280 payments/s) 100 ms instead of 20 cut the workers' CPU per run by about a third
//!   (bench/RESULTS.md, issue 16). The price: a payment waits up to that long in the lb's
//!   memory, where an lb killed with SIGKILL loses it (SIGTERM drains). 0 sends whatever
//!   is queued at once.
//! - **Round robin with failover**: each batch goes to the next worker in turn, and a
//!   failed attempt is retried on the other worker at once. When every worker failed, it
//!   waits (exponential backoff from 10 ms, capped at `LB_BACKOFF_MAX_MS`) and goes round
//!   again, for as long as it takes.
//! - **Avoids a failing worker for a while**: a worker whose intake just failed (refused,
//!   broken, 5xx, or no answer within `LB_FORWARD_TIMEOUT_MS`) is tried after the others
//!   for `LB_AVOID_MS`. Without this the rotation came back to it first on every batch,
//!   and a worker that hangs cost a whole forward timeout per batch. It is put last, never
//!   left out: when the other workers fail too it is still tried, in the same round, so
//!   a batch only it can take waits no longer than before.
//! - **Never drops what got a 202**: a batch leaves the lb only when a worker answered
//!   200 (committed). Sending a batch twice is harmless, intake is idempotent, so a
//!   timeout is simply retried. The one exception is a 400, which means the lb and the
//!   worker disagree on the wire format (a bug): retrying cannot help, so the batch is
//!   logged as an error with the worker's answer, counted, and dropped.
//! - **Drains on shutdown**: when [`Shutdown`] starts draining, it closes the queue (new
//!   payments get 503) and keeps delivering until the queue is empty, then says so.

use crate::intake_client::{IntakeClient, IntakeReply};
use crate::metrics::Metrics;
use crate::queue::QueueReceiver;
use crate::shutdown::Shutdown;
use crate::workers::WorkerAddr;
use async_trait::async_trait;
use bytes::Bytes;
use payment::intake::{self, Accepted};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// How the forwarder delivers.
#[derive(Debug, Clone)]
pub struct Settings {
    pub workers: Vec<WorkerAddr>,
    pub batch_max: usize,
    pub linger: Duration,
    pub timeout: Duration,
    pub backoff_max: Duration,
    pub avoid: Duration,
}

pub struct Forwarder {
    /// Taken once when the service starts.
    queue: Mutex<Option<QueueReceiver>>,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: Arc<Shutdown>,
}

impl Forwarder {
    pub fn new(
        queue: QueueReceiver,
        settings: Settings,
        metrics: Arc<Metrics>,
        shutdown: Arc<Shutdown>,
    ) -> Self {
        Forwarder {
            queue: Mutex::new(Some(queue)),
            settings,
            metrics,
            shutdown,
        }
    }
}

#[async_trait]
impl BackgroundService for Forwarder {
    /// Pingora's own shutdown broadcast comes only after our drain finished (see
    /// [`crate::shutdown`]), so the forwarder listens to [`Shutdown`] instead.
    async fn start(&self, _pingora_shutdown: ShutdownWatch) {
        let taken = self.queue.lock().map(|mut q| q.take()).unwrap_or(None);
        let Some(mut queue) = taken else {
            tracing::error!("forwarder started twice; the second start does nothing");
            return;
        };
        let mut delivery = Delivery::new(&self.settings, self.metrics.clone());
        let mut draining = self.shutdown.draining();
        let mut closed = false;
        let mut batch = Vec::with_capacity(self.settings.batch_max);
        loop {
            tokio::select! {
                biased;
                _ = draining.wait_for(|d| *d), if !closed => {
                    queue.close();
                    closed = true;
                    continue;
                }
                taken = queue.next_batch(&mut batch, self.settings.batch_max) => {
                    if taken == 0 {
                        break;
                    }
                }
            }
            if !self.settings.linger.is_zero() && batch.len() < self.settings.batch_max {
                // One wait, then one take: the forwarder is not woken by every payment that
                // arrives meanwhile, only by the one that completes a batch.
                queue.linger(self.settings.linger).await;
                queue.top_up(&mut batch, self.settings.batch_max).await;
            }
            delivery.deliver(&batch).await;
            batch.clear();
        }
        self.shutdown.mark_drained();
    }
}

/// The forwarder's connections and its place in the rotation.
struct Delivery {
    clients: Vec<IntakeClient>,
    /// Per worker, when its last intake attempt failed, unless one succeeded since.
    failed_at: Vec<Option<Instant>>,
    next: usize,
    timeout: Duration,
    backoff_max: Duration,
    avoid: Duration,
    metrics: Arc<Metrics>,
}

impl Delivery {
    fn new(settings: &Settings, metrics: Arc<Metrics>) -> Delivery {
        Delivery {
            clients: settings
                .workers
                .iter()
                .cloned()
                .map(IntakeClient::new)
                .collect(),
            failed_at: vec![None; settings.workers.len()],
            next: 0,
            timeout: settings.timeout,
            backoff_max: settings.backoff_max,
            avoid: settings.avoid,
            metrics,
        }
    }

    /// Returns once a worker recorded the batch (or refused it as malformed).
    async fn deliver(&mut self, batch: &[Accepted]) {
        let mut wire = Vec::with_capacity(batch.len() * 64);
        batch.iter().for_each(|a| intake::encode(a, &mut wire));
        let body = Bytes::from(wire);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let avoided = avoided(&self.failed_at, Instant::now(), self.avoid);
            for i in attempt_order(self.next, &avoided) {
                if self.attempt(i, body.clone(), batch.len()).await {
                    return;
                }
                self.metrics.retried();
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.backoff_max);
        }
    }

    /// One try on worker `i`; true when the batch is done with.
    async fn attempt(&mut self, i: usize, body: Bytes, payments: usize) -> bool {
        self.next = (i + 1) % self.clients.len();
        let started = Instant::now();
        let client = &mut self.clients[i];
        let outcome = client.post(body, self.timeout).await;
        let addr = client.addr().clone();
        match outcome {
            Ok(IntakeReply::Recorded) => {
                self.metrics.forwarded(payments, started.elapsed());
                if self.failed_at[i].take().is_some() {
                    tracing::warn!("worker {addr} takes intake again");
                }
                true
            }
            Ok(IntakeReply::Refused(answer)) => {
                tracing::error!("worker {addr} refused an intake batch as malformed, dropping its {payments} payments (a bug in lb or api): {answer}");
                self.metrics.dropped(payments);
                true
            }
            Ok(IntakeReply::Unavailable(status)) => {
                self.note_failure(i, || format!("worker {addr} answered intake with {status}"));
                false
            }
            Err(e) => {
                self.note_failure(i, || e.to_string());
                false
            }
        }
    }

    fn note_failure(&mut self, i: usize, what: impl FnOnce() -> String) {
        if self.failed_at[i].replace(Instant::now()).is_some() {
            tracing::debug!("{}; still retrying", what());
        } else {
            tracing::warn!("{}; retrying on the other worker / later", what());
        }
    }
}

/// Which workers failed within `avoid` before `now`.
fn avoided(failed_at: &[Option<Instant>], now: Instant, avoid: Duration) -> Vec<bool> {
    failed_at
        .iter()
        .map(|failed| failed.is_some_and(|at| now.saturating_duration_since(at) < avoid))
        .collect()
}

/// The order of one round of attempts: round robin from `next`, the avoided workers
/// after the others, every worker once.
fn attempt_order(next: usize, avoided: &[bool]) -> Vec<usize> {
    let n = avoided.len();
    let rotation = (0..n).map(|k| (next + k) % n);
    rotation
        .clone()
        .filter(|&i| !avoided[i])
        .chain(rotation.filter(|&i| avoided[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avoided_workers_go_last_and_are_still_tried() {
        assert_eq!(attempt_order(0, &[false, false]), [0, 1]);
        assert_eq!(attempt_order(1, &[false, false]), [1, 0]);
        assert_eq!(attempt_order(0, &[true, false]), [1, 0]);
        assert_eq!(attempt_order(1, &[false, true]), [0, 1]);
        assert_eq!(attempt_order(1, &[true, true]), [1, 0]);
        assert_eq!(attempt_order(2, &[true, false, false]), [2, 1, 0]);
        assert_eq!(attempt_order(0, &[false]), [0]);
    }

    #[test]
    fn a_failure_is_avoided_for_a_while_only() {
        let avoid = Duration::from_secs(5);
        let t0 = Instant::now();
        let failed_at = [None, Some(t0), Some(t0 + Duration::from_secs(3))];
        let now = t0 + Duration::from_secs(6);
        assert_eq!(avoided(&failed_at, now, avoid), [false, false, true]);
        assert_eq!(avoided(&failed_at, t0, avoid), [false, true, true]);
    }
}
