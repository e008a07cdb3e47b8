//! Claims against a real store (a SQLite file): how far the dispatch queue's bound lets
//! them go.

use super::*;
use crate::routing::Policy;
use payment::intake::Accepted;
use payment::{Cents, Payment, Processor, Uuid};
use storage::StoreConfig;

/// Longer than any test: claimed payments with an attempt wait out the dead worker's calls
/// for the whole test.
const HOUR: Duration = Duration::from_secs(3600);

/// The recovery of a live worker on `store` with a dispatch queue bound of `queue_max`. A
/// worker is dead once its last heartbeat is in the past, and its calls outlive it by an
/// hour.
fn recovery(store: Store, queue_max: usize) -> Recovery {
    let policy = Policy {
        latency_max: 1_200,
        fallback_after: 12_000,
        overflow_after: 5_000,
        concurrency: 400,
        blip_max: 7_000,
    };
    let shared = Shared::new(store, queue_max, policy, Duration::from_millis(100));
    Recovery::new(shared, Duration::ZERO, (Duration::ZERO, HOUR))
}

/// Opens the store at `path` as worker `owner`.
fn open(path: &std::path::Path, owner: &str) -> Store {
    Store::open(StoreConfig::new(path, owner)).expect("open the store")
}

/// The recovery of worker "rescuer" on `path`, alive for the whole test.
async fn rescuer(path: &std::path::Path, queue_max: usize) -> Recovery {
    let rescuer = open(path, "rescuer");
    let alive_all_test = Millis(Millis::now().0 + HOUR.as_millis() as i64);
    rescuer
        .heartbeat(alive_all_test)
        .await
        .expect("the rescuer's heartbeat");
    recovery(rescuer, queue_max)
}

fn accepted(n: usize) -> Accepted {
    Accepted {
        payment: Payment {
            correlation_id: Uuid::from_u128(n as u128),
            amount: Cents(1990),
        },
        accepted_at: Millis(0),
    }
}

#[tokio::test]
async fn claims_waiting_out_a_dead_workers_calls_stop_at_the_queue_bound() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("payments.db");
    // A worker took 1,000 payments for sending, then died: its calls may still run.
    let dead = open(&path, "dead");
    let orphans = (0..1_000).map(accepted).collect();
    dead.record_for_sending(orphans, Processor::Default)
        .await
        .expect("record the dead worker's payments");
    let recovery = rescuer(&path, 100).await;
    for _scan in 0..3 {
        recovery.claim_all().await.expect("a claim");
    }
    assert_eq!(
        recovery.shared.metrics.claimed.load(Relaxed),
        100,
        "claimed no more than DISPATCH_QUEUE_MAX, waiting ones included"
    );
    assert_eq!(
        recovery.shared.held.room(),
        0,
        "intake is refused meanwhile"
    );
    let rest_claimable = recovery
        .shared
        .store
        .orphans_exist(Millis::now(), Duration::ZERO)
        .await;
    assert!(
        rest_claimable.expect("look for orphans"),
        "the other 900 stay claimable by a worker with room"
    );
}

#[tokio::test]
async fn payments_read_back_after_a_lost_claim_wait_out_the_dead_workers_calls() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("payments.db");
    // A worker took 10 payments for sending and died; 5 more it never took.
    let dead = open(&path, "dead");
    let taken = (0..10).map(accepted).collect();
    dead.record_for_sending(taken, Processor::Default)
        .await
        .expect("record the taken payments");
    let untaken = (10..15).map(accepted).collect();
    dead.record_pending(untaken)
        .await
        .expect("record the others");
    let recovery = rescuer(&path, 100).await;

    // The claim commits, and its answer is lost (as `claim_all` sees an error).
    let now = Millis::now();
    let claimed = recovery
        .shared
        .store
        .claim_orphans(now, Duration::ZERO, 100)
        .await;
    assert_eq!(claimed.expect("the claim").payments.len(), 15);
    recovery.claim_unsure(now);
    recovery.adopt_own().await.expect("read back");

    assert_eq!(
        recovery.shared.held.waiting_anywhere(),
        5,
        "the never-sent ones go at once"
    );
    assert_eq!(
        recovery.shared.held.pinned_waiting(),
        [0, 0],
        "those the dead worker may be sending wait"
    );
    assert_eq!(recovery.shared.held.room(), 85, "and take room meanwhile");
}

#[tokio::test]
async fn payments_set_aside_after_a_claim_are_not_read_back_before_their_time() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("payments.db");
    // A worker took 10 payments for sending and died: its calls may run for the hour.
    let dead = open(&path, "dead");
    let taken = (0..10).map(accepted).collect();
    dead.record_for_sending(taken, Processor::Default)
        .await
        .expect("record the dead worker's payments");
    let recovery = rescuer(&path, 100).await;
    recovery.claim_all().await.expect("a claim");
    assert_eq!(recovery.shared.metrics.claimed.load(Relaxed), 10);

    // A failed intake write: the next scan reads back every payment this worker owns.
    recovery.shared.recovery_hint.mark();
    recovery.adopt_own().await.expect("read back");

    assert_eq!(
        recovery.shared.held.pinned_waiting(),
        [0, 0],
        "none queued while the dead worker's calls may run"
    );
    assert_eq!(recovery.shared.held.count(), 0, "none in hand either");
    assert_eq!(
        recovery.shared.held.room(),
        90,
        "each set aside once, not twice"
    );
}
