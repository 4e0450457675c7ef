//! Request rules: which methods and path prefixes a host may be sent.
//!
//! A host with rules gets only requests that match one of them; every other
//! request is answered `403` and never forwarded. Prefixes are matched on
//! the path as sent, so paths a server might read differently from how they
//! look (`..` or `.` segments, `..;`, percent-encoded `.`, `/`, `\` or `%`,
//! backslashes) are refused for such hosts rather than normalised: moat
//! cannot know how each server decodes them.

use std::collections::HashMap;
use std::fmt;

use crate::error::Error;
use crate::host;

/// One allowed kind of request to `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRule {
    /// The host this rule is for (exact name or IP address).
    pub host: String,
    /// Allowed methods (`GET`, `HEAD`); empty means any method.
    pub methods: Vec<String>,
    /// Allowed path prefixes, each starting with `/` (`/repos/o/r/`);
    /// empty means any path. Matching is textual: `/a` also allows `/ab`,
    /// so end a directory prefix with `/`.
    pub paths: Vec<String>,
}

/// The rules of all hosts, validated and keyed by normalised host.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    by_host: HashMap<String, Vec<RequestRule>>,
}

/// Why a request was refused by the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleRefusal {
    /// No rule allows this method on this path.
    NotAllowed {
        /// The request's method.
        method: String,
        /// The request's path, without the query string.
        path: String,
        /// The host's rules, described (`only GET under /repos/o/r/`).
        allowed: String,
    },
    /// The path has a form whose meaning depends on the server.
    AmbiguousPath {
        /// The request's path, without the query string.
        path: String,
        /// What in it is refused.
        why: &'static str,
    },
}

impl Rules {
    /// Validates `rules`: hosts must be names or addresses, methods HTTP
    /// tokens (upper-cased here), paths start with `/` and be unambiguous.
    pub fn new(rules: Vec<RequestRule>) -> Result<Rules, Error> {
        let mut by_host: HashMap<String, Vec<RequestRule>> = HashMap::new();
        for rule in rules {
            let host = host::normalise(&rule.host)?;
            let bad = |reason: String| Error::BadRule {
                host: host.clone(),
                reason,
            };
            let mut methods = Vec::new();
            for m in &rule.methods {
                if m.is_empty() || !m.bytes().all(is_token_byte) {
                    return Err(bad(format!("{m:?} is not an HTTP method")));
                }
                methods.push(m.to_ascii_uppercase());
            }
            for p in &rule.paths {
                if let Err(why) = check_path(p) {
                    return Err(bad(format!("path prefix {p:?}: {why}")));
                }
            }
            by_host.entry(host.clone()).or_default().push(RequestRule {
                host,
                methods,
                paths: rule.paths,
            });
        }
        Ok(Rules { by_host })
    }

    /// Whether `host` (normalised) has rules.
    pub fn has(&self, host: &str) -> bool {
        self.by_host.contains_key(host)
    }

    /// The hosts with rules.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.keys().map(String::as_str)
    }

    /// Checks a request to `host` (normalised). `path` is the request
    /// target without its query string. Hosts without rules allow all.
    pub fn check(&self, host: &str, method: &str, path: &str) -> Result<(), RuleRefusal> {
        let Some(rules) = self.by_host.get(host) else {
            return Ok(());
        };
        if let Err(why) = check_path(path) {
            return Err(RuleRefusal::AmbiguousPath {
                path: path.to_string(),
                why,
            });
        }
        let allowed = rules.iter().any(|r| {
            (r.methods.is_empty() || r.methods.iter().any(|m| m == method))
                && (r.paths.is_empty() || r.paths.iter().any(|p| path.starts_with(p.as_str())))
        });
        if allowed {
            return Ok(());
        }
        Err(RuleRefusal::NotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allowed: rules.iter().map(describe).collect::<Vec<_>>().join("; or "),
        })
    }
}

impl fmt::Display for RuleRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRefusal::NotAllowed {
                method,
                path,
                allowed,
            } => write!(f, "{method} {path} is not allowed: {allowed}"),
            RuleRefusal::AmbiguousPath { path, why } => {
                write!(f, "the path {path:?} is refused: {why}")
            }
        }
    }
}

/// `only GET or HEAD under /a/ or /b/`.
fn describe(rule: &RequestRule) -> String {
    let methods = if rule.methods.is_empty() {
        "any method".to_string()
    } else {
        rule.methods.join(" or ")
    };
    let paths = if rule.paths.is_empty() {
        "on any path".to_string()
    } else {
        format!("under {}", rule.paths.join(" or "))
    };
    format!("only {methods} {paths}")
}

/// Whether `b` may be in an HTTP token (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Refuses paths a server might resolve to something other than what a
/// prefix comparison sees: the policy's rule for rule prefixes, said once.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    moat_policy::secrets::check_path(path).map_err(|e| match e {
        moat_policy::secrets::EntryError::Path(_, why) => why,
        _ => "it is not a path",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn rule(host: &str, methods: &[&str], paths: &[&str]) -> RequestRule {
        RequestRule {
            host: host.into(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn methods_and_prefixes_are_matched() {
        let rules = Rules::new(vec![rule("API.example", &["get"], &["/repos/o/r/"])]).unwrap();
        assert!(rules
            .check("api.example", "GET", "/repos/o/r/pulls")
            .is_ok());
        assert!(rules.check("other.example", "POST", "/x").is_ok());
        let refusal = rules.check("api.example", "POST", "/x").unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "POST /x is not allowed: only GET under /repos/o/r/"
        );
        assert!(rules.check("api.example", "GET", "/repos/o/other").is_err());
    }

    #[test]
    fn several_rules_are_alternatives() {
        let rules = Rules::new(vec![
            rule("h.example", &["GET", "HEAD"], &[]),
            rule("h.example", &[], &["/upload/", "/tmp/"]),
        ])
        .unwrap();
        assert!(rules.check("h.example", "HEAD", "/anything").is_ok());
        assert!(rules.check("h.example", "PUT", "/tmp/x").is_ok());
        let msg = rules
            .check("h.example", "PUT", "/x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "PUT /x is not allowed: only GET or HEAD on any path; or only any method under /upload/ or /tmp/"
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let rules = Rules::new(vec![rule("h.example", &[], &["/allowed/"])]).unwrap();
        for path in [
            "/allowed/../other",
            "/allowed/./x",
            "/allowed/..;/other",
            "/allowed/%2e%2e/other",
            "/allowed/%2E%2E/other",
            "/allowed%2f..%2fother",
            "/allowed/%252e%252e/other",
            "/allowed\\..\\other",
            "/allowed/%5C",
            "allowed/x",
        ] {
            match rules.check("h.example", "GET", path) {
                Err(RuleRefusal::AmbiguousPath { .. }) => {}
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(rules
            .check("h.example", "GET", "/allowed/a.b/..c/x%41")
            .is_ok());
    }

    #[test]
    fn bad_rules_are_errors() {
        assert!(Rules::new(vec![rule("h.example", &["GE T"], &[])]).is_err());
        assert!(Rules::new(vec![rule("h.example", &[], &["x/"])]).is_err());
        assert!(Rules::new(vec![rule("h.example", &[], &["/a/../b"])]).is_err());
        assert!(Rules::new(vec![rule("*.example", &[], &[])]).is_err());
    }
}
