//! The Landlock ruleset, built by the parent with the `landlock` crate.
//!
//! Landlock only grants, so a denied path inside a readable tree is carved
//! out by granting each sibling along the way instead of the tree itself:
//! to deny `~/.ssh` under "read everything", `/` gets only the right to list
//! directories, every entry of `/` but `/home` gets read rights, every entry
//! of `/home` but the person's home gets them, and so on down to the denied
//! path. Listing a directory is granted along the way, so the names inside
//! a denied directory can be listed by this layer; the mount layer hides
//! them.
//!
//! Writable roots get every right. Denied paths inside writable roots and
//! protected paths cannot be carved out of a writable root without also
//! forbidding the creation of new files next to them, so those are left to
//! the mount layer.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope,
    ABI,
};
use moat_policy::{EntryKind, HostFs};
use moat_spec::{Fs, TcpRule};

use crate::plan::InnerAccess;

/// Upper bound on rules from carving out denied paths: a home directory
/// with thousands of entries is refused rather than turned into thousands
/// of rules.
const MAX_CARVE_RULES: usize = 4096;

/// The ruleset, ready to be enforced by the child.
#[derive(Debug)]
pub struct Prepared {
    pub fd: OwnedFd,
    /// Access bits for the sandbox's own mounts, by kind.
    pub all: u64,
    pub devices: u64,
    pub read: u64,
    /// Whether TCP bind/connect are handled (denied).
    pub tcp_denied: bool,
    /// Number of rules added by the parent.
    pub rules: usize,
}

/// Why a ruleset could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("Landlock refused the ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("cannot add a Landlock rule for {path}: {errno}")]
    Add {
        path: PathBuf,
        errno: crate::sys::Errno,
    },
    #[error("carving the denied paths out of the readable tree needs more than {MAX_CARVE_RULES} Landlock rules (at {0})")]
    TooManyRules(PathBuf),
    #[error("the Landlock ruleset has no file descriptor")]
    NoFd,
}

/// A writable root's rule: on the descriptor it was opened as, so the
/// directory granted is the one opened, whatever its name leads to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRule {
    pub fd: RawFd,
    pub is_dir: bool,
}

fn read_dir_access(abi: ABI) -> BitFlags<AccessFs> {
    (AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute) & AccessFs::from_all(abi)
}

fn read_file_access() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::Execute
}

/// Rights that make sense on a file (not a directory), per the kernel.
fn file_subset(access: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
    access
        & (AccessFs::Execute
            | AccessFs::WriteFile
            | AccessFs::ReadFile
            | AccessFs::Truncate
            | AccessFs::IoctlDev)
}

struct Carver<'a> {
    fs: &'a dyn HostFs,
    holes: Vec<PathBuf>,
    out: Vec<(PathBuf, bool)>,
}

impl Carver<'_> {
    /// Grants read below `path` except under the holes.
    fn visit(&mut self, path: &Path, is_dir: bool) -> Result<(), RulesError> {
        if self.out.len() > MAX_CARVE_RULES {
            return Err(RulesError::TooManyRules(path.to_path_buf()));
        }
        if self.holes.iter().any(|h| h == path) {
            return Ok(());
        }
        let below = self.holes.iter().any(|h| h.starts_with(path) && h != path);
        if !below || !is_dir {
            self.out.push((path.to_path_buf(), is_dir));
            return Ok(());
        }
        // Listing `path` itself, then each entry on its own.
        self.out.push((path.to_path_buf(), true));
        let entries = self.fs.read_dir(path).unwrap_or_default();
        for (name, kind) in entries {
            let child = path.join(name);
            match kind {
                EntryKind::Dir => self.visit(&child, true)?,
                // A symlink's target is checked where it points.
                EntryKind::Symlink => {}
                _ => self.visit(&child, false)?,
            }
        }
        Ok(())
    }
}

/// Readable paths with whether each is a directory, and the ancestors of
/// denied paths among them, which get only the right to list.
type Carved = (Vec<(PathBuf, bool)>, Vec<PathBuf>);

/// The readable paths with denied paths carved out.
fn carve(view: &Fs, fs: &dyn HostFs) -> Result<Carved, RulesError> {
    let roots = match &view.readable {
        Some(r) => r.clone(),
        None => vec![PathBuf::from("/")],
    };
    let holes: Vec<PathBuf> = view
        .denied
        .iter()
        .map(|d| d.path.clone())
        .filter(|d| !view.writable.iter().any(|w| d.starts_with(w)))
        .collect();
    let mut carver = Carver {
        fs,
        holes: holes.clone(),
        out: Vec::new(),
    };
    for root in roots {
        let is_dir = fs.kind(&root) == Some(EntryKind::Dir);
        carver.visit(&root, is_dir)?;
    }
    // Ancestors of holes: only listing.
    let listing_only: Vec<PathBuf> = carver
        .out
        .iter()
        .filter(|(p, _)| holes.iter().any(|h| h.starts_with(p) && h != p))
        .map(|(p, _)| p.clone())
        .collect();
    Ok((carver.out, listing_only))
}

/// Adds one rule on the raw ruleset: the crate's own `add_rule` also
/// stats each path to tell files from directories, which the carve-out
/// already knows from the directory listing.
fn add(fd: &OwnedFd, path: &Path, access: BitFlags<AccessFs>) -> Result<(), RulesError> {
    let c = crate::spec::cpath(path).ok_or_else(|| RulesError::Add {
        path: path.to_path_buf(),
        errno: crate::sys::Errno(libc::EINVAL),
    })?;
    crate::sys::landlock::allow_beneath(fd.as_raw_fd(), &c, access.bits()).map_err(|errno| {
        RulesError::Add {
            path: path.to_path_buf(),
            errno,
        }
    })
}

