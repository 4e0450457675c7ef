//! Starting a sandboxed command: [`spawn`] for moat (both tiers: the
//! elevated one through the launcher), [`spawn_elevated`] for the launcher
//! itself, and how a run can fail or end.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use moat_spec::{Isolation, RunSpec};

use crate::build::{self, Prepared};
use crate::roots::Elevation;
use crate::supervise::Child;
use crate::sys::{self, Errno};
use crate::wire::Reader;

/// What a standard stream of the command is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioSpec {
    Inherit,
    /// A descriptor the caller keeps open until `spawn` returns.
    Fd(RawFd),
}

/// How to start a run (what the run is, is its [`RunSpec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub stdio: [StdioSpec; 3],
    /// Accept the losses of a weaker mode instead of refusing.
    pub allow_degraded: bool,
    /// The caller waits for the command ([`Child::wait`]) as soon as the
    /// spawn returns, and waits on nothing the command does before that:
    /// its calls that the denial observer sees are then answered inside
    /// the wait, without a thread of the observer's own (which costs a
    /// few tenths of a millisecond of every run). Otherwise, the default,
    /// the observer has a thread, so that a caller can first read the
    /// command's output or write its input.
    pub waits_at_once: bool,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            stdio: [StdioSpec::Inherit; 3],
            allow_degraded: false,
            waits_at_once: false,
        }
    }
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
    Spec(moat_spec::SpecError),
    #[error("the writable root {}: {errno}{}", path.display(), if errno.0 == libc::ELOOP { " (it goes through a symlink)" } else { "" })]
    Root { path: PathBuf, errno: Errno },
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
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
    #[error("the sandbox ended without reporting how the command ended")]
    Lost,
    #[error("the run's cgroup: {0}")]
    Cgroup(String),
    #[error("the elevated tier: {0}")]
    Launcher(String),
    #[error("moat's certificate authority for the run: {0}")]
    Trust(String),
}

fn sys_err(what: &'static str) -> impl Fn(Errno) -> Error {
    move |errno| Error::Sys { what, errno }
}

fn is_userns_errno(e: Errno) -> bool {
    matches!(
        e.0,
        libc::EPERM | libc::ENOSPC | libc::EINVAL | libc::EUSERS | libc::EACCES
    )
}

/// Starts `spec`: the elevated tier through the setuid launcher, the
/// others here. With `allow_degraded`, a machine without usable user
/// namespaces falls back to landlock-only, and the enforcement report
/// says so.
pub fn spawn(spec: &RunSpec, launch: &Launch) -> Result<Child, Error> {
    if spec.isolation == Isolation::Elevated {
        return crate::launch::spawn(spec, launch);
    }
    match spawn_once(spec, launch, None) {
        Err(Error::NoUserNamespaces { reason, .. })
            if launch.allow_degraded && spec.isolation == Isolation::Namespaces =>
        {
            let weaker = RunSpec {
                isolation: Isolation::LandlockOnly,
                ..spec.clone()
            };
            let mut child = spawn_once(&weaker, launch, None)?;
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

/// Starts an elevated run as root: for the launcher, once it has checked
/// `spec` and its caller into `elevation`.
pub fn spawn_elevated(
    spec: &RunSpec,
    launch: &Launch,
    elevation: &Elevation,
) -> Result<Child, Error> {
    spawn_once(spec, launch, Some(elevation))
}

/// The run's processes are born in its cgroups: init is forked into the v2
/// one; for v1 ones the launcher joins them around the fork.
fn fork(p: &Prepared) -> Result<Result<sys::clone::Forked, Errno>, Error> {
    let Some(cg) = &p.cgroup else {
        return Ok(sys::clone::fork_with(p.flags));
    };
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
    Ok(forked)
}

fn spawn_once(
    spec: &RunSpec,
    launch: &Launch,
    elevation: Option<&Elevation>,
) -> Result<Child, Error> {
    let mut p = build::prepare(spec, launch, elevation)?;
    let isolation = spec.isolation;
    if isolation == Isolation::LandlockOnly {
        sys::process::set_child_subreaper().map_err(sys_err("becoming a subreaper"))?;
    }
    let forked = match fork(&p)? {
        Ok(f) => f,
        Err(e) if isolation == Isolation::Namespaces && is_userns_errno(e) => {
            return Err(no_user_namespaces(spec, format!("clone: {}", e)));
        }
        Err(e) => {
            return Err(Error::Sys {
                what: "starting the sandbox",
                errno: e,
            })
        }
    };
    let (pid, pidfd) = match forked {
        sys::clone::Forked::Child => crate::child::init_main(&mut p.spec),
        sys::clone::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    // The child has its copies now.
    drop(std::mem::take(&mut p.child_fds));
    let (observe_sock, observe_facts) = p.observe;
    let observer =
        crate::observe::Observer::start(observe_sock, observe_facts, launch.waits_at_once);
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
        timeout: spec.limits.timeout,
        started: Instant::now(),
        ops: p.ops,
        enforcement: p.enforcement,
        temp_dir: p.temp_dir,
        pending: Vec::new(),
        reaped: false,
        reader: Reader::new(),
        launch_channel: None,
        cgroup: p.cgroup.take(),
        observer,
        observed: None,
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
    if isolation != Isolation::LandlockOnly {
        // Setup errors are the spawn's errors: wait for init to say the
        // command started, or why it could not.
        child.await_start(spec)?;
    }
    Ok(child)
}

pub(crate) fn no_user_namespaces(spec: &RunSpec, reason: String) -> Error {
    let losses: String = crate::report::landlock_only_losses(spec, sys::landlock::abi_version())
        .iter()
        .map(|l| format!("  - {}\n", l))
        .collect();
    Error::NoUserNamespaces {
        reason,
        losses: format!("a landlock-only run would lose:\n{}", losses),
    }
}
