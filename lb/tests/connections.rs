//! The cap on client connections (`LB_MAX_CONNECTIONS`): at the cap a new client is
//! served in place of the connection idle the longest, which is closed; only when no
//! connection is idle does a new client get a clear 503. Connections inside a request
//! are never closed for room. And the lb's `/metrics`: on its own listener, not on the
//! public port.

mod common;

use common::{assert_error, payment_body, Lb};
use lb::config as lb_env;
use payment::Uuid;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use testkit::{http, wait_for, SilentAddr};

/// Longest wait for the lb to act on a connection (close it, count it).
const SETTLE: Duration = Duration::from_secs(5);

/// A client that keeps its connection open across requests (HTTP/1.1 keep-alive).
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn open(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the lb");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// A client whose first payment got its 202, now idle between two requests.
    fn admitted(addr: &str) -> Client {
        let mut client = Client::open(addr);
        assert_eq!(client.pay(), Some(202), "a client admitted");
        client
    }

    /// Posts one fresh payment on this connection: its status, or None if the lb closed.
    fn pay(&mut self) -> Option<u16> {
        let body = payment_body(Uuid::new_v4(), "19.90");
        self.send("POST", "/payments", &body)
            .map(|(status, _)| status)
    }

    /// Sends the first line of a request and no more: the connection is inside a request.
    fn start_request(&mut self) {
        let line = b"POST /payments HTTP/1.1\r\n";
        self.reader.get_mut().write_all(line).expect("send a line");
    }

    /// Sends the rest of the request begun by [`Client::start_request`]; its status.
    fn finish_request(&mut self) -> Option<u16> {
        let body = payment_body(Uuid::new_v4(), "19.90");
        let rest = format!(
            "Host: lb\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(rest.as_bytes()).ok()?;
        self.read_answer().map(|(status, _)| status)
    }

    /// Whether the lb closed this connection (it reads the end of the stream, or a reset).
    fn closed_by_lb(&mut self) -> bool {
        let stream = self.reader.get_mut();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let mut byte = [0u8; 1];
        let closed = match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => panic!("the lb sent bytes on a connection without a request"),
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        closed
    }

    /// Sends one request and reads its answer: status and body, or None if the lb closed.
    fn send(&mut self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).ok()?;
        self.read_answer()
    }

    /// Reads one answer: status and body, or None if the lb closed.
    fn read_answer(&mut self) -> Option<(u16, String)> {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).ok()?;
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).ok().filter(|n| *n > 0)?;
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok()?;
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer).ok()?;
        Some((status, String::from_utf8_lossy(&answer).into_owned()))
    }
}

/// An lb without workers serving at most `max` client connections.
fn lb_with_cap(max: &str, nowhere: &SilentAddr) -> Lb {
    Lb::start_without_workers(nowhere, &[(lb_env::LB_MAX_CONNECTIONS, max)])
}

/// Waits until the lb counts `idle` idle connections and `closed` closed for room.
fn wait_idle(lb: &Lb, idle: u64, closed: u64) {
    wait_for(
        &format!("{idle} idle connections, {closed} closed for room"),
        SETTLE,
        || {
            lb.metric("lb_connections_idle") == idle
                && lb.metric("lb_connections_idle_closed_total") == closed
        },
    );
}

#[test]
fn at_the_cap_the_connection_idle_longest_makes_room_for_a_new_client() {
    let nowhere = SilentAddr::bind();
    let lb = lb_with_cap("3", &nowhere);
    // Three clients between two requests, then five that connect and send nothing yet:
    // eight idle connections for three slots, each new one taking the oldest one's.
    let mut used: Vec<Client> = (0..3).map(|_| Client::admitted(&lb.addr)).collect();
    wait_idle(&lb, 3, 0);
    let mut fresh = Vec::new();
    for opened in 1..=5 {
        fresh.push(Client::open(&lb.addr));
        wait_idle(&lb, 3, opened);
    }

    // A new client is served: its payment gets 202.
    assert_eq!(lb.pay(), 202, "a new client at the cap");
    wait_idle(&lb, 2, 6);

    // The oldest six were closed, the two youngest are served as before.
    for (n, client) in used.iter_mut().chain(&mut fresh[..3]).enumerate() {
        wait_for(&format!("connection {n} closed"), SETTLE, || {
            client.closed_by_lb()
        });
    }
    for client in &mut fresh[3..] {
        assert_eq!(client.pay(), Some(202), "a connection kept open");
    }
    assert_eq!(lb.metric("lb_connections_refused_total"), 0);
    assert_eq!(lb.metric("lb_payments_accepted_total"), 3 + 1 + 2);
}

#[test]
fn at_the_cap_with_no_idle_connection_new_clients_get_503() {
    let nowhere = SilentAddr::bind();
    let lb = lb_with_cap("3", &nowhere);
    let mut held: Vec<Client> = (0..3).map(|_| Client::admitted(&lb.addr)).collect();
    // Each is inside a request: its first line read, the rest to come.
    held.iter_mut().for_each(Client::start_request);
    wait_idle(&lb, 0, 0);

    let refused = lb.post(&payment_body(Uuid::new_v4(), "19.90"));
    assert_error(&refused, 503, "too_many_connections", "a fourth client");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(lb.metric("lb_connections_refused_total"), 1);
    assert_eq!(lb.metric("lb_connections_open"), 3);

    // The requests on the connections held are served, not lost to the new client.
    for client in &mut held {
        assert_eq!(client.finish_request(), Some(202), "a request under way");
    }
    // Idle again: the next new client is served in the place of the oldest.
    wait_idle(&lb, 3, 0);
    assert_eq!(lb.pay(), 202, "a new client once one is idle");
    wait_for("the oldest closed", SETTLE, || held[0].closed_by_lb());
    assert_eq!(held[1].pay(), Some(202));
    assert_eq!(lb.metric("lb_payments_accepted_total"), 3 + 3 + 1 + 1);
}

#[test]
fn metrics_answer_on_their_own_listener_not_on_the_public_port() {
    let nowhere = SilentAddr::bind();
    let lb = lb_with_cap("3", &nowhere);
    let public = http::get(&lb.addr, "/metrics");
    assert_error(&public, 404, "not_found", "/metrics on the public port");

    let own = http::get(&lb.metrics_addr, "/metrics");
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("lb_connections_open "), "{}", own.body);
    let elsewhere = http::get(&lb.metrics_addr, "/payments");
    assert_error(&elsewhere, 404, "not_found", "another path");
}

#[test]
fn metrics_answer_on_a_unix_socket_too() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket = dir.path().join("lb-metrics.sock");
    let listen = format!("unix:{}", socket.display());
    let nowhere = SilentAddr::bind().to_string();
    let lb = Lb::start(
        &[],
        &[
            (lb_env::API_ADDRS, &nowhere),
            (lb_env::LB_METRICS_LISTEN, &listen),
        ],
    );
    assert_eq!(lb.pay(), 202);
    wait_for("the metrics socket", SETTLE, || socket.exists());
    let mut scraper = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    scraper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    scraper.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("lb_payments_accepted_total 1\n"),
        "{answer}"
    );
}
