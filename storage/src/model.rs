//! The records storage hands to the api besides the `payment` types: a payment waiting to
//! be paid with its first attempt, the payments a worker may send now, and a processor's
//! last health answer.

use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Uuid};
use std::time::Instant;

/// A payment waiting to be paid, as dispatch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub payment: Payment,
    pub accepted_at: Millis,
    /// Set once the first attempt was made durable: the processor it went to last and the
    /// requestedAt of the first one. A retry reuses the requestedAt (invariant 2).
    pub attempt: Option<Attempt>,
    /// Where it may still go.
    pub destination: Destination,
}

/// Where a pending payment may be sent.
///
/// A call whose outcome is unknown (a timeout, a connection broken after the request was
/// written, a worker that died with an attempt on record) may have been stored by that
/// processor. From then on the payment belongs to it until it answers 200 or 422: its 500s,
/// 429s and 4xx say nothing about the earlier call, so they never release the payment.
/// Sending it elsewhere could charge it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Never sent, or every call so far was answered "not stored" (500, 4xx).
    Anywhere,
    /// Only this processor, for good (the row's `pinned` column).
    PinnedTo(Processor),
}

/// What [`crate::Store::claim_orphans`] took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub payments: Vec<Pending>,
    /// The latest heartbeat of a worker whose payments could be claimed (none: no such
    /// worker left a heartbeat, e.g. it retired). Such a worker may have started calls up
    /// to its send deadline after this and they may still be running: a claimed payment
    /// with an attempt must wait until they could have ended before it is sent again.
    pub last_alive: Option<Millis>,
}

/// A success recorded for a payment already processed at the OTHER processor: it was
/// charged twice. Never expected (the pin forbids it); reported, never silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoubleCharge {
    pub payment: Payment,
    /// Where our row says it was processed (what the summary counts).
    pub recorded_at: Processor,
    /// The other processor, which answered 200 or 422 too.
    pub also_at: Processor,
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
    /// The same moment on this process's monotonic clock (read just before `alive_at`):
    /// what a send's deadline is measured from, so a wall-clock step does not move it and
    /// the time the write waited in the writer's queue does not count against it.
    pub alive_at_instant: Instant,
    /// The payments still owned and pending, each with its attempt as stored: the processor
    /// asked for (or the one it is pinned to, if another was asked: send it there, not
    /// elsewhere), and the FIRST requestedAt.
    pub payments: Vec<(Uuid, Attempt)>,
}

/// What [`crate::Store::record_for_sending`] gave this worker: the payments that were new,
/// each already taken for sending with `attempt`, as [`Taken`] would give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub new: Vec<Accepted>,
    /// The attempt written on every new payment: the processor asked for, and requestedAt
    /// = `alive_at`.
    pub attempt: Attempt,
    /// The proof of ownership, as [`Taken::alive_at`].
    pub alive_at: Millis,
    /// As [`Taken::alive_at_instant`].
    pub alive_at_instant: Instant,
}

/// A processor's answer to `GET /payments/service-health`, shared between the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthRecord {
    pub failing: bool,
    pub min_response_time_ms: u64,
    pub checked_at: Millis,
}
