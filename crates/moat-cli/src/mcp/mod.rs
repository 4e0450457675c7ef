//! `moat mcp`: a stdio MCP server whose one tool, `run`, runs a command in
//! the sandbox and returns its exit status, its output (bounded) and the
//! run report. The workspace and policy are decided once, when the server
//! starts (its working directory, flags and config files); a call can only
//! narrow them ([`moat::advanced::narrow`]), and so can the permission
//! profile Codex sends with each call when the server advertises
//! `codex/sandbox-state-meta` ([`codex`]).
//!
//! JSON-RPC 2.0, one message per line. Both eras of the protocol: the
//! `initialize` handshake (2024-11-05 to 2025-11-25) and the per-request
//! envelope of 2026-07-28 (`server/discover`). Malformed messages get
//! JSON-RPC errors and the server keeps serving; calls run on threads of
//! their own, so a long one does not hold up the rest.

mod codex;
mod output;
mod tool;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::cli::McpArgs;

/// Revisions of the `initialize` handshake this server speaks, oldest
/// first.
const HANDSHAKE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Revisions of the per-request envelope (no handshake).
const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
/// The JSON-RPC error a 2026-07-28 server answers an unknown revision with.
const UNSUPPORTED_VERSION: i64 = -32022;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// What every call starts from.
pub struct Server {
    pub args: McpArgs,
    /// The workspace, canonical.
    pub workspace: PathBuf,
    out: Mutex<std::io::Stdout>,
    /// Calls still running, answered before the server ends.
    calls: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Server {
    fn send(&self, message: &Value) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{message}");
            let _ = out.flush();
        }
    }
}

fn error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut e = json!({ "code": code, "message": message });
    if let Some(d) = data {
        e["data"] = d;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": e })
}

fn reply(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn server_info() -> Value {
    json!({ "name": "moat", "version": env!("CARGO_PKG_VERSION") })
}

fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": false },
        "experimental": { codex::CAPABILITY: {} },
    })
}

const INSTRUCTIONS: &str = "Runs commands in moat's sandbox: the workspace is writable, the rest \
    of the machine is read-only, secrets are unreadable, and the network is off unless the call \
    names destinations moat's policy allows. The result says what was refused.";

/// The revision a request speaks in the 2026-07-28 envelope, if it uses one.
fn envelope_version(params: &Value) -> Option<&str> {
    params
        .get("_meta")
        .and_then(|m| m.get(PROTOCOL_VERSION_KEY))
        .and_then(Value::as_str)
}

/// Fields a 2026-07-28 result carries: the result type, and for listings
/// the caching directives (here: do not keep).
fn modern(mut result: Value, cacheable: bool) -> Value {
    result["resultType"] = json!("complete");
    if cacheable {
        result["ttlMs"] = json!(0);
        result["cacheScope"] = json!("private");
    }
    result
}

/// Answers one message; `None` for notifications (and for calls, which
/// answer from their own thread).
fn handle(server: &Arc<Server>, message: Value) -> Option<Value> {
    let Some(obj) = message.as_object() else {
        return Some(error(
            &Value::Null,
            INVALID_REQUEST,
            "a message must be a JSON object",
            None,
        ));
    };
    let id = obj.get("id").cloned();
    let method = match obj.get("method").and_then(Value::as_str) {
        Some(m) if obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => m,
        // A response to a request of ours (we send none), or garbage.
        _ if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            return None
        }
        _ => {
            return Some(error(
                &id.unwrap_or(Value::Null),
                INVALID_REQUEST,
                "not a JSON-RPC 2.0 request: it needs \"jsonrpc\": \"2.0\" and a \"method\"",
                None,
            ))
        }
    };
    let params = obj.get("params").cloned().unwrap_or_else(|| json!({}));
    // Notifications get no answer, whatever they are.
    let id = id?;
    if let Some(v) = envelope_version(&params) {
        if !MODERN_VERSIONS.contains(&v) {
            return Some(error(
                &id,
                UNSUPPORTED_VERSION,
                &format!("protocol version {v} is not supported"),
                Some(json!({ "supported": MODERN_VERSIONS, "requested": v })),
            ));
        }
    }
    let is_modern = envelope_version(&params).is_some();
    let result = match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .filter(|v| HANDSHAKE_VERSIONS.contains(v))
                .unwrap_or(HANDSHAKE_VERSIONS[HANDSHAKE_VERSIONS.len() - 1]);
            json!({
                "protocolVersion": version,
                "capabilities": capabilities(),
                "serverInfo": server_info(),
                "instructions": INSTRUCTIONS,
            })
        }
        "server/discover" => modern(
            json!({
                "supportedVersions": MODERN_VERSIONS,
                "capabilities": capabilities(),
                "instructions": INSTRUCTIONS,
                "_meta": { SERVER_INFO_KEY: server_info() },
            }),
            true,
        ),
        "ping" => json!({}),
        "tools/list" => {
            let r = json!({ "tools": [tool::definition()] });
            if is_modern {
                modern(r, true)
            } else {
                r
            }
        }
        "tools/call" => {
            let worker = Arc::clone(server);
            let handle = std::thread::spawn(move || {
                let answer = match tool::call(&worker, &params) {
                    Ok(r) if is_modern => reply(&id, modern(r, false)),
                    Ok(r) => reply(&id, r),
                    Err(e) => error(&id, INVALID_PARAMS, &e, None),
                };
                worker.send(&answer);
            });
            if let Ok(mut calls) = server.calls.lock() {
                calls.retain(|c| !c.is_finished());
                calls.push(handle);
            }
            return None;
        }
        other => {
            return Some(error(
                &id,
                METHOD_NOT_FOUND,
                &format!("moat's MCP server has no method {other}"),
                None,
            ))
        }
    };
    Some(reply(&id, result))
}

pub fn mcp(args: McpArgs) -> Result<u8> {
    let cwd = std::env::current_dir().context("the working directory")?;
    let ws = args.policy.workspace.clone().unwrap_or(cwd);
    let workspace =
        std::fs::canonicalize(&ws).with_context(|| format!("the workspace {}", ws.display()))?;
    // The policy is checked now, so a bad config fails the start, not the
    // first call.
    let policy = tool::base_policy(&args)?;
    moat::resolve(&policy, Some(&workspace))?;
    let server = Arc::new(Server {
        args,
        workspace,
        out: Mutex::new(std::io::stdout()),
        calls: Mutex::new(Vec::new()),
    });
    eprintln!(
        "moat mcp: serving on standard input and output, workspace {}",
        server.workspace.display()
    );
    let stdin = std::io::stdin();
    for line in stdin.lock().split(b'\n') {
        let line = match line {
            Ok(l) => l,
            Err(_) => break,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let answer = match serde_json::from_slice::<Value>(&line) {
            Ok(Value::Array(_)) => Some(error(
                &Value::Null,
                INVALID_REQUEST,
                "batches are not part of this protocol revision",
                None,
            )),
            Ok(message) => handle(&server, message),
            Err(e) => Some(error(
                &Value::Null,
                PARSE_ERROR,
                &format!("not JSON: {e}"),
                None,
            )),
        };
        if let Some(a) = answer {
            server.send(&a);
        }
    }
    // The client has stopped sending; what it asked for is still answered.
    let running = server
        .calls
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    for call in running {
        let _ = call.join();
    }
    Ok(0)
}
