//! The planner's table: what a round sends in each routing situation.

use super::*;
use crate::held::tests::pending;
use crate::held::Place;
use storage::Destination::{self, *};
use Access::*;
use Processor::*;

const ALL: usize = usize::MAX;

const fn view(access: [Option<Access>; 2], free: [usize; 2], wanted: [bool; 2]) -> View {
    View {
        access,
        room: [ALL, ALL],
        free,
        wanted,
    }
}

/// Both processors up, the default takes everything.
const UP: View = view([Some(Open), Some(Open)], [ALL, 0], [false, false]);
/// The default failing, its probe due; the fallback up but not used yet.
const DEFAULT_DOWN: View = view([Some(Probe), Some(Open)], [0, 0], [true, false]);
/// As [`DEFAULT_DOWN`], with the default's probe in flight.
const DEFAULT_PROBING: View = view([None, Some(Open)], [0, 0], [true, false]);
/// The default failing for longer than `FALLBACK_AFTER_MS`, the fallback up.
const FALLBACK_ALLOWED: View = view([Some(Probe), Some(Open)], [0, ALL], [true, false]);
/// As [`FALLBACK_ALLOWED`], with the default's probe in flight.
const FALLBACK_ALLOWED_PROBING: View = view([None, Some(Open)], [0, ALL], [true, false]);
/// Both failing, the fallback wanted: probes due at both.
const BOTH_DOWN: View = view([Some(Probe), Some(Probe)], [0, 0], [true, true]);
/// The default with room for 2 more calls, 1 payment beyond them to the fallback.
const OVERFLOWING: View = View {
    room: [2, ALL],
    ..view([Some(Open), Some(Open)], [ALL, 1], [false, false])
};

/// Lanes holding payments numbered in order, with these destinations.
fn lanes(destinations: &[Destination]) -> Lanes {
    let mut lanes = Lanes::default();
    for (id, destination) in (1..).zip(destinations) {
        lanes.put(Job::new(pending(id, *destination)), Place::Back);
    }
    lanes
}

/// The payments left waiting, anywhere first, then pinned to the default, the fallback.
fn left(lanes: &mut Lanes) -> Vec<u128> {
    let mut ids: Vec<u128> = lanes.anywhere.iter().map(|j| j.id().as_u128()).collect();
    for processor in Processor::ALL {
        ids.extend(lanes.pinned_to(processor).iter().map(|j| j.id().as_u128()));
    }
    ids
}

type Row = (
    &'static str,
    &'static [Destination],
    View,
    usize,
    &'static [(u128, Processor, Access)],
    &'static [u128],
);

#[test]
fn what_a_round_sends() {
    #[rustfmt::skip]
    let table: [Row; 17] = [
        // (situation, waiting payments 1.., view, free permits, calls (payment, to, access), left)
        ("healthy: everything to the default",
            &[Anywhere, Anywhere], UP, 8, &[(1, Default, Open), (2, Default, Open)], &[]),
        ("no more calls than permits",
            &[Anywhere, Anywhere, Anywhere], UP, 2, &[(1, Default, Open), (2, Default, Open)], &[3]),
        ("no permit, no call",
            &[Anywhere, PinnedTo(Default)], UP, 0, &[], &[1, 2]),
        ("pinned payments go first, each to its processor",
            &[Anywhere, PinnedTo(Fallback), PinnedTo(Default)], UP, 2,
            &[(3, Default, Open), (2, Fallback, Open)], &[1]),
        ("a down default is probed with one payment, the others wait",
            &[Anywhere, Anywhere, Anywhere], DEFAULT_DOWN, 8, &[(1, Default, Probe)], &[2, 3]),
        ("its probe in flight: nothing for the default, a fallback pin still goes",
            &[Anywhere, PinnedTo(Default), PinnedTo(Fallback)], DEFAULT_PROBING, 8,
            &[(3, Fallback, Open)], &[1, 2]),
        ("a pinned payment is the probe before a free one",
            &[Anywhere, PinnedTo(Default), PinnedTo(Default)], DEFAULT_DOWN, 8,
            &[(2, Default, Probe)], &[1, 3]),
        ("a long outage: free payments to the fallback, pins still probe the default",
            &[Anywhere, PinnedTo(Default), Anywhere, PinnedTo(Default)], FALLBACK_ALLOWED, 8,
            &[(2, Default, Probe), (1, Fallback, Open), (3, Fallback, Open)], &[4]),
        ("the fallback allowed, the default's probe in flight: its pin waits",
            &[Anywhere, PinnedTo(Default)], FALLBACK_ALLOWED_PROBING, 8,
            &[(1, Fallback, Open)], &[2]),
        ("a long outage, nothing pinned: the newest free payment probes the default, the rest to the fallback",
            &[Anywhere, Anywhere, Anywhere], FALLBACK_ALLOWED, 8,
            &[(3, Default, Probe), (1, Fallback, Open), (2, Fallback, Open)], &[]),
        ("a long outage, one payment waiting: the fallback takes it, no probe",
            &[Anywhere], FALLBACK_ALLOWED, 8, &[(1, Fallback, Open)], &[]),
        ("the default's room, then what overflows, to the fallback",
            &[Anywhere, Anywhere, Anywhere, Anywhere, Anywhere], OVERFLOWING, 8,
            &[(1, Default, Open), (2, Default, Open), (3, Fallback, Open)], &[4, 5]),
        ("a full default takes even no pinned payment",
            &[PinnedTo(Default), Anywhere], View { room: [0, ALL], ..UP }, 8, &[], &[2, 1]),
        ("both down: one probe each, with free payments",
            &[Anywhere, Anywhere, Anywhere], BOTH_DOWN, 8,
            &[(1, Default, Probe), (2, Fallback, Probe)], &[3]),
        ("both down: the oldest free payment probes",
            &[Anywhere, Anywhere], view([Some(Probe), None], [0, 0], [true, false]), 8,
            &[(1, Default, Probe)], &[2]),
        ("both down, one payment: it probes the default, the fallback waits",
            &[Anywhere], BOTH_DOWN, 8, &[(1, Default, Probe)], &[]),
        ("both down, one permit: one probe",
            &[PinnedTo(Fallback), Anywhere], BOTH_DOWN, 1, &[(1, Fallback, Probe)], &[2]),
    ];
    for (situation, waiting, view, permits, want, want_left) in table {
        let mut lanes = lanes(waiting);
        let calls = plan(&mut lanes, &view, permits);
        let got: Vec<_> = calls
            .iter()
            .map(|c| (c.job.id().as_u128(), c.processor, c.access))
            .collect();
        assert_eq!(got, want, "{situation}: calls");
        assert_eq!(left(&mut lanes), want_left, "{situation}: left waiting");
    }
}
