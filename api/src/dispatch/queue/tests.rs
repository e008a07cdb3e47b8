//! The queue: which copy of a payment is current, and how much room is left.

use super::*;
use payment::{Cents, Millis, Payment};
use storage::Attempt;
use Destination::*;
use Processor::*;

/// A payment as the store gives it, numbered `id`.
pub fn pending(id: u128, destination: Destination) -> Pending {
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

fn waiting(queue: &Queue) -> Vec<(Destination, Option<Attempt>)> {
    queue.with_lanes(|lanes| {
        let all = lanes.anywhere.iter().chain(lanes.pinned.iter().flatten());
        all.map(|job| (job.pending.destination, job.pending.attempt))
            .collect()
    })
}

#[test]
fn a_payment_claimed_back_replaces_the_copy_still_held() {
    let queue = Queue::new(usize::MAX);
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
    queue.push_replacing([Job::new(pending(7, Anywhere))]);
    queue.push_replacing([claimed()]);
    assert_eq!(waiting(&queue), vec![(PinnedTo(Fallback), Some(elsewhere))]);
    assert_eq!(queue.held(), 1);

    // The same with the old copy in flight: when its call ends it is dropped.
    let in_flight = queue.with_lanes(|lanes| lanes.pinned_to(Fallback).pop_front());
    let in_flight = in_flight.expect("the claimed copy waits in the fallback lane");
    queue.push_replacing([claimed()]);
    queue.requeue(in_flight.clone(), Place::Front);
    queue.done(&in_flight);
    assert_eq!(waiting(&queue), vec![(PinnedTo(Fallback), Some(elsewhere))]);
    assert_eq!(queue.held(), 1);
}

#[test]
fn room_counts_what_the_queue_holds() {
    let queue = Queue::new(2);
    assert_eq!(queue.room(), 2);
    queue.push_replacing([Job::new(pending(7, Anywhere))]);
    assert_eq!(queue.room(), 1);
    queue.push_replacing([Job::new(pending(8, Anywhere))]);
    assert_eq!(queue.room(), 0);
}

#[test]
fn a_payment_read_back_as_ours_is_added_only_if_not_held() {
    let queue = Queue::new(usize::MAX);
    queue.push_replacing([Job::new(pending(7, Anywhere))]);
    let in_flight = queue.with_lanes(|lanes| lanes.anywhere.pop_front());
    let in_flight = in_flight.expect("the payment waits in the anywhere lane");
    // Held in flight, and a second copy of 8 in the same read: one of 8 joins.
    let read_back = [7, 8, 8].map(|id| Job::new(pending(id, Anywhere)));
    assert_eq!(queue.push_unheld(read_back), 1);
    assert_eq!(queue.held(), 2);
    // The copy in flight is still the current one: it goes back to its lane.
    queue.requeue(in_flight, Place::Front);
    assert_eq!(waiting(&queue).len(), 2);
}
