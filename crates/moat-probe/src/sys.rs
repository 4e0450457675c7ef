//! Every `unsafe` block of the probe. Each wrapper performs one syscall (or
//! one tight sequence that only makes sense together) and returns the kernel's
//! verdict as `Result<_, Errno>`, so the action modules stay safe code.
//!
//! The probe never starts threads. Several wrappers (fork, raw clone) rely on
//! that: a child of a single-threaded process has consistent allocator and
//! lock state.
//!
//! Descriptors created here are returned as `OwnedFd` with `O_CLOEXEC`, so
//! nothing the probe opens leaks into a program it execs.

use std::ffi::{CStr, CString};
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr;

use libc::{c_char, c_int, c_long, c_uint, c_ulong, c_void, pid_t};

use crate::errno::Errno;

fn last_errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

fn check(ret: c_int) -> Result<c_int, Errno> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: c_long) -> Result<c_long, Errno> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: isize) -> Result<usize, Errno> {
    usize::try_from(ret).map_err(|_| last_errno())
}

/// Takes ownership of a descriptor a syscall just returned.
fn own_fd(ret: c_long) -> Result<OwnedFd, Errno> {
    let fd = check_long(ret)?;
    let fd = RawFd::try_from(fd).map_err(|_| Errno(libc::EOVERFLOW))?;
    // SAFETY: `fd` was returned by a successful descriptor-creating syscall
    // an instant ago, so it is open and no other object in this process owns
    // it; the OwnedFd becomes its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// NULL-terminated pointer array over `strings`; the pointers are valid only
/// while `strings` is borrowed, so callers keep both alive across the call.
fn pointer_array(strings: &[CString]) -> Vec<*const c_char> {
    let mut pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    pointers.push(ptr::null());
    pointers
}

// ---------------------------------------------------------------- files

pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<OwnedFd, Errno> {
    // SAFETY: `path` is a NUL-terminated string borrowed for the whole call
    // and open(2) does not keep the pointer; the variadic mode is passed as
    // the unsigned int open expects.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, c_uint::from(mode)) };
    own_fd(fd.into())
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is an exclusively borrowed, initialised slice and the
    // kernel writes at most `buf.len()` bytes into it. A bad `fd` only yields
    // EBADF.
    check_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn pread(fd: RawFd, buf: &mut [u8], offset: i64) -> Result<usize, Errno> {
    // SAFETY: as in `read`: the kernel writes at most `buf.len()` bytes into
    // the exclusively borrowed `buf`.
    check_size(unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset) })
}

pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from the borrowed
    // `buf`. Writing to an fd we do not own is the point of `write-fd` and
    // touches no memory of ours.
    check_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no third argument and only reads the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

pub fn truncate(path: &CStr, len: i64) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::truncate(path.as_ptr(), len) }).map(drop)
}

pub fn unlink(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

pub fn rmdir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::rmdir(path.as_ptr()) }).map(drop)
}

pub fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::mkdir(path.as_ptr(), mode) }).map(drop)
}

pub fn rename(from: &CStr, to: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    check(unsafe { libc::rename(from.as_ptr(), to.as_ptr()) }).map(drop)
}

pub fn link(from: &CStr, to: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    check(unsafe { libc::link(from.as_ptr(), to.as_ptr()) }).map(drop)
}

pub fn symlink(target: &CStr, linkpath: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    check(unsafe { libc::symlink(target.as_ptr(), linkpath.as_ptr()) }).map(drop)
}

pub fn chmod(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::chmod(path.as_ptr(), mode) }).map(drop)
}

pub fn chown(path: &CStr, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::chown(path.as_ptr(), uid, gid) }).map(drop)
}

/// utimensat with a NULL times pointer: both timestamps become "now".
pub fn touch_now(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; a NULL
    // `times` pointer is explicitly allowed and means "current time".
    check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), ptr::null(), 0) }).map(drop)
}

