//! Every raw system call of the backend, one module per concern.
//!
//! Everything here is a small safe function over one or two syscalls.
//! Functions marked *fork-safe* neither allocate nor take locks, so they may
//! run in the child of a `clone` made by a multi-threaded process: their
//! arguments are prepared by the parent (`CStr`s, fixed-size structs) and
//! their results are plain numbers.

pub mod at;
pub mod caps;
pub mod clone;
pub mod fd;
pub mod ids;
pub mod landlock;
pub mod mount;
pub mod net;
pub mod nfgen;
pub mod notify;
pub mod process;
pub mod pty;
pub mod seccomp;
pub mod signal;

use std::fmt;

/// An `errno` value. Fork-safe to construct and copy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Errno {
        // SAFETY: __errno_location returns a valid pointer to the calling
        // thread's errno for the life of the thread.
        Errno(unsafe { *libc::__errno_location() })
    }

    pub fn io(self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.0)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.io())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.io())
    }
}

pub type SysResult<T> = Result<T, Errno>;

/// Turns a `-1 means errno` return value into a result.
fn check(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}
