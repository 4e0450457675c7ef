//! `moat setup` on the real machine (root only): set up, check, attack the
//! firewall with the sandbox accounts, repair drift, refuse a taken name,
//! remove, and find nothing left. Everything runs in one test so no other
//! test sees a half-made setup, and a guard removes the setup even when an
//! assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::*;

/// Also deletes the account the conflict check makes under a sandbox name.
struct TakenName;

impl Drop for TakenName {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("moat-offline").output();
    }
}

fn moat_setup(args: &[&str]) -> std::process::Output {
    output(Command::new(moat()).arg("setup").args(args))
}

/// moat-probe run as `account` (primary group moat-sandbox).
fn probe_as(account: &str, args: &[&str]) -> String {
    let out = output(
        Command::new("setpriv")
            .args([
                "--reuid",
                account,
                "--regid",
                "moat-sandbox",
                "--clear-groups",
                "--",
            ])
            .arg(probe())
            .args(args),
    );
    stdout(&out)
}

const LAUNCHER: &str = "/usr/local/libexec/moat/moat-launch";

/// Runs the launcher with `request` the way moat does (tests/
/// launcher_client.py); its exit status and reason.
fn launcher_says(who: &Who, request: &[u8]) -> String {
    use std::io::Write;
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/launcher_client.py");
    let mut child = command_as(who, "python3")
        .args([client, LAUNCHER])
        .current_dir("/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    stdout(&out)
}

/// A request for `true` in `ws` (spelled as given), writable.
fn request_for(ws: &str) -> Vec<u8> {
    let ws = std::path::PathBuf::from(ws);
    moat_spec::wire::encode(&moat_spec::RunSpec {
        isolation: moat_spec::Isolation::Elevated,
        net: moat_spec::Net::Off,
        fs: moat_spec::Fs {
            workspace: ws.clone(),
            writable: vec![ws.clone()],
            ..moat_spec::Fs::default()
        },
        limits: moat_spec::Limits::default(),
        env: Vec::new(),
        argv: vec!["true".into()],
        cwd: ws,
        pty: false,
        extra_ca: None,
    })
}

/// The elevated tier, once set up: who runs, what the sandbox account can
/// reach, real workflows as root and as an ordinary person whose home is
/// 0750, the launcher's refusals, and the faults.
fn elevated_tier(who: &Who) {
    let mut v = Verdicts::default();
    let root = identities().remove(0);
    let elevated = ["--tier", "elevated"];

    // An ordinary person not authorised cannot use it.
    output(Command::new("gpasswd").args(["--delete", &who.name, "moat-users"]));
    let s = Scratch::new(who, "elev-unauth");
    let out = moat_run(who, &s.ws, &elevated, &["true"]);
    v.check(
        "an unauthorised person is refused",
        out.status.code() == Some(125) && stderr(&out).contains("moat-users"),
        show(&out),
    );
    drop(s);
    let out = moat_setup(&["--user", &who.name]);
    assert!(out.status.success(), "{}", show(&out));

    for person in [&root, who] {
        let s = Scratch::new(person, "elev");
        let tag = &person.name;
        // Who runs: the sandbox account, not the person (control: the
        // unelevated tier runs as the person).
        let out = moat_run(person, &s.ws, &elevated, &["id", "-un"]);
        v.check(
            &format!("{tag}: runs as moat-offline"),
            stdout(&out).trim() == "moat-offline",
            show(&out),
        );
        let out = moat_run(person, &s.ws, &["--tier", "unelevated"], &["id", "-un"]);
        v.check(
            &format!("{tag}: control runs as the person"),
            stdout(&out).trim() == person.name,
            show(&out),
        );
        // Once set up, a run that names no tier takes the elevated one.
        let out = output(
            command_as(person, moat())
                .args(["run", "--workspace"])
                .arg(&s.ws)
                .args(["--", "id", "-un"])
                .current_dir(&s.ws),
        );
        v.check(
            &format!("{tag}: with no --tier the run is elevated"),
            stdout(&out).trim() == "moat-offline",
            show(&out),
        );
        // Files the sandbox makes belong to the person on disk.
        let out = moat_run(person, &s.ws, &elevated, &["sh", "-c", "echo x > made"]);
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(s.ws.join("made")).unwrap_or_else(|_| panic!("{}", show(&out))),
        );
        v.check(
            &format!("{tag}: a file made in the sandbox is the person's"),
            owner == person.uid,
            format!("owner {owner}"),
        );
        // Outside the workspace nothing is writable (control: it is,
        // without the sandbox).
        let canary = s.outside.join("canary");
        let canary = canary.to_str().unwrap();
        let control = outside(person, &s.ws, "write-file", &[canary]);
        let attempt = inside(person, &s.ws, &elevated, "write-file", &[canary]);
        v.blocked(
            &format!("{tag}: write beside the workspace"),
            &control,
            &attempt,
            &["EROFS", "EACCES"],
        );
        // The person's home is readable whatever its mode.
        let secret = s.write("notes.txt", "mine\n");
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let read = inside(
            person,
            &s.ws,
            &elevated,
            "read-file",
            &[secret.to_str().unwrap()],
        );
        v.works(
            &format!("{tag}: read a 0600 file of the person's home"),
            &read,
        );
        // The network: moat-offline reaches nothing.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let control = outside(person, &s.ws, "connect-tcp", &["127.0.0.1", &port]);
        let attempt = inside(
            person,
            &s.ws,
            &elevated,
            "connect-tcp",
            &["127.0.0.1", &port],
        );
        v.blocked(
            &format!("{tag}: connect to the host's loopback"),
            &control,
            &attempt,
            &["ECONNREFUSED", "ENETUNREACH"],
        );
    }

    // Workflows, as root (rustup's cargo) and as the person with a 0750
    // home (the distribution's cargo).
    let home = who.home.clone();
    let mode =
        std::fs::metadata(&home).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    for person in [&root, who] {
        let s = Scratch::new(person, "elev-work");
        let script = "set -e; cargo new --vcs git demo; cd demo; cargo build --offline; \
                      cargo test --offline; git add -A; \
                      git -c user.name=t -c user.email=t@example.invalid commit -qm first; \
                      git log --oneline | wc -l";
        let mut c = command_as(person, moat());
        c.args(["run", "--tier", "elevated", "--workspace"])
            .arg(&s.ws)
            .args(["--", "sh", "-c", script])
            .current_dir(&s.ws);
        let out = output(&mut c);
        v.check(
            &format!("{}: cargo new, build, test and git commit", person.name),
            out.status.success() && stdout(&out).trim().ends_with('1'),
            show(&out),
        );
        let target = s.ws.join("demo/target");
        let owner = std::fs::metadata(&target).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        v.check(
            &format!("{}: the build's files are the person's", person.name),
            owner.as_ref().ok() == Some(&person.uid),
            format!("{owner:?}"),
        );
    }
    if let Ok(m) = mode {
        let _ = std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(m));
    }

    // The launcher refuses what it must, with a reason.
    let s = Scratch::new(who, "elev-refuse");
    let ws = s.ws.to_str().unwrap().to_string();
    let link = s.base.join("to-etc");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let theirs = s.base.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(0), Some(0)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a malformed request",
            b"V1:4,garbage".to_vec(),
            "malformed request",
        ),
        (
            "an oversized request",
            vec![b'a'; (1 << 20) + 1],
            "larger than",
        ),
        (
            "a relative workspace",
            request_for("ws"),
            "not an absolute path",
        ),
        (
            "a non-canonical workspace",
            request_for(&format!("{ws}/../ws")),
            "not canonical",
        ),
        (
            "a workspace that is a symlink to /etc",
            request_for(link.to_str().unwrap()),
            "goes through a symlink",
        ),
        (
            "a system directory",
            request_for("/etc"),
            "cannot be made writable",
        ),
        (
            "someone else's directory",
            request_for(theirs.to_str().unwrap()),
            "is not yours",
        ),
        (
            "a directory the caller cannot reach",
            request_for("/root"),
            "cannot reach",
        ),
    ];
    for (what, request, reason) in cases {
        let said = launcher_says(who, &request);
        v.check(
            &format!("the launcher refuses {what}"),
            said.contains("status 125") && said.contains(reason),
            &said,
        );
    }
    let said = launcher_says(who, &request_for(&ws));
    v.check(
        "control: the launcher runs a good request",
        said.trim() == "status 0",
        &said,
    );
    let run = output(&mut Command::new(LAUNCHER));
    v.check(
        "the launcher started by hand says what it is",
        run.status.code() == Some(125) && stderr(&run).contains("moat run --tier elevated"),
        show(&run),
    );

    // kill -9 of moat mid-run leaves no process and no mount behind.
    let marker = format!("moat-kill-test-{}", std::process::id());
    let mut child = command_as(who, moat())
        .args(["run", "--tier", "elevated", "--workspace"])
        .arg(&s.ws)
        .args([
            "--",
            "sh",
            "-c",
            &format!("sleep 300 & exec sleep 301 # {marker}"),
        ])
        .current_dir(&s.ws)
        .spawn()
        .unwrap();
    let started = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        processes_matching(&marker) > 0
    });
    v.check("the run to kill started", started, "");
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        processes_matching(&marker) == 0 && processes_matching("moat-launch") == 0
    });
    v.check(
        "kill -9 of moat leaves no process",
        gone,
        format!("{} left", processes_matching(&marker)),
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    v.check(
        "kill -9 of moat leaves no mount",
        !mounts.contains(s.ws.to_str().unwrap()),
        "",
    );
    v.check(
        "kill -9 of moat leaves no cgroup (the launcher removes it)",
        (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            run_cgroups().is_empty()
        }),
        format!("{:?}", run_cgroups()),
    );

    cgroup_limits(&mut v, who, &s.ws);

    // The allowlist through the launcher: the proxy's sockets (the DNS
    // stub's among them) reach moat; unlisted names resolve to nothing.
    let out = moat_run(
        who,
        &s.ws,
        &[
            "--tier",
            "elevated",
            "--network",
            "allow",
            "--allow-domain",
            "pkg.test",
        ],
        &[
            "sh",
            "-c",
            "getent hosts pkg.test; getent hosts other.test || echo refused",
        ],
    );
    v.check(
        "elevated allow: the DNS stub answers through the launcher",
        stdout(&out).starts_with("198.18.") && stdout(&out).trim_end().ends_with("refused"),
        show(&out),
    );

    // A failure after the launcher started the run (a working directory
    // the sandbox cannot see) comes back with its reason.
    let hidden = std::path::PathBuf::from(format!("/var/tmp/moat-it-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&hidden).unwrap();
    let mut c = command_as(who, moat());
    c.args(["run", "--tier", "elevated", "--workspace"])
        .arg(&s.ws)
        .args(["--", "true"])
        .current_dir(&hidden);
    let out = output(&mut c);
    let _ = std::fs::remove_dir(&hidden);
    v.check(
        "a setup failure inside the run is reported with its reason",
        out.status.code() == Some(125) && stderr(&out).contains("entering the working directory"),
        show(&out),
    );

    // A removed firewall table is noticed before the next run.
    output(Command::new("nft").args(["delete", "table", "inet", "moat"]));
    let out = moat_run(who, &s.ws, &elevated, &["true"]);
    v.check(
        "a run refuses when the firewall table is gone",
        out.status.code() == Some(125) && stderr(&out).contains("firewall rules"),
        show(&out),
    );
    assert!(moat_setup(&["--user", &who.name]).status.success());
    let out = moat_run(who, &s.ws, &elevated, &["true"]);
    v.check(
        "control: after setup the run works again",
        out.status.success(),
        show(&out),
    );
    v.finish();
}

/// Every run cgroup on the machine (any hierarchy, 8 levels down).
fn run_cgroups() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, depth: u32, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with("moat-run-") {
                out.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in info.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        if post.starts_with("cgroup ") || post.starts_with("cgroup2 ") {
            let mount = pre.split_whitespace().nth(4).unwrap();
            walk(std::path::Path::new(mount), 8, &mut out);
        }
    }
    out
}

