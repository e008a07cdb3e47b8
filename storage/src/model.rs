//! The records storage hands to the api besides the `payment` types: a payment waiting to
//! be paid with its first attempt, the payments a worker may send now, and a processor's
//! last health answer.

use payment::{Millis, Payment, Processor, Uuid};

/// A payment waiting to be paid, as dispatch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub payment: Payment,
    pub accepted_at: Millis,
    /// Set once the first attempt was made durable: the processor it went to and the
    /// requestedAt it carried. A retry must reuse both (invariant 2).
    pub attempt: Option<Attempt>,
}

/// One attempt to pay: where it went and the `requestedAt` it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub processor: Processor,
    pub requested_at: Millis,
}

/// What [`crate::Store::take_for_sending`] gave this worker: the payments it may send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// When this worker's ownership was last proven (its heartbeat, renewed in the same
    /// transaction). Another worker can claim the payments only once this is older than its
    /// dead-after, so a send must start well within that.
    pub alive_at: Millis,
    /// The payments still owned and pending, each with its attempt as stored: the processor
    /// asked for, and the FIRST requestedAt (a retry's own is ignored).
    pub payments: Vec<(Uuid, Attempt)>,
}

/// A processor's answer to `GET /payments/service-health`, shared between the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRecord {
    pub failing: bool,
    pub min_response_time_ms: u64,
    pub checked_at: Millis,
}