pub fn setxattr(path: &CStr, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: `path` and `name` are NUL-terminated and borrowed for the call;
    // the kernel reads exactly `value.len()` bytes from `value`.
    check(unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

pub fn mkfifo(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; a FIFO
    // ignores the device number.
    check(unsafe { libc::mknod(path.as_ptr(), libc::S_IFIFO | mode, 0) }).map(drop)
}

#[derive(Debug)]
pub struct FileStat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: i64,
}

/// lstat(2): does not follow a final symlink, so `stat` can report one.
pub fn lstat(path: &CStr) -> Result<FileStat, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `path` is NUL-terminated and borrowed for the call; `st` is a
    // writable buffer of exactly `size_of::<libc::stat>()` bytes that lives
    // until after the call.
    check(unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: `st` started zeroed (a valid bit pattern for this all-integer
    // struct) and lstat succeeded, filling it completely.
    let st = unsafe { st.assume_init() };
    Ok(FileStat {
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size,
    })
}

/// Replaces the process image; only returns (with the errno) on failure.
pub fn execv(path: &CStr, argv: &[CString]) -> Errno {
    let argv_ptrs = pointer_array(argv);
    // SAFETY: `path` and the strings behind `argv_ptrs` are borrowed for the
    // whole call, and `argv_ptrs` is NULL-terminated as execv requires. On
    // success this image is gone, so no pointer can dangle afterwards.
    unsafe { libc::execv(path.as_ptr(), argv_ptrs.as_ptr()) };
    last_errno()
}

/// fexecve(3) with the given environment; only returns on failure.
pub fn fexecve(fd: RawFd, argv: &[CString], envp: &[CString]) -> Errno {
    let argv_ptrs = pointer_array(argv);
    let envp_ptrs = pointer_array(envp);
    // SAFETY: both pointer arrays are NULL-terminated and point into
    // CStrings that stay borrowed for the whole call; on success the image is
    // replaced.
    unsafe { libc::fexecve(fd, argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    last_errno()
}

pub fn memfd_create(name: &CStr, flags: c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is NUL-terminated and borrowed for the call.
    own_fd(unsafe { libc::memfd_create(name.as_ptr(), flags) }.into())
}

/// Rust ignores SIGPIPE at startup and an ignored disposition survives
/// execve; restore the default so exec'd programs behave as usual.
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL involves no handler code and no pointers.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG instead
/// of killing the probe.
pub fn ignore_sigxfsz() {
    // SAFETY: installing SIG_IGN involves no handler code and no pointers.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

// ---------------------------------------------------------------- sockets

/// A socket address as the probe uses them.
#[derive(Debug, Clone)]
pub enum SockAddr {
    Ip(SocketAddr),
    /// Raw `sun_path` bytes: a filesystem path, or `\0name` for the
    /// abstract namespace. No terminating NUL is included.
    Unix(Vec<u8>),
}

enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
    Un(libc::sockaddr_un, libc::socklen_t),
}

impl RawAddr {
    fn new(addr: &SockAddr) -> Result<RawAddr, Errno> {
        Ok(match addr {
            SockAddr::Ip(SocketAddr::V4(v4)) => RawAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
            SockAddr::Ip(SocketAddr::V6(v6)) => RawAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            }),
            SockAddr::Unix(bytes) => {
                let mut raw = libc::sockaddr_un {
                    sun_family: libc::AF_UNIX as libc::sa_family_t,
                    sun_path: [0; 108],
                };
                // Path sockets keep one byte for the terminating NUL;
                // abstract names may use the whole array.
                let room = if bytes.first() == Some(&0) { 108 } else { 107 };
                if bytes.len() > room {
                    return Err(Errno(libc::ENAMETOOLONG));
                }
                for (dst, src) in raw.sun_path.iter_mut().zip(bytes) {
                    *dst = *src as c_char;
                }
                let nul = usize::from(bytes.first() != Some(&0));
                let len = size_of::<libc::sa_family_t>() + bytes.len() + nul;
                RawAddr::Un(raw, len as libc::socklen_t)
            }
        })
    }

    fn as_ptr_len(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawAddr::V4(a) => (
                ptr::from_ref(a).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            RawAddr::V6(a) => (
                ptr::from_ref(a).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
            RawAddr::Un(a, len) => (ptr::from_ref(a).cast(), *len),
        }
    }
}

pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: socket(2) takes only integers.
    own_fd(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) }.into())
}

pub fn connect(fd: RawFd, addr: &SockAddr) -> Result<(), Errno> {
    let raw = RawAddr::new(addr)?;
    let (ptr, len) = raw.as_ptr_len();
    // SAFETY: `ptr` points to `raw`, a sockaddr of at least `len` bytes that
    // outlives the call.
    check(unsafe { libc::connect(fd, ptr, len) }).map(drop)
}

