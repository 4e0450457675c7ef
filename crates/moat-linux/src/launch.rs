//! moat's side of the elevated tier: starting the setuid launcher with the
//! run's spec as its request, and what it reports back.
//!
//! The launcher gets the command's standard streams as its own, the
//! control socket as descriptor 3 and the descriptor channel as 4. On 3 it
//! reads the request (until end-of-file) and writes the sandbox's
//! `Message`s; on 4 it passes the proxy's listeners and the terminal, or,
//! when it refuses, its reason as text (followed on 3 by
//! `Failed { step: Launcher }`).

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use moat_spec::install::{LAUNCHER, USERS_GROUP};
use moat_spec::RunSpec;

use crate::report::{Enforcement, Facts};
use crate::run::{Error, Launch, StdioSpec};
use crate::spec::{self, CVec};
use crate::supervise::Child;
use crate::sys::{self, Errno};

/// Where setup installs the launcher.
pub fn launcher_path() -> PathBuf {
    PathBuf::from(LAUNCHER)
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

fn sys_err(what: &'static str) -> impl Fn(Errno) -> Error {
    move |errno| Error::Sys { what, errno }
}

/// Starts `spec` through the launcher.
pub fn spawn(spec: &RunSpec, launch: &Launch) -> Result<Child, Error> {
    let launcher = launcher_path();
    if !launcher.exists() {
        return Err(Error::Launcher(format!(
            "{} is not installed\nhint: run `sudo moat setup` once (or use --tier unelevated)",
            launcher.display()
        )));
    }
    if !usable() {
        return Err(Error::Launcher(format!(
            "you may not run {}: only members of the group {USERS_GROUP} may (`sudo moat setup \
             --user NAME` adds one; membership takes effect at the next login)",
            launcher.display(),
        )));
    }
    spec.check().map_err(Error::Spec)?;
    let request = moat_spec::wire::encode(spec);
    let path = spec::cpath(&launcher).ok_or(Error::Nul {
        what: "the launcher's path",
    })?;
    let argv = CVec::new([OsStr::new("moat-launch")]).map_err(|_| Error::Nul { what: "argv" })?;
    let envp = CVec::new(Vec::<&OsStr>::new()).map_err(|_| Error::Nul { what: "env" })?;
    let (control, control_child) =
        sys::fd::socketpair().map_err(sys_err("creating a socket pair"))?;
    let (channel, channel_child) =
        sys::fd::socketpair().map_err(sys_err("creating a socket pair"))?;
    let stdio: Vec<i32> = launch
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
    let mut child = Child::launched(pid, pidfd, control, spec.limits.timeout, enforcement(spec));
    child.await_launch(channel, spec)?;
    Ok(child)
}

/// What the elevated run enforces, as moat reports it: the same words as
/// the launcher's own build would give, from the same spec.
fn enforcement(spec: &RunSpec) -> Enforcement {
    let abi = sys::landlock::abi_version();
    Enforcement {
        isolation: spec.isolation,
        landlock_abi: abi,
        layers: crate::report::layers(
            spec,
            &Facts {
                landlock_abi: abi,
                ..Facts::default()
            },
        ),
        lost: Vec::new(),
    }
}

/// Reads the channel to its end (the launcher closes it when it exits), at
/// most `limit` bytes.
fn read_channel(channel: &OwnedFd, limit: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    while bytes.len() < limit {
        match sys::fd::read(channel.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    bytes
}

/// Reads what the launcher's observer saw from the channel, once the run
/// has ended.
pub(crate) fn observed(channel: &OwnedFd) -> crate::observe::Observed {
    crate::observe::decode(&read_channel(channel, 1 << 20))
}

/// Reads the launcher's reason for refusing from the channel.
pub(crate) fn reason(channel: &OwnedFd) -> String {
    let text = read_channel(channel, 64 * 1024);
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

    /// How the command ended, after what the observer saw (on the
    /// channel, which moat reads once it has this).
    pub fn ended(
        control: &OwnedFd,
        channel: &OwnedFd,
        exit: Exit,
        observed: &crate::observe::Observed,
    ) {
        let _ = sys::fd::write_all(channel.as_raw_fd(), &crate::observe::encode(observed));
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
