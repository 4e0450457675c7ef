//! Work that must keep working inside the sandbox: building and testing a
//! crate, git, compilers and interpreters, loopback servers, and the plumbing
//! an agent relies on (stdio, exit status, timeouts, environment, terminal,
//! the end of the run). A sandbox that breaks these gets switched off, so
//! each is a real run, for every identity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `moat run` as `who` in `ws`, not yet started (so stdin can be set).
fn moat_cmd<S: AsRef<OsStr>>(who: &Who, ws: &Path, moat_args: &[&str], cmd: &[S]) -> Command {
    let mut c = command_as(who, moat());
    c.arg("run").arg("--workspace").arg(ws);
    c.args(moat_args).arg("--").args(cmd).current_dir(ws);
    c
}

/// `moat run` with extra variables in moat's own environment. Through
/// `env`, because `setpriv --reset-env` (in command_as) drops whatever the
/// Command itself would set.
fn moat_with_env<S: AsRef<OsStr>>(
    who: &Who,
    ws: &Path,
    vars: &[(&str, &str)],
    moat_args: &[&str],
    cmd: &[S],
) -> Output {
    let mut c = command_as(who, "env");
    for (name, value) in vars {
        c.arg(format!("{name}={value}"));
    }
    c.arg(moat()).arg("run").arg("--workspace").arg(ws);
    c.args(moat_args).arg("--").args(cmd).current_dir(ws);
    c.output().unwrap()
}

/// Runs `c` with `input` on its stdin, written from a thread so a command
/// that writes before it has read everything cannot deadlock us.
fn run_with_input(mut c: Command, input: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Fails the test, naming the package to install, if `tool` is not on the
/// PATH `who` runs with: a missing tool must never pass for a working
/// sandbox, nor be skipped quietly.
fn need(who: &Who, tool: &str, package: &str) {
    let out = command_as(who, "sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{tool}` is not on {}'s PATH: install {package} (the tests need it; scripts/test.sh installs it)",
        who.name
    );
}

/// Debian's cargo for the test account (its PATH has no rustup), whatever
/// cargo root has.
fn cargo_package(who: &Who) -> &'static str {
    if who.switch {
        "the Debian package `cargo` (apt-get install -y cargo)"
    } else {
        "cargo (rustup, or the Debian package `cargo`)"
    }
}

/// The run report moat prints as the last JSON line on stderr with --json.
fn report_of(out: &Output) -> Option<Value> {
    stderr(out)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "report")
        .map(|v| v["report"].clone())
}

/// Checks the run report says nothing was neutralised.
fn nothing_neutralised(v: &mut Verdicts, what: &str, out: &Output) {
    match report_of(out) {
        Some(r) => v.check(
            what,
            r["neutralised"].as_array().is_some_and(|a| a.is_empty()),
            format!("neutralised {}", r["neutralised"]),
        ),
        None => v.check(
            what,
            false,
            format!("no report on stderr\n    {}", show(out)),
        ),
    }
}

