//! Counters since start, for our own tests (`GET /admin/stats`): they prove the health
//! budget was respected and nothing was charged twice. A purge clears payments, not these.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub payments_stored: AtomicU64,
    pub payments_500: AtomicU64,
    pub payments_422: AtomicU64,
    pub payments_429: AtomicU64,
    pub health_answered: AtomicU64,
    pub health_429: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// The counters plus the two gauges of the concurrency bound, as JSON.
    pub fn to_json(&self, running: usize, waiting: usize) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "paymentsStored": get(&self.payments_stored),
            "payments500": get(&self.payments_500),
            "payments422": get(&self.payments_422),
            "payments429": get(&self.payments_429),
            "healthAnswered": get(&self.health_answered),
            "health429": get(&self.health_429),
            "paymentsRunning": running,
            "paymentsWaiting": waiting,
        })
        .to_string()
    }
}
