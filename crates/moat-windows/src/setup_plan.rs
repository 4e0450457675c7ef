//! What `moat setup` and `moat setup --remove` do on Windows, as plans.
//!
//! The elevated tier needs a few machine-wide things: the local group
//! `MoatSandboxUsers`, the local accounts `MoatSandboxOffline` and
//! `MoatSandboxOnline` (random passwords that never expire, kept with DPAPI
//! in a directory the group is denied, hidden from the sign-in screen, with
//! a profile), per-account firewall rules that keep the offline account off
//! the network, and a versioned setup record. This module decides *which*
//! of those steps to take, from a description of what exists now
//! ([`State`]); `sys` carries them out. Nothing here calls Windows, so the
//! decisions are unit-tested on any platform.
//!
//! # Idempotent, and nothing taken over
//! [`setup_steps`] plans only what is missing or wrong, so a second run on
//! a set-up machine plans nothing. Names that exist but were not made by
//! moat (no marker description, not in the record) are refused before any
//! step ([`SetupError::Taken`]), as the Linux setup does: moat never adopts
//! or changes an account someone else owns.
//!
//! # The plan is also the check
//! `moat setup --check` plans setup from the machine as found and reports
//! each step still planned as what is missing ([`plan_problems`]), so the
//! check and setup cannot disagree about what a complete setup is.
//!
//! # Rounds: a plan never guesses a SID
//! The secrets directory's DACL needs the group's SID and the firewall
//! rules need the offline account's, but a principal has no SID before it
//! is created. So when a SID is unknown, the plan stops after the steps
//! that create the principals and [`Step::ResolveSid`]; the executor runs
//! it, reads the state again and plans again. Every step in a plan is
//! therefore complete data (rules with their SDDL, the record with its
//! SIDs). The executor loops until a plan is empty, at most [`MAX_ROUNDS`]
//! times: a fresh machine takes two rounds of work and one to confirm.
//!
//! # What the anchor's users hit, and the fix here
//! - Passwords that expired (errors 1907, 1330): [`Step::NeverExpire`]
//!   sets "password never expires"; an expired one is reset.
//! - Lockouts (1909) and rejected passwords (1326): the password is reset
//!   and stored again, then the account unlocked.
//! - Broken profiles (1168): [`Step::RemoveProfile`], then a new one.
//! - Orphans: accounts and the group carry a marker description, rules a
//!   name prefix, so [`removal_steps`] finds what an interrupted setup
//!   made even when the record was never written, and [`leftovers`] names
//!   anything still there afterwards.
//!
//! # The firewall through PowerShell
//! The rules are written and read back with the NetSecurity cmdlets
//! (`New-NetFirewallRule -LocalUser`, `Get-NetFirewallSecurityFilter`),
//! which set and show the `LocalUserAuthorizedList` directly. Every value
//! is a single-quoted PowerShell literal ([`ps_quote`]); the read-back
//! prints one flat JSON object per rule, which [`parse_read_back`] reads
//! strictly without a JSON library (the crate builds with few
//! dependencies and Rust 1.63).

use std::fmt;

use crate::acl_plan::WinPath;
use crate::firewall::{self, Action, Direction, FirewallError, Protocol, Rule};
use crate::logon::Password;
use crate::record::{self, Record};
use crate::sddl::{
    dacl_string, Ace, AceFlags, Dacl, FILE_ALL_ACCESS, FILE_GENERIC_EXECUTE, FILE_GENERIC_READ,
};
use crate::sid::{self, Sid};

/// The account that runs commands without network access (except the
/// proxy on loopback).
pub const OFFLINE: &str = "MoatSandboxOffline";

/// The account that runs commands with network access.
pub const ONLINE: &str = "MoatSandboxOnline";

/// The local group of both accounts: denied the secrets directory, and the
/// principal of the tier's read and write grants.
pub const GROUP: &str = "MoatSandboxUsers";

/// The description setup gives the accounts it makes; an account by these
/// names without it (and not in the record) is someone else's.
pub const ACCOUNT_COMMENT: &str = "moat sandbox account";

/// The description setup gives the group it makes.
pub const GROUP_COMMENT: &str = "moat sandbox accounts";

/// Under `HKLM`: a DWORD value named after an account, set to
/// [`HIDDEN_VALUE`], keeps it off the sign-in screen.
pub const USER_LIST_KEY: &str =
    r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\SpecialAccounts\UserList";

/// The UserList value that hides an account.
pub const HIDDEN_VALUE: u32 = 0;

/// How many plan-and-run rounds setup needs at most: one to create the
/// principals and learn their SIDs, one to configure them, one that must
/// come back empty. A fourth would mean a step does not stick (a policy
/// undoing it), which the executor reports instead of looping.
pub const MAX_ROUNDS: usize = 3;

/// The length of the accounts' passwords.
pub const PASSWORD_LEN: usize = 32;

/// The punctuation passwords draw from: characters that mean nothing to
/// cmd.exe, PowerShell or `CommandLineToArgvW` inside a word, so a
/// password never needs quoting even if someone pastes it into a shell.
/// (The first character is always a letter, so `-` never starts one.)
pub const PASSWORD_PUNCTUATION: &str = "-_.:+@";

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";

/// Rejection sampling gives up after this many draws in a row land in the
/// rejected tail; with a working source that happens with probability
/// below 2^-800.
const MAX_REJECTIONS: usize = 32;

/// A uniform number below `n` (which is at least 1), without modulo bias:
/// draws in the top `2^32 mod n` values are rejected, so every residue is
/// equally likely.
fn below(n: usize, random: &mut dyn FnMut() -> u32) -> usize {
    let n = n.max(1) as u64;
    let span = 1u64 << 32;
    let limit = span - span % n;
    for _ in 0..MAX_REJECTIONS {
        let r = u64::from(random());
        if r < limit {
            return (r % n) as usize;
        }
    }
    // Only a broken source (one stuck in the tail) gets here; a slightly
    // biased draw beats never returning.
    (u64::from(random()) % n) as usize
}

fn pick(class: &[u8], random: &mut dyn FnMut() -> u32) -> u8 {
    class
        .get(below(class.len(), random))
        .copied()
        .unwrap_or(b'a')
}

/// A new password for a sandbox account: [`PASSWORD_LEN`] characters from
/// upper- and lower-case letters, digits and [`PASSWORD_PUNCTUATION`].
///
/// Windows' complexity policy wants several character classes, so one
/// character of each class is drawn first and the rest from all of them,
/// then the whole is shuffled (Fisher-Yates); every draw is unbiased. The
/// first character is then swapped with the first letter, so a password
/// never starts with punctuation a shell could read as an option. The
/// caller supplies the randomness (`BCryptGenRandom` on Windows), so the
/// same source gives the same password.
///
/// The characters are drawn into one buffer of exactly [`PASSWORD_LEN`]
/// bytes (never reallocated, so no copy is left in freed memory), which
/// [`Password::from_utf8`] wipes once it holds the password.
pub fn password(random: &mut dyn FnMut() -> u32) -> Result<Password, String> {
    let mut all: Vec<u8> = Vec::new();
    all.extend_from_slice(UPPER);
    all.extend_from_slice(LOWER);
    all.extend_from_slice(DIGITS);
    all.extend_from_slice(PASSWORD_PUNCTUATION.as_bytes());
    let mut out: Vec<u8> = Vec::with_capacity(PASSWORD_LEN);
    out.push(pick(UPPER, random));
    out.push(pick(LOWER, random));
    out.push(pick(DIGITS, random));
    out.push(pick(PASSWORD_PUNCTUATION.as_bytes(), random));
    while out.len() < PASSWORD_LEN {
        out.push(pick(&all, random));
    }
    for i in (1..out.len()).rev() {
        let j = below(i + 1, random);
        out.swap(i, j);
    }
    if let Some(first_letter) = out.iter().position(|c| c.is_ascii_alphabetic()) {
        out.swap(0, first_letter);
    }
    // ASCII and never empty, so this does not fail; if it did, the error
    // names it rather than a panic.
    Password::from_utf8(out)
}

// ---------------------------------------------------------------------------
// What exists

/// Whether an account's profile can be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// No profile yet (the account never logged on with one).
    #[default]
    Missing,
    /// The profile loads.
    Ready,
    /// A ProfileList entry that points nowhere (error 1168 at logon).
    Broken,
}

/// Whether the account's password is kept, and works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Secret {
    /// No stored password, or one that does not decrypt.
    #[default]
    Missing,
    /// Stored, and not known to fail.
    Stored,
    /// A logon with the stored password failed (1326, 1330, 1907, 1909):
    /// changed by someone, expired, or locked out.
    Rejected,
    /// Stored, but the file has permissions of its own instead of only
    /// the secrets directory's ([`secret_file_exposed`]): someone may have
    /// read it, so it is replaced like a rejected one.
    Exposed,
}

/// A local account named [`OFFLINE`] or [`ONLINE`], as found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Account {
    pub name: String,
    /// Its description (`usri_comment`): [`ACCOUNT_COMMENT`] if moat made it.
    pub comment: String,
    pub disabled: bool,
    pub locked_out: bool,
    pub password_expired: bool,
    pub password_never_expires: bool,
    /// Whether it is a member of [`GROUP`].
    pub in_group: bool,
    pub profile: Profile,
    /// The password kept in the secrets directory setup is given.
    pub secret: Secret,
}

/// The local group [`GROUP`], as found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Group {
    /// Its description: [`GROUP_COMMENT`] if moat made it.
    pub comment: String,
}

/// A directory's owner and DACL, as found: the secrets directory, and
/// moat's directory and the runner's, which setup protects the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsDir {
    pub path: String,
    pub owner: Option<Sid>,
    /// Its DACL read back as SDDL (`D:P(...)`).
    pub dacl: String,
}

/// What exists on the machine now, as far as setup and removal care.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    /// Local users named [`OFFLINE`] or [`ONLINE`].
    pub accounts: Vec<Account>,
    /// The local group named [`GROUP`], if one exists.
    pub group: Option<Group>,
    /// Names moat wants that exist as another kind of principal (a group
    /// named like an account, a user named like the group, a built-in
    /// alias): taken, since Windows keeps users and groups in one
    /// namespace.
    pub other_principals: Vec<String>,
    /// Account names with a UserList value of [`HIDDEN_VALUE`].
    pub hidden: Vec<String>,
    /// Profiles (ProfileList entries) of SIDs the record names whose
    /// account no longer exists: left by an interrupted removal.
    pub orphan_profiles: Vec<Sid>,
    /// The secrets directory, if it exists: for setup, the one at the path
    /// setup is given (its accounts' [`Secret`]s are read there too); for
    /// removal, the one the record names.
    pub secrets_dir: Option<SecretsDir>,
    /// moat's own directory (`%ProgramData%\moat`), if it exists: the
    /// record's, above the secrets and the runner (see [`base_sddl`]).
    pub base_dir: Option<SecretsDir>,
    /// The runner's directory, if it exists (`setup_run::runner_sddl`).
    pub runner_dir: Option<SecretsDir>,
    /// The rules whose name starts with [`firewall::OFFLINE_PREFIX`], as
    /// [`read_back_command`] prints them.
    pub rules: Vec<Rule>,
    /// The ACL ledger file, if one exists (its path).
    pub ledger: Option<String>,
    /// The setup record, if one exists. An unreadable or newer record
    /// stops setup and removal before they plan (see `record`).
    pub record: Option<Record>,
}

impl State {
    /// The account called `name` (Windows names ignore case).
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn is_hidden(&self, name: &str) -> bool {
        self.hidden.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    fn is_other_principal(&self, name: &str) -> bool {
        self.other_principals
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The SIDs of the principals, once known (looked up by name; Windows
/// makes them when the principal is created). The executor should fill in
/// the SID of every principal that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sids {
    pub offline: Option<Sid>,
    pub online: Option<Sid>,
    pub group: Option<Sid>,
}

impl Sids {
    /// The SID of [`OFFLINE`], [`ONLINE`] or [`GROUP`].
    pub fn get(&self, name: &str) -> Option<Sid> {
        if name.eq_ignore_ascii_case(OFFLINE) {
            self.offline
        } else if name.eq_ignore_ascii_case(ONLINE) {
            self.online
        } else if name.eq_ignore_ascii_case(GROUP) {
            self.group
        } else {
            None
        }
    }

    /// Notes the SID a [`Step::ResolveSid`] found; false for other names.
    pub fn set(&mut self, name: &str, sid: Sid) -> bool {
        let slot = if name.eq_ignore_ascii_case(OFFLINE) {
            &mut self.offline
        } else if name.eq_ignore_ascii_case(ONLINE) {
            &mut self.online
        } else if name.eq_ignore_ascii_case(GROUP) {
            &mut self.group
        } else {
            return false;
        };
        *slot = Some(sid);
        true
    }
}

// ---------------------------------------------------------------------------
// Errors

/// Why setup cannot plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// A name moat needs belongs to something moat did not make.
    Taken { name: String, found: String },
    /// The person's SID cannot be given read access to the secrets.
    Person { sid: String, why: String },
    /// The secrets directory cannot be used.
    SecretsDir { path: String, why: String },
    /// The firewall rules cannot be made (a proxy port of 0, say).
    Firewall(FirewallError),
    /// A principal's SID is not one a moat principal can have.
    Sid { name: String, sid: Sid, why: String },
    /// The firewall read-back is not what [`read_back_command`] prints.
    ReadBack { line: usize, why: String },
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Taken { name, found } => write!(
                f,
                "{} already exists as {}, which moat setup did not make, so moat will not take it \
                 over: rename or delete it (Computer Management, Local Users and Groups), then run \
                 `moat setup` again",
                name, found
            ),
            SetupError::Person { sid, why } => write!(
                f,
                "{} cannot be given read access to the sandbox passwords: {}; run `moat setup` \
                 from your own account (a user, not a group or a service)",
                sid, why
            ),
            SetupError::SecretsDir { path, why } => write!(
                f,
                "the secrets directory {:?} cannot be used: {}; give `moat setup` an absolute \
                 path on a local drive, below its root",
                path, why
            ),
            SetupError::Firewall(e) => write!(
                f,
                "the firewall rules cannot be made: {}; pass the ports the proxy listens on",
                e
            ),
            SetupError::Sid { name, sid, why } => write!(
                f,
                "{} has the SID {}, which {}: the principal was replaced or the lookup went \
                 wrong; run `moat setup --remove`, then `moat setup`",
                name, sid, why
            ),
            SetupError::ReadBack { line, why } => write!(
                f,
                "the firewall rules read back are not in the form moat prints (line {}: {}); \
                 `moat setup --remove` removes the rules by name without reading them, then run \
                 `moat setup`",
                line, why
            ),
        }
    }
}

impl std::error::Error for SetupError {}

impl From<FirewallError> for SetupError {
    fn from(e: FirewallError) -> SetupError {
        SetupError::Firewall(e)
    }
}

// ---------------------------------------------------------------------------
// Setup

