//! `moat` on Windows, decided before any Windows call: the command line
//! (`moat run`, `moat setup`, `moat doctor`), the tier a run uses, the
//! policy the flags ask for, and the report of what is enforced.
//!
//! moat's own CLI (`moat-cli`) uses clap, which needs a newer Rust than the
//! 1.63 this crate builds with, so the parser here is hand-written over the
//! same flag names. Unknown flags, missing values and bad values are errors
//! naming the flag; nothing here panics on input. `sys::cli` carries the
//! parsed request out on Windows; `moat-win` is the binary.
//!
//! Only a subset of `moat run`'s flags exists: the policy flags that the
//! Windows tiers act on, `--pty`, `--json`, `--tier` and
//! `--allow-degraded`. Config files are not read yet: the flags and the
//! built-in defaults are the whole policy.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use moat_policy::host::{HostFacts, HostFs};
use moat_policy::scan::ScanLimits;
use moat_policy::view::{self, FsView};
use moat_policy::{units, Layer, NetworkMode, Policy, Preset, ReadMode, Settings, Source, Sourced};

use crate::acl_plan::WinPath;
use crate::elevated::ElevatedError;
use crate::offline_env::NetEnforcement;
use crate::read_grants::ReadCounts;
use crate::unelevated::{json_string, LayerReport};

/// The exit code when moat refuses or fails before the command ran (as on
/// Linux).
pub const REFUSED: i32 = 125;

/// The exit code of a usage error.
pub const USAGE: i32 = 2;

/// The usage text.
pub const USAGE_TEXT: &str = "\
usage: moat run [OPTIONS] -- CMD [ARGS...]
       moat setup [--user NAME] [--check] [--remove]
       moat doctor [--json]
       moat forget (PATH... | --orphans | --all)

moat run options:
  --workspace DIR              the directory the command may write [default: the current directory]
  --preset NAME                workspace-write (default), read-only, full-access
  --allow-write PATH           another writable root (repeatable)
  --deny-read PATH             a path whose reads are denied (repeatable)
  --allow-read PATH            a readable path, or a default denial to lift (repeatable)
  --read MODE                  all (default) or restricted
  --protect NAME               a name kept read-only in every writable root (repeatable)
  --strict-git                 make all of .git read-only
  --network MODE               off (default), allow or on
  --allow-domain NAME          with --network allow (repeatable)
  --require-network-isolation  refuse where the network would only be advisory
  --env NAME[=VALUE]           set NAME, or pass it through (repeatable)
  --env-clear                  start from an almost empty environment
  --timeout DURATION           kill the run after this long (90, 90s, 15m, 2h)
  --pty                        give the command a pseudoconsole
  --json                       report as JSON on stderr
  --tier TIER                  auto (default), elevated or unelevated
  --allow-degraded             run even if some layers cannot be enforced
  --no-config                  ignore config files (yours and the workspace's)

moat forget takes moat's ACEs off, without an administrator:
  PATH...                      writable roots moat gave a capability SID: their ACEs and SIDs
  --orphans                    ACEs of SIDs no root uses any more (a removed sandbox group too)
  --all                        every ACE and directory moat recorded, and every SID
";

/// Which tier the person asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierChoice {
    /// Elevated when setup is complete, unelevated otherwise.
    Auto,
    Elevated,
    Unelevated,
}

/// The tier a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Elevated,
    Unelevated,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Elevated => "elevated",
            Tier::Unelevated => "unelevated",
        }
    }
}

/// `moat run`'s flags and command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub workspace: Option<PathBuf>,
    pub preset: Option<Preset>,
    pub allow_write: Vec<PathBuf>,
    pub deny_read: Vec<PathBuf>,
    pub allow_read: Vec<PathBuf>,
    pub read: Option<ReadMode>,
    pub protect: Vec<PathBuf>,
    pub strict_git: bool,
    pub network: Option<NetworkMode>,
    pub allow_domain: Vec<String>,
    pub require_network_isolation: bool,
    /// `NAME=VALUE` or `NAME`, as given.
    pub env: Vec<String>,
    pub env_clear: bool,
    pub timeout: Option<Duration>,
    pub pty: bool,
    pub json: bool,
    pub tier: TierChoice,
    pub allow_degraded: bool,
    /// Read no config file: neither the person's nor the workspace's.
    pub no_config: bool,
    /// The program, never empty.
    pub program: String,
    pub args: Vec<String>,
}

impl RunArgs {
    fn new(program: String, args: Vec<String>) -> RunArgs {
        RunArgs {
            workspace: None,
            preset: None,
            allow_write: Vec::new(),
            deny_read: Vec::new(),
            allow_read: Vec::new(),
            read: None,
            protect: Vec::new(),
            strict_git: false,
            network: None,
            allow_domain: Vec::new(),
            require_network_isolation: false,
            env: Vec::new(),
            env_clear: false,
            timeout: None,
            pty: false,
            json: false,
            tier: TierChoice::Auto,
            allow_degraded: false,
            no_config: false,
            program,
            args,
        }
    }
}

/// `moat setup`'s flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupArgs {
    /// Who may use the sandbox accounts (default: the person running it).
    pub user: Option<String>,
    pub check: bool,
    pub remove: bool,
    /// Where the output goes (`--report FILE`): set by moat itself when it
    /// starts setup again as administrator, whose window the person does
    /// not see; moat prints the file afterwards.
    pub report: Option<PathBuf>,
}

impl SetupArgs {
    /// The arguments of `moat setup` started again as administrator
    /// (through the UAC prompt): the same request, for `user` (an
    /// administrator signing in over the shoulder would otherwise set it up
    /// for themselves), writing its output to `report`.
    pub fn elevated_again(&self, user: &str, report: &str) -> Vec<String> {
        let mut out = vec!["setup".to_string()];
        if self.remove {
            out.push("--remove".to_string());
        } else {
            out.push("--user".to_string());
            out.push(self.user.clone().unwrap_or_else(|| user.to_string()));
        }
        out.push("--report".to_string());
        out.push(report.to_string());
        out
    }
}

/// What `moat forget` takes off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// These writable roots: their ACEs and their capability SIDs.
    Roots(Vec<String>),
    /// ACEs of SIDs no root uses any more.
    Orphans,
    /// Everything moat recorded.
    All,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Box<RunArgs>),
    Setup(SetupArgs),
    Doctor { json: bool },
    Forget(Forget),
    Help,
    Version,
}