/// `env -0` output as a map (values may hold newlines).
fn env_map(out: &Output) -> BTreeMap<String, String> {
    stdout(out)
        .split('\0')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const GIT_ID: &str = "-c user.name=Moat -c user.email=moat@example.invalid";

#[test]
fn cargo_build_and_test_a_crate() {
    let mut v = Verdicts::default();
    for who in identities() {
        need(&who, "cargo", cargo_package(&who));
        let s = Scratch::new(&who, "cargo");
        s.write(
            "ws/Cargo.toml",
            "[package]\nname = \"moat_demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
        );
        s.write(
            "ws/src/lib.rs",
            "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n#[test]\nfn adds() {\n    assert_eq!(add(2, 2), 4);\n}\n",
        );
        let build = moat_run(&who, &s.ws, &[], &["cargo", "build", "--offline"]);
        v.check(
            &format!("{} cargo build", who.name),
            build.status.success(),
            show(&build),
        );
        v.check(
            &format!("{} cargo build left its output in the workspace", who.name),
            s.ws.join("target/debug").is_dir(),
            "no target/debug",
        );
        let test = moat_run(&who, &s.ws, &[], &["cargo", "test", "--offline"]);
        // "1 passed" so that a run that found no test does not pass.
        v.check(
            &format!("{} cargo test", who.name),
            test.status.success()
                && stdout(&test).contains("test adds ... ok")
                && stdout(&test).contains("1 passed"),
            show(&test),
        );
    }
    v.finish();
}

#[test]
fn cargo_new_in_the_workspace() {
    let mut v = Verdicts::default();
    for who in identities() {
        need(&who, "cargo", cargo_package(&who));
        need(&who, "git", "git");
        let s = Scratch::new(&who, "cargo-new");
        let out = moat_run(
            &who,
            &s.ws,
            &["--json"],
            &["cargo", "new", "--vcs", "git", "fresh"],
        );
        v.check(
            &format!("{} cargo new", who.name),
            out.status.success(),
            show(&out),
        );
        for rel in ["fresh/Cargo.toml", "fresh/src/main.rs", "fresh/.git/HEAD"] {
            v.check(
                &format!("{} cargo new created {rel}", who.name),
                s.ws.join(rel).is_file(),
                "missing",
            );
        }
        // A fresh `git init` has no hooks or settings worth neutralising:
        // anything reported here would be a false alarm on every new crate.
        nothing_neutralised(
            &mut v,
            &format!("{} cargo new: clean git init", who.name),
            &out,
        );
        let run = moat_run(
            &who,
            &s.ws,
            &[],
            &[
                "cargo",
                "run",
                "--offline",
                "--manifest-path",
                "fresh/Cargo.toml",
            ],
        );
        v.check(
            &format!("{} cargo run of the new crate", who.name),
            run.status.success() && stdout(&run).contains("Hello, world!"),
            show(&run),
        );
        let log = s.sh("cd fresh && git status --porcelain");
        v.check(
            &format!("{} the new repository is usable outside", who.name),
            log.status.success(),
            show(&log),
        );
    }
    v.finish();
}

#[test]
fn git_in_an_existing_repository() {
    let mut v = Verdicts::default();
    for who in identities() {
        need(&who, "git", "git");
        let s = Scratch::new(&who, "git");
        // Identity on the command line: .git/config is read-only inside and
        // the account may have no ~/.gitconfig.
        let setup = s.sh(&format!(
            "set -e; git -c init.defaultBranch=main init -q; echo one > a; git add a; git {GIT_ID} commit -q -m first"
        ));
        assert!(
            setup.status.success(),
            "git setup as {}: {}",
            who.name,
            show(&setup)
        );
        let out = moat_run(
            &who,
            &s.ws,
            &["--json"],
            &[
                "sh",
                "-c",
                &format!(
                    "set -e; echo two > b; git add b; git {GIT_ID} commit -q -m second; \
                     git branch new; git checkout -q -b other; git status"
                ),
            ],
        );
        v.check(
            &format!("{} git add/commit/branch/checkout/status", who.name),
            out.status.success() && stdout(&out).contains("On branch other"),
            show(&out),
        );
        nothing_neutralised(&mut v, &format!("{} ordinary git work", who.name), &out);
        let log = s.sh("git log --format=%s main");
        v.check(
            &format!("{} commit made inside is in the history", who.name),
            stdout(&log) == "second\nfirst\n",
            show(&log),
        );
        let branches = s.sh("git branch --format='%(refname:short)'");
        let mut names: Vec<String> = stdout(&branches).lines().map(str::to_string).collect();
        names.sort();
        v.check(
            &format!("{} branches made inside exist", who.name),
            names == ["main", "new", "other"],
            show(&branches),
        );
        let head = s.sh("git rev-parse --abbrev-ref HEAD");
        v.check(
            &format!("{} HEAD is on other", who.name),
            stdout(&head).trim() == "other",
            show(&head),
        );
        let status = s.sh("git status --porcelain");
        v.check(
            &format!("{} work tree clean afterwards", who.name),
            status.status.success() && stdout(&status).is_empty(),
            show(&status),
        );
        let fsck = s.sh("git fsck --no-progress");
        v.check(
            &format!("{} repository intact", who.name),
            fsck.status.success(),
            show(&fsck),
        );
    }
    v.finish();
}

#[test]
fn compile_and_run_c() {
    let mut v = Verdicts::default();
    for who in identities() {
        need(&who, "cc", "gcc");
        let s = Scratch::new(&who, "cc");
        s.write(
            "ws/hello.c",
            "#include <stdio.h>\nint main(void) { puts(\"hello from c\"); return 0; }\n",
        );
        let out = moat_run(
            &who,
            &s.ws,
            &[],
            &["sh", "-c", "cc hello.c -o hello && ./hello"],
        );
        v.check(
            &format!("{} cc and run", who.name),
            out.status.success() && stdout(&out) == "hello from c\n",
            show(&out),
        );
        v.check(
            &format!("{} the binary is in the workspace", who.name),
            s.ws.join("hello").is_file(),
            "missing",
        );
    }
    v.finish();
}

#[test]
fn python_script() {
    let mut v = Verdicts::default();
    for who in identities() {
        need(&who, "python3", "python3");
        let s = Scratch::new(&who, "py");
        s.write(
            "ws/script.py",
            "import json, os, tempfile\n\
             with tempfile.NamedTemporaryFile('w', delete=True) as t:\n    t.write('x')\n\
             with open('out.json', 'w') as f:\n    json.dump({'sum': sum(range(10))}, f)\n\
             print('sum', sum(range(10)), os.environ.get('MOAT_SANDBOX'))\n",
        );
        let out = moat_run(&who, &s.ws, &[], &["python3", "script.py"]);
        v.check(
            &format!("{} python3 script", who.name),
            out.status.success() && stdout(&out) == "sum 45 1\n",
            show(&out),
        );
        v.check(
            &format!("{} python3 wrote into the workspace", who.name),
            std::fs::read_to_string(s.ws.join("out.json")).is_ok_and(|t| t.contains("45")),
            "out.json missing or wrong",
        );
    }
    v.finish();
}

/// A dev server and its client in separate processes, as test suites run
/// them: loopback must work even with the network off.
const SERVER_AND_CLIENT: &str = r#"
import subprocess, sys, urllib.request
server = subprocess.Popen([sys.executable, "-c", r'''
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"pong " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
'''], stdout=subprocess.PIPE)
try:
    port = int(server.stdout.readline())
    body = urllib.request.urlopen("http://127.0.0.1:%d/ping" % port, timeout=10).read()
    print(body.decode())
finally:
    server.kill()
    server.wait()
"#;

#[test]
fn loopback_server_and_client() {
    let mut v = Verdicts::default();
    for who in identities() {
        need(&who, "python3", "python3");
        let s = Scratch::new(&who, "loop");
        s.write("ws/serve.py", SERVER_AND_CLIENT);
        let out = moat_run(&who, &s.ws, &[], &["python3", "serve.py"]);
        v.check(
            &format!(
                "{} HTTP server and client on 127.0.0.1, network off",
                who.name
            ),
            out.status.success() && stdout(&out).trim() == "pong /ping",
            show(&out),
        );
    }
    v.finish();
}

#[test]
fn timeout_cuts_a_long_command() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "timeout");
        let start = Instant::now();
        let out = moat_run(&who, &s.ws, &["--timeout", "1"], &["sleep", "30"]);
        let took = start.elapsed();
        v.check(
            &format!("{} exit 124 on timeout", who.name),
            out.status.code() == Some(124),
            show(&out),
        );
        // At least the timeout: a run that ended early did not test it.
        v.check(
            &format!(
                "{} ended after the timeout, not before nor long after",
                who.name
            ),
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            format!("took {took:?}"),
        );
        v.check(
            &format!("{} stderr says it timed out", who.name),
            stderr(&out).contains("timed out"),
            show(&out),
        );
    }
    v.finish();
}

