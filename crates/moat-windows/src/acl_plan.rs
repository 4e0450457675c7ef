//! Which ACEs the unelevated tier puts on disk, and how to take them off.
//!
//! The unelevated tier runs commands under a write-restricted token whose
//! restricting SIDs are one capability SID per writable root (plus the
//! logon SID and Everyone). A write then succeeds only where an ACE lets
//! one of those SIDs write, so the plan is:
//!
//! - **one inheritable allow ACE per writable root**, on the root itself,
//!   for that root's capability SID;
//! - **deny-write ACEs on protected paths** inside roots (`.git\hooks`,
//!   `.git\config`, `.moat`, `.vscode`, ...), for every capability SID
//!   whose root holds them; absent protected directories are created first,
//!   so the command cannot create them and escape the ACE;
//! - **deny-rename ACEs** on the directories between a root and a
//!   protected path: deleting or renaming is allowed by DELETE on the
//!   object *or* FILE_DELETE_CHILD on its parent, so without them the
//!   command could move `.git\hooks` aside and make a new one;
//! - **deny-write ACEs on Everyone-writable directories** found by the
//!   audit outside the roots, because Everyone is a restricting SID.
//!
//! # Cost
//! The plan names roots and protected paths only; it never walks a tree,
//! so building it costs the same for ten files or ten million. Windows
//! copies an inheritable ACE to existing children once, when it is first
//! applied; the [`Ledger`] records what was applied so later runs skip it
//! instead of repeating that work before every command.
//!
//! # What is refused
//! The anchor design's users lost profiles and SSH keys to ACEs on the
//! wrong places, so any path that is a drive or share root, the profiles
//! root (`C:\Users`), a profile directory, a registry hive
//! (`NTUSER.DAT*`, `UsrClass.dat*`) or inside `.ssh`, or whose inheritable
//! ACE would reach one of those, is an error naming the path and the
//! reason, never silently skipped.
//!
//! # SIDs
//! [`SidBook`] keeps one capability SID per root, reused while the root
//! exists and handed back by [`SidBook::forget`] so its ACEs can be
//! removed ([`Ledger::removal_plan_for`]): no SID is left behind as an
//! "Account Unknown" entry.
//!
//! Paths are Windows paths held as strings ([`WinPath`]), so all of this is
//! tested on any platform. They should be final paths (as
//! `GetFinalPathNameByHandleW` gives them): 8.3 short names, links and
//! shares that re-export a local drive cannot be resolved from text.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::sddl::{self, Ace, AceFlags, DELETE, FILE_DELETE_CHILD};
use crate::sid::{capability_sid, Sid};

// ---------------------------------------------------------------------------
// Paths

#[derive(Clone, Debug)]
enum Prefix {
    /// Upper-case drive letter.
    Drive(char),
    Unc {
        server: String,
        share: String,
    },
}

/// An absolute Windows path, normalised.
///
/// `/` becomes `\`, repeated separators collapse, `.` components go, and
/// (outside `\\?\` paths) trailing dots and spaces of each name are
/// dropped, as Win32 drops them, so the text names what Windows would
/// open. `\\?\C:\...` and `\\?\UNC\server\share\...` compare equal to
/// `C:\...` and `\\server\share\...`. Comparison ignores case the way
/// NTFS does by default (simple upper-casing).
#[derive(Clone, Debug)]
pub struct WinPath {
    prefix: Prefix,
    parts: Vec<String>,
    // The comparison key: folded prefix, then each folded name.
    key: Vec<String>,
}

/// Why a string is not a usable absolute Windows path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    /// `foo`, `C:foo`, `C:` or `\foo`: relative to some current directory.
    Relative(String),
    /// Device paths (`\\.\`, `\??\`), volume GUID paths, a UNC path
    /// without a share, and other forms moat does not handle.
    Unsupported(String),
    /// A `..` component: what it names depends on links, so it is refused
    /// rather than folded.
    DotDot(String),
    /// A name Windows would not store as given.
    BadName {
        path: String,
        name: String,
        why: &'static str,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("empty path"),
            PathError::Relative(p) => write!(
                f,
                "`{}` is relative; moat needs an absolute path with a drive or share",
                p
            ),
            PathError::Unsupported(p) => write!(
                f,
                "`{}` is not a drive or UNC path (device and volume paths are not handled)",
                p
            ),
            PathError::DotDot(p) => write!(f, "`{}` contains `..`; pass the resolved path", p),
            PathError::BadName { path, name, why } => {
                write!(f, "`{}`: the name `{}` {}", path, name, why)
            }
        }
    }
}

impl std::error::Error for PathError {}

/// Windows' simple case mapping: one character to one character, leaving
/// characters whose upper case is longer (`ß`) alone, as NTFS does.
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

const RESERVED_DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Whether Win32 would open a device instead of a file for this name
/// (`NUL`, `com1.txt`, `CON .log`): an ACE "on" it would land on the device.
fn is_reserved_device(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or("");
    let base = fold(base.trim_end_matches(' '));
    RESERVED_DEVICES.iter().any(|d| *d == base)
}

fn check_name(path: &str, name: &str, verbatim: bool) -> Result<(), PathError> {
    let bad = |why: &'static str| PathError::BadName {
        path: path.to_string(),
        name: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(bad("is only dots and spaces, which Windows drops"));
    }
    if name.contains(':') {
        return Err(bad(
            "contains `:`, which names an alternate data stream, not a file",
        ));
    }
    if name
        .chars()
        .any(|c| matches!(c, '<' | '>' | '"' | '|' | '?' | '*') || (c as u32) < 0x20)
    {
        return Err(bad("contains a character Windows does not allow in names"));
    }
    if !verbatim && is_reserved_device(name) {
        return Err(bad("is a reserved device name (NUL, CON, COM1, ...)"));
    }
    Ok(())
}

fn drive_letter(text: &str) -> Option<char> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), Some(':')) if c.is_ascii_alphabetic() => Some(c.to_ascii_uppercase()),
        _ => None,
    }
}

impl WinPath {
    /// Parses and normalises an absolute path.
    pub fn parse(input: &str) -> Result<WinPath, PathError> {
        if input.is_empty() {
            return Err(PathError::Empty);
        }
        // Only a literal `\\?\` turns Win32 normalisation off; `//?/` is
        // normalised like any path, so it is refused below rather than
        // guessed at.
        let verbatim = input.starts_with(r"\\?\");
        let text = input.replace('/', "\\");
        let body = if verbatim { &text[4..] } else { text.as_str() };
        if !verbatim
            && (text.starts_with(r"\\?\") || text.starts_with(r"\\.\") || text.starts_with(r"\??\"))
        {
            return Err(PathError::Unsupported(input.to_string()));
        }
        let (prefix, rest) = if verbatim && fold(body.get(..4).unwrap_or("")) == r"UNC\" {
            WinPath::unc(input, &body[4..])?
        } else if !verbatim && body.starts_with(r"\\") {
            WinPath::unc(input, &body[2..])?
        } else if let Some(letter) = drive_letter(body) {
            let rest = &body[2..];
            if !rest.starts_with('\\') {
                return Err(if verbatim {
                    PathError::Unsupported(input.to_string())
                } else {
                    PathError::Relative(input.to_string())
                });
            }
            (Prefix::Drive(letter), rest)
        } else if verbatim {
            return Err(PathError::Unsupported(input.to_string()));
        } else {
            return Err(PathError::Relative(input.to_string()));
        };
        let mut parts = Vec::new();
        for comp in rest.split('\\') {
            if comp.is_empty() {
                continue;
            }
            if comp == ".." {
                return Err(PathError::DotDot(input.to_string()));
            }
            if comp == "." && !verbatim {
                continue;
            }
            let name = if verbatim {
                comp
            } else {
                comp.trim_end_matches(&['.', ' '][..])
            };
            if verbatim && comp == "." {
                return Err(PathError::BadName {
                    path: input.to_string(),
                    name: comp.to_string(),
                    why: "is `.` in a \\\\?\\ path, which Windows does not resolve",
                });
            }
            check_name(input, name, verbatim)?;
            parts.push(name.to_string());
        }
        Ok(WinPath::from_parts(prefix, parts))
    }

    fn unc<'a>(input: &str, rest: &'a str) -> Result<(Prefix, &'a str), PathError> {
        let trimmed = rest.trim_start_matches('\\');
        let mut split = trimmed.splitn(2, '\\');
        let server = split.next().unwrap_or("");
        let after = split.next().unwrap_or("").trim_start_matches('\\');
        let mut split = after.splitn(2, '\\');
        let share = split.next().unwrap_or("");
        let tail = split.next().unwrap_or("");
        if server.is_empty() || share.is_empty() || server == "." || server == "?" {
            return Err(PathError::Unsupported(input.to_string()));
        }
        check_name(input, server, true)?;
        check_name(input, share, true)?;
        Ok((
            Prefix::Unc {
                server: server.to_string(),
                share: share.to_string(),
            },
            tail,
        ))
    }

    fn from_parts(prefix: Prefix, parts: Vec<String>) -> WinPath {
        let mut key = Vec::with_capacity(parts.len() + 1);
        key.push(match &prefix {
            Prefix::Drive(c) => format!("{}:", c),
            Prefix::Unc { server, share } => format!(r"\\{}\{}", fold(server), fold(share)),
        });
        key.extend(parts.iter().map(|p| fold(p)));
        WinPath { prefix, parts, key }
    }

    /// The path with one more name; `name` is a single valid name.
    pub(crate) fn child(&self, name: &str) -> WinPath {
        let mut parts = self.parts.clone();
        parts.push(name.to_string());
        WinPath::from_parts(self.prefix.clone(), parts)
    }

    /// Whether this is a drive root (`C:\`) or share root
    /// (`\\server\share`).
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The names after the drive or share.
    pub fn components(&self) -> &[String] {
        &self.parts
    }

    /// The last name, if this is not a root.
    pub fn file_name(&self) -> Option<&str> {
        self.parts.last().map(|s| s.as_str())
    }

    /// The containing directory, if this is not a root.
    pub fn parent(&self) -> Option<WinPath> {
        if self.parts.is_empty() {
            return None;
        }
        let mut parent = self.clone();
        parent.parts.pop();
        parent.key.pop();
        Some(parent)
    }

    /// Whether `base` is this path or one of its ancestors.
    pub fn starts_with(&self, base: &WinPath) -> bool {
        self.key.len() >= base.key.len() && self.key[..base.key.len()] == base.key[..]
    }

    /// Whether this path lies below `base` (and is not `base`).
    pub fn is_inside(&self, base: &WinPath) -> bool {
        self.key.len() > base.key.len() && self.starts_with(base)
    }

    fn plain(&self) -> String {
        let mut out = match &self.prefix {
            Prefix::Drive(c) => format!("{}:\\", c),
            Prefix::Unc { server, share } => format!(r"\\{}\{}", server, share),
        };
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 || matches!(self.prefix, Prefix::Unc { .. }) {
                out.push('\\');
            }
            out.push_str(part);
        }
        out
    }

