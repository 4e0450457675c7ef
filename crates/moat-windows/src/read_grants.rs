//! What the elevated tier's sandbox accounts may read of the person's
//! profile, as ACL steps.
//!
//! The accounts are other users: a profile's DACL admits only its owner,
//! SYSTEM and Administrators, so without these steps a command could not
//! read the toolchains people keep there (`.cargo`, `.rustup`, npm's and
//! Python's directories under `AppData`). The policy reads everything but
//! its denials, so the sandbox group gets an inheritable read ACE on each
//! entry of the profile, and an inheritable deny-read ACE on each denied
//! path that such a grant would reach.
//!
//! Never on the profile itself, its registry hives or `.ssh` (the ACL
//! guard's rule): where a grant on a directory would reach one of those,
//! or a path moat keeps to itself (its state, the person's TEMP), the
//! directory's entries are granted one by one instead. That happens on the
//! way to `UsrClass.dat` (`AppData\Local\Microsoft\Windows`), so a run lists
//! about five directories; the grants are recorded and applied once.
//!
//! A denied path that does not exist gets no ACE. When it appears later
//! under a granted directory, the next run adds its deny ACE before the
//! command starts.

use std::fmt;

use crate::acl_plan::{AclStep, Guard, PathState, WinPath};
use crate::sddl::{AceFlags, READ_GRANT_MASK};
use crate::sid::Sid;

/// How deep the walk may go below the profile before it gives up on a
/// directory (the deepest place the guard keeps is four levels down).
pub const MAX_DEPTH: usize = 6;

/// Names in the profile that are never granted: the registry's files
/// beside `NTUSER.DAT` (`ntuser.ini`, the logs) are nobody's business.
const HIVE_PREFIX: &str = "NTUSER";

/// What the plan asks of the filesystem.
pub trait ReadHost {
    /// The entries of `dir`: each name and what it is, `Link` for any
    /// symbolic link or junction.
    fn list(&mut self, dir: &WinPath) -> Result<Vec<(String, PathState)>, String>;
    /// What `path` is (`Absent` when it does not exist).
    fn kind(&mut self, path: &WinPath) -> PathState;
}

/// Everything the plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ReadInput<'a> {
    pub profiles_root: &'a str,
    pub profile_dir: &'a str,
    /// The sandbox group.
    pub group: Sid,
    /// The policy's denied paths that exist, and what each is.
    pub denied: &'a [(WinPath, PathState)],
    /// `read = restricted`: only these are granted (those in the profile;
    /// what is outside stays as readable as it is to Users).
    pub readable: Option<&'a [WinPath]>,
    /// Paths no grant may reach besides those the ACL guard keeps: moat's
    /// own state, the person's TEMP.
    pub avoid: &'a [WinPath],
}

/// The steps, deny-read ACEs first: a plan applied half-way never grants
/// a read it meant to deny.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    pub steps: Vec<AclStep>,
    /// Things the person may want to know (entries left alone, and why).
    pub notes: Vec<String>,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlanError {
    /// The profile locations do not parse.
    Path(String),
    /// A directory could not be listed.
    List { dir: String, why: String },
}

impl fmt::Display for ReadPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadPlanError::Path(why) => write!(f, "planning the sandbox account's reads: {why}"),
            ReadPlanError::List { dir, why } => write!(
                f,
                "listing {dir} to grant the sandbox accounts read access to your profile: {why}"
            ),
        }
    }
}

impl std::error::Error for ReadPlanError {}

struct Walk<'a> {
    input: &'a ReadInput<'a>,
    guard: Guard,
    grants: Vec<AclStep>,
    denies: Vec<AclStep>,
    notes: Vec<String>,
}

fn inherit_for(state: PathState) -> AceFlags {
    if state == PathState::Dir {
        AceFlags::SUBTREE
    } else {
        AceFlags::NONE
    }
}

impl<'a> Walk<'a> {
    fn is_denied(&self, path: &WinPath) -> bool {
        self.input.denied.iter().any(|(d, _)| path.starts_with(d))
    }

    /// Grants `path` (a file, or a directory no kept path lies in) and
    /// denies the denied paths below it.
    fn grant(&mut self, path: &WinPath, state: PathState) {
        self.grants.push(AclStep::Allow {
            path: path.clone(),
            sid: self.input.group,
            mask: READ_GRANT_MASK,
            inherit: inherit_for(state),
        });
        if state != PathState::Dir {
            return;
        }
        for (denied, kind) in self.input.denied {
            if !denied.is_inside(path) {
                continue;
            }
            let inherit = inherit_for(*kind);
            match self.guard.check(denied, inherit == AceFlags::SUBTREE) {
                Ok(()) => {
                    let step = AclStep::DenyRead {
                        path: denied.clone(),
                        sid: self.input.group,
                        inherit,
                    };
                    if !self.denies.contains(&step) {
                        self.denies.push(step);
                    }
                }
                // The guard keeps only what a grant could not reach either.
                Err(why) => self
                    .notes
                    .push(format!("{denied} gets no deny ACE: it {why}")),
            }
        }
    }

