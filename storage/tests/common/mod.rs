//! Helpers shared by the storage tests: a store in a temp dir and payments with ids that
//! processes can agree on (`Uuid::from_u128(n)`, the same as `examples/writer.rs`).
#![allow(dead_code)] // each test file uses its own subset

use payment::intake::Accepted;
use payment::{Cents, Millis, Payment, Processor, Uuid};
use std::path::{Path, PathBuf};
use storage::{Attempt, Store, StoreConfig};

pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("payments.db")
}

pub fn open(path: &Path, owner: &str) -> Store {
    Store::open(StoreConfig::new(path, owner)).expect("open the store")
}

pub fn id(n: u64) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

pub fn payment(n: u64, cents: i64) -> Payment {
    Payment { correlation_id: id(n), amount: Cents(cents) }
}

pub fn accepted(n: u64, cents: i64, at: i64) -> Accepted {
    Accepted { payment: payment(n, cents), accepted_at: Millis(at) }
}

pub fn attempt(processor: Processor, at: i64) -> Attempt {
    Attempt { processor, requested_at: Millis(at) }
}

/// Runs a query in the sqlite3 sense on a fresh connection of our own: what any other
/// process would see in the file.
pub fn count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open the file directly");
    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
}
