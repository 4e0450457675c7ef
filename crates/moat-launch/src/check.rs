//! What the launcher accepts: an authorised caller, a spec for the elevated
//! tier, the sandbox account setup made, a firewall that refuses the
//! offline account's traffic, and paths opened by descriptor with the
//! caller's own file-system permissions: absolute, canonical, free of
//! symlinks at every component, reachable by the caller, and (for
//! anything made writable) owned by the caller and outside the system's
//! own directories. The descriptors opened here are what the run is built
//! from; no name is resolved as root again.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use moat_linux::accounts;
use moat_linux::roots::{AsUser, CheckedCache, Elevation, Ids, Root};
use moat_spec::install::USERS_GROUP;
use moat_spec::{Account, Isolation, RunSpec};

use crate::sanitize::Caller;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    NotAuthorised(String),
    NotElevated(&'static str),
    NotAbsolute(PathBuf),
    NotCanonical(PathBuf),
    Symlink(PathBuf),
    Missing(PathBuf),
    NotDirectory(PathBuf),
    Unreachable(PathBuf),
    SystemPath(PathBuf),
    NotOwned(PathBuf),
    Unopenable(PathBuf, i32),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotAuthorised(who) => write!(f, "{who} may not use the sandbox accounts (not in the group {USERS_GROUP}; sudo moat setup --user {who})"),
            Invalid::NotElevated(what) => write!(f, "the launcher builds only elevated runs, not {what} ones"),
            Invalid::NotAbsolute(p) => write!(f, "{} is not an absolute path", p.display()),
            Invalid::NotCanonical(p) => write!(f, "{} is not canonical (no '.', '..', '//' or trailing '/')", p.display()),
            Invalid::Symlink(p) => write!(f, "{} goes through a symlink", p.display()),
            Invalid::Missing(p) => write!(f, "{} does not exist", p.display()),
            Invalid::NotDirectory(p) => write!(f, "{} is not a directory", p.display()),
            Invalid::Unreachable(p) => write!(f, "you cannot reach {}", p.display()),
            Invalid::SystemPath(p) => write!(f, "{} is one of the system's own directories and cannot be made writable", p.display()),
            Invalid::NotOwned(p) => write!(f, "{} is not yours, so it cannot be made writable", p.display()),
            Invalid::Unopenable(p, e) => write!(f, "{}: {}", p.display(), std::io::Error::from_raw_os_error(*e)),
        }
    }
}

/// Directories (and everything under them) that are never made writable,
/// whoever asks.
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib",
    "/var/log",
    "/var/spool",
    "/var/cache",
    "/var/mail",
];

/// Directories that hold others' files: never writable themselves.
const SHARED_ROOTS: &[&str] = &[
    "/", "/home", "/var", "/tmp", "/var/tmp", "/opt", "/srv", "/mnt", "/media",
];

fn is_system(p: &Path) -> bool {
    SHARED_ROOTS.iter().any(|r| p == Path::new(r)) || SYSTEM_TREES.iter().any(|t| p.starts_with(t))
}

/// Checks the spelling of `p`: absolute, no empty, '.' or '..' component,
/// no trailing '/'. Bytes, as they are: a name that is not UTF-8 is
/// checked and used as the same bytes.
fn canonical_form(p: &Path) -> Result<(), Invalid> {
    let bytes = p.as_os_str().as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Invalid::NotAbsolute(p.to_path_buf()));
    }
    if bytes == b"/" {
        return Ok(());
    }
    let bad = bytes[1..]
        .split(|b| *b == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(Invalid::NotCanonical(p.to_path_buf()));
    }
    Ok(())
}

/// Opens `p` with no symlink on the way, as the caller (under [`AsUser`]).
fn open(p: &Path) -> Result<Root, Invalid> {
    canonical_form(p)?;
    Root::open(p).map_err(|e| {
        let p = p.to_path_buf();
        match e.0 {
            libc::ELOOP => Invalid::Symlink(p),
            libc::ENOENT => Invalid::Missing(p),
            libc::ENOTDIR => Invalid::NotDirectory(p),
            libc::EACCES | libc::EPERM => Invalid::Unreachable(p),
            other => Invalid::Unopenable(p, other),
        }
    })
}