    /// Grants `path`, or when a kept path lies in it, its entries one by
    /// one.
    fn visit(
        &mut self,
        host: &mut dyn ReadHost,
        path: &WinPath,
        state: PathState,
        depth: usize,
    ) -> Result<(), ReadPlanError> {
        match state {
            PathState::Dir | PathState::File => {}
            // An ACE set through a link lands on its target.
            PathState::Link | PathState::Absent => return Ok(()),
        }
        if self.is_denied(path) {
            return Ok(());
        }
        let name = path.file_name().unwrap_or("");
        if name
            .get(..HIVE_PREFIX.len())
            .map_or(false, |start| start.eq_ignore_ascii_case(HIVE_PREFIX))
        {
            return Ok(());
        }
        if self.input.avoid.contains(path) {
            return Ok(());
        }
        let holds_avoided = self.input.avoid.iter().any(|a| a.is_inside(path));
        let inheritable = state == PathState::Dir;
        match self.guard.check(path, inheritable) {
            Ok(()) if !holds_avoided => {
                self.grant(path, state);
                Ok(())
            }
            Ok(()) | Err(crate::acl_plan::Refusal::Holds(_)) if inheritable => {
                if depth >= MAX_DEPTH {
                    self.notes.push(format!(
                        "{path} is not readable to the sandbox accounts: moat keeps a path \
                         below it and stops looking {MAX_DEPTH} levels down"
                    ));
                    return Ok(());
                }
                self.walk(host, path, depth + 1)
            }
            // A hive or `.ssh`: never.
            _ => Ok(()),
        }
    }

    fn walk(
        &mut self,
        host: &mut dyn ReadHost,
        dir: &WinPath,
        depth: usize,
    ) -> Result<(), ReadPlanError> {
        let mut entries = host.list(dir).map_err(|why| ReadPlanError::List {
            dir: dir.to_string(),
            why,
        })?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, state) in entries {
            let path = dir.child(&name);
            self.visit(host, &path, state, depth)?;
        }
        Ok(())
    }
}

/// The steps that let the sandbox group read what the policy lets a
/// command read of the person's profile.
pub fn plan(input: &ReadInput<'_>, host: &mut dyn ReadHost) -> Result<ReadPlan, ReadPlanError> {
    let guard = Guard::new(input.profiles_root, input.profile_dir)
        .map_err(|err| ReadPlanError::Path(err.to_string()))?;
    let profile = WinPath::parse(input.profile_dir)
        .map_err(|err| ReadPlanError::Path(format!("profile {}: {err}", input.profile_dir)))?;
    let mut walk = Walk {
        input,
        guard,
        grants: Vec::new(),
        denies: Vec::new(),
        notes: Vec::new(),
    };
    match input.readable {
        None => walk.walk(host, &profile, 1)?,
        Some(readable) => {
            for path in readable.iter().filter(|p| p.is_inside(&profile)) {
                let state = host.kind(path);
                let depth = path.components().len() - profile.components().len();
                walk.visit(host, path, state, depth)?;
            }
        }
    }
    let mut steps = walk.denies;
    steps.extend(walk.grants);
    Ok(ReadPlan {
        steps,
        notes: walk.notes,
    })
}

/// How much of the person's profile the sandbox group reads: the read
/// grants and the deny-read ACEs among a plan's steps. Counted from the
/// steps, because the elevated tier's report sees only the run's whole
/// ACL plan, of which these are a part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub granted: usize,
    pub denied: usize,
}

