//! Pins: a pin lives in the payment's row and outlasts its worker; unpinning frees only
//! the owner's payments pinned to that processor. Every test in `on_both!` runs against
//! SQLite and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{accepted, attempt, id, ms, on_both, Db};
use payment::{Millis, Processor};
use storage::Destination;

on_both!(
    async
    unpin_frees_only_the_owners_payments_pinned_there,
    a_pin_lives_in_the_row_and_outlasts_the_worker,
);

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
