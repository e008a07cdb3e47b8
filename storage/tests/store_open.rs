//! Opening a store, as the api's workers do: reopening keeps the data, a newer schema is
//! refused, an older one migrated, workers opening at once all succeed, a closed store
//! says so, the view reads well at the prompt; then what is one database's only: SQLite's
//! file and directory, PostgreSQL's server and URL. Every test in `on_both!` runs against
//! SQLite and against PostgreSQL (`sqlite::<name>`, `postgres::<name>`).

mod common;

use common::{accepted, attempt, id, on_both, payment, Backend, Db};
use payment::{Millis, Processor};
use storage::{Database, StorageError, Store, StoreConfig};

on_both!(
    async
    reopening_keeps_the_data_and_the_schema_version,
    a_newer_schema_is_refused,
    workers_opening_a_new_database_at_once_all_succeed,
    a_version_1_database_is_migrated_with_its_payments,
    writes_after_close_say_so,
    the_view_reads_well_at_the_prompt,
);

async fn reopening_keeps_the_data_and_the_schema_version(db: Db) {
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 1_000)])
        .await
        .unwrap();
    store.close().await;

    let store = db.open("w1");
    assert_eq!(store.pending_count().await.unwrap(), 1);
    assert_eq!(db.schema_version(), storage::schema::SCHEMA_VERSION);
}

async fn a_newer_schema_is_refused(db: Db) {
    db.open("w1").close().await;
    db.query(&db.set_schema_version_sql(99));
    let err = Store::open(db.config("w1")).err().expect("must be refused");
    assert!(
        matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("run a newer build"), "{err}");
}

async fn workers_opening_a_new_database_at_once_all_succeed(db: Db) {
    // Each opens on its own thread, as worker processes starting together would.
    let opened: Vec<_> = (0..4)
        .map(|n| {
            let config = db.config(&format!("w{n}"));
            std::thread::spawn(move || Store::open(config).map(drop))
        })
        .collect();
    for worker in opened {
        worker
            .join()
            .unwrap()
            .expect("every worker opens the new database");
    }
    assert_eq!(db.schema_version(), storage::schema::SCHEMA_VERSION);
    assert_eq!(db.count("SELECT count(*) FROM payments_view"), 0);
}

async fn a_version_1_database_is_migrated_with_its_payments(db: Db) {
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap();
    store.close().await;
    // Back to what version 1 was: no pin column, the old view.
    db.query(&format!(
        "DROP VIEW payments_view;
         DROP TABLE purge_fence;
         ALTER TABLE payments DROP COLUMN pinned;
         CREATE VIEW payments_view AS SELECT correlation_id FROM payments;
         {}",
        db.set_schema_version_sql(1)
    ));

    let store = db.open("w1");
    assert_eq!(db.schema_version(), storage::schema::SCHEMA_VERSION);
    assert_eq!(store.pending_count().await.unwrap(), 1);
    assert_eq!(
        db.count("SELECT count(*) FROM payments_view WHERE pinned_to IS NULL"),
        1
    );
}

async fn writes_after_close_say_so(db: Db) {
    let store = db.open("w1");
    let other = store.clone();
    store.close().await;
    let err = other
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Closed { .. }), "{err:?}");
    // Reads still work.
    assert_eq!(other.pending_count().await.unwrap(), 0);
}

/// At the `sqlite3` or `psql` prompt, the same text.
async fn the_view_reads_well_at_the_prompt(db: Db) {
    let store = db.open("w1");
    let at = Millis::parse_iso("2025-07-10T12:34:56.789Z").unwrap();
    let accepted_at = Millis::parse_iso("2025-07-10T12:34:56.005Z").unwrap();
    store
        .record_pending(vec![
            accepted(1, 1990, accepted_at.0),
            accepted(2, 5, accepted_at.0),
        ])
        .await
        .unwrap();
    store
        .mark_processed(vec![(payment(1, 1990), attempt(Processor::Fallback, at.0))])
        .await
        .unwrap();
    store.close().await;

    let lines = db.query("SELECT * FROM payments_view ORDER BY correlation_id;");
    assert_eq!(
        lines,
        [
            format!(
                "{}|19.90|fallback|processed|2025-07-10T12:34:56.789Z|2025-07-10T12:34:56.005Z|",
                id(1)
            ),
            format!("{}|0.05||pending||2025-07-10T12:34:56.005Z|", id(2)),
        ]
    );
}

// SQLite only: the file, its directory, its journal mode.

#[tokio::test]
async fn sqlite_opening_creates_the_directory_in_wal_mode() {
    let db = Db::new(Backend::Sqlite);
    let path = db.path();
    assert!(!path.parent().unwrap().exists());
    db.open("w1").close().await;
    assert_eq!(db.query("PRAGMA journal_mode"), ["wal"]);
}

#[tokio::test]
async fn sqlite_a_file_that_is_not_a_database_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.db");
    std::fs::write(
        &path,
        "these are my holiday notes, not a database\n".repeat(200),
    )
    .unwrap();
    let err = Store::open(StoreConfig::new(&path, "w1"))
        .err()
        .expect("must be refused");
    assert!(matches!(err, StorageError::NotADatabase { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("DATABASE_PATH"),
        "{message}"
    );
    // And the file is left as it was.
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("these are my holiday notes"));
}

// PostgreSQL only: the server and the URL.

#[tokio::test]
async fn postgres_a_server_that_does_not_answer_is_refused_with_advice_and_no_password() {
    testkit::skip_without_postgres!();
    let db = Db::new(Backend::Postgres);
    let url = db.nowhere();
    let database = Database::from_url_or_path(Some(&url), "unused.db").unwrap();
    let err = Store::open(StoreConfig::with_database(database, "w1"))
        .err()
        .expect("must be refused");
    assert!(
        matches!(err, StorageError::PostgresConnect { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("DATABASE_URL") && message.contains("postgres:***@"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password is shown: {message}"
    );
}

#[tokio::test]
async fn postgres_a_store_reconnects_after_the_server_drops_its_connections() {
    testkit::skip_without_postgres!();
    let db = Db::new(Backend::Postgres);
    let store = db.open("w1");
    store
        .record_pending(vec![accepted(1, 1990, 0)])
        .await
        .unwrap();
    // What a server restart or a failover does to every open connection.
    let dropped = db.count(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = 'rinha-pay w1' AND datname = current_database()",
    );
    assert_eq!(dropped, 3, "one write and two read connections");
    // The calls that meet the loss may fail; within a few, both paths work again.
    let mut recovered = false;
    for n in 2..12 {
        let wrote = store
            .record_pending(vec![accepted(n, 1990, 0)])
            .await
            .is_ok();
        let read = store.pending_count().await.is_ok() && store.pending_count().await.is_ok();
        if wrote && read {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recovered, "the store did not reconnect");
    assert!(store.pending_count().await.unwrap() >= 2);
    assert_eq!(
        store.summary(None, None).await.unwrap(),
        payment::Summary::default()
    );
}