pub fn bind(fd: RawFd, addr: &SockAddr) -> Result<(), Errno> {
    let raw = RawAddr::new(addr)?;
    let (ptr, len) = raw.as_ptr_len();
    // SAFETY: `ptr` points to `raw`, a sockaddr of at least `len` bytes that
    // outlives the call.
    check(unsafe { libc::bind(fd, ptr, len) }).map(drop)
}

pub fn listen(fd: RawFd, backlog: c_int) -> Result<(), Errno> {
    // SAFETY: listen(2) takes only integers.
    check(unsafe { libc::listen(fd, backlog) }).map(drop)
}

pub fn accept(fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: NULL address and length pointers are allowed and mean "do not
    // report the peer address".
    own_fd(
        unsafe { libc::accept4(fd, ptr::null_mut(), ptr::null_mut(), libc::SOCK_CLOEXEC) }.into(),
    )
}

/// The local port of a bound IPv4 socket.
pub fn local_port_v4(fd: RawFd) -> Result<u16, Errno> {
    let mut addr = libc::sockaddr_in {
        sin_family: 0,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a writable sockaddr_in and `len` holds its exact
    // size, so the kernel writes no more than that; both outlive the call.
    check(unsafe { libc::getsockname(fd, ptr::from_mut(&mut addr).cast(), &mut len) })?;
    Ok(u16::from_be(addr.sin_port))
}

pub fn sendto(fd: RawFd, buf: &[u8], addr: &SockAddr) -> Result<usize, Errno> {
    let raw = RawAddr::new(addr)?;
    let (ptr, len) = raw.as_ptr_len();
    // SAFETY: the kernel reads `buf.len()` bytes from the borrowed `buf` and
    // `len` bytes from `raw`, both alive for the call.
    check_size(unsafe { libc::sendto(fd, buf.as_ptr().cast(), buf.len(), 0, ptr, len) })
}

/// A getaddrinfo failure: the EAI_* code, its text, and errno for EAI_SYSTEM.
#[derive(Debug)]
pub struct GaiError {
    pub code: c_int,
    pub message: String,
    pub errno: Option<Errno>,
}

/// getaddrinfo for `name` restricted to `family` (AF_UNSPEC for any).
pub fn getaddrinfo(name: &CStr, family: c_int) -> Result<Vec<IpAddr>, GaiError> {
    let hints = libc::addrinfo {
        ai_flags: 0,
        ai_family: family,
        ai_socktype: libc::SOCK_STREAM,
        ai_protocol: 0,
        ai_addrlen: 0,
        ai_addr: ptr::null_mut(),
        ai_canonname: ptr::null_mut(),
        ai_next: ptr::null_mut(),
    };
    let mut list: *mut libc::addrinfo = ptr::null_mut();
    // SAFETY: `name` is NUL-terminated, a NULL service is allowed, `hints` is
    // a fully initialised addrinfo, and `list` is a writable out-pointer; all
    // outlive the call.
    let code = unsafe { libc::getaddrinfo(name.as_ptr(), ptr::null(), &hints, &mut list) };
    if code != 0 {
        let errno = (code == libc::EAI_SYSTEM).then(last_errno);
        // SAFETY: gai_strerror returns a pointer to a static NUL-terminated
        // message for any code, valid for the life of the process.
        let message = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        return Err(GaiError {
            code,
            message,
            errno,
        });
    }
    let mut addrs = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is a non-NULL element of the list getaddrinfo just
        // returned, which stays allocated until freeaddrinfo below.
        let info = unsafe { &*node };
        if let Some(ip) = addrinfo_ip(info) {
            addrs.push(ip);
        }
        node = info.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo, is freed exactly
    // once, and no reference into it survives this point.
    unsafe { libc::freeaddrinfo(list) };
    Ok(addrs)
}

fn addrinfo_ip(info: &libc::addrinfo) -> Option<IpAddr> {
    if info.ai_addr.is_null() {
        return None;
    }
    let len = info.ai_addrlen as usize;
    if info.ai_family == libc::AF_INET && len >= size_of::<libc::sockaddr_in>() {
        // SAFETY: ai_addr is non-NULL and, per ai_family and ai_addrlen,
        // points to at least a full sockaddr_in owned by the addrinfo list;
        // read_unaligned makes no alignment assumption.
        let sin = unsafe { ptr::read_unaligned(info.ai_addr.cast::<libc::sockaddr_in>()) };
        return Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
            sin.sin_addr.s_addr,
        ))));
    }
    if info.ai_family == libc::AF_INET6 && len >= size_of::<libc::sockaddr_in6>() {
        // SAFETY: as above, for a full sockaddr_in6.
        let sin6 = unsafe { ptr::read_unaligned(info.ai_addr.cast::<libc::sockaddr_in6>()) };
        return Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
    }
    None
}

