//! One process, real databases: opening, idempotent writes, the summary windows, recovery
//! claims and the health budget, as the api would call them. Every test in `on_both!` runs
//! against SQLite and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`); the few
//! that are about one database only are at the end.

mod common;

use common::{accepted, attempt, id, on_both, payment, Backend, Db};
use payment::{Cents, Millis, Processor};
use storage::{
    Database, Destination, DoubleCharge, HealthRecord, StorageError, Store, StoreConfig,
};

/// `n` milliseconds.
fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

on_both!(
    async
    reopening_keeps_the_data_and_the_schema_version,
    a_newer_schema_is_refused,
    workers_opening_a_new_database_at_once_all_succeed,
    the_same_payment_twice_is_one_row_counted_once,
    a_send_is_dated_by_its_take_a_pinned_one_keeps_its_date_and_a_purge_forgets_for_good,
    summary_windows_are_inclusive_at_both_ends,
    pending_payments_are_not_in_the_summary,
    one_hundred_thousand_payments_of_19_90_sum_to_exact_cents,
    a_failing_write_does_not_take_its_batch_neighbours_down,
    claims_take_a_dead_workers_payments_but_not_a_live_ones,
    own_pending_reads_back_this_workers_pending_payments_as_a_claim_would,
    unpin_frees_only_the_owners_payments_pinned_there,
    only_the_owner_takes_a_payment_for_sending_and_a_pinned_one_keeps_its_requested_at,
    recording_for_sending_takes_the_new_payments_in_the_same_write,
    the_store_knows_the_heartbeat_it_wrote_last,
    a_heartbeat_queued_behind_a_take_never_moves_its_proof_back,
    a_pin_lives_in_the_row_and_outlasts_the_worker,
    a_version_1_database_is_migrated_with_its_payments,
    concurrent_claimers_never_get_the_same_payment,
    one_health_turn_per_window_and_the_record_is_shared,
    writes_after_close_say_so,
    the_view_reads_well_at_the_prompt,
    a_lock_held_by_someone_else_gives_a_clear_error_then_writes_resume,
);

async fn reopening_keeps_the_data_and_the_schema_version(db: Db) {
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 1_000)])
        .await
        .unwrap();
    store.close().await;

    let store = db.open("w1");
    assert_eq!(store.pending_count().await.unwrap(), 1);
    assert_eq!(db.schema_version(), storage::schema::SCHEMA_VERSION);
}

async fn a_newer_schema_is_refused(db: Db) {
    db.open("w1").close().await;
    db.query(&db.set_schema_version_sql(99));
    let err = Store::open(db.config("w1")).err().expect("must be refused");
    assert!(
        matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("run a newer build"), "{err}");
}

async fn workers_opening_a_new_database_at_once_all_succeed(db: Db) {
    // Each opens on its own thread, as worker processes starting together would.
    let opened: Vec<_> = (0..4)
        .map(|n| {
            let config = db.config(&format!("w{n}"));
            std::thread::spawn(move || Store::open(config).map(drop))
        })
        .collect();
    for worker in opened {
        worker
            .join()
            .unwrap()
            .expect("every worker opens the new database");
    }
    assert_eq!(db.schema_version(), storage::schema::SCHEMA_VERSION);
    assert_eq!(db.count("SELECT count(*) FROM payments_view"), 0);
}

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

