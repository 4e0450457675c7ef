//! `moat probe` itself: the catalogue passes against moat, as root and as
//! an unprivileged account; it fails against a "sandbox" that is none (so
//! a broken moat would fail it too); and bad options are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

fn probe_run(who: &Who, args: &[&str]) -> (std::process::Output, Value) {
    probe(); // moat-probe must be next to moat
    let mut cmd = command_as(who, moat());
    cmd.arg("probe").arg("--json").args(args).current_dir("/");
    let out = output(&mut cmd);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, json)
}

fn verdicts(json: &Value) -> Vec<(String, String, String, String)> {
    let mut v = Vec::new();
    for m in json["modes"].as_array().cloned().unwrap_or_default() {
        for p in m["probes"].as_array().cloned().unwrap_or_default() {
            v.push((
                m["mode"].as_str().unwrap_or("").to_string(),
                p["attack"].as_str().unwrap_or("").to_string(),
                p["verdict"].as_str().unwrap_or("").to_string(),
                p["observed"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    v
}

#[test]
fn the_network_and_process_probes_pass_in_every_mode() {
    for who in identities() {
        let (out, json) = probe_run(&who, &["--only", "network", "--only", "processes"]);
        let rows = verdicts(&json);
        assert!(
            rows.len() >= 20,
            "{}: too few probes ran: {}",
            who.name,
            show(&out)
        );
        assert!(
            json["modes"].as_array().map(Vec::len) == Some(3),
            "{}: all three modes should run here: {}",
            who.name,
            show(&out)
        );
        let bad: Vec<_> = rows
            .iter()
            .filter(|r| !matches!(r.2.as_str(), "blocked" | "known-loss" | "not-applicable"))
            .collect();
        assert!(bad.is_empty(), "{}: {:?}", who.name, bad);
        assert!(out.status.success(), "{}: {}", who.name, show(&out));
        // Blocked means the attacker's side saw nothing, with the errno.
        assert!(
            rows.iter().any(|r| r.1.contains("TCP to 127.0.0.1")
                && r.2 == "blocked"
                && r.3.contains("listener untouched")),
            "{}: {:?}",
            who.name,
            rows
        );
    }
}

#[test]
fn a_wrapper_that_does_not_sandbox_fails_the_probe() {
    let who = user();
    let (out, json) = probe_run(
        &who,
        &["--mode", "none", "--wrapper", "env", "--only", "filesystem"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let rows = verdicts(&json);
    let escaped: Vec<_> = rows.iter().filter(|r| r.2 == "escaped").collect();
    assert!(
        escaped.iter().any(|r| r.1.contains("SSH private key")),
        "reading a secret without a sandbox must be reported: {rows:?}"
    );
    assert!(json["failed"].as_u64().unwrap_or(0) >= escaped.len() as u64);
}

#[test]
fn a_sandbox_that_runs_nothing_is_inconclusive_not_blocked() {
    let who = user();
    let (out, json) = probe_run(
        &who,
        &["--mode", "none", "--wrapper", "false", "--only", "kernel"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let rows = verdicts(&json);
    assert!(!rows.is_empty(), "{}", show(&out));
    for r in &rows {
        assert!(
            matches!(r.2.as_str(), "inconclusive" | "not-applicable"),
            "{r:?}"
        );
    }
}

#[test]
fn bad_options_are_refused() {
    let who = current();
    for (args, needle) in [
        (&["--only", "nosuch"][..], "no such category"),
        (&["--mode", "fast"][..], "--mode fast"),
        (
            &["--mode", "none", "--wrapper", "bwrap 'x"][..],
            "unclosed quote",
        ),
        (&["--mode", "none"][..], "nothing to probe"),
    ] {
        let mut cmd = command_as(&who, moat());
        cmd.arg("probe").args(args);
        let out = output(&mut cmd);
        assert!(!out.status.success(), "{args:?}: {}", show(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", show(&out));
    }
}
