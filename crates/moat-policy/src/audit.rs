//! The audit at the end of a run: git settings that appeared during the
//! run and would make git run a program later, outside the sandbox.
//!
//! During the run the hooks and config of every repository that existed
//! are read-only. Repositories created during the run (`git init`,
//! `cargo new`, a `.git` file pointing somewhere new) cannot be protected in
//! advance, and neither can the few files git reads that must not exist as
//! placeholders (`config`, `commondir`, `config.worktree`). So when the run
//! ends, every git directory inside a writable root is looked at again, and
//! whatever would run code is neutralised visibly: hooks renamed with a
//! `.moat-disabled` suffix, config variables renamed with
//! `-moat-disabled` (see [`crate::gitconfig`]), a `commondir` redirect
//! renamed. This module decides; the caller applies.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::gitconfig;
use crate::gitdir;
use crate::host::{EntryKind, HostFs};
use crate::scan::{find_dotgits, ScanLimits};
use crate::view::FsView;

/// The suffix given to renamed files.
pub const DISABLED_SUFFIX: &str = ".moat-disabled";

/// Config files are small; a larger one is renamed whole rather than read.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Rename `path` to `to`.
    Rename {
        path: PathBuf,
        to: PathBuf,
        reason: String,
    },
    /// Replace the contents of `path` with `text`.
    Rewrite {
        path: PathBuf,
        text: String,
        findings: Vec<gitconfig::Finding>,
    },
}

impl Fix {
    pub fn path(&self) -> &Path {
        match self {
            Fix::Rename { path, .. } | Fix::Rewrite { path, .. } => path,
        }
    }

    /// One line per change, for the person.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Fix::Rename { path, to, reason } => vec![format!(
                "renamed {} to {} ({})",
                path.display(),
                to.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                reason
            )],
            Fix::Rewrite { path, findings, .. } => findings
                .iter()
                .map(|f| {
                    format!(
                        "disabled {} in {} line {} ({})",
                        f.key,
                        path.display(),
                        f.line,
                        f.reason
                    )
                })
                .collect(),
        }
    }
}

fn disabled_name(fs: &dyn HostFs, path: &Path) -> PathBuf {
    let base = path.as_os_str().to_string_lossy().into_owned();
    let mut candidate = PathBuf::from(format!("{}{}", base, DISABLED_SUFFIX));
    let mut n = 2;
    while fs.kind(&candidate).is_some() {
        candidate = PathBuf::from(format!("{}{}.{}", base, DISABLED_SUFFIX, n));
        n += 1;
    }
    candidate
}

struct Auditor<'a> {
    fs: &'a dyn HostFs,
    start_gitdirs: BTreeSet<PathBuf>,
    start_present: BTreeSet<PathBuf>,
    writable: Vec<PathBuf>,
    fixes: Vec<Fix>,
    seen: BTreeSet<PathBuf>,
}

