//! Running one probe: the positive control without the sandbox, then the
//! attempt inside it, each judged by the attacker's side.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::catalogue::{Effect, Probe, Victim};
use super::fixture::Fixture;

/// How the sandboxed attempt is started.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `moat run`, with `--isolation` when not full.
    Moat {
        exe: PathBuf,
        isolation: &'static str,
        label: &'static str,
        /// Policy flags of every run in this mode.
        extra: &'static [&'static str],
    },
    /// Any other sandbox's command prefix.
    Wrapper(Vec<String>),
}

impl Mode {
    pub fn name(&self) -> String {
        match self {
            Mode::Moat { label, .. } => format!("moat ({label})"),
            Mode::Wrapper(w) => w.join(" "),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Blocked,
    Escaped,
    /// The control failed: the probe proves nothing here.
    Inconclusive,
    /// Not possible on this machine even without a sandbox, or needs root.
    NotApplicable,
    /// An escape the mode documents as not enforced.
    KnownLoss,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Escaped => "NOT BLOCKED",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::NotApplicable => "n/a",
            Verdict::KnownLoss => "known loss",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub layer: &'static str,
    pub stopped_by: &'static str,
    pub attack: String,
    pub refs: &'static str,
    pub expected: &'static str,
    pub control: String,
    pub observed: String,
    pub verdict: Verdict,
}

/// What one run of the victim did.
#[derive(Debug)]
struct Outcome {
    /// Whether the victim itself ran (printed its report or its start
    /// marker, or was killed by a signal), as opposed to the sandbox
    /// refusing or failing to start it: only an attempt that ran can be
    /// judged blocked.
    ran: bool,
    ok: bool,
    /// `EACCES`, `killed by signal 31`, `ok`, or what went wrong.
    said: String,
    detail: String,
}

const LIMIT: Duration = Duration::from_secs(30);

/// Printed first by shell victims.
const STARTED: &str = "moat-probe-victim-started";

fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

fn victim_argv(victim: &Victim, probe_exe: &Path, pid: &str) -> Vec<String> {
    match victim {
        Victim::Probe(args) => std::iter::once(probe_exe.to_string_lossy().into_owned())
            .chain(args.iter().map(|a| a.replace("{pid}", pid)))
            .collect(),
        Victim::Sh(script) => vec![
            "sh".into(),
            "-c".into(),
            format!("echo {STARTED}; {script}"),
        ],
        Victim::Argv(argv) => argv.clone(),
    }
}

/// The full command: prefix + victim, wrapped for a terminal or a leaked
/// descriptor when the probe needs one.
fn command_line(
    probe: &Probe,
    victim: &Victim,
    prefix: &[String],
    probe_exe: &Path,
    pid: &str,
) -> Vec<String> {
    let mut argv: Vec<String> = prefix.to_vec();
    argv.extend(victim_argv(victim, probe_exe, pid));
    if let Some(path) = &probe.leak_fd {
        let joined: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        argv = vec![
            "sh".into(),
            "-c".into(),
            format!("exec 7>>{}; exec {}", quote(path), joined.join(" ")),
        ];
    }
    if probe.tty {
        let joined: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        argv = vec![
            "script".into(),
            "-qec".into(),
            joined.join(" "),
            "/dev/null".into(),
        ];
    }
    argv
}

/// `run`, once more when a terminal probe's report was lost on the way:
/// script(1) sometimes drops the last output of a child whose input is
/// /dev/null, on a loaded machine. Only for probes whose effect is their
/// own report, which a second run cannot make look blocked when it was
/// not: a lost report is "did not start", never "blocked".
fn run_reported(probe: &Probe, argv: &[String], f: &Fixture, probe_exe: &Path) -> Outcome {
    let first = run(argv, f, probe_exe);
    if first.ran || !probe.tty || !matches!(probe.effect, Effect::Reported) {
        return first;
    }
    run(argv, f, probe_exe)
}

fn run(argv: &[String], f: &Fixture, probe_exe: &Path) -> Outcome {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&f.ws)
        .env("HOME", &f.home)
        .env("P", probe_exe)
        // What an agent started from a desktop session has.
        .env("SSH_AUTH_SOCK", &f.unix_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                ran: false,
                ok: false,
                said: format!("could not start {}: {e}", argv[0]),
                detail: String::new(),
            }
        }
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    let output = child.wait_with_output();
    let stdout = output
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let Some(status) = status else {
        return Outcome {
            ran: false,
            ok: false,
            said: "timed out".into(),
            detail: String::new(),
        };
    };
    // The probe's JSON line is the last one (script(1) may add a CR).
    let line = stdout
        .lines()
        .rev()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with('{'));
    if let Some(v) = line.and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        let ok = v["ok"].as_bool().unwrap_or(false);
        let detail = v["detail"].as_str().unwrap_or("").to_string();
        let said = if ok {
            "ok".to_string()
        } else {
            v["error"].as_str().unwrap_or("failed").to_string()
        };
        return Outcome {
            ran: true,
            ok,
            said,
            detail,
        };
    }
    use std::os::unix::process::ExitStatusExt;
    let said = match (status.code(), status.signal()) {
        (Some(0), _) => "ok".to_string(),
        // moat and shells report a death by signal N as 128 + N.
        (Some(code), _) if (129..160).contains(&code) => {
            format!("killed by signal {} (exit {code})", code - 128)
        }
        (Some(code), _) => {
            let err = output
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            let last = err.lines().last().unwrap_or("").trim().to_string();
            if last.is_empty() {
                format!("exit {code}")
            } else {
                format!("exit {code}: {}", truncate(&last, 70))
            }
        }
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "failed".to_string(),
    };
    let killed = status.signal().is_some() || said.starts_with("killed by signal");
    Outcome {
        ran: killed || stdout.lines().any(|l| l.trim_end_matches('\r') == STARTED),
        ok: status.success(),
        said,
        detail: String::new(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "..."
    }
}

