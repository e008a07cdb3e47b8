//! Taking payments for sending, and recording them already taken: who may take a
//! payment, the `requestedAt` each attempt stores, what a pin keeps and what a purge
//! forgets. Every test in `on_both!` runs against SQLite and against PostgreSQL
//! (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{accepted, attempt, id, ms, on_both, payment, Db};
use payment::{Millis, Processor};
use storage::Destination;

on_both!(
    async
    a_send_is_dated_by_its_take_a_pinned_one_keeps_its_date_and_a_purge_forgets_for_good,
    only_the_owner_takes_a_payment_for_sending_and_a_pinned_one_keeps_its_requested_at,
    recording_for_sending_takes_the_new_payments_in_the_same_write,
);

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
