//! The setup record: what `moat setup` did, so that a later run can check
//! it, a newer moat can upgrade it, and `--remove` can undo exactly it,
//! even after a setup that failed halfway (the record is written after
//! every step).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// 2 added the launcher.
pub const VERSION: u32 = 2;

/// moat's state directory (a constant of the build).
pub fn dir() -> PathBuf {
    PathBuf::from(moat_spec::install::STATE_DIR)
}

pub const FILE: &str = "setup.toml";

pub fn path() -> PathBuf {
    dir().join(FILE)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    /// People allowed to use the sandbox accounts.
    #[serde(default)]
    pub authorised: Vec<String>,
    /// Of those, the ones setup added to the users group.
    #[serde(default)]
    pub added_members: Vec<String>,
    #[serde(default)]
    pub created_accounts: Vec<String>,
    #[serde(default)]
    pub created_groups: Vec<String>,
    #[serde(default)]
    pub nft_table: Option<String>,
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    #[serde(default)]
    pub launcher: Option<PathBuf>,
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl Record {
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "# Written by `moat setup`; `moat setup --remove` undoes it.\nversion = {}\n",
            self.version
        );
        out.push_str(&format!("authorised = {}\n", list(&self.authorised)));
        out.push_str(&format!("added_members = {}\n", list(&self.added_members)));
        out.push_str(&format!(
            "created_accounts = {}\n",
            list(&self.created_accounts)
        ));
        out.push_str(&format!(
            "created_groups = {}\n",
            list(&self.created_groups)
        ));
        if let Some(t) = &self.nft_table {
            out.push_str(&format!("nft_table = {}\n", quote(t)));
        }
        if let Some(c) = &self.cgroup {
            out.push_str(&format!("cgroup = {}\n", quote(&c.to_string_lossy())));
        }
        if let Some(l) = &self.launcher {
            out.push_str(&format!("launcher = {}\n", quote(&l.to_string_lossy())));
        }
        out
    }

    /// The record at `path`; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Record>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let r: Record = toml::from_str(&text).map_err(|e| {
            format!(
                "{} is not a setup record moat understands: {e}",
                path.display()
            )
        })?;
        if r.version > VERSION {
            return Err(format!(
                "{} was written by a newer moat (record version {}, this moat knows {}); use that moat",
                path.display(),
                r.version,
                VERSION
            ));
        }
        Ok(Some(r))
    }

    /// Writes the record beside and renames it over, so a crash leaves
    /// the old record or the new one; in the state directory, by
    /// descriptor, as everything root keeps there.
    pub fn save(&self, state: &moat_linux::rootdir::RootDir) -> Result<(), String> {
        state
            .replace(FILE, self.to_toml().as_bytes(), 0o644)
            .map_err(|e| e.to_string())
    }

    pub fn note<T: PartialEq + Clone>(list: &mut Vec<T>, item: &T) {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip() {
        let r = Record {
            version: VERSION,
            authorised: vec!["alice".into(), "b\"ob".into()],
            added_members: vec!["alice".into()],
            created_accounts: vec!["moat-offline".into()],
            created_groups: vec!["moat-sandbox".into()],
            nft_table: Some("inet moat".into()),
            cgroup: Some(PathBuf::from("/sys/fs/cgroup/moat")),
            launcher: Some(PathBuf::from("/usr/local/libexec/moat/moat-launch")),
        };
        let back: Record = toml::from_str(&r.to_toml()).unwrap_or_default();
        assert_eq!(back, r);
    }

    #[test]
    fn a_newer_or_foreign_record_is_refused() {
        let dir = std::env::temp_dir().join(format!("moat-record-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("setup.toml");
        std::fs::write(&p, "version = 99\n").unwrap_or(());
        assert!(Record::load(&p).is_err_and(|e| e.contains("newer moat")));
        std::fs::write(&p, "version = 1\nsurprise = true\n").unwrap_or(());
        assert!(Record::load(&p).is_err_and(|e| e.contains("not a setup record")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
