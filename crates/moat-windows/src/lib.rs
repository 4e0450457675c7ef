//! moat's Windows backend.
//!
//! The architecture is the Codex Windows sandbox's (see the README): an
//! unelevated tier that runs commands under a write-restricted token with a
//! capability SID per writable root, and an elevated tier that runs them as
//! the sandbox accounts `MoatSandboxOffline`/`MoatSandboxOnline` behind
//! per-account firewall rules.
//!
//! Everything that is not a Windows call lives in platform-neutral modules
//! with unit tests that run on Linux: SIDs and SDDL, the ACL plan, command
//! lines, the environment block, the firewall rules, the runner's pipe
//! framing, command line and main loop, the setup record, the errors
//! people hit (logon failures included) and each tier's run plan
//! (`elevated`, `unelevated`), the job's limits (`limits`), moat's
//! terminal during a `--pty` run (`terminal`) and the allowlist proxy of
//! `--network allow` on loopback (`net_proxy`, which runs `moat-proxy`
//! on Linux's loopback in its tests). The calls
//! themselves are in `sys` (Windows only), which CI type-checks for
//! `x86_64-pc-windows-gnu` with Rust 1.63 but cannot run.
//!
//! Code here must build with Rust 1.63 (no let-else, no `is_some_and`).

pub mod acl_plan;
pub mod apply;
pub mod audit;
pub mod cli_args;
pub mod cmdline;
pub mod elevated;
pub mod envblock;
pub mod errors;
pub mod firewall;
pub mod framing;
pub mod limits;
pub mod logon;
pub mod net_proxy;
pub mod offline_env;
pub mod read_grants;
pub mod record;
pub mod runner;
pub mod runner_args;
pub mod runner_loop;
pub mod sddl;
pub mod setup_plan;
pub mod setup_run;
pub mod sid;
#[cfg(windows)]
#[allow(unsafe_code)]
pub mod sys;
pub mod terminal;
pub mod unelevated;
#[allow(unsafe_code)]
mod wipe;
