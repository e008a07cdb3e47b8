//! The held payments: which copy of a payment is current, and how much room is left.

use super::*;
use payment::{Cents, Millis, Payment};
use storage::Attempt;
use Destination::*;
use Processor::*;

/// A payment as the store gives it, numbered `id`.
pub(crate) fn pending(id: u128, destination: Destination) -> Pending {
    Pending {
        payment: Payment {
            correlation_id: Uuid::from_u128(id),
            amount: Cents(1990),
        },
        accepted_at: Millis(0),
        attempt: None,
        destination,
    }
}

fn waiting(held: &Held) -> Vec<(Destination, Option<Attempt>)> {
    held.with_lanes(|lanes| {
        let all = lanes.anywhere.iter().chain(lanes.pinned.iter().flatten());
        all.map(|job| (job.pending.destination, job.pending.attempt))
            .collect()
    })
}

#[test]
fn a_payment_claimed_back_replaces_the_copy_still_held() {
    let held = Held::new(usize::MAX);
    // Lost to another worker that sent it to the fallback, then claimed back from it.
    let elsewhere = Attempt {
        processor: Fallback,
        requested_at: Millis(5),
    };
    let claimed = || {
        Job::new(Pending {
            attempt: Some(elsewhere),
            ..pending(7, PinnedTo(Fallback))
        })
    };
    held.push_replacing([Job::new(pending(7, Anywhere))]);
    held.push_replacing([claimed()]);
    assert_eq!(waiting(&held), vec![(PinnedTo(Fallback), Some(elsewhere))]);
    assert_eq!(held.count(), 1);

    // The same with the old copy in flight: when its call ends it is dropped.
    let in_flight = held.with_lanes(|lanes| lanes.pinned_to(Fallback).pop_front());
    let in_flight = in_flight.expect("the claimed copy waits in the fallback lane");
    held.push_replacing([claimed()]);
    held.requeue(in_flight.clone(), Place::Front);
    held.done(&in_flight);
    assert_eq!(waiting(&held), vec![(PinnedTo(Fallback), Some(elsewhere))]);
    assert_eq!(held.count(), 1);
}

#[test]
fn room_counts_what_the_queue_holds() {
    let held = Held::new(2);
    assert_eq!(held.room(), 2);
    held.push_replacing([Job::new(pending(7, Anywhere))]);
    assert_eq!(held.room(), 1);
    held.push_replacing([Job::new(pending(8, Anywhere))]);
    assert_eq!(held.room(), 0);
}

#[test]
fn a_payment_read_back_as_ours_is_added_only_if_not_held() {
    let held = Held::new(usize::MAX);
    held.push_replacing([Job::new(pending(7, Anywhere))]);
    let in_flight = held.with_lanes(|lanes| lanes.anywhere.pop_front());
    let in_flight = in_flight.expect("the payment waits in the anywhere lane");
    // Held in flight, and a second copy of 8 in the same read: one of 8 joins.
    let read_back = [7, 8, 8].map(|id| Job::new(pending(id, Anywhere)));
    assert_eq!(held.push_unheld(read_back), 1);
    assert_eq!(held.count(), 2);
    // The copy in flight is still the current one: it goes back to its lane.
    held.requeue(in_flight, Place::Front);
    assert_eq!(waiting(&held).len(), 2);
}
