//! Secrets that never enter the sandbox, and which requests a host takes.
//!
//! Inside the sandbox a secret's variable holds a placeholder; moat's proxy
//! puts the real value in place of it only on requests to the hosts the
//! secret is bound to. This module only names and checks the bindings and
//! rules: nothing here reads a secret's value (the runtime does, at run
//! time).
//!
//! Hosts are exact: a DNS name (compared in the canonical spelling of
//! [`domains::canonical_name`]) or an IP address, never a wildcard, a port
//! or a URL, because a secret sent to "any name below a suffix" would go to
//! whoever registers one.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::domains;

/// A secret the proxy injects: inside the sandbox `env` holds a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretBinding {
    /// The variable's name, in the sandbox and in moat's own environment.
    pub env: String,
    /// The hosts whose requests get the real value.
    pub hosts: Vec<String>,
    /// Where the value is read from instead of moat's environment.
    pub file: Option<PathBuf>,
}

/// Which requests a host takes (its TLS is terminated by moat to check
/// them). A host with rules takes a request that any of its rules allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRule {
    pub host: String,
    /// Upper-case methods; empty means any method.
    pub methods: Vec<String>,
    /// Path prefixes, each starting with `/`; empty means any path.
    pub paths: Vec<String>,
}

/// The methods a rule may name (`*` stands for any).
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Why a secret binding or a request rule is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// Not `[A-Za-z_][A-Za-z0-9_]*`.
    EnvName(String),
    /// A secret bound to no host.
    NoHosts,
    /// The host, and why it is not an exact host.
    Host(String, String),
    Method(String),
    /// `*` listed with other methods.
    AnyMethodNotAlone,
    /// The path prefix, and what is wrong with it.
    Path(String, &'static str),
    /// A flag's value is not in its form (the form).
    Syntax(&'static str),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::EnvName(n) => write!(
                f,
                "`{}` is not a variable name (letters, digits and `_`, not starting with a digit)",
                n
            ),
            EntryError::NoHosts => f.write_str("no host to send the secret to; name at least one"),
            EntryError::Host(h, why) => write!(f, "host `{}`: {}", h, why),
            EntryError::Method(m) => write!(
                f,
                "unknown method `{}` (expected `*` for any, or some of {})",
                m,
                METHODS.join(", ")
            ),
            EntryError::AnyMethodNotAlone => {
                f.write_str("`*` means any method, so it stands alone")
            }
            EntryError::Path(p, why) => write!(f, "path `{}` {}", p, why),
            EntryError::Syntax(form) => write!(f, "expected {}", form),
        }
    }
}

impl std::error::Error for EntryError {}

/// Checks a variable name: the form a shell can export.
pub fn check_env(name: &str) -> Result<(), EntryError> {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic());
    if first_ok && chars.all(|c| c == '_' || c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(EntryError::EnvName(name.to_string()))
    }
}

/// The canonical spelling of an exact host: a lower-case name, or an IP
/// address (brackets around IPv6 allowed).
pub fn host(text: &str) -> Result<String, EntryError> {
    let bad = |why: &str| Err(EntryError::Host(text.to_string(), why.to_string()));
    if text.contains("://") {
        return bad("a URL; give the host alone, without the scheme");
    }
    if text.contains('*') {
        return bad("a wildcard; name each host exactly");
    }
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if text.contains('/') {
        return bad("has a path; give the host alone");
    }
    if text.contains(':') {
        return bad("has a port; give the host alone (every port of it counts)");
    }
    let name = domains::canonical_name(text)
        .map_err(|e| EntryError::Host(text.to_string(), e.to_string()))?;
    // All digits and dots: a mistyped address, not a name.
    if !name.contains(|c: char| c.is_ascii_alphabetic()) {
        return bad("neither a name nor an IP address");
    }
    Ok(name)
}

/// An upper-cased method, or `*`.
pub fn method(text: &str) -> Result<String, EntryError> {
    let upper = text.trim().to_ascii_uppercase();
    if upper == "*" || METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(EntryError::Method(text.to_string()))
    }
}

