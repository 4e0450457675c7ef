//! Access masks, ACEs and the SDDL strings the backend hands to Windows.
//!
//! Three kinds of security descriptor text come out of moat:
//! - the ACEs of the ACL plan: an inheritable allow for a writable root's
//!   capability SID, deny-write ACEs on protected paths and on
//!   Everyone-writable directories, and the small deny ACEs that keep
//!   protected paths from being renamed away;
//! - the `LocalUserAuthorizedList` of the offline account's firewall rules;
//! - the DACL of the named pipes between moat and its runner.
//!
//! Masks are written in hex (`0x1301ff`) because the two-letter rights codes
//! of SDDL were made for directory objects and read ambiguously on files.
//! The parser goes the other way, for reading ACLs back: Windows prints
//! well-known masks and SIDs with their codes (`FA`, `SY`), so it accepts
//! those too, but refuses anything moat would not have written (object
//! ACEs, audit flags, conditional ACEs).

use std::fmt;
use std::ops::BitOr;
use std::str::FromStr;

use crate::sid::{Sid, SidError};

/// Read data from a file; list a directory.
pub const FILE_READ_DATA: u32 = 0x0000_0001;
/// Write data to a file; create a file in a directory.
pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
/// Append to a file; create a subdirectory.
pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
/// Read extended attributes.
pub const FILE_READ_EA: u32 = 0x0000_0008;
/// Write extended attributes.
pub const FILE_WRITE_EA: u32 = 0x0000_0010;
/// Execute a file; traverse a directory.
pub const FILE_EXECUTE: u32 = 0x0000_0020;
/// Delete or rename anything inside a directory, whatever the child's own
/// DACL says.
pub const FILE_DELETE_CHILD: u32 = 0x0000_0040;
/// Read attributes (timestamps, read-only bit).
pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
/// Change attributes.
pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
/// Delete or rename the object itself.
pub const DELETE: u32 = 0x0001_0000;
/// Read the security descriptor (not the SACL).
pub const READ_CONTROL: u32 = 0x0002_0000;
/// Change the DACL.
pub const WRITE_DAC: u32 = 0x0004_0000;
/// Take ownership.
pub const WRITE_OWNER: u32 = 0x0008_0000;
/// Wait on the handle.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// Everything the object type defines.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// The object type's execute rights.
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
/// The object type's write rights.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// The object type's read rights.
pub const GENERIC_READ: u32 = 0x8000_0000;

/// What "read" means for a file (`FR`).
pub const FILE_GENERIC_READ: u32 =
    READ_CONTROL | FILE_READ_DATA | FILE_READ_ATTRIBUTES | FILE_READ_EA | SYNCHRONIZE;
/// What "write" means for a file (`FW`).
pub const FILE_GENERIC_WRITE: u32 = READ_CONTROL
    | FILE_WRITE_DATA
    | FILE_WRITE_ATTRIBUTES
    | FILE_WRITE_EA
    | FILE_APPEND_DATA
    | SYNCHRONIZE;
/// What "execute" means for a file (`FX`).
pub const FILE_GENERIC_EXECUTE: u32 =
    READ_CONTROL | FILE_READ_ATTRIBUTES | FILE_EXECUTE | SYNCHRONIZE;
/// Full control of a file (`FA`).
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;

/// Granted to a writable root's capability SID: read, write, execute,
/// delete and delete-child, i.e. "Modify" plus delete-child. Not WRITE_DAC
/// or WRITE_OWNER: the command must not be able to undo its own limits.
pub const WRITABLE_ROOT_MASK: u32 =
    FILE_GENERIC_READ | FILE_GENERIC_WRITE | FILE_GENERIC_EXECUTE | DELETE | FILE_DELETE_CHILD;

/// Denied on protected paths and Everyone-writable directories: every
/// right that changes the object, its contents, its name or its DACL.
/// READ_CONTROL and SYNCHRONIZE stay out so reads still work.
pub const DENY_WRITE_MASK: u32 = FILE_WRITE_DATA
    | FILE_APPEND_DATA
    | FILE_WRITE_EA
    | FILE_WRITE_ATTRIBUTES
    | DELETE
    | FILE_DELETE_CHILD
    | WRITE_DAC
    | WRITE_OWNER;

/// Granted to the elevated tier's sandbox group on what it may read in the
/// person's profile: read and run, nothing that changes anything.
pub const READ_GRANT_MASK: u32 = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE;

