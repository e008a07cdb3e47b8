//! The payments this worker holds ([`Held`]), waiting or in a call or set aside: the lanes
//! they wait in (anywhere, or pinned to a processor), which copy of each is current, and
//! how many more fit under `DISPATCH_QUEUE_MAX`. Keeps: a payment is held once (a newer
//! copy replaces, a read-back copy of one held is not added), a payment back from a call
//! goes to the front of its lane (the next probe), and set-aside payments count as held.
//! Admission and the `api_payments_held` gauge read the same counts. Why:
//! docs/architecture.md, "The life of a payment", step 4.

use payment::{Processor, Uuid};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage::{Destination, Pending};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// A payment in this worker's hands.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The payment as stored, with where it may go (`pending.destination`).
    pub pending: Pending,
    /// Which copy of the payment this is, set by [`Held`] (see [`Held::push_replacing`]).
    generation: u64,
    /// When intake's write took the payment for sending (`Recorded::alive_at_instant`,
    /// monotonic); good for the first round only (docs/architecture.md, step 3).
    pub(crate) taken_at_instant: Option<Instant>,
    /// When its last call without an answer was sent (or could have been, for a payment
    /// claimed or read back with an attempt), on the monotonic clock; None: no such call.
    /// That call may still be stored until `LATE_STORE_MAX_MS` after this (see `lookup`).
    pub(crate) unanswered_since_instant: Option<Instant>,
}

impl Job {
    /// A payment recorded by intake or claimed from a dead worker, as the store gave it.
    pub(crate) fn new(pending: Pending) -> Job {
        Job {
            pending,
            generation: 0,
            taken_at_instant: None,
            unanswered_since_instant: None,
        }
    }

    /// A payment claimed or read back with an attempt: a call of that attempt may have
    /// been sent as late as `at` and not answered yet.
    pub(crate) fn unanswered_since_instant(self, at: Instant) -> Job {
        Job {
            unanswered_since_instant: Some(at),
            ..self
        }
    }

    /// A payment intake recorded for sending in one write stamped at `alive_at_instant`.
    pub(crate) fn taken(pending: Pending, alive_at_instant: Instant) -> Job {
        Job {
            taken_at_instant: Some(alive_at_instant),
            ..Job::new(pending)
        }
    }

    pub(crate) fn id(&self) -> Uuid {
        self.pending.payment.correlation_id
    }
}

/// Where a payment returns to its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Before what waits there: it is older, and it is the next probe
    /// (docs/architecture.md, step 4).
    Front,
    /// Behind everything: a payment that must not hold up the others.
    Back,
}

/// The waiting payments, by where they may go. The planner takes from these.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    /// Payments free to go anywhere.
    pub anywhere: VecDeque<Job>,
    /// Payments pinned to the default, the fallback.
    pinned: [VecDeque<Job>; 2],
}

impl Lanes {
    /// The lane of the payments pinned to `processor`.
    pub(crate) fn pinned_to(&mut self, processor: Processor) -> &mut VecDeque<Job> {
        &mut self.pinned[processor.index()]
    }

    fn of(&mut self, destination: Destination) -> &mut VecDeque<Job> {
        match destination {
            Destination::PinnedTo(processor) => self.pinned_to(processor),
            Destination::Anywhere => &mut self.anywhere,
        }
    }

    pub(crate) fn put(&mut self, job: Job, place: Place) {
        let lane = self.of(job.pending.destination);
        match place {
            Place::Front => lane.push_front(job),
            Place::Back => lane.push_back(job),
        }
    }

    /// Removes the waiting copies of a payment (rare: a payment claimed back).
    fn remove(&mut self, id: Uuid) {
        let [default, fallback] = &mut self.pinned;
        for lane in [&mut self.anywhere, default, fallback] {
            lane.retain(|job| job.id() != id);
        }
    }
}

#[derive(Default)]
struct State {
    lanes: Lanes,
    /// Every payment in this worker's hands (waiting or in flight) and its current generation.
    generations: HashMap<Uuid, u64>,
    last_generation: u64,
    /// Payments set aside to join later ([`Held::push_replacing_after`]), not yet pushed:
    /// how many copies of each.
    set_aside: HashMap<Uuid, usize>,
    /// The sum of `set_aside`'s counts.
    set_aside_total: usize,
}

/// What [`Held::push`] does with a payment this worker already holds.
#[derive(Clone, Copy)]
enum IfHeld {
    /// The new copy wins (a claim carries the attempt as stored).
    Replace,
    /// The held copy is the current one.
    Keep,
}

impl State {
    /// False for a copy replaced by a newer one (see [`Held::push_replacing`]).
    fn is_current(&self, job: &Job) -> bool {
        self.generations.get(&job.id()) == Some(&job.generation)
    }

    /// In hand (waiting or in flight) or set aside to join later.
    fn holds(&self, id: &Uuid) -> bool {
        self.generations.contains_key(id) || self.set_aside.contains_key(id)
    }

    fn set_aside(&mut self, id: Uuid) {
        *self.set_aside.entry(id).or_default() += 1;
        self.set_aside_total += 1;
    }

    fn unset_aside(&mut self, id: &Uuid) {
        if let Some(count) = self.set_aside.get_mut(id) {
            *count -= 1;
            if *count == 0 {
                self.set_aside.remove(id);
            }
            self.set_aside_total -= 1;
        }
    }