// ---------------------------------------------------------------- processes

pub fn kill(pid: pid_t, signal: c_int) -> Result<(), Errno> {
    // SAFETY: kill(2) takes only integers.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

fn ptrace_plain(request: c_uint, pid: pid_t) -> Result<(), Errno> {
    // SAFETY: for SEIZE (options 0), INTERRUPT and DETACH (signal 0) the
    // addr/data arguments are plain integers the kernel does not dereference.
    check_long(unsafe {
        libc::ptrace(
            request,
            pid,
            ptr::null_mut::<c_void>(),
            ptr::null_mut::<c_void>(),
        )
    })
    .map(drop)
}

pub fn ptrace_seize(pid: pid_t) -> Result<(), Errno> {
    ptrace_plain(libc::PTRACE_SEIZE, pid)
}

pub fn ptrace_interrupt(pid: pid_t) -> Result<(), Errno> {
    ptrace_plain(libc::PTRACE_INTERRUPT, pid)
}

pub fn ptrace_detach(pid: pid_t) -> Result<(), Errno> {
    ptrace_plain(libc::PTRACE_DETACH, pid)
}

/// waitpid(2); returns the raw wait status.
pub fn waitpid(pid: pid_t, flags: c_int) -> Result<c_int, Errno> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a writable int that outlives the call.
        match check(unsafe { libc::waitpid(pid, &mut status, flags) }) {
            Err(Errno(libc::EINTR)) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(status),
        }
    }
}

/// process_vm_readv of `buf.len()` bytes at `remote_addr` in `pid`.
pub fn process_vm_readv(pid: pid_t, remote_addr: usize, buf: &mut [u8]) -> Result<usize, Errno> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: remote_addr as *mut c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec describes exactly the exclusively borrowed
    // `buf`; the remote iovec is only interpreted by the kernel in the target
    // address space, where it is checked (EFAULT if unmapped). Both iovecs
    // outlive the call.
    check_size(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) })
}

pub fn pidfd_open(pid: pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes only integers.
    own_fd(unsafe { libc::syscall(libc::SYS_pidfd_open, c_long::from(pid), 0 as c_long) })
}

pub fn pidfd_getfd(pidfd: RawFd, target_fd: c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes only integers; the returned descriptor is a
    // new one in our table, owned by the OwnedFd.
    own_fd(unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            c_long::from(pidfd),
            c_long::from(target_fd),
            0 as c_long,
        )
    })
}

pub fn pidfd_send_signal(pidfd: RawFd, signal: c_int) -> Result<(), Errno> {
    // SAFETY: a NULL siginfo pointer is allowed (the kernel synthesises one);
    // the other arguments are integers.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            c_long::from(pidfd),
            c_long::from(signal),
            ptr::null::<c_void>(),
            0 as c_long,
        )
    })
    .map(drop)
}

#[derive(Debug)]
pub enum Forked {
    Child,
    Parent(pid_t),
}

/// CPU time this process has used, in seconds.
pub fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the kernel writes; the clock id is a
    // constant every Linux has.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

