//! `GET /payments/service-health`: answered within the shared health budget
//! (`health_budget`), now or when a later window opens, or refused with 429.

use crate::health_budget::Slot;
use crate::state::Sim;
use crate::stats::bump;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;
use payment::Millis;
use service::reply::{self, Reply};
use std::time::Duration;

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
