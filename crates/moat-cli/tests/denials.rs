//! Every refusal is reported: each kind is triggered for real in each mode
//! (the unelevated tier with namespaces, landlock-only, and the elevated
//! tier), as root and as the test account, and the run report must hold
//! exactly that entry; the same action outside the sandbox succeeds
//! (the control). Ordinary tools report nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// A mode under test: its flags and the layer that refuses writes there.
struct Mode {
    name: &'static str,
    args: &'static [&'static str],
    write_layer: &'static str,
}

const NAMESPACES: Mode = Mode {
    name: "namespaces",
    args: &["--tier", "unelevated"],
    write_layer: "mount",
};
const LANDLOCK_ONLY: Mode = Mode {
    name: "landlock-only",
    args: &[
        "--tier",
        "unelevated",
        "--isolation",
        "landlock-only",
        "--allow-degraded",
    ],
    write_layer: "landlock",
};
const ELEVATED: Mode = Mode {
    name: "elevated",
    args: &["--tier", "elevated"],
    write_layer: "mount",
};

/// Runs `script` with `sh -c` in `s.ws`, and returns the output and the
/// run report.
fn run(who: &Who, s: &Scratch, args: &[&str], script: &str) -> (std::process::Output, Value) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let report = s.base.join(format!("report-{n}.json"));
    let report_s = report.to_str().unwrap().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--report", &report_s]);
    let out = moat_run(who, &s.ws, &all, &["sh", "-c", script]);
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", show(&out)));
    let v: Value = serde_json::from_str(&text).unwrap();
    (out, v["report"].clone())
}

fn denials(report: &Value) -> Vec<Value> {
    report["denials"].as_array().cloned().unwrap_or_default()
}

fn entry(report: &Value, kind: &str, target: &str) -> Option<Value> {
    denials(report)
        .into_iter()
        .find(|d| d["kind"] == kind && d["target"] == target)
}

/// The entry, checked field by field.
fn expect(
    v: &mut Verdicts,
    what: &str,
    report: &Value,
    (kind, target, layer, process): (&str, &str, &str, Option<&str>),
    hint: &str,
    grants: Value,
) {
    let Some(d) = entry(report, kind, target) else {
        v.check(
            what,
            false,
            format!("no {kind} entry for {target}: {report}"),
        );
        return;
    };
    let process_ok = match process {
        Some(p) => d["process"] == p && d["pid"].as_u64().is_some_and(|p| p > 1),
        None => d["process"].is_null(),
    };
    v.check(
        what,
        d["layer"] == layer
            && process_ok
            && d["count"].as_u64().is_some_and(|c| c >= 1)
            && d["hint"].as_str().is_some_and(|h| h.starts_with(hint))
            && d["grants"] == grants,
        &d,
    );
}

fn grants(pairs: &[(&str, &str)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(c, v)| serde_json::json!({ "config": c, "value": v }))
            .collect(),
    )
}

/// A non-loopback address of this machine, with an HTTP server on it: what
/// the sandbox with the network off must not reach.
fn host_server() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    let ip = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("this machine needs a non-loopback IPv4 address for the network control")
        .to_string();
    let l = std::net::TcpListener::bind((ip.as_str(), 0)).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            use std::io::Write;
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    addr
}

const PTRACE: &str =
    "python3 -c 'import ctypes; print(\"ptrace\", ctypes.CDLL(None).syscall(101, 0, 0, 0, 0))'";

