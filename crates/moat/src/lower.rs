//! The one place a resolved policy becomes a run: [`lower`] turns the
//! policy, its filesystem view and the host's environment into a
//! [`RunSpec`], the value both Linux tiers execute and the elevated tier's
//! launcher receives. Everything the backends do follows from it.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use moat_policy::env::{self, Removal};
use moat_policy::view::FsView;
use moat_policy::{EntryKind, NetworkMode, Policy};
use moat_spec::{Entry, Fs, Isolation, Kind, Limits, Net, RunSpec};

/// A lowered run, and the host variables the command does not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lowered {
    pub spec: RunSpec,
    pub env_removed: Vec<(String, Removal)>,
}

/// What the command is and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub pty: bool,
}

/// The tool-cache layers ready for the run, and moat's store they live in
/// (hidden from the command: it sees the layers only where they are
/// shown); or, where there are no layers, the variables that point the
/// tools at caches of moat's own, and those directories, writable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layers {
    pub caches: Vec<moat_spec::Cache>,
    pub store: Option<PathBuf>,
    pub env: Vec<(&'static str, OsString)>,
    pub writable: Vec<PathBuf>,
}

fn net(mode: NetworkMode) -> Net {
    match mode {
        NetworkMode::Allow => Net::Proxy,
        NetworkMode::On => Net::Host,
        // Off, and anything newer this moat does not know: fail closed.
        _ => Net::Off,
    }
}

fn kind(k: EntryKind) -> Kind {
    match k {
        EntryKind::Dir => Kind::Dir,
        EntryKind::File => Kind::File,
        _ => Kind::Other,
    }
}

/// The variables the sandbox sets whatever the host has: the marker, the
/// private /tmp (under every name the host uses for it), and with the
/// proxy, the variables that point tools at it.
fn forced(net: Net, host: &[(OsString, OsString)]) -> Vec<(&'static str, OsString)> {
    let mut out = vec![
        ("MOAT_SANDBOX", OsString::from("1")),
        ("TMPDIR", OsString::from("/tmp")),
    ];
    for name in ["TMP", "TEMP", "TEMPDIR"] {
        if host.iter().any(|(n, _)| n == name) {
            out.push((name, OsString::from("/tmp")));
        }
    }
    if net == Net::Proxy {
        out.extend(
            moat_spec::proxy_env()
                .into_iter()
                .map(|(n, v)| (n, OsString::from(v))),
        );
    }
    out
}

/// The host's runtime directory (`$XDG_RUNTIME_DIR`: the session's
/// sockets), hidden unless the run may write it.
fn runtime_dir(host: &[(OsString, OsString)], writable: &[PathBuf]) -> Option<PathBuf> {
    let dir = host
        .iter()
        .find(|(n, _)| n == "XDG_RUNTIME_DIR")
        .map(|(_, v)| PathBuf::from(v))?;
    (dir.is_absolute() && dir.is_dir() && !writable.iter().any(|w| dir.starts_with(w)))
        .then_some(dir)
}