/// Denied to the sandbox group on a secret inside a directory it may read:
/// the contents (of a directory, its listing), extended attributes and
/// running it. Attributes, READ_CONTROL and SYNCHRONIZE stay: the parent's
/// listing shows the attributes anyway, and a denied SYNCHRONIZE breaks
/// waits on handles that have nothing to do with reading.
pub const DENY_READ_MASK: u32 = FILE_READ_DATA | FILE_READ_EA | FILE_EXECUTE;

/// The firewall's "this user may" right in a `LocalUserAuthorizedList`
/// (`CC`, which is bit 0).
pub const CREATE_CHILD: u32 = 0x0000_0001;

/// The ACE header flags moat writes or reads back, with their Windows
/// values so the sys module can pass them through unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AceFlags(u8);

impl AceFlags {
    /// No inheritance: the ACE applies to this object only.
    pub const NONE: AceFlags = AceFlags(0);
    /// `OI`: files below inherit the ACE.
    pub const OBJECT_INHERIT: AceFlags = AceFlags(0x01);
    /// `CI`: directories below inherit the ACE.
    pub const CONTAINER_INHERIT: AceFlags = AceFlags(0x02);
    /// `NP`: children inherit it, their children do not.
    pub const NO_PROPAGATE: AceFlags = AceFlags(0x04);
    /// `IO`: the ACE does not apply to this object, only to children.
    pub const INHERIT_ONLY: AceFlags = AceFlags(0x08);
    /// `ID`: the ACE was inherited from a parent (read back only).
    pub const INHERITED: AceFlags = AceFlags(0x10);
    /// `OICI`: the whole subtree, files and directories.
    pub const SUBTREE: AceFlags = AceFlags(0x03);

    const ALL: u8 = 0x1f;

    /// The raw `AceFlags` byte.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Flags from the raw byte, if every bit set is one moat understands
    /// (audit flags are not DACL business).
    pub fn from_bits(bits: u8) -> Option<AceFlags> {
        if bits & !AceFlags::ALL == 0 {
            Some(AceFlags(bits))
        } else {
            None
        }
    }

    /// Whether every flag of `other` is set here.
    pub fn contains(self, other: AceFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the ACE applies to the object it sits on (not inherit-only).
    pub fn applies_to_object(self) -> bool {
        !self.contains(AceFlags::INHERIT_ONLY)
    }

    /// The same flags without `ID`, for comparing an ACE moat wrote with
    /// one read back.
    pub fn explicit(self) -> AceFlags {
        AceFlags(self.0 & !AceFlags::INHERITED.0)
    }
}

impl BitOr for AceFlags {
    type Output = AceFlags;
    fn bitor(self, rhs: AceFlags) -> AceFlags {
        AceFlags(self.0 | rhs.0)
    }
}

// Printing order follows Windows' own output (`OICIIOID`).
const FLAG_CODES: &[(&str, AceFlags)] = &[
    ("OI", AceFlags::OBJECT_INHERIT),
    ("CI", AceFlags::CONTAINER_INHERIT),
    ("NP", AceFlags::NO_PROPAGATE),
    ("IO", AceFlags::INHERIT_ONLY),
    ("ID", AceFlags::INHERITED),
];

impl fmt::Display for AceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (code, flag) in FLAG_CODES {
            if self.contains(*flag) {
                f.write_str(code)?;
            }
        }
        Ok(())
    }
}

impl FromStr for AceFlags {
    type Err = SddlError;
    /// Parses the flags field of an ACE string (`OICI`, empty for none).
    fn from_str(text: &str) -> Result<AceFlags, SddlError> {
        parse_flags(text)
    }
}

impl fmt::Debug for AceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AceFlags({})", self)
    }
}

/// Allow or deny; the only ACE types moat writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AceKind {
    /// `A`: ACCESS_ALLOWED_ACE_TYPE.
    Allow,
    /// `D`: ACCESS_DENIED_ACE_TYPE.
    Deny,
}

impl AceKind {
    /// The SDDL code.
    pub fn code(self) -> &'static str {
        match self {
            AceKind::Allow => "A",
            AceKind::Deny => "D",
        }
    }
}

/// One access control entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ace {
    pub kind: AceKind,
    pub flags: AceFlags,
    pub mask: u32,
    pub sid: Sid,
}

