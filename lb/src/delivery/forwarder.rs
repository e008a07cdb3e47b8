//! The forwarder: a Pingora background service that moves accepted payments from the
//! queue to the workers' `POST /intake`, in batches after a short linger
//! (`LB_BATCH_LINGER_MS`, cut short once `LB_BATCH_MAX` are queued), round robin with
//! failover, a worker whose intake just failed tried after the others for `LB_AVOID_MS`.
//!
//! Invariant: a payment leaves the lb (and the journal) only when a worker answered 200,
//! or, a bug, refused its batch as malformed (400: logged, counted, dropped); anything else
//! is retried, for as long as it takes (intake is idempotent), and a 413 is sent again in
//! halves. On [`Shutdown`] it closes the queue and delivers what is left, then says so.

use super::intake_client::{IntakeClient, IntakeReply};
use super::journal::Journal;
use super::queue::{QueueReceiver, Queued};
use super::workers::WorkerAddr;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use async_trait::async_trait;
use bytes::Bytes;
use payment::intake;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// How the forwarder delivers.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workers: Vec<WorkerAddr>,
    pub(crate) batch_max: usize,
    pub(crate) batch_linger: Duration,
    pub(crate) forward_timeout: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) avoid: Duration,
}

pub(crate) struct Forwarder {
    /// Taken once when the service starts.
    queue: Mutex<Option<QueueReceiver>>,
    settings: Settings,
    metrics: Arc<Metrics>,
    journal: Arc<Journal>,
    shutdown: Arc<Shutdown>,
}

impl Forwarder {
    pub(crate) fn new(
        queue: QueueReceiver,
        settings: Settings,
        metrics: Arc<Metrics>,
        journal: Arc<Journal>,
        shutdown: Arc<Shutdown>,
    ) -> Self {
        Forwarder {
            queue: Mutex::new(Some(queue)),
            settings,
            metrics,
            journal,
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
        let mut rotation =
            Rotation::new(&self.settings, self.metrics.clone(), self.journal.clone());
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
            if !self.settings.batch_linger.is_zero() && batch.len() < self.settings.batch_max {
                // One wait, then one take: the forwarder is not woken by every payment that
                // arrives meanwhile, only by the one that completes a batch.
                queue.linger(self.settings.batch_linger).await;
                queue.top_up(&mut batch, self.settings.batch_max).await;
            }
            rotation.deliver(&batch).await;
            batch.clear();
        }
        self.shutdown.mark_drained();
    }
}

/// What came of one intake attempt.
enum Attempt {
    Recorded,
    Malformed,
    TooLarge,
    Failed,
}

/// A worker found a batch too large to take.
struct TooLarge;

/// The forwarder's connections and its place in the rotation.
struct Rotation {
    clients: Vec<IntakeClient>,
    /// Per worker, when its last intake attempt failed, unless one succeeded since.
    failed_at: Vec<Option<Instant>>,
    next: usize,
    forward_timeout: Duration,
    backoff_max: Duration,
    avoid: Duration,
    metrics: Arc<Metrics>,
    journal: Arc<Journal>,
}

impl Rotation {
    fn new(settings: &Settings, metrics: Arc<Metrics>, journal: Arc<Journal>) -> Rotation {
        Rotation {
            clients: settings
                .workers
                .iter()
                .cloned()
                .map(IntakeClient::new)
                .collect(),
            failed_at: vec![None; settings.workers.len()],
            next: 0,
            forward_timeout: settings.forward_timeout,
            backoff_max: settings.backoff_max,
            avoid: settings.avoid,
            metrics,
            journal,
        }
    }

    /// Returns once workers recorded every payment of the batch (or refused some as
    /// malformed); a batch a worker finds too large is sent again in halves.
    async fn deliver(&mut self, batch: &[Queued]) {
        let mut parts = vec![batch];
        while let Some(part) = parts.pop() {
            let Some(TooLarge) = self.deliver_whole(part).await else {
                continue;
            };
            if part.len() > 1 {
                let (first, second) = part.split_at(part.len() / 2);
                parts.extend([second, first]);
            } else {
                tracing::error!("a worker refused one payment's intake line as too large, dropping it (a bug in lb or api)");
                self.done_with(part, false);
            }
        }
    }

