//! The policy a program asks for, and its resolution against the host.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use moat_config::{load, user_config_path, WORKSPACE_CONFIG};
use moat_policy::{
    HostFacts, Layer, NetworkMode, Policy as Resolved_, Preset, ReadMode, Settings, Source, Sourced,
};

use crate::Error;

/// What a command may do, as a builder. Starts from moat's defaults
/// (`workspace-write`, network off, secrets unreadable).
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) layer: Layer,
    pub(crate) config_files: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::workspace_write()
    }
}

impl Policy {
    /// The workspace and a private temporary directory are writable.
    pub fn workspace_write() -> Policy {
        Policy::with_preset(Preset::WorkspaceWrite)
    }

    /// Nothing of the host is writable (a private /tmp still is).
    pub fn read_only() -> Policy {
        Policy::with_preset(Preset::ReadOnly)
    }

    /// No sandbox at all.
    pub fn full_access() -> Policy {
        Policy::with_preset(Preset::FullAccess)
    }

    fn with_preset(preset: Preset) -> Policy {
        let mut layer = Layer::new(Source::Api);
        layer.preset = Some(preset);
        Policy {
            layer,
            config_files: false,
        }
    }

    /// Wraps a layer built elsewhere (the CLI's flags).
    pub fn from_layer(layer: Layer) -> Policy {
        Policy {
            layer,
            config_files: false,
        }
    }

    /// Also apply the person's config file and the workspace's
    /// `.moat/config.toml` (which can only narrow).
    pub fn with_config_files(mut self) -> Policy {
        self.config_files = true;
        self
    }

    pub fn allow_write(mut self, path: impl Into<PathBuf>) -> Policy {
        self.layer.write.push(path.into());
        self
    }

    pub fn deny_read(mut self, path: impl Into<PathBuf>) -> Policy {
        self.layer.deny_read.push(path.into());
        self
    }

    pub fn allow_read(mut self, path: impl Into<PathBuf>) -> Policy {
        self.layer.allow_read.push(path.into());
        self
    }

    pub fn read_mode(mut self, mode: ReadMode) -> Policy {
        self.layer.read = Some(mode);
        self
    }

    /// Keeps `name` (relative to each writable root) read-only.
    pub fn protect(mut self, name: impl Into<PathBuf>) -> Policy {
        self.layer.protect.push(name.into());
        self
    }

    /// Makes all of every `.git` read-only.
    pub fn strict_git(mut self, on: bool) -> Policy {
        self.layer.strict_git = Some(on);
        self
    }

    /// Refuses to run where the network policy could only be advised
    /// through the environment (Windows' unelevated tier).
    pub fn require_network_isolation(mut self, on: bool) -> Policy {
        self.layer.require_network_isolation = Some(on);
        self
    }

    pub fn network(mut self, mode: NetworkMode) -> Policy {
        self.layer.network = Some(mode);
        self
    }

    /// With [`NetworkMode::Allow`]: a name, `*.suffix` or `@group` the
    /// command may reach through moat's proxy.
    pub fn allow_domain(mut self, pattern: impl Into<String>) -> Policy {
        self.layer.allow_domains.push(pattern.into());
        self
    }

    /// A name or `*.suffix` never reachable (wins over `allow_domain`).
    pub fn deny_domain(mut self, pattern: impl Into<String>) -> Policy {
        self.layer.deny_domains.push(pattern.into());
        self
    }

    /// A private address block the command may reach (`10.0.0.0/8`).
    pub fn allow_cidr(mut self, cidr: impl Into<String>) -> Policy {
        self.layer.allow_cidr.push(cidr.into());
        self
    }

    /// Pins `name` to `address` for the proxy, like curl's `--resolve`.
    pub fn resolve(mut self, name: &str, address: std::net::IpAddr) -> Policy {
        self.layer.resolve.push(format!("{}:{}", name, address));
        self
    }

    /// With [`NetworkMode::Allow`]: the command's `env` holds a
    /// placeholder, and moat's proxy puts the variable's real value (from
    /// this process's environment) into HTTPS requests to `hosts` only.
    pub fn secret(mut self, env: impl Into<String>, hosts: &[&str]) -> Policy {
        self.layer
            .secrets
            .push(moat_policy::secrets::SecretBinding {
                env: env.into(),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                file: None,
            });
        self
    }