/// One setup step, small enough to check on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `NetLocalGroupAdd` with the marker description.
    CreateGroup { name: String, comment: String },
    /// `NetUserAdd` (`USER_PRIV_USER`) with the marker description, created
    /// *disabled* with a throwaway random password (Windows wants one to
    /// satisfy its policy): it cannot log on until [`Step::Enable`], which
    /// comes after its password is stored and, for the offline account,
    /// its firewall rules are verified.
    CreateAccount { name: String, comment: String },
    /// Look up the SID of a principal just made; the plan ends after these
    /// and the executor plans again with the SIDs.
    ResolveSid { name: String },
    /// Create the directory if needed and set its owner and protected DACL
    /// to `sddl` (see [`secrets_sddl`]); `deny` names the group the DACL
    /// denies.
    ProtectSecrets {
        dir: String,
        deny: String,
        sddl: String,
    },
    /// Set `UF_DONT_EXPIRE_PASSWD` (the anchor's 1907/1330 errors).
    NeverExpire { name: String },
    /// Generate a password with [`password`] and set it. The value is not
    /// in the plan: the executor keeps it for the [`Step::StoreSecret`]
    /// that always follows. If the run stops between the two, the next
    /// plan finds no stored secret and sets a new password.
    SetPassword { name: String },
    /// Encrypt the password just set with DPAPI and write it to `path`.
    StoreSecret { account: String, path: String },
    /// `NetLocalGroupAddMembers`.
    AddToGroup { account: String, group: String },
    /// The DWORD [`HIDDEN_VALUE`] named `name` under `HKLM\`[`USER_LIST_KEY`].
    HideAccount { name: String },
    /// Remove the directory a record names for the secrets when setup now
    /// keeps them elsewhere (after the new place holds them).
    RemoveSecrets { dir: String },
    /// Remove one rule by its exact name ([`remove_rule_command`]), before
    /// adding its replacement or because no rule of that name is expected.
    RemoveFirewallRule { name: String },
    /// [`new_rule_command`].
    AddFirewallRule(Rule),
    /// Read the rules back ([`read_back_command`], [`parse_read_back`]) and
    /// fail unless [`firewall::verify`] finds nothing wrong.
    VerifyFirewall { expected: Vec<Rule> },
    /// Clear `UF_LOCKOUT` (after a new password is stored: a lockout means
    /// failed logons, so the old password is not trusted).
    Unlock { name: String },
    /// Clear `UF_ACCOUNTDISABLE`.
    Enable { name: String },
    /// Set `UF_ACCOUNTDISABLE`: the offline account while its firewall
    /// rules are replaced, which removes a rule before adding its
    /// replacement, so it never logs on with a rule missing.
    Disable { name: String },
    /// `DeleteProfileW` for the account's SID: its ProfileList entry is
    /// broken (1168).
    RemoveProfile { name: String },
    /// A logon with profile (`CreateProcessWithLogonW`, `LOGON_WITH_PROFILE`,
    /// `cmd /c exit 0`) with the stored password, so Windows makes the
    /// profile before the first real run.
    CreateProfile { name: String },
    /// Write the record (the last step: it says setup finished).
    WriteRecord(Record),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateGroup { name, .. } => write!(f, "create the local group {}", name),
            Step::CreateAccount { name, .. } => {
                write!(f, "create the local account {} (disabled)", name)
            }
            Step::ResolveSid { name } => write!(f, "look up the SID of {}", name),
            Step::ProtectSecrets { dir, deny, .. } => write!(
                f,
                "protect the secrets directory {} (administrators only, {} denied)",
                dir, deny
            ),
            Step::NeverExpire { name } => {
                write!(f, "make the password of {} never expire", name)
            }
            Step::SetPassword { name } => write!(f, "set a new password for {}", name),
            Step::StoreSecret { account, path } => {
                write!(f, "store the password of {} in {}", account, path)
            }
            Step::AddToGroup { account, group } => write!(f, "add {} to {}", account, group),
            Step::HideAccount { name } => write!(f, "hide {} from the sign-in screen", name),
            Step::RemoveSecrets { dir } => {
                write!(f, "remove the old secrets directory {}", dir)
            }
            Step::RemoveFirewallRule { name } => write!(f, "remove the firewall rule {}", name),
            Step::AddFirewallRule(rule) => write!(f, "add the firewall rule {}", rule.name),
            Step::VerifyFirewall { expected } => {
                write!(f, "read back and check {} firewall rules", expected.len())
            }
            Step::Unlock { name } => write!(f, "unlock {}", name),
            Step::Enable { name } => write!(f, "enable {}", name),
            Step::Disable { name } => write!(f, "disable {}", name),
            Step::RemoveProfile { name } => write!(f, "remove the broken profile of {}", name),
            Step::CreateProfile { name } => write!(f, "create the profile of {}", name),
            Step::WriteRecord(r) => write!(f, "write the setup record (version {})", r.version),
        }
    }
}

/// Whether `steps` ends by resolving SIDs, so the executor must read the
/// state again and plan the rest.
pub fn needs_another_round(steps: &[Step]) -> bool {
    matches!(steps.last(), Some(Step::ResolveSid { .. }))
}

/// Where the password of `account` is kept in `dir`.
pub fn secret_path(dir: &str, account: &str) -> String {
    format!("{}\\{}.secret", dir.trim_end_matches('\\'), account)
}

