//! The only code that speaks SQL: every payment from "accepted" to "processed", in one of
//! two databases, chosen by [`Database`]:
//!
//! - SQLite (`sqlite`, the default): one file in WAL mode on a volume shared by the worker
//!   processes of one host. Embedded, nothing to run; the right default for the contest.
//! - PostgreSQL (`postgres`, a `postgres://` or `postgresql://` URL): one server shared by
//!   any number of workers on any number of hosts.
//!
//! Storage reads no environment variable: the api passes `DATABASE_URL` (maybe unset) and
//! `DATABASE_PATH` to [`Database::from_url_or_path`] and opens
//! `Store::open(StoreConfig::with_database(database, owner))`; [`StoreConfig::new`] still
//! means a SQLite file. Any other URL scheme is refused by name, so a typo never falls back
//! to a local file; a password in the URL is never shown ([`Database`]'s Display, errors).
//!
//! [`Store`] is the same async API over both, with the same guarantees, proven by the same
//! tests (`tests/store.rs`, `tests/processes.rs` run every test body against each, the
//! multi-process ones with three workers): an intake is durable before it is answered
//! (SQLite's WAL; PostgreSQL's commit with `synchronous_commit` on); ownership, the
//! send-time check and claims are atomic between any number of workers (`BEGIN IMMEDIATE`
//! in SQLite; row locks, `SKIP LOCKED` and a lock on `workers` in PostgreSQL, reasoned
//! statement by statement in `postgres::write_sql`); the health-check budget is one row all
//! workers update atomically; the summary is one range scan of a covering index.
//!
//! What is the same in both is written once: the records ([`Pending`], [`Claimed`] …), the
//! errors, the column conversions (`rows`), the schema versions ([`schema`]), and the
//! writer's batching (`writer`: one thread, one transaction for many writes, a failing
//! write retried alone). Each operation is declared once, in [`Store`], with its body for
//! each backend; a backend holds only its SQL, its connections and how it runs a
//! transaction.
//!
//! Times (requestedAt, heartbeats) come from each worker's clock, as with SQLite: workers
//! on several hosts need clocks that agree (NTP) to well within the claim's dead-after.

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
