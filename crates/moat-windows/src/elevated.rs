//! moat's side of the elevated tier, decided before any Windows call.
//!
//! A run in the elevated tier goes: pick the sandbox account for the
//! network mode, find its SID and stored password through the setup
//! record, create two named pipes only that account may open, start the
//! runner as that account inside a kill-on-close job of moat's, wait for
//! it to connect, send it the spawn frame, then relay standard input to it
//! and its output and exit code back. [`plan`] makes every decision of that
//! (which account, which secret, which runner, which pipe names, which
//! command lines and frames) and every refusal, so that `sys::elevated`
//! only carries it out; [`Relay`] and [`stdin_frames`] are the relay's
//! bookkeeping, which fails closed: the run's exit code is the one in the
//! runner's Exit frame and nothing else, so a pipe that breaks first, a
//! malformed frame or an Error frame makes the run an error.
//!
//! The runner's program is the one setup installed where the sandbox
//! accounts can run it (the record's `runner`, since record version 2;
//! see `setup_run`), else `moat-runner.exe` next to moat's own executable
//! (a version-1 record); the caller may name another itself
//! ([`Context::runner_override`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use moat_policy::NetworkMode;

use crate::firewall;
use crate::framing::{self, Decoder, Frame, Kind, SpawnRequest, MAX_FRAME};
use crate::limits::Wanted;
use crate::logon::{LogonError, Remedy};
use crate::offline_env::{self, NetEnforcement};
use crate::record::{self, Record};
use crate::runner;
use crate::runner_args::{self, RunnerArgs};
use crate::setup_plan;
use crate::sid::Sid;

/// The runner's file name, next to moat's executable.
pub const RUNNER_EXE: &str = "moat-runner.exe";

/// How long moat waits for the runner to open both pipes. Starting it
/// loads the sandbox account's profile, which takes seconds on a slow
/// disk; a runner that needs longer is stuck.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long moat waits for the runner's exit code once its pipe closed
/// without an Exit frame: only to explain the failure, never to end it.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The largest payload of one frame (the frame's length covers the kind
/// byte too).
const MAX_PAYLOAD: usize = MAX_FRAME - 1;

/// A directory the command may write, and the capability SID its ACL
/// grants (`crate::acl_plan`), which the runner puts in the command's
/// restricted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritableRoot {
    pub path: String,
    pub sid: Sid,
}

/// What moat asks the elevated tier to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub program: String,
    pub args: Vec<String>,
    /// An absolute Windows path.
    pub cwd: String,
    /// The command's whole environment (nothing is inherited from the
    /// sandbox account's profile).
    pub env: Vec<(String, String)>,
    pub writable_roots: Vec<WritableRoot>,
    pub network: NetworkMode,
    /// `(cols, rows)` of a pseudoconsole, if the command wants one.
    pub pty: Option<(u16, u16)>,
    /// The limits the runner's job enforces (`crate::limits`; the
    /// unelevated plan's `limits.wanted`, checked there).
    pub limits: Wanted,
}

/// What moat knows about itself and the machine when it plans a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    /// The setup record's text; `None` when there is no record.
    pub record: Option<&'a str>,
    /// Where the record is, for messages.
    pub record_path: &'a str,
    /// moat's own executable, an absolute Windows path.
    pub moat_exe: &'a str,
    /// Another runner program than the one next to moat, if the caller was
    /// told of one.
    pub runner_override: Option<&'a str>,
    /// moat's process id, the server of the pipes.
    pub server_pid: u32,
    /// Random bits for the pipe names.
    pub nonce: [u32; 4],
}

/// Everything `sys::elevated` does, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The sandbox account, as the record spells it (`.` is its domain).
    pub account: String,
    /// Its SID as the record has it: the pipes' DACL admits only this SID,
    /// and the SID Windows reports for the account must be the same
    /// ([`check_account_sid`]).
    pub account_sid: Sid,
    /// The DPAPI-protected password of the account.
    pub secret: String,
    /// How the run's network policy is enforced.
    pub network: NetEnforcement,
    /// The runner program, an absolute path.
    pub runner_exe: String,
    /// The runner's working directory (its program's directory, which the
    /// account can read).
    pub runner_cwd: String,
    /// The pipe names, moat's pid and the desktop.
    pub runner_args: RunnerArgs,
    /// For `CreateProcessWithLogonW`.
    pub runner_command_line: String,
    /// The first frame to the runner.
    pub spawn: Frame,
}

/// Why a run in the elevated tier did not happen or did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElevatedError {
    /// The setup record is missing, incomplete, unreadable or not this
    /// moat's, or does not match the machine: nothing was started.
    Setup(String),
    /// The request is one the runner would refuse: nothing was started.
    Request(String),
    /// The runner program cannot be used: nothing was started.
    Runner(String),
    /// A Windows call failed before the runner started.
    System(String),
    /// The runner could not be started as the sandbox account.
    Logon(LogonError),
    /// The runner started but the run failed (no connection, a broken
    /// pipe, a protocol error, an Error frame): the job was killed.
    Run(String),
}

impl ElevatedError {
    /// Whether `moat setup` (elevated) is what fixes it.
    pub fn needs_setup(&self) -> bool {
        match self {
            ElevatedError::Setup(_) => true,
            ElevatedError::Logon(err) => err.remedy() == Some(Remedy::RerunSetup),
            _ => false,
        }
    }
}

impl fmt::Display for ElevatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElevatedError::Setup(why) | ElevatedError::Request(why) => f.write_str(why),
            ElevatedError::Runner(why) => write!(f, "the runner program: {why}"),
            ElevatedError::System(why) => f.write_str(why),
            ElevatedError::Logon(err) => fmt::Display::fmt(err, f),
            ElevatedError::Run(why) => write!(f, "the elevated run failed: {why}"),
        }
    }
}

impl std::error::Error for ElevatedError {}

/// The sandbox account for `mode`: the online one only for a network that
/// is on. Allowlisted traffic goes through moat's proxy on loopback, which
/// is all the offline account's firewall rules let through; a mode this
/// moat does not know gets the offline account too, the one that can do
/// less.
pub fn account_for(mode: NetworkMode) -> &'static str {
    match mode {
        NetworkMode::On => setup_plan::ONLINE,
        _ => setup_plan::OFFLINE,
    }
}

