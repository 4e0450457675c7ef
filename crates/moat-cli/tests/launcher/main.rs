//! The setuid launcher attacked by its own caller (root only).
//!
//! A member of moat-users can exec the launcher directly, with a request
//! of their choosing and everything else a caller controls turned against
//! it: the environment, symlinks planted under every name the launcher
//! writes, the umask, resource limits, descriptors, signals and timers,
//! kills and stops at every system call, names that are not UTF-8, paths
//! swapped between check and use, other people's paths. Each attack has
//! its positive control: the same request, unattacked, runs (or the
//! attack's lever is shown to work on an ordinary program).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod trace;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use moat_spec::install::{LAUNCHER, STATE_DIR};
use moat_spec::{Fs, Isolation, Limits, Net, RunSpec};
use serde_json::{json, Value};

struct Removed;

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = Command::new(moat()).args(["setup", "--remove"]).output();
    }
}

/// A run of `argv` in `ws`, writable, as the elevated tier's request.
fn spec(ws: &Path, argv: &[&str]) -> RunSpec {
    RunSpec {
        isolation: Isolation::Elevated,
        net: Net::Off,
        fs: Fs {
            workspace: ws.to_path_buf(),
            writable: vec![ws.to_path_buf()],
            ..Fs::default()
        },
        limits: Limits::default(),
        env: vec![(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))],
        argv: argv.iter().map(OsString::from).collect(),
        cwd: ws.to_path_buf(),
        pty: false,
        extra_ca: None,
    }
}

fn request(spec: &RunSpec) -> Vec<u8> {
    moat_spec::wire::encode(spec)
}

/// The launcher (or `program`) run by `who` through launcher_client.py,
/// set up as `config` says; what the client printed.
fn launch_with(who: &Who, program: &str, request: &[u8], config: &Value) -> String {
    use std::io::Write;
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/launcher_client.py");
    let mut child = command_as(who, "python3")
        .args([client, program, &config.to_string()])
        .current_dir("/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("{}{}", stdout(&out), stderr(&out))
}

fn launch(who: &Who, request: &[u8], config: &Value) -> String {
    launch_with(who, LAUNCHER, request, config)
}

fn ran(said: &str) -> bool {
    said.lines().any(|l| l == "status 0")
}

/// Whether root here may raise hard limits (CAP_SYS_RESOURCE, bit 24 of
/// the bounding set; containers often drop it).
fn root_can_raise_limits() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    bounding & (1 << 24) != 0
}

fn gid_of(group: &str) -> u32 {
    let text = std::fs::read_to_string("/etc/group").unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&group)).then(|| f[2].parse().unwrap())
        })
        .unwrap()
}

/// A directory the caller owns but cannot reach (below a root-only
/// directory), for attacks that would make the sandbox write there.
struct Locked {
    victim: PathBuf,
}

impl Locked {
    fn new(s: &Scratch, tag: &str) -> Locked {
        let dir = s.base.join(format!("locked-{tag}"));
        let victim = dir.join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        std::os::unix::fs::chown(&victim, Some(s.who.uid), Some(s.who.gid)).unwrap();
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Locked { victim }
    }

    /// The control that makes the attack meaningful: the caller cannot
    /// reach the victim directory on their own; what `ls` said.
    fn unreachable_to(&self, who: &Who) -> (bool, String) {
        let out = output(command_as(who, "ls").arg(&self.victim));
        (
            !out.status.success() && stderr(&out).contains("Permission denied"),
            show(&out),
        )
    }
}

/// Mounts, files in moat's state directory, run cgroups and sandbox
/// processes: what a launcher may leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Traces {
    mounts: Vec<String>,
    state: Vec<String>,
    cgroups: Vec<String>,
    processes: usize,
}

fn traces() -> Traces {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut mounts: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        // The kept id mappings are meant to stay.
        .filter(|m| !m.starts_with(moat_spec::install::IDMAP_PINS))
        .collect();
    mounts.sort();
    let mut state: Vec<String> = std::fs::read_dir(STATE_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    state.sort();
    let mut cgroups = Vec::new();
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        find_runs(Path::new(root), 6, &mut cgroups);
    }
    cgroups.sort();
    Traces {
        mounts,
        state,
        cgroups,
        processes: sandbox_processes(),
    }
}

