//! What the admin endpoints change at run time: the delay, the failure switch and the
//! token. Read on every payment, so the two hot ones are atomics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

pub struct Settings {
    delay_ms: AtomicU64,
    failing: AtomicBool,
    token: Mutex<String>,
}

impl Settings {
    pub fn new(token: String) -> Settings {
        Settings {
            delay_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            token: Mutex::new(token),
        }
    }

    pub fn delay_ms(&self) -> u64 {
        self.delay_ms.load(Ordering::Relaxed)
    }

    /// Sets the delay, returning the previous one.
    pub fn swap_delay_ms(&self, delay_ms: u64) -> u64 {
        self.delay_ms.swap(delay_ms, Ordering::Relaxed)
    }

    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Sets the failure switch, returning the previous state.
    pub fn swap_failing(&self, failing: bool) -> bool {
        self.failing.swap(failing, Ordering::Relaxed)
    }

    pub fn token_matches(&self, given: &[u8]) -> bool {
        self.token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_bytes()
            == given
    }

    pub fn set_token(&self, token: String) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = token;
    }
}
