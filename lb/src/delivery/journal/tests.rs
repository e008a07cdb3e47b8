use super::*;

fn payment(i: i64) -> Accepted {
    Accepted {
        payment: Payment {
            correlation_id: Uuid::new_v4(),
            amount: Cents(1990 + i),
        },
        accepted_at: Millis(1_752_150_896_789 + i),
    }
}

fn replayed(left: &[(Seq, Accepted)]) -> Vec<Accepted> {
    left.iter().map(|(_, a)| *a).collect()
}

#[test]
fn what_was_not_retired_comes_back_in_order_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lb.journal");
    let (journal, left) = Journal::open(&path, 8).unwrap();
    assert!(left.is_empty());
    let payments: Vec<_> = (0..5).map(payment).collect();
    let seqs: Vec<_> = payments
        .iter()
        .map(|p| journal.record(p).unwrap())
        .collect();
    journal.retire(seqs[1]);
    journal.retire(seqs[3]);
    drop(journal); // as a killed lb: nothing more is written

    let (journal, left) = Journal::open(&path, 8).unwrap();
    assert_eq!(replayed(&left), [payments[0], payments[2], payments[4]]);
    assert_eq!(journal.live(), 3);
    left.iter().for_each(|(seq, _)| journal.retire(*seq));
    drop(journal);
    let (_journal, left) = Journal::open(&path, 8).unwrap();
    assert!(left.is_empty(), "retired after the replay: {left:?}");
}

#[test]
fn a_full_ring_refuses_until_a_slot_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(&dir.path().join("j"), 2).unwrap();
    let first = journal.record(&payment(0)).unwrap();
    journal.record(&payment(1)).unwrap();
    assert_eq!(
        journal.record(&payment(2)),
        None,
        "the third payment's slot is the first's"
    );
    journal.retire(first);
    // The refused try used up a sequence number: the next one maps to the second slot.
    assert_eq!(journal.record(&payment(3)), None);
    assert!(journal.record(&payment(4)).is_some());
    assert_eq!(journal.live(), 2);
}

#[test]
fn a_purge_clears_it_and_a_late_retire_frees_no_newer_payment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (journal, _) = Journal::open(&path, 2).unwrap();
    let before = journal.record(&payment(0)).unwrap();
    journal.clear();
    assert_eq!(journal.live(), 0);
    journal.record(&payment(1)).unwrap();
    let newer = payment(2);
    journal.record(&newer).unwrap(); // the slot `before` had
    journal.retire(before); // the forwarder delivering the purged one afterwards
    assert_eq!(journal.live(), 2);
    drop(journal);
    let (_journal, left) = Journal::open(&path, 2).unwrap();
    assert!(replayed(&left).contains(&newer));
    assert_eq!(left.len(), 2);
}

#[test]
fn a_second_lb_cannot_open_it_and_a_foreign_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (_first, _) = Journal::open(&path, 4).unwrap();
    assert!(matches!(
        Journal::open(&path, 4),
        Err(JournalError::InUse { .. })
    ));

    let foreign = dir.path().join("payments.db");
    std::fs::write(
        &foreign,
        b"SQLite format 3\0 and more bytes than a header holds, surely enough",
    )
    .unwrap();
    let before = std::fs::read(&foreign).unwrap();
    assert!(matches!(
        Journal::open(&foreign, 4),
        Err(JournalError::Foreign { .. })
    ));
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
}

#[test]
fn a_smaller_journal_refuses_what_it_cannot_hold_and_a_larger_one_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (journal, _) = Journal::open(&path, 4).unwrap();
    let payments: Vec<_> = (0..3).map(payment).collect();
    payments.iter().for_each(|p| {
        journal.record(p).unwrap();
    });
    drop(journal);
    let refused = Journal::open(&path, 2);
    assert!(matches!(
        refused,
        Err(JournalError::TooSmall { live: 3, .. })
    ));
    let (_journal, left) = Journal::open(&path, 64).unwrap();
    assert_eq!(replayed(&left), payments);
}

#[test]
fn off_records_nothing_and_refuses_nothing() {
    let journal = Journal::off();
    assert_eq!(journal.record(&payment(0)), Some(Seq::NONE));
    journal.retire(Seq::NONE);
    journal.clear();
    assert_eq!(journal.live(), 0);
}
