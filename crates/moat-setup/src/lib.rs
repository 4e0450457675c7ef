//! `moat setup`: the one-time, root-only preparation of the elevated tier,
//! its check and its removal.
//!
//! Setup makes the sandbox accounts `moat-offline` and `moat-online` (system
//! accounts in the group `moat-sandbox`, no home, no login shell, locked
//! password), the group `moat-users` of people allowed to use them, the
//! nftables table that refuses all of `moat-offline`'s traffic (loopback
//! included), and a cgroup v2 subtree for the runs. Every step is written
//! to the record before the next, so `--remove` can undo a setup that
//! stopped halfway; a second setup at the same time waits for the first.

pub mod accounts;
pub mod launcher;
pub mod nft;
pub mod record;

use std::path::PathBuf;

use accounts::{GECOS, OFFLINE, ONLINE, SANDBOX_GROUP, USERS_GROUP};
use moat_linux::launch::launcher_path;
use moat_linux::rootdir::RootDir;
use moat_linux::{cgroup, idmap};
use moat_spec::install::{IDMAP_PINS, STATE_DIR};
use record::{Record, VERSION};

/// One line of `moat setup --check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

fn finding(ok: bool, what: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        ok,
        what: what.into(),
        detail: detail.into(),
    }
}

fn require_root() -> Result<(), String> {
    if !moat_linux::is_root() {
        return Err(
            "moat setup changes accounts and firewall rules: run it as root (sudo moat setup)"
                .into(),
        );
    }
    Ok(())
}

/// Holds the setup lock while alive, and the state directory it is in.
struct Lock {
    state: RootDir,
    _file: std::fs::File,
}

fn lock() -> Result<Lock, String> {
    let state = RootDir::create(STATE_DIR, 0o755).map_err(|e| e.to_string())?;
    let file = std::fs::File::from(
        state
            .touch("setup.lock", 0o600)
            .map_err(|e| e.to_string())?,
    );
    file.lock()
        .map_err(|e| format!("locking {STATE_DIR}/setup.lock: {e}"))?;
    Ok(Lock { state, _file: file })
}