fn find_runs(dir: &Path, depth: u32, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("moat-run-") {
            out.push(e.path().display().to_string());
        } else if depth > 0 {
            find_runs(&e.path(), depth - 1, out);
        }
    }
}

/// Processes of the sandbox accounts.
fn sandbox_processes() -> usize {
    sandbox_process_list().len()
}

/// The sandbox accounts' processes: pid, state and command line.
fn sandbox_process_list() -> Vec<String> {
    let uids: Vec<u32> = ["moat-offline", "moat-online"]
        .iter()
        .filter_map(|n| {
            let text = std::fs::read_to_string("/etc/passwd").ok()?;
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(n)).then(|| f[2].parse().ok()).flatten()
            })
        })
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::metadata(e.path()).is_ok_and(|m| uids.contains(&m.uid()))
                && std::fs::read(e.path().join("cmdline")).is_ok_and(|c| !c.is_empty())
        })
        .map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            format!(
                "{} [{}]",
                stat.split(") ").next().unwrap_or(""),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            )
        })
        .collect()
}

/// Waits (up to 10 s, for a loaded machine) for the sandbox accounts'
/// processes to be gone: a killed launcher's sandbox dies by its
/// parent-death signal, which the kernel delivers asynchronously.
fn processes_gone() -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if sandbox_processes() == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The environment every variable moat, its libraries or the C library
/// read points into `dir`, and the names the launcher (or an older one)
/// writes under, planted there as symlinks.
fn hostile_environment(dir: &Path) -> Value {
    let d = dir.display().to_string();
    let mut env = serde_json::Map::new();
    for name in [
        "MOAT_SETUP_DIR",
        "MOAT_LAUNCHER",
        "MOAT_LAUNCHER_SOURCE",
        "HOME",
        "TMPDIR",
        "TMP",
        "TEMP",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "XDG_DATA_HOME",
        "LD_LIBRARY_PATH",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
    ] {
        env.insert(name.into(), json!(d));
    }
    env.insert(
        "PATH".into(),
        json!(format!("{d}:/usr/sbin:/usr/bin:/sbin:/bin")),
    );
    env.insert("LD_PRELOAD".into(), json!(format!("{d}/evil.so")));
    env.insert("NFT".into(), json!(format!("{d}/nft")));
    env.insert("SUDO_USER".into(), json!("root"));
    env.insert("USER".into(), json!("root"));
    env.insert("LOGNAME".into(), json!("root"));
    env.insert("RUST_BACKTRACE".into(), json!("full"));
    env.insert("RUST_LOG".into(), json!("trace"));
    env.insert("RUST_MIN_STACK".into(), json!("1"));
    env.insert("GLIBC_TUNABLES".into(), json!("glibc.malloc.check=3"));
    env.insert("MALLOC_CHECK_".into(), json!("3"));
    env.insert("LANG".into(), json!("xx_XX.UTF-8"));
    env.insert("LC_ALL".into(), json!("xx_XX.UTF-8"));
    Value::Object(env)
}

const PLANTED: &[&str] = &[
    "firewall-verified",
    "firewall-verified.tmp",
    ".firewall-verified.{pid}.tmp",
    "setup.toml",
    "setup.toml.tmp",
    ".setup.toml.{pid}.tmp",
    "setup.lock",
    "idmap",
    "moat-run-{pid}",
];

