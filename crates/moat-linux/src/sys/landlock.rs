//! The two Landlock calls the sandbox's child makes itself: adding rules for
//! mounts that exist only inside the sandbox, and enforcing the ruleset.
//! The ruleset is created by the parent with the `landlock` crate. All
//! fork-safe.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{check, SysResult};

const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;

/// `struct landlock_path_beneath_attr`: packed in the kernel's uapi.
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers; 0 when Landlock is off.
pub fn abi_version() -> i32 {
    // SAFETY: with a null attribute and size 0 the call only reads the flag.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        0
    } else {
        ret as i32
    }
}

/// Allows `access` beneath `path` in the ruleset `ruleset`.
pub fn allow_beneath(ruleset: RawFd, path: &CStr, access: u64) -> SysResult<()> {
    let fd = super::fd::open(path, libc::O_PATH, 0)?;
    let result = allow_beneath_fd(ruleset, fd, access);
    super::fd::close_raw(fd);
    result
}

/// Allows `access` beneath what `fd` (an O_PATH descriptor) is.
pub fn allow_beneath_fd(ruleset: RawFd, fd: RawFd, access: u64) -> SysResult<()> {
    let attr = PathBeneath {
        allowed_access: access,
        parent_fd: fd,
    };
    // SAFETY: `attr` is a live, correctly laid out rule attribute; the
    // kernel copies it and takes its own reference to `fd`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneath,
            0u32,
        )
    };
    check(ret).map(|_| ())
}

/// Enforces `ruleset` on the calling thread (which must already have
/// `no_new_privs`).
pub fn restrict_self(ruleset: RawFd) -> SysResult<()> {
    // SAFETY: takes a descriptor and a zero flag word.
    let ret = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    check(ret).map(|_| ())
}
