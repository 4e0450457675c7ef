//! moat's side of the unelevated tier, decided before any Windows call.
//!
//! A run in the unelevated tier goes: read the SID book and the ACL ledger
//! from moat's state directory, audit the machine (bounded) for
//! directories Everyone may write outside the writable roots, plan the
//! ACEs (`crate::acl_plan`), apply the steps the ledger does not hold yet
//! (`crate::apply`), build a write-restricted token with the plan's
//! capability SIDs, and start the command in a kill-on-close job on a
//! private desktop. [`plan`] makes every decision of that (which roots,
//! which protected paths, which SIDs, which steps are still pending, the
//! command line, the environment, the report) and every refusal, so that
//! `sys::unelevated` only carries it out.
//!
//! # What this tier cannot do
//! The token is *write*-restricted: reads are checked against the person's
//! own groups only, so denied reads and the restricted read mode are not
//! enforced, and a deny ACE for a capability SID cannot change that. Nor
//! can the network be: programs are only told to stay offline
//! ([`crate::offline_env`]). Both are reported, never dropped silently:
//! [`RunPlan::lost`] lists them and [`RunPlan::layers`] says per layer
//! what holds; the caller decides whether a loss refuses the run (as
//! Linux's `--allow-degraded` does), and a policy that requires network
//! isolation is refused here, naming the elevated tier.
//!
//! # Cost
//! The plan names roots and protected paths only. Once the ledger holds a
//! step it is not pending again, so a second run with the same roots
//! applies nothing ([`RunPlan::pending`] is empty) however many files the
//! roots hold.

use std::fmt;
use std::path::Path;

use moat_policy::view::FsView;
use moat_policy::Policy;

use crate::acl_plan::{
    self, AclPlan, AclStep, Ledger, PathState, PlanError, PlanInput, ProtectedPath, RemovalStep,
    Role, SidBook, WinPath,
};
use crate::audit::{AuditInput, AuditReport};
use crate::cmdline;
use crate::envblock;
use crate::errors;
use crate::limits::{self, Wanted};
use crate::offline_env::{self, NetEnforcement};
use crate::read_grants::ReadPlan;
use crate::sid::Sid;

/// The SID book's file in moat's state directory.
pub const BOOK_FILE: &str = "sid-book.txt";

/// The ACL ledger's file in moat's state directory.
pub const LEDGER_FILE: &str = "acl-ledger.txt";

/// Absent protected names that are directories when they exist, so that an
/// empty directory made in their place is what the person's tools expect
/// to find there. Other absent names (`.envrc`, `.mcp.json`) are files: a
/// directory in their place would stop the person creating them too, so
/// they are reported as lost instead.
const DIRECTORY_PLACEHOLDERS: &[&str] = &[
    ".moat", ".codex", ".agents", ".claude", ".cursor", ".gemini", ".vscode", ".idea", "hooks",
];

/// What moat asks the unelevated tier to run.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The resolved policy (network mode, isolation requirement, limits).
    pub policy: &'a Policy,
    /// The policy's view of the filesystem, built on this machine.
    pub view: &'a FsView,
    pub program: &'a str,
    pub args: &'a [String],
    /// An absolute Windows path.
    pub cwd: &'a str,
    /// The person's environment, already filtered as the policy says.
    pub env: &'a [(String, String)],
    /// `(cols, rows)` of a pseudoconsole, if the command wants one.
    pub pty: Option<(u16, u16)>,
    /// Where profiles live (`C:\Users`, from the ProfileList key).
    pub profiles_root: &'a str,
    /// The person's profile directory.
    pub profile_dir: &'a str,
    /// A directory for the command's TEMP and TMP, made writable like a
    /// root: the person's own TEMP is in the profile, which the token
    /// cannot write. `None` leaves TEMP as the environment has it.
    pub temp_dir: Option<&'a str>,
}

/// What moat knows besides the request when it plans a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The SID book's text; `None` when there is none yet.
    pub book: Option<&'a str>,
    /// The ledger's text; `None` when there is none yet.
    pub ledger: Option<&'a str>,
    /// What the audit found; `None` when none ran (reported as lost).
    pub audit: Option<&'a AuditReport>,
    /// Who else gets each writable root's allow ACE: the sandbox group
    /// when the elevated tier runs the command (see
    /// `acl_plan::PlanInput::principals`); none in this tier.
    pub principals: &'a [Sid],
    /// The sandbox group's reads of the person's profile
    /// (`read_grants`), when the elevated tier runs the command: applied
    /// and recorded with the rest of the plan.
    pub reads: Option<&'a ReadPlan>,
}

/// One layer of the run and how far it holds, for stderr and `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    pub layer: &'static str,
    /// `full`, `partial`, `off`, or for the network
    /// [`NetEnforcement::as_str`] (`advisory` here).
    pub state: &'static str,
    pub detail: String,
}

impl LayerReport {
    /// `moat: <layer>: <state>: <detail>`, for stderr.
    pub fn line(&self) -> String {
        format!("moat: {}: {}: {}", self.layer, self.state, self.detail)
    }

    /// `{"layer":...,"state":...,"detail":...}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"layer\":{},\"state\":{},\"detail\":{}}}",
            json_string(self.layer),
            json_string(self.state),
            json_string(&self.detail)
        )
    }
}

/// `text` as a JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Everything `sys::unelevated` does, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// What the ACL plan was computed from.
    pub acl_input: PlanInput,
    pub acl: AclPlan,
    /// The steps the ledger does not hold yet, in order: empty on a second
    /// run with the same roots.
    pub pending: Vec<AclStep>,
    /// Protected directories to create before any ACE, among `pending`.
    pub create_first: Vec<WinPath>,
    /// The book after planning: new roots have their SIDs.
    pub book: SidBook,
    /// Whether `book` differs from the saved one (save it before applying,
    /// so that no ACE on disk names a SID the book does not know).
    pub book_changed: bool,
    /// The ledger as saved; `sys` records applied steps into it.
    pub ledger: Ledger,
    /// The capability SIDs for the token's restricting list (besides the
    /// logon SID and Everyone).
    pub capability_sids: Vec<Sid>,
    /// For `CreateProcessAsUserW`: the program, then the arguments, quoted.
    pub command_line: String,
    pub cwd: String,
    /// The command's environment, and the same as a block.
    pub env: Vec<(String, String)>,
    pub environment: Vec<u16>,
    pub pty: Option<(u16, u16)>,
    pub network: NetEnforcement,
    pub layers: Vec<LayerReport>,
    /// What this run cannot enforce that the policy asks for.
    pub lost: Vec<String>,
    /// Things worth knowing (the audit's summary, inputs left alone).
    pub notes: Vec<String>,
    /// The policy's limits for the command's job (checked: none is 0),
    /// also what the elevated tier sends its runner.
    pub limits: Wanted,
}

