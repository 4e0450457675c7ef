//! `moat` on Windows (the `moat-win` binary): carries out what
//! `crate::cli_args` parsed. `moat run` resolves the policy from the flags,
//! picks the tier, applies the ACL plan (both tiers restrict writes with
//! capability SIDs), reports what holds and runs the command through
//! `sys::unelevated` or `sys::elevated`; `moat setup` runs
//! `crate::setup_run` on [`Machine`]; `moat doctor` says which tier runs
//! and how the network is enforced. Type-checked for
//! `x86_64-pc-windows-gnu`; it has not run on Windows.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use moat_policy::host::{HostFacts, StdFs};
use moat_policy::{NetworkMode, Policy};
use windows_sys::Win32::System::Console::{
    GetConsoleScreenBufferInfo, GetStdHandle, CONSOLE_SCREEN_BUFFER_INFO, STD_OUTPUT_HANDLE,
};

use super::setup_host::{self, Machine};
use super::{accounts, elevated as sys_elevated, unelevated as sys_unelevated};
use crate::cli_args::{self, Command, RunArgs, SetupArgs, Tier, REFUSED, USAGE, USAGE_TEXT};
use crate::elevated::{self, ElevatedError, WritableRoot};
use crate::envblock;
use crate::offline_env::{self, NetEnforcement};
use crate::setup_run::{self, RemovalConfig, SetupConfig};
use crate::unelevated::{LayerReport, Request};

/// The pseudoconsole's size when moat's output is not a console.
const DEFAULT_PTY: (u16, u16) = (80, 24);

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// moat's places on this machine.
struct Places {
    record: String,
    secrets: String,
    runner_dir: String,
}

impl Places {
    fn new() -> Places {
        let data = var("ProgramData").unwrap_or_else(|| r"C:\ProgramData".to_string());
        let base = format!("{}\\moat", data.trim_end_matches('\\'));
        Places {
            record: format!("{base}\\setup-record"),
            secrets: format!("{base}\\secrets"),
            runner_dir: format!("{base}\\runner"),
        }
    }
}

/// `moat`'s main: the process's exit code.
pub fn main() -> i32 {
    let mut args: Vec<String> = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("moat: the argument {bad:?} is not valid Unicode");
                return USAGE;
            }
        }
    }
    match cli_args::parse(&args) {
        Ok(Command::Help) => {
            print!("{USAGE_TEXT}");
            0
        }
        Ok(Command::Version) => {
            println!("moat {} (Windows)", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Command::Run(run_args)) => run(&run_args),
        Ok(Command::Setup(setup_args)) => setup(&setup_args),
        Ok(Command::Doctor { json }) => doctor(json),
        Err(err) => {
            eprintln!("moat: {err}\n(moat --help lists the options)");
            USAGE
        }
    }
}

fn say(json: bool, kind: &str, message: &str) {
    if json {
        eprintln!("{}", cli_args::message_json(kind, message));
    } else {
        eprintln!("moat: {message}");
    }
}

fn report(json: bool, tier: Tier, layers: &[LayerReport], lost: &[String], notes: &[String]) {
    if json {
        eprintln!("{}", cli_args::report_json(tier, layers, lost, notes));
    } else {
        for line in cli_args::report_lines(tier, layers, lost, notes) {
            eprintln!("{line}");
        }
    }
}

/// The setup record's text, `None` when there is none.
fn read_record(path: &str) -> Result<Option<String>, String> {
    super::read_if_present(Path::new(path))
        .map_err(|err| format!("reading the setup record {path}: {err}"))
}

/// Whether setup is complete for a run in `mode`.
fn setup_state(places: &Places, mode: NetworkMode) -> Result<(), ElevatedError> {
    let text = read_record(&places.record).map_err(ElevatedError::System)?;
    elevated::check_setup(text.as_deref(), &places.record, mode)
}