    /// The `\\?\` form, which Windows takes as is: for API calls, where it
    /// also lifts the 260-character limit.
    pub fn verbatim(&self) -> String {
        match &self.prefix {
            Prefix::Drive(_) => format!(r"\\?\{}", self.plain()),
            Prefix::Unc { .. } => format!(r"\\?\UNC\{}", &self.plain()[2..]),
        }
    }

    // Names that only a `\\?\` path can reach: printing them plainly
    // would name a different file (or a device) when read again.
    fn needs_verbatim(&self) -> bool {
        self.parts
            .iter()
            .any(|p| p.ends_with('.') || p.ends_with(' ') || is_reserved_device(p))
    }
}

impl fmt::Display for WinPath {
    /// The plain form (`C:\work\repo`, `C:\` for a drive root), or the
    /// `\\?\` form when a name needs it; either parses back to this path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.needs_verbatim() {
            f.write_str(&self.verbatim())
        } else {
            f.write_str(&self.plain())
        }
    }
}

impl PartialEq for WinPath {
    fn eq(&self, other: &WinPath) -> bool {
        self.key == other.key
    }
}

impl Eq for WinPath {}

impl Hash for WinPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for WinPath {
    fn partial_cmp(&self, other: &WinPath) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WinPath {
    fn cmp(&self, other: &WinPath) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Normalises a path to its display form (see [`WinPath`]).
pub fn normalize(path: &str) -> Result<String, PathError> {
    WinPath::parse(path).map(|p| p.to_string())
}

// ---------------------------------------------------------------------------
// Inputs and refusals

/// What a protected path is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    Dir,
    File,
    /// A symbolic link or junction: refused, because an ACE set through it
    /// lands on its target (a `.ssh` linked into a workspace, say).
    Link,
    /// Does not exist: created as an empty directory before the ACEs, so
    /// the command cannot create it. Pass only names that may exist as
    /// directories and whose parent exists.
    Absent,
}

/// A path to keep read-only inside a writable root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedPath {
    pub path: String,
    pub state: PathState,
}

impl ProtectedPath {
    pub fn new(path: &str, state: PathState) -> ProtectedPath {
        ProtectedPath {
            path: path.to_string(),
            state,
        }
    }
}

/// Everything the plan is computed from.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlanInput {
    /// Writable roots (the workspace and any others).
    pub roots: Vec<String>,
    /// Paths inside roots that stay read-only.
    pub protected: Vec<ProtectedPath>,
    /// Directories the audit found writable by Everyone.
    pub everyone_writable: Vec<String>,
    /// Where profiles live (`C:\Users`, from the ProfileList key).
    pub profiles_root: String,
    /// The person's profile directory.
    pub profile_dir: String,
    /// Principals that also get each root's allow ACE: the elevated tier's
    /// sandbox group. A write-restricted token must pass the ordinary
    /// access check as well as the restricted one, and in a workspace the
    /// person owns nothing else grants the sandbox accounts access.
    pub principals: Vec<Sid>,
}

/// Which input a path came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    WritableRoot,
    Protected,
    EveryoneWritable,
    ProfilesRoot,
    ProfileDir,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::WritableRoot => "writable root",
            Role::Protected => "protected path",
            Role::EveryoneWritable => "Everyone-writable directory",
            Role::ProfilesRoot => "profiles root",
            Role::ProfileDir => "profile directory",
        })
    }
}

/// Why moat will not put an ACE on a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    DriveRoot,
    AdminShare,
    ProfilesRoot,
    ProfileDir,
    RegistryHive,
    Ssh,
    /// An inheritable ACE here would reach this path.
    Holds(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DriveRoot => f.write_str(
                "is the root of a drive or share: an ACE there reaches every file on it",
            ),
            Refusal::AdminShare => f.write_str(
                "is on an administrative share (C$, ADMIN$), another name for a local drive; \
                 pass the local path",
            ),
            Refusal::ProfilesRoot => f.write_str(
                "holds every user's profile: an ACE there reaches their registry hives \
                 and SSH keys",
            ),
            Refusal::ProfileDir => f.write_str(
                "is a profile directory: an ACE there reaches NTUSER.DAT (Windows would sign \
                 the user in to a temporary profile) and .ssh (OpenSSH refuses such keys)",
            ),
            Refusal::RegistryHive => f.write_str(
                "is a registry hive (NTUSER.DAT, UsrClass.dat): a changed ACL can make Windows \
                 load a temporary profile",
            ),
            Refusal::Ssh => f.write_str(
                "is in a .ssh directory: OpenSSH refuses keys and configs whose ACL names \
                 other principals",
            ),
            Refusal::Holds(p) => write!(
                f,
                "contains {}, which an inheritable ACE here would reach",
                p
            ),
        }
    }
}