impl Auditor<'_> {
    fn inside_writable(&self, p: &Path) -> bool {
        self.writable.iter().any(|w| p.starts_with(w))
    }

    fn config(&mut self, path: PathBuf) {
        match self.fs.kind(&path) {
            Some(EntryKind::File) => {}
            None => return,
            // git follows a symlinked config, and reading it here would
            // copy whatever it points at into the workspace: set it aside.
            Some(_) => {
                let to = disabled_name(self.fs, &path);
                self.fixes.push(Fix::Rename {
                    path,
                    to,
                    reason: "config is not a regular file".into(),
                });
                return;
            }
        }
        match self.fs.read_small(&path, MAX_CONFIG_BYTES + 1) {
            Ok(text) if text.len() <= MAX_CONFIG_BYTES => {
                let n = gitconfig::neutralise(&text);
                if !n.findings.is_empty() {
                    self.fixes.push(Fix::Rewrite {
                        path,
                        text: n.text,
                        findings: n.findings,
                    });
                }
            }
            _ => {
                let to = disabled_name(self.fs, &path);
                self.fixes.push(Fix::Rename {
                    path,
                    to,
                    reason: "config too large or unreadable to audit".into(),
                });
            }
        }
    }

    fn gitdir(&mut self, g: &Path, common: &Path) {
        if !self.inside_writable(g) || !self.seen.insert(g.to_path_buf()) {
            return;
        }
        let new = !self.start_gitdirs.contains(g);
        let appeared = |s: &Self, p: &Path| new || !s.start_present.contains(p);
        // A gitdir that is a symlink made during the run hands git hooks
        // and config from wherever it points, and following it here would
        // let the audit rename files outside the writable roots.
        if new && self.fs.kind(g) == Some(EntryKind::Symlink) {
            let to = disabled_name(self.fs, g);
            self.fixes.push(Fix::Rename {
                path: g.to_path_buf(),
                to,
                reason: "a git directory made a symlink during the run".into(),
            });
            return;
        }
        if new {
            let hooks = g.join("hooks");
            match self.fs.kind(&hooks) {
                Some(EntryKind::Dir) => {}
                None => {}
                // Never listed: a symlinked hooks directory may point
                // anywhere, and its entries are not the sandbox's to rename.
                Some(_) => {
                    let to = disabled_name(self.fs, &hooks);
                    self.fixes.push(Fix::Rename {
                        path: hooks.clone(),
                        to,
                        reason: "hooks is not a directory (git would run what it points at)".into(),
                    });
                }
            }
            let listed = match self.fs.kind(&hooks) {
                Some(EntryKind::Dir) => self.fs.read_dir(&hooks),
                _ => Ok(Vec::new()),
            };
            if let Ok(entries) = listed {
                let mut entries = entries;
                entries.sort();
                for (name, kind) in entries {
                    let text = name.to_string_lossy();
                    if kind == EntryKind::Dir
                        || text.ends_with(".sample")
                        || text.contains(DISABLED_SUFFIX)
                    {
                        continue;
                    }
                    let path = hooks.join(&name);
                    let to = disabled_name(self.fs, &path);
                    self.fixes.push(Fix::Rename {
                        path,
                        to,
                        reason: "git hook created during the run".into(),
                    });
                }
            }
        }
        for name in ["config", "config.worktree"] {
            let path = g.join(name);
            if appeared(self, &path) {
                self.config(path);
            }
        }
        let commondir = g.join("commondir");
        if self.fs.kind(&commondir).is_some() && appeared(self, &commondir) {
            // A linked worktree's own commondir names its repository; any
            // other redirect would make git read hooks and config from
            // somewhere the audit did not look.
            let genuine = g.parent() == Some(common.join("worktrees").as_path())
                && gitdir::common_dir(self.fs, g).as_deref() == Some(common);
            if !genuine {
                let to = disabled_name(self.fs, &commondir);
                self.fixes.push(Fix::Rename {
                    path: commondir,
                    to,
                    reason: "redirects git to another directory's hooks and config".into(),
                });
            }
        }
    }
}

