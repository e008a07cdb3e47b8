//! The bounded in-memory queue between the 202 and the forwarder (a tokio bounded channel).
//!
//! Invariant: [`QueueSender::push`] never waits: a full or closed queue is an immediate
//! "no" (the client gets 503), never a payment accepted that the lb cannot keep. Once
//! [`QueueReceiver::close`] ran, every later push fails and what is queued can still be
//! drained; [`QueueSender::refuse_new`] refuses new payments at once, for the drain. The
//! push that makes a batch's worth queued ends the forwarder's [`QueueReceiver::linger`].

use super::journal::Seq;
use payment::intake::Accepted;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// A payment in the queue: what the client sent, when the lb took it, and where the
/// journal keeps it until a worker commits it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queued {
    pub(crate) accepted: Accepted,
    pub(crate) seq: Seq,
}

/// Why a payment could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds its capacity already.
    Full,
    /// The lb is shutting down and takes no more payments.
    Closed,
}

/// The accept path's end: cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct QueueSender {
    tx: mpsc::Sender<Queued>,
    refusing: Arc<AtomicBool>,
    batch: usize,
    batch_queued: Arc<Notify>,
}

/// The forwarder's end.
pub(crate) struct QueueReceiver {
    rx: mpsc::Receiver<Queued>,
    batch: usize,
    batch_queued: Arc<Notify>,
}

/// A queue holding at most `capacity` payments, whose receiver lingers for `batch`
/// payments at most.
pub(crate) fn bounded(capacity: usize, batch: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    let batch_queued = Arc::new(Notify::new());
    (
        QueueSender {
            tx,
            refusing: Arc::default(),
            batch,
            batch_queued: batch_queued.clone(),
        },
        QueueReceiver {
            rx,
            batch,
            batch_queued,
        },
    )
}

impl QueueSender {
    pub(crate) fn push(&self, queued: Queued) -> Result<(), PushError> {
        if self.refusing.load(Ordering::Relaxed) {
            return Err(PushError::Closed);
        }
        self.tx.try_send(queued).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Closed,
        })?;
        if self.depth() == self.batch {
            // Wakes a lingering receiver only; one that is not lingering takes a full
            // batch anyway, and a stored wake-up would cut its next linger short. Two
            // racing pushes may both miss `==`: the linger then runs its full length.
            self.batch_queued.notify_waiters();
        }
        Ok(())
    }

    /// Makes every later push (from any clone) fail as closed. A push racing with this
    /// may still land; the receiver's [`QueueReceiver::close`] then drains it.
    pub(crate) fn refuse_new(&self) {
        self.refusing.store(true, Ordering::Relaxed);
    }

    /// Payments queued and not yet taken by the forwarder.
    pub(crate) fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

impl QueueReceiver {
    /// Waits until at least one payment is queued, then moves whatever is queued (up to
    /// `max`) into `batch`: no waiting for a batch to fill. Returns 0 once the queue is
    /// closed and empty.
    pub(crate) async fn next_batch(&mut self, batch: &mut Vec<Queued>, max: usize) -> usize {
        self.rx.recv_many(batch, max).await
    }

    /// Moves whatever is queued now (up to `max` in `batch` in all) into `batch`, without
    /// waiting.
    pub(crate) async fn top_up(&mut self, batch: &mut Vec<Queued>, max: usize) {
        if batch.len() < max && !self.rx.is_empty() {
            self.rx.recv_many(batch, max - batch.len()).await;
        }
    }

    /// Waits `linger`, or less if a batch's worth is queued meanwhile.
    pub(crate) async fn linger(&self, linger: Duration) {
        let batch_queued = self.batch_queued.notified();
        tokio::pin!(batch_queued);
        // Registered before the check, so a push in between still wakes it.
        batch_queued.as_mut().enable();
        if self.rx.len() >= self.batch {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = batch_queued => {}
        }
    }

    /// Refuses every later push; what is queued stays available to [`Self::next_batch`].
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payment::{Cents, Millis, Payment, Uuid};

    fn accepted() -> Queued {
        Queued {
            accepted: Accepted {
                payment: Payment {
                    correlation_id: Uuid::new_v4(),
                    amount: Cents(1990),
                },
                accepted_at: Millis(1),
            },
            seq: Seq::NONE,
        }
    }

    #[tokio::test]
    async fn full_then_closed_but_drainable() {
        let (tx, mut rx) = bounded(2, 2);
        assert_eq!(tx.push(accepted()), Ok(()));
        assert_eq!(tx.push(accepted()), Ok(()));
        assert_eq!(tx.push(accepted()), Err(PushError::Full));
        assert_eq!(tx.depth(), 2);
        tx.clone().refuse_new();
        assert_eq!(tx.push(accepted()), Err(PushError::Closed));
        rx.close();
        assert_eq!(tx.push(accepted()), Err(PushError::Closed));
        let mut batch = Vec::new();
        assert_eq!(rx.next_batch(&mut batch, 10).await, 2);
        assert_eq!(rx.next_batch(&mut batch, 10).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_linger_ends_when_a_batch_is_queued() {
        let (tx, mut rx) = bounded(10, 3);
        tx.push(accepted()).unwrap();
        let mut batch = Vec::new();
        rx.next_batch(&mut batch, 3).await;
        let started = tokio::time::Instant::now();
        // Nothing more arrives: the whole linger.
        rx.linger(Duration::from_millis(100)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // A batch's worth arrives 5 ms into the linger: it ends then.
        let pusher = tokio::spawn({
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                for _ in 0..3 {
                    tx.push(accepted()).unwrap();
                }
            }
        });
        let started = tokio::time::Instant::now();
        rx.linger(Duration::from_millis(100)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(5));
        pusher.await.unwrap();
        // Already a batch's worth queued: no linger at all.
        let started = tokio::time::Instant::now();
        rx.linger(Duration::from_millis(100)).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
