//! Filesystem attacks: writes outside the writable roots, protected paths
//! inside them, denied reads. Each attempt has a positive control: the same
//! action, as the same account, outside the sandbox.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use common::*;

fn git(s: &Scratch, dir: &str, args: &str) {
    let out = s.sh(&format!(
        "cd {dir} && git -c init.defaultBranch=main {args}"
    ));
    assert!(out.status.success(), "git {args}: {}", stderr(&out));
}

/// A workspace holding a repository with a nested one and a repository
/// without a hooks directory.
fn repo_scratch(who: &Who, tag: &str) -> Scratch {
    let s = Scratch::new(who, tag);
    git(&s, ".", "init -q");
    s.mkdir("ws/sub");
    git(&s, "sub", "init -q");
    s.mkdir("ws/nohooks");
    git(&s, "nohooks", "init -q");
    std::fs::remove_dir_all(s.ws.join("nohooks/.git/hooks")).unwrap();
    s.write("ws/file", "data\n");
    s
}

#[test]
fn writes_outside_the_workspace_are_refused() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "out");
        let ws = s.ws.clone();
        let canary = s.outside.join("canary");
        let c = canary.to_str().unwrap();
        let newf = s.outside.join("new");
        let n = newf.to_str().unwrap();
        let home_file = who
            .home
            .join(format!("moat-it-home-{}", std::process::id()));
        let h = home_file.to_str().unwrap();
        s.write("ws/inner", "x");
        let inner = ws.join("inner");
        let i = inner.to_str().unwrap();
        let cases: Vec<(&str, Vec<String>, Vec<String>, &[&str])> = vec![
            (
                "create",
                vec!["write-file".into(), n.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "create in home",
                vec!["write-file".into(), h.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "truncate on open",
                vec!["write-file".into(), c.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "append",
                vec!["append-file".into(), c.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "truncate",
                vec!["truncate".into(), c.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "unlink",
                vec!["unlink".into(), c.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "mkdir",
                vec!["mkdir".into(), format!("{n}dir")],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "fifo",
                vec!["mknod-fifo".into(), format!("{n}fifo")],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "chmod",
                vec!["chmod".into(), c.into(), "777".into()],
                vec![],
                &["EROFS"],
            ),
            (
                "chown",
                vec![
                    "chown".into(),
                    c.into(),
                    who.uid.to_string(),
                    who.gid.to_string(),
                ],
                vec![],
                &["EROFS", "EPERM"],
            ),
            (
                "utimes",
                vec!["utimes".into(), c.into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "setxattr",
                vec!["setxattr".into(), c.into(), "user.moat".into(), "x".into()],
                vec![],
                &["EROFS", "EACCES"],
            ),
            (
                "rename out of the workspace",
                vec!["rename".into(), i.into(), format!("{n}moved")],
                vec![],
                &["EXDEV", "EROFS", "EACCES"],
            ),
            (
                "rename into the workspace",
                vec![
                    "rename".into(),
                    c.into(),
                    ws.join("stolen").to_str().unwrap().into(),
                ],
                vec![],
                &["EXDEV", "EROFS", "EACCES"],
            ),
            (
                "hard link into the workspace",
                vec![
                    "link".into(),
                    c.into(),
                    ws.join("hard").to_str().unwrap().into(),
                ],
                vec![],
                &["EXDEV", "EROFS", "EACCES", "EPERM"],
            ),
        ];
        for (what, args, _, errors) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let control = outside(&who, &ws, args[0], &args[1..]);
            // Undo what the control did, so the sandboxed attempt starts from
            // the same state.
            std::fs::write(&canary, "canary\n").unwrap();
            for p in [&newf, &home_file] {
                let _ = std::fs::remove_file(p);
            }
            let _ = std::fs::remove_dir(format!("{n}dir"));
            let _ = std::fs::remove_file(format!("{n}fifo"));
            let _ = std::fs::rename(format!("{n}moved"), &inner);
            let _ = std::fs::rename(ws.join("stolen"), &canary);
            let _ = std::fs::remove_file(ws.join("hard"));
            if who.switch {
                chown_r(&s.base, &who);
            }
            std::fs::set_permissions(&canary, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            let sandboxed = inside(&who, &ws, &[], args[0], &args[1..]);
            v.blocked(
                &format!("{} {what}", who.name),
                &control,
                &sandboxed,
                errors,
            );
        }
        // A symlink planted in the workspace and then followed.
        let link = ws.join("link");
        let l = link.to_str().unwrap();
        let plant = inside(&who, &ws, &[], "symlink", &[c, l]);
        v.works(
            &format!("{} plant a symlink in the workspace", who.name),
            &plant,
        );
        let control = outside(&who, &ws, "append-file", &[l]);
        std::fs::write(&canary, "canary\n").unwrap();
        let sandboxed = inside(&who, &ws, &[], "append-file", &[l]);
        v.blocked(
            &format!("{} write through a planted symlink", who.name),
            &control,
            &sandboxed,
            &["EROFS", "EACCES"],
        );
        v.check(
            &format!("{} canary unchanged", who.name),
            std::fs::read_to_string(&canary).unwrap() == "canary\n",
            "the canary was modified",
        );
        let _ = std::fs::remove_file(&home_file);
    }
    v.finish();
}

#[test]
fn writes_inside_the_workspace_work() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "in");
        let ws = s.ws.clone();
        let f = ws.join("f");
        let f = f.to_str().unwrap();
        for (what, action, args) in [
            ("create", "write-file", vec![f.to_string()]),
            ("chmod", "chmod", vec![f.to_string(), "600".into()]),
            ("utimes", "utimes", vec![f.to_string()]),
            ("mkdir", "mkdir", vec![format!("{f}.d")]),
            ("rename", "rename", vec![f.to_string(), format!("{f}.d/g")]),
            ("tmp", "write-file", vec!["/tmp/x".into()]),
            ("dev/null", "append-file", vec!["/dev/null".into()]),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            v.works(
                &format!("{} {what}", who.name),
                &inside(&who, &ws, &[], action, &args),
            );
        }
        v.check(
            &format!(
                "{} file written by the sandbox belongs to the person",
                who.name
            ),
            std::fs::metadata(ws.join("f.d/g"))
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .ok()
                == Some(who.uid),
            "owner differs",
        );
    }
    v.finish();
}

#[test]
fn protected_paths_stay_read_only() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = repo_scratch(&who, "prot");
        let ws = s.ws.clone();
        let p = |rel: &str| ws.join(rel).to_str().unwrap().to_string();
        let config_before = std::fs::read_to_string(ws.join(".git/config")).unwrap();
        // (what, action, arguments, accepted errors, shell run in the
        // control's copy first so that the control shows the attack working)
        let cases: Vec<(&str, &str, Vec<String>, &[&str], &str)> = vec![
            (
                "new hook",
                "write-file",
                vec![p(".git/hooks/pre-commit")],
                &["EROFS"],
                "",
            ),
            (
                "git config",
                "append-file",
                vec![p(".git/config")],
                &["EROFS"],
                "",
            ),
            (
                "git config truncate",
                "truncate",
                vec![p(".git/config")],
                &["EROFS"],
                "",
            ),
            (
                "git config unlink",
                "unlink",
                vec![p(".git/config")],
                &["EBUSY", "EROFS"],
                "",
            ),
            (
                "git config replaced",
                "rename",
                vec![p("file"), p(".git/config")],
                &["EBUSY", "EROFS", "EXDEV"],
                "",
            ),
            (
                "git config chmod",
                "chmod",
                vec![p(".git/config"), "777".into()],
                &["EROFS"],
                "",
            ),
            (
                "hooks dir renamed",
                "rename",
                vec![p(".git/hooks"), p(".git/hooks2")],
                &["EBUSY", "EROFS"],
                "",
            ),
            (
                "parent .git renamed",
                "rename",
                vec![p(".git"), p("old-git")],
                &["EBUSY"],
                "",
            ),
            (
                "nested hook",
                "write-file",
                vec![p("sub/.git/hooks/post-checkout")],
                &["EROFS"],
                "",
            ),
            (
                "nested config",
                "append-file",
                vec![p("sub/.git/config")],
                &["EROFS"],
                "",
            ),
            (
                "nested repository renamed",
                "rename",
                vec![p("sub"), p("sub2")],
                &["EBUSY"],
                "",
            ),
            (
                "absent .vscode created",
                "mkdir",
                vec![p(".vscode")],
                &["EEXIST"],
                "",
            ),
            (
                "absent .vscode filled",
                "write-file",
                vec![p(".vscode/settings.json")],
                &["ENOTDIR"],
                "mkdir .vscode",
            ),
            (
                "absent .envrc written",
                "write-file",
                vec![p(".envrc")],
                &["EROFS", "ENXIO", "EACCES"],
                "",
            ),
            (
                "absent .envrc replaced",
                "rename",
                vec![p("file"), p(".envrc")],
                &["EBUSY", "EROFS", "EXDEV"],
                "",
            ),
            (
                "absent .envrc removed",
                "unlink",
                vec![p(".envrc")],
                &["EBUSY", "EROFS"],
                "touch .envrc",
            ),
            (
                "absent .mcp.json as symlink",
                "symlink",
                vec!["/bin/sh".into(), p(".mcp.json")],
                &["EEXIST"],
                "",
            ),
            (
                "absent .claude created",
                "mkdir",
                vec![p(".claude")],
                &["EEXIST"],
                "",
            ),
            (
                "absent hooks dir created",
                "mkdir",
                vec![p("nohooks/.git/hooks")],
                &["EEXIST"],
                "",
            ),
            (
                "absent hooks dir filled",
                "write-file",
                vec![p("nohooks/.git/hooks/pre-commit")],
                &["ENOTDIR"],
                "mkdir nohooks/.git/hooks",
            ),
        ];
        for (what, action, args, errors, control_setup) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // Controls run in a copy, so the real tree stays as it was.
            let c = repo_scratch(&who, "prot-control");
            if !control_setup.is_empty() {
                assert!(c.sh(control_setup).status.success(), "{control_setup}");
            }
            let cargs: Vec<String> = args
                .iter()
                .map(|a| a.replace(ws.to_str().unwrap(), c.ws.to_str().unwrap()))
                .collect();
            let cargs: Vec<&str> = cargs.iter().map(String::as_str).collect();
            let control = outside(&who, &c.ws, action, &cargs);
            let sandboxed = inside(&who, &ws, &[], action, &args);
            v.blocked(
                &format!("{} {what}", who.name),
                &control,
                &sandboxed,
                errors,
            );
        }
        v.check(
            &format!("{} .git/config unchanged", who.name),
            std::fs::read_to_string(ws.join(".git/config")).unwrap() == config_before,
            "changed",
        );
        // Everything else in .git stays writable: git works (tested in
        // workflows.rs); strict_git makes all of it read-only.
        let head = p(".git/HEAD");
        v.works(
            &format!("{} .git/HEAD writable", who.name),
            &inside(&who, &ws, &[], "append-file", &[&head]),
        );
        let strict = inside(&who, &ws, &["--strict-git"], "append-file", &[&head]);
        v.blocked(
            &format!("{} .git/HEAD with --strict-git", who.name),
            &Probe::Ok(String::new()),
            &strict,
            &["EROFS"],
        );
        // No placeholder is left behind.
        for name in [
            ".vscode",
            ".envrc",
            ".mcp.json",
            ".claude",
            "nohooks/.git/hooks",
        ] {
            v.check(
                &format!("{} no residue {name}", who.name),
                std::fs::symlink_metadata(ws.join(name)).is_err(),
                "placeholder left behind",
            );
        }
        let status = s.sh("git status --porcelain --ignored");
        v.check(
            &format!("{} git status clean of moat's traces", who.name),
            !stdout(&status).contains(".vscode") && !stdout(&status).contains(".envrc"),
            stdout(&status),
        );
    }
    v.finish();
}

