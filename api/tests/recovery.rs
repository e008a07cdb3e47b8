//! A worker dies (SIGKILL), leaves (SIGTERM, or its shutdown in process) or stalls (SIGSTOP)
//! with payments in its hands: another worker on the same database pays each of them
//! exactly once. The SIGKILL takeover runs on SQLite and PostgreSQL, with three workers;
//! on PostgreSQL, an intake write that committed but was answered with an error. Payments
//! claimed pinned to a processor that fails to the end are settled by asking it.

mod common;

use api::config::Config;
use common::{on_both, payments, Backend, Stack, Worker};
use payment::Processor;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::postgres::PgServer;
use testkit::wait_for;

on_both!(a_killed_workers_payments_are_paid_exactly_once_by_the_others);

fn a_killed_workers_payments_are_paid_exactly_once_by_the_others(backend: Backend) {
    let stack = Stack::on(backend, &[]);
    stack.default.set_delay(1000);
    // Same label for the first and its successor: each process start is still a distinct owner.
    let label = |c: &mut Config| c.worker_id = "api-1".into();
    let mut first = stack.worker_process(label);
    let others = [stack.worker_process(|_| {}), stack.worker_process(|_| {})];
    let sent = payments(300);
    first.send(&sent, 100);
    wait_for(
        "payments in flight at the processor",
        Duration::from_secs(10),
        || stack.default.stat("paymentsRunning") > 0,
    );
    first.service_mut().kill();

    stack.default.set_delay(0);
    let successor = stack.worker_process(label);
    successor.wait_processed(sent.len(), Duration::from_secs(40));
    stack.assert_settled(&successor, &sent);
    let claimed: f64 = others
        .iter()
        .chain([&successor])
        .map(|w| w.metric("api_claimed_total"))
        .sum();
    assert!(
        claimed > 0.0,
        "the live workers claimed the killed one's payments"
    );
    assert!(
        stack.default.stat("payments422") > 0,
        "payments the processor stored for the killed worker are confirmed with 422, not paid again"
    );
}

#[test]
fn a_killed_workers_payments_pinned_to_a_default_failing_to_the_end_are_paid_in_time() {
    // Every payment the killed worker recorded was stamped for the default, so the claim
    // pins them all there; the default then fails to the end. Asked once the killed
    // worker's calls can no longer be stored, the default says which it holds (recorded)
    // and which not (freed): those go to the fallback after its wait, not one probe at a time.
    let stack = Stack::start(&[]);
    stack.default.set_delay(500);
    let quick = |c: &mut Config| {
        c.worker_dead_after = Duration::from_secs(1);
        c.processor_timeout = Duration::from_secs(1);
        c.late_store_max = Duration::from_secs(2);
        c.fallback_after = Duration::from_secs(3);
    };
    let mut first = stack.worker_process(quick);
    let other = stack.worker_process(quick);
    let sent = payments(300);
    first.send(&sent, 100);
    wait_for(
        "payments in flight at the processor",
        Duration::from_secs(10),
        || stack.default.stat("paymentsRunning") > 0,
    );
    first.service_mut().kill();
    stack.default.set_failure(true);

    // Dead after 1 s, calls over 1.25 s later, stored until 2 s after their send, a wait
    // of 3 s for the default: within a few seconds more, all paid.
    other.wait_processed(sent.len(), Duration::from_secs(12));
    stack.assert_settled(&other, &sent);
    assert!(stack.fallback.stat("paymentsStored") > 0);
}

#[test]
fn sigterm_refuses_new_intake_exits_0_and_the_other_worker_takes_over_at_once() {
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    // Failing after 1 s, within the latency bound: probed, so a call is in flight.
    stack.default.set_delay(1000);
    // Workers are dead only after a minute here: the takeover below is due to retiring.
    let never_stale = |c: &mut Config| c.worker_dead_after = Duration::from_secs(60);
    let mut leaving = stack.worker_process(never_stale);
    let staying = stack.worker(never_stale);
    let sent = payments(200);
    leaving.send(&sent, 100);
    wait_for(
        "payments in flight at the processor",
        Duration::from_secs(10),
        || stack.default.stat("paymentsRunning") > 0,
    );

    let mut open = TcpStream::connect(&leaving.addr).expect("connect before the shutdown");
    answered(&mut open);
    leaving.service().signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let mut body = Vec::new();
    payments(1)
        .iter()
        .for_each(|a| payment::intake::encode(a, &mut body));
    let head = format!(
        "POST /intake HTTP/1.1\r\nHost: api\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    open.write_all(head.as_bytes())
        .and_then(|_| open.write_all(&body))
        .expect("send on the open connection");
    let mut answer = String::new();
    open.read_to_string(&mut answer).expect("read the answer");
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "intake while shutting down: {answer}"
    );
    assert_eq!(
        leaving.service_mut().wait_exit(Duration::from_secs(10)),
        Some(0)
    );

    stack.default.set_failure(false);
    stack.default.set_delay(0);
    staying.wait_processed(sent.len(), Duration::from_secs(30));
    stack.assert_settled(&staying, &sent);
    assert_eq!(staying.metric("api_claimed_total"), sent.len() as f64);
}