/// Lowers a resolved policy and its view into the run `isolation` builds.
pub(crate) fn lower(
    policy: &Policy,
    view: &FsView,
    host_env: &[(OsString, OsString)],
    command: Command,
    layers: Layers,
    isolation: Isolation,
) -> Lowered {
    let net = net(policy.network.value);
    let forced = forced(net, host_env);
    let forced: Vec<(&str, &OsStr)> = forced
        .iter()
        .chain(&layers.env)
        .map(|(n, v)| (*n, v.as_os_str()))
        .collect();
    let plan = env::build(host_env, &policy.env, &forced);
    let writable: Vec<PathBuf> = view
        .writable
        .iter()
        .map(|w| w.path.clone())
        .chain(layers.writable.iter().cloned())
        .collect();
    let mut denied: Vec<Entry> = view
        .denied
        .iter()
        .map(|d| Entry {
            kind: kind(d.kind),
            path: d.path.clone(),
        })
        .collect();
    if let Some(store) = layers.store.filter(|_| !layers.caches.is_empty()) {
        denied.push(Entry {
            kind: Kind::Dir,
            path: store,
        });
    }
    if let Some(rt) = runtime_dir(host_env, &writable) {
        if !denied.iter().any(|d| rt.starts_with(&d.path)) {
            denied.push(Entry {
                kind: Kind::Dir,
                path: rt,
            });
        }
    }
    let workspace = &policy.workspace.value;
    let fs = Fs {
        workspace: std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.clone()),
        writable,
        readable: view.readable.clone(),
        denied,
        protected: view
            .protected
            .iter()
            .map(|p| Entry {
                kind: kind(p.kind),
                path: p.path.clone(),
            })
            .collect(),
        pins: view.pins.clone(),
        caches: layers.caches,
    };
    let l = &policy.limits;
    let value = |v: &Option<moat_policy::Sourced<u64>>| v.as_ref().map(|s| s.value);
    let limits = Limits {
        timeout: l.timeout.as_ref().map(|t| t.value),
        processes: value(&l.processes),
        memory: value(&l.memory),
        file_size: value(&l.file_size),
        cpu_millis: value(&l.cpu),
    };
    Lowered {
        spec: RunSpec {
            isolation,
            net,
            fs,
            limits,
            env: plan.vars,
            argv: command.argv,
            cwd: command.cwd,
            pty: command.pty,
            extra_ca: None,
        },
        env_removed: plan.removed,
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use moat_policy::view::{Denied, Protected, Writable};
    use moat_policy::{HostFacts, Settings, Source, Sourced};

    fn policy(network: NetworkMode) -> Policy {
        let facts = HostFacts {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u/prj"),
            env: Vec::new(),
        };
        let mut p = match Settings::new().resolve(
            &facts,
            Sourced::new(PathBuf::from("/home/u/prj"), Source::Api),
        ) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        p.network = Sourced::new(network, Source::Api);
        p.limits.processes = Some(Sourced::new(64, Source::Api));
        p.limits.cpu = Some(Sourced::new(1500, Source::Api));
        p
    }

    fn view() -> FsView {
        FsView {
            writable: vec![Writable {
                path: PathBuf::from("/home/u/prj"),
                source: Source::Default,
            }],
            denied: vec![Denied {
                path: PathBuf::from("/home/u/.ssh"),
                kind: EntryKind::Dir,
                source: Source::Default,
            }],
            protected: vec![Protected {
                path: PathBuf::from("/home/u/prj/.git/hooks"),
                kind: EntryKind::Symlink,
                reason: "test",
            }],
            pins: vec![PathBuf::from("/home/u/prj/.git")],
            ..FsView::default()
        }
    }

    fn host() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/u"),
            ("TMP", "/var/tmp/u"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
            ("XDG_RUNTIME_DIR", "/nonexistent-run"),
        ]
        .into_iter()
        .map(|(n, v)| (OsString::from(n), OsString::from(v)))
        .collect()
    }

    fn command() -> Command {
        Command {
            argv: vec![OsString::from("cargo"), OsString::from("build")],
            cwd: PathBuf::from("/home/u/prj/src"),
            pty: false,
        }
    }

    fn lowered(mode: NetworkMode, isolation: Isolation) -> Lowered {
        lower(
            &policy(mode),
            &view(),
            &host(),
            command(),
            Layers::default(),
            isolation,
        )
    }

    fn var<'a>(spec: &'a RunSpec, name: &str) -> Option<&'a OsStr> {
        spec.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_os_str())
    }

    /// The network mode is decided here once; everything else about the
    /// network follows from the spec.
    #[test]
    fn each_network_mode_lowers_to_one_net() {
        for (mode, want) in [
            (NetworkMode::Off, Net::Off),
            (NetworkMode::Allow, Net::Proxy),
            (NetworkMode::On, Net::Host),
        ] {
            let l = lowered(mode, Isolation::Elevated);
            assert_eq!(l.spec.net, want, "{mode:?}");
            assert_eq!(
                var(&l.spec, "HTTPS_PROXY").is_some(),
                want == Net::Proxy,
                "{mode:?}: the proxy variables go with the proxy"
            );
        }
    }

    #[test]
    fn the_view_and_limits_carry_over() {
        let l = lowered(NetworkMode::Off, Isolation::Namespaces);
        let s = &l.spec;
        assert_eq!(s.isolation, Isolation::Namespaces);
        assert_eq!(s.fs.writable, vec![PathBuf::from("/home/u/prj")]);
        assert_eq!(
            s.fs.denied,
            vec![Entry {
                kind: Kind::Dir,
                path: PathBuf::from("/home/u/.ssh")
            }]
        );
        assert_eq!(
            s.fs.protected[0].kind,
            Kind::Other,
            "symlinks are masked as files"
        );
        assert_eq!(s.fs.pins, vec![PathBuf::from("/home/u/prj/.git")]);
        assert_eq!(s.limits.processes, Some(64));
        assert_eq!(s.limits.cpu_millis, Some(1500));
        assert_eq!(s.argv, command().argv);
        assert_eq!(s.cwd, PathBuf::from("/home/u/prj/src"));
        assert_eq!(s.check(), Ok(()));
    }

    /// The environment is built once: secrets and host sockets left out,
    /// the temporary directory private under every name the host uses.
    #[test]
    fn the_environment_is_the_policys() {
        let l = lowered(NetworkMode::Off, Isolation::Namespaces);
        assert_eq!(var(&l.spec, "TMPDIR"), Some(OsStr::new("/tmp")));
        assert_eq!(var(&l.spec, "TMP"), Some(OsStr::new("/tmp")));
        assert_eq!(var(&l.spec, "MOAT_SANDBOX"), Some(OsStr::new("1")));
        assert_eq!(var(&l.spec, "AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(var(&l.spec, "XDG_RUNTIME_DIR"), None);
        assert!(l
            .env_removed
            .iter()
            .any(|(n, _)| n == "AWS_SECRET_ACCESS_KEY"));
    }

    /// The session's runtime directory is hidden, unless it is writable.
    #[test]
    fn the_runtime_directory_is_hidden_unless_writable() {
        let dir = std::env::temp_dir();
        let writable = vec![PathBuf::from("/home/u/prj")];
        let env = vec![(
            OsString::from("XDG_RUNTIME_DIR"),
            dir.clone().into_os_string(),
        )];
        assert_eq!(runtime_dir(&env, &writable), Some(dir.clone()));
        assert_eq!(runtime_dir(&env, std::slice::from_ref(&dir)), None);
        let relative = vec![(OsString::from("XDG_RUNTIME_DIR"), OsString::from("run"))];
        assert_eq!(runtime_dir(&relative, &writable), None);
    }

    /// Cache layers go into the spec, and moat's store is hidden.
    #[test]
    fn cache_layers_are_lowered_and_their_store_hidden() {
        let cache = moat_spec::Cache {
            at: PathBuf::from("/home/u/.cargo"),
            shared: PathBuf::from("/home/u/.local/state/moat/caches/cargo/shared"),
            run: PathBuf::from("/home/u/.local/state/moat/caches/cargo/runs/1-a"),
        };
        let store = PathBuf::from("/home/u/.local/state/moat/caches");
        let l = lower(
            &policy(NetworkMode::Off),
            &view(),
            &host(),
            command(),
            Layers {
                caches: vec![cache.clone()],
                store: Some(store.clone()),
                ..Default::default()
            },
            Isolation::Namespaces,
        );
        assert_eq!(l.spec.fs.caches, vec![cache]);
        assert!(l.spec.fs.denied.contains(&Entry {
            kind: Kind::Dir,
            path: store
        }));
        assert_eq!(l.spec.check(), Ok(()));
    }

    /// Without layers, the tools' variables are set whatever the host has,
    /// and their directories are writable; the store is not hidden.
    #[test]
    fn redirected_caches_are_set_and_writable() {
        let dir = PathBuf::from("/home/u/.local/state/moat/caches/cargo/direct");
        let mut host_env = host();
        host_env.push((
            OsString::from("CARGO_HOME"),
            OsString::from("/home/u/.cargo"),
        ));
        let l = lower(
            &policy(NetworkMode::Off),
            &view(),
            &host_env,
            command(),
            Layers {
                env: vec![("CARGO_HOME", dir.clone().into_os_string())],
                writable: vec![dir.clone()],
                ..Default::default()
            },
            Isolation::LandlockOnly,
        );
        assert!(l
            .spec
            .env
            .contains(&(OsString::from("CARGO_HOME"), dir.clone().into_os_string())));
        assert!(!l.spec.env.contains(&(
            OsString::from("CARGO_HOME"),
            OsString::from("/home/u/.cargo")
        )));
        assert!(l.spec.fs.writable.contains(&dir));
        assert!(l.spec.fs.caches.is_empty());
        assert_eq!(l.spec.check(), Ok(()));
    }
}