#[test]
fn denied_reads_are_unreadable() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "deny");
        let secret = s.write("outside/secret/key", "secret\n");
        let secret_file = s.write("outside/token", "token\n");
        let ws = s.ws.clone();
        let dir = secret.parent().unwrap().to_str().unwrap().to_string();
        let deny = [
            "--deny-read",
            dir.as_str(),
            "--deny-read",
            secret_file.to_str().unwrap(),
        ];
        let link = ws.join("via-link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        for isolation in ["full", "landlock-only"] {
            let mut args = deny.to_vec();
            args.extend(["--isolation", isolation, "--allow-degraded"]);
            for (what, action, target) in [
                (
                    "read a denied file",
                    "read-file",
                    secret_file.to_str().unwrap(),
                ),
                (
                    "read in a denied directory",
                    "read-file",
                    secret.to_str().unwrap(),
                ),
                (
                    "read through a symlink",
                    "read-file",
                    link.to_str().unwrap(),
                ),
                ("list a denied directory", "list-dir", dir.as_str()),
            ] {
                // Listing a denied directory is only refused by the mount
                // layer (Landlock grants listing along the way).
                if isolation == "landlock-only" && action == "list-dir" {
                    continue;
                }
                let control = outside(&who, &ws, action, &[target]);
                let sandboxed = inside(&who, &ws, &args, action, &[target]);
                v.blocked(
                    &format!("{} {isolation} {what}", who.name),
                    &control,
                    &sandboxed,
                    &["EACCES"],
                );
            }
        }
        // Default denials: the person's cloud credentials.
        if who.switch {
            let aws = s.who.home.join(".aws");
            std::fs::create_dir_all(&aws).unwrap();
            std::fs::write(aws.join("credentials"), "[default]\n").unwrap();
            chown_r(&aws, &who);
            let target = aws.join("credentials");
            let control = outside(&who, &ws, "read-file", &[target.to_str().unwrap()]);
            let sandboxed = inside(&who, &ws, &[], "read-file", &[target.to_str().unwrap()]);
            v.blocked(
                &format!("{} ~/.aws/credentials", who.name),
                &control,
                &sandboxed,
                &["EACCES"],
            );
            let lifted = inside(
                &who,
                &ws,
                &["--allow-read", "~/.aws"],
                "read-file",
                &[target.to_str().unwrap()],
            );
            v.works(
                &format!("{} --allow-read lifts a default denial", who.name),
                &lifted,
            );
            std::fs::remove_dir_all(&aws).unwrap();
        }
    }
    v.finish();
}

#[test]
fn restricted_reads_see_only_what_is_listed() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "restricted");
        let ws = s.ws.clone();
        let canary = s.outside.join("canary");
        let c = canary.to_str().unwrap();
        let control = outside(&who, &ws, "read-file", &[c]);
        let bin = s.base.join("bin");
        let bin = bin.to_str().unwrap();
        let sandboxed = inside(
            &who,
            &ws,
            &["--read", "restricted", "--allow-read", bin],
            "read-file",
            &[c],
        );
        v.blocked(
            &format!("{} read outside the listed paths", who.name),
            &control,
            &sandboxed,
            &["EACCES", "ENOENT"],
        );
        v.works(
            &format!("{} read a system file", who.name),
            &inside(
                &who,
                &ws,
                &["--read", "restricted", "--allow-read", bin],
                "read-file",
                &["/etc/hostname"],
            ),
        );
        let listed = inside(
            &who,
            &ws,
            &[
                "--read",
                "restricted",
                "--allow-read",
                bin,
                "--allow-read",
                s.outside.to_str().unwrap(),
            ],
            "read-file",
            &[c],
        );
        v.works(&format!("{} read a listed path", who.name), &listed);
    }
    v.finish();
}