/// What to neutralise after a run that started with view `start`.
pub fn plan(start: &FsView, fs: &dyn HostFs, limits: ScanLimits) -> Vec<Fix> {
    let mut a = Auditor {
        fs,
        start_gitdirs: start
            .repos
            .iter()
            .flat_map(|r| r.gitdirs.iter().cloned())
            .collect(),
        start_present: start
            .repos
            .iter()
            .flat_map(|r| r.present.iter().cloned())
            .collect(),
        writable: start.writable.iter().map(|w| w.path.clone()).collect(),
        fixes: Vec::new(),
        seen: BTreeSet::new(),
    };
    let roots: Vec<PathBuf> = start
        .writable
        .iter()
        .filter(|w| fs.kind(&w.path) == Some(EntryKind::Dir))
        .map(|w| w.path.clone())
        .collect();
    for root in roots {
        for (dotgit, _) in find_dotgits(fs, &root, limits).dotgits {
            let worktree = match dotgit.parent() {
                Some(w) => w.to_path_buf(),
                None => continue,
            };
            let repo = match gitdir::open(fs, &worktree) {
                Some(r) => r,
                None => continue,
            };
            let mut dirs = vec![repo.gitdir.clone(), repo.common.clone()];
            dirs.extend(gitdir::module_gitdirs(fs, &repo.common));
            dirs.extend(gitdir::worktree_gitdirs(fs, &repo.common));
            for g in dirs {
                a.gitdir(&g, &repo.common);
            }
        }
    }
    a.fixes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::host::fake::FakeFs;
    use crate::view::{FoundRepo, Writable};
    use crate::Source;

    fn start_view() -> FsView {
        FsView {
            writable: vec![Writable {
                path: PathBuf::from("/ws"),
                source: Source::Default,
            }],
            repos: vec![FoundRepo {
                repo: gitdir::Repo {
                    worktree: PathBuf::from("/ws"),
                    dotgit_kind: EntryKind::Dir,
                    gitdir: PathBuf::from("/ws/.git"),
                    common: PathBuf::from("/ws/.git"),
                },
                gitdirs: vec![PathBuf::from("/ws/.git")],
                present: vec![
                    PathBuf::from("/ws/.git/hooks"),
                    PathBuf::from("/ws/.git/config"),
                ],
            }],
            ..FsView::default()
        }
    }

    fn paths(fixes: &[Fix]) -> Vec<String> {
        fixes
            .iter()
            .map(|f| f.path().display().to_string())
            .collect()
    }

    #[test]
    fn new_repository_is_neutralised() {
        let fs = FakeFs::new()
            .file("/ws/.git/HEAD", "")
            .file("/ws/.git/config", "[core]\n\tfsmonitor = /evil\n")
            .file("/ws/new/.git/HEAD", "")
            .file(
                "/ws/new/.git/config",
                "[core]\n\thooksPath = /evil\n[user]\n\tname = x\n",
            )
            .file("/ws/new/.git/hooks/pre-commit", "#!/bin/sh\n")
            .file("/ws/new/.git/hooks/pre-commit.sample", "")
            .file("/ws/new/.git/commondir", "/elsewhere\n");
        let fixes = plan(&start_view(), &fs, ScanLimits::DEFAULT);
        assert_eq!(
            paths(&fixes),
            [
                "/ws/new/.git/hooks/pre-commit",
                "/ws/new/.git/config",
                "/ws/new/.git/commondir"
            ]
        );
        match &fixes[1] {
            Fix::Rewrite { text, .. } => assert!(text.contains("hooksPath-moat-disabled")),
            other => panic!("{other:?}"),
        }
        match &fixes[0] {
            Fix::Rename { to, .. } => {
                assert_eq!(
                    to,
                    &PathBuf::from("/ws/new/.git/hooks/pre-commit.moat-disabled")
                )
            }
            other => panic!("{other:?}"),
        }
        // The existing repository's config was read-only all along.
        assert!(!paths(&fixes).contains(&"/ws/.git/config".to_string()));
    }

    #[test]
    fn files_that_appeared_in_an_existing_repository() {
        let fs = FakeFs::new()
            .file("/ws/.git/HEAD", "")
            .file("/ws/.git/config", "")
            .file("/ws/.git/config.worktree", "[core]\n\tsshCommand = evil\n")
            .file("/ws/.git/commondir", "../elsewhere\n");
        let fixes = plan(&start_view(), &fs, ScanLimits::DEFAULT);
        assert_eq!(
            paths(&fixes),
            ["/ws/.git/config.worktree", "/ws/.git/commondir"]
        );
    }

    #[test]
    fn a_symlinked_config_is_set_aside_unread() {
        let fs = FakeFs::new()
            .file("/ws/.git/HEAD", "")
            .file("/ws/.git/config", "")
            .file("/ws/new/.git/HEAD", "")
            .file("/home/u/.gitconfig", "[credential]\n\thelper = store\n")
            .symlink("/ws/new/.git/config", "/home/u/.gitconfig");
        let fixes = plan(&start_view(), &fs, ScanLimits::DEFAULT);
        assert_eq!(paths(&fixes), ["/ws/new/.git/config"]);
        assert!(matches!(&fixes[0], Fix::Rename { .. }), "{fixes:?}");
    }

    #[test]
    fn a_symlinked_hooks_directory_is_set_aside_not_followed() {
        let fs = FakeFs::new()
            .file("/ws/.git/HEAD", "")
            .file("/ws/.git/config", "")
            .file("/ws/new/.git/HEAD", "")
            .file("/home/u/bin/tool", "")
            .symlink("/ws/new/.git/hooks", "/home/u/bin");
        let fixes = plan(&start_view(), &fs, ScanLimits::DEFAULT);
        assert_eq!(paths(&fixes), ["/ws/new/.git/hooks"]);
    }

    #[test]
    fn a_clean_new_repository_needs_nothing() {
        let fs = FakeFs::new()
            .file("/ws/.git/HEAD", "")
            .file("/ws/.git/config", "")
            .file("/ws/new/.git/HEAD", "")
            .file("/ws/new/.git/config", "[core]\n\tbare = false\n")
            .file("/ws/new/.git/hooks/update.sample", "");
        assert!(plan(&start_view(), &fs, ScanLimits::DEFAULT).is_empty());
    }
}
