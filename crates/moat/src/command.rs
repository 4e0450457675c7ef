//! `Command`, `Child`, `Output`: the std::process shapes, sandboxed.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moat_policy::audit::{self, Fix};
use moat_policy::scan::ScanLimits;
use moat_policy::view::{self, FsView};

use crate::policy::{resolve, Policy, Resolved};
use crate::report::{EnvRemoved, LayerReport, RunReport};
use crate::Error;

#[cfg(target_os = "linux")]
use moat_linux as backend;

/// What a standard stream of the command is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// The same as this process's.
    #[default]
    Inherit,
    /// /dev/null.
    Null,
    /// A pipe this process reads or writes (see [`Child::stdout`] etc).
    Piped,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed when the policy's timeout ran out.
    TimedOut,
    /// The program could not be started; `errno` says why.
    NotStarted {
        errno: i32,
    },
}

impl Exit {
    /// The conventional exit status: the command's own, 128+N for signal
    /// N, 124 for a timeout, 127 for a program not found, 126 for one that
    /// could not be executed.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
            Exit::TimedOut => 124,
            Exit::NotStarted { errno } if not_found(errno) => 127,
            Exit::NotStarted { .. } => 126,
        }
    }
}

fn not_found(errno: i32) -> bool {
    matches!(
        std::io::Error::from_raw_os_error(errno).kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub report: RunReport,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    pub fn code(&self) -> i32 {
        self.exit.code()
    }
}

/// A finished run with its captured output.
#[derive(Debug, Clone)]
pub struct Output {
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A command to run in the sandbox.
#[derive(Debug, Clone)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    workspace: Option<PathBuf>,
    policy: Policy,
    stdio: [Stdio; 3],
    pty: bool,
    forward_signals: bool,
    allow_degraded: bool,
    cache_layers: bool,
    waits_at_once: bool,
    #[cfg(target_os = "linux")]
    isolation: backend::Isolation,
    tier: Tier,
    #[cfg(target_os = "linux")]
    net_hooks: crate::proxy::Hooks,
}

/// Which tier runs the command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tier {
    /// Elevated when `moat setup` was run and this person may use it
    /// (may execute the launcher); unelevated otherwise.
    #[default]
    Auto,
    /// As a sandbox account, through the setuid launcher; refuses if the
    /// elevated tier is not set up.
    Elevated,
    /// As the person, in user namespaces.
    Unelevated,
}

