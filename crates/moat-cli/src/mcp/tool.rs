//! The `run` tool: a command (a shell line or an argv) in the sandbox, in
//! a working directory inside the workspace, with a time limit and the
//! network destinations it needs; back come its exit status, its output
//! (bounded) and the run report. A call narrows the server's policy, never
//! widens it: what it would widen is refused, in the result, with the
//! reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use moat::advanced::narrow::{Narrowing, NetRequest};
use moat::advanced::Source;
use moat::{Command, Exit, Policy, Stdio};
use serde_json::{json, Value};

use super::{codex, output, Server};
use crate::cli::McpArgs;

/// The time limit of a call that names none, where the policy has none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest a call may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub fn definition() -> Value {
    json!({
        "name": "run",
        "title": "Run a command in moat's sandbox",
        "description": "Runs a command in moat's sandbox and returns its exit status, standard \
            output and error (long output keeps its beginning and end), and what the sandbox \
            refused. The workspace is writable; the rest of the machine is read-only and \
            secrets are unreadable. The network is off unless `network` names destinations \
            moat's policy allows. Give `command` (a shell command line) or `argv`.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "command": { "type": "string", "description": "A command line for the shell ($SHELL, else /bin/sh)." },
                "argv": { "type": "array", "items": { "type": "string" }, "minItems": 1,
                          "description": "A program and its arguments, run without a shell." },
                "cwd": { "type": "string", "description": "Where the command starts: a directory inside the workspace (absolute, or relative to the workspace). Default: the workspace." },
                "timeout_seconds": { "type": "number", "exclusiveMinimum": 0,
                          "description": "Kill the command and everything it started after this long (default 600)." },
                "network": { "type": "array", "items": { "type": "string" },
                          "description": "Names the command needs to reach (host, *.suffix or @group such as @python); each must be allowed by moat's policy. Absent: no network." }
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "exit_code": { "type": ["integer", "null"] },
                "signal": { "type": ["integer", "null"] },
                "timed_out": { "type": "boolean" },
                "refused": { "type": ["string", "null"] },
                "stdout": { "type": "string" },
                "stderr": { "type": "string" },
                "stdout_omitted_bytes": { "type": "integer" },
                "stderr_omitted_bytes": { "type": "integer" },
                "narrowed": { "type": "array", "items": { "type": "string" } },
                "notes": { "type": "array", "items": { "type": "string" } },
                "report": { "type": ["object", "null"] }
            },
            "required": ["exit_code", "timed_out", "refused", "stdout", "stderr", "narrowed"]
        }
    })
}

/// The server's policy: its flags over the config files.
pub fn base_policy(args: &McpArgs) -> Result<Policy> {
    let mut policy = Policy::from_layer(crate::flags::layer(&args.policy)?);
    if !args.policy.no_config {
        policy = policy.with_config_files();
    }
    Ok(policy)
}

/// What a call asks for, checked.
struct Request {
    program: Vec<String>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    network: Option<Vec<String>>,
}

fn parse(arguments: &Value) -> Result<Request, String> {
    let Some(obj) = arguments.as_object() else {
        return Err("the arguments must be an object".into());
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["command", "argv", "cwd", "timeout_seconds", "network"].contains(&k.as_str()))
    {
        return Err(format!("unknown argument {k:?}"));
    }
    let strings = |key: &str| -> Result<Option<Vec<String>>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| format!("{key} must be an array of strings")),
            Some(_) => Err(format!("{key} must be an array of strings")),
        }
    };
    let program = match (obj.get("command"), strings("argv")?) {
        (Some(Value::String(line)), None) => {
            let shell = std::env::var("SHELL")
                .ok()
                .filter(|s| Path::new(s).is_absolute() && Path::new(s).is_file())
                .unwrap_or_else(|| "/bin/sh".into());
            vec![shell, "-c".into(), line.clone()]
        }
        (None, Some(argv)) if !argv.is_empty() => argv,
        (Some(_), Some(_)) => return Err("give `command` or `argv`, not both".into()),
        (Some(_), None) => return Err("command must be a string".into()),
        _ => {
            return Err(
                "give `command` (a command line) or `argv` (a program and its arguments)".into(),
            )
        }
    };
    let cwd = match obj.get("cwd") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(PathBuf::from(s)),
        Some(_) => return Err("cwd must be a string".into()),
    };
    let timeout = match obj.get("timeout_seconds") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => {
                Some(Duration::from_secs_f64(s).min(MAX_TIMEOUT))
            }
            _ => return Err("timeout_seconds must be a positive number".into()),
        },
    };
    Ok(Request {
        program,
        cwd,
        timeout,
        network: strings("network")?,
    })
}

/// A result that says the call was refused, and why.
fn refused(why: &str, narrowed: &[String]) -> Value {
    json!({
        "content": [{ "type": "text", "text": format!("moat refused to run the command: {why}") }],
        "structuredContent": {
            "exit_code": null, "signal": null, "timed_out": false, "refused": why,
            "stdout": "", "stderr": "", "stdout_omitted_bytes": 0, "stderr_omitted_bytes": 0,
            "narrowed": narrowed, "notes": [], "report": null,
        },
        "isError": true,
    })
}

