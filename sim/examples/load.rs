//! A bounded load generator for `sim`'s `POST /payments`: N keep-alive connections send M
//! payments with fresh correlation ids as fast as the simulator answers (closed loop), then
//! prints payments/s and latency percentiles and writes them to a file.
//!
//! ```sh
//! cargo build --release -p sim --bins --examples
//! SIM_LISTEN=127.0.0.1:8001 SIM_THREADS=1 taskset -c 0 target/release/sim &
//! taskset -c 1 target/release/examples/load --addr 127.0.0.1:8001 --connections 64 --payments 200000
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use payment::{Millis, Uuid};
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    addr: String,
    connections: usize,
    payments: usize,
    out: String,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        addr: "127.0.0.1:8001".into(),
        connections: 64,
        payments: 200_000,
        out: "bench/results/sim-throughput.txt".into(),
    };
    let mut rest = std::env::args().skip(1);
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--connections" => args.connections = value.parse()?,
            "--payments" => args.payments = value.parse()?,
            "--out" => args.out = value,
            _ => {
                return Err(format!(
                    "unknown flag {flag}; flags: --addr --connections --payments --out"
                )
                .into())
            }
        }
    }
    if args.connections == 0 || args.payments == 0 {
        return Err("--connections and --payments must be at least 1".into());
    }
    Ok(args)
}

/// What one connection saw: the latency of every answered payment and the failures.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: usize,
}

/// Sends payments on one keep-alive connection until `next` passes `total`.
async fn connection(addr: String, next: Arc<AtomicUsize>, total: usize) -> Result<Tally, BoxError> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut tally = Tally::default();
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let body = format!(
            r#"{{"correlationId":"{}","amount":19.90,"requestedAt":"{}"}}"#,
            Uuid::new_v4(),
            Millis::now()
        );
        let request = Request::post("/payments")
            .header("host", &addr)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let started = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        tally.latencies.push(started.elapsed());
        if status != StatusCode::OK {
            tally.failures += 1;
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let tallies = runtime.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(connection(args.addr.clone(), next.clone(), args.payments)))
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await??);
        }
        Ok::<_, BoxError>(tallies)
    })?;
    let elapsed = started.elapsed();

    let failures: usize = tallies.iter().map(|t| t.failures).sum();
    let mut latencies: Vec<Duration> = tallies.into_iter().flat_map(|t| t.latencies).collect();
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let report = format!(
        "load command: {}\n\
         sim POST /payments, delay 0: {} payments over {} keep-alive connections in {:.2} s\n\
         throughput: {rate:.0} payments/s\n\
         latency ms: p50 {:.3}, p99 {:.3}, max {:.3}\n\
         non-200 answers: {failures}\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        latencies.len(),
        args.connections,
        elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    print!("{report}");
    std::fs::write(&args.out, report).map_err(|e| format!("cannot write {}: {e}", args.out))?;
    if failures > 0 {
        return Err(format!("{failures} payments were not answered 200").into());
    }
    Ok(())
}