fn every_kind(v: &mut Verdicts, who: &Who, mode: &Mode) {
    let tag = format!("{} {}", mode.name, who.name);
    let s = Scratch::new(who, "denials");
    // Named after the scratch area, which is unique to this test.
    let home_file = who.home.join(format!(
        "{}-home-file",
        s.base.file_name().unwrap().to_str().unwrap()
    ));
    let home_file = home_file.to_str().unwrap();
    let canary = s.outside.join("canary");
    let canary = canary.to_str().unwrap();
    let secret = s.write("outside/secret", "secret\n");
    let secret = secret.to_str().unwrap();
    let addr = host_server();
    // A repository with hooks: its hooks directory is protected.
    let git = output(
        command_as(who, "git")
            .args(["init", "-q"])
            .current_dir(&s.ws),
    );
    assert!(git.status.success(), "{}", show(&git));

    // Controls: each action works without the sandbox.
    let control = output(command_as(who, "sh").arg("-c").arg(format!(
        "touch {home_file} && rm {home_file} && echo ok >> {canary} && cat {secret} && \
         curl -s -o /dev/null -m 5 http://{addr}/ ; echo curl=$?; {PTRACE}"
    )));
    let text = stdout(&control);
    v.check(
        &format!("{tag}: control: home, outside, read, connect and ptrace work unsandboxed"),
        control.status.success()
            && text.contains("secret")
            && text.contains("curl=0")
            && text.contains("ptrace 0"),
        show(&control),
    );

    let script = format!(
        "touch {home_file}; echo no >> {canary}; echo no > .git/hooks/pre-commit; cat {secret}; \
         curl -s -o /dev/null -m 5 http://{addr}/; echo curl=$?; {PTRACE}; true"
    );
    let args = [mode.args, &["--deny-read", secret]].concat();
    let (out, report) = run(who, &s, &args, &script);
    v.check(
        &format!("{tag}: the run worked"),
        out.status.success(),
        show(&out),
    );
    v.check(
        &format!("{tag}: the canary is untouched"),
        std::fs::read_to_string(s.outside.join("canary")).unwrap() == "canary\nok\n",
        "",
    );
    let outside = s.outside.to_str().unwrap();
    expect(
        v,
        &format!("{tag}: a write to the home directory"),
        &report,
        ("write", home_file, mode.write_layer, Some("touch")),
        "not allowed by moat in any mode",
        grants(&[]),
    );
    expect(
        v,
        &format!("{tag}: a write outside the writable roots"),
        &report,
        ("write", canary, mode.write_layer, Some("sh")),
        &format!("--allow-write {outside}"),
        grants(&[("filesystem.write", outside)]),
    );
    let hook = s.ws.join(".git/hooks/pre-commit");
    let hook = hook.to_str().unwrap();
    if mode.name == "landlock-only" {
        // A known loss of this mode: the hook is written (and disabled by
        // the audit at the end), and nothing pretends it was refused.
        v.check(
            &format!("{tag}: no entry for the hook this mode cannot protect"),
            entry(&report, "write", hook).is_none(),
            &report["denials"],
        );
    } else {
        expect(
            v,
            &format!("{tag}: a write to a protected name"),
            &report,
            ("write", hook, "mount", Some("sh")),
            "not allowed by moat in any mode",
            grants(&[]),
        );
    }
    if mode.name == "landlock-only" {
        expect(
            v,
            &format!("{tag}: an internet socket with the network off"),
            &report,
            ("network", "an IPv4 socket", "seccomp", Some("curl")),
            "--network on",
            grants(&[("network.mode", "on")]),
        );
    } else {
        expect(
            v,
            &format!("{tag}: a connection with the network off"),
            &report,
            ("network", &addr, "network-namespace", Some("curl")),
            "--network on",
            grants(&[("network.mode", "on")]),
        );
    }
    expect(
        v,
        &format!("{tag}: a refused system call"),
        &report,
        ("syscall", "ptrace", "seccomp", Some("python3")),
        "not allowed by moat in any mode",
        grants(&[]),
    );
    v.check(
        &format!("{tag}: the secret stays unread"),
        !stdout(&out).contains("secret"),
        show(&out),
    );
    expect(
        v,
        &format!("{tag}: a read of a denied path"),
        &report,
        ("read", secret, mode.write_layer, Some("cat")),
        &format!("--allow-read {secret}"),
        grants(&[("filesystem.allow_read", secret)]),
    );
    // Only listings of denied directories go unseen, and only where they
    // are refused (not in the landlock-only mode, where they work).
    let unseen = report["denials_unseen"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    v.check(
        &format!("{tag}: everything else was observed"),
        match mode.name {
            "landlock-only" => unseen.is_empty(),
            _ => {
                unseen.len() == 1
                    && unseen[0]
                        .as_str()
                        .is_some_and(|u| u.starts_with("listings of denied directories"))
            }
        },
        &report["denials_unseen"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    v.check(
        &format!("{tag}: a summary on stderr"),
        err.contains("moat: refused ") && err.contains(&format!("write {canary}")),
        &err,
    );
    let (out, _) = run(
        who,
        &s,
        &[mode.args, &["--quiet"]].concat(),
        &format!("echo no >> {canary}; true"),
    );
    v.check(
        &format!("{tag}: --quiet prints no summary"),
        !String::from_utf8_lossy(&out.stderr).contains("refused"),
        show(&out),
    );
    let _ = std::fs::remove_file(home_file);
}

/// Ordinary work: nothing in it is refused, so nothing is reported.
fn ordinary_tools(v: &mut Verdicts, who: &Who, mode: &Mode) {
    let tag = format!("{} {}", mode.name, who.name);
    let s = Scratch::new(who, "quiet");
    s.write(
        "ws/main.c",
        "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n",
    );
    let script = "git init -q . && git add main.c && \
                  git -c user.name=a -c user.email=a@b commit -qm x && git status --short && \
                  cc -o main main.c && ./main && \
                  python3 -c 'import json, ssl, sqlite3, email, http.client, venv' && \
                  cargo new -q --vcs none hello && cd hello && cargo build -q --offline && \
                  ./target/debug/hello";
    let (out, report) = run(who, &s, mode.args, script);
    v.check(
        &format!("{tag}: git, cc, python and cargo work"),
        out.status.success() && stdout(&out).contains("Hello, world!"),
        show(&out),
    );
    v.check(
        &format!("{tag}: and report no denial"),
        denials(&report).is_empty(),
        &report["denials"],
    );
    v.check(
        &format!("{tag}: and print no summary"),
        !String::from_utf8_lossy(&out.stderr).contains("moat: refused"),
        show(&out),
    );
}

/// Every kind and the ordinary tools in `mode`, as each identity.
fn in_mode(mode: &Mode) -> Verdicts {
    let mut v = Verdicts::default();
    for who in identities() {
        every_kind(&mut v, &who, mode);
        ordinary_tools(&mut v, &who, mode);
    }
    v
}

#[test]
fn every_kind_is_reported_unelevated() {
    in_mode(&NAMESPACES).finish();
}

#[test]
fn every_kind_is_reported_landlock_only() {
    let mut v = in_mode(&LANDLOCK_ONLY);
    for who in identities() {
        signal_outside(&mut v, &who, &LANDLOCK_ONLY);
    }
    v.finish();
}

/// A signal to a process of the same account outside the sandbox. Only a
/// run without a pid namespace can name one; Landlock's signal scope
/// refuses it.
fn signal_outside(v: &mut Verdicts, who: &Who, mode: &Mode) {
    let tag = format!("{} {}", mode.name, who.name);
    let s = Scratch::new(who, "signal");
    let mut outside = command_as(who, "sleep").arg("60").spawn().unwrap();
    let pid = outside.id();
    let comm = format!("/proc/{pid}/comm");
    for _ in 0..200 {
        if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The control: outside the sandbox the same account may signal it.
    let control = s.sh(&format!("kill -0 {pid} && echo alive"));
    v.check(
        &format!("{tag}: control: kill -0 of its own process outside"),
        stdout(&control).contains("alive"),
        show(&control),
    );
    let (out, report) = run(who, &s, mode.args, &format!("kill -0 {pid}; echo rc=$?"));
    v.check(
        &format!("{tag}: the signal is refused"),
        stdout(&out).contains("rc=1") && stderr(&out).contains("not permitted"),
        show(&out),
    );
    expect(
        v,
        &format!("{tag}: a signal to a process outside"),
        &report,
        (
            "signal",
            &format!("pid {pid} (sleep)"),
            "landlock",
            Some("sh"),
        ),
        "not allowed by moat in any mode",
        grants(&[]),
    );
    let _ = outside.kill();
    let _ = outside.wait();
}

/// The proxy's refusal of a name off the allowlist is a denial, and
/// `moat policy suggest` turns it into the line that allows it.
fn proxy_refusal(v: &mut Verdicts, who: &Who, tier: &[&str]) {
    let tag = format!("{} {}", tier.join(" "), who.name);
    let s = Scratch::new(who, "proxy-denial");
    let args = [tier, &["--network", "allow", "--allow-domain", "pkg.test"]].concat();
    let (out, report) = run(
        who,
        &s,
        &args,
        "curl -s -o /dev/null -w '%{http_code}' -m 5 http://other.test/; true",
    );
    v.check(
        &format!("{tag}: the proxy refused"),
        stdout(&out) == "403",
        show(&out),
    );
    expect(
        v,
        &format!("{tag}: an unlisted name"),
        &report,
        ("network", "other.test:80", "proxy", None),
        "--allow-domain other.test",
        grants(&[("network.allow", "other.test")]),
    );
    let file = s.base.join("proxy-report.json");
    std::fs::write(
        &file,
        serde_json::json!({ "type": "report", "report": report }).to_string(),
    )
    .unwrap();
    let out = output(
        Command::new(moat())
            .args(["policy", "suggest", "--from"])
            .arg(&file),
    );
    v.check(
        &format!("{tag}: suggest names the domain"),
        out.status.success() && stdout(&out).contains("\"other.test\""),
        show(&out),
    );
}

#[test]
fn the_proxys_refusals_are_denials() {
    let mut v = Verdicts::default();
    for who in identities() {
        proxy_refusal(&mut v, &who, &["--tier", "unelevated"]);
    }
    v.finish();
}

#[test]
fn every_kind_is_reported_elevated() {
    let Some(_setup) = elevated_tier() else {
        return;
    };
    let mut v = in_mode(&ELEVATED);
    for who in identities() {
        proxy_refusal(&mut v, &who, ELEVATED.args);
    }
    v.finish();
}

/// A process that already has a seccomp listener runs moat: the kernel
/// gives moat none (EBUSY), so its observer cannot start. The layers must
/// refuse exactly as before and the report must say what went unseen.
#[test]
fn without_an_observer_nothing_is_weaker_and_the_report_says_so() {
    let who = user();
    let s = Scratch::new(&who, "no-observer");
    let holder = s.base.join("bin/listener-holder");
    let src = s.base.join("holder.c");
    std::fs::write(&src, HOLDER_C).unwrap();
    let cc = output(
        Command::new("cc")
            .arg("-O")
            .arg("-o")
            .arg(&holder)
            .arg(&src),
    );
    assert!(cc.status.success(), "{}", show(&cc));
    let report = s.base.join("report.json");
    let canary = s.outside.join("canary");
    let out = output(
        command_as(&who, &holder)
            .arg(moat())
            .args(["run", "--tier", "unelevated", "--workspace"])
            .arg(&s.ws)
            .arg("--report")
            .arg(&report)
            .args(["--", "sh", "-c"])
            .arg(format!("echo no >> {}; {PTRACE}", canary.display()))
            .current_dir(&s.ws),
    );
    let mut v = Verdicts::default();
    v.check(
        "the write is refused as before",
        std::fs::read_to_string(&canary).unwrap() == "canary\n"
            && String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        show(&out),
    );
    v.check(
        "ptrace is refused as before",
        stdout(&out).contains("ptrace -1"),
        show(&out),
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let r = &r["report"];
    v.check("no denial is made up", denials(r).is_empty(), &r["denials"]);
    v.check(
        "the report says they went unseen",
        r["denials_unseen"]
            .to_string()
            .contains("could not get a listener"),
        &r["denials_unseen"],
    );
    v.finish();
}

/// Installs a seccomp filter with a listener (notifying getppid only),
/// then runs its arguments as a child while answering those
/// notifications.
const HOLDER_C: &str = r#"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) { perror("prctl"); return 120; }
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0) { perror("seccomp"); return 121; }
    pid_t pid = fork();
    if (pid == 0) { close(fd); execv(argv[1], argv + 1); perror("exec"); _exit(127); }
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) > 0 && (p.revents & POLLIN)) {
            struct seccomp_notif n; struct seccomp_notif_resp r;
            memset(&n, 0, sizeof n);
            if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n) == 0) {
                memset(&r, 0, sizeof r);
                r.id = n.id; r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
}
"#;
