//! The SQL of every PostgreSQL write, prepared once per write connection ([`Statements`])
//! and run inside the writer's open transaction ([`Tx`]) at READ COMMITTED, each batch's
//! statements pipelined (one round trip for a batch of rows). Invariant, as in SQLite: a
//! payment is new for exactly one worker, taken only by its owner, claimed by one worker
//! at most, and one worker gets each health turn; `claim_orphans` locks `workers` first,
//! in a transaction of its own. Why each statement keeps it: docs/architecture.md,
//! "PostgreSQL's writes under READ COMMITTED".

use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Pending, Recorded, Taken};
use crate::rows::{self, PendingRow};
use futures_util::future::{try_join_all, BoxFuture};
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Uuid};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Statement, Transaction};

/// What a write's statements get: the open transaction, this worker's id, the statements.
pub(crate) struct Tx<'a> {
    pub tx: &'a Transaction<'a>,
    pub owner: &'a str,
    pub sql: &'a Statements,
}

/// One statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// Runs `statement` once per parameter row, pipelined; the rows each returned, in order.
async fn each_row<const N: usize>(
    tx: &Tx<'_>,
    statement: &Statement,
    params: &[[Param<'_>; N]],
) -> Result<Vec<Option<Row>>, Error> {
    try_join_all(params.iter().map(|p| tx.tx.query_opt(statement, p))).await
}

/// Runs `statement` once per parameter row, pipelined; how many rows each changed, in order.
async fn each_change<const N: usize>(
    tx: &Tx<'_>,
    statement: &Statement,
    params: &[[Param<'_>; N]],
) -> Result<Vec<u64>, Error> {
    try_join_all(params.iter().map(|p| tx.tx.execute(statement, p))).await
}

/// The writer's statements, prepared on its connection when it opens.
pub(crate) struct Statements {
    record_pending: Statement,
    take_for_sending: Statement,
    pin: Statement,
    mark_processed: Statement,
    recorded_at: Statement,
    heartbeat: Statement,
    retire: Statement,
    last_alive: Statement,
    claim: Statement,
    own_pending: Statement,
    unpin: Statement,
    purge_fence: Statement,
    set_purge_fence: Statement,
    take_health_turn: Statement,
    save_health: Statement,
    purge: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, Error> {
        Ok(Statements {
            record_pending: client.prepare(RECORD_PENDING).await?,
            take_for_sending: client.prepare(TAKE_FOR_SENDING).await?,
            pin: client.prepare(PIN).await?,
            mark_processed: client.prepare(MARK_PROCESSED).await?,
            recorded_at: client
                .prepare("SELECT processor FROM payments WHERE correlation_id = $1")
                .await?,
            heartbeat: client.prepare(HEARTBEAT).await?,
            retire: client.prepare("DELETE FROM workers WHERE id = $1").await?,
            last_alive: client
                .prepare("SELECT max(heartbeat_at) FROM workers WHERE heartbeat_at <= $1")
                .await?,
            claim: client.prepare(CLAIM).await?,
            own_pending: client.prepare(OWN_PENDING).await?,
            unpin: client.prepare(UNPIN).await?,
            purge_fence: client
                .prepare("SELECT coalesce(max(accepted_up_to), $1) FROM purge_fence")
                .await?,
            set_purge_fence: client.prepare(SET_PURGE_FENCE).await?,
            take_health_turn: client.prepare(TAKE_HEALTH_TURN).await?,
            save_health: client.prepare(SAVE_HEALTH).await?,
            purge: client.prepare("DELETE FROM payments").await?,
        })
    }
}

/// `$5`, `$6`: the attempt of [`record_for_sending`], NULL for a plain record.
const RECORD_PENDING: &str = "INSERT INTO payments (correlation_id, amount, status, accepted_at, owner, processor, requested_at)
     VALUES ($1, $2, 'pending', $3, $4, $5, $6)
     ON CONFLICT (correlation_id) DO NOTHING";

const TAKE_FOR_SENDING: &str =
    "UPDATE payments SET processor = CASE WHEN pinned THEN processor ELSE $2 END,
                         requested_at = CASE WHEN pinned THEN coalesce(requested_at, $3) ELSE $3 END
     WHERE correlation_id = $1 AND status = 'pending' AND owner = $4
     RETURNING processor, requested_at";

const PIN: &str = "UPDATE payments SET pinned = true WHERE correlation_id = $1 AND status = 'pending' AND processor = $2";

const MARK_PROCESSED: &str =
    "UPDATE payments SET status = 'processed', processor = $2, requested_at = $3, owner = NULL
     WHERE correlation_id = $1 AND status = 'pending'";

const UNPIN: &str = "UPDATE payments SET pinned = false
     WHERE correlation_id = $1 AND status = 'pending' AND owner = $2 AND processor = $3";

const SET_PURGE_FENCE: &str = "INSERT INTO purge_fence (id, accepted_up_to) VALUES (1, $1)
     ON CONFLICT (id) DO UPDATE SET accepted_up_to = greatest(purge_fence.accepted_up_to, excluded.accepted_up_to)";

/// Never back: see `sqlite::write_sql::heartbeat`.
const HEARTBEAT: &str = "INSERT INTO workers (id, heartbeat_at) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = greatest(workers.heartbeat_at, excluded.heartbeat_at)";

/// Why the lock first: docs/architecture.md, "PostgreSQL's writes under READ COMMITTED".
const CLAIM_LOCK: &str = "LOCK TABLE workers IN SHARE ROW EXCLUSIVE MODE";

const CLAIM: &str = "UPDATE payments SET owner = $1, pinned = (pinned OR processor IS NOT NULL)
     WHERE correlation_id IN (
         SELECT p.correlation_id FROM payments p
         WHERE p.status = 'pending'
           AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = p.owner AND w.heartbeat_at > $2)
         LIMIT $3
         FOR UPDATE OF p SKIP LOCKED)
     RETURNING correlation_id, amount, accepted_at, processor, requested_at, pinned";

const OWN_PENDING: &str = "UPDATE payments SET pinned = (pinned OR processor IS NOT NULL)
     WHERE correlation_id IN (
         SELECT correlation_id FROM payments WHERE status = 'pending' AND owner = $1 LIMIT $2
         FOR UPDATE)
     RETURNING correlation_id, amount, accepted_at, processor, requested_at, pinned";

const TAKE_HEALTH_TURN: &str = "INSERT INTO health_turns (processor, last_turn_at) VALUES ($1, $2)
     ON CONFLICT (processor) DO UPDATE SET last_turn_at = excluded.last_turn_at
        WHERE health_turns.last_turn_at <= excluded.last_turn_at - $3
     RETURNING 1";

const SAVE_HEALTH: &str =
    "INSERT INTO health_records (processor, failing, min_response_time_ms, checked_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (processor) DO UPDATE SET failing = excluded.failing,
        min_response_time_ms = excluded.min_response_time_ms, checked_at = excluded.checked_at";

type Written<'a, T> = BoxFuture<'a, Result<T, Error>>;

/// Inserts the payments as pending, owned by this worker; returns those that were new.
pub(crate) fn record_pending<'a>(
    tx: &'a Tx<'a>,
    batch: Arc<Vec<Accepted>>,
) -> Written<'a, Vec<Accepted>> {
    Box::pin(async move { insert_pending(tx, &batch, None).await })
}

/// See `sqlite::write_sql::record_for_sending`: the same rules, the same statements.
pub(crate) fn record_for_sending<'a>(
    tx: &'a Tx<'a>,
    args: Arc<(Vec<Accepted>, Processor)>,
) -> Written<'a, Recorded> {
    Box::pin(async move {
        let alive_at_instant = Instant::now();
        let alive_at = Millis::now();
        heartbeat(tx, Arc::new(alive_at)).await?;
        let attempt = Attempt {
            processor: args.1,
            requested_at: alive_at,
        };
        let new = insert_pending(tx, &args.0, Some(attempt)).await?;
        Ok(Recorded {
            new,
            attempt,
            alive_at,
            alive_at_instant,
        })
    })
}

