//! `--network allow`, transparent mode: programs that ignore the proxy
//! variables. Real servers outside the sandbox (HTTP on port 80, HTTPS
//! with a test certificate on 443, a DNS canary, a TCP service on another
//! port), reached from inside by a raw socket, curl with `--noproxy` and
//! the system resolver. Every denial is checked on the server's side too.
//! The servers need ports 80 and 443, so this runs as root (as CI does).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Where the test's "internet" lives on the host.
const HOST: &str = "127.0.0.77";

fn counting_http(listener: TcpListener) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n",
            );
        }
    });
    hits
}

fn counting_udp(socket: UdpSocket) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while socket.recv_from(&mut buf).is_ok() {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    hits
}

fn seen(h: &Arc<AtomicUsize>) -> usize {
    std::thread::sleep(Duration::from_millis(100));
    h.load(Ordering::SeqCst)
}

/// A TLS server (Python's) on `host`:443 for `pkg.test`, `git.test` and
/// `pypi.test`, with a certificate made for this run; it appends each
/// request's path to `log`. Besides "hello", it serves `dir/repos` with
/// git's smart-HTTP backend under `/git/`, and the files of `dir/index`
/// as a package index under `/simple/` and `/files/`.
struct Tls {
    child: Child,
    log: std::path::PathBuf,
}

