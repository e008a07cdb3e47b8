//! From columns to the records storage hands out, and back: what both databases store the
//! same way (amounts in integer cents, times in integer milliseconds, processors by name),
//! so each backend only reads its columns and calls these.

use crate::model::{Attempt, Destination, DoubleCharge, HealthRecord, Pending};
use payment::{Cents, Millis, Payment, Processor, ProcessorTotals, Summary, Uuid};
use std::time::Duration;

/// The columns of a pending row, as read back from a claim.
pub(crate) struct PendingRow<'a> {
    pub correlation_id: Uuid,
    pub amount: i64,
    pub accepted_at: i64,
    pub processor: Option<&'a str>,
    pub requested_at: Option<i64>,
    pub pinned: bool,
}

impl PendingRow<'_> {
    /// A row has an attempt once it has both the processor and the requestedAt; it is
    /// pinned only to the processor of an attempt.
    pub(crate) fn into_pending(self) -> Pending {
        let attempt = match (
            self.processor.and_then(Processor::from_name),
            self.requested_at,
        ) {
            (Some(processor), Some(at)) => Some(Attempt {
                processor,
                requested_at: Millis(at),
            }),
            _ => None,
        };
        let destination = match (self.pinned, attempt) {
            (true, Some(attempt)) => Destination::PinnedTo(attempt.processor),
            _ => Destination::Anywhere,
        };
        Pending {
            payment: Payment {
                correlation_id: self.correlation_id,
                amount: Cents(self.amount),
            },
            accepted_at: Millis(self.accepted_at),
            attempt,
            destination,
        }
    }
}

/// The attempt a take-for-sending stored: the processor in the row (`asked` if the name is
/// unknown, which the table's CHECK forbids) and its requestedAt.
pub(crate) fn stored_attempt(processor: &str, requested_at: i64, asked: Processor) -> Attempt {
    Attempt {
        processor: Processor::from_name(processor).unwrap_or(asked),
        requested_at: Millis(requested_at),
    }
}

/// A success at `attempt.processor` for a row already processed at `recorded`: the
/// payment was charged twice. The same processor again (a 422 after a lost answer) is not.
pub(crate) fn double_charge(
    payment: &Payment,
    attempt: &Attempt,
    recorded: Option<&str>,
) -> Option<DoubleCharge> {
    match recorded.and_then(Processor::from_name) {
        Some(recorded) if recorded != attempt.processor => Some(DoubleCharge {
            payment: *payment,
            recorded_at: recorded,
            also_at: attempt.processor,
        }),
        _ => None,
    }
}

/// Heartbeats at or before this are stale: their owner's payments may be claimed.
pub(crate) fn claim_threshold(now: Millis, dead_after: Duration) -> i64 {
    now.0.saturating_sub(millis(dead_after))
}

/// A span as the database compares it with its times: whole milliseconds.
pub(crate) fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

/// A claim's `LIMIT`.
pub(crate) fn claim_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The summary's `BETWEEN` bounds: a missing one is open.
pub(crate) fn summary_bounds(from: Option<Millis>, to: Option<Millis>) -> (i64, i64) {
    (from.map_or(i64::MIN, |m| m.0), to.map_or(i64::MAX, |m| m.0))
}

/// Adds one `GROUP BY processor` row to the summary; unknown names are ignored.
pub(crate) fn add_totals(summary: &mut Summary, processor: &str, requests: i64, amount: i64) {
    if let Some(processor) = Processor::from_name(processor) {
        *summary.get_mut(processor) = ProcessorTotals {
            requests,
            amount: Cents(amount),
        };
    }
}

/// `min_response_time_ms` as stored (a signed integer column).
pub(crate) fn stored_response_time(record: &HealthRecord) -> i64 {
    i64::try_from(record.min_response_time_ms).unwrap_or(i64::MAX)
}

pub(crate) fn health_record(
    failing: bool,
    min_response_time_ms: i64,
    checked_at: i64,
) -> HealthRecord {
    HealthRecord {
        failing,
        min_response_time_ms: u64::try_from(min_response_time_ms).unwrap_or(0),
        checked_at: Millis(checked_at),
    }
}
