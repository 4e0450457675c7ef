//! Policy flags into a policy layer, with conflicts refused.

use anyhow::{bail, Context, Result};
use moat::advanced::{units, Layer, Source};
use moat::{NetworkMode, Preset, ReadMode};

use crate::cli::{IsolationArg, PolicyArgs, SandboxArgs, TierArg};

/// Turns the flags into a layer above the config files.
pub fn layer(args: &PolicyArgs) -> Result<Layer> {
    let mut l = Layer::new(Source::Flag("command line".into()));
    if let Some(p) = &args.preset {
        l.preset = Some(
            p.parse::<Preset>()
                .map_err(|e| anyhow::anyhow!("--preset: {}", e))?,
        );
    }
    l.write = args.allow_write.clone();
    l.deny_read = args.deny_read.clone();
    l.allow_read = args.allow_read.clone();
    if let Some(r) = &args.read {
        l.read = Some(
            r.parse::<ReadMode>()
                .map_err(|e| anyhow::anyhow!("--read: {}", e))?,
        );
    }
    l.protect = args.protect.clone();
    if args.strict_git {
        l.strict_git = Some(true);
    }
    if args.require_network_isolation {
        l.require_network_isolation = Some(true);
    }
    if let Some(n) = &args.network {
        l.network = Some(
            n.parse::<NetworkMode>()
                .map_err(|e| anyhow::anyhow!("--network: {}", e))?,
        );
    }
    l.allow_domains = args.destinations.allow_domain.clone();
    l.deny_domains = args.destinations.deny_domain.clone();
    l.allow_cidr = args.destinations.allow_cidr.clone();
    l.resolve = args.destinations.resolve.clone();
    // Parsed here, not only when resolved, so that an error names the flag.
    for s in &args.secret {
        l.secrets.push(
            s.parse()
                .map_err(|e| anyhow::anyhow!("--secret {}: {}", s, e))?,
        );
    }
    for r in &args.allow_request {
        l.request_rules.push(
            r.parse()
                .map_err(|e| anyhow::anyhow!("--allow-request {}: {}", r, e))?,
        );
    }
    l.upstream_ca = args.upstream_ca.clone();
    for e in &args.env {
        match e.split_once('=') {
            Some((name, value)) => l.env_set.push((name.to_string(), value.to_string())),
            None => l.env_pass.push(e.clone()),
        }
    }
    if args.env_clear {
        l.env_clear = Some(true);
    }
    if let Some(t) = &args.timeout {
        l.timeout = Some(units::parse_duration(t).context("--timeout")?);
    }
    if let Some(n) = args.max_processes {
        if n == 0 {
            bail!("--max-processes: must be at least 1");
        }
        l.processes = Some(n);
    }
    if let Some(m) = &args.max_memory {
        l.memory = Some(units::parse_size(m).context("--max-memory")?);
    }
    if let Some(f) = &args.max_file_size {
        l.file_size = Some(units::parse_size(f).context("--max-file-size")?);
    }
    if let Some(c) = &args.max_cpus {
        l.cpu = Some(units::parse_cpus(c).context("--max-cpus")?);
    }
    conflicts(args, l.preset)?;
    Ok(l)
}

/// The names of the flags that were given.
fn given(flags: &[(bool, &'static str)]) -> Vec<&'static str> {
    flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect()
}

/// Flags that contradict each other are refused rather than resolved by a
/// rule the person may not know.
fn conflicts(args: &PolicyArgs, preset: Option<Preset>) -> Result<()> {
    let sandbox_flags = given(&[
        (!args.allow_write.is_empty(), "--allow-write"),
        (!args.deny_read.is_empty(), "--deny-read"),
        (!args.allow_read.is_empty(), "--allow-read"),
        (args.read.is_some(), "--read"),
        (!args.protect.is_empty(), "--protect"),
        (args.strict_git, "--strict-git"),
        (
            args.require_network_isolation,
            "--require-network-isolation",
        ),
        (args.network.is_some(), "--network"),
        (!args.env.is_empty(), "--env"),
        (args.env_clear, "--env-clear"),
        (args.timeout.is_some(), "--timeout"),
        (args.max_processes.is_some(), "--max-processes"),
        (args.max_memory.is_some(), "--max-memory"),
        (args.max_file_size.is_some(), "--max-file-size"),
        (args.max_cpus.is_some(), "--max-cpus"),
        (!args.destinations.allow_domain.is_empty(), "--allow-domain"),
        (!args.destinations.deny_domain.is_empty(), "--deny-domain"),
        (!args.destinations.allow_cidr.is_empty(), "--allow-cidr"),
        (!args.destinations.resolve.is_empty(), "--resolve"),
        (!args.secret.is_empty(), "--secret"),
        (!args.allow_request.is_empty(), "--allow-request"),
        (!args.upstream_ca.is_empty(), "--upstream-ca"),
    ]);
    // Secrets and request rules without `--network allow` are refused when
    // the run is built, where those from config files are refused too.
    let rules = given(&[
        (!args.destinations.allow_domain.is_empty(), "--allow-domain"),
        (!args.destinations.allow_cidr.is_empty(), "--allow-cidr"),
        (!args.destinations.resolve.is_empty(), "--resolve"),
    ]);
    if let Some(mode) = args.network.as_deref().filter(|m| *m != "allow") {
        if !rules.is_empty() {
            bail!(
                "{} {} only with --network allow, not --network {}",
                rules.join(", "),
                if rules.len() == 1 { "applies" } else { "apply" },
                mode
            );
        }
    }
    match preset {
        Some(Preset::FullAccess) if !sandbox_flags.is_empty() => bail!(
            "--preset full-access runs without a sandbox, so {} cannot apply; drop one or the other",
            sandbox_flags.join(", ")
        ),
        Some(Preset::ReadOnly) if !args.allow_write.is_empty() => bail!(
            "--preset read-only and --allow-write contradict each other; use workspace-write with \
             --allow-write, or drop --allow-write"
        ),
        _ => Ok(()),
    }
}

/// Sets how `cmd`'s sandbox is built.
pub fn sandbox(cmd: &mut moat::Command, args: &SandboxArgs) {
    cmd.allow_degraded(args.allow_degraded)
        .cache_layers(!args.no_cache_layers)
        .isolation(match args.isolation {
            IsolationArg::Full => moat::advanced::Isolation::Namespaces,
            IsolationArg::LandlockOnly => moat::advanced::Isolation::LandlockOnly,
        })
        .tier(match args.tier {
            TierArg::Auto => moat::Tier::Auto,
            TierArg::Elevated => moat::Tier::Elevated,
            TierArg::Unelevated => moat::Tier::Unelevated,
        });
}