const TLS_SERVER: &str = r#"
import http.server, os, socketserver, ssl, subprocess, sys
log, repos, index, cert, key, host = sys.argv[1:7]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def reply(self, body, kind="text/plain"):
        self.send_response(200); self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def git(self):
        path, _, query = self.path[len("/git"):].partition("?")
        n = int(self.headers.get("Content-Length") or 0)
        env = dict(os.environ, GIT_PROJECT_ROOT=repos, GIT_HTTP_EXPORT_ALL="1",
                   GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="safe.directory", GIT_CONFIG_VALUE_0="*",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(n))
        out = subprocess.run(["git", "http-backend"], input=self.rfile.read(n), env=env,
                             capture_output=True).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = 200
        for l in lines:
            if l.lower().startswith("status:"):
                status = int(l.split()[1])
        self.send_response(status)
        for l in lines:
            if ":" in l and not l.lower().startswith("status:"):
                k, v = l.split(":", 1); self.send_header(k, v.strip())
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        open(log, "a").write(self.path + "\n")
        if self.path.startswith("/git/"):
            return self.git()
        if self.path.startswith(("/simple/", "/files/")):
            name = os.path.join(index, self.path.strip("/").replace("/", "_"))
            if os.path.isfile(name):
                kind = "text/html" if "simple" in name else "application/octet-stream"
                return self.reply(open(name, "rb").read(), kind)
            return self.send_error(404)
        self.reply(b"hello\n")
    def do_POST(self):
        open(log, "a").write(self.path + "\n")
        self.git()
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
srv = S((host, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

impl Tls {
    fn start(dir: &std::path::Path, host: &str) -> Tls {
        let made = output(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=pkg.test", "-addext"])
                .arg("subjectAltName=DNS:pkg.test,DNS:git.test,DNS:pypi.test")
                .arg("-keyout")
                .arg(dir.join("key.pem"))
                .arg("-out")
                .arg(dir.join("ca.pem")),
        );
        assert!(made.status.success(), "openssl: {}", show(&made));
        let log = dir.join("tls.log");
        let mut child = Command::new("python3")
            .args(["-c", TLS_SERVER])
            .arg(&log)
            .arg(dir.join("repos"))
            .arg(dir.join("index"))
            .arg(dir.join("ca.pem"))
            .arg(dir.join("key.pem"))
            .arg(host)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        Tls { child, log }
    }

    fn requests(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(who: &Who, ws: &std::path::Path, extra: &[&str], script: &str) -> std::process::Output {
    let mut cmd = command_as(who, moat());
    cmd.args(["run", "--tier", "unelevated", "--network", "allow"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .current_dir(ws);
    output(&mut cmd)
}

#[test]
fn programs_that_ignore_the_proxy_go_through_it_anyway() {
    let http = match TcpListener::bind((HOST, 80)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: the test servers need ports 80 and 443 ({e}); run as root");
            return;
        }
    };
    let http_hits = counting_http(http);
    let other = TcpListener::bind((HOST, 0)).unwrap();
    let other_port = other.local_addr().unwrap().port().to_string();
    let other_hits = counting_http(other);
    let canary = UdpSocket::bind((HOST, 53)).unwrap();
    let canary_hits = counting_udp(canary);
    let mut v = Verdicts::default();

    for who in identities() {
        let s = Scratch::new(&who, "transparent");
        let tls = Tls::start(&s.base, HOST);
        if who.switch {
            chown_r(&s.base, &who);
        }
        let ca = s.base.join("ca.pem");
        let ca = ca.to_str().unwrap();
        let tag = &who.name;
        let pins = [
            "--allow-domain",
            "pkg.test",
            "--deny-domain",
            "evil.pkg.test",
            "--resolve",
            &format!("pkg.test:{HOST}"),
            "--resolve",
            &format!("evil.pkg.test:{HOST}"),
            "--allow-cidr",
            &format!("{HOST}/32"),
        ]
        .map(String::from);
        let pins: Vec<&str> = pins.iter().map(String::as_str).collect();
        // No proxy variables reach these programs.
        let bare = "unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY; ";

        // Positive controls, outside the sandbox.
        let before = seen(&http_hits);
        let out = output(Command::new("curl").args(["-s", "-m", "5", &format!("http://{HOST}/")]));
        v.check(
            "control: the HTTP server answers",
            stdout(&out) == "hello\n",
            show(&out),
        );
        v.check(
            "control: the HTTP server counts",
            seen(&http_hits) == before + 1,
            "",
        );
        let out = output(Command::new("curl").args([
            "-s",
            "-m",
            "5",
            "--cacert",
            ca,
            "--resolve",
            &format!("pkg.test:443:{HOST}"),
            "https://pkg.test/control",
        ]));
        v.check(
            "control: the HTTPS server answers",
            stdout(&out) == "hello\n",
            show(&out),
        );
        let before = seen(&canary_hits);
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.send_to(b"\x00\x01canary", (HOST, 53)).unwrap();
        v.check(
            "control: the DNS canary hears a query sent to it",
            seen(&canary_hits) == before + 1,
            "",
        );

        // The system resolver: allowed names get a synthetic address,
        // others nothing.
        let out = run(
            &who,
            &s.ws,
            &pins,
            "getent hosts pkg.test; getent hosts nope.test || echo none",
        );
        let text = stdout(&out);
        v.check(
            &format!("{tag}: an allowed name resolves to a synthetic address"),
            text.starts_with("198.18.") && text.contains("pkg.test"),
            show(&out),
        );
        v.check(
            &format!("{tag}: an unlisted name does not resolve"),
            text.trim_end().ends_with("none"),
            show(&out),
        );

        // A raw socket to an allowed name: plain HTTP, captured.
        let before = seen(&http_hits);
        let py = "import socket; s=socket.create_connection(('pkg.test',80),5); \
                  s.sendall(b'GET / HTTP/1.1\\r\\nHost: pkg.test\\r\\n\\r\\n'); \
                  print(s.recv(4096).decode().split('\\r\\n')[0])";
        let out = run(&who, &s.ws, &pins, &format!("{bare}python3 -c \"{py}\""));
        v.check(
            &format!("{tag}: a raw socket reaches an allowed name over HTTP"),
            stdout(&out).trim() == "HTTP/1.1 200 OK" && seen(&http_hits) == before + 1,
            show(&out),
        );

        // HTTPS, certificate checked end to end (moat reads the server
        // name, it does not terminate TLS).
        let before = tls.requests();
        let out = run(
            &who,
            &s.ws,
            &pins,
            &format!("{bare}curl -s -S -m 10 --noproxy '*' --cacert {ca} https://pkg.test/inside"),
        );
        v.check(
            &format!("{tag}: HTTPS to an allowed name, certificate verified"),
            stdout(&out) == "hello\n" && tls.requests() == before + 1,
            show(&out),
        );

        // Denied, and the servers see nothing: an unlisted name (no
        // address at all), a denied name named by SNI or Host, an address.
        let cases = [
            (
                "an unlisted name",
                "curl -s -S -m 5 --noproxy '*' http://nope.test/".to_string(),
            ),
            (
                "a denied name by its TLS server name",
                format!(
                    "curl -s -S -m 5 --noproxy '*' -k --resolve evil.pkg.test:443:{HOST} \
                     https://evil.pkg.test/sni"
                ),
            ),
            (
                "a denied name by its Host header",
                "curl -s -S -m 5 --noproxy '*' -H 'Host: evil.pkg.test' http://198.18.0.1/"
                    .to_string(),
            ),
            (
                "an address without a CIDR rule",
                "curl -s -S -m 5 --noproxy '*' http://203.0.113.9/".to_string(),
            ),
        ];
        for (what, cmd) in cases {
            let (h, t) = (seen(&http_hits), tls.requests());
            let extra: Vec<&str> = if what.starts_with("an address") {
                vec!["--allow-domain", "pkg.test"]
            } else {
                pins.clone()
            };
            let out = run(&who, &s.ws, &extra, &format!("{bare}{cmd}"));
            v.check(
                &format!("{tag}: {what} is refused"),
                !stdout(&out).contains("hello") && seen(&http_hits) == h && tls.requests() == t,
                show(&out),
            );
        }

        // Other ports and UDP stay closed: the service on another port and
        // the DNS canary hear nothing (with their controls above).
        let (o, c) = (seen(&other_hits), seen(&canary_hits));
        let py = format!(
            "import socket\n\
             try:\n    socket.create_connection(('{HOST}',{other_port}),3); print('tcp open')\n\
             except OSError as e: print('tcp', e.errno)\n\
             u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(('{HOST}',53)); u.send(b'x')\n\
             u.settimeout(2)\n\
             try: u.recv(10); print('udp open')\n\
             except OSError as e: print('udp', e.errno)"
        );
        let out = run(&who, &s.ws, &pins, &format!("python3 -c \"{py}\""));
        let text = stdout(&out);
        v.check(
            &format!("{tag}: TCP to another port is refused (ECONNREFUSED)"),
            text.contains("tcp 111") && seen(&other_hits) == o,
            show(&out),
        );
        v.check(
            &format!("{tag}: UDP to the DNS canary goes nowhere"),
            !text.contains("udp open") && seen(&canary_hits) == c,
            show(&out),
        );
        let out = run(
            &who,
            &s.ws,
            &pins,
            "getent hosts nope.test; getent hosts evil.pkg.test; true",
        );
        v.check(
            &format!("{tag}: lookups of refused names reach no name server"),
            seen(&canary_hits) == c,
            show(&out),
        );
    }
    v.finish();
}

/// A name server that logs the names it is asked about and refuses them
/// all (so lookups fail at once).
fn logging_dns(socket: UdpSocket) -> Arc<std::sync::Mutex<Vec<String>>> {
    let names = Arc::new(std::sync::Mutex::new(Vec::new()));
    let n = names.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let q = &buf[..len];
            let mut at = 12;
            let mut labels = Vec::new();
            while let Some(&l) = q.get(at) {
                if l == 0 || l > 63 {
                    break;
                }
                labels.push(
                    String::from_utf8_lossy(q.get(at + 1..at + 1 + l as usize).unwrap_or_default())
                        .into_owned(),
                );
                at += 1 + l as usize;
            }
            n.lock().unwrap().push(labels.join("."));
            if len >= 12 {
                let mut r = q.to_vec();
                r[2] |= 0x80;
                r[3] = (r[3] & 0xf0) | 5;
                let _ = socket.send_to(&r, from);
            }
        }
    });
    names
}

/// The proxy never resolves a denied or unlisted name: with moat's own
/// resolver pointed at a canary name server, only the allowed name is
/// ever asked about (the positive control), however the sandbox asks.
#[test]
fn denied_names_never_reach_a_name_server() {
    if !is_root() {
        eprintln!("skipped: pointing moat's resolver at a canary needs a mount namespace (root)");
        return;
    }
    let canary = UdpSocket::bind("127.0.0.78:53").unwrap();
    let asked = logging_dns(canary);
    let root = identities().remove(0);
    let s = Scratch::new(&root, "dns-canary");
    let conf = s.write(
        "resolv.conf",
        "nameserver 127.0.0.78\noptions timeout:1 attempts:1\n",
    );
    let script = "for n in canary.test evil.canary.test unlisted.test; do \
                  getent hosts $n; curl -s -m 5 http://$n/; \
                  curl -s -m 5 --noproxy '*' http://$n/; \
                  curl -s -m 5 -x socks5h://127.0.0.1:1080 http://$n/; done; true";
    let out = output(
        Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
            ])
            .arg(&conf)
            .arg(moat())
            .args(["run", "--tier", "unelevated", "--network", "allow"])
            .args([
                "--allow-domain",
                "*.canary.test",
                "--allow-domain",
                "canary.test",
            ])
            .args([
                "--deny-domain",
                "evil.canary.test",
                "--",
                "sh",
                "-c",
                script,
            ])
            .current_dir(&s.ws),
    );
    std::thread::sleep(Duration::from_millis(200));
    let names = asked.lock().unwrap().clone();
    let mut v = Verdicts::default();
    v.check(
        "control: the allowed name was looked up at the canary",
        names.iter().any(|n| n == "canary.test"),
        format!("{names:?}\n{}", show(&out)),
    );
    v.check(
        "the denied and the unlisted names never were",
        !names
            .iter()
            .any(|n| n.contains("evil") || n.contains("unlisted")),
        format!("{names:?}"),
    );
    v.finish();
}