/// Answers a `tools/call`; an `Err` is a protocol error (no such tool,
/// arguments that do not fit the schema).
pub fn call(server: &Server, params: &Value) -> Result<Value, String> {
    match params.get("name").and_then(Value::as_str) {
        Some("run") => {}
        Some(other) => return Err(format!("no tool named {other:?}; moat has `run`")),
        None => return Err("tools/call needs the tool's name".into()),
    }
    let request = parse(params.get("arguments").unwrap_or(&json!({})))?;
    let ws = &server.workspace;
    let codex = match codex::from_meta(params.get("_meta"), ws) {
        Ok(c) => c,
        Err(why) => return Ok(refused(&why, &[])),
    };
    let asked_cwd = request
        .cwd
        .clone()
        .or_else(|| codex.as_ref().and_then(|c| c.cwd.clone()))
        .map(|c| if c.is_absolute() { c } else { ws.join(c) });
    let cwd = match asked_cwd {
        None => ws.clone(),
        Some(c) => match std::fs::canonicalize(&c) {
            Ok(real) if real.starts_with(ws) && real.is_dir() => real,
            Ok(_) | Err(_) => {
                return Ok(refused(
                    &format!(
                        "the working directory {} is not a directory inside the workspace {}",
                        c.display(),
                        ws.display()
                    ),
                    &[],
                ))
            }
        },
    };
    let args = &server.args;
    let mut cmd = Command::new(&request.program[0]);
    cmd.args(&request.program[1..])
        .policy(base_policy(args).map_err(|e| format!("{e:#}"))?)
        .workspace(ws)
        .current_dir(&cwd)
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .forward_signals(false)
        // Threads read its output; the wait begins as soon as they start.
        .waits_at_once(true);
    crate::flags::sandbox(&mut cmd, &args.sandbox);
    let mut resolved = match cmd.resolve() {
        Ok(r) => r,
        Err(e) => return Ok(refused(&e.to_string(), &[])),
    };
    if resolved.policy.is_unsandboxed() {
        return Ok(refused(
            "the policy's preset is full-access, and moat's MCP server runs nothing without a \
             sandbox",
            &[],
        ));
    }
    let mut narrowed = Vec::new();
    let mut notes = Vec::new();
    if let Some(c) = codex {
        notes.extend(c.notes);
        let source = Source::Flag("Codex's permission profile".into());
        match resolved.policy.narrow(&c.narrowing, &source) {
            Ok(said) => narrowed.extend(said.into_iter().map(|s| format!("Codex: {s}"))),
            Err(why) => {
                return Ok(refused(
                    &format!("Codex's permission profile: {why}"),
                    &narrowed,
                ))
            }
        }
    }
    let call_narrowing = Narrowing {
        network: Some(match request.network {
            Some(names) if !names.is_empty() => NetRequest::Allow(names),
            _ => NetRequest::Off,
        }),
        timeout: Some(request.timeout.unwrap_or(DEFAULT_TIMEOUT)),
        ..Narrowing::default()
    };
    match resolved
        .policy
        .narrow(&call_narrowing, &Source::Flag("the MCP call".into()))
    {
        Ok(said) => narrowed.extend(said),
        Err(why) => return Ok(refused(&why.to_string(), &narrowed)),
    }
    let mut child = match cmd.spawn_resolved(resolved) {
        Ok(c) => c,
        Err(e) => return Ok(refused(&e.to_string(), &narrowed)),
    };
    let limit = args.max_output;
    let readers: Vec<_> = [child.stdout.take(), child.stderr.take()]
        .into_iter()
        .map(|f| {
            std::thread::spawn(move || match f {
                Some(f) => output::keep(f, limit),
                None => output::Kept::default(),
            })
        })
        .collect();
    let outcome = child.wait();
    let mut kept = readers.into_iter().map(|r| r.join().unwrap_or_default());
    let (out, err) = (
        kept.next().unwrap_or_default(),
        kept.next().unwrap_or_default(),
    );
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Ok(refused(&e.to_string(), &narrowed)),
    };
    let (code, signal, timed_out) = match outcome.exit {
        Exit::Code(c) => (Some(c), None, false),
        Exit::Signal(s) => (None, Some(s), false),
        Exit::TimedOut => (Some(outcome.code()), None, true),
        Exit::NotStarted { .. } => (Some(outcome.code()), None, false),
    };
    let ending = match (code, signal, timed_out) {
        (_, _, true) => format!(
            "timed out after {:.1} s: moat killed it and everything it started",
            outcome.report.duration_ms as f64 / 1000.0
        ),
        (_, Some(s), _) => format!("killed by signal {s}"),
        (Some(c), _, _) => format!("exit status {c}"),
        _ => "ended".into(),
    };
    let mut text = ending.clone();
    for n in &narrowed {
        text.push_str(&format!("\nnarrowed: {n}"));
    }
    for d in &outcome.report.denials {
        text.push_str(&format!("\nrefused: {}", crate::refusals::line(d)));
    }
    text.push_str(&format!("\n--- stdout ---\n{}", out.text()));
    text.push_str(&format!("\n--- stderr ---\n{}", err.text()));
    Ok(json!({
        "content": [{ "type": "text", "text": text }],
        "structuredContent": {
            "exit_code": code,
            "signal": signal,
            "timed_out": timed_out,
            "refused": null,
            "stdout": out.text(),
            "stderr": err.text(),
            "stdout_omitted_bytes": out.omitted,
            "stderr_omitted_bytes": err.omitted,
            "narrowed": narrowed,
            "notes": notes,
            "report": serde_json::to_value(&outcome.report).unwrap_or(Value::Null),
        },
        "isError": false,
    }))
}
