//! Building a run: a [`RunSpec`] and the host's facts turned into what the
//! sandbox's processes need (a [`ChildSpec`]). Every decision about the run
//! is the spec's (`moat_spec`); what is here is plumbing, in the order the
//! layers are made, and the refusals where this machine cannot hold what
//! the spec asks.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use moat_spec::{Isolation, Net, RunSpec};

use crate::cgroup::{Placed, RunCgroup};
use crate::plan::{self, Layer, PlanCache, PlanInput, PlanRoot};
use crate::report::{self, Enforcement, Facts};
use crate::roots::{CheckedCache, Elevation, Root};
use crate::rules::{self, RootRule};
use crate::run::{Error, Launch, StdioSpec};
use crate::seccomp;
use crate::spec::{self, CVec, ChildSpec, Stdio};
use crate::sys::{self, Errno};

/// A built run, ready to fork.
pub(crate) struct Prepared {
    pub spec: ChildSpec,
    pub flags: libc::c_ulong,
    pub report_read: OwnedFd,
    pub lifeline_write: OwnedFd,
    pub pty_parent: Option<OwnedFd>,
    pub proxy_parent: Option<OwnedFd>,
    /// How many sockets init sends on `proxy_parent`.
    pub proxy_sockets: usize,
    /// Descriptors the child uses; closed in the parent after the fork.
    pub child_fds: Vec<OwnedFd>,
    /// The mount plan's steps, described (for error messages).
    pub ops: Vec<String>,
    pub enforcement: Enforcement,
    pub temp_dir: Option<PathBuf>,
    pub cgroup: Option<RunCgroup>,
    /// moat's end of the observer's socket, and what it judges by.
    pub observe: (OwnedFd, crate::observe::Facts),
}

fn sys_err(what: &'static str) -> impl Fn(Errno) -> Error {
    move |errno| Error::Sys { what, errno }
}

fn bullet(lines: &[String]) -> String {
    lines.iter().map(|l| format!("  - {}\n", l)).collect()
}

/// What this run loses on this machine; refused unless the person accepts
/// it.
fn degradation(
    spec: &RunSpec,
    launch: &Launch,
    elevated: bool,
    abi: i32,
) -> Result<Vec<String>, Error> {
    let landlock_only = spec.isolation == Isolation::LandlockOnly;
    let mut lost = Vec::new();
    if landlock_only {
        lost = report::landlock_only_losses(spec, abi);
        if !launch.allow_degraded {
            return Err(Error::Degraded {
                losses: bullet(&lost),
            });
        }
    }
    // The kernel never applies RLIMIT_NPROC to the global root user, user
    // namespace or not; only a cgroup's pids controller could.
    if spec.limits.processes.is_some() && sys::process::ids().0 == 0 && !elevated {
        let loss = "the process limit is not enforced: the kernel exempts root from RLIMIT_NPROC \
                    and no cgroup pids controller is used in this tier"
            .to_string();
        if !launch.allow_degraded {
            return Err(Error::Degraded {
                losses: bullet(&[loss]),
            });
        }
        lost.push(loss);
    }
    if abi == 0 {
        if !launch.allow_degraded || landlock_only {
            return Err(Error::NoLandlock(
                "boot with `lsm=...,landlock` (most distribution kernels build it in), or pass \
                 --allow-degraded to run with namespaces and seccomp only",
            ));
        }
        lost.push("Landlock is unavailable: only mounts enforce the filesystem policy".into());
    }
    Ok(lost)
}

/// A private temporary directory for a landlock-only run.
fn make_temp_dir() -> Result<PathBuf, Error> {
    let base = std::env::temp_dir();
    let what = "creating the run's temporary directory";
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
                    what,
                    errno: Errno(e.raw_os_error().unwrap_or(libc::EIO)),
                })
            }
        }
    }
    Err(Error::Sys {
        what,
        errno: Errno(libc::EEXIST),
    })
}

