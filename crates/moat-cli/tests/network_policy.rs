//! The network allowlist's policy: flags and config into rules, groups
//! expanded by `moat policy show`, bad rules refused by name, and
//! `--network allow` refused (fail closed) where no network namespace
//! keeps the command on the proxy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn policy_show_expands_groups_and_names_sources() {
    let who = current();
    let s = Scratch::new(&who, "netpolicy");
    let out = output(
        command_as(&who, moat())
            .args([
                "policy",
                "show",
                "--json",
                "--no-config",
                "--network",
                "allow",
            ])
            .args([
                "--allow-domain",
                "@rust",
                "--deny-domain",
                "static.crates.io",
            ])
            .args([
                "--allow-cidr",
                "10.0.0.0/8",
                "--resolve",
                "pkg.test:127.0.0.2",
            ])
            .current_dir(&s.ws),
    );
    assert!(out.status.success(), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let net = &v["network"];
    assert_eq!(net["mode"]["value"], "allow");
    let allow: Vec<&str> = net["allow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert!(allow.contains(&"index.crates.io"), "{allow:?}");
    assert_eq!(net["deny"][0]["value"], "static.crates.io");
    assert_eq!(net["allow_cidr"][0]["value"], "10.0.0.0/8");
    assert_eq!(net["resolve"][0]["address"], "127.0.0.2");
}

#[test]
fn a_workspace_config_cannot_widen_the_allowlist() {
    let who = current();
    let s = Scratch::new(&who, "netnarrow");
    s.write(
        "ws/.moat/config.toml",
        "[network]\nmode = \"allow\"\nallow = [\"pypi.org\"]\n",
    );
    let out = output(
        command_as(&who, moat())
            .args([
                "policy",
                "show",
                "--network",
                "allow",
                "--allow-domain",
                "crates.io",
            ])
            .current_dir(&s.ws),
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out) + &stderr(&out);
    let allowed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("network.allow "))
        .collect();
    assert!(allowed.iter().any(|l| l.contains("crates.io")), "{text}");
    assert!(!allowed.iter().any(|l| l.contains("pypi.org")), "{text}");
    assert!(
        text.contains("pypi.org"),
        "the ignored entry must be reported: {text}"
    );
}

#[test]
fn allow_mode_fails_closed_without_a_network_namespace() {
    for who in identities() {
        let s = Scratch::new(&who, "netallow");
        let out = output(
            command_as(&who, moat())
                .args(["run", "--isolation", "landlock-only", "--allow-degraded"])
                .args(["--network", "allow", "--allow-domain", "crates.io", "--"])
                .args(["sh", "-c", "touch ran"])
                .current_dir(&s.ws),
        );
        assert_eq!(out.status.code(), Some(125), "{}: {}", who.name, show(&out));
        assert!(
            stderr(&out).contains("needs a network namespace"),
            "{}",
            show(&out)
        );
        assert!(!s.ws.join("ran").exists(), "{}: the command ran", who.name);
    }
}

#[test]
fn bad_rules_and_conflicts_are_refused_by_name() {
    let who = current();
    let s = Scratch::new(&who, "netbad");
    for (args, needle) in [
        (
            &["--network", "allow", "--allow-domain", "*.com"][..],
            "too broad",
        ),
        (
            &["--network", "allow", "--allow-domain", "@perl"][..],
            "unknown group",
        ),
        (
            &["--network", "allow", "--allow-cidr", "10.0.0.1/8"][..],
            "host bits",
        ),
        (
            &["--network", "allow", "--resolve", "pkg.test"][..],
            "NAME:ADDRESS",
        ),
        (
            &["--network", "off", "--allow-domain", "crates.io"][..],
            "only with --network allow",
        ),
    ] {
        let out = output(
            command_as(&who, moat())
                .args(["policy", "show"])
                .args(args)
                .current_dir(&s.ws),
        );
        assert!(!out.status.success(), "{args:?}: {}", show(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", show(&out));
    }
}
