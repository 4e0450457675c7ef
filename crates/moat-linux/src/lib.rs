//! moat's Linux backend: runs one command under a [`moat_policy::Policy`].
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
//! The elevated tier ([`Isolation::Elevated`], after [`setup`]) builds the
//! same layers from the setuid launcher as root, without a user namespace:
//! [`launch`] is moat's side of it; the launcher calls [`spawn`] with an
//! [`Elevation`], which idmaps the writable roots and the person's home to
//! the sandbox account and makes the sandbox's init that account before
//! the command starts.
//!
//! # Tests
//! Unit tests cover the plan, the seccomp table and the wire format; the
//! `moat` CLI's integration tests attack a real sandbox with `moat-probe`.

mod bpf;
pub mod cgroup;
mod child;
pub mod detect;
mod hostfs;
mod idmap;
pub mod launch;
pub mod placeholders;
mod plan;
mod rules;
mod run;
pub mod seccomp;
pub mod setup;
mod sockets;
mod spec;
#[allow(unsafe_code)]
mod sys;
mod wire;

pub use detect::Support;
pub use hostfs::LinuxFs;
pub use run::{
    spawn, Child, Elevation, Enforcement, Error, Exit, Isolation, LayerState, SpawnRequest,
    StdioSpec, WaitOptions,
};

pub use idmap::PINS as IDMAP_PINS;

/// Where the proxy listens inside a sandbox with `network = allow`: HTTP
/// (CONNECT and absolute URIs) and SOCKS5, on 127.0.0.1 of the sandbox's
/// own network namespace.
pub const PROXY_PORTS: [u16; 2] = [3128, 1080];

/// Ports captured for programs that ignore the proxy variables (plain HTTP
/// and TLS), on every address of the sandbox's network namespace.
pub const TRANSPARENT_PORTS: [u16; 2] = [80, 443];

/// The DNS stub's port.
pub const DNS_PORT: u16 = 53;

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