/// One keep-alive request on `stream`, read to the end of its answer. A connection not
/// yet accepted by the server waits in the listen backlog, and is reset when a shutdown
/// closes the listener: once answered, it is surely an open one.
fn answered(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /payments-summary HTTP/1.1\r\nHost: api\r\n\r\n")
        .expect("send a request on the open connection");
    let mut seen = Vec::new();
    let mut buffer = [0; 1024];
    while !is_whole_answer(&seen) {
        let n = stream.read(&mut buffer).expect("read the answer");
        assert!(n > 0, "connection closed mid-answer");
        seen.extend_from_slice(&buffer[..n]);
    }
}

/// An HTTP answer with its head and `Content-Length` bytes of body.
fn is_whole_answer(seen: &[u8]) -> bool {
    let text = String::from_utf8_lossy(seen);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    length.is_some_and(|length| body.len() >= length)
}

#[test]
fn a_worker_shut_down_stops_listening_and_the_other_takes_over_at_once() {
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    // Workers are dead only after a minute here: the takeover below is due to retiring.
    let never_stale = |c: &mut Config| c.worker_dead_after = Duration::from_secs(60);
    let mut leaving = stack.worker(never_stale);
    let staying = stack.worker(never_stale);
    let sent = payments(100);
    leaving.send(&sent, 100);

    leaving.shutdown();
    assert!(
        TcpStream::connect(&leaving.addr).is_err(),
        "still accepting connections after its shutdown"
    );
    stack.default.set_failure(false);
    staying.wait_processed(sent.len(), Duration::from_secs(30));
    stack.assert_settled(&staying, &sent);
    assert_eq!(staying.metric("api_claimed_total"), sent.len() as f64);
}

#[test]
fn payments_taken_over_from_a_stalled_worker_are_sent_by_one_worker_only() {
    // A live worker whose heartbeat stalls past WORKER_DEAD_AFTER_MS (CPU starvation or a
    // slow disk in production, SIGSTOP here) loses the payments queued in it to the other
    // worker. Running again, it must not send them as well: the processors' 422s would
    // count the re-sends (a different processor would charge twice).
    let stack = Stack::start(&[]);
    stack.default.set_failure(true);
    // Fast probing, so the stalled worker gets through its queue soon after it resumes.
    let knobs = |c: &mut Config| c.probe_interval = Duration::from_millis(10);
    let stalled = stack.worker_process(knobs);
    let rescuer = stack.worker(knobs);
    let sent = payments(200);
    stalled.send(&sent, 100);
    wait_for(
        "the failing default probed",
        Duration::from_secs(10),
        || stack.default.stat("payments500") > 0,
    );

    stall_until_claimed(&stalled, || {
        rescuer.metric("api_claimed_total") >= sent.len() as f64
    });
    // Resumed while the payments are still pending in both queues: it must let them go.
    stalled.service().signal(libc::SIGCONT);
    wait_for(
        "the stalled worker's queue emptied",
        Duration::from_secs(15),
        || stalled.metric("api_payments_held") == 0.0,
    );
    stack.default.set_failure(false);
    rescuer.wait_processed(sent.len(), Duration::from_secs(20));

    stack.assert_settled(&rescuer, &sent);
    assert_eq!(
        stalled.metric("api_payments_lost_ownership_total"),
        sent.len() as f64
    );
    for processor in Processor::ALL {
        let sim = stack.sim(processor);
        assert_eq!(
            sim.stat("payments422"),
            0,
            "{processor} was sent payments twice: {}",
            sim.stats()
        );
    }
}