/// Checks a path prefix. A prefix is compared byte for byte with the
/// request's path, so anything a server could read as another path (dot
/// segments, encoded dots or slashes, backslashes) is refused rather than
/// matched wrongly: the same rules as the broker's.
pub fn check_path(text: &str) -> Result<(), EntryError> {
    let bad = |why| Err(EntryError::Path(text.to_string(), why));
    if !text.starts_with('/') {
        return bad("must start with `/`");
    }
    if text.contains('\\') {
        return bad("has a backslash");
    }
    if text.chars().any(|c| c.is_control() || c == ' ' || c == '#') {
        return bad("has a control character, a space or `#`");
    }
    let lower = text.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%25", "%00"]
        .iter()
        .any(|code| lower.contains(code))
    {
        return bad("has a percent-encoded dot, slash, backslash, percent sign or NUL");
    }
    // `..;x` is `..` to some servers (path parameters).
    if text
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(seg))
        .any(|name| name == "." || name == "..")
    {
        return bad("has a `.` or `..` segment");
    }
    Ok(())
}

impl SecretBinding {
    /// The binding with its name and hosts checked, hosts in canonical
    /// spelling and without repeats. `file` is left as it is (paths are
    /// made absolute where the layer's source is known).
    pub fn checked(&self) -> Result<SecretBinding, EntryError> {
        check_env(&self.env)?;
        if self.hosts.is_empty() {
            return Err(EntryError::NoHosts);
        }
        let mut hosts: Vec<String> = Vec::new();
        for h in &self.hosts {
            let h = host(h)?;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        Ok(SecretBinding {
            env: self.env.clone(),
            hosts,
            file: self.file.clone(),
        })
    }
}

impl fmt::Display for SecretBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.env, self.hosts.join(", "))?;
        if let Some(file) = &self.file {
            write!(f, " (value from {})", file.display())?;
        }
        Ok(())
    }
}

/// `NAME:HOST[,HOST...]`, the form of `--secret`.
impl FromStr for SecretBinding {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, EntryError> {
        let (env, hosts) = s
            .split_once(':')
            .ok_or(EntryError::Syntax("NAME:HOST[,HOST...]"))?;
        SecretBinding {
            env: env.to_string(),
            hosts: hosts.split(',').map(str::to_string).collect(),
            file: None,
        }
        .checked()
    }
}

impl RequestRule {
    /// The rule with its host, methods and paths checked: the host in
    /// canonical spelling, methods upper-case (`*` alone becomes "any", the
    /// empty list).
    pub fn checked(&self) -> Result<RequestRule, EntryError> {
        let mut methods: Vec<String> = Vec::new();
        for m in &self.methods {
            let m = method(m)?;
            if !methods.contains(&m) {
                methods.push(m);
            }
        }
        if methods.len() > 1 && methods.iter().any(|m| m == "*") {
            return Err(EntryError::AnyMethodNotAlone);
        }
        methods.retain(|m| m != "*");
        for p in &self.paths {
            check_path(p)?;
        }
        Ok(RequestRule {
            host: host(&self.host)?,
            methods,
            paths: self.paths.clone(),
        })
    }

    /// Whether every request `self` allows is allowed by `outer` (same
    /// host assumed).
    pub fn within(&self, outer: &RequestRule) -> bool {
        let methods = outer.methods.is_empty()
            || (!self.methods.is_empty() && self.methods.iter().all(|m| outer.methods.contains(m)));
        let paths = outer.paths.is_empty()
            || (!self.paths.is_empty()
                && self
                    .paths
                    .iter()
                    .all(|p| outer.paths.iter().any(|o| p.starts_with(o.as_str()))));
        methods && paths
    }
}

impl fmt::Display for RequestRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let methods = if self.methods.is_empty() {
            "*".to_string()
        } else {
            self.methods.join(",")
        };
        write!(f, "{}:{}", methods, self.host)?;
        if !self.paths.is_empty() {
            write!(f, " paths {}", self.paths.join(", "))?;
        }
        Ok(())
    }
}

