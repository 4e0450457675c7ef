//! Refusals as the run report gives them: what was refused, by which
//! layer, and the narrowest setting that would allow it, or that moat
//! never does.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A setting that would allow a refused action: a config key and a value
/// (`moat policy suggest` reads them back from a report and prints them as
/// config lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `filesystem.write`, `network.mode`, `network.allow` or
    /// `network.allow_cidr`.
    pub config: String,
    pub value: String,
}

/// One refused action, deduplicated: `count` times, first by `process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// `write`, `read`, `network` or `syscall`.
    pub kind: String,
    /// The path, `address:port`, `host:port` or system call.
    pub target: String,
    /// `mount`, `landlock`, `seccomp`, `network-namespace` or `proxy`.
    pub layer: String,
    /// The process that tried first (its pid on the host), where known.
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub count: u32,
    /// The narrowest flag that would allow it, or why nothing does.
    pub hint: String,
    /// The same as settings; empty when moat never allows it.
    pub grants: Vec<Grant>,
}

/// What a hint is worked out from: the policy's protected and hidden paths.
#[derive(Debug, Clone, Default)]
pub(crate) struct HintFacts {
    pub protected: Vec<PathBuf>,
    pub denied: Vec<PathBuf>,
    /// Never a writable root, nor anything holding it.
    pub home: PathBuf,
}

pub(crate) const NEVER: &str = "not allowed by moat in any mode";

fn grant(config: &str, value: impl Into<String>) -> Grant {
    Grant {
        config: config.into(),
        value: value.into(),
    }
}

/// The hint and grants for a refused write of `target`.
fn write_hint(target: &str, facts: &HintFacts) -> (String, Vec<Grant>) {
    let path = Path::new(target);
    if let Some(p) = facts.protected.iter().find(|p| path.starts_with(p)) {
        return (
            format!(
                "{NEVER}: {} is kept read-only because programs outside the sandbox run what is \
                 written there",
                p.display()
            ),
            Vec::new(),
        );
    }
    if let Some(p) = facts.denied.iter().find(|p| path.starts_with(p)) {
        return (
            format!(
                "{} is hidden from the sandbox (a denied path); moat suggests nothing that \
                 would expose it",
                p.display()
            ),
            Vec::new(),
        );
    }
    // A directory the run may write: the target itself when it is one,
    // else the directory it is in.
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("/"))
    };
    if dir == Path::new("/") || facts.home.starts_with(dir) {
        return (
            format!(
                "{NEVER}: {} is or holds your home directory, which is never a writable root \
                 (--allow-write a directory inside it)",
                dir.display()
            ),
            Vec::new(),
        );
    }
    let dir = dir.display().to_string();
    (
        format!("--allow-write {dir}"),
        vec![grant("filesystem.write", dir)],
    )
}

/// The hint and grants for a connection to `address:port` that the
/// network namespace refused.
fn network_hint(target: &str) -> (String, Vec<Grant>) {
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => (target, ""),
    };
    let ip = host.parse::<std::net::IpAddr>().ok();
    let cidr = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(_) => format!("{ip}/32"),
        std::net::IpAddr::V6(_) => format!("{ip}/128"),
    };
    let web = matches!(port, "80" | "443");
    match ip {
        // The proxy carries HTTP and HTTPS only.
        Some(ip) if web => (
            format!("--network allow --allow-cidr {}", cidr(ip)),
            vec![
                grant("network.mode", "allow"),
                grant("network.allow_cidr", cidr(ip)),
            ],
        ),
        _ => (
            "--network on (the host's network, unfiltered: moat's proxy carries only HTTP and \
             HTTPS)"
                .into(),
            vec![grant("network.mode", "on")],
        ),
    }
}

/// A denial the backend observed, with its hint.
#[cfg(target_os = "linux")]
pub(crate) fn from_observed(d: &moat_linux::observe::Denial, facts: &HintFacts) -> Denial {
    use moat_linux::observe::Kind;
    let (hint, grants) = match d.kind {
        Kind::Write => write_hint(&d.target, facts),
        Kind::Network if d.target.ends_with("socket") => (
            "--network on (without namespaces moat cannot filter the network)".into(),
            vec![grant("network.mode", "on")],
        ),
        Kind::Network => network_hint(&d.target),
        Kind::Read => (
            format!(
                "--allow-read {} (it is hidden as a denied path; this shows it to the sandbox)",
                d.target
            ),
            vec![grant("filesystem.allow_read", d.target.clone())],
        ),
        Kind::Syscall => (NEVER.into(), Vec::new()),
        Kind::Signal => (
            format!("{NEVER}: a sandboxed command signals only its own processes"),
            Vec::new(),
        ),
    };
    Denial {
        kind: d.kind.as_str().into(),
        target: d.target.clone(),
        layer: d.layer.as_str().into(),
        pid: (d.pid != 0).then_some(d.pid),
        process: (!d.process.is_empty()).then(|| d.process.clone()),
        count: d.count,
        hint,
        grants,
    }
}