/// The reported defect and its class: every variable pointed at a
/// directory the caller owns, symlinks under every name the launcher
/// writes, umask 0, and a stamp the launcher must write this time.
fn environment_and_planted_symlinks(v: &mut Verdicts, who: &Who) {
    let s = Scratch::new(who, "evil-env");
    let evil = s.mkdir("evil");
    let created = PathBuf::from(format!("/etc/moat-it-created-{}", std::process::id()));
    let canary = PathBuf::from(format!("/etc/moat-it-canary-{}", std::process::id()));
    std::fs::write(&canary, "canary\n").unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fake_nft = s.write(
        "evil/nft",
        &format!("#!/bin/sh\ntouch {}/nft-ran\n", evil.display()),
    );
    std::fs::set_permissions(&fake_nft, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stamp = Path::new(STATE_DIR).join("firewall-verified");
    for target in [&created, &canary] {
        let _ = std::fs::remove_file(&stamp);
        for entry in std::fs::read_dir(&evil).unwrap().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let config = json!({
            "env": hostile_environment(&evil),
            "umask": 0,
            "plant": {"dir": evil, "target": target, "names": PLANTED},
        });
        let said = launch(who, &request(&spec(&s.ws, &["true"])), &config);
        let what = format!("planted symlinks to {}", target.display());
        v.check(
            &format!(
                "control: the launcher runs the request under the hostile environment ({what})"
            ),
            ran(&said),
            &said,
        );
        let stamp_meta = std::fs::symlink_metadata(&stamp);
        v.check(
            &format!("the firewall stamp is written where it belongs, root's, mode 644 despite umask 0 ({what})"),
            stamp_meta
                .as_ref()
                .is_ok_and(|m| m.file_type().is_file() && m.uid() == 0 && m.mode() & 0o777 == 0o644),
            format!("{stamp_meta:?}"),
        );
    }
    v.check(
        "no file is created through a planted symlink (the reproduction: /etc/…, mode 666)",
        !created.exists(),
        format!("{} exists", created.display()),
    );
    v.check(
        "no existing root file is written through a planted symlink",
        std::fs::read_to_string(&canary).unwrap() == "canary\n",
        std::fs::read_to_string(&canary).unwrap_or_default(),
    );
    v.check(
        "no tool is run from the caller's PATH",
        !evil.join("nft-ran").exists(),
        "the fake nft ran",
    );
    let rooted: Vec<String> = std::fs::read_dir(&evil)
        .unwrap()
        .flatten()
        .filter(|e| std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.uid() == 0))
        .map(|e| e.path().display().to_string())
        .collect();
    v.check(
        "nothing of root's appears in the caller's directory",
        rooted.is_empty(),
        format!("{rooted:?}"),
    );
    // Controls: the levers work on what follows them. Root writing
    // through a planted name creates the target; a PATH lookup as the
    // caller runs the fake tool.
    let link = evil.join("firewall-verified.tmp");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&created, &link).unwrap();
    let _ = std::fs::write(&link, "x");
    v.check(
        "control: root writing through a planted symlink creates its target",
        created.exists(),
        "",
    );
    let _ = std::fs::remove_file(&created);
    let out = output(
        command_as(who, "sh").args(["-c", &format!("PATH={}:/usr/bin:/bin; nft", evil.display())]),
    );
    v.check(
        "control: a PATH lookup as the caller runs the planted nft",
        evil.join("nft-ran").exists(),
        show(&out),
    );
    let _ = std::fs::remove_file(&canary);
}

