//! Shared test harness: runs the real `moat` binary (and `moat-probe`
//! inside and outside the sandbox) as root and as an unprivileged account.
//!
//! When the tests run as root they also act as the account `moat-test`
//! (created by `scripts/test.sh`), because that is how people run moat.
//! Run as anyone else, "the user" is simply the current account.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub mod registry;

pub const TEST_USER: &str = "moat-test";

pub fn moat() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_moat"))
}

pub fn probe() -> PathBuf {
    let p = moat().with_file_name("moat-probe");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p moat-probe), as scripts/test.sh does",
        p.display()
    );
    p
}

/// Written before a test makes the machine's moat setup and removed with it:
/// a run killed before its cleanup leaves this behind, and the next
/// `scripts/test.sh` removes the setup it names instead of mistaking it for
/// the machine's own.
pub const TEST_SETUP_MARK: &str = "/var/lib/moat-test-setup";

/// A moat setup made by a test: marked, and removed (with the mark) when
/// dropped, also when an assertion fails.
pub struct TestSetup;

impl TestSetup {
    /// None when the machine has a setup of its own, which tests leave alone.
    pub fn begin() -> Option<TestSetup> {
        if Path::new("/var/lib/moat/setup.toml").exists() {
            if !Path::new(TEST_SETUP_MARK).exists() {
                return None;
            }
            // Left by a test run that was killed: ours to remove.
            let out = output(Command::new(moat()).args(["setup", "--remove"]));
            assert!(
                out.status.success(),
                "a test's leftover setup: {}",
                show(&out)
            );
        }
        std::fs::write(
            TEST_SETUP_MARK,
            "moat's tests made the setup in /var/lib/moat\n",
        )
        .unwrap();
        Some(TestSetup)
    }
}

/// The elevated tier set up for the test account, for a test to use (None,
/// said on stderr, where it cannot be: not root, or the machine's own
/// setup is there).
pub fn elevated_tier() -> Option<TestSetup> {
    if !is_root() {
        eprintln!("skipped: the elevated tier needs root to set up");
        return None;
    }
    let Some(setup) = TestSetup::begin() else {
        eprintln!("skipped: this machine has a moat setup of its own; not touching it");
        return None;
    };
    let out = output(Command::new(moat()).args(["setup", "--user", &user().name]));
    assert!(out.status.success(), "{}", show(&out));
    Some(setup)
}

impl Drop for TestSetup {
    fn drop(&mut self) {
        let removed = Command::new(moat()).args(["setup", "--remove"]).output();
        if removed.map(|o| o.status.success()).unwrap_or(false) {
            let _ = std::fs::remove_file(TEST_SETUP_MARK);
        }
    }
}

pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Who runs moat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Switch to this account (when the tests run as root).
    pub switch: bool,
}

fn lookup(name: &str) -> Option<Who> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[0] == name).then(|| Who {
            name: name.to_string(),
            uid: f[2].parse().unwrap_or(u32::MAX),
            gid: f[3].parse().unwrap_or(u32::MAX),
            home: PathBuf::from(f[5]),
            switch: false,
        })
    })
}

/// The identities to test with: root and the test account when running as
/// root, otherwise the current user.
pub fn identities() -> Vec<Who> {
    if is_root() {
        let mut user = lookup(TEST_USER).unwrap_or_else(|| {
            panic!("the account {TEST_USER} is missing: run the suite with scripts/test.sh, which creates it")
        });
        user.switch = true;
        let root = Who {
            name: "root".into(),
            uid: 0,
            gid: 0,
            home: PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())),
            switch: false,
        };
        vec![root, user]
    } else {
        vec![current()]
    }
}

/// The unprivileged identity (the test account, or the current user).
pub fn user() -> Who {
    identities().pop().unwrap()
}

pub fn current() -> Who {
    let name = std::env::var("USER").unwrap_or_else(|_| "me".into());
    let out = Command::new("id").arg("-u").output().unwrap();
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let out = Command::new("id").arg("-g").output().unwrap();
    let gid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Who {
        name,
        uid,
        gid,
        home: PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())),
        switch: false,
    }
}

