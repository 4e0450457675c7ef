//! Codex's `codex/sandbox-state-meta`: a server that advertises this
//! experimental capability gets, in every `tools/call`'s `_meta`, the
//! permission profile Codex would sandbox the command with and its working
//! directory. moat maps the profile onto a narrowing of its own policy
//! (never a widening: a profile that would let the command write where
//! moat's policy does not is refused), and says what it did.
//!
//! The profile's shape:
//! `{"type": "managed", "file_system": {"type": "restricted", "entries":
//! [{"path": {"type": "special", "value": {"kind": "root"}}, "access":
//! "read"}, ...]}, "network": "restricted"}`; `"type": "disabled"` (no
//! sandbox) and `"external"` leave moat's policy as it is. Special paths:
//! `root`, `minimal`, `project_roots`, `current_working_directory`,
//! `tmpdir`, `slash_tmp`; others are plain paths. Access: `read`, `write`,
//! `none`.

use std::path::{Path, PathBuf};

use moat::advanced::narrow::{Narrowing, NetRequest};
use serde_json::Value;

pub const CAPABILITY: &str = "codex/sandbox-state-meta";

/// What Codex asked for, as moat applies it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub narrowing: Narrowing,
    /// Codex's working directory for the command.
    pub cwd: Option<PathBuf>,
    /// What moat did with parts it does not apply, in words.
    pub notes: Vec<String>,
}

/// The sandbox state in a call's `_meta`, if Codex sent one. `workspace` is
/// what `project_roots` means. An error names what moat cannot honour.
pub fn from_meta(meta: Option<&Value>, workspace: &Path) -> Result<Option<Applied>, String> {
    let Some(state) = meta.and_then(|m| m.get(CAPABILITY)) else {
        return Ok(None);
    };
    let mut out = Applied::default();
    if let Some(uri) = state.get("sandboxCwd").and_then(Value::as_str) {
        out.cwd = Some(file_uri(uri).ok_or_else(|| {
            format!("{CAPABILITY}: sandboxCwd {uri:?} is not a file URI or absolute path")
        })?);
    }
    let Some(profile) = state.get("permissionProfile") else {
        return Ok(Some(out));
    };
    let kind = profile.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "disabled" | "external" => {
            out.notes.push(format!(
                "Codex's permission profile is {kind:?} (no sandbox of Codex's own): moat's \
                 policy applies as it is"
            ));
            return Ok(Some(out));
        }
        "managed" => {}
        other => {
            return Err(format!(
                "{CAPABILITY}: moat does not know the permission profile type {other:?} and will \
                 not guess what it allows"
            ))
        }
    }
    match profile.get("network").and_then(Value::as_str) {
        Some("restricted") => out.narrowing.network = Some(NetRequest::Off),
        Some("enabled") | None => {}
        Some(other) => {
            return Err(format!(
                "{CAPABILITY}: unknown network setting {other:?} in the permission profile"
            ))
        }
    }
    let fs = profile.get("file_system").unwrap_or(&Value::Null);
    match fs.get("type").and_then(Value::as_str) {
        Some("restricted") => {}
        Some("unrestricted") | None => return Ok(Some(out)),
        Some(other) => {
            return Err(format!(
                "{CAPABILITY}: unknown file-system policy type {other:?} in the permission profile"
            ))
        }
    }
    let cwd = out.cwd.clone().unwrap_or_else(|| workspace.to_path_buf());
    let mut write = Vec::new();
    let mut read = Vec::new();
    let mut reads_everything = false;
    let entries = fs
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for entry in &entries {
        let access = entry.get("access").and_then(Value::as_str).unwrap_or("");
        let target = target(entry.get("path").unwrap_or(&Value::Null), workspace, &cwd)?;
        match (access, target) {
            ("none", Target::Path(p)) => out.narrowing.deny_read.push(p),
            ("none", t) => out.notes.push(format!(
                "ignored: no access to {t:?} (moat cannot deny that as a path)"
            )),
            ("read", Target::Root) => reads_everything = true,
            ("read", Target::Path(p)) => read.push(p),
            ("read", _) => {}
            ("write", Target::Root) => {
                return Err(format!(
                    "{CAPABILITY}: the permission profile makes the whole file system writable, \
                     which moat's policy does not allow"
                ))
            }
            ("write", Target::Path(p)) => write.push(p),
            ("write", Target::Temp) => out.notes.push(
                "Codex's temporary directories: moat gives the command a private /tmp instead"
                    .into(),
            ),
            ("write", Target::Minimal) => {}
            (other, _) => {
                return Err(format!(
                    "{CAPABILITY}: unknown access {other:?} in the permission profile"
                ))
            }
        }
    }
    out.narrowing.write = Some(write.clone());
    if !reads_everything {
        read.extend(write);
        out.narrowing.restrict_reads = Some(read);
    }
    Ok(Some(out))
}

