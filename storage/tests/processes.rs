//! Several OS processes on one database, as the api workers run in production: each child
//! is `examples/writer.rs` with its own writer thread, and reports on stdout what it saw
//! committed. `cargo test -p storage` builds the example first. Every test runs against
//! SQLite and PostgreSQL with [`WORKERS`] processes: the contest's two, plus one, so that
//! "any number of workers" is more than a pair.

mod common;

use common::{accepted, id, on_both, Backend, Db};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;
use testkit::Service;

const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
const WORKERS: u64 = 3;

on_both!(
    processes_writing_disjoint_and_overlapping_ids_all_succeed,
    writers_killed_mid_batch_lose_nothing_they_reported_committed,
    processes_hammering_the_health_budget_get_one_turn_per_window,
    processes_claiming_orphans_never_share_a_payment,
);

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
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    });
    Child { service, lines }
}

/// Waits for a child to finish on its own; returns its stdout lines, panics if it failed.
fn finish(mut child: Child) -> Vec<String> {
    let code = child.service.wait_exit(CHILD_TIMEOUT);
    let lines = child.lines.join().expect("stdout reader");
    assert_eq!(
        code,
        Some(0),
        "a writer child failed (its stderr is above); it printed {:?}",
        lines.last()
    );
    lines
}

fn values<'a>(lines: &'a [String], tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    lines
        .iter()
        .filter_map(move |l| l.strip_prefix(tag)?.strip_prefix(' '))
}

fn all_ids(db: &Db) -> HashSet<String> {
    db.query("SELECT correlation_id FROM payments")
        .into_iter()
        .collect()
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn processes_writing_disjoint_and_overlapping_ids_all_succeed(db: Db) {
    let url = db.arg();
    // Worker w records ids 10000w..10000w+20000, so each range overlaps the next by half;
    // the first one per call from 64 tasks, the others in batches of 100.
    let children: Vec<Child> = (0..WORKERS)
        .map(|w| {
            let (owner, first) = (format!("w{w}"), (w * 10_000).to_string());
            let (batch, tasks) = if w == 0 { ("1", "64") } else { ("100", "4") };
            start(&["record", &url, &owner, &first, "20000", batch, tasks])
        })
        .collect();
    let outputs: Vec<Vec<String>> = children.into_iter().map(finish).collect();

    let total = (WORKERS + 1) * 10_000;
    let new: usize = outputs
        .iter()
        .flat_map(|lines| values(lines, "done"))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        new as u64, total,
        "each id is new for exactly one of the workers"
    );
    assert_eq!(db.count("SELECT count(*) FROM payments") as u64, total);
    let ids = all_ids(&db);
    assert!((0..total).all(|n| ids.contains(&id(n).to_string())));
    // Every row keeps the worker that wrote it first as its owner.
    let owned = db.count("SELECT count(*) FROM payments WHERE owner IN ('w0', 'w1', 'w2')");
    assert_eq!(owned as u64, total);
}

/// `WORKERS` writers recording without end, worker `w` from id `(first + w) * 10M` on,
/// and their stdout lines as they come.
struct Victims {
    children: Vec<(Service, Box<dyn Iterator<Item = String>>)>,
}

impl Victims {
    fn start(url: &str, first: u64) -> Victims {
        let children = (0..WORKERS)
            .map(|w| {
                let first = ((first + w) * 10_000_000).to_string();
                let mut cmd = Command::new(testkit::example("writer"));
                cmd.args([
                    "record",
                    url,
                    &format!("victim{w}"),
                    &first,
                    "9000000",
                    "50",
                    "8",
                ]);
                let (child, stdout) = Service::start_piped("writer", cmd);
                let lines: Box<dyn Iterator<Item = String>> =
                    Box::new(BufReader::new(stdout).lines().map_while(Result::ok));
                (child, lines)
            })
            .collect();
        Victims { children }
    }

    /// Waits until each has reported `batches` batches committed (with eight more in flight).
    fn wait_for(&mut self, batches: usize) -> Vec<String> {
        self.children
            .iter_mut()
            .flat_map(|(_, lines)| lines.by_ref().take(batches).collect::<Vec<_>>())
            .collect()
    }

    /// The rest of their lines, once they are killed or failing (then waited for).
    fn rest(self) -> Vec<String> {
        let mut rest = Vec::new();
        for (mut child, lines) in self.children {
            rest.extend(lines);
            if child.is_running() {
                child.wait_exit(CHILD_TIMEOUT);
            }
        }
        rest
    }
}

