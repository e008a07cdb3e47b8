//! `POST /payments` and `GET /payments/{id}`, in the order the real processors apply
//! their rules: the configured delay first, then failure (500), then duplicate (422),
//! then store (200).
//!
//! A malformed body is refused with 400 before the delay, as a framework's model binding
//! would. Never 422: our api reads 422 as "already processed here".

use crate::body;
use crate::ledger::StoredPayment;
use crate::state::Sim;
use crate::stats::bump;
use hyper::body::Incoming;
use hyper::StatusCode;
use payment::{Cents, Millis, TimeError, Uuid};
use serde::Deserialize;
use service::reply::{self, Reply};
use std::borrow::Cow;
use std::time::Duration;

const PROCESSED: &str = r#"{"message":"payment processed successfully"}"#;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Body(#[from] body::BodyError),
    #[error("body is not a JSON object with correlationId, amount and requestedAt: {0}")]
    BadJson(String),
    #[error("correlationId must be a UUID string, got `{0}`")]
    BadCorrelationId(String),
    #[error("amount must be a number of at least 0.01, got {0}")]
    BadAmount(f64),
    #[error("requestedAt: {0}")]
    BadRequestedAt(#[from] TimeError),
}

impl PaymentError {
    pub fn kind(&self) -> &'static str {
        match self {
            PaymentError::Body(_) => "bad_body",
            PaymentError::BadJson(_) => "bad_json",
            PaymentError::BadCorrelationId(_) => "bad_correlation_id",
            PaymentError::BadAmount(_) => "bad_amount",
            PaymentError::BadRequestedAt(_) => "bad_requested_at",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow)]
    correlation_id: Cow<'a, str>,
    amount: f64,
    #[serde(borrow)]
    requested_at: Cow<'a, str>,
}

/// Parses `{"correlationId","amount","requestedAt"}`: the amount rounded to cents, the
/// `requestedAt` kept exactly as sent (to the millisecond).
pub fn parse(body: &[u8]) -> Result<(Uuid, StoredPayment), PaymentError> {
    let parsed: Body<'_> =
        serde_json::from_slice(body).map_err(|e| PaymentError::BadJson(e.to_string()))?;
    let id = Uuid::try_parse(&parsed.correlation_id)
        .map_err(|_| PaymentError::BadCorrelationId(parsed.correlation_id.to_string()))?;
    let amount = Cents::round_from_f64(parsed.amount);
    if amount.0 <= 0 {
        return Err(PaymentError::BadAmount(parsed.amount));
    }
    let requested_at = Millis::parse_iso(&parsed.requested_at)?;
    Ok((
        id,
        StoredPayment {
            amount,
            requested_at,
        },
    ))
}

/// `POST /payments`.
pub async fn create(sim: &Sim, body: Incoming) -> Reply {
    let Some(_ticket) = sim.admission.enter().await else {
        bump(&sim.stats.payments_429);
        return reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many payments in flight",
        );
    };
    let (id, payment) = match read_and_parse(body).await {
        Ok(parsed) => parsed,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, e.kind(), &e),
    };
    let delay = sim.settings.delay_ms();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if sim.settings.failing() {
        bump(&sim.stats.payments_500);
        return reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failure",
            "the processor is failing",
        );
    }
    if !sim.ledger.insert(id, payment) {
        bump(&sim.stats.payments_422);
        return reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate",
            "correlationId already processed",
        );
    }
    bump(&sim.stats.payments_stored);
    reply::json(StatusCode::OK, PROCESSED)
}

async fn read_and_parse(body: Incoming) -> Result<(Uuid, StoredPayment), PaymentError> {
    let bytes = body::read(body).await?;
    parse(&bytes)
}

/// `GET /payments/{id}`: the stored payment, or 404 (also for an id that is no UUID).
pub fn find(sim: &Sim, id: &str) -> Reply {
    let Some((id, stored)) = Uuid::try_parse(id)
        .ok()
        .and_then(|id| Some((id, sim.ledger.get(&id)?)))
    else {
        return reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no payment with this correlationId",
        );
    };
    let body = format!(
        r#"{{"correlationId":"{id}","amount":{},"requestedAt":"{}"}}"#,
        stored.amount, stored.requested_at
    );
    reply::json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_our_api_sends() {
        let body = br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.899,"requestedAt":"2025-07-10T12:34:56.789Z"}"#;
        let (id, p) = parse(body).unwrap();
        assert_eq!(id.to_string(), "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3");
        assert_eq!(
            p,
            StoredPayment {
                amount: Cents(1990),
                requested_at: Millis(1_752_150_896_789)
            }
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let id = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";
        let at = "2025-07-10T12:34:56.789Z";
        let cases = [
            ("{".to_string(), "bad_json"),
            (
                format!(r#"{{"correlationId":"{id}","amount":1}}"#),
                "bad_json",
            ),
            (
                format!(r#"{{"correlationId":"x","amount":1,"requestedAt":"{at}"}}"#),
                "bad_correlation_id",
            ),
            (
                format!(r#"{{"correlationId":"{id}","amount":"1","requestedAt":"{at}"}}"#),
                "bad_json",
            ),
            (
                format!(r#"{{"correlationId":"{id}","amount":0.001,"requestedAt":"{at}"}}"#),
                "bad_amount",
            ),
            (
                format!(r#"{{"correlationId":"{id}","amount":1,"requestedAt":"now"}}"#),
                "bad_requested_at",
            ),
        ];
        for (body, kind) in cases {
            assert_eq!(parse(body.as_bytes()).unwrap_err().kind(), kind, "{body}");
        }
    }
}