#[test]
fn stdio_and_exit_status_pass_through() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "stdio");
        let out = run_with_input(moat_cmd(&who, &s.ws, &[], &["cat"]), b"hello\n");
        v.check(
            &format!("{} stdin reaches the command, stdout comes back", who.name),
            out.status.success() && stdout(&out) == "hello\n",
            show(&out),
        );
        // More than a pipe buffer, so a relay that drops or truncates shows.
        let big: Vec<u8> = (0..(1usize << 20)).map(|i| b'a' + (i % 26) as u8).collect();
        let out = run_with_input(moat_cmd(&who, &s.ws, &[], &["cat"]), &big);
        v.check(
            &format!("{} 1 MiB through stdin and stdout intact", who.name),
            out.status.success() && out.stdout == big,
            format!(
                "exit {:?}, {} bytes back, stderr: {}",
                out.status.code(),
                out.stdout.len(),
                stderr(&out)
            ),
        );
        let out = moat_run(
            &who,
            &s.ws,
            &[],
            &["sh", "-c", "echo to-out; echo to-err >&2"],
        );
        v.check(
            &format!("{} stdout and stderr kept apart", who.name),
            stdout(&out) == "to-out\n"
                && stderr(&out).contains("to-err")
                && !stdout(&out).contains("to-err"),
            show(&out),
        );
        for (script, code) in [
            ("exit 0", 0),
            ("exit 7", 7),
            ("exit 255", 255),
            ("kill -TERM $$", 128 + 15),
            ("kill -KILL $$", 128 + 9),
        ] {
            let out = moat_run(&who, &s.ws, &[], &["sh", "-c", script]);
            v.check(
                &format!("{} `{script}` gives {code}", who.name),
                out.status.code() == Some(code),
                show(&out),
            );
        }
    }
    v.finish();
}

