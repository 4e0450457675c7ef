//! Starting a sandboxed command and supervising it to the end.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moat_policy::env::{self, Removal};
use moat_policy::view::FsView;
use moat_policy::{NetworkMode, Policy};

use crate::cgroup::Placed;
use crate::child;
use crate::plan::{self, PlanInput};
use crate::rules::{self, NetRules};
use crate::seccomp::{self, SocketPolicy};
use crate::spec::{self, CVec, ChildSpec, Stdio};
use crate::sys::{self, Errno};
use crate::wire::{Message, Reader, Step};

/// How much of the machine the sandbox is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces, mounts, Landlock and seccomp: every layer.
    Full,
    /// Landlock and seccomp only, for machines without unprivileged user
    /// namespaces. Loses what only namespaces give (see
    /// [`landlock_only_losses`]); runs only when the person accepts that.
    LandlockOnly,
    /// Every layer of `Full`, built by the setuid launcher as root, with
    /// the command running as a sandbox account (`moat setup`) behind its
    /// firewall rules. Needs no user namespaces.
    Elevated,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Full => "namespaces",
            Isolation::LandlockOnly => "landlock-only",
            Isolation::Elevated => "elevated",
        }
    }
}

/// What the launcher (root) needs to build an elevated run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elevation {
    /// The sandbox account: name, uid, gid.
    pub account: (String, u32, u32),
    /// The person: uid and primary gid, whose files the sandbox account
    /// reaches through idmapped mounts.
    pub caller: (u32, u32),
    /// The person's home, read-only and idmapped (when theirs).
    pub home: Option<PathBuf>,
    /// A root-only directory where the id mapping's namespace is kept
    /// between runs (creating it costs a process); `None` makes a new one.
    pub pins: Option<PathBuf>,
}

/// What a standard stream of the command is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioSpec {
    Inherit,
    /// A descriptor the caller keeps open until `spawn` returns.
    Fd(RawFd),
}

/// Everything needed to start one command.
#[derive(Debug, Clone)]
pub struct SpawnRequest<'a> {
    pub policy: &'a Policy,
    pub view: &'a FsView,
    pub host_env: &'a [(OsString, OsString)],
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Where the command starts; must be visible inside the sandbox.
    pub cwd: PathBuf,
    pub stdio: [StdioSpec; 3],
    /// Give the command a terminal of its own (relayed by [`Child::wait`]).
    pub pty: bool,
    pub isolation: Isolation,
    /// Accept the losses of a weaker mode instead of refusing.
    pub allow_degraded: bool,
    /// Set only by the launcher, which runs as root.
    pub elevation: Option<Elevation>,
}

/// How well a layer is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    Full,
    Partial,
    Off,
}

impl LayerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Full => "full",
            LayerState::Partial => "partial",
            LayerState::Off => "off",
        }
    }
}

/// What a run enforces: the run report's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    pub isolation: Isolation,
    pub landlock_abi: i32,
    /// `(layer, state, detail)` for each layer.
    pub layers: Vec<(&'static str, LayerState, String)>,
    /// What the chosen mode cannot enforce (accepted with
    /// `allow_degraded`).
    pub lost: Vec<String>,
    /// Host variables kept from the command, and why.
    pub env_removed: Vec<(String, &'static str)>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed at the policy's timeout.
    TimedOut,
    /// The program could not be started (not found, not executable).
    NotStarted {
        errno: i32,
    },
}

impl Exit {
    /// The status moat exits with: the command's own, 128+N for signal N,
    /// 124 on timeout (as timeout(1)), 127 if not found, 126 if not
    /// executable.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
            Exit::TimedOut => 124,
            Exit::NotStarted { errno } if errno == libc::ENOENT || errno == libc::ENOTDIR => 127,
            Exit::NotStarted { .. } => 126,
        }
    }
}

/// Why a command could not be run in the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {errno}")]
    Sys { what: &'static str, errno: Errno },
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error(transparent)]
    Seccomp(#[from] crate::bpf::BpfError),
    #[error("sandbox setup failed {step}{at}: {errno}{hint}")]
    Setup {
        step: &'static str,
        at: String,
        errno: Errno,
        hint: &'static str,
    },
    #[error(
        "unprivileged user namespaces are not available here ({reason}), so moat cannot build its \
         private mounts, pid and network namespaces\n{losses}\
         hint: enable them (`sysctl -w kernel.unprivileged_userns_clone=1`, \
         `sysctl -w user.max_user_namespaces=15000`, or on Ubuntu \
         `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), \
         or accept a Landlock + seccomp-only run with --allow-degraded"
    )]
    NoUserNamespaces { reason: String, losses: String },
    #[error(
        "this run cannot enforce all of its policy:\n{losses}\
         hint: pass --allow-degraded to run anyway, knowing the above"
    )]
    Degraded { losses: String },
    #[error("Landlock is not available on this kernel (it needs Linux 5.13 and `lsm=landlock`)\nhint: {0}")]
    NoLandlock(&'static str),
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error(
        "--network allow needs the namespaces mode: without a network namespace of its own the \
         command would reach the host's network around the proxy\nhint: enable unprivileged \
         user namespaces, or use --network off"
    )]
    NoProxy,
    #[error("the sandbox ended without reporting how the command ended")]
    Lost,
    #[error("the run's cgroup: {0}")]
    Cgroup(String),
    #[error("the elevated tier: {0}")]
    Launcher(String),
}

fn sys_err(what: &'static str) -> impl Fn(Errno) -> Error {
    move |errno| Error::Sys { what, errno }
}

/// Options for [`Child::wait`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitOptions {
    /// Forward SIGINT, SIGTERM, SIGHUP and SIGQUIT received by this process
    /// to the command (the CLI does; a library host usually does not).
    pub forward_signals: bool,
    /// Copy this process's stdin to the command's terminal and its output
    /// to stdout (with `pty`), with the person's terminal in raw mode.
    pub relay_pty: bool,
    /// End the run when this descriptor hangs up (the launcher: moat's
    /// control socket, so moat's death ends the run and the launcher still
    /// cleans up after it).
    pub hangup: Option<RawFd>,
}

