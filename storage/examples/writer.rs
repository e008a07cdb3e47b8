//! A worker-like process for the multi-process tests in `storage/tests/` (not part of the
//! product): it opens the database given (a SQLite file's path or a `postgres://` URL),
//! writes to it as an api worker would, and reports on stdout what it saw committed, so
//! the test can check the database afterwards. Ids are `Uuid::from_u128(n)`, so
//! processes agree on overlapping ranges. Modes (see [`record`], [`turns`], [`claim`]):
//!
//! ```text
//! writer record <db> <owner> <first-id> <count> <batch> <tasks> | turns <db> <owner>
//!     <processor> <window-ms> <for-ms> | claim <db> <owner> <limit>
//! ```

use payment::intake::Accepted;
use payment::{Cents, Millis, Payment, Processor, Uuid};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use storage::{Database, Store, StoreConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writer {args:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn run(args: &[String]) -> Result<(), Error> {
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .ok_or("missing argument, see the module doc")
    };
    let num = |i: usize| -> Result<u64, Error> { Ok(arg(i)?.parse()?) };
    let database = arg(1)?;
    let url = database.contains("://").then_some(database);
    let store = Store::open(StoreConfig::with_database(
        Database::from_url_or_path(url, database)?,
        arg(2)?,
    ))?;
    match arg(0)? {
        "record" => record(&store, num(3)?, num(4)?, num(5)?, num(6)?).await?,
        "turns" => {
            let processor =
                Processor::from_name(arg(3)?).ok_or("processor is default or fallback")?;
            turns(&store, processor, num(4)?, num(5)?).await?
        }
        "claim" => claim(&store, num(3)?).await?,
        other => return Err(format!("unknown mode {other}").into()),
    }
    store.close().await;
    Ok(())
}

fn accepted(n: u64) -> Accepted {
    Accepted {
        payment: Payment {
            correlation_id: Uuid::from_u128(u128::from(n)),
            amount: Cents(1990),
        },
        accepted_at: Millis::now(),
    }
}

/// Prints one line and flushes at once: the parent may SIGKILL us right after.
fn report(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `record`: records ids first..first+count as pending, in batches, from `tasks` concurrent
/// tasks; prints `committed <first> <end>` after each batch commits, `done <new rows>` at
/// the end.
async fn record(
    store: &Store,
    first: u64,
    count: u64,
    batch: u64,
    tasks: u64,
) -> Result<(), Error> {
    let batch = batch.max(1);
    let batches: Vec<u64> = (first..first + count).step_by(batch as usize).collect();
    let mut handles = Vec::new();
    for task in 0..tasks.max(1) {
        let mine: Vec<u64> = batches
            .iter()
            .copied()
            .skip(task as usize)
            .step_by(tasks.max(1) as usize)
            .collect();
        let store = store.clone();
        let end_all = first + count;
        handles.push(tokio::spawn(async move {
            let mut new = 0;
            for start in mine {
                let end = (start + batch).min(end_all);
                new += store
                    .record_pending((start..end).map(accepted).collect())
                    .await?
                    .len();
                report(format_args!("committed {start} {end}"));
            }
            Ok::<usize, storage::StorageError>(new)
        }));
    }
    let mut new = 0;
    for handle in handles {
        new += handle.await??;
    }
    report(format_args!("done {new}"));
    Ok(())
}

/// `turns`: hammers take_health_turn for `for-ms`; prints `turn <now-ms>` for each turn it
/// got.
async fn turns(
    store: &Store,
    processor: Processor,
    window_ms: u64,
    for_ms: u64,
) -> Result<(), Error> {
    let until = Instant::now() + Duration::from_millis(for_ms);
    let window = Duration::from_millis(window_ms);
    while Instant::now() < until {
        let now = Millis::now();
        if store.take_health_turn(processor, now, window).await? {
            report(format_args!("turn {}", now.0));
        }
    }
    Ok(())
}

/// `claim`: heartbeats, then claims orphans `limit` at a time until none are left; prints
/// `claimed <uuid>` for each.
async fn claim(store: &Store, limit: u64) -> Result<(), Error> {
    store.heartbeat(Millis::now()).await?;
    loop {
        let claimed = store
            .claim_orphans(
                Millis::now(),
                Duration::from_secs(60),
                usize::try_from(limit)?,
            )
            .await?
            .payments;
        if claimed.is_empty() {
            return Ok(());
        }
        for pending in claimed {
            report(format_args!("claimed {}", pending.payment.correlation_id));
        }
        // Let the other claimer in between our transactions.
        tokio::task::yield_now().await;
    }
}
