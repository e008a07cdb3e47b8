//! Recording payments and the write path under it: the same payment twice is one row, a
//! failing write does not take its batch neighbours down, a lock held by someone else
//! gives a clear error and writes resume. Every test in `on_both!` runs against SQLite
//! and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{accepted, attempt, on_both, payment, Db, Lunch};
use payment::{Cents, Processor};
use storage::{DoubleCharge, StorageError};

on_both!(
    async
    the_same_payment_twice_is_one_row_counted_once,
    a_failing_write_does_not_take_its_batch_neighbours_down,
    a_lock_held_by_someone_else_gives_a_clear_error_then_writes_resume,
);

async fn the_same_payment_twice_is_one_row_counted_once(db: Db) {
    let store = db.open("w1");

    let first = store
        .record_pending(vec![accepted(1, 1990, 1_000), accepted(2, 1990, 1_000)])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    // Re-sent batch (to this or the other worker), plus one new payment.
    let again = store
        .record_pending(vec![accepted(1, 1990, 5_000), accepted(3, 500, 5_000)])
        .await
        .unwrap();
    assert_eq!(again, vec![accepted(3, 500, 5_000)]);

    let done = attempt(Processor::Default, 2_000);
    assert!(store
        .mark_processed(vec![(payment(1, 1990), done)])
        .await
        .unwrap()
        .is_empty());
    // The same answer again (a 422 after a lost write): nothing to report.
    assert!(store
        .mark_processed(vec![(payment(1, 1990), done)])
        .await
        .unwrap()
        .is_empty());
    // A success from the OTHER processor does not move it, and it is reported: that
    // payment was charged twice.
    let twice = store
        .mark_processed(vec![(
            payment(1, 1990),
            attempt(Processor::Fallback, 9_000),
        )])
        .await
        .unwrap();
    assert_eq!(
        twice,
        vec![DoubleCharge {
            payment: payment(1, 1990),
            recorded_at: Processor::Default,
            also_at: Processor::Fallback
        }]
    );
    // The same payment twice in one batch is new once.
    assert_eq!(
        store
            .record_pending(vec![accepted(4, 100, 0), accepted(4, 100, 0)])
            .await
            .unwrap(),
        vec![accepted(4, 100, 0)]
    );
    // Pending again after processed changes nothing either.
    assert!(store
        .record_pending(vec![accepted(1, 1990, 7_000)])
        .await
        .unwrap()
        .is_empty());

    assert_eq!(db.count("SELECT count(*) FROM payments"), 4);
    let summary = store.summary(None, None).await.unwrap();
    assert_eq!(
        (summary.default.requests, summary.default.amount),
        (1, Cents(1990))
    );
    assert_eq!(summary.fallback.requests, 0);
    assert_eq!(store.pending_count().await.unwrap(), 3);
}

async fn a_failing_write_does_not_take_its_batch_neighbours_down(db: Db) {
    let store = db.open("w1");
    // Sent together so the writer folds them into one transaction; a zero amount breaks
    // the table's CHECK, the others are fine.
    let good = (0..50).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { store.record_pending(vec![accepted(n, 1990, 0)]).await })
    });
    let good: Vec<_> = good.collect();
    let bad = store.record_pending(vec![accepted(999, 0, 0)]);
    let err = bad.await.expect_err("a zero amount is refused");
    assert!(
        matches!(
            err,
            StorageError::Sqlite { .. } | StorageError::Postgres { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("record pending payments"), "{err}");
    for task in good {
        assert_eq!(task.await.unwrap().unwrap().len(), 1);
    }
    assert_eq!(db.count("SELECT count(*) FROM payments"), 50);
}

async fn a_lock_held_by_someone_else_gives_a_clear_error_then_writes_resume(db: Db) {
    let store = db.open("w1");
    // Someone at the prompt took a lock on the payments and went to lunch.
    let lunch = Lunch::start(&db).await;
    let err = store
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("lock") && message.contains("record pending payments"),
        "{message}"
    );
    lunch.end().await;
    assert_eq!(
        store
            .record_pending(vec![accepted(1, 1990, 0)])
            .await
            .unwrap()
            .len(),
        1
    );
}