/// Why a run in the unelevated tier does not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnelevatedError {
    /// The policy requires what only the elevated tier does (enforced
    /// network isolation); the message names it.
    NeedsElevated(String),
    /// The policy or view asks for something this tier refuses to do.
    Policy(String),
    /// The ACL plan refused a path (a drive root, a profile, `.ssh`, ...).
    Plan(PlanError),
    /// The saved book or ledger cannot be read.
    State(String),
    /// The command cannot be started as asked.
    Request(String),
    /// A Windows call failed (`sys::unelevated`).
    System(String),
}

impl UnelevatedError {
    /// Whether the elevated tier (`moat setup`) is the fix.
    pub fn needs_elevated(&self) -> bool {
        matches!(self, UnelevatedError::NeedsElevated(_))
    }
}

impl fmt::Display for UnelevatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnelevatedError::NeedsElevated(why)
            | UnelevatedError::Policy(why)
            | UnelevatedError::State(why)
            | UnelevatedError::Request(why)
            | UnelevatedError::System(why) => f.write_str(why),
            UnelevatedError::Plan(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl std::error::Error for UnelevatedError {}

fn path_text(path: &Path) -> Result<&str, UnelevatedError> {
    path.to_str().ok_or_else(|| {
        UnelevatedError::Policy(format!(
            "{} is not valid Unicode; moat cannot name it in an ACL",
            path.display()
        ))
    })
}

fn win_path(path: &Path, what: &str) -> Result<WinPath, UnelevatedError> {
    let text = path_text(path)?;
    WinPath::parse(text).map_err(|err| UnelevatedError::Policy(format!("{what}: {err}")))
}

fn is_directory_placeholder(path: &WinPath) -> bool {
    path.file_name().map_or(false, |name| {
        DIRECTORY_PLACEHOLDERS
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name))
    })
}

/// The writable roots of `req`, as the ACL plan and the audit take them:
/// the view's, then the temp directory.
pub fn roots(req: &Request<'_>) -> Result<Vec<WinPath>, UnelevatedError> {
    let mut out: Vec<WinPath> = Vec::new();
    for w in &req.view.writable {
        let root = win_path(&w.path, "writable root")?;
        if !out.contains(&root) {
            out.push(root);
        }
    }
    if let Some(temp) = req.temp_dir {
        let root = WinPath::parse(temp)
            .map_err(|err| UnelevatedError::Request(format!("temp directory: {err}")))?;
        if !out.iter().any(|r| root.starts_with(r)) {
            out.push(root);
        }
    }
    Ok(out)
}

