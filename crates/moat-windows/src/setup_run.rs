//! Carrying out `moat setup` and `moat setup --remove`: the plans of
//! `setup_plan`, run through a [`SetupHost`] (`sys::setup_host` on
//! Windows, a fake machine in the tests).
//!
//! # Setup
//! The executor refuses to start unless the process is an administrator's,
//! plans once to make every refusal before any change, installs the
//! runner, then plans and runs rounds until a plan comes back empty (at
//! most [`setup_plan::MAX_ROUNDS`]): a principal's SID exists only once it
//! is created, so the first round ends by resolving SIDs. Finally it checks
//! the machine as found: rules read back and compared, accounts hidden,
//! enabled and in the group, passwords stored, the runner in place.
//!
//! # moat's directory
//! Before anything is written in `%ProgramData%\moat` (the record, the
//! secrets, the runner), setup gives it owner Administrators and a
//! protected DACL (`setup_plan::base_sddl`): `%ProgramData%`'s own ACEs let
//! Users create files and folders in anything below it, which would let a
//! sandbox account plant files beside the record. Removal deletes it last,
//! only when empty.
//!
//! # Checking: `moat setup --check`
//! [`check`] reads the machine exactly as setup does and plans setup from
//! it; every step the plan would take is reported as what is missing
//! (`setup_plan::plan_problems`), with moat's directory and the runner,
//! which setup handles outside the plan. So the check cannot drift from
//! setup: the tests damage a set-up fake machine in each way they know,
//! check that the damage is named, and that setup then makes the check
//! clean again. It changes nothing and needs no administrator.
//!
//! # Profiles of accounts already gone
//! `NetUserDel` leaves an account's profile. Removal deletes the profiles
//! of every SID the record names whose account is gone (or was made again
//! with another SID), by SID (`DeleteProfileW`), and the leftovers check
//! reads the ProfileList again for those SIDs and names any still there.
//!
//! # The record is saved after every step
//! Whatever a run makes that removal can find only through the record is
//! noted there *before* it is made (the secrets directory, the runner), and
//! a principal's SID right after it is looked up (it has none before). The
//! principals carry moat's marker and the rules its prefix, so even what
//! an interrupted run made before the first save is found. A setup stopped
//! at any step therefore leaves a record with which `--remove` takes off
//! everything; the tests stop a fake machine at every step in turn and
//! check exactly that. The record's SIDs also let a later setup recognise
//! the principals as moat's.
//!
//! # The runner's place
//! The runner (`moat-runner.exe`) runs as the sandbox accounts, which must
//! be able to read and execute it. Installed with cargo it sits in the
//! person's profile (`%USERPROFILE%\.cargo\bin`), which they cannot read.
//! Setup copies it to a directory of its own under `%ProgramData%\moat`
//! (owner Administrators, a protected DACL: SYSTEM and Administrators full
//! control, Users read and execute, nothing else kept in it) and records
//! that path (record version 2), rather than granting the sandbox group
//! read and execute on the directory moat came from, because:
//! - that directory is the person's, writable by the person's processes:
//!   the program the sandbox accounts execute (and any DLL planted beside
//!   it, which Windows loads from the program's directory first) would be
//!   replaceable by anything the person runs;
//! - a grant on a profile directory opens everything else in it (other
//!   programs cargo installed, their data) to the sandbox accounts, and
//!   would be one more ACE on the person's files to track and take off.
//!
//! The cost: the copy can go stale when moat is upgraded. Setup compares
//! it byte for byte with the one next to moat and copies again when they
//! differ, so running `moat setup` after an upgrade is enough.

use std::fmt;

use crate::acl_plan::{Ledger, WinPath};
use crate::apply;
use crate::errors;
use crate::firewall::{self, Rule};
use crate::logon::Password;
use crate::record::{self, Record};
use crate::sddl::{
    dacl_string, Ace, AceFlags, FILE_ALL_ACCESS, FILE_GENERIC_EXECUTE, FILE_GENERIC_READ,
};
use crate::setup_plan::{self, RemovalStep, Secret, SecretsDir, SetupError, Sids, State, Step};
use crate::sid::{self, Sid};

/// The runner's file name (the same as the elevated tier looks for).
pub const RUNNER_EXE: &str = crate::elevated::RUNNER_EXE;

/// Everything setup carries out, one call each. Errors are messages that
/// name the object and, where known, the fix (`errors::describe`). Calls
/// that remove something treat "already gone" as success.
pub trait SetupHost {
    /// Whether the process runs with an administrator's token (elevated).
    fn is_admin(&mut self) -> Result<bool, String>;
    /// Fills `buf` from the system's random source.
    fn random(&mut self, buf: &mut [u8]) -> Result<(), String>;

    /// The setup record's text, `None` if there is none.
    fn read_record(&mut self) -> Result<Option<String>, String>;
    /// Replaces the setup record (atomically: a new file renamed over it).
    fn write_record(&mut self, text: &str) -> Result<(), String>;
    fn delete_record(&mut self) -> Result<(), String>;

    /// What exists, except `rules` and `record`, which the executor fills
    /// in: the accounts (their passwords read in the first of
    /// `secrets_dirs`), the group, other principals by moat's names, the
    /// sign-in screen entries, profiles of the record's SIDs whose account
    /// is gone, the first of `secrets_dirs` that exists, and the ledger the
    /// record names if it exists.
    fn gather(&mut self, record: Option<&Record>, secrets_dirs: &[String])
        -> Result<State, String>;
    /// The SID of the local principal `name`, `None` if there is none.
    fn sid_of(&mut self, name: &str) -> Result<Option<Sid>, String>;
    /// Runs `script` with `powershell.exe` (`setup_plan::powershell_arguments`);
    /// its standard output, or an error naming its exit code and standard
    /// error.
    fn powershell(&mut self, script: &str) -> Result<String, String>;

    fn create_group(&mut self, name: &str, comment: &str) -> Result<(), String>;
    /// Creates `name` disabled, with `password` (which nobody keeps).
    fn create_account(
        &mut self,
        name: &str,
        comment: &str,
        password: &Password,
    ) -> Result<(), String>;
    /// Creates `dir` if needed and sets its owner and protected DACL.
    fn protect_dir(&mut self, dir: &str, sddl: &str) -> Result<(), String>;
    /// The owner and DACL of the directory `dir`, `None` if it does not
    /// exist.
    fn dir_security(&mut self, dir: &str) -> Result<Option<SecretsDir>, String>;
    fn never_expire(&mut self, name: &str) -> Result<(), String>;
    fn set_password(&mut self, name: &str, password: &Password) -> Result<(), String>;
    /// Encrypts `password` with DPAPI (machine scope) and writes it to
    /// `path`.
    fn store_secret(&mut self, path: &str, password: &Password) -> Result<(), String>;
    fn add_to_group(&mut self, account: &str, group: &str) -> Result<(), String>;
    fn set_hidden(&mut self, name: &str, hidden: bool) -> Result<(), String>;
    fn unlock(&mut self, name: &str) -> Result<(), String>;
    fn enable(&mut self, name: &str) -> Result<(), String>;
    fn disable(&mut self, name: &str) -> Result<(), String>;
    /// Logs on as `name` with the password stored at `secret` and the
    /// profile loaded, so that Windows makes the profile.
    fn create_profile(&mut self, name: &str, secret: &str) -> Result<(), String>;
    /// `DeleteProfileW`: the folder and the ProfileList entry of `sid`.
    fn delete_profile(&mut self, sid: &Sid) -> Result<(), String>;
    /// Ends every process running as `name`; how many.
    fn end_processes(&mut self, name: &str) -> Result<usize, String>;
    fn delete_account(&mut self, name: &str) -> Result<(), String>;
    fn delete_group(&mut self, name: &str) -> Result<(), String>;

    fn read_file(&mut self, path: &str) -> Result<Option<String>, String>;
    fn write_file(&mut self, path: &str, text: &str) -> Result<(), String>;
    fn remove_file(&mut self, path: &str) -> Result<(), String>;
    /// Removes `dir` if it is empty; whether it is gone.
    fn remove_empty_dir(&mut self, dir: &str) -> Result<bool, String>;
    fn exists(&mut self, path: &str) -> Result<bool, String>;
    /// The disk, for taking off the ACEs a ledger records.
    fn acl(&mut self) -> &mut dyn apply::Host;

    /// Whether `target` exists with the same bytes as `source`.
    fn runner_current(&mut self, source: &str, target: &str) -> Result<bool, String>;
    /// Creates `dir` if needed with owner and protected DACL `sddl`,
    /// removes anything in it but [`RUNNER_EXE`], and copies `source` to
    /// `dir\`[`RUNNER_EXE`].
    fn install_runner(&mut self, source: &str, dir: &str, sddl: &str) -> Result<(), String>;
}

/// What setup is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupConfig {
    /// The SID of the person setting up (who may read the secrets).
    pub person: String,
    /// The loopback ports of moat's proxy, which the offline account may
    /// reach.
    pub proxy_ports: Vec<u16>,
    /// Where the passwords are kept (`%ProgramData%\moat\secrets`).
    pub secrets_dir: String,
    /// The runner as shipped, next to moat's executable; `None` leaves the
    /// runner where it is.
    pub runner_source: Option<String>,
    /// Where setup installs the runner (`%ProgramData%\moat\runner`).
    pub runner_dir: String,
    /// moat's own directory (`%ProgramData%\moat`: the record, and above
    /// the secrets and the runner), protected with
    /// `setup_plan::base_sddl` before anything is written in it.
    pub base_dir: String,
}

/// What removal looks at besides what the record names: the default
/// places, for a record that was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalConfig {
    pub secrets_dir: Option<String>,
    pub runner_dir: Option<String>,
    /// moat's own directory, removed last if it is empty (never
    /// recursively: a file someone left there keeps it, and is named).
    pub base_dir: Option<String>,
}

