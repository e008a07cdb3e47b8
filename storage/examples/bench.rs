//! Storage benchmark (not a test): how many rows per second the batching writer records,
//! from one process and from two processes on the same file, and how long a summary for a
//! 15-second window takes at 100k and 1M rows.
//!
//! ```sh
//! cargo run --release -p storage --example bench
//! ```
//! Prints the figures and writes them to `bench/results/storage-bench.txt`. For the
//! two-process runs it starts itself twice with `child <db> <first-id> <tasks> <batch> <rows>`.

use payment::intake::Accepted;
use payment::{Cents, Millis, Payment, Processor, Uuid};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::{Attempt, Store, StoreConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Concurrent async callers, like the api's intake and dispatch tasks.
const TASKS: u64 = 256;
/// Rows each writer run records.
const WRITE_ROWS: u64 = 256_000;
/// Summary queries per measurement.
const SUMMARY_QUERIES: usize = 200;
/// Payments per second in the synthetic history: the contest's average (16,750 in 60 s).
const HISTORY_RATE_PER_S: i64 = 280;
const WINDOW_MS: i64 = 15_000;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]).await;
    }
    let mut report = String::new();
    let mut line = |text: String| {
        println!("{text}");
        let _ = writeln!(report, "{text}");
    };
    line(format!(
        "storage bench, {} (git {}), {} cores, load average at start {}",
        Millis::now(),
        git_head(),
        cores(),
        load_average()
    ));
    line(format!(
        "writer: {TASKS} concurrent async callers, {WRITE_ROWS} rows per process per run"
    ));
    for batch in [1, 256] {
        for processes in [1, 2] {
            let f = write_run(processes, batch).await?;
            line(format!(
                "  {processes} process(es), {batch:>3} payment(s) per call: {:>7.0} rows/s, {:>5.1} us CPU per row",
                f.rows_per_s, f.cpu_us_per_row
            ));
        }
    }
    line(format!(
        "summary, {} ms window over a history of {HISTORY_RATE_PER_S} processed payments/s ({} rows per window), {SUMMARY_QUERIES} queries at random windows:",
        WINDOW_MS,
        HISTORY_RATE_PER_S * WINDOW_MS / 1000
    ));
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path().join("summary.db"), "bench"))?;
    let mut filled = 0;
    for rows in [100_000, 1_000_000] {
        fill_processed(&store, filled, rows).await?;
        filled = rows;
        let (median, p99) = summary_latency(&store, rows).await?;
        line(format!(
            "  {rows:>9} rows: median {:>7.3} ms, p99 {:>7.3} ms",
            ms(median),
            ms(p99)
        ));
    }
    let start = Instant::now();
    store.summary(None, None).await?;
    line(format!(
        "  (for scale: no window at {filled} rows: {:.1} ms)",
        ms(start.elapsed())
    ));
    store.close().await;

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?;
    let out = workspace.join("bench/results/storage-bench.txt");
    std::fs::create_dir_all(out.parent().ok_or("no parent")?)?;
    std::fs::write(&out, report)?;
    println!("written to {}", out.display());
    Ok(())
}

/// Records WRITE_ROWS pending payments per process from `processes` processes at once, on a
/// fresh file; returns rows/s over all of them.
async fn write_run(processes: u64, batch: u64) -> Result<WriteFigures, Error> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("write.db");
    // Schema first, so the children start writing at once.
    Store::open(StoreConfig::new(&db, "setup"))?.close().await;
    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..processes)
        .map(|p| {
            Command::new(&exe)
                .args([
                    "child",
                    &db.to_string_lossy(),
                    &(p * WRITE_ROWS).to_string(),
                ])
                .args([TASKS.to_string(), batch.to_string(), WRITE_ROWS.to_string()])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    // Each child prints `<start-ms> <end-ms> <cpu-ms>`; rows/s over the union of the spans.
    let mut spans = Vec::new();
    let mut cpu = 0.0;
    for child in children {
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err("a bench child failed".into());
        }
        let text = String::from_utf8(output.stdout)?;
        let fields: Vec<f64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [start, end, child_cpu] = fields[..] else {
            return Err("child output".into());
        };
        spans.push((start, end));
        cpu += child_cpu;
    }
    let start = spans.iter().map(|s| s.0).fold(f64::MAX, f64::min);
    let end = spans.iter().map(|s| s.1).fold(0.0, f64::max);
    let rows = (processes * WRITE_ROWS) as f64;
    Ok(WriteFigures {
        rows_per_s: rows / ((end - start) / 1000.0),
        cpu_us_per_row: cpu * 1000.0 / rows,
    })
}

