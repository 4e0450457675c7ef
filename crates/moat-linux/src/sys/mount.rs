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

const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_SET_FD: u32 = 5;
const FSCONFIG_CMD_CREATE: u32 = 6;

/// One fsconfig call on the filesystem context `fs`. Fork-safe.
fn fsconfig(
    fs: RawFd,
    cmd: u32,
    key: Option<&CStr>,
    value: Option<&CStr>,
    aux: i32,
) -> SysResult<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: key and value are null or NUL-terminated strings that outlive
    // the call; `aux` is an integer (a descriptor for FSCONFIG_SET_FD).
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fs, cmd, ptr(key), ptr(value), aux) })
        .map(|_| ())
}

/// A new overlay filesystem context. Fork-safe.
fn overlay_context() -> SysResult<RawFd> {
    // SAFETY: the name is NUL-terminated; fsopen returns a new descriptor.
    check(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), libc::FSOPEN_CLOEXEC) })
        .map(|fd| fd as RawFd)
}

/// Creates the overlay configured in `fs` and returns it as a detached,
/// nosuid and nodev mount. `userxattr` keeps the overlay's own marks in
/// `user.overlay.*` attributes, which a user namespace may write and
/// which both tiers then read alike. Fork-safe.
fn overlay_mount(fs: RawFd) -> SysResult<RawFd> {
    fsconfig(fs, FSCONFIG_SET_FLAG, Some(c"userxattr"), None, 0)?;
    // Volatile: unmounting does not sync the whole upper file system
    // (milliseconds on a busy disk, at every run's end). The upper layers
    // hold tool caches, which the tools themselves write without fsync;
    // a run cut short by a crash leaves its slot unmerged and it is
    // thrown away.
    fsconfig(fs, FSCONFIG_SET_FLAG, Some(c"volatile"), None, 0)?;
    fsconfig(fs, FSCONFIG_CMD_CREATE, None, None, 0)?;
    // SAFETY: no pointers; fsmount returns a new descriptor.
    let mnt = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs,
            libc::FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })?;
    Ok(mnt as RawFd)
}

/// Fork-safe: a detached overlay of `upper` (with its scratch `work`) over
/// the read-only `lowers` (topmost first), named by paths in the caller's
/// mount namespace (`lowerdir+`: Linux 6.7).
pub fn overlay_paths(lowers: &[&CStr], upper: &CStr, work: &CStr) -> SysResult<RawFd> {
    let fs = overlay_context()?;
    let mut result = Ok(());
    for lower in lowers {
        result = result
            .and_then(|()| fsconfig(fs, FSCONFIG_SET_STRING, Some(c"lowerdir+"), Some(lower), 0));
    }
    let result = result
        .and_then(|()| fsconfig(fs, FSCONFIG_SET_STRING, Some(c"upperdir"), Some(upper), 0))
        .and_then(|()| fsconfig(fs, FSCONFIG_SET_STRING, Some(c"workdir"), Some(work), 0))
        .and_then(|()| overlay_mount(fs));
    super::fd::close_raw(fs);
    result
}

/// A detached overlay of layers given as descriptors (Linux 6.13:
/// `lowerdir+` and the upper and work directories by FSCONFIG_SET_FD), so
/// no name is resolved. The overlay acts on its layers with the
/// credentials of whoever creates it: `creator` (uid, gid) is taken as the
/// file-system ids for the creation, with every capability, so what it
/// writes through idmapped layers is that account's, and so the person's
/// on disk.
pub fn overlay_fds(
    lowers: &[RawFd],
    upper: RawFd,
    work: RawFd,
    creator: (u32, u32),
) -> SysResult<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fs = overlay_context()?;
    let mut configured = Ok(());
    for lower in lowers {
        configured = configured
            .and_then(|()| fsconfig(fs, FSCONFIG_SET_FD, Some(c"lowerdir+"), None, *lower));
    }
    let configured = configured
        .and_then(|()| fsconfig(fs, FSCONFIG_SET_FD, Some(c"upperdir"), None, upper))
        .and_then(|()| fsconfig(fs, FSCONFIG_SET_FD, Some(c"workdir"), None, work));
    let result = configured.and_then(|()| {
        let (old_uid, old_gid) = super::ids::set_fs_ids(creator.0, creator.1)?;
        let made = super::caps::raise_effective().and_then(|()| overlay_mount(fs));
        let _ = super::ids::set_fs_ids(old_uid, old_gid);
        made
    });
    super::fd::close_raw(fs);
    // SAFETY: fsmount just returned this descriptor and nothing else owns it.
    result.map(|mnt| unsafe { std::os::fd::OwnedFd::from_raw_fd(mnt) })
}
