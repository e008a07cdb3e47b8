//! The PostgreSQL schema: the same tables, columns, indexes and view as SQLite's (see
//! `crate::schema` for the versions), in PostgreSQL's dialect: amounts `bigint` cents,
//! times `bigint` milliseconds UTC, ids `uuid`, the pin a `boolean`. The version lives in
//! the one-row table `schema_version` (PostgreSQL has no `user_version`).
//!
//! Any number of workers may start at once on an empty database: the migration runs in one
//! transaction holding a transaction-scoped advisory lock, so the schema is created exactly
//! once and the others find it ready (a plain `CREATE TABLE IF NOT EXISTS` race can fail
//! on PostgreSQL's catalog unique indexes).

use crate::error::StorageError;
use crate::schema::SCHEMA_VERSION;
use std::sync::Arc;
use tokio_postgres::Client;

/// The advisory lock key that serializes migrations ("rinhapay" in ASCII).
const MIGRATION_LOCK: i64 = 0x7269_6e68_6170_6179;

/// Version 1. Times are integer milliseconds since the epoch (UTC), amounts integer cents.
const SCHEMA_V1: &str = r#"
CREATE TABLE payments (
    correlation_id uuid PRIMARY KEY,
    amount         bigint NOT NULL CHECK (amount > 0),              -- cents
    processor      text CHECK (processor IN ('default', 'fallback')), -- NULL until the first attempt
    requested_at   bigint,                  -- ms UTC, the requestedAt sent; NULL until the first attempt
    status         text NOT NULL CHECK (status IN ('pending', 'processed')),
    accepted_at    bigint NOT NULL,         -- ms UTC, when the lb accepted it
    owner          text                     -- worker dispatching it while pending
);

-- The summary: per processor, one range scan over processed rows by requested_at, the
-- amount carried in the index (an index-only scan once the table is vacuumed).
CREATE INDEX payments_processed_by_requested_at
    ON payments (processor, requested_at) INCLUDE (amount) WHERE status = 'processed';

-- Recovery and queue depth: only pending rows, by owner.
CREATE INDEX payments_pending_by_owner ON payments (owner) WHERE status = 'pending';

CREATE TABLE workers (
    id           text PRIMARY KEY,
    heartbeat_at bigint NOT NULL            -- ms UTC of the last heartbeat
);

-- The health-check budget shared by all workers: who may call a processor's health endpoint.
CREATE TABLE health_turns (
    processor    text PRIMARY KEY CHECK (processor IN ('default', 'fallback')),
    last_turn_at bigint NOT NULL            -- ms UTC of the last call taken
);

-- The last health answer per processor, for the workers that did not make the call.
CREATE TABLE health_records (
    processor            text PRIMARY KEY CHECK (processor IN ('default', 'fallback')),
    failing              boolean NOT NULL,
    min_response_time_ms bigint NOT NULL,
    checked_at           bigint NOT NULL
);
"#;

/// Version 2: the unknown-outcome pin lives in the row.
const SCHEMA_V2: &str = r#"
ALTER TABLE payments ADD COLUMN pinned boolean NOT NULL DEFAULT false;
                      -- true: a call to `processor` may have stored it; it goes nowhere else
"#;

/// Version 3: the purge fence (see `sqlite::schema`).
const SCHEMA_V3: &str = r#"
CREATE TABLE purge_fence (
    id             integer PRIMARY KEY CHECK (id = 1),
    accepted_up_to bigint NOT NULL   -- ms UTC: payments accepted until then are forgotten
);
"#;

/// Step `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 3] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// The view for people at the `psql` prompt, the same columns and text as SQLite's:
/// decimal amounts, ISO-8601 UTC times with milliseconds, `pinned_to`. Times are computed
/// from the integer milliseconds without floating point, so `.789` stays `.789`.
const VIEW: &str = r#"
DROP VIEW IF EXISTS payments_view;
CREATE VIEW payments_view AS
SELECT correlation_id,
       (amount / 100)::text || '.' || lpad((amount % 100)::text, 2, '0') AS amount,
       processor,
       status,
       to_char(timestamp '1970-01-01' + requested_at * interval '1 millisecond',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS requested_at,
       to_char(timestamp '1970-01-01' + accepted_at * interval '1 millisecond',
               'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS accepted_at,
       CASE WHEN status = 'pending' AND pinned THEN processor END AS pinned_to
FROM payments;
"#;

/// Creates or upgrades the schema in one transaction, under the migration lock.
pub(super) async fn migrate(client: &mut Client, database: &str) -> Result<(), StorageError> {
    let err = |e| StorageError::postgres(database, "create or migrate the schema", Arc::new(e));
    let tx = client.transaction().await.map_err(err)?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
         CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL);"
    ))
    .await
    .map_err(err)?;
    let found: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .map_err(err)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            database: database.to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for step in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(step).await.map_err(err)?;
    }
    if found < SCHEMA_VERSION {
        tx.batch_execute(VIEW).await.map_err(err)?;
        tx.execute("DELETE FROM schema_version", &[])
            .await
            .map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)
}