impl Command {
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            cwd: None,
            workspace: None,
            policy: Policy::default(),
            stdio: [Stdio::Inherit; 3],
            pty: false,
            forward_signals: false,
            allow_degraded: false,
            cache_layers: true,
            waits_at_once: false,
            #[cfg(target_os = "linux")]
            isolation: backend::Isolation::Namespaces,
            tier: Tier::Auto,
            #[cfg(target_os = "linux")]
            net_hooks: crate::proxy::Hooks::default(),
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Where the command starts. Also the workspace, unless
    /// [`Command::workspace`] names another.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The directory the command may write (with `workspace-write`).
    pub fn workspace(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.workspace = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn policy(&mut self, policy: Policy) -> &mut Command {
        self.policy = policy;
        self
    }

    pub fn stdin(&mut self, s: Stdio) -> &mut Command {
        self.stdio[0] = s;
        self
    }

    pub fn stdout(&mut self, s: Stdio) -> &mut Command {
        self.stdio[1] = s;
        self
    }

    pub fn stderr(&mut self, s: Stdio) -> &mut Command {
        self.stdio[2] = s;
        self
    }

    /// Gives the command a terminal of its own, relayed to this process's
    /// standard streams while waiting.
    pub fn pty(&mut self, on: bool) -> &mut Command {
        self.pty = on;
        self
    }

    /// While waiting, forward SIGINT, SIGTERM, SIGHUP and SIGQUIT that this
    /// process receives to the command (what a CLI wants; off by default).
    pub fn forward_signals(&mut self, on: bool) -> &mut Command {
        self.forward_signals = on;
        self
    }

    /// Promise to call [`Child::wait`] as soon as [`Command::spawn`]
    /// returns, waiting on nothing the command does before that (off by
    /// default; [`Command::status`] and [`Command::output`] keep it
    /// themselves). moat then answers what the command asks of the denial
    /// observer inside the wait, without a thread for it, which saves a
    /// few tenths of a millisecond of every run. Broken, the command stalls
    /// at its first observed call until the wait begins.
    pub fn waits_at_once(&mut self, on: bool) -> &mut Command {
        self.waits_at_once = on;
        self
    }

    /// Accept running with fewer layers than the policy asks for; the
    /// report lists what was lost.
    pub fn allow_degraded(&mut self, on: bool) -> &mut Command {
        self.allow_degraded = on;
        self
    }

    /// Give tool caches under the home directory a writable layer of
    /// moat's own (the default), or leave them read-only.
    pub fn cache_layers(&mut self, on: bool) -> &mut Command {
        self.cache_layers = on;
        self
    }

    /// With `network = allow`: asked (once per name and run) whether a
    /// name on neither list may be reached; without it such names are
    /// refused.
    #[cfg(target_os = "linux")]
    pub fn ask(&mut self, f: impl Fn(&str, u16) -> bool + Send + Sync + 'static) -> &mut Command {
        self.net_hooks.ask = Some(std::sync::Arc::new(f));
        self
    }

    /// With `network = allow`: told about every decision of the proxy as
    /// it is made (the run report has them all at the end).
    #[cfg(target_os = "linux")]
    pub fn on_network_decision(
        &mut self,
        f: impl Fn(&crate::proxy::NetDecision) + Send + Sync + 'static,
    ) -> &mut Command {
        self.net_hooks.on_decision = Some(std::sync::Arc::new(f));
        self
    }

    /// Chooses Landlock + seccomp only (no namespaces). Needs
    /// [`Command::allow_degraded`].
    #[cfg(target_os = "linux")]
    pub fn isolation(&mut self, isolation: backend::Isolation) -> &mut Command {
        self.isolation = isolation;
        self
    }

    /// Chooses the tier (default: [`Tier::Auto`]).
    pub fn tier(&mut self, tier: Tier) -> &mut Command {
        self.tier = tier;
        self
    }

    /// The isolation this command gets once the tier is decided.
    #[cfg(target_os = "linux")]
    fn effective_isolation(&self) -> Result<backend::Isolation, Error> {
        use backend::Isolation;
        let explicit = self.isolation != Isolation::Namespaces;
        match self.tier {
            Tier::Unelevated => Ok(self.isolation),
            Tier::Elevated if explicit => Err(Error::Tier(
                "--tier elevated builds every layer; it cannot be combined with --isolation landlock-only"
                    .into(),
            )),
            Tier::Elevated => Ok(Isolation::Elevated),
            Tier::Auto if !explicit && backend::launch::usable() => Ok(Isolation::Elevated),
            Tier::Auto => Ok(self.isolation),
        }
    }

    fn workspace_dir(&self) -> Option<PathBuf> {
        self.workspace.clone().or_else(|| self.cwd.clone())
    }

    /// Resolves the policy this command would run under.
    pub fn resolve(&self) -> Result<Resolved, Error> {
        resolve(&self.policy, self.workspace_dir().as_deref())
    }

    pub fn status(&mut self) -> Result<Outcome, Error> {
        let saved = self.waits_at_once;
        self.waits_at_once = true;
        let spawned = self.spawn();
        self.waits_at_once = saved;
        spawned?.wait()
    }

    /// Runs with stdout and stderr captured (stdin from /dev/null unless
    /// set otherwise).
    pub fn output(&mut self) -> Result<Output, Error> {
        let saved = self.stdio;
        if self.stdio[0] == Stdio::Inherit {
            self.stdio[0] = Stdio::Null;
        }
        self.stdio[1] = Stdio::Piped;
        self.stdio[2] = Stdio::Piped;
        // Its readers are threads: the wait begins at once.
        let saved_waits = self.waits_at_once;
        self.waits_at_once = true;
        let spawned = self.spawn();
        self.stdio = saved;
        self.waits_at_once = saved_waits;
        let mut child = spawned?;
        let out = child.stdout.take();
        let err = child.stderr.take();
        let read_all = |f: Option<File>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut f) = f {
                    let _ = f.read_to_end(&mut buf);
                }
                buf
            })
        };
        let (out_t, err_t) = (read_all(out), read_all(err));
        let outcome = child.wait()?;
        Ok(Output {
            outcome,
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
        })
    }

    /// Starts the command.
    pub fn spawn(&mut self) -> Result<Child, Error> {
        let resolved = self.resolve()?;
        self.spawn_resolved(resolved)
    }

    /// Starts the command under a policy resolved with
    /// [`Command::resolve`] (so a caller can look at it first without
    /// resolving twice).
    pub fn spawn_resolved(&mut self, resolved: Resolved) -> Result<Child, Error> {
        let started = Instant::now();
        let mut report = RunReport {
            command: std::iter::once(&self.program)
                .chain(self.args.iter())
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            workspace: resolved.policy.workspace.value.display().to_string(),
            tier: "unelevated".into(),
            network: resolved.policy.network.value.to_string(),
            ignored: resolved
                .policy
                .ignored
                .iter()
                .map(|i| i.to_string())
                .collect(),
            ..RunReport::default()
        };
        let cwd = match &self.cwd {
            Some(c) => {
                moat_policy::paths::absolutize(c, &resolved.facts.home, Some(&resolved.facts.cwd))
                    .unwrap_or_else(|_| c.clone())
            }
            None => resolved.facts.cwd.clone(),
        };
        let (stdio, parent_ends) = make_stdio(self.stdio)?;

        if resolved.policy.is_unsandboxed() {
            report.mode = "none".into();
            report.layers.push(LayerReport {
                layer: "sandbox".into(),
                state: "off".into(),
                detail: "full-access: no sandbox".into(),
            });
            let mut cmd = std::process::Command::new(&self.program);
            cmd.args(&self.args).current_dir(&cwd);
            for (i, s) in stdio.iter().enumerate() {
                let std_stdio = match s {
                    Some(fd) => std::process::Stdio::from(fd.try_clone().map_err(Error::Spawn)?),
                    None => std::process::Stdio::inherit(),
                };
                match i {
                    0 => cmd.stdin(std_stdio),
                    1 => cmd.stdout(std_stdio),
                    _ => cmd.stderr(std_stdio),
                };
            }
            let child = cmd.spawn();
            drop(stdio);
            let child = match child {
                Ok(c) => Inner::Plain(c),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Inner::NotFound(2),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Inner::NotFound(13),
                Err(e) => return Err(Error::Spawn(e)),
            };
            return Ok(Child::new(child, report, parent_ends, started, None));
        }
        self.spawn_sandboxed(resolved, cwd, stdio, parent_ends, report, started)
    }

    #[cfg(target_os = "linux")]
    fn spawn_sandboxed(
        &self,
        resolved: Resolved,
        cwd: PathBuf,
        stdio: [Option<OwnedFd>; 3],
        parent_ends: [Option<File>; 3],
        mut report: RunReport,
        started: Instant,
    ) -> Result<Child, Error> {
        let fs = backend::LinuxFs::new();
        let view = view::build(&resolved.policy, &fs, ScanLimits::DEFAULT)?;
        report.notes = view.notes.clone();
        report.writable = view
            .writable
            .iter()
            .map(|w| w.path.display().to_string())
            .collect();
        // Placeholders of another run in the same directory look like
        // existing protected paths: hold them too, or that run could remove
        // them between this view and this run's mounts.
        let mut wanted = view.placeholders.clone();
        for p in &view.protected {
            if p.kind == moat_policy::EntryKind::Other && !wanted.contains(&p.path) {
                wanted.push(p.path.clone());
            }
        }
        let placeholders = backend::placeholders::Placeholders::create(&wanted)?;
        let stdio_spec = |s: &Option<OwnedFd>| match s {
            Some(fd) => backend::StdioSpec::Fd(fd.as_raw_fd()),
            None => backend::StdioSpec::Inherit,
        };
        let isolation = self.effective_isolation()?;
        if isolation == backend::Isolation::Elevated {
            report.tier = "elevated".into();
        }
        let (layers, cache_hold) = if self.cache_layers {
            cache_layers(&resolved, &view, isolation, &mut report.notes)
        } else {
            (crate::lower::Layers::default(), None)
        };
        let lowered = crate::lower::lower(
            &resolved.policy,
            &view,
            &resolved.facts.env,
            crate::lower::Command {
                argv: std::iter::once(self.program.clone())
                    .chain(self.args.iter().cloned())
                    .collect(),
                cwd,
                pty: self.pty,
            },
            layers,
            isolation,
        );
        report.env_removed = lowered
            .env_removed
            .iter()
            .map(|(n, r)| EnvRemoved {
                name: n.clone(),
                reason: r.as_str().into(),
            })
            .collect();
        let launch = backend::Launch {
            stdio: [
                stdio_spec(&stdio[0]),
                stdio_spec(&stdio[1]),
                stdio_spec(&stdio[2]),
            ],
            allow_degraded: self.allow_degraded,
            waits_at_once: self.waits_at_once,
        };
        // Secrets: their values stay here; the command gets placeholders and
        // trusts the run's certificate authority.
        let brokerage = crate::secrets::Brokerage::from_policy(
            &resolved.policy,
            &resolved.facts.env,
            &mut report.notes,
        )?;
        let mut spec = lowered.spec;
        if let Some(b) = &brokerage {
            for (name, placeholder) in b.placeholders() {
                spec.env.retain(|(n, _)| n.as_os_str() != name.as_str());
                spec.env.push((name.clone().into(), placeholder.into()));
                report.env_removed.retain(|r| r.name != name);
            }
            spec.extra_ca = Some(b.cert_pem());
            // Only secrets a broker holds: those a config left out (no
            // proxy) are in the notes instead.
            report.secrets = resolved
                .policy
                .secrets
                .iter()
                .map(|s| crate::report::SecretReport {
                    env: s.value.env.clone(),
                    hosts: s.value.hosts.clone(),
                    injected: 0,
                })
                .collect();
        }
        let mut child = backend::spawn(&spec, &launch)?;
        drop(stdio);
        let proxy = (spec.net == moat_spec::Net::Proxy).then(|| {
            let mut hooks = self.net_hooks.clone();
            if let Some(b) = brokerage {
                hooks.terminator = Some(std::sync::Arc::new(b));
            }
            // The listeners are in the sandbox's namespace: poll them, since
            // moat cannot connect to them to end a blocking accept.
            hooks.readable = Some(std::sync::Arc::new(
                |l: &std::net::TcpListener, wait: Duration| {
                    use std::os::fd::AsFd;
                    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
                    backend::wait_readable(l.as_fd(), ms)
                },
            ));
            // Its threads (and theirs) never take a signal meant for the
            // command.
            let listeners = proxy_listeners(child.take_proxy_listeners());
            backend::with_signals_blocked(|| {
                crate::proxy::Proxy::start(listeners, resolved.policy.domain_rules(), hooks)
            })
        });
        let e = child.enforcement();
        report.mode = e.isolation.as_str().into();
        report.landlock_abi = Some(e.landlock_abi);
        report.lost = e.lost.clone();
        report.layers = e
            .layers
            .iter()
            .map(|l| LayerReport {
                layer: l.name.into(),
                state: l.state.as_str().into(),
                detail: l.detail.clone(),
            })
            .collect();
        let wait = backend::WaitOptions {
            forward_signals: self.forward_signals,
            relay_pty: self.pty,
            hangup: None,
        };
        let hint_facts = crate::denials::HintFacts {
            protected: view.protected.iter().map(|p| p.path.clone()).collect(),
            denied: view.denied.iter().map(|d| d.path.clone()).collect(),
            home: resolved.facts.home.clone(),
        };
        let mut c = Child::new(
            Inner::Sandboxed(Box::new(child), wait),
            report,
            parent_ends,
            started,
            Some(view),
        );
        c.hint_facts = hint_facts;
        c.placeholders = Some(placeholders);
        c.proxy = proxy;
        c.cache_hold = cache_hold;
        Ok(c)
    }

    #[cfg(not(target_os = "linux"))]
    fn spawn_sandboxed(
        &self,
        _resolved: Resolved,
        _cwd: PathBuf,
        _stdio: [Option<OwnedFd>; 3],
        _parent_ends: [Option<File>; 3],
        _report: RunReport,
        _started: Instant,
    ) -> Result<Child, Error> {
        Err(Error::Unsupported)
    }
}

