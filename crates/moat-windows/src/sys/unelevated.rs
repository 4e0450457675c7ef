//! The unelevated tier on Windows: carries out `crate::unelevated::plan`
//! and runs the command.
//!
//! In order, with moat's state directory locked: the SID book and the ACL
//! ledger are read, the bounded write audit walks the places Everyone may
//! write (`crate::audit`, through [`AuditDisk`]), the run is planned, the
//! steps the ledger holds are checked against the disk (a handful of DACL
//! reads, one per root and protected path), the book is saved, the pending
//! steps applied and the ledger saved, whatever happened. The lock is then
//! released and the command started under the write-restricted token, in a
//! kill-on-close job that carries the policy's limits (`crate::limits`), on
//! a private desktop, with only its standard handles inherited (or on a
//! pseudoconsole, with moat's console raw and its size followed); moat
//! waits for it, at most the timeout, and ends the job, so nothing it left
//! behind outlives the run.
//!
//! A crash between an ACE landing and the ledger being saved leaves that
//! ACE unrecorded; the next run finds the step pending and adds it again,
//! and removal takes off every explicit ACE of the SID on the path, so
//! nothing is left behind either way.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    DuplicateHandle, DUPLICATE_SAME_ACCESS, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use super::anon_pipe::{self, ChildEnd};
use super::console;
use super::process::{self, Stdio};
use super::{acl, conpty, desktop, failure, job, token};
use crate::acl_plan::{AclStep, PathState, WinPath};
use crate::apply;
use crate::audit::{self, AuditReport};
use crate::limits;
use crate::read_grants::{self, ReadHost, ReadInput, ReadPlan};
use crate::sddl::{Ace, AceFlags, Dacl, GENERIC_ALL};
use crate::sid::Sid;
use crate::terminal::{SizeWatch, RESIZE_POLL};
use crate::unelevated::{
    self, Context, Removal, Request, RunPlan, UnelevatedError, BOOK_FILE, LEDGER_FILE,
};

/// The lock file in the state directory: one moat at a time changes the
/// book, the ledger and the ACLs they describe.
const LOCK_FILE: &str = "lock";

/// How long moat waits for another moat to finish with the state.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// ERROR_SHARING_VIOLATION: another moat holds the lock.
const SHARING_VIOLATION: i32 = 32;

/// FILE_ATTRIBUTE_REPARSE_POINT: a link, junction or mount point.
const REPARSE_POINT: u32 = 0x400;

/// The exit code of what the job ends.
const KILLED: u32 = 1;

/// One read from a pipe or from standard input.
const READ_SIZE: usize = 64 * 1024;

/// What the caller decides besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// moat's state directory (per person: `%LOCALAPPDATA%\moat`, say),
    /// which holds the SID book and the ACL ledger.
    pub state_dir: &'a Path,
    /// Run the write audit (the default); without it, directories Everyone
    /// may write stay writable and the plan says so.
    pub audit: bool,
    /// Who else gets each writable root's allow ACE (the sandbox group,
    /// for the elevated tier); see `crate::unelevated::Context`.
    pub principals: &'a [Sid],
    /// The sandbox group, when the elevated tier runs the command: it gets
    /// read access to the person's profile (`crate::read_grants`).
    pub read_group: Option<Sid>,
}

fn system(what: &str, err: &io::Error) -> UnelevatedError {
    UnelevatedError::System(failure(what, err))
}

/// Holds the state directory's lock until dropped.
struct StateLock {
    _file: File,
}

