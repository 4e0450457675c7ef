//! From a [`Policy`] to the concrete filesystem view a backend enforces.
//!
//! Everything here is a canonical path that existed when the view was
//! computed. The backend turns the view into mounts and Landlock rules; this
//! module decides what they must achieve:
//!
//! - **writable**: directories the command may change. A writable root that
//!   is the home directory is split into its entries, so the home directory
//!   itself stays read-only and no new start-up file can appear in it.
//! - **protected**: paths inside writable roots that stay read-only (git
//!   hooks and config, editor and agent settings, start-up files).
//! - **placeholders**: protected names that do not exist yet; the backend
//!   creates each as an inert placeholder and keeps it read-only for the
//!   run, so the command cannot create it.
//! - **pins**: directories between a writable root and a protected path.
//!   The backend makes each a mount point so it cannot be renamed or
//!   replaced, which would otherwise move the protected path aside and let
//!   the command create an unprotected one in its place.
//! - **denied**: paths whose reads are denied.
//! - **repos**: repositories found, for the audit at the end of the run.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::gitdir::{self, Repo};
use crate::host::{EntryKind, HostFs};
use crate::known::{
    HOME_STARTUP_FILES, NO_PLACEHOLDER_IN_ROOT, PLACEHOLDER_IN_GITDIR, PROTECTED_IN_GITDIR,
};
use crate::paths::is_within;
use crate::resolve::Policy;
use crate::scan::{find_dotgits, ScanLimits};
use crate::types::{ReadMode, Source};

/// System directories readable in `restricted` read mode.
pub const SYSTEM_READABLE: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/nix",
    "/snap",
    "/var/lib/dpkg",
    "/var/cache/debconf",
];

/// Toolchains under the home directory readable in `restricted` read mode.
pub const TOOLCHAINS_UNDER_HOME: &[&str] = &[
    ".cargo",
    ".rustup",
    ".local/bin",
    ".local/lib",
    ".local/share/pnpm",
    ".pyenv",
    ".nvm",
    ".volta",
    ".bun",
    ".deno",
    ".sdkman",
    ".m2/repository",
    ".gradle/caches",
    ".gradle/wrapper",
    "go",
    ".gitconfig",
    ".config/git",
];

/// A writable root of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writable {
    pub path: PathBuf,
    pub source: Source,
}

/// A path kept read-only inside a writable root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub path: PathBuf,
    pub kind: EntryKind,
    pub reason: &'static str,
}

/// A path whose reads are denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub path: PathBuf,
    pub kind: EntryKind,
    pub source: Source,
}

/// What the repository scan covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub dirs_listed: usize,
    /// Writable roots whose scan hit the directory limit.
    pub truncated: Vec<PathBuf>,
}

/// A repository found at start, with the files of its git directories that
/// decide what git runs and that existed then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRepo {
    pub repo: Repo,
    /// Git directories of this repository: its own, its common one, its
    /// submodules' and its linked worktrees'.
    pub gitdirs: Vec<PathBuf>,
    /// Which of [`PROTECTED_IN_GITDIR`] existed in each of `gitdirs`.
    pub present: Vec<PathBuf>,
}

/// The filesystem a run sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsView {
    pub writable: Vec<Writable>,
    /// `None` reads everything not denied; `Some` reads only these (plus
    /// the writable roots and the sandbox's own /tmp, /dev and /proc).
    pub readable: Option<Vec<PathBuf>>,
    pub denied: Vec<Denied>,
    pub protected: Vec<Protected>,
    /// Absent protected names to create as placeholders; each is also
    /// listed in `protected`.
    pub placeholders: Vec<PathBuf>,
    /// Directories to make mount points, shallowest first.
    pub pins: Vec<PathBuf>,
    pub repos: Vec<FoundRepo>,
    pub scan: ScanReport,
    /// Things the person should know (paths skipped, limits hit).
    pub notes: Vec<String>,
}

