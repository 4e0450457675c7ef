//! The raw calls of the launcher's own state: what it inherited from its
//! caller and puts right before anything else runs (environment,
//! descriptors, signals, timers, limits, umask, directory, dumpability),
//! the ids and capabilities it checks, and the file-system ids it lowers
//! to the caller's. Each is one or two system calls behind a safe
//! function; the rest of the launcher calls these.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// An errno value.
pub type Errno = i32;

fn last() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(ret: libc::c_int) -> Result<libc::c_int, Errno> {
    if ret < 0 {
        Err(last())
    } else {
        Ok(ret)
    }
}

/// Empties the environment. Called first thing in `main`, while the
/// process has one thread and nothing has read the environment yet.
pub fn clear_env() -> Result<(), Errno> {
    // SAFETY: clearenv only touches `environ`; the launcher is
    // single-threaded here and holds no pointer into the environment.
    check(unsafe { libc::clearenv() }).map(|_| ())
}

/// Closes every descriptor from `first` up.
pub fn close_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes integers and only closes descriptors this
    // process has not yet given any owner to.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if ret < 0 {
        Err(last())
    } else {
        Ok(())
    }
}

/// Whether descriptor `fd` is open.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Puts /dev/null on the closed descriptor `fd` (one of 0, 1, 2), so that
/// no file the launcher opens later lands there and gets its messages.
pub fn null_onto(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: the path is NUL-terminated; open returns a new descriptor or
    // -1. The lowest free number is `fd` itself, as the ones below it are
    // open; dup2 covers the case where it is not.
    let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
    if null != fd {
        // SAFETY: two integers; `null` is ours and closed right after.
        let ret = unsafe { libc::dup2(null, fd) };
        // SAFETY: `null` was opened above and is not used again.
        unsafe { libc::close(null) };
        check(ret)?;
    }
    Ok(())
}

/// Whether `fd` is a connected UNIX stream socket (as moat's socketpairs
/// are).
pub fn is_unix_stream(fd: RawFd) -> bool {
    let get = |opt: libc::c_int| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are live locals the kernel writes an int and
        // its size into.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (ret == 0).then_some(v)
    };
    get(libc::SO_DOMAIN) == Some(libc::AF_UNIX) && get(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}

/// Takes ownership of descriptor `fd`, which the process was started with.
/// Called once per descriptor (by `main`, for moat's two channels), after
/// [`is_unix_stream`] found it open.
pub fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` is open (checked by the caller), was inherited at exec,
    // and nothing else in this process owns it: main adopts each channel
    // once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Marks `fd` close-on-exec, so no program the launcher runs (nft)
/// inherits it.
pub fn set_cloexec(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: F_SETFD takes an integer flag word.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(|_| ())
}

/// Every signal back to its default action, none blocked: a caller can
/// leave signals ignored or blocked across exec (an ignored SIGCHLD would
/// make the kernel reap the sandbox behind the launcher's back). SIGPIPE
/// and SIGXFSZ are ignored: a write to a moat that went away, or past a
/// file-size limit the launcher could not raise, fails with an error the
/// launcher handles, instead of killing it halfway. (The sandbox's
/// command gets both back at their defaults.)
pub fn reset_signals() -> Result<(), Errno> {
    for signal in 1..libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        let action = if signal == libc::SIGPIPE || signal == libc::SIGXFSZ {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // SAFETY: a plain disposition (no handler function) for a signal
        // number in range; numbers glibc reserves for itself fail with
        // EINVAL, which leaves them as they are.
        unsafe { libc::signal(signal, action) };
    }
    // SAFETY: an empty, initialised set, passed by pointer for the call.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &set,
            std::ptr::null_mut(),
        ))?;
    }
    Ok(())
}

/// Cancels the interval timers, which survive exec: a caller could set
/// one to interrupt the launcher at a moment of its choosing.
pub fn clear_timers() -> Result<(), Errno> {
    let zero = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        // SAFETY: `zero` is a live itimerval the kernel only reads.
        check(unsafe { libc::setitimer(which, &zero, std::ptr::null_mut()) })?;
    }
    Ok(())
}

/// Sets the file-mode creation mask.
pub fn set_umask(mask: libc::mode_t) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask) };
}

/// Makes `/` the working directory.
pub fn chdir_root() -> Result<(), Errno> {
    // SAFETY: the path is NUL-terminated.
    check(unsafe { libc::chdir(c"/".as_ptr()) }).map(|_| ())
}

/// No core dumps and no ptrace by the caller: a dump of a process that
/// read the account databases, or an attached debugger, would hand them
/// what the launcher knows.
pub fn set_undumpable() -> Result<(), Errno> {
    // SAFETY: PR_SET_DUMPABLE takes an integer.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(|_| ())
}

/// Leaves the caller's session and process group, so a terminal's
/// signals reach the launcher only as moat forwards them.
pub fn new_session() {
    // SAFETY: no arguments; failing (already a leader) changes nothing.
    unsafe { libc::setsid() };
}

/// (real, effective, saved) user ids.
pub fn user_ids() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three live locals the kernel writes into; cannot fail with
    // valid pointers.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

/// (real, effective, saved) group ids.
pub fn group_ids() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: as in user_ids.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

/// The effective capability set (both 32-bit words).
pub fn effective_caps() -> Result<u64, Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a live header and the two-element data array version 3
    // wants; the kernel fills `data`.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret < 0 {
        return Err(last());
    }
    Ok(u64::from(data[0].effective) | u64::from(data[1].effective) << 32)
}

/// A resource limit: (soft, hard).
pub fn get_rlimit(resource: libc::__rlimit_resource_t) -> Result<(u64, u64), Errno> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit the kernel writes into.
    check(unsafe { libc::getrlimit(resource, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets a resource limit.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a live rlimit the kernel only reads.
    check(unsafe { libc::setrlimit(resource, &lim) }).map(|_| ())
}
