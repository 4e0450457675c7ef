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

struct Removed;

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = Command::new(moat()).args(["setup", "--remove"]).output();
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
    if std::path::Path::new("/var/lib/moat/setup.toml").exists() {
        eprintln!("skipped: this machine has a moat setup of its own; not touching it");
        return;
    }
    let _guard = Removed;
    let who = user();

    // Not as an ordinary account.
    let out = output(command_as(&who, moat()).args(["setup", "--user", &who.name]));
    assert!(
        !out.status.success() && stderr(&out).contains("as root"),
        "{}",
        show(&out)
    );

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