/// A running sandbox.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    report: OwnedFd,
    // Held open so the child can tell moat is alive; dropped at the end.
    // None for the elevated tier, whose launcher dies with moat on its own
    // (parent-death signal), and the sandbox with it.
    _lifeline: Option<OwnedFd>,
    pty_master: Option<OwnedFd>,
    proxy_listeners: Vec<OwnedFd>,
    isolation: Isolation,
    timeout: Option<Duration>,
    started: Instant,
    ops: Vec<String>,
    enforcement: Enforcement,
    // The per-run temporary directory of a landlock-only run.
    temp_dir: Option<PathBuf>,
    // Records read while waiting for the start.
    pending: Vec<Message>,
    // Whether the sandbox's first process has been reaped.
    reaped: bool,
    reader: Reader,
    // The elevated tier: where the launcher writes why it gave up.
    launch_channel: Option<OwnedFd>,
    // The elevated tier, in the launcher: the run's cgroups, removed once
    // init is reaped.
    cgroup: Option<crate::cgroup::RunCgroup>,
}

/// What the landlock-only mode cannot enforce for `policy`, given the
/// Landlock ABI.
pub fn landlock_only_losses(policy: &Policy, view: &FsView, abi: i32) -> Vec<String> {
    let mut lost = Vec::new();
    if abi < 9 {
        lost.push(
            "the host's pathname UNIX sockets (D-Bus, docker.sock, ssh-agent, tmux) stay \
             reachable: Landlock restricts connect() only from ABI 9"
                .to_string(),
        );
    }
    if abi < 6 {
        lost.push("abstract UNIX sockets and signals to other processes are not scoped (Landlock ABI < 6)".into());
    }
    if !view.protected.is_empty() {
        lost.push(format!(
            "{} protected paths inside writable roots (git hooks and config, editor and agent \
             settings) are not kept read-only; only new repositories are audited at the end",
            view.protected.len()
        ));
    }
    if view
        .denied
        .iter()
        .any(|d| view.writable.iter().any(|w| d.path.starts_with(&w.path)))
    {
        lost.push("denied paths inside writable roots stay readable".into());
    }
    lost.push(
        "the mode and times of files outside the writable roots can still be changed: Landlock \
         does not cover chmod or utimes"
            .into(),
    );
    lost.push("/proc shows the host's processes and their command lines (ptrace, signals and /proc/PID/environ stay blocked)".into());
    lost.push("no private /dev or /dev/shm: POSIX shared memory and device nodes are the host's (writes outside /dev/null and terminals stay blocked)".into());
    lost.push("System V IPC and POSIX message queues are the host's".into());
    lost.push(
        "/tmp is not private: a per-run directory is used as TMPDIR, /tmp itself is read-only"
            .into(),
    );
    lost.push(
        "if moat itself is killed with SIGKILL, background processes of the command may survive"
            .into(),
    );
    if policy.network.value == NetworkMode::Off {
        if abi < 4 {
            lost.push("TCP is not restricted (Landlock ABI < 4); only non-UNIX sockets are refused by seccomp".into());
        }
        lost.push("with the network off, servers the command starts on localhost cannot be reached either".into());
    }
    if policy.limits.processes.is_some() {
        lost.push("the process limit counts all of your processes, not only the sandbox's".into());
    }
    lost
}

fn bullet(lines: &[String]) -> String {
    lines.iter().map(|l| format!("  - {}\n", l)).collect()
}

struct Prepared {
    spec: ChildSpec,
    flags: libc::c_ulong,
    report_read: OwnedFd,
    lifeline_write: OwnedFd,
    pty_parent: Option<OwnedFd>,
    proxy_parent: Option<OwnedFd>,
    /// How many sockets init sends on `proxy_parent`.
    proxy_sockets: usize,
    // Descriptors the child uses; closed in the parent after the fork.
    child_fds: Vec<OwnedFd>,
    ops: Vec<String>,
    enforcement: Enforcement,
    temp_dir: Option<PathBuf>,
    cgroup: Option<crate::cgroup::RunCgroup>,
}

fn exists_dir(p: &str) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.is_dir())
        .unwrap_or(false)
}

fn plan_input(req: &SpawnRequest<'_>, own_network: bool) -> PlanInput {
    let idmap = req.elevation.as_ref().map(|e| plan::IdmapInput {
        home: e.home.clone(),
    });
    let runtime_dir = req
        .host_env
        .iter()
        .find(|(n, _)| n == "XDG_RUNTIME_DIR")
        .map(|(_, v)| PathBuf::from(v))
        .filter(|p| p.is_absolute() && p.is_dir());
    let mut keep_under_run = Vec::new();
    if req.policy.network.value == NetworkMode::On {
        if let Ok(target) = std::fs::canonicalize("/etc/resolv.conf") {
            if target.starts_with("/run") || target.starts_with("/var/run") {
                keep_under_run.push(target);
            }
        }
    }
    PlanInput {
        own_network,
        workspace: std::fs::canonicalize(&req.policy.workspace.value)
            .unwrap_or_else(|_| req.policy.workspace.value.clone()),
        var_tmp: exists_dir("/var/tmp"),
        var_run_is_dir: exists_dir("/var/run"),
        run: exists_dir("/run"),
        runtime_dir,
        keep_under_run,
        dev_nodes: plan::DEV_NODES
            .iter()
            .copied()
            .filter(|n| Path::new("/dev").join(n).exists())
            .collect(),
        host_sockets: crate::sockets::host_sockets(),
        idmap,
    }
}

/// The rlimits for the limits no cgroup of the run holds.
fn rlimits(policy: &Policy, placed: Placed) -> Vec<(libc::__rlimit_resource_t, u64)> {
    let mut out = Vec::new();
    if let Some(p) = policy
        .limits
        .processes
        .as_ref()
        .filter(|_| placed.processes.is_none())
    {
        out.push((libc::RLIMIT_NPROC, p.value));
    }
    if let Some(m) = policy
        .limits
        .memory
        .as_ref()
        .filter(|_| placed.memory.is_none())
    {
        out.push((libc::RLIMIT_AS, m.value));
    }
    if let Some(f) = &policy.limits.file_size {
        out.push((libc::RLIMIT_FSIZE, f.value));
    }
    out
}

