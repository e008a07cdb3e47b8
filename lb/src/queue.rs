//! The bounded in-memory queue between the 202 and the forwarder.
//!
//! The accept path only ever calls [`QueueSender::push`], which never waits: a full
//! queue is an immediate "no" (the client gets 503 and retries) instead of a payment
//! accepted that the lb could not keep. It is a tokio bounded channel: `try_send` is a
//! few atomic operations and shares no lock with the forwarder's network I/O, and
//! closing the receiving side makes every later push fail while what is already queued
//! can still be drained, which is exactly what graceful shutdown needs. Because the
//! forwarder may be busy retrying a batch when shutdown starts, the sending side can
//! also refuse new payments at once ([`QueueSender::refuse_new`]); the receiver's close
//! is still what makes the final drain airtight.

use payment::intake::Accepted;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why a payment could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue holds its capacity already.
    Full,
    /// The lb is shutting down and takes no more payments.
    Closed,
}

/// The accept path's end: cheap to clone, never blocks.
#[derive(Clone)]
pub struct QueueSender {
    tx: mpsc::Sender<Accepted>,
    refusing: Arc<AtomicBool>,
}

/// The forwarder's end.
pub struct QueueReceiver {
    rx: mpsc::Receiver<Accepted>,
}

/// A queue holding at most `capacity` payments.
pub fn bounded(capacity: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        QueueSender {
            tx,
            refusing: Arc::default(),
        },
        QueueReceiver { rx },
    )
}

impl QueueSender {
    pub fn push(&self, accepted: Accepted) -> Result<(), PushError> {
        if self.refusing.load(Ordering::Relaxed) {
            return Err(PushError::Closed);
        }
        self.tx.try_send(accepted).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Closed,
        })
    }

    /// Makes every later push (from any clone) fail as closed. A push racing with this
    /// may still land; the receiver's [`QueueReceiver::close`] then drains it.
    pub fn refuse_new(&self) {
        self.refusing.store(true, Ordering::Relaxed);
    }

    /// Payments queued and not yet taken by the forwarder.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

impl QueueReceiver {
    /// Waits until at least one payment is queued, then moves whatever is queued (up to
    /// `max`) into `batch`: no waiting for a batch to fill. Returns 0 once the queue is
    /// closed and empty.
    pub async fn next_batch(&mut self, batch: &mut Vec<Accepted>, max: usize) -> usize {
        self.rx.recv_many(batch, max).await
    }

    /// Moves whatever is queued now (up to `max` in `batch` in all) into `batch`, without
    /// waiting.
    pub async fn top_up(&mut self, batch: &mut Vec<Accepted>, max: usize) {
        if batch.len() < max && !self.rx.is_empty() {
            self.rx.recv_many(batch, max - batch.len()).await;
        }
    }

    /// Refuses every later push; what is queued stays available to [`Self::next_batch`].
    pub fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payment::{Cents, Millis, Payment, Uuid};

    fn accepted() -> Accepted {
        Accepted {
            payment: Payment {
                correlation_id: Uuid::new_v4(),
                amount: Cents(1990),
            },
            accepted_at: Millis(1),
        }
    }

    #[tokio::test]
    async fn full_then_closed_but_drainable() {
        let (tx, mut rx) = bounded(2);
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
}