/// The tool-cache layers of a run, and the hold on moat's store that lasts
/// as long as the run. Where layers cannot be made (the landlock-only mode
/// has no mounts), the tools are pointed at caches of moat's own through
/// their environment instead, and the run says so.
#[cfg(target_os = "linux")]
fn cache_layers(
    resolved: &Resolved,
    view: &FsView,
    isolation: backend::Isolation,
    notes: &mut Vec<String>,
) -> (crate::lower::Layers, Option<crate::caches::Held>) {
    let fs = backend::LinuxFs::new();
    let plan = moat_policy::caches::plan(&resolved.policy, view, &fs, &crate::caches::installed);
    if plan.layers.is_empty() {
        notes.extend(plan.notes);
        return (crate::lower::Layers::default(), None);
    }
    let xdg = resolved
        .facts
        .env
        .iter()
        .find(|(n, _)| n == "XDG_STATE_HOME")
        .map(|(_, v)| PathBuf::from(v));
    let store = crate::caches::store_root(&resolved.facts.home, xdg.as_deref());
    if let Err(why) = backend::detect::cache_layers(isolation) {
        let r = crate::caches::prepare_direct(&plan, &store, &resolved.facts.env, notes);
        if !r.env.is_empty() {
            let vars: Vec<&str> = r.env.iter().map(|(n, _)| *n).collect();
            notes.push(format!(
                "tool caches get no layer here ({why}): the tools are pointed at caches of \
                 moat's own instead ({}, in {}/*/direct), which start empty and are kept for \
                 later sandboxed runs; yours stay read-only and unused",
                vars.join(", "),
                store.display()
            ));
        }
        let layers = crate::lower::Layers {
            env: r.env,
            writable: r.writable,
            ..Default::default()
        };
        return (layers, r.held);
    }
    let (caches, held) = crate::caches::prepare(&plan, &store, notes);
    (
        crate::lower::Layers {
            caches,
            store: Some(store),
            ..Default::default()
        },
        held,
    )
}