fn lock(state_dir: &Path) -> Result<StateLock, UnelevatedError> {
    std::fs::create_dir_all(state_dir).map_err(|err| {
        system(
            &format!("creating moat's state directory {}", state_dir.display()),
            &err,
        )
    })?;
    let path = state_dir.join(LOCK_FILE);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // No sharing: a second open fails until this handle closes, also
        // when moat dies, so a lock is never left behind.
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .share_mode(0)
            .open(&path)
        {
            Ok(file) => return Ok(StateLock { _file: file }),
            Err(err) if err.raw_os_error() == Some(SHARING_VIOLATION) => {
                if Instant::now() >= deadline {
                    return Err(UnelevatedError::System(format!(
                        "another moat has held {} for {} seconds: wait for it to finish",
                        path.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                thread::sleep(Duration::from_millis(50));
            }
            Err(err) => return Err(system(&format!("opening {}", path.display()), &err)),
        }
    }
}

fn read_state(path: &Path) -> Result<Option<String>, UnelevatedError> {
    super::read_if_present(path).map_err(|err| system(&format!("reading {}", path.display()), &err))
}

/// Writes through a new file renamed over the old one, so a crash leaves
/// the old text or the new, never half of either.
fn write_state(path: &Path, text: &str) -> Result<(), UnelevatedError> {
    super::replace_file(path, text.as_bytes())
        .map_err(|err| system(&format!("writing {}", path.display()), &err))
}

/// 32 random bits per call; a failure is remembered (the caller checks
/// [`Random::failed`] before using what was drawn).
struct Random {
    failed: Option<String>,
}

impl Random {
    fn next(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        if let Err(status) = super::random_bytes(&mut bytes) {
            if self.failed.is_none() {
                self.failed = Some(format!(
                    "drawing a random capability SID failed (NTSTATUS {:#010x})",
                    status
                ));
            }
        }
        u32::from_le_bytes(bytes)
    }
}

/// The disk as the write audit sees it. Its bounds (directories, depth,
/// time) are `crate::audit::run`'s.
#[derive(Debug, Default)]
pub struct AuditDisk;

impl audit::Host for AuditDisk {
    fn list_dirs(&self, dir: &WinPath) -> Result<Vec<WinPath>, String> {
        let entries = std::fs::read_dir(dir.verbatim()).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            // Links report as links, not directories: never followed.
            let is_dir = entry.file_type().map_or(false, |t| t.is_dir());
            if !is_dir {
                continue;
            }
            let name = match entry.file_name().into_string() {
                Ok(name) => name,
                // Not Unicode: no WinPath can name it; the walk goes on.
                Err(_) => continue,
            };
            // Through the verbatim form, so names Win32 would trim stay.
            if let Ok(child) = WinPath::parse(&format!("{}\\{}", dir.verbatim(), name)) {
                out.push(child);
            }
        }
        Ok(out)
    }

    fn dacl(&self, dir: &WinPath) -> Result<Dacl, String> {
        match acl::dacl_sddl(&dir.verbatim()) {
            Ok(Some(text)) => Dacl::parse(&text).map_err(|e| e.to_string()),
            // As the trait asks: a NULL DACL lets everyone do everything.
            Ok(None) => Ok(Dacl {
                aces: vec![Ace::allow(Sid::everyone(), GENERIC_ALL, AceFlags::NONE)],
                ..Dacl::default()
            }),
            Err(err) => Err(failure("reading the DACL", &err)),
        }
    }

    fn is_link(&self, dir: &WinPath) -> bool {
        std::fs::symlink_metadata(dir.verbatim())
            .map(|m| m.file_attributes() & REPARSE_POINT != 0)
            .unwrap_or(false)
    }
}

/// Whether a step the ledger holds is still on disk. Unreadable DACLs
/// count as present: re-adding an ACE moat cannot read would fail anyway,
/// and the run would stop for what may be a passing error.
fn on_disk(step: &AclStep) -> bool {
    let path = step.path().verbatim();
    let ace = match step.ace() {
        None => return Path::new(&path).is_dir(),
        Some(ace) => ace,
    };
    match acl::dacl_sddl(&path) {
        Ok(Some(text)) => match Dacl::parse(&text) {
            Ok(dacl) => dacl.explicit_for(&ace.sid).iter().any(|a| {
                a.kind == ace.kind
                    && a.mask & ace.mask == ace.mask
                    && a.flags.explicit() == ace.flags.explicit()
            }),
            Err(_) => true,
        },
        // A NULL DACL holds no ACE of moat's.
        Ok(None) => false,
        Err(err) => err.kind() != io::ErrorKind::NotFound,
    }
}

/// The person's profile as `read_grants` sees it.
struct ProfileDisk;

fn state_of(file_type: std::fs::FileType) -> PathState {
    // Junctions count as links too: std's `is_symlink` is true for every
    // name-surrogate reparse point.
    if file_type.is_symlink() {
        PathState::Link
    } else if file_type.is_dir() {
        PathState::Dir
    } else {
        PathState::File
    }
}

impl ReadHost for ProfileDisk {
    fn list(&mut self, dir: &WinPath) -> Result<Vec<(String, PathState)>, String> {
        let entries = std::fs::read_dir(dir.verbatim()).map_err(|err| err.to_string())?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| err.to_string())?;
            let file_type = entry.file_type().map_err(|err| err.to_string())?;
            // A name that is not Unicode cannot be put in an ACE's path;
            // it stays unreadable to the accounts.
            if let Ok(name) = entry.file_name().into_string() {
                out.push((name, state_of(file_type)));
            }
        }
        Ok(out)
    }

    fn kind(&mut self, path: &WinPath) -> PathState {
        std::fs::symlink_metadata(path.verbatim())
            .map(|m| state_of(m.file_type()))
            .unwrap_or(PathState::Absent)
    }
}

