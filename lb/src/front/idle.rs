//! The idle client connections: those waiting for their next request with no byte of it
//! read. At the connection cap the lb closes the one idle the longest to serve a new client.
//!
//! Invariant: "no byte read" holds at the moment of closing, also across threads. Each poll
//! of a connection's first read moves it from idle to reading (one compare-and-swap), and
//! the closer only takes a connection from idle, so it never closes one whose bytes are
//! being read; a read that ends with bytes leaves it busy, one that must wait, idle again.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::sync::Notify;

/// A connection's state: the low two bits; the rest count its waits, so that the place a
/// connection had in the list during an earlier wait is known to be stale.
const BUSY: u64 = 0;
const IDLE: u64 = 1;
const READING: u64 = 2;
const CLOSED: u64 = 3;

fn state(wait: u64, tag: u64) -> u64 {
    wait << 2 | tag
}

/// Every connection's wait, in the order they began (stale places included, dropped as
/// they are met), and how many connections are idle now.
pub(crate) struct IdleConnections {
    waits: Mutex<VecDeque<(Arc<Waiter>, u64)>>,
    idle: AtomicUsize,
    /// The list is rid of its stale places when it grows to this.
    compact_at: usize,
}

/// One connection's state, and its wake-up when it is closed.
#[derive(Default)]
pub(crate) struct Waiter {
    state: AtomicU64,
    closed: Notify,
}

/// What came of a connection's wait for its next request.
pub(crate) enum FirstRead<T> {
    /// The read ended (with bytes, at the end of the stream, or in error).
    Read(T),
    /// The connection was closed to make room, before any byte was read.
    ClosedIdle,
}

impl IdleConnections {
    /// For at most `connections` connections open at once.
    pub(crate) fn new(connections: usize) -> IdleConnections {
        IdleConnections {
            waits: Mutex::new(VecDeque::new()),
            idle: AtomicUsize::new(0),
            compact_at: connections.saturating_mul(2).saturating_add(64),
        }
    }