/// A directory the caller can reach.
fn reachable_dir(p: &Path) -> Result<Root, Invalid> {
    let root = open(p)?;
    if !root.is_dir() {
        return Err(Invalid::NotDirectory(p.to_path_buf()));
    }
    if !root.caller_may(libc::X_OK) {
        return Err(Invalid::Unreachable(p.to_path_buf()));
    }
    Ok(root)
}

/// A directory the sandbox may write: the caller's own, not the system's.
fn writable_dir(p: &Path, caller: &Ids) -> Result<Root, Invalid> {
    let root = reachable_dir(p)?;
    if is_system(p) {
        return Err(Invalid::SystemPath(p.to_path_buf()));
    }
    if root.owner() != caller.uid {
        return Err(Invalid::NotOwned(p.to_path_buf()));
    }
    if !root.caller_may(libc::W_OK) {
        return Err(Invalid::Unreachable(p.to_path_buf()));
    }
    Ok(root)
}

/// A directory of the caller's own (a tool cache shown to the sandbox
/// through a layer; nothing is written to it).
fn own_dir(p: &Path, caller: &Ids) -> Result<Root, Invalid> {
    let root = reachable_dir(p)?;
    if root.owner() != caller.uid {
        return Err(Invalid::NotOwned(p.to_path_buf()));
    }
    Ok(root)
}

/// A cache's layers: the cache the caller's own; the shared layer, the
/// run's directory, its `upper` and its `work` the caller's own and
/// writable by them. The layer writes there with the account's ids, as
/// the caller's on disk.
fn cache(c: &moat_spec::Cache, caller: &Ids) -> Result<CheckedCache, Invalid> {
    Ok(CheckedCache {
        at: own_dir(&c.at, caller)?,
        shared: writable_dir(&c.shared, caller)?,
        run: writable_dir(&c.run, caller)?,
        upper: writable_dir(&c.upper(), caller)?,
        work: writable_dir(&c.work(), caller)?,
    })
}

/// What of the spec's paths the launcher opens, as the caller.
struct Opened {
    roots: Vec<Root>,
    workspace: Option<Root>,
    home: Option<Root>,
    caches: Vec<CheckedCache>,
}

fn open_paths(spec: &RunSpec, caller: &Caller, home: &Path) -> Result<Opened, Invalid> {
    let fs = &spec.fs;
    let roots = fs
        .writable
        .iter()
        .map(|w| writable_dir(w, &caller.ids))
        .collect::<Result<Vec<_>, _>>()?;
    let caches = fs
        .caches
        .iter()
        .map(|c| cache(c, &caller.ids))
        .collect::<Result<Vec<_>, _>>()?;
    let workspace = if fs.writable.contains(&fs.workspace) {
        None
    } else {
        Some(reachable_dir(&fs.workspace)?)
    };
    // The other lists only take access away (masks, read-only binds,
    // Landlock rules), so their spelling is all that matters.
    let listed = fs
        .denied
        .iter()
        .chain(fs.protected.iter())
        .map(|e| &e.path)
        .chain(fs.pins.iter())
        .chain(fs.readable.iter().flatten());
    for p in listed {
        canonical_form(p)?;
    }
    // The command starts there as the sandbox account, after the mounts,
    // and resolves it inside the sandbox; like the unelevated tier, any
    // directory the caller can reach will do.
    if spec.cwd != fs.workspace {
        reachable_dir(&spec.cwd)?;
    }
    // The home is shown idmapped only when it is the caller's own.
    let home = reachable_dir(home)
        .ok()
        .filter(|h| h.owner() == caller.ids.uid && h.is_dir() && home != Path::new("/"));
    Ok(Opened {
        roots,
        workspace,
        home,
        caches,
    })
}

fn read_etc(name: &str) -> Result<String, String> {
    std::fs::read_to_string(name).map_err(|e| format!("{name}: {e}"))
}

