//! Process state: sessions, parent death, limits, waiting, signalling,
//! exec. Everything but `wait_pidfd_status` is fork-safe.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::{check, check_int, Errno, SysResult};

/// Asks for `signal` when the parent (the thread that forked us) dies.
pub fn set_parent_death_signal(signal: libc::c_int) -> SysResult<()> {
    // SAFETY: PR_SET_PDEATHSIG takes an integer.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}

/// Starts a new session with no controlling terminal: TIOCSTI into the
/// person's terminal then fails, and job-control signals from it stop.
pub fn new_session() -> SysResult<()> {
    // SAFETY: no arguments.
    check_int(unsafe { libc::setsid() }).map(|_| ())
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: libc::c_int) -> SysResult<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(|_| ())
}

/// Fork-safe: sets a resource limit.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> SysResult<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a live rlimit the kernel only reads.
    check_int(unsafe { libc::setrlimit(resource, &lim) }).map(|_| ())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_status(status: libc::c_int) -> Option<Exit> {
        if libc::WIFEXITED(status) {
            Some(Exit::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Exit::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }
}

/// Reaps one child (any with `pid` -1) without blocking; `None` if none
/// has ended.
pub fn reap(pid: libc::pid_t) -> SysResult<Option<(libc::pid_t, Exit)>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live int waitpid writes to.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if ret < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if ret == 0 {
            return Ok(None);
        }
        if let Some(exit) = Exit::from_status(status) {
            return Ok(Some((ret, exit)));
        }
    }
}

/// Blocks until `pid` (any child with -1) ends and reaps it; ECHILD when
/// there is none. Fork-safe.
pub fn wait(pid: libc::pid_t) -> SysResult<Exit> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live int waitpid writes to.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if let Some(exit) = Exit::from_status(status) {
            return Ok(exit);
        }
    }
}

/// Sends `signal` to `pid` (a process group when negative).
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> SysResult<()> {
    // SAFETY: kill takes integers.
    check_int(unsafe { libc::kill(pid, signal) }).map(|_| ())
}

/// Sends `signal` through a pidfd, which cannot hit a recycled pid.
pub fn pidfd_kill(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> SysResult<()> {
    // SAFETY: no pointers (the siginfo argument is null).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    check(ret).map(|_| ())
}

/// Replaces the process image. Returns only on failure.
///
/// `argv` and `envp` are null-terminated arrays of pointers into strings the
/// caller keeps alive.
pub fn exec(
    path: &std::ffi::CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> Errno {
    if argv.last() != Some(&std::ptr::null()) || envp.last() != Some(&std::ptr::null()) {
        return Errno(libc::EINVAL);
    }
    // SAFETY: `path` is NUL-terminated; argv and envp are null-terminated
    // pointer arrays (checked above) whose strings the caller keeps alive.
    unsafe {
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    Errno::last()
}

/// The real user and group ids. Fork-safe.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take no arguments and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Makes this process the reaper of its orphaned descendants, so a run
/// without a pid namespace can still find and kill everything it started.
pub fn set_child_subreaper() -> SysResult<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer.
    check_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })
        .map(|_| ())
}