fn console_size() -> (u16, u16) {
    // SAFETY: GetStdHandle takes no pointer; `info` is a plain structure
    // Windows fills, as large as the call expects.
    unsafe {
        let out = GetStdHandle(STD_OUTPUT_HANDLE);
        let mut info: CONSOLE_SCREEN_BUFFER_INFO = std::mem::zeroed();
        if GetConsoleScreenBufferInfo(out, &mut info) == 0 {
            return DEFAULT_PTY;
        }
        let cols = info.srWindow.Right - info.srWindow.Left + 1;
        let rows = info.srWindow.Bottom - info.srWindow.Top + 1;
        if cols < 1 || rows < 1 {
            return DEFAULT_PTY;
        }
        (cols as u16, rows as u16)
    }
}

fn text(path: &Path, what: &str) -> Result<String, String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{what} {} is not valid Unicode", path.display()))
}

fn run(args: &RunArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(why) => {
            say(args.json, "error", &why);
            REFUSED
        }
    }
}

fn run_inner(args: &RunArgs) -> Result<i32, String> {
    let profile = var("USERPROFILE").ok_or("USERPROFILE is not set: moat needs your profile")?;
    let local = var("LOCALAPPDATA").ok_or("LOCALAPPDATA is not set: moat keeps its state there")?;
    let cwd =
        std::env::current_dir().map_err(|err| format!("reading the current directory: {err}"))?;
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let facts = HostFacts {
        home: PathBuf::from(&profile),
        cwd: cwd.clone(),
        env,
    };
    let policy = cli_args::resolve(args, &facts)?;
    let view = cli_args::view(&policy, &StdFs)?;
    let command_env = cli_args::command_env(&facts.env, &policy);

    let places = Places::new();
    let setup = setup_state(&places, policy.network.value);
    let tier = cli_args::choose_tier(args.tier, &setup)?;

    // The command starts where moat was started, unless that is outside
    // the workspace --workspace named.
    let dir = if args.workspace.is_some() && !cwd.starts_with(&policy.workspace.value) {
        policy.workspace.value.clone()
    } else {
        cwd
    };
    let dir = text(&dir, "the working directory")?;
    let profiles_root = Path::new(&profile)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| format!("your profile {profile} has no parent directory"))?;
    let state_dir = PathBuf::from(format!("{}\\moat", local.trim_end_matches('\\')));
    let temp = format!("{}\\tmp", state_dir.display());
    let pty = if args.pty { Some(console_size()) } else { None };

    // Both tiers restrict writes with a capability SID per root, so both
    // need the ACL plan applied. Network isolation is the elevated tier's
    // to enforce: the ACL step must not refuse it.
    let mut acl_policy: Policy = policy.clone();
    if tier == Tier::Elevated {
        acl_policy.require_network_isolation.value = false;
    }
    let req = Request {
        policy: &acl_policy,
        view: &view,
        program: &args.program,
        args: &args.args,
        cwd: &dir,
        env: &command_env,
        pty,
        profiles_root: &profiles_root,
        profile_dir: &profile,
        // Both tiers: the person's own TEMP is in the profile, which the
        // restricted token (and in the elevated tier the account) cannot
        // write; this one is a writable root like the workspace.
        temp_dir: Some(&temp),
    };
    // In the elevated tier the sandbox group gets each root's allow ACE
    // too: the runner's restricted token passes the restricted check with
    // the capability SID, and the ordinary check as the account.
    let principals = match tier {
        Tier::Elevated => {
            let text = read_record(&places.record)?;
            vec![elevated::group_sid(text.as_deref(), &places.record).map_err(|e| e.to_string())?]
        }
        Tier::Unelevated => Vec::new(),
    };
    let options = sys_unelevated::Options {
        state_dir: &state_dir,
        audit: true,
        principals: &principals,
    };
    let plan = sys_unelevated::prepare(&req, &options).map_err(|e| e.to_string())?;
    let mut notes = plan.notes.clone();
    notes.extend(cli_args::allow_note(&policy));

    match tier {
        Tier::Unelevated => {
            report(args.json, tier, &plan.layers, &plan.lost, &notes);
            if let Some(why) = cli_args::degraded_refusal(tier, &plan.lost, args.allow_degraded) {
                return Err(why);
            }
            let code = sys_unelevated::execute(&plan).map_err(|e| e.to_string())?;
            // An NTSTATUS (0xC000....) comes out negative, as cmd shows it.
            Ok(code as i32)
        }
        Tier::Elevated => {
            let mode = policy.network.value;
            let network = offline_env::enforcement(mode, true);
            let mut env = plan.env.clone();
            if network != NetEnforcement::Open {
                envblock::set_or_replace(&mut env, "MOAT_NETWORK", network.as_str());
            }
            let writable_roots: Vec<WritableRoot> = plan
                .acl
                .roots
                .iter()
                .map(|(path, sid)| WritableRoot {
                    path: path.to_string(),
                    sid: *sid,
                })
                .collect();
            let layers = cli_args::elevated_layers(
                elevated::account_for(mode),
                network,
                writable_roots.len(),
            );
            let lost = cli_args::elevated_lost(&policy, &view, &profile, &plan.lost);
            report(args.json, tier, &layers, &lost, &notes);
            if let Some(why) = cli_args::degraded_refusal(tier, &lost, args.allow_degraded) {
                return Err(why);
            }
            let ereq = elevated::Request {
                program: args.program.clone(),
                args: args.args.clone(),
                cwd: plan.cwd.clone(),
                env,
                writable_roots,
                network: mode,
                pty,
            };
            let code = sys_elevated::run(
                &ereq,
                &sys_elevated::Options {
                    record: Path::new(&places.record),
                    runner_override: None,
                    forward_stdin: true,
                },
            )
            .map_err(|e| e.to_string())?;
            Ok(code as i32)
        }
    }
}