    /// With [`NetworkMode::Allow`]: `host` takes only requests with one of
    /// `methods` (empty: any) under one of the path prefixes `paths`
    /// (empty: any path).
    pub fn allow_request(mut self, host: &str, methods: &[&str], paths: &[&str]) -> Policy {
        self.layer
            .request_rules
            .push(moat_policy::secrets::RequestRule {
                host: host.to_string(),
                methods: methods.iter().map(|m| m.to_string()).collect(),
                paths: paths.iter().map(|p| p.to_string()).collect(),
            });
        self
    }

    /// Another authority (a PEM file) moat trusts for the certificates of
    /// the hosts whose TLS it terminates.
    pub fn upstream_ca(mut self, file: impl Into<PathBuf>) -> Policy {
        self.layer.upstream_ca.push(file.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Policy {
        self.layer.env_set.push((name.into(), value.into()));
        self
    }

    /// Passes a host variable through even if it looks like a secret.
    pub fn pass_env(mut self, name: impl Into<String>) -> Policy {
        self.layer.env_pass.push(name.into());
        self
    }

    pub fn clear_env(mut self) -> Policy {
        self.layer.env_clear = Some(true);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Policy {
        self.layer.timeout = Some(timeout);
        self
    }

    pub fn max_processes(mut self, n: u64) -> Policy {
        self.layer.processes = Some(n);
        self
    }

    pub fn max_memory(mut self, bytes: u64) -> Policy {
        self.layer.memory = Some(bytes);
        self
    }

    pub fn max_file_size(mut self, bytes: u64) -> Policy {
        self.layer.file_size = Some(bytes);
        self
    }

    /// Most CPUs the run may keep busy, in thousandths (`1500` is one and
    /// a half); enforced by the elevated tier's cgroup only.
    pub fn max_cpus_millis(mut self, millis: u64) -> Policy {
        self.layer.cpu = Some(millis);
        self
    }
}

/// A resolved policy and where its config came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub policy: Resolved_,
    pub facts: HostFacts,
    /// The config files looked for, in precedence order, and whether each
    /// was found.
    pub config_files: Vec<(PathBuf, Source, bool)>,
}

fn home_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(h) if Path::new(&h).is_absolute() => PathBuf::from(h),
        _ => PathBuf::from("/"),
    }
}

/// The host facts of this process.
pub(crate) fn host_facts() -> Result<HostFacts, Error> {
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        what: "cannot read the current directory",
        path: PathBuf::from("."),
        source,
    })?;
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    Ok(HostFacts {
        home: home_dir(),
        cwd,
        env,
    })
}

/// Resolves `policy` for `workspace` (default: the current directory).
pub fn resolve(policy: &Policy, workspace: Option<&Path>) -> Result<Resolved, Error> {
    let facts = host_facts()?;
    let ws: Sourced<PathBuf> = match workspace {
        Some(w) => Sourced::new(w.to_path_buf(), policy.layer.source.clone()),
        None => Sourced::default_value(facts.cwd.clone()),
    };
    let ws_abs = moat_policy::paths::absolutize(&ws.value, &facts.home, Some(&facts.cwd))
        .unwrap_or_else(|_| ws.value.clone());
    let mut settings = Settings::new();
    let mut config_files = Vec::new();
    if policy.config_files {
        let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
        let user = user_config_path(xdg.as_deref(), &facts.home);
        let source = Source::UserConfig(user.clone());
        let layer = load(&user, source.clone())?;
        config_files.push((user, source, layer.is_some()));
        if let Some(layer) = layer {
            settings.push(layer);
        }
        let wsc = ws_abs.join(WORKSPACE_CONFIG);
        let source = Source::WorkspaceConfig(wsc.clone());
        let layer = load(&wsc, source.clone())?;
        config_files.push((wsc, source, layer.is_some()));
        if let Some(layer) = layer {
            settings.push(layer);
        }
    }
    settings.push(policy.layer.clone());
    let resolved = settings.resolve(&facts, ws)?;
    Ok(Resolved {
        policy: resolved,
        facts,
        config_files,
    })
}
