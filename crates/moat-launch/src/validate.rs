//! What the launcher accepts: an authorised caller, and paths that are
//! absolute, canonical, free of symlinks at every component, reachable by
//! the caller, and (for anything made writable) owned by the caller and
//! outside the system's own directories.

use std::fmt;
use std::path::PathBuf;

use crate::request::Request;
use crate::sys::{self, Kind};

/// The person who ran the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    NotAuthorised(String),
    NotAbsolute(String),
    NotCanonical(String),
    Symlink(String),
    Missing(String),
    NotDirectory(String),
    Unreachable(String),
    SystemPath(String),
    NotOwned(String),
    EmptyCommand,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NotAuthorised(who) => write!(f, "{who} may not use the sandbox accounts (not in the group moat-users; sudo moat setup --user {who})"),
            Invalid::NotAbsolute(p) => write!(f, "{p} is not an absolute path"),
            Invalid::NotCanonical(p) => write!(f, "{p} is not canonical (no '.', '..', '//' or trailing '/')"),
            Invalid::Symlink(p) => write!(f, "{p} goes through a symlink"),
            Invalid::Missing(p) => write!(f, "{p} does not exist"),
            Invalid::NotDirectory(p) => write!(f, "{p} is not a directory"),
            Invalid::Unreachable(p) => write!(f, "you cannot reach {p}"),
            Invalid::SystemPath(p) => write!(f, "{p} is one of the system's own directories and cannot be made writable"),
            Invalid::NotOwned(p) => write!(f, "{p} is not yours, so it cannot be made writable"),
            Invalid::EmptyCommand => f.write_str("the command is empty"),
        }
    }
}

impl std::error::Error for Invalid {}

/// Whether `caller` is in the group `group` according to `etc_group` (the
/// text of /etc/group): as a listed member or by primary group.
pub fn authorised_in(etc_group: &str, group: &str, caller: &Caller) -> bool {
    etc_group.lines().any(|line| {
        let f: Vec<&str> = line.split(':').collect();
        f.len() >= 4
            && f[0] == group
            && (f[3].split(',').any(|m| m == caller.name)
                || f[2].parse::<u32>().ok() == Some(caller.gid))
    })
}

/// The name and home of `uid` according to `etc_passwd` (the text of
/// /etc/passwd).
pub fn passwd_entry(etc_passwd: &str, uid: u32) -> Option<(String, String)> {
    etc_passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid))
            .then(|| (f[0].to_string(), f[5].to_string()))
    })
}

/// `home` if it is a canonical directory the caller owns: the launcher
/// shows it to the sandbox account read-only and idmapped.
pub fn own_home(home: &[u8], caller: &Caller) -> Option<PathBuf> {
    let owner = reachable_dir(home).ok()?;
    (owner == caller.uid && home != b"/").then(|| PathBuf::from(show(home)))
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
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

fn is_system(p: &str) -> bool {
    SHARED_ROOTS.contains(&p)
        || SYSTEM_TREES
            .iter()
            .any(|t| p == *t || p.starts_with(&format!("{t}/")))
}

/// Checks the spelling of `p`: absolute, no empty, '.' or '..' component,
/// no trailing '/'.
fn canonical_form(p: &[u8]) -> Result<Vec<&[u8]>, Invalid> {
    if p.first() != Some(&b'/') {
        return Err(Invalid::NotAbsolute(show(p)));
    }
    if p == b"/" {
        return Ok(Vec::new());
    }
    let parts: Vec<&[u8]> = p[1..].split(|b| *b == b'/').collect();
    if parts
        .iter()
        .any(|c| c.is_empty() || *c == b"." || *c == b"..")
    {
        return Err(Invalid::NotCanonical(show(p)));
    }
    Ok(parts)
}

/// Walks `p` from `/` without following symlinks; the final kind and owner.
fn walk(p: &[u8]) -> Result<(Kind, u32), Invalid> {
    let parts = canonical_form(p)?;
    let (mut fd, mut kind, mut owner) =
        sys::step(None, b"/").map_err(|_| Invalid::Missing(show(p)))?;
    for part in parts {
        if kind != Kind::Dir {
            return Err(Invalid::NotDirectory(show(p)));
        }
        let (next, k, o) = sys::step(Some(&fd), part).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Invalid::Missing(show(p)),
            Some(libc::EACCES) => Invalid::Unreachable(show(p)),
            _ => Invalid::Missing(show(p)),
        })?;
        if k == Kind::Symlink {
            return Err(Invalid::Symlink(show(p)));
        }
        (fd, kind, owner) = (next, k, o);
    }
    Ok((kind, owner))
}

