//! Layers in, one effective policy out.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::domains::{self, Cidr, DomainRules, Pattern, RuleError};
use crate::host::HostFacts;
use crate::known::{DENIED_UNDER_HOME, PROTECTED_IN_ROOT};
use crate::layer::{Layer, Trust};
use crate::paths::{absolutize, is_within, PathError};
use crate::secrets::{EntryError, RequestRule, SecretBinding};
use crate::types::{EnvPolicy, Limits, NetworkMode, Preset, ReadMode, Source, Sourced};

/// A setting a layer asked for that did not take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub source: Source,
    /// The config key, e.g. `network.mode`.
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignored {} = {} from {}: {}",
            self.key, self.value, self.source, self.reason
        )
    }
}

/// A policy that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// A path in a layer is unusable.
    BadPath {
        source: Source,
        key: &'static str,
        error: PathError,
    },
    /// The workspace is the filesystem root, which would make everything
    /// writable.
    WorkspaceIsRoot,
    /// A writable root lies inside a path whose reads are denied.
    WriteInsideDenied {
        write: Sourced<PathBuf>,
        denied: Sourced<PathBuf>,
    },
    /// A name to protect is absolute or climbs out of its root.
    BadProtectedName { source: Source, name: PathBuf },
    /// An environment variable name that cannot be set.
    BadEnvName { source: Source, name: String },
    /// A network allowlist entry that is not usable.
    BadNetworkRule {
        source: Source,
        key: &'static str,
        error: crate::domains::RuleError,
    },
    /// A secret binding or a request rule that is not usable.
    BadSecretEntry {
        source: Source,
        key: &'static str,
        /// The entry as written (for a secret, its variable's name).
        entry: String,
        error: EntryError,
    },
    /// One variable bound as a secret twice.
    DuplicateSecret {
        env: String,
        first: Source,
        second: Source,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BadPath { source, key, error } => {
                write!(f, "{} in {}: {}", key, source, error)
            }
            PolicyError::WorkspaceIsRoot => f.write_str(
                "the workspace is `/`, which would make the whole filesystem writable\n\
                 hint: run moat from your project's directory or pass --workspace DIR",
            ),
            PolicyError::WriteInsideDenied { write, denied } => write!(
                f,
                "writable root {} ({}) is inside {}, whose reads are denied ({})\n\
                 hint: lift the denial with allow_read in your config or --allow-read",
                write.value.display(),
                write.source,
                denied.value.display(),
                denied.source
            ),
            PolicyError::BadProtectedName { source, name } => write!(
                f,
                "filesystem.protect in {}: `{}` must be a relative path inside each writable root",
                source,
                name.display()
            ),
            PolicyError::BadEnvName { source, name } => write!(
                f,
                "env in {}: `{}` is not a valid variable name (empty, or contains `=` or NUL)",
                source, name
            ),
            PolicyError::BadNetworkRule { source, key, error } => {
                write!(f, "{} in {}: {}", key, source, error)
            }
            PolicyError::BadSecretEntry {
                source,
                key,
                entry,
                error,
            } => write!(f, "{} in {}: {}: {}", key, source, entry, error),
            PolicyError::DuplicateSecret { env, first, second } => write!(
                f,
                "the secret {} is bound twice, in {} and in {}\n\
                 hint: bind each variable once, with all of its hosts",
                env, first, second
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The effective policy: every value resolved, absolute and sourced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub preset: Sourced<Preset>,
    pub workspace: Sourced<PathBuf>,
    /// Writable roots beyond the workspace.
    pub write: Vec<Sourced<PathBuf>>,
    pub read: Sourced<ReadMode>,
    /// Paths whose reads are denied, the built-in ones included.
    pub deny_read: Vec<Sourced<PathBuf>>,
    /// Extra readable paths (`restricted` mode) and lifted denials.
    pub allow_read: Vec<Sourced<PathBuf>>,
    /// Names kept read-only inside each writable root.
    pub protect: Vec<Sourced<PathBuf>>,
    pub strict_git: Sourced<bool>,
    pub network: Sourced<NetworkMode>,
    /// Refuse to run where the network policy cannot be enforced and would
    /// only be advised through the environment (Windows' unelevated tier).
    pub require_network_isolation: Sourced<bool>,
    /// The allowlist of `network = allow` (groups expanded).
    pub allow_domains: Vec<Sourced<Pattern>>,
    /// Denied names; deny wins over allow.
    pub deny_domains: Vec<Sourced<Pattern>>,
    pub allow_cidr: Vec<Sourced<Cidr>>,
    pub resolve: Vec<Sourced<(String, IpAddr)>>,
    /// Secrets the proxy injects: names checked, hosts canonical, files
    /// absolute. Their hosts are on the allowlist too.
    pub secrets: Vec<Sourced<SecretBinding>>,
    /// Which requests a host takes; a host with no rule takes any.
    pub request_rules: Vec<Sourced<RequestRule>>,
    /// Extra certificate authorities for upstream servers (absolute).
    pub upstream_ca: Vec<Sourced<PathBuf>>,
    pub env: EnvPolicy,
    pub limits: Limits,
    /// Settings that did not take effect, and why.
    pub ignored: Vec<Ignored>,
    pub home: PathBuf,
}

impl Policy {
    /// True when the preset asks for no sandbox at all.
    pub fn is_unsandboxed(&self) -> bool {
        self.preset.value == Preset::FullAccess
    }

    /// The network rules as the proxy applies them.
    pub fn domain_rules(&self) -> DomainRules {
        DomainRules {
            allow: self.allow_domains.iter().map(|s| s.value.clone()).collect(),
            deny: self.deny_domains.iter().map(|s| s.value.clone()).collect(),
            allow_cidr: self.allow_cidr.iter().map(|s| s.value).collect(),
            resolve: self.resolve.iter().map(|s| s.value.clone()).collect(),
        }
    }

    /// Every writable root: the workspace (unless read-only) and the extra
    /// ones.
    pub fn writable_roots(&self) -> Vec<Sourced<PathBuf>> {
        let mut roots = Vec::new();
        if self.preset.value != Preset::ReadOnly {
            roots.push(self.workspace.clone());
        }
        roots.extend(self.write.iter().cloned());
        roots
    }
}

/// The layers of a run, lowest precedence first. Built-in defaults are
/// implicit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    layers: Vec<Layer>,
}

