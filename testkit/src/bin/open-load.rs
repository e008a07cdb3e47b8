//! `open-load`: an open-model load of `POST /payments` (a constant arrival rate, whatever
//! the answers' speed), for rates k6 cannot generate on this machine (why, and how to run
//! it: docs/operations.md, "make stress").
//!
//! Request `i` is due at `t0 + i / rate`. Every millisecond the due requests go out, each
//! on the longest-idle keep-alive connection (`--connections N` opened before the start),
//! or a new one up to `--max-connections`; beyond that the request is dropped and counted,
//! as k6 counts dropped iterations. Latency is taken from the write (as k6's
//! `http_req_duration`) and from the due time (which also counts the wait for a
//! connection).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{interval, sleep, timeout, MissedTickBehavior};

/// The contest's timeout for every request.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// After the last request is due, answers still on their way get this long.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
const USAGE: &str = "usage: open-load [--target http://HOST:PORT] [--rate N/s] [--secs N] \
                     [--connections N] [--max-connections N] [--amount X.YY] [--out FILE]";

struct Args {
    target: String,
    addr: SocketAddr,
    rate: u64,
    secs: u64,
    connections: usize,
    max_connections: usize,
    amount: String,
    out: Option<PathBuf>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut target = "http://127.0.0.1:9999".to_string();
    let (mut rate, mut secs, mut max_connections) = (1000u64, 10u64, 1024usize);
    let mut connections = 1usize;
    let (mut amount, mut out) = ("19.90".to_string(), None);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{what} must be a positive whole number, not {value:?}"))
        };
        match flag.as_str() {
            "--target" => target = value.clone(),
            "--rate" => rate = number("--rate")?,
            "--secs" => secs = number("--secs")?,
            "--connections" => connections = number("--connections")? as usize,
            "--max-connections" => max_connections = number("--max-connections")? as usize,
            "--amount" => amount = value.clone(),
            "--out" => out = Some(PathBuf::from(&value)),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    let addr = resolve(&target)?;
    Ok(Args {
        target,
        addr,
        rate,
        secs,
        connections,
        max_connections: max_connections.max(connections),
        amount,
        out,
    })
}

/// `http://host:port[/...]` to a socket address (plain HTTP only: the path is always /payments).
fn resolve(target: &str) -> Result<SocketAddr, String> {
    let rest = target
        .strip_prefix("http://")
        .ok_or_else(|| format!("--target must start with http://, not {target:?}"))?;
    let host_port = rest.split('/').next().unwrap_or(rest);
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("--target {target:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--target {target:?} resolves to no address"))
}

/// What the run counted; one per run, shared by the request tasks of the one thread.
#[derive(Default)]
struct Tally {
    sent: Cell<u64>,
    ok: Cell<u64>,
    failed: Cell<u64>,
    dropped: Cell<u64>,
    in_flight: Cell<usize>,
    open: Cell<usize>,
    opened: Cell<usize>,
    from_write_us: RefCell<Vec<u32>>,
    from_due_us: RefCell<Vec<u32>>,
}

