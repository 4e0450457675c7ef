//! Facts about the host that a policy is resolved against.
//!
//! Resolution needs to know the home directory, the workspace and what exists
//! on disk. Those facts come in as values and through the [`HostFs`] trait so
//! the logic can be tested with a fake filesystem. [`StdFs`] is the one real
//! implementation, and the only code in this crate that touches the disk.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// What a directory entry is, without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    /// Sockets, fifos, devices.
    Other,
}

/// The filesystem questions policy resolution asks.
pub trait HostFs {
    /// What is at `path` (not following a final symlink), or `None` if
    /// nothing is.
    fn kind(&self, path: &Path) -> Option<EntryKind>;
    /// The path with every symlink resolved; fails if it does not exist.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// The names and kinds of a directory's entries, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>>;
    /// A small text file (git's `gitdir:` files), at most `limit` bytes.
    fn read_small(&self, path: &Path, limit: usize) -> io::Result<String>;
    /// How many subdirectories `path` has, when the filesystem can say so
    /// without listing it (the link count of a directory on filesystems
    /// that keep it as 2 + subdirectories); `None` when unknown.
    fn subdirs_hint(&self, _path: &Path) -> Option<u64> {
        None
    }
    /// For each directory, its [`HostFs::subdirs_hint`] and what its `.git`
    /// is. The search asks for a whole level at once, so an implementation
    /// may spread the lookups over threads.
    fn survey(&self, dirs: &[PathBuf]) -> Vec<(Option<u64>, Option<EntryKind>)> {
        dirs.iter()
            .map(|d| (self.subdirs_hint(d), self.kind(&d.join(".git"))))
            .collect()
    }
}

/// Facts about the person and the run that are not on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The person's home directory, absolute.
    pub home: PathBuf,
    /// The current directory, absolute; the workspace unless a flag says
    /// otherwise.
    pub cwd: PathBuf,
    /// The environment moat itself was started with.
    pub env: Vec<(OsString, OsString)>,
}

/// [`HostFs`] on the real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

fn kind_of(file_type: std::fs::FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl HostFs for StdFs {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        std::fs::symlink_metadata(path)
            .ok()
            .map(|m| kind_of(m.file_type()))
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            // d_type from getdents: no stat per entry.
            let kind = entry.file_type().map(kind_of).unwrap_or(EntryKind::Other);
            entries.push((entry.file_name(), kind));
        }
        Ok(entries)
    }

    fn read_small(&self, path: &Path, limit: usize) -> io::Result<String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(limit as u64)
            .read_to_string(&mut text)?;
        Ok(text)
    }
}

#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod fake {
    //! An in-memory filesystem for tests.
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    pub enum Node {
        Dir,
        File(String),
        Symlink(PathBuf),
        Socket,
    }

    #[derive(Debug, Default, Clone)]
    pub struct FakeFs {
        pub nodes: BTreeMap<PathBuf, Node>,
        /// Whether to answer `subdirs_hint` (as ext4 would) or not (as
        /// btrfs would).
        pub hints: bool,
    }

    impl FakeFs {
        pub fn new() -> FakeFs {
            let mut fs = FakeFs::default();
            fs.nodes.insert(PathBuf::from("/"), Node::Dir);
            fs
        }

        fn parents(&mut self, path: &Path) {
            let mut p = path.parent();
            while let Some(dir) = p {
                self.nodes.entry(dir.to_path_buf()).or_insert(Node::Dir);
                p = dir.parent();
            }
        }

        pub fn with_hints(mut self) -> FakeFs {
            self.hints = true;
            self
        }

        pub fn dir(mut self, path: &str) -> FakeFs {
            self.parents(Path::new(path));
            self.nodes.insert(PathBuf::from(path), Node::Dir);
            self
        }

        pub fn file(mut self, path: &str, text: &str) -> FakeFs {
            self.parents(Path::new(path));
            self.nodes
                .insert(PathBuf::from(path), Node::File(text.to_string()));
            self
        }

        pub fn symlink(mut self, path: &str, target: &str) -> FakeFs {
            self.parents(Path::new(path));
            self.nodes
                .insert(PathBuf::from(path), Node::Symlink(PathBuf::from(target)));
            self
        }

        pub fn socket(mut self, path: &str) -> FakeFs {
            self.parents(Path::new(path));
            self.nodes.insert(PathBuf::from(path), Node::Socket);
            self
        }

        fn resolve(&self, path: &Path, depth: usize) -> io::Result<PathBuf> {
            if depth > 40 {
                return Err(io::Error::new(io::ErrorKind::Other, "loop"));
            }
            let mut out = PathBuf::from("/");
            for comp in path.components().skip(1) {
                out.push(comp);
                if let Some(Node::Symlink(target)) = self.nodes.get(&out) {
                    let joined = match out.parent() {
                        Some(parent) => parent.join(target),
                        None => target.clone(),
                    };
                    out = self.resolve(&crate::paths::normalize(&joined), depth + 1)?;
                }
            }
            if self.nodes.contains_key(&out) {
                Ok(out)
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
        }
    }

    impl HostFs for FakeFs {
        fn kind(&self, path: &Path) -> Option<EntryKind> {
            self.nodes.get(path).map(|n| match n {
                Node::Dir => EntryKind::Dir,
                Node::File(_) => EntryKind::File,
                Node::Symlink(_) => EntryKind::Symlink,
                Node::Socket => EntryKind::Other,
            })
        }

        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            self.resolve(path, 0)
        }

        fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
            let dir = self.resolve(path, 0)?;
            let mut out = Vec::new();
            for (p, _) in self.nodes.iter() {
                if p.parent() == Some(dir.as_path()) {
                    if let (Some(name), Some(kind)) = (p.file_name(), self.kind(p)) {
                        out.push((name.to_os_string(), kind));
                    }
                }
            }
            Ok(out)
        }

        fn subdirs_hint(&self, path: &Path) -> Option<u64> {
            if !self.hints {
                return None;
            }
            let subdirs = self
                .nodes
                .iter()
                .filter(|(p, n)| p.parent() == Some(path) && matches!(n, Node::Dir))
                .count();
            Some(subdirs as u64)
        }

        fn read_small(&self, path: &Path, limit: usize) -> io::Result<String> {
            match self.nodes.get(&self.resolve(path, 0)?) {
                Some(Node::File(text)) => Ok(text.chars().take(limit).collect()),
                _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
            }
        }
    }
}
