//! moat's sandbox policy, with no operating-system calls.
//!
//! # What this crate decides
//! - **Presets** ([`Preset`]): `workspace-write` (the default), `read-only`
//!   and `full-access` (no sandbox).
//! - **Layering** ([`Settings`], [`Layer`]): built-in defaults, the person's
//!   config, the workspace's config and flags, each value remembering where
//!   it came from ([`Source`]). A workspace config may only narrow what the
//!   layers below it allow; anything wider is dropped and reported
//!   ([`Ignored`]).
//! - **Filesystem view** ([`view::FsView`]): which directories are writable,
//!   which paths inside them stay read-only (git hooks and config, editor and
//!   agent settings, shell start-up files), which reads are denied, which
//!   repositories exist, computed through the [`HostFs`] trait so tests can
//!   pass a fake filesystem.
//! - **Tool caches** ([`caches`]): which package managers' caches under
//!   the home directory get a writable layer of moat's own.
//! - **Environment** ([`env`]): what the sandboxed command inherits, minus
//!   secrets and host IPC addresses.
//! - **Secrets and request rules** ([`secrets`]): which variables hold a
//!   placeholder that the proxy swaps for the real value on requests to
//!   their hosts, and which methods and paths a host takes.
//! - **Git audit** ([`gitconfig`], [`gitdir`]): which git settings and files
//!   would run code later outside the sandbox.
//!
//! # Limits
//! This crate only plans; the backends enforce. Everything here is pure data
//! and logic so it can be unit-tested on any platform, and it keeps to Rust
//! 1.63 with no dependencies because the Windows backend is type-checked with
//! that compiler.
//!
//! # Tests
//! Table-style unit tests next to each module; the backends' integration tests
//! check that the plan is enforced.

pub mod audit;
pub mod caches;
pub mod domains;
pub mod env;
pub mod gitconfig;
pub mod gitdir;
pub mod host;
pub mod known;
mod layer;
pub mod narrow;
pub mod paths;
mod resolve;
pub mod scan;
pub mod secrets;
mod types;
pub mod units;
pub mod view;

pub use host::{EntryKind, HostFacts, HostFs};
pub use layer::{Layer, Trust};
pub use resolve::{Ignored, Policy, PolicyError, Settings};
pub use types::{EnvPolicy, Limits, NetworkMode, Preset, ReadMode, Source, Sourced, UnknownValue};