/// Why setup or removal stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// Not an administrator: nothing was done.
    NotElevated,
    /// The record cannot be read or is not this moat's: nothing was done.
    Record(String),
    /// The plan refused (a name taken, a bad person SID...): nothing done.
    Plan(SetupError),
    /// Reading the machine failed.
    Host(String),
    /// A step failed after `done` others had been carried out (and
    /// recorded).
    Step {
        step: String,
        reason: String,
        done: usize,
    },
    /// Plans kept coming back non-empty: these steps do not stick.
    NoConvergence(Vec<String>),
    /// Setup finished but the machine is not as it should be.
    Verify(Vec<String>),
    /// Removal finished but these are still there.
    Leftovers(Vec<String>),
    /// `moat setup --check`: what is missing or wrong, each with its fix.
    Incomplete(Vec<String>),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::NotElevated => f.write_str(errors::NOT_ELEVATED),
            RunError::Record(why) | RunError::Host(why) => f.write_str(why),
            RunError::Plan(err) => fmt::Display::fmt(err, f),
            RunError::Step { step, reason, done } => write!(
                f,
                "{} failed: {} ({} steps before it were carried out and recorded: run `moat \
                 setup` again to finish, or `moat setup --remove` to undo them)",
                step, reason, done
            ),
            RunError::NoConvergence(steps) => write!(
                f,
                "setup does not settle: after {} rounds it still plans {} (a policy or another \
                 program may be undoing them)",
                setup_plan::MAX_ROUNDS,
                steps.join("; ")
            ),
            RunError::Verify(problems) => write!(
                f,
                "setup finished but the check failed: {}",
                problems.join("; ")
            ),
            RunError::Leftovers(left) => write!(
                f,
                "removal finished but these are still there: {} (remove them by hand, or run \
                 `moat setup --remove` again)",
                left.join("; ")
            ),
            RunError::Incomplete(problems) => write!(
                f,
                "setup is not complete on this machine: {}",
                problems.join("; ")
            ),
        }
    }
}

impl std::error::Error for RunError {}

impl From<SetupError> for RunError {
    fn from(e: SetupError) -> RunError {
        RunError::Plan(e)
    }
}

/// The descriptor of the runner's directory: owner Administrators, a
/// protected DACL (nothing inherited from `%ProgramData%`, where Users may
/// create files): SYSTEM and Administrators full control, Users read and
/// execute. The sandbox accounts are members of Users (`NetUserAdd` with
/// `USER_PRIV_USER` puts them there); the program holds nothing secret.
pub fn runner_sddl() -> String {
    let aces = [
        Ace::allow(sid::LOCAL_SYSTEM, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(sid::ADMINISTRATORS, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(
            sid::USERS,
            FILE_GENERIC_READ | FILE_GENERIC_EXECUTE,
            AceFlags::SUBTREE,
        ),
    ];
    format!("O:BA{}", dacl_string(true, &aces))
}

/// Where the runner goes in `dir`.
pub fn runner_target(dir: &str) -> String {
    format!("{}\\{}", dir.trim_end_matches('\\'), RUNNER_EXE)
}

/// The directory of an absolute Windows path to a file.
fn parent_dir(path: &str) -> Option<String> {
    WinPath::parse(path)
        .ok()
        .and_then(|p| p.parent())
        .filter(|p| !p.is_root())
        .map(|p| p.to_string())
}

fn same_path(a: &str, b: &str) -> bool {
    match (WinPath::parse(a), WinPath::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

fn push_path(list: &mut Vec<String>, path: &str) {
    if !list.iter().any(|p| same_path(p, path)) {
        list.push(path.to_string());
    }
}

/// A password from the host's random source; the random bytes are wiped
/// once drawn from.
fn new_password(host: &mut dyn SetupHost) -> Result<Password, String> {
    // A password takes about 70 draws; 1024 leave room for every rejection
    // `setup_plan::password` could plausibly make.
    let mut bytes = vec![0u8; 4096];
    host.random(&mut bytes)?;
    let mut at = 0;
    let mut short = false;
    let mut draw = || {
        let word = bytes.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
        at += 4;
        match word {
            Some(w) => u32::from_le_bytes(w),
            None => {
                short = true;
                0
            }
        }
    };
    let password = setup_plan::password(&mut draw);
    crate::logon::wipe(&mut bytes);
    if short {
        return Err("the random source ran out while making a password".to_string());
    }
    password
}

/// The record as read, refused when unreadable or newer.
fn read_record(host: &mut dyn SetupHost) -> Result<Option<Record>, RunError> {
    let text = match host.read_record().map_err(RunError::Host)? {
        Some(text) => text,
        None => return Ok(None),
    };
    Record::parse(&text).map(Some).map_err(|err| match err {
        record::RecordError::Newer(_) => RunError::Record(err.to_string()),
        _ => RunError::Record(format!(
            "{}: moat will not guess what an unreadable record means; restore it, or delete it \
             (removal then finds moat's accounts, group and rules by their names and marker)",
            err
        )),
    })
}

/// The rules with moat's prefix, read back.
fn read_back(host: &mut dyn SetupHost) -> Result<Vec<Rule>, String> {
    let out = host.powershell(&setup_plan::read_back_command(firewall::OFFLINE_PREFIX))?;
    setup_plan::parse_read_back(&out).map_err(|e| e.to_string())
}

/// moat's own directories, whose owner and DACL are read with the rest.
#[derive(Clone, Copy, Debug, Default)]
struct Places<'a> {
    base_dir: Option<&'a str>,
    runner_dir: Option<&'a str>,
}

/// The machine as it is now. `hint` stands in for a record that is gone
/// (after removal), so that profiles of its SIDs are still looked for.
fn observe(
    host: &mut dyn SetupHost,
    secrets_dirs: &[String],
    hint: Option<&Record>,
    places: Places<'_>,
) -> Result<State, RunError> {
    let record = read_record(host)?;
    let mut state = host
        .gather(record.as_ref().or(hint), secrets_dirs)
        .map_err(RunError::Host)?;
    state.rules = read_back(host)
        .map_err(|e| RunError::Host(format!("reading the firewall rules back: {}", e)))?;
    if let Some(dir) = places.base_dir {
        state.base_dir = host.dir_security(dir).map_err(RunError::Host)?;
    }
    if let Some(dir) = places.runner_dir {
        state.runner_dir = host.dir_security(dir).map_err(RunError::Host)?;
    }
    state.record = record;
    Ok(state)
}

/// The SIDs of the principals that exist.
fn sids_of(host: &mut dyn SetupHost, state: &State) -> Result<Sids, RunError> {
    let mut sids = Sids::default();
    let present = [
        (setup_plan::GROUP, state.group.is_some()),
        (
            setup_plan::OFFLINE,
            state.account(setup_plan::OFFLINE).is_some(),
        ),
        (
            setup_plan::ONLINE,
            state.account(setup_plan::ONLINE).is_some(),
        ),
    ];
    for (name, exists) in present {
        if exists {
            if let Some(sid) = host.sid_of(name).map_err(RunError::Host)? {
                sids.set(name, sid);
            }
        }
    }
    Ok(sids)
}

/// The record as setup goes: saved whenever it changes.
struct Progress {
    record: Record,
    saved: Option<String>,
}

impl Progress {
    fn new(found: Option<&Record>) -> Progress {
        let mut record = found.cloned().unwrap_or_default();
        record.version = record::VERSION;
        Progress {
            record,
            saved: found.map(Record::to_text),
        }
    }

    fn save(&mut self, host: &mut dyn SetupHost) -> Result<(), String> {
        let text = self.record.to_text();
        if self.saved.as_deref() != Some(text.as_str()) {
            host.write_record(&text)
                .map_err(|e| format!("saving the setup record: {}", e))?;
            self.saved = Some(text);
        }
        Ok(())
    }

    fn note_sid(&mut self, name: &str, sid: Sid) {
        let entry = (name.to_string(), sid.to_string());
        if name.eq_ignore_ascii_case(setup_plan::GROUP) {
            self.record.group = Some(entry);
        } else if let Some(slot) = self
            .record
            .accounts
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            *slot = entry;
        } else {
            self.record.accounts.push(entry);
        }
    }
}

/// Carries out one setup step, keeping `record` true before and after.
struct SetupRun<'a> {
    config: &'a SetupConfig,
    sids: Sids,
    progress: Progress,
    /// The password just set, for the `StoreSecret` that follows (wiped
    /// when it is replaced or the run ends).
    pending: Option<(String, Password)>,
    done: Vec<String>,
}

impl SetupRun<'_> {
    fn step(&mut self, host: &mut dyn SetupHost, step: &Step) -> Result<(), RunError> {
        let fail = |reason: String, done: usize| RunError::Step {
            step: step.to_string(),
            reason,
            done,
        };
        let n = self.done.len();
        // Written ahead: what only the record can lead removal to.
        if let Step::ProtectSecrets { dir, .. } = step {
            let keep_old = self
                .progress
                .record
                .secrets
                .as_ref()
                .map_or(false, |old| !same_path(old, dir));
            // The old directory stays named until its `RemoveSecrets`; the
            // new one is then found at the configured place.
            if !keep_old {
                self.progress.record.secrets = Some(dir.clone());
            }
            self.progress.save(host).map_err(|e| fail(e, n))?;
        }
        self.carry_out(host, step).map_err(|e| fail(e, n))?;
        // Noted after: what did not exist before the step.
        match step {
            Step::ResolveSid { name } => {
                if let Some(sid) = self.sids.get(name) {
                    self.progress.note_sid(name, sid);
                }
            }
            Step::HideAccount { .. } => self.progress.record.hidden = true,
            Step::AddFirewallRule(rule)
                if !self.progress.record.firewall_rules.contains(&rule.name) =>
            {
                self.progress.record.firewall_rules.push(rule.name.clone());
            }
            Step::RemoveFirewallRule { name } => {
                self.progress.record.firewall_rules.retain(|r| r != name)
            }
            Step::RemoveSecrets { dir } => {
                let named = self.progress.record.secrets.as_ref();
                if named.map_or(false, |old| same_path(old, dir)) {
                    self.progress.record.secrets = Some(self.config.secrets_dir.clone());
                }
            }
            Step::WriteRecord(r) => {
                let runner = self.progress.record.runner.clone();
                self.progress.record = r.clone();
                self.progress.record.runner = runner;
            }
            _ => {}
        }
        self.progress.save(host).map_err(|e| fail(e, n))?;
        self.done.push(step.to_string());
        Ok(())
    }

    fn carry_out(&mut self, host: &mut dyn SetupHost, step: &Step) -> Result<(), String> {
        // A password set must be stored by the very next step; any other
        // step means the plan changed, and the password is dropped.
        let pending = self.pending.take();
        match step {
            Step::CreateGroup { name, comment } => host.create_group(name, comment),
            Step::CreateAccount { name, comment } => {
                let throwaway = new_password(host)?;
                host.create_account(name, comment, &throwaway)
            }
            Step::ResolveSid { name } => match host.sid_of(name)? {
                Some(sid) => {
                    self.sids.set(name, sid);
                    Ok(())
                }
                None => Err(format!("{} was just created but has no SID", name)),
            },
            Step::ProtectSecrets { dir, sddl, .. } => host.protect_dir(dir, sddl),
            Step::NeverExpire { name } => host.never_expire(name),
            Step::SetPassword { name } => {
                let password = new_password(host)?;
                host.set_password(name, &password)?;
                self.pending = Some((name.clone(), password));
                Ok(())
            }
            Step::StoreSecret { account, path } => match pending {
                Some((name, password)) if name.eq_ignore_ascii_case(account) => {
                    host.store_secret(path, &password)
                }
                _ => Err(format!("no new password of {} to store", account)),
            },
            Step::AddToGroup { account, group } => host.add_to_group(account, group),
            Step::HideAccount { name } => host.set_hidden(name, true),
            Step::RemoveSecrets { dir } => remove_secrets(host, dir),
            Step::RemoveFirewallRule { name } => host
                .powershell(&setup_plan::remove_rule_command(name))
                .map(|_| ()),
            Step::AddFirewallRule(rule) => host
                .powershell(&setup_plan::new_rule_command(rule))
                .map(|_| ()),
            Step::VerifyFirewall { expected } => {
                let got = read_back(host)?;
                let problems = firewall::verify(expected, &got);
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            }
            Step::Unlock { name } => host.unlock(name),
            Step::Enable { name } => host.enable(name),
            Step::Disable { name } => host.disable(name),
            Step::RemoveProfile { name } => {
                let sid = match self.sids.get(name) {
                    Some(sid) => Some(sid),
                    None => host.sid_of(name)?,
                };
                match sid {
                    Some(sid) => host.delete_profile(&sid),
                    None => Err(format!("{} has no SID", name)),
                }
            }
            Step::CreateProfile { name } => {
                let secret = setup_plan::secret_path(&self.config.secrets_dir, name);
                host.create_profile(name, &secret)
            }
            // The save after the step writes it.
            Step::WriteRecord(_) => Ok(()),
        }
    }

    /// Protects moat's own directory (`setup_plan::base_sddl`) unless it
    /// already is, before anything is written in it: creating the record
    /// would otherwise make it with `%ProgramData%`'s ACEs, which let
    /// Users create files there.
    fn protect_base(
        &mut self,
        host: &mut dyn SetupHost,
        found: Option<&SecretsDir>,
        person: &Sid,
    ) -> Result<(), RunError> {
        let dir = &self.config.base_dir;
        let sddl = setup_plan::base_sddl(person);
        if found.map_or(false, |d| setup_plan::dir_matches(d, &sddl)) {
            return Ok(());
        }
        let step = format!(
            "protect moat's directory {} (administrators only; you read the record; Users \
             traverse to the runner)",
            dir
        );
        host.protect_dir(dir, &sddl)
            .map_err(|reason| RunError::Step {
                step: step.clone(),
                reason,
                done: self.done.len(),
            })?;
        self.done.push(step);
        Ok(())
    }

    /// Installs the runner when the copy is missing, stale or not the
    /// recorded one, or its directory's descriptor is not `runner_sddl`;
    /// noted in the record first.
    fn install_runner(
        &mut self,
        host: &mut dyn SetupHost,
        found_dir: Option<&SecretsDir>,
    ) -> Result<(), RunError> {
        let source = match &self.config.runner_source {
            Some(s) => s.clone(),
            None => return Ok(()),
        };
        let target = runner_target(&self.config.runner_dir);
        let step = format!("install the runner as {}", target);
        let fail = |reason: String, done: usize| RunError::Step {
            step: step.clone(),
            reason,
            done,
        };
        let n = self.done.len();
        let recorded = self
            .progress
            .record
            .runner
            .as_ref()
            .map_or(false, |r| same_path(r, &target));
        let current = host
            .runner_current(&source, &target)
            .map_err(|e| fail(e, n))?;
        let protected = found_dir.map_or(false, |d| setup_plan::dir_matches(d, &runner_sddl()));
        if recorded && current && protected {
            return Ok(());
        }
        let old = self.progress.record.runner.clone();
        self.progress.record.runner = Some(target.clone());
        self.progress.save(host).map_err(|e| fail(e, n))?;
        // A runner installed elsewhere before goes first (it is no longer
        // recorded); one that cannot be removed is reported, not fatal.
        if let Some(old) = old.filter(|o| !same_path(o, &target)) {
            remove_runner(host, &old).map_err(|e| fail(e, n))?;
        }
        host.install_runner(&source, &self.config.runner_dir, &runner_sddl())
            .map_err(|e| fail(e, n))?;
        self.done.push(step);
        Ok(())
    }
}