/// The proxy's listeners as `moat_linux` hands them over: HTTP and
/// SOCKS5, then the transparent ports 80 and 443 (TCP), then the DNS
/// stub's (UDP).
#[cfg(target_os = "linux")]
fn proxy_listeners(fds: Vec<OwnedFd>) -> Vec<crate::proxy::Listener> {
    use crate::proxy::Listener;
    use std::net::{TcpListener, UdpSocket};
    fds.into_iter()
        .enumerate()
        .map(|(i, fd)| match i {
            0 => Listener::Http(TcpListener::from(fd)),
            1 => Listener::Socks(TcpListener::from(fd)),
            2 => Listener::Plain(TcpListener::from(fd)),
            3 => Listener::Tls(TcpListener::from(fd)),
            _ => Listener::Dns(UdpSocket::from(fd)),
        })
        .collect()
}

/// The child's ends (descriptors it gets) and this process's ends.
type StdioEnds = ([Option<OwnedFd>; 3], [Option<File>; 3]);

fn make_stdio(stdio: [Stdio; 3]) -> Result<StdioEnds, Error> {
    let mut child: [Option<OwnedFd>; 3] = [None, None, None];
    let mut parent: [Option<File>; 3] = [None, None, None];
    for (i, s) in stdio.iter().enumerate() {
        match s {
            Stdio::Inherit => {}
            Stdio::Null => {
                let f = std::fs::OpenOptions::new()
                    .read(i == 0)
                    .write(i != 0)
                    .open("/dev/null")
                    .map_err(Error::Spawn)?;
                child[i] = Some(OwnedFd::from(f));
            }
            Stdio::Piped => {
                let (r, w) = std::io::pipe().map_err(Error::Spawn)?;
                if i == 0 {
                    child[i] = Some(OwnedFd::from(r));
                    parent[i] = Some(File::from(OwnedFd::from(w)));
                } else {
                    child[i] = Some(OwnedFd::from(w));
                    parent[i] = Some(File::from(OwnedFd::from(r)));
                }
            }
        }
    }
    Ok((child, parent))
}

