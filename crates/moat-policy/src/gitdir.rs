//! Finding a repository's git directories from its `.git` entry.
//!
//! A worktree's `.git` is either the git directory itself or a file saying
//! `gitdir: PATH` (linked worktrees, submodules). A git directory may name a
//! separate common directory in its `commondir` file; hooks and the main
//! config live there.

use std::path::{Path, PathBuf};

use crate::host::{EntryKind, HostFs};
use crate::paths::normalize;

/// `gitdir:` and `commondir` files are a line long; anything longer is not
/// one.
pub const POINTER_FILE_LIMIT: usize = 4096;

/// Submodules nest; this bounds how deep `modules/` is followed.
pub const MAX_MODULE_DEPTH: usize = 4;

/// Submodule git directories visited per repository at most.
pub const MAX_MODULES: usize = 256;

/// A repository as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The directory holding `.git`.
    pub worktree: PathBuf,
    /// Whether `.git` is a directory or a `gitdir:` file.
    pub dotgit_kind: EntryKind,
    /// The git directory (canonical).
    pub gitdir: PathBuf,
    /// Where hooks and the shared config live (canonical); equal to
    /// `gitdir` unless this is a linked worktree.
    pub common: PathBuf,
}

/// The target of a `gitdir: PATH` file, resolved against the directory
/// holding the file.
pub fn parse_gitfile(text: &str, base: &Path) -> Option<PathBuf> {
    let line = text.lines().next()?;
    let target = line.strip_prefix("gitdir:")?.trim();
    if target.is_empty() {
        return None;
    }
    Some(normalize(&base.join(target)))
}

/// The common directory named by a git directory's `commondir` file.
pub fn parse_commondir(text: &str, gitdir: &Path) -> Option<PathBuf> {
    let target = text.lines().next()?.trim();
    if target.is_empty() {
        return None;
    }
    Some(normalize(&gitdir.join(target)))
}

/// Reads the repository whose worktree is `worktree`, if `worktree/.git`
/// is a git directory or a `gitdir:` file pointing at one.
pub fn open(fs: &dyn HostFs, worktree: &Path) -> Option<Repo> {
    let dotgit = worktree.join(".git");
    let kind = fs.kind(&dotgit)?;
    let gitdir = match kind {
        EntryKind::Dir => fs.canonicalize(&dotgit).ok()?,
        EntryKind::File => {
            let text = fs.read_small(&dotgit, POINTER_FILE_LIMIT).ok()?;
            let target = parse_gitfile(&text, worktree)?;
            let canonical = fs.canonicalize(&target).ok()?;
            if fs.kind(&canonical) != Some(EntryKind::Dir) {
                return None;
            }
            canonical
        }
        EntryKind::Symlink => {
            let canonical = fs.canonicalize(&dotgit).ok()?;
            if fs.kind(&canonical) != Some(EntryKind::Dir) {
                return None;
            }
            canonical
        }
        EntryKind::Other => return None,
    };
    let common = common_dir(fs, &gitdir).unwrap_or_else(|| gitdir.clone());
    Some(Repo {
        worktree: worktree.to_path_buf(),
        dotgit_kind: kind,
        gitdir,
        common,
    })
}

/// The canonical common directory a git directory's `commondir` names.
pub fn common_dir(fs: &dyn HostFs, gitdir: &Path) -> Option<PathBuf> {
    let file = gitdir.join("commondir");
    if fs.kind(&file) != Some(EntryKind::File) {
        return None;
    }
    let text = fs.read_small(&file, POINTER_FILE_LIMIT).ok()?;
    let target = parse_commondir(&text, gitdir)?;
    fs.canonicalize(&target).ok()
}

/// The git directories of submodules under `gitdir/modules`, recursively
/// (submodules of submodules), bounded by [`MAX_MODULE_DEPTH`] and
/// [`MAX_MODULES`]. A module's name may contain slashes, so any directory
/// under `modules/` holding a `HEAD` file is taken as a git directory.
pub fn module_gitdirs(fs: &dyn HostFs, gitdir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(gitdir.join("modules"), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if found.len() >= MAX_MODULES || depth > MAX_MODULE_DEPTH * 4 {
            continue;
        }
        let entries = match fs.read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) => continue,
        };
        for (name, kind) in entries {
            if kind != EntryKind::Dir {
                continue;
            }
            let child = dir.join(&name);
            if fs.kind(&child.join("HEAD")) == Some(EntryKind::File) {
                found.push(child.clone());
                if depth < MAX_MODULE_DEPTH {
                    stack.push((child.join("modules"), depth + 1));
                }
            } else {
                // A path component of a module name with a slash in it.
                stack.push((child, depth + 1));
            }
        }
    }
    found.sort();
    found
}

