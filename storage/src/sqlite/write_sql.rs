//! The SQL of every SQLite write. Each function runs inside the writer's open transaction (see
//! `write_session`), so it sees and changes the database atomically with the rest of its batch,
//! and two processes never interleave inside one function.

use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Pending, Recorded, Taken};
use crate::rows::{self, PendingRow};
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Uuid};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::time::{Duration, Instant};

/// Inserts the payments as pending, owned by `owner`; returns those that were new.
pub(crate) fn record_pending(
    conn: &Connection,
    owner: &str,
    batch: &[Accepted],
) -> rusqlite::Result<Vec<Accepted>> {
    insert_pending(conn, owner, batch, None)
}

/// [`record_pending`], each new row also taken for sending to `processor` as
/// [`take_for_sending`] would right after it: the attempt (requestedAt = the time of this
/// write) is in the inserted row, and the owner's heartbeat, renewed to that time, is the
/// proof of ownership. One row write per payment instead of two.
pub(crate) fn record_for_sending(
    conn: &Connection,
    owner: &str,
    batch: &[Accepted],
    processor: Processor,
) -> rusqlite::Result<Recorded> {
    let alive_at_instant = Instant::now();
    let alive_at = Millis::now();
    heartbeat(conn, owner, alive_at)?;
    let attempt = Attempt {
        processor,
        requested_at: alive_at,
    };
    let new = insert_pending(conn, owner, batch, Some(attempt))?;
    Ok(Recorded {
        new,
        attempt,
        alive_at,
        alive_at_instant,
    })
}

fn insert_pending(
    conn: &Connection,
    owner: &str,
    batch: &[Accepted],
    attempt: Option<Attempt>,
) -> rusqlite::Result<Vec<Accepted>> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO payments (correlation_id, amount, status, accepted_at, owner, processor, requested_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6)
         ON CONFLICT (correlation_id) DO NOTHING",
    )?;
    let (processor, requested_at) = (
        attempt.map(|a| a.processor.name()),
        attempt.map(|a| a.requested_at.0),
    );
    let fence = purge_fence(conn)?;
    let mut new = Vec::with_capacity(batch.len());
    for accepted in batch.iter().filter(|a| a.accepted_at.0 > fence) {
        let id = id_text(&accepted.payment.correlation_id);
        let changed = insert.execute(params![
            id.as_str(),
            accepted.payment.amount.0,
            accepted.accepted_at.0,
            owner,
            processor,
            requested_at
        ])?;
        if changed == 1 {
            new.push(*accepted);
        }
    }
    Ok(new)
}

