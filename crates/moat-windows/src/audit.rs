//! The audit for broadly writable directories outside the writable roots.
//!
//! The unelevated tier's token is write-restricted, and its restricting
//! SIDs include Everyone (see `sys::token`). A write then passes the second
//! access check wherever a DACL already lets Everyone write, so such a
//! directory stays writable from the sandbox whatever moat grants. The
//! audit finds those directories so the ACL plan can put a deny-write ACE
//! for the capability SIDs on each ([`crate::acl_plan::PlanInput`]'s
//! `everyone_writable` takes [`AuditReport::found_paths`]).
//!
//! The walk is bounded, as in the anchor design: breadth-first from the
//! starts the caller picks (the workspace's parent's children, TEMP, PATH
//! entries, `C:\`, `C:\ProgramData`, `C:\Windows\Temp`, ...), at most
//! [`DEFAULT_MAX_ENTRIES`] directories, [`DEFAULT_MAX_DEPTH`] levels below
//! each start and [`DEFAULT_TIME_LIMIT`]. A walk stopped by the entry or
//! time bound says so in [`AuditReport::truncated`]: directories it did not
//! reach may still be writable, so that run is weaker and the person must
//! be told. The depth bound is by design and is not reported as a
//! truncation.
//!
//! Every filesystem access goes through [`Host`], so the walk and the DACL
//! reading are plain code, tested on any platform.
//!
//! # What it cannot see
//! - It reads DACLs as the host reports them (SDDL parsed by
//!   [`Dacl::parse`]). A DACL the parser refuses (an object or conditional
//!   ACE, an alias it does not know) is reported as an error, not read.
//! - Group membership is not resolved: only ACEs naming one of the
//!   [`AuditInput::sids`] count (by default Everyone, Authenticated Users,
//!   Users and INTERACTIVE). An ACE for another group the person belongs to,
//!   or for the session's logon SID (a restricting SID too, but different
//!   in every session; add it to `sids` to look for it), is not seen.
//! - Below the depth bound nothing is looked at: a deep directory with its
//!   own broad ACE under ancestors without one is missed.
//! - Below a directory already found it does not look either: one
//!   inheritable deny ACE there reaches its children. A child whose DACL is
//!   protected (does not inherit) and grants broad write itself is missed.
//! - Links and junctions are never followed or reported: an ACE set
//!   through one lands on its target. Pass starts as final paths.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::acl_plan::WinPath;
use crate::sddl::{
    AceKind, Dacl, DENY_WRITE_MASK, FILE_ALL_ACCESS, FILE_GENERIC_WRITE, GENERIC_ALL, GENERIC_WRITE,
};
use crate::sid::{Sid, AUTHENTICATED_USERS, EVERYONE, NT_AUTHORITY, USERS};

/// The anchor's bound on directories examined (DACL read) per audit.
pub const DEFAULT_MAX_ENTRIES: usize = 50_000;

/// The anchor's bound on depth: a start is depth 0, and directories down to
/// this many levels below it are examined.
pub const DEFAULT_MAX_DEPTH: usize = 3;

/// The anchor's bound on time; the caller turns it into the `deadline`
/// clock passed to [`run`].
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(2);

/// The rights that count as writing: every right that changes a
/// directory, its contents, its name or its DACL. They are exactly what the
/// backend's deny-write ACE denies, so that ACE takes away all a found
/// directory was granting.
pub const WRITE_RIGHTS: u32 = DENY_WRITE_MASK;

/// `SECURITY_INTERACTIVE_RID`: INTERACTIVE is `S-1-5-4`.
const INTERACTIVE_RID: u32 = 4;

/// INTERACTIVE (`S-1-5-4`), which `sid.rs` has no constant for.
///
/// `Sid::new` only fails past its limits (48-bit authority, 15
/// sub-authorities), which `S-1-5-4` is far from; the `Option` keeps that
/// impossible failure from becoming a panic.
pub fn interactive() -> Option<Sid> {
    Sid::new(NT_AUTHORITY, &[INTERACTIVE_RID]).ok()
}

/// The groups treated as held by every process: Everyone, Authenticated
/// Users, Users and INTERACTIVE, in that order.
///
/// Only Everyone (and the logon SID) is in the current token's restricting
/// list, so an allow for the other three does not by itself pass the
/// second access check today. They are in the default set because a
/// needless deny ACE for a capability SID costs the person nothing, while a
/// missed one would leave a hole if the token ever carried more groups.
/// The price is that a default Windows install has such directories:
/// Authenticated Users may create folders in `C:\`, and Users may create
/// files in `C:\ProgramData` and `C:\Windows\Temp`. The ACL plan refuses
/// ACEs on a drive root, so a caller auditing `C:\` with this set must drop
/// it from the plan (and say so) or pass a narrower [`AuditInput::sids`].
pub fn broad_sids() -> Vec<Sid> {
    let mut sids = vec![EVERYONE, AUTHENTICATED_USERS, USERS];
    sids.extend(interactive());
    sids
}

/// The write rights of an ACE mask, generic rights mapped as for files.
///
/// Windows maps generic rights when a DACL is stored, so on an object they
/// are left only in inherit-only ACEs, which do not count here. A DACL
/// written some other way may still carry them; mapping both allow and
/// deny ACEs the same way keeps such a DACL's reading consistent.
fn write_rights(mask: u32) -> u32 {
    let mut mapped = mask;
    if mask & GENERIC_ALL != 0 {
        mapped |= FILE_ALL_ACCESS;
    }
    if mask & GENERIC_WRITE != 0 {
        mapped |= FILE_GENERIC_WRITE;
    }
    mapped & WRITE_RIGHTS
}

