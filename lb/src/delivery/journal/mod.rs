//! The payments the lb answered 202 and no worker has committed yet, kept in a shared
//! memory mapping of a file on the data volume (`LB_JOURNAL_PATH`), so that an lb killed
//! by SIGKILL, the OOM killer or a panic loses none of them: the next lb replays them to
//! the workers, whose intake is idempotent. Recording one is a 40-byte store into the
//! mapping: no system call, no fsync, no lock on the 202 path.
//!
//! Invariant: a payment is recorded before its 202 and retired only after a worker
//! committed it (or a purge); a slot cut short by a kill is never replayed.

use payment::intake::Accepted;
use payment::{Cents, Millis, Payment, Uuid};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

const MAGIC: [u8; 8] = *b"RPJRNL01";
const HEADER_BYTES: usize = 64;
const SLOT_BYTES: usize = 40;
const PAGE_BYTES: usize = 4096;
/// How far ahead of the next payment, and how often, [`keep_ahead_writable`] writes to the
/// ring: 4,096 slots (41 pages) are seconds of the contest's peak rate, every 50 ms.
const AHEAD_SLOTS: u64 = 4096;
const AHEAD_EVERY: Duration = Duration::from_millis(50);
const FREE: u64 = 0;
const WRITING: u64 = u64::MAX;

/// A payment's place in the journal: its sequence number, or `Seq::NONE` when the
/// journal is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq(u64);

impl Seq {
    pub(crate) const NONE: Seq = Seq(0);
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {action} the lb journal {path}: {source} (LB_JOURNAL_PATH names a file on the data volume; empty turns the journal off)")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "another lb uses the journal {path}: stop it, or give this one its own LB_JOURNAL_PATH"
    )]
    InUse { path: PathBuf },
    #[error("{path} is not an lb journal: move it away or set LB_JOURNAL_PATH to another file")]
    Foreign { path: PathBuf },
    #[error("the journal {path} holds {live} undelivered payments, more than this lb keeps ({slots}): raise LB_QUEUE_CAPACITY to at least {live}")]
    TooSmall {
        path: PathBuf,
        live: usize,
        slots: usize,
    },
}

/// The journal, or nothing when it is off.
///
/// A slot's life: [`Journal::record`] takes the slot of the next sequence number if it is
/// free (else the payment gets 503, like a full queue); [`Journal::retire`] frees it once a
/// worker committed the payment, only if it still holds that sequence number (a purge may
/// have freed it and a newer payment taken it). There are as many slots as the queue holds
/// plus two batches (`Config::journal_slots`), so a slot comes round again long after its
/// payment was delivered.
pub struct Journal(Option<Arc<Ring>>);

/// Dropping the journal releases its file: the page thread ([`keep_ahead_writable`]) may
/// hold the ring for the instant of one pass, so the drop waits that instant out, and a
/// journal opened again on the same path right after does not find its lock still held.
impl Drop for Journal {
    fn drop(&mut self) {
        let Some(mut ring) = self.0.take() else {
            return;
        };
        while let Err(shared) = Arc::try_unwrap(ring) {
            ring = shared;
            std::thread::yield_now();
        }
    }
}

/// The mapped file and the next sequence number.
///
/// The file: a [`HEADER_BYTES`] header (magic, slot count), then slots of [`SLOT_BYTES`]:
/// `state`, the correlation id, the cents, the accept time. `state` is [`FREE`], [`WRITING`]
/// while the slot is being filled, else the payment's sequence number, written last, so a
/// slot cut short by a kill is never replayed (its payment had no 202 yet).
struct Ring {
    map: Mapping,
    slots: u64,
    next: AtomicU64,
    /// Held for the life of the process: the flocks on the file and on the one it replaced.
    _locks: [File; 2],
}

impl Journal {
    /// No journal: every payment the lb holds is lost if it is killed.
    pub(crate) fn off() -> Journal {
        Journal(None)
    }

