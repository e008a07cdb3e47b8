//! The cap on client connections (`LB_MAX_CONNECTIONS`): past it a new client gets a
//! clear 503 at once, the clients already connected are served as before, and new
//! clients are served again as soon as one of them leaves.

mod common;

use common::{assert_error, payment_body, Lb};
use lb::config as lb_env;
use payment::Uuid;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use testkit::{wait_for, SilentAddr};

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

    /// A client whose first request was served, i.e. one the lb admitted; retried on a
    /// new connection while an earlier client's slot is still being released.
    fn admitted(addr: &str) -> Client {
        let mut admitted = None;
        wait_for("a connection admitted", Duration::from_secs(5), || {
            let mut client = Client::open(addr);
            let served = client
                .send("GET", "/metrics", "")
                .is_some_and(|(s, _)| s == 200);
            admitted = served.then_some(client);
            admitted.is_some()
        });
        admitted.expect("wait_for returned, so a client was admitted")
    }

    /// Sends one request and reads its answer: status and body, or None if the lb closed.
    fn send(&mut self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).ok()?;
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

    fn status(&mut self, method: &str, path: &str, body: &str) -> Option<u16> {
        self.send(method, path, body).map(|(status, _)| status)
    }

    /// One sample of the lb's `/metrics`, asked on this connection.
    fn metric(&mut self, sample: &str) -> u64 {
        let (_, text) = self.send("GET", "/metrics", "").expect("the lb answers");
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in /metrics:\n{text}"))
    }
}

#[test]
fn past_the_cap_new_clients_get_503_until_a_connection_closes() {
    // The payments are only queued here: no worker is needed for the 202.
    let silent = SilentAddr::bind();
    let nowhere = silent.to_string();
    let lb = Lb::start(
        &[],
        &[
            (lb_env::API_ADDRS, &nowhere),
            (lb_env::LB_MAX_CONNECTIONS, "3"),
            (lb_env::LB_DRAIN_TIMEOUT_MS, "300"),
        ],
    );
    let mut held: Vec<Client> = (0..3).map(|_| Client::admitted(&lb.addr)).collect();

    let refused = lb.post(&payment_body(Uuid::new_v4(), "19.90"));
    assert_error(&refused, 503, "too_many_connections", "a fourth client");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));

    // The clients already connected are served as before.
    let body = payment_body(Uuid::new_v4(), "19.90");
    assert_eq!(held[0].status("POST", "/payments", &body), Some(202));
    assert_eq!(held[2].status("GET", "/metrics", ""), Some(200));
    assert_eq!(held[1].metric("lb_connections_open"), 3);
    assert!(held[1].metric("lb_connections_refused_total") >= 1);

    // One leaves: a new client is served again.
    drop(held.pop());
    wait_for(
        "a new client's payment accepted",
        Duration::from_secs(5),
        || lb.pay() == 202,
    );
    assert_eq!(held[0].metric("lb_payments_accepted_total"), 2);
}
