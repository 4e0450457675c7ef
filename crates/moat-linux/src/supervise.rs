//! Supervising a started sandbox: waiting for its start, relaying its
//! terminal and signals, enforcing the timeout, reading how it ended, and
//! making sure nothing it started outlives it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use moat_spec::{Isolation, Net, RunSpec};

use crate::cgroup::Placed;
use crate::report::Enforcement;
use crate::run::{no_user_namespaces, Error, Exit};
use crate::sys::{self, Errno};
use crate::wire::{Message, Reader, Step};

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
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: OwnedFd,
    pub(crate) report: OwnedFd,
    // Held open so the child can tell moat is alive; dropped at the end.
    // None for the elevated tier, whose launcher dies with moat on its own
    // (parent-death signal), and the sandbox with it.
    pub(crate) _lifeline: Option<OwnedFd>,
    pub(crate) pty_master: Option<OwnedFd>,
    pub(crate) proxy_listeners: Vec<OwnedFd>,
    pub(crate) isolation: Isolation,
    pub(crate) timeout: Option<Duration>,
    pub(crate) started: Instant,
    pub(crate) ops: Vec<String>,
    pub(crate) enforcement: Enforcement,
    // The per-run temporary directory of a landlock-only run.
    pub(crate) temp_dir: Option<PathBuf>,
    // Records read while waiting for the start.
    pub(crate) pending: Vec<Message>,
    // Whether the sandbox's first process has been reaped.
    pub(crate) reaped: bool,
    pub(crate) reader: Reader,
    // The elevated tier: where the launcher writes why it gave up.
    pub(crate) launch_channel: Option<OwnedFd>,
    // The elevated tier, in the launcher: the run's cgroups, removed once
    // init is reaped.
    pub(crate) cgroup: Option<crate::cgroup::RunCgroup>,
    // The denial observer (this process built the sandbox), or what the
    // launcher's observer saw (the elevated tier).
    pub(crate) observer: Option<crate::observe::Observer>,
    pub(crate) observed: Option<crate::observe::Observed>,
}

/// Kills every process left that was reparented to us (landlock-only runs
/// have no pid namespace to end them).
pub(crate) fn kill_orphans() {
    let me = std::process::id() as libc::pid_t;
    for _round in 0..16 {
        let mut found = false;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let pid: libc::pid_t = match name.to_str().and_then(|n| n.parse().ok()) {
                    Some(p) => p,
                    None => continue,
                };
                if parent_of(pid) == Some(me) {
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

/// The parent of `pid`, from /proc: the second field after the command
/// name, which is in parentheses and may hold anything.
pub(crate) fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
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
            observer: None,
            observed: None,
        }
    }

    /// Waits for the launcher to start the command, then takes the
    /// descriptors it passes.
    pub(crate) fn await_launch(&mut self, channel: OwnedFd, spec: &RunSpec) -> Result<(), Error> {
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
                        let account = spec.account().map(|a| a.name());
                        let layer =
                            crate::report::resources(spec, account, Placed::from_bits(cgroup));
                        for l in self.enforcement.layers.iter_mut() {
                            if l.name == layer.name {
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
        if spec.net == Net::Proxy {
            for _ in 0..listeners {
                match sys::fd::recv_fd(channel.as_raw_fd()) {
                    Ok(l) => self.proxy_listeners.push(l),
                    Err(e) => return Err(sys_err("receiving the proxy's listeners")(e)),
                }
            }
        }
        if spec.pty {
            let master =
                sys::fd::recv_fd(channel.as_raw_fd()).map_err(sys_err("receiving the terminal"))?;
            self.pty_master = Some(master);
        }
        self.launch_channel = Some(channel);
        Ok(())
    }

    pub(crate) fn await_start(&mut self, spec: &RunSpec) -> Result<(), Error> {
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
                                spec,
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

    /// The refusals the run met, once it has ended ([`wait`] returned):
    /// taken once.
    ///
    /// [`wait`]: Child::wait
    pub fn observed(&mut self) -> crate::observe::Observed {
        if let Some(o) = self.observed.take() {
            return o;
        }
        match (self.observer.as_mut(), &self.launch_channel) {
            (Some(o), _) => o.finish(),
            (None, Some(channel)) => crate::launch::observed(channel),
            (None, None) => crate::observe::Observed::default(),
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
                libc::pollfd {
                    fd: self
                        .observer
                        .as_ref()
                        .and_then(|o| o.poll_fd())
                        .unwrap_or(-1),
                    events: libc::POLLIN,
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
            if let Some(o) = self.observer.as_mut() {
                o.ready(fds[6].revents);
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
            Isolation::Namespaces | Isolation::Elevated => {
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

/// Runs `start`, which starts threads, with every signal blocked, so that
/// those threads inherit the full mask: a signal sent to moat (SIGINT,
/// SIGTERM, to forward to the command) must never be taken by one of
/// them, whose default action would end moat instead.
pub fn with_signals_blocked<T>(start: impl FnOnce() -> T) -> T {
    let old = sys::signal::mask(libc::SIG_SETMASK, &sys::signal::SigSet::full()).ok();
    let out = start();
    if let Some(old) = old {
        let _ = sys::signal::mask(libc::SIG_SETMASK, &old);
    }
    out
}

/// Ends this process by `signal`, as the command it supervised ended:
/// with the signal's default action, and no core dump of moat's own.
/// Returns only if that default is to do nothing.
pub fn end_by_signal(signal: libc::c_int) {
    let _ = sys::process::set_rlimit(libc::RLIMIT_CORE, 0, 0);
    let _ = sys::signal::set_default(signal);
    let _ = sys::signal::mask(libc::SIG_UNBLOCK, &sys::signal::SigSet::of(&[signal]));
    let _ = sys::process::kill(std::process::id() as libc::pid_t, signal);
}
