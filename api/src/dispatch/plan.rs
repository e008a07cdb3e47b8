//! The planner: which waiting payments a round sends, and where.
//!
//! A pure function of the waiting payments, the routing's view of one instant and the free
//! call permits, so every routing situation can be checked in a table test. It takes no
//! lock, reads no clock and touches neither the store nor the network; the dispatcher
//! takes the view, runs the plan under the queue's lock and applies it (permits, probes).

use super::queue::{Job, Lanes};
use crate::routing::{Access, View};
use payment::Processor;
use std::collections::VecDeque;

/// One call the planner decided to make.
#[derive(Debug)]
pub struct PlannedCall {
    pub job: Job,
    pub processor: Processor,
    /// Open, or the processor's one probe (report it as such).
    pub access: Access,
}

/// Takes from `lanes` the payments to send now, at most `permits` of them:
///
/// 1. pinned payments first, each to its processor: they can go nowhere else;
/// 2. payments free to go anywhere, to the processor the routing prefers;
/// 3. if it prefers none (the default is down, and the fallback is not allowed or down
///    too), ONE of them to each processor it wants back, as its probe.
///
/// A processor that is up takes as many as there are permits; a down one only its probe,
/// when the view grants it (one per processor and round).
pub fn plan(lanes: &mut Lanes, view: &View, permits: usize) -> Vec<PlannedCall> {
    let mut grants = Grants {
        access: view.access,
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
    match view.preferred {
        Some(processor) => grants.fill(&mut lanes.anywhere, processor, usize::MAX, &mut calls),
        None => {
            for processor in Processor::ALL.into_iter().filter(|p| view.wanted(*p)) {
                grants.fill(&mut lanes.anywhere, processor, 1, &mut calls);
            }
        }
    }
    calls
}

/// What is left to grant in this round.
struct Grants {
    /// Per processor; a probe, once granted, leaves None.
    access: [Option<Access>; 2],
    permits: usize,
}

impl Grants {
    /// Consent and a permit for one call to `processor`.
    fn grant(&mut self, processor: Processor) -> Option<Access> {
        if self.permits == 0 {
            return None;
        }
        let slot = &mut self.access[processor.index()];
        let access = (*slot)?;
        if access == Access::Probe {
            *slot = None;
        }
        self.permits -= 1;
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
