//! Creating processes.

use std::os::fd::{FromRawFd, OwnedFd};

use super::{check, SysResult};

/// Which side of a fork this is.
#[derive(Debug)]
pub enum Forked {
    /// In the parent: the child's pid and, when asked for, a pidfd.
    Parent {
        pid: libc::pid_t,
        pidfd: Option<OwnedFd>,
    },
    /// In the child.
    Child,
}

/// Forks with `flags` (namespace flags, `CLONE_PIDFD`), like `fork(2)` but
/// through the raw `clone` syscall so namespaces are created with the child.
///
/// The child runs on a copy of the caller's stack and memory. If the caller
/// has other threads, the child must only call fork-safe functions until it
/// execs or exits: locks held by those threads stay held forever in it.
pub fn fork_with(flags: libc::c_ulong) -> SysResult<Forked> {
    let mut pidfd: libc::c_int = -1;
    let want_pidfd = flags & libc::CLONE_PIDFD as libc::c_ulong != 0;
    // SAFETY: with a null stack pointer and no CLONE_VM the kernel gives the
    // child a copy-on-write copy of the caller's address space, as fork does,
    // so both sides keep running on valid stacks. `pidfd` is a live local
    // the kernel writes to (CLONE_PIDFD) before returning in the parent; the
    // child-tid and tls arguments are unused without the flags that read
    // them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    let pid = check(ret)?;
    if pid == 0 {
        return Ok(Forked::Child);
    }
    let pidfd = if want_pidfd && pidfd >= 0 {
        // SAFETY: the kernel just created this descriptor for us and nothing
        // else owns it.
        Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
    } else {
        None
    };
    Ok(Forked::Parent {
        pid: pid as libc::pid_t,
        pidfd,
    })
}

/// Fork-safe: `fork_with(0)` without the pidfd, for the sandbox's init.
pub fn fork_plain() -> SysResult<Option<libc::pid_t>> {
    // SAFETY: as in fork_with; no pointers are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match check(ret)? {
        0 => Ok(None),
        pid => Ok(Some(pid as libc::pid_t)),
    }
}

/// Fork-safe: leaves the process at once with `code`, running no exit
/// handlers (which could take locks or flush the parent's buffers twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}