/// Why a view cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewError {
    /// The workspace or a writable root does not exist.
    Missing { path: PathBuf, source: Source },
    /// The workspace or a writable root is not a directory.
    NotADirectory { path: PathBuf, source: Source },
    /// A writable root is `/` or holds the home directory.
    TooBroad {
        path: PathBuf,
        source: Source,
        why: &'static str,
    },
    /// A protected name is a symlink, which cannot be kept read-only.
    ProtectedSymlink { path: PathBuf },
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::Missing { path, source } => {
                write!(f, "{} does not exist (from {})", path.display(), source)
            }
            ViewError::NotADirectory { path, source } => {
                write!(f, "{} is not a directory (from {})", path.display(), source)
            }
            ViewError::TooBroad { path, source, why } => write!(
                f,
                "writable root {} (from {}) {}",
                path.display(),
                source,
                why
            ),
            ViewError::ProtectedSymlink { path } => write!(
                f,
                "{} is a symlink inside a writable root; moat keeps that name read-only but cannot \
                 keep a symlink from being replaced\n\
                 hint: replace the link with its target, or remove it",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ViewError {}

fn canonical_dir(fs: &dyn HostFs, path: &Path, source: &Source) -> Result<PathBuf, ViewError> {
    let canonical = fs.canonicalize(path).map_err(|_| ViewError::Missing {
        path: path.to_path_buf(),
        source: source.clone(),
    })?;
    if fs.kind(&canonical) != Some(EntryKind::Dir) {
        return Err(ViewError::NotADirectory {
            path: path.to_path_buf(),
            source: source.clone(),
        });
    }
    Ok(canonical)
}

/// Builds the view of `policy` on the host `fs`.
pub fn build(policy: &Policy, fs: &dyn HostFs, limits: ScanLimits) -> Result<FsView, ViewError> {
    let mut view = FsView::default();
    let home = fs
        .canonicalize(&policy.home)
        .unwrap_or_else(|_| policy.home.clone());

    // The workspace must exist even when it is not writable.
    canonical_dir(fs, &policy.workspace.value, &policy.workspace.source)?;

    denied(policy, fs, &mut view);

    // Writable roots, canonical, outermost kept.
    let mut roots: Vec<Writable> = Vec::new();
    for root in policy.writable_roots() {
        let path = canonical_dir(fs, &root.value, &root.source)?;
        if path == Path::new("/") {
            return Err(ViewError::TooBroad {
                path,
                source: root.source,
                why: "is the whole filesystem",
            });
        }
        if home != path && is_within(&home, &path) {
            return Err(ViewError::TooBroad {
                path,
                source: root.source,
                why: "holds your home directory; name the home directory itself (~) if you mean it",
            });
        }
        roots.push(Writable {
            path,
            source: root.source,
        });
    }
    roots.sort_by(|a, b| a.path.cmp(&b.path));
    let mut outer: Vec<Writable> = Vec::new();
    for root in roots {
        if !outer.iter().any(|o| is_within(&root.path, &o.path)) {
            outer.push(root);
        }
    }

    let mut plan = Planner {
        fs,
        view: &mut view,
        strict_git: policy.strict_git.value,
    };
    let names: Vec<PathBuf> = policy.protect.iter().map(|p| p.value.clone()).collect();
    for root in outer {
        if root.path == home {
            plan.home_root(&root)?;
        } else {
            plan.root(&root, &names, limits)?;
        }
    }
    plan.linked_worktree(policy)?;

    if policy.read.value == ReadMode::Restricted {
        view.readable = Some(readable(policy, fs, &home));
    }
    finish(&mut view);
    Ok(view)
}

fn denied(policy: &Policy, fs: &dyn HostFs, view: &mut FsView) {
    // Most denied paths do not exist, and many share a parent (often
    // missing, as `~/.config/...` on a machine without `~/.config`):
    // remember what each parent turned out to be instead of asking again.
    let mut parents: Vec<(PathBuf, bool)> = Vec::new();
    for d in &policy.deny_read {
        if let Some(parent) = d.value.parent() {
            let exact = parents.iter().find(|(p, _)| p == parent).map(|(_, e)| *e);
            // A missing ancestor hides everything below it.
            let missing_above = parents.iter().any(|(p, e)| !e && parent.starts_with(p));
            let parent_exists = match exact {
                Some(exists) => exists,
                None if missing_above => false,
                None => {
                    let exists = fs.kind(parent) == Some(EntryKind::Dir);
                    parents.push((parent.to_path_buf(), exists));
                    exists
                }
            };
            if !parent_exists {
                continue;
            }
        }
        if fs.kind(&d.value).is_none() {
            continue;
        }
        let path = match fs.canonicalize(&d.value) {
            Ok(p) => p,
            Err(_) => continue,
        };
        if let Some(kind) = fs.kind(&path) {
            if !view.denied.iter().any(|e| e.path == path) {
                view.denied.push(Denied {
                    path,
                    kind,
                    source: d.source.clone(),
                });
            }
        }
    }
}

fn readable(policy: &Policy, fs: &dyn HostFs, home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let candidates = SYSTEM_READABLE
        .iter()
        .map(PathBuf::from)
        .chain(TOOLCHAINS_UNDER_HOME.iter().map(|t| home.join(t)))
        .chain(std::iter::once(policy.workspace.value.clone()))
        .chain(policy.allow_read.iter().map(|a| a.value.clone()));
    for path in candidates {
        if let Ok(canonical) = fs.canonicalize(&path) {
            if !out.contains(&canonical) {
                out.push(canonical);
            }
        }
    }
    out
}

struct Planner<'a> {
    fs: &'a dyn HostFs,
    view: &'a mut FsView,
    strict_git: bool,
}