/// The spec's environment, with a landlock-only run's own temporary
/// directory where the spec says /tmp, and the variables that point TLS
/// clients at `bundle` (the run's bundle of trusted authorities, if it has
/// one of its own) in place of any the spec has.
fn environment(
    spec: &RunSpec,
    temp_dir: Option<&Path>,
    bundle: Option<&Path>,
) -> Vec<(OsString, OsString)> {
    let mut env = temp_env(spec, temp_dir);
    if let Some(bundle) = bundle {
        let vars = moat_spec::trust_env(&bundle.to_string_lossy());
        env.retain(|(n, _)| !vars.iter().any(|(v, _)| n == OsStr::new(v)));
        env.extend(vars.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
    env
}

fn temp_env(spec: &RunSpec, temp_dir: Option<&Path>) -> Vec<(OsString, OsString)> {
    let Some(dir) = temp_dir else {
        return spec.env.clone();
    };
    spec.env
        .iter()
        .map(|(n, v)| {
            let is_temp = ["TMPDIR", "TMP", "TEMP", "TEMPDIR"]
                .iter()
                .any(|t| n == OsStr::new(t));
            let v = if is_temp {
                dir.as_os_str().to_os_string()
            } else {
                v.clone()
            };
            (n.clone(), v)
        })
        .collect()
}

/// The writable roots, opened: the launcher's, checked, or opened here as
/// the person (with no symlink on the way).
fn opened_roots<'a>(
    spec: &RunSpec,
    elevation: Option<&'a Elevation>,
    own: &'a mut Vec<Root>,
) -> Result<&'a [Root], Error> {
    if let Some(e) = elevation {
        let checked: Vec<&Path> = e.roots.iter().map(|r| r.path.as_path()).collect();
        let wanted: Vec<&Path> = spec.fs.writable.iter().map(PathBuf::as_path).collect();
        if checked != wanted {
            return Err(Error::Launcher(
                "the checked writable roots are not the spec's".into(),
            ));
        }
        return Ok(&e.roots);
    }
    for path in &spec.fs.writable {
        let root = Root::open(path).map_err(|errno| Error::Root {
            path: path.clone(),
            errno,
        })?;
        own.push(root);
    }
    Ok(own)
}

fn exists_dir(p: &str) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.is_dir())
        .unwrap_or(false)
}

/// The host facts the mount plan depends on.
fn plan_input(
    spec: &RunSpec,
    roots: Vec<PlanRoot>,
    home: Option<PlanRoot>,
    read_only_workspace: Option<PlanRoot>,
) -> PlanInput {
    let mut keep_under_run = Vec::new();
    if spec.net == Net::Host {
        if let Ok(target) = std::fs::canonicalize("/etc/resolv.conf") {
            if target.starts_with("/run") || target.starts_with("/var/run") {
                keep_under_run.push(target);
            }
        }
    }
    PlanInput {
        roots,
        read_only_workspace,
        own_network: spec.namespaces().net,
        var_tmp: exists_dir("/var/tmp"),
        var_run_is_dir: exists_dir("/var/run"),
        run: exists_dir("/run"),
        keep_under_run,
        dev_nodes: plan::DEV_NODES
            .iter()
            .copied()
            .filter(|n| Path::new("/dev").join(n).exists())
            .collect(),
        host_sockets: crate::sockets::host_sockets(),
        idmap: spec.account().map(|_| plan::IdmapInput { home }),
        ..PlanInput::default()
    }
}

/// The rlimits: the elevated tier's caller's own first (the command gets no
/// more than they had), then the policy's for the limits no cgroup holds,
/// never above the caller's hard limit.
fn rlimits(
    spec: &RunSpec,
    placed: Placed,
    caller: &[crate::roots::Rlimit],
) -> Vec<(libc::__rlimit_resource_t, u64, u64)> {
    let mut out: Vec<(libc::__rlimit_resource_t, u64, u64)> = caller
        .iter()
        .map(|r| (r.resource, r.soft, r.hard))
        .collect();
    let l = &spec.limits;
    let wanted = [
        (
            libc::RLIMIT_NPROC,
            l.processes.filter(|_| placed.processes.is_none()),
        ),
        (
            libc::RLIMIT_AS,
            l.memory.filter(|_| placed.memory.is_none()),
        ),
        (libc::RLIMIT_FSIZE, l.file_size),
    ];
    for (resource, value) in wanted {
        let Some(mut value) = value else { continue };
        if let Some(c) = caller.iter().find(|c| c.resource == resource) {
            value = value.min(c.hard);
        }
        out.push((resource, value, value));
    }
    out
}