/// SIGSTOPs `worker` until `claimed()` holds. A worker stopped inside a write transaction
/// holds the file's write lock, so the other can claim nothing: then it is resumed for a
/// moment and stopped again (at most three times).
fn stall_until_claimed(worker: &Worker, claimed: impl Fn() -> bool) {
    for _ in 0..3 {
        worker.service().signal(libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            if claimed() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        worker.service().signal(libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the other worker never claimed the stopped worker's payments");
}

#[test]
fn a_batch_whose_sender_gave_up_during_a_stalled_write_is_still_paid() {
    // The lb gives up on an intake that takes longer than LB_FORWARD_TIMEOUT_MS and sends
    // the batch elsewhere. If the write then commits here, the payments are this worker's:
    // they must be in its queue, not left pending with an owner that never sends them.
    let stack = Stack::start(&[]);
    let worker = stack.worker(|_| {});
    let sent = payments(20);
    // Someone holds the write lock (a sqlite3 prompt, a stalled disk): the write waits.
    let lock = rusqlite::Connection::open(stack.db()).expect("open the database");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let sender = post_intake_unanswered(&worker.addr, &sent);
    std::thread::sleep(Duration::from_millis(300));
    drop(sender); // the sender gives up before any answer
    std::thread::sleep(Duration::from_millis(300));
    lock.execute_batch("ROLLBACK").expect("release the lock");

    worker.wait_processed(sent.len(), Duration::from_secs(20));
    stack.assert_settled(&worker, &sent);
}

/// Posts `batch` to `POST /intake` on `addr` and returns the connection without reading
/// the answer: dropping it is a sender that gives up, as the lb's forward timeout does.
fn post_intake_unanswered(addr: &str, batch: &[payment::intake::Accepted]) -> TcpStream {
    let mut body = Vec::new();
    batch
        .iter()
        .for_each(|a| payment::intake::encode(a, &mut body));
    let head = format!(
        "POST /intake HTTP/1.1\r\nHost: api\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut sender = TcpStream::connect(addr).expect("connect");
    sender
        .write_all(head.as_bytes())
        .and_then(|_| sender.write_all(&body))
        .expect("send the batch");
    sender
}

/// The lb sends the batch again until a worker answers 200, which finds nothing new by
/// then; every payment is paid all the same, each once.
fn resend_until_recorded(stack: &Stack, worker: &Worker, sent: &[payment::intake::Accepted]) {
    wait_for(
        "the batch re-sent and answered 200",
        Duration::from_secs(10),
        || {
            let again = worker.intake(sent);
            again.status == 200 && again.json()["recorded"] == 0
        },
    );
    worker.wait_processed(sent.len(), Duration::from_secs(10));
    stack.assert_settled(worker, sent);
}

/// Commits whose answer is lost, for real, on a PostgreSQL server of the test's own: the
/// server waits after each commit for a synchronous standby that does not exist, and the
/// waiting backend is terminated, which keeps the commit and drops its connection.
struct LostCommitAnswers(Arc<PgServer>);

impl LostCommitAnswers {
    /// A worker that only records intake, on a dedicated server whose commits are held
    /// from the start ([`Self::hold`]).
    fn start() -> (Stack, Worker, LostCommitAnswers) {
        Self::start_with(&[], only_intake_writes)
    }

    /// [`Self::start`] with these simulator variables and worker settings.
    fn start_with(
        sim_env: &[(&str, &str)],
        tweak: impl FnOnce(&mut Config),
    ) -> (Stack, Worker, LostCommitAnswers) {
        let server = Arc::new(PgServer::dedicated());
        let stack = Stack::on_server(Arc::clone(&server), sim_env);
        let worker = stack.worker(tweak);
        let commits = LostCommitAnswers(server);
        commits.hold();
        (stack, worker, commits)
    }

    fn psql(&self, sql: &str) -> Vec<String> {
        self.0
            .psql("postgres", sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// From now on every commit waits (for the standby) until [`Self::cut_off`].
    fn hold(&self) {
        self.psql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
        self.psql("SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(300));
    }

    /// How many commits wait now.
    fn waiting(&self) -> usize {
        let rows = self.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
        rows.first().and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// The waiting commits stay committed; their connections drop before the answer.
    fn cut_off(&self) {
        self.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        );
    }

    /// Posts `sent` to the worker's intake while every commit that waits is cut off, until
    /// intake answers: intake's own, and any other write the worker made meanwhile (its
    /// writes share one connection). Returns intake's answer.
    fn intake_answer_lost(
        &self,
        worker: &Worker,
        sent: &[payment::intake::Accepted],
    ) -> testkit::http::Response {
        std::thread::scope(|s| {
            let answer = s.spawn(|| worker.intake(sent));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !answer.is_finished() && Instant::now() < deadline {
                self.cut_off();
                std::thread::sleep(Duration::from_millis(50));
            }
            // Also frees a write still waiting if intake never answered, so the test fails
            // instead of hanging.
            self.release();
            answer.join().expect("the intake thread")
        })
    }

    /// Commits are acknowledged again (a commit still waiting is answered).
    fn release(&self) {
        self.psql("ALTER SYSTEM RESET synchronous_standby_names");
        self.psql("SELECT pg_reload_conf()");
    }
}

#[test]
fn a_batch_committed_but_answered_with_an_error_after_its_sender_gave_up_is_still_paid() {
    testkit::skip_without_postgres!();
    // As below, but the lb's forward timeout closed the connection while the commit
    // waited: no request is left to hear that the write failed. The lb sends the batch
    // again, which finds nothing new: the payments must be paid all the same, each once.
    let (stack, worker, commits) = LostCommitAnswers::start();
    let sent = payments(20);
    let sender = post_intake_unanswered(&worker.addr, &sent);
    wait_for(
        "the batch's commit waiting",
        Duration::from_secs(10),
        || commits.waiting() > 0,
    );
    drop(sender); // the lb gives up
    std::thread::sleep(Duration::from_millis(300));
    commits.cut_off();
    commits.release();

    resend_until_recorded(&stack, &worker, &sent);
}

#[test]
fn payments_claimed_by_a_commit_whose_answer_was_lost_are_still_paid() {
    testkit::skip_without_postgres!();
    // A claim is a write too: its commit can succeed and its answer be lost. The claimed
    // payments are then this live worker's, in no queue: they must be paid all the same,
    // each once, those the dead worker had sent included.
    let (stack, worker, commits) = LostCommitAnswers::start();
    let orphans = payments(20);
    // A worker died with these pending, half of them sent to the default; its heartbeat
    // row is gone, so they are claimable at once (written without waiting for the standby).
    let sent_at = payment::Millis::now().0;
    let rows: Vec<String> = orphans
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let attempt = match i % 2 {
                0 => format!("'default', {sent_at}"),
                _ => "NULL, NULL".to_string(),
            };
            format!(
                "('{}', {}, 'pending', {}, 'dead-worker', {attempt})",
                a.payment.correlation_id, a.payment.amount.0, a.accepted_at.0
            )
        })
        .collect();
    let database = stack
        .database_url
        .as_deref()
        .and_then(|url| url.rsplit('/').next());
    let insert = format!(
        "SET synchronous_commit = local; INSERT INTO payments (correlation_id, amount, status, accepted_at, owner, processor, requested_at) VALUES {}",
        rows.join(", ")
    );
    commits
        .0
        .psql(database.expect("a PostgreSQL database"), &insert)
        .unwrap_or_else(|e| panic!("{e}"));

    wait_for(
        "the claim's commit waiting",
        Duration::from_secs(10),
        || commits.waiting() > 0,
    );
    commits.cut_off();
    commits.release();
    worker.wait_processed(orphans.len(), Duration::from_secs(10));
    stack.assert_settled(&worker, &orphans);
}

/// No writes but intake's for a while (heartbeats and health turns would be committed too).
fn only_intake_writes(c: &mut Config) {
    c.heartbeat = Duration::from_secs(30);
    c.worker_dead_after = Duration::from_secs(60);
    c.health_read = Duration::from_secs(30);
}

#[test]
fn a_payment_read_back_then_sent_without_answer_keeps_the_requested_at_the_processor_stored() {
    testkit::skip_without_postgres!();
    // The batch's commit succeeds with its answer lost, so the payments are read back (each
    // stamped for the default by that write). Their first call gets no answer (the default
    // is slower than the call timeout) yet is stored; the next, answered 422, must be
    // recorded with the requestedAt the default stored, not with a new one.
    let store_after_disconnect = [(sim::config::SIM_STORE_AFTER_DISCONNECT, "1")];
    let (stack, worker, commits) = LostCommitAnswers::start_with(&store_after_disconnect, |c| {
        only_intake_writes(c);
        c.processor_timeout = Duration::from_millis(300);
    });
    stack.default.set_delay(1_000);
    let sent = payments(20);
    let first = commits.intake_answer_lost(&worker, &sent);
    assert_eq!(first.status, 503, "{}", first.body);
    wait_for(
        "the read-back payments stored after their calls timed out",
        Duration::from_secs(15),
        || stack.default.stat("paymentsStored") as usize >= sent.len(),
    );
    stack.default.set_delay(0);
    resend_until_recorded(&stack, &worker, &sent);
}

#[test]
fn a_batch_committed_but_answered_with_an_error_is_still_paid() {
    testkit::skip_without_postgres!();
    // On PostgreSQL a commit can succeed and its answer be lost (the connection drops after
    // COMMIT was sent). Provoked for real: the server waits after each commit for a
    // synchronous standby that does not exist, and the waiting backend is terminated, which
    // keeps the commit. Intake answers 503 and the lb sends the batch again, which then
    // finds nothing new: the payments must be paid all the same, each once.
    let (stack, worker, commits) = LostCommitAnswers::start();
    let sent = payments(20);
    let first = commits.intake_answer_lost(&worker, &sent);
    assert_eq!(first.status, 503, "{}", first.body);

    // The lb sends it again until a worker answers 200: nothing is new by then.
    resend_until_recorded(&stack, &worker, &sent);
}