/// Tiny limits, closed or extra descriptors, ignored and blocked signals,
/// a running interval timer: the launcher is not hurt, and the command
/// gets no more than the caller had.
fn limits_descriptors_signals(v: &mut Verdicts, who: &Who) {
    let s = Scratch::new(who, "evil-limits");
    let out = s.base.join("out");
    let big = "head -c 4096 /dev/zero > big";
    let stamp = Path::new(STATE_DIR).join("firewall-verified");

    // RLIMIT_FSIZE of one byte: the launcher runs the command, its stamp
    // is whole or not written at all (where root cannot raise the limit),
    // and the command's write stops at the caller's limit (head dies of
    // SIGXFSZ: status 128+25).
    let _ = std::fs::remove_file(&stamp);
    let said = launch(
        who,
        &request(&spec(&s.ws, &["sh", "-c", big])),
        &json!({"rlimits": {"FSIZE": [1, 1]}}),
    );
    let stamp_text = std::fs::read_to_string(&stamp);
    v.check(
        "RLIMIT_FSIZE 1: the launcher runs, and its stamp is whole or absent, never cut",
        said.lines().any(|l| l == "status 153")
            && stamp_text.as_ref().map_or(true, |t| {
                t.ends_with('\n') && t.split_whitespace().count() == 2
            }),
        format!("{said} stamp {stamp_text:?}"),
    );
    let size = std::fs::metadata(s.ws.join("big")).map(|m| m.len());
    v.check(
        "RLIMIT_FSIZE 1: the command keeps the caller's limit",
        size.as_ref().is_ok_and(|n| *n <= 1),
        format!("{said} {size:?}"),
    );
    let _ = std::fs::remove_file(s.ws.join("big"));
    let said = launch(who, &request(&spec(&s.ws, &["sh", "-c", big])), &json!({}));
    let size = std::fs::metadata(s.ws.join("big")).map(|m| m.len());
    v.check(
        "control: without the limit the command writes 4096 bytes",
        ran(&said) && size.as_ref().is_ok_and(|n| *n == 4096),
        format!("{said} {size:?}"),
    );

    // RLIMIT_NOFILE: below what a run needs, the launcher raises it as
    // root where it can (and gives the command the caller's back), and
    // refuses by name where it cannot; at 64 it runs, and the command
    // gets 64.
    let hard_files = |limits: Value| {
        let mut config = json!({"stdout_to": out});
        if !limits.is_null() {
            config["rlimits"] = json!({ "NOFILE": limits });
        }
        let said = launch(
            who,
            &request(&spec(&s.ws, &["sh", "-c", "ulimit -Hn"])),
            &config,
        );
        let shown = std::fs::read_to_string(&out).unwrap_or_default();
        (said, shown.trim().to_string())
    };
    let (said, shown) = hard_files(json!([5, 5]));
    let (ok, expected) = if root_can_raise_limits() {
        (ran(&said) && shown == "5", "runs, with the caller's 5")
    } else {
        (
            said.contains("status 125") && said.contains("RLIMIT_NOFILE"),
            "refused by name (root cannot raise limits here)",
        )
    };
    v.check(
        &format!("RLIMIT_NOFILE 5: the launcher {expected}"),
        ok,
        format!("{said} ulimit -Hn: {shown:?}"),
    );
    let (said, shown) = hard_files(json!([64, 64]));
    v.check(
        "RLIMIT_NOFILE 64: the launcher runs, and the command's hard limit is the caller's",
        ran(&said) && shown == "64",
        format!("{said} ulimit -Hn: {shown:?}"),
    );
    let (said, shown) = hard_files(Value::Null);
    v.check(
        "control: without it, the command's hard limit is not 64",
        ran(&said) && !shown.is_empty() && shown != "64",
        format!("{said} {shown:?}"),
    );

    // Extra descriptors: a directory of the caller's at 9 and 5 never
    // reach the command (control: they reach an ordinary program).
    let fds = json!({"extra_fds": {"5": who.home, "9": "/"}, "stdout_to": out});
    let said = launch(who, &request(&spec(&s.ws, &["ls", "/proc/self/fd"])), &fds);
    let listed = std::fs::read_to_string(&out).unwrap_or_default();
    let names: Vec<&str> = listed.split_whitespace().collect();
    v.check(
        "extra descriptors 5 and 9 do not reach the command",
        ran(&said) && !names.contains(&"5") && !names.contains(&"9") && names.contains(&"2"),
        format!("{said} fds: {names:?}"),
    );
    let mut control = fds.clone();
    control["argv"] = json!(["/proc/self/fd"]);
    let _ = launch_with(who, "/bin/ls", b"", &control);
    let listed = std::fs::read_to_string(&out).unwrap_or_default();
    v.check(
        "control: an ordinary program gets descriptors 5 and 9",
        listed.split_whitespace().any(|n| n == "9") && listed.split_whitespace().any(|n| n == "5"),
        &listed,
    );

    // Standard streams closed: nothing the launcher opens lands there.
    let said = launch(
        who,
        &request(&spec(&s.ws, &["true"])),
        &json!({"close": [0, 1, 2]}),
    );
    v.check(
        "stdin, stdout and stderr closed: the launcher runs",
        ran(&said),
        &said,
    );

    // Signals ignored or blocked, and an interval timer left running:
    // the launcher resets them and reports the command's own status.
    let hostile = json!({
        "ignore": ["SIGCHLD", "SIGTERM", "SIGHUP", "SIGPIPE"],
        "block": ["SIGCHLD", "SIGTERM", "SIGALRM"],
        "alarm": 0.05,
    });
    let said = launch(
        who,
        &request(&spec(&s.ws, &["sh", "-c", "sleep 0.3; exit 7"])),
        &hostile,
    );
    v.check(
        "ignored and blocked signals and a 50 ms timer: the launcher runs and reports status 7",
        said.lines().any(|l| l == "status 7"),
        &said,
    );
    let mut control = json!({"alarm": 0.05});
    control["argv"] = json!(["0.3"]);
    let said = launch_with(who, "/bin/sleep", b"", &control);
    v.check(
        "control: the timer kills an ordinary program that keeps it (SIGALRM)",
        said.lines().any(|l| l == "signal 14"),
        &said,
    );
}

