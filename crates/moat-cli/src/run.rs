//! `moat run`.

use anyhow::{Context, Result};
use moat::{Command, Exit, Policy, RunReport};

use crate::cli::{RunArgs, RunOptions};
use crate::flags;

fn say(json: bool, kind: &str, message: &str) {
    if json {
        let line = serde_json::json!({ "type": kind, "message": message });
        eprintln!("{}", line);
    } else {
        for (i, l) in message.lines().enumerate() {
            if i == 0 {
                eprintln!("moat: {}", l);
            } else {
                eprintln!("      {}", l);
            }
        }
    }
}

/// `moat run`: runs the command; returns the exit status to end with.
pub fn run(args: RunArgs) -> Result<u8> {
    execute(&args.opts, &args.command).map(|e| e.code)
}

/// How a command ended: the exit status for moat to end with (128+N for
/// signal N), and the signal that killed it.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub code: u8,
    pub signal: Option<i32>,
}

/// Runs `command` in the sandbox `args` describe.
pub fn execute(args: &RunOptions, command: &[std::ffi::OsString]) -> Result<Ended> {
    let layer = flags::layer(&args.policy).map_err(|e| report_error(args.json, e))?;
    let mut policy = Policy::from_layer(layer);
    if !args.policy.no_config {
        policy = policy.with_config_files();
    }
    let (program, rest) = match command.split_first() {
        Some(split) => split,
        None => anyhow::bail!("no command given: moat run [OPTIONS] -- CMD [ARGS...]"),
    };
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .policy(policy)
        .pty(args.pty)
        .forward_signals(true)
        // Nothing below waits on the command before its wait.
        .waits_at_once(true);
    flags::sandbox(&mut cmd, &args.sandbox);
    if let Some(ws) = &args.policy.workspace {
        cmd.workspace(ws);
    }
    let json = args.json;
    if args.ask {
        cmd.ask(ask_on_terminal);
    }
    if let Some(path) = &args.net_log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("--net-log: cannot open {}", path.display()))
            .map_err(|e| report_error(json, e))?;
        let file = std::sync::Mutex::new(file);
        cmd.on_network_decision(move |d| {
            if let (Ok(mut f), Ok(line)) = (file.lock(), serde_json::to_string(d)) {
                use std::io::Write;
                let _ = writeln!(f, "{}", line);
            }
        });
    }
    let resolved = cmd.resolve().map_err(|e| report_error(json, e.into()))?;
    if (args.ask || args.net_log.is_some())
        && resolved.policy.network.value != moat::NetworkMode::Allow
    {
        say(
            json,
            "warning",
            "--ask and --net-log apply only with --network allow; they do nothing here",
        );
    }
    for ignored in &resolved.policy.ignored {
        say(json, "warning", &ignored.to_string());
    }
    if resolved.policy.is_unsandboxed() {
        say(
            json,
            "warning",
            &format!(
                "full-access: running `{}` WITHOUT a sandbox (preset from {})",
                program.to_string_lossy(),
                resolved.policy.preset.source
            ),
        );
    }
    let mut child = cmd
        .spawn_resolved(resolved)
        .map_err(|e| report_error(json, e.into()))?;
    let r = child.report();
    if !r.lost.is_empty() {
        say(
            json,
            "degraded",
            &format!(
                "this {} run does not enforce:\n{}",
                r.mode,
                r.lost
                    .iter()
                    .map(|l| format!("- {}", l))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        );
    }
    for note in &r.notes {
        say(json, "note", note);
    }
    let outcome = child.wait().map_err(|e| report_error(json, e.into()))?;
    let report = &outcome.report;
    if !args.quiet {
        if let Some(block) = crate::refusals::summary(report) {
            say(json, "refusals", &block);
        }
    }
    for n in &report.neutralised {
        say(json, "neutralised", n);
    }
    match outcome.exit {
        Exit::TimedOut => say(
            json,
            "timeout",
            &format!(
                "timed out after {:.1}s: killed the command and everything it started",
                report.duration_ms as f64 / 1000.0
            ),
        ),
        Exit::NotStarted { errno } => {
            let what = std::io::Error::from_raw_os_error(errno);
            let why = if outcome.code() == 127 {
                "command not found"
            } else {
                "cannot execute"
            };
            say(
                json,
                "error",
                &format!(
                    "cannot run `{}`: {} ({})",
                    program.to_string_lossy(),
                    why,
                    what
                ),
            );
        }
        _ => {}
    }
    write_report(json, args.report.as_deref(), report)?;
    Ok(Ended {
        code: outcome.code().clamp(0, 255) as u8,
        signal: match outcome.exit {
            Exit::Signal(n) => Some(n),
            _ => None,
        },
    })
}

fn write_report(json: bool, file: Option<&std::path::Path>, report: &RunReport) -> Result<()> {
    let text = serde_json::to_string(&serde_json::json!({ "type": "report", "report": report }))?;
    if json {
        eprintln!("{}", text);
    }
    if let Some(path) = file {
        std::fs::write(path, format!("{}\n", text))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(())
}

/// With --json, errors are JSON too; the caller still exits 125.
fn report_error(json: bool, e: anyhow::Error) -> anyhow::Error {
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "type": "error", "message": format!("{:#}", e) })
        );
        anyhow::Error::new(crate::Reported)
    } else {
        e
    }
}

/// Asks on the terminal whether an unlisted name may be reached; no
/// terminal, no answer: refused.
fn ask_on_terminal(name: &str, port: u16) -> bool {
    use std::io::{BufRead, Write};
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    let mut out = &tty;
    let _ = write!(out, "moat: allow {}:{} for this run? [y/N] ", name, port);
    let _ = out.flush();
    let mut line = String::new();
    let _ = std::io::BufReader::new(&tty).read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}