/// Deletes the passwords in `dir`, then `dir` if nothing else is in it:
/// never a recursive delete of a path read from a file.
fn remove_secrets(host: &mut dyn SetupHost, dir: &str) -> Result<(), String> {
    for name in [setup_plan::OFFLINE, setup_plan::ONLINE] {
        host.remove_file(&setup_plan::secret_path(dir, name))?;
    }
    host.remove_empty_dir(dir).map(|_| ())
}

/// Deletes the runner at `path`, then its directory if empty.
fn remove_runner(host: &mut dyn SetupHost, path: &str) -> Result<(), String> {
    host.remove_file(path)?;
    if let Some(dir) = parent_dir(path) {
        host.remove_empty_dir(&dir)?;
    }
    Ok(())
}

/// What is wrong with a machine setup just finished, by reading it.
fn check_setup(
    host: &mut dyn SetupHost,
    config: &SetupConfig,
    state: &State,
    sids: &Sids,
    person: &Sid,
) -> Result<Vec<String>, RunError> {
    let mut problems = Vec::new();
    match sids.offline {
        Some(offline) => {
            let expected = firewall::offline_rules(&offline, &config.proxy_ports)
                .map_err(|e| RunError::Plan(e.into()))?;
            problems.extend(firewall::verify(&expected, &state.rules));
        }
        None => problems.push(format!("{} has no SID", setup_plan::OFFLINE)),
    }
    for name in [setup_plan::OFFLINE, setup_plan::ONLINE] {
        let a = match state.account(name) {
            Some(a) => a,
            None => {
                problems.push(format!("the account {} is missing", name));
                continue;
            }
        };
        if !state.hidden.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            problems.push(format!("{} is not hidden from the sign-in screen", name));
        }
        if a.secret != Secret::Stored {
            problems.push(format!("the password of {} is not stored", name));
        }
        if a.disabled || a.locked_out {
            problems.push(format!("{} cannot log on (disabled or locked out)", name));
        }
        if !a.in_group {
            problems.push(format!("{} is not in {}", name, setup_plan::GROUP));
        }
    }
    let require_runner = config.runner_source.is_some();
    problems.extend(place_problems(host, config, state, person, require_runner)?);
    Ok(problems)
}

/// What is wrong with moat's places, which the plan does not cover: its
/// directory's descriptor, and the runner (present, the one moat ships
/// when that is known, recorded, in a protected directory). Without
/// `require_runner` a setup given no runner to install (none beside moat)
/// is not faulted for it.
fn place_problems(
    host: &mut dyn SetupHost,
    config: &SetupConfig,
    state: &State,
    person: &Sid,
    require_runner: bool,
) -> Result<Vec<String>, RunError> {
    let mut problems = Vec::new();
    match &state.base_dir {
        None => problems.push(format!("moat's directory {} is missing", config.base_dir)),
        Some(found) if !setup_plan::dir_matches(found, &setup_plan::base_sddl(person)) => problems
            .push(format!(
                "moat's directory {} does not have the permissions setup sets (owner \
                 Administrators; SYSTEM and Administrators full control, you read, Users \
                 traverse only, nothing inherited)",
                config.base_dir
            )),
        Some(_) => {}
    }
    if !require_runner {
        return Ok(problems);
    }
    let target = runner_target(&config.runner_dir);
    let recorded = state.record.as_ref().and_then(|r| r.runner.clone());
    match &config.runner_source {
        Some(source) => {
            if !host
                .runner_current(source, &target)
                .map_err(RunError::Host)?
            {
                let what = if host.exists(&target).map_err(RunError::Host)? {
                    "is not the one moat ships (moat was upgraded?)"
                } else {
                    "is missing"
                };
                problems.push(format!("the runner {} {}", target, what));
            }
            if !recorded.as_ref().map_or(false, |r| same_path(r, &target)) {
                problems.push("the setup record does not name the runner".to_string());
            }
        }
        // No runner beside moat to compare with: the recorded one must be
        // there.
        None => match &recorded {
            Some(runner) => {
                if !host.exists(runner).map_err(RunError::Host)? {
                    problems.push(format!("the runner {} is missing", runner));
                }
            }
            None => problems.push("the setup record does not name the runner".to_string()),
        },
    }
    let runner_dir = recorded
        .as_deref()
        .and_then(parent_dir)
        .unwrap_or_else(|| config.runner_dir.clone());
    if same_path(&runner_dir, &config.runner_dir) {
        match &state.runner_dir {
            Some(found) if !setup_plan::dir_matches(found, &runner_sddl()) => {
                problems.push(format!(
                    "the runner's directory {} does not have the permissions setup sets \
                     (owner Administrators; SYSTEM and Administrators full control, Users read \
                     and execute, nothing inherited)",
                    config.runner_dir
                ))
            }
            // Missing: named above with the runner.
            _ => {}
        }
    }
    Ok(problems)
}

/// The fix `moat setup --check` names for what setup repairs.
pub const CHECK_FIX: &str = "run `moat setup` from an elevated prompt";

/// `moat setup --check`: reads the machine as setup does (no change is
/// made, and no administrator's token is needed) and plans setup from
/// it. Every step the plan would still take is a problem
/// (`setup_plan::plan_problems`), so the check reports what setup would
/// repair and cannot drift from it; so are moat's directory's
/// descriptor and the runner (`place_problems`), which setup handles
/// outside the plan. A plan setup would refuse (a name taken by someone
/// else's account, say) is a problem with its own fix.
///
/// `Ok` holds what was checked, when nothing is wrong;
/// [`RunError::Incomplete`] each problem with its fix. Other errors mean
/// the machine could not be read.
pub fn check(config: &SetupConfig, host: &mut dyn SetupHost) -> Result<Vec<String>, RunError> {
    let person = setup_plan::person_sid(&config.person)?;
    let dirs = [config.secrets_dir.clone()];
    let places = Places {
        base_dir: Some(&config.base_dir),
        runner_dir: Some(&config.runner_dir),
    };
    let state = observe(host, &dirs, None, places)?;
    let sids = sids_of(host, &state)?;
    let mut problems: Vec<String> = Vec::new();
    match setup_plan::setup_steps(
        &state,
        &config.person,
        &config.proxy_ports,
        &config.secrets_dir,
        &sids,
    ) {
        Ok(steps) => {
            for problem in setup_plan::plan_problems(&steps, &state, &sids) {
                problems.push(format!("{}: {}", problem, CHECK_FIX));
            }
        }
        Err(refused) => problems.push(refused.to_string()),
    }
    for problem in place_problems(host, config, &state, &person, true)? {
        problems.push(format!("{}: {}", problem, CHECK_FIX));
    }
    if !problems.is_empty() {
        return Err(RunError::Incomplete(problems));
    }
    Ok(vec![
        format!(
            "{} and {} exist with the SIDs the record names, enabled, hidden, in {}, passwords \
             stored in {}",
            setup_plan::OFFLINE,
            setup_plan::ONLINE,
            setup_plan::GROUP,
            config.secrets_dir
        ),
        format!(
            "{} firewall rules read back as setup writes them",
            state.rules.len()
        ),
        format!(
            "{} and the runner {} protected as setup sets them",
            config.base_dir,
            runner_target(&config.runner_dir)
        ),
    ])
}