/// A workspace whose name is not UTF-8, beside a symlink named as its
/// lossy form pointing where the caller cannot reach: the bytes checked
/// are the bytes used.
fn non_utf8_workspace(v: &mut Verdicts, who: &Who) {
    let s = Scratch::new(who, "evil-bytes");
    let locked = Locked::new(&s, "bytes");
    let mut ws_bytes = s.base.clone().into_os_string().into_vec();
    ws_bytes.extend_from_slice(b"/ws\xff");
    let ws = PathBuf::from(OsString::from_vec(ws_bytes));
    std::fs::create_dir(&ws).unwrap();
    std::os::unix::fs::chown(&ws, Some(who.uid), Some(who.gid)).unwrap();
    let lossy = PathBuf::from(ws.to_string_lossy().into_owned());
    std::os::unix::fs::symlink(&locked.victim, &lossy).unwrap();
    let (unreachable, said) = locked.unreachable_to(who);
    v.check(
        "control: the caller cannot reach the symlink's target",
        unreachable,
        said,
    );
    v.check(
        "control: the lossy name leads to the victim",
        std::fs::canonicalize(&lossy).ok().as_deref() == Some(locked.victim.as_path()),
        "",
    );
    let said = launch(
        who,
        &request(&spec(&ws, &["sh", "-c", "echo pwned > marker"])),
        &json!({}),
    );
    v.check(
        "a non-UTF-8 workspace runs, and the command writes in it",
        ran(&said) && ws.join("marker").exists(),
        &said,
    );
    v.check(
        "nothing is written where its lossy name's symlink leads",
        !locked.victim.join("marker").exists(),
        "the victim got the marker",
    );
    let owner = std::fs::metadata(ws.join("marker")).map(|m| m.uid());
    v.check(
        "what the command made is the caller's on disk",
        owner.as_ref().ok() == Some(&who.uid),
        format!("{owner:?}"),
    );
    drop(locked);
}

/// The workspace replaced by a symlink (and put back) in a loop while
/// launches run: each run is refused with a reason or writes into the
/// real workspace, never where the symlink leads.
fn workspace_swapped(v: &mut Verdicts, who: &Who) {
    let s = Scratch::new(who, "evil-race");
    // Before the locked directory: mkdir gives the whole scratch to the
    // caller.
    let race = s.mkdir("race");
    let locked = Locked::new(&s, "race");
    let base = s.base.display().to_string();
    let victim = locked.victim.display().to_string();
    // Mostly the real directory, briefly a symlink: checks pass often, and
    // the name changes under some of them.
    let script = format!(
        "cd {base}; while [ ! -e stop ]; do mv race race.real && ln -s {victim} race && \
         sleep 0.002; rm race && mv race.real race; sleep 0.01; done"
    );
    let mut swapper = command_as(who, "sh").args(["-c", &script]).spawn().unwrap();
    let (mut runs, mut refused, mut other) = (0, 0, Vec::new());
    let mut reasons = std::collections::BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until && runs + refused < 150 {
        let said = launch(
            who,
            &request(&spec(&race, &["sh", "-c", "echo $$ >> marker"])),
            &json!({}),
        );
        if ran(&said) {
            runs += 1;
        } else if said.contains("status 125") && said.contains("reason") {
            refused += 1;
            let reason = said.split("reason ").nth(1).unwrap_or("").to_string();
            let key: String = reason
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .take(60)
                .collect();
            *reasons.entry(key).or_insert(0) += 1;
        } else {
            other.push(said);
        }
    }
    std::fs::write(s.base.join("stop"), "").unwrap();
    let _ = swapper.wait();
    eprintln!("raced launches: {runs} ran, {refused} refused: {reasons:#?}");
    let victim_marker = locked.victim.join("marker");
    v.check(
        "a workspace swapped for a symlink in a loop: nothing is ever written where it leads",
        !victim_marker.exists(),
        format!("{} runs, {} refused", runs, refused),
    );
    v.check(
        "every raced launch ran or was refused with a reason",
        other.is_empty(),
        format!("{other:?}"),
    );
    v.check(
        "raced launches that ran wrote into the real workspace",
        runs == 0 || race.join("marker").exists() || s.base.join("race.real/marker").exists(),
        format!("{runs} runs"),
    );
    let said = launch(
        who,
        &request(&spec(&race, &["sh", "-c", "echo $$ >> marker"])),
        &json!({}),
    );
    v.check("control: unraced, the same request runs", ran(&said), &said);
    let (unreachable, said) = locked.unreachable_to(who);
    v.check(
        "control: the caller cannot reach the symlink's target",
        unreachable,
        said,
    );
}