const MAKE_WHEEL: &str = r#"
import base64, hashlib, zipfile
files = {
    "demo/__init__.py": b"VALUE = 1\n",
    "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: moat-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def digest(b):
    return base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
record = "".join("%s,sha256=%s,%d\n" % (n, digest(b), len(b)) for n, b in files.items())
record += "demo-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile("files_demo-1.0-py3-none-any.whl", "w") as z:
    for n, b in files.items():
        z.writestr(n, b)
    z.writestr("demo-1.0.dist-info/RECORD", record)
open("simple_demo", "w").write('<a href="/files/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>')
"#;

/// Real tools through the proxy (with the variables moat sets): git over
/// HTTPS from a smart-HTTP server and pip from a package index over
/// HTTPS, certificates checked; a name off the list refused.
#[test]
fn git_and_pip_fetch_through_the_proxy() {
    const HOST2: &str = "127.0.0.79";
    if TcpListener::bind((HOST2, 443)).is_err() {
        eprintln!("skipped: the test servers need port 443; run as root");
        return;
    }
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "tools");
        let src = s.mkdir("src");
        let made = output(
            command_as(&who, "sh")
                .arg("-c")
                .arg(
                    "git init -q -b main . && echo served > file && git add file && \
                     git -c user.name=t -c user.email=t@example.invalid commit -qm one && \
                     git clone -q --bare . ../repos/demo.git",
                )
                .current_dir(&src),
        );
        assert!(made.status.success(), "{}", show(&made));
        let index = s.mkdir("index");
        let made = output(
            command_as(&who, "python3")
                .args(["-c", MAKE_WHEEL])
                .current_dir(&index),
        );
        assert!(made.status.success(), "{}", show(&made));
        let tls = Tls::start(&s.base, HOST2);
        if who.switch {
            chown_r(&s.base, &who);
        }
        let ca = s.base.join("ca.pem");
        let ca = ca.to_str().unwrap();
        let allow = [
            "--allow-domain".to_string(),
            "git.test".into(),
            "--allow-domain".into(),
            "pypi.test".into(),
            "--resolve".into(),
            format!("git.test:{HOST2}"),
            "--resolve".into(),
            format!("pypi.test:{HOST2}"),
            "--resolve".into(),
            format!("other.test:{HOST2}"),
            "--allow-cidr".into(),
            format!("{HOST2}/32"),
        ];
        let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
        let tag = &who.name;

        // Control, outside the sandbox: the repository is served.
        let out = output(
            Command::new("git")
                .env("GIT_SSL_CAINFO", ca)
                .args(["-c", &format!("http.curloptResolve=git.test:443:{HOST2}")])
                .args(["ls-remote", "https://git.test/git/demo.git"])
                .env_remove("https_proxy")
                .env_remove("HTTPS_PROXY"),
        );
        v.check(
            "control: git ls-remote outside the sandbox",
            stdout(&out).contains("refs/heads/main"),
            show(&out),
        );

        let out = run(
            &who,
            &s.ws,
            &allow,
            &format!(
                "GIT_SSL_CAINFO={ca} git clone -q https://git.test/git/demo.git demo && \
                 cat demo/file"
            ),
        );
        v.check(
            &format!("{tag}: git clone over HTTPS through the proxy"),
            stdout(&out) == "served\n",
            show(&out),
        );
        let out = run(
            &who,
            &s.ws,
            &allow,
            &format!(
                "export PIP_CERT={ca} REQUESTS_CA_BUNDLE={ca}; \
                 python3 -m pip download -q --no-deps --disable-pip-version-check \
                 --index-url https://pypi.test/simple/ -d wheels demo && ls wheels"
            ),
        );
        v.check(
            &format!("{tag}: pip download from an index over HTTPS through the proxy"),
            stdout(&out).contains("demo-1.0-py3-none-any.whl"),
            show(&out),
        );
        let before = tls.requests();
        let out = run(
            &who,
            &s.ws,
            &allow,
            &format!("GIT_SSL_CAINFO={ca} git clone -q https://other.test/git/demo.git o"),
        );
        v.check(
            &format!("{tag}: git clone from a name off the list is refused"),
            !out.status.success() && tls.requests() == before,
            show(&out),
        );
    }
    v.finish();
}

