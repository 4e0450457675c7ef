//! Mounts, with both the classic `mount(2)` and the new mount API (which
//! is what makes "clone this tree now, attach it later" and recursive
//! attribute changes single syscalls). All fork-safe.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{check, check_int, SysResult};

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` from linux/mount.h.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Classic `mount(2)`. `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string borrowed for
    // the duration of the call.
    let ret = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    check_int(ret).map(|_| ())
}

/// Sets and clears mount attributes on the mount at `path` (relative to
/// `dirfd`), and with `recursive` on every mount below it.
pub fn set_attr(
    dirfd: RawFd,
    path: &CStr,
    empty_path: bool,
    recursive: bool,
    set: u64,
    clear: u64,
) -> SysResult<()> {
    let mut flags = 0u32;
    if empty_path {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and `attr` is a live mount_attr whose
    // size is passed alongside; both outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(|_| ())
}

/// Fork-safe: gives the detached mount tree `mount_fd` the id mapping of
/// the user namespace `userns`, together with the attributes `set`.
pub fn set_idmap(mount_fd: RawFd, userns: RawFd, set: u64) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set | MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns as u64,
    };
    // SAFETY: the empty path is NUL-terminated and `attr` is a live
    // mount_attr whose size is passed alongside; both outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd,
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(|_| ())
}

/// Clones the mount tree at `path` into a detached mount; returns its fd.
pub fn clone_tree(dirfd: RawFd, path: &CStr, recursive: bool) -> SysResult<RawFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) };
    check(ret).map(|fd| fd as RawFd)
}

/// Clones the mount tree at what `fd` is (an O_PATH descriptor opened and
/// checked earlier) into a detached, private mount tree: the tree cloned is
/// the one checked, whatever its name leads to by now. The caller must be
/// in the mount namespace of `fd`, which is why the launcher does this
/// before the sandbox's namespace exists; private, because a clone of a
/// shared mount stays in its peer group, and a mount the sandbox later
/// makes on top of it would otherwise appear on the host too.
pub fn clone_fd(fd: RawFd, recursive: bool) -> SysResult<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: the empty path is NUL-terminated; the call returns a new
    // descriptor or -1.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) };
    let tree = check(ret)? as RawFd;
    // SAFETY: open_tree just returned this descriptor and nothing else owns
    // it.
    let tree = unsafe { std::os::fd::OwnedFd::from_raw_fd(tree) };
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: the empty path is NUL-terminated and `attr` is a live
    // mount_attr whose size is passed alongside; both outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret)?;
    Ok(tree)
}

/// Fork-safe: attaches the detached mount `mount_fd` onto what the
/// descriptor `target` is (no name is resolved).
pub fn attach_fd(mount_fd: RawFd, target: RawFd) -> SysResult<()> {
    // SAFETY: both paths are the empty, NUL-terminated string; the
    // descriptors are used as they are.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount_fd,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(|_| ())
}

/// Attaches the detached mount `mount_fd` at `target`.
pub fn attach(mount_fd: RawFd, target: &CStr) -> SysResult<()> {
    let empty = c"";
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount_fd,
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(ret).map(|_| ())
}

/// Creates a detached, empty tmpfs with `options` (comma-separated) and
/// returns its mount fd.
pub fn detached_tmpfs(options: &[&CStr], attrs: u64) -> SysResult<RawFd> {
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    // SAFETY: the name is NUL-terminated; fsopen returns a new fd.
    let fs =
        check(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), libc::FSOPEN_CLOEXEC) })?
            as RawFd;
    let result = (|| {
        for opt in options {
            let text = opt.to_bytes();
            let eq = text.iter().position(|b| *b == b'=');
            // Options are given as `key=value` CStrs; split without
            // allocating by passing the key and value halves through a
            // small stack buffer.
            let mut key = [0u8; 32];
            let mut value = [0u8; 32];
            let (k, v) = match eq {
                Some(i) => (&text[..i], &text[i + 1..]),
                None => (text, &text[text.len()..]),
            };
            if k.len() >= key.len() || v.len() >= value.len() {
                return Err(super::Errno(libc::E2BIG));
            }
            key[..k.len()].copy_from_slice(k);
            value[..v.len()].copy_from_slice(v);
            // SAFETY: key and value are NUL-terminated stack buffers (zero
            // filled past their contents) that outlive the call.
            check(unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs,
                    FSCONFIG_SET_STRING,
                    key.as_ptr(),
                    value.as_ptr(),
                    0,
                )
            })?;
        }
        // SAFETY: no pointers.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        })?;
        // SAFETY: no pointers; fsmount returns a new fd.
        let mnt =
            check(unsafe { libc::syscall(libc::SYS_fsmount, fs, libc::FSMOUNT_CLOEXEC, attrs) })?;
        Ok(mnt as RawFd)
    })();
    super::fd::close_raw(fs);
    result
}