impl Ace {
    /// An allow ACE.
    pub fn allow(sid: Sid, mask: u32, flags: AceFlags) -> Ace {
        Ace {
            kind: AceKind::Allow,
            flags,
            mask,
            sid,
        }
    }

    /// A deny ACE.
    pub fn deny(sid: Sid, mask: u32, flags: AceFlags) -> Ace {
        Ace {
            kind: AceKind::Deny,
            flags,
            mask,
            sid,
        }
    }

    /// The allow ACE of a writable root: inheritable by every file and
    /// directory below, so one ACE on the root covers the tree.
    pub fn writable_root(sid: Sid) -> Ace {
        Ace::allow(sid, WRITABLE_ROOT_MASK, AceFlags::SUBTREE)
    }

    /// A deny-write ACE with the given inheritance (`SUBTREE` for
    /// directories, `NONE` for files).
    pub fn deny_write(sid: Sid, flags: AceFlags) -> Ace {
        Ace::deny(sid, DENY_WRITE_MASK, flags)
    }

    /// A deny-read ACE ([`DENY_READ_MASK`]).
    pub fn deny_read(sid: Sid, flags: AceFlags) -> Ace {
        Ace::deny(sid, DENY_READ_MASK, flags)
    }

    /// The SDDL text, e.g. `(A;OICI;0x1301ff;;;S-1-5-21-1-2-3-4)`.
    pub fn to_sddl(&self) -> String {
        self.to_string()
    }

    /// Parses one ACE string; see [`parse_ace`].
    pub fn parse(text: &str) -> Result<Ace, SddlError> {
        parse_ace(text)
    }
}

impl fmt::Display for Ace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({};{};0x{:x};;;{})",
            self.kind.code(),
            self.flags,
            self.mask,
            self.sid
        )
    }
}

impl FromStr for Ace {
    type Err = SddlError;
    fn from_str(text: &str) -> Result<Ace, SddlError> {
        parse_ace(text)
    }
}

/// The `LocalUserAuthorizedList` of a firewall rule that applies to
/// `account` only: owner LocalService (as the firewall service expects),
/// and one `CC` allow for the account.
pub fn local_user_authorized_list(account: &Sid) -> String {
    format!("O:LSD:(A;;CC;;;{})", account)
}

/// The DACL of a named pipe between moat and its runner: `GA` for the
/// runner's account, nobody else.
///
/// No ACE for SYSTEM or for the person running moat, on purpose:
/// - moat creates the pipe and holds its server end, which needs no ACE;
///   as the owner it also keeps READ_CONTROL and WRITE_DAC implicitly.
/// - Every extra principal is one more that could connect in the runner's
///   place before it does. Another process of the person, or a service,
///   has no business on this pipe; code running as SYSTEM already controls
///   the machine, so an ACE for it would protect nothing.
pub fn pipe_dacl(client: &Sid) -> String {
    format!("D:(A;;GA;;;{})", client)
}

/// A DACL in SDDL form, e.g. `D:P(A;OICI;...)` for a protected one.
pub fn dacl_string(protected: bool, aces: &[Ace]) -> String {
    let mut out = String::from(if protected { "D:P" } else { "D:" });
    for ace in aces {
        out.push_str(&ace.to_string());
    }
    out
}

/// Why an ACE or DACL string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SddlError {
    /// Not wrapped in one pair of parentheses.
    Parentheses(String),
    /// Not six `;`-separated fields.
    FieldCount { text: String, fields: usize },
    /// An ACE type other than `A` or `D`.
    AceType(String),
    /// Unknown, repeated or audit-only ACE flags.
    Flags(String),
    /// A rights field that is neither `0x` hex nor known codes.
    Rights(String),
    /// An object or inherited-object GUID (object ACEs are not moat's).
    ObjectGuid(String),
    /// The trustee is neither a SID nor a known alias.
    Trustee {
        text: String,
        error: Option<SidError>,
    },
    /// A DACL that does not start with `D:` or has bad flags or text
    /// between ACEs.
    Dacl(String),
}