/// Why no plan could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    Path {
        role: Role,
        error: PathError,
    },
    Refused {
        role: Role,
        path: String,
        why: Refusal,
    },
    /// A protected path outside every writable root needs no protection
    /// from this tier, and an ACE outside the roots is not moat's to add.
    OutsideRoots {
        path: String,
    },
    /// A protected path that is itself a writable root.
    ProtectedRoot {
        path: String,
    },
    /// A protected path that is a link or junction.
    Link {
        path: String,
    },
    /// The random source kept giving SIDs already in use.
    NoFreshSid,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Path { role, error } => write!(f, "{}: {}", role, error),
            PlanError::Refused { role, path, why } => write!(
                f,
                "moat will not change the ACL of {} `{}`: it {}",
                role, path, why
            ),
            PlanError::OutsideRoots { path } => write!(
                f,
                "protected path `{}` is not inside any writable root",
                path
            ),
            PlanError::ProtectedRoot { path } => {
                write!(f, "`{}` is both a writable root and a protected path", path)
            }
            PlanError::Link { path } => write!(
                f,
                "protected path `{}` is a link or junction: an ACE on it would land on its \
                 target; remove the link or protect the target itself",
                path
            ),
            PlanError::NoFreshSid => f.write_str(
                "could not draw a capability SID that is not already in use (is the random \
                 source broken?)",
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// The places no ACE may reach, derived from the profile locations.
pub(crate) struct Guard {
    profiles_root: WinPath,
    profile_dir: WinPath,
    // Files and directories whose ACLs must stay as Windows and OpenSSH
    // expect: an inheritable ACE on any ancestor reaches them.
    sensitive: Vec<WinPath>,
}

impl Guard {
    pub(crate) fn new(profiles_root: &str, profile_dir: &str) -> Result<Guard, PlanError> {
        let profiles_root = WinPath::parse(profiles_root).map_err(|error| PlanError::Path {
            role: Role::ProfilesRoot,
            error,
        })?;
        let profile_dir = WinPath::parse(profile_dir).map_err(|error| PlanError::Path {
            role: Role::ProfileDir,
            error,
        })?;
        let usrclass = ["AppData", "Local", "Microsoft", "Windows", "UsrClass.dat"]
            .iter()
            .fold(profile_dir.clone(), |p, name| p.child(name));
        let sensitive = vec![
            profiles_root.clone(),
            profile_dir.child("NTUSER.DAT"),
            usrclass,
            profile_dir.child(".ssh"),
        ];
        Ok(Guard {
            profiles_root,
            profile_dir,
            sensitive,
        })
    }

    pub(crate) fn check(&self, path: &WinPath, inheritable: bool) -> Result<(), Refusal> {
        if path.is_root() {
            return Err(Refusal::DriveRoot);
        }
        if let Prefix::Unc { share, .. } = &path.prefix {
            let share = fold(share);
            let drive_share = share.len() == 2 && drive_letter(&share.replace('$', ":")).is_some();
            if drive_share || share == "ADMIN$" {
                return Err(Refusal::AdminShare);
            }
        }
        if *path == self.profiles_root {
            return Err(Refusal::ProfilesRoot);
        }
        if *path == self.profile_dir || path.parent().as_ref() == Some(&self.profiles_root) {
            return Err(Refusal::ProfileDir);
        }
        if path.key.iter().skip(1).any(|name| name == ".SSH") {
            return Err(Refusal::Ssh);
        }
        if let Some(name) = path.key.last() {
            if name.starts_with("NTUSER.DAT") || name.starts_with("USRCLASS.DAT") {
                return Err(Refusal::RegistryHive);
            }
        }
        if inheritable {
            for s in &self.sensitive {
                if s.starts_with(path) {
                    return Err(Refusal::Holds(s.to_string()));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The plan

/// One thing to do to the filesystem, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AclStep {
    /// Create this one directory (its parent exists or an earlier step
    /// creates it), as the person, before any ACE goes on it.
    CreateDir(WinPath),
    /// Add an allow ACE. Used once per writable root, inheritable.
    Allow {
        path: WinPath,
        sid: Sid,
        mask: u32,
        inherit: AceFlags,
    },
    /// Add a deny ACE for [`sddl::DENY_WRITE_MASK`]: `SUBTREE` on
    /// directories, `NONE` on files.
    DenyWrite {
        path: WinPath,
        sid: Sid,
        inherit: AceFlags,
    },
    /// Add a non-inheritable deny ACE for `DELETE` and/or
    /// `FILE_DELETE_CHILD` on a directory between a root and a protected
    /// path, so neither the protected path nor a directory above it can be
    /// renamed or deleted. Children keep their own DELETE (inherited from
    /// the root), so ordinary files there stay deletable; only a child
    /// whose own ACL does not grant DELETE (say, one moved in from
    /// elsewhere with its old ACL) can no longer be deleted through its
    /// parent.
    DenyRename { path: WinPath, sid: Sid, mask: u32 },
    /// Add a deny ACE for [`sddl::DENY_READ_MASK`] for the elevated tier's
    /// sandbox group on a secret inside a directory the group may read
    /// (see `read_grants`): `SUBTREE` on directories, `NONE` on files.
    DenyRead {
        path: WinPath,
        sid: Sid,
        inherit: AceFlags,
    },
}

impl AclStep {
    /// The ACE this step adds, if it adds one.
    pub fn ace(&self) -> Option<Ace> {
        match self {
            AclStep::CreateDir(_) => None,
            AclStep::Allow {
                sid, mask, inherit, ..
            } => Some(Ace::allow(*sid, *mask, *inherit)),
            AclStep::DenyWrite { sid, inherit, .. } => Some(Ace::deny_write(*sid, *inherit)),
            AclStep::DenyRename { sid, mask, .. } => Some(Ace::deny(*sid, *mask, AceFlags::NONE)),
            AclStep::DenyRead { sid, inherit, .. } => Some(Ace::deny_read(*sid, *inherit)),
        }
    }

    /// The path the step acts on.
    pub fn path(&self) -> &WinPath {
        match self {
            AclStep::CreateDir(path)
            | AclStep::Allow { path, .. }
            | AclStep::DenyWrite { path, .. }
            | AclStep::DenyRename { path, .. }
            | AclStep::DenyRead { path, .. } => path,
        }
    }

    /// The SID of the ACE, if the step adds one.
    pub fn sid(&self) -> Option<Sid> {
        self.ace().map(|a| a.sid)
    }
}

impl fmt::Display for AclStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ace() {
            None => write!(f, "create directory {}", self.path()),
            Some(ace) => write!(f, "add {} to {}", ace, self.path()),
        }
    }
}

/// The ordered steps for a set of roots, and the SIDs the token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclPlan {
    /// Created directories first, then every deny, then the allows: if
    /// applying stops half-way, nothing is writable that should not be.
    pub steps: Vec<AclStep>,
    /// Each writable root with its capability SID, in input order.
    pub roots: Vec<(WinPath, Sid)>,
    /// With no writable root, the SID the token carries so the
    /// Everyone-writable denies still apply (see
    /// [`SidBook::read_only_sid`]).
    pub read_only_sid: Option<Sid>,
    /// Things the person may want to know (inputs left alone, and why).
    pub notes: Vec<String>,
}

impl AclPlan {
    /// The capability SIDs to put in the token's restricting list (besides
    /// the logon SID and Everyone).
    pub fn token_sids(&self) -> Vec<Sid> {
        let mut sids: Vec<Sid> = self.roots.iter().map(|(_, s)| *s).collect();
        sids.extend(self.read_only_sid);
        sids
    }

    /// The steps not yet recorded in `ledger`, in order: what this run
    /// still has to apply.
    pub fn pending(&self, ledger: &Ledger) -> Vec<AclStep> {
        self.steps
            .iter()
            .filter(|s| !ledger.is_recorded(s))
            .cloned()
            .collect()
    }
}

fn parse_role(role: Role, text: &str) -> Result<WinPath, PlanError> {
    WinPath::parse(text).map_err(|error| PlanError::Path { role, error })
}

fn guard_check(
    guard: &Guard,
    role: Role,
    path: &WinPath,
    inheritable: bool,
) -> Result<(), PlanError> {
    guard
        .check(path, inheritable)
        .map_err(|why| PlanError::Refused {
            role,
            path: path.to_string(),
            why,
        })
}

/// Computes the plan, drawing capability SIDs for new roots from `random`
/// (recorded in `book`; roots already there keep theirs).
///
/// Every input is checked before `book` changes, so a refused input leaves
/// it as it was.
pub fn plan(
    input: &PlanInput,
    book: &mut SidBook,
    random: &mut dyn FnMut() -> u32,
) -> Result<AclPlan, PlanError> {
    let guard = Guard::new(&input.profiles_root, &input.profile_dir)?;
    let mut notes = Vec::new();

    let mut roots: Vec<WinPath> = Vec::new();
    for text in &input.roots {
        let root = parse_role(Role::WritableRoot, text)?;
        guard_check(&guard, Role::WritableRoot, &root, true)?;
        if !roots.contains(&root) {
            roots.push(root);
        }
    }

    let mut protected: Vec<(WinPath, PathState)> = Vec::new();
    for item in &input.protected {
        let path = parse_role(Role::Protected, &item.path)?;
        if item.state == PathState::Link {
            return Err(PlanError::Link {
                path: path.to_string(),
            });
        }
        let inheritable = item.state != PathState::File;
        guard_check(&guard, Role::Protected, &path, inheritable)?;
        if roots.contains(&path) {
            return Err(PlanError::ProtectedRoot {
                path: path.to_string(),
            });
        }
        if !roots.iter().any(|r| path.is_inside(r)) {
            return Err(PlanError::OutsideRoots {
                path: path.to_string(),
            });
        }
        if !protected.iter().any(|(p, _)| *p == path) {
            protected.push((path, item.state));
        }
    }

    let mut everyone: Vec<WinPath> = Vec::new();
    for text in &input.everyone_writable {
        let dir = parse_role(Role::EveryoneWritable, text)?;
        if let Some(root) = roots.iter().find(|r| dir.starts_with(r)) {
            notes.push(format!(
                "{} is writable by Everyone but lies in writable root {}; left as it is",
                dir, root
            ));
            continue;
        }
        guard_check(&guard, Role::EveryoneWritable, &dir, true)?;
        if !everyone.contains(&dir) {
            everyone.push(dir);
        }
    }

    // Only now may the book change.
    let mut root_sids = Vec::with_capacity(roots.len());
    for root in &roots {
        let sid = book.sid_for(root, random)?;
        root_sids.push((root.clone(), sid));
    }
    let read_only_sid = if roots.is_empty() && !everyone.is_empty() {
        Some(book.read_only_sid(random)?)
    } else {
        None
    };
    let sids_holding = |path: &WinPath| -> Vec<(WinPath, Sid)> {
        root_sids
            .iter()
            .filter(|(r, _)| path.is_inside(r))
            .cloned()
            .collect()
    };

    let mut steps = Vec::new();

    let mut absent: Vec<&WinPath> = protected
        .iter()
        .filter(|(_, s)| *s == PathState::Absent)
        .map(|(p, _)| p)
        .collect();
    // Parents before children, so each creation has its parent.
    absent.sort_by(|a, b| a.parts.len().cmp(&b.parts.len()).then_with(|| a.cmp(b)));
    for path in absent {
        steps.push(AclStep::CreateDir(path.clone()));
    }

    let all_sids: Vec<Sid> = root_sids
        .iter()
        .map(|(_, s)| *s)
        .chain(read_only_sid)
        .collect();
    for dir in &everyone {
        for sid in &all_sids {
            steps.push(AclStep::DenyWrite {
                path: dir.clone(),
                sid: *sid,
                inherit: AceFlags::SUBTREE,
            });
        }
    }

    let mut denied_write: Vec<(WinPath, Sid)> = Vec::new();
    let mut rename: BTreeMap<(WinPath, Sid), u32> = BTreeMap::new();
    for (path, state) in &protected {
        let inherit = if *state == PathState::File {
            AceFlags::NONE
        } else {
            AceFlags::SUBTREE
        };
        for (root, sid) in sids_holding(path) {
            steps.push(AclStep::DenyWrite {
                path: path.clone(),
                sid,
                inherit,
            });
            denied_write.push((path.clone(), sid));
            // Walk up from the protected path to the root: each name on
            // the way must keep its place.
            let mut at = path.clone();
            while let Some(parent) = at.parent() {
                if at != *path {
                    *rename.entry((at.clone(), sid)).or_insert(0) |= DELETE;
                }
                *rename.entry((parent.clone(), sid)).or_insert(0) |= FILE_DELETE_CHILD;
                if parent == root {
                    break;
                }
                at = parent;
            }
        }
    }
    for ((path, sid), mask) in rename {
        // A deny-write on the same directory already denies both rights.
        if denied_write.iter().any(|(p, s)| *p == path && *s == sid) {
            continue;
        }
        steps.push(AclStep::DenyRename { path, sid, mask });
    }

    for (root, sid) in &root_sids {
        for principal in &input.principals {
            steps.push(AclStep::Allow {
                path: root.clone(),
                sid: *principal,
                mask: sddl::WRITABLE_ROOT_MASK,
                inherit: AceFlags::SUBTREE,
            });
        }
        steps.push(AclStep::Allow {
            path: root.clone(),
            sid: *sid,
            mask: sddl::WRITABLE_ROOT_MASK,
            inherit: AceFlags::SUBTREE,
        });
    }

    Ok(AclPlan {
        steps,
        roots: root_sids,
        read_only_sid,
        notes,
    })
}

// ---------------------------------------------------------------------------
// Text files

/// Why a saved book or ledger could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for TextError {}

// Fields are tab-separated, one record a line; `%` escapes keep tabs,
// newlines and other control characters out of a field while leaving the
// many backslashes of Windows paths readable.
fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == '%' || (c as u32) < 0x20 || c == '\u{7f}' {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(field: &str) -> Result<String, String> {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let hi = chars.next().and_then(|h| h.to_digit(16));
        let lo = chars.next().and_then(|l| l.to_digit(16));
        match (hi, lo) {
            (Some(h), Some(l)) => out.push(char::from((h * 16 + l) as u8)),
            _ => return Err(format!("bad escape in `{}`", field)),
        }
    }
    Ok(out)
}

fn text_err(line: usize, reason: String) -> TextError {
    TextError { line, reason }
}

fn field_path(line: usize, field: &str) -> Result<WinPath, TextError> {
    let text = unescape(field).map_err(|r| text_err(line, r))?;
    WinPath::parse(&text).map_err(|e| text_err(line, e.to_string()))
}

fn field_sid(line: usize, field: &str) -> Result<Sid, TextError> {
    field
        .parse::<Sid>()
        .map_err(|e| text_err(line, e.to_string()))
}

fn field_mask(line: usize, field: &str) -> Result<u32, TextError> {
    let hex = field
        .strip_prefix("0x")
        .ok_or_else(|| text_err(line, format!("mask `{}` is not 0x-prefixed hex", field)))?;
    if hex.is_empty() || hex.len() > 8 {
        return Err(text_err(
            line,
            format!("mask `{}` is not a 32-bit value", field),
        ));
    }
    u32::from_str_radix(hex, 16).map_err(|_| text_err(line, format!("mask `{}` is not hex", field)))
}

fn field_flags(line: usize, field: &str) -> Result<AceFlags, TextError> {
    field
        .parse::<AceFlags>()
        .map_err(|e| text_err(line, e.to_string()))
}

/// The records of a text file after its header line.
fn records<'a>(
    text: &'a str,
    header: &str,
) -> Result<impl Iterator<Item = (usize, Vec<&'a str>)>, TextError> {
    let mut lines = text.lines();
    match lines.next() {
        Some(first) if first == header => {}
        _ => return Err(text_err(1, format!("the first line is not `{}`", header))),
    }
    Ok(lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| (i + 2, l.split('\t').collect())))
}