/// The id ranges the writers reported committed.
fn committed_ranges(lines: &[String]) -> Vec<(u64, u64)> {
    values(lines, "committed")
        .map(|l| {
            let (start, end) = l.split_once(' ').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect()
}

/// How many ids of `ranges` are not in `ids`.
fn missing(ranges: &[(u64, u64)], ids: &HashSet<String>) -> usize {
    ranges
        .iter()
        .flat_map(|&(s, e)| s..e)
        .filter(|&n| !ids.contains(&id(n).to_string()))
        .count()
}

fn writers_killed_mid_batch_lose_nothing_they_reported_committed(db: Db) {
    let url = db.arg();
    let mut committed: Vec<(u64, u64)> = Vec::new();
    for round in 0..3u64 {
        // WORKERS victims at once, each on its own ids, SIGKILLed together mid-batch.
        let mut victims = Victims::start(&url, round * WORKERS);
        let mut seen = victims.wait_for(200 * (round as usize + 1));
        for (child, _) in &mut victims.children {
            assert!(
                child.is_running(),
                "every writer should still be busy when killed"
            );
            child.kill();
        }
        seen.extend(victims.rest());
        let reported = committed_ranges(&seen);
        assert!(
            reported.len() as u64 >= 200 * WORKERS,
            "round {round}: a writer died on its own: {:?}",
            seen.last()
        );
        committed.extend(reported);

        if db.backend == Backend::Sqlite {
            assert_eq!(db.query("PRAGMA integrity_check"), ["ok"]);
        }
        assert_eq!(
            missing(&committed, &all_ids(&db)),
            0,
            "round {round}: payments reported committed are missing"
        );
    }
    // And it reopens through the normal path, with every reported payment pending.
    block_on(async {
        let store = db.open("after");
        assert!(store.pending_count().await.unwrap() >= committed.len() as i64 * 50);
        store.close().await;
    });
}

fn processes_hammering_the_health_budget_get_one_turn_per_window(db: Db) {
    let url = db.arg();
    // Created first so all children find the schema ready and start hammering at once.
    block_on(async { db.open("setup").close().await });
    let children: Vec<Child> = (0..WORKERS)
        .map(|w| start(&["turns", &url, &format!("w{w}"), "default", "200", "2000"]))
        .collect();
    let mut turns: Vec<i64> = children
        .into_iter()
        .flat_map(|c| {
            finish(c)
                .into_iter()
                .filter_map(|l| l.strip_prefix("turn ")?.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    turns.sort();
    assert!(
        turns.len() >= 2,
        "2 s of hammering with a 200 ms window should give several turns: {turns:?}"
    );
    for pair in turns.windows(2) {
        assert!(
            pair[1] - pair[0] >= 200,
            "two turns within one window: {turns:?}"
        );
    }
}

fn processes_claiming_orphans_never_share_a_payment(db: Db) {
    let url = db.arg();
    block_on(async {
        let gone = db.open("gone");
        gone.record_pending((0..3_000).map(|n| accepted(n, 1990, 0)).collect())
            .await
            .unwrap();
        gone.close().await;
    });
    let children: Vec<Child> = (0..WORKERS)
        .map(|w| start(&["claim", &url, &format!("w{w}"), "25"]))
        .collect();
    let claimed: Vec<Vec<String>> = children
        .into_iter()
        .map(|c| values(&finish(c), "claimed").map(str::to_string).collect())
        .collect();
    let all: Vec<&String> = claimed.iter().flatten().collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "two claims got the same payment");
    assert_eq!(distinct.len(), 3_000);
}

/// PostgreSQL only: the server itself dies (SIGKILL to it and all its backends) while
/// three workers write; after its restart, every payment a worker was told is committed is
/// there. (The OS page cache survives, so this checks that a commit is acknowledged only
/// once in the server's WAL, not the disk's own flush, which `synchronous_commit` leaves on.)
#[test]
fn postgres_a_server_killed_mid_batch_loses_nothing_it_acknowledged() {
    testkit::skip_without_postgres!();
    let mut server = common::pg::PgServer::dedicated();
    let url = server.create_database();
    let name = url.rsplit('/').next().unwrap().to_string();
    let mut victims = Victims::start(&url, 0);
    let mut seen = victims.wait_for(200);
    server.crash_and_restart();
    // The workers fail on the lost connection and exit; what they reported stands.
    seen.extend(victims.rest());
    let reported = committed_ranges(&seen);
    assert!(
        reported.len() as u64 >= 200 * WORKERS,
        "the workers should have committed before the crash"
    );
    let ids: HashSet<String> = server
        .psql(&name, "SELECT correlation_id FROM payments")
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        missing(&reported, &ids),
        0,
        "payments acknowledged before the crash are missing after it"
    );
}