/// How well Landlock at `abi` enforces the filesystem policy: ABI 6
/// brings the signal and abstract-socket scopes.
pub(crate) fn landlock_state(abi: i32) -> LayerState {
    if abi >= 6 {
        LayerState::Full
    } else if abi > 0 {
        LayerState::Partial
    } else {
        LayerState::Off
    }
}

/// The resources layer's line; `account` names whose processes the
/// process limit counts (the elevated tier's sandbox account) when no
/// cgroup holds it, `placed` which limits the run's cgroups hold.
pub(crate) fn resources_layer(
    policy: &Policy,
    account: Option<&str>,
    placed: Placed,
) -> (&'static str, LayerState, String) {
    let mut parts = Vec::new();
    if let Some(t) = &policy.limits.timeout {
        parts.push(format!("timeout {}s", t.value.as_secs()));
    }
    if let Some(p) = &policy.limits.processes {
        match (placed.processes, account) {
            (Some(v), _) => parts.push(format!("{} processes (cgroup v{v})", p.value)),
            (None, Some(a)) => parts.push(format!("{} processes for {}", p.value, a)),
            (None, None) => parts.push(format!("{} processes", p.value)),
        }
    }
    if let Some(m) = &policy.limits.memory {
        parts.push(match placed.memory {
            Some(v) => format!(
                "{} bytes of memory for the whole run (cgroup v{v})",
                m.value
            ),
            None => format!("{} bytes of memory per process (no cgroup)", m.value),
        });
    }
    if let Some(f) = &policy.limits.file_size {
        parts.push(format!("files up to {} bytes", f.value));
    }
    if let Some(c) = &policy.limits.cpu {
        let cpus = moat_policy::units::format_cpus(c.value);
        parts.push(match placed.cpu {
            Some(v) => format!("{cpus} CPUs (cgroup v{v})"),
            None => format!("{cpus} CPUs: not enforced (no cgroup)"),
        });
    }
    let cpu_lost = policy.limits.cpu.is_some() && placed.cpu.is_none();
    let state = if cpu_lost || (policy.limits.memory.is_some() && placed.memory.is_none()) {
        LayerState::Partial
    } else {
        LayerState::Full
    };
    let detail = if parts.is_empty() {
        "no limits set; the whole tree is killed when the run ends".to_string()
    } else {
        parts.join(", ")
    };
    ("resources", state, detail)
}

fn removed(list: &[(String, Removal)]) -> Vec<(String, &'static str)> {
    list.iter().map(|(n, r)| (n.clone(), r.as_str())).collect()
}

/// A private temporary directory for a landlock-only run.
fn make_temp_dir() -> Result<PathBuf, Error> {
    let base = std::env::temp_dir();
    for attempt in 0..16u32 {
        let nanos =
            Instant::now().elapsed().as_nanos() as u32 ^ std::process::id().rotate_left(attempt);
        let dir = base.join(format!(
            "moat-{}-{:08x}",
            std::process::id(),
            nanos.wrapping_add(attempt)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Sys {
                    what: "creating the run's temporary directory",
                    errno: Errno(e.raw_os_error().unwrap_or(libc::EIO)),
                })
            }
        }
    }
    Err(Error::Sys {
        what: "creating the run's temporary directory",
        errno: Errno(libc::EEXIST),
    })
}

use std::os::unix::fs::DirBuilderExt;