async fn insert_pending(
    tx: &Tx<'_>,
    batch: &[Accepted],
    attempt: Option<Attempt>,
) -> Result<Vec<Accepted>, Error> {
    let (processor, requested_at) = (
        attempt.map(|a| a.processor.name()),
        attempt.map(|a| a.requested_at.0),
    );
    let fence: i64 = tx
        .tx
        .query_one(&tx.sql.purge_fence, &[&i64::MIN])
        .await?
        .get(0);
    // Payments a purge forgot (see `sqlite::write_sql::purge`) are not recorded again.
    let batch: Vec<&Accepted> = batch.iter().filter(|a| a.accepted_at.0 > fence).collect();
    let params: Vec<[Param; 6]> = batch
        .iter()
        .map(|a| -> [Param; 6] {
            [
                &a.payment.correlation_id,
                &a.payment.amount.0,
                &a.accepted_at.0,
                &tx.owner,
                &processor,
                &requested_at,
            ]
        })
        .collect();
    let changed = each_change(tx, &tx.sql.record_pending, &params).await?;
    Ok(batch
        .iter()
        .zip(changed)
        .filter(|(_, n)| *n == 1)
        .map(|(a, _)| **a)
        .collect())
}

/// See `sqlite::write_sql::take_for_sending`: the same rules, the same statement per row.
pub(crate) fn take_for_sending<'a>(
    tx: &'a Tx<'a>,
    batch: Arc<Vec<(Uuid, Processor)>>,
) -> Written<'a, Taken> {
    Box::pin(async move {
        let alive_at_instant = Instant::now();
        let alive_at = Millis::now();
        heartbeat(tx, Arc::new(alive_at)).await?;
        let names = names(&batch);
        let params: Vec<[Param; 4]> = batch
            .iter()
            .zip(&names)
            .map(|((id, _), name)| -> [Param; 4] { [id, name, &alive_at.0, &tx.owner] })
            .collect();
        let stored = each_row(tx, &tx.sql.take_for_sending, &params).await?;
        let payments = batch
            .iter()
            .zip(stored)
            .filter_map(|((id, asked), row)| {
                let row = row?;
                Some((*id, rows::stored_attempt(row.get(0), row.get(1), *asked)))
            })
            .collect();
        Ok(Taken {
            alive_at,
            alive_at_instant,
            payments,
        })
    })
}

