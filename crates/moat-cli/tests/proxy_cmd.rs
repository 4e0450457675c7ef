//! `moat proxy`, the allowlist proxy on its own: curl (HTTP and SOCKS5),
//! pip and git reach an allowed name through it and not a denied one,
//! each with the control that the server answers without the proxy; every
//! decision is logged as a JSON line; a non-loopback address is refused
//! unless asked for. The servers are local (tests/registries.py, a git
//! repository served over plain HTTP), the names pinned with --resolve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::registry::Registry;
use common::*;

/// A running `moat proxy`, killed on drop, and where it listens.
struct Running {
    child: Child,
    http: String,
    socks: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line `moat proxy` says where it listens in (after any warnings).
fn listening(stderr: std::process::ChildStderr) -> String {
    std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("\"listening\""))
        .unwrap_or_default()
}

fn start(extra: &[&str], log: &Path) -> Running {
    let mut child = Command::new(moat())
        .args([
            "proxy",
            "--no-config",
            "--listen",
            "127.0.0.1:0",
            "--socks",
            "127.0.0.1:0",
        ])
        .args(["--allow-domain", "ok.test", "--allow-cidr", "127.0.0.1/32"])
        .args([
            "--resolve",
            "ok.test:127.0.0.1",
            "--resolve",
            "no.test:127.0.0.1",
        ])
        .arg("--log")
        .arg(log)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = listening(child.stderr.take().unwrap());
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let at = |protocol: &str| {
        v["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["protocol"] == protocol)
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    Running {
        http: at("http"),
        socks: at("socks5"),
        child,
    }
}

fn run(program: &str, args: &[&str], dir: &Path) -> std::process::Output {
    output(
        Command::new(program)
            .args(args)
            .current_dir(dir)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY"),
    )
}

/// A git repository served over plain ("dumb") HTTP by Python's server.
struct GitServer {
    child: Child,
    port: u16,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git_server(base: &Path) -> GitServer {
    let work = base.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script = "git init -q . && echo served > README && git add README && \
                  git -c user.name=t -c user.email=t@t commit -q -m one && \
                  git clone -q --bare . ../served/repo.git && \
                  git -C ../served/repo.git update-server-info";
    let out = run("sh", &["-c", script], &work);
    assert!(out.status.success(), "{}", show(&out));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(base.join("served"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    GitServer { child, port }
}

#[test]
fn curl_pip_and_git_through_moat_proxy() {
    let base = std::env::temp_dir().join(format!("moat-it-proxy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let reg = Registry::start();
    let git = git_server(&base);
    let log = base.join("decisions.jsonl");
    let p = start(&[], &log);
    let mut v = Verdicts::default();
    let file = "/pip/simple/moat-leaf/".to_string();
    let url = |name: &str, port: u16, path: &str| format!("http://{name}:{port}{path}");

    // Controls: both servers answer directly.
    let direct = run("curl", &["-sf", &url("127.0.0.1", reg.port, &file)], &base);
    v.check(
        "control: the index answers without the proxy",
        direct.status.success(),
        show(&direct),
    );
    let direct = run(
        "curl",
        &["-sf", &url("127.0.0.1", git.port, "/repo.git/info/refs")],
        &base,
    );
    v.check(
        "control: the git server answers without the proxy",
        direct.status.success(),
        show(&direct),
    );

    // curl, HTTP and SOCKS5.
    let proxy = format!("http://{}", p.http);
    for (how, flag, via) in [
        ("HTTP", "-x", proxy.as_str()),
        ("SOCKS5", "--socks5-hostname", p.socks.as_str()),
    ] {
        let ok = run(
            "curl",
            &["-sf", flag, via, &url("ok.test", reg.port, &file)],
            &base,
        );
        v.check(
            &format!("curl through {how} reaches an allowed name"),
            ok.status.success() && stdout(&ok).contains("moat"),
            show(&ok),
        );
        let no = run(
            "curl",
            &["-sf", flag, via, &url("no.test", reg.port, &file)],
            &base,
        );
        v.check(
            &format!("curl through {how} does not reach a denied name"),
            !no.status.success() && stdout(&no).is_empty(),
            show(&no),
        );
    }

    // pip, through the HTTP proxy.
    let pip = |name: &str, dir: &str| {
        let index = url(name, reg.port, "/pip/simple/");
        run(
            "python3",
            &[
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--retries",
                "0",
                "--timeout",
                "5",
                "--proxy",
                &proxy,
                "--trusted-host",
                name,
                "--index-url",
                &index,
                "-d",
                dir,
                "moat-leaf",
            ],
            &base,
        )
    };
    let ok = pip("ok.test", "pip-ok");
    let got = std::fs::read_dir(base.join("pip-ok"))
        .map(|d| d.count())
        .unwrap_or(0);
    v.check(
        "pip downloads from an allowed index",
        ok.status.success() && got == 1,
        show(&ok),
    );
    let no = pip("no.test", "pip-no");
    v.check(
        "pip cannot download from a denied index",
        !no.status.success()
            && !base
                .join("pip-no")
                .join("moat_leaf-1.0.0-py3-none-any.whl")
                .exists(),
        show(&no),
    );

    // git, through the HTTP proxy.
    let clone = |name: &str, into: &str| {
        let remote = url(name, git.port, "/repo.git");
        run(
            "git",
            &[
                "-c",
                &format!("http.proxy={proxy}"),
                "clone",
                "-q",
                &remote,
                into,
            ],
            &base,
        )
    };
    let ok = clone("ok.test", "clone-ok");
    v.check(
        "git clones from an allowed name",
        ok.status.success()
            && std::fs::read_to_string(base.join("clone-ok/README")).unwrap_or_default()
                == "served\n",
        show(&ok),
    );
    let no = clone("no.test", "clone-no");
    v.check(
        "git cannot clone from a denied name",
        !no.status.success() && !base.join("clone-no/README").exists(),
        show(&no),
    );

    // The log: a JSON line per decision, both kinds.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let seen = |name: &str, allowed: bool, protocol: &str| {
        lines
            .iter()
            .any(|d| d["name"] == name && d["allowed"] == allowed && d["protocol"] == protocol)
    };
    v.check(
        "every decision is logged",
        seen("ok.test", true, "http")
            && seen("no.test", false, "http")
            && seen("ok.test", true, "socks5")
            && seen("no.test", false, "socks5"),
        format!("{lines:?}"),
    );
    drop(p);

    // Loopback only, unless asked.
    let refused =
        output(Command::new(moat()).args(["proxy", "--no-config", "--listen", "0.0.0.0:0"]));
    v.check(
        "a non-loopback address is refused",
        refused.status.code() == Some(125) && stderr(&refused).contains("not a loopback address"),
        show(&refused),
    );
    let mut anywhere = Command::new(moat())
        .args([
            "proxy",
            "--no-config",
            "--non-loopback",
            "--listen",
            "0.0.0.0:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = listening(anywhere.stderr.take().unwrap());
    let _ = anywhere.kill();
    let _ = anywhere.wait();
    v.check(
        "with --non-loopback it listens on every address",
        line.contains("\"0.0.0.0:"),
        line,
    );
    let _ = std::fs::remove_dir_all(&base);
    v.finish();
}