/// Which of the default broad groups ([`broad_sids`]) this DACL lets write
/// to the directory itself, if any; see [`broad_write_among`].
pub fn broad_write(dacl: &Dacl) -> Option<Sid> {
    broad_write_among(dacl, &broad_sids())
}

/// The first SID of `sids` that this DACL lets write to the directory it
/// is on, if any.
///
/// ACEs are read in order, as the access check reads them: an allow ACE
/// for one of `sids` counts if it applies to the object itself (not
/// inherit-only) and grants a write right ([`WRITE_RIGHTS`], generic rights
/// included) that no earlier deny took away. An earlier deny takes rights
/// away from its own SID, and a deny for Everyone from every SID, since
/// every token holds Everyone. A deny for another group does not, even one
/// of `sids`: whether the sandboxed process is in it is not known here, and
/// reporting a directory too many costs one ACE where missing one leaves a
/// hole.
pub fn broad_write_among(dacl: &Dacl, sids: &[Sid]) -> Option<Sid> {
    let mut denied_everyone = 0u32;
    // Few ACEs name a broad group, so a list beats a map here.
    let mut denied: Vec<(Sid, u32)> = Vec::new();
    for ace in &dacl.aces {
        if !ace.flags.applies_to_object() {
            continue;
        }
        let rights = write_rights(ace.mask);
        if rights == 0 {
            continue;
        }
        match ace.kind {
            AceKind::Deny => {
                if ace.sid == EVERYONE {
                    denied_everyone |= rights;
                } else if sids.contains(&ace.sid) {
                    match denied.iter_mut().find(|(s, _)| *s == ace.sid) {
                        Some((_, mask)) => *mask |= rights,
                        None => denied.push((ace.sid, rights)),
                    }
                }
            }
            AceKind::Allow => {
                if !sids.contains(&ace.sid) {
                    continue;
                }
                let own = denied
                    .iter()
                    .find(|(s, _)| *s == ace.sid)
                    .map(|(_, m)| *m)
                    .unwrap_or(0);
                if rights & !(denied_everyone | own) != 0 {
                    return Some(ace.sid);
                }
            }
        }
    }
    None
}

/// The filesystem as the audit sees it. The Windows implementation lives
/// in `sys`; tests use a fake.
pub trait Host {
    /// The subdirectories directly inside `dir`, as full paths. Entries
    /// not directly inside `dir` are ignored.
    fn list_dirs(&self, dir: &WinPath) -> Result<Vec<WinPath>, String>;

    /// The DACL of `dir`. A NULL DACL (no DACL at all), which grants
    /// everyone everything, must be reported as one allow ACE for Everyone
    /// with `GENERIC_ALL`, not as an empty DACL, which grants nothing.
    fn dacl(&self, dir: &WinPath) -> Result<Dacl, String>;

    /// Whether `dir` is a symbolic link, junction or other reparse point
    /// that leads elsewhere. Such a directory is neither examined nor
    /// descended into.
    fn is_link(&self, dir: &WinPath) -> bool;
}

/// What to audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditInput {
    /// Writable roots: skipped with everything inside, since moat grants
    /// write there anyway.
    pub roots: Vec<WinPath>,
    /// Where to look, in priority order: when a bound stops the walk, the
    /// first starts' shallow levels have been examined.
    pub starts: Vec<WinPath>,
    /// At most this many directories examined.
    pub max_entries: usize,
    /// At most this many levels below a start (0: the starts only).
    pub max_depth: usize,
    /// The SIDs whose write access counts: the restricting SIDs of the
    /// sandbox's token other than its capability SIDs. A write must pass
    /// the normal check (as the person, groups and all) and a second check
    /// against the restricting SIDs alone, so a grant to Users or
    /// Authenticated Users does not let the sandbox write; one to Everyone
    /// or to the session's logon SID does. [`AuditInput::new`] starts with
    /// Everyone; the caller adds the logon SID. [`broad_sids`] is the wider
    /// set, for a token that would carry those groups.
    pub sids: Vec<Sid>,
}

impl AuditInput {
    /// An audit of `starts` outside `roots` with the anchor's bounds,
    /// counting Everyone's write access (add the logon SID to `sids`).
    pub fn new(roots: Vec<WinPath>, starts: Vec<WinPath>) -> AuditInput {
        AuditInput {
            roots,
            starts,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_depth: DEFAULT_MAX_DEPTH,
            sids: vec![Sid::everyone()],
        }
    }
}

/// What the audit found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuditReport {
    /// Broadly writable directories with the SID that may write, sorted by
    /// path. None lies inside another: the walk does not go below a found
    /// directory, whose deny ACE reaches the directories inside it.
    pub found: Vec<(WinPath, Sid)>,
    /// Directories examined (DACL read or tried).
    pub examined: usize,
    /// Which bound stopped the walk early, if one did: the audit is then
    /// incomplete and the person must be told.
    pub truncated: Option<String>,
    /// Directories that could not be read or listed, sorted: reported, not
    /// fatal.
    pub errors: Vec<(WinPath, String)>,
}

impl AuditReport {
    /// The found directories as the ACL plan takes them
    /// (`PlanInput::everyone_writable`).
    pub fn found_paths(&self) -> Vec<String> {
        self.found.iter().map(|(p, _)| p.to_string()).collect()
    }

    /// One line for the person: counts, and the truncation if any.
    pub fn summary(&self) -> String {
        // A directory can have two errors (DACL and listing); count it once.
        let mut unreadable: Vec<&WinPath> = self.errors.iter().map(|(p, _)| p).collect();
        unreadable.sort();
        unreadable.dedup();
        let mut out = format!(
            "write audit: {} director{} examined, {} broadly writable, {} unreadable",
            self.examined,
            if self.examined == 1 { "y" } else { "ies" },
            self.found.len(),
            unreadable.len()
        );
        if let Some(why) = &self.truncated {
            out.push_str("; INCOMPLETE: ");
            out.push_str(why);
        }
        out
    }
}