    /// Connections idle now.
    pub(crate) fn count(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    /// Closes the connection idle the longest; false if none is idle.
    pub(crate) fn close_oldest(&self) -> bool {
        let mut waits = self.lock();
        // Connections whose read is being polled right now (on another thread): not idle
        // at this moment, and back in their place afterwards.
        let mut reading = Vec::new();
        let mut closed = None;
        while let Some((waiter, wait)) = waits.pop_front() {
            let taken = waiter.state.compare_exchange(
                state(wait, IDLE),
                state(wait, CLOSED),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            match taken {
                Ok(_) => {
                    closed = Some(waiter);
                    break;
                }
                Err(now) if now == state(wait, READING) => reading.push((waiter, wait)),
                Err(_) => {} // a stale place: that wait is over
            }
        }
        for place in reading.into_iter().rev() {
            waits.push_front(place);
        }
        drop(waits);
        let Some(waiter) = closed else {
            return false;
        };
        self.idle.fetch_sub(1, Ordering::Relaxed);
        waiter.closed.notify_one();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Arc<Waiter>, u64)>> {
        // A panic elsewhere under the lock leaves a list that is still consistent.
        self.waits.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, waiter: Arc<Waiter>, wait: u64) {
        self.idle.fetch_add(1, Ordering::Relaxed);
        let mut waits = self.lock();
        if waits.len() >= self.compact_at {
            waits.retain(|(w, n)| {
                let now = w.state.load(Ordering::Acquire);
                now == state(*n, IDLE) || now == state(*n, READING)
            });
        }
        waits.push_back((waiter, wait));
    }
}

/// One connection's part in [`IdleConnections`], for as long as it is open.
pub(crate) struct IdleSpot<'a> {
    all: &'a IdleConnections,
    waiter: Arc<Waiter>,
    /// Its waits so far; the current one if `listed`.
    wait: u64,
    /// In the list as idle (or reading) for the current wait.
    listed: bool,
}

impl<'a> IdleSpot<'a> {
    pub(crate) fn new(all: &'a IdleConnections) -> IdleSpot<'a> {
        IdleSpot {
            all,
            waiter: Arc::default(),
            wait: 0,
            listed: false,
        }
    }

    /// Runs `read`, the read of the first bytes of the next request, with the connection
    /// idle (closable) while it waits, and never once a poll of `read` returned bytes.
    pub(crate) async fn first_read<F: Future>(&mut self, read: F) -> FirstRead<F::Output> {
        let waiter = self.waiter.clone();
        let mut closed = pin!(waiter.closed.notified());
        let mut read = pin!(read);
        poll_fn(|cx| {
            // Only wakes this task when closed; the state says what happened.
            let _ = closed.as_mut().poll(cx);
            if !self.begin_read() {
                self.listed = false;
                return Poll::Ready(FirstRead::ClosedIdle);
            }
            match read.as_mut().poll(cx) {
                Poll::Ready(out) => {
                    self.end_wait();
                    Poll::Ready(FirstRead::Read(out))
                }
                Poll::Pending => {
                    self.keep_waiting();
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Idle to reading; false if the connection was closed meanwhile.
    fn begin_read(&self) -> bool {
        !self.listed
            || self
                .waiter
                .state
                .compare_exchange(
                    state(self.wait, IDLE),
                    state(self.wait, READING),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Bytes came (or the stream ended): busy, out of the idle ones.
    fn end_wait(&mut self) {
        if self.listed {
            self.waiter
                .state
                .store(state(self.wait, BUSY), Ordering::Release);
            self.all.idle.fetch_sub(1, Ordering::Relaxed);
            self.listed = false;
        }
    }

    /// Nothing yet: idle again, listed at the end on the first time of this wait.
    fn keep_waiting(&mut self) {
        if self.listed {
            self.waiter
                .state
                .store(state(self.wait, IDLE), Ordering::Release);
            return;
        }
        self.wait += 1;
        self.waiter
            .state
            .store(state(self.wait, IDLE), Ordering::Release);
        self.all.push(self.waiter.clone(), self.wait);
        self.listed = true;
    }
}

impl Drop for IdleSpot<'_> {
    /// A connection that ends while idle (its wait timed out, the client left) is no
    /// longer one the closer may take.
    fn drop(&mut self) {
        let gone = self.waiter.state.compare_exchange(
            state(self.wait, IDLE),
            state(self.wait, BUSY),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if self.listed && gone.is_ok() {
            self.all.idle.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;
    use std::task::{Context, Waker};

    /// Polls `future` once, without a runtime.
    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_connection_idle_longest_is_closed_first_and_only_while_idle() {
        let all = IdleConnections::new(4);
        let (mut first, mut second) = (IdleSpot::new(&all), IdleSpot::new(&all));
        let mut first_wait = Box::pin(first.first_read(pending::<()>()));
        assert!(poll_once(first_wait.as_mut()).is_pending());
        let mut second_wait = Box::pin(second.first_read(pending::<()>()));
        assert!(poll_once(second_wait.as_mut()).is_pending());
        assert_eq!(all.count(), 2);

        assert!(all.close_oldest());
        assert!(matches!(
            poll_once(first_wait.as_mut()),
            Poll::Ready(FirstRead::ClosedIdle)
        ));
        assert!(poll_once(second_wait.as_mut()).is_pending());
        assert_eq!(all.count(), 1);
        drop(second_wait);
        drop(second);
        assert_eq!(all.count(), 0, "a connection that ended is not idle");
        assert!(!all.close_oldest(), "nothing idle is left");
    }

    #[test]
    fn a_connection_whose_bytes_were_read_is_not_idle() {
        let all = IdleConnections::new(4);
        let mut spot = IdleSpot::new(&all);
        let mut polls = 0;
        let read = poll_fn(|_| {
            polls += 1;
            if polls < 2 {
                Poll::Pending
            } else {
                Poll::Ready(512)
            }
        });
        let mut wait = pin!(spot.first_read(read));
        assert!(poll_once(wait.as_mut()).is_pending());
        assert_eq!(all.count(), 1);
        assert!(matches!(
            poll_once(wait.as_mut()),
            Poll::Ready(FirstRead::Read(512))
        ));
        assert_eq!(all.count(), 0);
        assert!(!all.close_oldest(), "its place in the list is stale");
    }
}