/// Sets up the elevated tier for `user` (or whoever ran sudo); returns
/// what it did.
pub fn setup(user: Option<&str>) -> Result<Vec<String>, String> {
    require_root()?;
    let who = match user {
        Some(u) => u.to_string(),
        None => std::env::var("SUDO_USER").map_err(|_| {
            "name the person who will use the sandbox accounts: moat setup --user NAME".to_string()
        })?,
    };
    let Some(person) = accounts::user(&who) else {
        return Err(format!("--user {who}: there is no such account"));
    };
    idmap_supported(&person.home)?;
    nft::available()?;
    let launcher_source = launcher::source()?;
    let mount = cgroup::v2_mount().ok_or(
        "cgroup v2 is not mounted: boot with systemd.unified_cgroup_hierarchy=1, or mount it \
         (mount -t cgroup2 none /sys/fs/cgroup/unified)",
    )?;
    let lock = lock()?;
    let path = &lock.state;
    let mut rec = Record::load(&record::path())?.unwrap_or_default();
    let mut done = Vec::new();
    if rec.version != VERSION {
        if rec.version != 0 {
            done.push(format!(
                "upgraded the setup record from version {}",
                rec.version
            ));
        }
        rec.version = VERSION;
    }
    // Refuse before changing anything when the names are taken.
    for name in [OFFLINE, ONLINE] {
        if let Some(u) = accounts::user(name) {
            if !accounts::is_ours(&u) && !rec.created_accounts.iter().any(|a| a == name) {
                return Err(format!(
                    "an account {name} (uid {}) exists that moat setup did not make; remove or rename it first",
                    u.uid
                ));
            }
        }
    }
    for name in [SANDBOX_GROUP, USERS_GROUP] {
        if let Some(g) = accounts::group(name) {
            if g.gid >= 1000 && !rec.created_groups.iter().any(|c| c == name) {
                return Err(format!(
                    "a group {name} (gid {}) exists that moat setup did not make; remove or rename it first",
                    g.gid
                ));
            }
        }
    }
    rec.save(path)?;

    for name in [SANDBOX_GROUP, USERS_GROUP] {
        if accounts::group(name).is_none() {
            accounts::tool("groupadd", &["--system", name])?;
            Record::note(&mut rec.created_groups, &name.to_string());
            rec.save(path)?;
            done.push(format!("created the group {name}"));
        }
    }
    let shell = accounts::nologin();
    for name in [OFFLINE, ONLINE] {
        if accounts::user(name).is_none() {
            accounts::tool(
                "useradd",
                &[
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    shell,
                    "--gid",
                    SANDBOX_GROUP,
                    "--comment",
                    GECOS,
                    name,
                ],
            )?;
            Record::note(&mut rec.created_accounts, &name.to_string());
            rec.save(path)?;
            done.push(format!("created the account {name}"));
        }
        if accounts::locked(name) != Some(true) {
            accounts::tool("usermod", &["--lock", name])?;
        }
    }
    let members = accounts::group(USERS_GROUP)
        .map(|g| g.members)
        .unwrap_or_default();
    if !members.contains(&who) {
        accounts::tool("gpasswd", &["--add", &who, USERS_GROUP])?;
        Record::note(&mut rec.added_members, &who);
        done.push(format!("authorised {who} (group {USERS_GROUP})"));
    }
    Record::note(&mut rec.authorised, &who);
    rec.save(path)?;

    let offline =
        accounts::user(OFFLINE).ok_or("the account moat-offline vanished during setup")?;
    rec.nft_table = Some(nft::TABLE.to_string());
    rec.save(path)?;
    nft::load(&nft::ruleset(offline.uid))?;
    let listing =
        nft::list().ok_or("the nftables table inet moat is missing right after loading it")?;
    if !nft::listing_is_complete(&listing, offline.uid, OFFLINE) {
        return Err(format!(
            "reading the firewall rules back shows them incomplete:\n{listing}"
        ));
    }
    done.push(format!(
        "installed the firewall rules (table {})",
        nft::TABLE
    ));

    let sub = cgroup::subtree(&mount);
    rec.cgroup = Some(sub.clone());
    rec.save(path)?;
    std::fs::create_dir_all(&sub).map_err(|e| format!("creating {}: {e}", sub.display()))?;
    done.push(format!("prepared the cgroup subtree {}", sub.display()));
    // Runs' memory and process limits act through v2 where its controllers
    // are; those bound to v1 (hybrid machines) are used there instead.
    for c in ["memory", "pids", "cpu"] {
        if !cgroup::controllers(&mount).iter().any(|h| h == c) {
            continue;
        }
        for dir in [&mount, &sub] {
            if cgroup::listed(dir, "cgroup.subtree_control")
                .iter()
                .any(|h| h == c)
            {
                continue;
            }
            let file = dir.join("cgroup.subtree_control");
            std::fs::write(&file, format!("+{c}"))
                .map_err(|e| format!("enabling the {c} controller in {}: {e}", file.display()))?;
        }
        done.push(format!("enabled the cgroup v2 {c} controller for runs"));
    }

    // Last: with the launcher in place, the tier is usable.
    let dest = launcher_path();
    let users = accounts::group(USERS_GROUP).ok_or("the group moat-users vanished during setup")?;
    if launcher::problem(&dest, Some(users.gid), Some(&launcher_source)).is_some() {
        rec.launcher = Some(dest.clone());
        rec.save(path)?;
        launcher::install(&launcher_source, &dest, users.gid)?;
        done.push(format!(
            "installed the launcher {} (root:{USERS_GROUP}, mode {:o})",
            dest.display(),
            launcher::MODE
        ));
    } else if rec.launcher.is_none() {
        rec.launcher = Some(dest);
        rec.save(path)?;
    }
    // The person's id mappings, made now: runs then need no new user
    // namespace, which matters where even root may not create one
    // (user.max_user_namespaces=0) until the next boot empties /run.
    let pins = idmap::pins();
    for account in [OFFLINE, ONLINE].into_iter().filter_map(accounts::user) {
        let (uid_map, gid_map) = idmap::maps((person.uid, person.gid), (account.uid, account.gid));
        if pins.is_none() || idmap::namespace(pins.as_ref(), &uid_map, &gid_map).is_err() {
            done.push(format!(
                "could not prepare {}'s id mapping for {} now (no user namespace could be \
                 made); its first run will",
                person.name, account.name
            ));
        }
    }
    if done.is_empty() {
        done.push("everything was already set up".into());
    }
    Ok(done)
}

/// Whether `home` (the person's, shown to the sandbox accounts through an
/// idmapped mount, as their workspaces are) is on a filesystem that
/// supports idmapped mounts.
fn idmap_supported(home: &str) -> Result<(), String> {
    let path = std::path::Path::new(home);
    if !path.is_dir() {
        return Ok(());
    }
    idmap::supported(path).map_err(|e| {
        format!(
            "{home} is on a filesystem that cannot be mounted idmapped ({e}); the elevated tier \
             shows the person's files to the sandbox accounts that way. ext4, xfs, btrfs, f2fs, \
             vfat and tmpfs (Linux 6.3) can; network filesystems mostly cannot: keep your \
             workspaces on one that can"
        )
    })
}