// ---------------------------------------------------------------------------
// SID book

const BOOK_HEADER: &str = "moat-sid-book 1";
const READ_ONLY_KEY: &str = "read-only";

// Draws per SID before giving up: a sound source collides with
// probability 2^-128 per draw; a broken one must not loop forever.
const DRAWS: usize = 16;

/// Which capability SID stands for which writable root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidBook {
    roots: Vec<(WinPath, Sid)>,
    read_only: Option<Sid>,
}

impl SidBook {
    pub fn new() -> SidBook {
        SidBook::default()
    }

    fn in_use(&self, sid: &Sid) -> bool {
        self.read_only.as_ref() == Some(sid) || self.roots.iter().any(|(_, s)| s == sid)
    }

    fn fresh(&self, random: &mut dyn FnMut() -> u32) -> Result<Sid, PlanError> {
        for _ in 0..DRAWS {
            let sid = capability_sid([random(), random(), random(), random()]);
            if !self.in_use(&sid) {
                return Ok(sid);
            }
        }
        Err(PlanError::NoFreshSid)
    }

    /// The root's SID: the recorded one, or a new one drawn from `random`
    /// and recorded.
    pub fn sid_for(
        &mut self,
        root: &WinPath,
        random: &mut dyn FnMut() -> u32,
    ) -> Result<Sid, PlanError> {
        if let Some(sid) = self.get(root) {
            return Ok(sid);
        }
        let sid = self.fresh(random)?;
        self.roots.push((root.clone(), sid));
        Ok(sid)
    }

    /// The SID a token carries when no root is writable, so deny ACEs on
    /// Everyone-writable directories still have a SID to match (Everyone
    /// itself is a restricting SID and cannot be denied without denying
    /// the person too).
    pub fn read_only_sid(&mut self, random: &mut dyn FnMut() -> u32) -> Result<Sid, PlanError> {
        if let Some(sid) = self.read_only {
            return Ok(sid);
        }
        let sid = self.fresh(random)?;
        self.read_only = Some(sid);
        Ok(sid)
    }

    /// The recorded SID of a root.
    pub fn get(&self, root: &WinPath) -> Option<Sid> {
        self.roots.iter().find(|(r, _)| r == root).map(|(_, s)| *s)
    }

    /// Drops a root and returns its SID, whose ACEs the caller then removes
    /// ([`Ledger::removal_plan_for`]).
    pub fn forget(&mut self, root: &WinPath) -> Option<Sid> {
        let at = self.roots.iter().position(|(r, _)| r == root)?;
        Some(self.roots.remove(at).1)
    }

    /// Drops the read-only SID and returns it.
    pub fn forget_read_only(&mut self) -> Option<Sid> {
        self.read_only.take()
    }

    /// The roots and their SIDs, oldest first.
    pub fn roots(&self) -> &[(WinPath, Sid)] {
        &self.roots
    }

    /// Every SID in the book.
    pub fn sids(&self) -> Vec<Sid> {
        let mut sids: Vec<Sid> = self.roots.iter().map(|(_, s)| *s).collect();
        sids.extend(self.read_only);
        sids
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.read_only.is_none()
    }

    /// One line per root: `<sid>\t<path>`; the read-only SID as
    /// `<sid>\tread-only`.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", BOOK_HEADER);
        for (root, sid) in &self.roots {
            out.push_str(&format!("{}\t{}\n", sid, escape(&root.to_string())));
        }
        if let Some(sid) = self.read_only {
            out.push_str(&format!("{}\t{}\n", sid, READ_ONLY_KEY));
        }
        out
    }

    /// Reads [`SidBook::to_text`]'s output; refuses a root or SID listed
    /// twice, since either would make two roots share write access.
    pub fn from_text(text: &str) -> Result<SidBook, TextError> {
        let mut book = SidBook::new();
        for (line, fields) in records(text, BOOK_HEADER)? {
            if fields.len() != 2 {
                return Err(text_err(line, format!("{} fields, not 2", fields.len())));
            }
            let sid = field_sid(line, fields[0])?;
            if book.in_use(&sid) {
                return Err(text_err(line, format!("SID {} listed twice", sid)));
            }
            if fields[1] == READ_ONLY_KEY {
                if book.read_only.is_some() {
                    return Err(text_err(line, "two read-only SIDs".to_string()));
                }
                book.read_only = Some(sid);
                continue;
            }
            let root = field_path(line, fields[1])?;
            if book.get(&root).is_some() {
                return Err(text_err(line, format!("root {} listed twice", root)));
            }
            book.roots.push((root, sid));
        }
        Ok(book)
    }
}

// ---------------------------------------------------------------------------
// Ledger

const LEDGER_HEADER: &str = "moat-acl-ledger 1";

/// What an ACE moat added was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Allow { mask: u32, inherit: AceFlags },
    DenyWrite { inherit: AceFlags },
    DenyRename { mask: u32 },
    DenyRead { inherit: AceFlags },
}

/// One ACE moat added.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LedgerEntry {
    pub path: WinPath,
    pub sid: Sid,
    pub kind: EntryKind,
}

impl LedgerEntry {
    fn from_step(step: &AclStep) -> Option<LedgerEntry> {
        let (path, sid, kind) = match step {
            AclStep::CreateDir(_) => return None,
            AclStep::Allow {
                path,
                sid,
                mask,
                inherit,
            } => (
                path,
                sid,
                EntryKind::Allow {
                    mask: *mask,
                    inherit: *inherit,
                },
            ),
            AclStep::DenyWrite { path, sid, inherit } => {
                (path, sid, EntryKind::DenyWrite { inherit: *inherit })
            }
            AclStep::DenyRename { path, sid, mask } => {
                (path, sid, EntryKind::DenyRename { mask: *mask })
            }
            AclStep::DenyRead { path, sid, inherit } => {
                (path, sid, EntryKind::DenyRead { inherit: *inherit })
            }
        };
        Some(LedgerEntry {
            path: path.clone(),
            sid: *sid,
            kind,
        })
    }
}

