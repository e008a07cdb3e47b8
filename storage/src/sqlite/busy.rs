//! Bounded retry of `SQLITE_BUSY` / `SQLITE_LOCKED`.
//!
//! [`wait_for_lock`] makes SQLite wait for the other worker's write lock, but a few
//! paths return BUSY at once without calling the busy handler (WAL recovery after a crash,
//! a journal-mode switch racing another opener). Those last microseconds to milliseconds,
//! so a short backoff turns them into a wait instead of an error for the caller. A BUSY
//! that comes after the busy handler already waited its full timeout is not retried: the
//! lock is really held (someone left a transaction open) and the caller should hear so.

use std::time::{Duration, Instant};

/// Short waits first: the other worker's batch usually ends within a millisecond.
const SHORT_WAITS: i32 = 100;
const SHORT_WAIT: Duration = Duration::from_micros(100);
/// Then 1 ms waits, up to about 5 s in all.
const LONG_WAITS: i32 = 5_000;
const LONG_WAIT: Duration = Duration::from_millis(1);

/// SQLite's busy handler for every connection: `attempts` is how many times it was called
/// for this lock; returning false gives up with `SQLITE_BUSY`.
pub(super) fn wait_for_lock(attempts: i32) -> bool {
    let wait = match attempts {
        n if n < SHORT_WAITS => SHORT_WAIT,
        n if n < SHORT_WAITS + LONG_WAITS => LONG_WAIT,
        _ => return false,
    };
    std::thread::sleep(wait);
    true
}

/// Attempts in all, with backoff 1, 2, 4 … 256 ms between them (about half a second).
const ATTEMPTS: u32 = 10;
/// A BUSY later than this after the first try came through the busy handler's full wait.
const QUICK_FAILURE: Duration = Duration::from_secs(1);

/// Runs `op` until it succeeds, fails with something other than a quick busy, or the
/// attempts run out.
pub(super) fn retry<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if is_busy(&e) && attempt + 1 < ATTEMPTS && start.elapsed() < QUICK_FAILURE => {
                tracing::debug!(attempt, "database busy, retrying: {e}");
                std::thread::sleep(Duration::from_millis(1 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