/// `moat setup`: what it did, one line a step, then what it checked.
pub fn setup(config: &SetupConfig, host: &mut dyn SetupHost) -> Result<Vec<String>, RunError> {
    if !host.is_admin().map_err(RunError::Host)? {
        return Err(RunError::NotElevated);
    }
    let dirs = [config.secrets_dir.clone()];
    let places = Places {
        base_dir: Some(&config.base_dir),
        runner_dir: Some(&config.runner_dir),
    };
    // Every refusal before any change.
    let state = observe(host, &dirs, None, places)?;
    let sids = sids_of(host, &state)?;
    setup_plan::setup_steps(
        &state,
        &config.person,
        &config.proxy_ports,
        &config.secrets_dir,
        &sids,
    )?;
    let person = setup_plan::person_sid(&config.person)?;
    let mut run = SetupRun {
        config,
        sids,
        progress: Progress::new(state.record.as_ref()),
        pending: None,
        done: Vec::new(),
    };
    run.protect_base(host, state.base_dir.as_ref(), &person)?;
    run.install_runner(host, state.runner_dir.as_ref())?;

    let mut last: Vec<String> = Vec::new();
    let mut settled = None;
    for _ in 0..setup_plan::MAX_ROUNDS {
        let state = observe(host, &dirs, None, places)?;
        run.sids = sids_of(host, &state)?;
        run.progress = Progress::new(state.record.as_ref());
        let steps = setup_plan::setup_steps(
            &state,
            &config.person,
            &config.proxy_ports,
            &config.secrets_dir,
            &run.sids,
        )?;
        if steps.is_empty() {
            settled = Some(state);
            break;
        }
        for step in &steps {
            run.step(host, step)?;
        }
        last = steps.iter().map(Step::to_string).collect();
    }
    let state = match settled {
        Some(state) => state,
        None => return Err(RunError::NoConvergence(last)),
    };
    let problems = check_setup(host, config, &state, &run.sids, &person)?;
    if !problems.is_empty() {
        return Err(RunError::Verify(problems));
    }
    let mut report = run.done;
    if report.is_empty() {
        report.push("nothing to do: setup is complete".to_string());
    }
    report.push(format!(
        "checked: {} firewall rules read back as written; {} and {} hidden, enabled, in {}, \
         passwords stored; {} and the runner protected",
        state.rules.len(),
        setup_plan::OFFLINE,
        setup_plan::ONLINE,
        setup_plan::GROUP,
        config.base_dir
    ));
    Ok(report)
}

/// Takes off the ACEs the ledger at `path` records, then the ledger; the
/// ledger is saved with what was taken off if a step fails.
fn remove_aces(host: &mut dyn SetupHost, path: &str) -> Result<(), String> {
    let text = match host.read_file(path)? {
        Some(text) => text,
        None => return Ok(()),
    };
    let mut ledger =
        Ledger::from_text(&text).map_err(|e| format!("the ACL ledger {}: {}", path, e))?;
    let steps = ledger.removal_plan();
    let result = apply::remove(&steps, &mut ledger, host.acl());
    if let Err(err) = result {
        host.write_file(path, &ledger.to_text())?;
        return Err(err.to_string());
    }
    if ledger.is_empty() {
        host.remove_file(path)
    } else {
        host.write_file(path, &ledger.to_text())?;
        Err(format!("the ACL ledger {} still records ACEs", path))
    }
}

fn removal_step(
    host: &mut dyn SetupHost,
    step: &RemovalStep,
    runners: &[String],
    report: &mut Vec<String>,
) -> Result<(), String> {
    match step {
        RemovalStep::DisableAccount { name } => host.disable(name),
        RemovalStep::EndProcesses { name } => host.end_processes(name).map(|_| ()),
        RemovalStep::RemoveFirewallRules { prefix } => host
            .powershell(&setup_plan::remove_rules_command(prefix))
            .map(|_| ()),
        RemovalStep::RemoveFirewallRule { name } => host
            .powershell(&setup_plan::remove_rule_command(name))
            .map(|_| ()),
        RemovalStep::DeleteProfile { name, sid } => {
            let sid = match sid {
                Some(sid) => Some(*sid),
                None => host.sid_of(name)?,
            };
            match sid {
                Some(sid) => host.delete_profile(&sid),
                None => Ok(()),
            }
        }
        RemovalStep::DeleteAccount { name, sid } | RemovalStep::DeleteGroup { name, sid } => {
            if let Some(want) = sid {
                let now = host.sid_of(name)?;
                if now != Some(*want) {
                    report.push(format!(
                        "left {}: it is not the one setup recorded ({})",
                        name, want
                    ));
                    return Ok(());
                }
            }
            if matches!(step, RemovalStep::DeleteGroup { .. }) {
                host.delete_group(name)
            } else {
                host.delete_account(name)
            }
        }
        RemovalStep::UnhideAccount { name } => host.set_hidden(name, false),
        RemovalStep::RemoveSecrets { dir } => remove_secrets(host, dir),
        RemovalStep::RemoveAces { ledger } => remove_aces(host, ledger),
        RemovalStep::DeleteRecord => {
            // The runner is named only by the record: it goes first.
            for runner in runners {
                remove_runner(host, runner)?;
            }
            host.delete_record()
        }
    }
}

