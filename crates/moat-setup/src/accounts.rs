//! The sandbox accounts and groups, changed with the distribution's own
//! tools (useradd, groupadd, ...), so shadow files, nscd and locks are
//! handled the way the system expects; read with `moat_linux::accounts`.

use std::process::Command;

pub use moat_linux::accounts::{is_ours, nologin, Group, User};
pub use moat_spec::install::{GECOS, OFFLINE, ONLINE, SANDBOX_GROUP, USERS_GROUP};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn user(name: &str) -> Option<User> {
    moat_linux::accounts::user_named(&read("/etc/passwd"), name)
}

pub fn group(name: &str) -> Option<Group> {
    moat_linux::accounts::group_named(&read("/etc/group"), name)
}

fn lines(path: &str) -> Vec<Vec<String>> {
    read(path)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Whether `name` appears in a file of the account databases at all.
pub fn named_in(path: &str, name: &str) -> bool {
    lines(path)
        .iter()
        .any(|f| f.first().map(String::as_str) == Some(name))
}

/// Whether the account's password is locked (no password login).
pub fn locked(name: &str) -> Option<bool> {
    lines("/etc/shadow").into_iter().find_map(|f| {
        (f.len() >= 2 && f[0] == name).then(|| f[1].starts_with('!') || f[1].starts_with('*'))
    })
}

/// A command for a system tool by its full path: setup runs as root, and
/// a PATH without the sbin directories is common under sudo.
pub fn system_tool(program: &str) -> Command {
    let path = ["/usr/sbin/", "/sbin/", "/usr/bin/"]
        .iter()
        .map(|d| format!("{d}{program}"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| program.to_string());
    Command::new(path)
}

/// Runs one of the account tools; its error output on failure.
pub fn tool(program: &str, args: &[&str]) -> Result<(), String> {
    let out = system_tool(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