async fn a_send_is_dated_by_its_take_a_pinned_one_keeps_its_date_and_a_purge_forgets_for_good(
    db: Db,
) {
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 1_000)])
        .await
        .unwrap();

    // An attempt's requestedAt is the time of the write that makes it durable.
    let first = store
        .take_for_sending(vec![(id(1), Processor::Default)])
        .await
        .unwrap();
    let first_at = first.alive_at.0;
    assert_eq!(
        first.payments,
        vec![(id(1), attempt(Processor::Default, first_at))]
    );
    // Moved to the other processor after a 500 (nothing stored): dated by this send.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let moved = store
        .take_for_sending(vec![(id(1), Processor::Fallback)])
        .await
        .unwrap();
    let at = moved.alive_at.0;
    assert!(at > first_at);
    assert_eq!(
        moved.payments,
        vec![(id(1), attempt(Processor::Fallback, at))]
    );
    // Its call got no answer: pinned, every later send keeps that call's requestedAt.
    assert_eq!(
        store.pin(vec![(id(1), Processor::Fallback)]).await.unwrap(),
        1
    );
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let resent = store
        .take_for_sending(vec![(id(1), Processor::Fallback)])
        .await
        .unwrap();
    assert!(resent.alive_at.0 > at);
    assert_eq!(
        resent.payments,
        vec![(id(1), attempt(Processor::Fallback, at))]
    );
    store.retire().await.unwrap();
    let claimed = store
        .claim_orphans(Millis::now(), ms(1_000), 10)
        .await
        .unwrap();
    assert_eq!(claimed.payments.len(), 1);
    assert_eq!(
        claimed.payments[0].attempt,
        Some(attempt(Processor::Fallback, at))
    );
    // It had an attempt, so its new owner may only send it there; the retired worker left
    // no heartbeat, so none of its calls can still be running.
    assert_eq!(
        claimed.payments[0].destination,
        Destination::PinnedTo(Processor::Fallback)
    );
    assert_eq!(claimed.last_alive, None);

    let fence = Millis::now();
    store.purge(fence).await.unwrap();
    assert_eq!(store.pending_count().await.unwrap(), 0);
    // A call in flight during the purge answers 200 later: the row is not recreated.
    store
        .mark_processed(vec![(payment(1, 1990), attempt(Processor::Fallback, at))])
        .await
        .unwrap();
    let summary = store.summary(None, None).await.unwrap();
    assert_eq!(summary.fallback.requests, 0, "a purge forgets for good");
    // A batch of before the purge arriving late (the lb's queue, its journal replayed) is
    // not recorded; one accepted after the fence is.
    let late = vec![accepted(2, 1990, fence.0), accepted(3, 1990, fence.0 + 1)];
    let new = store.record_pending(late.clone()).await.unwrap();
    assert_eq!(new, vec![late[1]]);
    let taken = store
        .record_for_sending(vec![accepted(4, 1990, fence.0 - 5)], Processor::Default)
        .await
        .unwrap();
    assert!(taken.new.is_empty(), "nor when recorded for sending");
    assert_eq!(store.pending_count().await.unwrap(), 1);
}

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

async fn claims_take_a_dead_workers_payments_but_not_a_live_ones(db: Db) {
    let live = db.open("live");
    let dead = db.open("dead");
    let rescuer = db.open("rescuer");
    live.record_pending((0..5).map(|n| accepted(n, 1990, 0)).collect())
        .await
        .unwrap();
    dead.record_pending((10..15).map(|n| accepted(n, 1990, 0)).collect())
        .await
        .unwrap();
    let sent = dead
        .take_for_sending(vec![(id(10), Processor::Default)])
        .await
        .unwrap();
    let at = sent.alive_at.0;
    // After take_for_sending, which renews the heartbeat to the wall clock.
    let now = Millis::now().0;
    live.heartbeat(Millis(now + 10_000)).await.unwrap();
    dead.heartbeat(Millis(now + 1_000)).await.unwrap();
    rescuer.heartbeat(Millis(now + 10_000)).await.unwrap();

    assert!(
        !rescuer
            .orphans_exist(Millis(now + 2_000), ms(2_000))
            .await
            .unwrap(),
        "every owner is alive"
    );
    assert!(rescuer
        .orphans_exist(Millis(now + 10_500), ms(2_000))
        .await
        .unwrap());
    let claimed = rescuer
        .claim_orphans(Millis(now + 10_500), ms(2_000), 100)
        .await
        .unwrap();
    // The dead worker's last heartbeat: its calls may outlive it by their timeout.
    assert_eq!(claimed.last_alive, Some(Millis(now + 1_000)));
    let mut claimed = claimed.payments;
    claimed.sort_by_key(|p| p.payment.correlation_id);
    let ids: Vec<_> = claimed.iter().map(|p| p.payment.correlation_id).collect();
    assert_eq!(ids, (10..15).map(id).collect::<Vec<_>>());
    assert_eq!(claimed[0].attempt, Some(attempt(Processor::Default, at)));
    assert_eq!(
        claimed[0].destination,
        Destination::PinnedTo(Processor::Default)
    );
    assert!(claimed[1..]
        .iter()
        .all(|p| p.attempt.is_none() && p.destination == Destination::Anywhere));
    // Now owned by a live worker: nobody else gets them.
    assert!(!live
        .orphans_exist(Millis(now + 10_600), ms(2_000))
        .await
        .unwrap());
    assert!(live
        .claim_orphans(Millis(now + 10_600), ms(2_000), 100)
        .await
        .unwrap()
        .payments
        .is_empty());

    // A worker that retires hands its payments over at once.
    live.retire().await.unwrap();
    assert_eq!(
        rescuer
            .claim_orphans(Millis(now + 10_700), ms(2_000), 100)
            .await
            .unwrap()
            .payments
            .len(),
        5
    );
    assert_eq!(
        db.count("SELECT count(*) FROM payments WHERE owner = 'rescuer'"),
        10
    );
}