fn rerun_setup(record_path: &str) -> String {
    format!("run `moat setup` from an elevated prompt (the setup record is {record_path})")
}

/// The record, checked for what a run needs of it.
fn read_record(ctx: &Context<'_>) -> Result<Record, ElevatedError> {
    let text = ctx.record.ok_or_else(|| {
        ElevatedError::Setup(format!(
            "the elevated tier is not set up on this machine (no setup record at {}): run \
             `moat setup` once from an elevated prompt",
            ctx.record_path
        ))
    })?;
    let record = Record::parse(text).map_err(|err| match err {
        // The message already names the fix.
        record::RecordError::Newer(_) => ElevatedError::Setup(err.to_string()),
        _ => ElevatedError::Setup(format!(
            "{err} ({}): moat will not guess what setup made; restore or remove the file, then \
             run `moat setup` from an elevated prompt",
            ctx.record_path
        )),
    })?;
    // Version 1 lacks only the runner's place, which then is next to moat.
    if record.version < record::OLDEST {
        return Err(ElevatedError::Setup(format!(
            "the setup record is version {}, older than this moat reads (version {} or later): {}",
            record.version,
            record::OLDEST,
            rerun_setup(ctx.record_path)
        )));
    }
    Ok(record)
}

/// The account `name` in the record, with its SID.
fn recorded_account(
    record: &Record,
    name: &str,
    record_path: &str,
) -> Result<(String, Sid), ElevatedError> {
    let (recorded, text) = record
        .accounts
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            ElevatedError::Setup(format!(
                "setup is incomplete: the setup record names no sandbox account {name}: {}",
                rerun_setup(record_path)
            ))
        })?;
    let sid = Sid::from_str(text).map_err(|err| {
        ElevatedError::Setup(format!(
            "the setup record gives {name} the SID {text:?}, which does not parse ({err}): {}",
            rerun_setup(record_path)
        ))
    })?;
    // The pipes admit this SID: a well-known one (Everyone, Users) would
    // open them to everybody.
    if !sid.is_created_account() {
        return Err(ElevatedError::Setup(format!(
            "the setup record gives {name} the SID {sid}, which is no local account's: {}",
            rerun_setup(record_path)
        )));
    }
    Ok((recorded.clone(), sid))
}

/// Checks what the record must hold for a run as `account`: the group and
/// the secrets directory, and for the offline account its firewall rules,
/// without which its network would not be enforced at all.
fn check_complete(
    record: &Record,
    account: &str,
    record_path: &str,
) -> Result<String, ElevatedError> {
    let incomplete = |what: &str| {
        ElevatedError::Setup(format!(
            "setup is incomplete: the setup record names {what}: {}",
            rerun_setup(record_path)
        ))
    };
    if record.group.is_none() {
        return Err(incomplete(&format!("no group {}", setup_plan::GROUP)));
    }
    let secrets = match &record.secrets {
        Some(dir) if !dir.is_empty() => dir.clone(),
        _ => return Err(incomplete("no secrets directory")),
    };
    if account.eq_ignore_ascii_case(setup_plan::OFFLINE)
        && !record
            .firewall_rules
            .iter()
            .any(|rule| rule.starts_with(firewall::OFFLINE_PREFIX))
    {
        return Err(incomplete(&format!(
            "no firewall rule for {} (so its network would be open)",
            setup_plan::OFFLINE
        )));
    }
    Ok(secrets)
}

/// Whether the setup record `record` (at `record_path`, for messages)
/// holds what a run in `mode` needs: the checks [`plan`] makes of the
/// record, without planning a run. `moat run --tier auto` uses the
/// elevated tier when this passes.
pub fn check_setup(
    record: Option<&str>,
    record_path: &str,
    mode: NetworkMode,
) -> Result<(), ElevatedError> {
    let parsed = read_record(&record_only(record, record_path))?;
    let (account, _) = recorded_account(&parsed, account_for(mode), record_path)?;
    check_complete(&parsed, &account, record_path)?;
    if mode == NetworkMode::Allow {
        proxy_ports(record, record_path)?;
    }
    Ok(())
}

/// The loopback ports the offline account's firewall rules leave open for
/// moat's proxy, as the setup record names them; refused when it names
/// none (a record from before moat had a proxy on Windows).
pub fn proxy_ports(record: Option<&str>, record_path: &str) -> Result<Vec<u16>, ElevatedError> {
    let record = read_record(&record_only(record, record_path))?;
    if record.proxy_ports.is_empty() {
        return Err(ElevatedError::Setup(format!(
            "setup is incomplete: the setup record names no proxy ports for --network allow \
             (it was written before moat had a proxy on Windows): {}",
            rerun_setup(record_path)
        )));
    }
    Ok(record.proxy_ports)
}

/// A context for the checks that need only the record.
fn record_only<'a>(record: Option<&'a str>, record_path: &'a str) -> Context<'a> {
    Context {
        record,
        record_path,
        moat_exe: "",
        runner_override: None,
        server_pid: 0,
        nonce: [0; 4],
    }
}

/// The sandbox group's SID from the setup record (which the caller has
/// checked with [`check_setup`]): the principal that also gets each
/// writable root's allow ACE, since the runner's restricted token must
/// pass the ordinary access check as the account too.
pub fn group_sid(record: Option<&str>, record_path: &str) -> Result<Sid, ElevatedError> {
    let record = read_record(&record_only(record, record_path))?;
    let (_, sid) = record
        .group
        .ok_or_else(|| ElevatedError::Setup(format!("no group {}", setup_plan::GROUP)))?;
    Sid::from_str(&sid).map_err(|err| {
        ElevatedError::Setup(format!(
            "the setup record's SID {sid:?} of {} does not parse ({err}): run `moat setup`",
            setup_plan::GROUP
        ))
    })
}

