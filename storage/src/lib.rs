//! The only code that speaks SQL: every payment from "accepted" to "processed", in SQLite
//! (the default: one WAL file shared by the workers of one host) or in PostgreSQL (a
//! `postgres://` URL: one server shared by workers on any number of hosts), chosen by
//! [`Database`]; storage reads no environment variable, the api passes the URL and path.
//!
//! Invariant: [`Store`] is the same async API over both, with the same guarantees, proven
//! by the same tests (`tests/store_*.rs`, `tests/processes.rs`): an intake is durable
//! before it is answered; ownership, the send-time check and claims are atomic between any
//! number of workers. How each backend keeps them: docs/architecture.md, "The database".

mod config;
mod error;
mod model;
mod postgres;
mod rows;
pub mod schema;
mod sqlite;
mod store;
mod write_thread;

pub use config::{Database, StoreConfig, DEFAULT_LINGER, DEFAULT_MAX_BATCH, DEFAULT_READERS};
pub use error::StorageError;
pub use model::{
    Attempt, Claimed, Destination, DoubleCharge, HealthRecord, Pending, Recorded, Taken,
};
pub use store::Store;
