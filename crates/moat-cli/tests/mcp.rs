//! `moat mcp` driven by the official MCP SDK (PyPI `mcp`, installed by
//! scripts/test.sh in /opt/moat-test/venv): both protocol eras (the
//! 2026-07-28 `server/discover` the SDK tries first, and the `initialize`
//! handshake), writes inside and outside, the network, exit statuses,
//! timeouts, bounded output, Codex's permission profile narrowing a call
//! and refused where it would widen, and malformed messages
//! (tests/mcp_client.py runs the checks; each prints a line). As root and
//! as the test account.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::registry::Registry;
use common::*;

const PYTHON: &str = "/opt/moat-test/venv/bin/python";

#[test]
fn the_official_sdk_drives_moat_mcp() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: scripts/test.sh (as root) installs the MCP SDK there"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let reg = Registry::start();
    let mut v = Verdicts::default();
    for who in identities() {
        for mode in ["auto", "legacy"] {
            let s = Scratch::new(&who, "mcp");
            s.mkdir("ws/.git");
            let outside = s.write("outside/file", "outside\n");
            let out = output(
                command_as(&who, "env")
                    .arg(format!("MOAT_TEST_REGISTRY_PORT={}", reg.port))
                    .arg(PYTHON)
                    .arg(script)
                    .arg(moat())
                    .arg(&s.ws)
                    .arg(&outside)
                    .arg(mode)
                    .current_dir(&s.ws),
            );
            let lines: Vec<serde_json::Value> = stdout(&out)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            v.check(
                &format!("{} {mode}: the client ran to its end", who.name),
                out.status.success() && lines.len() >= 15,
                show(&out),
            );
            for l in &lines {
                v.check(
                    &format!("{} {}", who.name, l["check"].as_str().unwrap_or("?")),
                    l["ok"] == true,
                    l["detail"].as_str().unwrap_or(""),
                );
            }
        }
    }
    v.finish();
}
