//! The lb's turn on a contended core: its threads ask the kernel (Linux 6.12+, EEVDF) for
//! a short slice, so a thread woken by a request runs before the task holding the core
//! instead of after that task's slice. A turn sooner, not a larger share: the CPU quota
//! still caps the lb. Threads inherit the slice, so it is asked for before any exists;
//! older kernels ignore it. Why: docs/architecture.md, "The lb's slice".

use std::io;
use std::time::Duration;

/// The first layout of the kernel's `struct sched_attr` (`SCHED_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Why the slice was not set.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SliceError {
    #[error("cannot read this process's scheduling attributes: {0}")]
    Read(#[source] io::Error),
    #[error("the lb runs under scheduling policy {0}, not the kernel's default; its slice is left alone")]
    Policy(u32),
    #[error("cannot ask the kernel for a {0:?} slice (set LB_SLICE_US=0 to not ask): {1}")]
    Write(Duration, #[source] io::Error),
}

/// Asks the kernel for `slice` as the calling thread's slice (and, through inheritance,
/// every thread it starts later), keeping its policy and nice value. The kernel clamps it
/// to 0.1–100 ms.
pub(crate) fn ask_for(slice: Duration) -> Result<(), SliceError> {
    let mut attr = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
    // SAFETY: `attr` is a valid, writable `sched_attr` of `size` bytes; pid 0 is the
    // calling thread.
    let read = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
    if read != 0 {
        return Err(SliceError::Read(io::Error::last_os_error()));
    }
    if attr.policy != libc::SCHED_OTHER as u32 && attr.policy != libc::SCHED_BATCH as u32 {
        return Err(SliceError::Policy(attr.policy));
    }
    attr.size = size;
    attr.flags = 0;
    attr.runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
    // SAFETY: as above; the kernel only reads `attr`.
    let written = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) };
    if written != 0 {
        return Err(SliceError::Write(slice, io::Error::last_os_error()));
    }
    Ok(())
}