/// A command line moat does not accept; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: String) -> UsageError {
    UsageError(message)
}

/// Splits `--flag=value` into the flag and its inline value.
fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.find('=') {
        Some(i) if arg.starts_with("--") => (&arg[..i], Some(&arg[i + 1..])),
        _ => (arg, None),
    }
}

/// The arguments after the subcommand, one at a time, with values taken
/// inline (`--flag=value`) or from the next argument.
struct Cursor<'a> {
    args: &'a [String],
    next: usize,
}

impl<'a> Cursor<'a> {
    fn value(&mut self, flag: &str, inline: Option<&'a str>) -> Result<&'a str, UsageError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        match self.args.get(self.next) {
            Some(v) if v != "--" => {
                self.next += 1;
                Ok(v)
            }
            _ => Err(usage(format!("{flag} needs a value"))),
        }
    }
}

fn no_value(flag: &str, inline: Option<&str>) -> Result<(), UsageError> {
    match inline {
        Some(_) => Err(usage(format!("{flag} takes no value"))),
        None => Ok(()),
    }
}

fn non_empty<'a>(flag: &str, value: &'a str) -> Result<&'a str, UsageError> {
    if value.is_empty() {
        Err(usage(format!("{flag}: the value is empty")))
    } else {
        Ok(value)
    }
}

fn parse_value<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, UsageError>
where
    T::Err: fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| usage(format!("{flag}: {e}")))
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let first = match args.first() {
        Some(a) => a.as_str(),
        None => {
            return Err(usage(
                "no subcommand: use run, setup, doctor or forget".to_string(),
            ))
        }
    };
    let rest = &args[1..];
    match first {
        "run" => parse_run(rest).map(|r| Command::Run(Box::new(r))),
        "setup" => parse_setup(rest).map(Command::Setup),
        "doctor" => parse_doctor(rest),
        "forget" => parse_forget(rest).map(Command::Forget),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" | "version" => Ok(Command::Version),
        other if other.starts_with('-') => Err(usage(format!(
            "unknown option {other}: a subcommand (run, setup, doctor, forget) comes first"
        ))),
        other => Err(usage(format!(
            "unknown subcommand {other:?}: use run, setup, doctor or forget"
        ))),
    }
}

fn parse_run(args: &[String]) -> Result<RunArgs, UsageError> {
    let split = args.iter().position(|a| a == "--");
    let (flags, command) = match split {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => {
            return Err(usage(
                "moat run needs the command after --: moat run [OPTIONS] -- CMD [ARGS...]"
                    .to_string(),
            ))
        }
    };
    let program = match command.first() {
        Some(p) if !p.is_empty() => p.clone(),
        Some(_) => return Err(usage("the command's program name is empty".to_string())),
        None => return Err(usage("no command after --".to_string())),
    };
    let mut run = RunArgs::new(program, command[1..].to_vec());
    let mut cur = Cursor {
        args: flags,
        next: 0,
    };
    let mut seen: Vec<&str> = Vec::new();
    while let Some(arg) = cur.args.get(cur.next) {
        cur.next += 1;
        let (flag, inline) = split_flag(arg);
        // Single-valued flags given twice are refused, not silently
        // overridden.
        let single = [
            "--workspace",
            "--preset",
            "--read",
            "--network",
            "--timeout",
            "--tier",
        ];
        if single.contains(&flag) {
            if seen.contains(&flag) {
                return Err(usage(format!("{flag} given more than once")));
            }
            seen.push(flag);
        }
        match flag {
            "--workspace" => {
                run.workspace = Some(PathBuf::from(non_empty(flag, cur.value(flag, inline)?)?))
            }
            "--preset" => run.preset = Some(parse_value(flag, cur.value(flag, inline)?)?),
            "--allow-write" => run
                .allow_write
                .push(PathBuf::from(non_empty(flag, cur.value(flag, inline)?)?)),
            "--deny-read" => run
                .deny_read
                .push(PathBuf::from(non_empty(flag, cur.value(flag, inline)?)?)),
            "--allow-read" => run
                .allow_read
                .push(PathBuf::from(non_empty(flag, cur.value(flag, inline)?)?)),
            "--read" => run.read = Some(parse_value(flag, cur.value(flag, inline)?)?),
            "--protect" => run
                .protect
                .push(PathBuf::from(non_empty(flag, cur.value(flag, inline)?)?)),
            "--strict-git" => {
                no_value(flag, inline)?;
                run.strict_git = true;
            }
            "--network" => run.network = Some(parse_value(flag, cur.value(flag, inline)?)?),
            "--allow-domain" => run
                .allow_domain
                .push(non_empty(flag, cur.value(flag, inline)?)?.to_string()),
            "--require-network-isolation" => {
                no_value(flag, inline)?;
                run.require_network_isolation = true;
            }
            "--env" => {
                let v = non_empty(flag, cur.value(flag, inline)?)?;
                if v.starts_with('=') {
                    return Err(usage(format!("--env {v:?}: the name is empty")));
                }
                run.env.push(v.to_string());
            }
            "--env-clear" => {
                no_value(flag, inline)?;
                run.env_clear = true;
            }
            "--timeout" => {
                let v = cur.value(flag, inline)?;
                run.timeout =
                    Some(units::parse_duration(v).map_err(|e| usage(format!("--timeout: {e}")))?);
            }
            "--pty" => {
                no_value(flag, inline)?;
                run.pty = true;
            }
            "--json" => {
                no_value(flag, inline)?;
                run.json = true;
            }
            "--allow-degraded" => {
                no_value(flag, inline)?;
                run.allow_degraded = true;
            }
            "--no-config" => {
                no_value(flag, inline)?;
                run.no_config = true;
            }
            "--tier" => {
                run.tier = match cur.value(flag, inline)? {
                    "auto" => TierChoice::Auto,
                    "elevated" => TierChoice::Elevated,
                    "unelevated" => TierChoice::Unelevated,
                    other => {
                        return Err(usage(format!(
                            "--tier: unknown tier {other:?}: use auto, elevated or unelevated"
                        )))
                    }
                }
            }
            other if other.starts_with('-') => {
                return Err(usage(format!(
                    "unknown option {other} for moat run (see moat --help)"
                )))
            }
            other => {
                return Err(usage(format!(
                    "unexpected argument {other:?}: the command goes after --"
                )))
            }
        }
    }
    check_conflicts(&run)?;
    Ok(run)
}

