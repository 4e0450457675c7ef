//! The elevated tier's identity calls: becoming the sandbox account, and
//! the user namespace that only describes an idmapped mount's mapping.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};

use super::{check_int, clone, fd, Errno, SysResult};

/// Fork-safe: becomes `uid`/`gid` for good (real, effective and saved),
/// with `gid` as the only supplementary group. Needs CAP_SETUID and
/// CAP_SETGID; with SECBIT_NO_SETUID_FIXUP set, capabilities survive it
/// and must be cleared afterwards.
pub fn become_account(uid: u32, gid: u32) -> SysResult<()> {
    let groups = [gid as libc::gid_t];
    // SAFETY: `groups` is a live array of the length passed.
    check_int(unsafe { libc::setgroups(1, groups.as_ptr()) })?;
    // SAFETY: plain integer arguments.
    check_int(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: plain integer arguments.
    check_int(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

/// A user namespace whose id maps are `uid_map` and `gid_map` (the
/// `/proc/PID/uid_map` format), for `MOUNT_ATTR_IDMAP`. No process stays
/// in it: a child is created in it, its maps are written, the namespace is
/// opened, and the child exits. Not fork-safe (allocates); for the
/// single-threaded launcher.
pub fn idmap_namespace(uid_map: &[u8], gid_map: &[u8]) -> SysResult<OwnedFd> {
    let (hold_read, hold_write) = fd::pipe()?;
    use std::os::fd::AsRawFd;
    let pid = match clone::fork_with(libc::CLONE_NEWUSER as libc::c_ulong)? {
        clone::Forked::Child => {
            // Wait until the parent has what it needs (it closes its end),
            // then go.
            fd::close_raw(hold_write.as_raw_fd());
            let mut b = [0u8; 1];
            let _ = fd::read(hold_read.as_raw_fd(), &mut b);
            clone::exit_now(0)
        }
        clone::Forked::Parent { pid, .. } => pid,
    };
    drop(hold_read);
    let result = (|| {
        let path = |name: &str| {
            CString::new(format!("/proc/{pid}/{name}")).map_err(|_| Errno(libc::EINVAL))
        };
        fd::write_file(&path("uid_map")?, uid_map)?;
        fd::write_file(&path("gid_map")?, gid_map)?;
        let ns = fd::open(&path("ns/user")?, libc::O_RDONLY, 0)?;
        // SAFETY: `ns` was just opened and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(ns) })
    })();
    drop(hold_write);
    let _ = super::process::wait(pid);
    result
}

/// Makes `cmd` run with every id root's: a setuid program's real ids are
/// its caller's, and some tools (nft) refuse to run like that.
pub fn as_full_root(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes two
    // async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether the filesystem at `path` can be mounted idmapped: an idmapped
/// clone of its mount is made and thrown away (never attached).
pub fn idmap_works(path: &std::ffi::CStr) -> SysResult<()> {
    let ns = idmap_namespace(b"0 0 1\n", b"0 0 1\n")?;
    let tree = super::mount::clone_tree(libc::AT_FDCWD, path, false)?;
    use std::os::fd::AsRawFd;
    let result = super::mount::set_idmap(tree, ns.as_raw_fd(), 0);
    fd::close_raw(tree);
    result
}

/// Whether `fd` is a user namespace (an nsfs file of that type).
pub fn is_user_namespace(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)
                                                 // SAFETY: NS_GET_NSTYPE takes no argument and only returns a number;
                                                 // on anything but an nsfs file it fails.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    t == libc::CLONE_NEWUSER
}

/// Keeps a namespace alive by binding it onto a file, as `ip netns`
/// does, so later runs can reuse it. Both are `/proc/self/fd/N` names of
/// open descriptors, which mount(2) resolves to exactly those files.
pub fn pin_namespace(ns: &std::ffi::CStr, target: &std::ffi::CStr) -> SysResult<()> {
    super::mount::mount(Some(ns), target, None, libc::MS_BIND as libc::c_ulong, None)
}

/// Undoes every mount at `path` (pins stacked by runs that raced).
pub fn unpin(path: &std::ffi::CStr) {
    for _ in 0..64 {
        // SAFETY: `path` is NUL-terminated and outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
            break;
        }
    }
}

/// Sets the file-system user and group ids; what they were. setfsuid
/// reports no error, so each change is read back: a change that did not
/// happen is an error (EPERM).
pub fn set_fs_ids(uid: u32, gid: u32) -> SysResult<(u32, u32)> {
    // SAFETY: plain integers; each call returns the previous value.
    let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
    // SAFETY: an invalid id (-1) changes nothing and returns the current.
    let (now_gid, now_uid) = unsafe { (libc::setfsgid(u32::MAX), libc::setfsuid(u32::MAX)) };
    if now_uid as u32 != uid || now_gid as u32 != gid {
        return Err(Errno(libc::EPERM));
    }
    Ok((old_uid as u32, old_gid as u32))
}
