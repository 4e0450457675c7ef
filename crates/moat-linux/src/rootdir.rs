//! Directories only root can change, reached by descriptor, and the files
//! root keeps in them.
//!
//! The launcher runs as root for a caller it does not trust. Every file it
//! creates or changes lives in a [`RootDir`]: a directory opened from `/`
//! one component at a time without following symlinks, every directory on
//! the way owned by root and writable by root alone. Files in it are
//! opened with `O_NOFOLLOW`, created with `O_EXCL` under a name of this
//! process's own and renamed into place, so no name anyone else controls
//! is ever resolved, and a process killed halfway leaves at most a stray
//! temporary file, which the next writer removes.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::{self, at, Errno};

/// Why a root directory or a file in it could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootDirError {
    #[error("{path} is not a path of directories")]
    BadPath { path: String },
    #[error("opening {path}: {errno}")]
    Open { path: String, errno: Errno },
    #[error(
        "{path} is not a directory that only root can change (owner uid {uid}, mode {mode:o}), \
         so moat will not keep files there as root\nhint: chown root: {path} && chmod go-w {path}"
    )]
    Unsafe { path: String, uid: u32, mode: u32 },
    #[error("{what} {path}/{name}: {errno}")]
    File {
        what: &'static str,
        path: String,
        name: String,
        errno: Errno,
    },
    #[error("{path}/{name} is not a regular file of root's")]
    NotRootFile { path: String, name: String },
}

/// A directory only root can change, open.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: String,
}

fn cname(name: &str) -> Option<CString> {
    (!name.is_empty() && !name.contains('/') && name != "." && name != "..")
        .then(|| CString::new(name).ok())
        .flatten()
}

fn check_dir(fd: &OwnedFd, path: &str) -> Result<(), RootDirError> {
    let st = at::stat_fd(fd.as_raw_fd()).map_err(|errno| RootDirError::Open {
        path: path.to_string(),
        errno,
    })?;
    if !st.is_dir() || st.uid != 0 || st.mode & 0o022 != 0 {
        return Err(RootDirError::Unsafe {
            path: path.to_string(),
            uid: st.uid,
            mode: st.mode & 0o7777,
        });
    }
    Ok(())
}

impl RootDir {
    /// Opens `path` (absolute), checking every directory from `/` down.
    pub fn open(path: &str) -> Result<RootDir, RootDirError> {
        Self::walk(path, None)
    }

    /// As [`RootDir::open`], creating the missing directories (root's,
    /// with `mode`).
    pub fn create(path: &str, mode: libc::mode_t) -> Result<RootDir, RootDirError> {
        Self::walk(path, Some(mode))
    }