fn prepare(req: &SpawnRequest<'_>) -> Result<Prepared, Error> {
    let policy = req.policy;
    let full = req.isolation == Isolation::Full;
    // Fail closed: only a network namespace of its own keeps a command
    // from going around the allowlist's proxy.
    let allow = policy.network.value == NetworkMode::Allow;
    if allow && !full {
        return Err(Error::NoProxy);
    }
    let abi = sys::landlock::abi_version();
    let network_off = policy.network.value == NetworkMode::Off;
    // A network namespace with loopback only: off, or allow (the proxy's
    // listeners are its only way out).
    let own_network = policy.network.value != NetworkMode::On;

    let mut lost = Vec::new();
    if !full {
        lost = landlock_only_losses(policy, req.view, abi);
        if !req.allow_degraded {
            return Err(Error::Degraded {
                losses: bullet(&lost),
            });
        }
    }
    // The kernel never applies RLIMIT_NPROC to the global root user, user
    // namespace or not; only a cgroup's pids controller could.
    let elevated = req.elevation.as_ref();
    if policy.limits.processes.is_some() && sys::process::ids().0 == 0 && elevated.is_none() {
        let loss = "the process limit is not enforced: the kernel exempts root from RLIMIT_NPROC \
                    and no cgroup pids controller is used in this tier"
            .to_string();
        if !req.allow_degraded {
            return Err(Error::Degraded {
                losses: bullet(&[loss]),
            });
        }
        lost.push(loss);
    }
    if abi == 0 {
        if !req.allow_degraded || !full {
            return Err(Error::NoLandlock(
                "boot with `lsm=...,landlock` (most distribution kernels build it in), or pass \
                 --allow-degraded to run with namespaces and seccomp only",
            ));
        }
        lost.push("Landlock is unavailable: only mounts enforce the filesystem policy".into());
    }

    // Landlock-only runs get a per-run directory as their temp dir.
    let temp_dir = if full { None } else { Some(make_temp_dir()?) };
    let tmp_value: OsString = match &temp_dir {
        Some(d) => d.clone().into_os_string(),
        None => OsString::from("/tmp"),
    };
    let mut forced: Vec<(&str, &OsStr)> = vec![
        ("MOAT_SANDBOX", OsStr::new("1")),
        ("TMPDIR", tmp_value.as_os_str()),
    ];
    let http_proxy;
    let socks_proxy;
    if allow {
        http_proxy = OsString::from(format!("http://127.0.0.1:{}", crate::PROXY_PORTS[0]));
        socks_proxy = OsString::from(format!("socks5h://127.0.0.1:{}", crate::PROXY_PORTS[1]));
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
            "CARGO_HTTP_PROXY",
            "npm_config_proxy",
            "npm_config_https_proxy",
            "PIP_PROXY",
        ] {
            forced.push((name, http_proxy.as_os_str()));
        }
        forced.push(("ALL_PROXY", socks_proxy.as_os_str()));
        forced.push(("all_proxy", socks_proxy.as_os_str()));
        forced.push(("NO_PROXY", OsStr::new("localhost,127.0.0.1,::1")));
        forced.push(("no_proxy", OsStr::new("localhost,127.0.0.1,::1")));
    }
    for name in ["TMP", "TEMP", "TEMPDIR"] {
        if req.host_env.iter().any(|(n, _)| n == name) {
            forced.push((name, tmp_value.as_os_str()));
        }
    }
    let env_plan = env::build(req.host_env, &policy.env, &forced);

    let mut view = req.view.clone();
    if let Some(d) = &temp_dir {
        view.writable.push(moat_policy::view::Writable {
            path: d.clone(),
            source: moat_policy::Source::Default,
        });
    }
    let mut mplan = if full {
        Some(plan::build(&view, &plan_input(req, own_network)))
    } else {
        None
    };
    let mut landlock_detail = String::from("unavailable");
    let mut ruleset_fd = None;
    let mut inner = Vec::new();
    if abi > 0 {
        let net = if !full && network_off {
            NetRules::DenyTcp
        } else {
            NetRules::Unhandled
        };
        if !full {
            // Without a private /dev the host's terminals and null device
            // need explicit rights.
            for dev in [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/tty",
                "/dev/pts",
                "/dev/ptmx",
            ] {
                if Path::new(dev).exists() {
                    view.writable.push(moat_policy::view::Writable {
                        path: PathBuf::from(dev),
                        source: moat_policy::Source::Default,
                    });
                }
            }
        }
        let prepared = rules::build(&view, &moat_policy::host::StdFs, abi, net)?;
        if let Some(p) = &mplan {
            for r in &p.inner_rules {
                inner.push((r.path.clone(), prepared.bits(r.access)));
            }
        }
        landlock_detail = format!(
            "ABI {}, {} rules{}",
            abi,
            prepared.rules + inner.len(),
            if prepared.tcp_denied {
                ", TCP denied"
            } else {
                ""
            }
        );
        ruleset_fd = Some(prepared.fd);
    }
    let sockets = if !full && network_off {
        SocketPolicy::UnixOnly
    } else {
        SocketPolicy::UnixAndIp
    };
    let filters = seccomp::build(sockets)?;

    let (report_read, report_write) = sys::fd::pipe().map_err(sys_err("creating a pipe"))?;
    let (lifeline_read, lifeline_write) = sys::fd::pipe().map_err(sys_err("creating a pipe"))?;
    let mut child_fds = vec![report_write, lifeline_read];
    let mut proxy_parent = None;
    let mut proxy = None;
    let mut dns = Vec::new();
    if allow {
        dns = crate::stub_dns_addresses(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        );
        let (parent, childs) = sys::fd::socketpair().map_err(sys_err("creating a socket pair"))?;
        proxy = Some(childs.as_raw_fd());
        child_fds.push(childs);
        proxy_parent = Some(parent);
    }
    let mut pty_parent = None;
    let mut pty = None;
    if req.pty {
        let (parent, childs) = sys::fd::socketpair().map_err(sys_err("creating a socket pair"))?;
        let winsize = sys::pty::get_winsize(0)
            .or_else(|_| sys::pty::get_winsize(1))
            .ok();
        pty = Some((childs.as_raw_fd(), winsize));
        child_fds.push(childs);
        pty_parent = Some(parent);
    }
    let argv = CVec::new(std::iter::once(req.program.clone()).chain(req.args.iter().cloned()))
        .map_err(|_| Error::Nul {
            what: "an argument",
        })?;
    let envp = CVec::new(spec::env_strings(&env_plan.vars)).map_err(|_| Error::Nul {
        what: "an environment variable",
    })?;
    let path_var = env_plan
        .vars
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| v.as_os_str());
    let exec_paths = spec::exec_candidates(&req.program, path_var);
    let cwd = spec::cpath(&req.cwd).ok_or(Error::Nul {
        what: "the working directory",
    })?;
    let (uid, gid) = sys::process::ids();
    let mut idmap = -1;
    if let Some(e) = elevated {
        let (uid_map, gid_map) = crate::idmap::maps(e.caller, (e.account.1, e.account.2));
        let ns = crate::idmap::namespace(e.pins.as_deref(), &uid_map, &gid_map)
            .map_err(sys_err("creating the id mapping of the writable roots"))?;
        idmap = ns.as_raw_fd();
        child_fds.push(ns);
    }
    let id_maps = if full && elevated.is_none() {
        let line = |id: u32| format!("{} {} 1\n", id, id).into_bytes();
        Some((line(uid), line(gid)))
    } else {
        None
    };
    let stdio = req.stdio.map(|s| match s {
        StdioSpec::Inherit => Stdio::Inherit,
        StdioSpec::Fd(fd) => Stdio::Fd(fd),
    });
    let ops_plan = mplan.take().unwrap_or_default();
    let ops_desc = ops_plan.ops.iter().map(|o| o.describe()).collect();
    let slots = vec![-1; ops_plan.slots];

    let mut flags = libc::CLONE_PIDFD as libc::c_ulong;
    let mut namespaces = Vec::new();
    if full {
        if elevated.is_none() {
            flags |= libc::CLONE_NEWUSER as libc::c_ulong;
            namespaces.push("user");
        }
        for (flag, name) in [
            (libc::CLONE_NEWNS, "mount"),
            (libc::CLONE_NEWPID, "pid"),
            (libc::CLONE_NEWIPC, "ipc"),
            (libc::CLONE_NEWUTS, "uts"),
            (libc::CLONE_NEWCGROUP, "cgroup"),
        ] {
            flags |= flag as libc::c_ulong;
            namespaces.push(name);
        }
        if own_network {
            flags |= libc::CLONE_NEWNET as libc::c_ulong;
            namespaces.push("net");
        }
    }

    let mut layers = Vec::new();
    layers.push((
        "process",
        LayerState::Full,
        if full {
            "new session, pid namespace with init, dies with moat, only stdio inherited".to_string()
        } else {
            "new session, dies with moat, only stdio inherited, descendants reaped".to_string()
        },
    ));
    layers.push((
        "privilege",
        LayerState::Full,
        match elevated {
            Some(e) => format!(
                "runs as {} (uid {}), no capabilities, no_new_privs",
                e.account.0, e.account.1
            ),
            None => "no capabilities, no_new_privs".to_string(),
        },
    ));
    layers.push(if full {
        ("namespaces", LayerState::Full, namespaces.join(", "))
    } else {
        (
            "namespaces",
            LayerState::Off,
            "user namespaces unavailable or not chosen".to_string(),
        )
    });
    layers.push(if full {
        (
            "mounts",
            LayerState::Full,
            format!(
                "{} writable roots, {} protected paths, {} masked paths",
                view.writable.len(),
                view.protected.len(),
                view.denied.len()
            ),
        )
    } else {
        ("mounts", LayerState::Off, "no mount namespace".to_string())
    });
    layers.push(("landlock", landlock_state(abi), landlock_detail));
    layers.push((
        "seccomp",
        LayerState::Full,
        format!(
            "{} instructions, sockets: {}",
            filters.program.len(),
            match sockets {
                SocketPolicy::UnixAndIp => "unix, inet, inet6",
                SocketPolicy::UnixOnly => "unix",
            }
        ),
    ));
    layers.push((
        "network",
        if network_off && !full && abi < 4 {
            LayerState::Partial
        } else {
            LayerState::Full
        },
        match (policy.network.value, full) {
            (NetworkMode::Off, true) => "off: empty network namespace, loopback only".to_string(),
            (NetworkMode::Off, false) => {
                "off: TCP denied by Landlock, other sockets by seccomp".to_string()
            }
            (NetworkMode::Allow, _) => format!(
                "allow: empty network namespace; moat's proxy on 127.0.0.1:{} (HTTP) and :{} \
                 (SOCKS5), ports 80 and 443 of every address captured for it, a DNS stub; other \
                 ports and UDP closed",
                crate::PROXY_PORTS[0],
                crate::PROXY_PORTS[1]
            ),
            _ => "on: the host's network".to_string(),
        },
    ));
    // The elevated tier's launcher gives each run its cgroups.
    let cgroup = match elevated {
        Some(_) => Some(
            crate::cgroup::RunCgroup::create(crate::cgroup::Limits {
                memory: policy.limits.memory.as_ref().map(|m| m.value),
                processes: policy.limits.processes.as_ref().map(|p| p.value),
                cpu: policy.limits.cpu.as_ref().map(|c| c.value),
            })
            .map_err(Error::Cgroup)?,
        ),
        None => None,
    };
    let placed = cgroup.as_ref().map(|c| c.placed).unwrap_or_default();
    // Fail closed: nothing but a cgroup's cpu controller holds a CPU share.
    if policy.limits.cpu.is_some() && placed.cpu.is_none() {
        let loss = if elevated.is_some() {
            "the CPU limit is not enforced: no cgroup hierarchy here has the cpu controller \
             (cgroup v2 needs it in the subtree moat's setup prepares: sudo moat setup)"
        } else {
            "the CPU limit is not enforced: only the elevated tier's cgroups hold it \
             (sudo moat setup --user NAME, then --tier elevated)"
        };
        if !req.allow_degraded {
            return Err(Error::Degraded {
                losses: bullet(&[loss.to_string()]),
            });
        }
        lost.push(loss.to_string());
    }
    let limits = rlimits(policy, placed);
    layers.push(resources_layer(
        policy,
        elevated.map(|e| e.account.0.as_str()),
        placed,
    ));

    let proxy_sockets = if allow {
        crate::PROXY_PORTS.len() + crate::TRANSPARENT_PORTS.len() + dns.len()
    } else {
        0
    };
    let spec = ChildSpec {
        report: child_fds[0].as_raw_fd(),
        lifeline: child_fds[1].as_raw_fd(),
        lifeline_parent: lifeline_write.as_raw_fd(),
        id_maps,
        ops: ops_plan.ops,
        slots,
        ruleset: ruleset_fd.as_ref().map(|f| f.as_raw_fd()),
        inner_rules: inner,
        filters: vec![filters.program],
        rlimits: limits,
        cwd,
        exec_paths,
        argv,
        envp,
        stdio,
        proxy,
        dns,
        pty,
        init: full,
        idmap,
        account: elevated.map(|e| (e.account.1, e.account.2)),
    };
    if let Some(fd) = ruleset_fd {
        child_fds.push(fd);
    }
    Ok(Prepared {
        spec,
        flags,
        report_read,
        lifeline_write,
        pty_parent,
        proxy_parent,
        proxy_sockets,
        child_fds,
        ops: ops_desc,
        cgroup,
        enforcement: Enforcement {
            isolation: req.isolation,
            landlock_abi: abi,
            layers,
            lost,
            env_removed: removed(&env_plan.removed),
        },
        temp_dir,
    })
}

