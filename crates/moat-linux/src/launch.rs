//! moat's side of the elevated tier: the request to the setuid launcher,
//! starting it, and what it reports back.
//!
//! The launcher gets the command's standard streams as its own, the
//! control socket as descriptor 3 and the descriptor channel as 4. On 3 it
//! reads the request (until end-of-file) and writes the sandbox's
//! [`Message`]s; on 4 it passes the proxy's listeners and the terminal, or,
//! when it refuses, its reason as text (followed on 3 by
//! `Failed { step: Launcher }`).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use moat_launch::request::{Account, Kind, Network, Request};
use moat_policy::{EntryKind, NetworkMode};

use crate::run::{Child, Error, Isolation, LayerState, SpawnRequest, StdioSpec};
use crate::spec::{self, CVec};
use crate::sys::{self, Errno};

/// Where `moat setup` installs the launcher.
pub const LAUNCHER: &str = "/usr/local/libexec/moat/moat-launch";

/// The launcher's path: `MOAT_LAUNCHER` (for tests of a build tree), or
/// where setup installs it.
pub fn launcher_path() -> PathBuf {
    std::env::var_os("MOAT_LAUNCHER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(LAUNCHER))
}

/// Whether the elevated tier is set up and this process may use it: the
/// launcher is installed setuid root and executable by us (membership of
/// moat-users takes effect at the next login).
pub fn usable() -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = launcher_path();
    let Ok(meta) = std::fs::metadata(&path) else {
        return false;
    };
    meta.uid() == 0
        && meta.mode() & 0o4000 != 0
        && spec::cpath(&path).is_some_and(|c| sys::fd::can_execute(&c))
}

/// Descriptors the launcher finds its channels on.
pub const CONTROL_FD: i32 = 3;
pub const CHANNEL_FD: i32 = 4;

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn kind(k: EntryKind) -> Kind {
    match k {
        EntryKind::Dir => Kind::Dir,
        EntryKind::File => Kind::File,
        EntryKind::Symlink | EntryKind::Other => Kind::Other,
    }
}

