//! Installing a compiled seccomp filter. Fork-safe.

use super::{check, SysResult};

/// Installs `program` on the calling thread. The caller has set
/// `no_new_privs` already; the kernel refuses otherwise.
pub fn install(program: &[libc::sock_filter]) -> SysResult<()> {
    set_filter(program, 0).map(|_| ())
}

/// Fork-safe: installs `program` with `flags` (`SECCOMP_FILTER_FLAG_*`);
/// what the kernel returns (a listener's descriptor with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`).
pub(super) fn set_filter(program: &[libc::sock_filter], flags: libc::c_ulong) -> SysResult<i64> {
    if program.is_empty() || program.len() > u16::MAX as usize {
        return Err(super::Errno(libc::EINVAL));
    }
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the
    // kernel copies the instructions and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    check(ret)
}

/// Whether the kernel can return `action` from a filter (for `moat doctor`).
pub fn action_available(action: u32) -> bool {
    // SAFETY: `action` is a live u32 the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    };
    ret == 0
}