#[test]
fn environment_is_scrubbed_and_settable() {
    let mut v = Verdicts::default();
    let host: &[(&str, &str)] = &[
        ("GITHUB_TOKEN", "ghp_moat_it"),
        ("AWS_SECRET_ACCESS_KEY", "moat-it-aws"),
        ("SSH_AUTH_SOCK", "/tmp/moat-it-agent.sock"),
        ("MOAT_IT_PLAIN", "plain-value"),
        ("LANG", "C.UTF-8"),
        ("TERM", "xterm"),
    ];
    let removed_by_default = ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK"];
    for who in identities() {
        let s = Scratch::new(&who, "env");
        let w = &who.name;

        let out = moat_with_env(&who, &s.ws, host, &["--json"], &["env", "-0"]);
        let env = env_map(&out);
        v.check(&format!("{w} env runs"), out.status.success(), show(&out));
        for name in removed_by_default {
            v.check(
                &format!("{w} {name} absent by default"),
                !env.contains_key(name),
                format!("{env:?}"),
            );
        }
        v.check(
            &format!("{w} ordinary variables are inherited"),
            env.get("MOAT_IT_PLAIN").map(String::as_str) == Some("plain-value"),
            format!("{env:?}"),
        );
        v.check(
            &format!("{w} MOAT_SANDBOX=1"),
            env.get("MOAT_SANDBOX").map(String::as_str) == Some("1"),
            format!("{env:?}"),
        );
        v.check(
            &format!("{w} TMPDIR set"),
            env.get("TMPDIR").is_some_and(|t| !t.is_empty()),
            format!("{env:?}"),
        );
        let removed: Vec<(String, String)> = report_of(&out)
            .and_then(|r| r["env_removed"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or("").to_string(),
                    e["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        for (name, reason) in [
            ("GITHUB_TOKEN", "secret"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("SSH_AUTH_SOCK", "host-ipc"),
        ] {
            v.check(
                &format!("{w} report lists {name} as removed ({reason})"),
                removed.contains(&(name.to_string(), reason.to_string())),
                format!("{removed:?}"),
            );
        }

        // Passing them through is also the control showing that the
        // variables above really were in moat's environment.
        let out = moat_with_env(
            &who,
            &s.ws,
            host,
            &[
                "--env",
                "GITHUB_TOKEN",
                "--env",
                "AWS_SECRET_ACCESS_KEY",
                "--env",
                "SSH_AUTH_SOCK",
                "--env",
                "MOAT_IT_SET=set value=with equals",
            ],
            &["env", "-0"],
        );
        let env = env_map(&out);
        for (name, value) in [
            ("GITHUB_TOKEN", "ghp_moat_it"),
            ("AWS_SECRET_ACCESS_KEY", "moat-it-aws"),
            ("SSH_AUTH_SOCK", "/tmp/moat-it-agent.sock"),
            ("MOAT_IT_SET", "set value=with equals"),
        ] {
            v.check(
                &format!("{w} --env {name}"),
                env.get(name).map(String::as_str) == Some(value),
                format!("{}\n    {env:?}", show(&out)),
            );
        }

        // moat's own markers cannot be overridden from the command line.
        let out = moat_with_env(
            &who,
            &s.ws,
            host,
            &["--env", "MOAT_SANDBOX=0"],
            &["env", "-0"],
        );
        v.check(
            &format!("{w} MOAT_SANDBOX cannot be overridden"),
            env_map(&out).get("MOAT_SANDBOX").map(String::as_str) == Some("1"),
            show(&out),
        );

        let kept = [
            "PATH",
            "HOME",
            "USER",
            "LOGNAME",
            "TERM",
            "LANG",
            "MOAT_SANDBOX",
            "TMPDIR",
        ];
        let out = moat_with_env(&who, &s.ws, host, &["--env-clear"], &["env", "-0"]);
        let env = env_map(&out);
        let extra: Vec<&String> = env.keys().filter(|k| !kept.contains(&k.as_str())).collect();
        v.check(
            &format!("{w} --env-clear keeps only the basics"),
            out.status.success() && extra.is_empty(),
            format!("extra {extra:?}\n    {}", show(&out)),
        );
        for name in ["PATH", "HOME", "TERM", "LANG", "MOAT_SANDBOX", "TMPDIR"] {
            v.check(
                &format!("{w} --env-clear keeps {name}"),
                env.contains_key(name),
                format!("{env:?}"),
            );
        }
        let out = moat_with_env(
            &who,
            &s.ws,
            host,
            &[
                "--env-clear",
                "--env",
                "MOAT_IT_PLAIN",
                "--env",
                "MOAT_IT_SET=x",
            ],
            &["env", "-0"],
        );
        let env = env_map(&out);
        v.check(
            &format!("{w} --env-clear with --env passes and sets"),
            env.get("MOAT_IT_PLAIN").map(String::as_str) == Some("plain-value")
                && env.get("MOAT_IT_SET").map(String::as_str) == Some("x")
                && !env.contains_key("GITHUB_TOKEN"),
            format!("{env:?}"),
        );

        let out = moat_run(
            &who,
            &s.ws,
            &[],
            &[
                "sh",
                "-c",
                "echo ok > \"$TMPDIR/moat-it\" && cat \"$TMPDIR/moat-it\"",
            ],
        );
        v.check(
            &format!("{w} TMPDIR is writable"),
            stdout(&out) == "ok\n",
            show(&out),
        );
    }
    v.finish();
}

#[test]
fn pty_gives_a_terminal() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "pty");
        let script = ["sh", "-c", "tty; test -t 0 && echo TTY"];
        let out = moat_cmd(&who, &s.ws, &["--pty"], &script)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        v.check(
            &format!("{} --pty: a /dev/pts terminal on stdin", who.name),
            out.status.success()
                && stdout(&out).contains("/dev/pts/")
                && stdout(&out).contains("TTY"),
            show(&out),
        );
        // Without --pty stdin stays /dev/null: the check above can tell.
        let out = moat_cmd(&who, &s.ws, &[], &script)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        v.check(
            &format!("{} without --pty: no terminal", who.name),
            !stdout(&out).contains("/dev/pts/") && !stdout(&out).contains("TTY"),
            show(&out),
        );
    }
    v.finish();
}