/// Checks `spec` from `caller` into what the run is built from.
pub fn check(spec: &RunSpec, caller: &Caller) -> Result<Elevation, String> {
    if spec.isolation != Isolation::Elevated {
        return Err(Invalid::NotElevated(spec.isolation.as_str()).to_string());
    }
    spec.check().map_err(|e| e.to_string())?;
    let passwd = read_etc("/etc/passwd")?;
    let etc_group = read_etc("/etc/group")?;
    let uid = caller.ids.uid;
    let person = accounts::user_of_uid(&passwd, uid)
        .ok_or_else(|| format!("uid {uid} has no entry in /etc/passwd"))?;
    // Root needs no membership (it could add itself).
    if uid != 0 && !accounts::is_member(&etc_group, USERS_GROUP, &person.name, caller.ids.gid) {
        return Err(Invalid::NotAuthorised(person.name).to_string());
    }
    let account = spec
        .account()
        .ok_or_else(|| Invalid::NotElevated(spec.isolation.as_str()).to_string())?;
    let name = account.name();
    let user = accounts::user_named(&passwd, name)
        .filter(accounts::is_ours)
        .ok_or_else(|| format!("the sandbox account {name} is missing\nhint: sudo moat setup"))?;
    if account == Account::Offline {
        let verified = moat_linux::firewall::verified_for_run(user.uid, name)
            .map_err(|e| format!("checking the firewall rules: {e}"))?;
        if !verified {
            return Err(format!(
                "the firewall rules for {name} (nftables table {}) are missing or changed, so \
                 its traffic would not be refused\nhint: sudo moat setup",
                moat_spec::install::NFT_TABLE
            ));
        }
    }
    let opened = {
        let _as_caller = AsUser::enter(caller.ids)
            .map_err(|e| format!("the launcher could not take on your file-system ids: {e}"))?;
        open_paths(spec, caller, Path::new(&person.home)).map_err(|e| e.to_string())?
    };
    Ok(Elevation {
        account: Ids {
            uid: user.uid,
            gid: user.gid,
        },
        caller: caller.ids,
        roots: opened.roots,
        home: opened.home,
        workspace: opened.workspace,
        caches: opened.caches,
        pins: moat_linux::idmap::pins(),
        rlimits: caller.limits.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn spelling_is_checked_on_the_bytes() {
        let p = |b: &[u8]| PathBuf::from(std::ffi::OsString::from_vec(b.to_vec()));
        assert_eq!(canonical_form(&p(b"/home/a/\xffws")), Ok(()));
        assert_eq!(canonical_form(&p(b"/")), Ok(()));
        for bad in [&b"/a/./b"[..], b"/a//b", b"/a/", b"/a/../b", b"/.."] {
            assert!(
                matches!(canonical_form(&p(bad)), Err(Invalid::NotCanonical(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            canonical_form(&p(b"rel")),
            Err(Invalid::NotAbsolute(_))
        ));
    }

    #[test]
    fn the_systems_directories_are_never_writable() {
        for p in [
            "/",
            "/etc",
            "/etc/x",
            "/usr/lib",
            "/home",
            "/tmp",
            "/var/lib/x",
        ] {
            assert!(is_system(Path::new(p)), "{p}");
        }
        for p in ["/home/a", "/tmp/x", "/var/tmp/x", "/etcetera", "/usrx"] {
            assert!(!is_system(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn every_refusal_names_its_path() {
        let p = PathBuf::from("/x");
        for e in [
            Invalid::NotAbsolute(p.clone()),
            Invalid::NotCanonical(p.clone()),
            Invalid::Symlink(p.clone()),
            Invalid::Missing(p.clone()),
            Invalid::NotDirectory(p.clone()),
            Invalid::Unreachable(p.clone()),
            Invalid::SystemPath(p.clone()),
            Invalid::NotOwned(p.clone()),
            Invalid::Unopenable(p.clone(), libc::EIO),
        ] {
            assert!(e.to_string().contains("/x"), "{e}");
        }
    }
}