impl Settings {
    pub fn new() -> Settings {
        Settings::default()
    }

    /// Adds a layer above the ones already added.
    pub fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Resolves the layers against the host, for `workspace`.
    pub fn resolve(
        &self,
        facts: &HostFacts,
        workspace: Sourced<PathBuf>,
    ) -> Result<Policy, PolicyError> {
        let home = facts.home.clone();
        let ws_path = absolutize(&workspace.value, &home, Some(&facts.cwd)).map_err(|error| {
            PolicyError::BadPath {
                source: workspace.source.clone(),
                key: "workspace",
                error,
            }
        })?;
        if ws_path == Path::new("/") {
            return Err(PolicyError::WorkspaceIsRoot);
        }
        let mut p = Policy {
            preset: Sourced::default_value(Preset::WorkspaceWrite),
            workspace: Sourced::new(ws_path, workspace.source),
            write: Vec::new(),
            read: Sourced::default_value(ReadMode::All),
            deny_read: DENIED_UNDER_HOME
                .iter()
                .map(|rel| Sourced::default_value(home.join(rel)))
                .collect(),
            allow_read: Vec::new(),
            protect: PROTECTED_IN_ROOT
                .iter()
                .map(|name| Sourced::default_value(PathBuf::from(name)))
                .collect(),
            strict_git: Sourced::default_value(false),
            require_network_isolation: Sourced::default_value(false),
            network: Sourced::default_value(NetworkMode::Off),
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            allow_cidr: Vec::new(),
            resolve: Vec::new(),
            secrets: Vec::new(),
            request_rules: Vec::new(),
            upstream_ca: Vec::new(),
            env: EnvPolicy {
                clear: Sourced::default_value(false),
                pass: Vec::new(),
                set: Vec::new(),
            },
            limits: Limits::default(),
            ignored: Vec::new(),
            home,
        };
        for layer in &self.layers {
            apply(&mut p, layer, facts)?;
        }
        // An allowed read lifts every denial at or below it.
        let allow = p.allow_read.clone();
        p.deny_read
            .retain(|d| !allow.iter().any(|a| is_within(&d.value, &a.value)));
        for w in p.writable_roots() {
            if let Some(d) = p.deny_read.iter().find(|d| is_within(&w.value, &d.value)) {
                return Err(PolicyError::WriteInsideDenied {
                    write: w,
                    denied: d.clone(),
                });
            }
        }
        Ok(p)
    }
}

fn ignore(p: &mut Policy, layer: &Layer, key: &'static str, value: String, reason: &str) {
    p.ignored.push(Ignored {
        source: layer.source.clone(),
        key,
        value,
        reason: reason.to_string(),
    });
}

const WIDENS: &str = "a workspace config can only narrow the policy; \
                      set this in your own config (~/.config/moat/config.toml) or pass a flag";

/// Applies a scalar setting, refusing to widen from a narrow-only layer.
/// `T`'s order runs from the most restrictive value to the least.
fn narrowable<T: Ord + Copy + fmt::Display>(
    p: &mut Policy,
    layer: &Layer,
    key: &'static str,
    asked: Option<T>,
    current: fn(&mut Policy) -> &mut Sourced<T>,
) {
    let value = match asked {
        Some(value) => value,
        None => return,
    };
    let slot = current(p);
    if layer.trust == Trust::NarrowOnly && value > slot.value {
        let v = value.to_string();
        ignore(p, layer, key, v, WIDENS);
        return;
    }
    *slot = Sourced::new(value, layer.source.clone());
}