impl Planner<'_> {
    fn is_denied(&self, path: &Path) -> bool {
        self.view.denied.iter().any(|d| is_within(path, &d.path))
    }

    fn protect(&mut self, path: PathBuf, reason: &'static str) -> Result<(), ViewError> {
        match self.fs.kind(&path) {
            Some(kind) => self.protect_as(path, kind, reason),
            None => Ok(()),
        }
    }

    /// Protects `path`, whose kind the caller already looked up.
    fn protect_as(
        &mut self,
        path: PathBuf,
        kind: EntryKind,
        reason: &'static str,
    ) -> Result<(), ViewError> {
        if kind == EntryKind::Symlink {
            return Err(ViewError::ProtectedSymlink { path });
        }
        if !self.view.protected.iter().any(|p| p.path == path) {
            self.view.protected.push(Protected { path, kind, reason });
        }
        Ok(())
    }

    /// `parent_is_dir`: already known (the writable root itself), or to be
    /// looked at.
    fn placeholder(&mut self, path: PathBuf, reason: &'static str, parent_is_dir: bool) {
        let parent_is_dir = parent_is_dir
            || path
                .parent()
                .map_or(false, |p| self.fs.kind(p) == Some(EntryKind::Dir));
        if !parent_is_dir || self.view.placeholders.contains(&path) {
            return;
        }
        self.view.placeholders.push(path.clone());
        self.view.protected.push(Protected {
            path,
            kind: EntryKind::Other,
            reason,
        });
    }

    /// A home directory as a writable root: each entry becomes a writable
    /// root of its own, except start-up files (protected) and denied paths,
    /// recursing where a start-up path lies deeper (`.config/autostart`).
    fn home_root(&mut self, root: &Writable) -> Result<(), ViewError> {
        let startup: Vec<PathBuf> = HOME_STARTUP_FILES.iter().map(PathBuf::from).collect();
        self.expand(&root.path, &root.path, &startup, &root.source)?;
        if let Some(repo) = gitdir::open(self.fs, &root.path) {
            self.repo(repo, true)?;
        }
        self.view.notes.push(format!(
            "{} is a home directory: its existing entries are writable, but nothing new can be \
             created directly in it",
            root.path.display()
        ));
        Ok(())
    }

    fn expand(
        &mut self,
        dir: &Path,
        home: &Path,
        startup: &[PathBuf],
        source: &Source,
    ) -> Result<(), ViewError> {
        let entries = self.fs.read_dir(dir).unwrap_or_default();
        let mut names: Vec<_> = entries.into_iter().collect();
        names.sort();
        for (name, kind) in names {
            let path = dir.join(&name);
            let rel = path.strip_prefix(home).unwrap_or(&path).to_path_buf();
            if self.is_denied(&path) {
                continue;
            }
            if startup.iter().any(|s| s == &rel) {
                if kind == EntryKind::Symlink {
                    // A linked start-up file (dotfile managers) is only safe
                    // if its target is kept read-only too.
                    if let Ok(target) = self.fs.canonicalize(&path) {
                        self.protect(target, "target of a start-up file in a home directory")?;
                    }
                } else {
                    self.protect(path, "start-up file in a home directory")?;
                }
                continue;
            }
            let deeper = startup.iter().any(|s| s.starts_with(&rel) && s != &rel)
                || self
                    .view
                    .denied
                    .iter()
                    .any(|d| d.path.starts_with(&path) && d.path != path);
            if deeper && kind == EntryKind::Dir {
                self.expand(&path, home, startup, source)?;
            } else if kind == EntryKind::Dir || kind == EntryKind::File {
                self.view.writable.push(Writable {
                    path,
                    source: source.clone(),
                });
            }
        }
        Ok(())
    }

    fn root(
        &mut self,
        root: &Writable,
        names: &[PathBuf],
        limits: ScanLimits,
    ) -> Result<(), ViewError> {
        self.view.writable.push(root.clone());
        for name in names {
            let path = root.path.join(name);
            if let Some(kind) = self.fs.kind(&path) {
                self.protect_as(path, kind, "agent, editor or tool settings")?;
            } else {
                let single = name.components().count() == 1;
                let placeholder = name
                    .to_str()
                    .map_or(false, |n| !NO_PLACEHOLDER_IN_ROOT.contains(&n));
                if single && placeholder {
                    self.placeholder(path, "absent setting kept uncreatable", true);
                }
            }
        }
        let scan = find_dotgits(self.fs, &root.path, limits);
        self.view.scan.dirs_listed += scan.dirs_listed;
        if scan.truncated {
            self.view.scan.truncated.push(root.path.clone());
            self.view.notes.push(format!(
                "the repository scan of {} stopped after {} directories; repositories deeper \
                 than that are not protected during the run (new ones are still audited at the end)",
                root.path.display(),
                scan.dirs_listed
            ));
        }
        for (dotgit, _) in scan.dotgits {
            let worktree = match dotgit.parent() {
                Some(w) => w.to_path_buf(),
                None => continue,
            };
            if worktree != root.path {
                // A nested repository gets the root's protections too.
                for name in names {
                    let path = worktree.join(name);
                    if let Some(kind) = self.fs.kind(&path) {
                        self.protect_as(path, kind, "settings of a nested repository")?;
                    }
                }
            }
            match gitdir::open(self.fs, &worktree) {
                Some(repo) => self.repo(repo, false)?,
                None => {
                    // A `.git` that is not a repository yet may become one.
                    self.protect(dotgit, "unreadable .git entry")?;
                }
            }
        }
        Ok(())
    }

    fn gitdir_files(&mut self, gitdir: &Path, present: &mut Vec<PathBuf>) -> Result<(), ViewError> {
        if self.strict_git {
            return self.protect(gitdir.to_path_buf(), "git directory (strict_git)");
        }
        for name in PROTECTED_IN_GITDIR {
            let path = gitdir.join(name);
            if let Some(kind) = self.fs.kind(&path) {
                present.push(path.clone());
                self.protect_as(path, kind, "runs code when git runs")?;
            } else if PLACEHOLDER_IN_GITDIR.contains(name) {
                self.placeholder(path, "absent git hooks kept uncreatable", true);
            }
        }
        Ok(())
    }

    fn repo(&mut self, repo: Repo, home: bool) -> Result<(), ViewError> {
        if self.view.repos.iter().any(|r| r.repo.gitdir == repo.gitdir) {
            return Ok(());
        }
        let dotgit = repo.worktree.join(".git");
        if repo.dotgit_kind != EntryKind::Dir {
            // The pointer decides which hooks git runs.
            if repo.dotgit_kind == EntryKind::File {
                self.protect(dotgit, "points git at its git directory")?;
            }
        }
        let mut gitdirs = vec![repo.gitdir.clone()];
        if repo.common != repo.gitdir {
            gitdirs.push(repo.common.clone());
        }
        for module in gitdir::module_gitdirs(self.fs, &repo.common) {
            gitdirs.push(module);
        }
        for wt in gitdir::worktree_gitdirs(self.fs, &repo.common) {
            if !gitdirs.contains(&wt) {
                gitdirs.push(wt);
            }
        }
        let mut present = Vec::new();
        for dir in &gitdirs {
            self.gitdir_files(dir, &mut present)?;
        }
        let _ = home;
        self.view.repos.push(FoundRepo {
            repo,
            gitdirs,
            present,
        });
        Ok(())
    }

    /// When the workspace is a linked worktree whose git directories lie
    /// outside every writable root, git could not commit; make them
    /// writable (their hooks and config stay read-only), but only if they
    /// really are the worktree's: a `.git` file could name any directory.
    fn linked_worktree(&mut self, policy: &Policy) -> Result<(), ViewError> {
        let ws = match self.fs.canonicalize(&policy.workspace.value) {
            Ok(ws) => ws,
            Err(_) => return Ok(()),
        };
        if policy.preset.value == crate::types::Preset::ReadOnly {
            return Ok(());
        }
        let repo = match gitdir::open(self.fs, &ws) {
            Some(repo) if repo.dotgit_kind == EntryKind::File && repo.common != repo.gitdir => repo,
            _ => return Ok(()),
        };
        let covered = |p: &Path, v: &FsView| v.writable.iter().any(|w| is_within(p, &w.path));
        if covered(&repo.common, self.view) {
            return Ok(());
        }
        let back = self
            .fs
            .read_small(&repo.gitdir.join("gitdir"), gitdir::POINTER_FILE_LIMIT)
            .ok()
            .and_then(|t| t.lines().next().map(|l| PathBuf::from(l.trim())))
            .and_then(|p| self.fs.canonicalize(&p).ok());
        let genuine = back == self.fs.canonicalize(&ws.join(".git")).ok()
            && repo.gitdir.parent() == Some(repo.common.join("worktrees").as_path())
            && gitdir::looks_like_gitdir(self.fs, &repo.common);
        if !genuine || self.is_denied(&repo.common) {
            self.view.notes.push(format!(
                "{} is a linked worktree of {}, which is not writable: git commits will fail\n\
                 hint: add it with --allow-write",
                ws.display(),
                repo.common.display()
            ));
            return Ok(());
        }
        let root = Writable {
            path: repo.common.clone(),
            source: Source::Default,
        };
        self.view.writable.push(root);
        self.view.notes.push(format!(
            "{} is a linked worktree: its repository's git directory {} is writable too",
            ws.display(),
            repo.common.display()
        ));
        let mut present = Vec::new();
        let gitdirs = vec![repo.common.clone(), repo.gitdir.clone()];
        for dir in &gitdirs {
            self.gitdir_files(dir, &mut present)?;
        }
        self.view.repos.retain(|r| r.repo.gitdir != repo.gitdir);
        self.view.repos.push(FoundRepo {
            repo,
            gitdirs,
            present,
        });
        Ok(())
    }
}