/// Other people's paths in the request, each refused by name; the same
/// request with the caller's own paths runs.
fn other_peoples_paths(v: &mut Verdicts, who: &Who) {
    let s = Scratch::new(who, "evil-others");
    let theirs = s.base.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(0), Some(0)).unwrap();
    let root_private = PathBuf::from(format!("/root/moat-it-{}", std::process::id()));
    std::fs::create_dir_all(&root_private).unwrap();
    let mut writable_theirs = spec(&s.ws, &["true"]);
    writable_theirs.fs.writable.push(theirs.clone());
    let mut writable_private = spec(&s.ws, &["true"]);
    writable_private.fs.writable.push(root_private.clone());
    let mut cwd_private = spec(&s.ws, &["true"]);
    cwd_private.cwd = root_private.clone();
    let mut ws_private = spec(&root_private, &["true"]);
    ws_private.cwd = s.ws.clone();
    let mut etc = spec(&s.ws, &["true"]);
    etc.fs.writable.push(PathBuf::from("/etc"));
    let mut online = spec(&s.ws, &["true"]);
    online.isolation = Isolation::Namespaces;
    let cases = [
        (
            "another person's directory as a writable root",
            writable_theirs,
            "is not yours",
        ),
        (
            "a directory inside root's home as a writable root",
            writable_private,
            "cannot reach",
        ),
        (
            "a working directory inside root's home",
            cwd_private,
            "cannot reach",
        ),
        ("a workspace inside root's home", ws_private, "cannot reach"),
        ("/etc as a writable root", etc, "cannot be made writable"),
        ("a spec for another tier", online, "only elevated runs"),
    ];
    for (what, spec, reason) in cases {
        let said = launch(who, &request(&spec), &json!({}));
        v.check(
            &format!("the launcher refuses {what}"),
            said.contains("status 125") && said.contains(reason),
            &said,
        );
    }
    let said = launch(who, &request(&spec(&s.ws, &["true"])), &json!({}));
    v.check("control: the caller's own paths run", ran(&said), &said);
    let _ = std::fs::remove_dir_all(&root_private);
}