fn names(batch: &[(Uuid, Processor)]) -> Vec<&'static str> {
    batch
        .iter()
        .map(|(_, processor)| processor.name())
        .collect()
}

/// Pins pending payments to the processor of their attempt; returns how many were pinned.
pub(crate) fn pin<'a>(tx: &'a Tx<'a>, batch: Arc<Vec<(Uuid, Processor)>>) -> Written<'a, usize> {
    Box::pin(async move {
        let names = names(&batch);
        let params: Vec<[Param; 2]> = batch
            .iter()
            .zip(&names)
            .map(|((id, _), name)| -> [Param; 2] { [id, name] })
            .collect();
        let pinned: u64 = each_change(tx, &tx.sql.pin, &params)
            .await?
            .into_iter()
            .sum();
        Ok(usize::try_from(pinned).unwrap_or(usize::MAX))
    })
}

/// Marks pending payments processed (a purged row stays forgotten); reports double charges.
pub(crate) fn mark_processed<'a>(
    tx: &'a Tx<'a>,
    batch: Arc<Vec<(Payment, Attempt)>>,
) -> Written<'a, Vec<DoubleCharge>> {
    Box::pin(async move {
        let names: Vec<&str> = batch.iter().map(|(_, a)| a.processor.name()).collect();
        let params: Vec<[Param; 3]> = batch
            .iter()
            .zip(&names)
            .map(|((p, a), name)| -> [Param; 3] { [&p.correlation_id, name, &a.requested_at.0] })
            .collect();
        let changed = each_change(tx, &tx.sql.mark_processed, &params).await?;
        // The rows left unchanged were processed already (the upsert locked them): where?
        let unchanged: Vec<_> = batch
            .iter()
            .zip(changed)
            .filter(|(_, n)| *n == 0)
            .map(|(pa, _)| pa)
            .collect();
        let params: Vec<[Param; 1]> = unchanged
            .iter()
            .map(|(p, _)| -> [Param; 1] { [&p.correlation_id] })
            .collect();
        let recorded = each_row(tx, &tx.sql.recorded_at, &params).await?;
        Ok(unchanged
            .into_iter()
            .zip(recorded)
            .filter_map(|((p, a), row)| {
                rows::double_charge(p, a, row.as_ref().and_then(|r| r.get(0)))
            })
            .collect())
    })
}

pub(crate) fn heartbeat<'a>(tx: &'a Tx<'a>, now: Arc<Millis>) -> Written<'a, ()> {
    Box::pin(async move {
        tx.tx
            .execute(&tx.sql.heartbeat, &[&tx.owner, &now.0])
            .await
            .map(drop)
    })
}

pub(crate) fn retire<'a>(tx: &'a Tx<'a>, _: Arc<()>) -> Written<'a, ()> {
    Box::pin(async move { tx.tx.execute(&tx.sql.retire, &[&tx.owner]).await.map(drop) })
}