async fn own_pending_reads_back_this_workers_pending_payments_as_a_claim_would(db: Db) {
    let mine = db.open("mine");
    let other = db.open("other");
    mine.record_pending((0..3).map(|n| accepted(n, 1990, 0)).collect())
        .await
        .unwrap();
    other
        .record_pending(vec![accepted(9, 1990, 0)])
        .await
        .unwrap();
    let sent = mine
        .take_for_sending(vec![(id(0), Processor::Default)])
        .await
        .unwrap();
    mine.mark_processed(vec![(
        payment(2, 1990),
        attempt(Processor::Default, sent.alive_at.0),
    )])
    .await
    .unwrap();

    let mut own = mine.own_pending(100).await.unwrap();
    own.sort_by_key(|p| p.payment.correlation_id);
    let ids: Vec<_> = own.iter().map(|p| p.payment.correlation_id).collect();
    assert_eq!(ids, vec![id(0), id(1)], "pending and mine only");
    // An attempt on record: it may only go back to that processor, as after a claim.
    assert_eq!(
        own[0].attempt,
        Some(attempt(Processor::Default, sent.alive_at.0))
    );
    assert_eq!(
        own[0].destination,
        Destination::PinnedTo(Processor::Default)
    );
    assert_eq!(
        (own[1].attempt, own[1].destination),
        (None, Destination::Anywhere)
    );
    // Pinned in the row too, as in memory: a take keeps its processor and requestedAt.
    assert_eq!(
        db.count("SELECT count(*) FROM payments_view WHERE pinned_to IS NOT NULL"),
        1
    );
    let again = mine
        .take_for_sending(vec![(id(0), Processor::Fallback)])
        .await
        .unwrap();
    assert_eq!(
        again.payments,
        vec![(id(0), attempt(Processor::Default, sent.alive_at.0))]
    );
}

async fn unpin_frees_only_the_owners_payments_pinned_there(db: Db) {
    let (d, f) = (Processor::Default, Processor::Fallback);
    let mine = db.open("mine");
    mine.record_for_sending((0..3).map(|n| accepted(n, 1990, 0)).collect(), d)
        .await
        .unwrap();
    let first_at = mine.own_pending(10).await.unwrap()[0].attempt;
    assert_eq!(
        db.count("SELECT count(*) FROM payments_view WHERE pinned_to = 'default'"),
        3
    );
    let other = db.open("other");
    assert!(
        other.unpin(d, vec![id(0)]).await.unwrap().is_empty(),
        "not its payment"
    );
    assert!(
        mine.unpin(f, vec![id(1)]).await.unwrap().is_empty(),
        "not pinned there"
    );
    assert_eq!(mine.unpin(d, vec![id(2)]).await.unwrap(), vec![id(2)]);
    // Freed: the next take goes where asked and is dated by its send.
    let taken = mine
        .take_for_sending(vec![(id(2), f), (id(1), f)])
        .await
        .unwrap();
    let by_id: std::collections::HashMap<_, _> = taken.payments.into_iter().collect();
    assert_eq!(by_id[&id(2)], attempt(f, taken.alive_at.0));
    assert_eq!(Some(by_id[&id(1)]), first_at, "still pinned: unchanged");
}