/// Flags that contradict each other are refused, as `moat-cli` does.
fn check_conflicts(run: &RunArgs) -> Result<(), UsageError> {
    if !run.allow_domain.is_empty() && run.network != Some(NetworkMode::Allow) {
        return Err(usage(format!(
            "--allow-domain applies only with --network allow, not --network {}",
            run.network.unwrap_or(NetworkMode::Off)
        )));
    }
    let sandbox_flags: Vec<&str> = [
        (!run.allow_write.is_empty(), "--allow-write"),
        (!run.deny_read.is_empty(), "--deny-read"),
        (!run.allow_read.is_empty(), "--allow-read"),
        (run.read.is_some(), "--read"),
        (!run.protect.is_empty(), "--protect"),
        (run.strict_git, "--strict-git"),
        (run.require_network_isolation, "--require-network-isolation"),
        (run.network.is_some(), "--network"),
        (!run.env.is_empty(), "--env"),
        (run.env_clear, "--env-clear"),
        (run.timeout.is_some(), "--timeout"),
        (!run.allow_domain.is_empty(), "--allow-domain"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    match run.preset {
        Some(Preset::FullAccess) => Err(usage(
            "--preset full-access runs without a sandbox, which moat on Windows does not do"
                .to_string()
                + &if sandbox_flags.is_empty() {
                    String::new()
                } else {
                    format!(" (and {} could not apply)", sandbox_flags.join(", "))
                },
        )),
        Some(Preset::ReadOnly) if !run.allow_write.is_empty() => Err(usage(
            "--preset read-only and --allow-write contradict each other; use workspace-write \
             with --allow-write, or drop --allow-write"
                .to_string(),
        )),
        _ => Ok(()),
    }
}

fn parse_setup(args: &[String]) -> Result<SetupArgs, UsageError> {
    let mut out = SetupArgs::default();
    let mut cur = Cursor { args, next: 0 };
    while let Some(arg) = cur.args.get(cur.next) {
        cur.next += 1;
        let (flag, inline) = split_flag(arg);
        match flag {
            "--user" => {
                if out.user.is_some() {
                    return Err(usage("--user given more than once".to_string()));
                }
                out.user = Some(non_empty(flag, cur.value(flag, inline)?)?.to_string());
            }
            "--check" => {
                no_value(flag, inline)?;
                out.check = true;
            }
            "--remove" => {
                no_value(flag, inline)?;
                out.remove = true;
            }
            "--report" => {
                if out.report.is_some() {
                    return Err(usage("--report given more than once".to_string()));
                }
                out.report = Some(PathBuf::from(non_empty(flag, cur.value(flag, inline)?)?));
            }
            other => {
                return Err(usage(format!(
                    "unknown {} {other} for moat setup (use --user NAME, --check or --remove)",
                    if other.starts_with('-') {
                        "option"
                    } else {
                        "argument"
                    }
                )))
            }
        }
    }
    if out.check && out.remove {
        return Err(usage("--check and --remove do not go together".to_string()));
    }
    if out.remove && out.user.is_some() {
        return Err(usage("--remove and --user do not go together".to_string()));
    }
    Ok(out)
}

fn parse_forget(args: &[String]) -> Result<Forget, UsageError> {
    let (mut orphans, mut all) = (false, false);
    let mut roots: Vec<String> = Vec::new();
    for arg in args {
        let (flag, inline) = split_flag(arg);
        match flag {
            "--orphans" => {
                no_value(flag, inline)?;
                orphans = true;
            }
            "--all" => {
                no_value(flag, inline)?;
                all = true;
            }
            other if other.starts_with('-') => {
                return Err(usage(format!(
                    "unknown option {other} for moat forget (use PATH..., --orphans or --all)"
                )))
            }
            _ if arg.is_empty() => return Err(usage("an empty path for moat forget".to_string())),
            _ => roots.push(arg.clone()),
        }
    }
    match (roots.is_empty(), orphans, all) {
        (false, false, false) => Ok(Forget::Roots(roots)),
        (true, true, false) => Ok(Forget::Orphans),
        (true, false, true) => Ok(Forget::All),
        (true, false, false) => Err(usage(
            "moat forget needs PATH..., --orphans or --all".to_string(),
        )),
        _ => Err(usage(
            "moat forget takes one of PATH..., --orphans or --all".to_string(),
        )),
    }
}

fn parse_doctor(args: &[String]) -> Result<Command, UsageError> {
    let mut json = false;
    for arg in args {
        let (flag, inline) = split_flag(arg);
        match flag {
            "--json" => {
                no_value(flag, inline)?;
                json = true;
            }
            other => {
                return Err(usage(format!(
                    "unknown {} {other} for moat doctor (use --json)",
                    if other.starts_with('-') {
                        "option"
                    } else {
                        "argument"
                    }
                )))
            }
        }
    }
    Ok(Command::Doctor { json })
}

// ---------------------------------------------------------------------------
// Tier

/// The tier for `choice`, given whether setup is complete
/// (`crate::elevated::check_setup`). `auto` falls back to the unelevated
/// tier when setup is missing or incomplete; `elevated` refuses then, with
/// the reason (which names `moat setup`).
pub fn choose_tier(choice: TierChoice, setup: &Result<(), ElevatedError>) -> Result<Tier, String> {
    match (choice, setup) {
        (TierChoice::Unelevated, _) => Ok(Tier::Unelevated),
        (_, Ok(())) => Ok(Tier::Elevated),
        (TierChoice::Auto, Err(_)) => Ok(Tier::Unelevated),
        (TierChoice::Elevated, Err(err)) => Err(format!("--tier elevated: {err}")),
    }
}

// ---------------------------------------------------------------------------
// Policy

/// The flags as a policy layer above the built-in defaults.
pub fn layer(run: &RunArgs) -> Layer {
    let mut l = Layer::new(Source::Flag("command line".into()));
    l.preset = run.preset;
    l.write = run.allow_write.clone();
    l.deny_read = run.deny_read.clone();
    l.allow_read = run.allow_read.clone();
    l.read = run.read;
    l.protect = run.protect.clone();
    if run.strict_git {
        l.strict_git = Some(true);
    }
    if run.require_network_isolation {
        l.require_network_isolation = Some(true);
    }
    l.network = run.network;
    l.allow_domains = run.allow_domain.clone();
    for e in &run.env {
        match e.split_once('=') {
            Some((name, value)) => l.env_set.push((name.to_string(), value.to_string())),
            None => l.env_pass.push(e.clone()),
        }
    }
    if run.env_clear {
        l.env_clear = Some(true);
    }
    l.timeout = run.timeout;
    l
}

/// Resolves the flags against the person's `facts`: the workspace is
/// `--workspace`, else the current directory.
pub fn resolve(run: &RunArgs, facts: &HostFacts, config: &[Layer]) -> Result<Policy, String> {
    let mut settings = Settings::new();
    for layer in config {
        settings.push(layer.clone());
    }
    settings.push(layer(run));
    let workspace = match &run.workspace {
        Some(w) => Sourced::new(w.clone(), Source::Flag("--workspace".into())),
        None => Sourced::default_value(facts.cwd.clone()),
    };
    settings
        .resolve(facts, workspace)
        .map_err(|e| format!("the policy: {e}"))
}

/// The config files a run reads, in order (the person's, then the
/// workspace's), each with the source its settings are reported under;
/// none with `--no-config`. The person's is where moat on Linux looks:
/// `%XDG_CONFIG_HOME%\moat\config.toml` when that is set, else
/// `.config\moat\config.toml` in the profile.
pub fn config_files(run: &RunArgs, facts: &HostFacts) -> Vec<(PathBuf, Source)> {
    if run.no_config {
        return Vec::new();
    }
    let xdg = facts
        .env
        .iter()
        .find(|(name, _)| {
            name.to_str()
                .map_or(false, |n| n.eq_ignore_ascii_case("XDG_CONFIG_HOME"))
        })
        .map(|(_, value)| PathBuf::from(value));
    let user = moat_config::user_config_path(xdg.as_deref(), &facts.home);
    let workspace = run.workspace.clone().unwrap_or_else(|| facts.cwd.clone());
    // As the policy resolves the workspace (`~` included), so the file read
    // is the one in the workspace the run gets.
    let workspace = moat_policy::paths::absolutize(&workspace, &facts.home, Some(&facts.cwd))
        .unwrap_or(workspace);
    let in_workspace = workspace.join(moat_config::WORKSPACE_CONFIG);
    vec![
        (user.clone(), Source::UserConfig(user)),
        (in_workspace.clone(), Source::WorkspaceConfig(in_workspace)),
    ]
}

/// The policy's view of the filesystem, as `fs` shows it.
pub fn view(policy: &Policy, fs: &dyn HostFs) -> Result<FsView, String> {
    view::build(policy, fs, ScanLimits::DEFAULT).map_err(|e| format!("the policy: {e}"))
}

/// The command's environment from moat's, filtered as the policy says
/// (secrets and host IPC variables left out, `--env` applied). Variables
/// that are not Unicode are left out: Windows' environment block is
/// UTF-16 text.
pub fn command_env(host: &[(OsString, OsString)], policy: &Policy) -> Vec<(String, String)> {
    let plan = moat_policy::env::build(host, &policy.env, &[]);
    plan.vars
        .into_iter()
        .filter_map(|(n, v)| Some((n.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

// ---------------------------------------------------------------------------
// Report

/// The layers of a run in the elevated tier: the command runs as a sandbox
/// account behind its firewall rules, under a restricted token with one
/// capability SID per writable root.
pub fn elevated_layers(
    account: &str,
    network: NetEnforcement,
    roots: usize,
    reads: ReadCounts,
) -> Vec<LayerReport> {
    vec![
        LayerReport {
            layer: "write",
            state: "full",
            detail: format!(
                "runs as {account} under a restricted token: writes only in {roots} root{} \
                 (one capability SID each)",
                if roots == 1 { "" } else { "s" }
            ),
        },
        LayerReport {
            layer: "read",
            state: "full",
            detail: format!(
                "reads are {account}'s: of your profile, {} entr{} granted and {} denied \
                 path{} refused by ACE; registry hives, .ssh, your TEMP and other people's \
                 files stay unreadable",
                reads.granted,
                if reads.granted == 1 { "y" } else { "ies" },
                reads.denied,
                if reads.denied == 1 { "" } else { "s" },
            ),
        },
        LayerReport {
            layer: "network",
            state: network.as_str(),
            detail: match network {
                NetEnforcement::Open => "network = on".to_string(),
                _ => format!("by the firewall rules of {account} (loopback only)"),
            },
        },
        LayerReport {
            layer: "process",
            state: "full",
            detail: "kill-on-close job object, started through moat-runner".to_string(),
        },
    ]
}

/// What the elevated tier cannot enforce that `policy` asks for: read
/// denials outside `profile_dir` (inside it, `read_grants` denies them to
/// the sandbox group, or never grants them), restricted reading,
/// and the limits the runner's job cannot enforce (file_size: see
/// `crate::limits`); then those of `acl_lost` (the unelevated plan's
/// losses, from the ACL plan both tiers apply) that hold in this tier too:
/// absent protected files, an incomplete audit, Everyone-writable
/// directories left alone. Those about the unelevated tier's reads and the
/// limits (said here already) are left out.
pub fn elevated_lost(
    policy: &Policy,
    view: &FsView,
    profile_dir: &str,
    acl_lost: &[String],
) -> Vec<String> {
    // The runner's job enforces what moat's would; a bad value was refused
    // when the run was planned.
    let limits_lost = crate::limits::plan(&policy.limits)
        .map(|plan| plan.lost)
        .unwrap_or_default();
    let mut lost: Vec<String> = acl_lost
        .iter()
        .filter(|l| !l.contains("in the unelevated tier") && !limits_lost.contains(l))
        .cloned()
        .collect();
    let profile = WinPath::parse(profile_dir).ok();
    let outside: Vec<String> = view
        .denied
        .iter()
        .filter(|d| {
            let inside = match (d.path.to_str().map(WinPath::parse), &profile) {
                (Some(Ok(p)), Some(profile)) => p.is_inside(profile),
                _ => false,
            };
            !inside
        })
        .map(|d| d.path.display().to_string())
        .collect();
    if !outside.is_empty() {
        lost.push(format!(
            "read denials outside your profile are not enforced ({}): the sandbox account \
             reads what Users may read",
            outside.join(", ")
        ));
    }
    if view.readable.is_some() {
        lost.push(
            "read = restricted is not enforced on Windows: the sandbox account reads what \
             Users may read"
                .to_string(),
        );
    }
    lost.extend(limits_lost);
    lost
}

/// A run's report for stderr: one line per layer, then each loss (as a
/// warning, or as the refusal's reason) and note.
pub fn report_lines(
    tier: Tier,
    layers: &[LayerReport],
    lost: &[String],
    notes: &[String],
) -> Vec<String> {
    let mut out = vec![format!("moat: tier: {}", tier.as_str())];
    out.extend(layers.iter().map(LayerReport::line));
    out.extend(lost.iter().map(|l| format!("moat: lost: {l}")));
    out.extend(notes.iter().map(|n| format!("moat: note: {n}")));
    out
}

fn json_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", parts.join(","))
}

/// A run's report as one JSON object (for `--json`).
pub fn report_json(
    tier: Tier,
    layers: &[LayerReport],
    lost: &[String],
    notes: &[String],
) -> String {
    let layers: Vec<String> = layers.iter().map(LayerReport::to_json).collect();
    format!(
        "{{\"kind\":\"enforcement\",\"tier\":{},\"layers\":[{}],\"lost\":{},\"notes\":{}}}",
        json_string(tier.as_str()),
        layers.join(","),
        json_list(lost),
        json_list(notes)
    )
}

/// The refusal of a run that loses layers without `--allow-degraded`, or
/// `None` when it may go ahead.
pub fn degraded_refusal(tier: Tier, lost: &[String], allow_degraded: bool) -> Option<String> {
    if lost.is_empty() || allow_degraded {
        return None;
    }
    Some(format!(
        "the {} tier cannot enforce all of the policy ({} loss{}, listed above): pass \
         --allow-degraded to run anyway{}",
        tier.as_str(),
        lost.len(),
        if lost.len() == 1 { "" } else { "es" },
        if tier == Tier::Unelevated {
            ", or run `moat setup` once as administrator for the elevated tier"
        } else {
            ""
        }
    ))
}

/// A message of moat's as JSON (with `--json`, errors are JSON too).
pub fn message_json(kind: &str, message: &str) -> String {
    format!(
        "{{\"kind\":{},\"message\":{}}}",
        json_string(kind),
        json_string(message)
    )
}

/// What `moat doctor` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doctor {
    /// The tier `moat run --tier auto` uses.
    pub tier: Tier,
    /// `Ok` when setup is complete, else why not.
    pub setup: Result<(), String>,
    /// How `--network off` is enforced in that tier.
    pub network: NetEnforcement,
    /// Whether this process is an administrator's (`None`: unknown).
    pub admin: Option<bool>,
}

impl Doctor {
    pub fn new(setup: &Result<(), ElevatedError>, admin: Option<bool>) -> Doctor {
        let tier = match setup {
            Ok(()) => Tier::Elevated,
            Err(_) => Tier::Unelevated,
        };
        Doctor {
            tier,
            setup: setup.clone().map_err(|e| e.to_string()),
            network: crate::offline_env::enforcement(NetworkMode::Off, tier == Tier::Elevated),
            admin,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("tier: {} (moat run --tier auto)", self.tier.as_str()),
            match &self.setup {
                Ok(()) => "setup: complete".to_string(),
                Err(why) => format!("setup: not complete: {why}"),
            },
            format!(
                "network: {}{}",
                self.network.as_str(),
                if self.network == NetEnforcement::Advisory {
                    " (programs are only told to stay offline; `moat setup` as administrator \
                     makes the firewall enforce it)"
                } else {
                    " (firewall rules of the sandbox accounts)"
                }
            ),
            format!(
                "reads: {}",
                if self.tier == Tier::Elevated {
                    "the sandbox account's; per-path denials are not enforced"
                } else {
                    "yours: read denials are not enforced in the unelevated tier"
                }
            ),
        ];
        if let Some(admin) = self.admin {
            out.push(format!(
                "administrator: {}",
                if admin { "yes" } else { "no" }
            ));
        }
        out
    }

    pub fn to_json(&self) -> String {
        format!(
            "{{\"tier\":{},\"setup_complete\":{},\"setup_problem\":{},\"network\":{},\"admin\":{}}}",
            json_string(self.tier.as_str()),
            self.setup.is_ok(),
            match &self.setup {
                Ok(()) => "null".to_string(),
                Err(why) => json_string(why),
            },
            json_string(self.network.as_str()),
            match self.admin {
                None => "null",
                Some(true) => "true",
                Some(false) => "false",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn args(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    fn run(text: &[&str]) -> Result<RunArgs, UsageError> {
        match parse(&args(text))? {
            Command::Run(r) => Ok(*r),
            other => panic!("not a run: {other:?}"),
        }
    }

    fn err(text: &[&str]) -> String {
        parse(&args(text)).unwrap_err().0
    }

    #[test]
    fn a_run_takes_its_flags_and_the_command_after_the_separator() {
        let r = run(&[
            "run",
            "--workspace",
            r"D:\work",
            "--allow-write=D:\\cache",
            "--network",
            "allow",
            "--allow-domain",
            "crates.io",
            "--env",
            "A=1",
            "--env",
            "B",
            "--timeout",
            "15m",
            "--pty",
            "--json",
            "--tier",
            "unelevated",
            "--require-network-isolation",
            "--allow-degraded",
            "--",
            "cargo",
            "test",
            "--",
            "--nocapture",
        ])
        .unwrap();
        assert_eq!(r.workspace, Some(PathBuf::from(r"D:\work")));
        assert_eq!(r.allow_write, vec![PathBuf::from(r"D:\cache")]);
        assert_eq!(r.network, Some(NetworkMode::Allow));
        assert_eq!(r.allow_domain, vec!["crates.io".to_string()]);
        assert_eq!(r.env, args(&["A=1", "B"]));
        assert_eq!(r.timeout, Some(Duration::from_secs(900)));
        assert!(r.pty && r.json && r.require_network_isolation && r.allow_degraded);
        assert_eq!(r.tier, TierChoice::Unelevated);
        assert_eq!(r.program, "cargo");
        // Only the first -- separates: the command's own are its.
        assert_eq!(r.args, args(&["test", "--", "--nocapture"]));

        let r = run(&["run", "--", "cmd"]).unwrap();
        assert_eq!(r.tier, TierChoice::Auto);
        assert!(r.args.is_empty() && !r.json && r.network.is_none());
    }

    #[test]
    fn bad_command_lines_are_errors_naming_the_flag() {
        assert!(err(&["run", "--bogus", "--", "x"]).contains("--bogus"));
        assert!(err(&["run", "--network", "sometimes", "--", "x"]).contains("--network"));
        assert!(err(&["run", "--tier", "high", "--", "x"]).contains("--tier"));
        assert!(err(&["run", "--timeout", "soon", "--", "x"]).contains("--timeout"));
        assert!(err(&["run", "--workspace", "--", "x"]).contains("--workspace needs a value"));
        assert!(err(&["run", "--workspace"]).contains("after --"));
        assert!(err(&["run", "--pty=yes", "--", "x"]).contains("--pty takes no value"));
        assert!(err(&["run", "--env", "=v", "--", "x"]).contains("--env"));
        assert!(err(&["run", "--allow-write=", "--", "x"]).contains("--allow-write"));
        assert!(err(&["run", "--", ""]).contains("empty"));
        assert!(err(&["run", "--"]).contains("no command"));
        assert!(err(&["run", "cargo"]).contains("after --"));
        assert!(err(&["run", "stray", "--", "x"]).contains("after --"));
        assert!(
            err(&["run", "--tier", "auto", "--tier", "elevated", "--", "x"])
                .contains("--tier given more than once")
        );
        assert!(err(&["run", "--allow-domain", "x.org", "--", "x"]).contains("--network allow"));
        assert!(
            err(&["run", "--preset", "full-access", "--pty", "--", "x"]).contains("full-access")
        );
        assert!(err(&[
            "run",
            "--preset",
            "read-only",
            "--allow-write",
            "a",
            "--",
            "x"
        ])
        .contains("--allow-write"));
        assert!(err(&["frobnicate"]).contains("frobnicate"));
        assert!(err(&["--json"]).contains("--json"));
        assert!(err(&[]).contains("subcommand"));
        assert!(err(&["doctor", "--verbose"]).contains("--verbose"));
        assert!(err(&["setup", "--user"]).contains("--user needs a value"));
        assert!(err(&["setup", "--check", "--remove"]).contains("--check"));
        assert!(err(&["setup", "--remove", "--user", "ana"]).contains("--remove"));
        assert!(err(&["setup", "--force"]).contains("--force"));
        assert!(err(&["setup", "--report"]).contains("--report needs a value"));
        assert!(err(&["setup", "--report", "a", "--report", "b"]).contains("more than once"));
    }

    #[test]
    fn forget_takes_paths_or_orphans_or_all() {
        let forget = |text: &[&str]| match parse(&args(text)) {
            Ok(Command::Forget(f)) => Ok(f),
            Ok(other) => panic!("not forget: {other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(
            forget(&["forget", r"C:\w", r"D:\x"]).unwrap(),
            Forget::Roots(vec![r"C:\w".to_string(), r"D:\x".to_string()])
        );
        assert_eq!(forget(&["forget", "--orphans"]).unwrap(), Forget::Orphans);
        assert_eq!(forget(&["forget", "--all"]).unwrap(), Forget::All);
        assert!(forget(&["forget"]).unwrap_err().contains("needs PATH"));
        assert!(forget(&["forget", "--all", r"C:\w"])
            .unwrap_err()
            .contains("one of"));
        assert!(forget(&["forget", "--all", "--orphans"])
            .unwrap_err()
            .contains("one of"));
        assert!(forget(&["forget", "--all=yes"]).is_err());
        assert!(forget(&["forget", "--every"])
            .unwrap_err()
            .contains("--every"));
        assert!(forget(&["forget", ""]).unwrap_err().contains("empty"));
    }

    #[test]
    fn setup_started_again_as_administrator_keeps_the_request_and_the_person() {
        let setup = SetupArgs::default();
        let again = setup.elevated_again(r"PC\ana", r"C:\Users\ana\AppData\Local\Temp\r.txt");
        assert_eq!(
            again,
            [
                "setup",
                "--user",
                r"PC\ana",
                "--report",
                r"C:\Users\ana\AppData\Local\Temp\r.txt"
            ]
        );
        // What moat starts parses back to the same request, plus the report.
        match parse(&again).unwrap() {
            Command::Setup(back) => {
                assert_eq!(back.user.as_deref(), Some(r"PC\ana"));
                assert_eq!(
                    back.report,
                    Some(PathBuf::from(r"C:\Users\ana\AppData\Local\Temp\r.txt"))
                );
                assert!(!back.remove && !back.check);
            }
            other => panic!("not setup: {other:?}"),
        }
        let named = SetupArgs {
            user: Some("bo".to_string()),
            ..SetupArgs::default()
        };
        assert_eq!(named.elevated_again("ana", "r")[2], "bo");
        let remove = SetupArgs {
            remove: true,
            ..SetupArgs::default()
        };
        let again = remove.elevated_again("ana", "r");
        assert_eq!(again, ["setup", "--remove", "--report", "r"]);
        assert!(matches!(parse(&again).unwrap(), Command::Setup(s) if s.remove));
    }

    #[test]
    fn setup_doctor_help_and_version_parse() {
        assert_eq!(
            parse(&args(&["setup", "--user=ana"])).unwrap(),
            Command::Setup(SetupArgs {
                user: Some("ana".to_string()),
                ..SetupArgs::default()
            })
        );
        assert_eq!(
            parse(&args(&["setup", "--check"])).unwrap(),
            Command::Setup(SetupArgs {
                check: true,
                ..SetupArgs::default()
            })
        );
        // An administrator may check someone else's setup.
        assert_eq!(
            parse(&args(&["setup", "--check", "--user", "ana"])).unwrap(),
            Command::Setup(SetupArgs {
                user: Some("ana".to_string()),
                check: true,
                ..SetupArgs::default()
            })
        );
        assert_eq!(
            parse(&args(&["doctor", "--json"])).unwrap(),
            Command::Doctor { json: true }
        );
        assert_eq!(parse(&args(&["--help"])).unwrap(), Command::Help);
        assert_eq!(parse(&args(&["--version"])).unwrap(), Command::Version);
    }

    #[test]
    fn auto_is_elevated_only_when_setup_is_complete() {
        let done: Result<(), ElevatedError> = Ok(());
        let missing = Err(ElevatedError::Setup(
            "no setup record: run `moat setup`".into(),
        ));
        assert_eq!(choose_tier(TierChoice::Auto, &done), Ok(Tier::Elevated));
        assert_eq!(
            choose_tier(TierChoice::Auto, &missing),
            Ok(Tier::Unelevated)
        );
        assert_eq!(
            choose_tier(TierChoice::Unelevated, &done),
            Ok(Tier::Unelevated)
        );
        assert_eq!(choose_tier(TierChoice::Elevated, &done), Ok(Tier::Elevated));
        let e = choose_tier(TierChoice::Elevated, &missing).unwrap_err();
        assert!(e.contains("moat setup"), "{e}");
    }

    #[test]
    fn auto_uses_the_records_completeness() {
        let path = r"C:\ProgramData\moat\setup-record";
        let none = crate::elevated::check_setup(None, path, NetworkMode::Off);
        assert!(none.as_ref().unwrap_err().needs_setup());
        assert_eq!(choose_tier(TierChoice::Auto, &none), Ok(Tier::Unelevated));
        let partial = "version = 2\n";
        let r = crate::elevated::check_setup(Some(partial), path, NetworkMode::Off);
        assert_eq!(choose_tier(TierChoice::Auto, &r), Ok(Tier::Unelevated));
    }

    fn facts(dir: &std::path::Path) -> HostFacts {
        HostFacts {
            home: dir.join("home"),
            cwd: dir.join("ws"),
            env: vec![
                (OsString::from("PATH"), OsString::from("/usr/bin")),
                (OsString::from("GITHUB_TOKEN"), OsString::from("secret")),
                (OsString::from("KEEP"), OsString::from("1")),
            ],
        }
    }

    #[test]
    fn the_flags_become_a_layer_and_a_policy_and_a_view() {
        let r = run(&[
            "run",
            "--network",
            "on",
            "--env",
            "A=1",
            "--env",
            "GITHUB_TOKEN",
            "--timeout",
            "90",
            "--require-network-isolation",
            "--",
            "x",
        ])
        .unwrap();
        let l = layer(&r);
        assert_eq!(l.source, Source::Flag("command line".into()));
        assert_eq!(l.network, Some(NetworkMode::On));
        assert_eq!(l.env_set, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(l.env_pass, vec!["GITHUB_TOKEN".to_string()]);
        assert_eq!(l.timeout, Some(Duration::from_secs(90)));
        assert_eq!(l.require_network_isolation, Some(true));

        let dir = std::env::temp_dir().join(format!("moat-win-cli-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let f = facts(&dir);
        let policy = resolve(&r, &f, &[]).unwrap();
        assert_eq!(policy.network.value, NetworkMode::On);
        assert!(policy.require_network_isolation.value);
        assert_eq!(policy.workspace.value, dir.join("ws"));
        let env = command_env(&f.env, &policy);
        assert!(env.contains(&("A".to_string(), "1".to_string())));
        // Passed through by name, though it looks like a secret.
        assert!(env.iter().any(|(n, _)| n == "GITHUB_TOKEN"));
        let v = view(&policy, &moat_policy::host::StdFs).unwrap();
        assert_eq!(v.writable.len(), 1);
        assert!(v.writable[0].path.ends_with("ws"));

        // Without --env, the secret stays behind; --workspace wins over cwd.
        let mut r2 = run(&["run", "--", "x"]).unwrap();
        r2.workspace = Some(dir.join("home"));
        let p2 = resolve(&r2, &f, &[]).unwrap();
        assert_eq!(p2.workspace.value, dir.join("home"));
        assert_eq!(p2.workspace.source, Source::Flag("--workspace".into()));
        assert!(!command_env(&f.env, &p2)
            .iter()
            .any(|(n, _)| n == "GITHUB_TOKEN"));
        // A workspace that does not exist is the view's error, not a panic.
        r2.workspace = Some(dir.join("missing"));
        let p3 = resolve(&r2, &f, &[]).unwrap();
        assert!(view(&p3, &moat_policy::host::StdFs).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_files_are_the_persons_then_the_workspaces_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("moat-win-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("ws").join(".moat")).unwrap();
        std::fs::create_dir_all(dir.join("home").join(".config").join("moat")).unwrap();
        let mut f = facts(&dir);
        let r = run(&["run", "--network", "on", "--", "x"]).unwrap();
        let files = config_files(&r, &f);
        let paths: Vec<&PathBuf> = files.iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            vec![
                &dir.join("home").join(".config/moat/config.toml"),
                &dir.join("ws").join(".moat/config.toml"),
            ]
        );
        assert!(matches!(files[0].1, Source::UserConfig(_)));
        assert!(matches!(files[1].1, Source::WorkspaceConfig(_)));
        f.env.push((
            OsString::from("Xdg_Config_Home"),
            dir.join("xdg").into_os_string(),
        ));
        assert_eq!(
            config_files(&r, &f)[0].0,
            dir.join("xdg").join("moat/config.toml")
        );
        // The workspace as the policy resolves it: `~` is the profile.
        let tilde = run(&["run", "--workspace", "~", "--", "x"]).unwrap();
        assert_eq!(
            config_files(&tilde, &f)[1].0,
            dir.join("home").join(".moat/config.toml")
        );
        let none = run(&["run", "--no-config", "--", "x"]).unwrap();
        assert!(config_files(&none, &f).is_empty());

        // What the files say reaches the policy; the flags come last.
        std::fs::write(
            dir.join("ws").join(".moat/config.toml"),
            "[network]\nmode = \"off\"\nrequire_isolation = true\n",
        )
        .unwrap();
        let mut layers = Vec::new();
        for (path, source) in config_files(&r, &f) {
            if let Some(layer) = moat_config::load(&path, source).unwrap() {
                layers.push(layer);
            }
        }
        assert_eq!(layers.len(), 1);
        let policy = resolve(&r, &f, &layers).unwrap();
        assert!(policy.require_network_isolation.value);
        assert!(matches!(
            policy.require_network_isolation.source,
            Source::WorkspaceConfig(_)
        ));
        assert_eq!(policy.network.value, NetworkMode::On);
        assert!(
            !resolve(&r, &f, &[])
                .unwrap()
                .require_network_isolation
                .value
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_report_says_what_holds_in_lines_and_json() {
        let steps = vec![
            crate::acl_plan::AclStep::Allow {
                path: WinPath::parse(r"C:\Users\me\.cargo").unwrap(),
                sid: crate::sid::Sid::everyone(),
                mask: crate::sddl::READ_GRANT_MASK,
                inherit: crate::sddl::AceFlags::SUBTREE,
            },
            crate::acl_plan::AclStep::DenyRead {
                path: WinPath::parse(r"C:\Users\me\.config\gh").unwrap(),
                sid: crate::sid::Sid::everyone(),
                inherit: crate::sddl::AceFlags::SUBTREE,
            },
            crate::acl_plan::AclStep::Allow {
                path: WinPath::parse(r"C:\w").unwrap(),
                sid: crate::sid::Sid::everyone(),
                mask: crate::sddl::WRITABLE_ROOT_MASK,
                inherit: crate::sddl::AceFlags::SUBTREE,
            },
        ];
        let reads = ReadCounts::of(&steps);
        assert_eq!(
            reads,
            ReadCounts {
                granted: 1,
                denied: 1
            }
        );
        let layers = elevated_layers("MoatSandboxOffline", NetEnforcement::Enforced, 2, reads);
        let net = layers.iter().find(|l| l.layer == "network").unwrap();
        assert_eq!(net.state, "enforced");
        let read = layers.iter().find(|l| l.layer == "read").unwrap();
        assert!(
            read.detail
                .contains("1 entry granted and 1 denied path refused"),
            "{}",
            read.detail
        );
        let lines = report_lines(Tier::Elevated, &layers, &[], &["n".to_string()]);
        assert_eq!(lines[0], "moat: tier: elevated");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("moat: network: enforced: ")));
        assert_eq!(lines.last().unwrap(), "moat: note: n");
        let json = report_json(Tier::Elevated, &layers, &["a \"b\"".to_string()], &[]);
        assert!(json
            .starts_with(r#"{"kind":"enforcement","tier":"elevated","layers":[{"layer":"write""#));
        assert!(json.contains(r#""lost":["a \"b\""],"notes":[]}"#), "{json}");
        assert_eq!(
            message_json("error", "x\ny"),
            r#"{"kind":"error","message":"x\ny"}"#
        );
    }

    #[test]
    fn the_elevated_tier_loses_denials_outside_the_profile_and_file_size() {
        use moat_policy::view::Denied;
        use moat_policy::EntryKind;
        let dir = std::env::temp_dir();
        let f = HostFacts {
            home: dir.clone(),
            cwd: dir,
            env: Vec::new(),
        };
        let r = run(&["run", "--timeout", "5s", "--", "x"]).unwrap();
        let mut policy = resolve(&r, &f, &[]).unwrap();
        // No flag sets it yet; a config file will.
        policy.limits.file_size = Some(Sourced::new(1 << 20, Source::Api));
        let file_size = crate::limits::plan(&policy.limits).unwrap().lost;
        assert_eq!(file_size.len(), 1);
        let mut v = FsView::default();
        for p in [r"\\?\C:\Users\me\.ssh", r"D:\secrets"] {
            v.denied.push(Denied {
                path: PathBuf::from(p),
                kind: EntryKind::Dir,
                source: Source::Default,
            });
        }
        // The unelevated plan's losses, its file_size loss among them.
        let acl_lost = vec![
            "read denials are not enforced in the unelevated tier (2 paths)".to_string(),
            file_size[0].clone(),
            r"D:\w\.envrc does not exist yet".to_string(),
        ];
        let mut lost = elevated_lost(&policy, &v, r"C:\Users\me", &acl_lost);
        assert_eq!(lost.remove(0), acl_lost[2]);
        assert_eq!(lost.len(), 2, "{lost:?}");
        assert!(lost[0].contains(r"D:\secrets") && !lost[0].contains(".ssh"));
        // Said once, whether or not the plan's losses had it.
        assert_eq!(lost[1], file_size[0]);
        let lost = elevated_lost(&policy, &v, r"C:\Users\me", &[]);
        assert_eq!(lost.len(), 2, "{lost:?}");
        assert_eq!(lost[1], file_size[0]);
        // The timeout is enforced (the runner's job): not lost.
        v.denied.pop();
        policy.limits.file_size = None;
        assert!(policy.limits.timeout.is_some());
        assert!(elevated_lost(&policy, &v, r"C:\Users\me", &[]).is_empty());
    }

    #[test]
    fn losses_refuse_without_allow_degraded() {
        let lost = vec!["read denials".to_string()];
        let why = degraded_refusal(Tier::Unelevated, &lost, false).unwrap();
        assert!(
            why.contains("--allow-degraded") && why.contains("moat setup"),
            "{why}"
        );
        assert_eq!(degraded_refusal(Tier::Unelevated, &lost, true), None);
        assert_eq!(degraded_refusal(Tier::Elevated, &[], false), None);
    }

    #[test]
    fn the_doctor_names_the_tier_and_the_network() {
        let missing = Err(ElevatedError::Setup("no setup record".into()));
        let d = Doctor::new(&missing, Some(false));
        assert_eq!(d.tier, Tier::Unelevated);
        assert_eq!(d.network, NetEnforcement::Advisory);
        assert!(d.lines().iter().any(|l| l.starts_with("network: advisory")));
        assert!(d.to_json().contains(r#""setup_complete":false"#));
        let d = Doctor::new(&Ok(()), None);
        assert_eq!(d.network, NetEnforcement::Enforced);
        assert!(d.to_json().contains(r#""setup_problem":null"#));
        assert!(d.to_json().ends_with(r#""admin":null}"#));
    }
}