/// The launcher killed at every one of its system calls, and stopped at
/// many: nothing is left half-done (no mount, no stray file, no process;
/// cgroups and temporary files are gone after the next run), and the next
/// run works, also while another launcher is stopped.
fn killed_or_stopped_at_each_step(v: &mut Verdicts, who: &Who) {
    let s = Scratch::new(who, "evil-steps");
    let users = gid_of(moat_spec::install::USERS_GROUP);
    let groups = [who.gid, users];
    let req = request(&spec(&s.ws, &["true"]));
    let start = || trace::Traced::start(LAUNCHER, who.uid, who.gid, &groups, &req);
    // Force the slow path too (listing the firewall, writing the stamp),
    // in the first pass.
    let stamp = Path::new(STATE_DIR).join("firewall-verified");
    let _ = std::fs::remove_file(&stamp);
    let said = launch(who, &req, &json!({}));
    v.check(
        "control: a launch as the test account runs",
        ran(&said),
        &said,
    );
    let clean = traces();

    // How many system-call stops a whole launch makes.
    let mut t = start();
    let mut total = 0;
    while let trace::At::Syscall(_) = t.next() {
        total += 1;
    }
    v.check(
        "a traced launch runs to its end",
        total > 50,
        format!("{total} stops"),
    );
    // A launcher stopped at its `n`th system-call stop, and that call;
    // `None` if it ended first.
    let t_at = |n: usize| {
        let mut t = start();
        for _ in 0..n {
            if let trace::At::Ended(_) = t.next() {
                return None;
            }
        }
        match t.next() {
            trace::At::Syscall(nr) => Some((t, nr)),
            trace::At::Ended(_) => None,
        }
    };
    let mut killed = 0;
    let mut failures = Vec::new();
    for round in 0..2 {
        if round == 1 {
            let _ = std::fs::remove_file(&stamp);
        }
        for n in 1..total {
            let Some((t, nr)) = t_at(n - 1) else {
                break;
            };
            t.kill();
            killed += 1;
            if !processes_gone() {
                failures.push(format!(
                    "killed at stop {n} ({}): a sandbox process is left",
                    trace::name(nr)
                ));
            }
            let now = traces();
            if now.mounts != clean.mounts {
                failures.push(format!(
                    "killed at stop {n} ({}): mounts changed: {:?}",
                    trace::name(nr),
                    now.mounts
                        .iter()
                        .filter(|m| !clean.mounts.contains(m))
                        .collect::<Vec<_>>()
                ));
            }
            // Every tenth step (and the last), the next run must work and
            // leave what a clean run leaves.
            if n % 10 == 0 || n + 1 == total {
                let said = launch(who, &req, &json!({}));
                let after = traces();
                if !ran(&said) {
                    failures.push(format!(
                        "after a kill at stop {n}: the next run failed: {said}"
                    ));
                }
                let stray_state: Vec<&String> = after
                    .state
                    .iter()
                    .filter(|f| !clean.state.contains(f) && *f != "firewall-verified")
                    .collect();
                if !after.cgroups.is_empty() || !stray_state.is_empty() || after.processes != 0 {
                    failures.push(format!(
                        "after a kill at stop {n} and the next run: cgroups {:?}, files {:?}, \
                         processes {:?}",
                        after.cgroups,
                        stray_state,
                        sandbox_process_list()
                    ));
                }
            }
            if failures.len() > 5 {
                break;
            }
        }
    }
    eprintln!("a launch makes {total} system-call stops; killed at {killed} of them");
    v.check(
        &format!("killed at each of {killed} system calls: nothing is left half-done"),
        failures.is_empty() && killed > 50,
        failures.join("\n"),
    );

    // Stopped (as by SIGSTOP) at every seventh step: another launch runs
    // meanwhile; then the stopped one is killed and leaves nothing.
    let mut failures = Vec::new();
    let mut stopped = 0;
    for n in (1..total).step_by(7) {
        let Some((t, nr)) = t_at(n - 1) else {
            break;
        };
        stopped += 1;
        let said = launch(who, &req, &json!({}));
        if !ran(&said) {
            failures.push(format!(
                "while a launcher is stopped at stop {n} ({}): another run failed: {said}",
                trace::name(nr)
            ));
        }
        t.kill();
        if !processes_gone() {
            failures.push(format!(
                "stopped at {n}, then killed: a sandbox process is left"
            ));
        }
        if failures.len() > 5 {
            break;
        }
    }
    eprintln!("stopped at {stopped} of them while another launch ran");
    let said = launch(who, &req, &json!({}));
    let after = traces();
    v.check(
        &format!("stopped at {stopped} steps: other runs go on, and nothing is left"),
        failures.is_empty()
            && stopped > 5
            && ran(&said)
            && after.cgroups.is_empty()
            && after.processes == 0
            && after.mounts == clean.mounts,
        format!("{}\nafter: {after:?}", failures.join("\n")),
    );
}

#[test]
fn a_hostile_caller_gets_nothing() {
    if !is_root() {
        eprintln!("skipped: attacking the setuid launcher needs root (to set it up)");
        return;
    }
    if Path::new(STATE_DIR).join("setup.toml").exists() {
        eprintln!("skipped: this machine has a moat setup of its own; not touching it");
        return;
    }
    let _guard = Removed;
    let who = user();
    let out = output(Command::new(moat()).args(["setup", "--user", &who.name]));
    assert!(out.status.success(), "{}", show(&out));
    let mut v = Verdicts::default();
    environment_and_planted_symlinks(&mut v, &who);
    limits_descriptors_signals(&mut v, &who);
    non_utf8_workspace(&mut v, &who);
    workspace_swapped(&mut v, &who);
    other_peoples_paths(&mut v, &who);
    killed_or_stopped_at_each_step(&mut v, &who);
    v.finish();
}
