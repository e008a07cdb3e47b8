//! The slice the lb's threads ask of the kernel (`LB_SLICE_US`): every thread of the
//! running lb has it, and 0 leaves the kernel's own. Read from `/proc/<pid>/task/*/sched`
//! (`se.slice`, in ns); a kernel without per-task slices (before 6.12) has no such line
//! there, and the tests say so and pass.

mod common;

use common::Lb;
use lb::config as lb_env;
use testkit::SilentAddr;

/// `se.slice` of every thread of `pid`, in ns; `None` if this kernel does not show it.
fn slices(pid: i32) -> Option<Vec<u64>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the lb's threads");
    let mut found = Vec::new();
    for task in tasks {
        let sched = std::fs::read_to_string(task.expect("a thread").path().join("sched"))
            .expect("a thread's scheduler figures");
        let line = sched.lines().find(|line| line.starts_with("se.slice"))?;
        let value = line.rsplit(':').next().expect("`name : value`").trim();
        found.push(value.parse().expect("a slice in ns"));
    }
    Some(found)
}

/// An lb without workers, with `LB_SLICE_US` at `slice`.
fn lb_with_slice(slice: &str, nowhere: &SilentAddr) -> Lb {
    Lb::start_without_workers(nowhere, &[(lb_env::LB_SLICE_US, slice)])
}

#[test]
fn every_thread_of_the_lb_runs_with_the_slice_it_asked_for() {
    let nowhere = SilentAddr::bind();
    let lb = lb_with_slice("250", &nowhere);
    assert_eq!(lb.pay(), 202, "the lb answers");
    let Some(slices) = slices(lb.service.pid()) else {
        eprintln!("this kernel shows no per-task slice: nothing to check");
        return;
    };
    assert!(slices.len() > 1, "the lb runs several threads: {slices:?}");
    assert!(
        slices.iter().all(|&ns| ns == 250_000),
        "every thread at 250 µs: {slices:?}"
    );
}

#[test]
fn a_slice_of_0_leaves_the_kernels_own() {
    let nowhere = SilentAddr::bind();
    let own = slices(std::process::id() as i32);
    let lb = lb_with_slice("0", &nowhere);
    assert_eq!(lb.pay(), 202, "the lb answers");
    let (Some(own), Some(slices)) = (own, slices(lb.service.pid())) else {
        eprintln!("this kernel shows no per-task slice: nothing to check");
        return;
    };
    // This test's own threads never asked for one: the kernel's default.
    assert!(
        slices.iter().all(|&ns| ns == own[0]),
        "the lb's threads at the kernel's default {} ns: {slices:?}",
        own[0]
    );
}