/// Checks every piece of the setup.
pub fn check() -> Vec<Finding> {
    let mut out = Vec::new();
    let rec = match Record::load(&record::path()) {
        Ok(Some(r)) => {
            out.push(finding(
                true,
                "record",
                format!("{} (version {})", record::path().display(), r.version),
            ));
            r
        }
        Ok(None) => {
            out.push(finding(
                false,
                "record",
                format!("{} is missing: run moat setup", record::path().display()),
            ));
            Record::default()
        }
        Err(e) => {
            out.push(finding(false, "record", e));
            Record::default()
        }
    };
    let sandbox_gid = accounts::group(SANDBOX_GROUP).map(|g| g.gid);
    for name in [SANDBOX_GROUP, USERS_GROUP] {
        out.push(match accounts::group(name) {
            Some(g) => finding(true, format!("group {name}"), format!("gid {}", g.gid)),
            None => finding(false, format!("group {name}"), "missing"),
        });
    }
    for name in [OFFLINE, ONLINE] {
        out.push(match accounts::user(name) {
            None => finding(false, format!("account {name}"), "missing"),
            Some(u) if !accounts::is_ours(&u) => finding(
                false,
                format!("account {name}"),
                format!(
                    "not a moat sandbox account (uid {}, shell {}, comment {:?})",
                    u.uid, u.shell, u.gecos
                ),
            ),
            Some(u) if Some(u.gid) != sandbox_gid => finding(
                false,
                format!("account {name}"),
                format!("primary group {} is not {SANDBOX_GROUP}", u.gid),
            ),
            Some(_) if accounts::locked(name) != Some(true) => finding(
                false,
                format!("account {name}"),
                "its password is not locked",
            ),
            Some(u) => finding(
                true,
                format!("account {name}"),
                format!("uid {}, no login, password locked", u.uid),
            ),
        });
    }
    let members = accounts::group(USERS_GROUP)
        .map(|g| g.members)
        .unwrap_or_default();
    for who in &rec.authorised {
        out.push(if members.contains(who) {
            finding(
                true,
                format!("authorised {who}"),
                format!("member of {USERS_GROUP}"),
            )
        } else {
            finding(
                false,
                format!("authorised {who}"),
                format!("not in {USERS_GROUP}"),
            )
        });
    }
    out.push(match (accounts::user(OFFLINE), nft::list()) {
        (_, None) => finding(
            false,
            "firewall",
            format!("the table {} is missing: run moat setup", nft::TABLE),
        ),
        (Some(u), Some(l)) if nft::listing_is_complete(&l, u.uid, OFFLINE) => finding(
            true,
            "firewall",
            format!("table {} refuses all of {OFFLINE}'s traffic", nft::TABLE),
        ),
        _ => finding(
            false,
            "firewall",
            format!(
                "the table {} does not refuse {OFFLINE}'s traffic",
                nft::TABLE
            ),
        ),
    });
    let dest = rec.launcher.clone().unwrap_or_else(launcher_path);
    let users_gid = accounts::group(USERS_GROUP).map(|g| g.gid);
    out.push(match launcher::problem(&dest, users_gid, None) {
        None => finding(
            true,
            "launcher",
            format!(
                "{} (root:{USERS_GROUP}, mode {:o})",
                dest.display(),
                launcher::MODE
            ),
        ),
        Some(p) => finding(false, "launcher", format!("{p}: run moat setup")),
    });
    match cgroup::v2_mount() {
        None => out.push(finding(false, "cgroup", "cgroup v2 is not mounted")),
        Some(m) => {
            let sub = cgroup::subtree(&m);
            out.push(finding(
                sub.is_dir(),
                "cgroup",
                format!(
                    "{}{}",
                    sub.display(),
                    if sub.is_dir() { "" } else { " is missing" }
                ),
            ));
            // Not a setup fault when missing: those limits fall back to
            // per-process rlimits, and the run's report says so.
            for (c, at) in cgroup::placement() {
                out.push(finding(
                    true,
                    "cgroup limits",
                    match at {
                        Some(at) => format!("{c}: {at}"),
                        None => format!(
                            "{c}: no cgroup controller here, so runs get a per-process rlimit \
                             instead; boot with systemd.unified_cgroup_hierarchy=1 to have it"
                        ),
                    },
                ));
            }
        }
    }
    out
}

/// Runs' cgroups in v1 hierarchies (left by launchers killed outright).
fn v1_runs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in cgroup::v1_mounts() {
        cgroup::find_runs(&m, 8, &mut out);
    }
    out
}

/// Where the record says the cgroup subtree is, else where setup puts it.
fn cgroup_of(rec: &Record) -> Option<PathBuf> {
    rec.cgroup
        .clone()
        .or_else(|| cgroup::v2_mount().map(|m| cgroup::subtree(&m)))
}

