//! Validation of the public `POST /payments` body: `{"correlationId": "<uuid>", "amount": 19.90}`.

use crate::{AmountError, Cents, Payment};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// Largest body `POST /payments` accepts; a real one is about 70 bytes.
pub const MAX_BODY_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("body is not a JSON object with correlationId and amount: {0}")]
    BadJson(String),
    #[error(
        "correlationId must be a UUID string like 4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3, got `{0}`"
    )]
    BadCorrelationId(String),
    #[error(transparent)]
    BadAmount(#[from] AmountError),
}

impl RequestError {
    /// A stable machine-readable name for the error, for JSON error bodies and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::TooLarge => "body_too_large",
            RequestError::BadJson(_) => "bad_json",
            RequestError::BadCorrelationId(_) => "bad_correlation_id",
            RequestError::BadAmount(_) => "bad_amount",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: &'a RawValue,
    #[serde(borrow)]
    amount: &'a RawValue,
}

/// The public request body, validated.
pub struct PaymentRequest;

impl PaymentRequest {
    /// Parses and validates a `POST /payments` body. Nothing is accepted that could not be
    /// reported back exactly: the amount must be a positive JSON number with at most two
    /// decimal places, the id a UUID string.
    pub fn parse(body: &[u8]) -> Result<Payment, RequestError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(RequestError::TooLarge);
        }
        let parsed: Body<'_> =
            serde_json::from_slice(body).map_err(|e| RequestError::BadJson(e.to_string()))?;
        let id_text = parsed.correlation_id.get();
        let correlation_id = id_text
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .and_then(|s| Uuid::try_parse(s).ok())
            .ok_or_else(|| RequestError::BadCorrelationId(id_text.to_string()))?;
        let amount = Cents::parse_strict(parsed.amount.get())?;
        Ok(Payment {
            correlation_id,
            amount,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contest_body() {
        let p = PaymentRequest::parse(
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.90}"#,
        )
        .unwrap();
        assert_eq!(p.amount, Cents(1990));
        assert_eq!(
            p.correlation_id.to_string(),
            "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
        );
        let spaced =
            br#" { "amount" : 5 , "correlationId" : "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3" } "#;
        assert_eq!(PaymentRequest::parse(spaced).unwrap().amount, Cents(500));
    }

    #[test]
    fn names_what_is_wrong() {
        let id = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";
        let cases: [(String, &str); 9] = [
            ("not json".into(), "bad_json"),
            ("[]".into(), "bad_json"),
            (format!(r#"{{"correlationId":"{id}"}}"#), "bad_json"),
            (r#"{"amount":1}"#.into(), "bad_json"),
            (
                format!(r#"{{"correlationId":"{id}","amount":1,"extra":2}}"#),
                "bad_json",
            ),
            (
                r#"{"correlationId":"nope","amount":1}"#.into(),
                "bad_correlation_id",
            ),
            (
                r#"{"correlationId":42,"amount":1}"#.into(),
                "bad_correlation_id",
            ),
            (
                format!(r#"{{"correlationId":"{id}","amount":"19.90"}}"#),
                "bad_amount",
            ),
            (
                format!(r#"{{"correlationId":"{id}","amount":-1}}"#),
                "bad_amount",
            ),
        ];
        for (body, kind) in cases {
            let err = PaymentRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), kind, "{body}: {err}");
        }
        assert_eq!(
            PaymentRequest::parse(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(RequestError::TooLarge)
        );
    }
}