/// Applies a limit, where a narrow-only layer may only lower it.
fn limit<T: Ord + Copy + fmt::Debug>(
    p: &mut Policy,
    layer: &Layer,
    key: &'static str,
    asked: Option<T>,
    current: fn(&mut Policy) -> &mut Option<Sourced<T>>,
) {
    let value = match asked {
        Some(value) => value,
        None => return,
    };
    let slot = current(p);
    let widens = match slot {
        Some(existing) => value > existing.value,
        None => false,
    };
    if layer.trust == Trust::NarrowOnly && widens {
        ignore(p, layer, key, format!("{:?}", value), WIDENS);
        return;
    }
    *slot = Some(Sourced::new(value, layer.source.clone()));
}

fn paths(
    layer: &Layer,
    key: &'static str,
    raw: &[PathBuf],
    home: &Path,
    facts: &HostFacts,
    workspace: &Path,
) -> Result<Vec<Sourced<PathBuf>>, PolicyError> {
    // Relative paths mean: flags, relative to the current directory; a
    // workspace config, relative to the workspace; the person's config file
    // has no sensible base, so they are an error there.
    let base = match layer.source {
        Source::Flag(_) | Source::Api => Some(facts.cwd.as_path()),
        Source::WorkspaceConfig(_) => Some(workspace),
        _ => None,
    };
    raw.iter()
        .map(|r| {
            absolutize(r, home, base)
                .map(|p| Sourced::new(p, layer.source.clone()))
                .map_err(|error| PolicyError::BadPath {
                    source: layer.source.clone(),
                    key,
                    error,
                })
        })
        .collect()
}

fn rule_error<'a>(layer: &'a Layer, key: &'static str) -> impl Fn(RuleError) -> PolicyError + 'a {
    move |error| PolicyError::BadNetworkRule {
        source: layer.source.clone(),
        key,
        error,
    }
}

/// Adds a layer's allowlist entries. A workspace config may only narrow:
/// its deny entries always count, its allow entries and address blocks only
/// where the person's own settings already allow them, and its pins never
/// (a pin could send an allowed name to another address).
fn apply_network_rules(p: &mut Policy, layer: &Layer) -> Result<(), PolicyError> {
    let narrow = layer.trust == Trust::NarrowOnly;
    for entry in &layer.deny_domains {
        for pat in domains::patterns(entry).map_err(rule_error(layer, "network.deny"))? {
            if !p.deny_domains.iter().any(|d| d.value == pat) {
                p.deny_domains.push(Sourced::new(pat, layer.source.clone()));
            }
        }
    }
    let trusted = p.domain_rules();
    for entry in &layer.allow_domains {
        for pat in domains::patterns(entry).map_err(rule_error(layer, "network.allow"))? {
            if narrow && !trusted.allows_all_of(&pat) {
                ignore(p, layer, "network.allow", pat.to_string(), WIDENS);
            } else if !p.allow_domains.iter().any(|a| a.value == pat) {
                p.allow_domains
                    .push(Sourced::new(pat, layer.source.clone()));
            }
        }
    }
    for entry in &layer.allow_cidr {
        let cidr = Cidr::parse(entry).map_err(rule_error(layer, "network.allow_cidr"))?;
        if narrow && !trusted.allow_cidr.iter().any(|t| cidr.within(t)) {
            ignore(p, layer, "network.allow_cidr", cidr.to_string(), WIDENS);
        } else if !p.allow_cidr.iter().any(|c| c.value == cidr) {
            p.allow_cidr.push(Sourced::new(cidr, layer.source.clone()));
        }
    }
    for entry in &layer.resolve {
        let pin = domains::resolve_entry(entry).map_err(rule_error(layer, "network.resolve"))?;
        if narrow {
            ignore(p, layer, "network.resolve", entry.clone(), WIDENS);
        } else {
            p.resolve.retain(|r| r.value.0 != pin.0);
            p.resolve.push(Sourced::new(pin, layer.source.clone()));
        }
    }
    Ok(())
}

const NO_WORKSPACE_SECRETS: &str = "a workspace config cannot add secrets; \
                                    put them in your own config or on the command line";
const NO_WORKSPACE_CAS: &str = "a workspace config cannot add upstream certificate authorities; \
                                put them in your own config or on the command line";

