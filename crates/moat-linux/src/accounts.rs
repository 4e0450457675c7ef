//! The account databases, read: who a uid is, and the sandbox accounts and
//! groups `moat setup` made. Parsed from the files' text, which a static
//! setuid binary reads directly (no NSS modules run as root).

use moat_spec::install::GECOS;

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

fn fields(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

fn user_of(f: &[&str]) -> Option<User> {
    (f.len() >= 7).then(|| User {
        name: f[0].to_string(),
        uid: f[2].parse().unwrap_or(u32::MAX),
        gid: f[3].parse().unwrap_or(u32::MAX),
        gecos: f[4].to_string(),
        home: f[5].to_string(),
        shell: f[6].to_string(),
    })
}

/// The account `name` in `etc_passwd` (the file's text).
pub fn user_named(etc_passwd: &str, name: &str) -> Option<User> {
    fields(etc_passwd)
        .find(|f| f.first() == Some(&name))
        .and_then(|f| user_of(&f))
}

/// The account of `uid` in `etc_passwd`.
pub fn user_of_uid(etc_passwd: &str, uid: u32) -> Option<User> {
    fields(etc_passwd)
        .filter_map(|f| user_of(&f))
        .find(|u| u.uid == uid)
}

/// The group `name` in `etc_group` (the file's text).
pub fn group_named(etc_group: &str, name: &str) -> Option<Group> {
    fields(etc_group).find_map(|f| {
        (f.len() >= 4 && f[0] == name).then(|| Group {
            name: f[0].to_string(),
            gid: f[2].parse().unwrap_or(u32::MAX),
            members: f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
        })
    })
}

/// Whether the person `name` (primary group `gid`) is in `group`: listed
/// as a member, or by primary group.
pub fn is_member(etc_group: &str, group: &str, name: &str, gid: u32) -> bool {
    group_named(etc_group, group)
        .is_some_and(|g| g.gid == gid || g.members.iter().any(|m| m == name))
}

/// The shell that refuses logins.
pub fn nologin() -> &'static str {
    ["/usr/sbin/nologin", "/sbin/nologin"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/bin/false")
}

/// Whether `u` looks like an account setup made: its comment, no login,
/// a system uid.
pub fn is_ours(u: &User) -> bool {
    u.gecos == GECOS && u.shell == nologin() && u.uid < 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\n# comment\nme:x:1000:1000::/home/me:/bin/sh\nbroken:x\n";
    const GROUP: &str = "moat-users:x:994:me,other\nme:x:1000:\n";

    #[test]
    fn accounts_are_found_by_name_and_uid() {
        assert_eq!(user_named(PASSWD, "me").map(|u| u.uid), Some(1000));
        assert_eq!(user_of_uid(PASSWD, 0).map(|u| u.home), Some("/root".into()));
        assert_eq!(user_named(PASSWD, "broken"), None);
        assert_eq!(user_of_uid(PASSWD, 7), None);
    }

    #[test]
    fn membership_is_by_list_or_primary_group() {
        assert!(is_member(GROUP, "moat-users", "me", 1000));
        assert!(!is_member(GROUP, "moat-users", "stranger", 1000));
        assert!(is_member(GROUP, "moat-users", "stranger", 994));
        assert!(!is_member(GROUP, "nosuch", "me", 1000));
    }
}