impl ReadCounts {
    pub fn of(steps: &[AclStep]) -> ReadCounts {
        let mut counts = ReadCounts::default();
        for step in steps {
            match step {
                AclStep::Allow { mask, .. } if *mask == READ_GRANT_MASK => counts.granted += 1,
                AclStep::DenyRead { .. } => counts.denied += 1,
                _ => {}
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::sddl::{DENY_READ_MASK, READ_GRANT_MASK};
    use std::collections::BTreeMap;

    const PROFILE: &str = r"C:\Users\ada";

    /// A disk of absolute paths (case-insensitive, as Windows).
    struct FakeDisk {
        nodes: BTreeMap<String, (String, PathState)>,
        listed: Vec<String>,
        broken: Option<String>,
    }

    impl FakeDisk {
        fn new(paths: &[(&str, PathState)]) -> FakeDisk {
            let mut disk = FakeDisk {
                nodes: BTreeMap::new(),
                listed: Vec::new(),
                broken: None,
            };
            disk.add(PROFILE, PathState::Dir);
            for (p, s) in paths {
                disk.add(&format!(r"{PROFILE}\{p}"), *s);
            }
            disk
        }

        fn add(&mut self, path: &str, state: PathState) {
            let p = WinPath::parse(path).unwrap();
            // Parents are directories.
            let mut parent = p.parent();
            while let Some(dir) = parent {
                self.nodes
                    .entry(dir.to_string().to_uppercase())
                    .or_insert((dir.to_string(), PathState::Dir));
                parent = dir.parent();
            }
            self.nodes
                .insert(p.to_string().to_uppercase(), (p.to_string(), state));
        }
    }

    impl ReadHost for FakeDisk {
        fn list(&mut self, dir: &WinPath) -> Result<Vec<(String, PathState)>, String> {
            self.listed.push(dir.to_string());
            if self.broken.as_deref() == Some(&dir.to_string()) {
                return Err("Access is denied. (os error 5)".to_string());
            }
            let mut out = Vec::new();
            for (path, state) in self.nodes.values() {
                let p = WinPath::parse(path).unwrap();
                if p.parent().as_ref() == Some(dir) {
                    out.push((p.file_name().unwrap().to_string(), *state));
                }
            }
            // Not sorted: the plan must not depend on the host's order.
            out.reverse();
            Ok(out)
        }

        fn kind(&mut self, path: &WinPath) -> PathState {
            self.nodes
                .get(&path.to_string().to_uppercase())
                .map_or(PathState::Absent, |(_, s)| *s)
        }
    }

    fn group() -> Sid {
        "S-1-5-21-100-200-300-1010".parse().unwrap()
    }

    fn p(rel: &str) -> WinPath {
        WinPath::parse(&format!(r"{PROFILE}\{rel}")).unwrap()
    }

    fn typical() -> FakeDisk {
        use PathState::*;
        FakeDisk::new(&[
            ("NTUSER.DAT", File),
            ("ntuser.dat.LOG1", File),
            ("ntuser.ini", File),
            (".gitconfig", File),
            (".npmrc", File),
            (".ssh", Dir),
            (".ssh\\id_ed25519", File),
            (".cargo\\bin\\cargo.exe", File),
            (".rustup\\toolchains", Dir),
            (".config\\gh\\hosts.yml", File),
            (".config\\nvim", Dir),
            ("Application Data", Link),
            ("AppData\\Roaming\\npm\\node_modules", Dir),
            ("AppData\\Roaming\\GitHub CLI\\hosts.yml", File),
            ("AppData\\Local\\Programs\\Python", Dir),
            ("AppData\\Local\\Temp\\secret.txt", File),
            ("AppData\\Local\\moat\\ledger", File),
            ("AppData\\Local\\Microsoft\\WindowsApps", Dir),
            ("AppData\\Local\\Microsoft\\Windows\\UsrClass.dat", File),
            (
                "AppData\\Local\\Microsoft\\Windows\\UsrClass.dat.LOG1",
                File,
            ),
            ("AppData\\Local\\Microsoft\\Windows\\INetCache", Dir),
            ("AppData\\LocalLow", Dir),
            ("src\\repo", Dir),
        ])
    }

    fn denied() -> Vec<(WinPath, PathState)> {
        vec![
            (p(".ssh"), PathState::Dir),
            (p(".npmrc"), PathState::File),
            (p(".config\\gh"), PathState::Dir),
            (p("AppData\\Roaming\\GitHub CLI"), PathState::Dir),
        ]
    }

    fn avoid() -> Vec<WinPath> {
        vec![p("AppData\\Local\\Temp"), p("AppData\\Local\\moat")]
    }

    fn run(disk: &mut FakeDisk, denied: &[(WinPath, PathState)]) -> ReadPlan {
        let avoid = avoid();
        plan(
            &ReadInput {
                profiles_root: r"C:\Users",
                profile_dir: PROFILE,
                group: group(),
                denied,
                readable: None,
                avoid: &avoid,
            },
            disk,
        )
        .unwrap()
    }

    fn granted(plan: &ReadPlan) -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                AclStep::Allow {
                    path, mask, sid, ..
                } => {
                    assert_eq!(*mask, READ_GRANT_MASK);
                    assert_eq!(*sid, group());
                    Some(path.to_string()[PROFILE.len() + 1..].to_string())
                }
                _ => None,
            })
            .collect()
    }

