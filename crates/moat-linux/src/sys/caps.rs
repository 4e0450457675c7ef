//! Giving up every capability for good. Fork-safe.
//!
//! Inside its user namespace the sandbox's first process holds every
//! capability. The command gets none: the bounding set is emptied (so no
//! exec can bring any back), the "root is special" rules are switched off
//! and locked (so a command that is uid 0 inside gains nothing by exec), the
//! ambient set is cleared, and finally the effective, permitted and
//! inheritable sets are zeroed.

use super::{check_int, Errno, SysResult};

// linux/securebits.h
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// Highest capability number this code knows of; the loop below stops at
/// the kernel's own last one (EINVAL) anyway.
const CAP_SCAN_LIMIT: libc::c_ulong = 64;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> SysResult<()> {
    // SAFETY: these prctl options take integer arguments only.
    check_int(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(|_| ())
}

/// Sets `no_new_privs`: no exec can grant privileges again (setuid bits
/// and file capabilities are ignored).
pub fn set_no_new_privs() -> SysResult<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
}

fn header() -> CapHeader {
    CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    }
}

/// The calling process's capability sets.
fn get() -> SysResult<[CapData; 2]> {
    let mut h = header();
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: `h` and `data` are live and laid out as capget(2) expects for
    // version 3 (two data elements); the kernel writes only into `data`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut h as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    super::check(ret)?;
    Ok(data)
}

/// True if the calling process holds any capability (effective or
/// permitted).
fn holds_any() -> SysResult<bool> {
    Ok(get()?.iter().any(|d| d.effective != 0 || d.permitted != 0))
}

/// Drops every capability of the calling process for good.
///
/// A process without capabilities (an ordinary user outside a user
/// namespace) cannot touch its bounding set or securebits, and needs not:
/// with `no_new_privs` no exec can give it any.
pub fn drop_all() -> SysResult<()> {
    drop_all_as(None)
}

/// Drops every capability for good and, with `account`, becomes that
/// (uid, gid) on the way: after the bounding set is emptied and the
/// securebits are locked, before the last capabilities are cleared.
pub fn drop_all_as(account: Option<(u32, u32)>) -> SysResult<()> {
    if !holds_any()? {
        return Ok(());
    }
    for cap in 0..=CAP_SCAN_LIMIT {
        match prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            Err(Errno(libc::EINVAL)) => break,
            Err(e) => return Err(e),
        }
    }
    prctl(
        libc::PR_SET_SECUREBITS,
        SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_NO_SETUID_FIXUP
            | SECBIT_NO_SETUID_FIXUP_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
    )?;
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments only.
    check_int(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    if let Some((uid, gid)) = account {
        super::ids::become_account(uid, gid)?;
    }
    let header = header();
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are live and laid out as capset(2) expects for
    // version 3 (two data elements); the kernel only reads them.
    let ret =
        unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    super::check(ret).map(|_| ())
}

/// Raises every permitted capability into the effective set (changing the
/// file-system uid from 0 drops the file-system ones from it).
pub fn raise_effective() -> SysResult<()> {
    let mut data = get()?;
    for d in data.iter_mut() {
        d.effective = d.permitted;
    }
    let h = header();
    // SAFETY: `h` and `data` are live and laid out as capset(2) expects for
    // version 3; the kernel only reads them.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &h as *const CapHeader, data.as_ptr()) };
    super::check(ret).map(|_| ())
}