async fn only_the_owner_takes_a_payment_for_sending_and_a_pinned_one_keeps_its_requested_at(
    db: Db,
) {
    let stalled = db.open("stalled");
    let rescuer = db.open("rescuer");
    let (d, f) = (Processor::Default, Processor::Fallback);
    stalled
        .record_pending(vec![accepted(0, 1990, 0), accepted(1, 1990, 0)])
        .await
        .unwrap();
    let sent = stalled.take_for_sending(vec![(id(0), d)]).await.unwrap();
    let first_at = sent.alive_at.0;
    assert_eq!(sent.payments, vec![(id(0), attempt(d, first_at))]);

    // Its heartbeat stalls: 10 s later the rescuer claims both payments while they wait in
    // its queue.
    let later = Millis(Millis::now().0 + 10_000);
    rescuer.heartbeat(later).await.unwrap();
    assert_eq!(
        rescuer
            .claim_orphans(later, ms(3_000), 100)
            .await
            .unwrap()
            .payments
            .len(),
        2
    );
    stalled
        .record_pending(vec![accepted(2, 1990, 0), accepted(3, 1990, 0)])
        .await
        .unwrap();

    let before = Millis::now();
    let batch = [(0, f), (1, d), (2, d), (3, f)].map(|(n, p)| (id(n), p));
    let taken = stalled.take_for_sending(batch.to_vec()).await.unwrap();
    let at = taken.alive_at.0;
    assert_eq!(
        taken.payments,
        vec![(id(2), attempt(d, at)), (id(3), attempt(f, at))]
    );
    assert!(
        taken.alive_at >= before,
        "the heartbeat is renewed: {taken:?}"
    );
    // The claimed rows are untouched: payment 0 keeps its attempt, payment 1 has none.
    let row = |n: u64| {
        format!(
            "SELECT count(*) FROM payments WHERE correlation_id = '{}' AND owner = 'rescuer'",
            id(n)
        )
    };
    assert_eq!(
        db.count(&format!(
            "{} AND processor = 'default' AND requested_at = {first_at}",
            row(0)
        )),
        1
    );
    assert_eq!(
        db.count(&format!(
            "{} AND processor IS NULL AND requested_at IS NULL",
            row(1)
        )),
        1
    );
    // The renewed heartbeat keeps the stalled worker's own rows from being claimed.
    assert!(rescuer
        .claim_orphans(Millis::now(), ms(3_000), 100)
        .await
        .unwrap()
        .payments
        .is_empty());

    // The new owner sends payment 0, pinned by the claim: asked for the fallback, the row
    // keeps the default and the requestedAt of the call the stalled worker may have made.
    let rescued = rescuer.take_for_sending(vec![(id(0), f)]).await.unwrap();
    assert_eq!(rescued.payments, vec![(id(0), attempt(d, first_at))]);
    // A retry of an unpinned payment (its call answered 500) is dated by its new send.
    let retry = stalled.take_for_sending(vec![(id(2), f)]).await.unwrap();
    assert_eq!(retry.payments, vec![(id(2), attempt(f, retry.alive_at.0))]);

    // Processed and purged payments are not sent again either.
    stalled
        .mark_processed(vec![(payment(3, 1990), attempt(f, at))])
        .await
        .unwrap();
    assert!(stalled
        .take_for_sending(vec![(id(3), f)])
        .await
        .unwrap()
        .payments
        .is_empty());
    stalled.purge(Millis::now()).await.unwrap();
    assert!(stalled
        .take_for_sending(vec![(id(2), f)])
        .await
        .unwrap()
        .payments
        .is_empty());
    assert_eq!(db.count("SELECT count(*) FROM payments"), 0);
}

async fn the_store_knows_the_heartbeat_it_wrote_last(db: Db) {
    let store = db.open("w1");
    assert_eq!(store.heartbeat_written_at(), None);
    store.heartbeat(Millis(5_000)).await.unwrap();
    assert_eq!(store.heartbeat_written_at(), Some(Millis(5_000)));
    let recorded = store
        .record_for_sending(vec![accepted(1, 1990, 0)], Processor::Default)
        .await
        .unwrap();
    assert_eq!(store.heartbeat_written_at(), Some(recorded.alive_at));
    let taken = store
        .take_for_sending(vec![(id(1), Processor::Default)])
        .await
        .unwrap();
    assert_eq!(store.heartbeat_written_at(), Some(taken.alive_at));
    let row = db.count("SELECT heartbeat_at FROM workers WHERE id = 'w1'");
    assert_eq!(
        Some(Millis(row)),
        store.heartbeat_written_at(),
        "as in the row"
    );
}

