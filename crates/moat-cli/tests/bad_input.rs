//! Bad input gets a clear error, never a panic: the exit status says who
//! failed (125 moat, 126/127 the command could not start, 2 usage) and
//! stderr names the thing to fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{RwLock, RwLockReadGuard};

use common::*;
use serde_json::Value;

/// The user-config test writes the test account's real
/// ~/.config/moat/config.toml, which every other run as that account would
/// read: it holds this for writing, every other test for reading.
static ACCOUNT_CONFIG: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    ACCOUNT_CONFIG.read().unwrap_or_else(|e| e.into_inner())
}

/// `moat ARGS...` as `who`, in `dir`.
fn moat_in(who: &Who, dir: &Path, args: &[&str]) -> Output {
    command_as(who, moat())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `moat ARGS...` as `who` in `dir` with extra variables in moat's
/// environment (through `env`: command_as resets the environment).
fn moat_env(who: &Who, dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = command_as(who, "env");
    for (name, value) in vars {
        c.arg(format!("{name}={value}"));
    }
    c.arg(moat()).args(args).current_dir(dir).output().unwrap()
}

/// The run must end with `code`, name every one of `needles` on stderr, and
/// not panic.
fn refused(v: &mut Verdicts, what: &str, out: &Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    let missing: Vec<&&str> = needles.iter().filter(|n| !err.contains(**n)).collect();
    v.check(
        what,
        out.status.code() == Some(code) && missing.is_empty() && !err.contains("panicked"),
        format!(
            "expected exit {code} naming {needles:?} (missing {missing:?})\n    {}",
            show(out)
        ),
    );
}

fn json(out: &Output) -> Option<Value> {
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn missing_workspace() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "nows");
        let out = moat_in(
            &who,
            &s.ws,
            &["run", "--workspace", "/nonexistent/x", "--", "true"],
        );
        refused(
            &mut v,
            &format!("{} missing workspace", who.name),
            &out,
            125,
            &["/nonexistent/x"],
        );
        let file = s.write("ws/afile", "x\n");
        let out = moat_in(
            &who,
            &s.ws,
            &["run", "--workspace", file.to_str().unwrap(), "--", "true"],
        );
        refused(
            &mut v,
            &format!("{} workspace is a file", who.name),
            &out,
            125,
            &[file.to_str().unwrap(), "not a directory"],
        );
    }
    v.finish();
}

#[test]
fn workspace_root_is_refused() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "rootws");
        let out = moat_in(&who, &s.ws, &["run", "--workspace", "/", "--", "true"]);
        refused(
            &mut v,
            &format!("{} --workspace /", who.name),
            &out,
            125,
            &["`/`", "hint", "--workspace"],
        );
        // The default workspace is the current directory.
        let out = moat_in(&who, Path::new("/"), &["run", "--", "true"]);
        refused(
            &mut v,
            &format!("{} run from /", who.name),
            &out,
            125,
            &["`/`", "hint", "--workspace"],
        );
    }
    v.finish();
}

#[test]
fn unreadable_workspace_config() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "unreadable");
        s.mkdir("ws/.moat");
        let config = s.ws.join(".moat/config.toml");
        // A directory where the file should be: unreadable for anyone.
        std::fs::create_dir(&config).unwrap();
        let out = moat_in(&who, &s.ws, &["run", "--", "true"]);
        refused(
            &mut v,
            &format!("{} config path is a directory", who.name),
            &out,
            125,
            &[config.to_str().unwrap(), "not a regular file"],
        );
        std::fs::remove_dir(&config).unwrap();
        // Mode 000 and owned by root only stops someone without
        // CAP_DAC_OVERRIDE, i.e. the test account.
        if who.switch {
            std::fs::write(&config, "preset = \"read-only\"\n").unwrap();
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
            let out = moat_in(&who, &s.ws, &["run", "--", "true"]);
            refused(
                &mut v,
                &format!("{} config mode 000 owned by root", who.name),
                &out,
                125,
                &[config.to_str().unwrap(), "Permission denied"],
            );
        }
    }
    v.finish();
}

#[test]
fn unknown_key_in_workspace_config() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "unknownkey");
        let config = s.write("ws/.moat/config.toml", "[filesystem]\nwrtie = []\n");
        let out = moat_in(&who, &s.ws, &["run", "--", "true"]);
        refused(
            &mut v,
            &format!("{} unknown key", who.name),
            &out,
            125,
            &[&format!("{}:2:", config.display()), "wrtie"],
        );
    }
    v.finish();
}