/// `moat setup --remove`: what it did, one line a step. Fails naming what
/// is still there afterwards.
pub fn remove(config: &RemovalConfig, host: &mut dyn SetupHost) -> Result<Vec<String>, RunError> {
    if !host.is_admin().map_err(RunError::Host)? {
        return Err(RunError::NotElevated);
    }
    let found = read_record(host)?;
    let record = found.clone().unwrap_or_default();
    let mut dirs = Vec::new();
    for dir in record.secrets.iter().chain(config.secrets_dir.iter()) {
        push_path(&mut dirs, dir);
    }
    let mut runners = Vec::new();
    let configured = config.runner_dir.as_deref().map(runner_target);
    for runner in record.runner.iter().chain(configured.iter()) {
        push_path(&mut runners, runner);
    }
    let places = Places {
        base_dir: None,
        runner_dir: None,
    };
    let state = observe(host, &dirs, None, places)?;
    let steps = setup_plan::removal_steps(&record, &state);
    let mut report = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        removal_step(host, step, &runners, &mut report).map_err(|reason| RunError::Step {
            step: step.to_string(),
            reason,
            done: n,
        })?;
        report.push(step.to_string());
    }
    // Without a record there was no `DeleteRecord` to take the runner.
    if !steps.contains(&RemovalStep::DeleteRecord) {
        for runner in &runners {
            if host.exists(runner).map_err(RunError::Host)? {
                remove_runner(host, runner).map_err(|reason| RunError::Step {
                    step: format!("remove the runner {}", runner),
                    reason,
                    done: steps.len(),
                })?;
                report.push(format!("remove the runner {}", runner));
            }
        }
    }

    // moat's own directory last, once the record, the secrets and the
    // runner are out of it; never recursively.
    if let Some(base) = &config.base_dir {
        if host.exists(base).map_err(RunError::Host)? {
            let step = format!("remove moat's directory {}", base);
            let gone = host
                .remove_empty_dir(base)
                .map_err(|reason| RunError::Step {
                    step: step.clone(),
                    reason,
                    done: report.len(),
                })?;
            if gone {
                report.push(step);
            }
        }
    }

    let after = observe(host, &dirs, found.as_ref(), places)?;
    let mut left = setup_plan::leftovers(&after);
    for runner in &runners {
        if host.exists(runner).map_err(RunError::Host)? {
            left.push(format!("the runner {}", runner));
        }
    }
    if let Some(base) = &config.base_dir {
        if host.exists(base).map_err(RunError::Host)? {
            left.push(format!(
                "moat's directory {} (not empty: what is in it is not moat's, or was not \
                 removed)",
                base
            ));
        }
    }
    if !left.is_empty() {
        return Err(RunError::Leftovers(left));
    }
    if report.is_empty() {
        report.push("nothing to remove: moat's setup is not on this machine".to_string());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::acl_plan::{plan, PathState, PlanInput, ProtectedPath, SidBook};
    use crate::setup_plan::{Account, Group, Profile, SecretsDir};

    const PERSON: &str = "S-1-5-21-7-8-9-1001";
    const SECRETS: &str = r"C:\ProgramData\moat\secrets";
    const RUNNER_DIR: &str = r"C:\ProgramData\moat\runner";
    const SOURCE: &str = r"C:\Users\ana\.cargo\bin\moat-runner.exe";
    const LEDGER: &str = r"C:\ProgramData\moat\acl-ledger";
    const BASE: &str = r"C:\ProgramData\moat";
    /// Where the record is on a real machine: in moat's directory, which
    /// it keeps from being removed.
    const RECORD: &str = r"C:\ProgramData\moat\setup-record";
    const PORTS: &[u16] = &[3128];

    #[derive(Debug, Clone)]
    struct User {
        name: String,
        comment: String,
        sid: Sid,
        disabled: bool,
        locked: bool,
        never_expires: bool,
        in_group: bool,
        password: String,
    }

    #[derive(Default)]
    struct Disk {
        aces: Vec<(String, Ace)>,
        dirs: Vec<String>,
    }

    impl apply::Host for Disk {
        fn create_dir(&mut self, path: &WinPath) -> Result<(), String> {
            self.dirs.push(path.to_string());
            Ok(())
        }
        fn add_ace(&mut self, path: &WinPath, ace: &Ace) -> Result<(), String> {
            self.aces.push((path.to_string(), *ace));
            Ok(())
        }
        fn remove_aces(&mut self, path: &WinPath, sid: &Sid) -> Result<usize, String> {
            let p = path.to_string();
            let before = self.aces.len();
            self.aces.retain(|(q, a)| !(q == &p && &a.sid == sid));
            Ok(before - self.aces.len())
        }
        fn remove_dir_if_empty(&mut self, path: &WinPath) -> Result<bool, String> {
            let p = path.to_string();
            let before = self.dirs.len();
            self.dirs.retain(|d| d != &p);
            Ok(before != self.dirs.len())
        }
    }

    /// A machine: principals, files, directories (with their SDDL), rules.
    #[derive(Default)]
    struct Fake {
        admin: bool,
        users: Vec<User>,
        group: Option<(String, Sid)>,
        hidden: Vec<String>,
        profiles: Vec<Sid>,
        files: Vec<(String, String)>,
        dirs: Vec<(String, String)>,
        rules: Vec<Rule>,
        disk: Disk,
        record: Option<String>,
        next_rid: u32,
        seed: u8,
        calls: usize,
        fail_at: Option<usize>,
        log: Vec<String>,
        /// `delete_profile` reports success but the profile stays (a
        /// ProfileList entry Windows would not let go of).
        stuck_profiles: bool,
        /// Stored secrets whose file someone gave an ACE of its own; a
        /// secret stored again is a new file, without it.
        exposed: Vec<String>,
    }

    fn key(path: &str) -> String {
        path.to_ascii_lowercase()
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                admin: true,
                next_rid: 1100,
                files: vec![(key(SOURCE), "runner v1".to_string())],
                ..Fake::default()
            }
        }

        /// A change: counted, and failed when its turn comes.
        fn change(&mut self, what: &str) -> Result<(), String> {
            self.calls += 1;
            self.log.push(what.to_string());
            if self.fail_at == Some(self.calls) {
                return Err(format!("{} failed (error 5)", what));
            }
            Ok(())
        }

        fn file(&self, path: &str) -> Option<&String> {
            self.files
                .iter()
                .find(|(p, _)| *p == key(path))
                .map(|(_, t)| t)
        }

        fn put(&mut self, path: &str, text: &str) {
            self.files.retain(|(p, _)| *p != key(path));
            self.files.push((key(path), text.to_string()));
        }

        fn user(&mut self, name: &str) -> Result<&mut User, String> {
            self.users
                .iter_mut()
                .find(|u| u.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("no user {} (error 2221)", name))
        }

        fn offline_rules(&self) -> Vec<Rule> {
            let sid = self
                .users
                .iter()
                .find(|u| u.name == setup_plan::OFFLINE)
                .map(|u| u.sid);
            sid.map_or(Vec::new(), |s| firewall::offline_rules(&s, PORTS).unwrap())
        }

        /// Nothing of moat's left, the shipped runner aside.
        fn is_clean(&self) -> Result<(), String> {
            let mut left = Vec::new();
            if !self.users.is_empty() {
                left.push(format!("users {:?}", self.users));
            }
            if self.group.is_some() {
                left.push("group".to_string());
            }
            if !self.hidden.is_empty() || !self.profiles.is_empty() || !self.rules.is_empty() {
                left.push(format!(
                    "{:?} {:?} {:?}",
                    self.hidden, self.profiles, self.rules
                ));
            }
            if self.files.len() != 1 || !self.dirs.is_empty() || self.record.is_some() {
                left.push(format!(
                    "{:?} {:?} {:?}",
                    self.files, self.dirs, self.record
                ));
            }
            if !self.disk.aces.is_empty() || !self.disk.dirs.is_empty() {
                left.push(format!("{:?} {:?}", self.disk.aces, self.disk.dirs));
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join("\n"))
            }
        }
    }

    use crate::setup_plan::tests::render;

    /// A password's text, as the fake machine keeps it.
    fn text(p: &Password) -> String {
        String::from_utf16(p.units()).unwrap()
    }

    fn text_of(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    impl SetupHost for Fake {
        fn is_admin(&mut self) -> Result<bool, String> {
            Ok(self.admin)
        }
        fn random(&mut self, buf: &mut [u8]) -> Result<(), String> {
            self.seed = self.seed.wrapping_add(1);
            let mut x = u32::from(self.seed).wrapping_mul(2_654_435_761) | 1;
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            Ok(())
        }
        fn read_record(&mut self) -> Result<Option<String>, String> {
            Ok(self.record.clone())
        }
        fn write_record(&mut self, text: &str) -> Result<(), String> {
            self.change("write the record")?;
            // Every record written must read back.
            Record::parse(text).unwrap();
            self.record = Some(text.to_string());
            Ok(())
        }
        fn delete_record(&mut self) -> Result<(), String> {
            self.change("delete the record")?;
            self.record = None;
            Ok(())
        }
        fn gather(
            &mut self,
            record: Option<&Record>,
            secrets_dirs: &[String],
        ) -> Result<State, String> {
            let mut state = State::default();
            let first = secrets_dirs.first().cloned().unwrap_or_default();
            for u in &self.users {
                let stored = self.file(&setup_plan::secret_path(&first, &u.name));
                let path = key(&setup_plan::secret_path(&first, &u.name));
                let secret = match stored {
                    None => Secret::Missing,
                    Some(s) if *s != format!("sealed:{}", u.password) => Secret::Rejected,
                    Some(_) if self.exposed.contains(&path) => Secret::Exposed,
                    Some(_) => Secret::Stored,
                };
                state.accounts.push(Account {
                    name: u.name.clone(),
                    comment: u.comment.clone(),
                    disabled: u.disabled,
                    locked_out: u.locked,
                    password_expired: false,
                    password_never_expires: u.never_expires,
                    in_group: u.in_group,
                    profile: if self.profiles.contains(&u.sid) {
                        Profile::Ready
                    } else {
                        Profile::Missing
                    },
                    secret,
                });
            }
            state.group = self.group.as_ref().map(|(comment, _)| Group {
                comment: comment.clone(),
            });
            state.hidden = self.hidden.clone();
            if let Some(r) = record {
                for (_, s) in &r.accounts {
                    let s: Sid = s.parse().unwrap();
                    let gone = !self.users.iter().any(|u| u.sid == s);
                    if gone && self.profiles.contains(&s) {
                        state.orphan_profiles.push(s);
                    }
                }
                if let Some(l) = &r.ledger {
                    if self.file(l).is_some() {
                        state.ledger = Some(l.clone());
                    }
                }
            }
            for dir in secrets_dirs {
                if let Some((path, sddl)) = self.dirs.iter().find(|(p, _)| *p == key(dir)) {
                    state.secrets_dir = Some(SecretsDir {
                        path: path.clone(),
                        owner: Some(sid::ADMINISTRATORS),
                        dacl: sddl.trim_start_matches("O:BA").to_string(),
                    });
                    break;
                }
            }
            Ok(state)
        }
        fn sid_of(&mut self, name: &str) -> Result<Option<Sid>, String> {
            if name.eq_ignore_ascii_case(setup_plan::GROUP) {
                return Ok(self.group.as_ref().map(|(_, s)| *s));
            }
            Ok(self
                .users
                .iter()
                .find(|u| u.name.eq_ignore_ascii_case(name))
                .map(|u| u.sid))
        }
        fn powershell(&mut self, script: &str) -> Result<String, String> {
            let prefix = firewall::OFFLINE_PREFIX;
            if script == setup_plan::read_back_command(prefix) {
                let lines: Vec<String> = self.rules.iter().map(render).collect();
                return Ok(lines.join("\r\n"));
            }
            self.change("powershell")?;
            if script == setup_plan::remove_rules_command(prefix) {
                self.rules.retain(|r| !r.name.starts_with(prefix));
                return Ok(String::new());
            }
            for rule in self.offline_rules() {
                if script == setup_plan::new_rule_command(&rule) {
                    self.rules.push(rule);
                    return Ok(String::new());
                }
            }
            let names: Vec<String> = self.rules.iter().map(|r| r.name.clone()).collect();
            for name in names {
                if script == setup_plan::remove_rule_command(&name) {
                    self.rules.retain(|r| r.name != name);
                    return Ok(String::new());
                }
            }
            panic!("an unknown script: {}", script);
        }
        fn create_group(&mut self, name: &str, comment: &str) -> Result<(), String> {
            self.change("create group")?;
            assert_eq!(name, setup_plan::GROUP);
            self.next_rid += 1;
            let sid = format!("S-1-5-21-1-2-3-{}", self.next_rid).parse().unwrap();
            self.group = Some((comment.to_string(), sid));
            Ok(())
        }
        fn create_account(
            &mut self,
            name: &str,
            comment: &str,
            pw: &Password,
        ) -> Result<(), String> {
            self.change("create account")?;
            assert_eq!(pw.len(), setup_plan::PASSWORD_LEN);
            let pw = &text(pw);
            self.next_rid += 1;
            self.users.push(User {
                name: name.to_string(),
                comment: comment.to_string(),
                sid: format!("S-1-5-21-1-2-3-{}", self.next_rid).parse().unwrap(),
                disabled: true,
                locked: false,
                never_expires: false,
                in_group: false,
                password: pw.to_string(),
            });
            Ok(())
        }
        fn protect_dir(&mut self, dir: &str, sddl: &str) -> Result<(), String> {
            self.change("protect dir")?;
            if !same_path(dir, BASE) {
                // Removal can only find it through the record.
                let record = Record::parse(self.record.as_deref().unwrap()).unwrap();
                assert!(record.secrets.is_some());
                // Protected before anything is written in moat's directory.
                assert!(self.dirs.iter().any(|(p, _)| *p == key(BASE)));
            }
            self.dirs.retain(|(p, _)| *p != key(dir));
            self.dirs.push((key(dir), sddl.to_string()));
            Ok(())
        }
        fn dir_security(&mut self, dir: &str) -> Result<Option<SecretsDir>, String> {
            Ok(self
                .dirs
                .iter()
                .find(|(p, _)| *p == key(dir))
                .map(|(p, sddl)| SecretsDir {
                    path: p.clone(),
                    owner: Some(sid::ADMINISTRATORS),
                    dacl: sddl.trim_start_matches("O:BA").to_string(),
                }))
        }
        fn never_expire(&mut self, name: &str) -> Result<(), String> {
            self.change("never expire")?;
            self.user(name)?.never_expires = true;
            Ok(())
        }
        fn set_password(&mut self, name: &str, password: &Password) -> Result<(), String> {
            self.change("set password")?;
            self.user(name)?.password = text(password);
            Ok(())
        }
        fn store_secret(&mut self, path: &str, password: &Password) -> Result<(), String> {
            self.change("store secret")?;
            let dir = parent_dir(path).unwrap();
            assert!(self.dirs.iter().any(|(p, _)| *p == key(&dir)), "{}", dir);
            let sealed = password.with_utf8(|bytes| format!("sealed:{}", text_of(bytes)));
            self.put(path, &sealed);
            self.exposed.retain(|p| *p != key(path));
            Ok(())
        }
        fn add_to_group(&mut self, account: &str, _group: &str) -> Result<(), String> {
            self.change("add to group")?;
            self.user(account)?.in_group = true;
            Ok(())
        }
        fn set_hidden(&mut self, name: &str, hidden: bool) -> Result<(), String> {
            self.change("hide")?;
            self.hidden.retain(|h| h != name);
            if hidden {
                self.hidden.push(name.to_string());
            }
            Ok(())
        }
        fn unlock(&mut self, name: &str) -> Result<(), String> {
            self.change("unlock")?;
            self.user(name)?.locked = false;
            Ok(())
        }
        fn enable(&mut self, name: &str) -> Result<(), String> {
            self.change("enable")?;
            self.user(name)?.disabled = false;
            Ok(())
        }
        fn disable(&mut self, name: &str) -> Result<(), String> {
            self.change("disable")?;
            self.user(name)?.disabled = true;
            Ok(())
        }
        fn create_profile(&mut self, name: &str, secret: &str) -> Result<(), String> {
            self.change("create profile")?;
            let stored = self.file(secret).cloned();
            let u = self.user(name)?.clone();
            assert!(!u.disabled && !u.locked);
            assert_eq!(stored, Some(format!("sealed:{}", u.password)));
            self.profiles.push(u.sid);
            Ok(())
        }
        fn delete_profile(&mut self, sid: &Sid) -> Result<(), String> {
            self.change("delete profile")?;
            if !self.stuck_profiles {
                self.profiles.retain(|p| p != sid);
            }
            Ok(())
        }
        fn end_processes(&mut self, _name: &str) -> Result<usize, String> {
            self.change("end processes")?;
            Ok(0)
        }
        fn delete_account(&mut self, name: &str) -> Result<(), String> {
            self.change("delete account")?;
            self.users.retain(|u| u.name != name);
            Ok(())
        }
        fn delete_group(&mut self, _name: &str) -> Result<(), String> {
            self.change("delete group")?;
            self.group = None;
            Ok(())
        }
        fn read_file(&mut self, path: &str) -> Result<Option<String>, String> {
            Ok(self.file(path).cloned())
        }
        fn write_file(&mut self, path: &str, text: &str) -> Result<(), String> {
            self.change("write file")?;
            self.put(path, text);
            Ok(())
        }
        fn remove_file(&mut self, path: &str) -> Result<(), String> {
            self.change("remove file")?;
            assert!(!same_path(path, SOURCE), "removed the shipped runner");
            self.files.retain(|(p, _)| *p != key(path));
            Ok(())
        }
        fn remove_empty_dir(&mut self, dir: &str) -> Result<bool, String> {
            self.change("remove dir")?;
            let inside = format!("{}\\", key(dir));
            let record_inside = self.record.is_some() && key(RECORD).starts_with(&inside);
            if self.files.iter().any(|(p, _)| p.starts_with(&inside))
                || self.dirs.iter().any(|(p, _)| p.starts_with(&inside))
                || record_inside
            {
                return Ok(false);
            }
            self.dirs.retain(|(p, _)| *p != key(dir));
            Ok(true)
        }
        fn exists(&mut self, path: &str) -> Result<bool, String> {
            Ok(self.file(path).is_some() || self.dirs.iter().any(|(p, _)| *p == key(path)))
        }
        fn acl(&mut self) -> &mut dyn apply::Host {
            &mut self.disk
        }
        fn runner_current(&mut self, source: &str, target: &str) -> Result<bool, String> {
            Ok(self.file(target).is_some() && self.file(target) == self.file(source))
        }
        fn install_runner(&mut self, source: &str, dir: &str, sddl: &str) -> Result<(), String> {
            self.change("install runner")?;
            let record = Record::parse(self.record.as_deref().unwrap()).unwrap();
            assert_eq!(record.runner.as_deref(), Some(runner_target(dir).as_str()));
            let bytes = self.file(source).cloned().unwrap();
            self.dirs.retain(|(p, _)| *p != key(dir));
            self.dirs.push((key(dir), sddl.to_string()));
            self.put(&runner_target(dir), &bytes);
            Ok(())
        }
    }

    fn config() -> SetupConfig {
        SetupConfig {
            person: PERSON.to_string(),
            proxy_ports: PORTS.to_vec(),
            secrets_dir: SECRETS.to_string(),
            runner_source: Some(SOURCE.to_string()),
            runner_dir: RUNNER_DIR.to_string(),
            base_dir: BASE.to_string(),
        }
    }

    fn defaults() -> RemovalConfig {
        RemovalConfig {
            secrets_dir: Some(SECRETS.to_string()),
            runner_dir: Some(RUNNER_DIR.to_string()),
            base_dir: Some(BASE.to_string()),
        }
    }

    /// What removal is always given: moat's directory is a fixed place,
    /// not something the record names.
    fn base_only() -> RemovalConfig {
        RemovalConfig {
            base_dir: Some(BASE.to_string()),
            ..RemovalConfig::default()
        }
    }

    /// Grants of the ACL tier, recorded in a ledger the record names.
    fn add_acl_grants(fake: &mut Fake) {
        let input = PlanInput {
            roots: vec![r"D:\work\app".to_string()],
            protected: vec![ProtectedPath::new(r"D:\work\app\.moat", PathState::Absent)],
            everyone_writable: vec![],
            profiles_root: r"C:\Users".to_string(),
            profile_dir: r"C:\Users\ana".to_string(),
            principals: Vec::new(),
        };
        let mut book = SidBook::new();
        let mut n = 0u32;
        let mut random = || {
            n += 1;
            n
        };
        let p = plan(&input, &mut book, &mut random).unwrap();
        let mut ledger = Ledger::new();
        apply::apply(&p, &mut ledger, &mut fake.disk).unwrap();
        assert!(!fake.disk.aces.is_empty());
        fake.put(LEDGER, &ledger.to_text());
        let mut record = Record::parse(fake.record.as_deref().unwrap()).unwrap();
        record.ledger = Some(LEDGER.to_string());
        fake.record = Some(record.to_text());
    }

    #[test]
    fn a_fresh_machine_is_set_up_checked_and_removed() {
        let mut fake = Fake::new();
        let report = setup(&config(), &mut fake).unwrap();
        assert!(report.iter().any(|l| l.contains("install the runner")));
        assert!(report
            .iter()
            .any(|l| l.contains("create the local account")));
        assert!(
            report.last().unwrap().starts_with("checked:"),
            "{:?}",
            report
        );
        let record = Record::parse(fake.record.as_deref().unwrap()).unwrap();
        assert_eq!(record.version, record::VERSION);
        assert_eq!(record.runner, Some(runner_target(RUNNER_DIR)));
        assert_eq!(record.secrets.as_deref(), Some(SECRETS));
        assert_eq!(record.firewall_rules.len(), 3);
        assert_eq!(fake.rules.len(), 3);
        assert!(fake.users.iter().all(|u| !u.disabled && u.in_group));

        // The elevated tier accepts the record and uses the installed runner.
        let text = fake.record.clone().unwrap();
        let req = crate::elevated::Request {
            program: r"C:\Windows\System32\cmd.exe".into(),
            args: vec![],
            cwd: r"C:\Users\ana".into(),
            env: vec![],
            writable_roots: vec![],
            network: moat_policy::NetworkMode::Off,
            pty: None,
            limits: crate::limits::Wanted::default(),
        };
        let ctx = crate::elevated::Context {
            record: Some(&text),
            record_path: r"C:\ProgramData\moat\setup-record",
            moat_exe: r"C:\Users\ana\.cargo\bin\moat.exe",
            runner_override: None,
            server_pid: 1,
            nonce: [1, 2, 3, 4],
        };
        let planned = crate::elevated::plan(&req, &ctx).unwrap();
        assert_eq!(planned.runner_exe, runner_target(RUNNER_DIR));

        // A second run changes nothing.
        let calls = fake.calls;
        let again = setup(&config(), &mut fake).unwrap();
        assert_eq!(fake.calls, calls, "{:?}", again);
        assert!(again[0].starts_with("nothing to do"));

        // A new moat ships a new runner: copied again, nothing else.
        fake.put(SOURCE, "runner v2");
        let upgraded = setup(&config(), &mut fake).unwrap();
        assert_eq!(upgraded.len(), 2, "{:?}", upgraded);
        assert_eq!(
            fake.file(&runner_target(RUNNER_DIR)).map(String::as_str),
            Some("runner v2")
        );

        add_acl_grants(&mut fake);
        let removed = remove(&defaults(), &mut fake).unwrap();
        assert!(removed.iter().any(|l| l.contains("ACEs")), "{:?}", removed);
        fake.is_clean().unwrap();
        // Nothing left: nothing to do.
        let nothing = remove(&defaults(), &mut fake).unwrap();
        assert!(nothing[0].starts_with("nothing to remove"), "{:?}", nothing);
    }

    #[test]
    fn not_elevated_is_refused_before_anything() {
        let mut fake = Fake::new();
        fake.admin = false;
        let err = setup(&config(), &mut fake).unwrap_err();
        assert_eq!(err, RunError::NotElevated);
        assert!(err.to_string().contains("UAC"));
        assert_eq!(
            remove(&defaults(), &mut fake).unwrap_err(),
            RunError::NotElevated
        );
        assert_eq!(fake.calls, 0);
    }

    /// An account with moat's online name that moat did not make.
    fn someone_elses_online() -> User {
        User {
            name: setup_plan::ONLINE.to_string(),
            comment: "someone's".to_string(),
            sid: "S-1-5-21-1-2-3-1500".parse().unwrap(),
            disabled: false,
            locked: false,
            never_expires: true,
            in_group: false,
            password: String::new(),
        }
    }

    #[test]
    fn refusals_come_before_any_change() {
        let mut fake = Fake::new();
        fake.users.push(someone_elses_online());
        let err = setup(&config(), &mut fake).unwrap_err();
        assert!(
            matches!(err, RunError::Plan(SetupError::Taken { .. })),
            "{:?}",
            err
        );
        assert_eq!(fake.calls, 0);
        // Removal leaves someone else's account alone.
        remove(&defaults(), &mut fake).unwrap();
        assert_eq!(fake.users.len(), 1);

        let mut bad = config();
        bad.person = "S-1-1-0".to_string();
        let err = setup(&bad, &mut Fake::new()).unwrap_err();
        assert!(
            matches!(err, RunError::Plan(SetupError::Person { .. })),
            "{:?}",
            err
        );
    }

    #[test]
    fn an_unreadable_record_stops_both() {
        let mut fake = Fake::new();
        fake.record = Some("version = 1\nmystery = 1\n".to_string());
        let err = setup(&config(), &mut fake).unwrap_err();
        assert!(err.to_string().contains("delete it"), "{}", err);
        assert!(matches!(
            remove(&defaults(), &mut fake),
            Err(RunError::Record(_))
        ));
        assert_eq!(fake.calls, 0);
    }

    #[test]
    fn a_version_one_record_is_upgraded_with_the_runner() {
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        let mut old = Record::parse(fake.record.as_deref().unwrap()).unwrap();
        old.version = 1;
        old.runner = None;
        old.proxy_ports.clear();
        fake.record = Some(old.to_text());
        let report = setup(&config(), &mut fake).unwrap();
        let record = Record::parse(fake.record.as_deref().unwrap()).unwrap();
        assert_eq!(record.version, record::VERSION);
        assert_eq!(record.runner, Some(runner_target(RUNNER_DIR)));
        // The proxy ports, which version 1 lacked, are recorded too.
        assert_eq!(record.proxy_ports, config().proxy_ports);
        // Recorded when the runner went in, before anything else.
        assert!(report[0].contains("install the runner"), "{:?}", report);
    }

    #[test]
    fn a_setup_stopped_at_any_step_is_removed_completely() {
        let mut full = Fake::new();
        setup(&config(), &mut full).unwrap();
        let steps = full.calls;
        assert!(steps > 20, "{}", steps);
        for fail_at in 1..=steps {
            let mut fake = Fake::new();
            fake.fail_at = Some(fail_at);
            let err = setup(&config(), &mut fake).unwrap_err();
            match &err {
                RunError::Step { reason, .. } => assert!(reason.contains("error 5"), "{}", err),
                other => panic!("at {}: {:?}", fail_at, other),
            }
            assert!(err.to_string().contains("moat setup --remove"));
            fake.fail_at = None;
            // Only the record leads removal to the secrets and the runner.
            let report = remove(&base_only(), &mut fake)
                .unwrap_or_else(|e| panic!("at {} ({:?}): {}", fail_at, fake.log.last(), e));
            assert!(!report.is_empty());
            fake.is_clean()
                .unwrap_or_else(|e| panic!("at {} ({:?}): {}", fail_at, fake.log.last(), e));
        }
    }

    #[test]
    fn a_setup_stopped_at_any_step_finishes_when_run_again() {
        let mut full = Fake::new();
        setup(&config(), &mut full).unwrap();
        for fail_at in 1..=full.calls {
            let mut fake = Fake::new();
            fake.fail_at = Some(fail_at);
            assert!(setup(&config(), &mut fake).is_err());
            fake.fail_at = None;
            setup(&config(), &mut fake).unwrap_or_else(|e| panic!("at {}: {}", fail_at, e));
            remove(&defaults(), &mut fake).unwrap();
            fake.is_clean().unwrap();
        }
    }

    #[test]
    fn a_removal_stopped_at_any_step_finishes_when_run_again() {
        let mut full = Fake::new();
        setup(&config(), &mut full).unwrap();
        add_acl_grants(&mut full);
        let before = full.calls;
        remove(&defaults(), &mut full).unwrap();
        let steps = full.calls - before;
        for fail_at in 1..=steps {
            let mut fake = Fake::new();
            setup(&config(), &mut fake).unwrap();
            add_acl_grants(&mut fake);
            fake.fail_at = Some(fake.calls + fail_at);
            assert!(remove(&defaults(), &mut fake).is_err());
            fake.fail_at = None;
            remove(&defaults(), &mut fake).unwrap_or_else(|e| panic!("at {}: {}", fail_at, e));
            fake.is_clean().unwrap();
        }
    }

    #[test]
    fn what_removal_cannot_take_off_is_named() {
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        // Someone put a file of theirs in the secrets directory.
        fake.put(&format!(r"{}\notes.txt", SECRETS), "mine");
        let err = remove(&defaults(), &mut fake).unwrap_err();
        match &err {
            RunError::Leftovers(left) => {
                // The secrets directory, and moat's directory above it.
                assert_eq!(left.len(), 2, "{:?}", left);
                assert!(left[0].contains("secrets directory"), "{:?}", left);
                assert!(left[1].contains("moat's directory"), "{:?}", left);
            }
            other => panic!("{:?}", other),
        }
        assert!(err.to_string().contains("still there"));
        // Their file is kept, and so are the directories holding it.
        assert!(fake.file(&format!(r"{}\notes.txt", SECRETS)).is_some());
        assert!(fake.dirs.iter().any(|(p, _)| *p == key(SECRETS)));
        assert!(fake.dirs.iter().any(|(p, _)| *p == key(BASE)));
        // Once it is gone, removal finishes.
        fake.files.retain(|(p, _)| !p.ends_with("notes.txt"));
        remove(&defaults(), &mut fake).unwrap();
        fake.is_clean().unwrap();
    }

    // -- setup --check

    /// The problems `check` reports, which must each carry a fix.
    fn problems(fake: &mut Fake) -> Vec<String> {
        let calls = fake.calls;
        let result = check(&config(), fake);
        // A check reads; it never changes anything.
        assert_eq!(fake.calls, calls, "the check changed the machine");
        match result {
            Err(RunError::Incomplete(problems)) => {
                assert!(!problems.is_empty());
                problems
            }
            other => panic!("{:?}", other),
        }
    }

    fn assert_named(problems: &[String], words: &str) {
        assert!(
            problems.iter().any(|p| p.contains(words)),
            "{:?} does not name {:?}",
            problems,
            words
        );
        for p in problems {
            assert!(p.ends_with(CHECK_FIX), "{:?} has no fix", p);
        }
    }

    #[test]
    fn a_complete_setup_checks_clean_without_an_administrator() {
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        fake.admin = false;
        let calls = fake.calls;
        let lines = check(&config(), &mut fake).unwrap();
        assert_eq!(fake.calls, calls);
        assert!(lines[1].starts_with("3 firewall rules"), "{:?}", lines);
    }

    #[test]
    fn a_machine_never_set_up_fails_the_check() {
        let mut fake = Fake::new();
        let problems = problems(&mut fake);
        assert_named(&problems, "the local group MoatSandboxUsers is missing");
        assert_named(&problems, "the local account MoatSandboxOffline is missing");
        assert_named(&problems, "the local account MoatSandboxOnline is missing");
        assert_named(&problems, "cannot be checked before these exist");
        assert_named(
            &problems,
            r"moat's directory C:\ProgramData\moat is missing",
        );
        assert_named(&problems, "is missing");
        assert_named(&problems, "the setup record does not name the runner");
        assert!(RunError::Incomplete(problems)
            .to_string()
            .starts_with("setup is not complete on this machine: "));
    }

    /// Damage done to a set-up machine, and what the check must say.
    type Damage = fn(&mut Fake);

    fn damages() -> Vec<(&'static str, Damage, &'static str)> {
        vec![
            (
                "a deleted account",
                |f| f.users.retain(|u| u.name != setup_plan::ONLINE),
                "the local account MoatSandboxOnline is missing",
            ),
            (
                "an account made again with another SID",
                |f| {
                    f.next_rid += 1;
                    let u = f
                        .users
                        .iter_mut()
                        .find(|u| u.name == setup_plan::ONLINE)
                        .unwrap();
                    u.sid = format!("S-1-5-21-1-2-3-{}", f.next_rid).parse().unwrap();
                },
                "but the setup record names",
            ),
            (
                "a removed firewall rule",
                |f| f.rules.retain(|r| r.name != "moat-offline-block-remote"),
                "firewall: rule moat-offline-block-remote is missing",
            ),
            (
                "an edited firewall rule",
                |f| {
                    let rule = f
                        .rules
                        .iter_mut()
                        .find(|r| r.name == "moat-offline-block-loopback-tcp")
                        .unwrap();
                    rule.remote_ports = "1-3127,3129-65535,3128".to_string();
                },
                "firewall: rule moat-offline-block-loopback-tcp: ",
            ),
            (
                "a disabled firewall rule",
                |f| f.rules[1].enabled = false,
                "firewall: rule moat-offline-block-loopback-udp: ",
            ),
            (
                "a stray firewall rule",
                |f| {
                    let mut extra = f.rules[0].clone();
                    extra.name = "moat-offline-extra".to_string();
                    f.rules.push(extra);
                },
                "firewall: rule moat-offline-extra is not expected",
            ),
            (
                "a missing secret",
                |f| {
                    let path = setup_plan::secret_path(SECRETS, setup_plan::OFFLINE);
                    f.files.retain(|(p, _)| *p != key(&path));
                },
                r"the password of MoatSandboxOffline is not stored in C:\ProgramData\moat\secrets\MoatSandboxOffline.secret",
            ),
            (
                "a secret someone granted Users read on",
                |f| {
                    let path = setup_plan::secret_path(SECRETS, setup_plan::ONLINE);
                    f.exposed.push(key(&path));
                },
                "the stored password of MoatSandboxOnline has permissions of its own",
            ),
            (
                "a password changed by someone",
                |f| f.users[0].password = "changed".to_string(),
                "is refused at logon",
            ),
            (
                "a secrets directory opened to Users",
                |f| {
                    let (_, sddl) = f.dirs.iter_mut().find(|(p, _)| *p == key(SECRETS)).unwrap();
                    sddl.push_str("(A;OICI;0x1200a9;;;S-1-5-32-545)");
                },
                r"the secrets directory C:\ProgramData\moat\secrets does not have the permissions",
            ),
            (
                "a missing runner",
                |f| {
                    let runner = runner_target(RUNNER_DIR);
                    f.files.retain(|(p, _)| *p != key(&runner));
                },
                r"the runner C:\ProgramData\moat\runner\moat-runner.exe is missing",
            ),
            (
                "a stale runner",
                |f| f.put(SOURCE, "runner v2"),
                "is not the one moat ships",
            ),
            (
                "a runner directory others may write",
                |f| {
                    let (_, sddl) = f
                        .dirs
                        .iter_mut()
                        .find(|(p, _)| *p == key(RUNNER_DIR))
                        .unwrap();
                    sddl.push_str("(A;OICI;0x1301bf;;;S-1-5-32-545)");
                },
                "the runner's directory",
            ),
            (
                "moat's directory inheriting from ProgramData",
                |f| {
                    let (_, sddl) = f.dirs.iter_mut().find(|(p, _)| *p == key(BASE)).unwrap();
                    *sddl = sddl.replacen("D:P", "D:", 1);
                },
                r"moat's directory C:\ProgramData\moat does not have the permissions",
            ),
            (
                "moat's directory removed",
                |f| f.dirs.retain(|(p, _)| *p != key(BASE)),
                r"moat's directory C:\ProgramData\moat is missing",
            ),
            (
                "a disabled account",
                |f| f.users[1].disabled = true,
                "is disabled",
            ),
            (
                "a locked-out account",
                |f| f.users[1].locked = true,
                "is locked out",
            ),
            (
                "an account shown on the sign-in screen",
                |f| f.hidden.retain(|h| h != setup_plan::OFFLINE),
                "MoatSandboxOffline is not hidden from the sign-in screen",
            ),
            (
                "an account out of the group",
                |f| f.users[0].in_group = false,
                "is not in MoatSandboxUsers",
            ),
            (
                "a deleted profile",
                |f| f.profiles.clear(),
                "has no profile yet",
            ),
            (
                "a deleted group",
                |f| f.group = None,
                "the local group MoatSandboxUsers is missing",
            ),
            (
                "a deleted record",
                |f| f.record = None,
                "the setup record is missing",
            ),
        ]
    }

    #[test]
    fn each_kind_of_damage_is_reported_and_setup_repairs_it() {
        for (what, damage, words) in damages() {
            let mut fake = Fake::new();
            setup(&config(), &mut fake).unwrap();
            check(&config(), &mut fake).unwrap();
            damage(&mut fake);
            let found = problems(&mut fake);
            assert_named(&found, words);
            // What the check reports is what setup repairs: afterwards the
            // check is clean again.
            setup(&config(), &mut fake).unwrap_or_else(|e| panic!("{}: {}", what, e));
            check(&config(), &mut fake).unwrap_or_else(|e| panic!("{}: {}", what, e));
        }
    }

    #[test]
    fn the_check_names_principals_moat_will_not_take_over() {
        let mut fake = Fake::new();
        fake.users.push(someone_elses_online());
        let problems = match check(&config(), &mut fake) {
            Err(RunError::Incomplete(p)) => p,
            other => panic!("{:?}", other),
        };
        // Its own fix, not "run moat setup", which would refuse.
        assert!(
            problems[0].contains("will not take it over"),
            "{:?}",
            problems
        );
        assert!(
            problems[0].contains("rename or delete it"),
            "{:?}",
            problems
        );
        assert!(!problems[0].ends_with(CHECK_FIX));
    }

    #[test]
    fn the_check_refuses_a_person_that_is_not_a_user() {
        let mut bad = config();
        bad.person = "S-1-1-0".to_string();
        let err = check(&bad, &mut Fake::new()).unwrap_err();
        assert!(
            matches!(err, RunError::Plan(SetupError::Person { .. })),
            "{:?}",
            err
        );
    }

    // -- Orphaned profiles

    fn sid_of_user(fake: &Fake, name: &str) -> Sid {
        fake.users.iter().find(|u| u.name == name).unwrap().sid
    }

    #[test]
    fn profiles_of_accounts_already_gone_are_removed_by_their_recorded_sid() {
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        let offline = sid_of_user(&fake, setup_plan::OFFLINE);
        let online = sid_of_user(&fake, setup_plan::ONLINE);
        assert!(fake.profiles.contains(&offline) && fake.profiles.contains(&online));
        // An earlier removal was interrupted after the accounts went (or
        // someone deleted them by hand): NetUserDel leaves profiles.
        fake.users.clear();
        let report = remove(&defaults(), &mut fake).unwrap();
        for (name, sid) in [(setup_plan::OFFLINE, offline), (setup_plan::ONLINE, online)] {
            let line = format!("delete the profile of {} ({})", name, sid);
            assert!(report.contains(&line), "{:?}", report);
        }
        assert!(fake.profiles.is_empty(), "{:?}", fake.profiles);
        fake.is_clean().unwrap();
    }

    #[test]
    fn the_profile_of_an_earlier_incarnation_goes_with_the_current_one() {
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        let old = sid_of_user(&fake, setup_plan::ONLINE);
        // Deleted and made again by a setup whose record was lost: the
        // record still names the old SID, whose profile is left.
        fake.users.retain(|u| u.name != setup_plan::ONLINE);
        let text = fake.record.clone().unwrap();
        fake.record = None;
        setup(&config(), &mut fake).unwrap();
        let new = sid_of_user(&fake, setup_plan::ONLINE);
        assert_ne!(old, new);
        let mut record = Record::parse(fake.record.as_deref().unwrap()).unwrap();
        let stale = Record::parse(&text).unwrap();
        // Removal is given a record naming the old SID.
        record.accounts = stale.accounts.clone();
        fake.record = Some(record.to_text());
        assert!(fake.profiles.contains(&old) && fake.profiles.contains(&new));
        remove(&defaults(), &mut fake).unwrap();
        assert!(fake.profiles.is_empty(), "{:?}", fake.profiles);
        fake.is_clean().unwrap();
    }

    #[test]
    fn a_profile_that_stays_is_named_by_the_leftovers_check() {
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        let offline = sid_of_user(&fake, setup_plan::OFFLINE);
        fake.users.retain(|u| u.name != setup_plan::ONLINE);
        fake.stuck_profiles = true;
        let err = remove(&defaults(), &mut fake).unwrap_err();
        match &err {
            RunError::Leftovers(left) => {
                // Both profiles, by SID: the account that was already gone
                // and the one removal deleted, which left it behind.
                assert_eq!(left.len(), 2, "{:?}", left);
                assert!(left
                    .iter()
                    .all(|l| l.starts_with("the profile of S-1-5-21-")));
                assert!(left.contains(&format!("the profile of {}", offline)));
            }
            other => panic!("{:?}", other),
        }
        // The record is gone, but the leftovers check still knew the SIDs;
        // once Windows lets go, a removal without a record has nothing to
        // find, so the profile must be deleted by hand (as the message says).
        assert!(err.to_string().contains("remove them by hand"));
    }

    #[test]
    fn a_step_that_does_not_stick_is_reported() {
        // A policy that unhides the accounts as soon as they are hidden.
        let mut fake = Fake::new();
        setup(&config(), &mut fake).unwrap();
        let err = setup(&config(), &mut ForgetHidden(&mut fake)).unwrap_err();
        assert!(matches!(err, RunError::NoConvergence(_)), "{:?}", err);
        assert!(err.to_string().contains("hide"), "{}", err);
    }

    /// Delegates to a fake but never keeps an account hidden.
    struct ForgetHidden<'a>(&'a mut Fake);

    impl SetupHost for ForgetHidden<'_> {
        fn is_admin(&mut self) -> Result<bool, String> {
            self.0.is_admin()
        }
        fn random(&mut self, buf: &mut [u8]) -> Result<(), String> {
            self.0.random(buf)
        }
        fn read_record(&mut self) -> Result<Option<String>, String> {
            self.0.read_record()
        }
        fn write_record(&mut self, text: &str) -> Result<(), String> {
            self.0.write_record(text)
        }
        fn delete_record(&mut self) -> Result<(), String> {
            self.0.delete_record()
        }
        fn gather(&mut self, r: Option<&Record>, d: &[String]) -> Result<State, String> {
            self.0.hidden.clear();
            self.0.gather(r, d)
        }
        fn sid_of(&mut self, name: &str) -> Result<Option<Sid>, String> {
            self.0.sid_of(name)
        }
        fn powershell(&mut self, script: &str) -> Result<String, String> {
            self.0.powershell(script)
        }
        fn create_group(&mut self, n: &str, c: &str) -> Result<(), String> {
            self.0.create_group(n, c)
        }
        fn create_account(&mut self, n: &str, c: &str, p: &Password) -> Result<(), String> {
            self.0.create_account(n, c, p)
        }
        fn protect_dir(&mut self, d: &str, s: &str) -> Result<(), String> {
            self.0.protect_dir(d, s)
        }
        fn dir_security(&mut self, d: &str) -> Result<Option<SecretsDir>, String> {
            self.0.dir_security(d)
        }
        fn never_expire(&mut self, n: &str) -> Result<(), String> {
            self.0.never_expire(n)
        }
        fn set_password(&mut self, n: &str, p: &Password) -> Result<(), String> {
            self.0.set_password(n, p)
        }
        fn store_secret(&mut self, path: &str, p: &Password) -> Result<(), String> {
            self.0.store_secret(path, p)
        }
        fn add_to_group(&mut self, a: &str, g: &str) -> Result<(), String> {
            self.0.add_to_group(a, g)
        }
        fn set_hidden(&mut self, n: &str, h: bool) -> Result<(), String> {
            self.0.set_hidden(n, h)
        }
        fn unlock(&mut self, n: &str) -> Result<(), String> {
            self.0.unlock(n)
        }
        fn enable(&mut self, n: &str) -> Result<(), String> {
            self.0.enable(n)
        }
        fn disable(&mut self, n: &str) -> Result<(), String> {
            self.0.disable(n)
        }
        fn create_profile(&mut self, n: &str, s: &str) -> Result<(), String> {
            self.0.create_profile(n, s)
        }
        fn delete_profile(&mut self, s: &Sid) -> Result<(), String> {
            self.0.delete_profile(s)
        }
        fn end_processes(&mut self, n: &str) -> Result<usize, String> {
            self.0.end_processes(n)
        }
        fn delete_account(&mut self, n: &str) -> Result<(), String> {
            self.0.delete_account(n)
        }
        fn delete_group(&mut self, n: &str) -> Result<(), String> {
            self.0.delete_group(n)
        }
        fn read_file(&mut self, p: &str) -> Result<Option<String>, String> {
            self.0.read_file(p)
        }
        fn write_file(&mut self, p: &str, t: &str) -> Result<(), String> {
            self.0.write_file(p, t)
        }
        fn remove_file(&mut self, p: &str) -> Result<(), String> {
            self.0.remove_file(p)
        }
        fn remove_empty_dir(&mut self, d: &str) -> Result<bool, String> {
            self.0.remove_empty_dir(d)
        }
        fn exists(&mut self, p: &str) -> Result<bool, String> {
            self.0.exists(p)
        }
        fn acl(&mut self) -> &mut dyn apply::Host {
            self.0.acl()
        }
        fn runner_current(&mut self, s: &str, t: &str) -> Result<bool, String> {
            self.0.runner_current(s, t)
        }
        fn install_runner(&mut self, s: &str, d: &str, sddl: &str) -> Result<(), String> {
            self.0.install_runner(s, d, sddl)
        }
    }

    #[test]
    fn the_runner_directory_descriptor() {
        let sddl = runner_sddl();
        assert!(sddl.starts_with("O:BAD:P"), "{}", sddl);
        let dacl = crate::sddl::Dacl::parse(&sddl[4..]).unwrap();
        assert!(dacl.protected);
        assert_eq!(dacl.aces.len(), 3);
        // Nobody but SYSTEM and Administrators may write.
        for ace in &dacl.aces {
            if ace.sid == sid::USERS {
                assert_eq!(ace.mask & crate::sddl::FILE_WRITE_DATA, 0);
            }
        }
        assert_eq!(runner_target(r"C:\x\"), r"C:\x\moat-runner.exe");
        assert_eq!(
            parent_dir(r"C:\x\moat-runner.exe").as_deref(),
            Some(r"C:\x")
        );
        assert_eq!(parent_dir(r"C:\moat-runner.exe"), None);
    }
}
