//! `--network allow`: moat's proxy against a real HTTP server outside the
//! sandbox, through curl inside it: allowed and denied names, deny
//! precedence, CONNECT, SOCKS5, loopback and IP literals refused without a
//! CIDR rule, and no way around the proxy. Every denial is checked on the
//! server's side too: it must have seen nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

/// An HTTP server on 127.0.0.1 that answers "hello" and counts requests.
fn server() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n",
            );
        }
    });
    (port, hits)
}

fn count(h: &Arc<AtomicUsize>) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(50));
    h.load(Ordering::SeqCst)
}

fn allow_run(
    who: &Who,
    ws: &std::path::Path,
    extra: &[&str],
    script: &str,
) -> std::process::Output {
    let mut cmd = command_as(who, moat());
    cmd.args(["run", "--json", "--network", "allow"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .current_dir(ws);
    output(&mut cmd)
}

#[test]
fn the_proxy_allows_the_list_and_nothing_else() {
    let (port, hits) = server();
    let url = |host: &str| format!("http://{host}:{port}/");
    for who in identities() {
        let s = Scratch::new(&who, "proxy");
        let pins = [
            "--allow-domain",
            "pkg.test",
            "--allow-domain",
            "*.other.test",
            "--deny-domain",
            "evil.other.test",
            "--resolve",
            "pkg.test:127.0.0.1",
            "--resolve",
            "a.other.test:127.0.0.1",
            "--resolve",
            "evil.other.test:127.0.0.1",
            "--allow-cidr",
            "127.0.0.1/32",
        ];
        let curl =
            |args: &str| format!("rm -f out; curl -s -S -m 10 -o out -w '%{{http_code}}' {args}");

        // Positive control: the server is reachable without the sandbox.
        let before = count(&hits);
        let control = output(std::process::Command::new("curl").args([
            "-s",
            "-m",
            "5",
            &format!("http://127.0.0.1:{port}/"),
        ]));
        assert_eq!(stdout(&control), "hello\n", "control: {}", show(&control));
        assert_eq!(count(&hits), before + 1);

        // Allowed through HTTP_PROXY (set by moat), CONNECT and SOCKS5.
        for (how, args) in [
            ("http", curl(&url("pkg.test"))),
            ("connect", curl(&format!("-p {}", url("pkg.test")))),
            (
                "socks5",
                curl(&format!(
                    "--socks5-hostname 127.0.0.1:1080 {}",
                    url("pkg.test")
                )),
            ),
            ("wildcard", curl(&url("a.other.test"))),
        ] {
            let before = count(&hits);
            let out = allow_run(&who, &s.ws, &pins, &args);
            assert_eq!(stdout(&out), "200", "{} {how}: {}", who.name, show(&out));
            assert_eq!(
                count(&hits),
                before + 1,
                "{} {how}: the server saw nothing",
                who.name
            );
        }

        // Denied: off the list, by a deny rule (which wins over *.test), an
        // IP literal, loopback without a CIDR rule; and around the proxy.
        for (how, extra, args, needle) in [
            (
                "unlisted",
                &pins[..],
                curl(&url("pypi.test.example")),
                "not on the allowlist",
            ),
            (
                "deny wins",
                &pins[..],
                curl(&url("evil.other.test")),
                "denied by the rule evil.other.test",
            ),
            (
                "ip literal",
                &["--allow-domain", "pkg.test"][..],
                // Past NO_PROXY, which keeps localhost off the proxy.
                curl(&format!(
                    "--noproxy '' -x http://127.0.0.1:3128 {}",
                    url("127.0.0.1")
                )),
                "is an address, not a name",
            ),
            (
                "loopback",
                &[
                    "--allow-domain",
                    "pkg.test",
                    "--resolve",
                    "pkg.test:127.0.0.1",
                ][..],
                curl(&url("pkg.test")),
                "loopback address",
            ),
        ] {
            let before = count(&hits);
            let out = allow_run(&who, &s.ws, extra, &format!("{args}; cat out"));
            let text = stdout(&out);
            assert!(
                text.starts_with("403"),
                "{} {how}: {}",
                who.name,
                show(&out)
            );
            assert!(text.contains(needle), "{} {how}: {}", who.name, show(&out));
            assert_eq!(
                count(&hits),
                before,
                "{} {how}: the server was reached",
                who.name
            );
            assert!(
                stderr(&out).contains("refused 1 action") && stderr(&out).contains("(by proxy)"),
                "{}",
                show(&out)
            );
        }
        for (how, args) in [
            (
                "socks5 denied",
                curl(&format!(
                    "--socks5-hostname 127.0.0.1:1080 {}",
                    url("evil.other.test")
                )),
            ),
            (
                "no proxy",
                curl(&format!("--noproxy '*' http://127.0.0.1:{port}/")),
            ),
        ] {
            let before = count(&hits);
            let out = allow_run(&who, &s.ws, &pins, &args);
            assert_ne!(stdout(&out), "200", "{} {how}: {}", who.name, show(&out));
            assert_eq!(
                count(&hits),
                before,
                "{} {how}: the server was reached",
                who.name
            );
        }

        // The run report lists every decision with its rule.
        let out = allow_run(
            &who,
            &s.ws,
            &pins,
            &format!(
                "{}; {}",
                curl(&url("pkg.test")),
                curl(&url("evil.other.test"))
            ),
        );
        let report = stderr(&out)
            .lines()
            .find(|l| l.contains("\"type\":\"report\""))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .unwrap_or_default();
        let decisions = report["report"]["network_decisions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            decisions.iter().any(|d| d["name"] == "pkg.test"
                && d["allowed"] == true
                && d["bytes_down"].as_u64() > Some(0)),
            "{decisions:?}"
        );
        assert!(
            decisions
                .iter()
                .any(|d| d["name"] == "evil.other.test" && d["allowed"] == false),
            "{decisions:?}"
        );
    }
}

#[test]
fn ask_and_net_log() {
    let (port, hits) = server();
    let who = user();
    let s = Scratch::new(&who, "proxyask");
    let log = s.ws.join("net.jsonl");
    let url = format!("http://x.test:{port}/");
    let base = [
        "--resolve",
        "x.test:127.0.0.1",
        "--allow-cidr",
        "127.0.0.1/32",
    ];
    let fetch = format!("curl -s -m 10 -o /dev/null -w '%{{http_code}} ' {url}; curl -s -m 10 -o /dev/null -w '%{{http_code}}' {url}");

    // No terminal to ask on: refused, and logged.
    let before = count(&hits);
    let mut extra = vec!["--ask", "--net-log", log.to_str().unwrap()];
    extra.extend(base);
    let out = allow_run(&who, &s.ws, &extra, &fetch);
    assert_eq!(stdout(&out), "403 403", "{}", show(&out));
    assert_eq!(count(&hits), before);
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{lines}");
    assert!(
        entries
            .iter()
            .all(|e| e["allowed"] == false
                && e["rule"].as_str().unwrap().contains("refused when asked")),
        "{lines}"
    );

    // On a terminal, "y" allows the name for the rest of the run: asked
    // once, both requests go through.
    let before = count(&hits);
    let line = format!(
        "{} run --network allow --ask {} -- sh -c \"{}\"",
        moat().display(),
        base.join(" "),
        fetch.replace('"', "\\\"")
    );
    let mut cmd = command_as(&who, "sh");
    cmd.args([
        "-c",
        &format!(
            "(sleep 1; echo y) | script -qec '{}' /dev/null",
            line.replace('\'', "'\\''")
        ),
    ])
    .current_dir(&s.ws);
    let out = output(&mut cmd);
    let text = stdout(&out).replace('\r', "");
    assert_eq!(text.matches("for this run? [y/N]").count(), 1, "{text}");
    assert!(text.contains("200 200"), "{text}");
    assert_eq!(count(&hits), before + 2);
}
