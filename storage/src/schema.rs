//! The schema, whatever the database: one version number for both, so "version 2" means
//! the same tables in SQLite (`sqlite::schema`, kept in `PRAGMA user_version`) and in
//! PostgreSQL (`postgres::schema`, kept in the `schema_version` table).
//!
//! - version 1: `payments` (amounts in integer cents, times in integer milliseconds UTC,
//!   the summary's covering index on processed rows by processor and requestedAt, the
//!   pending rows by owner), `workers` (heartbeats), `health_turns` (the health-check
//!   budget shared by all workers), `health_records` (the last answer per processor);
//! - version 2: `payments.pinned`, the unknown-outcome pin, so it survives restarts and
//!   claims;
//! - version 3: `purge_fence`, the acceptance time up to which a purge forgot payments.
//!
//! Every migration also recreates `payments_view`, the table for people: decimal amounts,
//! ISO-8601 UTC times, and `pinned_to`.

/// The schema version this program creates and understands.
pub const SCHEMA_VERSION: i64 = 3;