/// The bounds that can stop a walk early.
enum Stop {
    Entries(usize),
    Deadline(usize),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Entries(limit) => write!(
                f,
                "stopped at the max_entries limit of {} directories; directories not yet \
                 reached were not checked and may be writable from the sandbox",
                limit
            ),
            Stop::Deadline(examined) => write!(
                f,
                "stopped at the time limit after {} directories; directories not yet reached \
                 were not checked and may be writable from the sandbox",
                examined
            ),
        }
    }
}

fn inside_any(dir: &WinPath, bases: &[WinPath]) -> bool {
    bases.iter().any(|b| dir.starts_with(b))
}

/// Whether `dir` lies below a directory already found.
fn below_found(dir: &WinPath, found: &BTreeSet<WinPath>) -> bool {
    let mut at = dir.parent();
    while let Some(p) = at {
        if found.contains(&p) {
            return true;
        }
        at = p.parent();
    }
    false
}

/// Walks the starts and reports the broadly writable directories.
///
/// One breadth-first queue holds every start, so under a bound each start's
/// shallow levels are examined before any start's deeper ones. A directory
/// is queued once, at the depth it is first reached (duplicate and nested
/// starts included). Each dequeued directory is skipped if it is a
/// writable root or inside one, or below a directory already found;
/// otherwise `deadline` is asked (true: time is up), links are skipped, the
/// entry bound is checked, and the directory is examined. A found
/// directory is not listed: its children inherit the deny ACE put on it.
/// Listing and DACL errors are recorded and the walk goes on.
pub fn run(host: &dyn Host, input: &AuditInput, deadline: &mut dyn FnMut() -> bool) -> AuditReport {
    let mut report = AuditReport::default();
    let mut queued: BTreeSet<WinPath> = BTreeSet::new();
    let mut queue: VecDeque<(WinPath, usize)> = VecDeque::new();
    let mut found: BTreeSet<WinPath> = BTreeSet::new();
    let mut stop: Option<Stop> = None;
    // Set when children were left out because the queue already held as
    // many directories as the entry bound allows: the walk is then
    // incomplete even if the queue drains.
    let mut dropped = false;

    for start in &input.starts {
        if queued.insert(start.clone()) {
            queue.push_back((start.clone(), 0));
        }
    }

    while let Some((dir, depth)) = queue.pop_front() {
        if inside_any(&dir, &input.roots) || below_found(&dir, &found) {
            continue;
        }
        if deadline() {
            stop = Some(Stop::Deadline(report.examined));
            break;
        }
        if host.is_link(&dir) {
            continue;
        }
        if report.examined >= input.max_entries {
            stop = Some(Stop::Entries(input.max_entries));
            break;
        }
        report.examined += 1;

        match host.dacl(&dir) {
            Ok(dacl) => {
                if let Some(sid) = broad_write_among(&dacl, &input.sids) {
                    found.insert(dir.clone());
                    report.found.push((dir, sid));
                    continue;
                }
            }
            // Its children may still be readable and writable: go on.
            Err(e) => report
                .errors
                .push((dir.clone(), format!("reading the DACL: {}", e))),
        }

        if depth >= input.max_depth {
            continue;
        }
        let mut children = match host.list_dirs(&dir) {
            Ok(c) => c,
            Err(e) => {
                report.errors.push((dir, format!("listing: {}", e)));
                continue;
            }
        };
        // Sorted so the host's listing order cannot change the walk.
        children.sort();
        for child in children {
            // Only direct children: anything else would break the depth
            // count, and a host naming an ancestor would loop.
            if child.parent().as_ref() != Some(&dir) || queued.contains(&child) {
                continue;
            }
            if report.examined + queue.len() >= input.max_entries {
                dropped = true;
                break;
            }
            queued.insert(child.clone());
            queue.push_back((child, depth + 1));
        }
    }

    if stop.is_none() && dropped {
        stop = Some(Stop::Entries(input.max_entries));
    }
    report.truncated = stop.map(|s| s.to_string());
    // A nested start examined before its ancestor can be found before it;
    // the ancestor's inheritable deny ACE covers it, as it covers anything
    // below a found directory, so it goes.
    report.found.retain(|(dir, _)| !below_found(dir, &found));
    report.found.sort();
    report.errors.sort();
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::acl_plan::{plan, AclStep, PlanInput, SidBook};
    use crate::sddl::{
        Ace, AceFlags, DELETE, FILE_APPEND_DATA, FILE_DELETE_CHILD, FILE_EXECUTE,
        FILE_READ_ATTRIBUTES, FILE_READ_DATA, FILE_READ_EA, FILE_WRITE_ATTRIBUTES, FILE_WRITE_DATA,
        FILE_WRITE_EA, READ_CONTROL, SYNCHRONIZE, WRITE_DAC, WRITE_OWNER,
    };
    use crate::sid::{capability_sid, LOCAL_SYSTEM};
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    fn p(text: &str) -> WinPath {
        WinPath::parse(text).unwrap()
    }

    fn d(text: &str) -> Dacl {
        Dacl::parse(text).unwrap()
    }

    fn bw(text: &str) -> Option<Sid> {
        broad_write(&d(text))
    }

    // ---- broad_write

    #[test]
    fn everyone_write_is_found() {
        assert_eq!(bw("D:(A;;0x2;;;WD)"), Some(EVERYONE));
        assert_eq!(bw("D:(A;OICI;0x1301bf;;;S-1-1-0)"), Some(EVERYONE));
        assert_eq!(bw("D:AI(A;OICIID;FA;;;WD)"), Some(EVERYONE));
    }

    #[test]
    fn read_only_grants_are_not_write() {
        assert_eq!(bw("D:(A;OICI;0x1200a9;;;BU)"), None);
        assert_eq!(bw("D:(A;OICI;FR;;;WD)(A;;FX;;;AU)"), None);
        assert_eq!(bw("D:(A;;GR;;;WD)(A;;GX;;;BU)"), None);
        assert_eq!(bw("D:"), None);
        for bit in [
            FILE_READ_DATA,
            FILE_READ_EA,
            FILE_EXECUTE,
            FILE_READ_ATTRIBUTES,
            READ_CONTROL,
            SYNCHRONIZE,
        ] {
            let dacl = Dacl {
                aces: vec![Ace::allow(EVERYONE, bit, AceFlags::NONE)],
                ..Dacl::default()
            };
            assert_eq!(broad_write(&dacl), None, "{:#x}", bit);
        }
    }

    #[test]
    fn every_write_right_alone_counts() {
        for bit in [
            FILE_WRITE_DATA,
            FILE_APPEND_DATA,
            FILE_WRITE_EA,
            FILE_WRITE_ATTRIBUTES,
            DELETE,
            FILE_DELETE_CHILD,
            WRITE_DAC,
            WRITE_OWNER,
            GENERIC_WRITE,
            GENERIC_ALL,
        ] {
            let dacl = Dacl {
                aces: vec![Ace::allow(USERS, bit, AceFlags::NONE)],
                ..Dacl::default()
            };
            assert_eq!(broad_write(&dacl), Some(USERS), "{:#x}", bit);
        }
        // And nothing else does: every other single bit is not write.
        for shift in 0..32 {
            let bit = 1u32 << shift;
            let dacl = Dacl {
                aces: vec![Ace::allow(EVERYONE, bit, AceFlags::NONE)],
                ..Dacl::default()
            };
            let want = bit & (WRITE_RIGHTS | GENERIC_WRITE | GENERIC_ALL) != 0;
            assert_eq!(broad_write(&dacl).is_some(), want, "{:#x}", bit);
        }
    }

    #[test]
    fn inherit_only_aces_do_not_apply_to_the_directory() {
        assert_eq!(bw("D:(A;OICIIO;FA;;;WD)"), None);
        assert_eq!(bw("D:(A;CIIO;GA;;;AU)(A;OIIO;0x2;;;BU)"), None);
        // Inherited ACEs do apply.
        assert_eq!(bw("D:(A;ID;0x4;;;BU)"), Some(USERS));
    }

    #[test]
    fn an_earlier_deny_for_the_same_sid_cancels_the_allow() {
        assert_eq!(bw("D:(D;;0xd0156;;;WD)(A;;FA;;;WD)"), None);
        assert_eq!(bw("D:(D;;GW;;;BU)(A;;0x116;;;BU)"), None);
        assert_eq!(bw("D:(D;;GA;;;AU)(A;;GA;;;AU)"), None);
        // Denies add up.
        assert_eq!(bw("D:(D;;0x2;;;WD)(D;;0x4;;;WD)(A;;0x6;;;WD)"), None);
        // Only the rights denied are cancelled.
        assert_eq!(bw("D:(D;;0x2;;;WD)(A;;0x6;;;WD)"), Some(EVERYONE));
        // An inherit-only deny does not apply to the directory either.
        assert_eq!(bw("D:(D;OICIIO;0xd0156;;;WD)(A;;0x2;;;WD)"), Some(EVERYONE));
    }

    #[test]
    fn order_matters_an_allow_before_a_deny_grants() {
        assert_eq!(bw("D:(A;;0x2;;;WD)(D;;0x2;;;WD)"), Some(EVERYONE));
    }

    #[test]
    fn a_deny_for_everyone_cancels_every_group_but_not_the_reverse() {
        // Every token holds Everyone, so this deny applies to everyone.
        assert_eq!(bw("D:(D;;0xd0156;;;WD)(A;;FA;;;BU)(A;;FA;;;AU)"), None);
        // Whether the process is in Users is not known here: keep it.
        assert_eq!(bw("D:(D;;0xd0156;;;BU)(A;;FA;;;WD)"), Some(EVERYONE));
        // A deny for someone else cancels nothing.
        assert_eq!(bw("D:(D;;FA;;;BA)(A;;0x2;;;WD)"), Some(EVERYONE));
    }

    #[test]
    fn generic_rights_count() {
        assert_eq!(bw("D:(A;;GA;;;WD)"), Some(EVERYONE));
        assert_eq!(bw("D:(A;;0x10000000;;;BU)"), Some(USERS));
        assert_eq!(bw("D:(A;;GW;;;AU)"), Some(AUTHENTICATED_USERS));
        assert_eq!(bw("D:(A;;GRGX;;;WD)"), None);
    }

    #[test]
    fn authenticated_users_and_interactive_modify_are_found() {
        assert_eq!(bw("D:(A;OICI;0x1301bf;;;AU)"), Some(AUTHENTICATED_USERS));
        let iu = interactive().unwrap();
        assert_eq!(iu.to_string(), "S-1-5-4");
        assert_eq!(bw("D:(A;OICI;0x1301bf;;;IU)"), Some(iu));
        assert_eq!(bw("D:(A;;0x1301bf;;;S-1-5-4)"), Some(iu));
        assert_eq!(broad_sids(), vec![EVERYONE, AUTHENTICATED_USERS, USERS, iu]);
    }

    #[test]
    fn other_principals_do_not_count() {
        let user = "S-1-5-21-1-2-3-1001";
        let text = format!(
            "D:(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;FA;;;{})(A;OICIIO;GA;;;CO)(A;;FA;;;OW)",
            user
        );
        assert_eq!(bw(&text), None);
        let cap = capability_sid([1, 2, 3, 4]);
        let dacl = Dacl {
            aces: vec![
                Ace::writable_root(cap),
                Ace::allow(LOCAL_SYSTEM, FILE_ALL_ACCESS, AceFlags::SUBTREE),
            ],
            ..Dacl::default()
        };
        assert_eq!(broad_write(&dacl), None);
    }

    #[test]
    fn the_first_granting_ace_names_the_sid() {
        assert_eq!(bw("D:(A;;0x2;;;BU)(A;;FA;;;WD)"), Some(USERS));
        assert_eq!(
            bw("D:(A;;FR;;;WD)(A;;0x4;;;AU)(A;;FA;;;WD)"),
            Some(AUTHENTICATED_USERS)
        );
    }

    #[test]
    fn the_backends_deny_ace_takes_away_all_that_counts() {
        // WRITE_RIGHTS is what the deny-write ACE denies; put for Everyone
        // first, it cancels even full control.
        assert_eq!(WRITE_RIGHTS, DENY_WRITE_MASK);
        let dacl = Dacl {
            aces: vec![
                Ace::deny_write(EVERYONE, AceFlags::SUBTREE),
                Ace::allow(EVERYONE, FILE_ALL_ACCESS | GENERIC_ALL, AceFlags::SUBTREE),
            ],
            ..Dacl::default()
        };
        assert_eq!(broad_write(&dacl), None);
    }

    #[test]
    fn a_default_drive_root_is_found_through_authenticated_users() {
        // Windows' default DACL of C:\: Authenticated Users may create
        // folders (LC = 0x4, FILE_ADD_SUBDIRECTORY) in the root itself.
        let c = "D:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)\
                 (A;OICIIO;SDGXGWGR;;;AU)(A;;LC;;;AU)";
        assert_eq!(bw(c), Some(AUTHENTICATED_USERS));
        // With Everyone alone, which is what the token restricts to, not.
        assert_eq!(broad_write_among(&d(c), &[EVERYONE]), None);
        assert_eq!(broad_write_among(&d("D:(A;;FA;;;WD)"), &[]), None);
    }

    // ---- the walk

    #[derive(Default)]
    struct FakeDir {
        children: Vec<WinPath>,
        dacl: Option<Dacl>,
        dacl_error: Option<String>,
        list_error: Option<String>,
        link: bool,
    }

    /// A filesystem in memory that records which directories were listed
    /// and examined, to check what the walk touched.
    #[derive(Default)]
    struct FakeHost {
        dirs: BTreeMap<WinPath, FakeDir>,
        listed: RefCell<Vec<WinPath>>,
        examined: RefCell<Vec<WinPath>>,
    }

    const READ_ONLY: &str = "D:(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)";
    const OPEN: &str = "D:(A;OICI;FA;;;SY)(A;OICI;0x1301bf;;;WD)";

    impl FakeHost {
        /// Adds `path` (read-only) and every missing ancestor, each listed
        /// in its parent.
        fn add(&mut self, path: &str) -> &mut FakeDir {
            let path = p(path);
            let mut chain = vec![path.clone()];
            while let Some(parent) = chain.last().and_then(|c| c.parent()) {
                chain.push(parent);
            }
            // From the drive root down, so each parent exists first.
            for dir in chain.into_iter().rev() {
                if self.dirs.contains_key(&dir) {
                    continue;
                }
                self.dirs.insert(
                    dir.clone(),
                    FakeDir {
                        dacl: Some(d(READ_ONLY)),
                        ..FakeDir::default()
                    },
                );
                if let Some(parent) = dir.parent() {
                    self.dirs.get_mut(&parent).unwrap().children.push(dir);
                }
            }
            self.dirs.get_mut(&path).unwrap()
        }

        fn open(&mut self, path: &str) {
            self.add(path).dacl = Some(d(OPEN));
        }

        fn listed(&self) -> Vec<String> {
            self.listed.borrow().iter().map(|p| p.to_string()).collect()
        }

        fn examined(&self) -> Vec<String> {
            self.examined
                .borrow()
                .iter()
                .map(|p| p.to_string())
                .collect()
        }
    }

    impl Host for FakeHost {
        fn list_dirs(&self, dir: &WinPath) -> Result<Vec<WinPath>, String> {
            self.listed.borrow_mut().push(dir.clone());
            let entry = self.dirs.get(dir).ok_or("not found")?;
            if let Some(e) = &entry.list_error {
                return Err(e.clone());
            }
            Ok(entry.children.clone())
        }

        fn dacl(&self, dir: &WinPath) -> Result<Dacl, String> {
            self.examined.borrow_mut().push(dir.clone());
            let entry = self.dirs.get(dir).ok_or("not found")?;
            if let Some(e) = &entry.dacl_error {
                return Err(e.clone());
            }
            entry.dacl.clone().ok_or_else(|| "no DACL".to_string())
        }

        fn is_link(&self, dir: &WinPath) -> bool {
            self.dirs.get(dir).map(|e| e.link).unwrap_or(false)
        }
    }

    fn audit(roots: &[&str], starts: &[&str]) -> AuditInput {
        AuditInput::new(
            roots.iter().map(|r| p(r)).collect(),
            starts.iter().map(|s| p(s)).collect(),
        )
    }

    fn never() -> impl FnMut() -> bool {
        || false
    }

    fn found(report: &AuditReport) -> Vec<(String, Sid)> {
        report
            .found
            .iter()
            .map(|(p, s)| (p.to_string(), *s))
            .collect()
    }

    #[test]
    fn defaults_are_the_anchors_bounds() {
        let input = audit(&[], &[r"C:\"]);
        assert_eq!(input.max_entries, 50_000);
        assert_eq!(input.max_depth, 3);
        assert_eq!(input.sids, vec![Sid::everyone()]);
        assert_eq!(DEFAULT_TIME_LIMIT, Duration::from_secs(2));
    }

    #[test]
    fn finds_broadly_writable_directories_sorted() {
        let mut host = FakeHost::default();
        host.open(r"C:\tools\z");
        host.open(r"C:\tools\a");
        host.add(r"C:\tools\m\deep");
        host.add(r"C:\ProgramData\Vendor").dacl = Some(d("D:(A;OICI;0x1301bf;;;AU)"));
        // By default only Everyone counts (Authenticated Users is not a
        // restricting SID of the token); with the wider set, both do.
        let narrow = run(
            &host,
            &audit(&[], &[r"C:\tools", r"C:\ProgramData"]),
            &mut never(),
        );
        assert_eq!(narrow.found_paths(), vec![r"C:\tools\a", r"C:\tools\z"]);
        let mut wide = audit(&[], &[r"C:\tools", r"C:\ProgramData"]);
        wide.sids = broad_sids();
        let report = run(&host, &wide, &mut never());
        assert_eq!(
            found(&report),
            vec![
                (r"C:\ProgramData\Vendor".to_string(), AUTHENTICATED_USERS),
                (r"C:\tools\a".to_string(), EVERYONE),
                (r"C:\tools\z".to_string(), EVERYONE),
            ]
        );
        assert_eq!(report.examined, 7);
        assert_eq!(report.truncated, None);
        assert!(report.errors.is_empty());
        assert_eq!(
            report.found_paths(),
            vec![r"C:\ProgramData\Vendor", r"C:\tools\a", r"C:\tools\z"]
        );
    }

    #[test]
    fn writable_roots_and_their_insides_are_skipped() {
        let mut host = FakeHost::default();
        host.open(r"C:\src\ws\sub\deeper");
        host.open(r"C:\src\ws");
        host.open(r"C:\src\other");
        host.open(r"D:\cache\x");
        let report = run(
            &host,
            &audit(
                &[r"C:\src\ws", r"D:\cache"],
                &[r"C:\src", r"C:\src\ws\sub", r"d:\CACHE\"],
            ),
            &mut never(),
        );
        assert_eq!(
            found(&report),
            vec![(r"C:\src\other".to_string(), EVERYONE)]
        );
        assert_eq!(host.examined(), vec![r"C:\src", r"C:\src\other"]);
        assert_eq!(host.listed(), vec![r"C:\src"]);
        assert_eq!(report.examined, 2);
    }

    #[test]
    fn links_are_neither_followed_nor_examined() {
        let mut host = FakeHost::default();
        host.open(r"C:\data\junction\inside");
        host.add(r"C:\data\junction").link = true;
        host.open(r"C:\data\junction");
        host.add(r"C:\linkstart").link = true;
        host.add(r"C:\data\plain\x");
        let report = run(
            &host,
            &audit(&[], &[r"C:\data", r"C:\linkstart"]),
            &mut never(),
        );
        assert!(report.found.is_empty(), "{:?}", report.found);
        assert_eq!(
            host.examined(),
            vec![r"C:\data", r"C:\data\plain", r"C:\data\plain\x"]
        );
        assert!(!host.listed().iter().any(|l| l.contains("junction")));
        assert!(!host.listed().iter().any(|l| l.contains("linkstart")));
        assert_eq!(report.truncated, None);
    }

    /// C:\t with `n` read-only children, each with one child.
    fn wide(n: usize) -> FakeHost {
        let mut host = FakeHost::default();
        for i in 0..n {
            host.add(&format!(r"C:\t\d{:02}\e", i));
        }
        host
    }

    #[test]
    fn the_entry_bound_stops_the_walk_and_says_so() {
        let host = wide(10);
        // 1 + 10 + 10 directories in all.
        let mut input = audit(&[], &[r"C:\t"]);
        input.max_entries = 5;
        let report = run(&host, &input, &mut never());
        assert_eq!(report.examined, 5);
        let why = report.truncated.clone().unwrap();
        assert!(why.contains("max_entries"), "{}", why);
        assert!(why.contains('5'), "{}", why);
        assert!(
            report.summary().contains("INCOMPLETE"),
            "{}",
            report.summary()
        );
        // Breadth first: the shallow level came first.
        assert_eq!(
            host.examined(),
            vec![r"C:\t", r"C:\t\d00", r"C:\t\d01", r"C:\t\d02", r"C:\t\d03"]
        );

        // Exactly enough is not a truncation.
        let host = wide(10);
        input.max_entries = 21;
        let report = run(&host, &input, &mut never());
        assert_eq!((report.examined, report.truncated), (21, None));
        let host = wide(10);
        input.max_entries = 20;
        let report = run(&host, &input, &mut never());
        assert_eq!(report.examined, 20);
        assert!(report.truncated.unwrap().contains("max_entries"));

        // No budget at all.
        input.max_entries = 0;
        let report = run(&wide(1), &input, &mut never());
        assert_eq!(report.examined, 0);
        assert!(report.truncated.unwrap().contains("max_entries"));
    }

    #[test]
    fn the_deadline_stops_the_walk_and_says_so() {
        let host = wide(10);
        let calls = Cell::new(0usize);
        let mut clock = || {
            calls.set(calls.get() + 1);
            calls.get() > 3
        };
        let report = run(&host, &audit(&[], &[r"C:\t"]), &mut clock);
        assert_eq!(report.examined, 3);
        let why = report.truncated.clone().unwrap();
        assert!(why.contains("time limit"), "{}", why);
        assert!(!why.contains("max_entries"), "{}", why);
        assert!(report.summary().contains("time limit"));

        // Time up before anything.
        let report = run(&wide(2), &audit(&[], &[r"C:\t"]), &mut || true);
        assert_eq!(report.examined, 0);
        assert!(report.truncated.unwrap().contains("time limit"));

        // Nothing to do: the clock is not even asked, nothing truncated.
        let report = run(&wide(2), &audit(&[], &[]), &mut || true);
        assert_eq!(report, AuditReport::default());
    }

    #[test]
    fn unreadable_directories_are_reported_not_fatal() {
        let mut host = FakeHost::default();
        host.add(r"C:\x\noacl").dacl_error = Some("access denied".into());
        host.open(r"C:\x\noacl\open");
        host.add(r"C:\x\nolist").list_error = Some("access denied".into());
        host.open(r"C:\x\nolist\hidden");
        host.open(r"C:\x\fine");
        let report = run(&host, &audit(&[], &[r"C:\x", r"C:\gone"]), &mut never());
        assert_eq!(
            found(&report),
            vec![
                (r"C:\x\fine".to_string(), EVERYONE),
                (r"C:\x\noacl\open".to_string(), EVERYONE),
            ]
        );
        let errors: Vec<(String, String)> = report
            .errors
            .iter()
            .map(|(p, e)| (p.to_string(), e.clone()))
            .collect();
        assert_eq!(
            errors,
            vec![
                (r"C:\gone".to_string(), "listing: not found".to_string()),
                (
                    r"C:\gone".to_string(),
                    "reading the DACL: not found".to_string()
                ),
                (
                    r"C:\x\noacl".to_string(),
                    "reading the DACL: access denied".to_string()
                ),
                (
                    r"C:\x\nolist".to_string(),
                    "listing: access denied".to_string()
                ),
            ]
        );
        assert_eq!(report.truncated, None);
        // Three directories, whatever the number of errors each had.
        assert!(report
            .summary()
            .ends_with("2 broadly writable, 3 unreadable"));
    }

    #[test]
    fn found_directories_are_not_descended_into() {
        let mut host = FakeHost::default();
        host.open(r"C:\pub\a\b");
        host.open(r"C:\pub");
        // A nested start below a found directory is covered too.
        let report = run(&host, &audit(&[], &[r"C:\pub", r"C:\pub\a"]), &mut never());
        assert_eq!(found(&report), vec![(r"C:\pub".to_string(), EVERYONE)]);
        assert!(host.listed().is_empty());
        assert_eq!(host.examined(), vec![r"C:\pub"]);

        // The other way round, the nested start is examined first, and
        // found, but its ancestor's deny covers it.
        let mut host = FakeHost::default();
        host.open(r"C:\pub\a\b");
        host.open(r"C:\pub\a");
        host.open(r"C:\pub");
        let report = run(&host, &audit(&[], &[r"C:\pub\a", r"C:\pub"]), &mut never());
        assert_eq!(host.examined(), vec![r"C:\pub\a", r"C:\pub"]);
        assert_eq!(found(&report), vec![(r"C:\pub".to_string(), EVERYONE)]);
        assert!(host.listed().is_empty());
    }

    #[test]
    fn overlapping_starts_are_examined_once() {
        let mut host = FakeHost::default();
        host.open(r"C:\ProgramData\v");
        host.add(r"C:\ProgramData\w\x");
        let report = run(
            &host,
            &audit(
                &[],
                &[
                    r"C:\ProgramData",
                    r"c:/programdata/",
                    r"C:\ProgramData\w",
                    r"C:\",
                    r"C:\PROGRAMDATA\.",
                ],
            ),
            &mut never(),
        );
        let examined = host.examined();
        let unique: BTreeSet<&String> = examined.iter().collect();
        assert_eq!(examined.len(), unique.len(), "{:?}", examined);
        assert_eq!(report.examined, examined.len());
        assert_eq!(report.examined, 5);
        assert_eq!(
            found(&report),
            vec![(r"C:\ProgramData\v".to_string(), EVERYONE)]
        );
        // Starts come first, in the order given, then their children.
        assert_eq!(
            examined,
            vec![
                r"C:\ProgramData",
                r"C:\ProgramData\w",
                r"C:\",
                r"C:\ProgramData\v",
                r"C:\ProgramData\w\x",
            ]
        );
    }

    #[test]
    fn depth_is_bounded_below_each_start() {
        let mut host = FakeHost::default();
        host.open(r"C:\a\1\2\3\4");
        host.open(r"C:\a\1\2\3x");
        let mut input = audit(&[], &[r"C:\a"]);
        let report = run(&host, &input, &mut never());
        assert_eq!(found(&report), vec![(r"C:\a\1\2\3x".to_string(), EVERYONE)]);
        assert!(!host.examined().contains(&r"C:\a\1\2\3\4".to_string()));
        assert!(!host.listed().contains(&r"C:\a\1\2\3".to_string()));
        assert_eq!(report.truncated, None);

        input.max_depth = 0;
        let host2 = {
            let mut h = FakeHost::default();
            h.open(r"C:\a\1");
            h
        };
        let report = run(&host2, &input, &mut never());
        assert_eq!(report.examined, 1);
        assert!(report.found.is_empty());
        assert!(host2.listed().is_empty());

        // A start deeper down gets its own three levels.
        input.max_depth = 3;
        input.starts = vec![p(r"C:\a"), p(r"C:\a\1\2")];
        let host3 = {
            let mut h = FakeHost::default();
            h.open(r"C:\a\1\2\3\4");
            h
        };
        let report = run(&host3, &input, &mut never());
        assert_eq!(
            found(&report),
            vec![(r"C:\a\1\2\3\4".to_string(), EVERYONE)]
        );
    }

    #[test]
    fn the_same_input_gives_the_same_report_whatever_the_listing_order() {
        let build = |reverse: bool| {
            let mut host = FakeHost::default();
            for name in ["b", "a", "c", "e", "d"] {
                host.open(&format!(r"C:\s\{}\x", name));
                host.add(&format!(r"C:\s\{}", name)).dacl_error = Some("denied".into());
            }
            host.open(r"D:\t\q");
            if reverse {
                for dir in host.dirs.values_mut() {
                    dir.children.reverse();
                }
            }
            host
        };
        let input = audit(&[], &[r"C:\s", r"D:\t"]);
        let one = run(&build(false), &input, &mut never());
        let two = run(&build(true), &input, &mut never());
        let three = run(&build(false), &input, &mut never());
        assert_eq!(one, two);
        assert_eq!(one, three);
        let paths = one.found_paths();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(paths.len(), 6);
        // Truncated walks are deterministic too.
        let mut small = input.clone();
        small.max_entries = 4;
        let a = run(&build(false), &small, &mut never());
        let b = run(&build(true), &small, &mut never());
        assert_eq!(a, b);
        assert!(a.truncated.is_some());
    }

    #[test]
    fn a_host_naming_strangers_or_ancestors_cannot_loop_the_walk() {
        let mut host = FakeHost::default();
        host.add(r"C:\loop\a");
        // Lists its own parent, itself, and an unrelated path.
        host.add(r"C:\loop\a").children.extend([
            p(r"C:\loop"),
            p(r"C:\loop\a"),
            p(r"E:\elsewhere"),
        ]);
        host.open(r"E:\elsewhere");
        let mut input = audit(&[], &[r"C:\loop"]);
        input.max_depth = 50;
        let report = run(&host, &input, &mut never());
        assert_eq!(report.examined, 2);
        assert!(report.found.is_empty());
        assert_eq!(report.truncated, None);
    }

    #[test]
    fn a_wide_listing_under_a_small_bound_is_a_truncation() {
        let mut host = FakeHost::default();
        for i in 0..100 {
            host.add(&format!(r"C:\w\d{:03}", i));
        }
        let mut input = audit(&[], &[r"C:\w"]);
        input.max_entries = 10;
        let report = run(&host, &input, &mut never());
        assert_eq!(report.examined, 10);
        assert!(report.truncated.unwrap().contains("max_entries"));
    }

    #[test]
    fn a_null_dacl_reported_as_the_trait_asks_is_found() {
        let mut host = FakeHost::default();
        host.add(r"C:\null").dacl = Some(Dacl {
            aces: vec![Ace::allow(EVERYONE, GENERIC_ALL, AceFlags::NONE)],
            ..Dacl::default()
        });
        let report = run(&host, &audit(&[], &[r"C:\null"]), &mut never());
        assert_eq!(found(&report), vec![(r"C:\null".to_string(), EVERYONE)]);
        // An empty DACL grants nothing.
        host.add(r"C:\null").dacl = Some(Dacl::default());
        let report = run(&host, &audit(&[], &[r"C:\null"]), &mut never());
        assert!(report.found.is_empty());
    }

    #[test]
    fn narrower_sids_find_less() {
        let mut host = FakeHost::default();
        host.add(r"C:\ProgramData\v").dacl = Some(d("D:(A;OICI;0x1301bf;;;BU)"));
        host.open(r"C:\ProgramData\w");
        let mut input = audit(&[], &[r"C:\ProgramData"]);
        input.sids = vec![EVERYONE];
        let report = run(&host, &input, &mut never());
        assert_eq!(
            found(&report),
            vec![(r"C:\ProgramData\w".to_string(), EVERYONE)]
        );
        // The logon SID, when the caller adds it.
        let logon: Sid = "S-1-5-5-0-12345".parse().unwrap();
        host.add(r"C:\ProgramData\v").dacl = Some(d("D:(A;;0x2;;;S-1-5-5-0-12345)"));
        input.sids.push(logon);
        let report = run(&host, &input, &mut never());
        assert_eq!(
            found(&report),
            vec![
                (r"C:\ProgramData\v".to_string(), logon),
                (r"C:\ProgramData\w".to_string(), EVERYONE),
            ]
        );
    }

    #[test]
    fn the_summary_counts_and_flags() {
        let mut host = FakeHost::default();
        host.open(r"C:\one");
        let report = run(&host, &audit(&[], &[r"C:\one"]), &mut never());
        assert_eq!(
            report.summary(),
            "write audit: 1 directory examined, 1 broadly writable, 0 unreadable"
        );
        let report = run(&host, &audit(&[], &[r"C:\one"]), &mut || true);
        let line = report.summary();
        assert!(
            line.starts_with("write audit: 0 directories examined"),
            "{}",
            line
        );
        assert!(
            line.contains("INCOMPLETE: stopped at the time limit"),
            "{}",
            line
        );
    }

    #[test]
    fn the_report_feeds_the_acl_plan() {
        let mut host = FakeHost::default();
        host.open(r"C:\tools\bin");
        host.open(r"C:\src\ws");
        host.add(r"C:\src\lib");
        let report = run(
            &host,
            &audit(&[r"C:\src\ws"], &[r"C:\tools", r"C:\src"]),
            &mut never(),
        );
        let input = PlanInput {
            roots: vec![r"C:\src\ws".into()],
            protected: Vec::new(),
            everyone_writable: report.found_paths(),
            profiles_root: r"C:\Users".into(),
            profile_dir: r"C:\Users\alice".into(),
            principals: Vec::new(),
        };
        let mut n = 0u32;
        let mut random = || {
            n += 1;
            n
        };
        let plan = plan(&input, &mut SidBook::new(), &mut random).unwrap();
        let cap = plan.roots[0].1;
        assert!(plan.steps.contains(&AclStep::DenyWrite {
            path: p(r"C:\tools\bin"),
            sid: cap,
            inherit: AceFlags::SUBTREE,
        }));
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    }
}
