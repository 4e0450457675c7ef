//! File descriptors and the few path operations the sandbox's setup needs.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{check_int, Errno, SysResult};

/// A pipe whose both ends are close-on-exec: `(read, write)`.
pub fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a live two-element array pipe2 fills in.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are new descriptors owned by no one
    // else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Fork-safe: closes a raw descriptor, ignoring errors (used on paths where
/// there is nothing better to do).
pub fn close_raw(fd: RawFd) {
    // SAFETY: the caller gives up `fd`; closing an fd it does not own would
    // at worst close some other descriptor of this short-lived process.
    unsafe {
        libc::close(fd);
    }
}

/// Fork-safe: marks every descriptor from `first` up close-on-exec, so only
/// what is below it survives the exec.
pub fn cloexec_from(first: u32) -> SysResult<()> {
    // SAFETY: close_range takes plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    super::check(ret).map(|_| ())
}

/// Fork-safe: closes every descriptor from `first` up except `keep`.
pub fn close_from_except(first: u32, keep: RawFd) -> SysResult<()> {
    let keep = keep as u32;
    // SAFETY: close_range takes plain integers; the ranges skip `keep`.
    unsafe {
        if keep >= first {
            if keep > first {
                libc::syscall(libc::SYS_close_range, first, keep - 1, 0);
            }
            libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0);
        } else {
            libc::syscall(libc::SYS_close_range, first, u32::MAX, 0);
        }
    }
    Ok(())
}

/// Fork-safe: makes `fd` also reachable as `target`.
pub fn dup_to(fd: RawFd, target: RawFd) -> SysResult<()> {
    if fd == target {
        // dup2 onto itself would keep the close-on-exec flag; clear it.
        // SAFETY: fcntl with F_SETFD takes an integer flag.
        check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })?;
        return Ok(());
    }
    // SAFETY: dup2 takes two integers; the new fd is not close-on-exec.
    check_int(unsafe { libc::dup2(fd, target) }).map(|_| ())
}

/// Fork-safe: writes all of `data`, retrying on EINTR.
pub fn write_all(fd: RawFd, mut data: &[u8]) -> SysResult<()> {
    while !data.is_empty() {
        // SAFETY: `data` is a live slice; write reads at most its length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Reads into `buf`, retrying on EINTR; 0 means end of file.
pub fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: `buf` is a live mutable slice; read writes at most its
        // length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = Errno::last();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// Fork-safe: opens `path` with `flags` (always close-on-exec).
pub fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> SysResult<RawFd> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    check_int(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

/// Fork-safe: opens relative to a directory descriptor.
pub fn openat(dir: RawFd, path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> SysResult<RawFd> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check_int(unsafe { libc::openat(dir, path.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

/// Fork-safe: writes `data` to the file at `path` (for `/proc/self/*_map`).
pub fn write_file(path: &CStr, data: &[u8]) -> SysResult<()> {
    let fd = open(path, libc::O_WRONLY, 0)?;
    let result = write_all(fd, data);
    close_raw(fd);
    result
}

/// Fork-safe: creates a directory.
pub fn mkdir(path: &CStr, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::mkdir(path.as_ptr(), mode) };
    match check_int(ret) {
        Err(Errno(libc::EEXIST)) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Fork-safe: creates an empty regular file (a mount point for a file).
pub fn touch(path: &CStr, mode: libc::mode_t) -> SysResult<()> {
    let fd = open(path, libc::O_WRONLY | libc::O_CREAT, mode)?;
    close_raw(fd);
    Ok(())
}

/// Fork-safe: creates a symlink `link` pointing at `target`.
pub fn symlink(target: &CStr, link: &CStr) -> SysResult<()> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    check_int(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }).map(|_| ())
}

/// Fork-safe: changes the working directory.
pub fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check_int(unsafe { libc::chdir(path.as_ptr()) }).map(|_| ())
}

/// Fork-safe: waits until `fd` is readable or hung up, or `timeout_ms`
/// passes (-1: forever). Returns the revents.
pub fn poll_one(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> SysResult<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd.
    check_int(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
    Ok(pfd.revents)
}

/// Waits on several descriptors; fills in each `revents`.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> SysResult<usize> {
    // SAFETY: `fds` is a live slice of pollfd of the given length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check_int(n).map(|n| n as usize)
}

/// Takes an advisory lock on `fd`; `Ok(false)` if `nonblocking` and held
/// elsewhere.
pub fn flock(fd: &impl AsRawFd, op: libc::c_int, nonblocking: bool) -> SysResult<bool> {
    let flags = if nonblocking { op | libc::LOCK_NB } else { op };
    // SAFETY: flock takes a descriptor and a flag word.
    match check_int(unsafe { libc::flock(fd.as_raw_fd(), flags) }) {
        Ok(_) => Ok(true),
        Err(Errno(libc::EWOULDBLOCK)) if nonblocking => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: RawFd, on: bool) -> SysResult<()> {
    // SAFETY: fcntl with F_GETFL/F_SETFL takes integers.
    unsafe {
        let flags = check_int(libc::fcntl(fd, libc::F_GETFL))?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        check_int(libc::fcntl(fd, libc::F_SETFL, flags)).map(|_| ())
    }
}

/// A connected pair of UNIX stream sockets, close-on-exec.
pub fn socketpair() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a live two-element array socketpair fills in.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors are new and owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for one descriptor in a control message, aligned as cmsghdr needs.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Fork-safe: sends descriptor `fd` over the UNIX socket `sock`.
pub fn send_fd(sock: RawFd, fd: RawFd) -> SysResult<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; every pointer set below refers to a
    // live local (`iov`, `cbuf`) that outlives sendmsg, and the CMSG macros
    // stay within `cbuf`, whose size (64) exceeds CMSG_SPACE(4).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(Errno(libc::EINVAL));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        // A peer that is gone is an error to report, not a SIGPIPE.
        check_int(libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) as libc::c_int).map(|_| ())
    }
}

/// Receives one descriptor sent with `send_fd`.
pub fn recv_fd(sock: RawFd) -> SysResult<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: as in send_fd; recvmsg writes at most msg_controllen bytes
    // into `cbuf`, and the descriptor read back is checked to come from an
    // SCM_RIGHTS message of the right length before it is owned.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.0.len();
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(Errno::last());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            || (*cmsg).cmsg_len < libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize
        {
            return Err(Errno(libc::EBADMSG));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Creates an unbound socket inode with mode 000 at `path` (a
/// placeholder: see `placeholders`).
pub fn mknod_socket(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call; S_IFSOCK
    // needs no privilege and no device number.
    check_int(unsafe { libc::mknod(path.as_ptr(), libc::S_IFSOCK, 0) }).map(|_| ())
}

/// The filesystem type (statfs `f_type`) of the filesystem holding `path`.
pub fn fs_magic(path: &CStr) -> SysResult<i64> {
    // SAFETY: statfs is plain data; the kernel fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a live statfs.
    check_int(unsafe { libc::statfs(path.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// Ends the writing side of the socket `fd`: the peer reads end-of-file.
pub fn shutdown_write(fd: RawFd) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    check_int(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(|_| ())
}

/// Fork-safe: a close-on-exec duplicate of `fd` numbered `min` or above.
pub fn dup_above(fd: RawFd, min: RawFd) -> SysResult<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument.
    check_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// Whether this process may execute `path` (its real ids, as access(2)).
pub fn can_execute(path: &CStr) -> bool {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}