impl Tally {
    fn bump(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

/// Idle keep-alive connections and the run's counts.
struct Load {
    addr: SocketAddr,
    host: String,
    amount: String,
    max_connections: usize,
    /// Oldest idle first, so requests rotate over every open connection.
    idle: RefCell<VecDeque<TcpStream>>,
    tally: Tally,
    ids: RefCell<Ids>,
}

/// Random v4 uuids without a syscall each (xorshift128+, seeded from the clock and pid).
struct Ids(u64, u64);

impl Ids {
    fn seeded() -> Ids {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ids(
            t | 1,
            u64::from(std::process::id()).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15,
        )
    }

    fn next_u64(&mut self) -> u64 {
        let (mut s1, s0) = (self.0, self.1);
        self.0 = s0;
        s1 ^= s1 << 23;
        self.1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        self.1.wrapping_add(s0)
    }

    fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

impl Load {
    fn request(&self) -> Vec<u8> {
        let id = self.ids.borrow_mut().uuid();
        let body = format!(r#"{{"correlationId":"{id}","amount":{}}}"#, self.amount);
        format!(
            "POST /payments HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .into_bytes()
    }

    /// Hands the request due at `due` to a connection, or drops it when all are busy.
    fn dispatch(self: &Rc<Self>, due: Instant) {
        let stream = self.idle.borrow_mut().pop_front();
        if stream.is_none() && self.tally.open.get() >= self.max_connections {
            Tally::bump(&self.tally.dropped);
            return;
        }
        if stream.is_none() {
            self.tally.open.set(self.tally.open.get() + 1);
            self.tally.opened.set(self.tally.opened.get() + 1);
        }
        self.tally.in_flight.set(self.tally.in_flight.get() + 1);
        tokio::task::spawn_local(Rc::clone(self).send(stream, due));
    }

    async fn send(self: Rc<Self>, stream: Option<TcpStream>, due: Instant) {
        let outcome = timeout(REQUEST_TIMEOUT, self.exchange(stream, due)).await;
        let tally = &self.tally;
        match outcome {
            Ok(Ok((status, stream))) => {
                if (200..300).contains(&status) {
                    Tally::bump(&tally.ok);
                } else {
                    Tally::bump(&tally.failed);
                }
                match stream {
                    Some(s) => self.idle.borrow_mut().push_back(s),
                    None => tally.open.set(tally.open.get() - 1),
                }
            }
            // An I/O error or the timeout: the connection is gone with its future.
            Ok(Err(_)) | Err(_) => {
                Tally::bump(&tally.failed);
                tally.open.set(tally.open.get() - 1);
            }
        }
        tally.in_flight.set(tally.in_flight.get() - 1);
    }

    /// One request and its answer: (status, the connection if it may carry another).
    async fn exchange(
        &self,
        stream: Option<TcpStream>,
        due: Instant,
    ) -> std::io::Result<(u16, Option<TcpStream>)> {
        let mut stream = match stream {
            Some(s) => s,
            None => connect(self.addr).await?,
        };
        let request = self.request();
        let written = Instant::now();
        stream.write_all(&request).await?;
        Tally::bump(&self.tally.sent);
        let answer = read_answer(&mut stream).await?;
        let done = Instant::now();
        self.tally
            .from_write_us
            .borrow_mut()
            .push(micros(done - written));
        self.tally
            .from_due_us
            .borrow_mut()
            .push(micros(done.saturating_duration_since(due)));
        Ok((answer.status, answer.keep_alive.then_some(stream)))
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

struct Answer {
    status: u16,
    keep_alive: bool,
}

/// Reads one HTTP/1.1 answer: the head, then `Content-Length` bytes of body.
async fn read_answer(stream: &mut TcpStream) -> std::io::Result<Answer> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("answer head is not UTF-8"))?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status in the answer"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let body_len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let keep_alive = header("connection").as_deref() != Some("close");
    let mut have = buf.len() - head_end;
    while have < body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok(Answer { status, keep_alive })
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Sends `rate × secs` requests on schedule, then waits for the last answers.
async fn run(load: Rc<Load>, rate: u64, secs: u64) {
    let total = rate * secs;
    let t0 = Instant::now();
    let due_at = |i: u64| t0 + Duration::from_nanos(i * 1_000_000_000 / rate);
    let mut tick = interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next = 0;
    while next < total {
        tick.tick().await;
        let now = Instant::now();
        while next < total && due_at(next) <= now {
            load.dispatch(due_at(next));
            next += 1;
        }
    }
    let finish_by = Instant::now() + FINISH_TIMEOUT;
    while load.tally.in_flight.get() > 0 && Instant::now() < finish_by {
        sleep(Duration::from_millis(10)).await;
    }
    let unanswered = load.tally.in_flight.get() as u64;
    load.tally.failed.set(load.tally.failed.get() + unanswered);
}

/// The `p`-th percentile (0..1) of sorted samples, in ms.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn report(args: &Args, load: &Load) -> serde_json::Value {
    let t = &load.tally;
    let mut lat = t.from_write_us.take();
    let mut from_due = t.from_due_us.take();
    lat.sort_unstable();
    from_due.sort_unstable();
    let p = |q| percentile_ms(&lat, q);
    serde_json::json!({
        "target": args.target, "rate": args.rate, "secs": args.secs,
        "due": args.rate * args.secs, "sent": t.sent.get(), "ok": t.ok.get(),
        "failed": t.failed.get(), "dropped": t.dropped.get(), "connections": t.opened.get(),
        "p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99), "p999_ms": p(0.999), "max_ms": p(1.0),
        "p99_from_due_ms": percentile_ms(&from_due, 0.99),
        "cpu_seconds": cpu_seconds(),
        "achieved_rate": t.ok.get() as f64 / args.secs as f64,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("open-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("open-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total = (args.rate * args.secs) as usize;
    let load = Rc::new(Load {
        addr: args.addr,
        host: args
            .target
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string(),
        amount: args.amount.clone(),
        max_connections: args.max_connections,
        idle: RefCell::new(VecDeque::new()),
        tally: Tally {
            from_write_us: RefCell::new(Vec::with_capacity(total)),
            from_due_us: RefCell::new(Vec::with_capacity(total)),
            ..Tally::default()
        },
        ids: RefCell::new(Ids::seeded()),
    });
    let local = tokio::task::LocalSet::new();
    let started = local.block_on(&runtime, async {
        // The connections up front: a target that is not there is a usage error, not a run
        // of failures.
        for _ in 0..args.connections {
            let stream = connect(args.addr).await?;
            load.idle.borrow_mut().push_back(stream);
        }
        load.tally.open.set(args.connections);
        load.tally.opened.set(args.connections);
        run(Rc::clone(&load), args.rate, args.secs).await;
        Ok::<(), std::io::Error>(())
    });
    if let Err(e) = started {
        eprintln!(
            "open-load: cannot connect to {} ({}): {e}; is it running?",
            args.target, args.addr
        );
        return ExitCode::FAILURE;
    }
    let result = report(&args, &load);
    println!("{}", summary_line(&result));
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, format!("{result:#}\n")) {
            eprintln!("open-load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn summary_line(r: &serde_json::Value) -> String {
    format!(
        "open-load: {} due, {} sent, {} 2xx, {} failed, {} dropped; p50/p99/p99.9/max {:.3}/{:.3}/{:.3}/{:.3} ms \
         (from due time p99 {:.3} ms); {} connections; cpu {:.2} s",
        r["due"], r["sent"], r["ok"], r["failed"], r["dropped"], r["p50_ms"].as_f64().unwrap_or(0.0),
        r["p99_ms"].as_f64().unwrap_or(0.0), r["p999_ms"].as_f64().unwrap_or(0.0),
        r["max_ms"].as_f64().unwrap_or(0.0), r["p99_from_due_ms"].as_f64().unwrap_or(0.0),
        r["connections"], r["cpu_seconds"].as_f64().unwrap_or(0.0),
    )
}
