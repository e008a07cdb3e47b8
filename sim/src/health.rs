//! The health-check budget: one `GET /payments/service-health` per fixed window, up to two
//! more calls wait for the next windows, the rest get 429 with `Retry-After`.
//!
//! Windows are aligned to the Unix epoch (window k covers `[k·W, (k+1)·W)`), so a test
//! can tell from its own clock which window a call lands in.

use crate::state::Sim;
use crate::stats::bump;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;
use payment::Millis;
use service::reply::{self, Reply};
use std::sync::Mutex;
use std::time::Duration;

/// How many calls may wait for a later window beyond the one answered now.
const MAX_WAITING: i64 = 2;

/// What a health call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Answer now.
    Now,
    /// Answer when the window starting at this instant opens.
    At(Millis),
    /// 429; a call after this many seconds would be answered at once.
    Refused { retry_after_secs: u64 },
}

pub struct HealthBudget {
    window_ms: i64,
    /// Index of the first window whose slot nobody has taken yet.
    next_free: Mutex<i64>,
}

impl HealthBudget {
    pub fn new(window_secs: u64) -> HealthBudget {
        HealthBudget {
            window_ms: window_secs as i64 * 1000,
            next_free: Mutex::new(i64::MIN),
        }
    }

    /// Takes the first free window's slot for a call arriving at `now`, if it is the
    /// current window or one of the next [`MAX_WAITING`].
    pub fn claim(&self, now: Millis) -> Slot {
        let current = now.0.div_euclid(self.window_ms);
        let mut next_free = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let window = (*next_free).max(current);
        if window - current > MAX_WAITING {
            let free_at = *next_free * self.window_ms;
            let secs = (free_at - now.0 + 999) / 1000;
            return Slot::Refused {
                retry_after_secs: secs.max(1) as u64,
            };
        }
        *next_free = window + 1;
        if window == current {
            Slot::Now
        } else {
            Slot::At(Millis(window * self.window_ms))
        }
    }
}

/// `GET /payments/service-health`: answers within the budget, reporting the state at the
/// moment of the answer (a waiting call sees changes made while it waited).
pub async fn service_health(sim: &Sim) -> Reply {
    let now = Millis::now();
    match sim.health.claim(now) {
        Slot::Now => {}
        Slot::At(opens) => {
            tokio::time::sleep(Duration::from_millis((opens.0 - now.0).max(0) as u64)).await
        }
        Slot::Refused { retry_after_secs } => {
            bump(&sim.stats.health_429);
            let mut refused = reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "health-check budget exhausted: one call per window",
            );
            refused
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return refused;
        }
    }
    bump(&sim.stats.health_answered);
    let body = format!(
        r#"{{"failing":{},"minResponseTime":{}}}"#,
        sim.settings.failing(),
        sim.settings.delay_ms()
    );
    reply::json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_now_two_wait_the_rest_refused() {
        let budget = HealthBudget::new(5);
        let t = Millis(1_000_000 + 1_234);
        assert_eq!(budget.claim(t), Slot::Now);
        assert_eq!(budget.claim(t), Slot::At(Millis(1_005_000)));
        assert_eq!(budget.claim(t), Slot::At(Millis(1_010_000)));
        assert_eq!(
            budget.claim(t),
            Slot::Refused {
                retry_after_secs: 14
            }
        );
        // In the next window its slot is already taken, but one more may wait.
        assert_eq!(budget.claim(Millis(1_005_000)), Slot::At(Millis(1_015_000)));
        // A quiet period frees the budget again.
        assert_eq!(budget.claim(Millis(1_100_000)), Slot::Now);
    }
}
