//! The payment domain, shared by every part of the system.
//!
//! `lb` validates what clients send with [`PaymentRequest::parse`], forwards accepted
//! payments to `api` in the [`intake`] wire format, `api` and `storage` keep amounts as
//! [`Cents`] and times as [`Millis`], and everyone renders the summary and reads its window the same way
//! ([`Summary`], [`Window`]). Keeping these in one crate means the rules (two decimal places, UTC
//! millisecond timestamps, inclusive windows) are written exactly once.

pub mod amount;
pub mod intake;
pub mod request;
pub mod summary;
pub mod time;
pub mod window;

pub use amount::{AmountError, Cents};
pub use request::{PaymentRequest, RequestError};
pub use summary::{ProcessorTotals, Summary};
pub use time::{Millis, TimeError};
pub use uuid::Uuid;
pub use window::{QueryError, Window};

/// One payment as the system knows it after the lb accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Payment {
    pub correlation_id: Uuid,
    pub amount: Cents,
}

/// Which of the two payment processors handled (or will handle) a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Processor {
    /// The cheap one (5 % fee in the contest).
    Default,
    /// The expensive one (15 % fee in the contest).
    Fallback,
}

impl Processor {
    pub const ALL: [Processor; 2] = [Processor::Default, Processor::Fallback];

    /// Its place in [`Processor::ALL`], for per-processor arrays.
    pub fn index(self) -> usize {
        match self {
            Processor::Default => 0,
            Processor::Fallback => 1,
        }
    }

    /// The name used in the summary JSON and in the database.
    pub fn name(self) -> &'static str {
        match self {
            Processor::Default => "default",
            Processor::Fallback => "fallback",
        }
    }

    pub fn from_name(name: &str) -> Option<Processor> {
        match name {
            "default" => Some(Processor::Default),
            "fallback" => Some(Processor::Fallback),
            _ => None,
        }
    }

    /// The other processor.
    pub fn other(self) -> Processor {
        match self {
            Processor::Default => Processor::Fallback,
            Processor::Fallback => Processor::Default,
        }
    }
}

impl std::fmt::Display for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
