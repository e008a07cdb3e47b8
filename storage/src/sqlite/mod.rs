//! The SQLite backend: one database file in WAL mode, shared by the worker processes of
//! one host. Writes go to the single writer thread (`writer`, batching in
//! `crate::writer`), reads to a small pool of read connections (`reads`); nothing here
//! blocks a runtime thread on SQLite. The semantics of each method are [`crate::Store`]'s.

mod busy;
mod reads;
pub mod schema;
mod writer;
mod writes;

use crate::config::StoreConfig;
use crate::error::StorageError;
use crate::model::{Attempt, Claimed, DoubleCharge, HealthRecord, Pending, Recorded, Taken};
use crate::writer::Batching;
use payment::intake::Accepted;
use payment::{Millis, Payment, Processor, Summary, Uuid};
use reads::Readers;
use std::path::PathBuf;
use std::sync::Arc;
use writer::SqliteWriter;

#[derive(Clone)]
pub struct Store {
    writer: SqliteWriter,
    readers: Arc<Readers>,
}

impl Store {
    pub fn open(path: PathBuf, config: &StoreConfig) -> Result<Store, StorageError> {
        let conn = schema::open_writer(&path)?;
        let readers = Readers::open(path.clone(), config.readers)?;
        let batching = Batching { max_batch: config.max_batch, linger: config.linger };
        let writer = writer::start(conn, path, config.owner.clone(), batching)?;
        Ok(Store { writer, readers })
    }

    pub async fn record_pending(&self, batch: Vec<Accepted>) -> Result<Vec<Accepted>, StorageError> {
        writer::run(&self.writer, "record pending payments", move |conn, owner| writes::record_pending(conn, owner, &batch)).await
    }

    pub async fn record_for_sending(&self, batch: Vec<Accepted>, processor: Processor) -> Result<Recorded, StorageError> {
        writer::run(&self.writer, "record pending payments for sending", move |conn, owner| {
            writes::record_for_sending(conn, owner, &batch, processor)
        })
        .await
    }

    pub async fn take_for_sending(&self, batch: Vec<(Uuid, Processor)>) -> Result<Taken, StorageError> {
        writer::run(&self.writer, "take payments for sending", move |conn, owner| writes::take_for_sending(conn, owner, &batch)).await
    }

    pub async fn pin(&self, batch: Vec<(Uuid, Processor)>) -> Result<usize, StorageError> {
        writer::run(&self.writer, "pin payments to a processor", move |conn, _| writes::pin(conn, &batch)).await
    }

    pub async fn mark_processed(&self, batch: Vec<(Payment, Attempt)>) -> Result<Vec<DoubleCharge>, StorageError> {
        writer::run(&self.writer, "mark payments processed", move |conn, _| writes::mark_processed(conn, &batch)).await
    }

    pub async fn heartbeat(&self, now: Millis) -> Result<(), StorageError> {
        writer::run(&self.writer, "record a worker heartbeat", move |conn, owner| writes::heartbeat(conn, owner, now)).await
    }

    pub async fn retire(&self) -> Result<(), StorageError> {
        writer::run(&self.writer, "retire the worker", writes::retire).await
    }

    pub async fn claim_orphans(&self, now: Millis, dead_after_ms: i64, limit: usize) -> Result<Claimed, StorageError> {
        let claim = move |conn: &_, owner: &str| writes::claim_orphans(conn, owner, now, dead_after_ms, limit);
        writer::run(&self.writer, "claim orphaned payments", claim).await
    }

    pub async fn own_pending(&self, limit: usize) -> Result<Vec<Pending>, StorageError> {
        let own = move |conn: &_, owner: &str| writes::own_pending(conn, owner, limit);
        writer::run(&self.writer, "read this worker's pending payments", own).await
    }

    pub async fn take_health_turn(&self, processor: Processor, now: Millis, window_ms: i64) -> Result<bool, StorageError> {
        let turn = move |conn: &_, _: &str| writes::take_health_turn(conn, processor, now, window_ms);
        writer::run(&self.writer, "take a health-check turn", turn).await
    }

    pub async fn save_health(&self, processor: Processor, record: HealthRecord) -> Result<(), StorageError> {
        writer::run(&self.writer, "save a health record", move |conn, _| writes::save_health(conn, processor, &record)).await
    }

    pub async fn purge(&self) -> Result<(), StorageError> {
        writer::run(&self.writer, "purge payments", |conn, _| writes::purge(conn)).await
    }

    pub async fn summary(&self, from: Option<Millis>, to: Option<Millis>) -> Result<Summary, StorageError> {
        self.readers.run("compute the payments summary", move |conn| reads::summary(conn, from, to)).await
    }

    pub async fn health(&self, processor: Processor) -> Result<Option<HealthRecord>, StorageError> {
        self.readers.run("read a health record", move |conn| reads::health(conn, processor)).await
    }

    pub async fn orphans_exist(&self, now: Millis, dead_after_ms: i64) -> Result<bool, StorageError> {
        self.readers.run("look for orphaned payments", move |conn| reads::orphans_exist(conn, now, dead_after_ms)).await
    }

    pub async fn pending_count(&self) -> Result<i64, StorageError> {
        self.readers.run("count pending payments", reads::pending_count).await
    }

    pub async fn close(&self) {
        self.writer.close().await;
    }
}
