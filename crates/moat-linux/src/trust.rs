//! moat's certificate authority for a run, trusted by the command only.
//!
//! When moat's proxy terminates TLS for some hosts (the secret broker), the
//! command's TLS clients must trust the run's authority. The system's
//! bundle stays as it is on the host; inside the sandbox a copy with the
//! authority appended is bound over it (on a tmpfs of the sandbox's own,
//! gone with the run), and the variables of [`moat_spec::trust_env`] point
//! there too, for tools that ship their own roots. A landlock-only run has
//! no mounts: its copy is a file in the run's temporary directory, and
//! only the variables point at it.

use std::path::{Path, PathBuf};

use crate::run::Error;

/// Where distributions keep the bundle of trusted authorities.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The system's bundle, as a real file (no symlink left on the way, so the
/// sandbox's copy is bound over the file itself).
pub(crate) fn system_bundle() -> Result<PathBuf, Error> {
    SYSTEM_BUNDLES
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Trust(format!(
                "no bundle of trusted certificate authorities at {} to add moat's own to\n\
                 hint: install the ca-certificates package",
                SYSTEM_BUNDLES.join(", ")
            ))
        })
}

/// A landlock-only run's copy of the bundle with `extra` appended, in its
/// temporary directory (removed with it).
pub(crate) fn write_copy(dir: &Path, system: &Path, extra: &str) -> Result<PathBuf, Error> {
    let fail = |e: std::io::Error| Error::Trust(format!("{}: {e}", system.display()));
    let mut bundle = std::fs::read(system).map_err(fail)?;
    bundle.push(b'\n');
    bundle.extend_from_slice(extra.as_bytes());
    let path = dir.join("moat-ca-bundle.pem");
    std::fs::write(&path, bundle).map_err(|e| Error::Trust(format!("{}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_copy_is_the_system_bundle_then_the_authority() {
        let dir = std::env::temp_dir().join(format!("moat-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let system = dir.join("system.pem");
        std::fs::write(&system, "SYSTEM").unwrap();
        let copy = write_copy(&dir, &system, "EXTRA").unwrap();
        assert_eq!(std::fs::read_to_string(copy).unwrap(), "SYSTEM\nEXTRA");
        assert!(matches!(
            write_copy(&dir, &dir.join("missing"), "EXTRA"),
            Err(Error::Trust(m)) if m.contains("missing")
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