#[derive(Debug)]
enum Inner {
    #[cfg(target_os = "linux")]
    Sandboxed(Box<backend::Child>, backend::WaitOptions),
    Plain(std::process::Child),
    /// full-access, and the program could not be started (errno).
    NotFound(i32),
}

/// A running command.
#[derive(Debug)]
pub struct Child {
    inner: Inner,
    report: RunReport,
    started: Instant,
    view: Option<FsView>,
    #[cfg(target_os = "linux")]
    placeholders: Option<backend::placeholders::Placeholders>,
    #[cfg(target_os = "linux")]
    proxy: Option<crate::proxy::Proxy>,
    /// The hold on moat's cache store, for as long as the run.
    #[cfg(target_os = "linux")]
    cache_hold: Option<crate::caches::Held>,
    /// What a refusal's hint is worked out from.
    hint_facts: crate::denials::HintFacts,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

impl Child {
    fn new(
        inner: Inner,
        report: RunReport,
        ends: [Option<File>; 3],
        started: Instant,
        view: Option<FsView>,
    ) -> Child {
        let [stdin, stdout, stderr] = ends;
        Child {
            inner,
            report,
            started,
            view,
            #[cfg(target_os = "linux")]
            placeholders: None,
            #[cfg(target_os = "linux")]
            proxy: None,
            #[cfg(target_os = "linux")]
            cache_hold: None,
            hint_facts: crate::denials::HintFacts::default(),
            stdin,
            stdout,
            stderr,
        }
    }