/// The sandbox group's reads of the profile, for `group`.
fn read_plan(
    req: &Request<'_>,
    options: &Options<'_>,
    group: Sid,
) -> Result<ReadPlan, UnelevatedError> {
    let parse = |path: &Path| path.to_str().and_then(|t| WinPath::parse(t).ok());
    let denied: Vec<(WinPath, PathState)> = req
        .view
        .denied
        .iter()
        .filter_map(|d| {
            let state = match d.kind {
                moat_policy::EntryKind::Dir => PathState::Dir,
                moat_policy::EntryKind::Symlink => PathState::Link,
                _ => PathState::File,
            };
            parse(&d.path).map(|p| (p, state))
        })
        .collect();
    let readable: Option<Vec<WinPath>> = req
        .view
        .readable
        .as_ref()
        .map(|list| list.iter().filter_map(|p| parse(p)).collect());
    // moat's own state, and the person's TEMP, where other programs leave
    // what they would not leave in the open.
    let mut avoid: Vec<WinPath> = parse(options.state_dir).into_iter().collect();
    for name in ["TEMP", "TMP"] {
        if let Some(p) = std::env::var_os(name).and_then(|v| parse(Path::new(&v))) {
            avoid.push(p);
        }
    }
    read_grants::plan(
        &ReadInput {
            profiles_root: req.profiles_root,
            profile_dir: req.profile_dir,
            group,
            denied: &denied,
            readable: readable.as_deref(),
            avoid: &avoid,
        },
        &mut ProfileDisk,
    )
    .map_err(|err| UnelevatedError::System(err.to_string()))
}

