//! Support for the integration tests in `*/tests/`, which drive the real binaries over
//! real sockets: [`Service`] (a child process from `target/<profile>/<bin>`, stopped by
//! PID when dropped, also when the test panics), [`free_port`] / [`wait_listening`] (no
//! fixed ports, no sleeps-and-hope; [`SilentAddr`] where nobody may listen), [`http`] (a
//! tiny blocking HTTP/1.1 client), [`processors`] (the simulated processors and their
//! admin API), [`postgres`] (a throwaway server per test binary; tests that need it skip
//! when PostgreSQL is not installed, unless `REQUIRE_POSTGRES=1`), [`on_both!`].
//!
//! Binaries of other crates are not built by `cargo test` of one crate: run
//! `cargo build --workspace --bins` first (`make check` does).

pub mod http;
pub mod postgres;
pub mod processors;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which database a test runs against: a SQLite file in a temporary directory, or a
/// database of its own on the test binary's PostgreSQL server ([`postgres::server`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Whether a test on this backend is skipped: PostgreSQL when it is not installed
    /// (see [`postgres::skip`]); never SQLite.
    pub fn skipped(self) -> bool {
        self == Backend::Postgres && postgres::skip()
    }
}

/// Returns from the test it is written in when PostgreSQL is not installed (see
/// [`postgres::skip`]): the first line of a test that needs PostgreSQL outside `on_both!`.
#[macro_export]
macro_rules! skip_without_postgres {
    () => {
        if $crate::postgres::skip() {
            return;
        }
    };
}

/// Writes tests `sqlite::<name>` and `postgres::<name>` for each function named, so every
/// test body is written once and runs against both databases. Each function takes one
/// argument built from the [`Backend`] by `From` (the backend itself, or a crate's own
/// fixture such as storage's fresh database); with `async` first, the functions are
/// `async` and the tests `#[tokio::test]`s. Without PostgreSQL installed, the
/// `postgres::<name>` tests skip (see [`postgres::skip`]).
#[macro_export]
macro_rules! on_both {
    (async $($name:ident),* $(,)?) => {
        $crate::on_both!(@module [async] sqlite, Sqlite, $($name),*);
        $crate::on_both!(@module [async] postgres, Postgres, $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both!(@module [] sqlite, Sqlite, $($name),*);
        $crate::on_both!(@module [] postgres, Postgres, $($name),*);
    };
    (@module [async] $module:ident, $backend:ident, $($name:ident),*) => {
        mod $module {
            $(#[tokio::test]
            async fn $name() {
                if $crate::Backend::$backend.skipped() {
                    return;
                }
                super::$name(::core::convert::From::from($crate::Backend::$backend)).await
            })*
        }
    };
    (@module [] $module:ident, $backend:ident, $($name:ident),*) => {
        mod $module {
            $(#[test]
            fn $name() {
                if $crate::Backend::$backend.skipped() {
                    return;
                }
                super::$name(::core::convert::From::from($crate::Backend::$backend))
            })*
        }
    };
}

/// A port on 127.0.0.1 that was free a moment ago and that no other caller in this
/// process has been given: the tests of one binary run on parallel threads, and the OS
/// may hand a port released by one of them to another before the first one's server
/// binds it. The probe is only bound, never listening: a test waiting for its server
/// to listen on a port must not find another test's probe listening there for a moment.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = SilentAddr::bind().addr.port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// `127.0.0.1:<free port>` as a string, ready for a `*_LISTEN` variable.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A loopback address where nobody listens, for as long as this value lives: its port is
/// bound but never listened on. A merely free port is not enough for a test of "nothing
/// there": another test's server may take it, and the kernel may pick it as the source
/// port of the very connection under test, which then connects to itself.
pub struct SilentAddr {
    _bound: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl SilentAddr {
    pub fn bind() -> Self {
        let bound = tokio::net::TcpSocket::new_v4()
            .and_then(|s| s.bind(([127, 0, 0, 1], 0).into()).map(|()| s))
            .expect("the OS should bind a loopback socket");
        let addr = bound.local_addr().expect("a bound socket has an address");
        SilentAddr {
            _bound: bound,
            addr,
        }
    }
}

impl std::fmt::Display for SilentAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

/// Waits until something accepts TCP connections on `addr`, or panics after `timeout`.
pub fn wait_listening(addr: &str, timeout: Duration) {
    let sock: SocketAddr = addr.parse().expect("wait_listening wants ip:port");
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(stream) = TcpStream::connect_timeout(&sock, Duration::from_millis(200)) {
            // While nothing listens on a port, a connect to it can get that same port as
            // its source and connect to itself (TCP simultaneous open). That is not the
            // server, which may still be starting.
            if stream.local_addr().ok() != Some(sock) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr} after {timeout:?}");
}

/// Polls `check` every 50 ms until it returns true, or panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// Path of one of the workspace's binaries, built in the same profile as the running test.
pub fn binary(name: &str) -> PathBuf {
    // The test executable lives in target/<profile>/deps/; binaries in target/<profile>/.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (make check does)",
        path.display()
    );
    path
}

/// Path of one of the workspace's examples (`target/<profile>/examples/<name>`), which
/// `cargo test` of the example's crate builds before it runs the tests.
pub fn example(name: &str) -> PathBuf {
    let path = binary_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples -p <its crate>` (cargo test builds it too)",
        path.display()
    );
    path
}

fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> directory")
        .to_path_buf()
}

/// A running child process, stopped by PID on drop.
pub struct Service {
    pub name: String,
    child: Option<Child>,
}

impl Service {
    /// Starts workspace binary `bin` with `env` added to the environment. Its stderr is
    /// inherited so a failing test shows the service's own error.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(binary(bin));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Service {
            name: bin.to_string(),
            child: Some(child),
        }
    }

    /// Starts any program (e.g. an [`example`]) with its stdout piped to the caller, who
    /// reads what the process reports; stderr is inherited as in [`Service::start`].
    pub fn start_piped(name: &str, mut cmd: Command) -> (Service, std::process::ChildStdout) {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout was piped");
        (
            Service {
                name: name.to_string(),
                child: Some(child),
            },
            stdout,
        )
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the PID of our own, not yet reaped, child.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// SIGKILL and reap: the process is gone when this returns.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself, up to `timeout`; returns its exit code
    /// (None if it was killed by a signal). Panics (after killing it) on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        let mut child = self.child.take().expect("service already stopped");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