/// The proxy says why it refused, and how to allow it where a flag can
/// ("...; allow it with --allow-domain NAME"): the grant is read from
/// there, so the proxy decides it in one place. A name the person denied,
/// or one that does not resolve, gets none.
fn proxy_hint(rule: &str) -> (String, Vec<Grant>) {
    let flag = |f: &str| {
        rule.split_once(&format!("allow it with {f} "))
            .map(|(_, v)| v.split_whitespace().next().unwrap_or("").to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(name) = flag("--allow-domain") {
        return (
            format!("--allow-domain {name}"),
            vec![grant("network.allow", name)],
        );
    }
    if let Some(cidr) = flag("--allow-cidr") {
        return (
            format!("--allow-cidr {cidr}"),
            vec![grant("network.allow_cidr", cidr)],
        );
    }
    (format!("refused by the proxy: {rule}"), Vec::new())
}

/// The proxy's refusals, one per destination, with their count.
pub(crate) fn from_decisions(decisions: &[crate::proxy::NetDecision]) -> Vec<Denial> {
    let mut out: Vec<Denial> = Vec::new();
    for d in decisions.iter().filter(|d| !d.allowed) {
        let target = if d.name.contains(':') {
            format!("[{}]:{}", d.name, d.port)
        } else {
            format!("{}:{}", d.name, d.port)
        };
        if let Some(seen) = out.iter_mut().find(|o| o.target == target) {
            seen.count += 1;
            continue;
        }
        let (hint, grants) = proxy_hint(&d.rule);
        out.push(Denial {
            kind: "network".into(),
            target,
            layer: "proxy".into(),
            pid: None,
            process: None,
            count: 1,
            hint,
            grants,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_narrowest_grant() {
        let facts = HintFacts {
            protected: vec![PathBuf::from("/w/.git/hooks")],
            denied: vec![PathBuf::from("/home/u/.ssh")],
            home: PathBuf::from("/home/u"),
        };
        let (hint, grants) = write_hint("/home/u/notes.txt", &facts);
        assert!(hint.starts_with(NEVER), "{hint}");
        assert!(grants.is_empty());
        assert_eq!(
            write_hint("/home/u/nonexistent-moat/x", &facts).1,
            vec![grant("filesystem.write", "/home/u/nonexistent-moat")]
        );
        let (hint, grants) = write_hint("/nonexistent-moat/dir/file", &facts);
        assert_eq!(hint, "--allow-write /nonexistent-moat/dir");
        assert_eq!(
            grants,
            vec![grant("filesystem.write", "/nonexistent-moat/dir")]
        );
        let (hint, grants) = write_hint("/w/.git/hooks/pre-commit", &facts);
        assert!(hint.starts_with(NEVER), "{hint}");
        assert!(grants.is_empty());
        assert!(write_hint("/home/u/.ssh/config", &facts).1.is_empty());

        assert_eq!(
            proxy_hint(
                "example.com is not on the allowlist; allow it with --allow-domain example.com"
            )
            .1,
            vec![grant("network.allow", "example.com")]
        );
        assert_eq!(
            proxy_hint("127.0.0.1 is a loopback address; allow it with --allow-cidr 127.0.0.1/32")
                .1,
            vec![grant("network.allow_cidr", "127.0.0.1/32")]
        );
        assert!(proxy_hint("denied by the rule evil.test").1.is_empty());
        assert_eq!(
            network_hint("10.0.0.1:443").1,
            vec![
                grant("network.mode", "allow"),
                grant("network.allow_cidr", "10.0.0.1/32")
            ]
        );
        assert_eq!(
            network_hint("10.0.0.1:22").1,
            vec![grant("network.mode", "on")]
        );
        assert_eq!(
            network_hint("[::2]:443").1,
            vec![
                grant("network.mode", "allow"),
                grant("network.allow_cidr", "::2/128")
            ]
        );
    }
}