async fn a_heartbeat_queued_behind_a_take_never_moves_its_proof_back(db: Db) {
    let store = db.open("stalled");
    let rescuer = db.open("rescuer");
    store
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap();
    // The heartbeat task stamped its time (here: a second ago), then the writer stalled
    // behind a lock held elsewhere, with a take for sending queued before the heartbeat.
    let stamped = Millis(Millis::now().0 - 1_000);
    let lunch = Lunch::start(&db).await;
    let (taken, beat, ()) = tokio::join!(
        store.take_for_sending(vec![(id(1), Processor::Default)]),
        store.heartbeat(stamped),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            lunch.end().await;
        },
    );
    let taken = taken.unwrap();
    beat.unwrap();
    assert_eq!(taken.payments.len(), 1, "taken for sending: {taken:?}");

    // The proof handed out with the take holds: nobody claims the payment before it is
    // `dead_after` old, and the store does not believe its heartbeat older either.
    let dead_after = ms(2_000);
    rescuer
        .heartbeat(Millis(taken.alive_at.0 + 60_000))
        .await
        .unwrap();
    let just_before = Millis(taken.alive_at.0 + dead_after.as_millis() as i64 - 1);
    let claimed = rescuer
        .claim_orphans(just_before, dead_after, 100)
        .await
        .unwrap();
    assert!(
        claimed.payments.is_empty(),
        "claimed within the proof's life: {claimed:?}"
    );
    assert_eq!(store.heartbeat_written_at(), Some(taken.alive_at));
}

async fn recording_for_sending_takes_the_new_payments_in_the_same_write(db: Db) {
    let (d, f) = (Processor::Default, Processor::Fallback);
    let mine = db.open("mine");
    let rescuer = db.open("rescuer");
    mine.record_pending(vec![accepted(0, 1990, 0)])
        .await
        .unwrap();
    let before = Millis::now();
    let batch = vec![
        accepted(0, 1990, 0),
        accepted(1, 1990, 5),
        accepted(2, 2000, 5),
    ];
    let recorded = mine.record_for_sending(batch, d).await.unwrap();
    let at = recorded.alive_at.0;
    assert!(
        recorded.alive_at >= before,
        "the heartbeat is renewed: {recorded:?}"
    );
    assert_eq!(
        recorded.new,
        vec![accepted(1, 1990, 5), accepted(2, 2000, 5)],
        "only the new ones"
    );
    assert_eq!(recorded.attempt, attempt(d, at));
    let taken_rows =
        format!("SELECT count(*) FROM payments WHERE status = 'pending' AND owner = 'mine' AND processor = 'default' AND requested_at = {at}");
    assert_eq!(db.count(&taken_rows), 2);
    assert_eq!(
        db.count("SELECT count(*) FROM payments WHERE processor IS NULL AND requested_at IS NULL"),
        1,
        "the known one is untouched"
    );

    // A re-sent batch records and changes nothing.
    assert!(mine
        .record_for_sending(vec![accepted(1, 1990, 5)], f)
        .await
        .unwrap()
        .new
        .is_empty());
    assert_eq!(db.count(&taken_rows), 2);
    // The heartbeat written with them keeps them from being claimed.
    rescuer.heartbeat(Millis::now()).await.unwrap();
    assert!(rescuer
        .claim_orphans(Millis::now(), ms(3_000), 100)
        .await
        .unwrap()
        .payments
        .is_empty());
    // Not sent yet, so not pinned: a later take may send one elsewhere, dated by that take.
    let taken = mine.take_for_sending(vec![(id(1), f)]).await.unwrap();
    let taken_at = taken.alive_at.0;
    assert_eq!(taken.payments, vec![(id(1), attempt(f, taken_at))]);

    // Its worker dead (10 s later), a claim gives them back as attempted: pinned to where
    // they were going.
    let later = Millis(taken_at + 10_000);
    rescuer.heartbeat(later).await.unwrap();
    let mut claimed = rescuer
        .claim_orphans(later, ms(3_000), 100)
        .await
        .unwrap()
        .payments;
    claimed.sort_by_key(|p| p.payment.correlation_id);
    let got: Vec<_> = claimed
        .iter()
        .map(|p| (p.payment.correlation_id, p.attempt, p.destination))
        .collect();
    assert_eq!(
        got,
        vec![
            (id(0), None, Destination::Anywhere),
            (id(1), Some(attempt(f, taken_at)), Destination::PinnedTo(f)),
            (id(2), Some(attempt(d, at)), Destination::PinnedTo(d)),
        ]
    );
}