#[test]
fn wrong_type_in_workspace_config() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "wrongtype");
        let config = s.write("ws/.moat/config.toml", "[network]\nmode = 3\n");
        let out = moat_in(&who, &s.ws, &["run", "--", "true"]);
        refused(
            &mut v,
            &format!("{} wrong type", who.name),
            &out,
            125,
            &[&format!("{}:2:", config.display()), "network.mode"],
        );
        // policy show reads the same files and must fail the same way.
        let out = moat_in(&who, &s.ws, &["policy", "show"]);
        v.check(
            &format!("{} policy show on a broken config", who.name),
            !out.status.success()
                && stderr(&out).contains("network.mode")
                && !stderr(&out).contains("panicked"),
            show(&out),
        );
    }
    v.finish();
}

/// Puts back (or removes) the account's real config file, even if the test
/// fails half-way.
struct Restore {
    path: PathBuf,
    before: Option<Vec<u8>>,
    created_dirs: Vec<PathBuf>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        match &self.before {
            Some(bytes) => {
                let _ = std::fs::write(&self.path, bytes);
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
                for d in self.created_dirs.iter().rev() {
                    let _ = std::fs::remove_dir(d);
                }
            }
        }
    }
}

#[test]
fn relative_path_in_user_config() {
    let mut v = Verdicts::default();
    let text = "[filesystem]\nwrite = [\"rel\"]\n";
    for who in identities() {
        let s = Scratch::new(&who, "userconf");
        // Through XDG_CONFIG_HOME, so root's real config is never touched.
        let xdg = s.mkdir("xdg");
        let file = s.write("xdg/moat/config.toml", text);
        let out = moat_env(
            &who,
            &s.ws,
            &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())],
            &["run", "--", "true"],
        );
        refused(
            &mut v,
            &format!(
                "{} relative path in $XDG_CONFIG_HOME/moat/config.toml",
                who.name
            ),
            &out,
            125,
            &["filesystem.write", "rel", file.to_str().unwrap()],
        );
        // The disposable test account's real ~/.config/moat/config.toml.
        if who.switch {
            let _g = ACCOUNT_CONFIG.write().unwrap_or_else(|e| e.into_inner());
            let path = who.home.join(".config/moat/config.toml");
            let mut created_dirs = Vec::new();
            for d in [who.home.join(".config"), who.home.join(".config/moat")] {
                if !d.exists() {
                    std::fs::create_dir(&d).unwrap();
                    chown_r(&d, &who);
                    created_dirs.push(d);
                }
            }
            let _restore = Restore {
                before: std::fs::read(&path).ok(),
                path: path.clone(),
                created_dirs,
            };
            std::fs::write(&path, text).unwrap();
            chown_r(&path, &who);
            let out = moat_in(&who, &s.ws, &["run", "--", "true"]);
            refused(
                &mut v,
                &format!("{} relative path in ~/.config/moat/config.toml", who.name),
                &out,
                125,
                &["filesystem.write", "rel", path.to_str().unwrap()],
            );
        }
    }
    v.finish();
}

#[test]
fn workspace_config_cannot_widen() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "widen");
        s.write("ws/.moat/config.toml", "[network]\nmode = \"on\"\n");
        let out = moat_run(&who, &s.ws, &["--json"], &["sh", "-c", "echo ran"]);
        v.check(
            &format!(
                "{} widening workspace config is a warning, not an error",
                who.name
            ),
            out.status.success()
                && stdout(&out) == "ran\n"
                && stderr(&out).contains("ignored network.mode"),
            show(&out),
        );
        let report = stderr(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|j| j["type"] == "report");
        v.check(
            &format!("{} the run kept the network off", who.name),
            report
                .as_ref()
                .is_some_and(|r| r["report"]["network"] == "off"),
            show(&out),
        );
        let out = moat_in(&who, &s.ws, &["policy", "show", "--json"]);
        let doc = json(&out);
        v.check(
            &format!(
                "{} policy show: network off, the setting listed as ignored",
                who.name
            ),
            doc.as_ref().is_some_and(|d| {
                d["network"]["mode"]["value"] == "off"
                    && d["ignored"].as_array().is_some_and(|a| {
                        a.iter()
                            .any(|i| i.as_str().is_some_and(|t| t.contains("network.mode")))
                    })
            }),
            show(&out),
        );
    }
    v.finish();
}