/// Where the runner is: the override, or [`RUNNER_EXE`] next to moat. It
/// must be an absolute Windows path, since the runner starts in its own
/// directory.
pub fn runner_path(moat_exe: &str, runner_override: Option<&str>) -> Result<String, String> {
    let path = match runner_override {
        Some(path) => path.to_string(),
        None => {
            let dir = runner_args::working_directory(moat_exe).ok_or_else(|| {
                format!("moat's own path {moat_exe:?} is not an absolute Windows path")
            })?;
            format!("{}\\{RUNNER_EXE}", dir.trim_end_matches(['\\', '/']))
        }
    };
    if runner_args::working_directory(&path).is_none() {
        return Err(format!("{path:?} is not an absolute Windows path"));
    }
    Ok(path)
}

/// The runner's spawn request for `req`.
fn spawn_request(req: &Request) -> SpawnRequest {
    let (pty, cols, rows) = match req.pty {
        Some((cols, rows)) => (true, cols, rows),
        None => (false, 0, 0),
    };
    SpawnRequest {
        program: req.program.clone(),
        args: req.args.clone(),
        cwd: req.cwd.clone(),
        env: req.env.clone(),
        writable_roots: req.writable_roots.iter().map(|r| r.path.clone()).collect(),
        capability_sids: req
            .writable_roots
            .iter()
            .map(|r| r.sid.to_string())
            .collect(),
        pty,
        cols,
        rows,
        limits: req.limits,
    }
}

/// Decides the run of `req` in the elevated tier, refusing it before
/// anything starts when setup is missing or incomplete, the record is not
/// this moat's, the runner's path is unusable or the request is one the
/// runner would refuse.
pub fn plan(req: &Request, ctx: &Context<'_>) -> Result<Plan, ElevatedError> {
    let record = read_record(ctx)?;
    let wanted = account_for(req.network);
    let (account, account_sid) = recorded_account(&record, wanted, ctx.record_path)?;
    let secrets = check_complete(&record, &account, ctx.record_path)?;
    // The path setup stored the password at, whatever case the record uses.
    let secret = setup_plan::secret_path(&secrets, wanted);

    let installed = record.runner.as_deref().filter(|r| !r.is_empty());
    let runner_exe = runner_path(ctx.moat_exe, ctx.runner_override.or(installed))
        .map_err(ElevatedError::Runner)?;
    let runner_cwd = runner_args::working_directory(&runner_exe)
        .ok_or_else(|| ElevatedError::Runner(format!("{runner_exe:?} has no usable directory")))?;
    let args = RunnerArgs::new(ctx.server_pid, ctx.nonce);
    let runner_command_line = args
        .command_line(&runner_exe)
        .map_err(ElevatedError::Runner)?;

    let spawn = runner::spawn_frame(&spawn_request(req)).map_err(|err| {
        ElevatedError::Request(format!(
            "the command cannot run in the elevated tier: {err}"
        ))
    })?;

    Ok(Plan {
        account,
        account_sid,
        secret,
        network: offline_env::enforcement(req.network, true),
        runner_exe,
        runner_cwd,
        runner_args: args,
        runner_command_line,
        spawn,
    })
}

/// Checks the SID Windows reports for the plan's account against the
/// record's: another SID means the account was deleted and made again
/// outside setup, and its stored password and firewall rules belong to
/// the old one. `found` is `Err` with the Win32 error of the lookup.
pub fn check_account_sid(plan: &Plan, found: Result<Sid, u32>) -> Result<(), ElevatedError> {
    match found {
        Ok(sid) if sid == plan.account_sid => Ok(()),
        Ok(sid) => Err(ElevatedError::Setup(format!(
            "the account {} now has the SID {sid}, not the {} setup recorded (deleted and made \
             again outside moat?): run `moat setup` from an elevated prompt",
            plan.account, plan.account_sid
        ))),
        // ERROR_NONE_MAPPED.
        Err(1332) => Err(ElevatedError::Setup(format!(
            "the sandbox account {} does not exist (deleted?): run `moat setup` from an \
             elevated prompt to create it again",
            plan.account
        ))),
        Err(code) => Err(ElevatedError::System(crate::errors::describe(
            &format!("looking up the account {}", plan.account),
            code,
        ))),
    }
}

/// Why the stored password of `account` at `path` could not be used:
/// `code` is the Win32 error of reading (`read == true`) or decrypting it.
pub fn secret_error(account: &str, path: &str, read: bool, code: Option<u32>) -> ElevatedError {
    let code_text = code.map_or(String::new(), |c| format!(" (error {c})"));
    match (read, code) {
        // File or path not found.
        (true, Some(2 | 3)) => ElevatedError::Setup(format!(
            "the password of {account} is not stored at {path}: run `moat setup` from an \
             elevated prompt"
        )),
        (true, Some(5)) => ElevatedError::Setup(format!(
            "moat may not read the password of {account} at {path}{code_text}: the secrets \
             directory admits administrators and the person who ran setup; run `moat setup` \
             as yourself from an elevated prompt"
        )),
        (true, _) => ElevatedError::System(format!(
            "reading the password of {account} at {path} failed{code_text}"
        )),
        (false, _) => ElevatedError::Setup(format!(
            "the stored password of {account} at {path} does not decrypt{code_text} (stored on \
             another machine, or damaged): run `moat setup` from an elevated prompt"
        )),
    }
}

/// Checks that the client of `pipe` is the runner moat started.
pub fn check_client(pipe: &str, client_pid: u32, runner_pid: u32) -> Result<(), ElevatedError> {
    if client_pid == runner_pid {
        Ok(())
    } else {
        Err(ElevatedError::Run(format!(
            "pipe {pipe} was opened by process {client_pid}, not by the runner (process \
             {runner_pid}): refusing it"
        )))
    }
}

/// Why the runner never connected: it exited with `runner_exit`, or moat
/// waited `waited` for it.
pub fn connect_failure(runner_exit: Option<u32>, waited: Duration) -> ElevatedError {
    ElevatedError::Run(match runner_exit {
        Some(code) => format!(
            "the runner exited with code {code} before it connected to moat{}",
            explain_runner_exit(code)
        ),
        None => format!(
            "the runner did not connect to moat's pipes within {} seconds",
            waited.as_secs()
        ),
    })
}