/// The launcher's request for `req`; `env` is the command's environment
/// as moat's policy built it.
pub fn request(
    req: &SpawnRequest<'_>,
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Request {
    let policy = req.policy;
    let view = req.view;
    let network = match policy.network.value {
        NetworkMode::Off => Network::Off,
        NetworkMode::Allow => Network::Allow,
        _ => Network::On,
    };
    let workspace = std::fs::canonicalize(&policy.workspace.value)
        .unwrap_or_else(|_| policy.workspace.value.clone());
    Request {
        account: if network == Network::On {
            Account::Online
        } else {
            Account::Offline
        },
        network,
        workspace: bytes(&workspace),
        writable: view
            .writable
            .iter()
            .map(|w| bytes(&w.path))
            .filter(|w| *w != bytes(&workspace))
            .collect(),
        readable: view
            .readable
            .as_ref()
            .map(|r| r.iter().map(|p| bytes(p)).collect()),
        deny_read: view
            .denied
            .iter()
            .map(|d| (kind(d.kind), bytes(&d.path)))
            .collect(),
        protected: view
            .protected
            .iter()
            .map(|p| (kind(p.kind), bytes(&p.path)))
            .collect(),
        pins: view.pins.iter().map(|p| bytes(p)).collect(),
        cwd: bytes(&req.cwd),
        argv: std::iter::once(&req.program)
            .chain(req.args.iter())
            .map(|a| a.as_bytes().to_vec())
            .collect(),
        env: spec::env_strings(env)
            .into_iter()
            .map(|e| e.as_bytes().to_vec())
            .collect(),
        timeout_ms: None,
        processes: policy.limits.processes.as_ref().map(|l| l.value),
        memory: policy.limits.memory.as_ref().map(|l| l.value),
        file_size: policy.limits.file_size.as_ref().map(|l| l.value),
        cpu: policy.limits.cpu.as_ref().map(|l| l.value),
        pty: req.pty,
    }
}

fn sys_err(what: &'static str) -> impl Fn(Errno) -> Error {
    move |errno| Error::Sys { what, errno }
}

/// Starts `req` through the launcher.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Child, Error> {
    let launcher = launcher_path();
    if !launcher.exists() {
        return Err(Error::Launcher(format!(
            "{} is not installed\nhint: run `sudo moat setup` once (or use --tier unelevated)",
            launcher.display()
        )));
    }
    if !usable() {
        return Err(Error::Launcher(format!(
            "you may not run {}: only members of the group {} may (`sudo moat setup --user \
             NAME` adds one; membership takes effect at the next login)",
            launcher.display(),
            crate::setup::accounts::USERS_GROUP
        )));
    }
    let plan = moat_policy::env::build(req.host_env, &req.policy.env, &[]);
    let request = request(req, &plan.vars).encode();
    let path = spec::cpath(&launcher).ok_or(Error::Nul {
        what: "the launcher's path",
    })?;
    let argv = CVec::new([OsStr::new("moat-launch")]).map_err(|_| Error::Nul { what: "argv" })?;
    let envp = CVec::new(Vec::<&OsStr>::new()).map_err(|_| Error::Nul { what: "env" })?;
    let (control, control_child) =
        sys::fd::socketpair().map_err(sys_err("creating a socket pair"))?;
    let (channel, channel_child) =
        sys::fd::socketpair().map_err(sys_err("creating a socket pair"))?;
    let stdio: Vec<i32> = req
        .stdio
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            StdioSpec::Inherit => i as i32,
            StdioSpec::Fd(fd) => *fd,
        })
        .collect();
    // Every source moves above the targets first (close-on-exec), so that
    // placing one cannot overwrite another, and nothing else is inherited.
    let sources = [
        stdio[0],
        stdio[1],
        stdio[2],
        control_child.as_raw_fd(),
        channel_child.as_raw_fd(),
    ];
    let mut high = Vec::new();
    let mut spawned = Ok((0, None));
    for fd in sources {
        match sys::fd::dup_above(fd, 100) {
            Ok(h) => high.push(h),
            Err(e) => spawned = Err(e),
        }
    }
    if spawned.is_ok() {
        spawned = sys::clone::spawn_program(&path, argv.ptrs(), envp.ptrs(), &high)
            .map(|(pid, fd)| (pid, Some(fd)));
    }
    for h in high {
        sys::fd::close_raw(h);
    }
    let (pid, pidfd) = match spawned.map_err(sys_err("starting the launcher"))? {
        (pid, Some(fd)) => (pid, fd),
        (_, None) => {
            return Err(Error::Sys {
                what: "starting the launcher",
                errno: Errno(libc::ENOSYS),
            })
        }
    };
    drop(control_child);
    drop(channel_child);
    // The launcher reads the whole request before it writes anything, so
    // this cannot deadlock; a launcher that died early shows as EPIPE,
    // and its reason (if any) comes below.
    let _ = sys::fd::write_all(control.as_raw_fd(), &request);
    let _ = sys::fd::shutdown_write(control.as_raw_fd());
    let timeout = req.policy.limits.timeout.as_ref().map(|t| t.value);
    let mut child = Child::launched(pid, pidfd, control, timeout, enforcement(req, &plan));
    child.await_launch(channel, req)?;
    Ok(child)
}

/// The sandbox account a run with `policy` runs as.
pub(crate) fn account_for(policy: &moat_policy::Policy) -> &'static str {
    if policy.network.value == NetworkMode::On {
        crate::setup::accounts::ONLINE
    } else {
        crate::setup::accounts::OFFLINE
    }
}

