//! seccomp user notification: installing a filter with a listener, taking
//! its notifications and answering them, and reading the arguments a
//! notified call points at in the caller's memory.
//!
//! The observer answers every call: with "continue" (the kernel then runs
//! the call with every other layer still checking it) or with the errno the
//! filter without a listener would have returned.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::{check, check_int, SysResult};

/// Fork-safe: installs `program` on the calling thread with a new
/// listener, returned as a raw descriptor (close-on-exec). EBUSY when a
/// filter already installed on this process has a listener (a sandbox
/// nested in another one that observes it).
pub fn install_with_listener(program: &[libc::sock_filter]) -> SysResult<RawFd> {
    super::seccomp::set_filter(program, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)
        .map(|fd| fd as RawFd)
}

/// Asks the kernel to hand each notification and its answer over on the
/// same CPU (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6): the caller
/// and the observer then switch directly instead of waking each other
/// across CPUs, which on a virtual machine costs tens of microseconds.
/// Fork-safe.
pub fn wake_synchronously(listener: RawFd) -> SysResult<()> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
    // SAFETY: this request takes its argument by value; nothing is read
    // or written through a pointer.
    check_int(unsafe {
        libc::ioctl(
            listener,
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    })
    .map(|_| ())
}

/// One notified call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    /// In the listener's pid namespace (the observer's).
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// Takes the next notification (blocks unless the listener polled
/// readable). ENOENT when its caller was killed in the meantime.
pub fn receive(listener: BorrowedFd<'_>) -> SysResult<Notification> {
    // SAFETY: a zeroed seccomp_notif is valid (plain integers), and the
    // kernel requires it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `n` is a live seccomp_notif of the size the request encodes;
    // the kernel only writes into it.
    check_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        )
    })?;
    Ok(Notification {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// How a notified call goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The kernel runs the call as if the filter had allowed it.
    Continue,
    /// The call fails with this errno.
    Fail(i32),
}

/// Answers notification `id`. ENOENT when its caller is gone.
pub fn answer(listener: BorrowedFd<'_>, id: u64, answer: Answer) -> SysResult<()> {
    let (error, flags) = match answer {
        Answer::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Answer::Fail(errno) => (-errno, 0),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error,
        flags,
    };
    // SAFETY: `resp` is a live seccomp_notif_resp of the size the request
    // encodes; the kernel reads it.
    check_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    })
    .map(|_| ())
}

/// Whether notification `id` is still pending: its caller has not been
/// killed, so what was read of its memory was the caller's.
pub fn still_pending(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut id = id;
    // SAFETY: `id` is a live u64 the kernel only reads.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id as *mut u64,
        )
    };
    ret == 0
}

/// Reads up to `buf.len()` bytes at `addr` in process `pid`'s memory.
pub fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is live and writable for its
    // length; `remote` is only an address in the other process, which the
    // kernel checks (EFAULT) and never dereferences here.
    let ret = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    check(ret as libc::c_long).map(|n| n as usize)
}