/// A command run as `who`, with a clean environment like a login gives.
pub fn command_as(who: &Who, program: impl AsRef<OsStr>) -> Command {
    if who.switch {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", who.uid))
            .arg(format!("--regid={}", who.gid))
            .arg("--init-groups")
            .arg("--reset-env")
            .arg("--")
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `cmd`, retrying while its program is "busy": tests run in parallel
/// threads, and a child forked by another thread can hold the descriptor
/// of a freshly copied probe open until it execs (ETXTBSY).
pub fn output(cmd: &mut Command) -> Output {
    for _ in 0..50 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) => {}
            Err(e) => panic!("cannot run {cmd:?}: {e}"),
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("Text file busy") => {}
            Ok(out) => return out,
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{cmd:?} stayed busy")
}

/// A scratch area owned by `who`: `ws` (the workspace) and `outside` (a
/// sibling the sandbox must not touch). Removed on drop.
pub struct Scratch {
    pub base: PathBuf,
    pub ws: PathBuf,
    pub outside: PathBuf,
    pub who: Who,
}

impl Scratch {
    pub fn new(who: &Who, tag: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Under the person's home, not /tmp: /tmp is private inside the
        // sandbox, so canaries there would be invisible rather than
        // protected.
        let base = who
            .home
            .join(format!("moat-it-{}-{}-{}", tag, std::process::id(), n));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("ws")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/canary"), "canary\n").unwrap();
        // The probe must be visible inside the sandbox, where /tmp (often
        // where the build tree is) is private.
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::fs::copy(probe(), base.join("bin/moat-probe")).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        if who.switch {
            chown_r(&base, who);
        }
        Scratch {
            ws: base.join("ws"),
            outside: base.join("outside"),
            base,
            who: who.clone(),
        }
    }

    /// Writes a file (owned by the scratch's owner).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.base.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        if self.who.switch {
            chown_r(&p, &self.who);
            chown_r(p.parent().unwrap(), &self.who);
        }
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.base.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        if self.who.switch {
            chown_r(&self.base, &self.who);
        }
        p
    }

    /// Runs a shell snippet as the owner, outside the sandbox, in `ws`.
    pub fn sh(&self, script: &str) -> Output {
        command_as(&self.who, "sh")
            .arg("-c")
            .arg(script)
            .current_dir(&self.ws)
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

pub fn chown_r(path: &Path, who: &Who) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", who.uid, who.gid))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `moat run [moat_args] -- cmd...` as `who`, in `ws`. The unelevated tier
/// unless `moat_args` choose one, so that a machine with a moat setup of
/// its own still tests what the test means to.
pub fn moat_run<S: AsRef<OsStr>>(who: &Who, ws: &Path, moat_args: &[&str], cmd: &[S]) -> Output {
    let mut c = command_as(who, moat());
    c.arg("run").arg("--workspace").arg(ws);
    if !moat_args.contains(&"--tier") {
        c.args(["--tier", "unelevated"]);
    }
    c.args(moat_args).arg("--").args(cmd).current_dir(ws);
    output(&mut c)
}

/// What a probe reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ok(String),
    Failed {
        errno: Option<i32>,
        error: String,
        detail: String,
    },
    /// No report: the process died (e.g. SIGSYS), with moat's exit status.
    Died {
        status: Option<i32>,
        stderr: String,
    },
}

impl Probe {
    pub fn is_ok(&self) -> bool {
        matches!(self, Probe::Ok(_))
    }

    pub fn error(&self) -> &str {
        match self {
            Probe::Failed { error, .. } => error,
            _ => "",
        }
    }

    fn parse(out: &Output) -> Probe {
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Through a terminal, echoed input may precede the report on its
        // line.
        let line = stdout
            .lines()
            .rev()
            .find_map(|l| l.find("{\"action\"").map(|i| &l[i..]));
        match line.and_then(|l| serde_json::from_str::<Value>(l.trim_end()).ok()) {
            Some(v) if v["ok"] == Value::Bool(true) => {
                Probe::Ok(v["detail"].as_str().unwrap_or("").to_string())
            }
            Some(v) => Probe::Failed {
                errno: v["errno"].as_i64().map(|e| e as i32),
                error: v["error"].as_str().unwrap_or("").to_string(),
                detail: v["detail"].as_str().unwrap_or("").to_string(),
            },
            None => Probe::Died {
                status: out.status.code(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
        }
    }
}

/// The probe run directly as `who` in `ws`: the positive control.
pub fn outside(who: &Who, ws: &Path, action: &str, args: &[&str]) -> Probe {
    outside_via(who, ws, &[], action, args)
}

/// The probe run as `who` under a wrapper (e.g. `unshare -Urm`, to show
/// a mount call works where it is permitted without touching the host).
pub fn outside_via(who: &Who, ws: &Path, wrapper: &[&str], action: &str, args: &[&str]) -> Probe {
    let mut c = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = command_as(who, first);
            c.args(rest).arg(probe_for(ws));
            c
        }
        None => command_as(who, probe_for(ws)),
    };
    let out = output(c.arg(action).args(args).current_dir(ws));
    Probe::parse(&out)
}