/// Takes for sending the payments `owner` still owns: on each pending row owned by `owner`
/// records the processor it is going to now (a pinned row keeps its own) and the
/// requestedAt: the time of this write, which the caller follows with the call at once. A
/// pinned row keeps its requestedAt: the processor may hold the earlier attempt with it. Returns the attempt as
/// stored. Rows claimed by another worker, processed or purged are left as they are and
/// not returned. In the same transaction the owner's heartbeat is renewed to the time of
/// the write, returned as the proof of ownership: no other worker can claim these rows
/// until that heartbeat is older than its dead-after.
pub(crate) fn take_for_sending(
    conn: &Connection,
    owner: &str,
    batch: &[(Uuid, Processor)],
) -> rusqlite::Result<Taken> {
    let alive_at_instant = Instant::now();
    let alive_at = Millis::now();
    heartbeat(conn, owner, alive_at)?;
    let mut update = conn.prepare_cached(
        "UPDATE payments SET processor = CASE WHEN pinned = 1 THEN processor ELSE ?2 END,
                             requested_at = CASE WHEN pinned = 1 THEN coalesce(requested_at, ?3) ELSE ?3 END
         WHERE correlation_id = ?1 AND status = 'pending' AND owner = ?4
         RETURNING processor, requested_at",
    )?;
    let mut payments = Vec::with_capacity(batch.len());
    for (id, processor) in batch {
        let stored = update
            .query_row(
                params![id_text(id).as_str(), processor.name(), alive_at.0, owner],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()?;
        if let Some((name, requested_at)) = stored {
            payments.push((*id, rows::stored_attempt(&name, requested_at, *processor)));
        }
    }
    Ok(Taken {
        alive_at,
        alive_at_instant,
        payments,
    })
}

/// Pins pending payments to the processor of their attempt: a call there may have stored
/// them (see [`crate::Destination`]). Returns how many rows were pinned.
pub(crate) fn pin(conn: &Connection, batch: &[(Uuid, Processor)]) -> rusqlite::Result<usize> {
    let mut update = conn.prepare_cached(
        "UPDATE payments SET pinned = 1 WHERE correlation_id = ?1 AND status = 'pending' AND processor = ?2",
    )?;
    let mut pinned = 0;
    for (id, processor) in batch {
        pinned += update.execute(params![id_text(id).as_str(), processor.name()])?;
    }
    Ok(pinned)
}

/// Frees pending payments of `owner` pinned to `processor`: that processor was asked and
/// does not hold them, and no earlier call to it can still land. Returns those freed.
pub(crate) fn unpin(
    conn: &Connection,
    owner: &str,
    batch: &[(Uuid, Processor)],
) -> rusqlite::Result<Vec<Uuid>> {
    let mut update = conn.prepare_cached(
        "UPDATE payments SET pinned = 0
         WHERE correlation_id = ?1 AND status = 'pending' AND owner = ?2 AND processor = ?3",
    )?;
    let mut freed = Vec::with_capacity(batch.len());
    for (id, processor) in batch {
        if update.execute(params![id_text(id).as_str(), owner, processor.name()])? == 1 {
            freed.push(*id);
        }
    }
    Ok(freed)
}

/// Marks pending payments processed. A row already processed is unchanged; if it was
/// processed at the other processor, the payment was charged twice and is returned (the
/// caller raises the alarm). A row purged meanwhile stays forgotten.
pub(crate) fn mark_processed(
    conn: &Connection,
    batch: &[(Payment, Attempt)],
) -> rusqlite::Result<Vec<DoubleCharge>> {
    let mut update = conn.prepare_cached(
        "UPDATE payments SET status = 'processed', processor = ?2, requested_at = ?3, owner = NULL
         WHERE correlation_id = ?1 AND status = 'pending'",
    )?;
    let mut recorded_at =
        conn.prepare_cached("SELECT processor FROM payments WHERE correlation_id = ?1")?;
    let mut double = Vec::new();
    for (payment, attempt) in batch {
        let id = id_text(&payment.correlation_id);
        let changed = update.execute(params![
            id.as_str(),
            attempt.processor.name(),
            attempt.requested_at.0
        ])?;
        if changed == 1 {
            continue;
        }
        let name: Option<String> = recorded_at
            .query_row(params![id.as_str()], |row| row.get(0))
            .optional()?
            .flatten();
        double.extend(rows::double_charge(payment, attempt, name.as_deref()));
    }
    Ok(double)
}

/// Renews `owner`'s heartbeat to `now`, never back: a heartbeat stamped before the writer
/// stalled can run after a take that stamped a later proof of ownership, and must not make
/// that proof's payments claimable before it is `dead_after` old. The value stays wall-clock
/// time: other processes compare it with their own clocks.
pub(crate) fn heartbeat(conn: &Connection, owner: &str, now: Millis) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO workers (id, heartbeat_at) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = max(heartbeat_at, excluded.heartbeat_at)",
    )?
    .execute(params![owner, now.0])?;
    Ok(())
}

pub(crate) fn retire(conn: &Connection, owner: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM workers WHERE id = ?1")?
        .execute(params![owner])?;
    Ok(())
}

/// Gives `owner` the pending payments whose owner shows no heartbeat newer than
/// `now - dead_after` (or none at all, or no owner). One statement inside the writer's
/// IMMEDIATE transaction: no other process can claim the same rows in between. A row with
/// an attempt on record is pinned to that processor: the dead worker may have been in the
/// middle of that call.
pub(crate) fn claim_orphans(
    conn: &Connection,
    owner: &str,
    now: Millis,
    dead_after: Duration,
    limit: usize,
) -> rusqlite::Result<Claimed> {
    let threshold = rows::claim_threshold(now, dead_after);
    let last_alive: Option<i64> = conn
        .prepare_cached("SELECT max(heartbeat_at) FROM workers WHERE heartbeat_at <= ?1")?
        .query_row(params![threshold], |row| row.get(0))?;
    let mut claim = conn.prepare_cached(
        "UPDATE payments SET owner = ?1, pinned = (pinned = 1 OR processor IS NOT NULL)
         WHERE rowid IN (
             SELECT p.rowid FROM payments p
             WHERE p.status = 'pending'
               AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = p.owner AND w.heartbeat_at > ?2)
             LIMIT ?3)
         RETURNING correlation_id, amount, accepted_at, processor, requested_at, pinned",
    )?;
    let claimed = claim.query_map(
        params![owner, threshold, rows::claim_limit(limit)],
        pending_from_row,
    )?;
    Ok(Claimed {
        payments: claimed.collect::<rusqlite::Result<_>>()?,
        last_alive: last_alive.map(Millis),
    })
}

