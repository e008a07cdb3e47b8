//! The wire format of `POST /intake`, the lb → api hop: one payment per line,
//! `<correlation-id> <cents> <accepted-at-ms>\n`.
//!
//! Plain text so a person can replay a batch with curl, and cheap to write and read:
//! no JSON on the hot hop between our own processes.

use crate::{Cents, Millis, Payment};
use uuid::Uuid;

/// The largest `POST /intake` body a worker takes: far above any batch the lb sends, far
/// below what would strain a worker's memory.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// The longest line [`encode`] writes: a hyphenated uuid, then two `i64`s (at most 20
/// characters each, sign included), two spaces and the newline.
pub const MAX_LINE_BYTES: usize = uuid::fmt::Hyphenated::LENGTH + 2 * 20 + 3;
/// The most payments in one batch that always fits in [`MAX_BATCH_BYTES`]: the bound of
/// the lb's `LB_BATCH_MAX`.
pub const MAX_BATCH_PAYMENTS: usize = MAX_BATCH_BYTES / MAX_LINE_BYTES;
const _: () = assert!(MAX_BATCH_PAYMENTS * MAX_LINE_BYTES <= MAX_BATCH_BYTES);

/// A payment as the lb forwards it: what the client sent plus when the lb accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub payment: Payment,
    pub accepted_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("intake line {line} is not `<uuid> <cents> <accepted-at-ms>`: `{text}`")]
pub struct IntakeError {
    pub line: usize,
    pub text: String,
}

/// Appends one payment's line to `out`.
pub fn encode(accepted: &Accepted, out: &mut Vec<u8>) {
    use std::io::Write;
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = accepted
        .payment
        .correlation_id
        .hyphenated()
        .encode_lower(&mut id);
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        out,
        "{id} {} {}",
        accepted.payment.amount.0, accepted.accepted_at.0
    );
}

/// Parses a whole batch. One bad line rejects the batch: the sender is our own lb, so a
/// bad line means a bug or a stranger, and half a batch would be harder to reason about.
pub fn decode(body: &[u8]) -> Result<Vec<Accepted>, IntakeError> {
    let text = std::str::from_utf8(body).map_err(|_| IntakeError {
        line: 0,
        text: "<not utf-8>".into(),
    })?;
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            decode_line(line).ok_or_else(|| IntakeError {
                line: i + 1,
                text: line.to_string(),
            })
        })
        .collect()
}

fn decode_line(line: &str) -> Option<Accepted> {
    let mut parts = line.split(' ');
    let correlation_id = Uuid::try_parse(parts.next()?).ok()?;
    let cents: i64 = parts.next()?.parse().ok()?;
    let accepted_at: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || cents <= 0 {
        return None;
    }
    Some(Accepted {
        payment: Payment {
            correlation_id,
            amount: Cents(cents),
        },
        accepted_at: Millis(accepted_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_batch() {
        let batch: Vec<Accepted> = (0..3)
            .map(|i| Accepted {
                payment: Payment {
                    correlation_id: Uuid::new_v4(),
                    amount: Cents(1990 + i),
                },
                accepted_at: Millis(1_752_150_896_789 + i),
            })
            .collect();
        let mut wire = Vec::new();
        batch.iter().for_each(|a| encode(a, &mut wire));
        assert_eq!(decode(&wire).unwrap(), batch);
    }

    #[test]
    fn rejects_a_bad_line_by_number() {
        let id = Uuid::new_v4();
        let body = format!("{id} 1990 1\n{id} nineteen 1\n");
        assert_eq!(decode(body.as_bytes()).unwrap_err().line, 2);
        assert!(decode(format!("{id} 0 1\n").as_bytes()).is_err());
        assert!(decode(format!("{id} 1 1 extra\n").as_bytes()).is_err());
        assert_eq!(decode(b"").unwrap(), vec![]);
    }

    #[test]
    fn the_longest_line_fits_the_bound() {
        let mut wire = Vec::new();
        let longest = Accepted {
            payment: Payment {
                correlation_id: Uuid::new_v4(),
                amount: Cents(i64::MIN),
            },
            accepted_at: Millis(i64::MIN),
        };
        encode(&longest, &mut wire);
        assert_eq!(wire.len(), MAX_LINE_BYTES);
    }
}