    /// Adds each job under a new generation; a payment already in hand is replaced or kept
    /// as `if_held` says (one set aside counts as in hand for [`IfHeld::Keep`]). Returns how
    /// many payments were not in hand.
    fn push(&mut self, jobs: impl IntoIterator<Item = Job>, if_held: IfHeld) -> usize {
        let mut count = 0;
        for mut job in jobs {
            let id = job.id();
            match if_held {
                IfHeld::Keep if self.holds(&id) => continue,
                IfHeld::Replace if self.generations.contains_key(&id) => self.lanes.remove(id),
                _ => count += 1,
            }
            self.last_generation += 1;
            job.generation = self.last_generation;
            self.generations.insert(id, job.generation);
            self.lanes.put(job, Place::Back);
        }
        count
    }
}

/// The payments one worker holds (in memory): waiting in lanes, in a call, or set aside.
pub(crate) struct Held {
    state: Mutex<State>,
    /// `DISPATCH_QUEUE_MAX`: see [`Held::room`].
    capacity: usize,
    wake: Notify,
}

impl Held {
    /// None held yet, at most `capacity` payments (`DISPATCH_QUEUE_MAX`).
    pub(crate) fn new(capacity: usize) -> Held {
        Held {
            state: Mutex::new(State::default()),
            capacity,
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain deques and a map; a panic elsewhere cannot leave them half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the waiting payments, under the lock.
    pub(crate) fn with_lanes<T>(&self, f: impl FnOnce(&mut Lanes) -> T) -> T {
        f(&mut self.lock().lanes)
    }

    /// Resolves at the next change worth a new round (a push, a put back, a payment done).
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Adds payments claimed from a dead worker. A payment this worker still holds can
    /// come back in a claim: it lost the payment to another worker (its heartbeat stalled),
    /// that worker died, and this one claimed it back. The claimed copy carries the attempt
    /// as stored (maybe another processor, pinned), so it replaces the old one: a waiting
    /// old copy is removed, one in flight is dropped when its call ends.
    pub(crate) fn push_replacing(&self, jobs: impl IntoIterator<Item = Job>) {
        self.push(jobs, IfHeld::Replace);
    }

    /// Adds those of `jobs` this worker does not hold (waiting, in flight or set aside);
    /// returns how many. For payments just recorded, and for payments read back as ours after a write
    /// whose outcome we did not learn (see `crate::intake`): a copy already held is the
    /// current one, and replacing it (as [`Held::push_replacing`] does) could send a
    /// payment while its call is in flight.
    pub(crate) fn push_unheld(&self, jobs: impl IntoIterator<Item = Job>) -> usize {
        self.push(jobs, IfHeld::Keep)
    }

    /// [`Held::push_replacing`] once `wait` has passed (on the monotonic clock). Until then
    /// the jobs count in [`Held::room`]: without that, claims would see the room unchanged
    /// and take every orphan at once, past `DISPATCH_QUEUE_MAX`.
    pub(crate) fn push_replacing_after(self: &Arc<Self>, jobs: Vec<Job>, wait: Duration) {
        self.push_after(jobs, wait, IfHeld::Replace);
    }

    /// [`Held::push_unheld`] once `wait` has passed, counted in [`Held::room`] meanwhile.
    pub(crate) fn push_unheld_after(self: &Arc<Self>, jobs: Vec<Job>, wait: Duration) {
        self.push_after(jobs, wait, IfHeld::Keep);
    }

    fn push_after(self: &Arc<Self>, mut jobs: Vec<Job>, wait: Duration, if_held: IfHeld) {
        {
            let mut held = self.lock();
            if let IfHeld::Keep = if_held {
                jobs.retain(|job| !held.holds(&job.id()));
            }
            jobs.iter().for_each(|job| held.set_aside(job.id()));
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            // In one step: the room never overstates, and the copy is never unheld between.
            let mut held = queue.lock();
            jobs.iter().for_each(|job| held.unset_aside(&job.id()));
            held.push(jobs, if_held);
            drop(held);
            queue.wake.notify_one();
        });
    }

    fn push(&self, jobs: impl IntoIterator<Item = Job>, if_held: IfHeld) -> usize {
        let count = self.lock().push(jobs, if_held);
        self.wake.notify_one();
        count
    }

    /// Returns a payment taken by the dispatcher to its lane, unless a newer copy replaced
    /// it meanwhile.
    pub(crate) fn requeue(&self, job: Job, place: Place) {
        let mut held = self.lock();
        if held.is_current(&job) {
            held.lanes.put(job, place);
        }
        drop(held);
        self.wake.notify_one();
    }

    /// How many more payments fit under the capacity (waiting, in flight and set aside to
    /// join later count alike).
    pub(crate) fn room(&self) -> usize {
        let held = self.lock();
        let in_any_form = held.generations.len() + held.set_aside_total;
        self.capacity.saturating_sub(in_any_form)
    }

    /// `DISPATCH_QUEUE_MAX`.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Payments in this worker's hands: waiting or in flight (not those set aside).
    pub(crate) fn count(&self) -> usize {
        self.lock().generations.len()
    }

    /// Payments free to go anywhere that wait (not in flight).
    pub(crate) fn waiting_anywhere(&self) -> usize {
        self.lock().lanes.anywhere.len()
    }

    /// Payments waiting (not in flight) that may only go to the default, the fallback.
    pub(crate) fn pinned_waiting(&self) -> [usize; 2] {
        let held = self.lock();
        held.lanes.pinned.each_ref().map(VecDeque::len)
    }

    /// A payment is no longer held (processed, or no longer this worker's to send).
    /// A replaced copy leaves nothing: the payment stays in hand as its newer copy.
    pub(crate) fn done(&self, job: &Job) {
        let mut held = self.lock();
        if held.is_current(job) {
            held.generations.remove(&job.id());
        }
        drop(held);
        self.wake.notify_one();
    }
}

#[cfg(test)]
pub(crate) mod tests;
