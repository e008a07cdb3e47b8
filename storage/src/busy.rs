//! Bounded retry of `SQLITE_BUSY` / `SQLITE_LOCKED`.
//!
//! `busy_timeout` already makes SQLite wait for the other worker's write lock, but a few
//! paths return BUSY without calling the busy handler (WAL recovery after a crash, a
//! journal-mode switch racing another opener). Those last microseconds to milliseconds,
//! so a short backoff turns them into a wait instead of an error for the caller.

use std::time::Duration;

/// Attempts in all, with backoff 1, 2, 4 … 256 ms between them (about half a second).
const ATTEMPTS: u32 = 10;

/// Runs `op` until it succeeds, fails with something other than busy, or the attempts run out.
pub fn retry<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if is_busy(&e) && attempt + 1 < ATTEMPTS => {
                tracing::debug!(attempt, "database busy, retrying: {e}");
                std::thread::sleep(Duration::from_millis(1 << attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
