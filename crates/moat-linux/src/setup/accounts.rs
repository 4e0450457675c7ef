//! The sandbox accounts and groups, read from the account databases and
//! changed with the distribution's own tools (useradd, groupadd, ...), so
//! shadow files, nscd and locks are handled the way the system expects.

use std::process::Command;

pub const OFFLINE: &str = "moat-offline";
pub const ONLINE: &str = "moat-online";
/// The sandbox accounts' primary group.
pub const SANDBOX_GROUP: &str = "moat-sandbox";
/// People allowed to run commands as the sandbox accounts.
pub const USERS_GROUP: &str = "moat-users";
/// How setup marks the accounts it made.
pub const GECOS: &str = "moat sandbox account";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

fn fields(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

fn lines(path: &str) -> Vec<Vec<String>> {
    fields(&std::fs::read_to_string(path).unwrap_or_default())
}

pub fn user(name: &str) -> Option<User> {
    user_in(
        &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
        name,
    )
}

/// The account `name` in `etc_passwd` (the file's text, for a caller
/// that has read it already).
pub fn user_in(etc_passwd: &str, name: &str) -> Option<User> {
    fields(etc_passwd).into_iter().find_map(|f| {
        (f.len() >= 7 && f[0] == name).then(|| User {
            name: f[0].clone(),
            uid: f[2].parse().unwrap_or(u32::MAX),
            gid: f[3].parse().unwrap_or(u32::MAX),
            gecos: f[4].clone(),
            home: f[5].clone(),
            shell: f[6].clone(),
        })
    })
}

pub fn group(name: &str) -> Option<Group> {
    lines("/etc/group").into_iter().find_map(|f| {
        (f.len() >= 4 && f[0] == name).then(|| Group {
            name: f[0].clone(),
            gid: f[2].parse().unwrap_or(u32::MAX),
            members: f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
        })
    })
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

/// The shell that refuses logins.
pub fn nologin() -> &'static str {
    ["/usr/sbin/nologin", "/sbin/nologin"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/bin/false")
}

/// Whether `u` looks like an account setup made.
pub fn is_ours(u: &User) -> bool {
    u.gecos == GECOS && u.shell == nologin() && u.uid < 1000
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