    fn denies(plan: &ReadPlan) -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                AclStep::DenyRead { path, sid, .. } => {
                    assert_eq!(*sid, group());
                    Some(path.to_string()[PROFILE.len() + 1..].to_string())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn grants_the_profile_entries_but_never_hives_ssh_links_or_denied_ones() {
        let mut disk = typical();
        let plan = run(&mut disk, &denied());
        assert_eq!(
            granted(&plan),
            vec![
                ".cargo",
                ".config",
                ".gitconfig",
                ".rustup",
                r"AppData\Local\Microsoft\Windows\INetCache",
                r"AppData\Local\Microsoft\WindowsApps",
                r"AppData\Local\Programs",
                r"AppData\LocalLow",
                r"AppData\Roaming",
                "src",
            ]
        );
        assert_eq!(ReadCounts::of(&plan.steps).granted, 10);
        // The denied paths below a grant get a deny; `.npmrc` and `.ssh`
        // are simply not granted.
        assert_eq!(
            denies(&plan),
            vec![r".config\gh", r"AppData\Roaming\GitHub CLI"]
        );
        assert_eq!(ReadCounts::of(&plan.steps).denied, 2);
    }

    #[test]
    fn denies_come_first_and_carry_the_right_flags() {
        let mut disk = typical();
        let mut denied = denied();
        denied.push((p(".config\\nvim\\token.txt"), PathState::File));
        let plan = run(&mut disk, &denied);
        let first_allow = plan
            .steps
            .iter()
            .position(|s| matches!(s, AclStep::Allow { .. }))
            .unwrap();
        assert!(plan.steps[..first_allow]
            .iter()
            .all(|s| matches!(s, AclStep::DenyRead { .. })));
        assert_eq!(first_allow, 3);
        for step in &plan.steps {
            let ace = step.ace().unwrap();
            let want = match step.path().to_string() {
                s if s.ends_with("token.txt") || s.ends_with(".gitconfig") => AceFlags::NONE,
                _ => AceFlags::SUBTREE,
            };
            assert_eq!(ace.flags, want, "{step}");
            if let AclStep::DenyRead { .. } = step {
                assert_eq!(ace.mask, DENY_READ_MASK);
            }
        }
    }

    #[test]
    fn lists_only_the_directories_on_the_way_to_a_kept_path() {
        let mut disk = typical();
        run(&mut disk, &denied());
        assert_eq!(
            disk.listed,
            vec![
                PROFILE.to_string(),
                format!(r"{PROFILE}\AppData"),
                format!(r"{PROFILE}\AppData\Local"),
                format!(r"{PROFILE}\AppData\Local\Microsoft"),
                format!(r"{PROFILE}\AppData\Local\Microsoft\Windows"),
            ]
        );
    }

    #[test]
    fn the_same_disk_gives_the_same_plan() {
        let a = run(&mut typical(), &denied());
        let b = run(&mut typical(), &denied());
        assert_eq!(a, b);
    }

    #[test]
    fn read_restricted_grants_only_what_is_listed_inside_the_profile() {
        let mut disk = typical();
        let readable = vec![
            p(".cargo"),
            p(".ssh\\id_ed25519"),
            p("AppData"),
            WinPath::parse(r"D:\tools").unwrap(),
        ];
        let denied = denied();
        let avoid = avoid();
        let plan = plan(
            &ReadInput {
                profiles_root: r"C:\Users",
                profile_dir: PROFILE,
                group: group(),
                denied: &denied,
                readable: Some(&readable),
                avoid: &avoid,
            },
            &mut disk,
        )
        .unwrap();
        let got = granted(&plan);
        assert!(got.contains(&".cargo".to_string()));
        assert!(got.contains(&r"AppData\Roaming".to_string()));
        assert!(!got.iter().any(|g| g.contains(".ssh") || g == "AppData"));
        assert!(!got.iter().any(|g| g.contains("tools")));
        assert!(!got.contains(&".config".to_string()));
    }

    #[test]
    fn an_unlistable_directory_is_an_error_naming_it() {
        let mut disk = typical();
        disk.broken = Some(format!(r"{PROFILE}\AppData\Local"));
        let avoid = avoid();
        let denied = denied();
        let err = plan(
            &ReadInput {
                profiles_root: r"C:\Users",
                profile_dir: PROFILE,
                group: group(),
                denied: &denied,
                readable: None,
                avoid: &avoid,
            },
            &mut disk,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(r"AppData\Local") && text.contains("os error 5"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_profile_is_an_error() {
        let err = plan(
            &ReadInput {
                profiles_root: r"C:\Users",
                profile_dir: "relative",
                group: group(),
                denied: &[],
                readable: None,
                avoid: &[],
            },
            &mut typical(),
        )
        .unwrap_err();
        assert!(matches!(err, ReadPlanError::Path(_)), "{err}");
    }

    #[test]
    fn the_ledger_keeps_deny_read_steps() {
        let plan = run(&mut typical(), &denied());
        let mut ledger = crate::acl_plan::Ledger::new();
        for step in &plan.steps {
            ledger.record(step);
        }
        let back = crate::acl_plan::Ledger::from_text(&ledger.to_text()).unwrap();
        assert_eq!(back, ledger);
        assert!(plan.steps.iter().all(|s| back.is_recorded(s)));
        assert!(ledger.to_text().contains("deny-read\t"));
    }
}