#[test]
fn commands_that_cannot_start() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "nostart");
        let out = moat_run(&who, &s.ws, &[], &["moat-it-no-such-command"]);
        refused(
            &mut v,
            &format!("{} command not found", who.name),
            &out,
            127,
            &["moat-it-no-such-command", "command not found"],
        );
        s.write("ws/noexec", "#!/bin/sh\necho should not run\n");
        let out = moat_run(&who, &s.ws, &[], &["./noexec"]);
        refused(
            &mut v,
            &format!("{} not executable", who.name),
            &out,
            126,
            &["./noexec"],
        );
        v.check(
            &format!("{} not executable: nothing ran", who.name),
            stdout(&out).is_empty(),
            show(&out),
        );
        let out = moat_run(&who, &s.ws, &[], &[s.outside.to_str().unwrap()]);
        refused(
            &mut v,
            &format!("{} a directory as the command", who.name),
            &out,
            126,
            &[s.outside.to_str().unwrap()],
        );
    }
    v.finish();
}

#[test]
fn conflicting_and_malformed_flags() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "flags");
        let ws = s.ws.to_str().unwrap();
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "full-access with --network",
                &["--preset", "full-access", "--network", "on"],
                &["full-access", "--network"],
            ),
            (
                "read-only with --allow-write",
                &["--preset", "read-only", "--allow-write", ws],
                &["read-only", "--allow-write"],
            ),
            (
                "unknown network mode",
                &["--network", "sometimes"],
                &["sometimes", "off", "on"],
            ),
            (
                "unknown preset",
                &["--preset", "yolo"],
                &["yolo", "workspace-write"],
            ),
            (
                "unknown read mode",
                &["--read", "everything"],
                &["everything", "restricted"],
            ),
            (
                "bad timeout",
                &["--timeout", "soon"],
                &["--timeout", "soon"],
            ),
            (
                "bad memory size",
                &["--max-memory", "12Q"],
                &["--max-memory", "12Q"],
            ),
            (
                "bad file size",
                &["--max-file-size", "lots"],
                &["--max-file-size", "lots"],
            ),
            (
                "zero processes",
                &["--max-processes", "0"],
                &["--max-processes"],
            ),
            (
                "zero CPUs",
                &["--max-cpus", "0"],
                &["--max-cpus", "number of CPUs"],
            ),
            (
                "too fine a CPU share",
                &["--max-cpus", "0.0001"],
                &["--max-cpus", "0.0001"],
            ),
            (
                "secret without hosts",
                &["--network", "allow", "--secret", "GITHUB_TOKEN"],
                &["--secret GITHUB_TOKEN", "NAME:HOST"],
            ),
            (
                "secret bound to a wildcard",
                &[
                    "--network",
                    "allow",
                    "--secret",
                    "GITHUB_TOKEN:*.github.com",
                ],
                &["--secret", "*.github.com", "wildcard"],
            ),
            (
                "secret bound to a URL",
                &["--secret", "GITHUB_TOKEN:https://api.github.com"],
                &["--secret", "URL"],
            ),
            (
                "secret with a bad variable name",
                &["--secret", "GITHUB-TOKEN:api.github.com"],
                &["--secret", "GITHUB-TOKEN", "variable name"],
            ),
            (
                "secret with an empty host",
                &["--secret", "GITHUB_TOKEN:api.github.com,"],
                &["--secret", "empty"],
            ),
            (
                "request rule without methods",
                &["--allow-request", "registry.npmjs.org"],
                &["--allow-request", "METHODS:HOST"],
            ),
            (
                "request rule with an unknown method",
                &["--allow-request", "FETCH:registry.npmjs.org"],
                &["--allow-request", "FETCH", "GET"],
            ),
            (
                "request rule with a port",
                &["--allow-request", "GET:registry.npmjs.org:443/x"],
                &["--allow-request", "port"],
            ),
            (
                "request rule with * among methods",
                &["--allow-request", "GET,*:registry.npmjs.org"],
                &["--allow-request", "stands alone"],
            ),
            (
                "request rule with a dot segment",
                &["--allow-request", "GET:git.example.com/org/../other/"],
                &["--allow-request", "`..` segment"],
            ),
            (
                "upstream CA in another user's home",
                &["--upstream-ca", "~nobody/ca.pem"],
                &["upstream_ca", "~nobody/ca.pem", "another user's home"],
            ),
            (
                "upstream CA with full-access",
                &["--preset", "full-access", "--upstream-ca", "/etc/ca.pem"],
                &["full-access", "--upstream-ca"],
            ),
        ];
        for (what, args, needles) in cases {
            // The command would leave a trace if it ran.
            let out = moat_run(&who, &s.ws, args, &["touch", "ran"]);
            refused(&mut v, &format!("{} {what}", who.name), &out, 125, needles);
            v.check(
                &format!("{} {what}: the command did not run", who.name),
                !s.ws.join("ran").exists(),
                "it ran",
            );
            let _ = std::fs::remove_file(s.ws.join("ran"));
        }
        for (what, args) in [
            ("no command", &["run"][..]),
            ("no `--` before the command", &["run", "true"][..]),
            ("only `--`", &["run", "--"][..]),
        ] {
            let out = moat_in(&who, &s.ws, args);
            refused(&mut v, &format!("{} {what}", who.name), &out, 2, &["Usage"]);
        }
    }
    v.finish();
}

