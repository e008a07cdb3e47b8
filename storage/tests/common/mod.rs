//! Helpers shared by the storage tests: a fresh database of either kind ([`Db`], what
//! `testkit::on_both!` hands each test body it runs against both), and payments with ids
//! that processes can agree on (`Uuid::from_u128(n)`, the same as `examples/writer.rs`).
#![allow(dead_code)] // each test file uses its own subset

pub(crate) use testkit::postgres as pg;

use payment::intake::Accepted;
use payment::{Cents, Millis, Payment, Processor, Uuid};
use std::path::PathBuf;
use std::sync::Arc;
use storage::{Attempt, Database, Store, StoreConfig};

pub(crate) use testkit::{on_both, Backend};

/// A fresh, empty database for one test: a SQLite file in a temp dir (not created yet),
/// or a new database on the test binary's PostgreSQL server.
pub(crate) struct Db {
    pub backend: Backend,
    pub database: Database,
    /// The SQLite file's directory; kept for PostgreSQL too (a place for scratch files).
    pub dir: tempfile::TempDir,
    server: Option<Arc<pg::PgServer>>,
}

impl From<Backend> for Db {
    /// What `on_both!` hands each test.
    fn from(backend: Backend) -> Db {
        Db::new(backend)
    }
}

impl Db {
    pub(crate) fn new(backend: Backend) -> Db {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => {
                let database = Database::Sqlite(dir.path().join("data").join("payments.db"));
                Db {
                    backend,
                    database,
                    dir,
                    server: None,
                }
            }
            Backend::Postgres => {
                let server = pg::server();
                let database = Database::Postgres(server.create_database());
                Db {
                    backend,
                    database,
                    dir,
                    server: Some(server),
                }
            }
        }
    }

    pub(crate) fn config(&self, owner: &str) -> StoreConfig {
        StoreConfig::with_database(self.database.clone(), owner)
    }

    pub(crate) fn open(&self, owner: &str) -> Store {
        Store::open(self.config(owner)).expect("open the store")
    }

    /// What a child process is told to open: the file's path or the URL.
    pub(crate) fn arg(&self) -> String {
        match &self.database {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => url.clone(),
        }
    }

    /// A PostgreSQL URL, with a password, on which no server answers.
    pub(crate) fn nowhere(&self) -> String {
        self.server
            .as_ref()
            .expect("a PostgreSQL-only check ran against SQLite")
            .nowhere()
    }

    /// The SQLite file (panics for PostgreSQL: the test is SQLite's only).
    pub(crate) fn path(&self) -> PathBuf {
        match &self.database {
            Database::Sqlite(path) => path.clone(),
            Database::Postgres(_) => panic!("a SQLite-only check ran against PostgreSQL"),
        }
    }

    /// Runs `sql` at the prompt a person would use, `sqlite3` or `psql`, on a connection
    /// of its own: what any other process sees. Rows as `a|b|c`, NULL as nothing.
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        match (&self.database, &self.server) {
            (Database::Postgres(url), Some(server)) => {
                let name = url.rsplit('/').next().unwrap_or_default();
                server.psql(name, sql).unwrap_or_else(|e| panic!("{e}"))
            }
            _ => {
                // Waits for a lock like our connections do (a closing store checkpoints).
                let output = std::process::Command::new("sqlite3")
                    .args(["-cmd", ".timeout 5000"])
                    .arg(self.path())
                    .arg(sql)
                    .output()
                    .expect("the sqlite3 shell (make deps installs it)");
                assert!(
                    output.status.success(),
                    "sqlite3 {sql:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            }
        }
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        rows.first()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("{sql} gave {rows:?}, not a number"))
    }

    pub(crate) fn schema_version(&self) -> i64 {
        match self.backend {
            Backend::Sqlite => self.count("PRAGMA user_version"),
            Backend::Postgres => self.count("SELECT version FROM schema_version"),
        }
    }

    /// The statement that records schema version `n`.
    pub(crate) fn set_schema_version_sql(&self, n: i64) -> String {
        match self.backend {
            Backend::Sqlite => format!("PRAGMA user_version = {n};"),
            Backend::Postgres => format!("UPDATE schema_version SET version = {n};"),
        }
    }
}

pub(crate) fn id(n: u64) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

pub(crate) fn payment(n: u64, cents: i64) -> Payment {
    Payment {
        correlation_id: id(n),
        amount: Cents(cents),
    }
}

pub(crate) fn accepted(n: u64, cents: i64, at: i64) -> Accepted {
    Accepted {
        payment: payment(n, cents),
        accepted_at: Millis(at),
    }
}

pub(crate) fn attempt(processor: Processor, at: i64) -> Attempt {
    Attempt {
        processor,
        requested_at: Millis(at),
    }
}

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// A write lock held on the payments by another connection until [`Lunch::end`].
pub(crate) enum Lunch {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Lunch {
    pub(crate) async fn start(db: &Db) -> Lunch {
        match &db.database {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                Lunch::Sqlite(conn)
            }
            Database::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute("BEGIN; LOCK TABLE payments IN EXCLUSIVE MODE;")
                    .await
                    .unwrap();
                Lunch::Postgres(client)
            }
        }
    }

    pub(crate) async fn end(self) {
        match self {
            Lunch::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            Lunch::Postgres(client) => client.batch_execute("ROLLBACK").await.unwrap(),
        }
    }
}