/// Reads `file` from whichever of `dirs` has it.
fn cgroup_value(dirs: &[std::path::PathBuf], files: &[&str]) -> Option<String> {
    dirs.iter()
        .flat_map(|d| files.iter().map(move |f| d.join(f)))
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|v| v.trim().to_string())
}

/// Each elevated run gets its own cgroups with the policy's memory and
/// process limits, and they are gone when it ends, however it ends.
fn cgroup_limits(v: &mut Verdicts, who: &Who, ws: &std::path::Path) {
    let limits = [
        "--tier",
        "elevated",
        "--max-memory",
        "64M",
        "--max-processes",
        "40",
        "--max-cpus",
        "0.25",
    ];
    let mut child = command_as(who, moat())
        .args(["run", "--workspace"])
        .arg(ws)
        .args(limits)
        .args(["--", "sleep", "2"])
        .current_dir(ws)
        .spawn()
        .unwrap();
    let mut dirs = Vec::new();
    for _ in 0..150 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        dirs = run_cgroups();
        if cgroup_value(&dirs, &["cgroup.procs"]).is_some_and(|p| !p.is_empty()) {
            break;
        }
    }
    let memory = cgroup_value(&dirs, &["memory.max", "memory.limit_in_bytes"]);
    let pids = cgroup_value(&dirs, &["pids.max"]);
    let cpu = cgroup_value(&dirs, &["cpu.max", "cpu.cfs_quota_us"]);
    let procs = cgroup_value(&dirs, &["cgroup.procs"]).unwrap_or_default();
    v.check(
        "a run's cgroup holds its processes and limits",
        memory.as_deref() == Some("67108864")
            && pids.as_deref() == Some("40")
            && matches!(cpu.as_deref(), Some("25000 100000" | "25000"))
            && !procs.is_empty(),
        format!("{dirs:?}: memory {memory:?}, pids {pids:?}, cpu {cpu:?}, procs {procs:?}"),
    );
    let status = child.wait().unwrap();
    v.check(
        "the run's cgroups are removed when it ends",
        status.success() && run_cgroups().is_empty(),
        format!("{status}, {:?}", run_cgroups()),
    );

    // The memory limit holds for the whole run (control: a larger one
    // lets the same allocation through).
    let grab = ["python3", "-c", "b = bytearray(256 << 20); print('got it')"];
    let out = moat_run(who, ws, &limits, &grab);
    v.check(
        "256 MiB under a 64 MiB limit is refused",
        !out.status.success() && !stdout(&out).contains("got it"),
        show(&out),
    );
    let report = ws.join("report.json");
    let out = moat_run(
        who,
        ws,
        &[
            "--tier",
            "elevated",
            "--max-memory",
            "1G",
            "--report",
            report.to_str().unwrap(),
        ],
        &grab,
    );
    let said = std::fs::read_to_string(&report).unwrap_or_default();
    v.check(
        "control: under a 1 GiB limit it succeeds, enforced by a cgroup",
        out.status.success() && said.contains("bytes of memory for the whole run (cgroup v"),
        format!("{}\nreport: {said}", show(&out)),
    );
    let forks = [
        "sh",
        "-c",
        "for i in $(seq 60); do sleep 1 & done; wait; echo done",
    ];
    let out = moat_run(who, ws, &limits, &forks);
    v.check(
        "60 processes under a 40-process limit are refused",
        stderr(&out).contains("fork"),
        show(&out),
    );
    let out = moat_run(
        who,
        ws,
        &["--tier", "elevated", "--max-processes", "100"],
        &forks,
    );
    v.check(
        "control: under a 100-process limit they start",
        out.status.success() && !stderr(&out).contains("fork"),
        show(&out),
    );

    // A quarter of a CPU: a busy loop of 1.5 s gets about 0.4 s of CPU
    // (control: without the limit, about all of it).
    let spin = [
        "python3",
        "-c",
        "import os, time\nt = time.time()\nwhile time.time() - t < 1.5: pass\nc = os.times()\nprint(c.user + c.system)",
    ];
    let used = |out: &std::process::Output| stdout(out).trim().parse::<f64>().unwrap_or(-1.0);
    let limited = moat_run(
        who,
        ws,
        &["--tier", "elevated", "--max-cpus", "0.25"],
        &spin,
    );
    let free = moat_run(who, ws, &["--tier", "elevated"], &spin);
    v.check(
        "--max-cpus 0.25 holds a busy loop to a quarter of a CPU",
        (0.0..0.8).contains(&used(&limited)) && used(&free) > 1.0,
        format!("limited {}, control {}", show(&limited), show(&free)),
    );

    // A launcher killed outright cannot clean up; the next run does.
    let marker = format!("moat-cg-test-{}", std::process::id());
    let mut child = command_as(who, moat())
        .args(["run", "--workspace"])
        .arg(ws)
        .args(limits)
        .args(["--", "sh", "-c", &format!("exec sleep 302 # {marker}")])
        .current_dir(ws)
        .spawn()
        .unwrap();
    // Once the run's cgroups exist (killed before, it leaves none).
    let running = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        !run_cgroups().is_empty()
    });
    let launcher = launcher_of(child.id()).filter(|_| running);
    let _ = Command::new("kill")
        .args(["-9", &launcher.unwrap_or(0).to_string()])
        .status();
    let _ = child.wait();
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        processes_matching(&marker) == 0
    });
    let left = run_cgroups();
    let out = moat_run(who, ws, &limits, &["true"]);
    v.check(
        "after kill -9 of the launcher the run is gone and the next run removes its cgroups",
        launcher.is_some()
            && gone
            && !left.is_empty()
            && out.status.success()
            && run_cgroups().is_empty(),
        format!(
            "launcher {launcher:?}, left {left:?}, after {:?}, {}",
            run_cgroups(),
            show(&out)
        ),
    );
}