/// Where the audit looks, in priority order (see `crate::audit`): the
/// roots' parents (so their siblings), TEMP and TMP, the PATH entries,
/// ProgramData, the Windows TEMP, the system drive. `env` is moat's own
/// environment; entries that are not absolute paths are left out.
pub fn audit_starts(roots: &[WinPath], env: &[(String, String)]) -> Vec<WinPath> {
    let get = |name: &str| {
        env.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut starts: Vec<WinPath> = Vec::new();
    let mut add = |text: &str| {
        if let Ok(p) = WinPath::parse(text.trim()) {
            if !starts.contains(&p) {
                starts.push(p);
            }
        }
    };
    for root in roots {
        if let Some(parent) = root.parent() {
            add(&parent.to_string());
        }
    }
    for name in ["TEMP", "TMP"] {
        if let Some(v) = get(name) {
            add(v);
        }
    }
    if let Some(path) = get("PATH") {
        for entry in path.split(';') {
            add(entry.trim_matches('"'));
        }
    }
    if let Some(v) = get("ProgramData") {
        add(v);
    }
    if let Some(v) = get("SystemRoot").or_else(|| get("windir")) {
        add(&format!("{}\\Temp", v.trim_end_matches('\\')));
    }
    if let Some(v) = get("SystemDrive") {
        add(&format!("{}\\", v.trim_end_matches('\\')));
    }
    starts
}

/// The audit of `starts` outside `roots`, counting Everyone's and the
/// session's logon SID's write access (both are restricting SIDs of the
/// token).
pub fn audit_input(
    roots: Vec<WinPath>,
    starts: Vec<WinPath>,
    logon_sid: Option<Sid>,
) -> AuditInput {
    let mut input = AuditInput::new(roots, starts);
    input.sids.extend(logon_sid);
    input
}

fn parse_state<T>(
    text: Option<&str>,
    file: &str,
    parse: fn(&str) -> Result<T, acl_plan::TextError>,
    empty: T,
) -> Result<T, UnelevatedError> {
    match text {
        None => Ok(empty),
        Some(text) => parse(text).map_err(|err| {
            UnelevatedError::State(format!(
                "moat's {file} is damaged ({err}): moat will not guess which ACEs it added; \
                 restore the file, or remove the ACEs by hand and delete it"
            ))
        }),
    }
}

/// Plans the ACEs, dropping Everyone-writable directories the plan refuses
/// to touch (a drive root, a profile) and reporting each as lost. The book
/// changes only on success (see `acl_plan::plan`).
fn plan_acl(
    input: &mut PlanInput,
    book: &mut SidBook,
    random: &mut dyn FnMut() -> u32,
    lost: &mut Vec<String>,
) -> Result<AclPlan, UnelevatedError> {
    // Each refusal removes one entry, so this ends.
    loop {
        match acl_plan::plan(input, book, random) {
            Ok(plan) => return Ok(plan),
            Err(PlanError::Refused {
                role: Role::EveryoneWritable,
                path,
                why,
            }) => {
                let before = input.everyone_writable.len();
                input
                    .everyone_writable
                    .retain(|p| WinPath::parse(p).map_or(true, |w| w.to_string() != path));
                if input.everyone_writable.len() == before {
                    return Err(UnelevatedError::Plan(PlanError::Refused {
                        role: Role::EveryoneWritable,
                        path,
                        why,
                    }));
                }
                lost.push(format!(
                    "{path} is writable by Everyone, so by the command too: moat will not \
                     change its ACL because it {why}; fix its ACL yourself or use the elevated \
                     tier"
                ));
            }
            Err(err) => return Err(UnelevatedError::Plan(err)),
        }
    }
}

/// Decides the run of `req` in the unelevated tier, refusing it before
/// anything changes on disk when the policy needs the elevated tier, a path
/// is one moat will not put an ACE on, the saved state is damaged or the
/// command cannot be started as asked. `random` draws capability SIDs for
/// new roots.
pub fn plan(
    req: &Request<'_>,
    ctx: &Context<'_>,
    random: &mut dyn FnMut() -> u32,
) -> Result<RunPlan, UnelevatedError> {
    let policy = req.policy;
    let view = req.view;
    if policy.is_unsandboxed() {
        return Err(UnelevatedError::Policy(
            "the full-access preset runs commands without a sandbox; the unelevated tier is \
             not used for it"
                .to_string(),
        ));
    }
    let network =
        offline_env::check_policy(policy, false).map_err(UnelevatedError::NeedsElevated)?;

    let mut lost: Vec<String> = Vec::new();
    let mut notes: Vec<String> = view.notes.clone();

    // Paths.
    let roots = roots(req)?;
    let mut protected: Vec<ProtectedPath> = Vec::new();
    let mut absent_files: Vec<String> = Vec::new();
    for p in &view.protected {
        let path = win_path(&p.path, "protected path")?;
        if !roots.iter().any(|r| path.is_inside(r)) {
            notes.push(format!(
                "{path} is protected but not inside a writable root, so already read-only here"
            ));
            continue;
        }
        let state = match p.kind {
            moat_policy::EntryKind::Dir => PathState::Dir,
            moat_policy::EntryKind::File => PathState::File,
            moat_policy::EntryKind::Symlink => PathState::Link,
            moat_policy::EntryKind::Other => {
                let placeholder = view.placeholders.contains(&p.path);
                if placeholder && is_directory_placeholder(&path) {
                    PathState::Absent
                } else if placeholder {
                    absent_files.push(path.to_string());
                    continue;
                } else {
                    // A socket or device: no name Windows has, but an ACE
                    // on the name itself is what keeps it.
                    PathState::File
                }
            }
        };
        protected.push(ProtectedPath::new(&path.to_string(), state));
    }
    if !absent_files.is_empty() {
        lost.push(format!(
            "{} do{} not exist yet, and this tier cannot stop the command creating {} (only \
             directories get a placeholder here): check {} after the run",
            absent_files.join(", "),
            if absent_files.len() == 1 { "es" } else { "" },
            if absent_files.len() == 1 {
                "it"
            } else {
                "them"
            },
            if absent_files.len() == 1 {
                "it"
            } else {
                "them"
            },
        ));
    }

    let everyone_writable = match ctx.audit {
        Some(report) => {
            notes.push(report.summary());
            if let Some(why) = &report.truncated {
                lost.push(format!("the write audit is incomplete: {why}"));
            }
            report.found_paths()
        }
        None => {
            lost.push(
                "no write audit ran: directories Everyone may write outside the writable roots \
                 stay writable by the command"
                    .to_string(),
            );
            Vec::new()
        }
    };

    let mut acl_input = PlanInput {
        roots: roots.iter().map(|r| r.to_string()).collect(),
        protected,
        everyone_writable,
        profiles_root: req.profiles_root.to_string(),
        profile_dir: req.profile_dir.to_string(),
        principals: ctx.principals.to_vec(),
    };

    // State.
    let saved = parse_state(ctx.book, BOOK_FILE, SidBook::from_text, SidBook::new())?;
    let ledger = parse_state(ctx.ledger, LEDGER_FILE, Ledger::from_text, Ledger::new())?;
    let mut book = saved.clone();
    let mut acl = plan_acl(&mut acl_input, &mut book, random, &mut lost)?;
    if let Some(reads) = ctx.reads {
        acl.steps.extend(reads.steps.iter().cloned());
        acl.notes.extend(reads.notes.iter().cloned());
    }
    let pending = acl.pending(&ledger);
    let create_first = pending
        .iter()
        .filter_map(|s| match s {
            AclStep::CreateDir(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    notes.extend(acl.notes.iter().cloned());
    // The sandbox group is in no book: its ACEs are the elevated tier's.
    let orphans: Vec<Sid> = ledger
        .orphan_sids(&book)
        .into_iter()
        .filter(|sid| !ctx.principals.contains(sid))
        .collect();
    if !orphans.is_empty() {
        notes.push(format!(
            "the ledger holds ACEs for {} SID(s) no root uses any more (an interrupted \
             removal, or a sandbox group that was removed): `moat forget --orphans` takes \
             them off",
            orphans.len()
        ));
    }

    // The command.
    let cwd = WinPath::parse(req.cwd).map_err(|err| {
        UnelevatedError::Request(format!("working directory {:?}: {err}", req.cwd))
    })?;
    if req.program.is_empty() {
        return Err(UnelevatedError::Request(
            "the command has an empty program name".to_string(),
        ));
    }
    if errors::store_packaged(req.program) {
        return Err(UnelevatedError::Request(errors::store_packaged_refusal(
            req.program,
        )));
    }
    if let Some((cols, rows)) = req.pty {
        if cols == 0 || rows == 0 {
            return Err(UnelevatedError::Request(format!(
                "pseudo console of {cols} columns and {rows} rows; both must be at least 1"
            )));
        }
    }
    let mut argv: Vec<&str> = Vec::with_capacity(req.args.len() + 1);
    argv.push(req.program);
    argv.extend(req.args.iter().map(String::as_str));
    let command_line = cmdline::join(&argv)
        .map_err(|err| UnelevatedError::Request(format!("command line: {err}")))?;

    let mut env = req.env.to_vec();
    if network == NetEnforcement::Advisory {
        for (name, value) in offline_env::advisory_offline() {
            envblock::set_or_replace(&mut env, &name, &value);
        }
    }
    if let Some(temp) = req.temp_dir {
        for name in ["TEMP", "TMP"] {
            envblock::set_or_replace(&mut env, name, temp);
        }
    }
    // The token's user is the person, who owns these repositories, but a
    // restricted token can make git's ownership check disagree; git
    // compares with the path it resolves itself, never a `\\?\` one.
    let mut safe: Vec<String> = vec![cwd.to_string()];
    for repo in &view.repos {
        if let Ok(p) = win_path(&repo.repo.worktree, "repository") {
            let p = p.to_string();
            if !safe.contains(&p) {
                safe.push(p);
            }
        }
    }
    for dir in &safe {
        offline_env::add_safe_directory(&mut env, dir);
    }
    let environment = envblock::build(&env)
        .map_err(|err| UnelevatedError::Request(format!("environment: {err}")))?;

    // What holds.
    if !view.denied.is_empty() {
        let first: Vec<String> = view
            .denied
            .iter()
            .take(3)
            .map(|d| d.path.display().to_string())
            .collect();
        lost.push(format!(
            "read denials are not enforced in the unelevated tier ({} path{}, e.g. {}): the \
             command reads what you can read; the elevated tier runs it as another account",
            view.denied.len(),
            if view.denied.len() == 1 { "" } else { "s" },
            first.join(", ")
        ));
    }
    if view.readable.is_some() {
        lost.push(
            "read = restricted is not enforced in the unelevated tier: the command reads what \
             you can read"
                .to_string(),
        );
    }
    // The job enforces the limits in both tiers; file_size is lost.
    let limits =
        limits::plan(&policy.limits).map_err(|err| UnelevatedError::Policy(err.to_string()))?;
    lost.extend(limits.lost.iter().cloned());

    let capability_sids = acl.token_sids();
    let write_lost = !absent_files.is_empty()
        || ctx.audit.map_or(true, |a| a.truncated.is_some())
        || acl_input.everyone_writable.len() < ctx.audit.map_or(0, |a| a.found.len());
    let mut layers = vec![LayerReport {
        layer: "write",
        state: if write_lost { "partial" } else { "full" },
        detail: format!(
            "write-restricted token: writes only in {} root{} (one capability SID each), {} \
             protected path{} denied, {} Everyone-writable director{} denied",
            acl.roots.len(),
            if acl.roots.len() == 1 { "" } else { "s" },
            acl_input.protected.len(),
            if acl_input.protected.len() == 1 {
                ""
            } else {
                "s"
            },
            acl_input.everyone_writable.len(),
            if acl_input.everyone_writable.len() == 1 {
                "y"
            } else {
                "ies"
            },
        ),
    }];
    let read_to_enforce = !view.denied.is_empty() || view.readable.is_some();
    layers.push(LayerReport {
        layer: "read",
        state: if read_to_enforce { "off" } else { "full" },
        detail: if read_to_enforce {
            "reads are yours: denials and restricted reading are not enforced in this tier"
                .to_string()
        } else {
            "nothing to deny".to_string()
        },
    });
    layers.push(LayerReport {
        layer: "network",
        state: network.as_str(),
        detail: match network {
            NetEnforcement::Advisory if policy.network.value == moat_policy::NetworkMode::Allow => {
                "network = allow: programs that honour the proxy variables go through moat's \
                 proxy, which lets through only the allowlist; one that opens sockets itself \
                 is not stopped (the elevated tier enforces it: `moat setup` as administrator)"
                    .to_string()
            }
            NetEnforcement::Advisory => format!(
                "network = {}: programs are pointed at a dead proxy and told to stay offline; \
                 one that opens sockets itself is not stopped (the elevated tier enforces it: \
                 `moat setup` as administrator)",
                policy.network.value
            ),
            NetEnforcement::Open => "network = on".to_string(),
            NetEnforcement::Enforced => "by the firewall".to_string(),
        },
    });
    layers.push(LayerReport {
        layer: "process",
        state: "full",
        detail: "kill-on-close job object, private desktop, only the standard handles inherited"
            .to_string(),
    });
    layers.extend(limits.layer);

    let book_changed = book != saved;
    Ok(RunPlan {
        acl_input,
        acl,
        pending,
        create_first,
        book,
        book_changed,
        ledger,
        capability_sids,
        command_line,
        cwd: cwd.to_string(),
        env,
        environment,
        pty: req.pty,
        network,
        layers,
        lost,
        notes,
        limits: limits.wanted,
    })
}

impl RunPlan {
    /// Checks the steps the ledger holds against the disk and makes those
    /// that are gone pending again; how many were.
    ///
    /// The ledger says what moat applied, not what is still there: the
    /// person's own tools replace files (git rewrites `.git\config`
    /// through a rename, which drops an explicit ACE) and delete
    /// directories (a placeholder moat made). `on_disk` answers for one
    /// step whether it still holds (the directory exists, the path has an
    /// explicit ACE of that kind for that SID); it is asked once per
    /// recorded step, which is per root and protected path, never per file.
    pub fn recheck(&mut self, on_disk: &mut dyn FnMut(&AclStep) -> bool) -> usize {
        let mut stale = 0;
        for step in &self.acl.steps {
            if !self.ledger.is_recorded(step) || on_disk(step) {
                continue;
            }
            stale += 1;
            let removed = match step {
                AclStep::CreateDir(path) => RemovalStep::RemoveDirIfEmpty(path.clone()),
                other => match other.sid() {
                    Some(sid) => RemovalStep::RemoveAces {
                        path: other.path().clone(),
                        sid,
                    },
                    None => continue,
                },
            };
            self.ledger.record_removed(&removed);
        }
        if stale > 0 {
            self.pending = self.acl.pending(&self.ledger);
            self.create_first = self
                .pending
                .iter()
                .filter_map(|s| match s {
                    AclStep::CreateDir(p) => Some(p.clone()),
                    _ => None,
                })
                .collect();
            self.notes.push(format!(
                "{stale} ACL step(s) moat applied before are no longer on disk (a file or \
                 directory was replaced or removed) and are applied again"
            ));
        }
        stale
    }
}

/// What taking a root off involves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The book without the root (save it once the steps are done).
    pub book: SidBook,
    pub ledger: Ledger,
    /// The root's SID, if the book knew the root.
    pub sid: Option<Sid>,
    /// Its ACEs and the directories made for it, newest first.
    pub steps: Vec<RemovalStep>,
}

/// Plans taking `root` off: its SID leaves the book, and every ACE the
/// ledger holds for that SID (on the root, its protected paths, and the
/// Everyone-writable directories) comes off, so no SID is left behind as
/// "Account Unknown". A root the book does not know has nothing to remove.
pub fn removal(
    book: Option<&str>,
    ledger: Option<&str>,
    root: &str,
) -> Result<Removal, UnelevatedError> {
    let mut book = parse_state(book, BOOK_FILE, SidBook::from_text, SidBook::new())?;
    let ledger = parse_state(ledger, LEDGER_FILE, Ledger::from_text, Ledger::new())?;
    let root = WinPath::parse(root)
        .map_err(|err| UnelevatedError::Request(format!("root {root:?}: {err}")))?;
    let sid = book.forget(&root);
    let mut steps = match sid {
        Some(sid) => ledger.removal_plan_for(&sid),
        None => Vec::new(),
    };
    // With no root left, the read-only SID has no token to serve either.
    if book.roots().is_empty() {
        if let Some(ro) = book.forget_read_only() {
            for step in ledger.removal_plan_for(&ro) {
                if !steps.contains(&step) {
                    steps.push(step);
                }
            }
        }
    }
    Ok(Removal {
        book,
        ledger,
        sid,
        steps,
    })
}

/// Plans taking off the ACEs of SIDs the book no longer knows (left by a
/// removal that stopped half-way, a lost book, or a sandbox group that
/// `moat setup --remove` deleted), except those of `keep`: the sandbox
/// group while the elevated tier is set up, whose ACEs are in no book.
pub fn orphan_removal(
    book: Option<&str>,
    ledger: Option<&str>,
    keep: &[Sid],
) -> Result<Removal, UnelevatedError> {
    let book = parse_state(book, BOOK_FILE, SidBook::from_text, SidBook::new())?;
    let ledger = parse_state(ledger, LEDGER_FILE, Ledger::from_text, Ledger::new())?;
    let mut steps: Vec<RemovalStep> = Vec::new();
    for sid in ledger
        .orphan_sids(&book)
        .into_iter()
        .filter(|sid| !keep.contains(sid))
    {
        for step in ledger.removal_plan_for(&sid) {
            // Created directories are removed with their root's SID.
            if matches!(step, RemovalStep::RemoveAces { .. }) && !steps.contains(&step) {
                steps.push(step);
            }
        }
    }
    Ok(Removal {
        book,
        ledger,
        sid: None,
        steps,
    })
}

/// Plans taking off the ACEs the ledger records for `sid` (the sandbox
/// group's, when `moat setup --remove` deletes the group); the book stays
/// as it is, since the group is in no book.
pub fn sid_removal(
    book: Option<&str>,
    ledger: Option<&str>,
    sid: &Sid,
) -> Result<Removal, UnelevatedError> {
    let book = parse_state(book, BOOK_FILE, SidBook::from_text, SidBook::new())?;
    let ledger = parse_state(ledger, LEDGER_FILE, Ledger::from_text, Ledger::new())?;
    let steps = ledger.removal_plan_for(sid);
    Ok(Removal {
        book,
        ledger,
        sid: Some(*sid),
        steps,
    })
}

/// Plans taking off everything the ledger records, of every SID, and the
/// directories moat made, and emptying the book: `moat forget --all`.
pub fn total_removal(book: Option<&str>, ledger: Option<&str>) -> Result<Removal, UnelevatedError> {
    parse_state(book, BOOK_FILE, SidBook::from_text, SidBook::new())?;
    let ledger = parse_state(ledger, LEDGER_FILE, Ledger::from_text, Ledger::new())?;
    let steps = ledger.removal_plan();
    Ok(Removal {
        book: SidBook::new(),
        ledger,
        sid: None,
        steps,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::apply::{self, Host};
    use crate::sddl::{Ace, AceFlags};
    use moat_policy::view::{Denied, Protected, Writable};
    use moat_policy::{EntryKind, NetworkMode, Source};
    use std::path::PathBuf;

    fn policy(mode: NetworkMode, required: bool) -> Policy {
        let mut layer = moat_policy::Layer::new(Source::Api);
        layer.network = Some(mode);
        layer.require_network_isolation = Some(required);
        let mut settings = moat_policy::Settings::new();
        settings.push(layer);
        let facts = moat_policy::HostFacts {
            home: PathBuf::from("/home/a"),
            cwd: PathBuf::from("/home/a/prj"),
            env: Vec::new(),
        };
        let ws = moat_policy::Sourced::new(PathBuf::from("/home/a/prj"), Source::Api);
        settings
            .resolve(&facts, ws)
            .expect("a plain policy resolves")
    }

    fn view() -> FsView {
        let protected = |p: &str, kind| Protected {
            path: PathBuf::from(p),
            kind,
            reason: "test",
        };
        FsView {
            writable: vec![Writable {
                path: PathBuf::from(r"\\?\D:\work\app"),
                source: Source::Api,
            }],
            protected: vec![
                protected(r"D:\work\app\.git\hooks", EntryKind::Dir),
                protected(r"D:\work\app\.git\config", EntryKind::File),
                protected(r"D:\work\app\.vscode", EntryKind::Other),
                protected(r"D:\work\app\.envrc", EntryKind::Other),
            ],
            placeholders: vec![
                PathBuf::from(r"D:\work\app\.vscode"),
                PathBuf::from(r"D:\work\app\.envrc"),
            ],
            denied: vec![Denied {
                path: PathBuf::from(r"C:\Users\me\.ssh"),
                kind: EntryKind::Dir,
                source: Source::Default,
            }],
            ..FsView::default()
        }
    }

    struct Fixture {
        policy: Policy,
        view: FsView,
        args: Vec<String>,
        env: Vec<(String, String)>,
    }

    impl Fixture {
        fn new(mode: NetworkMode) -> Fixture {
            Fixture {
                policy: policy(mode, false),
                view: view(),
                args: vec!["test".to_string(), "a b".to_string()],
                env: vec![("PATH".to_string(), r"C:\Windows".to_string())],
            }
        }

        fn request(&self) -> Request<'_> {
            Request {
                policy: &self.policy,
                view: &self.view,
                program: "cargo",
                args: &self.args,
                cwd: r"D:\work\app",
                env: &self.env,
                pty: None,
                profiles_root: r"C:\Users",
                profile_dir: r"C:\Users\me",
                temp_dir: None,
            }
        }
    }

    fn counter() -> impl FnMut() -> u32 {
        let mut n = 0u32;
        move || {
            n += 1;
            n
        }
    }

    fn audit(found: &[&str]) -> AuditReport {
        AuditReport {
            found: found
                .iter()
                .map(|p| (WinPath::parse(p).unwrap(), Sid::everyone()))
                .collect(),
            examined: 10,
            ..AuditReport::default()
        }
    }

    fn env_get<'a>(plan: &'a RunPlan, name: &str) -> Option<&'a str> {
        plan.env
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Records what would happen on disk.
    #[derive(Default)]
    struct Fake {
        calls: usize,
        aces: Vec<(String, Ace)>,
        dirs: Vec<String>,
    }

    impl Host for Fake {
        fn create_dir(&mut self, path: &WinPath) -> Result<(), String> {
            self.calls += 1;
            self.dirs.push(path.to_string());
            Ok(())
        }
        fn add_ace(&mut self, path: &WinPath, ace: &Ace) -> Result<(), String> {
            self.calls += 1;
            self.aces.push((path.to_string(), *ace));
            Ok(())
        }
        fn remove_aces(&mut self, path: &WinPath, sid: &Sid) -> Result<usize, String> {
            self.calls += 1;
            let p = path.to_string();
            let before = self.aces.len();
            self.aces.retain(|(q, a)| !(*q == p && a.sid == *sid));
            Ok(before - self.aces.len())
        }
        fn remove_dir_if_empty(&mut self, path: &WinPath) -> Result<bool, String> {
            self.calls += 1;
            let p = path.to_string();
            let before = self.dirs.len();
            self.dirs.retain(|d| *d != p);
            Ok(before != self.dirs.len())
        }
    }

    #[test]
    fn a_run_plans_its_roots_token_and_environment() {
        let f = Fixture::new(NetworkMode::Off);
        let found = audit(&[r"C:\Shared"]);
        let ctx = Context {
            audit: Some(&found),
            ..Context::default()
        };
        let p = plan(&f.request(), &ctx, &mut counter()).unwrap();
        assert_eq!(p.acl_input.roots, vec![r"D:\work\app".to_string()]);
        assert_eq!(p.capability_sids.len(), 1);
        assert_eq!(
            p.book.get(&WinPath::parse(r"D:\work\app").unwrap()),
            Some(p.capability_sids[0])
        );
        assert!(p.book_changed);
        assert_eq!(
            p.create_first,
            vec![WinPath::parse(r"D:\work\app\.vscode").unwrap()]
        );
        assert!(p.pending.iter().any(
            |s| matches!(s, AclStep::DenyWrite { path, .. } if path.to_string() == r"C:\Shared")
        ));
        assert_eq!(p.command_line, r#"cargo test "a b""#);
        assert_eq!(p.cwd, r"D:\work\app");
        assert_eq!(env_get(&p, "MOAT_NETWORK"), Some("advisory"));
        assert_eq!(env_get(&p, "GIT_CONFIG_KEY_0"), Some("safe.directory"));
        assert_eq!(env_get(&p, "GIT_CONFIG_VALUE_0"), Some("D:/work/app"));
        // The block is sorted as Windows wants it; same variables.
        let mut block = envblock::parse(&p.environment).unwrap();
        let mut env = p.env.clone();
        block.sort();
        env.sort();
        assert_eq!(block, env);
        let net = p.layers.iter().find(|l| l.layer == "network").unwrap();
        assert_eq!(net.state, "advisory");
        assert!(net.line().starts_with("moat: network: advisory: "));
        assert!(net
            .to_json()
            .starts_with(r#"{"layer":"network","state":"advisory","detail":""#));
        // .envrc cannot get a placeholder, and denied reads do not hold.
        assert!(p.lost.iter().any(|l| l.contains(".envrc")), "{:?}", p.lost);
        assert!(
            p.lost.iter().any(|l| l.contains("read denials")),
            "{:?}",
            p.lost
        );
        assert!(!p.lost.iter().any(|l| l.contains("audit")), "{:?}", p.lost);
        let write = p.layers.iter().find(|l| l.layer == "write").unwrap();
        assert_eq!(write.state, "partial");
        assert_eq!(
            p.layers.iter().find(|l| l.layer == "read").unwrap().state,
            "off"
        );
    }

    #[test]
    fn a_second_run_with_the_same_roots_plans_nothing() {
        let f = Fixture::new(NetworkMode::Off);
        let found = audit(&[r"C:\Shared"]);
        let first = plan(
            &f.request(),
            &Context {
                audit: Some(&found),
                ..Context::default()
            },
            &mut counter(),
        )
        .unwrap();
        let mut ledger = first.ledger.clone();
        let mut disk = Fake::default();
        let n = apply::apply(&first.acl, &mut ledger, &mut disk).unwrap();
        assert_eq!(n, first.pending.len());
        let book = first.book.to_text();
        let ledger_text = ledger.to_text();
        let second = plan(
            &f.request(),
            &Context {
                book: Some(&book),
                ledger: Some(&ledger_text),
                audit: Some(&found),
                principals: &[],
                reads: None,
            },
            &mut || panic!("no new SID for a known root"),
        )
        .unwrap();
        assert!(second.pending.is_empty(), "{:?}", second.pending);
        assert!(second.create_first.is_empty());
        assert!(!second.book_changed);
        assert_eq!(second.capability_sids, first.capability_sids);
        let calls = disk.calls;
        let mut ledger2 = second.ledger.clone();
        assert_eq!(
            apply::apply(&second.acl, &mut ledger2, &mut disk).unwrap(),
            0
        );
        assert_eq!(disk.calls, calls);

        // Taking the root off removes everything of its SID, and the SID.
        let r = removal(Some(&book), Some(&ledger_text), r"d:\WORK\app").unwrap();
        assert_eq!(r.sid, Some(first.capability_sids[0]));
        assert!(r.book.is_empty());
        let mut ledger3 = r.ledger.clone();
        apply::remove(&r.steps, &mut ledger3, &mut disk).unwrap();
        assert!(disk.aces.is_empty(), "{:?}", disk.aces);
        assert!(disk.dirs.is_empty(), "{:?}", disk.dirs);
        assert!(ledger3.is_empty(), "{}", ledger3.to_text());
        assert!(ledger3.orphan_sids(&r.book).is_empty());
    }

    #[test]
    fn steps_gone_from_disk_are_applied_again() {
        let f = Fixture::new(NetworkMode::Off);
        let first = plan(&f.request(), &Context::default(), &mut counter()).unwrap();
        let mut ledger = first.ledger.clone();
        apply::apply(&first.acl, &mut ledger, &mut Fake::default()).unwrap();
        let book = first.book.to_text();
        let ledger_text = ledger.to_text();
        let ctx = Context {
            book: Some(&book),
            ledger: Some(&ledger_text),
            audit: None,
            principals: &[],
            reads: None,
        };
        let mut second = plan(&f.request(), &ctx, &mut counter()).unwrap();
        assert!(second.pending.is_empty());
        assert_eq!(second.recheck(&mut |_| true), 0);
        assert!(second.pending.is_empty());
        // git replaced .git\config, and someone removed .vscode.
        let gone = |s: &AclStep| {
            let p = s.path().to_string();
            p.ends_with(r"\.git\config") || p.ends_with(r"\.vscode")
        };
        let stale = second.recheck(&mut |s| !gone(s));
        assert_eq!(stale, 3);
        assert_eq!(
            second.create_first,
            vec![WinPath::parse(r"D:\work\app\.vscode").unwrap()]
        );
        assert_eq!(second.pending.len(), 3, "{:?}", second.pending);
        assert!(second.pending.iter().all(gone));
    }

    #[test]
    fn the_sandbox_groups_reads_are_applied_once_and_rechecked() {
        let f = Fixture::new(NetworkMode::Off);
        let group: Sid = "S-1-5-21-7-8-9-1001".parse().unwrap();
        let secret = WinPath::parse(r"C:\Users\ada\.config\gh").unwrap();
        let reads = ReadPlan {
            steps: vec![
                AclStep::DenyRead {
                    path: secret.clone(),
                    sid: group,
                    inherit: AceFlags::SUBTREE,
                },
                AclStep::Allow {
                    path: WinPath::parse(r"C:\Users\ada\.config").unwrap(),
                    sid: group,
                    mask: crate::sddl::READ_GRANT_MASK,
                    inherit: AceFlags::SUBTREE,
                },
            ],
            notes: vec!["a note from the read plan".to_string()],
        };
        let principals = [group];
        let ctx = Context {
            principals: &principals,
            reads: Some(&reads),
            ..Context::default()
        };
        let first = plan(&f.request(), &ctx, &mut counter()).unwrap();
        // After the write plan's steps, denies before grants.
        let n = first.pending.len();
        assert_eq!(first.pending[n - 2..], reads.steps[..]);
        assert!(first.notes.iter().any(|n| n == "a note from the read plan"));
        let mut ledger = first.ledger.clone();
        apply::apply(&first.acl, &mut ledger, &mut Fake::default()).unwrap();
        let (book, ledger_text) = (first.book.to_text(), ledger.to_text());
        let ctx = Context {
            book: Some(&book),
            ledger: Some(&ledger_text),
            ..ctx
        };
        let mut second = plan(&f.request(), &ctx, &mut counter()).unwrap();
        assert!(second.pending.is_empty(), "{:?}", second.pending);
        // The person's tool rewrote the secret's directory: its deny is
        // applied again before the command starts.
        assert_eq!(second.recheck(&mut |s| *s.path() != secret), 1);
        assert_eq!(second.pending, reads.steps[..1]);
    }

    #[test]
    fn a_policy_requiring_isolation_is_refused_naming_the_elevated_tier() {
        let mut f = Fixture::new(NetworkMode::Off);
        f.policy = policy(NetworkMode::Off, true);
        let err = plan(&f.request(), &Context::default(), &mut counter()).unwrap_err();
        assert!(err.needs_elevated());
        assert!(err.to_string().contains("moat setup"), "{err}");
        assert!(err.to_string().contains("elevated tier"), "{err}");
    }

    #[test]
    fn network_on_is_open_and_gets_no_offline_variables() {
        let f = Fixture::new(NetworkMode::On);
        let p = plan(&f.request(), &Context::default(), &mut counter()).unwrap();
        assert_eq!(p.network, NetEnforcement::Open);
        assert_eq!(env_get(&p, "HTTPS_PROXY"), None);
        assert!(
            p.lost.iter().any(|l| l.contains("no write audit")),
            "{:?}",
            p.lost
        );
        let allow = Fixture::new(NetworkMode::Allow);
        let p = plan(&allow.request(), &Context::default(), &mut counter()).unwrap();
        assert_eq!(p.network, NetEnforcement::Advisory);
        assert!(env_get(&p, "HTTPS_PROXY").is_some());
        // The proxy's variables replace the dead proxy once it runs
        // (`offline_env::use_proxy`); the report already says which.
        let net = p.layers.iter().find(|l| l.layer == "network").unwrap();
        assert!(
            net.detail.contains("moat's proxy") && !net.detail.contains("dead proxy"),
            "{}",
            net.detail
        );
    }

    #[test]
    fn everyone_writable_places_the_plan_refuses_are_lost_not_fatal() {
        let f = Fixture::new(NetworkMode::Off);
        let found = audit(&[r"C:\", r"C:\Shared", r"C:\Users"]);
        let p = plan(
            &f.request(),
            &Context {
                audit: Some(&found),
                ..Context::default()
            },
            &mut counter(),
        )
        .unwrap();
        assert_eq!(
            p.acl_input.everyone_writable,
            vec![r"C:\Shared".to_string()]
        );
        assert!(
            p.lost.iter().any(|l| l.starts_with(r"C:\ is writable")),
            "{:?}",
            p.lost
        );
        assert!(
            p.lost
                .iter()
                .any(|l| l.starts_with(r"C:\Users is writable")),
            "{:?}",
            p.lost
        );
    }

    #[test]
    fn refusals_name_the_path() {
        let mut f = Fixture::new(NetworkMode::Off);
        f.view.writable[0].path = PathBuf::from(r"C:\Users\me");
        f.view.protected.clear();
        f.view.placeholders.clear();
        let err = plan(&f.request(), &Context::default(), &mut counter()).unwrap_err();
        assert!(matches!(err, UnelevatedError::Plan(_)));
        assert!(err.to_string().contains(r"C:\Users\me"), "{err}");

        let f = Fixture::new(NetworkMode::Off);
        let err = plan(
            &f.request(),
            &Context {
                book: Some("not a book"),
                ..Context::default()
            },
            &mut counter(),
        )
        .unwrap_err();
        assert!(matches!(err, UnelevatedError::State(_)), "{err}");

        let mut req = f.request();
        req.program = r"C:\Program Files\WindowsApps\X_1.0_x64__abc\x.exe";
        let err = plan(&req, &Context::default(), &mut counter()).unwrap_err();
        assert!(err.to_string().contains("Store"), "{err}");
        let mut req = f.request();
        req.cwd = "relative";
        assert!(plan(&req, &Context::default(), &mut counter()).is_err());
        let mut req = f.request();
        req.pty = Some((0, 24));
        assert!(plan(&req, &Context::default(), &mut counter()).is_err());
    }

    #[test]
    fn a_temp_directory_becomes_a_root_and_the_commands_temp() {
        let f = Fixture::new(NetworkMode::On);
        let mut req = f.request();
        req.temp_dir = Some(r"C:\Users\me\AppData\Local\moat\tmp");
        let p = plan(&req, &Context::default(), &mut counter()).unwrap();
        assert_eq!(p.capability_sids.len(), 2);
        assert_eq!(
            env_get(&p, "TEMP"),
            Some(r"C:\Users\me\AppData\Local\moat\tmp")
        );
        assert_eq!(
            env_get(&p, "TMP"),
            Some(r"C:\Users\me\AppData\Local\moat\tmp")
        );
    }

    #[test]
    fn the_audit_starts_near_the_roots_then_at_shared_places() {
        let roots = vec![WinPath::parse(r"D:\work\app").unwrap()];
        let env: Vec<(String, String)> = [
            ("TEMP", r"C:\Users\me\AppData\Local\Temp"),
            ("TMP", r"C:\Users\me\AppData\Local\Temp"),
            ("Path", r#"C:\Windows\system32;"C:\Tools";relative;;"#),
            ("ProgramData", r"C:\ProgramData"),
            ("SystemRoot", r"C:\Windows"),
            ("SystemDrive", "C:"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let starts: Vec<String> = audit_starts(&roots, &env)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            starts,
            vec![
                r"D:\work",
                r"C:\Users\me\AppData\Local\Temp",
                r"C:\Windows\system32",
                r"C:\Tools",
                r"C:\ProgramData",
                r"C:\Windows\Temp",
                r"C:\",
            ]
        );
        let logon = Sid::new(5, &[5, 0, 1234]).unwrap();
        let input = audit_input(roots, Vec::new(), Some(logon));
        assert_eq!(input.sids, vec![Sid::everyone(), logon]);
    }

    #[test]
    fn orphans_are_planned_for_removal() {
        let f = Fixture::new(NetworkMode::Off);
        let p = plan(&f.request(), &Context::default(), &mut counter()).unwrap();
        let mut ledger = p.ledger.clone();
        apply::apply(&p.acl, &mut ledger, &mut Fake::default()).unwrap();
        // The book was lost: every SID in the ledger is an orphan.
        let r = orphan_removal(None, Some(&ledger.to_text()), &[]).unwrap();
        assert!(!r.steps.is_empty());
        assert!(r
            .steps
            .iter()
            .all(|s| matches!(s, RemovalStep::RemoveAces { .. })));
    }

    #[test]
    fn the_sandbox_groups_aces_are_no_orphans_while_it_is_in_use() {
        let f = Fixture::new(NetworkMode::Off);
        let group: Sid = "S-1-5-21-7-8-9-1001".parse().unwrap();
        let principals = [group];
        let ctx = Context {
            principals: &principals,
            ..Context::default()
        };
        let p = plan(&f.request(), &ctx, &mut counter()).unwrap();
        let mut ledger = p.ledger.clone();
        apply::apply(&p.acl, &mut ledger, &mut Fake::default()).unwrap();
        assert!(ledger.sids().contains(&group));
        let (book, text) = (p.book.to_text(), ledger.to_text());
        let again = Context {
            book: Some(&book),
            ledger: Some(&text),
            ..ctx
        };
        let second = plan(&f.request(), &again, &mut counter()).unwrap();
        assert!(
            !second.notes.iter().any(|n| n.contains("no root uses")),
            "{:?}",
            second.notes
        );
        // Kept while set up; taken off once it is not.
        let kept = orphan_removal(Some(&book), Some(&text), &principals).unwrap();
        assert!(kept.steps.is_empty(), "{:?}", kept.steps);
        let gone = orphan_removal(Some(&book), Some(&text), &[]).unwrap();
        assert!(!gone.steps.is_empty());
        assert!(gone.steps.iter().all(|s| match s {
            RemovalStep::RemoveAces { sid, .. } => *sid == group,
            _ => false,
        }));
        // `moat setup --remove` takes off the group's ACEs alone.
        let removed = sid_removal(Some(&book), Some(&text), &group).unwrap();
        assert_eq!(removed.steps, gone.steps);
        assert_eq!(removed.book.to_text(), book);
        // In the unelevated tier (no principals) the note names the fix.
        let unelevated = Context {
            book: Some(&book),
            ledger: Some(&text),
            ..Context::default()
        };
        let third = plan(&f.request(), &unelevated, &mut counter()).unwrap();
        assert!(
            third
                .notes
                .iter()
                .any(|n| n.contains("moat forget --orphans")),
            "{:?}",
            third.notes
        );
    }

    #[test]
    fn forgetting_everything_takes_off_every_ace_and_directory() {
        let f = Fixture::new(NetworkMode::Off);
        let p = plan(&f.request(), &Context::default(), &mut counter()).unwrap();
        let mut ledger = p.ledger.clone();
        let mut disk = Fake::default();
        apply::apply(&p.acl, &mut ledger, &mut disk).unwrap();
        let r = total_removal(Some(&p.book.to_text()), Some(&ledger.to_text())).unwrap();
        assert!(r.book.roots().is_empty());
        let mut after = r.ledger.clone();
        apply::remove(&r.steps, &mut after, &mut disk).unwrap();
        assert!(after.is_empty(), "{}", after.to_text());
        assert!(total_removal(None, Some("not a ledger")).is_err());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }

    #[test]
    fn limits_are_a_layer_and_file_size_is_lost() {
        use moat_policy::Sourced;
        use std::time::Duration;
        let mut f = Fixture::new(NetworkMode::Off);
        // No limits: no layer claims any, none is lost.
        let p = plan(&f.request(), &Context::default(), &mut counter()).unwrap();
        assert!(p.layers.iter().all(|l| l.layer != "limits"));
        assert!(!p.lost.iter().any(|l| l.contains("limit")), "{:?}", p.lost);
        assert!(p.limits.is_empty());

        f.policy.limits.timeout = Some(Sourced::new(Duration::from_secs(90), Source::Api));
        f.policy.limits.memory = Some(Sourced::new(1 << 30, Source::Api));
        f.policy.limits.file_size = Some(Sourced::new(1 << 20, Source::Api));
        let p = plan(&f.request(), &Context::default(), &mut counter()).unwrap();
        let layer = p.layers.iter().find(|l| l.layer == "limits").unwrap();
        assert_eq!(layer.state, "partial");
        assert!(
            layer.detail.contains("timeout 90s") && layer.detail.contains("memory 1 GiB"),
            "{}",
            layer.detail
        );
        assert_eq!(p.limits.timeout_ms, Some(90_000));
        assert_eq!(p.limits.memory, Some(1 << 30));
        let file_size: Vec<&String> = p.lost.iter().filter(|l| l.contains("file_size")).collect();
        assert_eq!(file_size.len(), 1, "{:?}", p.lost);
        assert!(file_size[0].contains("1 MiB"));
        assert!(!p.lost.iter().any(
            |l| l.contains("timeout") || l.contains("not enforced by the Windows backend yet")
        ));

        // A limit of 0 refuses the run before anything changes.
        f.policy.limits.processes = Some(Sourced::new(0, Source::Api));
        let err = plan(&f.request(), &Context::default(), &mut counter()).unwrap_err();
        assert!(
            matches!(&err, UnelevatedError::Policy(why) if why.contains("processes is 0")),
            "{err:?}"
        );
    }
}
