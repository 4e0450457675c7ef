//! Signal masks, signal waiting and signalfd.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{check_int, Errno, SysResult};

/// A set of signals. Fork-safe.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl std::fmt::Debug for SigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigSet")
    }
}

impl SigSet {
    pub fn empty() -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises all of it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            SigSet(set)
        }
    }

    pub fn full() -> SigSet {
        // SAFETY: as in empty; sigfillset initialises all of it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            SigSet(set)
        }
    }

    pub fn of(signals: &[libc::c_int]) -> SigSet {
        let mut set = SigSet::empty();
        for &s in signals {
            // SAFETY: `set.0` is an initialised sigset_t.
            unsafe {
                libc::sigaddset(&mut set.0, s);
            }
        }
        set
    }
}

/// Fork-safe: blocks `set` (SIG_BLOCK) or replaces the mask with it
/// (SIG_SETMASK); returns the previous mask.
pub fn mask(how: libc::c_int, set: &SigSet) -> SysResult<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both sets are live, initialised sigset_t values.
    let ret = unsafe { libc::pthread_sigmask(how, &set.0, &mut old.0) };
    if ret != 0 {
        return Err(Errno(ret));
    }
    Ok(old)
}

/// Fork-safe: puts `signal` back to its default action.
pub fn set_default(signal: libc::c_int) -> SysResult<()> {
    // SAFETY: SIG_DFL is a valid disposition; the old-action pointer is
    // unused.
    let ret = unsafe { libc::signal(signal, libc::SIG_DFL) };
    if ret == libc::SIG_ERR {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Fork-safe: waits for one of the blocked signals in `set`; returns its
/// number.
pub fn wait(set: &SigSet) -> SysResult<libc::c_int> {
    loop {
        // SAFETY: `set` is initialised; the info pointer may be null.
        let ret = unsafe { libc::sigwaitinfo(&set.0, std::ptr::null_mut()) };
        if ret >= 0 {
            return Ok(ret);
        }
        let e = Errno::last();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// A signalfd receiving the (already blocked) signals of `set`.
pub fn signalfd(set: &SigSet) -> SysResult<OwnedFd> {
    // SAFETY: `set` is initialised; -1 asks for a new descriptor.
    let fd =
        check_int(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: signalfd just created `fd` and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one pending signal from a signalfd, if any.
pub fn read_signalfd(fd: RawFd) -> SysResult<Option<libc::c_int>> {
    // SAFETY: signalfd_siginfo is plain data; zeroed is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a live buffer of exactly `size` bytes.
    let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    if n < 0 {
        let e = Errno::last();
        if e.0 == libc::EAGAIN || e.0 == libc::EINTR {
            return Ok(None);
        }
        return Err(e);
    }
    if n as usize != size {
        return Ok(None);
    }
    Ok(Some(info.ssi_signo as libc::c_int))
}
