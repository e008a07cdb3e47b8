//! Several OS processes on one database file, as the two api workers run in production:
//! each child is `examples/writer.rs` with its own writer thread, and reports on stdout
//! what it saw committed. `cargo test -p storage` builds the example first.

mod common;

use common::{accepted, count, db_path, id, open};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;
use testkit::Service;

const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `writer` child and the thread collecting its stdout lines.
struct Child {
    service: Service,
    lines: JoinHandle<Vec<String>>,
}

fn start(args: &[&str]) -> Child {
    let mut cmd = Command::new(testkit::example("writer"));
    cmd.args(args);
    let (service, stdout) = Service::start_piped("writer", cmd);
    // Read while it runs: a full pipe would stall the child.
    let lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect());
    Child { service, lines }
}

/// Waits for a child to finish on its own; returns its stdout lines, panics if it failed.
fn finish(mut child: Child) -> Vec<String> {
    let code = child.service.wait_exit(CHILD_TIMEOUT);
    let lines = child.lines.join().expect("stdout reader");
    assert_eq!(code, Some(0), "a writer child failed (its stderr is above); it printed {:?}", lines.last());
    lines
}

fn values<'a>(lines: &'a [String], tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    lines.iter().filter_map(move |l| l.strip_prefix(tag)?.strip_prefix(' '))
}

fn all_ids(path: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut query = conn.prepare("SELECT correlation_id FROM payments").unwrap();
    let ids = query.query_map([], |row| row.get(0)).unwrap();
    ids.collect::<Result<_, _>>().unwrap()
}

#[test]
fn two_processes_writing_disjoint_and_overlapping_ids_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = path.to_str().unwrap();
    // A: ids 0..20000 one per call from 64 tasks; B: ids 10000..30000 in batches of 100.
    let a = start(&["record", db, "a", "0", "20000", "1", "64"]);
    let b = start(&["record", db, "b", "10000", "20000", "100", "4"]);
    let (a, b) = (finish(a), finish(b));

    let new = |lines: &[String]| -> usize { values(lines, "done").map(|n| n.parse::<usize>().unwrap()).sum() };
    assert_eq!(new(&a) + new(&b), 30_000, "each id is new for exactly one of the two");
    assert_eq!(count(&path, "SELECT count(*) FROM payments"), 30_000);
    let ids = all_ids(&path);
    assert!((0..30_000).all(|n| ids.contains(&id(n).to_string())));
    // Rows only the other process could have written keep their writer as owner.
    let owners = |sql: &str| count(&path, sql);
    assert_eq!(owners("SELECT count(*) FROM payments WHERE owner = 'a'") + owners("SELECT count(*) FROM payments WHERE owner = 'b'"), 30_000);
}

#[test]
fn a_writer_killed_mid_batch_loses_nothing_it_reported_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = path.to_str().unwrap();
    let mut committed: Vec<(u64, u64)> = Vec::new();
    for round in 0..3u64 {
        let first = (round * 10_000_000).to_string();
        let mut cmd = Command::new(testkit::example("writer"));
        cmd.args(["record", db, "victim", &first, "9000000", "50", "8"]);
        let (mut child, stdout) = Service::start_piped("writer", cmd);
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        // Let it commit a few hundred batches, with eight more in flight, then pull the plug.
        let mut seen: Vec<String> = lines.by_ref().take(200 * (round as usize + 1)).collect();
        assert!(child.is_running(), "the writer should still be busy when killed");
        child.kill();
        seen.extend(lines);
        let reported: Vec<(u64, u64)> = values(&seen, "committed")
            .map(|l| {
                let (start, end) = l.split_once(' ').unwrap();
                (start.parse().unwrap(), end.parse().unwrap())
            })
            .collect();
        assert!(reported.len() >= 200, "round {round}: the writer died on its own: {:?}", seen.last());
        committed.extend(reported);

        let check = rusqlite::Connection::open(&path).unwrap();
        let integrity: String = check.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(integrity, "ok");
        drop(check);
        let ids = all_ids(&path);
        let missing = committed.iter().flat_map(|&(s, e)| s..e).filter(|&n| !ids.contains(&id(n).to_string())).count();
        assert_eq!(missing, 0, "round {round}: payments reported committed are missing");
    }
    // And it reopens through the normal path, with every reported payment pending.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = open(&path, "after");
        assert!(store.pending_count().await.unwrap() >= committed.len() as i64 * 50);
        store.close().await.unwrap();
    });
}

#[test]
fn two_processes_hammering_the_health_budget_get_one_turn_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = path.to_str().unwrap();
    // Created first so both children find the schema ready and start hammering at once.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async { open(&path, "setup").close().await }).unwrap();
    let children = [start(&["turns", db, "a", "default", "200", "2000"]), start(&["turns", db, "b", "default", "200", "2000"])];
    let mut turns: Vec<i64> = children
        .into_iter()
        .flat_map(|c| finish(c).into_iter().filter_map(|l| l.strip_prefix("turn ")?.parse().ok()).collect::<Vec<_>>())
        .collect();
    turns.sort();
    assert!(turns.len() >= 2, "2 s of hammering with a 200 ms window should give several turns: {turns:?}");
    for pair in turns.windows(2) {
        assert!(pair[1] - pair[0] >= 200, "two turns within one window: {turns:?}");
    }
}

#[test]
fn two_processes_claiming_orphans_never_share_a_payment() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let db = path.to_str().unwrap();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let gone = open(&path, "gone");
        gone.record_pending((0..3_000).map(|n| accepted(n, 1990, 0)).collect()).await.unwrap();
        gone.close().await.unwrap();
    });
    let children = [start(&["claim", db, "a", "25"]), start(&["claim", db, "b", "25"])];
    let claimed: Vec<Vec<String>> = children
        .into_iter()
        .map(|c| values(&finish(c), "claimed").map(str::to_string).collect())
        .collect();
    let (a, b): (HashSet<_>, HashSet<_>) = (claimed[0].iter().collect(), claimed[1].iter().collect());
    assert_eq!(a.len() + b.len(), claimed[0].len() + claimed[1].len(), "a process got a payment twice");
    assert!(a.is_disjoint(&b), "both processes claimed the same payment");
    assert_eq!(a.len() + b.len(), 3_000);
}
