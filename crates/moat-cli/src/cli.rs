//! The command line, as clap structs only.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run commands of coding agents in a sandbox.
#[derive(Debug, Parser)]
#[command(name = "moat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Run a command in the sandbox: moat run [OPTIONS] -- CMD [ARGS...]
    Run(RunArgs),
    /// Run a command line with your shell in the sandbox: moat shell
    /// [OPTIONS] -c STRING (also `moat [OPTIONS] -c STRING`, for an agent's
    /// shell prefix).
    Shell(ShellArgs),
    /// Show the effective policy, or suggest the config a run's denials
    /// needed.
    Policy {
        #[command(subcommand)]
        command: PolicyVerb,
    },
    /// Set up the elevated tier (as root, once): sandbox accounts, their
    /// firewall rules and a cgroup subtree. --check verifies, --remove undoes.
    Setup(SetupArgs),
    /// Try the catalogue of known sandbox escapes against the sandbox
    /// `moat run` builds here (or another sandbox's prefix) and report.
    Probe(ProbeArgs),
    /// A stdio MCP server with a `run` tool that runs commands in the
    /// sandbox; calls (and Codex's permission profile) can only narrow the
    /// policy it starts with.
    Mcp(McpArgs),
    /// The network allowlist's proxy on its own, for agents' proxy
    /// settings: HTTP (CONNECT and plain) and SOCKS5, with the allowlist
    /// of `moat run --network allow` and a JSON line per decision.
    Proxy(ProxyArgs),
    /// Show what this machine supports and how `moat run` will enforce.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the tool-cache layers (where each lives, its size), or clear
    /// them: moat cache [--json] | moat cache clear [NAME | --all]
    Cache {
        #[command(subcommand)]
        command: Option<CacheVerb>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The policy every call starts from (the workspace defaults to the
    /// server's working directory).
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Most bytes of each of a command's standard output and error kept in
    /// a result (its beginning and end).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_output: usize,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Serve HTTP (CONNECT, and plain requests) at ADDR:PORT (repeatable)
    /// [default: 127.0.0.1:3128 unless --socks is given].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<std::net::SocketAddr>,
    /// Serve SOCKS5 at ADDR:PORT (repeatable).
    #[arg(long, value_name = "ADDR:PORT")]
    pub socks: Vec<std::net::SocketAddr>,
    /// Listen on addresses other than loopback too: anyone who can reach
    /// them can then use the proxy.
    #[arg(long)]
    pub non_loopback: bool,
    /// Append the decisions to FILE as JSON lines [default: standard
    /// output].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub destinations: Destinations,
    /// Whose config files give the allowlist (the workspace's narrows it)
    /// [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Ignore the config files (yours and the workspace's).
    #[arg(long)]
    pub no_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheVerb {
    /// Remove what sandboxed runs wrote to one cache layer (or all): the
    /// next run starts again from your own cache.
    Clear {
        /// The layer's name, as `moat cache` lists it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every layer.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Who may use the sandbox accounts [default: the sudo caller].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Verify every piece of the setup and name what is wrong.
    #[arg(long, conflicts_with_all = ["remove", "user"])]
    pub check: bool,
    /// Remove everything setup made, then verify nothing is left.
    #[arg(long, conflicts_with = "user")]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Only this category (repeatable): filesystem, "delayed execution",
    /// network, processes, terminal, privilege, kernel.
    #[arg(long, value_name = "CATEGORY")]
    pub only: Vec<String>,
    /// Also run the catalogue under this command prefix (repeatable), e.g.
    /// 'bwrap --unshare-all --new-session --die-with-parent --ro-bind / /
    /// --bind {workspace} {workspace} --dev /dev --proc /proc'; {workspace}
    /// and {home} name the probe's workspace and home directory.
    #[arg(long, value_name = "'CMD ...'")]
    pub wrapper: Vec<String>,
    /// Only this mode of moat (repeatable): full, landlock-only, allow
    /// (full with --network allow), elevated (--tier elevated),
    /// elevated-allow, or none (only the wrappers) [default: full,
    /// landlock-only, allow and elevated, those that run here].
    #[arg(long, value_name = "MODE")]
    pub mode: Vec<String>,
}

// Parsed once per run: the size difference between Show and Suggest is
// nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PolicyVerb {
    /// Print the effective policy and where each value came from.
    Show {
        #[command(flatten)]
        policy: PolicyArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the config lines that would have allowed a run's denials
    /// (from its --report FILE or --json output), for you to review;
    /// nothing is written.
    Suggest {
        /// The run report: the FILE of `moat run --report FILE`, or the
        /// output of `moat run --json`; `-` reads standard input.
        #[arg(long, value_name = "REPORT")]
        from: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    /// Elevated when `moat setup` was run for you, unelevated otherwise.
    Auto,
    /// As a sandbox account, through the setuid launcher (needs `sudo
    /// moat setup` once).
    Elevated,
    /// As yourself, in user namespaces.
    Unelevated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// Namespaces, mounts, Landlock and seccomp.
    Full,
    /// Landlock and seccomp only (needs --allow-degraded).
    LandlockOnly,
}

/// The allowlist of `--network allow`, shared by `moat run` and `moat
/// proxy`.
#[derive(Debug, Clone, Default, Args)]
pub struct Destinations {
    /// A name, *.suffix or @group (rust, python, javascript, debian) that
    /// may be reached through moat's proxy (repeatable; `moat run` needs
    /// --network allow for it).
    #[arg(long = "allow-domain", value_name = "NAME")]
    pub allow_domain: Vec<String>,
    /// A name or *.suffix never reachable; wins over --allow-domain.
    #[arg(long = "deny-domain", value_name = "NAME")]
    pub deny_domain: Vec<String>,
    /// A private address block that may be reached (10.0.0.0/8).
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    pub allow_cidr: Vec<String>,
    /// Pin NAME to ADDRESS, like curl's --resolve (repeatable).
    #[arg(long, value_name = "NAME:ADDRESS")]
    pub resolve: Vec<String>,
}

/// The flags that shape the policy.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// The directory the command may write [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Starting point: workspace-write (default), read-only, full-access.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Another writable root (repeatable).
    #[arg(long = "allow-write", value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
    /// A path whose reads are denied (repeatable).
    #[arg(long = "deny-read", value_name = "PATH")]
    pub deny_read: Vec<PathBuf>,
    /// A readable path in restricted mode, or a default denial to lift.
    #[arg(long = "allow-read", value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,
    /// What may be read: all (default) or restricted.
    #[arg(long, value_name = "MODE")]
    pub read: Option<String>,
    /// A name kept read-only in every writable root (repeatable).
    #[arg(long, value_name = "NAME")]
    pub protect: Vec<PathBuf>,
    /// Make all of `.git` read-only, not just hooks and config.
    #[arg(long)]
    pub strict_git: bool,
    /// Refuse to run where the network policy could only be advised
    /// through the environment (Windows' unelevated tier); on Linux both
    /// tiers enforce it.
    #[arg(long)]
    pub require_network_isolation: bool,
    /// Network: off (default), allow (only --allow-domain destinations,
    /// through moat's proxy) or on.
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    #[command(flatten)]
    pub destinations: Destinations,
    /// A secret that never enters the sandbox (repeatable): inside, NAME
    /// holds a placeholder that moat's proxy replaces with NAME's value
    /// from moat's own environment, only on requests to these hosts
    /// (exact names or addresses; they are added to the allowlist).
    #[arg(long, value_name = "NAME:HOST[,HOST...]")]
    pub secret: Vec<String>,
    /// Only these requests reach HOST (repeatable; METHODS comma-separated
    /// or *, the path prefix optional): GET,HEAD:registry.npmjs.org or
    /// GET,POST:git.example.com/org/repo.git/.
    #[arg(long = "allow-request", value_name = "METHODS:HOST[/PATH-PREFIX]")]
    pub allow_request: Vec<String>,
    /// Another certificate authority (PEM) to verify upstream servers
    /// with where moat terminates TLS (repeatable).
    #[arg(long = "upstream-ca", value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Set NAME=VALUE, or pass NAME through from this environment.
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Start from an empty environment (PATH, HOME, USER, LOGNAME, TERM,
    /// LANG kept).
    #[arg(long)]
    pub env_clear: bool,
    /// Kill the run after this long (90, 90s, 15m, 2h).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Most processes alive at once.
    #[arg(long, value_name = "N")]
    pub max_processes: Option<u64>,
    /// Most memory: per process, or for the whole run in the elevated
    /// tier (512M, 4G).
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Most CPUs the run may keep busy (1, 0.5, 2.5); needs a cgroup, so
    /// the elevated tier.
    #[arg(long, value_name = "N")]
    pub max_cpus: Option<String>,
    /// Largest file the command may write.
    #[arg(long, value_name = "SIZE")]
    pub max_file_size: Option<String>,
    /// Ignore the config files (yours and the workspace's).
    #[arg(long)]
    pub no_config: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: RunOptions,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `moat shell -c STRING`, and `moat [OPTIONS] -c STRING`, the form an
/// agent's shell prefix calls.
#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub opts: RunOptions,
    /// The command line, run by your shell ($SHELL, else /bin/sh) in the
    /// sandbox.
    #[arg(short = 'c', value_name = "STRING", required = true)]
    pub command: OsString,
}

/// What `moat run` and `moat shell` take besides the command.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Give the command a terminal of its own.
    #[arg(long)]
    pub pty: bool,
    /// Report as JSON on stderr (moat's own messages too).
    #[arg(long)]
    pub json: bool,
    /// No summary of refused actions on stderr at the end (the run report
    /// still lists them).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Also write the JSON run report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// With --network allow: ask on the terminal about names on neither
    /// list (once per name).
    #[arg(long)]
    pub ask: bool,
    /// With --network allow: append every decision of the proxy to FILE
    /// as a JSON line.
    #[arg(long = "net-log", value_name = "FILE")]
    pub net_log: Option<PathBuf>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// How the sandbox is built, beside its policy.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Run even if some layers cannot be enforced; the run says what was
    /// lost.
    #[arg(long)]
    pub allow_degraded: bool,
    /// Leave tool caches (~/.cargo, ~/.npm, ~/.cache, ...) read-only
    /// instead of giving them a writable layer of moat's own.
    #[arg(long)]
    pub no_cache_layers: bool,
    /// Which layers to build the sandbox from (the unelevated tier).
    #[arg(long, value_enum, default_value = "full")]
    pub isolation: IsolationArg,
    /// Which tier runs the command.
    #[arg(long, value_enum, default_value = "auto")]
    pub tier: TierArg,
}