/// The pending payments `owner` holds, as [`claim_orphans`] would return them: a row with
/// an attempt on record is pinned to its processor, in the row too, so the pin in memory
/// and the one in the database never differ (a take then keeps its requestedAt).
pub(crate) fn own_pending(
    conn: &Connection,
    owner: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Pending>> {
    let mut own = conn.prepare_cached(
        "UPDATE payments SET pinned = (pinned = 1 OR processor IS NOT NULL)
         WHERE rowid IN (SELECT rowid FROM payments WHERE status = 'pending' AND owner = ?1 LIMIT ?2)
         RETURNING correlation_id, amount, accepted_at, processor, requested_at, pinned",
    )?;
    let rows = own.query_map(params![owner, rows::claim_limit(limit)], pending_from_row)?;
    rows.collect()
}

fn pending_from_row(row: &Row<'_>) -> rusqlite::Result<Pending> {
    let id: String = row.get(0)?;
    let correlation_id = Uuid::try_parse(&id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let processor: Option<String> = row.get(3)?;
    let pending = PendingRow {
        correlation_id,
        amount: row.get(1)?,
        accepted_at: row.get(2)?,
        processor: processor.as_deref(),
        requested_at: row.get(4)?,
        pinned: row.get(5)?,
    };
    Ok(pending.into_pending())
}

/// True iff nobody took a turn for `processor` in the last `window`; then records `now`.
pub(crate) fn take_health_turn(
    conn: &Connection,
    processor: Processor,
    now: Millis,
    window: Duration,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "INSERT INTO health_turns (processor, last_turn_at) VALUES (?1, ?2)
         ON CONFLICT (processor) DO UPDATE SET last_turn_at = excluded.last_turn_at
            WHERE health_turns.last_turn_at <= excluded.last_turn_at - ?3
         RETURNING 1",
    )?
    .query_row(
        params![processor.name(), now.0, rows::millis(window)],
        |_| Ok(()),
    )
    .optional()
    .map(|taken| taken.is_some())
}

pub(crate) fn save_health(
    conn: &Connection,
    processor: Processor,
    record: &HealthRecord,
) -> rusqlite::Result<()> {
    let min_response_time_ms = rows::stored_response_time(record);
    conn.prepare_cached(
        "INSERT INTO health_records (processor, failing, min_response_time_ms, checked_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (processor) DO UPDATE SET failing = excluded.failing,
            min_response_time_ms = excluded.min_response_time_ms, checked_at = excluded.checked_at",
    )?
    .execute(params![
        processor.name(),
        record.failing,
        min_response_time_ms,
        record.checked_at.0
    ])?;
    Ok(())
}

/// Forgets every payment accepted at or before `fence`: deletes them all and records the
/// fence, so a batch of them that arrives later is not recorded (see [`purge_fence`]).
pub(crate) fn purge(conn: &Connection, fence: Millis) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO purge_fence (id, accepted_up_to) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET accepted_up_to = max(accepted_up_to, excluded.accepted_up_to)",
    )?
    .execute(params![fence.0])?;
    conn.execute("DELETE FROM payments", [])?;
    Ok(())
}

/// The last purge's fence: payments accepted at or before it are forgotten (`i64::MIN`: none).
fn purge_fence(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(accepted_up_to), ?1) FROM purge_fence")?
        .query_row(params![i64::MIN], |row| row.get(0))
}

/// The text form stored in `correlation_id`: lowercase, hyphenated, as a person types it.
pub(crate) fn id_text(id: &Uuid) -> String {
    id.hyphenated().to_string()
}
