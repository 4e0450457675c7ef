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

use super::console::console_size;
use super::setup_host::{self, Machine};
use super::{accounts, elevate, elevated as sys_elevated, unelevated as sys_unelevated};
use crate::cli_args::{
    self, Command, Forget, RunArgs, SetupArgs, Tier, REFUSED, USAGE, USAGE_TEXT,
};
use crate::cmdline;
use crate::elevated::{self, ElevatedError, WritableRoot};
use crate::envblock;
use crate::errors;
use crate::firewall;
use crate::net_proxy;
use crate::offline_env::{self, NetEnforcement};
use crate::read_grants::ReadCounts;
use crate::setup_run::{self, RemovalConfig, SetupConfig};
use crate::sid::Sid;
use crate::unelevated::{LayerReport, Request};

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
        Ok(Command::Forget(what)) => match forget(&what) {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("moat: forget: {why}");
                1
            }
        },
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
    super::read_if_present(Path::new(path)).map_err(|err| {
        if err.kind() == std::io::ErrorKind::PermissionDenied {
            // Setup lets only the person it was made for read the record.
            format!(
                "the setup record {path} is not yours to read: the elevated tier was set up \
                 for someone else; an administrator can run `moat setup --user <you>`"
            )
        } else {
            format!("reading the setup record {path}: {err}")
        }
    })
}

/// Whether setup is complete for a run in `mode`.
fn setup_state(places: &Places, mode: NetworkMode) -> Result<(), ElevatedError> {
    setup_state_of(&read_record(&places.record), places, mode)
}

/// [`setup_state`] of a record already read.
fn setup_state_of(
    record: &Result<Option<String>, String>,
    places: &Places,
    mode: NetworkMode,
) -> Result<(), ElevatedError> {
    match record {
        Ok(text) => elevated::check_setup(text.as_deref(), &places.record, mode),
        Err(why) => Err(ElevatedError::System(why.clone())),
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
    let state_dir = state_dir()?;
    let cwd =
        std::env::current_dir().map_err(|err| format!("reading the current directory: {err}"))?;
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let facts = HostFacts {
        home: PathBuf::from(&profile),
        cwd: cwd.clone(),
        env,
    };
    let mut config = Vec::new();
    for (path, source) in cli_args::config_files(args, &facts) {
        if let Some(layer) = moat_config::load(&path, source).map_err(|e| e.to_string())? {
            config.push(layer);
        }
    }
    let policy = cli_args::resolve(args, &facts, &config)?;
    let view = cli_args::view(&policy, &StdFs)?;
    let command_env = cli_args::command_env(&facts.env, &policy);

    let places = Places::new();
    // Read once: the tier, the group and the proxy ports all come from it.
    let record = read_record(&places.record);
    let setup = setup_state_of(&record, &places, policy.network.value);
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
            let text = record.clone()?;
            vec![elevated::group_sid(text.as_deref(), &places.record).map_err(|e| e.to_string())?]
        }
        Tier::Unelevated => Vec::new(),
    };
    let options = sys_unelevated::Options {
        state_dir: &state_dir,
        audit: true,
        principals: &principals,
        read_group: principals.first().copied(),
    };
    let mut plan = sys_unelevated::prepare(&req, &options).map_err(|e| e.to_string())?;
    let mut notes = plan.notes.clone();
    // --network allow: moat's proxy on loopback, in either tier, and the
    // command pointed at it. Stopped when `proxy` is dropped, whichever way
    // the run ends.
    let proxy = if policy.network.value == NetworkMode::Allow {
        let listener = match tier {
            // Only the ports setup opened to the offline account.
            Tier::Elevated => {
                let text = record.clone()?;
                let ports = elevated::proxy_ports(text.as_deref(), &places.record)
                    .map_err(|e| e.to_string())?;
                net_proxy::bind_first_free(&ports)?
            }
            Tier::Unelevated => net_proxy::bind_any()?,
        };
        // The run's own password: loopback is open to every program here,
        // and to `--network off` runs of the offline account too.
        let mut random = [0u8; 16];
        super::random_bytes(&mut random).map_err(|status| {
            format!("no random password for moat's proxy (NTSTATUS 0x{status:08X})")
        })?;
        let password = net_proxy::password(&random);
        let running = net_proxy::Running::start(listener, policy.domain_rules(), &password)?;
        notes.push(offline_env::proxy_note(
            running.port(),
            tier == Tier::Elevated,
        ));
        offline_env::use_proxy(&mut plan.env, running.port(), &password);
        plan.environment =
            envblock::build(&plan.env).map_err(|err| format!("environment: {err}"))?;
        Some(running)
    } else {
        None
    };

    match tier {
        Tier::Unelevated => {
            report(args.json, tier, &plan.layers, &plan.lost, &notes);
            if let Some(why) = cli_args::degraded_refusal(tier, &plan.lost, args.allow_degraded) {
                return Err(why);
            }
            let code = sys_unelevated::execute(&plan).map_err(|e| e.to_string())?;
            end_proxy(args.json, proxy);
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
            let mut layers = cli_args::elevated_layers(
                elevated::account_for(mode),
                network,
                writable_roots.len(),
                ReadCounts::of(&plan.acl.steps),
            );
            // The runner's job enforces the limits as moat's would.
            layers.extend(plan.layers.iter().filter(|l| l.layer == "limits").cloned());
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
                limits: plan.limits,
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
            end_proxy(args.json, proxy);
            Ok(code as i32)
        }
    }
}