impl fmt::Display for SddlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SddlError::Parentheses(t) => {
                write!(f, "ACE `{}` is not one parenthesised entry", t)
            }
            SddlError::FieldCount { text, fields } => write!(
                f,
                "ACE `{}` has {} fields; an allow or deny ACE has 6",
                text, fields
            ),
            SddlError::AceType(t) => write!(
                f,
                "ACE type `{}` is not A (allow) or D (deny), the only ones moat handles",
                t
            ),
            SddlError::Flags(t) => write!(
                f,
                "ACE flags `{}` are not a combination of OI, CI, NP, IO and ID",
                t
            ),
            SddlError::Rights(t) => write!(
                f,
                "access rights `{}` are neither 0x-prefixed hex nor known two-letter codes",
                t
            ),
            SddlError::ObjectGuid(t) => write!(
                f,
                "object GUID `{}` in an allow or deny ACE (object ACEs are not handled)",
                t
            ),
            SddlError::Trustee { text, error } => match error {
                Some(e) => write!(f, "trustee `{}`: {}", text, e),
                None => write!(f, "trustee `{}` is not a SID or a known SDDL alias", text),
            },
            SddlError::Dacl(t) => write!(f, "DACL `{}` is malformed", t),
        }
    }
}

impl std::error::Error for SddlError {}

// Windows prints masks with these codes when every bit has one; reading
// back must understand them. File masks come first so `FA` is not read as
// a pile of directory-object bits.
const RIGHTS_CODES: &[(&str, u32)] = &[
    ("GA", GENERIC_ALL),
    ("GR", GENERIC_READ),
    ("GW", GENERIC_WRITE),
    ("GX", GENERIC_EXECUTE),
    ("RC", READ_CONTROL),
    ("SD", DELETE),
    ("WD", WRITE_DAC),
    ("WO", WRITE_OWNER),
    ("RP", 0x0000_0010),
    ("WP", 0x0000_0020),
    ("CC", CREATE_CHILD),
    ("DC", 0x0000_0002),
    ("LC", 0x0000_0004),
    ("SW", 0x0000_0008),
    ("LO", 0x0000_0080),
    ("DT", 0x0000_0040),
    ("CR", 0x0000_0100),
    ("FA", FILE_ALL_ACCESS),
    ("FR", FILE_GENERIC_READ),
    ("FW", FILE_GENERIC_WRITE),
    ("FX", FILE_GENERIC_EXECUTE),
    ("KA", 0x000F_003F),
    ("KR", 0x0002_0019),
    ("KW", 0x0002_0006),
    ("KX", 0x0002_0019),
];

// Aliases Windows prints instead of well-known SIDs. Domain-relative ones
// (DA, DU, ...) need the machine's domain SID and are refused.
const SID_ALIASES: &[(&str, u64, &[u32])] = &[
    ("WD", 1, &[0]),
    ("CO", 3, &[0]),
    ("CG", 3, &[1]),
    ("OW", 3, &[4]),
    ("NU", 5, &[2]),
    ("IU", 5, &[4]),
    ("SU", 5, &[6]),
    ("AN", 5, &[7]),
    ("AU", 5, &[11]),
    ("RC", 5, &[12]),
    ("WR", 5, &[33]),
    ("SY", 5, &[18]),
    ("LS", 5, &[19]),
    ("NS", 5, &[20]),
    ("BA", 5, &[32, 544]),
    ("BU", 5, &[32, 545]),
    ("BG", 5, &[32, 546]),
    ("PU", 5, &[32, 547]),
    ("BO", 5, &[32, 551]),
    ("AC", 15, &[2, 1]),
];

fn parse_flags(text: &str) -> Result<AceFlags, SddlError> {
    let bad = || SddlError::Flags(text.to_string());
    if text.len() % 2 != 0 || !text.is_ascii() {
        return Err(bad());
    }
    let mut flags = AceFlags::NONE;
    let mut at = 0;
    while at < text.len() {
        let code = &text[at..at + 2];
        let flag = FLAG_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, f)| *f)
            .ok_or_else(bad)?;
        if flags.contains(flag) {
            return Err(bad());
        }
        flags = flags | flag;
        at += 2;
    }
    Ok(flags)
}

fn parse_rights(text: &str) -> Result<u32, SddlError> {
    let bad = || SddlError::Rights(text.to_string());
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        return u32::from_str_radix(hex, 16).map_err(|_| bad());
    }
    if text.is_empty() || text.len() % 2 != 0 || !text.is_ascii() {
        return Err(bad());
    }
    let mut mask = 0u32;
    let mut seen: Vec<&str> = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let code = &text[at..at + 2];
        let bits = RIGHTS_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, b)| *b)
            .ok_or_else(bad)?;
        if seen.contains(&code) {
            return Err(bad());
        }
        seen.push(code);
        mask |= bits;
        at += 2;
    }
    Ok(mask)
}

