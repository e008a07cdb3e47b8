//! The processors' concurrency bound on `POST /payments`: so many run at once, so many
//! more wait for a free slot, and the rest are refused at once with 429.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Admission {
    running: Semaphore,
    max_running: usize,
    /// Requests running or waiting; bounded by `max_running + max_waiting`.
    admitted: AtomicUsize,
    max_admitted: usize,
}

/// Held while a payment request runs; frees its place when dropped.
pub struct Ticket<'a> {
    _permit: SemaphorePermit<'a>,
    admitted: &'a AtomicUsize,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Frees a waiting place if the wait is abandoned.
struct Place<'a>(Option<&'a AtomicUsize>);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Some(admitted) = self.0 {
            admitted.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Admission {
    pub fn new(max_running: usize, max_waiting: usize) -> Admission {
        Admission {
            running: Semaphore::new(max_running),
            max_running,
            admitted: AtomicUsize::new(0),
            max_admitted: max_running + max_waiting,
        }
    }

    /// Waits for a running slot, or returns None at once when the waiting room is full.
    pub async fn enter(&self) -> Option<Ticket<'_>> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let mut place = Place(Some(&self.admitted));
        // The semaphore is never closed, so acquire only fails in theory.
        let permit = self.running.acquire().await.ok()?;
        place.0 = None;
        Some(Ticket {
            _permit: permit,
            admitted: &self.admitted,
        })
    }

    /// Requests holding a running slot now.
    pub fn running(&self) -> usize {
        self.max_running - self.running.available_permits()
    }

    /// Requests waiting for a running slot now.
    pub fn waiting(&self) -> usize {
        self.admitted
            .load(Ordering::Acquire)
            .saturating_sub(self.running())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_beyond_running_plus_waiting() {
        let admission = Admission::new(1, 1);
        let first = admission.enter().await;
        assert!(first.is_some());
        let mut second = Box::pin(admission.enter());
        assert!(
            futures_poll_once(second.as_mut()).await.is_none(),
            "second must wait"
        );
        assert_eq!((admission.running(), admission.waiting()), (1, 1));
        assert!(admission.enter().await.is_none(), "third is refused");
        drop(first);
        assert!(second.await.is_some());
        assert_eq!(admission.waiting(), 0);
    }

    /// Polls a future once, returning its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