    /// Opens the journal at `path` with room for `slots` payments and returns it with the
    /// payments the previous lb left undelivered, oldest first, already recorded in it.
    ///
    /// The live slots of the old file are written in their order into a fresh file beside
    /// it, renamed over the old one (a kill at any moment leaves one of the two whole); then
    /// every page is written once, so the 202 path takes no page fault. An exclusive
    /// `flock` keeps a second lb off the same journal.
    pub fn open(
        path: &Path,
        slots: usize,
    ) -> Result<(Journal, Vec<(Seq, Accepted)>), JournalError> {
        let io = |action| {
            move |source| JournalError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create the folder of"))?;
        }
        let old = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("open"))?;
        lock(&old, path)?;
        let left = read_live(&old, path)?;
        if left.len() > slots {
            return Err(JournalError::TooSmall {
                path: path.to_path_buf(),
                live: left.len(),
                slots,
            });
        }
        let fresh_path = sibling(path, "new");
        let fresh = create(&fresh_path, slots).map_err(io("create the fresh copy of"))?;
        lock(&fresh, &fresh_path)?;
        let map = Mapping::new(&fresh, HEADER_BYTES + slots * SLOT_BYTES).map_err(io("map"))?;
        let ring = Ring {
            map,
            slots: slots as u64,
            next: AtomicU64::new(1),
            _locks: [old, fresh],
        };
        ring.write_header();
        let replay = left
            .into_iter()
            .map(|a| (ring.record(&a).unwrap_or(Seq::NONE), a))
            .collect();
        ring.map.touch_every_page();
        std::fs::rename(&fresh_path, path).map_err(io("replace"))?;
        let ring = Arc::new(ring);
        keep_ahead_writable(Arc::downgrade(&ring));
        Ok((Journal(Some(ring)), replay))
    }

    /// Records a payment about to be queued; `None` when its slot is still taken (the
    /// journal is as full as the queue can be: answer 503).
    pub fn record(&self, accepted: &Accepted) -> Option<Seq> {
        match &self.0 {
            Some(ring) => ring.record(accepted),
            None => Some(Seq::NONE),
        }
    }

    /// Frees the slot of a payment a worker committed (or that could not be queued).
    pub fn retire(&self, seq: Seq) {
        if let (Some(ring), Seq(n)) = (&self.0, seq) {
            if n != 0 {
                // Fails only if a purge freed the slot and a newer payment took it.
                let _ =
                    ring.state(n)
                        .compare_exchange(n, FREE, Ordering::Release, Ordering::Relaxed);
            }
        }
    }

    /// Frees every slot (a purge): a later replay brings back no payment from before it.
    pub(crate) fn clear(&self) {
        if let Some(ring) = &self.0 {
            for i in 0..ring.slots {
                let state = ring.state(i);
                let held = state.load(Ordering::Acquire);
                if held != FREE && held != WRITING {
                    let _ =
                        state.compare_exchange(held, FREE, Ordering::Release, Ordering::Relaxed);
                }
            }
        }
    }

    /// Payments recorded and not yet retired (a scan of every slot).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.0.as_ref().map_or(0, |ring| {
            (0..ring.slots)
                .filter(|&i| !matches!(ring.state(i).load(Ordering::Acquire), FREE | WRITING))
                .count()
        })
    }
}

impl Ring {
    fn record(&self, accepted: &Accepted) -> Option<Seq> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let state = self.state(seq);
        state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let mut bytes = [0u8; SLOT_BYTES - 8];
        bytes[..16].copy_from_slice(accepted.payment.correlation_id.as_bytes());
        bytes[16..24].copy_from_slice(&accepted.payment.amount.0.to_le_bytes());
        bytes[24..].copy_from_slice(&accepted.accepted_at.0.to_le_bytes());
        // SAFETY: the slot is ours while its state is WRITING (the exchange above), the
        // range lies inside the mapping (`slot_offset` < its length), and nothing else
        // reads or writes those bytes meanwhile.
        unsafe {
            let data = self.map.ptr.add(self.slot_offset(seq) + 8);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        }
        state.store(seq, Ordering::Release);
        Some(Seq(seq))
    }

    /// One write to every page the next `AHEAD_SLOTS` slots use (see [`keep_ahead_writable`]).
    fn dirty_ahead(&self) {
        let next = self.next.load(Ordering::Relaxed);
        // Less than a page apart: every page gets at least one write.
        let step = (PAGE_BYTES / SLOT_BYTES) as u64;
        for k in (0..AHEAD_SLOTS.min(self.slots)).step_by(step as usize) {
            self.state(next + k).fetch_add(0, Ordering::Relaxed);
        }
    }

    fn slot_offset(&self, seq: u64) -> usize {
        HEADER_BYTES + (seq % self.slots) as usize * SLOT_BYTES
    }

    fn state(&self, seq: u64) -> &AtomicU64 {
        // SAFETY: in the mapping (see `slot_offset`), 8-byte aligned (the mapping is
        // page-aligned, the header and the slots are multiples of 8), and only ever
        // accessed atomically.
        unsafe { &*(self.map.ptr.add(self.slot_offset(seq)) as *const AtomicU64) }
    }

    fn write_header(&self) {
        let mut header = [0u8; 16];
        header[..8].copy_from_slice(&MAGIC);
        header[8..].copy_from_slice(&self.slots.to_le_bytes());
        // SAFETY: the header lies inside the mapping and nothing else uses it yet.
        unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), self.map.ptr, header.len()) };
    }
}