    /// The report so far (layers and mode are known once started).
    pub fn report(&self) -> &RunReport {
        &self.report
    }

    /// Kills the command and everything it started.
    pub fn kill(&mut self) {
        match &mut self.inner {
            #[cfg(target_os = "linux")]
            Inner::Sandboxed(c, _) => c.kill(),
            Inner::Plain(c) => {
                let _ = c.kill();
            }
            Inner::NotFound(_) => {}
        }
    }

    /// Waits for the command, then audits what it left in git directories
    /// and removes moat's placeholders.
    pub fn wait(&mut self) -> Result<Outcome, Error> {
        drop(self.stdin.take());
        let (exit, duration) = match &mut self.inner {
            #[cfg(target_os = "linux")]
            Inner::Sandboxed(c, opts) => {
                let result = c.wait(*opts);
                match result {
                    Ok((e, d)) => (convert(e), d),
                    Err(e) => {
                        // The run is over either way: end everything in it,
                        // then neutralise what it left, as after a normal
                        // end, so a failed wait never leaves a live hook.
                        c.kill();
                        c.reap();
                        let _ = self.audit();
                        self.clean_up(false);
                        return Err(e.into());
                    }
                }
            }
            Inner::Plain(c) => {
                let status = c.wait().map_err(Error::Spawn)?;
                use std::os::unix::process::ExitStatusExt;
                let exit = match (status.code(), status.signal()) {
                    (Some(code), _) => Exit::Code(code),
                    (None, Some(sig)) => Exit::Signal(sig),
                    _ => Exit::Code(1),
                };
                (exit, self.started.elapsed())
            }
            Inner::NotFound(errno) => (Exit::NotStarted { errno: *errno }, Duration::ZERO),
        };
        let neutralised = self.audit();
        // Only a command that ended by itself leaves cache layers worth
        // keeping: one killed may have written half a download.
        self.clean_up(matches!(exit, Exit::Code(_)));
        let mut report = std::mem::take(&mut self.report);
        report.neutralised = neutralised;
        report.exit_code = exit.code();
        report.duration_ms = duration.as_millis() as u64;
        match exit {
            Exit::Code(_) => report.outcome = "exited".into(),
            Exit::Signal(s) => {
                report.outcome = "signaled".into();
                report.signal = Some(s);
            }
            Exit::TimedOut => report.outcome = "timed-out".into(),
            Exit::NotStarted { errno } => {
                report.outcome = "not-started".into();
                report.error = Some(std::io::Error::from_raw_os_error(errno).to_string());
            }
        }
        Ok(Outcome { exit, report })
    }