/// One thing to undo.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RemovalStep {
    /// Remove every ACE for `sid` set on `path` itself (not inherited
    /// ones: those go when Windows re-propagates the parent's ACL).
    RemoveAces { path: WinPath, sid: Sid },
    /// Remove a directory moat created, if it is still empty.
    RemoveDirIfEmpty(WinPath),
}

/// What moat has applied, kept on disk so it is applied once and can be
/// taken off completely.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<LedgerEntry>,
    created: Vec<WinPath>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records a step after it was applied.
    pub fn record(&mut self, step: &AclStep) {
        match LedgerEntry::from_step(step) {
            Some(entry) => {
                if !self.entries.contains(&entry) {
                    self.entries.push(entry);
                }
            }
            None => {
                let path = step.path();
                if !self.created.contains(path) {
                    self.created.push(path.clone());
                }
            }
        }
    }

    /// Whether a step was applied already.
    pub fn is_recorded(&self, step: &AclStep) -> bool {
        match LedgerEntry::from_step(step) {
            Some(entry) => self.entries.contains(&entry),
            None => self.created.contains(step.path()),
        }
    }

    /// Records a removal after it was carried out.
    pub fn record_removed(&mut self, step: &RemovalStep) {
        match step {
            RemovalStep::RemoveAces { path, sid } => {
                self.entries.retain(|e| !(e.path == *path && e.sid == *sid))
            }
            RemovalStep::RemoveDirIfEmpty(path) => self.created.retain(|p| p != path),
        }
    }

    fn removal(&self, only: Option<&Sid>) -> Vec<RemovalStep> {
        let mut steps = Vec::new();
        // Newest first: the allows, applied last, go first, so a removal
        // that stops half-way leaves protections without write access.
        for entry in self.entries.iter().rev() {
            if only.map_or(false, |sid| entry.sid != *sid) {
                continue;
            }
            let step = RemovalStep::RemoveAces {
                path: entry.path.clone(),
                sid: entry.sid,
            };
            if !steps.contains(&step) {
                steps.push(step);
            }
        }
        let mut dirs: Vec<&WinPath> = self
            .created
            .iter()
            .filter(|dir| {
                // A directory another SID still protects stays.
                !self
                    .entries
                    .iter()
                    .any(|e| e.path == **dir && only.map_or(false, |sid| e.sid != *sid))
            })
            .collect();
        // Children before parents, so a parent can be empty when its turn
        // comes.
        dirs.sort_by(|a, b| b.parts.len().cmp(&a.parts.len()).then_with(|| a.cmp(b)));
        steps.extend(dirs.into_iter().cloned().map(RemovalStep::RemoveDirIfEmpty));
        steps
    }

    /// Everything moat added, by path and SID, and the directories it
    /// created: the uninstall.
    pub fn removal_plan(&self) -> Vec<RemovalStep> {
        self.removal(None)
    }

    /// What belongs to one SID (a root that [`SidBook::forget`] dropped),
    /// plus created directories no other SID still protects.
    pub fn removal_plan_for(&self, sid: &Sid) -> Vec<RemovalStep> {
        self.removal(Some(sid))
    }

    /// SIDs with ACEs on disk that the book no longer knows: left by an
    /// interrupted removal or a lost book, to remove rather than leave as
    /// "Account Unknown" entries.
    pub fn orphan_sids(&self, book: &SidBook) -> Vec<Sid> {
        let known = book.sids();
        let mut out: Vec<Sid> = Vec::new();
        for entry in &self.entries {
            if !known.contains(&entry.sid) && !out.contains(&entry.sid) {
                out.push(entry.sid);
            }
        }
        out
    }

    /// The ACEs recorded, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// The directories moat created.
    pub fn created_dirs(&self) -> &[WinPath] {
        &self.created
    }

    /// Every SID with an ACE recorded.
    pub fn sids(&self) -> Vec<Sid> {
        let mut out: Vec<Sid> = Vec::new();
        for entry in &self.entries {
            if !out.contains(&entry.sid) {
                out.push(entry.sid);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.created.is_empty()
    }

    /// One line per ACE or created directory:
    /// `allow\t<sid>\t<mask>\t<flags>\t<path>`,
    /// `deny-write\t<sid>\t<flags>\t<path>`,
    /// `deny-rename\t<sid>\t<mask>\t<path>`, `deny-read\t<sid>\t<flags>\t<path>`,
    /// `created-dir\t<path>`.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", LEDGER_HEADER);
        for dir in &self.created {
            out.push_str(&format!("created-dir\t{}\n", escape(&dir.to_string())));
        }
        for e in &self.entries {
            let path = escape(&e.path.to_string());
            let line = match e.kind {
                EntryKind::Allow { mask, inherit } => {
                    format!("allow\t{}\t0x{:x}\t{}\t{}", e.sid, mask, inherit, path)
                }
                EntryKind::DenyWrite { inherit } => {
                    format!("deny-write\t{}\t{}\t{}", e.sid, inherit, path)
                }
                EntryKind::DenyRename { mask } => {
                    format!("deny-rename\t{}\t0x{:x}\t{}", e.sid, mask, path)
                }
                EntryKind::DenyRead { inherit } => {
                    format!("deny-read\t{}\t{}\t{}", e.sid, inherit, path)
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Reads [`Ledger::to_text`]'s output.
    pub fn from_text(text: &str) -> Result<Ledger, TextError> {
        let mut ledger = Ledger::new();
        for (line, f) in records(text, LEDGER_HEADER)? {
            let want = match f[0] {
                "created-dir" => 2,
                "allow" => 5,
                "deny-write" | "deny-rename" | "deny-read" => 4,
                other => return Err(text_err(line, format!("unknown record `{}`", other))),
            };
            if f.len() != want {
                return Err(text_err(
                    line,
                    format!("`{}` has {} fields, not {}", f[0], f.len(), want),
                ));
            }
            let step = match f[0] {
                "created-dir" => AclStep::CreateDir(field_path(line, f[1])?),
                "allow" => AclStep::Allow {
                    sid: field_sid(line, f[1])?,
                    mask: field_mask(line, f[2])?,
                    inherit: field_flags(line, f[3])?,
                    path: field_path(line, f[4])?,
                },
                "deny-write" => AclStep::DenyWrite {
                    sid: field_sid(line, f[1])?,
                    inherit: field_flags(line, f[2])?,
                    path: field_path(line, f[3])?,
                },
                "deny-read" => AclStep::DenyRead {
                    sid: field_sid(line, f[1])?,
                    inherit: field_flags(line, f[2])?,
                    path: field_path(line, f[3])?,
                },
                _ => AclStep::DenyRename {
                    sid: field_sid(line, f[1])?,
                    mask: field_mask(line, f[2])?,
                    path: field_path(line, f[3])?,
                },
            };
            ledger.record(&step);
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::sddl::{AceKind, DENY_WRITE_MASK, WRITABLE_ROOT_MASK};

    fn p(text: &str) -> WinPath {
        WinPath::parse(text).unwrap()
    }

    /// A counter, so every drawn SID is distinct and predictable.
    fn counter() -> impl FnMut() -> u32 {
        let mut n = 0u32;
        move || {
            n += 1;
            n
        }
    }

    fn input(roots: &[&str]) -> PlanInput {
        PlanInput {
            roots: roots.iter().map(|s| s.to_string()).collect(),
            protected: Vec::new(),
            everyone_writable: Vec::new(),
            profiles_root: r"C:\Users".into(),
            profile_dir: r"C:\Users\alice".into(),
            principals: Vec::new(),
        }
    }

    #[test]
    fn principals_get_each_roots_allow_ace_before_its_capability_sid() {
        let group: Sid = "S-1-5-21-1-2-3-1003".parse().unwrap();
        let mut with = input(&[r"C:\a", r"C:\b"]);
        with.principals = vec![group];
        let mut book = SidBook::new();
        let plan = plan(&with, &mut book, &mut counter()).unwrap();
        let allows: Vec<(String, Sid)> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                AclStep::Allow { path, sid, .. } => Some((path.to_string(), *sid)),
                _ => None,
            })
            .collect();
        let a = book.get(&WinPath::parse(r"C:\a").unwrap()).unwrap();
        let b = book.get(&WinPath::parse(r"C:\b").unwrap()).unwrap();
        assert_eq!(
            allows,
            vec![
                (r"C:\a".to_string(), group),
                (r"C:\a".to_string(), a),
                (r"C:\b".to_string(), group),
                (r"C:\b".to_string(), b),
            ]
        );
        // The token's SIDs are still the capability SIDs alone.
        assert!(!plan.token_sids().contains(&group));
    }

    fn refusal(result: Result<AclPlan, PlanError>) -> Refusal {
        match result {
            Err(PlanError::Refused { why, .. }) => why,
            other => panic!("expected a refusal, got {:?}", other),
        }
    }

    // ---- paths

    #[test]
    fn normalises_separators_case_and_trailing_names() {
        let cases = [
            (r"C:\work\repo", r"C:\work\repo"),
            ("c:/work/repo", r"C:\work\repo"),
            (r"C:\\work\\\repo\\", r"C:\work\repo"),
            (r"C:\work\.\repo\.", r"C:\work\repo"),
            (r"C:\", r"C:\"),
            ("C:/", r"C:\"),
            (r"C:\\", r"C:\"),
            (r"C:\work\repo. . ", r"C:\work\repo"),
            (r"\\?\C:\work\repo", r"C:\work\repo"),
            (r"\\?\c:\", r"C:\"),
            (r"\\server\share\dir\", r"\\server\share\dir"),
            (r"\\server\share", r"\\server\share"),
            (r"\\server\share\", r"\\server\share"),
            ("//server/share/dir", r"\\server\share\dir"),
            (r"\\?\UNC\server\share\dir", r"\\server\share\dir"),
            (r"\\?\unc\server\share", r"\\server\share"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), want, "{}", input);
            // The display form parses back to the same path.
            assert_eq!(p(want), p(input), "{}", input);
        }
    }

    #[test]
    fn comparison_ignores_case_and_prefix_form() {
        assert_eq!(p(r"C:\Work\Repo"), p(r"c:\work\REPO"));
        assert_eq!(p(r"\\?\C:\Work"), p(r"c:/work/"));
        assert_eq!(p(r"\\SRV\Share\x"), p(r"\\?\UNC\srv\share\X"));
        assert_ne!(p(r"C:\work"), p(r"D:\work"));
        assert_ne!(p(r"\\a\b\c"), p(r"\\a\bc"));
        assert_eq!(p("C:\\Ä\\é"), p("c:\\ä\\É"));
        assert!(p(r"C:\Work\Repo\.git").starts_with(&p(r"c:\work")));
        assert!(p(r"C:\Work\Repo\.git").is_inside(&p(r"c:\work\repo")));
        assert!(!p(r"C:\Work\Repo").is_inside(&p(r"c:\work\repo")));
        assert!(!p(r"C:\Work\Repo2").starts_with(&p(r"c:\work\repo")));
        assert!(p(r"C:\x").starts_with(&p(r"C:\")));
        assert!(!p(r"\\s\h\x").starts_with(&p(r"C:\")));
    }

    #[test]
    fn verbatim_names_are_kept_and_printed_verbatim() {
        // Only a \\?\ path reaches a name with a trailing dot; printing it
        // plainly would name another file.
        let dotted = p(r"\\?\C:\work\repo.");
        assert_ne!(dotted, p(r"C:\work\repo"));
        assert_eq!(dotted.to_string(), r"\\?\C:\work\repo.");
        assert_eq!(p(&dotted.to_string()), dotted);
        let device = p(r"\\?\C:\work\nul");
        assert_eq!(device.to_string(), r"\\?\C:\work\nul");
        assert_eq!(p(r"C:\a\b").verbatim(), r"\\?\C:\a\b");
        assert_eq!(p(r"C:\").verbatim(), r"\\?\C:\");
        assert_eq!(p(r"\\s\h\a").verbatim(), r"\\?\UNC\s\h\a");
    }

    #[test]
    fn relative_and_odd_paths_are_refused() {
        let relative = [
            "repo",
            r"repo\x",
            r"C:repo",
            "C:",
            r"\work\repo",
            ".",
            r"..\x",
        ];
        for text in relative {
            match WinPath::parse(text) {
                Err(PathError::Relative(_)) | Err(PathError::DotDot(_)) => {}
                other => panic!("{:?} gave {:?}", text, other),
            }
        }
        assert_eq!(WinPath::parse(""), Err(PathError::Empty));
        for text in [
            r"\\.\C:\x",
            r"\\.\pipe\x",
            r"\??\C:\x",
            r"\\?\Volume{01234567-89ab-cdef-0123-456789abcdef}\x",
            r"\\?\GLOBALROOT\Device\HarddiskVolume1",
            r"\\?\C:",
            "//?/C:/x",
            r"\\server",
            r"\\server\",
            r"\\",
        ] {
            match WinPath::parse(text) {
                Err(PathError::Unsupported(_)) => {}
                other => panic!("{:?} gave {:?}", text, other),
            }
        }
        for text in [r"C:\work\..\x", r"\\?\C:\work\..", r"\\s\h\..\x"] {
            assert!(
                matches!(WinPath::parse(text), Err(PathError::DotDot(_))),
                "{}",
                text
            );
        }
        for text in [
            r"C:\work\file.txt:stream",
            r"C:\work\a*b",
            r"C:\work\a?b",
            "C:\\work\\a\tb",
            r"C:\work\...",
            r"C:\work\ . ",
            r"C:\work\NUL",
            r"C:\work\com1.txt",
            r"C:\work\Con .log",
            r"\\?\C:\work\.",
        ] {
            match WinPath::parse(text) {
                Err(e @ PathError::BadName { .. }) => assert!(e.to_string().contains("the name")),
                other => panic!("{:?} gave {:?}", text, other),
            }
        }
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of some awkward strings, through every parser here.
        let samples = [
            "\\\\?\\UNC\\é\\ß\\x",
            "\\\\?\\é:\\x",
            "é:\\x\\ü. ",
            "C:\\€\\..\\x",
            "\\\\ü\\€\\%zz",
            "moat-acl-ledger 1\nallow\tS-1-5-21-1-2-3-4\t0x1\tOI\tC:\\é%0\n",
            "moat-sid-book 1\nS-1-5-21-1-2-3-4\t\\\\?\\UNC\\s\n",
        ];
        for sample in samples {
            for (end, _) in sample.char_indices() {
                let part = &sample[..end];
                let _ = WinPath::parse(part);
                let _ = Ledger::from_text(part);
                let _ = SidBook::from_text(part);
                let _ = unescape(part);
            }
        }
    }

    #[test]
    fn parent_and_names() {
        let path = p(r"C:\a\b\c");
        assert_eq!(path.file_name(), Some("c"));
        assert_eq!(path.parent().unwrap(), p(r"C:\a\b"));
        assert_eq!(p(r"C:\a").parent().unwrap(), p(r"C:\"));
        assert!(p(r"C:\").parent().is_none());
        assert!(p(r"C:\").is_root());
        assert!(p(r"\\s\h").is_root());
        assert_eq!(p(r"\\s\h\x").parent().unwrap().to_string(), r"\\s\h");
        assert_eq!(path.components(), &["a", "b", "c"]);
    }

    // ---- plans

    #[test]
    fn one_allow_per_root_and_denies_before_it() {
        let mut book = SidBook::new();
        let mut input = input(&[r"C:\Users\alice\src\app"]);
        input.protected = vec![
            ProtectedPath::new(r"C:\Users\alice\src\app\.git\hooks", PathState::Dir),
            ProtectedPath::new(r"C:\Users\alice\src\app\.git\config", PathState::File),
            ProtectedPath::new(r"C:\Users\alice\src\app\.moat", PathState::Absent),
        ];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        let sid = capability_sid([1, 2, 3, 4]);
        let root = p(r"C:\Users\alice\src\app");
        assert_eq!(plan.roots, vec![(root.clone(), sid)]);
        assert_eq!(plan.token_sids(), vec![sid]);
        let git = p(r"C:\Users\alice\src\app\.git");
        let want = vec![
            AclStep::CreateDir(p(r"C:\Users\alice\src\app\.moat")),
            AclStep::DenyWrite {
                path: p(r"C:\Users\alice\src\app\.git\hooks"),
                sid,
                inherit: AceFlags::SUBTREE,
            },
            AclStep::DenyWrite {
                path: p(r"C:\Users\alice\src\app\.git\config"),
                sid,
                inherit: AceFlags::NONE,
            },
            AclStep::DenyWrite {
                path: p(r"C:\Users\alice\src\app\.moat"),
                sid,
                inherit: AceFlags::SUBTREE,
            },
            AclStep::DenyRename {
                path: root.clone(),
                sid,
                mask: FILE_DELETE_CHILD,
            },
            AclStep::DenyRename {
                path: git,
                sid,
                mask: DELETE | FILE_DELETE_CHILD,
            },
            AclStep::Allow {
                path: root,
                sid,
                mask: WRITABLE_ROOT_MASK,
                inherit: AceFlags::SUBTREE,
            },
        ];
        assert_eq!(plan.steps, want);
        // Exactly one allow, on the root, inheritable.
        let allows: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, AclStep::Allow { .. }))
            .collect();
        assert_eq!(allows.len(), 1);
        assert_eq!(
            plan.steps[1].ace().unwrap(),
            Ace::deny(sid, DENY_WRITE_MASK, AceFlags::SUBTREE)
        );
        assert_eq!(plan.steps[6].ace().unwrap().kind, AceKind::Allow);
        assert!(plan.steps[0].ace().is_none());
        assert!(plan.steps[0].to_string().starts_with("create directory"));
    }

    #[test]
    fn the_plan_never_grows_with_the_tree() {
        // The same roots and protections give the same steps however many
        // files lie below: nothing here looks at the tree.
        let mut book = SidBook::new();
        let mut input = input(&[r"D:\big"]);
        input.protected = vec![ProtectedPath::new(r"D:\big\.git\hooks", PathState::Dir)];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        assert_eq!(plan.steps.len(), 4);
    }

    #[test]
    fn sids_are_reused_per_root() {
        let mut book = SidBook::new();
        let mut random = counter();
        let first = plan(&input(&[r"C:\a", r"C:\b"]), &mut book, &mut random).unwrap();
        let again = plan(&input(&[r"c:\B", r"C:\a\"]), &mut book, &mut random).unwrap();
        assert_eq!(book.roots().len(), 2);
        assert_eq!(first.roots[0].1, again.roots[1].1);
        assert_eq!(first.roots[1].1, again.roots[0].1);
        assert_ne!(first.roots[0].1, first.roots[1].1);
        // A duplicate root in the input is one root.
        let dup = plan(&input(&[r"C:\a", r"c:/A"]), &mut book, &mut random).unwrap();
        assert_eq!(dup.roots.len(), 1);
    }

    #[test]
    fn nested_roots_deny_for_every_sid_that_reaches() {
        let mut book = SidBook::new();
        let mut input = input(&[r"C:\ws", r"C:\ws\sub"]);
        input.protected = vec![ProtectedPath::new(r"C:\ws\sub\.vscode", PathState::Dir)];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        let outer = plan.roots[0].1;
        let inner = plan.roots[1].1;
        let denies: Vec<Sid> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                AclStep::DenyWrite { sid, .. } => Some(*sid),
                _ => None,
            })
            .collect();
        assert_eq!(denies, vec![outer, inner]);
        // The outer SID also may not rename the inner root away.
        assert!(plan.steps.contains(&AclStep::DenyRename {
            path: p(r"C:\ws\sub"),
            sid: outer,
            mask: DELETE | FILE_DELETE_CHILD,
        }));
        assert!(plan.steps.contains(&AclStep::DenyRename {
            path: p(r"C:\ws\sub"),
            sid: inner,
            mask: FILE_DELETE_CHILD,
        }));
    }

    #[test]
    fn deny_rename_skips_what_deny_write_covers() {
        let mut book = SidBook::new();
        let mut input = input(&[r"C:\ws"]);
        input.protected = vec![
            ProtectedPath::new(r"C:\ws\.git", PathState::Dir),
            ProtectedPath::new(r"C:\ws\.git\hooks", PathState::Dir),
        ];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        let renames: Vec<&WinPath> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, AclStep::DenyRename { .. }))
            .map(|s| s.path())
            .collect();
        assert_eq!(renames, vec![&p(r"C:\ws")]);
    }

    #[test]
    fn absent_directories_are_created_parents_first() {
        let mut book = SidBook::new();
        let mut input = input(&[r"C:\ws"]);
        input.protected = vec![
            ProtectedPath::new(r"C:\ws\.agents\x", PathState::Absent),
            ProtectedPath::new(r"C:\ws\.agents", PathState::Absent),
            ProtectedPath::new(r"C:\ws\.codex", PathState::Absent),
        ];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        let created: Vec<String> = plan
            .steps
            .iter()
            .take_while(|s| matches!(s, AclStep::CreateDir(_)))
            .map(|s| s.path().to_string())
            .collect();
        assert_eq!(
            created,
            vec![r"C:\ws\.agents", r"C:\ws\.codex", r"C:\ws\.agents\x"]
        );
    }

    #[test]
    fn everyone_writable_directories_are_denied_outside_roots() {
        let mut book = SidBook::new();
        let mut input = input(&[r"C:\ws", r"D:\other"]);
        input.everyone_writable = vec![
            r"C:\tools\bin".into(),
            r"C:\ws\tmp".into(),
            r"c:\TOOLS\bin\".into(),
        ];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        let denied: Vec<(String, Sid)> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                AclStep::DenyWrite { path, sid, inherit } => {
                    assert_eq!(*inherit, AceFlags::SUBTREE);
                    Some((path.to_string(), *sid))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            denied,
            vec![
                (r"C:\tools\bin".to_string(), plan.roots[0].1),
                (r"C:\tools\bin".to_string(), plan.roots[1].1),
            ]
        );
        assert_eq!(plan.notes.len(), 1);
        assert!(plan.notes[0].contains(r"C:\ws\tmp"));
        assert!(plan.read_only_sid.is_none());
    }

    #[test]
    fn without_roots_a_read_only_sid_carries_the_denies() {
        let mut book = SidBook::new();
        let mut input = input(&[]);
        input.everyone_writable = vec![r"C:\tools".into()];
        let plan = plan(&input, &mut book, &mut counter()).unwrap();
        let sid = plan.read_only_sid.unwrap();
        assert_eq!(plan.token_sids(), vec![sid]);
        assert_eq!(
            plan.steps,
            vec![AclStep::DenyWrite {
                path: p(r"C:\tools"),
                sid,
                inherit: AceFlags::SUBTREE
            }]
        );
        // Reused next time.
        let again = super::plan(&input, &mut book, &mut counter()).unwrap();
        assert_eq!(again.read_only_sid, Some(sid));
        // Nothing to deny, nothing drawn.
        let mut empty = SidBook::new();
        let none = super::plan(&super::tests::input(&[]), &mut empty, &mut counter()).unwrap();
        assert!(none.steps.is_empty() && none.token_sids().is_empty() && empty.is_empty());
    }

    #[test]
    fn dangerous_roots_are_refused_with_the_reason() {
        let cases: &[(&str, Refusal)] = &[
            (r"C:\", Refusal::DriveRoot),
            (r"D:\", Refusal::DriveRoot),
            (r"\\server\share", Refusal::DriveRoot),
            (r"\\localhost\C$\work", Refusal::AdminShare),
            (r"\\localhost\admin$\x", Refusal::AdminShare),
            (r"C:\Users", Refusal::ProfilesRoot),
            (r"c:\users\", Refusal::ProfilesRoot),
            (r"C:\Users\alice", Refusal::ProfileDir),
            (r"C:\Users\bob", Refusal::ProfileDir),
            (r"C:\Users\MoatSandboxOffline", Refusal::ProfileDir),
            (r"C:\Users\alice\.ssh", Refusal::Ssh),
            (r"C:\Users\alice\src\.SSH\keys", Refusal::Ssh),
            (r"C:\Users\alice\NTUSER.DAT", Refusal::RegistryHive),
            (r"C:\Users\alice\ntuser.dat.LOG1", Refusal::RegistryHive),
            (
                r"C:\Users\alice\AppData\Local\Microsoft\Windows\UsrClass.dat",
                Refusal::RegistryHive,
            ),
            (
                r"C:\Users\alice\AppData",
                Refusal::Holds(
                    r"C:\Users\alice\AppData\Local\Microsoft\Windows\UsrClass.dat".into(),
                ),
            ),
        ];
        for (root, want) in cases {
            let got = refusal(plan(&input(&[root]), &mut SidBook::new(), &mut counter()));
            assert_eq!(&got, want, "{}", root);
        }
        // A profile outside the profiles root is protected too, as is what
        // holds it.
        let mut odd = input(&[r"D:\home\alice"]);
        odd.profile_dir = r"D:\home\alice".into();
        assert_eq!(
            refusal(plan(&odd, &mut SidBook::new(), &mut counter())),
            Refusal::ProfileDir
        );
        odd.roots = vec![r"D:\home".into()];
        assert_eq!(
            refusal(plan(&odd, &mut SidBook::new(), &mut counter())),
            Refusal::Holds(r"D:\home\alice\NTUSER.DAT".into())
        );
        // Profiles kept elsewhere make their parent off limits.
        let mut moved = input(&[r"E:\data"]);
        moved.profiles_root = r"E:\data\Users".into();
        moved.profile_dir = r"E:\data\Users\alice".into();
        assert_eq!(
            refusal(plan(&moved, &mut SidBook::new(), &mut counter())),
            Refusal::Holds(r"E:\data\Users".into())
        );
    }

    #[test]
    fn refusals_name_the_path_and_why() {
        let err = plan(
            &input(&[r"C:\Users\alice"]),
            &mut SidBook::new(),
            &mut counter(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(r"`C:\Users\alice`"), "{}", err);
        assert!(err.contains("writable root"), "{}", err);
        assert!(err.contains("NTUSER.DAT"), "{}", err);
        let err = plan(&input(&["src"]), &mut SidBook::new(), &mut counter())
            .unwrap_err()
            .to_string();
        assert!(err.contains("relative"), "{}", err);
    }

    #[test]
    fn dangerous_targets_are_refused_too() {
        let mut everyone = input(&[r"C:\ws"]);
        everyone.everyone_writable = vec![r"C:\".into()];
        assert_eq!(
            refusal(plan(&everyone, &mut SidBook::new(), &mut counter())),
            Refusal::DriveRoot
        );
        everyone.everyone_writable = vec![r"C:\Users\Public".into()];
        assert_eq!(
            refusal(plan(&everyone, &mut SidBook::new(), &mut counter())),
            Refusal::ProfileDir
        );
        let mut ssh = input(&[r"C:\ws"]);
        ssh.protected = vec![ProtectedPath::new(r"C:\ws\.ssh\config", PathState::File)];
        assert_eq!(
            refusal(plan(&ssh, &mut SidBook::new(), &mut counter())),
            Refusal::Ssh
        );
        let mut hive = input(&[r"C:\ws"]);
        hive.protected = vec![ProtectedPath::new(r"C:\ws\NTUSER.DAT", PathState::File)];
        assert_eq!(
            refusal(plan(&hive, &mut SidBook::new(), &mut counter())),
            Refusal::RegistryHive
        );
    }

    #[test]
    fn bad_protected_paths_are_errors() {
        let mut book = SidBook::new();
        let mut bad = input(&[r"C:\ws"]);
        bad.protected = vec![ProtectedPath::new(r"C:\elsewhere\.git", PathState::Dir)];
        assert!(matches!(
            plan(&bad, &mut book, &mut counter()),
            Err(PlanError::OutsideRoots { .. })
        ));
        bad.protected = vec![ProtectedPath::new(r"C:\WS", PathState::Dir)];
        assert!(matches!(
            plan(&bad, &mut book, &mut counter()),
            Err(PlanError::ProtectedRoot { .. })
        ));
        bad.protected = vec![ProtectedPath::new(r"C:\ws\.vscode", PathState::Link)];
        assert!(matches!(
            plan(&bad, &mut book, &mut counter()),
            Err(PlanError::Link { .. })
        ));
        bad.protected = vec![ProtectedPath::new(r".vscode", PathState::Dir)];
        assert!(matches!(
            plan(&bad, &mut book, &mut counter()),
            Err(PlanError::Path {
                role: Role::Protected,
                error: PathError::Relative(_)
            })
        ));
        // No error touched the book.
        assert!(book.is_empty());
        let mut bad_profile = input(&[r"C:\ws"]);
        bad_profile.profile_dir = "alice".into();
        assert!(matches!(
            plan(&bad_profile, &mut book, &mut counter()),
            Err(PlanError::Path {
                role: Role::ProfileDir,
                ..
            })
        ));
    }

    #[test]
    fn a_broken_random_source_is_an_error_not_a_hang() {
        let mut book = SidBook::new();
        let mut zero = || 0u32;
        book.sid_for(&p(r"C:\a"), &mut zero).unwrap();
        assert_eq!(
            book.sid_for(&p(r"C:\b"), &mut zero),
            Err(PlanError::NoFreshSid)
        );
        assert_eq!(book.roots().len(), 1);
    }

    // ---- book and ledger

    #[test]
    fn the_book_round_trips_and_forgets() {
        let mut book = SidBook::new();
        let mut random = counter();
        let a = book.sid_for(&p(r"C:\a"), &mut random).unwrap();
        let b = book.sid_for(&p("C:\\odd%name\\x"), &mut random).unwrap();
        let ro = book.read_only_sid(&mut random).unwrap();
        let text = book.to_text();
        assert!(text.contains("odd%25name"), "{}", text);
        let back = SidBook::from_text(&text).unwrap();
        assert_eq!(back, book);
        assert_eq!(book.sids(), vec![a, b, ro]);
        assert_eq!(book.forget(&p(r"c:\A")), Some(a));
        assert_eq!(book.forget(&p(r"C:\a")), None);
        assert_eq!(book.forget_read_only(), Some(ro));
        assert_eq!(book.sids(), vec![b]);
    }

    #[test]
    fn bad_book_text_is_refused() {
        for text in [
            "",
            "moat-sid-book 2\n",
            "moat-sid-book 1\nS-1-5-21-1-2-3-4\n",
            "moat-sid-book 1\nS-1-5-21-1-2-3-4\trelative\n",
            "moat-sid-book 1\nnot-a-sid\tC:\\a\n",
            "moat-sid-book 1\nS-1-5-21-1-2-3-4\tC:\\a\nS-1-5-21-1-2-3-5\tc:\\A\n",
            "moat-sid-book 1\nS-1-5-21-1-2-3-4\tC:\\a\nS-1-5-21-1-2-3-4\tC:\\b\n",
            "moat-sid-book 1\nS-1-5-21-1-2-3-4\tC:\\a%2\n",
        ] {
            assert!(SidBook::from_text(text).is_err(), "{:?}", text);
        }
        let err =
            SidBook::from_text("moat-sid-book 1\nS-1-5-21-1-2-3-4\tC:\\a\nx\ty\n").unwrap_err();
        assert_eq!(err.line, 3);
    }

    fn full_plan(book: &mut SidBook) -> AclPlan {
        let mut input = input(&[r"C:\ws", r"D:\cache"]);
        input.protected = vec![
            ProtectedPath::new(r"C:\ws\.git\hooks", PathState::Dir),
            ProtectedPath::new(r"C:\ws\.git\config", PathState::File),
            ProtectedPath::new(r"C:\ws\.codex", PathState::Absent),
        ];
        input.everyone_writable = vec![r"C:\tools".into()];
        plan(&input, book, &mut counter()).unwrap()
    }

    #[test]
    fn applying_then_removing_leaves_nothing_recorded() {
        let mut book = SidBook::new();
        let plan = full_plan(&mut book);
        let mut ledger = Ledger::new();
        assert_eq!(plan.pending(&ledger), plan.steps);
        for step in &plan.steps {
            ledger.record(step);
        }
        assert!(plan.pending(&ledger).is_empty());
        // Saved and loaded between the runs.
        let mut ledger = Ledger::from_text(&ledger.to_text()).unwrap();
        assert!(plan.pending(&ledger).is_empty());
        let removal = ledger.removal_plan();
        // Every (path, SID) once, allows first, then the created directory.
        assert!(matches!(
            removal.first(),
            Some(RemovalStep::RemoveAces { path, .. }) if *path == p(r"D:\cache")
        ));
        assert_eq!(
            removal.last(),
            Some(&RemovalStep::RemoveDirIfEmpty(p(r"C:\ws\.codex")))
        );
        let mut pairs: Vec<(WinPath, Sid)> = ledger
            .entries()
            .iter()
            .map(|e| (e.path.clone(), e.sid))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(removal.len(), pairs.len() + 1);
        for step in &removal {
            ledger.record_removed(step);
        }
        assert!(ledger.is_empty());
        assert!(ledger.sids().is_empty());
        assert_eq!(ledger.to_text(), "moat-acl-ledger 1\n");
    }

    #[test]
    fn forgetting_a_root_removes_only_its_sid() {
        let mut book = SidBook::new();
        let plan = full_plan(&mut book);
        let mut ledger = Ledger::new();
        for step in &plan.steps {
            ledger.record(step);
        }
        let ws = book.get(&p(r"C:\ws")).unwrap();
        let cache = book.get(&p(r"D:\cache")).unwrap();
        let sid = book.forget(&p(r"D:\cache")).unwrap();
        assert_eq!(sid, cache);
        assert_eq!(ledger.orphan_sids(&book), vec![cache]);
        let removal = ledger.removal_plan_for(&sid);
        assert_eq!(
            removal,
            vec![
                RemovalStep::RemoveAces {
                    path: p(r"D:\cache"),
                    sid
                },
                RemovalStep::RemoveAces {
                    path: p(r"C:\tools"),
                    sid
                },
            ]
        );
        for step in &removal {
            ledger.record_removed(step);
        }
        assert_eq!(ledger.sids(), vec![ws]);
        assert!(ledger.orphan_sids(&book).is_empty());
        // The workspace's own removal takes its placeholder with it.
        let removal = ledger.removal_plan_for(&book.forget(&p(r"C:\ws")).unwrap());
        assert_eq!(
            removal.last(),
            Some(&RemovalStep::RemoveDirIfEmpty(p(r"C:\ws\.codex")))
        );
        for step in &removal {
            ledger.record_removed(step);
        }
        assert!(ledger.is_empty());
    }

    #[test]
    fn ledger_text_is_one_escaped_line_per_ace() {
        let sid = capability_sid([1, 2, 3, 4]);
        let mut ledger = Ledger::new();
        let odd = p("C:\\100%\\a b");
        ledger.record(&AclStep::CreateDir(odd.clone()));
        ledger.record(&AclStep::DenyWrite {
            path: odd.clone(),
            sid,
            inherit: AceFlags::SUBTREE,
        });
        ledger.record(&AclStep::DenyWrite {
            path: odd.clone(),
            sid,
            inherit: AceFlags::SUBTREE,
        });
        ledger.record(&AclStep::DenyRename {
            path: p(r"C:\x"),
            sid,
            mask: FILE_DELETE_CHILD,
        });
        ledger.record(&AclStep::Allow {
            path: p(r"\\?\C:\x."),
            sid,
            mask: WRITABLE_ROOT_MASK,
            inherit: AceFlags::SUBTREE,
        });
        let text = ledger.to_text();
        assert_eq!(
            text,
            "moat-acl-ledger 1\n\
             created-dir\tC:\\100%25\\a b\n\
             deny-write\tS-1-5-21-1-2-3-4\tOICI\tC:\\100%25\\a b\n\
             deny-rename\tS-1-5-21-1-2-3-4\t0x40\tC:\\x\n\
             allow\tS-1-5-21-1-2-3-4\t0x1301ff\tOICI\t\\\\?\\C:\\x.\n"
        );
        assert_eq!(Ledger::from_text(&text).unwrap(), ledger);
        assert_eq!(escape("a\tb\nc%"), "a%09b%0Ac%25");
        assert_eq!(unescape("a%09b%0Ac%25").unwrap(), "a\tb\nc%");
        assert!(unescape("%").is_err() && unescape("%zz").is_err());
    }

    #[test]
    fn bad_ledger_text_is_refused() {
        for text in [
            "",
            "moat-acl-ledger 0\n",
            "moat-acl-ledger 1\nallow\tS-1-5-21-1-2-3-4\t0x1\tOICI\n",
            "moat-acl-ledger 1\nallow\tS-1-5-21-1-2-3-4\t1\tOICI\tC:\\x\n",
            "moat-acl-ledger 1\nallow\tS-1-5-21-1-2-3-4\t0x123456789\tOICI\tC:\\x\n",
            "moat-acl-ledger 1\ndeny-write\tS-1-5-21-1-2-3-4\tXX\tC:\\x\n",
            "moat-acl-ledger 1\ndeny-rename\tS-1-5-21\t0x40\tx\n",
            "moat-acl-ledger 1\nforget\tC:\\x\n",
            "moat-acl-ledger 1\ncreated-dir\tC:\\\n\tx\n",
        ] {
            assert!(Ledger::from_text(text).is_err(), "{:?}", text);
        }
    }
}
