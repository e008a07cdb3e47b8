//! The schema, whatever the database: one version number for both, so "version 2" means
//! the same tables in SQLite (`sqlite::schema`, kept in `PRAGMA user_version`) and in
//! PostgreSQL (`postgres::schema`, kept in the `schema_version` table). Every migration
//! also recreates `payments_view`, the table for people: decimal amounts, ISO-8601 UTC
//! times, and `pinned_to`.

pub const SCHEMA_VERSION: i64 = 3;
