//! The only code that speaks SQL: every payment from "accepted" to "processed", in one of
//! two databases, chosen by [`Database`] (the api passes `DATABASE_URL` or
//! `DATABASE_PATH`):
//!
//! - SQLite (`sqlite`, the default): one file in WAL mode on a volume shared by the worker
//!   processes of one host. Embedded, nothing to run; the right default for the contest.
//! - PostgreSQL (`postgres`, a `postgres://` URL): one server shared by any number of
//!   workers on any number of hosts.
//!
//! [`Store`] is the same async API over both, with the same guarantees, proven by the same
//! tests (`tests/store.rs`, `tests/processes.rs` run every test against each): an intake
//! is durable before it is answered; ownership, the send-time check and claims are atomic
//! between any number of workers; the health-check budget is shared by all workers; the
//! summary is one indexed range scan. What is the same in both is written once: the
//! records ([`model`](crate::Claimed)), the errors, the column conversions (`rows`), the
//! schema versions ([`schema`]), and the writer's batching (`writer`: one transaction for
//! many writes, a failing write retried alone). Each backend holds only its SQL and its
//! connections. An enum, not a trait object, picks the backend: there are two, known here.

mod config;
mod error;
mod model;
mod postgres;
mod rows;
pub mod schema;
mod sqlite;
mod store;
mod writer;

pub use config::{Database, StoreConfig, DEFAULT_LINGER, DEFAULT_MAX_BATCH, DEFAULT_READERS};
pub use error::StorageError;
pub use model::{Attempt, Claimed, Destination, DoubleCharge, HealthRecord, Pending, Taken};
pub use store::Store;
