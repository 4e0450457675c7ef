//! The user namespace that carries an elevated run's id mapping (the
//! person's ids shown as the sandbox account's), kept between runs.
//!
//! Making one costs a process (clone, two map writes, exit); the launcher
//! keeps each mapping it made bound at `IDMAP_PINS/<maps>` (root-only,
//! like `ip netns` keeps network namespaces) and reuses it. Nothing but
//! the mapping is in it: no process ever runs there, and only root can
//! open the pin. The pins' directory is a [`RootDir`], so a pin is never
//! reached through a name anyone else controls. `moat setup --remove`
//! unbinds them all.

use std::os::fd::{AsFd, OwnedFd};

use crate::rootdir::{proc_fd_path, RootDir};
use crate::sys::{self, Errno, SysResult};

pub use moat_spec::install::IDMAP_PINS as PINS;

fn pin_name(uid_map: &[u8], gid_map: &[u8]) -> String {
    let words = |m: &[u8]| {
        String::from_utf8_lossy(m)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
    };
    format!("u{}_g{}", words(uid_map), words(gid_map))
}

/// The uid and gid maps showing the person's ids (`caller`) as the
/// account's. For a mount, the namespace's "inside" ids are the ones on
/// disk and its "outside" ids the ones the mount shows: the person's files
/// show as the account's, and what the account creates is the person's on
/// disk.
pub fn maps(caller: (u32, u32), account: (u32, u32)) -> (Vec<u8>, Vec<u8>) {
    let line = |disk: u32, shown: u32| format!("{} {} 1\n", disk, shown).into_bytes();
    (line(caller.0, account.0), line(caller.1, account.1))
}

/// The pins' directory, made if missing.
pub fn pins() -> Option<RootDir> {
    RootDir::create(PINS, 0o700).ok()
}

/// The namespace for these maps: the pinned one in `pins` if there is one,
/// else a new one (pinned there for next time).
pub fn namespace(pins: Option<&RootDir>, uid_map: &[u8], gid_map: &[u8]) -> SysResult<OwnedFd> {
    let Some(dir) = pins else {
        return sys::ids::idmap_namespace(uid_map, gid_map);
    };
    let name = pin_name(uid_map, gid_map);
    if let Ok(fd) = dir.open_file(&name, libc::O_RDONLY) {
        if sys::ids::is_user_namespace(fd.as_fd()) {
            return Ok(fd);
        }
    }
    let ns = sys::ids::idmap_namespace(uid_map, gid_map)?;
    // Pinning is an optimisation: the run goes ahead without it. A run
    // killed before the bind leaves an empty file, which the next one
    // binds.
    if let Ok(target) = dir.touch(&name, 0o600) {
        let _ = sys::ids::pin_namespace(&proc_fd_path(ns.as_fd()), &proc_fd_path(target.as_fd()));
    }
    Ok(ns)
}

/// Unbinds and removes every pin; whether anything was there.
pub fn remove_all() -> bool {
    let Ok(dir) = RootDir::open(PINS) else {
        return false;
    };
    for name in dir.names() {
        if let Ok(c) = std::ffi::CString::new(format!("{PINS}/{name}")) {
            sys::ids::unpin(&c);
        }
        let _ = dir.remove(&name);
    }
    drop(dir);
    let _ = std::fs::remove_dir(PINS);
    if let Some(parent) = std::path::Path::new(PINS).parent() {
        let _ = std::fs::remove_dir(parent);
    }
    true
}

/// Whether the filesystem at `path` can be mounted idmapped (setup's
/// check of the person's home).
pub fn supported(path: &std::path::Path) -> Result<(), Errno> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Errno(libc::EINVAL))?;
    sys::ids::idmap_works(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_spell_the_maps() {
        assert_eq!(
            pin_name(b"1000 999 1\n", b"1000 995 1\n"),
            "u1000-999-1_g1000-995-1"
        );
    }
}