fn is_userns_errno(e: Errno) -> bool {
    matches!(
        e.0,
        libc::EPERM | libc::ENOSPC | libc::EINVAL | libc::EUSERS | libc::EACCES
    )
}

/// Starts the command in a sandbox. With `allow_degraded`, a machine
/// without usable user namespaces falls back to landlock-only, and the
/// enforcement report says so.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Child, Error> {
    if req.isolation == Isolation::Elevated && req.elevation.is_none() {
        return crate::launch::spawn(req);
    }
    match spawn_once(req, req.isolation) {
        Err(Error::NoUserNamespaces { reason, .. })
            if req.allow_degraded && req.isolation == Isolation::Full =>
        {
            let mut child = spawn_once(req, Isolation::LandlockOnly)?;
            child.enforcement.lost.insert(
                0,
                format!(
                    "user namespaces are unavailable ({}), so this run is landlock-only",
                    reason
                ),
            );
            Ok(child)
        }
        other => other,
    }
}

fn spawn_once(req: &SpawnRequest<'_>, isolation: Isolation) -> Result<Child, Error> {
    let req = &SpawnRequest {
        isolation,
        ..req.clone()
    };
    let mut p = prepare(req)?;
    if isolation == Isolation::LandlockOnly {
        sys::process::set_child_subreaper().map_err(sys_err("becoming a subreaper"))?;
    }
    // The run's processes are born in its cgroups: init is forked into
    // the v2 one; for v1 ones the launcher joins them around the fork.
    let forked = match &p.cgroup {
        None => sys::clone::fork_with(p.flags),
        Some(cg) => {
            cg.enter(false).map_err(Error::Cgroup)?;
            let mut forked = match cg.v2_fd() {
                Some(fd) => sys::clone::fork_into_cgroup(p.flags, fd),
                None => sys::clone::fork_with(p.flags),
            };
            let mut joined_v2 = false;
            if cg.v2_fd().is_some() && matches!(forked, Err(Errno(libc::ENOSYS))) {
                cg.enter(true).map_err(Error::Cgroup)?;
                joined_v2 = true;
                forked = sys::clone::fork_with(p.flags);
            }
            if !matches!(forked, Ok(sys::clone::Forked::Child)) {
                cg.leave(joined_v2);
            }
            forked
        }
    };
    let forked = match forked {
        Ok(f) => f,
        Err(e) if isolation == Isolation::Full && is_userns_errno(e) => {
            return Err(no_user_namespaces(req, format!("clone: {}", e)));
        }
        Err(e) => {
            return Err(Error::Sys {
                what: "starting the sandbox",
                errno: e,
            })
        }
    };
    let (pid, pidfd) = match forked {
        sys::clone::Forked::Child => child::init_main(&mut p.spec),
        sys::clone::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    // The child has its copies now.
    drop(std::mem::take(&mut p.child_fds));
    let pidfd = pidfd.ok_or(Error::Sys {
        what: "starting the sandbox",
        errno: Errno(libc::ENOSYS),
    })?;
    let mut child = Child {
        pid,
        pidfd,
        report: p.report_read,
        _lifeline: Some(p.lifeline_write),
        pty_master: None,
        proxy_listeners: Vec::new(),
        isolation,
        timeout: req.policy.limits.timeout.as_ref().map(|t| t.value),
        started: Instant::now(),
        ops: p.ops,
        enforcement: p.enforcement,
        temp_dir: p.temp_dir,
        pending: Vec::new(),
        reaped: false,
        reader: Reader::new(),
        launch_channel: None,
        cgroup: p.cgroup.take(),
    };
    if let Some(sock) = p.proxy_parent {
        // Fails only if setup failed before the listeners were made; the
        // report says why.
        for _ in 0..p.proxy_sockets {
            match sys::fd::recv_fd(sock.as_raw_fd()) {
                Ok(l) => child.proxy_listeners.push(l),
                Err(_) => break,
            }
        }
    }
    if let Some(sock) = p.pty_parent {
        // Fails only if setup failed before the terminal was made; the
        // report says why.
        if let Ok(master) = sys::fd::recv_fd(sock.as_raw_fd()) {
            child.pty_master = Some(master);
        }
    }
    if isolation == Isolation::Full {
        // Setup errors are the spawn's errors: wait for init to say the
        // command started, or why it could not.
        child.await_start(req)?;
    }
    Ok(child)
}

fn no_user_namespaces(req: &SpawnRequest<'_>, reason: String) -> Error {
    let losses = bullet(&landlock_only_losses(
        req.policy,
        req.view,
        sys::landlock::abi_version(),
    ));
    Error::NoUserNamespaces {
        reason,
        losses: format!("a landlock-only run would lose:\n{}", losses),
    }
}

/// Kills every process left that was reparented to us (landlock-only runs
/// have no pid namespace to end them).
fn kill_orphans() {
    let me = std::process::id().to_string();
    for _round in 0..16 {
        let mut found = false;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let pid: libc::pid_t = match name.to_str().and_then(|n| n.parse().ok()) {
                    Some(p) => p,
                    None => continue,
                };
                let stat = match std::fs::read_to_string(entry.path().join("stat")) {
                    Ok(s) => s,
                    Err(_) => continue,
                };
                // The parent pid is the second field after the command name,
                // which is in parentheses and may contain spaces.
                let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
                let ppid = after.split_whitespace().nth(1);
                if ppid == Some(me.as_str()) {
                    found = true;
                    let _ = sys::process::kill(pid, libc::SIGKILL);
                    let _ = sys::process::wait(pid);
                }
            }
        }
        if !found {
            break;
        }
    }
}