#[test]
fn policy_show_json() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "show");
        let ws = std::fs::canonicalize(&s.ws).unwrap();
        let out = moat_in(&who, &s.ws, &["policy", "show", "--json"]);
        match json(&out) {
            Some(d) => {
                v.check(
                    &format!(
                        "{} policy show: workspace from the current directory",
                        who.name
                    ),
                    d["workspace"]["value"] == ws.to_str().unwrap()
                        && d["workspace"]["source"] == "default",
                    format!("{}", d["workspace"]),
                );
                v.check(
                    &format!("{} policy show: default preset", who.name),
                    d["preset"]["value"] == "workspace-write" && d["preset"]["source"] == "default",
                    format!("{}", d["preset"]),
                );
                v.check(
                    &format!("{} policy show: network off by default", who.name),
                    d["network"]["mode"]["value"] == "off"
                        && d["network"]["mode"]["source"] == "default",
                    format!("{}", d["network"]),
                );
            }
            None => v.check(
                &format!("{} policy show --json is JSON", who.name),
                false,
                show(&out),
            ),
        }
        // Sources follow where a value came from.
        let out = moat_in(
            &who,
            &s.ws,
            &[
                "policy",
                "show",
                "--json",
                "--network",
                "on",
                "--preset",
                "read-only",
                "--require-network-isolation",
                "--max-cpus",
                "1.5",
            ],
        );
        v.check(
            &format!("{} policy show: flags are reported as flags", who.name),
            json(&out).is_some_and(|d| {
                d["network"]["mode"]["value"] == "on"
                    && d["network"]["mode"]["source"]
                        .as_str()
                        .is_some_and(|t| t.contains("flag"))
                    && d["network"]["require_isolation"]["value"] == "true"
                    && d["limits"]["cpus"]["cpus"] == "1.5"
                    && d["preset"]["value"] == "read-only"
                    && d["preset"]["source"]
                        .as_str()
                        .is_some_and(|t| t.contains("flag"))
            }),
            show(&out),
        );
    }
    v.finish();
}

/// Secrets are listed by name and host, never by value; a workspace
/// config's secrets and CAs are listed as ignored, its request rules apply.
#[test]
fn policy_show_lists_secrets_never_their_values() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "secrets");
        s.write(
            "ws/.moat/config.toml",
            "[network]\nupstream_ca = \"/etc/evil-ca.pem\"\n\
             [[network.secrets]]\nenv = \"NPM_TOKEN\"\nhosts = [\"evil.test\"]\n\
             [[network.requests]]\nhost = \"registry.npmjs.org\"\nmethods = [\"GET\"]\n",
        );
        let out = moat_env(
            &who,
            &s.ws,
            &[("GITHUB_TOKEN", "moat-test-secret-value")],
            &[
                "policy",
                "show",
                "--json",
                "--network",
                "allow",
                "--secret",
                "GITHUB_TOKEN:api.github.com",
                "--allow-request",
                "GET,POST:git.example.com/org/repo.git/",
                "--upstream-ca",
                "/etc/ssl/certs/ca-certificates.crt",
            ],
        );
        let text = stdout(&out);
        v.check(
            &format!("{} policy show: no secret value", who.name),
            out.status.success() && !text.contains("moat-test-secret-value"),
            show(&out),
        );
        let ignored = |d: &Value, needle: &str| {
            d["ignored"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|i| i.as_str().is_some_and(|t| t.contains(needle)))
            })
        };
        v.check(
            &format!("{} policy show: secrets, rules and CAs", who.name),
            json(&out).is_some_and(|d| {
                let n = &d["network"];
                n["secrets"].as_array().is_some_and(|a| a.len() == 1)
                    && n["secrets"][0]["env"] == "GITHUB_TOKEN"
                    && n["secrets"][0]["hosts"][0] == "api.github.com"
                    && n["allow"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["value"] == "api.github.com"))
                    && n["requests"].as_array().is_some_and(|a| a.len() == 2)
                    && n["requests"][1]["methods"][1] == "POST"
                    && n["requests"][1]["paths"][0] == "/org/repo.git/"
                    && n["upstream_ca"].as_array().is_some_and(|a| a.len() == 1)
                    && ignored(&d, "network.secrets = NPM_TOKEN -> evil.test")
                    && ignored(&d, "network.upstream_ca = /etc/evil-ca.pem")
            }),
            show(&out),
        );
    }
    v.finish();
}