/// The elevated tier's layers for a tool cache, made here by the launcher
/// from the descriptors it checked: the person's cache and the shared
/// layer (read-only), and the run's `upper` and `work`, each through the
/// run's id mapping, so the account reads the person's cache and what it
/// writes is the person's on disk.
fn cache_overlay(
    cache: &CheckedCache,
    userns: BorrowedFd<'_>,
    account: (u32, u32),
) -> Result<OwnedFd, Error> {
    let err = |what: &'static str| {
        let at = format!(" ({})", cache.at.path.display());
        move |errno| Error::Setup {
            step: what,
            at: at.clone(),
            errno,
            hint: "",
        }
    };
    let idmapped = |root: &Root| -> Result<OwnedFd, Errno> {
        let tree = sys::mount::clone_fd(root.as_fd().as_raw_fd(), false)?;
        sys::mount::set_idmap(tree.as_raw_fd(), userns.as_raw_fd(), 0)?;
        Ok(tree)
    };
    let lower = idmapped(&cache.at).map_err(err("mapping the person's cache"))?;
    let shared = idmapped(&cache.shared).map_err(err("mapping the shared cache layer"))?;
    let run = idmapped(&cache.run).map_err(err("mapping the run's cache layer"))?;
    // `upper` and `work` on the one mount overlayfs wants them on (a clone
    // of the run's directory), and still the directories checked.
    let open = |name: &std::ffi::CStr, checked: &Root| -> Result<OwnedFd, Errno> {
        let fd = sys::at::open_at(run.as_fd(), name, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let st = sys::at::stat_fd(fd.as_raw_fd())?;
        if (st.dev, st.ino) != (checked.id().dev, checked.id().ino) {
            return Err(Errno(libc::ESTALE));
        }
        Ok(fd)
    };
    let upper =
        open(c"upper", &cache.upper).map_err(err("opening the cache store's upper layer"))?;
    let work =
        open(c"work", &cache.work).map_err(err("opening the cache store's work directory"))?;
    sys::mount::overlay_fds(
        &[shared.as_raw_fd(), lower.as_raw_fd()],
        upper.as_raw_fd(),
        work.as_raw_fd(),
        account,
    )
    .map_err(err("making the cache layer"))
}

