//! Writable roots opened once, before the run: the mount is cloned from
//! the descriptor (elevated tier) or compared with it (unelevated), and the
//! Landlock rule is made on it, so the directory the sandbox writes is the
//! directory that was opened and checked, not whatever its name leads to
//! by the time the sandbox is built.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::plan::FileId;
use crate::rootdir::RootDir;
use crate::sys::{self, at::Stat, Errno};

/// A directory (or file) opened `O_PATH` with no symlink on the way.
#[derive(Debug)]
pub struct Root {
    pub path: PathBuf,
    fd: OwnedFd,
    stat: Stat,
}

impl Root {
    /// Opens `path` (absolute) from `/`, refusing any symlink on the way
    /// (ELOOP). The permissions checked on the way are the calling
    /// process's file-system ids'.
    pub fn open(path: &Path) -> Result<Root, Errno> {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Errno(libc::EINVAL))?;
        let fd = sys::at::open_owned(None, &c, libc::O_PATH)?;
        let stat = sys::at::stat_fd(fd.as_raw_fd())?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
            stat,
        })
    }

    pub fn id(&self) -> FileId {
        FileId {
            dev: self.stat.dev,
            ino: self.stat.ino,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.stat.is_dir()
    }

    pub fn owner(&self) -> u32 {
        self.stat.uid
    }

    /// Whether the real user (a setuid program's caller) may access it
    /// with `mode` (libc::W_OK, X_OK, ...).
    pub fn caller_may(&self, mode: libc::c_int) -> bool {
        sys::at::real_access(self.fd.as_fd(), mode)
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A tool cache's layers, checked by the launcher: the cache directory,
/// the shared layer, and this run's directory with its `upper` and `work`,
/// every one the caller's own.
#[derive(Debug)]
pub struct CheckedCache {
    pub at: Root,
    pub shared: Root,
    pub run: Root,
    pub upper: Root,
    pub work: Root,
}

/// A uid and a gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// A resource limit of the launcher's caller, restored for the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

/// What the launcher (root) checked before an elevated run, and who it is
/// for.
#[derive(Debug)]
pub struct Elevation {
    /// The sandbox account's ids (its name is the spec's account).
    pub account: Ids,
    /// The person: their files are shown to the account through idmapped
    /// mounts.
    pub caller: Ids,
    /// The spec's writable roots, in its order, opened and checked as the
    /// caller.
    pub roots: Vec<Root>,
    /// The person's home, read-only and idmapped (when theirs).
    pub home: Option<Root>,
    /// The workspace when it is not writable, opened and checked as the
    /// caller: shown read-only.
    pub workspace: Option<Root>,
    /// The spec's cache layers, in its order, opened and checked as the
    /// caller.
    pub caches: Vec<CheckedCache>,
    /// Where id mappings' namespaces are kept between runs; `None` makes
    /// a new one each run.
    pub pins: Option<RootDir>,
    /// The caller's resource limits: the command gets no more than they
    /// had, whatever the launcher raised its own to.
    pub rlimits: Vec<Rlimit>,
}

impl Ids {
    /// The pair, for the calls that take one.
    pub fn pair(self) -> (u32, u32) {
        (self.uid, self.gid)
    }
}

/// While alive, this (root) process's file-system permissions are checked
/// as `ids`'s, with the supplementary groups it has (a setuid program keeps
/// its caller's): what the launcher opens or lists on its caller's behalf,
/// it can open or list only if they could. Root's own again on drop.
#[derive(Debug)]
pub struct AsUser(());

impl AsUser {
    pub fn enter(ids: Ids) -> Result<AsUser, Errno> {
        sys::ids::set_fs_ids(ids.uid, ids.gid).map(|_| AsUser(()))
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // Back to root's; if that failed the launcher could only do less.
        let _ = sys::ids::set_fs_ids(0, 0);
    }
}
