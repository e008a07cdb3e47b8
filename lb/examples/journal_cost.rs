//! What the journal costs per payment on the 202 path and in the forwarder: records and
//! retires `JOURNAL_COST_PAYMENTS` payments (1,000,000) in a journal of the default size
//! in a temporary directory (`TMPDIR`; put it on the data volume's filesystem to measure
//! that), in batches of 256 as the forwarder retires them. Prints the CPU time per
//! payment (this thread's, so writeback by the kernel is not in it) and the wall time,
//! and writes them to `JOURNAL_COST_OUT` (bench/results/latest-journal-cost.txt; the figure in bench/RESULTS.md's journal section is in bench/results/journal-cost.txt).
//!
//! `cargo run --release -p lb --example journal_cost`

use lb::journal::Journal;
use payment::intake::Accepted;
use payment::{Cents, Millis, Payment, Uuid};
use std::time::{Duration, Instant};

const BATCH: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let payments: usize = std::env::var("JOURNAL_COST_PAYMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let out = std::env::var("JOURNAL_COST_OUT")
        .unwrap_or_else(|_| "bench/results/latest-journal-cost.txt".to_string());
    let dir = tempfile::tempdir()?;
    let (journal, _) = Journal::open(&dir.path().join("lb.journal"), 65_536 + 2 * BATCH)?;
    let accepted: Vec<Accepted> = (0..BATCH)
        .map(|i| Accepted {
            payment: Payment {
                correlation_id: Uuid::new_v4(),
                amount: Cents(1990),
            },
            accepted_at: Millis(i as i64),
        })
        .collect();
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut seqs = Vec::with_capacity(BATCH);
    for _ in 0..payments / BATCH {
        seqs.extend(
            accepted
                .iter()
                .map(|a| journal.record(a).expect("a free slot")),
        );
        seqs.drain(..).for_each(|s| journal.retire(s));
    }
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    let done = (payments / BATCH * BATCH) as f64;
    let report = format!(
        "journal: {done} payments recorded and retired; CPU {:.3} µs per payment, wall {:.3} µs per payment; 40 bytes per payment in the mapping, no system call\n",
        cpu.as_secs_f64() * 1e6 / done,
        wall.as_secs_f64() * 1e6 / done,
    );
    print!("{report}");
    if let Some(parent) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, report)?;
    Ok(())
}

/// CPU time of this thread so far.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
