//! The single writer of each store, whatever the database: one thread owns the write
//! connection and commits what is queued (up to `max_batch` jobs, after waiting `linger`
//! for more) in one transaction, and answers every caller only after the commit, so an
//! answer means "durable". A job that fails does not fail its neighbours: the batch is
//! rolled back and its jobs run again one per transaction. What a job is and how a
//! transaction runs is the backend's [`Session`] (`sqlite::write_session`,
//! `postgres::write_session`). Why batches and the linger: docs/architecture.md, "The
//! writer thread".

use crate::error::StorageError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why a batch's transaction did not commit.
pub(crate) enum Failure<E> {
    /// Every job fails with this, none is retried alone: the transaction could not even
    /// start or could not have its lock (running each job alone would only fail the same
    /// way, once per job), or its commit was sent and not answered (it may have committed:
    /// running the jobs again could apply them twice).
    Whole(E),
    /// A write, or the commit, failed; the transaction was rolled back.
    Work(E),
}

impl<E> Failure<E> {
    pub(crate) fn into_error(self) -> E {
        match self {
            Failure::Whole(e) | Failure::Work(e) => e,
        }
    }
}

/// A backend's write connection, owned by the writer thread.
pub(crate) trait Session: Send + 'static {
    type Job: Send + 'static;
    type Error: std::fmt::Display;
    /// Runs `jobs` in one transaction and commits it; rolled back on failure.
    fn transact(&mut self, jobs: &mut [Self::Job]) -> Result<(), Failure<Self::Error>>;
    /// Tells the job's caller how it ended: `None` after a successful commit.
    fn answer(&self, job: Self::Job, failure: Option<&Self::Error>);
    /// Whether `job` must run in a transaction of its own, not folded with others.
    fn alone(&self, _job: &Self::Job) -> bool {
        false
    }
    /// Closes the connection after the last batch.
    fn close(self);
}

/// One queued write as both backends hold it: its SQL `sql` (a closure over the backend's
/// connection), where its output waits for the commit, and its caller's reply channel.
pub(crate) struct Job<T, F> {
    pub operation: &'static str,
    pub sql: F,
    pub output: Option<T>,
    /// Runs in a transaction of its own (see [`Session::alone`]).
    pub alone: bool,
    reply: oneshot::Sender<Result<T, StorageError>>,
}

impl<T, F> Job<T, F> {
    pub(crate) fn new(
        operation: &'static str,
        sql: F,
        reply: oneshot::Sender<Result<T, StorageError>>,
    ) -> Job<T, F> {
        Job {
            operation,
            sql,
            output: None,
            alone: false,
            reply,
        }
    }

    /// Answers the caller: `None` after a successful commit, else what went wrong.
    pub(crate) fn answer(self, failure: Option<StorageError>) {
        let result = match (failure, self.output) {
            (Some(e), _) => Err(e),
            (None, Some(output)) => Ok(output),
            // Committed without having run cannot happen; dropping the reply makes the
            // caller see `Closed` rather than a made-up value.
            (None, None) => return,
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = self.reply.send(result);
    }
}

/// How the thread forms a batch: at most `max_batch` jobs, waiting `linger` after the first.
#[derive(Clone, Copy)]
pub(crate) struct Batching {
    pub max_batch: usize,
    pub linger: Duration,
}

enum Message<J> {
    Job(J),
    /// Finish what was queued before, close the connection, then acknowledge.
    Close(oneshot::Sender<()>),
}

/// The handle to the writer thread; cheap to clone.
pub(crate) struct Writer<J> {
    queue: mpsc::Sender<Message<J>>,
    /// The database, as said in errors.
    database: Arc<str>,
}

impl<J> Clone for Writer<J> {
    fn clone(&self) -> Self {
        Writer {
            queue: self.queue.clone(),
            database: Arc::clone(&self.database),
        }
    }
}

impl<J: Send + 'static> Writer<J> {
    /// Starts the writer thread on `session` (already migrated).
    pub(crate) fn start<S: Session<Job = J>>(
        session: S,
        database: String,
        batching: Batching,
    ) -> Result<Writer<J>, StorageError> {
        let batching = Batching {
            max_batch: batching.max_batch.max(1),
            ..batching
        };
        // Room for a few batches; beyond that callers wait, which is the backpressure we want.
        let (queue, jobs) = mpsc::channel(batching.max_batch.saturating_mul(4));
        std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || write_loop(session, batching, jobs))
            .map_err(|source| StorageError::WriterThread {
                database: database.clone(),
                source,
            })?;
        Ok(Writer {
            queue,
            database: database.into(),
        })
    }

    /// Queues the job `make` builds around its reply channel, and waits for its answer.
    pub(crate) async fn call<T>(
        &self,
        operation: &'static str,
        make: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> J,
    ) -> Result<T, StorageError> {
        let closed = || StorageError::Closed {
            database: self.database.to_string(),
            operation,
        };
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Message::Job(make(reply)))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Flushes everything queued so far and stops the thread; later writes get `Closed`.
    pub(crate) async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Message::Close(ack)).await.is_ok() {
            // An error here means the thread is already gone, which is what we want.
            let _ = done.await;
        }
    }
}

