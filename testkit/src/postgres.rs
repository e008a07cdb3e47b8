//! A throwaway PostgreSQL server for the tests of every crate: a fresh cluster (`initdb`)
//! in a temporary directory, listening only on a unix socket there, trust authentication
//! for the `postgres` role, PostgreSQL's durable defaults. One server per test binary
//! ([`server`]), stopped and deleted when its last handle drops; each test gets its own
//! database. As root, `initdb` and `postgres` run as the `postgres` system user.
//!
//! Without the server binaries (`initdb`, `postgres`), a test that needs them skips with a
//! `SKIPPED` line on stderr ([`skip`], called by `on_both!` and `skip_without_postgres!`);
//! with `REQUIRE_POSTGRES=1` in the environment it fails instead, with advice.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

const ADVICE: &str = "run `make deps` (it installs Debian's postgresql package)";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Whom the server runs as, when not as us (we are root).
    user: Option<(u32, u32)>,
    postgres: Child,
}

/// The server of this test binary, started if no test holds it now.
pub fn server() -> Arc<PgServer> {
    static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    let mut shared = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(PgServer::start());
    *shared = Arc::downgrade(&server);
    server
}

impl PgServer {
    /// A server of its own, for a test that crashes it (see [`PgServer::crash`]).
    pub fn dedicated() -> PgServer {
        PgServer::start()
    }

    fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir()
            .expect("a temporary directory for PostgreSQL");
        let user = server_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the directory to postgres");
        }
        let data = dir.path().join("data");
        let mut initdb = as_user(Command::new(bin.join("initdb")), user, dir.path());
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        check("initdb", initdb.output());
        let postgres = launch(&bin, dir.path(), user);
        let mut server = PgServer {
            dir,
            bin,
            user,
            postgres,
        };
        server.wait_ready();
        server
    }

    /// Kills the server and all its backends at once with SIGKILL (its own process group),
    /// as a crash would: nothing is flushed or shut down cleanly. Then starts it again on
    /// the same data, which replays its WAL, and waits until it answers.
    pub fn crash_and_restart(&mut self) {
        let pid = self.postgres.id() as libc::pid_t;
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.postgres.wait();
        // The backends may take a moment to be gone, and the server refuses to start
        // while they hold its shared memory.
        let start = Instant::now();
        loop {
            self.postgres = launch(&self.bin, self.dir.path(), self.user);
            std::thread::sleep(Duration::from_millis(200));
            match self.postgres.try_wait() {
                Ok(None) => break,
                _ => assert!(
                    start.elapsed() < START_TIMEOUT,
                    "PostgreSQL did not restart; its log:\n{}",
                    self.log()
                ),
            }
        }
        self.wait_ready();
    }

    /// Until a query is answered: the socket appears before recovery has finished.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.postgres.try_wait() {
                panic!(
                    "PostgreSQL exited ({status}) while starting; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "PostgreSQL did not start within {START_TIMEOUT:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A new empty database; its URL (the socket directory as the host).
    pub fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let host = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgresql://postgres@{host}/{name}")
    }

    /// A URL on which no server answers: a socket directory with no socket.
    pub fn nowhere(&self) -> String {
        let host = self
            .dir
            .path()
            .join("data")
            .display()
            .to_string()
            .replace('/', "%2F");
        format!("postgresql://postgres:hunter2@{host}/nothing")
    }

    /// Runs `sql` with psql in `database`; its rows, unaligned (`a|b|c`, NULL as nothing).
    pub fn psql(&self, database: &str, sql: &str) -> Result<Vec<String>, String> {
        let output = Command::new(self.psql_binary())
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .output()
            .map_err(|e| format!("cannot run psql ({ADVICE}): {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "psql -c {sql:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    fn psql_binary(&self) -> PathBuf {
        let beside = self.bin.join("psql");
        if beside.exists() {
            beside
        } else {
            PathBuf::from("psql")
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let pid = self.postgres.id() as libc::pid_t;
        // SIGINT: fast shutdown, which does not wait for clients to disconnect.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = self.postgres.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("PostgreSQL (pid {pid}) ignored SIGINT for {STOP_TIMEOUT:?}; killing it and its backends");
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.postgres.wait();
    }
}

/// Starts `postgres` on the cluster in `dir`, listening only on a socket in `dir`, in a
/// process group of its own (so [`PgServer::crash_and_restart`] reaches its backends),
/// its output appended to `dir/server.log`.
fn launch(bin: &Path, dir: &Path, user: Option<(u32, u32)>) -> Child {
    let log_path = dir.join("server.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("the server log file");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&log_path, Some(uid), Some(gid)).expect("chown the log");
    }
    let mut postgres = as_user(Command::new(bin.join("postgres")), user, dir);
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses="]);
    postgres
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .process_group(0);
    postgres
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}/postgres: {e}", bin.display()))
}

/// Whether a test that needs PostgreSQL should skip: true when the server binaries are
/// not installed (see [`bin_dir`]) and `REQUIRE_POSTGRES=1` is not set, after saying so on
/// stderr, past the test harness's capture. With `REQUIRE_POSTGRES=1`, false: the test
/// goes on and fails as it starts the server, with advice.
pub fn skip() -> bool {
    if required() || find_bin_dir().is_some() {
        return false;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    // Not `eprintln!`: the harness captures that and shows it only when a test fails.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: PostgreSQL is not installed (initdb/postgres not found); \
         set REQUIRE_POSTGRES=1 to make this a failure"
    );
    true
}

/// `REQUIRE_POSTGRES=1`: a test that needs PostgreSQL fails without it (for CI and `make
/// check`, where a skip would hide a missing dependency).
fn required() -> bool {
    std::env::var_os("REQUIRE_POSTGRES").is_some_and(|v| v == "1")
}

/// The directory of `initdb` and `postgres` (see [`find_bin_dir`]). Missing binaries fail
/// the test with advice.
fn bin_dir() -> PathBuf {
    find_bin_dir().unwrap_or_else(|| panic!("the PostgreSQL server binaries (initdb, postgres) were not found on PATH or in /usr/lib/postgresql/*/bin: {ADVICE}"))
}

/// The directory of `initdb` and `postgres`: on PATH, else the newest of Debian's
/// `/usr/lib/postgresql/<version>/bin`; `None` when neither has them.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists());
    let debian = || {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        let mut dirs: Vec<(u32, PathBuf)> = versions
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("postgres").exists())
            .collect();
        dirs.sort();
        dirs.pop().map(|(_, bin)| bin)
    };
    let dir = on_path.or_else(debian)?;
    // The symlinks some machines put on PATH lead to Debian's directory, with psql.
    Some(
        std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or(dir),
    )
}

/// `Some((uid, gid))` of the `postgres` user when we are root, who may not run the server.
fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").ok()?;
    // Safety: getpwnam returns null or a pointer to a static record we copy at once; no
    // other code of the tests calls getpwnam, so no thread overwrites that record meanwhile.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        panic!("running as root, and there is no `postgres` user to run PostgreSQL as: {ADVICE}");
    }
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

fn as_user(mut cmd: Command, user: Option<(u32, u32)>, dir: &Path) -> Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir(dir);
    cmd
}

fn check(what: &str, output: std::io::Result<Output>) {
    let output = output.unwrap_or_else(|e| panic!("cannot run {what}: {e} ({ADVICE})"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
