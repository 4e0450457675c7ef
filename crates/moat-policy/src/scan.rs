//! The bounded search for repositories inside a writable root.
//!
//! Every run looks for nested repositories (their hooks and config must stay
//! read-only too), so the search must cost little whatever the size of the
//! tree:
//! - it lists only directories that have subdirectories: where the
//!   filesystem says a directory has none (its link count, see
//!   [`HostFs::subdirs_hint`]), one lookup of `.git` in it is enough, so a
//!   directory of ten thousand files costs two system calls, not a listing;
//! - listings use the entry types the kernel returns (no `stat` per
//!   entry), symlinks are never followed, build output and dependency
//!   caches are skipped ([`crate::known::SCAN_SKIP_DIRS`]);
//! - it stops at a depth, a number of directories and a number of listed
//!   entries. What it did not reach is reported, not hidden.

use std::path::{Path, PathBuf};

use crate::host::{EntryKind, HostFs};
use crate::known::SCAN_SKIP_DIRS;

/// How far the search goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Directories below the root that are listed: 0 lists only the root.
    pub max_depth: usize,
    /// Directories visited at most, the root included.
    pub max_dirs: usize,
    /// Directory entries read at most.
    pub max_entries: usize,
}

impl ScanLimits {
    /// Four levels below the root, 2,000 directories, 20,000 entries: a
    /// run in a large monorepo costs a millisecond or two, not a walk of
    /// the tree.
    pub const DEFAULT: ScanLimits = ScanLimits {
        max_depth: 4,
        max_dirs: 2000,
        max_entries: 20_000,
    };
}

/// What a search found and how far it got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Each `.git` entry found (directory, `gitdir:` file or symlink), with
    /// its kind, in breadth-first order.
    pub dotgits: Vec<(PathBuf, EntryKind)>,
    /// Directories visited (listed, or looked into for `.git`).
    pub dirs_listed: usize,
    pub entries_read: usize,
    /// True if the directory or entry limit stopped the search before the
    /// depth limit did.
    pub truncated: bool,
}

/// Finds `.git` entries under `root` (including `root/.git`).
///
/// Breadth-first, one level at a time: the directories of a level are
/// surveyed together (subdirectory hint and `.git` lookup), then those that
/// have subdirectories are listed.
pub fn find_dotgits(fs: &dyn HostFs, root: &Path, limits: ScanLimits) -> ScanResult {
    let mut result = ScanResult::default();
    let mut level = vec![root.to_path_buf()];
    let mut depth = 0usize;
    'levels: while !level.is_empty() {
        let room = limits.max_dirs.saturating_sub(result.dirs_listed);
        if level.len() > room {
            level.truncate(room);
            result.truncated = true;
        }
        let facts = if depth > 0 {
            fs.survey(&level)
        } else {
            Vec::new()
        };
        let mut next = Vec::new();
        for (i, dir) in level.iter().enumerate() {
            if result.entries_read >= limits.max_entries {
                result.truncated = true;
                break 'levels;
            }
            result.dirs_listed += 1;
            let (hint, dotgit) = facts.get(i).cloned().unwrap_or((None, None));
            // Nothing below to descend into: only `.git` itself matters.
            if depth >= limits.max_depth || (depth > 0 && hint == Some(0)) {
                let dotgit = match facts.get(i) {
                    Some(_) => dotgit,
                    None => fs.kind(&dir.join(".git")),
                };
                if let Some(kind) = dotgit {
                    result.dotgits.push((dir.join(".git"), kind));
                }
                continue;
            }
            let entries = match fs.read_dir(dir) {
                Ok(entries) => entries,
                // Unreadable directories hold nothing the command can reach
                // either.
                Err(_) => continue,
            };
            result.entries_read += entries.len();
            let mut children = Vec::new();
            for (name, kind) in entries {
                if name == ".git" {
                    result.dotgits.push((dir.join(&name), kind));
                    continue;
                }
                if kind != EntryKind::Dir {
                    continue;
                }
                let skip = name.to_str().map_or(false, |n| SCAN_SKIP_DIRS.contains(&n));
                if !skip {
                    children.push(name);
                }
            }
            // Sorted so results do not depend on directory order (by name:
            // comparing whole paths costs more than the lookups).
            children.sort();
            next.extend(children.iter().map(|n| dir.join(n)));
        }
        if result.dirs_listed >= limits.max_dirs && !next.is_empty() {
            result.truncated = true;
            break;
        }
        level = next;
        depth += 1;
    }
    result.dotgits.sort_by(|a, b| {
        a.0.components()
            .count()
            .cmp(&b.0.components().count())
            .then(a.0.cmp(&b.0))
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeFs;

    fn paths(result: &ScanResult) -> Vec<String> {
        result
            .dotgits
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect()
    }

    #[test]
    fn finds_nested_and_skips_caches() {
        let fs = FakeFs::new()
            .dir("/ws/.git/hooks")
            .file("/ws/sub/.git", "gitdir: ../.git/modules/sub")
            .dir("/ws/a/b/deep/.git")
            .dir("/ws/node_modules/pkg/.git")
            .dir("/ws/target/x/.git")
            .symlink("/ws/link", "/elsewhere")
            .dir("/elsewhere/.git");
        let result = find_dotgits(&fs, Path::new("/ws"), ScanLimits::DEFAULT);
        assert_eq!(
            paths(&result),
            ["/ws/.git", "/ws/sub/.git", "/ws/a/b/deep/.git"]
        );
        assert!(!result.truncated);
        assert_eq!(result.dotgits[1].1, EntryKind::File);
    }

    #[test]
    fn depth_and_count_bounds() {
        let fs = FakeFs::new()
            .dir("/ws/1/2/3/4/.git")
            .dir("/ws/1/2/3/4/5/.git");
        let shallow = ScanLimits {
            max_depth: 4,
            max_dirs: 100,
            max_entries: 1000,
        };
        assert_eq!(
            paths(&find_dotgits(&fs, Path::new("/ws"), shallow)),
            ["/ws/1/2/3/4/.git"]
        );
        let few = ScanLimits {
            max_depth: 10,
            max_dirs: 2,
            max_entries: 1000,
        };
        let result = find_dotgits(&fs, Path::new("/ws"), few);
        assert!(result.truncated);
        assert_eq!(result.dirs_listed, 2);
    }

    #[test]
    fn leaf_directories_are_not_listed() {
        let mut fs = FakeFs::new()
            .dir("/ws/big/sub")
            .file("/ws/leaf/.git", "gitdir: x");
        for i in 0..50 {
            fs = fs.file(&format!("/ws/leaf/f{i}"), "");
        }
        let with = find_dotgits(
            &fs.clone().with_hints(),
            Path::new("/ws"),
            ScanLimits::DEFAULT,
        );
        let without = find_dotgits(&fs, Path::new("/ws"), ScanLimits::DEFAULT);
        assert_eq!(paths(&with), ["/ws/leaf/.git"]);
        assert_eq!(paths(&without), ["/ws/leaf/.git"]);
        assert!(with.entries_read < 10, "{} entries read", with.entries_read);
        assert!(without.entries_read > 50);
    }
}
