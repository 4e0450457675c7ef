//! Files reached by descriptor, never by a name resolved twice: opening
//! with symlinks refused (`openat2`), creating, renaming and removing
//! relative to a checked directory, and reading what an open descriptor
//! is. What the launcher does as root goes through these.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{check, check_int, Errno, SysResult};

/// `struct open_how` from linux/openat2.h.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Fork-safe: opens `path` relative to `dir` (`None`: the working
/// directory, so an absolute `path` from `/`) with `flags`, refusing any
/// symlink on the way, the last component included (ELOOP). Always
/// close-on-exec.
pub fn open_no_symlinks(dir: Option<RawFd>, path: &CStr, flags: libc::c_int) -> SysResult<RawFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is NUL-terminated and `how` is a live open_how whose
    // size is passed alongside; both outlive the call, which returns a new
    // descriptor or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.unwrap_or(libc::AT_FDCWD),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(ret).map(|fd| fd as RawFd)
}

/// [`open_no_symlinks`], owned.
pub fn open_owned(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: libc::c_int,
) -> SysResult<OwnedFd> {
    let fd = open_no_symlinks(dir.map(|d| d.as_raw_fd()), path, flags)?;
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` with `O_PATH` as a process whose root is `root` would
/// resolve it: absolute symlinks and `..` stay inside `root`, and no
/// magic link is followed. The last component is followed only with
/// `follow`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &CStr, follow: bool) -> SysResult<OwnedFd> {
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC | nofollow) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: as in `open_no_symlinks`: NUL-terminated path, live open_how
    // with its size; returns a new descriptor or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = check(ret)? as RawFd;
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the mount holding `fd` is read-only.
pub fn on_read_only_mount(fd: BorrowedFd<'_>) -> SysResult<bool> {
    // SAFETY: statvfs is plain data; the kernel fills it in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live statvfs; fstatvfs only writes into it.
    check_int(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}

/// What an open descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    /// Type and permission bits.
    pub mode: u32,
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// Fork-safe: `fstat` of a descriptor (O_PATH ones included).
pub fn stat_fd(fd: RawFd) -> SysResult<Stat> {
    // SAFETY: a zeroed stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable stat; fstat only writes into it.
    check_int(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode,
    })
}

/// The filesystem type (statfs `f_type`) holding `fd`.
pub fn fs_type(fd: BorrowedFd<'_>) -> SysResult<i64> {
    // SAFETY: statfs is plain data; the kernel fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live statfs; fstatfs only writes into it.
    check_int(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// Whether the *real* user (a setuid program's caller) may access what
/// `fd` is with `mode` (R_OK, W_OK, X_OK), with its groups, as access(2)
/// decides.
pub fn real_access(fd: BorrowedFd<'_>, mode: libc::c_int) -> bool {
    // SAFETY: the empty path is NUL-terminated; with AT_EMPTY_PATH the call
    // checks `fd` itself and writes nothing. Without AT_EACCESS it uses the
    // real ids.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    ret == 0
}

/// Creates the directory `name` in `dir`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check_int(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(|_| ())
}

/// Opens `name` in `dir` without following a symlink there, close-on-exec.
/// With O_CREAT in `flags`, `mode` is the new file's.
pub fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> SysResult<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; openat
    // returns a new descriptor or -1.
    let fd = check_int(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat just returned it and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Renames `from` to `to`, both in `dir` (replacing `to` atomically).
pub fn rename_at(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> SysResult<()> {
    // SAFETY: both names are NUL-terminated and outlive the call.
    check_int(unsafe {
        libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr())
    })
    .map(|_| ())
}

/// Removes `name` from `dir` (a directory with `is_dir`).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, is_dir: bool) -> SysResult<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check_int(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(|_| ())
}

/// Sets the permission bits of what `fd` is.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    check_int(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(|_| ())
}

/// The names in the directory `dir` (whose offset it moves).
pub fn names(dir: BorrowedFd<'_>) -> SysResult<Vec<std::ffi::CString>> {
    // A duplicate, because closedir closes the descriptor it was given.
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument.
    let dup = check_int(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `dup` is a directory descriptor this function owns; fdopendir
    // takes it over (closedir below closes it).
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = Errno::last();
        super::fd::close_raw(dup);
        return Err(e);
    }
    // SAFETY: `stream` is a live DIR*; rewinddir only resets its position.
    unsafe { libc::rewinddir(stream) };
    let mut out = Vec::new();
    loop {
        // SAFETY: `stream` is live; readdir returns null at the end or a
        // pointer valid until the next readdir or closedir on it.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry, which stays
        // valid until the next readdir; it is copied before that.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    // SAFETY: `stream` is live and closed once.
    unsafe { libc::closedir(stream) };
    Ok(out)
}

/// The value of the extended attribute `name` of `path` (not following a
/// final symlink), at most `buf.len()` bytes; `None` when it has none.
pub fn get_xattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<Option<usize>> {
    // SAFETY: both strings are NUL-terminated and `buf` is a live buffer
    // of the length passed; the kernel writes at most that much.
    let ret = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match check(ret as libc::c_long) {
        Ok(n) => Ok(Some(n as usize)),
        Err(Errno(libc::ENODATA)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets the extended attribute `name` of `path` (not following a final
/// symlink).
pub fn set_xattr(path: &CStr, name: &CStr, value: &[u8]) -> SysResult<()> {
    // SAFETY: both strings are NUL-terminated and `value` is a live slice
    // of the length passed, which the kernel only reads.
    check_int(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(|_| ())
}

/// Makes an overlayfs whiteout at `path`: a character device 0:0, which
/// needs no privilege (Linux 5.8).
pub fn make_whiteout(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated; S_IFCHR with device 0 is the
    // whiteout the kernel lets anyone make.
    check_int(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR, 0) }).map(|_| ())
}