/// A path of the profile.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Root,
    /// The system's own files (what moat's restricted reads always keep).
    Minimal,
    /// The temporary directories.
    Temp,
    Path(PathBuf),
}

fn target(path: &Value, workspace: &Path, cwd: &Path) -> Result<Target, String> {
    match path.get("type").and_then(Value::as_str) {
        Some("special") => {
            let kind = path
                .get("value")
                .and_then(|v| v.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("");
            Ok(match kind {
                "root" => Target::Root,
                "minimal" => Target::Minimal,
                "project_roots" | "workspace_roots" => Target::Path(workspace.to_path_buf()),
                "current_working_directory" => Target::Path(cwd.to_path_buf()),
                "tmpdir" | "slash_tmp" => Target::Temp,
                other => {
                    return Err(format!(
                        "{CAPABILITY}: unknown special path {other:?} in the permission profile"
                    ))
                }
            })
        }
        Some("path") => {
            let p = path
                .get("path")
                .or_else(|| path.get("value"))
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .ok_or_else(|| format!("{CAPABILITY}: a path entry without an absolute path"))?;
            Ok(Target::Path(p))
        }
        _ => Err(format!(
            "{CAPABILITY}: moat cannot read the permission profile's path {path} and will not \
             guess what it allows"
        )),
    }
}

/// The path of a `file://` URI (or an absolute path as it is).
fn file_uri(uri: &str) -> Option<PathBuf> {
    let path = match uri.strip_prefix("file://") {
        Some(rest) => rest.strip_prefix("localhost").unwrap_or(rest),
        None => uri,
    };
    let mut bytes = Vec::new();
    let mut it = path.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    use std::os::unix::ffi::OsStringExt;
    let p = PathBuf::from(std::ffi::OsString::from_vec(bytes));
    p.is_absolute().then_some(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(profile: Value) -> Value {
        json!({ CAPABILITY: {
            "permissionProfile": profile,
            "sandboxCwd": "file:///home/u/prj/sub%20dir",
            "useLegacyLandlock": false,
        }})
    }

    fn special(kind: &str, access: &str) -> Value {
        json!({ "path": { "type": "special", "value": { "kind": kind } }, "access": access })
    }

    #[test]
    fn a_workspace_profile_narrows_to_the_project() {
        let ws = Path::new("/home/u/prj");
        let m = meta(json!({
            "type": "managed",
            "file_system": { "type": "restricted", "entries": [
                special("root", "read"),
                special("project_roots", "write"),
                special("tmpdir", "write"),
                { "path": { "type": "path", "path": "/home/u/prj/.env" }, "access": "none" },
            ]},
            "network": "restricted",
        }));
        let a = from_meta(Some(&m), ws).unwrap().unwrap();
        assert_eq!(a.cwd, Some(PathBuf::from("/home/u/prj/sub dir")));
        assert_eq!(a.narrowing.network, Some(NetRequest::Off));
        assert_eq!(a.narrowing.write, Some(vec![PathBuf::from("/home/u/prj")]));
        assert_eq!(
            a.narrowing.deny_read,
            vec![PathBuf::from("/home/u/prj/.env")]
        );
        assert_eq!(a.narrowing.restrict_reads, None);
    }

    #[test]
    fn a_read_only_profile_leaves_nothing_writable_and_restricts_reads() {
        let m = meta(json!({
            "type": "managed",
            "file_system": { "type": "restricted", "entries": [
                special("minimal", "read"),
                special("current_working_directory", "read"),
            ]},
            "network": "enabled",
        }));
        let a = from_meta(Some(&m), Path::new("/home/u/prj"))
            .unwrap()
            .unwrap();
        assert_eq!(a.narrowing.write, Some(Vec::new()));
        assert_eq!(
            a.narrowing.restrict_reads,
            Some(vec![PathBuf::from("/home/u/prj/sub dir")])
        );
        assert_eq!(a.narrowing.network, None);
    }

    #[test]
    fn what_moat_cannot_honour_is_refused_and_no_sandbox_changes_nothing() {
        let ws = Path::new("/home/u/prj");
        for bad in [
            json!({ "type": "managed", "file_system": { "type": "restricted",
                    "entries": [special("root", "write")] } }),
            json!({ "type": "mystery" }),
            json!({ "type": "managed", "file_system": { "type": "restricted",
                    "entries": [{ "path": { "type": "glob", "pattern": "**" }, "access": "write" }] } }),
            json!({ "type": "managed", "network": "sometimes" }),
        ] {
            assert!(from_meta(Some(&meta(bad.clone())), ws).is_err(), "{bad}");
        }
        let a = from_meta(Some(&meta(json!({ "type": "disabled" }))), ws)
            .unwrap()
            .unwrap();
        assert_eq!(a.narrowing, Narrowing::default());
        assert_eq!(a.notes.len(), 1);
        assert_eq!(from_meta(Some(&json!({})), ws), Ok(None));
        assert_eq!(from_meta(None, ws), Ok(None));
    }
}