fn moat_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(n, v)| Some((n.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Everything up to the command: state read, audit, plan, ACLs applied
/// and recorded. The plan says what holds (`layers`, `lost`) for the
/// caller to report before the command starts.
pub fn prepare(req: &Request<'_>, options: &Options<'_>) -> Result<RunPlan, UnelevatedError> {
    let _lock = lock(options.state_dir)?;
    let book_path = options.state_dir.join(BOOK_FILE);
    let ledger_path = options.state_dir.join(LEDGER_FILE);
    let book = read_state(&book_path)?;
    let ledger = read_state(&ledger_path)?;
    if let Some(temp) = req.temp_dir {
        // A root must exist before its ACE goes on; made as the person.
        std::fs::create_dir_all(temp)
            .map_err(|err| system(&format!("creating the temp directory {temp}"), &err))?;
    }

    let report: Option<AuditReport> = if options.audit {
        let roots = unelevated::roots(req)?;
        let starts = unelevated::audit_starts(&roots, &moat_env());
        // Without the logon SID the audit still counts Everyone; a grant
        // to the logon SID alone is then missed, which the summary cannot
        // tell, so the failure is an error rather than a weaker audit.
        let logon = token::current_logon_sid()
            .map_err(|err| system("finding the session's logon SID", &err))?;
        let input = unelevated::audit_input(roots, starts, Some(logon));
        let end = Instant::now() + audit::DEFAULT_TIME_LIMIT;
        Some(audit::run(&AuditDisk, &input, &mut || {
            Instant::now() >= end
        }))
    } else {
        None
    };

    let reads = match options.read_group {
        Some(group) => Some(read_plan(req, options, group)?),
        None => None,
    };
    let mut random = Random { failed: None };
    let mut plan = unelevated::plan(
        req,
        &Context {
            book: book.as_deref(),
            ledger: ledger.as_deref(),
            audit: report.as_ref(),
            principals: options.principals,
            reads: reads.as_ref(),
        },
        &mut || random.next(),
    )?;
    if let Some(why) = random.failed {
        return Err(UnelevatedError::System(why));
    }
    plan.recheck(&mut on_disk);

    // The book first: every ACE on disk names a SID the book knows.
    if plan.book_changed {
        write_state(&book_path, &plan.book.to_text())?;
    }
    if !plan.pending.is_empty() {
        let mut ledger = plan.ledger.clone();
        let applied = apply::apply(&plan.acl, &mut ledger, &mut acl::Disk);
        // Saved whatever happened: it says exactly what is on disk.
        let saved = write_state(&ledger_path, &ledger.to_text());
        plan.ledger = ledger;
        applied.map_err(|err| UnelevatedError::System(err.to_string()))?;
        saved?;
        plan.pending.clear();
        plan.create_first.clear();
    }
    Ok(plan)
}

/// Takes off every ACE the ledger in `state_dir` records for `sid` (the
/// sandbox group's, when `moat setup --remove` deletes it) and saves the
/// ledger with what was taken off, whatever happened; how many entries
/// went.
pub fn remove_aces_of(state_dir: &Path, sid: &Sid) -> Result<usize, UnelevatedError> {
    if !state_dir.join(LEDGER_FILE).exists() {
        return Ok(0);
    }
    remove_planned(state_dir, |book, ledger| {
        unelevated::sid_removal(book, ledger, sid)
    })
    .map(|removed| removed.steps)
}

/// Runs a prepared plan's command; its exit code, or
/// `crate::limits::TIMEOUT_EXIT` when the plan's timeout ran out (the job
/// is then killed and moat says so on standard error).
pub fn execute(plan: &RunPlan) -> Result<u32, UnelevatedError> {
    // Before anything is made: a CPU share this machine cannot cap is
    // refused here (the plan checked everything else).
    let settings = limits::settings(&plan.limits, job::processor_count())
        .map_err(|err| UnelevatedError::Policy(err.to_string()))?;
    let logon = token::current_logon_sid()
        .map_err(|err| system("finding the session's logon SID", &err))?;
    let token = token::write_restricted(&plan.capability_sids)
        .map_err(|err| system("creating the write-restricted token", &err))?;
    let job = job::kill_on_close().map_err(|err| system("creating the job object", &err))?;
    // On the job before the command is started in it (suspended), so
    // before it runs an instruction.
    job::apply_limits(&job, &settings)
        .map_err(|err| system("putting the limits on the job object", &err))?;
    let mut words = Random { failed: None };
    let name = format!("moat-{:08x}{:08x}", words.next(), words.next());
    if let Some(why) = words.failed {
        return Err(UnelevatedError::System(why));
    }
    let desk = desktop::create_with_sddl(&name, &format!("D:(A;;GA;;;{logon})(A;;GA;;;SY)"))
        .map_err(|err| system("creating the command's desktop", &err))?;
    let result = match plan.pty {
        None => run_inherited(plan, &token, &job, &desk.path, settings.timeout),
        Some(size) => run_console(plan, &token, &job, &desk.path, size, settings.timeout),
    };
    // What the command left behind ends with it. Failing means nothing was
    // left to end.
    let _ = job::terminate(&job, KILLED);
    result
}

/// Prepares and runs `req`: the command's exit code. `report` sees the
/// plan before the command starts (to print its layers and losses).
pub fn run(
    req: &Request<'_>,
    options: &Options<'_>,
    report: &mut dyn FnMut(&RunPlan),
) -> Result<u32, UnelevatedError> {
    let plan = prepare(req, options)?;
    report(&plan);
    execute(&plan)
}

/// An inheritable copy of one of moat's standard handles, or of NUL where
/// moat has none.
fn inheritable_std(handle: RawHandle, write: bool) -> Result<OwnedHandle, UnelevatedError> {
    let raw = handle as HANDLE;
    if raw.is_null() || raw == INVALID_HANDLE_VALUE {
        let nul = OpenOptions::new()
            .read(!write)
            .write(write)
            .open("NUL")
            .map_err(|err| system("opening NUL for a missing standard handle", &err))?;
        return inheritable_std(nul.as_raw_handle(), write);
    }
    let mut dup: HANDLE = std::ptr::null_mut();
    // SAFETY: `raw` is one of moat's open standard handles (or the NUL file
    // above, open for the call); the current-process pseudo-handle is
    // valid; `dup` is a live out-parameter.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            raw,
            GetCurrentProcess(),
            &mut dup,
            0,
            1,
            DUPLICATE_SAME_ACCESS,
        )
    };
    if ok == 0 {
        return Err(system(
            "copying a standard handle for the command",
            &super::last_error(),
        ));
    }
    // SAFETY: `dup` is a new handle nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(dup as RawHandle) })
}

/// How the wait for the command ended.
enum Waited {
    Exited(u32),
    /// The timeout ran out; the command still runs.
    TimedOut(Duration),
}