/// Adds a layer's secrets, request rules and upstream CAs. A workspace
/// config cannot add secrets (it would choose where one is sent) or CAs (it
/// would choose whom moat trusts to be that host); its request rules count,
/// but only where they narrow what the person's own rules let a host take.
fn apply_secrets(p: &mut Policy, layer: &Layer, facts: &HostFacts) -> Result<(), PolicyError> {
    let narrow = layer.trust == Trust::NarrowOnly;
    let bad = |key: &'static str, entry: &str, error: EntryError| PolicyError::BadSecretEntry {
        source: layer.source.clone(),
        key,
        entry: entry.to_string(),
        error,
    };
    for raw in &layer.secrets {
        if narrow {
            ignore(
                p,
                layer,
                "network.secrets",
                raw.to_string(),
                NO_WORKSPACE_SECRETS,
            );
            continue;
        }
        let mut secret = raw
            .checked()
            .map_err(|e| bad("network.secrets", &raw.env, e))?;
        if let Some(first) = p.secrets.iter().find(|s| s.value.env == secret.env) {
            return Err(PolicyError::DuplicateSecret {
                env: secret.env,
                first: first.source.clone(),
                second: layer.source.clone(),
            });
        }
        // No base: a secret's file is never relative to where moat runs.
        if let Some(file) = &secret.file {
            let abs = absolutize(file, &p.home, None).map_err(|error| PolicyError::BadPath {
                source: layer.source.clone(),
                key: "network.secrets.file",
                error,
            })?;
            secret.file = Some(abs);
        }
        allow_secret_hosts(p, &secret.hosts, &layer.source);
        p.secrets.push(Sourced::new(secret, layer.source.clone()));
    }
    // What the layers below allow: a workspace rule must fit inside it.
    let trusted = p.request_rules.clone();
    for raw in &layer.request_rules {
        let rule = raw
            .checked()
            .map_err(|e| bad("network.requests", &raw.to_string(), e))?;
        let outer: Vec<&RequestRule> = trusted
            .iter()
            .filter(|t| t.value.host == rule.host)
            .map(|t| &t.value)
            .collect();
        // A host without rules takes anything, so a first rule narrows;
        // beside existing rules a new one adds what it allows.
        if narrow && !outer.is_empty() && !outer.iter().any(|o| rule.within(o)) {
            ignore(p, layer, "network.requests", rule.to_string(), WIDENS);
        } else if !p.request_rules.iter().any(|r| r.value == rule) {
            p.request_rules
                .push(Sourced::new(rule, layer.source.clone()));
        }
    }
    let home = p.home.clone();
    let ws = p.workspace.value.clone();
    for ca in paths(
        layer,
        "network.upstream_ca",
        &layer.upstream_ca,
        &home,
        facts,
        &ws,
    )? {
        if narrow {
            let shown = ca.value.display().to_string();
            ignore(p, layer, "network.upstream_ca", shown, NO_WORKSPACE_CAS);
        } else if !p.upstream_ca.iter().any(|c| c.value == ca.value) {
            p.upstream_ca.push(ca);
        }
    }
    Ok(())
}