/// Stops the run's proxy, if it had one, and says what it refused.
fn end_proxy(json: bool, proxy: Option<net_proxy::Running>) {
    if let Some(line) = proxy.and_then(|p| net_proxy::denied_summary(&p.stop())) {
        say(json, "network", &line);
    }
}

/// moat's own directory, `%ProgramData%\moat`: the record's.
fn moat_dir(places: &Places) -> String {
    match places.record.rsplit_once('\\') {
        Some((dir, _)) => dir.to_string(),
        None => places.record.clone(),
    }
}

/// What `moat setup` and `moat setup --check` are given: the same, so
/// that the check plans exactly what setup would.
fn setup_config(args: &SetupArgs, places: &Places) -> Result<SetupConfig, String> {
    let name = args
        .user
        .clone()
        .or_else(current_user)
        .ok_or("USERNAME is not set: name the person with --user NAME")?;
    let person = accounts::lookup_sid(&name)
        .map_err(|err| format!("looking up {name}: {err}"))?
        .to_string();
    let runner_source = std::env::current_exe().ok().and_then(|exe| {
        let runner = exe.with_file_name(setup_run::RUNNER_EXE);
        if runner.is_file() {
            runner.to_str().map(str::to_string)
        } else {
            None
        }
    });
    Ok(SetupConfig {
        person,
        // The offline account may reach these loopback ports, where runs
        // with --network allow serve moat's proxy.
        proxy_ports: firewall::proxy_ports(),
        secrets_dir: places.secrets.clone(),
        runner_source,
        runner_dir: places.runner_dir.clone(),
        base_dir: moat_dir(places),
    })
}

/// `moat setup --check`: the machine read as setup reads it, every
/// problem on its own line with its fix; 1 when anything is wrong.
fn setup_check(args: &SetupArgs, places: &Places) -> i32 {
    let config = match setup_config(args, places) {
        Ok(config) => config,
        Err(why) => {
            eprintln!("moat: setup --check: {why}");
            return 1;
        }
    };
    let mut machine = Machine::new(&places.record);
    match setup_run::check(&config, &mut machine) {
        Ok(lines) => {
            // The machine is as setup leaves it; the tiers read the record
            // too, and must accept it.
            let mut ok = true;
            for mode in [NetworkMode::Off, NetworkMode::On] {
                if let Err(err) = setup_state(places, mode) {
                    ok = false;
                    println!(
                        "moat: setup --check: {}: {err}",
                        elevated::account_for(mode)
                    );
                }
            }
            if !ok {
                return 1;
            }
            for line in lines {
                println!("moat: setup --check: ok: {line}");
            }
            0
        }
        Err(setup_run::RunError::Incomplete(problems)) => {
            for problem in problems {
                println!("moat: setup --check: {problem}");
            }
            1
        }
        Err(err) => {
            eprintln!("moat: setup --check: {err}");
            if setup_host::is_elevated().ok() == Some(false) {
                eprintln!(
                    "moat: setup --check: some of the machine may only be readable by an \
                     administrator: run `moat setup --check` from an elevated prompt"
                );
            }
            1
        }
    }
}

