//! Installing the setuid launcher: root-owned, group moat-users, mode
//! 4750, so only authorised people can run it at all.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode the launcher is installed with.
pub const MODE: u32 = 0o4750;

/// The launcher built alongside this moat: `MOAT_LAUNCHER_SOURCE`, or
/// `moat-launch` next to the running executable.
pub fn source() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MOAT_LAUNCHER_SOURCE") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("finding moat's own path: {e}"))?;
    let candidate = exe.with_file_name("moat-launch");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "the launcher moat-launch is not next to {} (build it with `cargo build --release`, \
             which builds it too, or name it with MOAT_LAUNCHER_SOURCE)",
            exe.display()
        ))
    }
}

/// Whether `dest` is installed as it must be: a regular file owned by
/// root, group `gid`, mode 4750, and (with `source`) the same bytes.
pub fn problem(dest: &Path, gid: Option<u32>, source: Option<&Path>) -> Option<String> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(_) => return Some(format!("{} is missing", dest.display())),
    };
    if !meta.file_type().is_file() {
        return Some(format!("{} is not a regular file", dest.display()));
    }
    if meta.uid() != 0 || Some(meta.gid()) != gid || meta.mode() & 0o7777 != MODE {
        return Some(format!(
            "{} is owned by {}:{} with mode {:o}; it must be root:moat-users {:o}",
            dest.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777,
            MODE
        ));
    }
    if let Some(src) = source {
        if std::fs::read(src).ok() != std::fs::read(dest).ok() {
            return Some(format!("{} differs from {}", dest.display(), src.display()));
        }
    }
    None
}

/// Installs `source` at `dest` for group `gid`. The file is complete, with
/// its owner and mode, before it is renamed into place.
pub fn install(source: &Path, dest: &Path, gid: u32) -> Result<(), String> {
    let dir = dest
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = dest.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(source, &tmp)
        .map_err(|e| format!("copying {} to {}: {e}", source.display(), tmp.display()))?;
    let result = (|| {
        std::os::unix::fs::chown(&tmp, Some(0), Some(gid))
            .map_err(|e| format!("chown {}: {e}", tmp.display()))?;
        // chown clears the setuid bit, so the mode comes after it.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(MODE))
            .map_err(|e| format!("chmod {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dest)
            .map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the launcher and the directories setup made for it, if empty.
pub fn remove(dest: &Path) -> Result<bool, String> {
    let existed = match std::fs::remove_file(dest) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("removing {}: {e}", dest.display())),
    };
    let _ = std::fs::remove_file(dest.with_extension("new"));
    if let Some(dir) = dest.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(existed)
}