    /// Sends `batch` as one intake request until a worker records or refuses it; returns
    /// `Some(TooLarge)` if a worker answered 413 instead.
    async fn deliver_whole(&mut self, batch: &[Queued]) -> Option<TooLarge> {
        let mut wire = Vec::with_capacity(batch.len() * 64);
        batch
            .iter()
            .for_each(|q| intake::encode(&q.accepted, &mut wire));
        let body = Bytes::from(wire);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let avoided = avoided(&self.failed_at, Instant::now(), self.avoid);
            for i in attempt_order(self.next, &avoided) {
                match self.attempt(i, body.clone(), batch.len()).await {
                    Attempt::Recorded => return self.done_with(batch, true),
                    Attempt::Malformed => return self.done_with(batch, false),
                    Attempt::TooLarge => return Some(TooLarge),
                    Attempt::Failed => self.metrics.retried(),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.backoff_max);
        }
    }

    /// The payments of `batch` leave the lb: recorded by a worker, or dropped as a bug.
    fn done_with(&self, batch: &[Queued], recorded: bool) -> Option<TooLarge> {
        if !recorded {
            self.metrics.dropped(batch.len());
        }
        batch.iter().for_each(|q| self.journal.retire(q.seq));
        None
    }

    /// One try on worker `i`.
    async fn attempt(&mut self, i: usize, body: Bytes, payments: usize) -> Attempt {
        self.next = (i + 1) % self.clients.len();
        let started = Instant::now();
        let client = &mut self.clients[i];
        let outcome = client.post(body, self.forward_timeout).await;
        let addr = client.addr().clone();
        match outcome {
            Ok(IntakeReply::Recorded) => {
                self.metrics.forwarded(payments, started.elapsed());
                if self.failed_at[i].take().is_some() {
                    tracing::warn!("worker {addr} takes intake again");
                }
                Attempt::Recorded
            }
            Ok(IntakeReply::Malformed(answer)) => {
                tracing::error!("worker {addr} refused an intake batch as malformed, dropping its {payments} payments (a bug in lb or api): {answer}");
                Attempt::Malformed
            }
            Ok(IntakeReply::TooLarge) => {
                tracing::warn!("worker {addr} found an intake batch of {payments} payments too large; sending it in halves (lower LB_BATCH_MAX)");
                Attempt::TooLarge
            }
            Ok(IntakeReply::Unavailable(status)) => {
                self.note_failure(i, || format!("worker {addr} answered intake with {status}"));
                Attempt::Failed
            }
            Err(e) => {
                self.note_failure(i, || e.to_string());
                Attempt::Failed
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

    /// A worker that takes bodies of at most `max_lines` intake lines (413 beyond) and
    /// keeps every line it took.
    async fn small_worker(max_lines: usize) -> (WorkerAddr, Arc<Mutex<Vec<String>>>) {
        use http_body_util::{BodyExt, Full};
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string().parse().unwrap();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let kept = taken.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let kept = kept.clone();
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let lines: Vec<String> = String::from_utf8_lossy(&body)
                            .lines()
                            .map(String::from)
                            .collect();
                        let status = if lines.len() > max_lines { 413 } else { 200 };
                        if status == 200 {
                            kept.lock().unwrap().extend(lines);
                        }
                        let mut answer = hyper::Response::new(Full::new(Bytes::new()));
                        *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(answer)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, taken)
    }

    #[tokio::test]
    async fn a_batch_a_worker_finds_too_large_is_delivered_in_halves() {
        let (worker, taken) = small_worker(3).await;
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(&dir.path().join("j"), 16).unwrap();
        let journal = Arc::new(journal);
        let settings = Settings {
            workers: vec![worker],
            batch_max: 10,
            batch_linger: Duration::ZERO,
            forward_timeout: Duration::from_secs(5),
            backoff_max: Duration::from_millis(100),
            avoid: Duration::from_secs(1),
        };
        let mut rotation = Rotation::new(&settings, Arc::default(), journal.clone());
        let batch: Vec<Queued> = (0..10)
            .map(|i| {
                let accepted = payment::intake::Accepted {
                    payment: payment::Payment {
                        correlation_id: payment::Uuid::new_v4(),
                        amount: payment::Cents(100 + i),
                    },
                    accepted_at: payment::Millis(i),
                };
                Queued {
                    accepted,
                    seq: journal.record(&accepted).unwrap(),
                }
            })
            .collect();
        // Before the split, a 413 was retried whole, forever.
        tokio::time::timeout(Duration::from_secs(10), rotation.deliver(&batch))
            .await
            .expect("delivered within 10 s");
        let taken = taken.lock().unwrap().clone();
        let sent: Vec<String> = batch
            .iter()
            .map(|q| {
                let mut line = Vec::new();
                intake::encode(&q.accepted, &mut line);
                String::from_utf8(line).unwrap().trim_end().to_string()
            })
            .collect();
        assert_eq!(taken, sent, "every payment once, in order");
        assert_eq!(journal.live(), 0, "all retired");
    }
}