fn write_loop<S: Session>(
    mut session: S,
    batching: Batching,
    mut jobs: mpsc::Receiver<Message<S::Job>>,
) {
    let mut batch = Vec::with_capacity(batching.max_batch);
    let mut close_ack = None;
    // blocking_recv is fine: this is our own thread, not a runtime thread.
    while let Some(message) = jobs.blocking_recv() {
        take(message, &mut batch, &mut close_ack);
        take_queued(&mut jobs, &mut batch, &mut close_ack, batching.max_batch);
        if close_ack.is_none() && batch.len() < batching.max_batch && !batching.linger.is_zero() {
            std::thread::sleep(batching.linger);
            take_queued(&mut jobs, &mut batch, &mut close_ack, batching.max_batch);
        }
        commit_batch(&mut session, &mut batch);
        if close_ack.is_some() {
            break;
        }
    }
    session.close();
    if let Some(ack) = close_ack {
        let _ = ack.send(());
    }
}

fn take<J>(message: Message<J>, batch: &mut Vec<J>, close_ack: &mut Option<oneshot::Sender<()>>) {
    match message {
        Message::Job(job) => batch.push(job),
        Message::Close(ack) => *close_ack = Some(ack),
    }
}

/// Adds what is queued now to the batch, until it is full or a close request came.
fn take_queued<J>(
    jobs: &mut mpsc::Receiver<Message<J>>,
    batch: &mut Vec<J>,
    close_ack: &mut Option<oneshot::Sender<()>>,
    max_batch: usize,
) {
    while close_ack.is_none() && batch.len() < max_batch {
        match jobs.try_recv() {
            Ok(message) => take(message, batch, close_ack),
            Err(_) => return,
        }
    }
}

/// Commits the batch in one transaction, the jobs that want it each in their own after it.
fn commit_batch<S: Session>(session: &mut S, batch: &mut Vec<S::Job>) {
    let (alone, mut together): (Vec<_>, Vec<_>) =
        batch.drain(..).partition(|job| session.alone(job));
    commit_together(session, &mut together);
    for job in alone {
        commit_together(session, &mut vec![job]);
    }
}

/// Commits `batch` in one transaction; if a write inside fails, runs each job alone so each
/// caller gets its own result.
fn commit_together<S: Session>(session: &mut S, batch: &mut Vec<S::Job>) {
    if batch.is_empty() {
        return;
    }
    match session.transact(batch) {
        Ok(()) => batch.drain(..).for_each(|job| session.answer(job, None)),
        Err(Failure::Whole(e)) => batch
            .drain(..)
            .for_each(|job| session.answer(job, Some(&e))),
        Err(Failure::Work(e)) if batch.len() == 1 => batch
            .drain(..)
            .for_each(|job| session.answer(job, Some(&e))),
        Err(Failure::Work(e)) => {
            tracing::warn!(
                "a batch of {} writes failed ({e}); retrying them one by one",
                batch.len()
            );
            for job in batch.drain(..) {
                let mut alone = [job];
                let failure = session.transact(&mut alone).err().map(Failure::into_error);
                let [job] = alone;
                session.answer(job, failure.as_ref());
            }
        }
    }
}