/// Puts a secret's hosts on the allowlist, so that `--network allow`
/// reaches them: names as exact patterns, addresses as one-address blocks
/// (the proxy decides an address only by its blocks).
fn allow_secret_hosts(p: &mut Policy, hosts: &[String], source: &Source) {
    for h in hosts {
        match h.parse::<IpAddr>() {
            Ok(ip) => {
                if !p.allow_cidr.iter().any(|c| c.value.contains(ip)) {
                    let prefix = if ip.is_ipv4() { 32 } else { 128 };
                    let cidr = Cidr { addr: ip, prefix };
                    p.allow_cidr.push(Sourced::new(cidr, source.clone()));
                }
            }
            Err(_) => {
                if !p.allow_domains.iter().any(|a| a.value.matches(h)) {
                    let pat = Pattern::Exact(h.clone());
                    p.allow_domains.push(Sourced::new(pat, source.clone()));
                }
            }
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

fn apply(p: &mut Policy, layer: &Layer, facts: &HostFacts) -> Result<(), PolicyError> {
    let narrow = layer.trust == Trust::NarrowOnly;
    narrowable(p, layer, "preset", layer.preset, |p| &mut p.preset);
    narrowable(p, layer, "filesystem.read", layer.read, |p| &mut p.read);
    narrowable(p, layer, "network.mode", layer.network, |p| &mut p.network);
    apply_network_rules(p, layer)?;
    apply_secrets(p, layer, facts)?;
    // For these booleans, `true` is the narrower value.
    if let Some(strict) = layer.strict_git {
        if narrow && !strict && p.strict_git.value {
            ignore(p, layer, "filesystem.strict_git", "false".into(), WIDENS);
        } else {
            p.strict_git = Sourced::new(strict, layer.source.clone());
        }
    }
    if let Some(required) = layer.require_network_isolation {
        if narrow && !required && p.require_network_isolation.value {
            ignore(
                p,
                layer,
                "network.require_isolation",
                "false".into(),
                WIDENS,
            );
        } else {
            p.require_network_isolation = Sourced::new(required, layer.source.clone());
        }
    }
    if let Some(clear) = layer.env_clear {
        if narrow && !clear && p.env.clear.value {
            ignore(p, layer, "env.clear", "false".into(), WIDENS);
        } else {
            p.env.clear = Sourced::new(clear, layer.source.clone());
        }
    }

    let home = p.home.clone();
    let ws = p.workspace.value.clone();
    for w in paths(layer, "filesystem.write", &layer.write, &home, facts, &ws)? {
        let already = p
            .writable_roots()
            .iter()
            .any(|r| is_within(&w.value, &r.value));
        if narrow && !already {
            ignore(
                p,
                layer,
                "filesystem.write",
                w.value.display().to_string(),
                WIDENS,
            );
        } else if !already {
            p.write.push(w);
        }
    }
    for d in paths(
        layer,
        "filesystem.deny_read",
        &layer.deny_read,
        &home,
        facts,
        &ws,
    )? {
        if !p.deny_read.iter().any(|e| e.value == d.value) {
            p.deny_read.push(d);
        }
    }
    for a in paths(
        layer,
        "filesystem.allow_read",
        &layer.allow_read,
        &home,
        facts,
        &ws,
    )? {
        if narrow {
            ignore(
                p,
                layer,
                "filesystem.allow_read",
                a.value.display().to_string(),
                WIDENS,
            );
        } else {
            p.allow_read.push(a);
        }
    }
    for name in &layer.protect {
        let climbs = name
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if name.as_os_str().is_empty() || climbs {
            return Err(PolicyError::BadProtectedName {
                source: layer.source.clone(),
                name: name.clone(),
            });
        }
        if !p.protect.iter().any(|e| &e.value == name) {
            p.protect
                .push(Sourced::new(name.clone(), layer.source.clone()));
        }
    }

    for name in &layer.env_pass {
        if !valid_env_name(name) {
            return Err(PolicyError::BadEnvName {
                source: layer.source.clone(),
                name: name.clone(),
            });
        }
        if narrow {
            // Passing a host variable through could hand a secret to the
            // command.
            ignore(p, layer, "env.pass", name.clone(), WIDENS);
        } else {
            p.env
                .pass
                .push(Sourced::new(name.clone(), layer.source.clone()));
        }
    }
    for (name, value) in &layer.env_set {
        if !valid_env_name(name) || value.contains('\0') {
            return Err(PolicyError::BadEnvName {
                source: layer.source.clone(),
                name: name.clone(),
            });
        }
        p.env.set.retain(|s| &s.value.0 != name);
        p.env.set.push(Sourced::new(
            (name.clone(), value.clone()),
            layer.source.clone(),
        ));
    }

    limit(p, layer, "limits.timeout", layer.timeout, |p| {
        &mut p.limits.timeout
    });
    limit(p, layer, "limits.processes", layer.processes, |p| {
        &mut p.limits.processes
    });
    limit(p, layer, "limits.memory", layer.memory, |p| {
        &mut p.limits.memory
    });
    limit(p, layer, "limits.file_size", layer.file_size, |p| {
        &mut p.limits.file_size
    });
    limit(p, layer, "limits.cpus", layer.cpu, |p| &mut p.limits.cpu);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn facts() -> HostFacts {
        HostFacts {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/ws"),
            env: Vec::new(),
        }
    }

    fn ws() -> Sourced<PathBuf> {
        Sourced::default_value(PathBuf::from("/ws"))
    }

    fn user() -> Layer {
        Layer::new(Source::UserConfig(PathBuf::from(
            "/home/u/.config/moat/config.toml",
        )))
    }

    fn repo() -> Layer {
        Layer::new(Source::WorkspaceConfig(PathBuf::from(
            "/ws/.moat/config.toml",
        )))
    }

    fn flags() -> Layer {
        Layer::new(Source::Flag("--test".into()))
    }

    #[test]
    fn defaults() {
        let p = Settings::new().resolve(&facts(), ws()).unwrap();
        assert_eq!(p.preset.value, Preset::WorkspaceWrite);
        assert_eq!(p.network.value, NetworkMode::Off);
        assert_eq!(p.read.value, ReadMode::All);
        assert!(p
            .deny_read
            .iter()
            .any(|d| d.value == Path::new("/home/u/.ssh")));
        assert!(p.protect.iter().any(|d| d.value == Path::new(".vscode")));
        assert_eq!(p.writable_roots().len(), 1);
        assert!(p.ignored.is_empty());
    }

    #[test]
    fn a_workspace_config_narrows_the_allowlist_and_never_widens_it() {
        let mut u = user();
        u.network = Some(NetworkMode::Allow);
        u.allow_domains = vec!["@rust".into(), "*.example.com".into()];
        u.allow_cidr = vec!["10.0.0.0/8".into()];
        let mut r = repo();
        r.network = Some(NetworkMode::On); // widens the mode
        r.allow_domains = vec!["a.example.com".into(), "pypi.org".into()]; // narrows; widens
        r.deny_domains = vec!["crates.io".into()]; // always counts
        r.allow_cidr = vec!["10.1.0.0/16".into(), "192.168.0.0/16".into()]; // narrows; widens
        r.resolve = vec!["crates.io:10.0.0.5".into()]; // a pin can redirect: never
        let mut settings = Settings::new();
        settings.push(u);
        settings.push(r);
        let p = settings.resolve(&facts(), ws()).unwrap();
        assert_eq!(p.network.value, NetworkMode::Allow);
        let rules = p.domain_rules();
        assert!(matches!(
            rules.decide("crates.io"),
            Ok(domains::Decision::Denied(_))
        ));
        assert!(matches!(
            rules.decide("index.crates.io"),
            Ok(domains::Decision::Allowed(_))
        ));
        assert!(matches!(
            rules.decide("a.example.com"),
            Ok(domains::Decision::Allowed(_))
        ));
        assert_eq!(rules.decide("pypi.org"), Ok(domains::Decision::Unlisted));
        assert_eq!(rules.allow_cidr.len(), 2, "{:?}", rules.allow_cidr);
        assert!(rules.resolve.is_empty());
        let ignored: Vec<(&str, &str)> = p
            .ignored
            .iter()
            .map(|i| (i.key, i.value.as_str()))
            .collect();
        for (key, value) in [
            ("network.mode", "on"),
            ("network.allow", "pypi.org"),
            ("network.allow_cidr", "192.168.0.0/16"),
            ("network.resolve", "crates.io:10.0.0.5"),
        ] {
            assert!(
                ignored.contains(&(key, value)),
                "{key} {value}: {ignored:?}"
            );
        }
    }

    #[test]
    fn bad_network_rules_name_their_source() {
        let mut f = flags();
        f.allow_domains = vec!["*.com".into()];
        let mut settings = Settings::new();
        settings.push(f);
        let e = settings.resolve(&facts(), ws()).unwrap_err().to_string();
        assert!(
            e.contains("network.allow") && e.contains("too broad"),
            "{e}"
        );
    }

    fn secret(env: &str, hosts: &[&str]) -> SecretBinding {
        SecretBinding {
            env: env.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            file: None,
        }
    }

    fn rule(host: &str, methods: &[&str], paths: &[&str]) -> RequestRule {
        RequestRule {
            host: host.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn resolve(layers: Vec<Layer>) -> Result<Policy, PolicyError> {
        let mut settings = Settings::new();
        for l in layers {
            settings.push(l);
        }
        settings.resolve(&facts(), ws())
    }

    #[test]
    fn secret_hosts_join_the_allowlist_and_the_mode_stays() {
        let mut u = user();
        u.allow_domains = vec!["*.github.com".into()];
        let mut file = secret("NPM_TOKEN", &["Registry.npmjs.org"]);
        file.file = Some(PathBuf::from("~/.npm-token"));
        u.secrets = vec![
            secret("GITHUB_TOKEN", &["api.github.com", "github.com"]),
            file,
        ];
        let mut f = flags();
        f.secrets = vec![secret("INTERNAL", &["10.1.2.3"])];
        f.upstream_ca = vec![PathBuf::from("ca.pem")];
        let p = resolve(vec![u, f]).unwrap();
        assert_eq!(p.network.value, NetworkMode::Off);
        let allowed: Vec<(String, &Source)> = p
            .allow_domains
            .iter()
            .map(|a| (a.value.to_string(), &a.source))
            .collect();
        let user_source = user().source;
        assert_eq!(
            allowed,
            [
                ("*.github.com".to_string(), &user_source),
                ("github.com".to_string(), &user_source),
                ("registry.npmjs.org".to_string(), &user_source),
            ]
        );
        assert_eq!(p.allow_cidr[0].value.to_string(), "10.1.2.3/32");
        assert_eq!(p.secrets.len(), 3);
        assert_eq!(p.secrets[1].value.hosts, ["registry.npmjs.org"]);
        assert_eq!(
            p.secrets[1].value.file.as_deref(),
            Some(Path::new("/home/u/.npm-token"))
        );
        assert_eq!(p.upstream_ca[0].value, PathBuf::from("/ws/ca.pem"));
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    }

    #[test]
    fn a_workspace_config_cannot_add_secrets_or_cas_but_its_request_rules_count() {
        let mut u = user();
        u.request_rules = vec![rule("git.example.com", &["GET", "POST"], &["/org/"])];
        let mut r = repo();
        r.secrets = vec![secret("GITHUB_TOKEN", &["evil.test"])];
        r.upstream_ca = vec![PathBuf::from(".moat/ca.pem")];
        r.request_rules = vec![
            rule("registry.npmjs.org", &["get"], &[]), // a host without rules: narrows
            rule("git.example.com", &["GET"], &["/org/repo.git/"]), // inside the user's rule
            rule("git.example.com", &["DELETE"], &["/org/"]), // beside it: widens
        ];
        let p = resolve(vec![u, r]).unwrap();
        assert!(p.secrets.is_empty());
        assert!(p.upstream_ca.is_empty());
        assert!(p.allow_domains.is_empty(), "{:?}", p.allow_domains);
        let rules: Vec<String> = p
            .request_rules
            .iter()
            .map(|r| r.value.to_string())
            .collect();
        assert_eq!(
            rules,
            [
                "GET,POST:git.example.com paths /org/",
                "GET:registry.npmjs.org",
                "GET:git.example.com paths /org/repo.git/",
            ]
        );
        let ignored: Vec<(&str, &str, &str)> = p
            .ignored
            .iter()
            .map(|i| (i.key, i.value.as_str(), i.reason.as_str()))
            .collect();
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert_eq!(ignored[0].0, "network.secrets");
        assert_eq!(ignored[0].1, "GITHUB_TOKEN -> evil.test");
        assert!(ignored[0]
            .2
            .starts_with("a workspace config cannot add secrets"));
        assert_eq!(ignored[1].0, "network.requests");
        assert_eq!(ignored[2].0, "network.upstream_ca");
        assert!(ignored[2]
            .2
            .contains("cannot add upstream certificate authorities"));
    }

    #[test]
    fn bad_secrets_and_rules_name_their_source_and_entry() {
        let cases: Vec<(Layer, &[&str])> = vec![
            (
                {
                    let mut u = user();
                    u.secrets = vec![secret("GITHUB-TOKEN", &["api.github.com"])];
                    u
                },
                &[
                    "network.secrets",
                    "user config",
                    "GITHUB-TOKEN",
                    "variable name",
                ],
            ),
            (
                {
                    let mut u = user();
                    u.secrets = vec![secret("T", &[])];
                    u
                },
                &["network.secrets", "T", "no host"],
            ),
            (
                {
                    let mut f = flags();
                    f.secrets = vec![secret("T", &["*.github.com"])];
                    f
                },
                &["flag --test", "wildcard"],
            ),
            (
                {
                    let mut f = flags();
                    let mut s = secret("T", &["a.test"]);
                    s.file = Some(PathBuf::from("token.txt"));
                    f.secrets = vec![s];
                    f
                },
                &["network.secrets.file", "relative"],
            ),
            (
                {
                    let mut u = user();
                    u.request_rules = vec![rule("a.test", &["FETCH"], &[])];
                    u
                },
                &["network.requests", "FETCH"],
            ),
            (
                {
                    let mut u = user();
                    u.request_rules = vec![rule("a.test", &[], &["api/"])];
                    u
                },
                &["network.requests", "*:a.test paths api/", "start with `/`"],
            ),
            (
                {
                    let mut u = user();
                    u.upstream_ca = vec![PathBuf::from("ca.pem")];
                    u
                },
                &["network.upstream_ca", "relative"],
            ),
        ];
        for (layer, needles) in cases {
            let e = resolve(vec![layer]).unwrap_err().to_string();
            for n in needles {
                assert!(e.contains(n), "{n}: {e}");
            }
        }
    }

    #[test]
    fn a_secret_bound_twice_names_both_sources() {
        let mut u = user();
        u.secrets = vec![secret("GITHUB_TOKEN", &["api.github.com"])];
        let mut f = flags();
        f.secrets = vec![secret("GITHUB_TOKEN", &["github.com"])];
        let e = resolve(vec![u, f]).unwrap_err();
        assert_eq!(
            e,
            PolicyError::DuplicateSecret {
                env: "GITHUB_TOKEN".into(),
                first: user().source,
                second: flags().source,
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("user config") && text.contains("flag --test"),
            "{text}"
        );
        // A workspace's binding is ignored, so it clashes with nothing.
        let mut u = user();
        u.secrets = vec![secret("GITHUB_TOKEN", &["api.github.com"])];
        let mut r = repo();
        r.secrets = vec![secret("GITHUB_TOKEN", &["evil.test"])];
        assert_eq!(resolve(vec![u, r]).unwrap().secrets.len(), 1);
    }

    #[test]
    fn workspace_config_can_narrow_but_not_widen() {
        let mut u = user();
        u.network = Some(NetworkMode::On);
        u.timeout = Some(Duration::from_secs(600));
        let mut r = repo();
        r.network = Some(NetworkMode::Off); // narrows
        r.preset = Some(Preset::FullAccess); // widens
        r.write.push(PathBuf::from("/etc")); // widens
        r.write.push(PathBuf::from("build")); // inside the workspace: no-op
        r.allow_read.push(PathBuf::from("~/.ssh")); // widens
        r.env_pass.push("GITHUB_TOKEN".into()); // widens
        r.timeout = Some(Duration::from_secs(60)); // narrows
        r.processes = Some(100); // narrows (was unlimited)
        r.deny_read.push(PathBuf::from("secrets")); // narrows
        let mut settings = Settings::new();
        settings.push(u);
        settings.push(r);
        let p = settings.resolve(&facts(), ws()).unwrap();
        assert_eq!(p.network.value, NetworkMode::Off);
        assert_eq!(p.preset.value, Preset::WorkspaceWrite);
        assert!(p.write.is_empty());
        assert!(p.allow_read.is_empty());
        assert!(p.env.pass.is_empty());
        assert_eq!(
            p.limits.timeout.as_ref().unwrap().value,
            Duration::from_secs(60)
        );
        assert_eq!(p.limits.processes.as_ref().unwrap().value, 100);
        assert!(p
            .deny_read
            .iter()
            .any(|d| d.value == Path::new("/ws/secrets")));
        let keys: Vec<&str> = p.ignored.iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "preset",
                "filesystem.write",
                "filesystem.allow_read",
                "env.pass"
            ]
        );
    }

    #[test]
    fn workspace_config_cannot_raise_limits_or_relax_booleans() {
        let mut u = user();
        u.timeout = Some(Duration::from_secs(60));
        u.strict_git = Some(true);
        u.env_clear = Some(true);
        u.read = Some(ReadMode::Restricted);
        u.require_network_isolation = Some(true);
        let mut r = repo();
        r.timeout = Some(Duration::from_secs(6000));
        r.strict_git = Some(false);
        r.env_clear = Some(false);
        r.read = Some(ReadMode::All);
        r.require_network_isolation = Some(false);
        let mut settings = Settings::new();
        settings.push(u);
        settings.push(r);
        let p = settings.resolve(&facts(), ws()).unwrap();
        assert_eq!(
            p.limits.timeout.as_ref().unwrap().value,
            Duration::from_secs(60)
        );
        assert!(p.strict_git.value);
        assert!(p.env.clear.value);
        assert!(p.require_network_isolation.value);
        assert_eq!(p.read.value, ReadMode::Restricted);
        assert_eq!(p.ignored.len(), 5);
    }

    #[test]
    fn flags_override_everything_and_record_their_source() {
        let mut r = repo();
        r.network = Some(NetworkMode::Off);
        let mut f = flags();
        f.network = Some(NetworkMode::On);
        f.write.push(PathBuf::from("../out"));
        let mut settings = Settings::new();
        settings.push(r);
        settings.push(f);
        let p = settings.resolve(&facts(), ws()).unwrap();
        assert_eq!(p.network.value, NetworkMode::On);
        assert_eq!(p.network.source, Source::Flag("--test".into()));
        assert_eq!(p.write[0].value, PathBuf::from("/out"));
    }

    #[test]
    fn allow_read_lifts_default_denials() {
        let mut u = user();
        u.allow_read.push(PathBuf::from("~/.npmrc"));
        let mut settings = Settings::new();
        settings.push(u);
        let p = settings.resolve(&facts(), ws()).unwrap();
        assert!(!p
            .deny_read
            .iter()
            .any(|d| d.value == Path::new("/home/u/.npmrc")));
        assert!(p
            .deny_read
            .iter()
            .any(|d| d.value == Path::new("/home/u/.ssh")));
    }

    #[test]
    fn errors_name_the_problem() {
        let mut u = user();
        u.write.push(PathBuf::from("relative"));
        let mut settings = Settings::new();
        settings.push(u);
        let err = settings.resolve(&facts(), ws()).unwrap_err();
        assert!(err.to_string().contains("filesystem.write"), "{err}");
        assert!(err.to_string().contains("relative"), "{err}");

        let mut f = flags();
        f.write.push(PathBuf::from("~/.ssh/keys"));
        let mut settings = Settings::new();
        settings.push(f);
        let err = settings.resolve(&facts(), ws()).unwrap_err();
        assert!(
            matches!(err, PolicyError::WriteInsideDenied { .. }),
            "{err}"
        );

        let mut f = flags();
        f.protect.push(PathBuf::from("../escape"));
        let mut settings = Settings::new();
        settings.push(f);
        assert!(matches!(
            settings.resolve(&facts(), ws()).unwrap_err(),
            PolicyError::BadProtectedName { .. }
        ));

        let mut f = flags();
        f.env_set.push(("A=B".into(), "x".into()));
        let mut settings = Settings::new();
        settings.push(f);
        assert!(matches!(
            settings.resolve(&facts(), ws()).unwrap_err(),
            PolicyError::BadEnvName { .. }
        ));

        assert_eq!(
            Settings::new()
                .resolve(&facts(), Sourced::default_value(PathBuf::from("/")))
                .unwrap_err(),
            PolicyError::WorkspaceIsRoot
        );
    }
}
