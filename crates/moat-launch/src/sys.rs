//! The few calls the validation needs that std does not offer: walking a
//! path one component at a time without following symlinks, and asking
//! whether the *real* user (the launcher's caller) may reach it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What a path component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    Other,
}

/// Opens `name` under `dir` (or `/` when `dir` is `None`) as an O_PATH
/// descriptor without following a final symlink; its kind and owner.
pub fn step(dir: Option<&OwnedFd>, name: &[u8]) -> std::io::Result<(OwnedFd, Kind, u32)> {
    let c = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let at = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    // SAFETY: `c` is NUL-terminated and outlives the call; the result is a
    // new descriptor or -1.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: owned is a live descriptor; st is a valid, writable buffer.
    if unsafe { libc::fstat(owned.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    };
    Ok((owned, kind, st.st_uid))
}

/// Whether the real user and group (the caller of a setuid program) may
/// access `path` with `mode` (libc::R_OK, X_OK, ...).
pub fn real_access(path: &[u8], mode: libc::c_int) -> bool {
    let Ok(c) = CString::new(path) else {
        return false;
    };
    // SAFETY: `c` is NUL-terminated and outlives the call. Without
    // AT_EACCESS the check uses the real ids, as access(2) does.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, 0) == 0 }
}

/// The real user and group ids: the launcher's caller.
pub fn caller_ids() -> (u32, u32) {
    // SAFETY: no arguments; these calls cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Leaves moat's process group, so the terminal's signals reach the
/// launcher only as moat forwards them (once).
pub fn new_session() {
    // SAFETY: no arguments; failure (already a leader) changes nothing.
    unsafe { libc::setsid() };
}

/// Closes every descriptor from `first` up.
pub fn close_from(first: u32) {
    // SAFETY: close_range takes integers and only closes descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
}

/// Takes ownership of descriptor `fd` if it is open.
pub fn adopt(fd: i32) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open, and this process (just exec'd with
    // it as one of its channels) has no other owner for it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