#[test]
fn doctor_json() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let out = moat_in(&who, &who.home, &["doctor", "--json"]);
        let doc = json(&out);
        v.check(
            &format!("{} doctor --json has landlock_abi and run", who.name),
            out.status.success()
                && doc.as_ref().is_some_and(|d| {
                    d["landlock_abi"].is_i64()
                        && d["run"]["mode"].is_string()
                        && d["run"]["layers"].is_array()
                }),
            show(&out),
        );
    }
    v.finish();
}

/// doctor reports both what it detected and what a trial run did; they must
/// not contradict each other, or the person is told something false.
#[test]
fn doctor_agrees_with_its_trial_run() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let out = moat_in(&who, &who.home, &["doctor", "--json"]);
        let Some(d) = json(&out) else {
            v.check(&format!("{} doctor --json", who.name), false, show(&out));
            continue;
        };
        let ran_in_namespaces = d["run"]["mode"] == "namespaces"
            && d["run"]["layers"].as_array().is_some_and(|l| {
                l.iter().any(|x| {
                    x["layer"] == "namespaces"
                        && x["state"] == "full"
                        && x["detail"].as_str().is_some_and(|t| t.contains("user"))
                })
            });
        if ran_in_namespaces {
            v.check(
                &format!(
                    "{} user_namespaces.available agrees with a run that used one",
                    who.name
                ),
                d["user_namespaces"]["available"] == true,
                format!(
                    "user_namespaces = {}, run.mode = {}",
                    d["user_namespaces"], d["run"]["mode"]
                ),
            );
        }
    }
    v.finish();
}

#[test]
fn full_access_warns() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "full");
        let target = s.outside.join("written");
        // Writing outside the workspace shows the command really ran, and
        // really ran unsandboxed, as the warning says.
        let out = moat_run(
            &who,
            &s.ws,
            &["--preset", "full-access"],
            &[
                "sh",
                "-c",
                &format!("echo ran; echo x > {}", target.display()),
            ],
        );
        v.check(
            &format!("{} full-access runs and warns", who.name),
            out.status.success()
                && stdout(&out) == "ran\n"
                && stderr(&out).contains("WITHOUT a sandbox")
                && !stderr(&out).contains("panicked"),
            show(&out),
        );
        v.check(
            &format!("{} full-access is unsandboxed", who.name),
            target.exists(),
            "nothing written outside",
        );
    }
    v.finish();
}

/// With --json, "moat's own messages too" are JSON: an agent parsing stderr
/// must not meet a plain-text line.
#[test]
fn json_errors_are_json() {
    let _g = shared();
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "jsonerr");
        for (what, args) in [
            ("missing workspace", &["--workspace", "/nonexistent/x"][..]),
            ("bad timeout", &["--timeout", "soon"][..]),
            (
                "flag conflict",
                &["--preset", "full-access", "--network", "on"][..],
            ),
        ] {
            let mut full = vec!["run", "--json"];
            full.extend_from_slice(args);
            full.extend_from_slice(&["--", "true"]);
            let out = moat_in(&who, &s.ws, &full);
            let err = stderr(&out);
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            let all_json = !lines.is_empty()
                && lines
                    .iter()
                    .all(|l| serde_json::from_str::<Value>(l).is_ok_and(|j| j["type"].is_string()));
            let has_error = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|j| j["type"] == "error" && j["message"].is_string());
            v.check(
                &format!(
                    "{} --json {what}: every stderr line is JSON, with an error",
                    who.name
                ),
                out.status.code() == Some(125) && all_json && has_error,
                show(&out),
            );
        }
    }
    v.finish();
}