/// Reads a trustee: a SID string or one of the well-known aliases.
pub fn parse_trustee(text: &str) -> Result<Sid, SddlError> {
    if text.starts_with("S-") {
        return text.parse::<Sid>().map_err(|e| SddlError::Trustee {
            text: text.to_string(),
            error: Some(e),
        });
    }
    for (alias, authority, subs) in SID_ALIASES {
        if *alias == text {
            return Sid::new(*authority, subs).map_err(|e| SddlError::Trustee {
                text: text.to_string(),
                error: Some(e),
            });
        }
    }
    Err(SddlError::Trustee {
        text: text.to_string(),
        error: None,
    })
}

/// Parses one ACE string such as `(D;OICI;0xd0156;;;S-1-5-21-1-2-3-4)`.
///
/// Strict: exactly six fields, type `A` or `D`, flags from `OI CI NP IO
/// ID` each at most once, rights as `0x` hex or two-letter codes, empty
/// GUID fields, and a SID or well-known alias as trustee. No spaces.
pub fn parse_ace(text: &str) -> Result<Ace, SddlError> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| SddlError::Parentheses(text.to_string()))?;
    if inner.contains('(') || inner.contains(')') {
        return Err(SddlError::Parentheses(text.to_string()));
    }
    let fields: Vec<&str> = inner.split(';').collect();
    if fields.len() != 6 {
        return Err(SddlError::FieldCount {
            text: text.to_string(),
            fields: fields.len(),
        });
    }
    let kind = match fields[0] {
        "A" => AceKind::Allow,
        "D" => AceKind::Deny,
        other => return Err(SddlError::AceType(other.to_string())),
    };
    let flags = parse_flags(fields[1])?;
    let mask = parse_rights(fields[2])?;
    for guid in &fields[3..5] {
        if !guid.is_empty() {
            return Err(SddlError::ObjectGuid(guid.to_string()));
        }
    }
    let sid = parse_trustee(fields[5])?;
    Ok(Ace {
        kind,
        flags,
        mask,
        sid,
    })
}

/// A DACL read back as SDDL.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Dacl {
    /// `P`: does not inherit from the parent.
    pub protected: bool,
    /// `AI`: inheritance was computed automatically.
    pub auto_inherited: bool,
    /// `AR`: auto-inheritance was requested.
    pub auto_inherit_req: bool,
    pub aces: Vec<Ace>,
}

impl Dacl {
    /// Parses `D:<flags>(ace)(ace)...`, the DACL part only (as returned
    /// when asking Windows for `DACL_SECURITY_INFORMATION` alone).
    pub fn parse(text: &str) -> Result<Dacl, SddlError> {
        let bad = || SddlError::Dacl(text.to_string());
        let body = text.strip_prefix("D:").ok_or_else(bad)?;
        let open = body.find('(').unwrap_or(body.len());
        let mut dacl = Dacl::default();
        let mut flags = &body[..open];
        while !flags.is_empty() {
            if let Some(rest) = flags.strip_prefix("P") {
                if dacl.protected {
                    return Err(bad());
                }
                dacl.protected = true;
                flags = rest;
            } else if let Some(rest) = flags.strip_prefix("AI") {
                if dacl.auto_inherited {
                    return Err(bad());
                }
                dacl.auto_inherited = true;
                flags = rest;
            } else if let Some(rest) = flags.strip_prefix("AR") {
                if dacl.auto_inherit_req {
                    return Err(bad());
                }
                dacl.auto_inherit_req = true;
                flags = rest;
            } else {
                return Err(bad());
            }
        }
        let mut rest = &body[open..];
        while !rest.is_empty() {
            if !rest.starts_with('(') {
                return Err(bad());
            }
            let end = rest.find(')').ok_or_else(bad)?;
            dacl.aces.push(parse_ace(&rest[..=end])?);
            rest = &rest[end + 1..];
        }
        Ok(dacl)
    }

    /// The ACEs for `sid` that were put on this object directly (not
    /// inherited): what moat may have added and may remove.
    pub fn explicit_for(&self, sid: &Sid) -> Vec<Ace> {
        self.aces
            .iter()
            .filter(|a| a.sid == *sid && !a.flags.contains(AceFlags::INHERITED))
            .copied()
            .collect()
    }
}