/// The mount plan (with a mount namespace) and the trees the launcher
/// cloned for it: in the elevated tier the writable roots, the home and a
/// read-only workspace are cloned here, from the descriptors checked, in
/// the namespace they were checked in, and the caches' layers made; the
/// child attaches them.
fn mounts(
    spec: &RunSpec,
    roots: &[Root],
    elevation: Option<&Elevation>,
    userns: Option<BorrowedFd<'_>>,
    trust_bundle: Option<(PathBuf, Vec<u8>)>,
) -> Result<(Option<plan::MountPlan>, Vec<OwnedFd>), Error> {
    let mut trees: Vec<OwnedFd> = Vec::new();
    if !spec.namespaces().mount {
        return Ok((None, trees));
    }
    let mut plan_root = |r: &Root| -> Result<PlanRoot, Error> {
        let mut tree = None;
        if elevation.is_some() {
            let t = sys::mount::clone_fd(r.as_fd().as_raw_fd(), true).map_err(|errno| {
                Error::Setup {
                    step: "cloning the checked tree",
                    at: format!(" ({})", r.path.display()),
                    errno,
                    hint: "",
                }
            })?;
            trees.push(t);
            tree = Some(trees.len() - 1);
        }
        Ok(PlanRoot {
            path: r.path.clone(),
            id: Some(r.id()),
            tree,
        })
    };
    let plan_roots = roots
        .iter()
        .map(&mut plan_root)
        .collect::<Result<Vec<_>, _>>()?;
    let home = elevation
        .and_then(|e| e.home.as_ref())
        .map(&mut plan_root)
        .transpose()?;
    let own_ws;
    let ws = match elevation {
        Some(e) => e.workspace.as_ref(),
        None if !spec.fs.writable.contains(&spec.fs.workspace) => {
            // Gone or unreachable: then there is nothing to show.
            own_ws = Root::open(&spec.fs.workspace).ok();
            own_ws.as_ref()
        }
        None => None,
    };
    let ws = ws.map(&mut plan_root).transpose()?;
    let mut caches = Vec::new();
    for (i, cache) in spec.fs.caches.iter().enumerate() {
        let opened;
        let (at, layer) = match (elevation, userns) {
            (Some(e), Some(userns)) => {
                let checked = e
                    .caches
                    .get(i)
                    .filter(|c| {
                        c.at.path == cache.at
                            && c.shared.path == cache.shared
                            && c.run.path == cache.run
                    })
                    .ok_or_else(|| {
                        Error::Launcher("the checked cache layers are not the spec's".into())
                    })?;
                trees.push(cache_overlay(checked, userns, e.account.pair())?);
                (&checked.at, Layer::Tree(trees.len() - 1))
            }
            (Some(_), None) => {
                return Err(Error::Launcher("a cache layer needs the id mapping".into()))
            }
            (None, _) => {
                opened = Root::open(&cache.at).map_err(|errno| Error::Root {
                    path: cache.at.clone(),
                    errno,
                })?;
                let paths = Layer::Paths {
                    shared: cache.shared.clone(),
                    upper: cache.upper(),
                    work: cache.work(),
                };
                (&opened, paths)
            }
        };
        caches.push(PlanCache {
            at: cache.at.clone(),
            id: Some(at.id()),
            layer,
        });
    }
    let mut input = plan_input(spec, plan_roots, home, ws);
    input.caches = caches;
    input.trust_bundle = trust_bundle;
    let plan = plan::build(&spec.fs, &input);
    Ok((Some(plan), trees))
}

/// The Landlock ruleset, and the rules the child adds for the mounts only
/// it makes.
struct Landlock {
    fd: OwnedFd,
    /// Rules in all, and whether TCP is refused (for the report).
    rules: usize,
    tcp_denied: bool,
    inner: Vec<(std::ffi::CString, u64)>,
}

