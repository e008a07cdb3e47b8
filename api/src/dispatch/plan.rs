//! The planner: which waiting payments a round sends, and where.
//!
//! A pure function of the waiting payments, the routing's view of one instant and the free
//! call permits, so every routing situation can be checked in a table test. It takes no
//! lock, reads no clock and touches neither the store nor the network; the dispatcher
//! takes the view, runs the plan under the lock of what the worker holds and applies it
//! (permits, probes).

use crate::held::{Job, Lanes};
use crate::routing::{Access, View};
use payment::Processor;
use std::collections::VecDeque;

/// One call the planner decided to make.
#[derive(Debug)]
pub(super) struct PlannedCall {
    pub job: Job,
    pub processor: Processor,
    /// Open, or the processor's one probe (report it as such).
    pub access: Access,
}

/// Takes from `lanes` the payments to send now, at most `permits` of them and at most each
/// processor's room:
///
/// 1. pinned payments first, each to its processor: they can go nowhere else;
/// 2. ONE payment free to go anywhere to each failing processor the view wants back, as
///    its probe (unless a pinned payment already is): the oldest while nothing else takes
///    them, else the newest, and only if another waits too, so that while the fallback
///    pays, each probe delays a different payment by one failed call instead of holding
///    one payment back for the whole outage;
/// 3. payments free to go anywhere, to the default then the fallback, as many as the
///    view's `free` allows each.
///
/// A processor that is not failing takes as many as its room; a failing one only its
/// probe, when the view grants it (one per processor and round).
pub(super) fn plan(lanes: &mut Lanes, view: &View, permits: usize) -> Vec<PlannedCall> {
    let mut grants = Grants {
        access: view.access,
        room: view.room,
        permits,
    };
    let mut calls = Vec::new();
    for processor in Processor::ALL {
        grants.fill(
            lanes.pinned_to(processor),
            processor,
            usize::MAX,
            &mut calls,
        );
    }
    let others_take = view.free.iter().any(|n| *n > 0);
    for processor in Processor::ALL
        .into_iter()
        .filter(|p| view.wanted[p.index()])
    {
        let probe_due = grants.access[processor.index()] == Some(Access::Probe);
        // While others take them, a lone payment goes to them: it may be the last probe
        // back from its failed call, which would otherwise probe again and again.
        let spare = if others_take { 2 } else { 1 };
        if !probe_due || lanes.anywhere.len() < spare {
            continue;
        }
        let Some(access) = grants.grant(processor) else {
            continue;
        };
        let job = match others_take {
            true => lanes.anywhere.pop_back(),
            false => lanes.anywhere.pop_front(),
        };
        if let Some(job) = job {
            calls.push(PlannedCall {
                job,
                processor,
                access,
            });
        }
    }
    for processor in Processor::ALL {
        let most = view.free[processor.index()];
        grants.fill(&mut lanes.anywhere, processor, most, &mut calls);
    }
    calls
}

/// What is left to grant in this round.
struct Grants {
    /// Per processor; a probe, once granted, leaves None.
    access: [Option<Access>; 2],
    /// Per processor: calls it may still take.
    room: [usize; 2],
    permits: usize,
}

impl Grants {
    /// Consent and a permit for one call to `processor`.
    fn grant(&mut self, processor: Processor) -> Option<Access> {
        let i = processor.index();
        if self.permits == 0 || self.room[i] == 0 {
            return None;
        }
        let access = self.access[i]?;
        if access == Access::Probe {
            self.access[i] = None;
        }
        self.permits -= 1;
        self.room[i] -= 1;
        Some(access)
    }

    /// Plans up to `most` calls to `processor` with the payments at the front of `lane`.
    fn fill(
        &mut self,
        lane: &mut VecDeque<Job>,
        processor: Processor,
        most: usize,
        calls: &mut Vec<PlannedCall>,
    ) {
        for _ in 0..most {
            if lane.is_empty() {
                return;
            }
            let Some(access) = self.grant(processor) else {
                return;
            };
            if let Some(job) = lane.pop_front() {
                calls.push(PlannedCall {
                    job,
                    processor,
                    access,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
