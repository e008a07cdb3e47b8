//! Recovery: heartbeats, claims of a dead worker's payments (never by two claimers), and
//! a worker reading back its own pending payments. Every test in `on_both!` runs against
//! SQLite and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{accepted, attempt, id, ms, on_both, payment, Db, Lunch};
use payment::{Millis, Processor};
use storage::Destination;

on_both!(
    async
    claims_take_a_dead_workers_payments_but_not_a_live_ones,
    own_pending_reads_back_this_workers_pending_payments_as_a_claim_would,
    the_store_knows_the_heartbeat_it_wrote_last,
    a_heartbeat_queued_behind_a_take_never_moves_its_proof_back,
    concurrent_claimers_never_get_the_same_payment,
);

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
