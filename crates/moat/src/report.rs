//! The run report: what ran, how it ended, what was enforced.

use serde::Serialize;

/// One layer's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    pub layer: String,
    /// `full`, `partial` or `off`.
    pub state: String,
    pub detail: String,
}

/// A host variable the command did not get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvRemoved {
    pub name: String,
    /// `secret`, `host-ipc` or `cleared`.
    pub reason: String,
}

/// Everything an agent needs to know about a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub command: Vec<String>,
    pub workspace: String,
    /// `unelevated` (the elevated tier will say `elevated`).
    pub tier: String,
    /// `namespaces`, `landlock-only`, or `none` (full access).
    pub mode: String,
    /// The exit status moat itself ends with.
    pub exit_code: i32,
    /// `exited`, `signaled`, `timed-out` or `not-started`.
    pub outcome: String,
    pub signal: Option<i32>,
    /// Why the command could not be started, if it could not.
    pub error: Option<String>,
    pub duration_ms: u64,
    pub landlock_abi: Option<i32>,
    pub layers: Vec<LayerReport>,
    /// What this run could not enforce (accepted with --allow-degraded).
    pub lost: Vec<String>,
    /// Git hooks and settings neutralised after the run.
    pub neutralised: Vec<String>,
    pub env_removed: Vec<EnvRemoved>,
    pub writable: Vec<String>,
    pub network: String,
    /// Settings that did not take effect, and why.
    pub ignored: Vec<String>,
    /// Things worth knowing (scan limits hit, home directory split).
    pub notes: Vec<String>,
    /// Every refused action: what, by which layer, by whom, how often, and
    /// what would allow it.
    pub denials: Vec<crate::denials::Denial>,
    /// Kinds of refusal this run could not observe, and why: none of them
    /// appear in `denials` even if they happened.
    pub denials_unseen: Vec<String>,
    /// With `network = allow`: every destination the proxy decided on.
    #[cfg(target_os = "linux")]
    pub network_decisions: Vec<crate::proxy::NetDecision>,
    /// The secrets the proxy held for the run (never their values).
    pub secrets: Vec<SecretReport>,
}

/// A secret of the run: its variable, where it may go, and how many
/// requests it was put into.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretReport {
    pub env: String,
    pub hosts: Vec<String>,
    pub injected: u32,
}