/// The launcher moat `pid` started.
fn launcher_of(pid: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (name == "moat-launch" && ppid == pid)
            .then(|| e.file_name().to_string_lossy().parse().ok())
            .flatten()
    })
}

/// Live processes whose command line contains `text` (zombies excluded).
fn processes_matching(text: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.is_empty() && String::from_utf8_lossy(&cmdline).contains(text) {
            n += 1;
        }
    }
    n
}

fn passwd_mentions(name: &str) -> Vec<String> {
    ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"]
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(':').next() == Some(name))
        })
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn setup_check_firewall_drift_conflict_and_removal() {
    if !is_root() {
        eprintln!("skipped: moat setup needs root");
        return;
    }
    let _taken = TakenName;
    let Some(_setup) = TestSetup::begin() else {
        eprintln!("skipped: this machine has a moat setup of its own; not touching it");
        return;
    };
    let who = user();

    // Not as an ordinary account.
    let out = output(command_as(&who, moat()).args(["setup", "--user", &who.name]));
    assert!(
        !out.status.success() && stderr(&out).contains("as root"),
        "{}",
        show(&out)
    );

    // Two setups at once, from nothing: they take turns on the lock, both
    // succeed, and what they leave checks out (the record included).
    let racers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(moat())
                .args(["setup", "--user", &who.name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in racers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "concurrent setup: {}", show(&out));
    }
    let out = moat_setup(&["--check"]);
    assert!(out.status.success(), "{}", show(&out));
    let record = std::fs::read_to_string("/var/lib/moat/setup.toml").unwrap();
    assert_eq!(record.matches("moat-offline").count(), 1, "{record}");
    let out = moat_setup(&["--user", &who.name]);
    assert!(out.status.success(), "{}", show(&out));
    let out = moat_setup(&["--check"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("refuses all of moat-offline's traffic"),
        "{}",
        show(&out)
    );
    // Idempotent: a second setup changes nothing and duplicates no rule.
    let out = moat_setup(&["--user", &who.name]);
    assert!(out.status.success(), "{}", show(&out));
    let rules = output(Command::new("nft").args(["list", "table", "inet", "moat"]));
    assert_eq!(
        stdout(&rules).matches("meta skuid").count(),
        2,
        "{}",
        show(&rules)
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let offline = passwd
        .lines()
        .find(|l| l.starts_with("moat-offline:"))
        .unwrap();
    assert!(offline.ends_with(":/usr/sbin/nologin"), "{offline}");
    let group = std::fs::read_to_string("/etc/group").unwrap();
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("moat-users:") && l.ends_with(&who.name)),
        "{group}"
    );

    // The firewall: moat-offline reaches nothing, loopback included;
    // moat-online (the positive control) reaches the same listener.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let online = probe_as("moat-online", &["connect-tcp", "127.0.0.1", &port]);
    assert!(online.contains("\"ok\":true"), "control: {online}");
    let offline = probe_as("moat-offline", &["connect-tcp", "127.0.0.1", &port]);
    assert!(
        offline.contains("ECONNREFUSED"),
        "moat-offline must be refused: {offline}"
    );
    let udp = probe_as("moat-offline", &["send-udp", "127.0.0.1", &port]);
    assert!(
        udp.contains("EPERM"),
        "moat-offline UDP must be refused: {udp}"
    );

    elevated_tier(&who);

    // Drift: a deleted table is named by --check and repaired by setup.
    output(Command::new("nft").args(["delete", "table", "inet", "moat"]));
    let out = moat_setup(&["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stdout(&out).contains("WRONG    firewall"), "{}", show(&out));
    assert!(moat_setup(&["--user", &who.name]).status.success());
    assert!(moat_setup(&["--check"]).status.success());

    // Removal leaves nothing, and says so.
    let out = moat_setup(&["--remove"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("nothing of the setup is left"),
        "{}",
        show(&out)
    );
    for name in ["moat-offline", "moat-online", "moat-sandbox", "moat-users"] {
        assert!(
            passwd_mentions(name).is_empty(),
            "{name} left in {:?}",
            passwd_mentions(name)
        );
    }
    let tables = output(Command::new("nft").args(["list", "tables"]));
    assert!(!stdout(&tables).contains("inet moat"), "{}", show(&tables));
    assert!(!std::path::Path::new("/var/lib/moat").exists());
    assert!(
        !std::path::Path::new(LAUNCHER).exists(),
        "the launcher is left"
    );
    let cgroups = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/unified/moat").exists(),
        "the cgroup subtree is left"
    );
    assert!(!cgroups.contains("moat-it-"), "a sandbox mount is left");
    assert!(
        !cgroups.contains("/run/moat") && !std::path::Path::new("/run/moat").exists(),
        "a kept id mapping is left"
    );

    // A name taken by someone else: setup refuses and changes nothing.
    let made = output(Command::new("useradd").args([
        "--no-create-home",
        "--shell",
        "/bin/sh",
        "moat-offline",
    ]));
    assert!(made.status.success(), "{}", show(&made));
    let out = moat_setup(&["--user", &who.name]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(stderr(&out).contains("did not make"), "{}", show(&out));
    assert!(
        passwd_mentions("moat-sandbox").is_empty(),
        "setup changed things before refusing"
    );
    assert!(
        passwd_mentions("moat-online").is_empty(),
        "setup changed things before refusing"
    );
    let tables = output(Command::new("nft").args(["list", "tables"]));
    assert!(!stdout(&tables).contains("inet moat"));
    // --remove leaves an account it did not make alone.
    let out = moat_setup(&["--remove"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !passwd_mentions("moat-offline").is_empty(),
        "remove deleted an account it did not make"
    );
    output(Command::new("userdel").arg("moat-offline"));
}
