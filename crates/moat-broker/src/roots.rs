//! The roots the broker verifies upstream servers against: the system
//! bundle plus the CA files given with `--upstream-ca`. Verification is
//! ordinary WebPKI verification and cannot be turned off.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::Error;

/// Where the broker finds the roots it trusts for upstream servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRoots {
    /// The system bundle (PEM). Certificates in it that cannot be used as
    /// trust anchors are skipped, as TLS libraries do; `None` for none.
    pub bundle: Option<PathBuf>,
    /// More CA files (PEM), each certificate of which must be usable.
    pub extra: Vec<PathBuf>,
}

impl UpstreamRoots {
    /// The Debian and Ubuntu system bundle.
    pub const SYSTEM_BUNDLE: &'static str = "/etc/ssl/certs/ca-certificates.crt";

    /// The system bundle and no extra files.
    pub fn system() -> UpstreamRoots {
        UpstreamRoots {
            bundle: Some(PathBuf::from(Self::SYSTEM_BUNDLE)),
            extra: Vec::new(),
        }
    }

    /// Only `files`, without the system bundle.
    pub fn only(files: Vec<PathBuf>) -> UpstreamRoots {
        UpstreamRoots {
            bundle: None,
            extra: files,
        }
    }

    /// These roots and the CA file `file` (`--upstream-ca FILE`).
    pub fn with_extra(mut self, file: impl Into<PathBuf>) -> UpstreamRoots {
        self.extra.push(file.into());
        self
    }

    /// Reads every file into one store; an empty store is an error.
    pub(crate) fn load(&self) -> Result<RootCertStore, Error> {
        let mut store = RootCertStore::empty();
        if let Some(bundle) = &self.bundle {
            let certs = read_pem(bundle)?;
            let (added, _skipped) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad(
                    bundle,
                    "none of its certificates is a usable trust anchor",
                ));
            }
        }
        for file in &self.extra {
            for (i, cert) in read_pem(file)?.into_iter().enumerate() {
                store.add(cert).map_err(|e| {
                    bad(
                        file,
                        &format!("certificate {} is not a usable trust anchor: {e}", i + 1),
                    )
                })?;
            }
        }
        if store.is_empty() {
            return Err(Error::NoRoots);
        }
        Ok(store)
    }
}

/// The certificates of the PEM file `path`, at least one.
fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = fs::read(path).map_err(|source| Error::ReadCaFile {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, &format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "it has no CERTIFICATE block"));
    }
    Ok(certs)
}

fn bad(path: &Path, reason: &str) -> Error {
    Error::BadCaFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn temp(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("moat-broker-roots-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn bad_ca_files_are_named() {
        let missing = PathBuf::from("/nonexistent/moat-ca.pem");
        let err = UpstreamRoots::only(vec![missing]).load().unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/moat-ca.pem"),
            "{err}"
        );

        let empty = temp("empty.pem", "hello\n");
        let err = UpstreamRoots::only(vec![empty.clone()]).load().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&empty.display().to_string()) && msg.contains("no CERTIFICATE"),
            "{msg}"
        );

        let garbage = temp(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = UpstreamRoots::only(vec![garbage]).load().unwrap_err();
        assert!(
            err.to_string().contains("not a usable trust anchor"),
            "{err}"
        );

        assert!(matches!(
            UpstreamRoots::only(vec![]).load(),
            Err(Error::NoRoots)
        ));
        let _ = fs::remove_dir_all(empty.parent().unwrap());
    }

    #[test]
    fn the_system_bundle_loads_where_present() {
        if !Path::new(UpstreamRoots::SYSTEM_BUNDLE).exists() {
            println!("skipped: no {}", UpstreamRoots::SYSTEM_BUNDLE);
            return;
        }
        assert!(!UpstreamRoots::system().load().unwrap().is_empty());
    }
}