/// Builds the ruleset for `view` at ABI `abi` (the kernel's): reads as
/// the view says, everything in `roots` (the writable roots, opened) and
/// in `extra` (what the run itself adds: a landlock-only run's temporary
/// directory and terminals).
pub fn build(
    view: &Fs,
    roots: &[RootRule],
    extra: &[PathBuf],
    fs: &dyn HostFs,
    abi_version: i32,
    tcp: TcpRule,
) -> Result<Prepared, RulesError> {
    let abi = ABI::from(abi_version);
    let all = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)?;
    let tcp_denied = tcp == TcpRule::DenyAll && abi_version >= 4;
    if tcp_denied {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    if abi_version >= 6 {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    let created = ruleset.create()?;
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or(RulesError::NoFd)?;
    let mut rules = 0;

    let (readable, listing_only) = carve(view, fs)?;
    for (path, is_dir) in &readable {
        let access = if listing_only.contains(path) {
            BitFlags::from(AccessFs::ReadDir)
        } else if *is_dir {
            read_dir_access(abi)
        } else {
            read_file_access()
        };
        match add(&fd, path, access) {
            Ok(()) => rules += 1,
            // Gone since the directory was listed (another program removed
            // it): there is nothing left to grant.
            Err(RulesError::Add { errno, .. }) if errno.0 == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
    }
    for (i, r) in roots.iter().enumerate() {
        let access = if r.is_dir { all } else { file_subset(all) };
        crate::sys::landlock::allow_beneath_fd(fd.as_raw_fd(), r.fd, access.bits()).map_err(
            |errno| RulesError::Add {
                path: view.writable.get(i).cloned().unwrap_or_default(),
                errno,
            },
        )?;
        rules += 1;
    }
    for path in extra {
        let is_dir = fs.kind(path) == Some(EntryKind::Dir);
        let access = if is_dir { all } else { file_subset(all) };
        add(&fd, path, access)?;
        rules += 1;
    }
    let devices =
        (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::IoctlDev) & all;
    let read = (AccessFs::ReadFile | AccessFs::ReadDir) & all;
    Ok(Prepared {
        fd,
        all: all.bits(),
        devices: devices.bits(),
        read: read.bits(),
        tcp_denied,
        rules,
    })
}

impl Prepared {
    /// The bits an inner rule grants.
    pub fn bits(&self, access: InnerAccess) -> u64 {
        match access {
            InnerAccess::All => self.all,
            InnerAccess::Devices => self.devices,
            InnerAccess::Read => self.read,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use moat_policy::host::StdFs;
    use moat_spec::{Entry, Kind};

    /// The host's filesystem, but one directory listing names an entry
    /// that is gone by the time its rule is added.
    struct Vanishing(PathBuf);

    impl HostFs for Vanishing {
        fn kind(&self, path: &Path) -> Option<EntryKind> {
            StdFs.kind(path)
        }
        fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
            StdFs.canonicalize(path)
        }
        fn read_dir(&self, path: &Path) -> std::io::Result<Vec<(std::ffi::OsString, EntryKind)>> {
            let mut entries = StdFs.read_dir(path)?;
            if path == self.0 {
                entries.push(("vanished".into(), EntryKind::File));
            }
            Ok(entries)
        }
        fn read_small(&self, path: &Path, limit: usize) -> std::io::Result<String> {
            StdFs.read_small(path, limit)
        }
    }

    #[test]
    fn an_entry_removed_after_the_listing_is_skipped() {
        if crate::sys::landlock::abi_version() == 0 {
            eprintln!("skipped: Landlock is not available");
            return;
        }
        let base = std::env::temp_dir().join(format!("moat-vanish-{}", std::process::id()));
        std::fs::create_dir_all(base.join("secret")).unwrap();
        let view = Fs {
            readable: Some(vec![base.clone()]),
            denied: vec![Entry {
                path: base.join("secret"),
                kind: Kind::Dir,
            }],
            ..Fs::default()
        };
        let built = build(
            &view,
            &[],
            &[],
            &Vanishing(base.clone()),
            crate::sys::landlock::abi_version(),
            TcpRule::Unhandled,
        );
        std::fs::remove_dir_all(&base).unwrap();
        assert!(built.is_ok(), "{:?}", built.err());
    }

    #[test]
    fn carving_skips_holes_and_lists_their_ancestors() {
        let base = std::env::temp_dir().join(format!("moat-carve-{}", std::process::id()));
        for d in ["a/secret", "a/b", "c"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("a/file"), "x").unwrap();
        let view = Fs {
            readable: Some(vec![base.clone()]),
            denied: vec![Entry {
                path: base.join("a/secret"),
                kind: Kind::Dir,
            }],
            writable: vec![base.join("c")],
            ..Fs::default()
        };
        let (out, listing) = carve(&view, &StdFs).unwrap();
        let paths: Vec<&PathBuf> = out.iter().map(|(p, _)| p).collect();
        assert!(paths.contains(&&base.join("a/b")));
        assert!(paths.contains(&&base.join("a/file")));
        assert!(paths.contains(&&base.join("c")));
        assert!(!paths.contains(&&base.join("a/secret")));
        assert_eq!(listing, vec![base.clone(), base.join("a")]);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
