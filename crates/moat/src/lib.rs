//! Run a command the way [`std::process::Command`] does, inside moat's
//! sandbox.
//!
//! ```no_run
//! use std::time::Duration;
//! use moat::{Command, NetworkMode, Policy};
//!
//! # fn main() -> Result<(), moat::Error> {
//! let outcome = Command::new("cargo")
//!     .args(["test", "--offline"])
//!     .current_dir("/home/me/project")
//!     .policy(
//!         Policy::workspace_write()
//!             .network(NetworkMode::Off)
//!             .timeout(Duration::from_secs(600)),
//!     )
//!     .status()?;
//! println!("exit {} in {} ms", outcome.code(), outcome.report.duration_ms);
//! for line in &outcome.report.neutralised {
//!     println!("neutralised: {line}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The workspace is the command's directory unless [`Command::workspace`]
//! says otherwise. The policy starts from moat's defaults (the workspace
//! and a private /tmp writable, secrets unreadable, no network); the
//! person's and the workspace's config files are read only when asked for
//! with [`Policy::with_config_files`].
//!
//! What each layer enforces is described by `moat-linux`; every run returns
//! a [`RunReport`] saying which layers ran and what, if anything, was lost.

#[cfg(target_os = "linux")]
pub mod caches;
mod command;
mod denials;
mod error;
#[cfg(target_os = "linux")]
mod lower;
mod policy;
/// The allowlist proxy (the `moat-proxy` crate); its parsers are public
/// for fuzzing.
#[cfg(target_os = "linux")]
pub use moat_proxy as proxy;
mod report;
#[cfg(target_os = "linux")]
mod secrets;

pub use command::{Child, Command, Exit, Outcome, Output, Stdio, Tier};
pub use denials::{Denial, Grant};
pub use error::Error;
pub use moat_policy::{NetworkMode, Preset, ReadMode};
pub use policy::{resolve, Policy, Resolved};
#[cfg(target_os = "linux")]
pub use proxy::{AskFn, DecisionFn, NetDecision};
pub use report::{EnvRemoved, LayerReport, RunReport, SecretReport};

/// Low-level access for tools built on moat (the CLI): policy layers,
/// config files and backend options.
pub mod advanced {
    pub use moat_config::{load, user_config_path, ConfigError, WORKSPACE_CONFIG};
    #[cfg(target_os = "linux")]
    pub use moat_linux::{cgroup, detect, end_by_signal, launch, seccomp, Isolation};
    pub use moat_policy::{
        audit, env, host, known, narrow, scan, secrets, units, view, Layer,
        Policy as ResolvedPolicy, Settings, Source, Sourced, Trust,
    };
}