/// The ACEs of the secrets directory, each inherited by everything in it:
///
/// - **the group: denied everything.** The sandbox accounts must never
///   read a password: the offline account could log on as the online one
///   and leave the firewall behind. The DACL is protected and grants them
///   nothing anyway; the deny still wins if someone later grants Users or
///   Everyone access.
/// - **SYSTEM and Administrators: full control**, so elevated setup and
///   removal can write and delete.
/// - **the person: read and list only.** moat runs unelevated as the
///   person and must decrypt a password to start the runner as a sandbox
///   account. DPAPI's machine scope lets any local process decrypt a blob
///   it can read, so this ACL is what protects it; the person needs no
///   write (setup writes elevated), so a process of theirs cannot replace
///   a secret. Reading gains the person's processes nothing: the sandbox
///   accounts can do less than the person can.
pub fn secrets_aces(group: &Sid, person: &Sid) -> Vec<Ace> {
    vec![
        Ace::deny(*group, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(sid::LOCAL_SYSTEM, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(sid::ADMINISTRATORS, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(
            *person,
            FILE_GENERIC_READ | FILE_GENERIC_EXECUTE,
            AceFlags::SUBTREE,
        ),
    ]
}

/// The security descriptor of the secrets directory: owner Administrators
/// (an owner may always rewrite the DACL, so not the person) and the
/// protected DACL of [`secrets_aces`], inheriting nothing from above.
pub fn secrets_sddl(group: &Sid, person: &Sid) -> String {
    format!("O:BA{}", dacl_string(true, &secrets_aces(group, person)))
}

/// Whether a stored password's file, whose DACL reads back as `dacl`, may
/// be readable by more than the secrets directory allows: setup writes
/// each secret as a new file in the protected directory, so its DACL holds
/// only ACEs inherited from there. A protected DACL, an ACE of its own (a
/// grant someone added) or one that does not parse means exposed.
pub fn secret_file_exposed(dacl: &str) -> bool {
    match Dacl::parse(dacl) {
        Ok(d) => {
            d.protected
                || d.aces.is_empty()
                || d.aces
                    .iter()
                    .any(|a| !a.flags.contains(AceFlags::INHERITED))
        }
        Err(_) => true,
    }
}

/// Whether the secrets directory found has the descriptor setup writes.
fn secrets_dir_right(found: &SecretsDir, group: &Sid, person: &Sid) -> bool {
    dir_matches(found, &secrets_sddl(group, person))
}

/// Whether a directory found matches `sddl`, a descriptor setup writes
/// (`O:BA` and a DACL, as [`secrets_sddl`], [`base_sddl`] and
/// `setup_run::runner_sddl` make them): owner Administrators (or SYSTEM,
/// which owns what it makes), the DACL protected, exactly the expected
/// ACEs in any order (Windows may print the masks and SIDs with their
/// codes). An ACE more (someone's grant), one less, or one inherited from
/// above makes it wrong.
pub fn dir_matches(found: &SecretsDir, sddl: &str) -> bool {
    let want = match sddl.strip_prefix("O:BA").map(Dacl::parse) {
        Some(Ok(d)) => d,
        _ => return false,
    };
    let owner_ok =
        found.owner == Some(sid::ADMINISTRATORS) || found.owner == Some(sid::LOCAL_SYSTEM);
    let dacl = match Dacl::parse(&found.dacl) {
        Ok(d) => d,
        Err(_) => return false,
    };
    let mut got = dacl.aces;
    got.sort();
    let mut want_aces = want.aces;
    want_aces.sort();
    owner_ok && dacl.protected == want.protected && got == want_aces
}

/// The ACEs of moat's own directory (`%ProgramData%\moat`, which holds
/// the setup record, the secrets directory and the runner's directory):
///
/// - **SYSTEM and Administrators: full control**, inherited by what setup
///   writes there (the record);
/// - **the person: read and list**, on the directory and inherited by its
///   files (`OI`): moat, unelevated, reads the setup record there. Not by
///   subdirectories: the secrets and the runner have protected DACLs of
///   their own;
/// - **Users: traverse only**, on the directory itself, not inherited:
///   the sandbox accounts (members of Users) pass through it to the
///   runner's directory, which grants them read and execute. They cannot
///   list it, read the record or create anything in it.
///
/// Nothing else: the DACL is protected, so `%ProgramData%`'s own ACEs,
/// which let Users create files and folders, do not reach it.
pub fn base_aces(person: &Sid) -> Vec<Ace> {
    vec![
        Ace::allow(sid::LOCAL_SYSTEM, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(sid::ADMINISTRATORS, FILE_ALL_ACCESS, AceFlags::SUBTREE),
        Ace::allow(
            *person,
            FILE_GENERIC_READ | FILE_GENERIC_EXECUTE,
            AceFlags::OBJECT_INHERIT,
        ),
        Ace::allow(sid::USERS, FILE_GENERIC_EXECUTE, AceFlags::NONE),
    ]
}

/// The security descriptor of moat's own directory: owner Administrators
/// and the protected DACL of [`base_aces`].
pub fn base_sddl(person: &Sid) -> String {
    format!("O:BA{}", dacl_string(true, &base_aces(person)))
}

/// The person's SID from its text, refused unless it is a user
/// account's (see `setup_steps`).
pub fn person_sid(text: &str) -> Result<Sid, SetupError> {
    check_person(text)
}

fn same_path(a: &str, b: &str) -> bool {
    match (WinPath::parse(a), WinPath::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The person gets read access to the secrets: a user account's SID only.
/// Accepted: local and domain accounts (`S-1-5-21-a-b-c-RID`) with RID 500
/// (the built-in Administrator, which people do sign in as) or 1000 and
/// up, and Microsoft Entra ID users (`S-1-12-1-...`). Refused: well-known
/// SIDs, and RIDs 501-999, which Windows reserves for built-in accounts
/// (Guest) and groups such as 513 (`None` / Domain Users), which every
/// local account, the sandbox ones too, belongs to.
fn check_person(text: &str) -> Result<Sid, SetupError> {
    let bad = |why: String| SetupError::Person {
        sid: text.to_string(),
        why,
    };
    let person: Sid = text
        .parse()
        .map_err(|e| bad(format!("not a SID ({})", e)))?;
    let subs = person.sub_authorities();
    let domain_user = person.authority() == sid::NT_AUTHORITY
        && subs.len() == 5
        && subs.first() == Some(&sid::NT_NON_UNIQUE)
        && subs.last().map_or(false, |rid| *rid == 500 || *rid >= 1000);
    let entra_user = person.authority() == 12 && subs.len() == 5 && subs.first() == Some(&1);
    if domain_user || entra_user {
        Ok(person)
    } else {
        Err(bad(
            "it is not a user account's SID (a group or a well-known SID could include the \
             sandbox accounts)"
                .to_string(),
        ))
    }
}

fn check_secrets_dir(dir: &str) -> Result<String, SetupError> {
    let bad = |why: String| SetupError::SecretsDir {
        path: dir.to_string(),
        why,
    };
    let path = WinPath::parse(dir).map_err(|e| bad(e.to_string()))?;
    if path.is_root() {
        return Err(bad("it is a drive or share root".to_string()));
    }
    let text = path.to_string();
    // A share's ACL is enforced by another machine, and DPAPI's machine
    // scope only decrypts on this one.
    if text.starts_with(r"\\") {
        return Err(bad("it is not on a local drive".to_string()));
    }
    Ok(text)
}

/// The SID the record notes for `name` (an account or the group).
fn recorded_sid(record: Option<&Record>, name: &str) -> Option<Sid> {
    let record = record?;
    let group = record.group.iter();
    record
        .accounts
        .iter()
        .chain(group)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, s)| s.parse().ok())
}

/// Whether a principal moat needs, found with this description, is moat's:
/// by the marker, or because the record names it with the SID it has now.
fn is_ours(
    comment: &str,
    marker: &str,
    record: Option<&Record>,
    name: &str,
    sid: Option<Sid>,
) -> bool {
    comment == marker || (sid.is_some() && recorded_sid(record, name) == sid)
}

/// Refuses, before any step, names that belong to someone else.
fn check_names(existing: &State, sids: &Sids) -> Result<(), SetupError> {
    let record = existing.record.as_ref();
    for name in [GROUP, OFFLINE, ONLINE] {
        if existing.is_other_principal(name) {
            return Err(SetupError::Taken {
                name: name.to_string(),
                found: "a principal of another kind (a user named like the group, a group named \
                        like an account, or a built-in name)"
                    .to_string(),
            });
        }
    }
    if let Some(g) = &existing.group {
        if !is_ours(&g.comment, GROUP_COMMENT, record, GROUP, sids.group) {
            return Err(SetupError::Taken {
                name: GROUP.to_string(),
                found: format!("a local group described as {:?}", g.comment),
            });
        }
    }
    for name in [OFFLINE, ONLINE] {
        if let Some(a) = existing.account(name) {
            if !is_ours(&a.comment, ACCOUNT_COMMENT, record, name, sids.get(name)) {
                return Err(SetupError::Taken {
                    name: name.to_string(),
                    found: format!("a local account described as {:?}", a.comment),
                });
            }
        }
    }
    Ok(())
}

/// The SIDs of present principals must look like local principals moat
/// made, all different, and none the person's.
fn check_sids(known: &[(&str, Sid)], person: &Sid) -> Result<(), SetupError> {
    for (i, (name, sid)) in known.iter().enumerate() {
        let why = if !sid.is_created_account() {
            Some("is not that of a created local principal (S-1-5-21-...-RID, RID 1000 or more)")
        } else if sid == person {
            Some("is the person's own")
        } else if known.iter().skip(i + 1).any(|(_, other)| other == sid) {
            Some("another moat principal has too")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(SetupError::Sid {
                name: name.to_string(),
                sid: *sid,
                why: why.to_string(),
            });
        }
    }
    Ok(())
}

/// The steps that bring the machine from `existing` to a complete setup,
/// in order; empty when nothing is missing.
///
/// `person` is the SID (string form) of the person setting up, who gets
/// read access to the secrets; `proxy_ports` the loopback ports the
/// offline account may reach; `secrets_dir` where the passwords are kept;
/// `sids` the SIDs of the principals that exist.
///
/// Every refusal comes before any step: a name taken by something moat did
/// not make, a person SID that is not a user's, an unusable secrets
/// directory, a proxy port of 0, SIDs that cannot be right.
///
/// While a SID is unknown the plan makes the missing principals and ends
/// with [`Step::ResolveSid`] (see [`needs_another_round`]). Otherwise the
/// order is:
///
/// 1. the secrets directory's protection (before any secret is written);
/// 2. per account: never-expiring password; a new password, stored at
///    once, when none is stored, it was rejected, it expired, the account
///    is locked out, or the directory was found unprotected (its secrets
///    may have been read); group membership; hiding;
/// 3. the old secrets directory, if the record names another;
/// 4. firewall rules: missing ones added, wrong or doubled ones removed
///    and added again (each removal right before its replacement), then
///    unexpected ones with moat's prefix removed (extra block rules go
///    last, so nothing opens early), then a read-back check;
/// 5. per account: unlock, enable, a broken profile removed, a missing one
///    created: only now can the accounts log on, with their passwords
///    stored and the offline account's rules verified;
/// 6. the record, if it does not already say exactly this.
pub fn setup_steps(
    existing: &State,
    person: &str,
    proxy_ports: &[u16],
    secrets_dir: &str,
    sids: &Sids,
) -> Result<Vec<Step>, SetupError> {
    let person = check_person(person)?;
    let dir = check_secrets_dir(secrets_dir)?;
    // Port 0 is refused now, not after the accounts exist.
    firewall::ports_except(proxy_ports)?;
    check_names(existing, sids)?;

    // A SID counts only for a principal that exists: one about to be
    // created gets a new SID.
    let group_sid = existing.group.as_ref().and(sids.group);
    let offline_sid = existing.account(OFFLINE).and(sids.offline);
    let online_sid = existing.account(ONLINE).and(sids.online);
    let mut known: Vec<(&str, Sid)> = Vec::new();
    for (name, sid) in [
        (GROUP, group_sid),
        (OFFLINE, offline_sid),
        (ONLINE, online_sid),
    ] {
        if let Some(sid) = sid {
            known.push((name, sid));
        }
    }
    check_sids(&known, &person)?;

    let mut steps = Vec::new();
    if existing.group.is_none() {
        steps.push(Step::CreateGroup {
            name: GROUP.to_string(),
            comment: GROUP_COMMENT.to_string(),
        });
    }
    for name in [OFFLINE, ONLINE] {
        if existing.account(name).is_none() {
            steps.push(Step::CreateAccount {
                name: name.to_string(),
                comment: ACCOUNT_COMMENT.to_string(),
            });
        }
    }
    let (group_sid, offline_sid, online_sid) = match (group_sid, offline_sid, online_sid) {
        (Some(g), Some(off), Some(on)) => (g, off, on),
        _ => {
            for (name, sid) in [
                (GROUP, group_sid),
                (OFFLINE, offline_sid),
                (ONLINE, online_sid),
            ] {
                if sid.is_none() {
                    steps.push(Step::ResolveSid {
                        name: name.to_string(),
                    });
                }
            }
            return Ok(steps);
        }
    };
    let expected_rules = firewall::offline_rules(&offline_sid, proxy_ports)?;

    // 1. The secrets directory.
    let found_dir = existing
        .secrets_dir
        .as_ref()
        .filter(|d| same_path(&d.path, &dir));
    let dir_right = found_dir.map_or(false, |d| secrets_dir_right(d, &group_sid, &person));
    let dir_exposed = found_dir.is_some() && !dir_right;
    if !dir_right {
        steps.push(Step::ProtectSecrets {
            dir: dir.clone(),
            deny: GROUP.to_string(),
            sddl: secrets_sddl(&group_sid, &person),
        });
    }

    // 2. Credentials, membership, hiding.
    let default_account = Account::default();
    for name in [OFFLINE, ONLINE] {
        let a = existing.account(name).unwrap_or(&default_account);
        if !a.password_never_expires {
            steps.push(Step::NeverExpire {
                name: name.to_string(),
            });
        }
        if a.secret != Secret::Stored || a.password_expired || a.locked_out || dir_exposed {
            steps.push(Step::SetPassword {
                name: name.to_string(),
            });
            steps.push(Step::StoreSecret {
                account: name.to_string(),
                path: secret_path(&dir, name),
            });
        }
        if !a.in_group {
            steps.push(Step::AddToGroup {
                account: name.to_string(),
                group: GROUP.to_string(),
            });
        }
        if !existing.is_hidden(name) {
            steps.push(Step::HideAccount {
                name: name.to_string(),
            });
        }
    }

    // 3. Secrets kept somewhere else before.
    if let Some(old) = existing.record.as_ref().and_then(|r| r.secrets.as_ref()) {
        if !same_path(old, &dir) {
            steps.push(Step::RemoveSecrets { dir: old.clone() });
        }
    }

    // 4. Firewall rules.
    let mut rule_steps = Vec::new();
    for want in &expected_rules {
        let found: Vec<&Rule> = existing
            .rules
            .iter()
            .filter(|r| r.name == want.name)
            .collect();
        let right = found.len() == 1 && found.iter().all(|r| want.differences(r).is_empty());
        if right {
            continue;
        }
        if !found.is_empty() {
            rule_steps.push(Step::RemoveFirewallRule {
                name: want.name.clone(),
            });
        }
        rule_steps.push(Step::AddFirewallRule(want.clone()));
    }
    let mut stray: Vec<&str> = Vec::new();
    for got in &existing.rules {
        let expected = expected_rules.iter().any(|w| w.name == got.name);
        if !expected && !stray.contains(&got.name.as_str()) {
            stray.push(&got.name);
            rule_steps.push(Step::RemoveFirewallRule {
                name: got.name.clone(),
            });
        }
    }
    // An enabled offline account is closed while its rules change.
    let mut closed_offline = false;
    if !rule_steps.is_empty() {
        if existing.account(OFFLINE).map_or(false, |a| !a.disabled) {
            steps.push(Step::Disable {
                name: OFFLINE.to_string(),
            });
            closed_offline = true;
        }
        steps.extend(rule_steps);
        steps.push(Step::VerifyFirewall {
            expected: expected_rules.clone(),
        });
    }

    // 5. Open the accounts.
    for name in [OFFLINE, ONLINE] {
        let a = existing.account(name).unwrap_or(&default_account);
        if a.locked_out {
            steps.push(Step::Unlock {
                name: name.to_string(),
            });
        }
        if a.disabled || (name == OFFLINE && closed_offline) {
            steps.push(Step::Enable {
                name: name.to_string(),
            });
        }
        if a.profile == Profile::Broken {
            steps.push(Step::RemoveProfile {
                name: name.to_string(),
            });
        }
        if a.profile != Profile::Ready {
            steps.push(Step::CreateProfile {
                name: name.to_string(),
            });
        }
    }

    // 6. The record. The same directory spelled differently is no reason
    // to rewrite it.
    let recorded_dir = existing
        .record
        .as_ref()
        .and_then(|r| r.secrets.clone())
        .filter(|old| same_path(old, &dir));
    let wanted = Record {
        version: record::VERSION,
        accounts: vec![
            (OFFLINE.to_string(), offline_sid.to_string()),
            (ONLINE.to_string(), online_sid.to_string()),
        ],
        group: Some((GROUP.to_string(), group_sid.to_string())),
        firewall_rules: expected_rules.iter().map(|r| r.name.clone()).collect(),
        secrets: Some(recorded_dir.unwrap_or(dir)),
        hidden: true,
        // The ACL tier's ledger is not setup's to change.
        ledger: existing.record.as_ref().and_then(|r| r.ledger.clone()),
        // Nor is the runner: the executor installs it (`setup_run`).
        runner: existing.record.as_ref().and_then(|r| r.runner.clone()),
        // What the rules above leave open, for runs to listen on.
        proxy_ports: proxy_ports.to_vec(),
    };
    if existing.record.as_ref() != Some(&wanted) {
        steps.push(Step::WriteRecord(wanted));
    }
    Ok(steps)
}

// ---------------------------------------------------------------------------
// Checking

fn push_once(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// What a setup plan says is missing or wrong, one description each, for
/// `moat setup --check`. `steps` is what [`setup_steps`] planned from
/// `existing` (the machine as read) with `sids`; so the check reports
/// exactly what setup would change, and cannot drift from it: a setup
/// that leaves nothing to do checks clean, and anything setup would redo
/// is named.
///
/// Steps that only carry out a change add nothing of their own: looking
/// up a SID, storing the password just set, closing the offline account
/// while its rules change. The firewall steps are described by
/// [`firewall::verify`] against the rules read back. A principal that
/// exists with another SID than the record's (deleted and made again) is
/// named too. Empty when `steps` is.
pub fn plan_problems(steps: &[Step], existing: &State, sids: &Sids) -> Vec<String> {
    let mut out = Vec::new();
    if steps.is_empty() {
        return out;
    }
    let record = existing.record.as_ref();
    for name in [GROUP, OFFLINE, ONLINE] {
        let exists = if name == GROUP {
            existing.group.is_some()
        } else {
            existing.account(name).is_some()
        };
        if let (true, Some(recorded), Some(now)) =
            (exists, recorded_sid(record, name), sids.get(name))
        {
            if recorded != now {
                out.push(format!(
                    "{} has the SID {}, but the setup record names {}: it was deleted and made \
                     again",
                    name, now, recorded
                ));
            }
        }
    }
    let default_account = Account::default();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::CreateGroup { name, .. } => {
                out.push(format!("the local group {} is missing", name))
            }
            Step::CreateAccount { name, .. } => {
                out.push(format!("the local account {} is missing", name))
            }
            Step::ProtectSecrets { dir, deny, .. } => {
                let found = existing
                    .secrets_dir
                    .as_ref()
                    .map_or(false, |d| same_path(&d.path, dir));
                out.push(if found {
                    format!(
                        "the secrets directory {} does not have the permissions setup sets \
                         (owner Administrators; SYSTEM and Administrators full control, you \
                         read, {} denied, nothing else)",
                        dir, deny
                    )
                } else {
                    format!("the secrets directory {} is missing", dir)
                });
            }
            Step::NeverExpire { name } => out.push(format!("the password of {} can expire", name)),
            Step::SetPassword { name } => {
                let a = existing.account(name).unwrap_or(&default_account);
                let store = match steps.get(i + 1) {
                    Some(Step::StoreSecret { path, .. }) => path.clone(),
                    _ => String::from("the secrets directory"),
                };
                let dir_exposed = existing.secrets_dir.is_some()
                    && steps
                        .iter()
                        .any(|s| matches!(s, Step::ProtectSecrets { .. }));
                let why = if a.secret == Secret::Missing {
                    format!(
                        "the password of {} is not stored in {} (or does not decrypt)",
                        name, store
                    )
                } else if a.secret == Secret::Rejected {
                    format!(
                        "the stored password of {} is refused at logon (changed by someone)",
                        name
                    )
                } else if a.secret == Secret::Exposed {
                    format!(
                        "the stored password of {} has permissions of its own, not only the \
                         secrets directory's: someone may have read it",
                        name
                    )
                } else if a.password_expired {
                    format!("the password of {} has expired", name)
                } else if a.locked_out {
                    format!("{} is locked out", name)
                } else if dir_exposed {
                    format!(
                        "the password of {} may have been read: its directory was not protected",
                        name
                    )
                } else {
                    format!("the password of {} must be set again", name)
                };
                push_once(&mut out, why);
            }
            Step::AddToGroup { account, group } => {
                out.push(format!("{} is not in {}", account, group))
            }
            Step::HideAccount { name } => {
                out.push(format!("{} is not hidden from the sign-in screen", name))
            }
            Step::RemoveSecrets { dir } => out.push(format!(
                "the old secrets directory {} that the record names is still there",
                dir
            )),
            Step::AddFirewallRule(rule) => {
                let checked = steps
                    .iter()
                    .any(|s| matches!(s, Step::VerifyFirewall { .. }));
                if !checked {
                    out.push(format!(
                        "the firewall rule {} is missing or wrong",
                        rule.name
                    ));
                }
            }
            Step::VerifyFirewall { expected } => {
                let found = firewall::verify(expected, &existing.rules);
                if found.is_empty() {
                    out.push(
                        "the firewall rules are not exactly the ones setup writes".to_string(),
                    );
                }
                for problem in found {
                    out.push(format!("firewall: {}", problem));
                }
            }
            Step::Unlock { name } => push_once(&mut out, format!("{} is locked out", name)),
            Step::Enable { name } => {
                // Also planned to reopen the offline account after its rules
                // change; then the rules are what is wrong.
                if existing.account(name).map_or(true, |a| a.disabled) {
                    out.push(format!("{} is disabled", name));
                }
            }
            Step::RemoveProfile { name } => out.push(format!(
                "the profile of {} is broken (its folder is gone: error 1168 at logon)",
                name
            )),
            Step::CreateProfile { name } => {
                let a = existing.account(name).unwrap_or(&default_account);
                if a.profile == Profile::Missing {
                    out.push(format!("{} has no profile yet", name));
                }
            }
            Step::WriteRecord(_) => out.push(match record {
                None => "the setup record is missing".to_string(),
                Some(_) => "the setup record does not say what setup would write (out of date \
                            or edited)"
                    .to_string(),
            }),
            Step::ResolveSid { .. }
            | Step::StoreSecret { .. }
            | Step::RemoveFirewallRule { .. }
            | Step::Disable { .. } => {}
        }
    }
    if needs_another_round(steps) {
        out.push(
            "the rest of setup (passwords, firewall rules, profiles) cannot be checked before \
             these exist"
                .to_string(),
        );
    }
    out
}

// ---------------------------------------------------------------------------
// Removal

/// One removal step. Each is idempotent: what is already gone counts as
/// done, so a removal that stopped can simply run again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemovalStep {
    /// Set `UF_ACCOUNTDISABLE`, so no new run can start as the account.
    DisableAccount { name: String },
    /// End every process running as the account: a run in progress would
    /// otherwise outlive the firewall rules, and a loaded profile cannot
    /// be deleted.
    EndProcesses { name: String },
    /// [`remove_rules_command`]: every rule whose name starts with `prefix`.
    RemoveFirewallRules { prefix: String },
    /// [`remove_rule_command`]: a rule the record names outside the prefix.
    RemoveFirewallRule { name: String },
    /// `DeleteProfileW` (folder and ProfileList entry) for `sid`, or for
    /// the SID the name resolves to when `sid` is `None` (which is why it
    /// comes before [`RemovalStep::DeleteAccount`]).
    DeleteProfile { name: String, sid: Option<Sid> },
    /// `NetUserDel`; when `sid` is given (the account carries no marker and
    /// is moat's only by the record), only if the account still has it.
    DeleteAccount { name: String, sid: Option<Sid> },
    /// Delete the UserList value named `name`.
    UnhideAccount { name: String },
    /// `NetLocalGroupDel`, with the same SID check as accounts.
    DeleteGroup { name: String, sid: Option<Sid> },
    /// Delete the secrets directory and the passwords in it.
    RemoveSecrets { dir: String },
    /// Load the ACL ledger at `ledger`, take off every ACE it records (by
    /// path and SID: `acl_plan::Ledger::removal_plan`, carried out by
    /// `apply`) and the directories it created, then delete the ledger.
    RemoveAces { ledger: String },
    /// Delete the setup record: the last step, so a removal that stops
    /// early still knows what is left.
    DeleteRecord,
}

impl fmt::Display for RemovalStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemovalStep::DisableAccount { name } => write!(f, "disable {}", name),
            RemovalStep::EndProcesses { name } => {
                write!(f, "end the processes running as {}", name)
            }
            RemovalStep::RemoveFirewallRules { prefix } => {
                write!(f, "remove the firewall rules named {}*", prefix)
            }
            RemovalStep::RemoveFirewallRule { name } => {
                write!(f, "remove the firewall rule {}", name)
            }
            RemovalStep::DeleteProfile { name, sid } => match sid {
                Some(sid) => write!(f, "delete the profile of {} ({})", name, sid),
                None => write!(f, "delete the profile of {}", name),
            },
            RemovalStep::DeleteAccount { name, .. } => {
                write!(f, "delete the local account {}", name)
            }
            RemovalStep::UnhideAccount { name } => {
                write!(f, "remove the sign-in screen entry for {}", name)
            }
            RemovalStep::DeleteGroup { name, .. } => write!(f, "delete the local group {}", name),
            RemovalStep::RemoveSecrets { dir } => {
                write!(f, "delete the secrets directory {}", dir)
            }
            RemovalStep::RemoveAces { ledger } => {
                write!(f, "remove the ACEs recorded in {}", ledger)
            }
            RemovalStep::DeleteRecord => f.write_str("delete the setup record"),
        }
    }
}