/// Waits for the command, at most `timeout`. With `tick`, the wait wakes
/// every `crate::terminal::RESIZE_POLL` to call it.
fn wait_command(
    process: &OwnedHandle,
    timeout: Option<Duration>,
    mut tick: Option<&mut dyn FnMut()>,
) -> Result<Waited, UnelevatedError> {
    let failed = |err: io::Error| system("waiting for the command", &err);
    let (timeout, deadline) = match timeout {
        // A timeout past what the clock holds is no timeout.
        Some(t) => match Instant::now().checked_add(t) {
            Some(deadline) => (t, Some(deadline)),
            None => (t, None),
        },
        None => (Duration::ZERO, None),
    };
    if deadline.is_none() && tick.is_none() {
        return process::wait(process).map(Waited::Exited).map_err(failed);
    }
    loop {
        let slice = match (deadline, tick.is_some()) {
            (Some(d), true) => d.saturating_duration_since(Instant::now()).min(RESIZE_POLL),
            (Some(d), false) => d.saturating_duration_since(Instant::now()),
            (None, _) => RESIZE_POLL,
        };
        if let Some(code) = process::wait_for(process, slice).map_err(failed)? {
            return Ok(Waited::Exited(code));
        }
        if deadline.map_or(false, |d| Instant::now() >= d) {
            return Ok(Waited::TimedOut(timeout));
        }
        if let Some(tick) = tick.as_mut() {
            tick();
        }
    }
}

/// Kills the job of a command that ran out of time and waits for the
/// command to be gone.
fn kill_timed_out(job: &OwnedHandle, process: &OwnedHandle) {
    // Failing means nothing was left to end.
    let _ = job::terminate(job, KILLED);
    let _ = process::wait(process);
}

/// Says on moat's standard error that the run timed out (as Linux's moat
/// does); the run's exit code.
fn timed_out(timeout: Duration) -> u32 {
    // Unlike `eprintln!`, a failed write does not panic.
    let _ = writeln!(io::stderr(), "moat: {}", limits::timeout_message(timeout));
    limits::TIMEOUT_EXIT
}

/// The command on moat's own standard handles (copies, the only handles
/// it inherits): nothing to relay.
fn run_inherited(
    plan: &RunPlan,
    token: &OwnedHandle,
    job: &OwnedHandle,
    desktop: &str,
    timeout: Option<Duration>,
) -> Result<u32, UnelevatedError> {
    let stdin = inheritable_std(io::stdin().as_raw_handle(), false)?;
    let stdout = inheritable_std(io::stdout().as_raw_handle(), true)?;
    let stderr = inheritable_std(io::stderr().as_raw_handle(), true)?;
    let started = process::start(
        token,
        job,
        &process::Launch {
            command_line: &plan.command_line,
            environment: &plan.environment,
            cwd: &plan.cwd,
            desktop,
            stdio: Stdio::Handles([
                stdin.as_raw_handle(),
                stdout.as_raw_handle(),
                stderr.as_raw_handle(),
            ]),
        },
    )
    .map_err(|err| system("starting the command (CreateProcessAsUserW)", &err))?;
    // The command has its own copies; these inheritable ones must not
    // reach anything else moat starts.
    drop((stdin, stdout, stderr));
    match wait_command(&started.process, timeout, None)? {
        Waited::Exited(code) => Ok(code),
        Waited::TimedOut(timeout) => {
            kill_timed_out(job, &started.process);
            Ok(timed_out(timeout))
        }
    }
}

