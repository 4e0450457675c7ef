//! Merging a run's cache layer into the shared one.
//!
//! Each sandboxed run writes its tool caches into a layer of its own (an
//! overlay's upper directory); when no run is using the shared layer, moat
//! moves what a run wrote into it, so the next run starts warm. What the
//! overlay recorded is applied as it would read: a file replaces what was
//! there, a whiteout (a character device 0:0) hides what a lower layer
//! had, an opaque directory (`user.overlay.opaque`) replaces the
//! directory beneath it wholly. Files are moved by rename, within one
//! filesystem, so each appears whole or not at all.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::sys;

fn c(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> io::Result<bool> {
    let mut buf = [0u8; 4];
    let got = sys::at::get_xattr(&c(dir)?, c"user.overlay.opaque", &mut buf).map_err(|e| e.io())?;
    Ok(matches!(got, Some(n) if buf[..n] == *b"y"))
}

/// Removes whatever is at `path`, a whole directory tree included.
fn remove(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a directory tree, making its directories writable on the way
/// (the overlay leaves `work/work` with mode 000).
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if meta.is_dir() {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
            if let Ok(entries) = std::fs::read_dir(&d) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Moves what the upper directory `from` holds into `to`, as the overlay
/// would show `from` over `to`.
pub fn merge(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        if is_whiteout(&meta) {
            remove(&dst)?;
            sys::at::make_whiteout(&c(&dst)?).map_err(|e| e.io())?;
        } else if meta.is_dir() {
            let opaque = is_opaque(&src)?;
            match std::fs::symlink_metadata(&dst) {
                Ok(m) if m.is_dir() && !opaque => {}
                Ok(_) => {
                    remove(&dst)?;
                    std::fs::create_dir(&dst)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&dst)?,
                Err(e) => return Err(e),
            }
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            if opaque {
                sys::at::set_xattr(&c(&dst)?, c"user.overlay.opaque", b"y").map_err(|e| e.io())?;
            }
            merge(&src, &dst)?;
        } else {
            if std::fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
                remove_tree(&dst)?;
            }
            std::fs::rename(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                let m = std::fs::symlink_metadata(&p).ok();
                match m {
                    Some(m) if m.is_dir() => {
                        out.push(format!("{rel}/"));
                        stack.push(p);
                    }
                    Some(m) if is_whiteout(&m) => out.push(format!("{rel} (whiteout)")),
                    _ => out.push(format!(
                        "{rel}={}",
                        std::fs::read_to_string(&p).unwrap_or_default()
                    )),
                }
            }
        }
        out.sort();
        out
    }

    /// New and changed files move, a whiteout replaces a file or a whole
    /// directory, an opaque directory replaces what was beneath it.
    #[test]
    fn a_run_is_merged_as_the_overlay_shows_it() {
        let base = std::env::temp_dir().join(format!("moat-merge-{}", std::process::id()));
        let _ = remove_tree(&base);
        let (up, shared) = (base.join("upper"), base.join("shared"));
        for d in [
            "upper/reg/a",
            "upper/opaque",
            "shared/reg/a",
            "shared/gone",
            "shared/opaque",
        ] {
            let _ = std::fs::create_dir_all(base.join(d));
        }
        let write = |p: &str, t: &str| {
            let _ = std::fs::write(base.join(p), t);
        };
        write("shared/reg/a/old", "old");
        write("shared/reg/a/changed", "before");
        write("shared/gone/x", "x");
        write("shared/opaque/stale", "stale");
        write("shared/file", "f");
        write("upper/reg/a/changed", "after");
        write("upper/reg/a/new", "new");
        write("upper/opaque/fresh", "fresh");
        let whiteout = |name: &str| {
            c(&up.join(name))
                .ok()
                .is_some_and(|p| sys::at::make_whiteout(&p).is_ok())
        };
        let made = [whiteout("gone"), whiteout("file")];
        let opaque = c(&up.join("opaque"))
            .ok()
            .is_some_and(|p| sys::at::set_xattr(&p, c"user.overlay.opaque", b"y").is_ok());
        if !(made[0] && made[1] && opaque) {
            eprintln!("skipped: this filesystem takes no whiteouts or user xattrs here");
            let _ = remove_tree(&base);
            return;
        }
        assert!(merge(&up, &shared).is_ok());
        assert_eq!(
            tree(&shared),
            [
                "file (whiteout)",
                "gone (whiteout)",
                "opaque/",
                "opaque/fresh=fresh",
                "reg/",
                "reg/a/",
                "reg/a/changed=after",
                "reg/a/new=new",
                "reg/a/old=old",
            ]
        );
        assert!(is_opaque(&shared.join("opaque")).unwrap_or(false));
        let _ = remove_tree(&base);
    }
}