#[test]
fn processes_do_not_outlive_the_run() {
    let mut v = Verdicts::default();
    let mut pending = Vec::new();
    // Start every identity's orphans first, then wait once.
    for who in identities() {
        let s = Scratch::new(&who, "orphan");
        let control_marker = s.ws.join("control-marker");
        let marker = s.ws.join("sandboxed-marker");
        let control = outside(
            &who,
            &s.ws,
            "spawn-orphan",
            &["2", control_marker.to_str().unwrap()],
        );
        let start = Instant::now();
        let sandboxed = inside(
            &who,
            &s.ws,
            &[],
            "spawn-orphan",
            &["2", marker.to_str().unwrap()],
        );
        v.works(&format!("{} spawn an orphan inside", who.name), &sandboxed);
        v.check(
            &format!("{} moat did not wait for the orphan", who.name),
            start.elapsed() < Duration::from_millis(1500),
            format!("took {:?}", start.elapsed()),
        );
        pending.push((who, s, control, control_marker, marker));
    }
    std::thread::sleep(Duration::from_secs(4));
    for (who, _s, control, control_marker, marker) in pending {
        let alive = std::fs::read_to_string(&control_marker).unwrap_or_default();
        if !control.is_ok() || alive != "alive\n" {
            v.check(
                &format!("{} orphan control", who.name),
                false,
                format!("outside the sandbox the orphan should have written its marker: {control:?}, marker {alive:?}"),
            );
            continue;
        }
        v.check(
            &format!("{} the orphan died with the run", who.name),
            !marker.exists(),
            format!("{} was written after moat returned", marker.display()),
        );
    }
    v.finish();
}