pub fn fork() -> Result<Forked, Errno> {
    // SAFETY: the probe is single-threaded, so the child gets a consistent
    // copy of allocator and lock state; every child path ends in `exit_now`
    // and never returns into main (so it cannot print a second report).
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// _exit(2): ends a forked child without flushing stdio buffers inherited
/// from the parent or running any Rust cleanup.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds: [c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a writable array of exactly the two ints pipe2 fills.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody
    // else; each OwnedFd closes its own once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Closes a descriptor number this code does not hold as an `OwnedFd`
/// (inherited stdio in a detached grandchild).
pub fn close_raw(fd: RawFd) {
    // SAFETY: close(2) touches no memory of ours; callers only pass fds that
    // no live OwnedFd in this process refers to.
    unsafe { libc::close(fd) };
}

pub fn setsid() -> Result<pid_t, Errno> {
    // SAFETY: setsid(2) takes no arguments.
    check(unsafe { libc::setsid() })
}

#[derive(Debug)]
pub struct Ids {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub pid: pid_t,
    pub ppid: pid_t,
    pub sid: pid_t,
    pub pgid: pid_t,
}

pub fn ids() -> Ids {
    // SAFETY: these calls take no pointers (0 means "this process") and only
    // return attributes of the calling process.
    unsafe {
        Ids {
            uid: libc::getuid(),
            euid: libc::geteuid(),
            gid: libc::getgid(),
            pid: libc::getpid(),
            ppid: libc::getppid(),
            sid: libc::getsid(0),
            pgid: libc::getpgid(0),
        }
    }
}

// ---------------------------------------------------------------- terminal

/// ioctl(TIOCSTI): pushes `byte` into the terminal's input queue.
pub fn tiocsti(fd: RawFd, byte: u8) -> Result<(), Errno> {
    // SAFETY: TIOCSTI reads exactly one byte through the pointer, which
    // points at the local `byte`, alive for the call.
    check(unsafe { libc::ioctl(fd, libc::TIOCSTI, ptr::from_ref(&byte)) }).map(drop)
}

/// TIOCSTI through the raw SYS_ioctl with bit 32 set in the request, so the
/// full 64-bit value reaches the kernel (and any seccomp filter) unmodified.
/// The kernel itself only looks at the low 32 bits.
pub fn tiocsti_high_bits(fd: RawFd, byte: u8) -> Result<u64, Errno> {
    let request = u64::from(libc::TIOCSTI as u32) | (1 << 32);
    // SAFETY: the kernel truncates the request to TIOCSTI, which reads
    // exactly one byte through the pointer to the local `byte`.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            c_long::from(fd),
            request as c_ulong,
            ptr::from_ref(&byte),
        )
    })?;
    Ok(request)
}

/// ioctl(TIOCLINUX) with subcode 0, which no handler accepts.
pub fn tioclinux_subcode0(fd: RawFd) -> Result<(), Errno> {
    let subcode: u8 = 0;
    // SAFETY: TIOCLINUX first reads the one-byte subcode through the pointer
    // (the local `subcode`); subcode 0 matches no handler, so nothing more is
    // read or written through it.
    check(unsafe { libc::ioctl(fd, libc::TIOCLINUX, ptr::from_ref(&subcode)) }).map(drop)
}

/// ioctl(TIOCGETD): the terminal's current line discipline.
pub fn tiocgetd(fd: RawFd) -> Result<c_int, Errno> {
    let mut ldisc: c_int = 0;
    // SAFETY: TIOCGETD writes exactly one int through the pointer, which
    // points at the local `ldisc`.
    check(unsafe { libc::ioctl(fd, libc::TIOCGETD, ptr::from_mut(&mut ldisc)) })?;
    Ok(ldisc)
}

/// ioctl(TIOCSETD): sets the terminal's line discipline.
pub fn tiocsetd(fd: RawFd, ldisc: c_int) -> Result<(), Errno> {
    // SAFETY: TIOCSETD reads exactly one int through the pointer, which
    // points at the local `ldisc`.
    check(unsafe { libc::ioctl(fd, libc::TIOCSETD, ptr::from_ref(&ldisc)) }).map(drop)
}

// ---------------------------------------------------------------- namespaces and mounts

pub fn unshare(flags: c_int) -> Result<(), Errno> {
    // SAFETY: unshare(2) takes only integers.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// Raw clone(2) with CLONE_NEWUSER|SIGCHLD and no new stack; the child
/// `_exit(0)`s at once. Returns the child's pid.
pub fn clone_newuser() -> Result<pid_t, Errno> {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as c_ulong;
    // SAFETY: with a NULL stack clone behaves like fork: the child runs on a
    // copy-on-write copy of this stack, so returning from syscall() is sound.
    // The probe is single-threaded, and the child only calls _exit, so it
    // never relies on libc state (cached tid) a raw clone leaves stale.
    // No CLONE_VM/CLONE_SETTLS/CLONE_*TID flag is set, so the child has its
    // own memory and the tid/tls arguments are ignored.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0 as c_long,
            0 as c_long,
            0 as c_long,
            0 as c_long,
        )
    };
    if ret == 0 {
        exit_now(0);
    }
    check_long(ret).map(|pid| pid as pid_t)
}