impl Child {
    /// A run the launcher builds: `pid` is the launcher, `control` the
    /// socket it reports on.
    pub(crate) fn launched(
        pid: libc::pid_t,
        pidfd: OwnedFd,
        control: OwnedFd,
        timeout: Option<Duration>,
        enforcement: Enforcement,
    ) -> Child {
        Child {
            pid,
            pidfd,
            report: control,
            _lifeline: None,
            pty_master: None,
            proxy_listeners: Vec::new(),
            isolation: Isolation::Elevated,
            timeout,
            started: Instant::now(),
            ops: Vec::new(),
            enforcement,
            temp_dir: None,
            pending: Vec::new(),
            reaped: false,
            reader: Reader::new(),
            launch_channel: None,
            cgroup: None,
        }
    }

    /// Waits for the launcher to start the command, then takes the
    /// descriptors it passes.
    pub(crate) fn await_launch(
        &mut self,
        channel: OwnedFd,
        req: &SpawnRequest<'_>,
    ) -> Result<(), Error> {
        let mut started = false;
        let mut listeners = 0;
        while !started {
            let batch = match self.reader.read(self.report.as_raw_fd()) {
                Ok(Some(batch)) => batch,
                Ok(None) | Err(_) => {
                    self.reap();
                    return Err(Error::Launcher(crate::launch::reason(&channel)));
                }
            };
            for m in batch {
                match m {
                    Message::Started {
                        listeners: n,
                        cgroup,
                        ..
                    } => {
                        started = true;
                        listeners = n.min(16);
                        let account = crate::launch::account_for(req.policy);
                        let layer =
                            resources_layer(req.policy, Some(account), Placed::from_bits(cgroup));
                        for l in self.enforcement.layers.iter_mut() {
                            if l.0 == layer.0 {
                                *l = layer.clone();
                            }
                        }
                    }
                    Message::Failed {
                        step: Step::Launcher,
                        ..
                    } => {
                        let text = crate::launch::reason(&channel);
                        self.reap();
                        return Err(Error::Launcher(text));
                    }
                    Message::Failed { step, index, errno } if step != Step::Exec => {
                        self.reap();
                        return Err(self.setup_error(step, index, Errno(errno)));
                    }
                    other => self.pending.push(other),
                }
            }
        }
        if req.policy.network.value == NetworkMode::Allow {
            for _ in 0..listeners {
                match sys::fd::recv_fd(channel.as_raw_fd()) {
                    Ok(l) => self.proxy_listeners.push(l),
                    Err(e) => return Err(sys_err("receiving the proxy's listeners")(e)),
                }
            }
        }
        if req.pty {
            let master =
                sys::fd::recv_fd(channel.as_raw_fd()).map_err(sys_err("receiving the terminal"))?;
            self.pty_master = Some(master);
        }
        self.launch_channel = Some(channel);
        Ok(())
    }

