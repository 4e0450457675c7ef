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

/// A TLS server (Python's) on HOST:443 for `pkg.test`, with a certificate
/// made for this run; it appends each request's path to `log`.
struct Tls {
    child: Child,
    log: std::path::PathBuf,
}

impl Tls {
    fn start(dir: &std::path::Path) -> Tls {
        let made = output(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=pkg.test",
                    "-addext",
                    "subjectAltName=DNS:pkg.test",
                ])
                .arg("-keyout")
                .arg(dir.join("key.pem"))
                .arg("-out")
                .arg(dir.join("ca.pem")),
        );
        assert!(made.status.success(), "openssl: {}", show(&made));
        let log = dir.join("tls.log");
        let script = format!(
            r#"
import http.server, ssl
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        open({log:?}, "a").write(self.path + "\n")
        self.send_response(200); self.send_header("Content-Length", "6"); self.end_headers()
        self.wfile.write(b"hello\n")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(({HOST:?}, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain({cert:?}, {key:?})
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#,
            log = log.to_str().unwrap(),
            cert = dir.join("ca.pem").to_str().unwrap(),
            key = dir.join("key.pem").to_str().unwrap(),
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
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
        let tls = Tls::start(&s.base);
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
