//! Secrets: a value the sandbox must never see, and the hosts it may go to.

use std::fmt;

/// A secret moat brokers: the sandbox gets a placeholder in `env`, and the
/// broker puts `value` in its place only in requests to `hosts`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The environment variable that holds the placeholder in the sandbox
    /// (`GITHUB_TOKEN`).
    pub env: String,
    /// The real value. Never printed: `Debug` shows `<hidden>`.
    pub value: String,
    /// The hosts the value may be sent to, exact names or IP addresses
    /// (compared case-insensitively; no wildcards).
    pub hosts: Vec<String>,
}

impl Secret {
    /// A secret for `env` with `value`, bound to `hosts`.
    pub fn new(env: impl Into<String>, value: impl Into<String>, hosts: Vec<String>) -> Secret {
        Secret {
            env: env.into(),
            value: value.into(),
            hosts,
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("env", &self.env)
            .field("value", &"<hidden>")
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// What in `value` cannot go into an HTTP header value, if anything.
pub(crate) fn header_unsafe(value: &str) -> Option<&'static str> {
    if value.contains(['\r', '\n']) {
        Some("a line break")
    } else if value.contains('\0') {
        Some("a NUL byte")
    } else if value.chars().any(|c| c.is_control() && c != '\t') {
        Some("a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new(
            "GITHUB_TOKEN",
            "ghp_verysecretvalue123",
            vec!["api.github.com".into()],
        );
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("verysecret"), "{shown}");
        assert!(shown.contains("GITHUB_TOKEN") && shown.contains("api.github.com"));
    }

    #[test]
    fn names_and_values_are_checked() {
        let valid = |env: &str| moat_policy::secrets::check_env(env).is_ok();
        assert!(valid("GITHUB_TOKEN") && valid("_x1"));
        assert!(!valid("") && !valid("1A") && !valid("A-B"));
        assert_eq!(header_unsafe("abc\r\nX: y"), Some("a line break"));
        assert_eq!(header_unsafe("abc\0"), Some("a NUL byte"));
        assert_eq!(header_unsafe("ghp_abc"), None);
    }
}