async fn a_pin_lives_in_the_row_and_outlasts_the_worker(db: Db) {
    let (d, f) = (Processor::Default, Processor::Fallback);
    let first = db.open("first");
    first
        .record_pending(vec![accepted(1, 1990, 0), accepted(2, 1990, 0)])
        .await
        .unwrap();
    first
        .take_for_sending(vec![(id(1), d), (id(2), d)])
        .await
        .unwrap();
    // Payment 1's call timed out: pinned. A pin for the wrong processor changes nothing.
    assert_eq!(first.pin(vec![(id(1), d), (id(2), f)]).await.unwrap(), 1);
    // Payment 2's call was answered 500: it may move, and does.
    let moved = first
        .take_for_sending(vec![(id(1), f), (id(2), f)])
        .await
        .unwrap();
    let by_id: std::collections::HashMap<_, _> = moved.payments.into_iter().collect();
    assert_eq!(
        by_id[&id(1)].processor,
        d,
        "a pinned payment is not moved, whatever is asked"
    );
    assert_eq!(by_id[&id(2)].processor, f);
    first.close().await;

    // The pin is visible at the sqlite3 prompt, then survives a restart and a claim.
    let pinned = "SELECT count(*) FROM payments_view WHERE pinned_to = 'default'";
    assert_eq!(db.count(pinned), 1);
    let next = db.open("next");
    let claimed = next
        .claim_orphans(Millis(Millis::now().0 + 60_000), ms(1_000), 10)
        .await
        .unwrap();
    let destinations: std::collections::HashMap<_, _> = claimed
        .payments
        .iter()
        .map(|p| (p.payment.correlation_id, p.destination))
        .collect();
    assert_eq!(destinations[&id(1)], Destination::PinnedTo(d));
    // Payment 2 had an attempt on record at the fallback: the claim pins it there.
    assert_eq!(destinations[&id(2)], Destination::PinnedTo(f));
    assert_eq!(
        db.count("SELECT count(*) FROM payments_view WHERE pinned_to IS NOT NULL"),
        2
    );
}