/// How removal may identify a principal that exists: `Some(None)` by its
/// marker, `Some(Some(sid))` only by the record (to be checked against
/// the SID it has), `None` not moat's.
fn removal_claim(comment: &str, marker: &str, record: &Record, name: &str) -> Option<Option<Sid>> {
    if comment == marker {
        Some(None)
    } else {
        recorded_sid(Some(record), name).map(Some)
    }
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The steps that undo setup: what `record` names and what `existing`
/// shows to be moat's (by marker or prefix), so an interrupted setup
/// leaves nothing behind.
///
/// The order:
/// 1. the accounts are disabled and their processes ended, so that
///    nothing can run as them once their rules are gone;
/// 2. the firewall rules;
/// 3. each account's profile (while its name still resolves), then the
///    account, and profiles left by an earlier removal;
/// 4. the sign-in screen entries, the group;
/// 5. the secrets directory;
/// 6. the ACEs moat added, by SID through the ledger
///    (`acl_plan::Ledger::removal_plan`);
/// 7. the record, last.
///
/// Principals by these names that are not moat's are left alone. After
/// running the steps, read the state again and report [`leftovers`].
pub fn removal_steps(record: &Record, existing: &State) -> Vec<RemovalStep> {
    let mut steps = Vec::new();
    let mut accounts: Vec<(&str, Option<Sid>)> = Vec::new();
    for name in [OFFLINE, ONLINE] {
        if let Some(a) = existing.account(name) {
            if let Some(claim) = removal_claim(&a.comment, ACCOUNT_COMMENT, record, name) {
                accounts.push((name, claim));
            }
        }
    }
    for (name, _) in &accounts {
        steps.push(RemovalStep::DisableAccount {
            name: name.to_string(),
        });
    }
    for (name, _) in &accounts {
        steps.push(RemovalStep::EndProcesses {
            name: name.to_string(),
        });
    }

    let prefix = firewall::OFFLINE_PREFIX;
    let recorded_rules = record
        .firewall_rules
        .iter()
        .chain(existing.record.iter().flat_map(|r| r.firewall_rules.iter()));
    let mut outside: Vec<String> = Vec::new();
    let mut any_rule = !existing.rules.is_empty();
    for name in recorded_rules {
        any_rule = true;
        if !name.starts_with(prefix) {
            push_unique(&mut outside, name.clone());
        }
    }
    if any_rule {
        steps.push(RemovalStep::RemoveFirewallRules {
            prefix: prefix.to_string(),
        });
    }
    for name in outside {
        steps.push(RemovalStep::RemoveFirewallRule { name });
    }

    for (name, claim) in &accounts {
        // A marked account is found by name (the record may hold the SID
        // of an earlier incarnation, whose profile is an orphan).
        steps.push(RemovalStep::DeleteProfile {
            name: name.to_string(),
            sid: *claim,
        });
        steps.push(RemovalStep::DeleteAccount {
            name: name.to_string(),
            sid: *claim,
        });
    }
    for orphan in &existing.orphan_profiles {
        let name = record
            .accounts
            .iter()
            .find(|(_, s)| s.parse::<Sid>().ok() == Some(*orphan))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| orphan.to_string());
        let step = RemovalStep::DeleteProfile {
            name,
            sid: Some(*orphan),
        };
        push_unique(&mut steps, step);
    }
    for name in [OFFLINE, ONLINE] {
        let recorded = record.hidden && recorded_sid(Some(record), name).is_some();
        if existing.is_hidden(name) || recorded {
            steps.push(RemovalStep::UnhideAccount {
                name: name.to_string(),
            });
        }
    }
    if let Some(g) = &existing.group {
        if let Some(claim) = removal_claim(&g.comment, GROUP_COMMENT, record, GROUP) {
            steps.push(RemovalStep::DeleteGroup {
                name: GROUP.to_string(),
                sid: claim,
            });
        }
    }

    let mut dirs: Vec<String> = Vec::new();
    let found_dir = existing.secrets_dir.as_ref().map(|d| &d.path);
    for dir in record.secrets.iter().chain(found_dir) {
        if !dirs.iter().any(|d| same_path(d, dir)) {
            dirs.push(dir.clone());
        }
    }
    for dir in dirs {
        steps.push(RemovalStep::RemoveSecrets { dir });
    }
    let mut ledgers: Vec<String> = Vec::new();
    for ledger in record.ledger.iter().chain(existing.ledger.iter()) {
        if !ledgers.iter().any(|l| same_path(l, ledger)) {
            ledgers.push(ledger.clone());
        }
    }
    for ledger in ledgers {
        steps.push(RemovalStep::RemoveAces { ledger });
    }
    if existing.record.is_some() {
        steps.push(RemovalStep::DeleteRecord);
    }
    steps
}

/// What of moat's setup is still on the machine, one description each:
/// empty after a complete removal. Accounts and the group count when they
/// carry moat's marker or the record still names them; rules by moat's
/// prefix.
pub fn leftovers(existing: &State) -> Vec<String> {
    let mut out = Vec::new();
    let record = existing.record.as_ref();
    for name in [OFFLINE, ONLINE] {
        if let Some(a) = existing.account(name) {
            if a.comment == ACCOUNT_COMMENT || recorded_sid(record, name).is_some() {
                out.push(format!("the local account {}", name));
            }
        }
    }
    if let Some(g) = &existing.group {
        if g.comment == GROUP_COMMENT || recorded_sid(record, GROUP).is_some() {
            out.push(format!("the local group {}", GROUP));
        }
    }
    for sid in &existing.orphan_profiles {
        out.push(format!("the profile of {}", sid));
    }
    for name in [OFFLINE, ONLINE] {
        if existing.is_hidden(name) {
            out.push(format!(
                "the sign-in screen entry for {} (HKLM\\{})",
                name, USER_LIST_KEY
            ));
        }
    }
    for rule in &existing.rules {
        out.push(format!("the firewall rule {}", rule.name));
    }
    if let Some(d) = &existing.secrets_dir {
        out.push(format!("the secrets directory {}", d.path));
    }
    if let Some(l) = &existing.ledger {
        out.push(format!(
            "the ACL ledger {} (the ACEs it records may still be on disk)",
            l
        ));
    }
    if existing.record.is_some() {
        out.push("the setup record".to_string());
    }
    out
}

// ---------------------------------------------------------------------------
// PowerShell

/// `value` as a PowerShell single-quoted string literal, in which nothing
/// is expanded and the only special character is the quote itself,
/// written twice. PowerShell also takes the typographic single quotes
/// (U+2018-U+201B) as quotes, so they are doubled too; otherwise a value
/// holding one could end the literal and run code.
pub fn ps_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A comma-separated list as a PowerShell array of quoted strings
/// (`'a','b'`): the cmdlets take arrays, not one string with commas.
fn ps_list(list: &str) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(ps_quote)
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a rule's address or port list matches anything.
fn is_any(list: &str) -> bool {
    let t = list.trim();
    t.is_empty() || t == "*"
}

fn ps_profile(profiles: u32) -> String {
    const NAMED: [(u32, &str); 3] = [(1, "Domain"), (2, "Private"), (4, "Public")];
    if profiles == firewall::ALL_PROFILES || profiles & 7 == 7 {
        return ps_quote("Any");
    }
    let names: Vec<String> = NAMED
        .iter()
        .filter(|(bit, _)| profiles & bit != 0)
        .map(|(_, n)| ps_quote(n))
        .collect();
    if names.is_empty() {
        // No profile would be no rule at all; for moat's block rules the
        // wider reading is the safe one.
        ps_quote("Any")
    } else {
        names.join(",")
    }
}

const PS_PRELUDE: &str = "$ErrorActionPreference = 'Stop'; ";

/// PowerShell that creates `rule` in the local (persistent) store.
///
/// Every value is a quoted literal ([`ps_quote`]); lists become arrays.
/// Conditions that match anything (`*` addresses or ports) are left out,
/// as Windows refuses port conditions on rules for every protocol. The
/// display name is the rule's name, so `wf.msc` shows what moat made.
/// `-LocalUser` is always given: moat's rules always name an account
/// (`firewall::offline_rules` refuses anything else).
pub fn new_rule_command(rule: &Rule) -> String {
    let direction = match rule.direction {
        Direction::Out => "Outbound",
        Direction::In => "Inbound",
    };
    let action = match rule.action {
        Action::Block => "Block",
        Action::Allow => "Allow",
    };
    let protocol = match rule.protocol {
        Protocol::Any => "Any",
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    };
    let mut cmd = String::from(PS_PRELUDE);
    cmd.push_str("New-NetFirewallRule");
    cmd.push_str(&format!(" -Name {}", ps_quote(&rule.name)));
    cmd.push_str(&format!(" -DisplayName {}", ps_quote(&rule.name)));
    cmd.push_str(&format!(" -Description {}", ps_quote(&rule.description)));
    cmd.push_str(&format!(" -Direction {}", ps_quote(direction)));
    cmd.push_str(&format!(" -Action {}", ps_quote(action)));
    cmd.push_str(&format!(" -Protocol {}", ps_quote(protocol)));
    if !is_any(&rule.remote_addresses) {
        cmd.push_str(&format!(
            " -RemoteAddress {}",
            ps_list(&rule.remote_addresses)
        ));
    }
    if !is_any(&rule.remote_ports) {
        cmd.push_str(&format!(" -RemotePort {}", ps_list(&rule.remote_ports)));
    }
    cmd.push_str(&format!(
        " -LocalUser {}",
        ps_quote(&rule.local_user_authorized_list)
    ));
    cmd.push_str(&format!(" -Profile {}", ps_profile(rule.profiles)));
    cmd.push_str(&format!(
        " -Enabled {}",
        ps_quote(if rule.enabled { "True" } else { "False" })
    ));
    cmd.push_str(" | Out-Null");
    cmd
}

/// Sets `$moatName` to the quoted `text`, for [`rule_filter`].
fn name_assignment(text: &str) -> String {
    format!("$moatName = {}; ", ps_quote(text))
}

/// A pipeline of the rules whose name starts with (or, with `exact`, is)
/// `$moatName`, compared ordinally: `-Name` would read `*` and `[` in a
/// name as wildcards.
fn rule_filter(exact: bool) -> &'static str {
    if exact {
        "Get-NetFirewallRule | Where-Object { [string]::Equals([string]$_.Name, $moatName, \
         [System.StringComparison]::Ordinal) }"
    } else {
        "Get-NetFirewallRule | Where-Object { ([string]$_.Name).StartsWith($moatName, \
         [System.StringComparison]::Ordinal) }"
    }
}

/// A command that removes nothing and fails: an empty prefix or name
/// would select every rule on the machine.
fn refuse_all_rules() -> String {
    format!(
        "{}throw 'moat: refusing to remove firewall rules without a name'",
        PS_PRELUDE
    )
}

/// PowerShell that removes every rule whose name starts with `prefix`
/// (doing nothing when there is none). An empty prefix gives a command
/// that fails instead of removing every rule.
pub fn remove_rules_command(prefix: &str) -> String {
    if prefix.trim().is_empty() {
        return refuse_all_rules();
    }
    remove_selected(prefix, false)
}

/// PowerShell that removes the rule named exactly `name`, if it exists.
pub fn remove_rule_command(name: &str) -> String {
    if name.trim().is_empty() {
        return refuse_all_rules();
    }
    remove_selected(name, true)
}

/// Removes the rules [`rule_filter`] selects, and nothing when it selects
/// none: the cmdlet is only reached with rules in hand.
fn remove_selected(text: &str, exact: bool) -> String {
    format!(
        "{}{}$moatRules = @({}); if ($moatRules.Count -gt 0) {{ $moatRules | \
         Remove-NetFirewallRule }}",
        PS_PRELUDE,
        name_assignment(text),
        rule_filter(exact)
    )
}

/// PowerShell that prints, for every rule whose name starts with `prefix`,
/// one line holding a flat JSON object with the fields of
/// [`firewall::Rule`], in the COM numbering `firewall` uses:
///
/// ```text
/// {"name":"…","description":"…","direction":2,"action":0,"protocol":256,
///  "remote_addresses":"…","remote_ports":"*","local_user_authorized_list":"O:LSD:…",
///  "profiles":2147483647,"enabled":true}
/// ```
///
/// (one line in the output). The cmdlets' enums are mapped in the script:
/// `Outbound` is 2, `Block` 0, protocol `Any` 256; `Any` addresses and
/// ports become `*`, an unset `LocalUser` the empty string, profile `Any`
/// [`firewall::ALL_PROFILES`]. A value the mapping does not know comes out
/// as a number [`parse_read_back`] refuses, never as a guess. Lines are
/// written with `[Console]::Out.WriteLine`, so PowerShell's formatting
/// cannot wrap them.
pub fn read_back_command(prefix: &str) -> String {
    let mut s = String::from(PS_PRELUDE);
    s.push_str(
        "try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch {}; ",
    );
    s.push_str(&name_assignment(prefix));
    s.push_str(rule_filter(false));
    s.push_str(" | ForEach-Object { $r = $_; ");
    s.push_str("$a = Get-NetFirewallAddressFilter -AssociatedNetFirewallRule $r; ");
    s.push_str("$p = Get-NetFirewallPortFilter -AssociatedNetFirewallRule $r; ");
    s.push_str("$s = Get-NetFirewallSecurityFilter -AssociatedNetFirewallRule $r; ");
    s.push_str(
        "$dir = switch ([string]$r.Direction) { 'Inbound' { 1 } 'Outbound' { 2 } default { 0 } }; ",
    );
    s.push_str(
        "$act = switch ([string]$r.Action) { 'Block' { 0 } 'Allow' { 1 } default { -1 } }; ",
    );
    s.push_str(
        "$n = 0; $proto = switch ([string]$p.Protocol) { 'Any' { 256 } 'TCP' { 6 } 'UDP' { 17 } ",
    );
    s.push_str(
        "default { if ([int]::TryParse([string]$p.Protocol, [ref]$n)) { $n } else { -1 } } }; ",
    );
    s.push_str(
        "$ra = @($a.RemoteAddress) -join ','; if ($ra -eq '' -or $ra -eq 'Any') { $ra = '*' }; ",
    );
    s.push_str(
        "$rp = @($p.RemotePort) -join ','; if ($rp -eq '' -or $rp -eq 'Any') { $rp = '*' }; ",
    );
    s.push_str("$lu = [string]$s.LocalUser; if ($lu -eq 'Any') { $lu = '' }; ");
    s.push_str("$prof = [int]$r.Profile; if ($prof -eq 0) { $prof = 2147483647 }; ");
    s.push_str(
        "$json = [ordered]@{ name = [string]$r.Name; description = [string]$r.Description; ",
    );
    s.push_str("direction = [int]$dir; action = [int]$act; protocol = [int]$proto; ");
    s.push_str("remote_addresses = [string]$ra; remote_ports = [string]$rp; ");
    s.push_str("local_user_authorized_list = [string]$lu; profiles = [int]$prof; ");
    s.push_str("enabled = ([string]$r.Enabled -eq 'True') } | ConvertTo-Json -Compress; ");
    s.push_str("[Console]::Out.WriteLine($json) }");
    s
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() + 2) / 3 * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(BASE64.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The arguments for `powershell.exe` that run `script`: passed as
/// `-EncodedCommand` (base64 of UTF-16LE), so neither `CreateProcess`'s
/// command-line rules nor PowerShell's own parsing of `-Command` can
/// change it; no profile, no prompts.
pub fn powershell_arguments(script: &str) -> Vec<String> {
    let utf16: Vec<u8> = script
        .encode_utf16()
        .flat_map(|unit| unit.to_le_bytes())
        .collect();
    [
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(base64(&utf16)))
    .collect()
}

// ---------------------------------------------------------------------------
// The read-back's JSON

/// A value in the read-back: the command prints strings, integers and
/// booleans only.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
        }
    }
}

/// A cursor over one line of JSON. It only moves by whole characters, so
/// no input can make it slice inside one.
struct Reader<'a> {
    rest: &'a str,
    column: usize,
}

impl<'a> Reader<'a> {
    fn new(line: &'a str) -> Reader<'a> {
        Reader {
            rest: line,
            column: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = self.rest.get(c.len_utf8()..).unwrap_or("");
        self.column += 1;
        Some(c)
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("character {}: {}", self.column + 1, what))
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.bump();
        }
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        match self.peek() {
            Some(c) if c == want => {
                self.bump();
                Ok(())
            }
            Some(c) => self.fail(&format!("expected {:?}, found {:?}", want, c)),
            None => self.fail(&format!("the line ends where {:?} was expected", want)),
        }
    }

