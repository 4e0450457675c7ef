//! Delayed execution through git: repositories created during a run are
//! audited when it ends, and what would run code is neutralised visibly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use common::*;
use serde_json::Value;

fn report(out: &std::process::Output) -> Value {
    let err = stderr(out);
    let line = err
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"report\""))
        .unwrap_or_else(|| panic!("no report in: {err}"));
    serde_json::from_str::<Value>(line).unwrap()["report"].clone()
}

#[test]
fn new_repositories_are_neutralised() {
    for who in identities() {
        let s = Scratch::new(&who, "audit");
        let canary = s.outside.join("fsmonitor-ran");
        let hook_canary = s.outside.join("hook-ran");
        // The attack, inside: a new repository whose config and hook would
        // run commands the next time the person uses git there.
        let script = format!(
            "set -e
             git init -q evil
             cd evil
             git config core.fsmonitor 'touch {c}'
             git config alias.st '!touch {c}'
             git config filter.x.clean 'touch {c}'
             printf '#!/bin/sh\\ntouch {h}\\n' > .git/hooks/pre-commit
             chmod +x .git/hooks/pre-commit
             cp .git/hooks/pre-commit .git/hooks/post-checkout.sample",
            c = canary.display(),
            h = hook_canary.display()
        );
        let out = moat_run(&who, &s.ws, &["--json"], &["sh", "-c", &script]);
        assert!(out.status.success(), "{}: {}", who.name, stderr(&out));
        let r = report(&out);
        let neutralised: Vec<String> = r["neutralised"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let all = neutralised.join("\n");
        for key in ["core.fsmonitor", "alias.st", "filter.x.clean", "pre-commit"] {
            assert!(
                all.contains(key),
                "{}: {key} not reported in:\n{all}",
                who.name
            );
        }
        let repo = s.ws.join("evil");
        assert!(repo.join(".git/hooks/pre-commit.moat-disabled").exists());
        assert!(!repo.join(".git/hooks/pre-commit").exists());
        assert!(
            repo.join(".git/hooks/post-checkout.sample").exists(),
            "sample hooks are left alone"
        );
        let config = std::fs::read_to_string(repo.join(".git/config")).unwrap();
        assert!(config.contains("fsmonitor-moat-disabled"), "{config}");
        // The person then uses git there, outside the sandbox: nothing runs.
        let status = s.sh("cd evil && git status && git -c user.name=x -c user.email=x@x commit -q --allow-empty -m x && git add -A");
        assert!(status.status.success(), "{}", stderr(&status));
        assert!(!canary.exists(), "{}: the fsmonitor ran", who.name);
        assert!(!hook_canary.exists(), "{}: the hook ran", who.name);
        let alias = s.sh("cd evil && git st");
        assert!(!alias.status.success() || !canary.exists());
        assert!(!canary.exists(), "{}: the alias ran", who.name);
    }
}

#[test]
fn a_commondir_redirect_in_an_existing_repository_is_neutralised() {
    let who = user();
    let s = Scratch::new(&who, "commondir");
    assert!(s.sh("git init -q .").status.success());
    // The attack: point the existing repository at a directory the sandbox
    // controls, whose config would then be git's.
    let script = "mkdir -p fake/hooks && printf '[core]\\n\\tfsmonitor = touch /tmp/x\\n' > fake/config && echo ../fake > .git/commondir";
    let out = moat_run(&who, &s.ws, &["--json"], &["sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !s.ws.join(".git/commondir").exists(),
        "the redirect must be gone"
    );
    assert!(s.ws.join(".git/commondir.moat-disabled").exists());
    let r = report(&out);
    assert!(r["neutralised"].to_string().contains("commondir"), "{r}");
}

#[test]
fn linked_worktrees_commit_but_keep_hooks_read_only() {
    let who = user();
    let s = Scratch::new(&who, "worktree");
    let setup = "cd .. && mkdir main && cd main && git init -q && git -c user.name=x -c user.email=x@x commit -q --allow-empty -m first && git worktree add -q ../wt";
    assert!(s.sh(setup).status.success());
    let wt = s.base.join("wt");
    let main = s.base.join("main");
    let commit = moat_run(
        &who,
        &wt,
        &[],
        &[
            "sh",
            "-c",
            "echo x > f && git add f && git -c user.name=x -c user.email=x@x commit -q -m wt",
        ],
    );
    assert!(
        commit.status.success(),
        "commit in a linked worktree: {}",
        stderr(&commit)
    );
    let hook = main.join(".git/hooks/pre-commit");
    let attack = moat_run(
        &who,
        &wt,
        &[],
        &["sh", "-c", &format!("echo x > {}", hook.display())],
    );
    assert!(
        !attack.status.success(),
        "the main repository's hooks must stay read-only"
    );
    assert!(!hook.exists());
    let log = s.sh(&format!("cd {} && git log --oneline", main.display()));
    let all = s.sh(&format!("cd {} && git log --oneline --all", main.display()));
    assert!(
        stdout(&all).contains("wt"),
        "the worktree's commit is in the repository: {} {}",
        stdout(&log),
        stdout(&all)
    );
}

#[test]
fn concurrent_runs_share_placeholders_and_leave_nothing() {
    let who = user();
    let s = Scratch::new(&who, "concurrent");
    let mut long = command_as(&who, moat())
        .args(["run", "--workspace"])
        .arg(&s.ws)
        .args(["--", "sleep", "2"])
        .current_dir(&s.ws)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A second, short run in the same workspace starts and ends meanwhile.
    let short = moat_run(&who, &s.ws, &[], &["sh", "-c", "mkdir .vscode 2>&1; true"]);
    assert!(
        stdout(&short).contains("exists"),
        "the placeholder held by the first run protects the second: {}",
        stdout(&short)
    );
    assert!(
        std::fs::symlink_metadata(s.ws.join(".vscode")).is_ok(),
        "the first run still relies on its placeholder"
    );
    assert!(long.wait().unwrap().success());
    let left: Vec<String> = std::fs::read_dir(&s.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "residue after both runs: {left:?}");
}