fn setup(args: &SetupArgs) -> i32 {
    let places = Places::new();
    if args.check {
        let mut ok = true;
        for mode in [NetworkMode::Off, NetworkMode::On] {
            match setup_state(&places, mode) {
                Ok(()) => println!(
                    "moat: setup: {} ready (record {})",
                    elevated::account_for(mode),
                    places.record
                ),
                Err(err) => {
                    ok = false;
                    println!("moat: setup: {}: {err}", elevated::account_for(mode));
                }
            }
        }
        return if ok { 0 } else { 1 };
    }
    let mut machine = Machine::new(&places.record);
    let result = if args.remove {
        setup_run::remove(
            &RemovalConfig {
                secrets_dir: Some(places.secrets.clone()),
                runner_dir: Some(places.runner_dir.clone()),
            },
            &mut machine,
        )
    } else {
        let name = match args.user.clone().or_else(current_user) {
            Some(name) => name,
            None => {
                eprintln!("moat: setup: USERNAME is not set: name the person with --user NAME");
                return 1;
            }
        };
        let person = match accounts::lookup_sid(&name) {
            Ok(sid) => sid.to_string(),
            Err(err) => {
                eprintln!("moat: setup: looking up {name}: {err}");
                return 1;
            }
        };
        let runner_source = std::env::current_exe().ok().and_then(|exe| {
            let runner = exe.with_file_name(setup_run::RUNNER_EXE);
            if runner.is_file() {
                runner.to_str().map(str::to_string)
            } else {
                None
            }
        });
        setup_run::setup(
            &SetupConfig {
                person,
                // moat on Windows has no proxy yet: the offline account
                // reaches no port.
                proxy_ports: Vec::new(),
                secrets_dir: places.secrets.clone(),
                runner_source,
                runner_dir: places.runner_dir.clone(),
            },
            &mut machine,
        )
    };
    match result {
        Ok(lines) => {
            for line in lines {
                println!("moat: setup: {line}");
            }
            0
        }
        Err(err) => {
            eprintln!("moat: setup: {err}");
            1
        }
    }
}

/// `DOMAIN\name` of the person running moat.
fn current_user() -> Option<String> {
    let name = var("USERNAME")?;
    Some(match var("USERDOMAIN") {
        Some(domain) => format!("{domain}\\{name}"),
        None => name,
    })
}

fn doctor(json: bool) -> i32 {
    let places = Places::new();
    let setup = setup_state(&places, NetworkMode::Off);
    let admin = setup_host::is_elevated().ok();
    let d = cli_args::Doctor::new(&setup, admin);
    if json {
        println!("{}", d.to_json());
    } else {
        for line in d.lines() {
            println!("moat: {line}");
        }
    }
    0
}