fn setup(args: &SetupArgs) -> i32 {
    let places = Places::new();
    if let Some(report) = &args.report {
        if let Err(err) = elevate::report_to(report) {
            eprintln!(
                "moat: setup: writing the report {}: {err}",
                report.display()
            );
            return 1;
        }
    }
    if args.check {
        return setup_check(args, &places);
    }
    if args.report.is_none() && setup_host::is_elevated().ok() == Some(false) {
        return setup_as_administrator(args);
    }
    let mut machine = Machine::new(&places.record);
    let result = if args.remove {
        // The runs' grants to the sandbox group are in the person's own
        // ledger, which setup's record does not name: taken off first,
        // while the group still has a name.
        if let Err(why) = remove_group_aces(&places) {
            eprintln!("moat: setup --remove: {why}");
            return 1;
        }
        setup_run::remove(
            &RemovalConfig {
                secrets_dir: Some(places.secrets.clone()),
                runner_dir: Some(places.runner_dir.clone()),
                base_dir: Some(moat_dir(&places)),
            },
            &mut machine,
        )
    } else {
        let config = match setup_config(args, &places) {
            Ok(config) => config,
            Err(why) => {
                eprintln!("moat: setup: {why}");
                return 1;
            }
        };
        setup_run::setup(&config, &mut machine)
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

/// `moat setup` again as administrator, through the UAC prompt; its
/// output (from the report file it writes) and exit code.
fn setup_as_administrator(args: &SetupArgs) -> i32 {
    match setup_as_administrator_inner(args) {
        Ok(code) => code,
        Err(why) => {
            eprintln!("moat: setup: {why}");
            1
        }
    }
}

fn setup_as_administrator_inner(args: &SetupArgs) -> Result<i32, String> {
    let user = current_user().ok_or("USERNAME is not set: name the person with --user NAME")?;
    // In moat's own state directory: no writable root holds it, so no
    // command in the sandbox can put a link where the administrator's
    // copy will write.
    let dir = state_dir()?;
    std::fs::create_dir_all(&dir)
        .map_err(|err| format!("creating moat's state directory {}: {err}", dir.display()))?;
    let report = dir.join(format!("setup-report-{}.txt", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&report)
        .map_err(|err| format!("creating the report file {}: {err}", report.display()))?;
    let exe = std::env::current_exe().map_err(|err| format!("finding moat's own path: {err}"))?;
    let report_text = text(&report, "the report file")?;
    let again = args.elevated_again(&user, &report_text);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let params =
        cmdline::join(&again).map_err(|err| format!("the administrator's command line: {err}"))?;
    println!("moat: setup: asking Windows to run setup as administrator (the UAC prompt)");
    let result = elevate::run_as_administrator(&exe, &params);
    let output = std::fs::read_to_string(&report);
    let _ = std::fs::remove_file(&report);
    let code = result.map_err(|err| {
        errors::describe(
            "starting moat setup as administrator",
            err.raw_os_error().unwrap_or(0) as u32,
        )
    })?;
    match output {
        Ok(text) => print!("{text}"),
        Err(err) => eprintln!(
            "moat: setup: the administrator's setup left no report ({err}); it exited with {code}"
        ),
    }
    Ok(code as i32)
}

/// Takes the sandbox group's ACEs off the paths the ledger of the person
/// running moat records (their writable roots and profile), saying how
/// many there were. Another person's ledger is theirs: its entries name a
/// SID that no longer resolves, and their next run reports them.
fn remove_group_aces(places: &Places) -> Result<(), String> {
    let record = match read_record(&places.record)? {
        Some(text) => text,
        None => return Ok(()),
    };
    let group = match elevated::group_sid(Some(&record), &places.record) {
        Ok(sid) => sid,
        // A record without the group: nothing was granted to it.
        Err(_) => return Ok(()),
    };
    let state_dir = match state_dir() {
        Ok(dir) => dir,
        // No state directory: no run recorded anything.
        Err(_) => return Ok(()),
    };
    let n = sys_unelevated::remove_aces_of(&state_dir, &group).map_err(|e| e.to_string())?;
    if n > 0 {
        println!("moat: setup: took the sandbox group's ACEs off {n} path(s) you ran commands in");
    }
    Ok(())
}

/// moat's state directory: `%LOCALAPPDATA%\moat`.
fn state_dir() -> Result<PathBuf, String> {
    let local = var("LOCALAPPDATA").ok_or("LOCALAPPDATA is not set: moat keeps its state there")?;
    Ok(PathBuf::from(format!(
        "{}\\moat",
        local.trim_end_matches('\\')
    )))
}

/// `moat forget`: moat's ACEs taken off as the person, no administrator
/// needed (they are on the person's own files).
fn forget(what: &Forget) -> Result<(), String> {
    let state = state_dir()?;
    match what {
        Forget::Roots(roots) => {
            let cwd = std::env::current_dir()
                .map_err(|err| format!("reading the current directory: {err}"))?;
            for root in roots {
                let path = cwd.join(root);
                // The book names roots as the view resolved them.
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                let path = text(&path, "the path")?;
                let removed =
                    sys_unelevated::remove_root(&state, &path).map_err(|e| e.to_string())?;
                match removed.sid {
                    Some(sid) => println!(
                        "moat: forget: {path}: took off {} ACL entr{} of {sid}, and the SID",
                        removed.steps,
                        if removed.steps == 1 { "y" } else { "ies" }
                    ),
                    None => println!("moat: forget: {path}: moat has no SID for it"),
                }
            }
        }
        Forget::Orphans => {
            // The sandbox group's ACEs stay while the elevated tier is set
            // up for this person; they are in no book.
            let record = Places::new().record;
            let keep: Vec<Sid> = read_record(&record)
                .ok()
                .flatten()
                .and_then(|text| elevated::group_sid(Some(&text), &record).ok())
                .into_iter()
                .collect();
            let removed =
                sys_unelevated::remove_orphans(&state, &keep).map_err(|e| e.to_string())?;
            println!(
                "moat: forget: took off {} ACL entr{} of SIDs no root uses",
                removed.steps,
                if removed.steps == 1 { "y" } else { "ies" }
            );
        }
        Forget::All => {
            let removed = sys_unelevated::remove_all(&state).map_err(|e| e.to_string())?;
            println!(
                "moat: forget: took off {} ACL entr{} and directories moat made; every SID is \
                 forgotten",
                removed.steps,
                if removed.steps == 1 { "y" } else { "ies" }
            );
        }
    }
    Ok(())
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