async fn a_version_1_database_is_migrated_with_its_payments(db: Db) {
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap();
    store.close().await;
    // Back to what version 1 was: no pin column, the old view.
    db.query(&format!(
        "DROP VIEW payments_view;
         DROP TABLE purge_fence;
         ALTER TABLE payments DROP COLUMN pinned;
         CREATE VIEW payments_view AS SELECT correlation_id FROM payments;
         {}",
        db.set_schema_version_sql(1)
    ));

    let store = db.open("w1");
    assert_eq!(db.schema_version(), storage::schema::SCHEMA_VERSION);
    assert_eq!(store.pending_count().await.unwrap(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM payments_view WHERE pinned_to IS NULL"),
        1
    );
}

async fn concurrent_claimers_never_get_the_same_payment(db: Db) {
    db.open("gone")
        .record_pending((0..2_000).map(|n| accepted(n, 1990, 0)).collect())
        .await
        .unwrap();
    let claimers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|owner| {
            let store = db.open(owner);
            tokio::spawn(async move {
                store.heartbeat(Millis::now()).await.unwrap();
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_orphans(Millis::now(), ms(60_000), 50)
                        .await
                        .unwrap()
                        .payments;
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|p| p.payment.correlation_id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (2_000, 2_000));
}

async fn one_health_turn_per_window_and_the_record_is_shared(db: Db) {
    let w1 = db.open("w1");
    let w2 = db.open("w2");
    let (d, f) = (Processor::Default, Processor::Fallback);
    assert!(w1
        .take_health_turn(d, Millis(10_000), ms(5_000))
        .await
        .unwrap());
    assert!(!w2
        .take_health_turn(d, Millis(10_001), ms(5_000))
        .await
        .unwrap());
    assert!(!w1
        .take_health_turn(d, Millis(14_999), ms(5_000))
        .await
        .unwrap());
    // The other processor has its own budget.
    assert!(w2
        .take_health_turn(f, Millis(10_001), ms(5_000))
        .await
        .unwrap());
    assert!(w2
        .take_health_turn(d, Millis(15_000), ms(5_000))
        .await
        .unwrap());

    assert_eq!(w2.health(d).await.unwrap(), None);
    let record = HealthRecord {
        failing: true,
        min_response_time_ms: 120,
        checked_at: Millis(15_010),
    };
    w1.save_health(d, record).await.unwrap();
    assert_eq!(w2.health(d).await.unwrap(), Some(record));
    assert_eq!(w2.health(f).await.unwrap(), None);
}

async fn writes_after_close_say_so(db: Db) {
    let store = db.open("w1");
    let other = store.clone();
    store.close().await;
    let err = other
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Closed { .. }), "{err:?}");
    // Reads still work.
    assert_eq!(other.pending_count().await.unwrap(), 0);
}

/// At the `sqlite3` or `psql` prompt, the same text.
async fn the_view_reads_well_at_the_prompt(db: Db) {
    let store = db.open("w1");
    let at = Millis::parse_iso("2025-07-10T12:34:56.789Z").unwrap();
    let accepted_at = Millis::parse_iso("2025-07-10T12:34:56.005Z").unwrap();
    store
        .record_pending(vec![
            accepted(1, 1990, accepted_at.0),
            accepted(2, 5, accepted_at.0),
        ])
        .await
        .unwrap();
    store
        .mark_processed(vec![(payment(1, 1990), attempt(Processor::Fallback, at.0))])
        .await
        .unwrap();
    store.close().await;

    let lines = db.query("SELECT * FROM payments_view ORDER BY correlation_id;");
    assert_eq!(
        lines,
        [
            format!(
                "{}|19.90|fallback|processed|2025-07-10T12:34:56.789Z|2025-07-10T12:34:56.005Z|",
                id(1)
            ),
            format!("{}|0.05||pending||2025-07-10T12:34:56.005Z|", id(2)),
        ]
    );
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

/// A write lock held on the payments by another connection until [`Lunch::end`].
enum Lunch {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Lunch {
    async fn start(db: &Db) -> Lunch {
        match &db.database {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                Lunch::Sqlite(conn)
            }
            Database::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute("BEGIN; LOCK TABLE payments IN EXCLUSIVE MODE;")
                    .await
                    .unwrap();
                Lunch::Postgres(client)
            }
        }
    }

    async fn end(self) {
        match self {
            Lunch::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            Lunch::Postgres(client) => client.batch_execute("ROLLBACK").await.unwrap(),
        }
    }
}

// SQLite only: the file, its directory, its journal mode.

#[tokio::test]
async fn sqlite_opening_creates_the_directory_in_wal_mode() {
    let db = Db::new(Backend::Sqlite);
    let path = db.path();
    assert!(!path.parent().unwrap().exists());
    db.open("w1").close().await;
    assert_eq!(db.query("PRAGMA journal_mode"), ["wal"]);
}

#[tokio::test]
async fn sqlite_a_file_that_is_not_a_database_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.db");
    std::fs::write(
        &path,
        "these are my holiday notes, not a database\n".repeat(200),
    )
    .unwrap();
    let err = Store::open(StoreConfig::new(&path, "w1"))
        .err()
        .expect("must be refused");
    assert!(matches!(err, StorageError::NotADatabase { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("DATABASE_PATH"),
        "{message}"
    );
    // And the file is left as it was.
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("these are my holiday notes"));
}

// PostgreSQL only: the server and the URL.

#[tokio::test]
async fn postgres_a_server_that_does_not_answer_is_refused_with_advice_and_no_password() {
    let db = Db::new(Backend::Postgres);
    let url = db.nowhere();
    let database = Database::from_url_or_path(Some(&url), "unused.db").unwrap();
    let err = Store::open(StoreConfig::with_database(database, "w1"))
        .err()
        .expect("must be refused");
    assert!(
        matches!(err, StorageError::PostgresConnect { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("DATABASE_URL") && message.contains("postgres:***@"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password is shown: {message}"
    );
}

#[tokio::test]
async fn postgres_the_summary_is_one_index_range_scan() {
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

#[tokio::test]
async fn postgres_a_store_reconnects_after_the_server_drops_its_connections() {
    let db = Db::new(Backend::Postgres);
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap();
    // What a server restart or a failover does to every open connection.
    let dropped = db.count(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'rinha-pay w1' AND datname = current_database()",
    );
    assert_eq!(dropped, 3, "one write and two read connections");
    // The calls that meet the loss may fail; within a few, both paths work again.
    let mut recovered = false;
    for n in 2..12 {
        let wrote = store
            .record_pending(vec![accepted(n, 1990, 0)])
            .await
            .is_ok();
        let read = store.pending_count().await.is_ok() && store.pending_count().await.is_ok();
        if wrote && read {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recovered, "the store did not reconnect");
    assert!(store.pending_count().await.unwrap() >= 2);
    assert_eq!(
        store.summary(None, None).await.unwrap(),
        payment::Summary::default()
    );
}