/// The command on a pseudoconsole: moat's standard input to the console,
/// the console's output to moat's standard output. moat's own console (if
/// its standard input is one) is in raw mode meanwhile, and the
/// pseudoconsole follows its window's size.
fn run_console(
    plan: &RunPlan,
    token: &OwnedHandle,
    job: &OwnedHandle,
    desktop: &str,
    (cols, rows): (u16, u16),
    timeout: Option<Duration>,
) -> Result<u32, UnelevatedError> {
    // Raw before the thread below starts reading; put back when `raw`
    // drops, whichever way this function returns.
    let raw = console::raw_for_run();
    let make =
        |end| anon_pipe::create(end).map_err(|err| system("creating the console's pipes", &err));
    // The console reads `input.read` and writes `output.write`; it
    // duplicates both, so neither is inherited by anyone.
    let input = make(ChildEnd::Neither)?;
    let output = make(ChildEnd::Neither)?;
    let console = conpty::create(cols, rows, &input.read, &output.write)
        .map_err(|err| system("creating the pseudoconsole", &err))?;
    drop(input.read);
    drop(output.write);
    // Started before the command, so the console never blocks on a full
    // output pipe, and running until the console closes it.
    let mut from_console = File::from(output.read);
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; READ_SIZE];
        let stdout = io::stdout();
        while let Ok(n) = from_console.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut out = stdout.lock();
            if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    // This thread may stay blocked reading moat's standard input after
    // the run (there is no portable way to interrupt that read); it ends
    // with moat.
    let mut to_console = File::from(input.write);
    // A raw console is read key by key, Ctrl+Z included.
    let mut keys: Box<dyn Read + Send> = match &raw {
        Some(raw) => Box::new(raw.input()),
        None => Box::new(io::stdin()),
    };
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_SIZE];
        while let Ok(n) = keys.read(&mut buf) {
            if n == 0 || to_console.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let started = process::start(
        token,
        job,
        &process::Launch {
            command_line: &plan.command_line,
            environment: &plan.environment,
            cwd: &plan.cwd,
            desktop,
            stdio: Stdio::PseudoConsole(console.handle),
        },
    )
    .map_err(|err| system("starting the command (CreateProcessAsUserW)", &err));
    let mut watch = SizeWatch::new((cols, rows));
    let mut follow_size = || {
        if let Some((cols, rows)) = watch.changed(console::size()) {
            // A console that cannot be resized keeps its old size.
            let _ = conpty::resize(&console, cols, rows);
        }
    };
    let waited = started.and_then(|started| {
        let waited = wait_command(&started.process, timeout, Some(&mut follow_size));
        if let Ok(Waited::TimedOut(_)) = waited {
            kill_timed_out(job, &started.process);
        }
        waited
    });
    // Ending the job first, so nothing keeps the console open; closing
    // the console then ends its output, and the reader with it.
    let _ = job::terminate(job, KILLED);
    drop(console);
    let _ = reader.join();
    // The person's console as it was, before moat says anything more.
    drop(raw);
    match waited? {
        Waited::Exited(code) => Ok(code),
        Waited::TimedOut(timeout) => Ok(timed_out(timeout)),
    }
}

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The SID the root had, if the book knew it.
    pub sid: Option<Sid>,
    /// Steps carried out.
    pub steps: usize,
}

fn carry_out(
    removal: Removal,
    book_path: &Path,
    ledger_path: &Path,
) -> Result<Removed, UnelevatedError> {
    let mut ledger = removal.ledger.clone();
    let done = apply::remove(&removal.steps, &mut ledger, &mut acl::Disk);
    let saved = write_state(ledger_path, &ledger.to_text());
    let steps = done.map_err(|err| UnelevatedError::System(err.to_string()))?;
    saved?;
    // Only once its ACEs are off does the SID leave the book: a removal
    // that stops half-way is finished by running it again.
    write_state(book_path, &removal.book.to_text())?;
    Ok(Removed {
        sid: removal.sid,
        steps,
    })
}

/// Takes `root` off: every ACE of its capability SID (on the root, its
/// protected paths and the Everyone-writable directories), the directories
/// made for it if still empty, and the SID itself from the book.
pub fn remove_root(state_dir: &Path, root: &str) -> Result<Removed, UnelevatedError> {
    remove_planned(state_dir, |book, ledger| {
        unelevated::removal(book, ledger, root)
    })
}

/// Takes off the ACEs of SIDs the book no longer knows, except those of
/// `keep` (the sandbox group while the elevated tier is set up).
pub fn remove_orphans(state_dir: &Path, keep: &[Sid]) -> Result<Removed, UnelevatedError> {
    remove_planned(state_dir, |book, ledger| {
        unelevated::orphan_removal(book, ledger, keep)
    })
}

/// Takes off every ACE moat recorded and the directories it made, and
/// empties the book.
pub fn remove_all(state_dir: &Path) -> Result<Removed, UnelevatedError> {
    remove_planned(state_dir, unelevated::total_removal)
}

/// With the state locked, plans a removal from the saved book and ledger
/// (their texts, `None` when absent) and carries it out.
fn remove_planned(
    state_dir: &Path,
    plan: impl FnOnce(Option<&str>, Option<&str>) -> Result<Removal, UnelevatedError>,
) -> Result<Removed, UnelevatedError> {
    let _lock = lock(state_dir)?;
    let book_path = state_dir.join(BOOK_FILE);
    let ledger_path = state_dir.join(LEDGER_FILE);
    let book = read_state(&book_path)?;
    let ledger = read_state(&ledger_path)?;
    let removal = plan(book.as_deref(), ledger.as_deref())?;
    carry_out(removal, &book_path, &ledger_path)
}
