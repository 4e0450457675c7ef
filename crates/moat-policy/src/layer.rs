//! One source's worth of settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::secrets::{RequestRule, SecretBinding};
use crate::types::{NetworkMode, Preset, ReadMode, Source};

/// Whether a layer may widen what the layers below it allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The person's own settings: their config, their flags, their program.
    Widen,
    /// Settings that came with the workspace, which may have been written by
    /// whoever wrote the repository: they can only narrow.
    NarrowOnly,
}

/// Settings from one source. Every field is optional; lists add to what the
/// layers below contributed.
///
/// Paths may be absolute, start with `~/`, or (in a workspace config only)
/// be relative to the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub source: Source,
    pub trust: Trust,
    pub preset: Option<Preset>,
    /// Extra writable roots.
    pub write: Vec<PathBuf>,
    /// Extra paths whose reads are denied.
    pub deny_read: Vec<PathBuf>,
    /// Extra readable paths in `restricted` read mode; in `all` mode an entry
    /// equal to or above a default denied path lifts that denial.
    pub allow_read: Vec<PathBuf>,
    pub read: Option<ReadMode>,
    /// Extra names kept read-only inside writable roots (relative paths such
    /// as `.pre-commit-config.yaml` or `tools/hooks`).
    pub protect: Vec<PathBuf>,
    /// Make all of `.git` read-only, not just hooks and config.
    pub strict_git: Option<bool>,
    /// Refuse to run where the network policy would only be advisory.
    pub require_network_isolation: Option<bool>,
    pub network: Option<NetworkMode>,
    /// Allowlist entries: names, `*.suffix` wildcards, `@group`s.
    pub allow_domains: Vec<String>,
    pub deny_domains: Vec<String>,
    /// Address blocks reachable although private (`10.0.0.0/8`).
    pub allow_cidr: Vec<String>,
    /// `NAME:ADDRESS` pins, like curl's --resolve.
    pub resolve: Vec<String>,
    /// Secrets the proxy injects on requests to their hosts (never from a
    /// workspace config).
    pub secrets: Vec<SecretBinding>,
    /// Which requests a host takes.
    pub request_rules: Vec<RequestRule>,
    /// Extra certificate authorities to verify upstream servers with,
    /// where moat terminates TLS (never from a workspace config).
    pub upstream_ca: Vec<PathBuf>,
    pub env_clear: Option<bool>,
    pub env_pass: Vec<String>,
    pub env_set: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub processes: Option<u64>,
    pub memory: Option<u64>,
    pub file_size: Option<u64>,
    /// Thousandths of a CPU (`1500` is one and a half).
    pub cpu: Option<u64>,
}

impl Layer {
    /// An empty layer from `source`, trusted as that kind of source is.
    pub fn new(source: Source) -> Layer {
        let trust = match source {
            Source::WorkspaceConfig(_) => Trust::NarrowOnly,
            _ => Trust::Widen,
        };
        Layer {
            source,
            trust,
            preset: None,
            write: Vec::new(),
            deny_read: Vec::new(),
            allow_read: Vec::new(),
            read: None,
            protect: Vec::new(),
            strict_git: None,
            require_network_isolation: None,
            network: None,
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            allow_cidr: Vec::new(),
            resolve: Vec::new(),
            secrets: Vec::new(),
            request_rules: Vec::new(),
            upstream_ca: Vec::new(),
            env_clear: None,
            env_pass: Vec::new(),
            env_set: Vec::new(),
            timeout: None,
            processes: None,
            memory: None,
            file_size: None,
            cpu: None,
        }
    }
}