/// `struct clone_args` of clone3(2), version 2 (CLONE_ARGS_SIZE_VER2 = 88).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const _: () = assert!(size_of::<CloneArgs>() == 88);

/// clone3(2) with CLONE_NEWUSER, exit signal SIGCHLD and no new stack; the
/// child `_exit(0)`s at once. Returns the child's pid.
pub fn clone3_newuser() -> Result<pid_t, Errno> {
    let args = CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    // SAFETY: `args` is a fully initialised clone_args of the size passed and
    // outlives the call; its pointer fields are 0 and no flag asks the
    // kernel to use them. With stack 0 and no CLONE_VM the child runs on a
    // copy-on-write copy of this stack like fork and immediately _exits (see
    // `clone_newuser`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            ptr::from_ref(&args),
            size_of::<CloneArgs>() as c_long,
        )
    };
    if ret == 0 {
        exit_now(0);
    }
    check_long(ret).map(|pid| pid as pid_t)
}

pub fn setns(fd: RawFd, nstype: c_int) -> Result<(), Errno> {
    // SAFETY: setns(2) takes only integers.
    check(unsafe { libc::setns(fd, nstype) }).map(drop)
}

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// mount(2) with no data string.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
) -> Result<(), Errno> {
    // SAFETY: every non-NULL pointer refers to a NUL-terminated string
    // borrowed for the call; mount accepts NULL source, type and data.
    check(unsafe {
        libc::mount(
            opt_ptr(source),
            target.as_ptr(),
            opt_ptr(fstype),
            flags,
            ptr::null(),
        )
    })
    .map(drop)
}

pub fn umount2(target: &CStr, flags: c_int) -> Result<(), Errno> {
    // SAFETY: `target` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

pub fn open_tree(path: &CStr, flags: c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    own_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            c_long::from(libc::AT_FDCWD),
            path.as_ptr(),
            c_ulong::from(flags),
        )
    })
}

pub fn fsopen(fs_name: &CStr, flags: c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: `fs_name` is NUL-terminated and borrowed for the call.
    own_fd(unsafe { libc::syscall(libc::SYS_fsopen, fs_name.as_ptr(), c_ulong::from(flags)) })
}

/// move_mount(2) from fd -1 to fd -1 with empty paths: can only fail.
pub fn move_mount_bad_fds() -> Result<(), Errno> {
    let empty = c"";
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both path pointers refer to the static empty C string; the fds
    // are integers the kernel looks up (and rejects).
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            -1 as c_long,
            empty.as_ptr(),
            -1 as c_long,
            empty.as_ptr(),
            c_ulong::from(flags),
        )
    })
    .map(drop)
}

/// `struct mount_attr` of mount_setattr(2) (MOUNT_ATTR_SIZE_VER0 = 32).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const _: () = assert!(size_of::<MountAttr>() == 32);

pub fn mount_setattr_clear(path: &CStr, clear: u64) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated, `attr` is a fully initialised
    // mount_attr of exactly the size passed; both outlive the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            c_long::from(libc::AT_FDCWD),
            path.as_ptr(),
            0 as c_ulong,
            ptr::from_ref(&attr),
            size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

pub fn chroot(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

// ---------------------------------------------------------------- keys

const KEYCTL_GET_KEYRING_ID: c_long = 0;
const KEYCTL_READ: c_long = 11;

pub fn keyctl_get_keyring_id(id: i32, create: bool) -> Result<c_long, Errno> {
    // SAFETY: KEYCTL_GET_KEYRING_ID takes only integers.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            c_long::from(id),
            c_long::from(create),
        )
    })
}

/// KEYCTL_READ into `buf`; returns the full payload length, which may
/// exceed `buf.len()` (the kernel then copies only `buf.len()` bytes).
pub fn keyctl_read(id: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the
    // exclusively borrowed `buf`.
    let ret = check_long(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_READ,
            c_long::from(id),
            buf.as_mut_ptr(),
            buf.len(),
        )
    })?;
    usize::try_from(ret).map_err(|_| Errno(libc::EOVERFLOW))
}