/// What the elevated run enforces, as moat reports it.
fn enforcement(req: &SpawnRequest<'_>, plan: &moat_policy::env::EnvPlan) -> crate::Enforcement {
    let policy = req.policy;
    let view = req.view;
    let abi = sys::landlock::abi_version();
    let account = account_for(policy);
    let own_network = policy.network.value != NetworkMode::On;
    let mut layers = vec![
        (
            "process",
            LayerState::Full,
            "new session, pid namespace with init, dies with moat, only stdio inherited".into(),
        ),
        (
            "privilege",
            LayerState::Full,
            format!("runs as {account}, no capabilities, no_new_privs"),
        ),
        (
            "namespaces",
            LayerState::Full,
            if own_network {
                "mount, pid, ipc, uts, cgroup, net (no user namespace needed)".to_string()
            } else {
                "mount, pid, ipc, uts, cgroup (no user namespace needed)".to_string()
            },
        ),
        (
            "mounts",
            LayerState::Full,
            format!(
                "{} writable roots idmapped to {account}, home read-only and idmapped, {} \
                 protected paths, {} masked paths",
                view.writable.len(),
                view.protected.len(),
                view.denied.len()
            ),
        ),
        (
            "landlock",
            crate::run::landlock_state(abi),
            format!("ABI {abi}"),
        ),
        (
            "seccomp",
            LayerState::Full,
            "the unelevated tier's filter".to_string(),
        ),
    ];
    layers.push((
        "network",
        LayerState::Full,
        match policy.network.value {
            NetworkMode::Off => format!(
                "off: empty network namespace, loopback only; the firewall also rejects all of \
                 {account}'s traffic"
            ),
            NetworkMode::Allow => format!(
                "allow: empty network namespace; moat's proxy on 127.0.0.1:{} (HTTP) and :{} \
                 (SOCKS5), ports 80 and 443 captured for it, a DNS stub; the firewall rejects \
                 the rest of {account}'s traffic",
                crate::PROXY_PORTS[0],
                crate::PROXY_PORTS[1]
            ),
            _ => format!("on: the host's network, as {account}"),
        },
    ));
    // Until the launcher says which limits its cgroups hold.
    layers.push(crate::run::resources_layer(
        policy,
        Some(account),
        crate::cgroup::Placed::default(),
    ));
    crate::Enforcement {
        isolation: Isolation::Elevated,
        landlock_abi: abi,
        layers,
        lost: Vec::new(),
        env_removed: plan
            .removed
            .iter()
            .map(|(n, r)| (n.clone(), r.as_str()))
            .collect(),
    }
}

/// Reads the launcher's reason for refusing from the channel.
pub(crate) fn reason(channel: &OwnedFd) -> String {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while text.len() < 64 * 1024 {
        match sys::fd::read(channel.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text).trim_end().to_string();
    if text.is_empty() {
        "the launcher ended without saying why".to_string()
    } else {
        text
    }
}

/// The launcher's side of the channels.
pub mod reply {
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};

    use crate::run::Exit;
    use crate::sys;
    use crate::wire::{Message, Step};

    /// Refuses the run: the reason on the channel, then the record that
    /// tells moat to read it.
    pub fn refuse(control: &OwnedFd, channel: &OwnedFd, reason: &str) {
        let _ = sys::fd::write_all(channel.as_raw_fd(), reason.as_bytes());
        Message::Failed {
            step: Step::Launcher,
            index: 0,
            errno: 0,
        }
        .send(control.as_raw_fd());
    }

    /// The command runs; `fds` (proxy listeners, then the terminal) follow
    /// on the channel.
    pub fn started(
        control: &OwnedFd,
        channel: &OwnedFd,
        pid: u32,
        fds: &[RawFd],
        pty: bool,
        cgroup: crate::cgroup::Placed,
    ) -> bool {
        Message::Started {
            pid: pid as i32,
            listeners: fds.len() as u32 - u32::from(pty),
            cgroup: cgroup.bits(),
        }
        .send(control.as_raw_fd());
        fds.iter()
            .all(|fd| sys::fd::send_fd(channel.as_raw_fd(), *fd).is_ok())
    }

    /// How the command ended.
    pub fn ended(control: &OwnedFd, exit: Exit) {
        let m = match exit {
            Exit::Code(code) => Message::Exited { code },
            Exit::Signal(signal) => Message::Signaled { signal },
            Exit::NotStarted { errno } => Message::Failed {
                step: Step::Exec,
                index: 0,
                errno,
            },
            // moat keeps the time; the launcher sets no timeout of its own.
            Exit::TimedOut => Message::Signaled {
                signal: libc::SIGKILL,
            },
        };
        m.send(control.as_raw_fd());
    }
}
