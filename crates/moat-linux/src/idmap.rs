//! The user namespace that carries an elevated run's id mapping (the
//! person's ids shown as the sandbox account's), kept between runs.
//!
//! Making one costs a process (clone, two map writes, exit); the launcher
//! keeps each mapping it made bound at `PINS/<maps>` (root-only, like
//! `ip netns` keeps network namespaces) and reuses it. Nothing but the
//! mapping is in it: no process ever runs there, and only root can open
//! the pin. `moat setup --remove` unbinds them all.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::sys::{self, Errno, SysResult};

/// Where the launcher keeps the pins.
pub const PINS: &str = "/run/moat/idmap";

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

/// The namespace for these maps: the pinned one under `pins` if there is
/// one, else a new one (pinned there for next time).
pub fn namespace(pins: Option<&Path>, uid_map: &[u8], gid_map: &[u8]) -> SysResult<OwnedFd> {
    let Some(dir) = pins else {
        return sys::ids::idmap_namespace(uid_map, gid_map);
    };
    let path = dir.join(pin_name(uid_map, gid_map));
    if let Ok(f) = std::fs::File::open(&path) {
        let fd = OwnedFd::from(f);
        if sys::ids::is_user_namespace(fd.as_fd()) {
            return Ok(fd);
        }
    }
    let ns = sys::ids::idmap_namespace(uid_map, gid_map)?;
    // Pinning is an optimisation: the run goes ahead without it.
    let _ = pin(dir, &path, &ns);
    Ok(ns)
}

fn pin(dir: &Path, path: &Path, ns: &OwnedFd) -> SysResult<()> {
    let io = |e: std::io::Error| Errno(e.raw_os_error().unwrap_or(libc::EIO));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno(libc::EINVAL))?;
    sys::ids::pin_namespace(ns.as_fd(), &c)
}

/// Unbinds and removes every pin under `dir`; whether anything was there.
pub fn remove_all(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in entries.flatten() {
        if let Ok(c) = CString::new(e.path().as_os_str().as_encoded_bytes()) {
            sys::ids::unpin(&c);
        }
        let _ = std::fs::remove_file(e.path());
    }
    let _ = std::fs::remove_dir(dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    true
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