/// `METHODS:HOST[/PATH-PREFIX]`, the form of `--allow-request`: METHODS
/// comma-separated or `*`; the path starts at the first `/` after the host.
impl FromStr for RequestRule {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<Self, EntryError> {
        const FORM: &str = "METHODS:HOST[/PATH-PREFIX], e.g. GET,HEAD:registry.npmjs.org";
        if s.contains("://") {
            return Err(EntryError::Syntax(FORM));
        }
        let (methods, rest) = s.split_once(':').ok_or(EntryError::Syntax(FORM))?;
        if methods.trim().is_empty() {
            return Err(EntryError::Syntax(FORM));
        }
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        RequestRule {
            host: host.to_string(),
            methods: methods.split(',').map(str::to_string).collect(),
            paths: path.into_iter().collect(),
        }
        .checked()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn env_names() {
        for ok in ["GITHUB_TOKEN", "_x", "a1"] {
            assert_eq!(check_env(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "TOKEN\0"] {
            assert!(check_env(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts_are_exact() {
        assert_eq!(host("API.GitHub.com.").unwrap(), "api.github.com");
        assert_eq!(host("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(host("[::1]").unwrap(), "::1");
        for (bad, needle) in [
            ("*.github.com", "wildcard"),
            ("https://api.github.com", "URL"),
            ("api.github.com:443", "port"),
            ("api.github.com/x", "path"),
            ("", "empty"),
            ("a b", "letters"),
            ("10.0.1", "neither a name"),
        ] {
            let e = host(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn secret_flag() {
        let s: SecretBinding = "GITHUB_TOKEN:api.github.com,Uploads.GitHub.com,api.github.com"
            .parse()
            .unwrap();
        assert_eq!(s.env, "GITHUB_TOKEN");
        assert_eq!(s.hosts, ["api.github.com", "uploads.github.com"]);
        for (bad, needle) in [
            ("GITHUB_TOKEN", "NAME:HOST"),
            ("GITHUB_TOKEN:", "empty"),
            ("1X:a.test", "variable name"),
            ("T:a.test,", "empty"),
            ("T:*.a.test", "wildcard"),
        ] {
            let e = bad.parse::<SecretBinding>().unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn request_flag() {
        let r: RequestRule = "get,HEAD:registry.npmjs.org".parse().unwrap();
        assert_eq!(r.methods, ["GET", "HEAD"]);
        assert!(r.paths.is_empty());
        let r: RequestRule = "GET,POST:git.example.com/org/repo.git/".parse().unwrap();
        assert_eq!(r.host, "git.example.com");
        assert_eq!(r.paths, ["/org/repo.git/"]);
        let r: RequestRule = "*:10.0.0.1/api".parse().unwrap();
        assert!(r.methods.is_empty());
        assert_eq!(r.to_string(), "*:10.0.0.1 paths /api");
        for (bad, needle) in [
            ("registry.npmjs.org", "METHODS:HOST"),
            (":registry.npmjs.org", "METHODS:HOST"),
            ("GET:https://a.test/", "METHODS:HOST"),
            ("FETCH:a.test", "unknown method `FETCH`"),
            ("GET,*:a.test", "stands alone"),
            ("GET:a.test:8080", "port"),
            ("GET:", "empty"),
            ("GET:a.test/a b", "space"),
            ("GET:a.test/a/../b", "segment"),
            ("GET:a.test/a%2Fb", "percent-encoded"),
            ("GET:a.test/a\\b", "backslash"),
        ] {
            let e = bad.parse::<RequestRule>().unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn rules_within() {
        let rule = |m: &[&str], p: &[&str]| RequestRule {
            host: "a.test".into(),
            methods: m.iter().map(|s| s.to_string()).collect(),
            paths: p.iter().map(|s| s.to_string()).collect(),
        };
        assert!(rule(&["GET"], &["/a/b"]).within(&rule(&["GET", "HEAD"], &["/a/"])));
        assert!(rule(&["GET"], &[]).within(&rule(&[], &[])));
        assert!(!rule(&[], &[]).within(&rule(&["GET"], &[])));
        assert!(!rule(&["GET"], &[]).within(&rule(&["GET"], &["/a"])));
        assert!(!rule(&["POST"], &["/a"]).within(&rule(&["GET"], &["/a"])));
    }
}