/// What is left of a setup on this machine (empty after a clean removal).
pub fn leftovers(rec: &Record) -> Vec<String> {
    let mut left = Vec::new();
    // Names setup made: recorded, or marked as moat's; an account someone
    // else made under one of these names is not setup's to report.
    let mut names: Vec<String> = [OFFLINE, ONLINE]
        .into_iter()
        .filter(|n| {
            rec.created_accounts.iter().any(|a| a == n)
                || accounts::user(n).is_some_and(|u| accounts::is_ours(&u))
        })
        .map(str::to_string)
        .collect();
    names.extend(rec.created_groups.iter().cloned());
    for file in ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"] {
        for n in &names {
            if accounts::named_in(file, n) {
                left.push(format!("{n} in {file}"));
            }
        }
    }
    if nft::list().is_some() {
        left.push(format!("nftables table {}", nft::TABLE));
    }
    let cg: Option<PathBuf> = cgroup_of(rec);
    if let Some(c) = cg.filter(|c| c.exists()) {
        left.push(format!("cgroup {}", c.display()));
    }
    for run in v1_runs() {
        left.push(format!("cgroup {}", run.display()));
    }
    let dest = rec.launcher.clone().unwrap_or_else(launcher_path);
    if dest.exists() {
        left.push(format!("launcher {}", dest.display()));
    }
    if record::path().exists() {
        left.push(format!("record {}", record::path().display()));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mounts.contains(&format!(" {IDMAP_PINS}/")) || std::path::Path::new(IDMAP_PINS).exists() {
        left.push(format!("kept id mappings {IDMAP_PINS}"));
    }
    left
}

/// Removes everything setup made, then checks that nothing is left.
pub fn remove() -> Result<Vec<String>, String> {
    require_root()?;
    let lock = lock()?;
    let path = record::path();
    let rec = Record::load(&path)?.unwrap_or_default();
    let mut done = Vec::new();
    // First: without the launcher nobody can start a run.
    let dest = rec.launcher.clone().unwrap_or_else(launcher_path);
    if launcher::remove(&dest)? {
        done.push(format!("removed the launcher {}", dest.display()));
    }
    if idmap::remove_all() {
        done.push(format!("removed the kept id mappings ({IDMAP_PINS})"));
    }
    if nft::delete()? {
        done.push(format!("removed the firewall table {}", nft::TABLE));
    }
    if let Some(c) = cgroup_of(&rec) {
        if c.exists() {
            cgroup::remove_dir(&c, true).map_err(|e| format!("removing {}: {e}", c.display()))?;
            done.push(format!("removed the cgroup subtree {}", c.display()));
        }
    }
    for run in v1_runs() {
        cgroup::remove_dir(&run, false).map_err(|e| format!("removing {}: {e}", run.display()))?;
        done.push(format!("removed the run cgroup {}", run.display()));
    }
    for name in [ONLINE, OFFLINE] {
        if let Some(u) = accounts::user(name) {
            if accounts::is_ours(&u) || rec.created_accounts.iter().any(|a| a == name) {
                accounts::tool("userdel", &[name])?;
                done.push(format!("removed the account {name}"));
            }
        }
    }
    let users_group_ours = rec.created_groups.iter().any(|g| g == USERS_GROUP);
    if !users_group_ours {
        let members = accounts::group(USERS_GROUP)
            .map(|g| g.members)
            .unwrap_or_default();
        for m in rec.added_members.iter().filter(|m| members.contains(m)) {
            accounts::tool("gpasswd", &["--delete", m, USERS_GROUP])?;
        }
    }
    for name in [USERS_GROUP, SANDBOX_GROUP] {
        let made = rec.created_groups.iter().any(|g| g == name);
        // A system group by these names with no record is from a setup
        // that stopped before writing it down.
        let stray = accounts::group(name).is_some_and(|g| g.gid < 1000 && rec.version == 0);
        if accounts::group(name).is_some() && (made || stray) {
            accounts::tool("groupdel", &[name])?;
            done.push(format!("removed the group {name}"));
        }
    }
    lock.state.remove(record::FILE).map_err(|e| e.to_string())?;
    let _ = moat_linux::firewall::forget(&lock.state);
    // The directory is moat's own: whatever else is in it (a temporary
    // file of a writer killed halfway) goes with it.
    for name in lock.state.names() {
        let _ = lock.state.remove(&name);
    }
    drop(lock);
    let _ = std::fs::remove_dir(STATE_DIR);
    let left = leftovers(&rec);
    if !left.is_empty() {
        return Err(format!(
            "removal left these behind:\n  {}",
            left.join("\n  ")
        ));
    }
    done.push("nothing of the setup is left".into());
    Ok(done)
}
