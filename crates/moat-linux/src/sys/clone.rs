//! Creating processes.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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
    forked(check(ret)?, want_pidfd.then_some(pidfd))
}

/// libc's constant is an i32 and overflows.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (clone3(2)), up to `cgroup`.
#[repr(C)]
#[derive(Default)]
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

/// `fork_with`, with the child born in the cgroup v2 directory `cgroup`
/// (CLONE_INTO_CGROUP, Linux 5.7): no process has to be moved, and moving
/// one waits for an RCU grace period (milliseconds).
pub fn fork_into_cgroup(flags: u64, cgroup: RawFd) -> SysResult<Forked> {
    let mut pidfd: libc::c_int = -1;
    let want_pidfd = flags & libc::CLONE_PIDFD as u64 != 0;
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a live, fully initialised clone_args of the size
    // passed. With no stack and no CLONE_VM the child runs on a
    // copy-on-write copy of the caller's memory, as with fork_with; the
    // kernel writes the pidfd into the live local `pidfd` before returning
    // in the parent.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    forked(check(ret)?, want_pidfd.then_some(pidfd))
}

/// Which side a clone returned on; `pidfd` is what the kernel wrote when
/// one was asked for.
fn forked(pid: libc::c_long, pidfd: Option<libc::c_int>) -> SysResult<Forked> {
    if pid == 0 {
        return Ok(Forked::Child);
    }
    let pidfd = pidfd.filter(|fd| *fd >= 0).map(|fd| {
        // SAFETY: the kernel just created this descriptor for us and nothing
        // else owns it.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
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

/// Starts `path` with `argv` and `envp` (null-terminated pointer arrays)
/// through posix_spawn, which glibc implements with a vfork-style clone:
/// no copy of this process's page tables and no copy-on-write faults in
/// it afterwards, unlike a fork. `fds[i]` becomes descriptor `i` of the
/// child (each must be close-on-exec here, so nothing else is inherited).
/// Returns the pid and a pidfd for it.
pub fn spawn_program(
    path: &std::ffi::CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: &[libc::c_int],
) -> SysResult<(libc::pid_t, OwnedFd)> {
    use super::Errno;
    if argv.last() != Some(&std::ptr::null()) || envp.last() != Some(&std::ptr::null()) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: posix_spawn_file_actions_t is plain data that init fills in.
    let mut actions: libc::posix_spawn_file_actions_t = unsafe { std::mem::zeroed() };
    // SAFETY: `actions` is live and uninitialised, as init expects.
    let rc = unsafe { libc::posix_spawn_file_actions_init(&mut actions) };
    if rc != 0 {
        return Err(Errno(rc));
    }
    let result = (|| {
        for (target, source) in fds.iter().enumerate() {
            // SAFETY: `actions` was initialised above; plain integers.
            let rc = unsafe {
                libc::posix_spawn_file_actions_adddup2(&mut actions, *source, target as libc::c_int)
            };
            if rc != 0 {
                return Err(Errno(rc));
            }
        }
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path` is NUL-terminated; argv and envp are
        // null-terminated arrays (checked above) of strings the caller keeps
        // alive; `actions` is initialised; no attributes.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                std::ptr::null(),
                argv.as_ptr() as *const *mut libc::c_char,
                envp.as_ptr() as *const *mut libc::c_char,
            )
        };
        if rc != 0 {
            return Err(Errno(rc));
        }
        // SAFETY: pidfd_open takes a pid and flags; the child is ours and
        // not yet reaped, so the pid cannot have been reused.
        let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) })?;
        // SAFETY: a new descriptor nothing else owns.
        Ok((pid, unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }))
    })();
    // SAFETY: initialised above, destroyed once.
    unsafe { libc::posix_spawn_file_actions_destroy(&mut actions) };
    result
}