/// The proxy lives in moat: when moat is killed mid-run, the sandbox goes
/// with it, and with it every way out (fail closed). The server stops
/// hearing from a loop that was reaching it, and nothing of the run is
/// left.
#[test]
fn killing_moat_mid_run_ends_the_network() {
    let Ok(l) = TcpListener::bind(("127.0.0.80", 80)) else {
        eprintln!("skipped: the test server needs port 80; run as root");
        return;
    };
    let hits = counting_http(l);
    let who = user();
    let s = Scratch::new(&who, "kill-proxy");
    let marker = format!("moat-proxy-kill-{}", std::process::id());
    let mut child = command_as(&who, moat())
        .args(["run", "--tier", "unelevated", "--network", "allow"])
        .args([
            "--allow-domain",
            "pkg.test",
            "--resolve",
            "pkg.test:127.0.0.80",
        ])
        .args(["--allow-cidr", "127.0.0.80/32", "--", "sh", "-c"])
        .arg(format!(
            "while :; do curl -s -m 2 http://pkg.test/ >/dev/null; sleep 0.05; done # {marker}"
        ))
        .current_dir(&s.ws)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut v = Verdicts::default();
    let reached = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        hits.load(Ordering::SeqCst) >= 2
    });
    v.check(
        "control: the loop reaches the server through the proxy",
        reached,
        "",
    );
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(500));
    let after_kill = hits.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1500));
    v.check(
        "after kill -9 of moat the server hears nothing more",
        hits.load(Ordering::SeqCst) == after_kill,
        format!("{} more requests", hits.load(Ordering::SeqCst) - after_kill),
    );
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&marker))
                .unwrap_or(false)
        })
        .count();
    v.check(
        "nothing of the run is left",
        left == 0,
        format!("{left} processes"),
    );
    v.finish();
}