struct WriteFigures {
    rows_per_s: f64,
    /// CPU time (user + system) of the writing processes per row: what the figure would
    /// be bounded by on an idle machine, whatever else shares this one.
    cpu_us_per_row: f64,
}

async fn child(args: &[String]) -> Result<(), Error> {
    let arg =
        |i: usize| -> Result<u64, Error> { Ok(args.get(i).ok_or("missing argument")?.parse()?) };
    let db = args.first().ok_or("missing db")?;
    let (first, tasks, batch, rows) = (arg(1)?, arg(2)?, arg(3)?, arg(4)?);
    let store = Store::open(StoreConfig::new(db, format!("bench-{first}")))?;
    let per_task = rows / tasks;
    let start = epoch_ms();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let base = first + t * per_task;
            tokio::spawn(async move {
                for chunk in (base..base + per_task).step_by(batch as usize) {
                    let calls = (chunk..(chunk + batch).min(base + per_task))
                        .map(accepted)
                        .collect();
                    store.record_pending(calls).await?;
                }
                Ok::<(), storage::StorageError>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await??;
    }
    let end = epoch_ms();
    store.close().await;
    println!("{start} {end} {}", cpu_ms());
    Ok(())
}

/// Adds processed payments `from..to`, requested at HISTORY_RATE_PER_S from a fixed epoch.
async fn fill_processed(store: &Store, from: u64, to: u64) -> Result<(), Error> {
    let ids: Vec<u64> = (from..to).collect();
    for chunk in ids.chunks(10_000) {
        let rows = chunk
            .iter()
            .map(|&n| {
                let processor = if n % 10 == 0 {
                    Processor::Fallback
                } else {
                    Processor::Default
                };
                (
                    payment(n),
                    Attempt {
                        processor,
                        requested_at: history_time(n),
                    },
                )
            })
            .collect();
        store.mark_processed(rows).await?;
    }
    Ok(())
}

async fn summary_latency(store: &Store, rows: u64) -> Result<(Duration, Duration), Error> {
    let span = history_time(rows).0 - history_time(0).0 - WINDOW_MS;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut times = Vec::with_capacity(SUMMARY_QUERIES);
    for _ in 0..SUMMARY_QUERIES {
        // xorshift: random windows without a dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let from = history_time(0).0 + (seed % span as u64) as i64;
        let start = Instant::now();
        let summary = store
            .summary(Some(Millis(from)), Some(Millis(from + WINDOW_MS)))
            .await?;
        times.push(start.elapsed());
        if summary.default.requests + summary.fallback.requests == 0 {
            return Err("a window inside the history came back empty".into());
        }
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 99 / 100]))
}

fn history_time(n: u64) -> Millis {
    Millis(1_752_000_000_000 + n as i64 * 1000 / HISTORY_RATE_PER_S)
}

/// Ids spread over the key space like random v4 uuids (multiplying by an odd constant is a
/// bijection), so the primary-key index is written all over as in production.
fn payment(n: u64) -> Payment {
    let id = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    Payment {
        correlation_id: Uuid::from_u128(id),
        amount: Cents(1990),
    }
}

fn accepted(n: u64) -> Accepted {
    Accepted {
        payment: payment(n),
        accepted_at: Millis::now(),
    }
}

fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time this process used so far (user + system), in ms.
fn cpu_ms() -> f64 {
    // SAFETY: getrusage fills the struct we own; zeroed is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The machine may be shared (other builds, other benchmarks): say how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |s| s.split(' ').take(3).collect::<Vec<_>>().join(" "),
    )
}

fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".into(), |s| s.trim().to_string())
}
