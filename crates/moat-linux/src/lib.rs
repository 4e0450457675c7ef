//! moat's Linux backend: runs one command as a [`moat_spec::RunSpec`] says.
//!
//! # What it enforces
//! Each layer holds on its own; together they cover each other's gaps.
//! 1. **Process**: a new session (no TIOCSTI into the person's terminal), a
//!    pid namespace whose init reaps and forwards signals, death with moat,
//!    every inherited descriptor but stdio closed, the environment scrubbed.
//! 2. **Privilege**: no capabilities (bounding set emptied, securebits
//!    locked), `no_new_privs`.
//! 3. **Mounts**: a private mount namespace with the host read-only, the
//!    writable roots writable, protected paths read-only and pinned, denied
//!    paths and host sockets masked, a private /tmp, /run and /dev, a fresh
//!    /proc.
//! 4. **Landlock** at the kernel's best ABI: filesystem rights, TCP (when no
//!    network namespace stands in), abstract-socket and signal scopes.
//! 5. **seccomp**: architecture check, unreviewed syscalls refused, a deny
//!    table (see [`seccomp`]).
//! 6. **Network**: an empty network namespace with loopback, when off.
//! 7. **Resources**: rlimits, a wall-clock timeout, the whole tree killed at
//!    the end.
//!
//! Without user namespaces (some distributions and containers disable
//! them), only a Landlock + seccomp mode is possible; it runs only when the
//! person accepts what it loses ([`Isolation::LandlockOnly`]).
//!
//! The elevated tier ([`Isolation::Elevated`], after `moat setup`) builds
//! the same layers from the setuid launcher as root, without a user
//! namespace: [`launch`] is moat's side of it; the launcher checks the
//! request and its caller into an [`roots::Elevation`] and calls
//! [`spawn_elevated`], which clones the checked writable roots and home
//! from their descriptors, idmaps them to the sandbox account, and makes
//! the sandbox's init that account before the command starts.
//!
//! # Tests
//! Unit tests cover the plan, the seccomp table and the wire format; the
//! `moat` CLI's integration tests attack a real sandbox with `moat-probe`.

pub mod accounts;
mod bpf;
mod build;
pub mod cgroup;
mod child;
pub mod detect;
pub mod firewall;
mod hostfs;
pub mod idmap;
pub mod launch;
pub mod layers;
pub mod observe;
pub mod placeholders;
mod plan;
pub mod report;
pub mod rootdir;
pub mod roots;
mod rules;
mod run;
pub mod seccomp;
mod sockets;
mod spec;
mod supervise;
#[allow(unsafe_code)]
mod sys;
mod trust;
mod wire;

pub use detect::Support;
pub use hostfs::LinuxFs;
pub use moat_spec::{Isolation, DNS_PORT, PROXY_PORTS, TRANSPARENT_PORTS};
pub use report::{Enforcement, Layer, LayerState};
pub use run::{spawn, spawn_elevated, Error, Exit, Launch, StdioSpec};
pub use supervise::{end_by_signal, with_signals_blocked, Child, WaitOptions};

/// Whether this process runs as root (uid 0).
pub fn is_root() -> bool {
    sys::process::ids().0 == 0
}

/// Where a run's name server may be, as the sandbox's resolver will look:
/// 127.0.0.1 (glibc's default) and the `nameserver` lines of
/// `resolv_conf`, at most four.
pub fn stub_dns_addresses(resolv_conf: &str) -> Vec<std::net::IpAddr> {
    let mut out = vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
            if !out.contains(&ip) && out.len() < 4 {
                out.push(ip);
            }
        }
    }
    out
}

/// Whether `fd` becomes readable within `timeout_ms` (for accept loops
/// that must notice when to stop).
pub fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    sys::fd::poll_one(fd.as_raw_fd(), libc::POLLIN, timeout_ms)
        .map(|r| r & libc::POLLIN != 0)
        .unwrap_or(false)
}
