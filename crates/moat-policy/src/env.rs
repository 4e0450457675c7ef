//! The command's environment: inherited, minus secrets and host IPC
//! addresses, plus what the person and moat set.

use std::ffi::{OsStr, OsString};

use crate::known::{
    HOST_IPC_VARS, SECRET_VAR_EXCEPTIONS, SECRET_VAR_PARTS, SECRET_VAR_PREFIXES,
    SECRET_VAR_SUBSTRINGS,
};
use crate::types::EnvPolicy;

/// Variables kept by `--env-clear`, without which almost nothing runs.
pub const KEPT_WHEN_CLEARED: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "TERM", "LANG"];

/// Why a variable of the host did not reach the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its name looks like it holds a credential.
    Secret,
    /// It addresses a host IPC endpoint.
    HostIpc,
    /// `--env-clear` / `env.clear`.
    Cleared,
}

impl Removal {
    pub fn as_str(self) -> &'static str {
        match self {
            Removal::Secret => "secret",
            Removal::HostIpc => "host-ipc",
            Removal::Cleared => "cleared",
        }
    }
}

/// The environment to start the command with, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPlan {
    pub vars: Vec<(OsString, OsString)>,
    /// Names (not values) of the host variables left out, and why.
    pub removed: Vec<(String, Removal)>,
}

/// True if a variable of this name probably holds a credential.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if SECRET_VAR_EXCEPTIONS.contains(&upper.as_str()) {
        return false;
    }
    SECRET_VAR_PREFIXES.iter().any(|p| upper.starts_with(p))
        || SECRET_VAR_SUBSTRINGS.iter().any(|w| upper.contains(w))
        || upper
            .split('_')
            .any(|part| SECRET_VAR_PARTS.contains(&part))
}

/// True if a variable of this name addresses a host IPC endpoint.
pub fn is_host_ipc_name(name: &str) -> bool {
    HOST_IPC_VARS.contains(&name) || name.starts_with("VSCODE_IPC") || name.starts_with("DBUS_")
}

fn classify(name: &str) -> Option<Removal> {
    if is_host_ipc_name(name) {
        Some(Removal::HostIpc)
    } else if is_secret_name(name) {
        Some(Removal::Secret)
    } else {
        None
    }
}

fn set_var(vars: &mut Vec<(OsString, OsString)>, name: &OsStr, value: &OsStr) {
    match vars.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_os_string(),
        None => vars.push((name.to_os_string(), value.to_os_string())),
    }
}

/// Builds the command's environment from the host's.
///
/// `forced` are moat's own variables (`MOAT_SANDBOX`, `TMPDIR`), applied
/// last so nothing overrides them.
pub fn build(
    host: &[(OsString, OsString)],
    policy: &EnvPolicy,
    forced: &[(&str, &OsStr)],
) -> EnvPlan {
    let mut vars = Vec::new();
    let mut removed = Vec::new();
    let passed = |name: &str| policy.pass.iter().any(|p| p.value == name);
    for (name, value) in host {
        // A name that is not UTF-8 cannot be matched against the lists; it
        // is kept unless the environment is cleared.
        let text = name.to_string_lossy();
        if policy.clear.value && !KEPT_WHEN_CLEARED.contains(&text.as_ref()) && !passed(&text) {
            removed.push((text.into_owned(), Removal::Cleared));
            continue;
        }
        if let Some(why) = classify(&text) {
            if !passed(&text) {
                removed.push((text.into_owned(), why));
                continue;
            }
        }
        set_var(&mut vars, name, value);
    }
    for set in &policy.set {
        let (name, value) = &set.value;
        set_var(&mut vars, OsStr::new(name), OsStr::new(value));
    }
    for (name, value) in forced {
        set_var(&mut vars, OsStr::new(name), value);
    }
    EnvPlan { vars, removed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Source, Sourced};

    fn host(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(n, v)| (OsString::from(n), OsString::from(v)))
            .collect()
    }

    fn policy(clear: bool, pass: &[&str], set: &[(&str, &str)]) -> EnvPolicy {
        EnvPolicy {
            clear: Sourced::default_value(clear),
            pass: pass
                .iter()
                .map(|p| Sourced::new(p.to_string(), Source::Flag("--env".into())))
                .collect(),
            set: set
                .iter()
                .map(|(n, v)| Sourced::new((n.to_string(), v.to_string()), Source::Api))
                .collect(),
        }
    }

    fn names(plan: &EnvPlan) -> Vec<String> {
        plan.vars
            .iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn secret_names() {
        let secret = [
            "GITHUB_TOKEN",
            "NPM_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "OPENAI_API_KEY",
            "API_KEY",
            "MY_APIKEY",
            "DB_PASSWORD",
            "PGPASSWORD",
            "NPM_CONFIG__AUTH",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "CARGO_REGISTRY_TOKEN",
            "DATABASE_URL",
            "github_token",
        ];
        for name in secret {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        let plain = [
            "PATH",
            "HOME",
            "PWD",
            "GIT_AUTHOR_NAME",
            "KEYTIMEOUT",
            "TOKENIZERS_PARALLELISM",
            "RUST_LOG",
            "LANG",
            "CARGO_HOME",
        ];
        for name in plain {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn scrubs_secrets_and_ipc() {
        let env = host(&[
            ("PATH", "/usr/bin"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("SSH_AUTH_SOCK", "/run/user/1/ssh"),
            ("DISPLAY", ":0"),
            ("EDITOR", "vi"),
        ]);
        let plan = build(
            &env,
            &policy(false, &[], &[]),
            &[("MOAT_SANDBOX", OsStr::new("1"))],
        );
        assert_eq!(names(&plan), ["PATH", "EDITOR", "MOAT_SANDBOX"]);
        assert!(plan
            .removed
            .contains(&("GITHUB_TOKEN".to_string(), Removal::Secret)));
        assert!(plan
            .removed
            .contains(&("SSH_AUTH_SOCK".to_string(), Removal::HostIpc)));
    }

    #[test]
    fn pass_set_and_clear() {
        let env = host(&[
            ("PATH", "/usr/bin"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("EDITOR", "vi"),
            ("TMPDIR", "/var/tmp/u"),
        ]);
        let plan = build(
            &env,
            &policy(true, &["GITHUB_TOKEN"], &[("FOO", "bar")]),
            &[("TMPDIR", OsStr::new("/tmp"))],
        );
        assert_eq!(names(&plan), ["PATH", "GITHUB_TOKEN", "FOO", "TMPDIR"]);
        assert_eq!(plan.vars[3].1, OsString::from("/tmp"));
        assert!(plan
            .removed
            .contains(&("EDITOR".to_string(), Removal::Cleared)));
    }
}