fn explain_runner_exit(code: u32) -> String {
    match runner_args::explain_exit(code) {
        Some(why) => format!(": {why}"),
        None => String::new(),
    }
}

/// moat's standard input as frames for the runner, each small enough to
/// encode; none for no bytes (an empty Stdin frame means nothing).
pub fn stdin_frames(bytes: &[u8]) -> Vec<Frame> {
    bytes
        .chunks(MAX_PAYLOAD)
        .map(|chunk| Frame::new(Kind::Stdin, chunk.to_vec()))
        .collect()
}

/// The frame that says moat's standard input ended.
pub fn close_stdin_frame() -> Frame {
    Frame::new(Kind::CloseStdin, Vec::new())
}

/// The frame that tells the runner the terminal is now `cols` x `rows`.
pub fn resize_frame(cols: u16, rows: u16) -> Frame {
    Frame::new(Kind::Resize, framing::resize_payload(cols, rows))
}

/// Output of the command, for moat's own standard output or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// What one read from the runner's pipe gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Output to write, in order, before acting on `end`.
    pub output: Vec<Output>,
    /// Once the run is over: the command's exit code, or why the run
    /// failed. Nothing is read after it.
    pub end: Option<Result<u32, String>>,
}

/// moat's side of the runner's output pipe: bytes in, output and the end
/// of the run out, through [`runner::Outcome`].
#[derive(Debug, Default)]
pub struct Relay {
    decoder: Decoder,
    outcome: runner::Outcome,
    end: Option<Result<u32, String>>,
}

impl Relay {
    pub fn new() -> Relay {
        Relay::default()
    }

    /// The end of the run, once known.
    pub fn end(&self) -> Option<&Result<u32, String>> {
        self.end.as_ref()
    }

