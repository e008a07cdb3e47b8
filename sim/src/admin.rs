//! The `/admin/` endpoints the contest's test uses to steer a processor and read its
//! books, plus our `GET /admin/stats` and `GET /admin/payments`. The token check happens in
//! `routes` before any of these run.

use crate::body;
use crate::state::Sim;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::StatusCode;
use payment::Window;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use service::reply::{self, Reply};

/// `GET /admin/payments-summary?from&to`: totals over `requestedAt` in `[from, to]`, the
/// fee computed exactly from cents and the fee in parts per million.
pub fn summary(sim: &Sim, query: Option<&str>) -> Reply {
    // The processors ignore parameters other than from/to.
    let window = match Window::parse_lenient(query) {
        Ok(w) => w,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, "bad_window", e),
    };
    let totals = sim.ledger.totals(window);
    // cents × ppm is the fee in units of 1e-8.
    let fee = i128::from(totals.amount.0) * i128::from(sim.fee.0);
    let body = format!(
        r#"{{"totalRequests":{},"totalAmount":{},"totalFee":{},"feePerTransaction":{}}}"#,
        totals.requests,
        totals.amount,
        decimal(fee, 8),
        decimal(i128::from(sim.fee.0), 6)
    );
    reply::json(StatusCode::OK, body)
}

/// `value / 10^scale` as exact decimal text with at least two places: `decimal(99500000, 8)`
/// is `0.995`.
fn decimal(value: i128, scale: u32) -> String {
    let unit = 10i128.pow(scale);
    let sign = if value < 0 { "-" } else { "" };
    let frac = format!("{:0width$}", (value % unit).abs(), width = scale as usize);
    let trimmed = frac.trim_end_matches('0');
    let places = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    format!("{sign}{}.{places}", (value / unit).abs())
}

/// Reads a small JSON body into `T`, or the 400 to answer.
async fn json_body<T: DeserializeOwned>(body: Incoming) -> Result<T, Reply> {
    let bad = |e: String| reply::error(StatusCode::BAD_REQUEST, "bad_body", &e);
    let bytes: Bytes = body::read(body).await.map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
struct DelayBody {
    delay: u64,
}

#[derive(Deserialize)]
struct FailureBody {
    failure: bool,
}

/// `PUT /admin/configurations/token` `{"token"}` → 204.
pub async fn set_token(sim: &Sim, body: Incoming) -> Reply {
    match json_body::<TokenBody>(body).await {
        Ok(TokenBody { token }) if token.is_empty() => reply::error(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "token must not be empty",
        ),
        Ok(TokenBody { token }) => {
            sim.settings.set_token(token);
            reply::empty(StatusCode::NO_CONTENT)
        }
        Err(refused) => refused,
    }
}

/// `PUT /admin/configurations/delay` `{"delay":ms}` → `{"config":"delay","was","is"}`.
pub async fn set_delay(sim: &Sim, body: Incoming) -> Reply {
    match json_body::<DelayBody>(body).await {
        Ok(DelayBody { delay }) => changed("delay", sim.settings.swap_delay_ms(delay), delay),
        Err(refused) => refused,
    }
}

/// `PUT /admin/configurations/failure` `{"failure":bool}` → `{"config":"failure","was","is"}`.
pub async fn set_failure(sim: &Sim, body: Incoming) -> Reply {
    match json_body::<FailureBody>(body).await {
        Ok(FailureBody { failure }) => {
            changed("failure", sim.settings.swap_failing(failure), failure)
        }
        Err(refused) => refused,
    }
}

fn changed<T: serde::Serialize>(config: &str, was: T, is: T) -> Reply {
    let body = serde_json::json!({ "config": config, "was": was, "is": is });
    reply::json(StatusCode::OK, body.to_string())
}

/// `POST /admin/purge-payments`: forgets every payment (the stats counters stay).
pub fn purge(sim: &Sim) -> Reply {
    sim.ledger.purge();
    reply::json(StatusCode::OK, r#"{"message":"All payments purged."}"#)
}

/// `GET /admin/stats`: our counters since start, plus the concurrency gauges.
pub fn stats(sim: &Sim) -> Reply {
    let body = sim
        .stats
        .to_json(sim.admission.running(), sim.admission.waiting());
    reply::json(StatusCode::OK, body)
}

/// `GET /admin/payments`: every payment stored now, sorted by id, each with the
/// `requestedAt` and the amount it was stored with:
/// `{"payments":[{"correlationId":"..","requestedAt":"2025-07-10T12:34:56.000Z","amount":19.90},..]}`.
/// One call tells a test which ids this processor holds (two processors holding the same
/// id is a double charge) and lets it compare each with our row, which no total does.
pub fn payments(sim: &Sim) -> Reply {
    use std::fmt::Write;
    let all = sim.ledger.payments();
    // About 100 bytes a payment; written by hand, so the amount keeps its two places.
    let mut body = String::with_capacity(16 + all.len() * 104);
    body.push_str(r#"{"payments":["#);
    for (i, (id, p)) in all.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(
            body,
            r#"{comma}{{"correlationId":"{id}","requestedAt":"{}","amount":{}}}"#,
            p.requested_at, p.amount
        );
    }
    body.push_str("]}");
    reply::json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(99_500_000, 8), "0.995");
        assert_eq!(decimal(50_000, 6), "0.05");
        assert_eq!(decimal(0, 8), "0.00");
        assert_eq!(decimal(1_000_000, 6), "1.00");
        assert_eq!(decimal(123_450_000_000, 8), "1234.50");
    }
}