/// What a claim is asked: now, dead-after, at most how many.
pub(crate) type ClaimArgs = (Millis, Duration, usize);

/// Gives this worker the pending payments whose owner shows no heartbeat newer than
/// `now - dead_after`; it locks `workers` first, in a transaction of its own (why:
/// docs/architecture.md, "PostgreSQL's writes under READ COMMITTED").
pub(crate) fn claim_orphans<'a>(tx: &'a Tx<'a>, args: Arc<ClaimArgs>) -> Written<'a, Claimed> {
    Box::pin(async move {
        let (now, dead_after, limit) = *args;
        let threshold = rows::claim_threshold(now, dead_after);
        tx.tx.batch_execute(CLAIM_LOCK).await?;
        let last_alive: Option<i64> = tx
            .tx
            .query_one(&tx.sql.last_alive, &[&threshold])
            .await?
            .get(0);
        let claimed = tx
            .tx
            .query(
                &tx.sql.claim,
                &[&tx.owner, &threshold, &rows::claim_limit(limit)],
            )
            .await?;
        Ok(Claimed {
            payments: claimed.iter().map(pending_from_row).collect(),
            last_alive: last_alive.map(Millis),
        })
    })
}

/// See `sqlite::write_sql::own_pending`: the same rows, pinned the same way.
pub(crate) fn own_pending<'a>(tx: &'a Tx<'a>, limit: Arc<usize>) -> Written<'a, Vec<Pending>> {
    Box::pin(async move {
        let own = tx
            .tx
            .query(
                &tx.sql.own_pending,
                &[&tx.owner, &rows::claim_limit(*limit)],
            )
            .await?;
        Ok(own.iter().map(pending_from_row).collect())
    })
}

fn pending_from_row(row: &Row) -> Pending {
    PendingRow {
        correlation_id: row.get(0),
        amount: row.get(1),
        accepted_at: row.get(2),
        processor: row.get(3),
        requested_at: row.get(4),
        pinned: row.get(5),
    }
    .into_pending()
}

/// What a health turn is asked: for which processor, now, the window.
pub(crate) type TurnArgs = (Processor, Millis, Duration);

/// True iff nobody took a turn for the processor in the last window; then records now.
pub(crate) fn take_health_turn<'a>(tx: &'a Tx<'a>, args: Arc<TurnArgs>) -> Written<'a, bool> {
    Box::pin(async move {
        let (processor, now, window) = *args;
        let taken = tx
            .tx
            .query_opt(
                &tx.sql.take_health_turn,
                &[&processor.name(), &now.0, &rows::millis(window)],
            )
            .await?;
        Ok(taken.is_some())
    })
}

pub(crate) fn save_health<'a>(
    tx: &'a Tx<'a>,
    args: Arc<(Processor, HealthRecord)>,
) -> Written<'a, ()> {
    Box::pin(async move {
        let (processor, record) = &*args;
        let (name, response_time) = (processor.name(), rows::stored_response_time(record));
        let params: [Param; 4] = [&name, &record.failing, &response_time, &record.checked_at.0];
        tx.tx.execute(&tx.sql.save_health, &params).await.map(drop)
    })
}

/// See `sqlite::write_sql::purge`.
pub(crate) fn purge<'a>(tx: &'a Tx<'a>, fence: Arc<Millis>) -> Written<'a, ()> {
    Box::pin(async move {
        tx.tx.execute(&tx.sql.set_purge_fence, &[&fence.0]).await?;
        tx.tx.execute(&tx.sql.purge, &[]).await.map(drop)
    })
}

/// See `sqlite::write_sql::unpin`.
pub(crate) fn unpin<'a>(
    tx: &'a Tx<'a>,
    batch: Arc<Vec<(Uuid, Processor)>>,
) -> Written<'a, Vec<Uuid>> {
    Box::pin(async move {
        let names = names(&batch);
        let params: Vec<[Param; 3]> = batch
            .iter()
            .zip(&names)
            .map(|((id, _), name)| -> [Param; 3] { [id, &tx.owner, name] })
            .collect();
        let changed = each_change(tx, &tx.sql.unpin, &params).await?;
        Ok(batch
            .iter()
            .zip(changed)
            .filter(|(_, n)| *n == 1)
            .map(|((id, _), _)| *id)
            .collect())
    })
}
