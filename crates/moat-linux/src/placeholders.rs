//! Placeholders for protected names that do not exist yet.
//!
//! A name like `.vscode` or `.git/hooks` that is absent when the run starts
//! could be created by the command and then run code on the host later.
//! Mounts can only cover names that exist, so moat creates each one, the
//! sandbox keeps it read-only (a mount point cannot be removed or replaced),
//! and moat removes it when the run ends.
//!
//! A placeholder is an unbound UNIX socket inode with mode 000, made with
//! mknod:
//! - git, which only lists regular files, links and directories, does not
//!   see it, so `git status` and `git add -A` inside or outside the sandbox
//!   are unchanged while it exists;
//! - opening it fails at once (ENXIO), so a tool that reads `.envrc` or
//!   `.mcp.json` during the run neither hangs (a fifo would) nor parses an
//!   empty file, and looking inside `.vscode/` fails with ENOTDIR;
//! - it needs no data block, and all placeholders of a run on one
//!   filesystem are hard links to a single inode, so making and removing
//!   them stays cheap even on filesystems that discard freed blocks
//!   synchronously or search their bitmaps for each new inode;
//! - no one binds a socket with mode 000 at these names, so it is also the
//!   mark by which a later run recognises a placeholder left by a run that
//!   was killed.
//!
//! Runs in the same directory share placeholders: each holds a shared
//! `flock` on the directory holding them, and a run removes placeholders
//! only if it can take that lock exclusively (no other run relies on them).
//! A stale placeholder is adopted by the next run there and removed when it
//! ends.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::sys;

/// Placeholders held by one run, by the directory holding them.
#[derive(Debug, Default)]
pub struct Placeholders {
    held: BTreeMap<PathBuf, (File, Vec<(PathBuf, u64)>)>,
    /// A placeholder this run made, to link the next ones to.
    template: Option<PathBuf>,
}

/// Why a placeholder could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot create placeholder {path}: {source}")]
pub struct PlaceholderError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The inode number if `path` is a placeholder.
fn placeholder_ino(path: &Path) -> Option<u64> {
    let m = std::fs::symlink_metadata(path).ok()?;
    (m.file_type().is_socket() && m.mode() & 0o7777 == 0).then(|| m.ino())
}

impl Placeholders {
    /// Creates (or adopts) a placeholder at each path.
    pub fn create(paths: &[PathBuf]) -> Result<Placeholders, PlaceholderError> {
        let mut out = Placeholders::default();
        for path in paths {
            out.add(path).map_err(|source| PlaceholderError {
                path: path.clone(),
                source,
            })?;
        }
        Ok(out)
    }

    fn add(&mut self, path: &Path) -> std::io::Result<()> {
        let parent = match path.parent() {
            Some(p) => p.to_path_buf(),
            None => return Ok(()),
        };
        if !self.held.contains_key(&parent) {
            let dir = File::open(&parent)?;
            // Waits while another run is removing placeholders here.
            sys::fd::flock(&dir, libc::LOCK_SH, false).map_err(|e| e.io())?;
            self.held.insert(parent.clone(), (dir, Vec::new()));
        }
        let linked = match &self.template {
            Some(t) => match std::fs::hard_link(t, path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => true,
                // Another filesystem (EXDEV), or links refused: a new inode.
                Err(_) => false,
            },
            None => false,
        };
        if !linked {
            let c = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
            match sys::fd::mknod_socket(&c) {
                Ok(()) => self.template = Some(path.to_path_buf()),
                Err(sys::Errno(libc::EEXIST)) => {}
                Err(e) => return Err(e.io()),
            }
        }
        // Ours, adopted, or someone else's (then the sandbox protects it as
        // an existing path and it is not ours to remove).
        if let Some(ino) = placeholder_ino(path) {
            if let Some((_, list)) = self.held.get_mut(&parent) {
                list.push((path.to_path_buf(), ino));
            }
        }
        Ok(())
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.held
            .values()
            .flat_map(|(_, list)| list.iter().map(|(p, _)| p.clone()))
            .collect()
    }

    /// Removes every placeholder no other run relies on. Safe to call
    /// twice.
    pub fn remove(&mut self) {
        for (_, (dir, list)) in std::mem::take(&mut self.held) {
            // Trade the shared lock for an exclusive one; if another run
            // holds it, that run removes the placeholders when it ends.
            if !matches!(sys::fd::flock(&dir, libc::LOCK_EX, true), Ok(true)) {
                continue;
            }
            for (path, ino) in list {
                if placeholder_ino(&path) == Some(ino) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

impl Drop for Placeholders {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("moat-ph-{}-{}", tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn created_and_removed() {
        let d = tempdir("basic");
        let p = d.join(".vscode");
        let mut ph = Placeholders::create(std::slice::from_ref(&p)).unwrap();
        assert!(placeholder_ino(&p).is_some());
        assert_eq!(ph.paths(), vec![p.clone()]);
        ph.remove();
        assert!(std::fs::symlink_metadata(&p).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn shared_between_runs_and_never_the_persons() {
        let d = tempdir("shared");
        let p = d.join(".codex");
        let mut first = Placeholders::create(std::slice::from_ref(&p)).unwrap();
        let mut second = Placeholders::create(std::slice::from_ref(&p)).unwrap();
        first.remove();
        assert!(
            placeholder_ino(&p).is_some(),
            "still held by the second run"
        );
        second.remove();
        assert!(std::fs::symlink_metadata(&p).is_err());

        // Something the person made is never adopted or removed.
        std::fs::create_dir(&p).unwrap();
        let mut third = Placeholders::create(std::slice::from_ref(&p)).unwrap();
        assert!(third.paths().is_empty());
        third.remove();
        assert!(p.is_dir());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_placeholder_is_adopted_and_cleaned() {
        let d = tempdir("stale");
        let p = d.join(".idea");
        let mut ph = Placeholders::create(std::slice::from_ref(&p)).unwrap();
        // A killed run: its lock goes with it, its placeholder stays.
        ph.held.clear();
        assert!(placeholder_ino(&p).is_some());
        let mut next = Placeholders::create(std::slice::from_ref(&p)).unwrap();
        assert_eq!(next.paths(), vec![p.clone()]);
        next.remove();
        assert!(std::fs::symlink_metadata(&p).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
