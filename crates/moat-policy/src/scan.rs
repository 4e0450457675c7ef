//! The bounded search for repositories inside a writable root.
//!
//! Every run looks for nested repositories (their hooks and config must stay
//! read-only too), so the search must cost little whatever the size of the
//! tree: it lists directories breadth-first using the entry types the kernel
//! returns (no `stat` per entry), never follows symlinks, skips build output
//! and dependency caches ([`crate::known::SCAN_SKIP_DIRS`]), and stops at a
//! depth and a number of directories. What it did not reach is reported, not
//! hidden.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::host::{EntryKind, HostFs};
use crate::known::SCAN_SKIP_DIRS;

/// How far the search goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Directories below the root that are listed: 0 lists only the root.
    pub max_depth: usize,
    /// Directories listed at most, the root included.
    pub max_dirs: usize,
}

impl ScanLimits {
    /// Four levels below the root and 2,000 directories: a run in a large
    /// monorepo costs a few milliseconds, not a walk of the tree.
    pub const DEFAULT: ScanLimits = ScanLimits {
        max_depth: 4,
        max_dirs: 2000,
    };
}

/// What a search found and how far it got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Each `.git` entry found (directory, `gitdir:` file or symlink), with
    /// its kind, in breadth-first order.
    pub dotgits: Vec<(PathBuf, EntryKind)>,
    pub dirs_listed: usize,
    /// True if the directory limit stopped the search before the depth
    /// limit did.
    pub truncated: bool,
}

/// Finds `.git` entries under `root` (including `root/.git`).
pub fn find_dotgits(fs: &dyn HostFs, root: &Path, limits: ScanLimits) -> ScanResult {
    let mut result = ScanResult::default();
    let mut queue = VecDeque::new();
    queue.push_back((root.to_path_buf(), 0usize));
    while let Some((dir, depth)) = queue.pop_front() {
        if result.dirs_listed >= limits.max_dirs {
            result.truncated = true;
            break;
        }
        let entries = match fs.read_dir(&dir) {
            Ok(entries) => entries,
            // Unreadable directories hold nothing the command can reach
            // either.
            Err(_) => continue,
        };
        result.dirs_listed += 1;
        let mut children = Vec::new();
        for (name, kind) in entries {
            if name == ".git" {
                result.dotgits.push((dir.join(&name), kind));
                continue;
            }
            if kind != EntryKind::Dir || depth >= limits.max_depth {
                continue;
            }
            let skip = name.to_str().map_or(false, |n| SCAN_SKIP_DIRS.contains(&n));
            if !skip {
                children.push(dir.join(&name));
            }
        }
        // Sorted so results do not depend on directory order.
        children.sort();
        queue.extend(children.into_iter().map(|c| (c, depth + 1)));
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
        };
        assert_eq!(
            paths(&find_dotgits(&fs, Path::new("/ws"), shallow)),
            ["/ws/1/2/3/4/.git"]
        );
        let few = ScanLimits {
            max_depth: 10,
            max_dirs: 2,
        };
        let result = find_dotgits(&fs, Path::new("/ws"), few);
        assert!(result.truncated);
        assert_eq!(result.dirs_listed, 2);
    }
}