pub fn add_key(
    ty: &CStr,
    description: &CStr,
    payload: &[u8],
    keyring: i32,
) -> Result<c_long, Errno> {
    // SAFETY: `ty` and `description` are NUL-terminated and the kernel reads
    // exactly `payload.len()` bytes from `payload`; all borrowed for the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            c_long::from(keyring),
        )
    })
}

// ---------------------------------------------------------------- kernel surface

/// bpf(BPF_MAP_CREATE) with an all-zero 72-byte attribute block: map type 0
/// (BPF_MAP_TYPE_UNSPEC) is rejected with EINVAL once past the permission
/// checks.
pub fn bpf_map_create_zeroed() -> Result<OwnedFd, Errno> {
    const BPF_MAP_CREATE: c_long = 0;
    let attr = [0u8; 72];
    // SAFETY: the kernel reads at most the 72 bytes passed as the size from
    // the local zeroed buffer, which outlives the call; MAP_CREATE writes
    // nothing back.
    own_fd(unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, attr.as_ptr(), attr.len()) })
}

/// `struct perf_event_attr`, first 128 bytes (PERF_ATTR_SIZE_VER7 = 128).
#[repr(C)]
struct PerfEventAttr {
    ty: u32,
    size: u32,
    config: u64,
    rest: [u64; 14],
}

const _: () = assert!(size_of::<PerfEventAttr>() == 128);

/// perf_event_open of a software event (`config`) on this process, any CPU.
pub fn perf_event_open_sw(config: u64) -> Result<OwnedFd, Errno> {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_FLAG_FD_CLOEXEC: c_ulong = 8;
    let attr = PerfEventAttr {
        ty: PERF_TYPE_SOFTWARE,
        size: size_of::<PerfEventAttr>() as u32,
        config,
        rest: [0; 14],
    };
    // SAFETY: `attr` is a fully initialised perf_event_attr whose `size`
    // field matches its real size, alive for the call; pid 0 = self, cpu -1,
    // group -1 and flags are integers.
    own_fd(unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            ptr::from_ref(&attr),
            0 as c_long,
            -1 as c_long,
            -1 as c_long,
            PERF_FLAG_FD_CLOEXEC,
        )
    })
}

pub fn io_uring_setup(entries: u32) -> Result<OwnedFd, Errno> {
    // struct io_uring_params is 120 bytes; the kernel writes ring offsets
    // back into it on success.
    let mut params = [0u8; 120];
    // SAFETY: `params` is a writable, zeroed 120-byte io_uring_params that
    // outlives the call; the kernel reads and writes only within it.
    own_fd(unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            c_long::from(entries),
            params.as_mut_ptr(),
        )
    })
}

pub fn userfaultfd(flags: c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: userfaultfd takes only integers.
    own_fd(unsafe { libc::syscall(libc::SYS_userfaultfd, c_long::from(flags)) })
}

/// kexec_load with a segment count above KEXEC_SEGMENT_MAX (16) and a NULL
/// segment list: after the permission checks the kernel must reject it with
/// EINVAL before reading anything. (nr_segments = 0 would not be harmless: it
/// means "unload the currently loaded kexec image".)
pub fn kexec_load_rejected() -> Result<c_long, Errno> {
    // SAFETY: the segment pointer is NULL and never dereferenced because the
    // count check fails first; the rest are integers.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0 as c_ulong,
            1000 as c_ulong,
            ptr::null::<c_void>(),
            0 as c_ulong,
        )
    })
}

/// init_module with an empty image: after the permission checks the kernel
/// rejects a length shorter than an ELF header (ENOEXEC) without reading.
pub fn init_module_empty() -> Result<c_long, Errno> {
    let params = c"";
    // SAFETY: the image pointer is NULL with length 0, so nothing is read
    // from it; `params` is a static empty C string.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_init_module,
            ptr::null::<c_void>(),
            0 as c_ulong,
            params.as_ptr(),
        )
    })
}