fn reset(probe: &Probe, f: &mut Fixture) {
    if let Some(script) = &probe.reset {
        let _ = Command::new("sh")
            .args(["-c", script])
            .current_dir(&f.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = f.revive();
}

/// Whether the attack worked, seen from outside, and how.
fn effect(probe: &Probe, f: &mut Fixture, out: &Outcome, before: usize) -> (bool, String) {
    match &probe.effect {
        Effect::Reported => (out.ok, String::new()),
        Effect::ReadSome => {
            let n: usize = out
                .detail
                .split_whitespace()
                .find_map(|w| w.parse().ok())
                .unwrap_or(0);
            (
                out.ok && n > 0,
                if out.ok {
                    format!("{n} bytes read")
                } else {
                    String::new()
                },
            )
        }
        Effect::Sh(script) => {
            let hit = Command::new("sh")
                .args(["-c", script])
                .current_dir(&f.root)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            (
                hit,
                if hit {
                    "changed on the host".into()
                } else {
                    "host unchanged".into()
                },
            )
        }
        Effect::Contact(hits) => {
            let hit = hits.get() > before;
            (
                hit,
                if hit {
                    "listener contacted".into()
                } else {
                    "listener untouched".into()
                },
            )
        }
        Effect::DetailHas(text) => (
            out.ok && out.detail.contains(text.as_str()),
            out.detail.clone(),
        ),
        Effect::NotErrno(errno) => (out.ran && out.said != *errno, String::new()),
        Effect::ReachedKernel(errno) => (out.ok || out.said == *errno, String::new()),
        Effect::HostDied => {
            // A SIGKILL lands when the target next runs.
            let mut dead = !f.host_alive();
            for _ in 0..50 {
                if dead {
                    break;
                }
                std::thread::sleep(Duration::from_millis(4));
                dead = !f.host_alive();
            }
            (
                dead,
                if dead {
                    "host process killed".into()
                } else {
                    "host process alive".into()
                },
            )
        }
    }
}

fn hits_now(probe: &Probe) -> usize {
    match &probe.effect {
        Effect::Contact(h) => h.get(),
        _ => 0,
    }
}

fn describe(out: &Outcome, seen: &str) -> String {
    if seen.is_empty() {
        out.said.clone()
    } else {
        format!("{}; {}", out.said, seen)
    }
}

/// Errors of a control that mean the machine does not offer the action at
/// all (not a broken probe): the row is not applicable here.
const UNAVAILABLE: &[&str] = &["ENOSYS", "EOPNOTSUPP", "EAFNOSUPPORT", "EPROTONOSUPPORT"];

pub fn run_probe(probe: &Probe, mode: &Mode, f: &mut Fixture, probe_exe: &Path) -> Row {
    let mut row = Row {
        layer: probe.layer,
        stopped_by: probe.stopped_by,
        attack: probe.attack.clone(),
        refs: probe.refs,
        expected: "blocked",
        control: String::new(),
        observed: String::new(),
        verdict: Verdict::Inconclusive,
    };
    if probe.needs_root && !f.is_root {
        row.verdict = Verdict::NotApplicable;
        row.observed = "needs root outside the sandbox to try".into();
        return row;
    }
    // The elevated tier runs the command as a sandbox account, not root.
    let elevated = matches!(mode, Mode::Moat { extra, .. } if extra.contains(&"elevated"));
    if probe.elevated_only && !elevated {
        row.verdict = Verdict::NotApplicable;
        row.observed = "only the elevated tier's cgroups hold this limit".into();
        return row;
    }
    if probe.not_for_root && f.is_root && !elevated {
        row.verdict = Verdict::NotApplicable;
        row.observed = "not for root: the kernel exempts root from this limit".into();
        return row;
    }
    reset(probe, f);
    let before = hits_now(probe);
    let victim = probe.control.as_ref().unwrap_or(&probe.victim);
    let control = run_reported(
        probe,
        &command_line(probe, victim, &[], probe_exe, &f.host_pid()),
        f,
        probe_exe,
    );
    let (worked, seen) = effect(probe, f, &control, before);
    row.control = describe(&control, &seen);
    if !worked {
        if UNAVAILABLE.contains(&control.said.as_str())
            || probe.absent_outside.contains(&control.said.as_str())
        {
            row.verdict = Verdict::NotApplicable;
            row.observed = format!("not offered here ({})", control.said);
        } else {
            row.observed = "the control did not work, so the attempt proves nothing".into();
        }
        return row;
    }
    reset(probe, f);
    let prefix: Vec<String> = match mode {
        Mode::Moat {
            exe,
            isolation,
            extra,
            ..
        } => {
            let mut v = vec![
                exe.to_string_lossy().into_owned(),
                "run".into(),
                "--workspace".into(),
                f.ws.to_string_lossy().into_owned(),
            ];
            if *isolation != "full" {
                v.extend([
                    "--isolation".into(),
                    isolation.to_string(),
                    "--allow-degraded".into(),
                ]);
            }
            v.extend(extra.iter().map(|a| a.to_string()));
            v.extend(probe.moat_args.iter().map(|a| a.to_string()));
            v.push("--".into());
            v
        }
        Mode::Wrapper(w) => w
            .iter()
            .map(|a| {
                a.replace("{workspace}", &f.ws.to_string_lossy())
                    .replace("{home}", &f.home.to_string_lossy())
            })
            .collect(),
    };
    let before = hits_now(probe);
    let attempt = run_reported(
        probe,
        &command_line(probe, &probe.victim, &prefix, probe_exe, &f.host_pid()),
        f,
        probe_exe,
    );
    let (escaped, seen) = effect(probe, f, &attempt, before);
    row.observed = describe(&attempt, &seen);
    if !attempt.ran && !escaped {
        row.observed = format!("the attempt did not start ({})", attempt.said);
        row.verdict = Verdict::Inconclusive;
        reset(probe, f);
        return row;
    }
    row.verdict = match (escaped, mode, probe.landlock_only_loss) {
        (false, _, _) => Verdict::Blocked,
        (
            true,
            Mode::Moat {
                isolation: "landlock-only",
                ..
            },
            Some(loss),
        ) => {
            row.observed = format!("{}; documented: {loss}", row.observed);
            Verdict::KnownLoss
        }
        (true, _, _) => Verdict::Escaped,
    };
    reset(probe, f);
    row
}

/// `moat-probe`, installed next to `moat`.
pub fn probe_exe(moat: &Path) -> anyhow::Result<PathBuf> {
    let dir = moat.parent().unwrap_or(Path::new("."));
    let p = dir.join("moat-probe");
    anyhow::ensure!(
        p.is_file(),
        "moat probe needs the moat-probe program next to moat ({} is missing); \
         build it with `cargo build -p moat-probe` or install it beside moat",
        p.display()
    );
    Ok(p)
}