/// A directory the caller can reach.
fn reachable_dir(p: &[u8]) -> Result<u32, Invalid> {
    let (kind, owner) = walk(p)?;
    if kind != Kind::Dir {
        return Err(Invalid::NotDirectory(show(p)));
    }
    if !sys::real_access(p, libc::X_OK) {
        return Err(Invalid::Unreachable(show(p)));
    }
    Ok(owner)
}

/// A directory the sandbox may write: the caller's own, not the system's.
fn writable_dir(p: &[u8], caller: &Caller) -> Result<PathBuf, Invalid> {
    let owner = reachable_dir(p)?;
    if is_system(&show(p)) {
        return Err(Invalid::SystemPath(show(p)));
    }
    if owner != caller.uid {
        return Err(Invalid::NotOwned(show(p)));
    }
    if !sys::real_access(p, libc::W_OK) {
        return Err(Invalid::Unreachable(show(p)));
    }
    Ok(PathBuf::from(show(p)))
}

/// What the launcher may act on, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub workspace: PathBuf,
    pub writable: Vec<PathBuf>,
    pub cwd: PathBuf,
}

/// Checks `req` from `caller`, who must be root or in the users group
/// according to `etc_group`.
pub fn check(
    req: &Request,
    caller: &Caller,
    etc_group: &str,
    users_group: &str,
) -> Result<Checked, Invalid> {
    // Root could make itself a member anyway.
    if caller.uid != 0 && !authorised_in(etc_group, users_group, caller) {
        return Err(Invalid::NotAuthorised(caller.name.clone()));
    }
    if req.argv.first().is_none_or(|a| a.is_empty()) {
        return Err(Invalid::EmptyCommand);
    }
    let workspace = writable_dir(&req.workspace, caller)?;
    let writable = req
        .writable
        .iter()
        .map(|w| writable_dir(w, caller))
        .collect::<Result<Vec<_>, _>>()?;
    // The other lists only take access away (masks, read-only binds,
    // Landlock rules), so their spelling is all that matters.
    let listed = req
        .deny_read
        .iter()
        .chain(req.protected.iter())
        .map(|(_, p)| p)
        .chain(req.pins.iter())
        .chain(req.readable.iter().flatten());
    for p in listed {
        canonical_form(p)?;
    }
    // The command starts there as the sandbox account, after the mounts;
    // like the unelevated tier, any directory the caller can reach will do.
    // The workspace's own walk above has checked it already.
    if req.cwd != req.workspace {
        reachable_dir(&req.cwd)?;
    }
    let cwd = PathBuf::from(show(&req.cwd));
    Ok(Checked {
        workspace,
        writable,
        cwd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Account, Kind, Network};
    use std::os::unix::fs::symlink;

    fn me() -> Caller {
        // std has no getuid; the owner of a fresh file is us.
        let probe = std::env::temp_dir().join(format!("moat-launch-me-{}", std::process::id()));
        let _ = std::fs::write(&probe, "");
        let meta = std::fs::metadata(&probe).ok();
        let _ = std::fs::remove_file(&probe);
        let (uid, gid) = meta
            .map(|m| {
                (
                    std::os::unix::fs::MetadataExt::uid(&m),
                    std::os::unix::fs::MetadataExt::gid(&m),
                )
            })
            .unwrap_or((u32::MAX, u32::MAX));
        Caller {
            uid,
            gid,
            name: "me".into(),
        }
    }

    const GROUP: &str = "moat-users:x:994:me,other\n";

    fn request(ws: &std::path::Path) -> Request {
        let p = |x: &std::path::Path| x.to_string_lossy().as_bytes().to_vec();
        Request {
            account: Account::Offline,
            network: Network::Off,
            workspace: p(ws),
            writable: vec![],
            readable: None,
            deny_read: vec![(Kind::Dir, b"/home/me/.ssh".to_vec())],
            protected: vec![],
            pins: vec![],
            cwd: p(ws),
            argv: vec![b"true".to_vec()],
            env: vec![],
            timeout_ms: None,
            processes: None,
            memory: None,
            file_size: None,
            cpu: None,
            pty: false,
        }
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(tag: &str) -> Dir {
        // A directory of our own under /tmp (/tmp itself is shared).
        let d = std::env::temp_dir().join(format!("moat-launch-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(d.join("ws/src"));
        Dir(std::fs::canonicalize(&d).unwrap_or(d))
    }

    #[test]
    fn only_members_of_the_users_group_are_authorised() {
        let mut c = me();
        assert!(authorised_in(GROUP, "moat-users", &c));
        c.name = "stranger".into();
        assert!(!authorised_in(GROUP, "moat-users", &c));
        c.gid = 994;
        assert!(authorised_in(GROUP, "moat-users", &c), "by primary group");
        let s = scratch("auth");
        let stranger = Caller {
            uid: 4242,
            gid: 1,
            ..c.clone()
        };
        let err = check(&request(&s.0.join("ws")), &stranger, GROUP, "moat-users");
        assert!(matches!(err, Err(Invalid::NotAuthorised(_))), "{err:?}");
        // Root needs no membership (it could add itself).
        let root = Caller {
            uid: 0,
            gid: 0,
            name: "root".into(),
        };
        let err = check(&request(&s.0.join("ws")), &root, GROUP, "moat-users");
        assert!(!matches!(err, Err(Invalid::NotAuthorised(_))), "{err:?}");
    }

    #[test]
    fn a_good_request_passes() {
        let s = scratch("good");
        let mut r = request(&s.0.join("ws"));
        r.cwd = s.0.join("ws/src").to_string_lossy().as_bytes().to_vec();
        let c = check(&r, &me(), GROUP, "moat-users");
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn bad_paths_are_refused_by_name() {
        let s = scratch("bad");
        let ws = s.0.join("ws");
        let _ = symlink("/etc", s.0.join("to-etc"));
        let _ = symlink(&ws, s.0.join("to-ws"));
        let _ = std::fs::write(s.0.join("file"), "");
        let spell = |p: &str| p.as_bytes().to_vec();
        let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
        type Case = (Vec<u8>, fn(&Invalid) -> bool);
        let cases: Vec<Case> = vec![
            (spell("relative/ws"), |e| {
                matches!(e, Invalid::NotAbsolute(_))
            }),
            (spell(&format!("{}/./ws", text(&s.0))), |e| {
                matches!(e, Invalid::NotCanonical(_))
            }),
            (spell(&format!("{}//ws", text(&s.0))), |e| {
                matches!(e, Invalid::NotCanonical(_))
            }),
            (spell(&format!("{}/ws/", text(&s.0))), |e| {
                matches!(e, Invalid::NotCanonical(_))
            }),
            (spell(&format!("{}/ws/../ws", text(&s.0))), |e| {
                matches!(e, Invalid::NotCanonical(_))
            }),
            (spell(&format!("{}/to-etc", text(&s.0))), |e| {
                matches!(e, Invalid::Symlink(_))
            }),
            (spell(&format!("{}/to-ws", text(&s.0))), |e| {
                matches!(e, Invalid::Symlink(_))
            }),
            (spell(&format!("{}/to-ws/src", text(&s.0))), |e| {
                matches!(e, Invalid::Symlink(_))
            }),
            (spell(&format!("{}/missing", text(&s.0))), |e| {
                matches!(e, Invalid::Missing(_))
            }),
            (spell(&format!("{}/file", text(&s.0))), |e| {
                matches!(e, Invalid::NotDirectory(_))
            }),
            (spell("/etc"), |e| {
                matches!(e, Invalid::SystemPath(_) | Invalid::NotOwned(_))
            }),
            (spell("/usr/lib"), |e| {
                matches!(e, Invalid::SystemPath(_) | Invalid::NotOwned(_))
            }),
            (spell("/"), |e| {
                matches!(e, Invalid::SystemPath(_) | Invalid::NotOwned(_))
            }),
        ];
        for (path, ok) in cases {
            let mut r = request(&ws);
            r.workspace = path.clone();
            r.cwd = path.clone();
            let got = check(&r, &me(), GROUP, "moat-users");
            assert!(
                got.as_ref().is_err_and(ok),
                "{}: {got:?}",
                String::from_utf8_lossy(&path)
            );
            if let Err(e) = got {
                assert!(!e.to_string().is_empty());
            }
        }
        // The working directory must be one the caller can reach.
        let mut r = request(&ws);
        r.cwd = b"/root/../etc".to_vec();
        assert!(matches!(
            check(&r, &me(), GROUP, "moat-users"),
            Err(Invalid::NotCanonical(_))
        ));
    }
}