    fn await_start(&mut self, req: &SpawnRequest<'_>) -> Result<(), Error> {
        let mut started = false;
        while !started {
            let batch = match self.reader.read(self.report.as_raw_fd()) {
                Ok(Some(batch)) => batch,
                // init is gone without a word; wait() will say how.
                Ok(None) | Err(_) => return Ok(()),
            };
            // A quick command's end can come in the same read as its start;
            // keep everything after it for wait().
            for m in batch {
                match m {
                    Message::Started { .. } => started = true,
                    Message::Failed { step, index, errno } if step != Step::Exec => {
                        self.reap();
                        if self.is_userns_failure(step, index, Errno(errno)) {
                            return Err(no_user_namespaces(
                                req,
                                format!("{}: {}", step.describe(), Errno(errno)),
                            ));
                        }
                        return Err(self.setup_error(step, index, Errno(errno)));
                    }
                    other => self.pending.push(other),
                }
            }
        }
        Ok(())
    }

    /// Failures that mean the user namespace exists but grants nothing, as
    /// under AppArmor's restriction of unprivileged user namespaces.
    fn is_userns_failure(&self, step: Step, index: u32, errno: Errno) -> bool {
        match step {
            Step::UidMap | Step::SetGroups | Step::GidMap => true,
            Step::Mount => index == 0 && matches!(errno.0, libc::EPERM | libc::EACCES),
            _ => false,
        }
    }

