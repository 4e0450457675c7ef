//! Machines without unprivileged user namespaces: moat refuses, naming what
//! a Landlock + seccomp-only run cannot enforce, unless the person accepts
//! the loss; then the run says what was lost.
//!
//! "No user namespaces" is produced with bubblewrap's --disable-userns
//! (nested user namespaces fail with ENOSPC, as with
//! user.max_user_namespaces=0), because changing the sysctl needs
//! CAP_SYS_RESOURCE, which the test machine's root may lack.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use common::*;

fn without_userns(
    who: &Who,
    s: &Scratch,
    moat_args: &[&str],
    cmd: &[&str],
) -> std::process::Output {
    // The build tree may be under /tmp, which the wrapper replaces.
    let copy = s.base.join("bin/moat");
    if !copy.exists() {
        std::fs::copy(moat(), &copy).unwrap();
    }
    let mut c = command_as(who, "bwrap");
    c.args([
        "--unshare-user",
        "--disable-userns",
        "--ro-bind",
        "/",
        "/",
        "--tmpfs",
        "/tmp",
    ])
    .arg("--bind")
    .arg(&s.base)
    .arg(&s.base)
    .args(["--dev", "/dev", "--proc", "/proc", "--chdir"])
    .arg(&s.ws)
    .arg("--")
    .arg(&copy)
    .args(["run", "--tier", "unelevated", "--workspace"])
    .arg(&s.ws)
    .args(moat_args)
    .arg("--")
    .args(cmd);
    output(&mut c)
}

#[test]
fn refuses_without_user_namespaces_and_names_the_losses() {
    assert!(
        std::process::Command::new("bwrap").arg("--version").output().is_ok(),
        "bwrap is needed to simulate a machine without user namespaces (apt-get install bubblewrap)"
    );
    for who in identities() {
        let s = Scratch::new(&who, "nouserns");
        let out = without_userns(&who, &s, &[], &["true"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{}: {err}", who.name);
        assert!(err.contains("user namespaces are not available"), "{err}");
        assert!(
            err.contains("pathname UNIX sockets"),
            "the losses are named: {err}"
        );
        assert!(err.contains("--allow-degraded"), "the fix is named: {err}");
        assert!(!err.contains("panicked"), "{err}");

        // Accepted: the run goes ahead, says what it lost, and Landlock and
        // seccomp still hold.
        let canary = s.outside.join("canary");
        let probe = probe_for(&s.ws);
        let out = without_userns(
            &who,
            &s,
            &["--allow-degraded"],
            &[
                probe.to_str().unwrap(),
                "append-file",
                canary.to_str().unwrap(),
            ],
        );
        let err = stderr(&out);
        assert!(err.contains("landlock-only run does not enforce"), "{err}");
        assert!(err.contains("user namespaces are unavailable"), "{err}");
        assert!(
            stdout(&out).contains("\"error\":\"EACCES\""),
            "Landlock still refuses: {} {err}",
            stdout(&out)
        );
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary\n");
    }
}

#[test]
fn landlock_only_needs_consent() {
    let who = user();
    let s = Scratch::new(&who, "consent");
    let out = moat_run(&who, &s.ws, &["--isolation", "landlock-only"], &["true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-degraded"),
        "{}",
        stderr(&out)
    );
    let ok = moat_run(
        &who,
        &s.ws,
        &["--isolation", "landlock-only", "--allow-degraded", "--json"],
        &["true"],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("\"mode\":\"landlock-only\""),
        "{}",
        stderr(&ok)
    );
}