    /// The audit, once. It touches no mount point of the sandbox, so it
    /// can run while the kernel is still tearing the namespaces down.
    fn audit(&mut self) -> Vec<String> {
        let view = match self.view.take() {
            Some(v) => v,
            None => return Vec::new(),
        };
        #[cfg(target_os = "linux")]
        let fs = backend::LinuxFs::new();
        #[cfg(not(target_os = "linux"))]
        let fs = moat_policy::host::StdFs;
        let fixes = audit::plan(&view, &fs, ScanLimits::DEFAULT);
        let roots: Vec<std::path::PathBuf> = view
            .writable
            .iter()
            .filter_map(|w| std::fs::canonicalize(&w.path).ok())
            .collect();
        let mut lines = Vec::new();
        for fix in &fixes {
            // The plan never leaves the writable roots; checked again where
            // the change lands, so a symlinked directory on the way cannot
            // turn a fix into a change outside them.
            let parent = fix
                .path()
                .parent()
                .and_then(|p| std::fs::canonicalize(p).ok());
            if !parent.is_some_and(|p| roots.iter().any(|r| p.starts_with(r))) {
                lines.push(format!(
                    "did not neutralise {}: it is reached through a symlink out of the writable roots (check it before running git there)",
                    fix.path().display()
                ));
                continue;
            }
            match apply(fix) {
                Ok(()) => lines.extend(fix.describe()),
                Err(e) => lines.push(format!(
                    "could not neutralise {}: {} (check it before running git there)",
                    fix.path().display(),
                    e
                )),
            }
        }
        lines
    }
}

impl Child {
    /// Waits for the sandbox to be gone, then removes the placeholders:
    /// a placeholder is a mount point until its mount namespace is gone,
    /// and unlinking it before would make the kernel detach those mounts
    /// one by one.
    fn clean_up(&mut self, ended: bool) {
        #[cfg(target_os = "linux")]
        {
            if let Inner::Sandboxed(c, _) = &mut self.inner {
                c.reap();
                let observed = c.observed();
                self.report.denials = observed
                    .denials
                    .iter()
                    .map(|d| crate::denials::from_observed(d, &self.hint_facts))
                    .collect();
                self.report.denials_unseen = observed.unseen;
            }
            // Nothing in the sandbox writes the cache layers any more.
            if let Some(held) = self.cache_hold.take() {
                self.report.notes.extend(held.finish(ended));
            }
            // Nothing in the sandbox can use the proxy any more.
            if let Some(proxy) = self.proxy.take() {
                self.report.network_decisions = proxy.stop();
                for secret in self.report.secrets.iter_mut() {
                    secret.injected = self
                        .report
                        .network_decisions
                        .iter()
                        .filter(|d| d.injected.contains(&secret.env))
                        .count() as u32;
                }
                let refused = crate::denials::from_decisions(&self.report.network_decisions);
                self.report.denials.extend(refused);
            }
            if let Some(mut p) = self.placeholders.take() {
                p.remove();
            }
        }
    }
}

fn apply(fix: &Fix) -> std::io::Result<()> {
    match fix {
        Fix::Rename { path, to, .. } => std::fs::rename(path, to),
        Fix::Rewrite { path, text, .. } => {
            // Written beside and renamed over, so a crash leaves either the
            // old file or the new one.
            let tmp = path.with_extension("moat-tmp");
            let perms = std::fs::metadata(path)?.permissions();
            std::fs::write(&tmp, text)?;
            std::fs::set_permissions(&tmp, perms)?;
            std::fs::rename(&tmp, path)
        }
    }
}

#[cfg(target_os = "linux")]
fn convert(e: backend::Exit) -> Exit {
    match e {
        backend::Exit::Code(c) => Exit::Code(c),
        backend::Exit::Signal(s) => Exit::Signal(s),
        backend::Exit::TimedOut => Exit::TimedOut,
        backend::Exit::NotStarted { errno } => Exit::NotStarted { errno },
    }
}
