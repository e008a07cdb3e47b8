//! The summary: inclusive windows, processed payments only, exact cents over many rows,
//! and (PostgreSQL only) one index range scan. Every test in `on_both!` runs against
//! SQLite and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{accepted, attempt, id, on_both, payment, Backend, Db};
use payment::{Cents, Millis, Processor};

on_both!(
    async
    summary_windows_are_inclusive_at_both_ends,
    pending_payments_are_not_in_the_summary,
    one_hundred_thousand_payments_of_19_90_sum_to_exact_cents,
);

async fn summary_windows_are_inclusive_at_both_ends(db: Db) {
    let store = db.open("w1");
    let rows: Vec<_> = (0..10).map(|n| accepted(n, 100 + n as i64, 0)).collect();
    store.record_pending(rows).await.unwrap();
    // Payment n requested at 1000 + 10n; even ones on default, odd ones on fallback.
    let processed = (0..10)
        .map(|n| {
            let processor = if n % 2 == 0 {
                Processor::Default
            } else {
                Processor::Fallback
            };
            (
                payment(n, 100 + n as i64),
                attempt(processor, 1_000 + 10 * n as i64),
            )
        })
        .collect();
    store.mark_processed(processed).await.unwrap();

    let window =
        |from: Option<i64>, to: Option<i64>| store.summary(from.map(Millis), to.map(Millis));
    // [1020, 1050] holds n = 2, 3, 4, 5: both ends included.
    let s = window(Some(1_020), Some(1_050)).await.unwrap();
    assert_eq!(
        (s.default.requests, s.default.amount),
        (2, Cents(102 + 104))
    );
    assert_eq!(
        (s.fallback.requests, s.fallback.amount),
        (2, Cents(103 + 105))
    );
    // Between two payments, and before everything: nothing.
    assert_eq!(
        window(Some(1_021), Some(1_029)).await.unwrap(),
        payment::Summary::default()
    );
    assert_eq!(
        window(Some(0), Some(999)).await.unwrap(),
        payment::Summary::default()
    );
    // No window and half-open windows.
    let all = window(None, None).await.unwrap();
    assert_eq!((all.default.requests, all.fallback.requests), (5, 5));
    assert_eq!(
        all.default.amount.0 + all.fallback.amount.0,
        (100..110).sum::<i64>()
    );
    let from = window(Some(1_090), None).await.unwrap();
    assert_eq!((from.default.requests, from.fallback.requests), (0, 1));
    let to = window(None, Some(1_000)).await.unwrap();
    assert_eq!((to.default.requests, to.fallback.requests), (1, 0));
}

async fn pending_payments_are_not_in_the_summary(db: Db) {
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 1_000)])
        .await
        .unwrap();
    store
        .take_for_sending(vec![(id(1), Processor::Default)])
        .await
        .unwrap();
    assert_eq!(
        store.summary(None, None).await.unwrap(),
        payment::Summary::default()
    );
}

async fn one_hundred_thousand_payments_of_19_90_sum_to_exact_cents(db: Db) {
    let store = db.open("w1");
    const N: u64 = 100_000;
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        store
            .record_pending(chunk.iter().map(|&n| accepted(n, 1990, 0)).collect())
            .await
            .unwrap();
        let processed = chunk
            .iter()
            .map(|&n| (payment(n, 1990), attempt(Processor::Default, n as i64)))
            .collect();
        store.mark_processed(processed).await.unwrap();
    }
    let s = store.summary(None, None).await.unwrap();
    assert_eq!(s.default.requests, 100_000);
    assert_eq!(s.default.amount, Cents(199_000_000));
    assert_eq!(s.default.amount.to_string(), "1990000.00");
    assert!(s.to_json().contains(r#""totalAmount":1990000.00"#));
}

// PostgreSQL only.

#[tokio::test]
async fn postgres_the_summary_is_one_index_range_scan() {
    testkit::skip_without_postgres!();
    let db = Db::new(Backend::Postgres);
    let store = db.open("w1");
    store
        .record_pending((0..1_000).map(|n| accepted(n, 1990, 0)).collect())
        .await
        .unwrap();
    let processed = (0..1_000)
        .map(|n| (payment(n, 1990), attempt(Processor::Default, n as i64)))
        .collect();
    store.mark_processed(processed).await.unwrap();
    db.query("ANALYZE payments");
    let plan = db.query(
        "EXPLAIN SELECT processor, count(*), coalesce(sum(amount), 0)::bigint FROM payments
         WHERE status = 'processed' AND processor IN ('default', 'fallback')
           AND requested_at BETWEEN 100 AND 200 GROUP BY processor",
    );
    let plan = plan.join("\n");
    assert!(
        plan.contains("payments_processed_by_requested_at") && !plan.contains("Seq Scan"),
        "{plan}"
    );
}