/// Runs `script` with `sh -c` as `who` in `ws` and parses the probe line it
/// prints (for controls that need a shell: leaked descriptors, terminals).
pub fn via_shell(who: &Who, ws: &Path, script: &str) -> Probe {
    let out = output(command_as(who, "sh").arg("-c").arg(script).current_dir(ws));
    Probe::parse(&out)
}

/// The probe copy beside a scratch's workspace, visible in the sandbox.
pub fn probe_for(ws: &Path) -> PathBuf {
    match ws.parent().map(|b| b.join("bin/moat-probe")) {
        Some(p) if p.exists() => p,
        _ => probe(),
    }
}

/// The probe run in the sandbox.
pub fn inside(who: &Who, ws: &Path, moat_args: &[&str], action: &str, args: &[&str]) -> Probe {
    let p = probe_for(ws);
    let mut cmd: Vec<&OsStr> = vec![p.as_os_str(), OsStr::new(action)];
    cmd.extend(args.iter().map(OsStr::new));
    let out = moat_run(who, ws, moat_args, &cmd);
    Probe::parse(&out)
}

/// Failures collected across a table of cases, reported together.
#[derive(Default)]
pub struct Verdicts {
    failures: Vec<String>,
    passed: usize,
}

impl Verdicts {
    /// The control must succeed and the sandboxed attempt must fail with one
    /// of `errors` (symbolic errno names).
    pub fn blocked(&mut self, what: &str, control: &Probe, sandboxed: &Probe, errors: &[&str]) {
        if !control.is_ok() {
            self.failures.push(format!(
                "{what}: positive control failed, so the test proves nothing: {control:?}"
            ));
            return;
        }
        self.expect_errors(what, sandboxed, errors);
    }

    /// Like `blocked`, for calls whose control cannot succeed harmlessly:
    /// the control must show the call reaching the kernel (success, or an
    /// error other than the ones the sandbox is expected to give).
    pub fn blocked_reached(
        &mut self,
        what: &str,
        control: &Probe,
        sandboxed: &Probe,
        errors: &[&str],
    ) {
        let reached = match control {
            Probe::Ok(_) => true,
            Probe::Failed { error, .. } => !errors.contains(&error.as_str()),
            Probe::Died { .. } => false,
        };
        if !reached {
            self.failures.push(format!(
                "{what}: the control did not reach the kernel, so the test proves nothing: {control:?}"
            ));
            return;
        }
        self.expect_errors(what, sandboxed, errors);
    }

    fn expect_errors(&mut self, what: &str, sandboxed: &Probe, errors: &[&str]) {
        match sandboxed {
            Probe::Failed { error, .. } if errors.contains(&error.as_str()) => self.passed += 1,
            other => self
                .failures
                .push(format!("{what}: expected one of {errors:?}, got {other:?}")),
        }
    }

    /// The sandboxed attempt must die by a signal (moat exits 128+N).
    pub fn killed(&mut self, what: &str, control: &Probe, sandboxed: &Probe, signal: i32) {
        if !control.is_ok() {
            self.failures
                .push(format!("{what}: positive control failed: {control:?}"));
            return;
        }
        match sandboxed {
            Probe::Died {
                status: Some(s), ..
            } if *s == 128 + signal => self.passed += 1,
            other => self.failures.push(format!(
                "{what}: expected death by signal {signal}, got {other:?}"
            )),
        }
    }

    /// Something that must keep working inside.
    pub fn works(&mut self, what: &str, sandboxed: &Probe) {
        if sandboxed.is_ok() {
            self.passed += 1;
        } else {
            self.failures.push(format!(
                "{what}: should work in the sandbox, got {sandboxed:?}"
            ));
        }
    }

    pub fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(format!("{what}: {detail}"));
        }
    }

    pub fn finish(self) {
        eprintln!("{} checks passed", self.passed);
        if !self.failures.is_empty() {
            panic!(
                "{} of {} checks failed:\n  {}",
                self.failures.len(),
                self.failures.len() + self.passed,
                self.failures.join("\n  ")
            );
        }
    }
}

/// Everything about a finished run, for failure messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n    stdout: {}\n    stderr: {}",
        out.status.code(),
        stdout(out).trim_end(),
        stderr(out).trim_end()
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
