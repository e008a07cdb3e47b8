//! The health-check budget: one `GET /payments/service-health` per fixed window, up to two
//! more calls wait for the next windows, the rest get 429 with `Retry-After`.
//!
//! Windows are aligned to the Unix epoch (window k covers `[k·W, (k+1)·W)`), so a test
//! can tell from its own clock which window a call lands in.

use payment::Millis;
use std::sync::Mutex;

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
