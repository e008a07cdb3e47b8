//! The records storage hands to the api besides the `payment` types: a payment waiting to
//! be paid with its first attempt, and a processor's last health answer.

use payment::{Millis, Payment, Processor};

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

/// A processor's answer to `GET /payments/service-health`, shared between the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRecord {
    pub failing: bool,
    pub min_response_time_ms: u64,
    pub checked_at: Millis,
}