fn landlock(
    spec: &RunSpec,
    roots: &[Root],
    temp_dir: Option<&Path>,
    elevation: Option<&Elevation>,
    plan: Option<&plan::MountPlan>,
    abi: i32,
) -> Result<Option<Landlock>, Error> {
    if abi == 0 {
        return Ok(None);
    }
    let mut extra: Vec<PathBuf> = temp_dir.iter().map(|d| d.to_path_buf()).collect();
    if !spec.namespaces().mount {
        // Without a private /dev the host's terminals and null device need
        // explicit rights.
        for dev in [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/tty",
            "/dev/pts",
            "/dev/ptmx",
        ] {
            if Path::new(dev).exists() {
                extra.push(PathBuf::from(dev));
            }
        }
    }
    let root_rules: Vec<RootRule> = roots
        .iter()
        .map(|r| RootRule {
            fd: r.as_fd().as_raw_fd(),
            is_dir: r.is_dir(),
        })
        .collect();
    // The readable paths are listed and opened on the person's behalf: in
    // the launcher, with their file-system permissions.
    let as_caller = match elevation {
        Some(e) => Some(
            crate::roots::AsUser::enter(e.caller).map_err(|errno| Error::Sys {
                what: "taking on the caller's file-system ids",
                errno,
            })?,
        ),
        None => None,
    };
    let prepared = rules::build(
        &spec.fs,
        &root_rules,
        &extra,
        &moat_policy::host::StdFs,
        abi,
        spec.tcp(),
    );
    drop(as_caller);
    let prepared = prepared?;
    let inner: Vec<_> = plan
        .map(|p| {
            p.inner_rules
                .iter()
                .map(|r| (r.path.clone(), prepared.bits(r.access)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Landlock {
        rules: prepared.rules + inner.len(),
        tcp_denied: prepared.tcp_denied,
        fd: prepared.fd,
        inner,
    }))
}

/// The channels between moat and the sandbox: the report pipe, the
/// lifeline, and with the proxy or a terminal a socket each on which init
/// hands moat the listeners or the terminal.
struct Channels {
    report: (OwnedFd, OwnedFd),
    lifeline: (OwnedFd, OwnedFd),
    /// (moat's end, the child's end), and where the DNS stub answers.
    proxy: Option<(OwnedFd, OwnedFd, Vec<std::net::IpAddr>)>,
    pty: Option<(OwnedFd, OwnedFd, Option<libc::winsize>)>,
    /// (moat's end, the command's end) for the observer's listener.
    observe: (OwnedFd, OwnedFd),
}

fn channels(spec: &RunSpec) -> Result<Channels, Error> {
    let pipe = || sys::fd::pipe().map_err(sys_err("creating a pipe"));
    let pair = || sys::fd::socketpair().map_err(sys_err("creating a socket pair"));
    let proxy = match spec.net {
        Net::Proxy => {
            let (parent, child) = pair()?;
            let dns = crate::stub_dns_addresses(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            );
            Some((parent, child, dns))
        }
        Net::Off | Net::Host => None,
    };
    let pty = match spec.pty {
        true => {
            let (parent, child) = pair()?;
            let winsize = sys::pty::get_winsize(0)
                .or_else(|_| sys::pty::get_winsize(1))
                .ok();
            Some((parent, child, winsize))
        }
        false => None,
    };
    Ok(Channels {
        report: pipe()?,
        lifeline: pipe()?,
        proxy,
        pty,
        observe: pair()?,
    })
}

/// The command as execve wants it: argv, envp, where to look for the
/// program, and the working directory.
fn command(
    spec: &RunSpec,
    env: &[(OsString, OsString)],
) -> Result<(CVec, CVec, Vec<std::ffi::CString>, std::ffi::CString), Error> {
    let argv = CVec::new(spec.argv.iter().cloned()).map_err(|_| Error::Nul {
        what: "an argument",
    })?;
    let envp = CVec::new(spec::env_strings(env)).map_err(|_| Error::Nul {
        what: "an environment variable",
    })?;
    let path_var = env
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| v.as_os_str());
    let program = spec.argv.first().cloned().unwrap_or_default();
    let exec_paths = spec::exec_candidates(&program, path_var);
    let cwd = spec::cpath(&spec.cwd).ok_or(Error::Nul {
        what: "the working directory",
    })?;
    Ok((argv, envp, exec_paths, cwd))
}

/// The clone flags for the spec's namespaces (and a pidfd).
fn clone_flags(ns: moat_spec::Namespaces) -> libc::c_ulong {
    let mut flags = libc::CLONE_PIDFD as libc::c_ulong;
    for (on, flag) in [
        (ns.user, libc::CLONE_NEWUSER),
        (ns.mount, libc::CLONE_NEWNS),
        (ns.pid, libc::CLONE_NEWPID),
        (ns.ipc, libc::CLONE_NEWIPC),
        (ns.uts, libc::CLONE_NEWUTS),
        (ns.cgroup, libc::CLONE_NEWCGROUP),
        (ns.net, libc::CLONE_NEWNET),
    ] {
        if on {
            flags |= flag as libc::c_ulong;
        }
    }
    flags
}

/// The elevated tier's cgroups for the run, and which limits they hold;
/// a CPU limit nothing holds is refused unless accepted as lost.
fn resources(
    spec: &RunSpec,
    launch: &Launch,
    elevated: bool,
    lost: &mut Vec<String>,
) -> Result<Option<RunCgroup>, Error> {
    let cgroup = match elevated {
        true => Some(
            RunCgroup::create(crate::cgroup::Limits {
                memory: spec.limits.memory,
                processes: spec.limits.processes,
                cpu: spec.limits.cpu_millis,
            })
            .map_err(Error::Cgroup)?,
        ),
        false => None,
    };
    let placed = cgroup.as_ref().map(|c| c.placed).unwrap_or_default();
    // Fail closed: nothing but a cgroup's cpu controller holds a CPU share.
    if spec.limits.cpu_millis.is_some() && placed.cpu.is_none() {
        let loss = if elevated {
            "the CPU limit is not enforced: no cgroup hierarchy here has the cpu controller \
             (cgroup v2 needs it in the subtree moat's setup prepares: sudo moat setup)"
        } else {
            "the CPU limit is not enforced: only the elevated tier's cgroups hold it \
             (sudo moat setup --user NAME, then --tier elevated)"
        };
        if !launch.allow_degraded {
            return Err(Error::Degraded {
                losses: bullet(&[loss.to_string()]),
            });
        }
        lost.push(loss.to_string());
    }
    Ok(cgroup)
}

/// Builds `spec` into a run, in the order its layers are made.
pub(crate) fn prepare(
    spec: &RunSpec,
    launch: &Launch,
    elevation: Option<&Elevation>,
) -> Result<Prepared, Error> {
    spec.check().map_err(Error::Spec)?;
    match (spec.isolation, elevation.is_some()) {
        (Isolation::Elevated, false) => {
            return Err(Error::Launcher(
                "an elevated run is built by the launcher".into(),
            ))
        }
        (Isolation::Namespaces | Isolation::LandlockOnly, true) => {
            return Err(Error::Launcher(
                "only an elevated run is built as root".into(),
            ))
        }
        _ => {}
    }
    let ns = spec.namespaces();
    let abi = sys::landlock::abi_version();
    let mut lost = degradation(spec, launch, elevation.is_some(), abi)?;
    // Landlock-only runs get a per-run directory as their temp dir.
    let temp_dir = if ns.mount {
        None
    } else {
        Some(make_temp_dir()?)
    };
    // The command's own bundle of trusted authorities: the system's with
    // moat's authority for the run appended, bound over the system's
    // inside the sandbox, or a file beside it without mounts.
    let trust = match &spec.extra_ca {
        Some(pem) => Some((crate::trust::system_bundle()?, pem)),
        None => None,
    };
    let bundle = match (&trust, temp_dir.as_deref()) {
        (Some((system, pem)), Some(dir)) => Some(crate::trust::write_copy(dir, system, pem)?),
        (Some((system, _)), None) => Some(system.clone()),
        (None, _) => None,
    };
    let env = environment(spec, temp_dir.as_deref(), bundle.as_deref());

    let mut own_roots = Vec::new();
    let roots = opened_roots(spec, elevation, &mut own_roots)?;

    // Identity: the unelevated tier maps the person into a user namespace;
    // the elevated one idmaps mounts with a namespace that only carries
    // the mapping.
    let mut child_fds: Vec<OwnedFd> = Vec::new();
    let (uid, gid) = sys::process::ids();
    let mut idmap_ns = None;
    if let Some(e) = elevation {
        let (uid_map, gid_map) = crate::idmap::maps(e.caller.pair(), e.account.pair());
        let ns = crate::idmap::namespace(e.pins.as_ref(), &uid_map, &gid_map)
            .map_err(sys_err("creating the id mapping of the writable roots"))?;
        idmap_ns = Some(ns);
    }
    let id_maps = ns.user.then(|| {
        let line = |id: u32| format!("{} {} 1\n", id, id).into_bytes();
        (line(uid), line(gid))
    });

    let trust_bundle = trust
        .filter(|_| ns.mount)
        .map(|(system, pem)| (system, pem.as_bytes().to_vec()));
    let (plan, trees) = mounts(
        spec,
        roots,
        elevation,
        idmap_ns.as_ref().map(|n| n.as_fd()),
        trust_bundle,
    )?;
    let landlock = landlock(
        spec,
        roots,
        temp_dir.as_deref(),
        elevation,
        plan.as_ref(),
        abi,
    )?;
    let filters = seccomp::build(spec.sockets())?;
    let ch = channels(spec)?;
    let (argv, envp, exec_paths, cwd) = command(spec, &env)?;

    let cgroup = resources(spec, launch, elevation.is_some(), &mut lost)?;
    let placed = cgroup.as_ref().map(|c| c.placed).unwrap_or_default();
    let caller_limits = elevation.map(|e| e.rlimits.as_slice()).unwrap_or(&[]);

    let facts = Facts {
        landlock_abi: abi,
        landlock: landlock.as_ref().map(|l| (l.rules, l.tcp_denied)),
        seccomp_len: Some(filters.program.len()),
        placed,
        account_uid: elevation.map(|e| e.account.uid),
    };
    let enforcement = Enforcement {
        isolation: spec.isolation,
        landlock_abi: abi,
        layers: report::layers(spec, &facts),
        lost,
    };

    let plan = plan.unwrap_or_default();
    let ops = plan.ops.iter().map(|o| o.describe()).collect();
    let dns = ch.proxy.as_ref().map(|p| p.2.clone()).unwrap_or_default();
    let observe_facts = crate::observe::Facts::new(spec, temp_dir.as_deref(), &filters);
    let proxy_sockets = match &ch.proxy {
        Some(_) => moat_spec::PROXY_PORTS.len() + moat_spec::TRANSPARENT_PORTS.len() + dns.len(),
        None => 0,
    };
    let (ruleset, inner_rules) = match &landlock {
        Some(l) => (Some(l.fd.as_raw_fd()), l.inner.clone()),
        None => (None, Vec::new()),
    };
    let child = ChildSpec {
        report: ch.report.1.as_raw_fd(),
        lifeline: ch.lifeline.0.as_raw_fd(),
        lifeline_parent: ch.lifeline.1.as_raw_fd(),
        id_maps,
        slots: vec![-1; plan.slots],
        ops: plan.ops,
        trees: trees.iter().map(|t| t.as_raw_fd()).collect(),
        ruleset,
        inner_rules,
        filters: vec![filters.program.clone()],
        observe: Some((filters.observed.clone(), ch.observe.1.as_raw_fd())),
        rlimits: rlimits(spec, placed, caller_limits),
        cwd,
        exec_paths,
        argv,
        envp,
        stdio: launch.stdio.map(|s| match s {
            StdioSpec::Inherit => Stdio::Inherit,
            StdioSpec::Fd(fd) => Stdio::Fd(fd),
        }),
        proxy: ch.proxy.as_ref().map(|p| p.1.as_raw_fd()),
        dns,
        pty: ch.pty.as_ref().map(|p| (p.1.as_raw_fd(), p.2)),
        init: ns.pid,
        idmap: idmap_ns.as_ref().map_or(-1, |n| n.as_raw_fd()),
        account: elevation.map(|e| e.account.pair()),
    };
    // What the child uses, the parent closes once it is forked.
    child_fds.extend(idmap_ns);
    child_fds.extend(trees);
    child_fds.push(ch.report.1);
    child_fds.push(ch.observe.1);
    child_fds.push(ch.lifeline.0);
    child_fds.extend(landlock.map(|l| l.fd));
    let (proxy_parent, pty_parent) = (
        ch.proxy.map(|(parent, child, _)| {
            child_fds.push(child);
            parent
        }),
        ch.pty.map(|(parent, child, _)| {
            child_fds.push(child);
            parent
        }),
    );
    Ok(Prepared {
        spec: child,
        flags: clone_flags(ns),
        report_read: ch.report.0,
        lifeline_write: ch.lifeline.1,
        pty_parent,
        proxy_parent,
        proxy_sockets,
        child_fds,
        ops,
        enforcement,
        temp_dir,
        cgroup,
        observe: (ch.observe.0, observe_facts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roots::Rlimit;
    use moat_spec::{Fs, Limits};

    fn spec() -> RunSpec {
        RunSpec {
            isolation: Isolation::LandlockOnly,
            net: Net::Off,
            fs: Fs {
                workspace: PathBuf::from("/w"),
                writable: vec![PathBuf::from("/w")],
                ..Fs::default()
            },
            limits: Limits {
                processes: Some(64),
                memory: Some(1 << 30),
                file_size: Some(1 << 20),
                ..Limits::default()
            },
            env: vec![
                (OsString::from("TMPDIR"), OsString::from("/tmp")),
                (OsString::from("HOME"), OsString::from("/home/u")),
            ],
            argv: vec![OsString::from("true")],
            cwd: PathBuf::from("/w"),
            pty: false,
            extra_ca: None,
        }
    }

    #[test]
    fn a_landlock_only_run_gets_its_own_temporary_directory() {
        let env = environment(&spec(), Some(Path::new("/tmp/moat-1-x")), None);
        assert!(env.contains(&(OsString::from("TMPDIR"), OsString::from("/tmp/moat-1-x"))));
        assert!(env.contains(&(OsString::from("HOME"), OsString::from("/home/u"))));
        assert_eq!(environment(&spec(), None, None), spec().env);
    }

    #[test]
    fn a_bundle_of_its_own_replaces_the_trust_variables() {
        let mut s = spec();
        s.env
            .push(("SSL_CERT_FILE".into(), "/elsewhere.pem".into()));
        let env = environment(&s, None, Some(Path::new("/etc/ssl/b.pem")));
        for (name, _) in moat_spec::trust_env("") {
            let values: Vec<_> = env.iter().filter(|(n, _)| n == name).collect();
            assert_eq!(values.len(), 1, "{name}: {env:?}");
            assert_eq!(values[0].1, OsString::from("/etc/ssl/b.pem"));
        }
        assert!(env.contains(&(OsString::from("HOME"), OsString::from("/home/u"))));
    }

    /// The command gets the caller's limits, and the policy's only below
    /// the caller's hard limit; what a cgroup holds is no rlimit.
    #[test]
    fn rlimits_never_exceed_the_callers() {
        let caller = [
            Rlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 1024,
                hard: 4096,
            },
            Rlimit {
                resource: libc::RLIMIT_FSIZE,
                soft: 1000,
                hard: 1000,
            },
        ];
        let placed = Placed {
            memory: Some(2),
            processes: None,
            cpu: None,
        };
        let got = rlimits(&spec(), placed, &caller);
        assert_eq!(
            got,
            vec![
                (libc::RLIMIT_NOFILE, 1024, 4096),
                (libc::RLIMIT_FSIZE, 1000, 1000),
                (libc::RLIMIT_NPROC, 64, 64),
                (libc::RLIMIT_FSIZE, 1000, 1000),
            ]
        );
        let unelevated = rlimits(&spec(), Placed::default(), &[]);
        assert!(unelevated.contains(&(libc::RLIMIT_AS, 1 << 30, 1 << 30)));
    }

    /// The namespaces the spec decides are the namespaces cloned.
    #[test]
    fn clone_flags_follow_the_spec() {
        let mut s = spec();
        s.isolation = Isolation::Elevated;
        let f = clone_flags(s.namespaces());
        assert_eq!(
            f & libc::CLONE_NEWUSER as libc::c_ulong,
            0,
            "root needs no user namespace"
        );
        assert_ne!(f & libc::CLONE_NEWNET as libc::c_ulong, 0);
        s.net = Net::Host;
        assert_eq!(
            clone_flags(s.namespaces()) & libc::CLONE_NEWNET as libc::c_ulong,
            0
        );
        s.isolation = Isolation::LandlockOnly;
        assert_eq!(
            clone_flags(s.namespaces()),
            libc::CLONE_PIDFD as libc::c_ulong
        );
    }
}
