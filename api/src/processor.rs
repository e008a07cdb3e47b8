//! HTTP client for one payment processor: `POST /payments`, `GET /payments/{id}` and
//! `GET /payments/service-health`.
//!
//! One hyper-util pooled client per processor keeps connections alive between calls, so a
//! payment costs one request on a warm connection, not a TCP handshake. Every call is
//! bounded by the processor timeout; a timeout drops that connection (the pool opens a
//! new one), and the caller treats the payment's fate as unknown.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::uri::InvalidUri;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use payment::{Cents, Millis, Payment, Processor, Uuid};
use serde::Deserialize;
use std::time::Duration;

/// How a payment call ended: what the processor's answer (or its absence) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// 200: stored now.
    Processed,
    /// 422: it already had the payment (counts as processed there).
    AlreadyProcessed,
    /// 5xx: not stored, the processor is failing.
    Failed,
    /// Another 4xx: the processor refused this request; not stored.
    Rejected,
    /// 429: too busy, retried later.
    Busy,
    /// No answer: the call timed out or its connection broke. Whether the processor stored
    /// the payment is unknown, so it stays pinned there.
    NoAnswer,
}

impl CallOutcome {
    /// Every outcome, in the order `metrics` counts them.
    pub(crate) const ALL: [CallOutcome; 6] = [
        CallOutcome::Processed,
        CallOutcome::AlreadyProcessed,
        CallOutcome::Failed,
        CallOutcome::Rejected,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
    ];
}

/// What `GET /payments/{id}` said of one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// 200: the processor holds it, with this requestedAt and amount.
    Stored { requested_at: Millis, amount: Cents },
    /// 404: it does not hold it (now).
    NotFound,
    /// Anything else (an error, no answer, a body we cannot read): nothing learnt.
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredBody {
    requested_at: String,
    amount: serde_json::Number,
}

/// What `GET /payments/service-health` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Health {
    pub failing: bool,
    pub min_response_time_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HealthError {
    #[error("{processor} health check answered 429: the shared health budget was exceeded")]
    TooManyRequests { processor: Processor },
    #[error("{processor} health check answered {status}")]
    Status {
        processor: Processor,
        status: StatusCode,
    },
    #[error("{processor} health check failed: {why}")]
    Transport { processor: Processor, why: String },
    #[error("{processor} health check answer is not {{failing, minResponseTime}}: {why}")]
    BadBody { processor: Processor, why: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthBody {
    failing: bool,
    min_response_time: u64,
}

/// A client for one processor.
pub(crate) struct ProcessorClient {
    processor: Processor,
    payments_uri: Uri,
    health_uri: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl ProcessorClient {
    /// `base_url` is `http://host:port` (validated by config).
    pub(crate) fn new(
        processor: Processor,
        base_url: &str,
        timeout: Duration,
        pool_size: usize,
    ) -> Result<ProcessorClient, InvalidUri> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(ProcessorClient {
            processor,
            payments_uri: format!("{base_url}/payments").parse()?,
            health_uri: format!("{base_url}/payments/service-health").parse()?,
            client,
            timeout,
        })
    }

    pub(crate) fn processor(&self) -> Processor {
        self.processor
    }

    /// Sends one payment with its `requestedAt`.
    pub(crate) async fn pay(&self, payment: &Payment, requested_at: Millis) -> CallOutcome {
        let body = format!(
            r#"{{"correlationId":"{}","amount":{},"requestedAt":"{}"}}"#,
            payment.correlation_id, payment.amount, requested_at
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.payments_uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            // Only a malformed URI could get here, and config validated it.
            return CallOutcome::Failed;
        };
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(Ok((status, _))) => self.outcome(status),
            Ok(Err(why)) => {
                tracing::debug!(processor = %self.processor, "payment call failed: {why}");
                CallOutcome::NoAnswer
            }
            Err(_) => CallOutcome::NoAnswer,
        }
    }

    fn outcome(&self, status: StatusCode) -> CallOutcome {
        match status.as_u16() {
            200..=299 => CallOutcome::Processed,
            422 => CallOutcome::AlreadyProcessed,
            429 => CallOutcome::Busy,
            400..=499 => {
                tracing::warn!(processor = %self.processor, status = status.as_u16(), "the processor refused a payment; retrying it later");
                CallOutcome::Rejected
            }
            // 5xx, and anything a processor should never answer (1xx, 3xx): not stored.
            _ => CallOutcome::Failed,
        }
    }

    /// Asks whether the processor holds a payment (`GET /payments/{id}`), within the call
    /// timeout. Whether an earlier call can still be stored is the caller's business.
    pub(crate) async fn lookup(&self, id: Uuid) -> Lookup {
        let uri = format!("{}/{id}", self.payments_uri);
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(Full::new(Bytes::new()));
        let Ok(request) = request else {
            return Lookup::Unknown;
        };
        let answer = tokio::time::timeout(self.timeout, self.exchange(request)).await;
        let lookup = match answer {
            Ok(Ok((StatusCode::OK, body))) => stored(&body),
            Ok(Ok((StatusCode::NOT_FOUND, _))) => Some(Lookup::NotFound),
            _ => None,
        };
        lookup.unwrap_or_else(|| {
            tracing::debug!(processor = %self.processor, payment = %id, "lookup answered nothing usable");
            Lookup::Unknown
        })
    }

    /// Calls the health endpoint. The caller must hold the shared health turn.
    pub(crate) async fn health(&self) -> Result<Health, HealthError> {
        let processor = self.processor;
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.health_uri.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|e| HealthError::Transport {
                processor,
                why: e.to_string(),
            })?;
        let (status, body) = tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| HealthError::Transport {
                processor,
                why: "timed out".into(),
            })?
            .map_err(|why| HealthError::Transport { processor, why })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(HealthError::TooManyRequests { processor });
        }
        if status != StatusCode::OK {
            return Err(HealthError::Status { processor, status });
        }
        let parsed: HealthBody =
            serde_json::from_slice(&body).map_err(|e| HealthError::BadBody {
                processor,
                why: e.to_string(),
            })?;
        Ok(Health {
            failing: parsed.failing,
            min_response_time_ms: parsed.min_response_time,
        })
    }

    /// One request, with the whole answer body read so the connection can be reused.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// A 200 body of `GET /payments/{id}`, if it reads as one.
fn stored(body: &[u8]) -> Option<Lookup> {
    let parsed: StoredBody = serde_json::from_slice(body).ok()?;
    Some(Lookup::Stored {
        requested_at: Millis::parse_iso(&parsed.requested_at).ok()?,
        amount: Cents::parse_strict(&parsed.amount.to_string()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stored_payment() {
        let body = br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9,"requestedAt":"2025-07-10T12:34:56.789Z"}"#;
        assert_eq!(
            stored(body),
            Some(Lookup::Stored {
                requested_at: Millis::parse_iso("2025-07-10T12:34:56.789Z").unwrap(),
                amount: Cents(1990),
            })
        );
        assert_eq!(stored(br#"{"amount":19.9}"#), None);
        assert_eq!(
            stored(br#"{"amount":"x","requestedAt":"2025-07-10T12:34:56.789Z"}"#),
            None
        );
    }
}