    /// The whole line as one flat object, keys in order, none twice.
    fn object(&mut self) -> Result<Vec<(String, Value)>, String> {
        self.skip_space();
        self.expect('{')?;
        let mut fields: Vec<(String, Value)> = Vec::new();
        self.skip_space();
        if self.peek() == Some('}') {
            self.bump();
        } else {
            loop {
                self.skip_space();
                if self.peek() != Some('"') {
                    return self.fail("expected a field name in double quotes");
                }
                let key = self.string()?;
                if fields.iter().any(|(k, _)| *k == key) {
                    return self.fail(&format!("the field {:?} appears twice", key));
                }
                self.skip_space();
                self.expect(':')?;
                self.skip_space();
                let value = self.value()?;
                fields.push((key, value));
                self.skip_space();
                match self.peek() {
                    Some(',') => {
                        self.bump();
                    }
                    Some('}') => {
                        self.bump();
                        break;
                    }
                    Some(c) => return self.fail(&format!("expected ',' or '}}', found {:?}", c)),
                    None => return self.fail("the line ends inside the object"),
                }
            }
        }
        self.skip_space();
        match self.peek() {
            Some(c) => self.fail(&format!("{:?} after the end of the object", c)),
            None => Ok(fields),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some('"') => self.string().map(Value::Str),
            Some('t') => self.word("true").map(|_| Value::Bool(true)),
            Some('f') => self.word("false").map(|_| Value::Bool(false)),
            Some('-' | '0'..='9') => self.integer().map(Value::Int),
            Some('n') => self.fail("null, which the read-back command never prints"),
            Some('{' | '[') => {
                self.fail("a nested object or array, which the read-back command never prints")
            }
            Some(c) => self.fail(&format!("{:?} cannot start a value", c)),
            None => self.fail("the line ends where a value was expected"),
        }
    }

    fn word(&mut self, word: &str) -> Result<(), String> {
        if self.rest.starts_with(word) {
            for _ in word.chars() {
                self.bump();
            }
            // `trueish` is not `true`.
            if self.peek().map_or(false, |c| c.is_ascii_alphanumeric()) {
                return self.fail("an unknown word");
            }
            Ok(())
        } else {
            self.fail("an unknown word")
        }
    }

    /// An integer as JSON writes it: optional minus, no leading zeros. The
    /// command prints no fractions or exponents, so they are refused.
    fn integer(&mut self) -> Result<i64, String> {
        let negative = self.peek() == Some('-');
        if negative {
            self.bump();
        }
        let first = match self.peek() {
            Some(c) if c.is_ascii_digit() => c,
            _ => return self.fail("a minus sign without digits"),
        };
        let mut value: i64 = 0;
        let mut digits = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            if digits == 1 && first == '0' {
                return self.fail("a number with a leading zero");
            }
            self.bump();
            digits += 1;
            let d = i64::from(d);
            let next = value.checked_mul(10).and_then(|v| {
                if negative {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            });
            value = match next {
                Some(v) => v,
                None => return self.fail("a number too large"),
            };
        }
        if matches!(self.peek(), Some('.' | 'e' | 'E')) {
            return self.fail("a fraction or exponent; the read-back prints integers only");
        }
        Ok(value)
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut value = 0u32;
        for _ in 0..4 {
            match self.bump().and_then(|c| c.to_digit(16)) {
                Some(d) => value = value * 16 + d,
                None => return self.fail("a \\u escape without four hex digits"),
            }
        }
        Ok(value)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            let c = match self.bump() {
                Some(c) => c,
                None => return self.fail("the line ends inside a string"),
            };
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.escape()?),
                c if (c as u32) < 0x20 => {
                    return self.fail("a control character not escaped inside a string")
                }
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        let c = match self.bump() {
            Some(c) => c,
            None => return self.fail("the line ends inside an escape"),
        };
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by a low one.
                    if !self.rest.starts_with("\\u") {
                        return self.fail("a lone high surrogate");
                    }
                    self.bump();
                    self.bump();
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return self.fail("a high surrogate without its low half");
                    }
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..0xE000).contains(&unit) {
                    return self.fail("a lone low surrogate");
                } else {
                    unit
                };
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return self.fail("an escape that is not a character"),
                }
            }
            other => return self.fail(&format!("the unknown escape \\{}", other)),
        })
    }
}

const RULE_FIELDS: [&str; 10] = [
    "name",
    "description",
    "direction",
    "action",
    "protocol",
    "remote_addresses",
    "remote_ports",
    "local_user_authorized_list",
    "profiles",
    "enabled",
];

/// A rule from one object: exactly the ten fields, each of its type.
/// Unknown fields are refused: the command and this parser ship together,
/// so one means they disagree, and guessing could pass a rule unchecked.
fn rule_from(fields: Vec<(String, Value)>) -> Result<Rule, String> {
    for (key, _) in &fields {
        if !RULE_FIELDS.contains(&key.as_str()) {
            return Err(format!("unknown field {:?}", key));
        }
    }
    for want in RULE_FIELDS {
        if !fields.iter().any(|(k, _)| k == want) {
            return Err(format!("the field {:?} is missing", want));
        }
    }
    let get =
        |key: &str| -> Option<&Value> { fields.iter().find(|(k, _)| k == key).map(|(_, v)| v) };
    let text = |key: &str| -> Result<String, String> {
        match get(key) {
            Some(Value::Str(s)) => Ok(s.clone()),
            Some(v) => Err(format!("{} is {}, not a string", key, v.kind())),
            None => Err(format!("the field {:?} is missing", key)),
        }
    };
    let int = |key: &str| -> Result<i64, String> {
        match get(key) {
            Some(Value::Int(n)) => Ok(*n),
            Some(v) => Err(format!("{} is {}, not an integer", key, v.kind())),
            None => Err(format!("the field {:?} is missing", key)),
        }
    };
    let small = |key: &str| -> Result<i32, String> {
        let n = int(key)?;
        i32::try_from(n).map_err(|_| format!("{} {} is out of range", key, n))
    };
    let direction = small("direction")?;
    let action = small("action")?;
    let protocol = small("protocol")?;
    let profiles = int("profiles")?;
    let enabled = match get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("enabled is {}, not a boolean", v.kind())),
        None => return Err("the field \"enabled\" is missing".to_string()),
    };
    Ok(Rule {
        name: text("name")?,
        description: text("description")?,
        direction: Direction::from_number(direction)
            .ok_or_else(|| format!("direction {} is neither 1 (in) nor 2 (out)", direction))?,
        action: Action::from_number(action)
            .ok_or_else(|| format!("action {} is neither 0 (block) nor 1 (allow)", action))?,
        protocol: Protocol::from_number(protocol).ok_or_else(|| {
            format!(
                "protocol {} is not one moat writes (256 any, 6 TCP, 17 UDP)",
                protocol
            )
        })?,
        remote_addresses: text("remote_addresses")?,
        remote_ports: text("remote_ports")?,
        local_user_authorized_list: text("local_user_authorized_list")?,
        profiles: u32::try_from(profiles)
            .map_err(|_| format!("profiles {} is out of range", profiles))?,
        enabled,
    })
}