/// Orders protections and derives the pins.
fn finish(view: &mut FsView) {
    // Only what lies inside a writable root needs protecting.
    let writable = view.writable.clone();
    let inside = |p: &Path| {
        writable
            .iter()
            .find(|w| is_within(p, &w.path) && p != w.path)
    };
    view.protected.retain(|p| inside(&p.path).is_some());
    view.placeholders.retain(|p| inside(p).is_some());
    view.protected
        .sort_by(|a, b| depth_then_path(&a.path, &b.path));

    let mut pins = BTreeSet::new();
    for p in &view.protected {
        if let Some(root) = inside(&p.path) {
            let mut dir = p.path.parent();
            while let Some(d) = dir {
                if d == root.path {
                    break;
                }
                pins.insert(d.to_path_buf());
                dir = d.parent();
            }
        }
    }
    // A pinned directory that is itself protected needs no second mount.
    let mut pins: Vec<PathBuf> = pins
        .into_iter()
        .filter(|d| !view.protected.iter().any(|p| &p.path == d))
        .collect();
    pins.sort_by(|a, b| depth_then_path(a, b));
    view.pins = pins;
}

fn depth_then_path(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.components()
        .count()
        .cmp(&b.components().count())
        .then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::host::fake::FakeFs;
    use crate::host::HostFacts;
    use crate::layer::Layer;
    use crate::resolve::Settings;
    use crate::types::Sourced;

    fn policy_with(layer: Option<Layer>) -> Policy {
        let facts = HostFacts {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/ws"),
            env: Vec::new(),
        };
        let mut settings = Settings::new();
        if let Some(layer) = layer {
            settings.push(layer);
        }
        settings
            .resolve(&facts, Sourced::default_value(PathBuf::from("/ws")))
            .unwrap()
    }

    fn strs(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    }

    fn protected(view: &FsView) -> Vec<String> {
        view.protected
            .iter()
            .map(|p| p.path.display().to_string())
            .collect()
    }

    fn repo_fs() -> FakeFs {
        FakeFs::new()
            .dir("/home/u/.ssh")
            .file("/home/u/.ssh/id_ed25519", "secret")
            .file("/ws/.git/HEAD", "ref: refs/heads/main\n")
            .dir("/ws/.git/objects")
            .dir("/ws/.git/refs")
            .dir("/ws/.git/hooks")
            .file("/ws/.git/config", "")
            .dir("/ws/.vscode")
            .file("/ws/src/main.rs", "")
            .file("/ws/vendor/lib/.git/HEAD", "")
            .file("/ws/vendor/lib/.git/config", "")
            .dir("/ws/vendor/lib/.git/objects")
    }

    #[test]
    fn protects_git_settings_and_nested_repositories() {
        let view = build(&policy_with(None), &repo_fs(), ScanLimits::DEFAULT).unwrap();
        assert_eq!(view.writable.len(), 1);
        assert_eq!(view.writable[0].path, PathBuf::from("/ws"));
        let p = protected(&view);
        for want in [
            "/ws/.vscode",
            "/ws/.git/hooks",
            "/ws/.git/config",
            "/ws/.codex",
            "/ws/vendor/lib/.git/config",
            "/ws/vendor/lib/.git/hooks",
        ] {
            assert!(p.contains(&want.to_string()), "{want} not in {p:?}");
        }
        // Absent names become placeholders, except those git would choke on.
        assert!(view.placeholders.contains(&PathBuf::from("/ws/.codex")));
        assert!(view
            .placeholders
            .contains(&PathBuf::from("/ws/vendor/lib/.git/hooks")));
        assert!(!view
            .placeholders
            .contains(&PathBuf::from("/ws/.gitmodules")));
        assert!(!view
            .placeholders
            .contains(&PathBuf::from("/ws/.git/commondir")));
        // Everything between the root and a protected path is pinned.
        assert_eq!(
            strs(&view.pins),
            [
                "/ws/.git",
                "/ws/vendor",
                "/ws/vendor/lib",
                "/ws/vendor/lib/.git"
            ]
        );
        assert_eq!(view.repos.len(), 2);
        assert_eq!(view.denied.len(), 1);
        assert_eq!(view.denied[0].path, PathBuf::from("/home/u/.ssh"));
    }

    #[test]
    fn strict_git_protects_the_whole_git_directory() {
        let mut layer = Layer::new(Source::Flag("--strict-git".into()));
        layer.strict_git = Some(true);
        let view = build(&policy_with(Some(layer)), &repo_fs(), ScanLimits::DEFAULT).unwrap();
        let p = protected(&view);
        assert!(p.contains(&"/ws/.git".to_string()));
        assert!(!p.contains(&"/ws/.git/hooks".to_string()));
    }

    #[test]
    fn home_as_writable_root_is_split() {
        let fs = FakeFs::new()
            .file("/home/u/.bashrc", "")
            .dir("/home/u/.ssh")
            .dir("/home/u/projects")
            .dir("/home/u/.config/autostart")
            .dir("/home/u/.config/nvim")
            .file("/home/u/dotfiles/zshrc", "")
            .symlink("/home/u/.zshrc", "/home/u/dotfiles/zshrc")
            .dir("/ws");
        let mut layer = Layer::new(Source::Flag("--allow-write".into()));
        layer.write.push(PathBuf::from("~"));
        let view = build(&policy_with(Some(layer)), &fs, ScanLimits::DEFAULT).unwrap();
        let w: Vec<String> = view
            .writable
            .iter()
            .map(|w| w.path.display().to_string())
            .collect();
        assert!(w.contains(&"/home/u/projects".to_string()), "{w:?}");
        assert!(w.contains(&"/home/u/.config/nvim".to_string()), "{w:?}");
        assert!(!w.contains(&"/home/u".to_string()));
        assert!(!w.contains(&"/home/u/.config".to_string()));
        assert!(!w.iter().any(|p| p.contains(".ssh")));
        // Start-up files stay outside every writable root, and the home
        // directory itself is not writable, so none can be created either.
        assert!(!w
            .iter()
            .any(|p| p.contains(".bashrc") || p.contains("autostart")));
        // A start-up file linked into a writable directory stays read-only.
        assert!(w.contains(&"/home/u/dotfiles".to_string()));
        assert!(protected(&view).contains(&"/home/u/dotfiles/zshrc".to_string()));
    }

    #[test]
    fn refuses_roots_that_are_too_broad_or_missing() {
        let fs = FakeFs::new().dir("/ws").dir("/home/u");
        let mut layer = Layer::new(Source::Flag("--allow-write".into()));
        layer.write.push(PathBuf::from("/home"));
        let err = build(&policy_with(Some(layer)), &fs, ScanLimits::DEFAULT).unwrap_err();
        assert!(matches!(err, ViewError::TooBroad { .. }), "{err}");

        let mut layer = Layer::new(Source::Flag("--allow-write".into()));
        layer.write.push(PathBuf::from("/nope"));
        let err = build(&policy_with(Some(layer)), &fs, ScanLimits::DEFAULT).unwrap_err();
        assert!(matches!(err, ViewError::Missing { .. }), "{err}");

        let empty = FakeFs::new();
        let err = build(&policy_with(None), &empty, ScanLimits::DEFAULT).unwrap_err();
        assert!(matches!(err, ViewError::Missing { .. }), "{err}");
    }

    #[test]
    fn protected_symlink_is_refused() {
        let fs = repo_fs().symlink("/ws/.idea", "/elsewhere");
        let err = build(&policy_with(None), &fs, ScanLimits::DEFAULT).unwrap_err();
        assert!(matches!(err, ViewError::ProtectedSymlink { .. }), "{err}");
    }

    #[test]
    fn linked_worktree_git_directory_becomes_writable() {
        let fs = FakeFs::new()
            .file("/main/.git/HEAD", "")
            .dir("/main/.git/objects")
            .dir("/main/.git/refs")
            .dir("/main/.git/hooks")
            .file("/main/.git/config", "")
            .file("/main/.git/worktrees/ws/HEAD", "")
            .file("/main/.git/worktrees/ws/commondir", "../..\n")
            .file("/main/.git/worktrees/ws/gitdir", "/ws/.git\n")
            .file("/ws/.git", "gitdir: /main/.git/worktrees/ws\n");
        let view = build(&policy_with(None), &fs, ScanLimits::DEFAULT).unwrap();
        assert!(view
            .writable
            .iter()
            .any(|w| w.path == Path::new("/main/.git")));
        let p = protected(&view);
        assert!(p.contains(&"/main/.git/hooks".to_string()), "{p:?}");
        assert!(p.contains(&"/main/.git/config".to_string()), "{p:?}");
        assert!(p.contains(&"/ws/.git".to_string()), "{p:?}");

        // A `.git` file naming an arbitrary directory grants nothing.
        let fake = FakeFs::new()
            .dir("/home/u/data/objects")
            .file("/ws/.git", "gitdir: /home/u/data\n")
            .file("/home/u/data/commondir", "/home/u\n");
        let view = build(&policy_with(None), &fake, ScanLimits::DEFAULT).unwrap();
        assert_eq!(view.writable.len(), 1);
    }

    #[test]
    fn restricted_reads_list_toolchains_and_workspace() {
        let fs = repo_fs().dir("/usr/bin").dir("/home/u/.cargo/bin");
        let mut layer = Layer::new(Source::Flag("--read".into()));
        layer.read = Some(ReadMode::Restricted);
        let view = build(&policy_with(Some(layer)), &fs, ScanLimits::DEFAULT).unwrap();
        let readable = strs(view.readable.as_ref().unwrap());
        assert!(readable.contains(&"/usr".to_string()));
        assert!(readable.contains(&"/home/u/.cargo".to_string()));
        assert!(readable.contains(&"/ws".to_string()));
        assert!(!readable.contains(&"/home/u".to_string()));
    }
}