/// Starts the thread that keeps the pages the next payments will use dirty and writable.
///
/// Why: once the kernel has written a page back, it write-protects it to notice the next
/// change, and that write faults; on ext4 the fault updates the file's mtime, which can
/// wait while the filesystem's journal commits (as the workers' SQLite commits on the same
/// volume). So this thread takes those faults ahead of the 202 path: every [`AHEAD_EVERY`]
/// it adds 0 to one slot state per page of the next [`AHEAD_SLOTS`] slots (an atomic write
/// that changes nothing). It ends when the journal is dropped. The p99 spikes that
/// prompted it came with the journal off too (bench/RESULTS.md, "No payment lost by a
/// crash: the lb's journal", and "The wiring refactor changes neither behaviour nor cost").
fn keep_ahead_writable(ring: Weak<Ring>) {
    let spawned = std::thread::Builder::new()
        .name("lb-journal".into())
        .spawn(move || {
            while let Some(ring) = ring.upgrade() {
                ring.dirty_ahead();
                drop(ring);
                std::thread::sleep(AHEAD_EVERY);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "cannot start the journal's page thread; the 202 path may wait on page faults: {e}"
        );
    }
}

/// The undelivered payments of a journal file, oldest first; none if it is empty.
fn read_live(mut file: &File, path: &Path) -> Result<Vec<Accepted>, JournalError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| JournalError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < HEADER_BYTES || bytes[..8] != MAGIC {
        return Err(JournalError::Foreign {
            path: path.to_path_buf(),
        });
    }
    let mut live: Vec<(u64, Accepted)> = bytes[HEADER_BYTES..]
        .chunks_exact(SLOT_BYTES)
        .filter_map(|slot| {
            let word =
                |at: usize| u64::from_le_bytes(slot[at..at + 8].try_into().unwrap_or_default());
            let state = word(0);
            let id = Uuid::from_slice(&slot[8..24]).ok()?;
            let accepted = Accepted {
                payment: Payment {
                    correlation_id: id,
                    amount: Cents(word(24) as i64),
                },
                accepted_at: Millis(word(32) as i64),
            };
            (state != FREE && state != WRITING).then_some((state, accepted))
        })
        .collect();
    live.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(live.into_iter().map(|(_, a)| a).collect())
}

/// A new zero-filled journal file of `slots` slots.
fn create(path: &Path, slots: usize) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_len((HEADER_BYTES + slots * SLOT_BYTES) as u64)?;
    Ok(file)
}

fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    // SAFETY: a plain system call on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    Err(match source.kind() {
        io::ErrorKind::WouldBlock => JournalError::InUse {
            path: path.to_path_buf(),
        },
        _ => JournalError::Io {
            action: "lock",
            path: path.to_path_buf(),
            source,
        },
    })
}

/// `path` with `.suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// A shared, writable mapping of a whole file, unmapped when dropped.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; `Ring` only accesses it through atomics or
// through slots it owns (see `Ring::record`).
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &File, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping of `len` bytes of a file that is `len` bytes long.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Writes one byte of every page (its own value), so each page is in memory, mapped
    /// and writable before the first payment: the 202 path takes no page fault.
    fn touch_every_page(&self) {
        for offset in (0..self.len).step_by(PAGE_BYTES) {
            // SAFETY: inside the mapping; a volatile read and write of the same value
            // cannot race with a slot write (the first byte of a page is never in the
            // middle of a slot being written: nothing is written yet but the header and
            // the replayed slots, by this thread).
            unsafe {
                let byte = self.ptr.add(offset);
                byte.write_volatile(byte.read_volatile());
            }
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests;