/// Reads what [`read_back_command`] prints: one JSON object per line
/// (`\n` or `\r\n`), blank lines skipped, a leading byte-order mark
/// ignored. Strict: flat objects of strings, integers and booleans with
/// exactly [`Rule`]'s fields (unknown ones refused, see `rule_from`), all
/// of JSON's string escapes including surrogate pairs, nothing after the
/// object. An error names the line. No input makes it panic.
pub fn parse_read_back(json_lines: &str) -> Result<Vec<Rule>, SetupError> {
    let text = json_lines.strip_prefix('\u{feff}').unwrap_or(json_lines);
    let mut rules = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.chars().all(|c| matches!(c, ' ' | '\t' | '\r')) {
            continue;
        }
        let fail = |why: String| SetupError::ReadBack { line: i + 1, why };
        let fields = Reader::new(line).object().map_err(fail)?;
        rules.push(rule_from(fields).map_err(fail)?);
    }
    Ok(rules)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::firewall::{offline_rules, verify, OFFLINE_PREFIX};

    const PERSON: &str = "S-1-5-21-7-8-9-1001";
    const DIR: &str = r"C:\ProgramData\moat\secrets";
    const PORTS: &[u16] = &[3128];

    fn sid(text: &str) -> Sid {
        text.parse().unwrap()
    }

    fn person() -> Sid {
        sid(PERSON)
    }

    // -- A fake machine that carries out steps, to check plans converge.

    struct Machine {
        state: State,
        sids: Sids,
        next_rid: u32,
        /// The account whose password was set and not yet stored.
        unstored: Option<String>,
        log: Vec<Step>,
    }

    impl Machine {
        fn new(state: State, sids: Sids) -> Machine {
            Machine {
                state,
                sids,
                next_rid: 2000,
                unstored: None,
                log: Vec::new(),
            }
        }

        fn account_mut(&mut self, name: &str) -> &mut Account {
            self.state
                .accounts
                .iter_mut()
                .find(|a| a.name == name)
                .unwrap()
        }

        fn rules_verified(&self) -> bool {
            let expected = offline_rules(&self.sids.offline.unwrap(), PORTS).unwrap();
            verify(&expected, &self.state.rules).is_empty()
        }

        fn run(&mut self, step: &Step) {
            // A password set must be stored by the very next step.
            if let Some(pending) = self.unstored.take() {
                assert_eq!(
                    step,
                    &Step::StoreSecret {
                        account: pending.clone(),
                        path: secret_path(DIR, &pending)
                    }
                );
            }
            match step {
                Step::CreateGroup { comment, .. } => {
                    assert!(self.state.group.is_none());
                    self.state.group = Some(Group {
                        comment: comment.clone(),
                    });
                    self.sids.group = None;
                }
                Step::CreateAccount { name, comment } => {
                    assert!(self.state.account(name).is_none());
                    self.state.accounts.push(Account {
                        name: name.clone(),
                        comment: comment.clone(),
                        disabled: true,
                        ..Account::default()
                    });
                }
                Step::ResolveSid { name } => {
                    self.next_rid += 1;
                    let new = sid(&format!("S-1-5-21-1-2-3-{}", self.next_rid));
                    assert!(self.sids.set(name, new));
                }
                Step::ProtectSecrets { dir, sddl, .. } => {
                    let dacl = sddl.strip_prefix("O:BA").unwrap().to_string();
                    self.state.secrets_dir = Some(SecretsDir {
                        path: dir.clone(),
                        owner: Some(sid::ADMINISTRATORS),
                        dacl,
                    });
                }
                Step::NeverExpire { name } => {
                    let a = self.account_mut(name);
                    a.password_never_expires = true;
                    a.password_expired = false;
                }
                Step::SetPassword { name } => {
                    assert!(self.state.secrets_dir.is_some(), "unprotected secrets");
                    let a = self.account_mut(name);
                    a.password_expired = false;
                    a.secret = Secret::Missing;
                    self.unstored = Some(name.clone());
                }
                Step::StoreSecret { account, .. } => {
                    self.account_mut(account).secret = Secret::Stored;
                }
                Step::AddToGroup { account, .. } => self.account_mut(account).in_group = true,
                Step::HideAccount { name } => self.state.hidden.push(name.clone()),
                Step::RemoveSecrets { .. } => {}
                Step::RemoveFirewallRule { name } => {
                    let open = self.state.account(OFFLINE).map_or(false, |a| !a.disabled);
                    assert!(
                        !open,
                        "a firewall rule removed while the offline account is enabled"
                    );
                    self.state.rules.retain(|r| r.name != *name)
                }
                Step::AddFirewallRule(rule) => self.state.rules.push(rule.clone()),
                Step::VerifyFirewall { expected } => {
                    assert!(verify(expected, &self.state.rules).is_empty())
                }
                Step::Unlock { name } => {
                    let a = self.account_mut(name);
                    assert_eq!(a.secret, Secret::Stored, "unlocked before a new password");
                    a.locked_out = false;
                }
                Step::Enable { name } => {
                    if name == OFFLINE {
                        assert!(self.rules_verified(), "offline enabled before its rules");
                    }
                    let a = self.account_mut(name);
                    assert_eq!(a.secret, Secret::Stored);
                    a.disabled = false;
                }
                Step::Disable { name } => self.account_mut(name).disabled = true,
                Step::RemoveProfile { name } => {
                    let a = self.account_mut(name);
                    assert_eq!(a.profile, Profile::Broken);
                    a.profile = Profile::Missing;
                }
                Step::CreateProfile { name } => {
                    let a = self.account_mut(name);
                    assert!(!a.disabled && !a.locked_out, "a logon that cannot work");
                    assert_eq!(a.secret, Secret::Stored);
                    assert_eq!(a.profile, Profile::Missing);
                    a.profile = Profile::Ready;
                }
                Step::WriteRecord(r) => self.state.record = Some(r.clone()),
            }
            self.log.push(step.clone());
        }

        /// Plans and runs until a plan comes back empty; the rounds that
        /// had steps.
        fn converge(&mut self) -> Vec<Vec<Step>> {
            let mut rounds = Vec::new();
            for _ in 0..MAX_ROUNDS {
                let steps = setup_steps(&self.state, PERSON, PORTS, DIR, &self.sids).unwrap();
                if steps.is_empty() {
                    return rounds;
                }
                for step in &steps {
                    self.run(step);
                }
                rounds.push(steps);
            }
            panic!("setup did not converge: {:?}", rounds);
        }
    }

    fn done_machine() -> Machine {
        let mut m = Machine::new(State::default(), Sids::default());
        m.converge();
        m
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    // -- Passwords

    /// A password's text, for checking what was drawn.
    fn text(p: &Password) -> String {
        String::from_utf16(p.units()).unwrap()
    }

    /// A deterministic source (xorshift), different per seed.
    fn source(seed: u32) -> impl FnMut() -> u32 {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }
    }

    #[test]
    fn passwords_have_the_length_classes_and_only_safe_characters() {
        let forbidden = "\"' ^%&|<>`$!()[]{};,=*?#~\\/";
        for seed in 0..2000 {
            let mut random = source(seed);
            let p = text(&password(&mut random).unwrap());
            assert_eq!(p.len(), PASSWORD_LEN, "{}", p);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()), "{}", p);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()), "{}", p);
            assert!(p.chars().any(|c| c.is_ascii_digit()), "{}", p);
            assert!(p.chars().any(|c| PASSWORD_PUNCTUATION.contains(c)), "{}", p);
            assert!(
                p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || PASSWORD_PUNCTUATION.contains(c)),
                "{}",
                p
            );
            assert!(!p.chars().any(|c| forbidden.contains(c)), "{}", p);
            assert!(p.starts_with(|c: char| c.is_ascii_alphabetic()), "{}", p);
            assert!(!p.to_ascii_lowercase().contains("moatsandbox"));
        }
    }

    #[test]
    fn passwords_are_deterministic_per_source_and_differ_across_sources() {
        let a = text(&password(&mut source(7)).unwrap());
        let b = text(&password(&mut source(7)).unwrap());
        let c = text(&password(&mut source(8)).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut seen: Vec<String> = (0..200)
            .map(|n| text(&password(&mut source(n)).unwrap()))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn password_draws_are_unbiased_and_broken_sources_do_not_hang() {
        // 62 + 6 = 68 symbols: 2^32 mod 68 = 52, so the top 52 values are
        // rejected and the next draw used.
        let mut calls = 0u32;
        let mut tail_then_zero = || {
            calls += 1;
            if calls % 2 == 1 {
                u32::MAX
            } else {
                0
            }
        };
        assert_eq!(below(68, &mut tail_then_zero), 0);
        assert_eq!(below(68, &mut || 4_294_967_243), 4_294_967_243 % 68);
        // A source stuck in the tail still ends.
        let p = text(&password(&mut || u32::MAX).unwrap());
        assert_eq!(p.len(), PASSWORD_LEN);
        let p = text(&password(&mut || 0).unwrap());
        assert_eq!(p.len(), PASSWORD_LEN);
        assert!(p.starts_with(|c: char| c.is_ascii_alphabetic()));
        // Over many draws every symbol of a class turns up.
        let mut random = source(99);
        let mut counts = [0usize; 10];
        for _ in 0..10_000 {
            counts[below(10, &mut random)] += 1;
        }
        assert!(
            counts.iter().all(|n| (800..1200).contains(n)),
            "{:?}",
            counts
        );
    }

    #[test]
    fn names_fit_windows_limits() {
        // sAMAccountName: at most 20 characters.
        assert!(OFFLINE.len() <= 20 && ONLINE.len() <= 20);
        assert!(GROUP.len() <= 256);
    }

    // -- Setup plans

    #[test]
    fn a_fresh_machine_gets_every_step_in_order() {
        let mut m = Machine::new(State::default(), Sids::default());
        let rounds = m.converge();
        assert_eq!(rounds.len(), 2, "{:?}", rounds);
        assert_eq!(
            rounds[0],
            vec![
                Step::CreateGroup {
                    name: s(GROUP),
                    comment: s(GROUP_COMMENT)
                },
                Step::CreateAccount {
                    name: s(OFFLINE),
                    comment: s(ACCOUNT_COMMENT)
                },
                Step::CreateAccount {
                    name: s(ONLINE),
                    comment: s(ACCOUNT_COMMENT)
                },
                Step::ResolveSid { name: s(GROUP) },
                Step::ResolveSid { name: s(OFFLINE) },
                Step::ResolveSid { name: s(ONLINE) },
            ]
        );
        assert!(needs_another_round(&rounds[0]));
        assert!(!needs_another_round(&rounds[1]));
        let group = m.sids.group.unwrap();
        let offline = m.sids.offline.unwrap();
        let online = m.sids.online.unwrap();
        let rules = offline_rules(&offline, PORTS).unwrap();
        assert_eq!(rules.len(), 3);
        let mut want = vec![Step::ProtectSecrets {
            dir: s(DIR),
            deny: s(GROUP),
            sddl: secrets_sddl(&group, &person()),
        }];
        for name in [OFFLINE, ONLINE] {
            want.extend([
                Step::NeverExpire { name: s(name) },
                Step::SetPassword { name: s(name) },
                Step::StoreSecret {
                    account: s(name),
                    path: format!(r"{}\{}.secret", DIR, name),
                },
                Step::AddToGroup {
                    account: s(name),
                    group: s(GROUP),
                },
                Step::HideAccount { name: s(name) },
            ]);
        }
        want.extend(rules.iter().cloned().map(Step::AddFirewallRule));
        want.push(Step::VerifyFirewall {
            expected: rules.clone(),
        });
        for name in [OFFLINE, ONLINE] {
            want.extend([
                Step::Enable { name: s(name) },
                Step::CreateProfile { name: s(name) },
            ]);
        }
        want.push(Step::WriteRecord(Record {
            version: record::VERSION,
            accounts: vec![
                (s(OFFLINE), offline.to_string()),
                (s(ONLINE), online.to_string()),
            ],
            group: Some((s(GROUP), group.to_string())),
            firewall_rules: rules.iter().map(|r| r.name.clone()).collect(),
            secrets: Some(s(DIR)),
            hidden: true,
            ledger: None,
            runner: None,
            proxy_ports: PORTS.to_vec(),
        }));
        assert_eq!(rounds[1], want);
        // Every step describes itself.
        for step in m.log.iter() {
            assert!(!step.to_string().is_empty());
        }
    }

    #[test]
    fn a_complete_setup_plans_nothing() {
        let m = done_machine();
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert_eq!(steps, vec![]);
        // The same directory spelled differently is the same directory.
        let steps = setup_steps(
            &m.state,
            PERSON,
            PORTS,
            r"c:/programdata/MOAT/secrets/",
            &m.sids,
        )
        .unwrap();
        assert_eq!(steps, vec![]);
        // Windows prints the DACL with codes and in its own order.
        let mut state = m.state.clone();
        let group = m.sids.group.unwrap();
        state.secrets_dir.as_mut().unwrap().dacl = format!(
            "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(D;OICI;FA;;;{})(A;OICI;0x1200a9;;;{})",
            group, PERSON
        );
        assert_eq!(
            setup_steps(&state, PERSON, PORTS, DIR, &m.sids).unwrap(),
            vec![]
        );
    }

    #[test]
    fn a_taken_name_is_refused_before_any_step() {
        let foreign_account = State {
            accounts: vec![Account {
                name: s("moatsandboxonline"),
                comment: s("Bob's build account"),
                ..Account::default()
            }],
            ..State::default()
        };
        let foreign_group = State {
            group: Some(Group {
                comment: s("people who like boats"),
            }),
            ..State::default()
        };
        let other_kind = State {
            other_principals: vec![s(OFFLINE)],
            ..State::default()
        };
        let sids = Sids {
            online: Some(sid("S-1-5-21-1-2-3-1500")),
            group: Some(sid("S-1-5-21-1-2-3-1501")),
            ..Sids::default()
        };
        for (state, name) in [
            (foreign_account, ONLINE),
            (foreign_group, GROUP),
            (other_kind, OFFLINE),
        ] {
            match setup_steps(&state, PERSON, PORTS, DIR, &sids) {
                Err(SetupError::Taken { name: got, found }) => {
                    assert_eq!(got, name);
                    let text = SetupError::Taken {
                        name: got.clone(),
                        found,
                    }
                    .to_string();
                    assert!(
                        text.contains(name) && text.contains("moat setup"),
                        "{}",
                        text
                    );
                }
                other => panic!("{} was not refused: {:?}", name, other),
            }
        }
    }

    #[test]
    fn a_recorded_principal_without_the_marker_is_still_ours() {
        let mut m = done_machine();
        for a in &mut m.state.accounts {
            a.comment = s("renamed by an admin");
        }
        m.state.group.as_mut().unwrap().comment = String::new();
        assert_eq!(
            setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap(),
            vec![]
        );
        // ...but not when the SID differs from the recorded one.
        let mut sids = m.sids;
        sids.online = Some(sid("S-1-5-21-1-2-3-4444"));
        assert!(matches!(
            setup_steps(&m.state, PERSON, PORTS, DIR, &sids),
            Err(SetupError::Taken { name, .. }) if name == ONLINE
        ));
    }

    #[test]
    fn partial_state_gets_only_the_missing_steps() {
        // The group was made and protected the directory, then setup
        // stopped.
        let group = sid("S-1-5-21-1-2-3-1100");
        let state = State {
            group: Some(Group {
                comment: s(GROUP_COMMENT),
            }),
            secrets_dir: Some(SecretsDir {
                path: s(DIR),
                owner: Some(sid::ADMINISTRATORS),
                dacl: secrets_sddl(&group, &person())[4..].to_string(),
            }),
            ..State::default()
        };
        let sids = Sids {
            group: Some(group),
            ..Sids::default()
        };
        let mut m = Machine::new(state, sids);
        let rounds = m.converge();
        assert_eq!(
            rounds[0],
            vec![
                Step::CreateAccount {
                    name: s(OFFLINE),
                    comment: s(ACCOUNT_COMMENT)
                },
                Step::CreateAccount {
                    name: s(ONLINE),
                    comment: s(ACCOUNT_COMMENT)
                },
                Step::ResolveSid { name: s(OFFLINE) },
                Step::ResolveSid { name: s(ONLINE) },
            ]
        );
        assert!(!rounds[1].iter().any(|s| matches!(
            s,
            Step::CreateGroup { .. } | Step::ProtectSecrets { .. } | Step::ResolveSid { .. }
        )));
        assert!(matches!(rounds[1][0], Step::NeverExpire { .. }));

        // Accounts and rules fine, one account not hidden and out of the
        // group: just those two steps.
        let mut m = done_machine();
        m.state.hidden.retain(|h| h != ONLINE);
        m.state.accounts[1].in_group = false;
        assert_eq!(
            setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap(),
            vec![
                Step::AddToGroup {
                    account: s(ONLINE),
                    group: s(GROUP)
                },
                Step::HideAccount { name: s(ONLINE) },
            ]
        );
    }

    #[test]
    fn logon_failures_reset_the_password_and_reopen_the_account() {
        let mut m = done_machine();
        {
            let off = m.account_mut(OFFLINE);
            off.locked_out = true; // 1909
        }
        {
            let on = m.account_mut(ONLINE);
            on.password_expired = true; // 1907
            on.password_never_expires = false;
        }
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::SetPassword { name: s(OFFLINE) },
                Step::StoreSecret {
                    account: s(OFFLINE),
                    path: secret_path(DIR, OFFLINE)
                },
                Step::NeverExpire { name: s(ONLINE) },
                Step::SetPassword { name: s(ONLINE) },
                Step::StoreSecret {
                    account: s(ONLINE),
                    path: secret_path(DIR, ONLINE)
                },
                Step::Unlock { name: s(OFFLINE) },
            ]
        );
        for step in &steps {
            m.run(step);
        }
        assert!(m.converge().is_empty());

        // A rejected password (1326) and a disabled account (1331).
        let mut m = done_machine();
        m.account_mut(ONLINE).secret = Secret::Rejected;
        m.account_mut(ONLINE).disabled = true;
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::SetPassword { name: s(ONLINE) },
                Step::StoreSecret {
                    account: s(ONLINE),
                    path: secret_path(DIR, ONLINE)
                },
                Step::Enable { name: s(ONLINE) },
            ]
        );
    }

    #[test]
    fn a_broken_profile_is_removed_and_made_again() {
        let mut m = done_machine();
        m.account_mut(OFFLINE).profile = Profile::Broken; // 1168
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::RemoveProfile { name: s(OFFLINE) },
                Step::CreateProfile { name: s(OFFLINE) },
            ]
        );
        for step in &steps {
            m.run(step);
        }
        assert!(m.converge().is_empty());
    }

    #[test]
    fn an_exposed_secrets_directory_is_fixed_and_the_passwords_rotated() {
        let mut m = done_machine();
        let dir = m.state.secrets_dir.as_mut().unwrap();
        // Someone granted Users read access.
        dir.dacl.push_str("(A;OICI;FR;;;BU)");
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert!(matches!(steps[0], Step::ProtectSecrets { .. }));
        let set: Vec<&Step> = steps
            .iter()
            .filter(|s| matches!(s, Step::SetPassword { .. }))
            .collect();
        assert_eq!(set.len(), 2);
        for step in &steps {
            m.run(step);
        }
        assert!(m.converge().is_empty());

        // An owner that is not Administrators or SYSTEM.
        let mut m = done_machine();
        m.state.secrets_dir.as_mut().unwrap().owner = Some(person());
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert!(matches!(steps[0], Step::ProtectSecrets { .. }));
        // An unprotected DACL, or one that does not parse.
        for dacl in ["D:AI(A;OICI;FA;;;SY)", "garbage"] {
            let mut m = done_machine();
            m.state.secrets_dir.as_mut().unwrap().dacl = dacl.to_string();
            let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
            assert!(matches!(steps[0], Step::ProtectSecrets { .. }), "{}", dacl);
        }
    }

    #[test]
    fn secrets_directory_descriptor() {
        let group = sid("S-1-5-21-1-2-3-1100");
        let text = secrets_sddl(&group, &person());
        assert_eq!(
            text,
            "O:BAD:P(D;OICI;0x1f01ff;;;S-1-5-21-1-2-3-1100)(A;OICI;0x1f01ff;;;S-1-5-18)\
             (A;OICI;0x1f01ff;;;S-1-5-32-544)(A;OICI;0x1200a9;;;S-1-5-21-7-8-9-1001)"
        );
        let dacl = Dacl::parse(text.strip_prefix("O:BA").unwrap()).unwrap();
        assert!(dacl.protected);
        // The deny comes first (canonical order) and covers everything.
        assert_eq!(dacl.aces[0].kind, crate::sddl::AceKind::Deny);
        assert_eq!(dacl.aces[0].mask, FILE_ALL_ACCESS);
        // The person can read, not write.
        let mine = dacl.explicit_for(&person());
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].mask & crate::sddl::FILE_WRITE_DATA, 0);
        assert_eq!(mine[0].mask & crate::sddl::WRITE_DAC, 0);
        assert_ne!(mine[0].mask & crate::sddl::FILE_READ_DATA, 0);
        assert_eq!(
            secret_path(r"C:\x\", OFFLINE),
            r"C:\x\MoatSandboxOffline.secret"
        );
    }

    #[test]
    fn moat_directory_descriptor() {
        let text = base_sddl(&person());
        assert_eq!(
            text,
            "O:BAD:P(A;OICI;0x1f01ff;;;S-1-5-18)(A;OICI;0x1f01ff;;;S-1-5-32-544)\
             (A;OI;0x1200a9;;;S-1-5-21-7-8-9-1001)(A;;0x1200a0;;;S-1-5-32-545)"
        );
        let dacl = Dacl::parse(text.strip_prefix("O:BA").unwrap()).unwrap();
        // Nothing inherited from %ProgramData%, whose ACEs let Users create.
        assert!(dacl.protected);
        assert_eq!(dacl.aces.len(), 4);
        let write = crate::sddl::FILE_WRITE_DATA
            | crate::sddl::FILE_APPEND_DATA
            | crate::sddl::DELETE
            | crate::sddl::FILE_DELETE_CHILD
            | crate::sddl::WRITE_DAC
            | crate::sddl::WRITE_OWNER;
        for ace in &dacl.aces {
            assert_eq!(ace.kind, crate::sddl::AceKind::Allow);
            let admin = ace.sid == sid::LOCAL_SYSTEM || ace.sid == sid::ADMINISTRATORS;
            if admin {
                assert_eq!(ace.mask, FILE_ALL_ACCESS);
                assert_eq!(ace.flags, AceFlags::SUBTREE);
            } else {
                // Only SYSTEM and Administrators may change anything.
                assert_eq!(ace.mask & write, 0, "{}", ace);
            }
        }
        // The person reads the record: this directory and its files, not
        // the subdirectories (which have DACLs of their own anyway).
        let mine = dacl.explicit_for(&person());
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].flags, AceFlags::OBJECT_INHERIT);
        assert_ne!(mine[0].mask & crate::sddl::FILE_READ_DATA, 0);
        // Users (the sandbox accounts) only pass through to the runner:
        // no listing, no reading, and nothing inherited below.
        let users = dacl.explicit_for(&sid::USERS);
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].flags, AceFlags::NONE);
        assert_eq!(users[0].mask, FILE_GENERIC_EXECUTE);
        assert_eq!(users[0].mask & crate::sddl::FILE_READ_DATA, 0);
        // Nobody else, the sandbox group included.
        assert!(dacl.aces.iter().all(|a| [
            sid::LOCAL_SYSTEM,
            sid::ADMINISTRATORS,
            sid::USERS,
            person()
        ]
        .contains(&a.sid)));
        // A person who is not a user is refused, as by setup.
        assert!(person_sid("S-1-1-0").is_err());
        assert_eq!(person_sid(PERSON).unwrap(), person());
    }

    #[test]
    fn a_secret_with_permissions_of_its_own_is_exposed() {
        // What a secret written in the protected directory reads back as:
        // the directory's ACEs, inherited.
        let inherited = "D:AI(D;ID;FA;;;S-1-5-21-1-2-3-1100)(A;ID;FA;;;SY)(A;ID;FA;;;BA)\
                         (A;ID;0x1200a9;;;S-1-5-21-7-8-9-1001)";
        assert!(!secret_file_exposed(inherited));
        for bad in [
            // Someone's grant on the file itself.
            format!("{}(A;;FR;;;BU)", inherited),
            // Cut off from the directory's ACEs.
            inherited.replacen("D:AI", "D:PAI", 1),
            // No ACE at all (everyone denied, but not setup's file).
            s("D:AI"),
            s("not a DACL"),
        ] {
            assert!(secret_file_exposed(&bad), "{}", bad);
        }
        // Exposed secrets are replaced, as rejected ones are.
        let mut m = done_machine();
        m.state.accounts[1].secret = Secret::Exposed;
        let name = m.state.accounts[1].name.clone();
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert_eq!(steps[0], Step::SetPassword { name: name.clone() });
        let problems = plan_problems(&steps, &m.state, &m.sids);
        // Named once, for what it is (not as a missing password).
        assert_eq!(problems.len(), 1, "{:?}", problems);
        assert!(
            problems[0].starts_with(&format!(
                "the stored password of {} has permissions of its own",
                name
            )),
            "{:?}",
            problems
        );
    }

    #[test]
    fn directories_match_their_descriptor_exactly() {
        let want = base_sddl(&person());
        let dacl = want.strip_prefix("O:BA").unwrap().to_string();
        let found = |owner: Sid, dacl: &str| SecretsDir {
            path: s(r"C:\ProgramData\moat"),
            owner: Some(owner),
            dacl: dacl.to_string(),
        };
        assert!(dir_matches(&found(sid::ADMINISTRATORS, &dacl), &want));
        assert!(dir_matches(&found(sid::LOCAL_SYSTEM, &dacl), &want));
        // Windows prints well-known masks and SIDs with their codes, in
        // its own order.
        let coded = "D:PAI(A;;0x1200a0;;;BU)(A;OI;0x1200a9;;;S-1-5-21-7-8-9-1001)\
                     (A;OICI;FA;;;BA)(A;OICI;FA;;;SY)";
        assert!(dir_matches(&found(sid::ADMINISTRATORS, coded), &want));
        // Wrong: another owner, no protection, an ACE more, one less, an
        // inherited one, a broader grant, garbage.
        assert!(!dir_matches(&found(person(), &dacl), &want));
        let mut none = found(sid::ADMINISTRATORS, &dacl);
        none.owner = None;
        assert!(!dir_matches(&none, &want));
        for bad in [
            dacl.replacen("D:P", "D:", 1),
            format!("{}(A;OICI;0x1301bf;;;S-1-5-32-545)", dacl),
            dacl.replace("(A;;0x1200a0;;;S-1-5-32-545)", ""),
            format!("{}(A;OICIID;0x1200a9;;;S-1-5-32-545)", dacl),
            dacl.replace(
                "(A;;0x1200a0;;;S-1-5-32-545)",
                "(A;OICI;0x1200a9;;;S-1-5-32-545)",
            ),
            s("garbage"),
            s(""),
        ] {
            assert!(
                !dir_matches(&found(sid::ADMINISTRATORS, &bad), &want),
                "{}",
                bad
            );
        }
        // A descriptor not in setup's form matches nothing.
        assert!(!dir_matches(&found(sid::ADMINISTRATORS, &dacl), "O:SYD:P"));
        assert!(!dir_matches(&found(sid::ADMINISTRATORS, &dacl), "nonsense"));
    }

    #[test]
    fn a_converged_machine_has_no_problems_and_each_gap_is_named() {
        let m = done_machine();
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert!(steps.is_empty());
        assert!(plan_problems(&steps, &m.state, &m.sids).is_empty());

        // A fresh machine: the principals, and a note that the rest waits.
        let fresh = State::default();
        let steps = setup_steps(&fresh, PERSON, PORTS, DIR, &Sids::default()).unwrap();
        let problems = plan_problems(&steps, &fresh, &Sids::default());
        assert_eq!(
            problems,
            vec![
                s("the local group MoatSandboxUsers is missing"),
                s("the local account MoatSandboxOffline is missing"),
                s("the local account MoatSandboxOnline is missing"),
                s(
                    "the rest of setup (passwords, firewall rules, profiles) cannot be checked \
                   before these exist"
                ),
            ]
        );

        // A changed proxy port: the rule's difference is named, and the
        // offline account closed meanwhile is not called disabled.
        let steps = setup_steps(&m.state, PERSON, &[8080], DIR, &m.sids).unwrap();
        assert!(steps.contains(&Step::Enable { name: s(OFFLINE) }));
        let problems = plan_problems(&steps, &m.state, &m.sids);
        assert!(
            !problems.iter().any(|p| p.contains("disabled")),
            "{:?}",
            problems
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("firewall: rule moat-offline-block-loopback-tcp: ")),
            "{:?}",
            problems
        );

        // An exposed secrets directory: its permissions, and why the
        // passwords are set again.
        let mut exposed = done_machine();
        exposed.state.secrets_dir.as_mut().unwrap().dacl = s("D:AI(A;OICI;FA;;;SY)");
        let steps = setup_steps(&exposed.state, PERSON, PORTS, DIR, &exposed.sids).unwrap();
        let problems = plan_problems(&steps, &exposed.state, &exposed.sids);
        assert!(
            problems[0].contains("does not have the permissions"),
            "{:?}",
            problems
        );
        assert!(
            problems.iter().any(|p| p.contains("may have been read")),
            "{:?}",
            problems
        );

        // A broken profile is named once, not also as a missing one.
        let mut broken = done_machine();
        broken.state.accounts[0].profile = Profile::Broken;
        let steps = setup_steps(&broken.state, PERSON, PORTS, DIR, &broken.sids).unwrap();
        let problems = plan_problems(&steps, &broken.state, &broken.sids);
        assert_eq!(problems.len(), 1, "{:?}", problems);
        assert!(problems[0].contains("error 1168"), "{:?}", problems);
    }

    #[test]
    fn firewall_drift_is_repaired_narrowly() {
        // The proxy moved: only the TCP rule is replaced, remove then add.
        let mut m = done_machine();
        let offline = m.sids.offline.unwrap();
        let new_ports = [8080u16];
        let steps = setup_steps(&m.state, PERSON, &new_ports, DIR, &m.sids).unwrap();
        let tcp = offline_rules(&offline, &new_ports).unwrap()[2].clone();
        let rules = offline_rules(&offline, &new_ports).unwrap();
        // Same rule names; the record names the new ports last.
        let mut record = m.state.record.clone().unwrap();
        record.proxy_ports = new_ports.to_vec();
        // The offline account is closed while it happens.
        assert_eq!(
            steps,
            vec![
                Step::Disable {
                    name: OFFLINE.to_string()
                },
                Step::RemoveFirewallRule {
                    name: tcp.name.clone()
                },
                Step::AddFirewallRule(tcp),
                Step::VerifyFirewall { expected: rules },
                Step::Enable {
                    name: OFFLINE.to_string()
                },
                Step::WriteRecord(record),
            ]
        );

        // A deleted rule, a duplicated one, a disabled one and a stray one.
        m.state.rules.remove(0);
        let copy = m.state.rules[0].clone();
        m.state.rules.push(copy);
        m.state.rules[1].enabled = false;
        let mut stray = m.state.rules[1].clone();
        stray.name = format!("{}old-allow", OFFLINE_PREFIX);
        m.state.rules.push(stray);
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        let names: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            vec![
                "disable MoatSandboxOffline",
                "add the firewall rule moat-offline-block-remote",
                "remove the firewall rule moat-offline-block-loopback-udp",
                "add the firewall rule moat-offline-block-loopback-udp",
                "remove the firewall rule moat-offline-block-loopback-tcp",
                "add the firewall rule moat-offline-block-loopback-tcp",
                "remove the firewall rule moat-offline-old-allow",
                "read back and check 3 firewall rules",
                "enable MoatSandboxOffline",
            ]
        );
        for step in &steps {
            m.run(step);
        }
        assert!(m.converge().is_empty());
    }

    #[test]
    fn an_older_record_or_a_moved_secrets_directory() {
        let mut m = done_machine();
        m.state.record.as_mut().unwrap().version = 0;
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert_eq!(steps.len(), 1);
        assert!(matches!(&steps[0], Step::WriteRecord(r) if r.version == record::VERSION));

        // The ledger the ACL tier keeps in the record survives rewriting.
        let mut m = done_machine();
        let ledger = s(r"C:\ProgramData\moat\acl-ledger");
        m.state.record.as_mut().unwrap().ledger = Some(ledger.clone());
        m.state.record.as_mut().unwrap().hidden = false;
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        assert!(matches!(&steps[..], [Step::WriteRecord(r)] if r.ledger == Some(ledger.clone())));

        // Secrets kept elsewhere before: stored anew, the old place removed.
        let mut m = done_machine();
        m.state.record.as_mut().unwrap().secrets = Some(s(r"D:\old\secrets"));
        m.state.secrets_dir = None;
        for a in &mut m.state.accounts {
            a.secret = Secret::Missing;
        }
        let steps = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        let stores = steps
            .iter()
            .position(|s| matches!(s, Step::StoreSecret { account, .. } if account == ONLINE))
            .unwrap();
        let removal = steps
            .iter()
            .position(|s| matches!(s, Step::RemoveSecrets { dir } if dir == r"D:\old\secrets"))
            .unwrap();
        assert!(stores < removal);
        assert!(matches!(steps[0], Step::ProtectSecrets { .. }));
    }

    #[test]
    fn bad_inputs_are_refused_before_any_step() {
        let fresh = State::default();
        let none = Sids::default();
        for person in [
            "",
            "not a sid",
            "S-1-1-0",
            "S-1-5-11",
            "S-1-5-32-545",
            "S-1-5-18",
            "S-1-5-21-1-2-3-513",
            "S-1-5-21-1-2-3-999",
        ] {
            assert!(
                matches!(
                    setup_steps(&fresh, person, PORTS, DIR, &none),
                    Err(SetupError::Person { .. })
                ),
                "{}",
                person
            );
        }
        for ok in [
            "S-1-5-21-1-2-3-500",
            "S-1-5-21-1-2-3-1001",
            "S-1-12-1-1-2-3-4",
        ] {
            assert!(setup_steps(&fresh, ok, PORTS, DIR, &none).is_ok(), "{}", ok);
        }
        for dir in [
            "",
            "relative\\dir",
            "C:\\",
            r"\\server\share\secrets",
            r"C:\a\..\b",
        ] {
            assert!(
                matches!(
                    setup_steps(&fresh, PERSON, PORTS, dir, &none),
                    Err(SetupError::SecretsDir { .. })
                ),
                "{:?}",
                dir
            );
        }
        assert_eq!(
            setup_steps(&fresh, PERSON, &[3128, 0], DIR, &none),
            Err(SetupError::Firewall(FirewallError::PortZero))
        );

        // SIDs that cannot be the principals'.
        let m = done_machine();
        let mut same = m.sids;
        same.online = same.offline;
        let mut builtin = m.sids;
        builtin.group = Some(sid::USERS);
        let mut persons = m.sids;
        persons.offline = Some(person());
        // (The principals carry the marker, so they are moat's whatever
        // the record says; the SIDs themselves are what is wrong.)
        for (sids, why) in [
            (same, "another moat principal"),
            (builtin, "not that of a created local principal"),
            (persons, "the person's own"),
        ] {
            let err = setup_steps(&m.state, PERSON, PORTS, DIR, &sids).unwrap_err();
            assert!(matches!(err, SetupError::Sid { .. }), "{:?}", err);
            assert!(err.to_string().contains(why), "{}", err);
            assert!(err.to_string().contains("moat setup --remove"));
        }
    }

    #[test]
    fn errors_name_the_problem_and_the_fix() {
        let errors = [
            SetupError::Taken {
                name: s(OFFLINE),
                found: s("a local account"),
            },
            SetupError::Person {
                sid: s("S-1-1-0"),
                why: s("a group"),
            },
            SetupError::SecretsDir {
                path: s("x"),
                why: s("relative"),
            },
            SetupError::Firewall(FirewallError::PortZero),
            SetupError::Sid {
                name: s(GROUP),
                sid: sid::USERS,
                why: s("is built in"),
            },
            SetupError::ReadBack {
                line: 3,
                why: s("bad"),
            },
        ];
        for e in &errors {
            let text = e.to_string();
            assert!(
                text.contains("moat setup") || text.contains("pass"),
                "{}",
                text
            );
            let _: &dyn std::error::Error = e;
        }
        assert!(errors[5].to_string().contains("line 3"));
    }

    // -- Removal

    fn run_removal(state: &mut State, steps: &[RemovalStep]) {
        for step in steps {
            match step {
                RemovalStep::DisableAccount { name } | RemovalStep::EndProcesses { name } => {
                    assert!(state.account(name).is_some())
                }
                RemovalStep::RemoveFirewallRules { prefix } => {
                    state.rules.retain(|r| !r.name.starts_with(prefix.as_str()))
                }
                RemovalStep::RemoveFirewallRule { name } => state.rules.retain(|r| r.name != *name),
                RemovalStep::DeleteProfile { sid, .. } => {
                    if let Some(sid) = sid {
                        state.orphan_profiles.retain(|p| p != sid);
                    }
                }
                RemovalStep::DeleteAccount { name, .. } => {
                    state.accounts.retain(|a| a.name != *name)
                }
                RemovalStep::UnhideAccount { name } => state.hidden.retain(|h| h != name),
                RemovalStep::DeleteGroup { .. } => state.group = None,
                RemovalStep::RemoveSecrets { .. } => state.secrets_dir = None,
                RemovalStep::RemoveAces { .. } => state.ledger = None,
                RemovalStep::DeleteRecord => state.record = None,
            }
        }
    }

    #[test]
    fn removal_undoes_everything_in_order() {
        let m = done_machine();
        let mut state = m.state.clone();
        state.ledger = Some(s(r"C:\ProgramData\moat\acl-ledger"));
        let record = state.record.clone().unwrap();
        let steps = removal_steps(&record, &state);
        assert_eq!(
            steps,
            vec![
                RemovalStep::DisableAccount { name: s(OFFLINE) },
                RemovalStep::DisableAccount { name: s(ONLINE) },
                RemovalStep::EndProcesses { name: s(OFFLINE) },
                RemovalStep::EndProcesses { name: s(ONLINE) },
                RemovalStep::RemoveFirewallRules {
                    prefix: s(OFFLINE_PREFIX)
                },
                RemovalStep::DeleteProfile {
                    name: s(OFFLINE),
                    sid: None
                },
                RemovalStep::DeleteAccount {
                    name: s(OFFLINE),
                    sid: None
                },
                RemovalStep::DeleteProfile {
                    name: s(ONLINE),
                    sid: None
                },
                RemovalStep::DeleteAccount {
                    name: s(ONLINE),
                    sid: None
                },
                RemovalStep::UnhideAccount { name: s(OFFLINE) },
                RemovalStep::UnhideAccount { name: s(ONLINE) },
                RemovalStep::DeleteGroup {
                    name: s(GROUP),
                    sid: None
                },
                RemovalStep::RemoveSecrets { dir: s(DIR) },
                RemovalStep::RemoveAces {
                    ledger: s(r"C:\ProgramData\moat\acl-ledger")
                },
                RemovalStep::DeleteRecord,
            ]
        );
        for step in &steps {
            assert!(!step.to_string().is_empty());
        }
        assert!(!leftovers(&state).is_empty());
        run_removal(&mut state, &steps);
        assert_eq!(leftovers(&state), Vec::<String>::new());
        // Nothing left: nothing to do.
        assert_eq!(removal_steps(&Record::default(), &state), vec![]);
    }

    #[test]
    fn removal_finds_what_an_interrupted_setup_left_without_a_record() {
        // Round 1 ran, round 2 stopped after the first rule.
        let mut m = Machine::new(State::default(), Sids::default());
        let round1 = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        for step in &round1 {
            m.run(step);
        }
        let round2 = setup_steps(&m.state, PERSON, PORTS, DIR, &m.sids).unwrap();
        let first_rule = round2
            .iter()
            .position(|s| matches!(s, Step::AddFirewallRule(_)))
            .unwrap();
        for step in &round2[..=first_rule] {
            m.run(step);
        }
        assert!(m.state.record.is_none());
        let mut state = m.state.clone();
        let steps = removal_steps(&Record::default(), &state);
        assert!(steps.contains(&RemovalStep::RemoveFirewallRules {
            prefix: s(OFFLINE_PREFIX)
        }));
        assert!(steps.contains(&RemovalStep::DeleteGroup {
            name: s(GROUP),
            sid: None
        }));
        assert!(steps.contains(&RemovalStep::RemoveSecrets { dir: s(DIR) }));
        assert!(!steps.contains(&RemovalStep::DeleteRecord));
        run_removal(&mut state, &steps);
        assert_eq!(leftovers(&state), Vec::<String>::new());
    }

    #[test]
    fn removal_leaves_other_peoples_principals_alone() {
        let state = State {
            accounts: vec![Account {
                name: s(OFFLINE),
                comment: s("someone else's"),
                ..Account::default()
            }],
            group: Some(Group {
                comment: s("someone else's"),
            }),
            ..State::default()
        };
        assert_eq!(removal_steps(&Record::default(), &state), vec![]);
        assert_eq!(leftovers(&state), Vec::<String>::new());

        // Named by the record but without the marker: deleted only if the
        // SID still matches.
        let recorded = sid("S-1-5-21-1-2-3-1200");
        let record = Record {
            version: record::VERSION,
            accounts: vec![(s(OFFLINE), recorded.to_string())],
            firewall_rules: vec![s("legacy-rule")],
            ..Record::default()
        };
        let steps = removal_steps(&record, &state);
        assert!(steps.contains(&RemovalStep::DeleteAccount {
            name: s(OFFLINE),
            sid: Some(recorded)
        }));
        assert!(steps.contains(&RemovalStep::RemoveFirewallRule {
            name: s("legacy-rule")
        }));
        assert!(!steps
            .iter()
            .any(|s| matches!(s, RemovalStep::DeleteGroup { .. })));
    }

    #[test]
    fn leftovers_name_each_thing() {
        let m = done_machine();
        let mut state = m.state.clone();
        let orphan = sid("S-1-5-21-1-2-3-1300");
        state.orphan_profiles.push(orphan);
        state.ledger = Some(s(r"C:\l"));
        let left = leftovers(&state);
        for want in [
            "the local account MoatSandboxOffline",
            "the local account MoatSandboxOnline",
            "the local group MoatSandboxUsers",
            "the profile of S-1-5-21-1-2-3-1300",
            "the firewall rule moat-offline-block-remote",
            "the secrets directory C:\\ProgramData\\moat\\secrets",
            "the setup record",
        ] {
            assert!(left.iter().any(|l| l == want), "{} not in {:?}", want, left);
        }
        assert!(left.iter().any(|l| l.contains("sign-in screen")));
        assert!(left.iter().any(|l| l.contains("ACL ledger")));
        // An orphan profile is removed by SID with its recorded name.
        let record = state.record.clone().unwrap();
        let mut record = record;
        record
            .accounts
            .push((s("MoatSandboxOld"), orphan.to_string()));
        let steps = removal_steps(&record, &state);
        assert!(steps.contains(&RemovalStep::DeleteProfile {
            name: s("MoatSandboxOld"),
            sid: Some(orphan)
        }));
    }

    // -- PowerShell

    #[test]
    fn ps_quote_keeps_everything_inside_the_literal() {
        assert_eq!(ps_quote(""), "''");
        assert_eq!(ps_quote("plain"), "'plain'");
        assert_eq!(ps_quote("it's"), "'it''s'");
        assert_eq!(
            ps_quote("'; Remove-Item C:\\ -Recurse; '"),
            "'''; Remove-Item C:\\ -Recurse; '''"
        );
        // Typographic quotes end PowerShell literals too.
        assert_eq!(
            ps_quote("\u{2019}; evil; \u{2018}"),
            "'\u{2019}\u{2019}; evil; \u{2018}\u{2018}'"
        );
        // Nothing else is special inside single quotes.
        assert_eq!(
            ps_quote("$env:X `n \"x\" $(evil)"),
            "'$env:X `n \"x\" $(evil)'"
        );
        for nasty in [
            "'; Remove-Item C:\\ -Recurse; '",
            "''",
            "'''",
            "a'b\u{201A}c\u{201B}d",
            "\u{2018}\u{2019}\u{201A}\u{201B}'",
            "x'\n'y",
        ] {
            assert!(literal_round_trips(&ps_quote(nasty), nasty), "{:?}", nasty);
        }
    }

    /// Reads a PowerShell single-quoted literal the way PowerShell does:
    /// any of the five quote characters ends it unless doubled. Whether
    /// the whole text is one literal whose value is `want`.
    fn literal_round_trips(text: &str, want: &str) -> bool {
        let is_quote =
            |c: char| matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}');
        let mut chars = text.chars().peekable();
        if !chars.next().map_or(false, is_quote) {
            return false;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            if is_quote(c) {
                if chars.peek().map_or(false, |n| is_quote(*n)) {
                    value.push(chars.next().unwrap());
                } else {
                    // The literal ends: it must be the end of the text.
                    return chars.next().is_none() && value == want;
                }
            } else {
                value.push(c);
            }
        }
        false
    }

    fn offline() -> Sid {
        sid("S-1-5-21-100-200-300-1004")
    }

    #[test]
    fn new_rule_commands_for_the_offline_rules() {
        let rules = offline_rules(&offline(), &[3128, 1080]).unwrap();
        let remote = new_rule_command(&rules[0]);
        assert!(remote.starts_with("$ErrorActionPreference = 'Stop'; New-NetFirewallRule -Name 'moat-offline-block-remote' -DisplayName 'moat-offline-block-remote' -Description 'moat: keeps"));
        assert!(
            remote.contains(
                " -Direction 'Outbound' -Action 'Block' -Protocol 'Any' -RemoteAddress \
             '0.0.0.0-126.255.255.255','128.0.0.0-255.255.255.255','::',\
             '::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' -LocalUser \
             'O:LSD:(A;;CC;;;S-1-5-21-100-200-300-1004)' -Profile 'Any' -Enabled 'True' | Out-Null"
            ),
            "{}",
            remote
        );
        assert!(!remote.contains("-RemotePort"));
        let udp = new_rule_command(&rules[1]);
        assert!(
            udp.contains(
                "-Protocol 'UDP' -RemoteAddress '127.0.0.0-127.255.255.255','::1' -LocalUser"
            ),
            "{}",
            udp
        );
        let tcp = new_rule_command(&rules[2]);
        assert!(
            tcp.contains(
                "-Protocol 'TCP' -RemoteAddress '127.0.0.0-127.255.255.255','::1' \
             -RemotePort '1-1079','1081-3127','3129-65535' -LocalUser"
            ),
            "{}",
            tcp
        );

        // Hostile values stay inside their literals.
        let mut evil = rules[0].clone();
        evil.name = "x'; Remove-Item C:\\ -Recurse; '".into();
        evil.description = "\u{2019}; Stop-Computer; \u{2019}".into();
        let cmd = new_rule_command(&evil);
        assert!(cmd.contains("-Name 'x''; Remove-Item C:\\ -Recurse; '''"));
        assert!(cmd.contains("-Description '\u{2019}\u{2019}; Stop-Computer; \u{2019}\u{2019}'"));

        // Other shapes render too.
        let mut other = rules[2].clone();
        other.direction = Direction::In;
        other.action = Action::Allow;
        other.enabled = false;
        other.profiles = 1 | 4;
        let cmd = new_rule_command(&other);
        assert!(cmd.contains("-Direction 'Inbound' -Action 'Allow'"));
        assert!(cmd.contains("-Profile 'Domain','Public' -Enabled 'False'"));
        other.profiles = 0;
        assert!(new_rule_command(&other).contains("-Profile 'Any'"));
    }

    #[test]
    fn remove_and_read_back_commands() {
        let cmd = remove_rules_command(OFFLINE_PREFIX);
        assert_eq!(
            cmd,
            "$ErrorActionPreference = 'Stop'; $moatName = 'moat-offline-'; $moatRules = \
             @(Get-NetFirewallRule | Where-Object { ([string]$_.Name).StartsWith($moatName, \
             [System.StringComparison]::Ordinal) }); if ($moatRules.Count -gt 0) { $moatRules | \
             Remove-NetFirewallRule }"
        );
        for empty in ["", "  "] {
            assert!(remove_rules_command(empty).contains("throw"));
            assert!(!remove_rules_command(empty).contains("Remove-NetFirewallRule"));
            assert!(remove_rule_command(empty).contains("throw"));
        }
        let one = remove_rule_command("moat-offline-a'b");
        assert!(one.contains("$moatName = 'moat-offline-a''b'"));
        assert!(one.contains("[string]::Equals("));
        let read = read_back_command("it's-");
        assert!(read.contains("$moatName = 'it''s-'"));
        assert!(read.contains("ConvertTo-Json -Compress"));
        assert!(read.contains("[Console]::Out.WriteLine($json)"));
        for field in RULE_FIELDS {
            assert!(read.contains(&format!(" {} = ", field)), "{}", field);
        }
        // Balanced braces and parentheses (outside literals, which hold none).
        let opens = read.matches('{').count();
        assert_eq!(opens, read.matches('}').count());
        assert_eq!(read.matches('(').count(), read.matches(')').count());
    }

    #[test]
    fn powershell_runs_scripts_encoded() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
        let args = powershell_arguments("a");
        assert_eq!(args[args.len() - 2], "-EncodedCommand");
        // "a" in UTF-16LE is 61 00.
        assert_eq!(args[args.len() - 1], "YQA=");
        assert!(args.contains(&s("-NonInteractive")));
        assert!(args.contains(&s("-NoProfile")));
    }

    // -- The read-back's JSON

    /// A rule as the read-back command prints it, escaping as Windows
    /// PowerShell 5.1's ConvertTo-Json does (`'`, `<`, `>`, `&` as \u);
    /// the setup executor's simulated machine prints its rules with it.
    pub(crate) fn render(rule: &Rule) -> String {
        fn text(s: &str) -> String {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\'' | '<' | '>' | '&' => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        format!(
            "{{\"name\":{},\"description\":{},\"direction\":{},\"action\":{},\"protocol\":{},\
             \"remote_addresses\":{},\"remote_ports\":{},\"local_user_authorized_list\":{},\
             \"profiles\":{},\"enabled\":{}}}",
            text(&rule.name),
            text(&rule.description),
            rule.direction.number(),
            rule.action.number(),
            rule.protocol.number(),
            text(&rule.remote_addresses),
            text(&rule.remote_ports),
            text(&rule.local_user_authorized_list),
            rule.profiles,
            rule.enabled
        )
    }

    fn sample_rules() -> Vec<Rule> {
        let mut rules = offline_rules(&offline(), &[3128]).unwrap();
        let mut odd = rules[1].clone();
        odd.name = "moat-offline-odd".into();
        odd.description = "quotes \" ' \\ <tag> & tab\t newline\n é 😀 ’".into();
        odd.direction = Direction::In;
        odd.action = Action::Allow;
        odd.enabled = false;
        odd.profiles = 0;
        rules.push(odd);
        rules
    }

    #[test]
    fn read_back_round_trips() {
        let rules = sample_rules();
        let lines: Vec<String> = rules.iter().map(render).collect();
        assert_eq!(parse_read_back(&lines.join("\n")).unwrap(), rules);
        // CRLF, a BOM, blank lines and spaces between tokens.
        let text = format!("\u{feff}{}\r\n\r\n  \r\n", lines.join("\r\n"));
        assert_eq!(parse_read_back(&text).unwrap(), rules);
        let spaced = lines[0]
            .replace("\":", "\" : ")
            .replace(",\"", " ,\t\"")
            .replace('{', "{ ");
        assert_eq!(parse_read_back(&spaced).unwrap(), vec![rules[0].clone()]);
        assert_eq!(parse_read_back("").unwrap(), vec![]);
        assert_eq!(parse_read_back("\r\n\n").unwrap(), vec![]);
        // A surrogate pair and \/ escapes as some encoders write them.
        let escaped = lines[3]
            .replace("😀", "\\ud83d\\ude00")
            .replace("é", "\\u00E9");
        assert_eq!(parse_read_back(&escaped).unwrap()[0], rules[3]);
        // Read back as Windows would print it, verify() is happy.
        let expected = offline_rules(&offline(), &[3128]).unwrap();
        let got = parse_read_back(&lines[..3].join("\n")).unwrap();
        assert!(verify(&expected, &got).is_empty());
    }

    #[test]
    fn read_back_truncated_anywhere_is_an_error_or_a_prefix() {
        let rules = sample_rules();
        let text = rules.iter().map(render).collect::<Vec<_>>().join("\r\n");
        let bytes = text.as_bytes();
        for end in 0..=bytes.len() {
            let cut = String::from_utf8_lossy(&bytes[..end]);
            match parse_read_back(&cut) {
                Ok(got) => {
                    let last = cut.rsplit('\n').next().unwrap_or("");
                    assert!(
                        last.trim().is_empty() || last.trim_end().ends_with('}'),
                        "a cut line was accepted at {}",
                        end
                    );
                    assert_eq!(got[..], rules[..got.len()], "at {}", end);
                }
                Err(e) => assert!(matches!(e, SetupError::ReadBack { .. })),
            }
        }
    }

    #[test]
    fn malformed_read_back_is_refused_with_the_line() {
        let good = render(&sample_rules()[0]);
        let cases: Vec<String> = vec![
            s("{"),
            s("}"),
            s("[]"),
            s("null"),
            s("{}"),
            good.replace("\"direction\":2", "\"direction\":\"2\""),
            good.replace("\"direction\":2", "\"direction\":2.0"),
            good.replace("\"direction\":2", "\"direction\":2e0"),
            good.replace("\"direction\":2", "\"direction\":02"),
            good.replace("\"direction\":2", "\"direction\":-"),
            good.replace("\"direction\":2", "\"direction\":3"),
            good.replace("\"direction\":2", "\"direction\":99999999999"),
            good.replace("\"direction\":2", "\"direction\":99999999999999999999999"),
            good.replace("\"action\":0", "\"action\":true"),
            good.replace("\"protocol\":256", "\"protocol\":1"),
            good.replace("\"profiles\":2147483647", "\"profiles\":-1"),
            good.replace("\"enabled\":true", "\"enabled\":1"),
            good.replace("\"enabled\":true", "\"enabled\":tru"),
            good.replace("\"enabled\":true", "\"enabled\":trueish"),
            good.replace("\"enabled\":true", "\"enabled\":null"),
            good.replace("\"enabled\":true", "\"enabled\":{}"),
            good.replace("\"enabled\":true", "\"enabled\":[true]"),
            good.replace("\"name\":", "\"name\":1,\"x\":"),
            good.replace("\"name\":\"", "\"name\":\"\\q"),
            good.replace("\"name\":\"", "\"name\":\"\\u12"),
            good.replace("\"name\":\"", "\"name\":\"\\ud800"),
            good.replace("\"name\":\"", "\"name\":\"\\ud800\\u0041"),
            good.replace("\"name\":\"", "\"name\":\"\\udc00"),
            good.replace("\"name\":\"", "\"name\":\"\u{1}"),
            good.replace("\"name\":", "\"name\" "),
            good.replace(",\"enabled\"", "\"enabled\""),
            good.replace(",\"enabled\":true", ""),
            good.replace("}", ",\"extra\":\"x\"}"),
            good.replace("}", ",\"name\":\"again\"}"),
            good.replace("}", ",}"),
            format!("{}x", good),
            format!("{}{}", good, good),
            format!("[{}]", good),
            good.replace('"', "'"),
        ];
        for case in &cases {
            let text = format!("{}\n{}\n", good, case);
            match parse_read_back(&text) {
                Err(SetupError::ReadBack { line, why }) => {
                    assert_eq!(line, 2, "{}: {}", case, why);
                    assert!(!why.is_empty());
                }
                other => panic!("{:?} gave {:?}", case, other),
            }
        }
        // An unknown field is named.
        let err = parse_read_back(&good.replace("}", ",\"extra\":1}")).unwrap_err();
        assert!(err.to_string().contains("extra"), "{}", err);
    }

    #[test]
    fn read_back_never_panics() {
        let good = render(&sample_rules()[3]);
        let mut random = source(5);
        let alphabet: Vec<char> =
            "{}[]\":,\\u0123456789abcdefABCDEF-+.eE truefalsn\r\n\t'é😀\u{feff}"
                .chars()
                .collect();
        for _ in 0..3000 {
            // Mutate a good line at a few places.
            let mut chars: Vec<char> = good.chars().collect();
            for _ in 0..3 {
                let at = below(chars.len() + 1, &mut random);
                let c = alphabet[below(alphabet.len(), &mut random)];
                match below(3, &mut random) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = c,
                    _ => chars.insert(at, c),
                }
            }
            let text: String = chars.into_iter().collect();
            let _ = parse_read_back(&text);
        }
        // Random short strings over the alphabet.
        for _ in 0..3000 {
            let len = below(24, &mut random);
            let text: String = (0..len)
                .map(|_| alphabet[below(alphabet.len(), &mut random)])
                .collect();
            let _ = parse_read_back(&text);
        }
    }
}