impl fmt::Display for Dacl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("D:")?;
        if self.protected {
            f.write_str("P")?;
        }
        if self.auto_inherit_req {
            f.write_str("AR")?;
        }
        if self.auto_inherited {
            f.write_str("AI")?;
        }
        for ace in &self.aces {
            write!(f, "{}", ace)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sid::{capability_sid, ADMINISTRATORS, EVERYONE, LOCAL_SYSTEM, USERS};

    fn cap() -> Sid {
        capability_sid([11, 22, 33, 44])
    }

    #[test]
    fn masks_have_the_documented_values() {
        assert_eq!(FILE_GENERIC_READ, 0x0012_0089);
        assert_eq!(FILE_GENERIC_WRITE, 0x0012_0116);
        assert_eq!(FILE_GENERIC_EXECUTE, 0x0012_00a0);
        // Modify (0x1301bf) plus delete-child.
        assert_eq!(WRITABLE_ROOT_MASK, 0x0013_01ff);
        assert_eq!(WRITABLE_ROOT_MASK & (WRITE_DAC | WRITE_OWNER), 0);
        assert_eq!(DENY_WRITE_MASK, 0x000d_0156);
        // Deny-write leaves reading, listing and traversal alone.
        assert_eq!(DENY_WRITE_MASK & FILE_GENERIC_READ, 0);
        assert_eq!(DENY_WRITE_MASK & FILE_GENERIC_EXECUTE, 0);
        // ...and covers every write-side right the root grants.
        let write_side = WRITABLE_ROOT_MASK & !(FILE_GENERIC_READ | FILE_GENERIC_EXECUTE);
        assert_eq!(write_side & !DENY_WRITE_MASK, 0);
    }

    #[test]
    fn ace_strings() {
        assert_eq!(
            Ace::writable_root(cap()).to_sddl(),
            "(A;OICI;0x1301ff;;;S-1-5-21-11-22-33-44)"
        );
        assert_eq!(
            Ace::deny_write(cap(), AceFlags::SUBTREE).to_sddl(),
            "(D;OICI;0xd0156;;;S-1-5-21-11-22-33-44)"
        );
        assert_eq!(
            Ace::deny_write(cap(), AceFlags::NONE).to_sddl(),
            "(D;;0xd0156;;;S-1-5-21-11-22-33-44)"
        );
        let all = AceFlags::SUBTREE
            | AceFlags::NO_PROPAGATE
            | AceFlags::INHERIT_ONLY
            | AceFlags::INHERITED;
        assert_eq!(
            Ace::allow(USERS, FILE_GENERIC_READ, all).to_sddl(),
            "(A;OICINPIOID;0x120089;;;S-1-5-32-545)"
        );
        assert_eq!(all.bits(), 0x1f);
        assert_eq!("OICINPIOID".parse::<AceFlags>().unwrap(), all);
        assert_eq!("".parse::<AceFlags>().unwrap(), AceFlags::NONE);
        assert_eq!("CIOI".parse::<AceFlags>().unwrap(), AceFlags::SUBTREE);
        assert_eq!(AceFlags::from_bits(0x1f), Some(all));
        assert_eq!(AceFlags::from_bits(0x40), None);
    }

    #[test]
    fn built_aces_parse_back() {
        let flag_sets = [
            AceFlags::NONE,
            AceFlags::OBJECT_INHERIT,
            AceFlags::CONTAINER_INHERIT,
            AceFlags::SUBTREE,
            AceFlags::SUBTREE | AceFlags::INHERIT_ONLY,
            AceFlags::CONTAINER_INHERIT | AceFlags::NO_PROPAGATE,
            AceFlags::SUBTREE | AceFlags::INHERITED,
        ];
        for flags in flag_sets {
            for ace in [
                Ace::allow(cap(), WRITABLE_ROOT_MASK, flags),
                Ace::deny(EVERYONE, DENY_WRITE_MASK, flags),
                Ace::deny(cap(), DELETE | FILE_DELETE_CHILD, flags),
            ] {
                assert_eq!(parse_ace(&ace.to_sddl()).unwrap(), ace);
                assert_eq!(ace.to_sddl().parse::<Ace>().unwrap(), ace);
            }
        }
    }

    #[test]
    fn windows_spellings_are_understood() {
        let ace = parse_ace("(A;OICIID;FA;;;SY)").unwrap();
        assert_eq!(
            ace,
            Ace::allow(
                LOCAL_SYSTEM,
                FILE_ALL_ACCESS,
                AceFlags::SUBTREE | AceFlags::INHERITED
            )
        );
        assert_eq!(ace.flags.explicit(), AceFlags::SUBTREE);
        let ace = parse_ace("(A;OICIIOID;GA;;;BA)").unwrap();
        assert_eq!(ace.sid, ADMINISTRATORS);
        assert_eq!(ace.mask, GENERIC_ALL);
        assert!(!ace.flags.applies_to_object());
        // The deny-write mask, as Windows spells it with codes.
        let ace = parse_ace("(D;OICI;DCLCRPDTCRSDWDWO;;;S-1-5-21-11-22-33-44)").unwrap();
        assert_eq!(ace, Ace::deny_write(cap(), AceFlags::SUBTREE));
        assert_eq!(
            parse_ace("(A;;0X1F01FF;;;WD)").unwrap().mask,
            FILE_ALL_ACCESS
        );
        assert_eq!(parse_ace("(A;;FRFX;;;BU)").unwrap().mask, 0x0012_00a9);
        assert_eq!(parse_ace("(A;;CC;;;AU)").unwrap().mask, CREATE_CHILD);
    }

    #[test]
    fn malformed_aces_are_refused() {
        type Check = fn(&SddlError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, SddlError::Parentheses(_))),
            ("A;;FA;;;SY", |e| matches!(e, SddlError::Parentheses(_))),
            ("(A;;FA;;;SY", |e| matches!(e, SddlError::Parentheses(_))),
            ("(A;;FA;;;SY)(A;;FA;;;BA)", |e| {
                matches!(e, SddlError::Parentheses(_))
            }),
            (" (A;;FA;;;SY)", |e| matches!(e, SddlError::Parentheses(_))),
            ("(A;;FA;;SY)", |e| {
                matches!(e, SddlError::FieldCount { fields: 5, .. })
            }),
            ("(A;;FA;;;SY;)", |e| {
                matches!(e, SddlError::FieldCount { fields: 7, .. })
            }),
            ("(OA;;FA;;;SY)", |e| matches!(e, SddlError::AceType(_))),
            ("(AU;SA;FA;;;SY)", |e| matches!(e, SddlError::AceType(_))),
            ("(a;;FA;;;SY)", |e| matches!(e, SddlError::AceType(_))),
            ("(A;SA;FA;;;SY)", |e| matches!(e, SddlError::Flags(_))),
            ("(A;OIOI;FA;;;SY)", |e| matches!(e, SddlError::Flags(_))),
            ("(A;O;FA;;;SY)", |e| matches!(e, SddlError::Flags(_))),
            ("(A;oi;FA;;;SY)", |e| matches!(e, SddlError::Flags(_))),
            ("(A;;;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;0x;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;0x123456789;;;SY)", |e| {
                matches!(e, SddlError::Rights(_))
            }),
            ("(A;;0xg1;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;123;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;FAFA;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;F;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;XX;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;; FA;;;SY)", |e| matches!(e, SddlError::Rights(_))),
            ("(A;;FA;bf967aba-0de6-11d0-a285-00aa003049e2;;SY)", |e| {
                matches!(e, SddlError::ObjectGuid(_))
            }),
            ("(A;;FA;;x;SY)", |e| matches!(e, SddlError::ObjectGuid(_))),
            ("(A;;FA;;;)", |e| {
                matches!(e, SddlError::Trustee { error: None, .. })
            }),
            ("(A;;FA;;;DA)", |e| {
                matches!(e, SddlError::Trustee { error: None, .. })
            }),
            ("(A;;FA;;;sy)", |e| {
                matches!(e, SddlError::Trustee { error: None, .. })
            }),
            ("(A;;FA;;;S-1-5-)", |e| {
                matches!(e, SddlError::Trustee { error: Some(_), .. })
            }),
            ("(A;;FA;;;S-1-5-18 )", |e| {
                matches!(e, SddlError::Trustee { error: Some(_), .. })
            }),
        ];
        for (text, check) in cases {
            let err = parse_ace(text).unwrap_err();
            assert!(check(&err), "{:?} gave {:?}", text, err);
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn no_input_panics() {
        let samples = [
            "D:PAI(A;OICIID;0x1301ff;;;S-1-5-21-1-2-3-4)(D;;FA;;;é)",
            "(Aé;OIé;FAé;;;S-1-é)",
            "D:(((;;;;;)))",
        ];
        for sample in samples {
            for (end, _) in sample.char_indices() {
                let part = &sample[..end];
                let _ = parse_ace(part);
                let _ = Dacl::parse(part);
                let _ = part.parse::<AceFlags>();
                let _ = parse_trustee(part);
            }
        }
    }

    #[test]
    fn trustee_aliases() {
        assert_eq!(parse_trustee("WD").unwrap(), EVERYONE);
        assert_eq!(parse_trustee("BU").unwrap(), USERS);
        assert_eq!(parse_trustee("BA").unwrap(), ADMINISTRATORS);
        assert_eq!(parse_trustee("SY").unwrap(), LOCAL_SYSTEM);
        assert_eq!(parse_trustee("AU").unwrap().to_string(), "S-1-5-11");
        assert_eq!(parse_trustee("AC").unwrap().to_string(), "S-1-15-2-1");
        assert_eq!(parse_trustee("OW").unwrap().to_string(), "S-1-3-4");
    }

    #[test]
    fn local_user_authorized_list_names_the_account() {
        let account: Sid = "S-1-5-21-1-2-3-1005".parse().unwrap();
        assert_eq!(
            local_user_authorized_list(&account),
            "O:LSD:(A;;CC;;;S-1-5-21-1-2-3-1005)"
        );
        // Its DACL part parses back to one CC allow for the account.
        let text = local_user_authorized_list(&account);
        let dacl = Dacl::parse(text.strip_prefix("O:LS").unwrap()).unwrap();
        assert_eq!(
            dacl.aces,
            vec![Ace::allow(account, CREATE_CHILD, AceFlags::NONE)]
        );
    }

    #[test]
    fn pipe_dacl_grants_only_the_client() {
        let runner: Sid = "S-1-5-21-1-2-3-1006".parse().unwrap();
        let text = pipe_dacl(&runner);
        assert_eq!(text, "D:(A;;GA;;;S-1-5-21-1-2-3-1006)");
        let dacl = Dacl::parse(&text).unwrap();
        assert_eq!(
            dacl.aces,
            vec![Ace::allow(runner, GENERIC_ALL, AceFlags::NONE)]
        );
        assert!(!dacl.protected);
    }

    #[test]
    fn dacls_round_trip_and_filter() {
        let aces = [
            Ace::deny_write(cap(), AceFlags::SUBTREE),
            Ace::writable_root(cap()),
        ];
        let text = dacl_string(true, &aces);
        assert_eq!(
            text,
            "D:P(D;OICI;0xd0156;;;S-1-5-21-11-22-33-44)(A;OICI;0x1301ff;;;S-1-5-21-11-22-33-44)"
        );
        let dacl = Dacl::parse(&text).unwrap();
        assert!(dacl.protected);
        assert_eq!(dacl.aces, aces.to_vec());
        assert_eq!(dacl.to_string(), text);

        let read_back = "D:AI(A;OICI;0x1301ff;;;S-1-5-21-11-22-33-44)\
                         (A;OICIID;0x1301ff;;;S-1-5-21-11-22-33-44)(A;OICIID;FA;;;SY)";
        let dacl = Dacl::parse(read_back).unwrap();
        assert!(dacl.auto_inherited && !dacl.protected);
        assert_eq!(dacl.aces.len(), 3);
        assert_eq!(dacl.explicit_for(&cap()), vec![Ace::writable_root(cap())]);
        assert!(dacl.explicit_for(&LOCAL_SYSTEM).is_empty());
        assert_eq!(Dacl::parse("D:PAI").unwrap().aces, vec![]);
        assert_eq!(Dacl::parse("D:").unwrap(), Dacl::default());
    }

    #[test]
    fn malformed_dacls_are_refused() {
        for text in [
            "",
            "O:SY",
            "D:X(A;;FA;;;SY)",
            "D:PP(A;;FA;;;SY)",
            "D:(A;;FA;;;SY",
            "D:(A;;FA;;;SY)x",
            "D:(A;;FA;;;SY) (A;;FA;;;BA)",
            "D:(A;;FA;;;SY)S:(AU;SA;FA;;;WD)",
            "D:NO_ACCESS_CONTROL",
        ] {
            assert!(Dacl::parse(text).is_err(), "{:?}", text);
        }
    }
}