    /// Takes the next bytes from the runner. After the end nothing more is
    /// taken.
    pub fn push(&mut self, bytes: &[u8]) -> Pushed {
        let mut pushed = Pushed::default();
        if self.end.is_some() {
            return pushed;
        }
        self.decoder.push(bytes);
        loop {
            let frame = match self.decoder.next() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(err) => {
                    self.finish(Err(format!(
                        "the runner's pipe does not carry frames: {err}"
                    )));
                    break;
                }
            };
            let absorbed = self.outcome.absorb(&frame);
            let out = self.outcome.take_stdout();
            if !out.is_empty() {
                pushed.output.push(Output::Stdout(out));
            }
            let err = self.outcome.take_stderr();
            if !err.is_empty() {
                pushed.output.push(Output::Stderr(err));
            }
            match absorbed {
                Ok(None) => {}
                Ok(Some(code)) => {
                    // The runner sends nothing after the exit code: more
                    // bytes are a broken runner, whose code is not trusted.
                    let trailing =
                        self.decoder.buffered() > 0 || !matches!(self.decoder.next(), Ok(None));
                    if trailing {
                        self.finish(Err(format!(
                            "the runner sent more after the exit code {code}"
                        )));
                    } else {
                        self.finish(Ok(code));
                    }
                    break;
                }
                Err(err) => {
                    self.finish(Err(err));
                    break;
                }
            }
        }
        pushed.end = self.end.clone();
        pushed
    }

    /// The runner's pipe ended (end of file, or a read that failed with
    /// `cause`), and the runner exited with `runner_exit` if moat learnt
    /// it: the run's end. Without an Exit frame before it, an error.
    pub fn closed(&mut self, cause: Option<&str>, runner_exit: Option<u32>) -> Result<u32, String> {
        if let Some(end) = &self.end {
            return end.clone();
        }
        let mut why = String::from("the runner's pipe closed before the command's exit code came");
        if self.decoder.buffered() > 0 {
            why.push_str(" (in the middle of a frame)");
        }
        if let Some(cause) = cause {
            why.push_str(&format!(": {cause}"));
        }
        if let Some(code) = runner_exit {
            why.push_str(&format!(
                "; the runner exited with code {code}{}",
                explain_runner_exit(code)
            ));
        }
        self.finish(Err(why.clone()));
        Err(why)
    }

    fn finish(&mut self, end: Result<u32, String>) {
        if self.end.is_none() {
            self.end = Some(end);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::framing;
    use crate::logon::Step;

    const OFFLINE_SID: &str = "S-1-5-21-1-2-3-1001";
    const ONLINE_SID: &str = "S-1-5-21-1-2-3-1002";
    const RECORD_PATH: &str = r"C:\ProgramData\moat\setup-record";
    const MOAT: &str = r"C:\Program Files\moat\moat.exe";

    fn record() -> Record {
        Record {
            version: record::VERSION,
            accounts: vec![
                (setup_plan::OFFLINE.into(), OFFLINE_SID.into()),
                (setup_plan::ONLINE.into(), ONLINE_SID.into()),
            ],
            group: Some((setup_plan::GROUP.into(), "S-1-5-21-1-2-3-1003".into())),
            firewall_rules: vec![
                "moat-offline-block-remote".into(),
                "moat-offline-block-loopback-udp".into(),
            ],
            secrets: Some(r"C:\ProgramData\moat\secrets".into()),
            hidden: true,
            ledger: None,
            runner: None,
            proxy_ports: firewall::proxy_ports(),
        }
    }

    #[test]
    fn check_setup_is_plans_record_checks_alone() {
        let text = record().to_text();
        assert_eq!(
            check_setup(Some(&text), RECORD_PATH, NetworkMode::Off),
            Ok(())
        );
        assert_eq!(
            check_setup(Some(&text), RECORD_PATH, NetworkMode::On),
            Ok(())
        );
        let mut no_rules = record();
        no_rules.firewall_rules.clear();
        let err =
            check_setup(Some(&no_rules.to_text()), RECORD_PATH, NetworkMode::Off).unwrap_err();
        assert!(err.needs_setup(), "{err}");
        // The online account needs no firewall rule.
        assert_eq!(
            check_setup(Some(&no_rules.to_text()), RECORD_PATH, NetworkMode::On),
            Ok(())
        );
        assert!(check_setup(None, RECORD_PATH, NetworkMode::Off)
            .unwrap_err()
            .needs_setup());
        assert!(check_setup(Some("garbage"), RECORD_PATH, NetworkMode::Off).is_err());
    }

    #[test]
    fn an_allowlisted_run_needs_the_recorded_proxy_ports() {
        let text = record().to_text();
        assert_eq!(
            proxy_ports(Some(&text), RECORD_PATH),
            Ok(firewall::proxy_ports())
        );
        assert_eq!(
            check_setup(Some(&text), RECORD_PATH, NetworkMode::Allow),
            Ok(())
        );
        // A record from before the proxy: off still runs, allow asks for
        // setup again.
        let mut old = record();
        old.proxy_ports.clear();
        let old = old.to_text();
        assert_eq!(
            check_setup(Some(&old), RECORD_PATH, NetworkMode::Off),
            Ok(())
        );
        for err in [
            proxy_ports(Some(&old), RECORD_PATH).unwrap_err(),
            check_setup(Some(&old), RECORD_PATH, NetworkMode::Allow).unwrap_err(),
        ] {
            assert!(err.needs_setup(), "{err}");
            let why = err.to_string();
            assert!(
                why.contains("no proxy ports") && why.contains("moat setup"),
                "{why}"
            );
        }
        assert!(proxy_ports(None, RECORD_PATH).unwrap_err().needs_setup());
    }

    #[test]
    fn the_group_sid_comes_from_a_complete_record() {
        let text = record().to_text();
        assert_eq!(
            group_sid(Some(&text), RECORD_PATH).unwrap(),
            Sid::from_str("S-1-5-21-1-2-3-1003").unwrap()
        );
        let mut bad = record();
        bad.group = Some((setup_plan::GROUP.into(), "S-1-nonsense".into()));
        let err = group_sid(Some(&bad.to_text()), RECORD_PATH).unwrap_err();
        assert!(err.to_string().contains("does not parse"), "{err}");
        assert!(group_sid(None, RECORD_PATH).is_err());
    }

    fn request(network: NetworkMode) -> Request {
        Request {
            program: r"C:\Program Files\Git\cmd\git.exe".into(),
            args: vec!["status".into()],
            cwd: r"C:\Users\ana\repo".into(),
            env: vec![("PATH".into(), r"C:\Windows\System32".into())],
            writable_roots: vec![WritableRoot {
                path: r"C:\Users\ana\repo".into(),
                sid: Sid::from_str("S-1-5-21-10-20-30-40").unwrap(),
            }],
            network,
            pty: None,
            limits: Wanted::default(),
        }
    }

    fn ctx(record: Option<&str>) -> Context<'_> {
        Context {
            record,
            record_path: RECORD_PATH,
            moat_exe: MOAT,
            runner_override: None,
            server_pid: 4242,
            nonce: [1, 2, 3, 4],
        }
    }

    fn plan_with(req: &Request, record: &Record) -> Result<Plan, ElevatedError> {
        let text = record.to_text();
        plan(req, &ctx(Some(&text)))
    }

    fn setup_error(result: Result<Plan, ElevatedError>) -> String {
        match result {
            Err(ElevatedError::Setup(why)) => why,
            other => format!("not a setup error: {other:?}"),
        }
    }

    #[test]
    fn accounts_follow_the_network() {
        assert_eq!(account_for(NetworkMode::Off), setup_plan::OFFLINE);
        assert_eq!(account_for(NetworkMode::Allow), setup_plan::OFFLINE);
        assert_eq!(account_for(NetworkMode::On), setup_plan::ONLINE);
    }

    #[test]
    fn an_offline_plan() {
        let plan = plan_with(&request(NetworkMode::Off), &record()).unwrap();
        assert_eq!(plan.account, setup_plan::OFFLINE);
        assert_eq!(plan.account_sid, Sid::from_str(OFFLINE_SID).unwrap());
        assert_eq!(
            plan.secret,
            r"C:\ProgramData\moat\secrets\MoatSandboxOffline.secret"
        );
        assert_eq!(plan.network, NetEnforcement::Enforced);
        assert_eq!(plan.runner_exe, r"C:\Program Files\moat\moat-runner.exe");
        assert_eq!(plan.runner_cwd, r"C:\Program Files\moat");
        assert_eq!(plan.runner_args, RunnerArgs::new(4242, [1, 2, 3, 4]));
        assert_eq!(plan.runner_args.server_pid, 4242);

        // The command line is the runner's, and parses back to the args.
        let argv = crate::cmdline::split(&plan.runner_command_line);
        assert_eq!(argv[0], plan.runner_exe);
        assert_eq!(RunnerArgs::parse(&argv[1..]), Ok(plan.runner_args.clone()));

        // The spawn frame carries the request, roots with their SIDs.
        assert_eq!(plan.spawn.kind, Kind::Spawn);
        let sent = SpawnRequest::decode(&plan.spawn.payload).unwrap();
        assert_eq!(sent.program, r"C:\Program Files\Git\cmd\git.exe");
        assert_eq!(sent.args, ["status"]);
        assert_eq!(sent.cwd, r"C:\Users\ana\repo");
        assert_eq!(sent.env, request(NetworkMode::Off).env);
        assert_eq!(sent.writable_roots, [r"C:\Users\ana\repo"]);
        assert_eq!(sent.capability_sids, ["S-1-5-21-10-20-30-40"]);
        assert!(!sent.pty);
        // The runner accepts it.
        assert!(runner::prepare(&sent).is_ok());
    }

    #[test]
    fn online_and_allowlisted_plans() {
        let plan = plan_with(&request(NetworkMode::On), &record()).unwrap();
        assert_eq!(plan.account, setup_plan::ONLINE);
        assert_eq!(plan.account_sid, Sid::from_str(ONLINE_SID).unwrap());
        assert!(plan.secret.ends_with(r"\MoatSandboxOnline.secret"));
        assert_eq!(plan.network, NetEnforcement::Open);

        let plan = plan_with(&request(NetworkMode::Allow), &record()).unwrap();
        assert_eq!(plan.account, setup_plan::OFFLINE);
        assert_eq!(plan.network, NetEnforcement::Enforced);

        // The online account needs no firewall rules.
        let mut r = record();
        r.firewall_rules.clear();
        assert!(plan_with(&request(NetworkMode::On), &r).is_ok());
    }

    #[test]
    fn a_pty_request() {
        let mut req = request(NetworkMode::Off);
        req.pty = Some((120, 40));
        let plan = plan_with(&req, &record()).unwrap();
        let sent = SpawnRequest::decode(&plan.spawn.payload).unwrap();
        assert!(sent.pty);
        assert_eq!((sent.cols, sent.rows), (120, 40));
        // The runner's own refusal, before any runner starts.
        req.pty = Some((0, 40));
        let err = plan_with(&req, &record()).unwrap_err();
        assert!(
            matches!(&err, ElevatedError::Request(why) if why.contains("pseudo console")),
            "{err:?}"
        );
    }

    #[test]
    fn the_limits_go_to_the_runner() {
        let mut req = request(NetworkMode::Off);
        req.limits = Wanted {
            timeout_ms: Some(60_000),
            processes: Some(32),
            memory: Some(1 << 30),
            cpu_millis: Some(2000),
        };
        let plan = plan_with(&req, &record()).unwrap();
        let sent = SpawnRequest::decode(&plan.spawn.payload).unwrap();
        assert_eq!(sent.limits, req.limits);
        assert_eq!(runner::prepare(&sent).unwrap().limits, req.limits);
        // A limit the runner would refuse fails here, before it starts.
        req.limits.processes = Some(0);
        let err = plan_with(&req, &record()).unwrap_err();
        assert!(
            matches!(&err, ElevatedError::Request(why) if why.contains("processes is 0")),
            "{err:?}"
        );
    }

    #[test]
    fn a_resize_frame() {
        let frame = resize_frame(100, 30);
        assert_eq!(frame.kind, Kind::Resize);
        assert_eq!(framing::parse_resize(&frame.payload), Ok((100, 30)));
    }

    #[test]
    fn requests_the_runner_would_refuse() {
        let mut req = request(NetworkMode::Off);
        req.cwd = "relative".into();
        let err = plan_with(&req, &record()).unwrap_err();
        assert!(matches!(&err, ElevatedError::Request(_)), "{err:?}");
        assert!(err.to_string().contains("working directory"), "{err}");
        assert!(!err.needs_setup());

        let mut req = request(NetworkMode::Off);
        req.program = r"C:\Users\ana\AppData\Local\Microsoft\WindowsApps\pwsh.exe".into();
        let err = plan_with(&req, &record()).unwrap_err();
        assert!(err.to_string().contains("Store"), "{err}");
    }

    #[test]
    fn no_or_unreadable_record() {
        let err = plan(&request(NetworkMode::Off), &ctx(None)).unwrap_err();
        assert!(err.needs_setup());
        let text = err.to_string();
        assert!(
            text.contains("not set up") && text.contains(RECORD_PATH),
            "{text}"
        );
        assert!(text.contains("moat setup"), "{text}");

        let why = setup_error(plan(&request(NetworkMode::Off), &ctx(Some("garbage\n"))));
        assert!(
            why.contains("line 1") && why.contains("restore or remove"),
            "{why}"
        );
        let why = setup_error(plan(&request(NetworkMode::Off), &ctx(Some("# empty\n"))));
        assert!(why.contains("no version"), "{why}");
    }

    #[test]
    fn record_versions() {
        let newer = record().to_text().replace(
            &format!("version = {}", record::VERSION),
            &format!("version = {}", record::VERSION + 1),
        );
        let why = setup_error(plan(&request(NetworkMode::Off), &ctx(Some(&newer))));
        assert!(why.contains("newer moat"), "{why}");

        let mut old = record();
        old.version = record::OLDEST - 1;
        old.proxy_ports.clear();
        let why = setup_error(plan_with(&request(NetworkMode::Off), &old));
        assert!(
            why.contains("older than") && why.contains("moat setup"),
            "{why}"
        );

        // A version-1 record (no runner key) still works: the runner is
        // the one next to moat.
        let mut v1 = record();
        v1.version = 1;
        v1.proxy_ports.clear();
        let plan = plan_with(&request(NetworkMode::Off), &v1).unwrap();
        assert_eq!(plan.runner_exe, r"C:\Program Files\moat\moat-runner.exe");
    }

    #[test]
    fn the_installed_runner_is_used() {
        let mut r = record();
        r.runner = Some(r"C:\ProgramData\moat\runner\moat-runner.exe".into());
        let installed = plan_with(&request(NetworkMode::Off), &r).unwrap();
        assert_eq!(
            installed.runner_exe,
            r"C:\ProgramData\moat\runner\moat-runner.exe"
        );
        assert_eq!(installed.runner_cwd, r"C:\ProgramData\moat\runner");
        // The caller's override still wins.
        let text = r.to_text();
        let mut c = ctx(Some(&text));
        c.runner_override = Some(r"D:\t\moat-runner.exe");
        let overridden = plan(&request(NetworkMode::Off), &c).unwrap();
        assert_eq!(overridden.runner_exe, r"D:\t\moat-runner.exe");
        // A recorded runner that is not an absolute path is refused.
        r.runner = Some("moat-runner.exe".into());
        let err = plan_with(&request(NetworkMode::Off), &r).unwrap_err();
        assert!(matches!(err, ElevatedError::Runner(_)), "{err:?}");
    }

    #[test]
    fn incomplete_setups() {
        // A record the ACL tier wrote, with nothing of setup's in it.
        let ledger_only = Record {
            version: record::VERSION,
            ledger: Some(r"C:\ProgramData\moat\acl-ledger".into()),
            ..Record::default()
        };
        let why = setup_error(plan_with(&request(NetworkMode::Off), &ledger_only));
        assert!(
            why.contains("incomplete") && why.contains("MoatSandboxOffline"),
            "{why}"
        );

        let mut r = record();
        r.accounts.retain(|(n, _)| n != setup_plan::ONLINE);
        let why = setup_error(plan_with(&request(NetworkMode::On), &r));
        assert!(
            why.contains("no sandbox account MoatSandboxOnline"),
            "{why}"
        );
        assert!(plan_with(&request(NetworkMode::Off), &r).is_ok());

        let mut r = record();
        r.group = None;
        let why = setup_error(plan_with(&request(NetworkMode::Off), &r));
        assert!(why.contains("no group MoatSandboxUsers"), "{why}");

        let mut r = record();
        r.secrets = None;
        let why = setup_error(plan_with(&request(NetworkMode::On), &r));
        assert!(why.contains("no secrets directory"), "{why}");

        // Without its rules the offline account's network is open: refused.
        let mut r = record();
        r.firewall_rules = vec!["someone-elses-rule".into()];
        let why = setup_error(plan_with(&request(NetworkMode::Allow), &r));
        assert!(why.contains("no firewall rule"), "{why}");
    }

    #[test]
    fn recorded_sids_are_checked() {
        let mut r = record();
        r.accounts[0].1 = "S-1-1-0".into();
        let why = setup_error(plan_with(&request(NetworkMode::Off), &r));
        assert!(why.contains("no local account's"), "{why}");

        // Names are matched ignoring case; the record's spelling is kept.
        let mut r = record();
        r.accounts[0].0 = "moatsandboxoffline".into();
        let plan = plan_with(&request(NetworkMode::Off), &r).unwrap();
        assert_eq!(plan.account, "moatsandboxoffline");
        assert!(plan.secret.ends_with(r"\MoatSandboxOffline.secret"));
    }

    #[test]
    fn runner_paths() {
        assert_eq!(
            runner_path(r"C:\moat\moat.exe", None).unwrap(),
            r"C:\moat\moat-runner.exe"
        );
        assert_eq!(
            runner_path(r"C:\moat.exe", None).unwrap(),
            r"C:\moat-runner.exe"
        );
        assert_eq!(
            runner_path(r"\\srv\share\moat.exe", None).unwrap(),
            r"\\srv\share\moat-runner.exe"
        );
        assert_eq!(
            runner_path(r"C:\moat\moat.exe", Some(r"D:\tools\moat-runner.exe")).unwrap(),
            r"D:\tools\moat-runner.exe"
        );
        assert!(runner_path("moat.exe", None).is_err());
        assert!(runner_path(r"C:\moat\moat.exe", Some("moat-runner.exe")).is_err());

        let mut c = ctx(None);
        let text = record().to_text();
        c.record = Some(&text);
        c.moat_exe = "moat.exe";
        let err = plan(&request(NetworkMode::Off), &c).unwrap_err();
        assert!(matches!(err, ElevatedError::Runner(_)), "{err:?}");
        // A path too long for CreateProcessWithLogonW.
        let long = format!(r"C:\{}\moat.exe", "d".repeat(1000));
        c.moat_exe = &long;
        let err = plan(&request(NetworkMode::Off), &c).unwrap_err();
        assert!(err.to_string().contains("1024"), "{err}");
    }

    #[test]
    fn account_sid_checks() {
        let plan = plan_with(&request(NetworkMode::Off), &record()).unwrap();
        assert!(check_account_sid(&plan, Ok(plan.account_sid)).is_ok());
        let other = Sid::from_str("S-1-5-21-1-2-3-1009").unwrap();
        let err = check_account_sid(&plan, Ok(other)).unwrap_err();
        assert!(err.needs_setup());
        assert!(err.to_string().contains("S-1-5-21-1-2-3-1009"), "{err}");
        let err = check_account_sid(&plan, Err(1332)).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = check_account_sid(&plan, Err(1722)).unwrap_err();
        assert!(matches!(err, ElevatedError::System(_)));
        assert!(err.to_string().contains("error 1722"), "{err}");
    }

    #[test]
    fn secret_errors() {
        let path = r"C:\s\MoatSandboxOffline.secret";
        let err = secret_error("MoatSandboxOffline", path, true, Some(2));
        assert!(err.needs_setup() && err.to_string().contains("not stored"));
        let err = secret_error("MoatSandboxOffline", path, true, Some(5));
        assert!(err.to_string().contains("may not read"), "{err}");
        let err = secret_error("MoatSandboxOffline", path, true, Some(33));
        assert!(matches!(err, ElevatedError::System(_)));
        let err = secret_error("MoatSandboxOffline", path, false, Some(13));
        assert!(err.needs_setup() && err.to_string().contains("does not decrypt"));
    }

    #[test]
    fn logon_errors_keep_their_remedy() {
        let logon = |code| {
            ElevatedError::Logon(LogonError {
                account: setup_plan::OFFLINE.into(),
                step: Step::Logon,
                code,
            })
        };
        assert!(logon(1326).needs_setup());
        assert!(!logon(1385).needs_setup());
        assert!(logon(1385).to_string().contains("Log on as a batch job"));
    }

    #[test]
    fn connection_checks() {
        assert!(check_client("moat-runner-x-in", 7, 7).is_ok());
        let err = check_client("moat-runner-x-in", 8, 7).unwrap_err();
        assert!(err.to_string().contains("not by the runner"), "{err}");
        let err = connect_failure(Some(runner_args::EXIT_CONNECT), CONNECT_TIMEOUT);
        assert!(err.to_string().contains("code 69"), "{err}");
        assert!(err.to_string().contains("DACL"), "{err}");
        let err = connect_failure(Some(3), CONNECT_TIMEOUT);
        assert!(err
            .to_string()
            .ends_with("code 3 before it connected to moat"));
        let err = connect_failure(None, CONNECT_TIMEOUT);
        assert!(err.to_string().contains("within 30 seconds"), "{err}");
    }

    #[test]
    fn stdin_as_frames() {
        assert!(stdin_frames(b"").is_empty());
        assert_eq!(
            stdin_frames(b"abc"),
            [Frame::new(Kind::Stdin, b"abc".to_vec())]
        );
        let big = vec![7u8; MAX_PAYLOAD + 3];
        let frames = stdin_frames(&big);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload.len(), MAX_PAYLOAD);
        assert_eq!(frames[1].payload.len(), 3);
        assert!(frames.iter().all(|f| f.encode().is_ok()));
        assert_eq!(close_stdin_frame().kind, Kind::CloseStdin);
    }

    fn wire(frames: &[Frame]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.encode().unwrap()).collect()
    }

    #[test]
    fn relay_a_whole_run_in_pieces() {
        let bytes = wire(&[
            Frame::new(Kind::Stdout, b"hello ".to_vec()),
            Frame::new(Kind::Stderr, b"warn".to_vec()),
            Frame::new(Kind::Stdout, b"world".to_vec()),
            Frame::new(Kind::Exit, framing::exit_payload(3)),
        ]);
        let mut relay = Relay::new();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut end = None;
        for piece in bytes.chunks(3) {
            assert!(end.is_none());
            let pushed = relay.push(piece);
            for o in pushed.output {
                match o {
                    Output::Stdout(b) => out.extend(b),
                    Output::Stderr(b) => err.extend(b),
                }
            }
            end = pushed.end;
        }
        assert_eq!(end, Some(Ok(3)));
        assert_eq!(out, b"hello world");
        assert_eq!(err, b"warn");
        // After the end nothing more is taken, and closing keeps the code.
        assert_eq!(relay.push(b"junk"), Pushed::default());
        assert_eq!(relay.closed(None, Some(3)), Ok(3));
        assert_eq!(relay.end(), Some(&Ok(3)));
    }

    #[test]
    fn relay_output_order_within_one_read() {
        let bytes = wire(&[
            Frame::new(Kind::Stdout, b"a".to_vec()),
            Frame::new(Kind::Stderr, b"b".to_vec()),
            Frame::new(Kind::Stdout, b"c".to_vec()),
        ]);
        let pushed = Relay::new().push(&bytes);
        assert_eq!(
            pushed.output,
            [
                Output::Stdout(b"a".to_vec()),
                Output::Stderr(b"b".to_vec()),
                Output::Stdout(b"c".to_vec()),
            ]
        );
        assert_eq!(pushed.end, None);
    }

    #[test]
    fn relay_fails_closed_when_the_pipe_breaks() {
        let mut relay = Relay::new();
        let pushed = relay.push(&wire(&[Frame::new(Kind::Stdout, b"partial".to_vec())]));
        assert_eq!(pushed.output, [Output::Stdout(b"partial".to_vec())]);
        let why = relay.closed(None, None).unwrap_err();
        assert!(why.contains("before the command's exit code"), "{why}");
        // Closing again gives the same failure.
        assert_eq!(relay.closed(None, Some(0)), Err(why));

        // Cut inside the exit frame: never a success.
        let exit = wire(&[Frame::new(Kind::Exit, framing::exit_payload(0))]);
        let mut relay = Relay::new();
        assert_eq!(relay.push(&exit[..exit.len() - 1]).end, None);
        let why = relay
            .closed(
                Some("ReadFile failed (error 109)"),
                Some(runner_args::EXIT_WRONG_SERVER),
            )
            .unwrap_err();
        assert!(why.contains("middle of a frame"), "{why}");
        assert!(why.contains("error 109"), "{why}");
        assert!(why.contains("code 77") && why.contains("refused"), "{why}");
    }

    #[test]
    fn relay_errors() {
        // The runner's Error frame, after output that is still relayed.
        let mut relay = Relay::new();
        let pushed = relay.push(&wire(&[
            Frame::new(Kind::Stderr, b"last words".to_vec()),
            Frame::new(
                Kind::Error,
                framing::error_payload("CreateProcessAsUserW failed"),
            ),
            Frame::new(Kind::Exit, framing::exit_payload(0)),
        ]));
        assert_eq!(pushed.output, [Output::Stderr(b"last words".to_vec())]);
        assert_eq!(
            pushed.end,
            Some(Err("runner: CreateProcessAsUserW failed".to_string()))
        );

        // Bytes that are not frames.
        let mut relay = Relay::new();
        let pushed = relay.push(&[0, 0, 0, 0]);
        assert!(matches!(&pushed.end, Some(Err(why)) if why.contains("does not carry frames")));

        // A frame only moat sends.
        let pushed = Relay::new().push(&wire(&[Frame::new(Kind::Stdin, b"x".to_vec())]));
        assert!(matches!(&pushed.end, Some(Err(why)) if why.contains("only moat sends")));

        // A malformed exit code.
        let pushed = Relay::new().push(&wire(&[Frame::new(Kind::Exit, vec![1, 2])]));
        assert!(matches!(&pushed.end, Some(Err(why)) if why.contains("malformed exit")));
    }

    #[test]
    fn relay_refuses_anything_after_the_exit_code() {
        let bytes = wire(&[
            Frame::new(Kind::Exit, framing::exit_payload(0)),
            Frame::new(Kind::Stdout, b"late".to_vec()),
        ]);
        let pushed = Relay::new().push(&bytes);
        assert!(pushed.output.is_empty());
        assert!(matches!(&pushed.end, Some(Err(why)) if why.contains("after the exit code 0")));

        // Even the start of a frame.
        let mut only_exit = wire(&[Frame::new(Kind::Exit, framing::exit_payload(0))]);
        only_exit.push(9);
        let pushed = Relay::new().push(&only_exit);
        assert!(matches!(&pushed.end, Some(Err(_))));
    }

    #[test]
    fn relay_survives_noise() {
        // No byte sequence panics the relay, ends it twice or takes more
        // after the end, and a pipe that closes before an end is an error.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let mut relay = Relay::new();
            let mut ended = false;
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let len = (state % 12) as usize;
                let bytes: Vec<u8> = (0..len)
                    .map(|i| (state >> (i % 8 * 8)) as u8 % 10)
                    .collect();
                let pushed = relay.push(&bytes);
                if ended {
                    assert_eq!(pushed, Pushed::default());
                }
                if pushed.end.is_some() {
                    ended = true;
                }
            }
            let closed = relay.closed(None, None);
            if !ended {
                assert!(closed.is_err());
            }
        }
    }
}