/// The per-worktree git directories under `common/worktrees`.
pub fn worktree_gitdirs(fs: &dyn HostFs, common: &Path) -> Vec<PathBuf> {
    let dir = common.join("worktrees");
    let mut found: Vec<PathBuf> = match fs.read_dir(&dir) {
        Ok(entries) => entries
            .into_iter()
            .filter(|(_, kind)| *kind == EntryKind::Dir)
            .map(|(name, _)| dir.join(name))
            .collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    found
}

/// True if `dir` looks like a git directory: the files git itself checks.
pub fn looks_like_gitdir(fs: &dyn HostFs, dir: &Path) -> bool {
    fs.kind(&dir.join("HEAD")) == Some(EntryKind::File)
        && fs.kind(&dir.join("objects")) == Some(EntryKind::Dir)
        && fs.kind(&dir.join("refs")) == Some(EntryKind::Dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::host::fake::FakeFs;

    #[test]
    fn gitfile_parsing() {
        let base = Path::new("/ws/sub");
        assert_eq!(
            parse_gitfile("gitdir: ../.git/modules/sub\n", base),
            Some(PathBuf::from("/ws/.git/modules/sub"))
        );
        assert_eq!(
            parse_gitfile("gitdir: /abs/x", base),
            Some(PathBuf::from("/abs/x"))
        );
        assert_eq!(parse_gitfile("nonsense", base), None);
        assert_eq!(parse_gitfile("gitdir:   \n", base), None);
        assert_eq!(parse_gitfile("", base), None);
    }

    fn linked_worktree() -> FakeFs {
        FakeFs::new()
            .file("/main/.git/HEAD", "ref: refs/heads/main\n")
            .dir("/main/.git/objects")
            .dir("/main/.git/refs")
            .dir("/main/.git/hooks")
            .file("/main/.git/config", "")
            .file("/main/.git/worktrees/wt/HEAD", "ref: refs/heads/wt\n")
            .file("/main/.git/worktrees/wt/commondir", "../..\n")
            .file("/main/.git/worktrees/wt/gitdir", "/wt/.git\n")
            .file("/wt/.git", "gitdir: /main/.git/worktrees/wt\n")
    }

    #[test]
    fn opens_plain_and_linked_repositories() {
        let fs = linked_worktree();
        let main = open(&fs, Path::new("/main")).unwrap();
        assert_eq!(main.gitdir, PathBuf::from("/main/.git"));
        assert_eq!(main.common, PathBuf::from("/main/.git"));
        assert_eq!(main.dotgit_kind, EntryKind::Dir);

        let wt = open(&fs, Path::new("/wt")).unwrap();
        assert_eq!(wt.gitdir, PathBuf::from("/main/.git/worktrees/wt"));
        assert_eq!(wt.common, PathBuf::from("/main/.git"));
        assert_eq!(wt.dotgit_kind, EntryKind::File);
        assert!(looks_like_gitdir(&fs, &wt.common));
        assert_eq!(
            worktree_gitdirs(&fs, &wt.common),
            vec![PathBuf::from("/main/.git/worktrees/wt")]
        );
        assert_eq!(open(&fs, Path::new("/nowhere")), None);
    }

    #[test]
    fn finds_nested_modules() {
        let fs = FakeFs::new()
            .file("/r/.git/modules/a/HEAD", "")
            .file("/r/.git/modules/a/modules/b/HEAD", "")
            .file("/r/.git/modules/libs/c/HEAD", "");
        assert_eq!(
            module_gitdirs(&fs, Path::new("/r/.git")),
            vec![
                PathBuf::from("/r/.git/modules/a"),
                PathBuf::from("/r/.git/modules/a/modules/b"),
                PathBuf::from("/r/.git/modules/libs/c"),
            ]
        );
    }
}