    fn walk(path: &str, create: Option<libc::mode_t>) -> Result<RootDir, RootDirError> {
        let bad = || RootDirError::BadPath {
            path: path.to_string(),
        };
        let rest = path.strip_prefix('/').ok_or_else(bad)?;
        let open_err = |at: &str| {
            let at = at.to_string();
            move |errno| RootDirError::Open { path: at, errno }
        };
        let mut fd = at::open_owned(None, c"/", libc::O_DIRECTORY | libc::O_RDONLY)
            .map_err(open_err("/"))?;
        check_dir(&fd, "/")?;
        let mut walked = String::new();
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            let name = cname(part).ok_or_else(bad)?;
            walked.push('/');
            walked.push_str(part);
            let flags = libc::O_DIRECTORY | libc::O_RDONLY;
            let next = match at::open_at(fd.as_fd(), &name, flags, 0) {
                Err(Errno(libc::ENOENT)) if create.is_some() => {
                    let mode = create.unwrap_or(0o700);
                    match at::mkdir_at(fd.as_fd(), &name, mode) {
                        Ok(()) | Err(Errno(libc::EEXIST)) => {}
                        Err(e) => return Err(open_err(&walked)(e)),
                    }
                    at::open_at(fd.as_fd(), &name, flags, 0)
                }
                other => other,
            }
            .map_err(open_err(&walked))?;
            check_dir(&next, &walked)?;
            fd = next;
        }
        Ok(RootDir {
            fd,
            path: if walked.is_empty() {
                "/".into()
            } else {
                walked
            },
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self, name: &str) -> Result<CString, RootDirError> {
        cname(name).ok_or_else(|| RootDirError::BadPath {
            path: format!("{}/{name}", self.path),
        })
    }

    fn file_err(&self, what: &'static str, name: &str) -> impl Fn(Errno) -> RootDirError {
        let (path, name) = (self.path.clone(), name.to_string());
        move |errno| RootDirError::File {
            what,
            path: path.clone(),
            name: name.clone(),
            errno,
        }
    }

    /// Opens the file `name` with `flags` (O_NOFOLLOW added); it must be a
    /// regular file of root's.
    pub fn open_file(&self, name: &str, flags: libc::c_int) -> Result<OwnedFd, RootDirError> {
        let c = self.name(name)?;
        let fd = at::open_at(self.fd(), &c, flags | libc::O_NONBLOCK, 0)
            .map_err(self.file_err("opening", name))?;
        self.owned_by_root(&fd, name)?;
        Ok(fd)
    }

    fn owned_by_root(&self, fd: &OwnedFd, name: &str) -> Result<(), RootDirError> {
        let st = at::stat_fd(fd.as_raw_fd()).map_err(self.file_err("reading", name))?;
        if !st.is_file() || st.uid != 0 {
            return Err(RootDirError::NotRootFile {
                path: self.path.clone(),
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// The contents of `name` (at most `max` bytes), `None` when there is
    /// no such file.
    pub fn read(&self, name: &str, max: usize) -> Result<Option<Vec<u8>>, RootDirError> {
        let fd = match self.open_file(name, libc::O_RDONLY) {
            Ok(fd) => fd,
            Err(RootDirError::File {
                errno: Errno(libc::ENOENT),
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < max {
            match sys::fd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n.min(max - out.len())]),
                Err(e) => return Err(self.file_err("reading", name)(e)),
            }
        }
        Ok(Some(out))
    }

    /// Opens `name`, creating it (root's, `mode`) if missing: for a file
    /// that is only ever a mount point.
    pub fn touch(&self, name: &str, mode: libc::mode_t) -> Result<OwnedFd, RootDirError> {
        let c = self.name(name)?;
        let fd = at::open_at(
            self.fd(),
            &c,
            libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK,
            mode,
        )
        .map_err(self.file_err("creating", name))?;
        self.owned_by_root(&fd, name)?;
        Ok(fd)
    }

    /// Replaces `name` with `data` (mode `mode`, whatever the umask): a new
    /// file under a name of this process's own, renamed over the old, so
    /// a reader sees the old contents or the new, never part of either.
    pub fn replace(&self, name: &str, data: &[u8], mode: libc::mode_t) -> Result<(), RootDirError> {
        self.sweep(name);
        let tmp_name = temp_name(name, std::process::id());
        let tmp = self.name(&tmp_name)?;
        // A file by this name is a leftover of a process that had this pid.
        let _ = at::unlink_at(self.fd(), &tmp, false);
        let fd = at::open_at(
            self.fd(),
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .map_err(self.file_err("creating", &tmp_name))?;
        let written = at::chmod_fd(fd.as_fd(), mode)
            .and_then(|()| sys::fd::write_all(fd.as_raw_fd(), data))
            .map_err(self.file_err("writing", &tmp_name))
            .and_then(|()| {
                at::rename_at(self.fd(), &tmp, &self.name(name)?)
                    .map_err(self.file_err("renaming over", name))
            });
        if written.is_err() {
            let _ = at::unlink_at(self.fd(), &tmp, false);
        }
        written
    }

    /// Removes `name` if it is there.
    pub fn remove(&self, name: &str) -> Result<(), RootDirError> {
        match at::unlink_at(self.fd(), &self.name(name)?, false) {
            Ok(()) | Err(Errno(libc::ENOENT)) => Ok(()),
            Err(e) => Err(self.file_err("removing", name)(e)),
        }
    }

    /// The names in the directory.
    pub fn names(&self) -> Vec<String> {
        at::names(self.fd())
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    /// Removes temporary files of `name` whose writer is gone (killed
    /// between creating and renaming).
    pub fn sweep(&self, name: &str) {
        for entry in self.names() {
            if let Some(pid) = temp_owner(name, &entry) {
                if sys::process::kill(pid, 0) == Err(Errno(libc::ESRCH)) {
                    if let Ok(c) = self.name(&entry) {
                        let _ = at::unlink_at(self.fd(), &c, false);
                    }
                }
            }
        }
    }
}

fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.tmp")
}

/// The pid in a temporary name of `name`'s.
fn temp_owner(name: &str, entry: &str) -> Option<libc::pid_t> {
    entry
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?
        .strip_suffix(".tmp")?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `/proc/self/fd/N` for `fd`: a name mount(2) resolves to exactly what
/// the descriptor is, for the calls that take only names.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    // Digits only: never fails.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_their_writer() {
        let t = temp_name("firewall-verified", 42);
        assert_eq!(t, ".firewall-verified.42.tmp");
        assert_eq!(temp_owner("firewall-verified", &t), Some(42));
        assert_eq!(temp_owner("firewall-verified", "firewall-verified"), None);
        assert_eq!(temp_owner("firewall-verified", ".other.42.tmp"), None);
        assert_eq!(
            temp_owner("firewall-verified", ".firewall-verified.x.tmp"),
            None
        );
        assert_eq!(
            temp_owner("firewall-verified", ".firewall-verified.0.tmp"),
            None
        );
    }

    #[test]
    fn names_with_slashes_or_dots_are_refused() {
        for bad in ["", ".", "..", "a/b", "/a"] {
            assert!(cname(bad).is_none(), "{bad:?}");
        }
        assert!(cname("setup.toml").is_some());
    }

    /// As root: a directory under /tmp (sticky, world-writable) is refused,
    /// and one under a root-only directory is accepted and written by
    /// descriptor.
    #[test]
    #[allow(clippy::panic)]
    fn only_directories_root_alone_can_change_are_used() {
        if crate::sys::process::ids().0 != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let under_tmp = format!("/tmp/moat-rootdir-{}", std::process::id());
        let _ = std::fs::create_dir(&under_tmp);
        let got = RootDir::open(&under_tmp);
        assert!(
            matches!(got, Err(RootDirError::Unsafe { ref path, .. }) if path == "/tmp"),
            "{got:?}"
        );
        let _ = std::fs::remove_dir(&under_tmp);

        let base = format!("/run/moat-rootdir-test-{}", std::process::id());
        let dir = RootDir::create(&format!("{base}/a/b"), 0o700);
        let dir = match dir {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(dir.read("stamp", 64), Ok(None));
        assert_eq!(dir.replace("stamp", b"one\n", 0o644), Ok(()));
        assert_eq!(dir.replace("stamp", b"two\n", 0o644), Ok(()));
        assert_eq!(dir.read("stamp", 64), Ok(Some(b"two\n".to_vec())));
        // A stale temporary file of a dead writer goes at the next write.
        let stale = format!("{base}/a/b/.stamp.999999999.tmp");
        let _ = std::fs::write(&stale, "x");
        assert_eq!(dir.replace("stamp", b"three\n", 0o644), Ok(()));
        assert!(!std::path::Path::new(&stale).exists());
        // A symlink planted under the name is not followed.
        let _ = std::fs::remove_file(format!("{base}/a/b/stamp"));
        let _ = std::os::unix::fs::symlink("/etc/passwd", format!("{base}/a/b/stamp"));
        assert!(matches!(
            dir.read("stamp", 64),
            Err(RootDirError::File {
                errno: Errno(libc::ELOOP),
                ..
            })
        ));
        let _ = std::fs::remove_dir_all(&base);
    }
}