/// open_by_handle_at with a zeroed (handle_bytes = 0, hence invalid) handle.
pub fn open_by_handle_at_empty() -> Result<OwnedFd, Errno> {
    // struct file_handle: u32 handle_bytes, i32 handle_type, then the bytes
    // (MAX_HANDLE_SZ = 128); u32 elements keep it 4-byte aligned.
    let handle = [0u32; 2 + 32];
    // SAFETY: `handle` is a zeroed file_handle with room for MAX_HANDLE_SZ
    // payload bytes, alive for the call; the kernel only reads it.
    own_fd(unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            c_long::from(libc::AT_FDCWD),
            handle.as_ptr(),
            c_long::from(libc::O_RDONLY | libc::O_CLOEXEC),
        )
    })
}

/// syslog(2) SYSLOG_ACTION_READ_ALL (3) into `buf`.
pub fn syslog_read_all(buf: &mut [u8]) -> Result<usize, Errno> {
    let len = c_int::try_from(buf.len()).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: the kernel copies at most `len` = `buf.len()` bytes into the
    // exclusively borrowed `buf`.
    let ret = check_long(unsafe {
        libc::syscall(
            libc::SYS_syslog,
            3 as c_long,
            buf.as_mut_ptr(),
            c_long::from(len),
        )
    })?;
    usize::try_from(ret).map_err(|_| Errno(libc::EOVERFLOW))
}

/// personality(0xffffffff): returns the current persona without changing it.
pub fn personality_query() -> Result<c_int, Errno> {
    // SAFETY: personality takes an integer; 0xffffffff only queries.
    check(unsafe { libc::personality(0xffff_ffff) })
}

/// kcmp(pid1, pid2, KCMP_FILE, fd1, fd2): orders two open files.
pub fn kcmp_file(pid1: pid_t, pid2: pid_t, fd1: c_int, fd2: c_int) -> Result<c_long, Errno> {
    const KCMP_FILE: c_long = 0;
    // SAFETY: with KCMP_FILE all arguments are integers (pids and fd
    // numbers); nothing is dereferenced.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            c_long::from(pid1),
            c_long::from(pid2),
            KCMP_FILE,
            c_long::from(fd1),
            c_long::from(fd2),
        )
    })
}

/// getpid through the x32 ABI: syscall 39 with __X32_SYSCALL_BIT set.
/// ENOSYS when the kernel has no x32 support.
pub fn x32_getpid() -> Result<c_long, Errno> {
    const X32_SYSCALL_BIT: c_long = 0x4000_0000;
    const X32_GETPID: c_long = 39;
    // SAFETY: getpid takes no arguments, so whatever is left in the argument
    // registers is ignored and nothing is dereferenced.
    check_long(unsafe { libc::syscall(X32_SYSCALL_BIT | X32_GETPID) })
}

/// i386 getpid (20) through the legacy `int 0x80` gate. Returns the raw eax.
#[cfg(target_arch = "x86_64")]
pub fn int80_getpid() -> i32 {
    let ret: i32;
    // SAFETY: getpid reads no arguments and touches no user memory. The
    // kernel's int 0x80 entry from 64-bit code preserves all registers
    // except eax (the result) and r8-r11, which are declared clobbered.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") 20i32 => ret,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
pub fn landlock_abi_version() -> Result<c_long, Errno> {
    const LANDLOCK_CREATE_RULESET_VERSION: c_ulong = 1;
    // SAFETY: with the VERSION flag the attribute pointer must be NULL and
    // size 0; nothing is dereferenced.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            ptr::null::<c_void>(),
            0 as c_ulong,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })
}

/// fcntl(F_SETOWN): signals about `fd` go to `pid`.
pub fn set_owner(fd: RawFd, pid: pid_t) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(fd, libc::F_SETOWN, pid) }).map(|_| ())
}

/// Turns on O_ASYNC (and O_NONBLOCK) for `fd`: readiness raises SIGIO at
/// its owner.
pub fn set_async(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_ASYNC | libc::O_NONBLOCK) }).map(|_| ())
}

/// A raw system call `nr` with every argument zero.
pub fn syscall_zero(nr: c_long) -> Result<c_long, Errno> {
    // SAFETY: all arguments are zero; a call that takes pointers gets NULL
    // and fails with EFAULT or EINVAL instead of touching memory.
    check_long(unsafe { libc::syscall(nr, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize) })
}

/// renameat2(RENAME_EXCHANGE): swaps two names atomically.
pub fn exchange(a: &CStr, b: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated and outlive the call.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    })
    .map(|_| ())
}