    /// The host pid of the sandbox's first process.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    pub fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    /// The proxy's listening sockets (HTTP, then SOCKS5), opened inside the
    /// sandbox's network namespace, for the caller to serve: with
    /// `network = allow` they are the sandbox's only way out.
    pub fn take_proxy_listeners(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.proxy_listeners)
    }

    /// The terminal's master side, with `pty` (for callers relaying it
    /// themselves).
    pub fn pty_master(&self) -> Option<RawFd> {
        self.pty_master.as_ref().map(|f| f.as_raw_fd())
    }

    /// Waits for the sandbox's first process to be gone (after [`wait`]
    /// returned, only the kernel's teardown of the namespaces is left).
    ///
    /// [`wait`]: Child::wait
    pub fn reap(&mut self) {
        if !self.reaped {
            let _ = sys::process::wait(self.pid);
            self.reaped = true;
        }
        if let Some(mut cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
    }

    /// Which limits the run's cgroups hold (the elevated tier's launcher).
    pub fn cgroup_placed(&self) -> Placed {
        self.cgroup.as_ref().map(|c| c.placed).unwrap_or_default()
    }

    /// Kills the whole sandbox.
    pub fn kill(&mut self) {
        let _ = sys::process::pidfd_kill(self.pidfd.as_fd(), libc::SIGKILL);
    }

    /// Waits for the command to end, enforcing the timeout.
    pub fn wait(&mut self, opts: WaitOptions) -> Result<(Exit, Duration), Error> {
        let forwarded = [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGWINCH,
        ];
        let mut old_mask = None;
        let sigfd = if opts.forward_signals {
            let set = sys::signal::SigSet::of(&forwarded);
            old_mask = Some(
                sys::signal::mask(libc::SIG_BLOCK, &set).map_err(sys_err("blocking signals"))?,
            );
            Some(sys::signal::signalfd(&set).map_err(sys_err("creating a signalfd"))?)
        } else {
            None
        };
        let relay = if opts.relay_pty {
            self.pty_master.as_ref().map(|m| m.as_raw_fd())
        } else {
            None
        };
        let mut raw_guard = None;
        if relay.is_some() && sys::pty::is_tty(0) {
            if let Ok(saved) = sys::pty::get_termios(0) {
                let _ = sys::pty::set_termios(0, &sys::pty::raw(&saved));
                raw_guard = Some(saved);
            }
        }
        let result = self.wait_loop(sigfd.as_ref().map(|f| f.as_raw_fd()), relay, opts.hangup);
        if let Some(saved) = raw_guard {
            let _ = sys::pty::set_termios(0, &saved);
        }
        if let Some(mask) = old_mask {
            let _ = sys::signal::mask(libc::SIG_SETMASK, &mask);
        }
        if self.isolation == Isolation::LandlockOnly {
            kill_orphans();
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }

    fn wait_loop(
        &mut self,
        sigfd: Option<RawFd>,
        relay: Option<RawFd>,
        mut hangup: Option<RawFd>,
    ) -> Result<(Exit, Duration), Error> {
        let deadline = self.timeout.map(|t| self.started + t);
        let mut report_open = true;
        let mut init_exit: Option<sys::process::Exit> = None;
        let mut messages = std::mem::take(&mut self.pending);
        let mut timed_out = false;
        let mut stdin_open = relay.is_some();
        if let Some(m) = relay {
            let _ = sys::fd::set_nonblocking(m, true);
        }
        // A namespace run is over when init reports how the command ended:
        // by then init has killed and reaped everything else, and only its
        // own exit (the kernel tearing down the namespaces) is left, which
        // `reap` waits for later, while moat does its own finishing work.
        let reported = |m: &[Message]| {
            m.iter().any(|m| {
                matches!(
                    m,
                    Message::Exited { .. } | Message::Signaled { .. } | Message::Failed { .. }
                )
            })
        };
        while (init_exit.is_none() || report_open)
            && !(self.isolation != Isolation::LandlockOnly && reported(&messages))
        {
            let mut fds = vec![
                libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if report_open {
                        self.report.as_raw_fd()
                    } else {
                        -1
                    },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sigfd.unwrap_or(-1),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: relay.unwrap_or(-1),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if stdin_open { 0 } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: hangup.unwrap_or(-1),
                    events: 0,
                    revents: 0,
                },
            ];
            let timeout_ms = match (deadline, init_exit) {
                (_, Some(_)) => 1000,
                (Some(d), None) if !timed_out => {
                    let left = d.saturating_duration_since(Instant::now());
                    left.as_millis().min(i32::MAX as u128) as i32
                }
                _ => -1,
            };
            match sys::fd::poll(&mut fds, timeout_ms) {
                Ok(_) => {}
                Err(Errno(libc::EINTR)) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        what: "waiting for the sandbox",
                        errno: e,
                    })
                }
            }
            if let Some(d) = deadline {
                if init_exit.is_none() && !timed_out && Instant::now() >= d {
                    timed_out = true;
                    self.kill();
                }
            }
            if fds[5].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                hangup = None;
                self.kill();
            }
            if fds[2].revents & libc::POLLIN != 0 {
                if let Some(fd) = sigfd {
                    while let Ok(Some(sig)) = sys::signal::read_signalfd(fd) {
                        self.forward(sig, relay);
                    }
                }
            }
            if let Some(master) = relay {
                if fds[3].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
                    copy_available(master, 1);
                }
                if fds[4].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
                    let mut buf = [0u8; 4096];
                    match sys::fd::read(0, &mut buf) {
                        Ok(0) | Err(_) => {
                            stdin_open = false;
                            // Tell the command its input ended.
                            let eof = sys::pty::get_termios(master)
                                .map(|t| sys::pty::eof_char(&t))
                                .unwrap_or(4);
                            let _ = sys::fd::write_all(master, &[eof]);
                        }
                        Ok(n) => {
                            let _ = sys::fd::write_all(master, &buf[..n]);
                        }
                    }
                }
            }
            if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                match self.reader.read(self.report.as_raw_fd()) {
                    Ok(Some(batch)) => messages.extend(batch),
                    Ok(None) | Err(_) => report_open = false,
                }
            }
            if init_exit.is_none() && fds[0].revents & libc::POLLIN != 0 {
                init_exit =
                    Some(sys::process::wait(self.pid).map_err(sys_err("reaping the sandbox"))?);
                self.reaped = true;
                if self.isolation == Isolation::LandlockOnly {
                    // Without a pid namespace the command's own descendants
                    // may hold the report pipe open.
                    kill_orphans();
                }
            } else if init_exit.is_some() && fds[1].revents == 0 {
                // Everything the sandbox had is gone; nothing more will come.
                report_open = false;
            }
        }
        if let Some(master) = relay {
            copy_available(master, 1);
        }
        let elapsed = self.started.elapsed();
        if timed_out {
            return Ok((Exit::TimedOut, elapsed));
        }
        let mut exit = None;
        for m in &messages {
            match *m {
                Message::Failed {
                    step: Step::Exec,
                    errno,
                    ..
                } => {
                    return Ok((Exit::NotStarted { errno }, elapsed));
                }
                Message::Failed {
                    step: Step::Launcher,
                    ..
                } => {
                    let reason = match &self.launch_channel {
                        Some(c) => crate::launch::reason(c),
                        None => "the launcher gave up".to_string(),
                    };
                    return Err(Error::Launcher(reason));
                }
                Message::Failed { step, index, errno } => {
                    return Err(self.setup_error(step, index, Errno(errno)));
                }
                Message::Exited { code } => exit = Some(Exit::Code(code)),
                Message::Signaled { signal } => exit = Some(Exit::Signal(signal)),
                Message::Started { .. } => {}
            }
        }
        match (exit, init_exit) {
            (Some(e), _) => Ok((e, elapsed)),
            // Without init, the child is the command.
            (None, Some(sys::process::Exit::Code(c)))
                if self.isolation == Isolation::LandlockOnly =>
            {
                Ok((Exit::Code(c), elapsed))
            }
            (None, Some(sys::process::Exit::Signal(s)))
                if self.isolation == Isolation::LandlockOnly =>
            {
                Ok((Exit::Signal(s), elapsed))
            }
            // init was killed from outside (moat's own kill, OOM killer).
            (None, Some(sys::process::Exit::Signal(s))) => Ok((Exit::Signal(s), elapsed)),
            _ => Err(Error::Lost),
        }
    }

    fn forward(&self, sig: libc::c_int, relay: Option<RawFd>) {
        if sig == libc::SIGWINCH {
            if let (Some(master), Ok(ws)) = (relay, sys::pty::get_winsize(0)) {
                let _ = sys::pty::set_winsize(master, &ws);
            }
            return;
        }
        match self.isolation {
            Isolation::Full | Isolation::Elevated => {
                let _ = sys::process::pidfd_kill(self.pidfd.as_fd(), sig);
            }
            Isolation::LandlockOnly => {
                // The command leads its own process group.
                if sys::process::kill(-self.pid, sig).is_err() {
                    let _ = sys::process::pidfd_kill(self.pidfd.as_fd(), sig);
                }
            }
        }
    }

    fn setup_error(&self, step: Step, index: u32, errno: Errno) -> Error {
        let at = match step {
            Step::Mount => self
                .ops
                .get(index as usize)
                .map(|d| format!(" ({})", d))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let hint = match (step, errno.0) {
            (Step::UidMap | Step::GidMap | Step::SetGroups, _) => {
                "\nhint: user namespaces are restricted here (AppArmor's \
                 apparmor_restrict_unprivileged_userns?); see `moat doctor`, or pass --allow-degraded"
            }
            (Step::Mount, libc::EPERM) => {
                "\nhint: mounting inside a user namespace was refused; an LSM may be restricting \
                 user namespaces (see `moat doctor`), or pass --allow-degraded"
            }
            (Step::Chdir, _) => "\nhint: the working directory must lie inside what the sandbox can see",
            _ => "",
        };
        Error::Setup {
            step: step.describe(),
            at,
            errno,
            hint,
        }
    }
}

impl Drop for Child {
    /// A sandbox dropped unwaited is killed, with everything in it: nothing
    /// it started may outlive the handle.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
        }
        self.reap();
    }
}

/// Copies what can be read from `from` to `to` without blocking on `from`.
fn copy_available(from: RawFd, to: RawFd) {
    let mut buf = [0u8; 16384];
    loop {
        match sys::fd::read(from, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if sys::fd::write_all(to, &buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
