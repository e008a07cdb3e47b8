//! What a call's answer means for its payment: the one place where "never charge twice"
//! (invariant 2) is decided, as pure functions with a table test.

use crate::held::Place;
use crate::processor::CallOutcome;
use payment::Processor;
use std::time::Duration;
use storage::Destination;

/// Wait before re-queueing a payment a processor answered 429, or one whose database
/// write failed: long enough not to spin, short against the contest's 1.5 s audit lag.
pub(super) const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Wait before retrying a payment the processor refused as malformed (a 4xx other than
/// 422/429: a bug on one side; the payment stays pending, retried now and then).
const REJECTED_BACKOFF: Duration = Duration::from_secs(1);

/// What happens to a payment after a call to a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Paid there (200, or 422: it already had it): record it processed at that processor.
    Record,
    /// Back to its lane with this destination, after `wait`.
    Retry {
        destination: Destination,
        wait: Duration,
        /// The front for a payment worth sending next; the back for one the processor
        /// refuses, so it does not block the others.
        place: Place,
    },
}

/// What a call's answer means for a payment that was going to `destination` and was sent
/// to `processor`.
///
/// Only an answer proves anything, and only about this call. 200 and 422 say the
/// processor has it: record it there. 500, 429 and other 4xx say this call stored nothing,
/// but an earlier call to the same processor may still be unknown, so the destination
/// stays as it was: a pin is never released. No answer at all (a timeout, a broken
/// connection) may mean stored: the payment is pinned there for good, since sending it to
/// the other processor could charge it twice. A payment already pinned keeps its pin: it
/// was only sent where it is pinned, and an earlier pin is never moved.
pub(super) fn after_call(
    outcome: CallOutcome,
    destination: Destination,
    processor: Processor,
) -> Next {
    let retry = |destination, wait, place| Next::Retry {
        destination,
        wait,
        place,
    };
    match outcome {
        CallOutcome::Processed | CallOutcome::AlreadyProcessed => Next::Record,
        CallOutcome::NoAnswer => {
            let pinned_to = match destination {
                Destination::PinnedTo(earlier) => earlier,
                Destination::Anywhere => processor,
            };
            retry(
                Destination::PinnedTo(pinned_to),
                Duration::ZERO,
                Place::Front,
            )
        }
        CallOutcome::Failed => retry(destination, Duration::ZERO, Place::Front),
        CallOutcome::Busy => retry(destination, RETRY_BACKOFF, Place::Front),
        CallOutcome::Rejected => retry(destination, REJECTED_BACKOFF, Place::Back),
    }
}

/// A payment `processor` answered 200 or 422 for, which could not be recorded (the
/// database refused): the processor has it, so only it may be asked again (its 422
/// confirms), once the database had a moment.
pub(super) fn after_unrecorded(processor: Processor) -> Next {
    Next::Retry {
        destination: Destination::PinnedTo(processor),
        wait: RETRY_BACKOFF,
        place: Place::Front,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallOutcome::*;
    use Destination::*;
    use Processor::*;

    /// Every answer, for a payment free to go anywhere and for one pinned to either
    /// processor: what happens next. Read a row as "sent to <processor>, going to
    /// <destination>, answered <outcome>".
    #[test]
    fn what_each_answer_does_to_a_payment() {
        let retry = |destination, wait, place| Next::Retry {
            destination,
            wait,
            place,
        };
        let back = |destination| retry(destination, Duration::ZERO, Place::Front);
        let busy = |destination| retry(destination, RETRY_BACKOFF, Place::Front);
        let refused = |destination| retry(destination, REJECTED_BACKOFF, Place::Back);
        #[rustfmt::skip]
        let table = [
            // Paid: record it at the processor that answered.
            (Default, Anywhere, Processed, Next::Record),
            (Default, Anywhere, AlreadyProcessed, Next::Record),
            (Fallback, PinnedTo(Fallback), Processed, Next::Record),
            (Fallback, PinnedTo(Fallback), AlreadyProcessed, Next::Record),
            // No answer: maybe stored, pinned there for good.
            (Default, Anywhere, NoAnswer, back(PinnedTo(Default))),
            (Fallback, Anywhere, NoAnswer, back(PinnedTo(Fallback))),
            (Default, PinnedTo(Default), NoAnswer, back(PinnedTo(Default))),
            // An earlier pin is never replaced, whatever this call was.
            (Fallback, PinnedTo(Default), NoAnswer, back(PinnedTo(Default))),
            // Not stored by this call; says nothing of earlier ones: the destination stays.
            (Default, Anywhere, Failed, back(Anywhere)),
            (Default, PinnedTo(Default), Failed, back(PinnedTo(Default))),
            (Default, Anywhere, Busy, busy(Anywhere)),
            (Default, PinnedTo(Default), Busy, busy(PinnedTo(Default))),
            (Fallback, Anywhere, Rejected, refused(Anywhere)),
            (Fallback, PinnedTo(Fallback), Rejected, refused(PinnedTo(Fallback))),
        ];
        for (processor, destination, outcome, want) in table {
            assert_eq!(
                after_call(outcome, destination, processor),
                want,
                "sent to {processor}, going to {destination:?}, answered {outcome:?}"
            );
        }
        // Paid but not recorded: only that processor may be asked again.
        assert_eq!(after_unrecorded(Fallback), busy(PinnedTo(Fallback)));
    }

    /// The rule the table above illustrates, over every combination: a pinned payment
    /// stays pinned to the same processor, and no answer leaves a payment free.
    #[test]
    fn no_answer_ever_releases_or_moves_a_pin() {
        for processor in Processor::ALL {
            for destination in [Anywhere, PinnedTo(Default), PinnedTo(Fallback)] {
                for outcome in CallOutcome::ALL {
                    let Next::Retry {
                        destination: next, ..
                    } = after_call(outcome, destination, processor)
                    else {
                        continue;
                    };
                    if let PinnedTo(p) = destination {
                        assert_eq!(
                            next,
                            PinnedTo(p),
                            "{outcome:?} from {processor} moved a pin"
                        );
                    }
                    if outcome == NoAnswer {
                        assert_ne!(
                            next, Anywhere,
                            "no answer from {processor} left the payment free"
                        );
                    }
                }
            }
        }
    }
}
