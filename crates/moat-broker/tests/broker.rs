//! End-to-end tests on loopback with real TLS on both sides: a client
//! (rustls, or curl), a listener playing moat's proxy that hands each
//! connection to `Broker::serve`, and a test upstream with its own CA that
//! wants `Authorization: Bearer REAL` (or Basic with password REAL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use moat_broker::{
    Broker, Outcome, Refusal, RequestRule, RuleRefusal, Secret, UpstreamRoots, Verdict,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};

const HOST: &str = "api.example";
const REAL: &str = "ghp_R3alT0kenValue0123456789abcdefABCD";
const OTHER_REAL: &str = "npm_Z9otherSecretValue0123456789xyzXYZ";

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA (not moat's): signs the upstream's certificate.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        // In cargo's directory for tests' files, not /tmp.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("moat-broker-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Tests run in parallel: each file gets its own name.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = dir.join(format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    fn server_config(&self, host: &str) -> Arc<ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap(),
        )
    }
}

/// What the test upstream received: each request's head and body, and
/// the bytes that followed the first request.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>, usize)>>>;

/// An HTTPS server on loopback: 200 "ok" with the real token, else 401.
fn upstream(ca: &TestCa) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ca.server_config(HOST);
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            let config = Arc::clone(&config);
            let log = Arc::clone(&log);
            thread::spawn(move || {
                sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = ServerConnection::new(config).unwrap();
                let mut tls = StreamOwned::new(conn, sock);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return, // handshake only, or nothing: no request
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = buf[head_end..(head_end + length).min(buf.len())].to_vec();
                let authorized = head.lines().any(|l| {
                    let lower = l.to_ascii_lowercase();
                    if lower.starts_with("authorization: bearer ") {
                        l[22..].trim() == REAL
                    } else if lower.starts_with("authorization: basic ") {
                        let creds = STANDARD.decode(l[21..].trim()).unwrap_or_default();
                        let creds = String::from_utf8_lossy(&creds).into_owned();
                        creds
                            .split_once(':')
                            .is_some_and(|(_, password)| password == REAL)
                    } else {
                        false
                    }
                });
                let response: &[u8] = if authorized {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\nConnection: close\r\n\r\nwho?\r\n"
                };
                let _ = tls.write_all(response);
                tls.conn.send_close_notify();
                let _ = tls.flush();
                // Count what arrives after the request (a pipelined one?).
                let mut extra = buf.len() - (head_end + length).min(buf.len());
                loop {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => extra += n,
                    }
                }
                log.lock().unwrap().push((head, body, extra));
            });
        }
    });
    (addr, seen)
}

/// moat's proxy, as far as the broker is concerned: reads the ClientHello,
/// connects to the upstream and hands both to `serve`.
fn proxy(broker: Arc<Broker>, upstream: SocketAddr) -> (SocketAddr, Receiver<Outcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let broker = Arc::clone(&broker);
            let tx = tx.clone();
            thread::spawn(move || {
                let early = read_client_hello(&mut client);
                let up = TcpStream::connect(upstream).unwrap();
                let outcome = broker.serve(client, &early, HOST, addr.port(), up);
                let _ = tx.send(outcome);
            });
        }
    });
    (addr, rx)
}

/// One TLS record (the ClientHello), as moat's proxy reads it for the SNI.
fn read_client_hello(sock: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 5];
    sock.read_exact(&mut header).unwrap();
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut record = vec![0u8; 5 + len];
    record[..5].copy_from_slice(&header);
    sock.read_exact(&mut record[5..]).unwrap();
    record
}

fn client_config(ca_pem: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Sends `request` over TLS (trusting `ca_pem`, for `name`) and returns
/// the whole response, or the TLS error.
fn send(addr: SocketAddr, ca_pem: &str, name: &str, request: &[u8]) -> Result<String, String> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let conn = ClientConnection::new(
        client_config(ca_pem),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(request).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn get(auth: &str) -> Vec<u8> {
    format!("GET /user?x=1 HTTP/1.1\r\nHost: {HOST}\r\n{auth}Connection: keep-alive\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\n\r\n").into_bytes()
}

struct Setup {
    broker: Arc<Broker>,
    proxy: SocketAddr,
    outcomes: Receiver<Outcome>,
    seen: Seen,
}

impl Setup {
    fn new(rules: Vec<RequestRule>) -> Setup {
        let ca = TestCa::new("test upstream CA");
        Setup::with(
            rules,
            &ca,
            UpstreamRoots::only(vec![ca.file("upstream-ca.pem")]),
        )
    }

    fn with(rules: Vec<RequestRule>, ca: &TestCa, roots: UpstreamRoots) -> Setup {
        let secrets = vec![
            Secret::new("GITHUB_TOKEN", REAL, vec![HOST.into()]),
            Secret::new("NPM_TOKEN", OTHER_REAL, vec!["registry.example".into()]),
        ];
        let broker = Arc::new(Broker::new(secrets, rules, roots).unwrap());
        let (up, seen) = upstream(ca);
        let (proxy, outcomes) = proxy(Arc::clone(&broker), up);
        Setup {
            broker,
            proxy,
            outcomes,
            seen,
        }
    }

    fn placeholder(&self, env: &str) -> String {
        self.broker
            .placeholders()
            .into_iter()
            .find(|(e, _)| e == env)
            .unwrap()
            .1
    }

    fn send(&self, request: &[u8]) -> String {
        send(self.proxy, &self.broker.cert_pem(), HOST, request).unwrap()
    }

    fn outcome(&self) -> Outcome {
        self.outcomes.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn seen(&self) -> Vec<(String, Vec<u8>, usize)> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn placeholder_becomes_the_real_token_upstream() {
    let s = Setup::new(vec![]);
    let ph = s.placeholder("GITHUB_TOKEN");
    assert_ne!(ph, REAL);
    let response = s.send(&get(&format!("Authorization: Bearer {ph}\r\n")));
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("ok"));
    let out = s.outcome();
    assert_eq!(out.verdict, Verdict::Forwarded);
    assert_eq!(out.injected, vec!["GITHUB_TOKEN".to_string()]);
    assert_eq!(
        (out.method.as_deref(), out.path.as_deref()),
        (Some("GET"), Some("/user"))
    );
    assert!(out.bytes_up > 0 && out.bytes_down as usize == response.len());
    assert!(!format!("{out:?}").contains(REAL));
    // The forwarded head: one request, nothing hop-by-hop.
    thread::sleep(Duration::from_millis(100));
    let seen = s.seen();
    assert_eq!(seen.len(), 1);
    let head = &seen[0].0;
    assert!(head.contains("Connection: close\r\n"), "{head}");
    for gone in ["keep-alive", "Keep-Alive:", "Upgrade"] {
        assert!(!head.contains(gone), "{head}");
    }
}

#[test]
fn without_the_placeholder_upstream_refuses() {
    let s = Setup::new(vec![]);
    let response = s.send(&get(
        "Authorization: Bearer ghp_somethingElse0123456789\r\n",
    ));
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let out = s.outcome();
    assert_eq!(out.verdict, Verdict::Forwarded);
    assert!(out.injected.is_empty());
}

#[test]
fn placeholder_of_a_secret_bound_elsewhere_is_refused_and_not_sent() {
    let s = Setup::new(vec![]);
    let npm = s.placeholder("NPM_TOKEN");
    for request in [
        get(&format!("Authorization: Bearer {npm}\r\n")),
        format!("GET /?token={npm} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes(),
        get(&format!(
            "Authorization: Basic {}\r\n",
            STANDARD.encode(format!("u:{npm}"))
        )),
    ] {
        let response = s.send(&request);
        assert!(response.starts_with("HTTP/1.1 403 Forbidden"), "{response}");
        assert!(
            response.contains("the placeholder of NPM_TOKEN was sent to api.example"),
            "{response}"
        );
        let out = s.outcome();
        match &out.verdict {
            Verdict::Refused(Refusal::StrayPlaceholder { env, bound_to, .. }) => {
                assert_eq!(env, "NPM_TOKEN");
                assert_eq!(bound_to, &vec!["registry.example".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.bytes_up, 0);
    }
    thread::sleep(Duration::from_millis(200));
    assert!(s.seen().is_empty(), "the upstream saw a request");
}

#[test]
fn basic_credentials_get_the_real_password() {
    let s = Setup::new(vec![]);
    let ph = s.placeholder("GITHUB_TOKEN");
    let creds = STANDARD.encode(format!("x-access-token:{ph}"));
    let response = s.send(&get(&format!("Authorization: Basic {creds}\r\n")));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(s.outcome().injected, vec!["GITHUB_TOKEN".to_string()]);
}

fn get_only() -> Vec<RequestRule> {
    vec![RequestRule {
        host: HOST.into(),
        methods: vec!["GET".into()],
        paths: vec!["/repos/o/r/".into()],
    }]
}

#[test]
fn a_get_only_rule_refuses_post_and_allows_get() {
    let s = Setup::new(get_only());
    let ph = s.placeholder("GITHUB_TOKEN");
    let post = format!("POST /repos/o/r/issues HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ph}\r\nContent-Length: 2\r\n\r\n{{}}");
    let response = s.send(post.as_bytes());
    assert!(response.starts_with("HTTP/1.1 403 Forbidden"), "{response}");
    assert!(
        response.contains("moat: POST /repos/o/r/issues on api.example is not allowed: only GET under /repos/o/r/ (request rule for api.example)"),
        "{response}"
    );
    assert!(matches!(
        s.outcome().verdict,
        Verdict::Refused(Refusal::Rule(RuleRefusal::NotAllowed { .. }))
    ));

    let get = format!(
        "GET /repos/o/r/pulls HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ph}\r\n\r\n"
    );
    let response = s.send(get.as_bytes());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(s.outcome().verdict, Verdict::Forwarded);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(s.seen().len(), 1, "only the GET reached the upstream");
}

#[test]
fn dot_dot_paths_are_refused_under_rules() {
    let s = Setup::new(get_only());
    for path in [
        "/repos/o/r/../../x/y",
        "/repos/o/r/%2e%2e/%2E%2E/x",
        "/repos/o/r/..%2fx",
    ] {
        let response = s.send(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
        assert!(response.starts_with("HTTP/1.1 403"), "{path}: {response}");
        assert!(matches!(
            s.outcome().verdict,
            Verdict::Refused(Refusal::Rule(RuleRefusal::AmbiguousPath { .. }))
        ));
    }
    thread::sleep(Duration::from_millis(100));
    assert!(s.seen().is_empty());
}

#[test]
fn another_host_in_the_host_header_is_refused() {
    let s = Setup::new(vec![]);
    let ph = s.placeholder("GITHUB_TOKEN");
    let response = s.send(
        format!("GET / HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {ph}\r\n\r\n")
            .as_bytes(),
    );
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(matches!(
        s.outcome().verdict,
        Verdict::Refused(Refusal::HostMismatch { .. })
    ));
    let response = s.send(
        format!("GET https://evil.example/ HTTP/1.1\r\nAuthorization: Bearer {ph}\r\n\r\n")
            .as_bytes(),
    );
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(matches!(
        s.outcome().verdict,
        Verdict::Refused(Refusal::HostMismatch { .. })
    ));
}

#[test]
fn the_body_is_relayed_and_a_pipelined_request_dropped() {
    let s = Setup::new(vec![]);
    let ph = s.placeholder("GITHUB_TOKEN");
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {ph}\r\nContent-Length: 11\r\n\r\nhello world\
         GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    );
    let response = s.send(request.as_bytes());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    s.outcome();
    thread::sleep(Duration::from_millis(100));
    let seen = s.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, b"hello world");
    assert_eq!(seen[0].2, 0, "bytes after the body reached the upstream");
}

#[test]
fn an_untrusted_upstream_gets_502_and_its_ca_as_extra_root_fixes_it() {
    let trusted = TestCa::new("trusted CA");
    let other = TestCa::new("other CA");
    let s = Setup::with(
        vec![],
        &other,
        UpstreamRoots::only(vec![trusted.file("trusted.pem")]),
    );
    let ph = s.placeholder("GITHUB_TOKEN");
    let response = s.send(&get(&format!("Authorization: Bearer {ph}\r\n")));
    assert!(
        response.starts_with("HTTP/1.1 502 Bad Gateway"),
        "{response}"
    );
    assert!(
        response.contains("moat: the certificate of api.example is not trusted: "),
        "{response}"
    );
    assert!(
        response.contains("add its CA with --upstream-ca FILE"),
        "{response}"
    );
    assert!(matches!(
        s.outcome().verdict,
        Verdict::UpstreamUntrusted { .. }
    ));
    assert!(s.seen().is_empty());

    let roots =
        UpstreamRoots::only(vec![trusted.file("trusted.pem")]).with_extra(other.file("other.pem"));
    let s = Setup::with(vec![], &other, roots);
    let ph = s.placeholder("GITHUB_TOKEN");
    let response = s.send(&get(&format!("Authorization: Bearer {ph}\r\n")));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn the_leaf_is_for_the_host_and_chains_to_the_broker_ca() {
    let s = Setup::new(vec![]);
    // A client that checks the name against another host refuses it.
    let err = send(s.proxy, &s.broker.cert_pem(), "other.example", &get("")).unwrap_err();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    assert!(matches!(s.outcome().verdict, Verdict::Failed { .. }));
    // A client trusting some other CA refuses it too.
    let stranger = TestCa::new("stranger");
    assert!(send(s.proxy, &stranger.pem, HOST, &get("")).is_err());
    s.outcome();
    // And for the host, with moat's CA, it verifies (the rustls client checks).
    assert!(s.send(&get("")).starts_with("HTTP/1.1 401"));
    assert!(s.broker.terminates("API.example") && !s.broker.terminates("evil.example"));
}

#[test]
fn debug_output_never_shows_values() {
    let s = Setup::new(get_only());
    let shown = format!(
        "{:?} {:#?}",
        s.broker,
        Secret::new("GITHUB_TOKEN", REAL, vec![HOST.into()])
    );
    assert!(
        !shown.contains(REAL) && !shown.contains(OTHER_REAL),
        "{shown}"
    );
    assert!(shown.contains("GITHUB_TOKEN"));
}

#[test]
fn curl_gets_200_through_the_broker() {
    let curl = "/usr/bin/curl";
    if !std::path::Path::new(curl).exists() {
        println!("skipped: {curl} is not installed");
        return;
    }
    let s = Setup::new(vec![]);
    let ph = s.placeholder("GITHUB_TOKEN");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moat-broker-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("moat-ca.pem");
    std::fs::write(&ca, s.broker.cert_pem()).unwrap();
    let port = s.proxy.port();
    let url = format!("https://{HOST}:{port}/user");
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let run = |extra: &[&str]| {
        let output = Command::new(curl)
            .args([
                "--silent",
                "--show-error",
                "--max-time",
                "20",
                "--noproxy",
                "*",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["--resolve", &resolve, "--write-out", "\n%{http_code}"])
            .args(extra)
            .arg(&url)
            .env_remove("SSL_CERT_FILE")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (stdout, stderr)
    };
    let (out, err) = run(&["--header", &format!("Authorization: Bearer {ph}")]);
    assert_eq!(out, "ok\n200", "curl: {err}");
    assert_eq!(s.outcome().injected, vec!["GITHUB_TOKEN".to_string()]);
    // As git sends it: Basic credentials.
    let (out, err) = run(&["--user", &format!("x-access-token:{ph}")]);
    assert_eq!(out, "ok\n200", "curl: {err}");
    s.outcome();
    // Control: without the placeholder.
    let (out, err) = run(&[]);
    assert_eq!(out, "who?\r\n\n401", "curl: {err}");
}

#[test]
fn a_silent_client_times_out() {
    let ca = TestCa::new("test upstream CA");
    let roots = UpstreamRoots::only(vec![ca.file("silent.pem")]);
    let secrets = vec![Secret::new("GITHUB_TOKEN", REAL, vec![HOST.into()])];
    let limits = moat_broker::Limits {
        handshake: Duration::from_millis(300),
        idle: Duration::from_secs(1),
    };
    let broker = Arc::new(
        Broker::new(secrets, vec![], roots)
            .unwrap()
            .with_limits(limits),
    );
    let (up, seen) = upstream(&ca);
    let (addr, outcomes) = proxy(Arc::clone(&broker), up);

    // Finishes its handshake, then never finishes the head.
    let sock = TcpStream::connect(addr).unwrap();
    let conn = ClientConnection::new(
        client_config(&broker.cert_pem()),
        ServerName::try_from(HOST).unwrap(),
    )
    .unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let out = outcomes.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        out.verdict,
        Verdict::Failed {
            reason: "reading the request: timed out".into()
        }
    );

    // Never finishes its hello.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0])
        .unwrap();
    let out = outcomes.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(matches!(out.verdict, Verdict::Failed { .. }), "{out:?}");
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn bad_secrets_are_named() {
    let ca = TestCa::new("test upstream CA");
    let roots = || UpstreamRoots::only(vec![ca.file("errors.pem")]);
    let new = |secrets: Vec<Secret>| {
        Broker::new(secrets, vec![], roots())
            .unwrap_err()
            .to_string()
    };
    let host = || vec![HOST.to_string()];
    assert!(
        new(vec![Secret::new("SHORT", "abc123", host())]).contains("secret SHORT: value too short")
    );
    assert!(new(vec![Secret::new(
        "CRLF",
        "ghp_abcdefgh1234\r\nX: y",
        host()
    )])
    .contains("line break"));
    assert!(new(vec![Secret::new("NOWHERE", REAL, vec![])]).contains("NOWHERE is bound to no host"));
    assert!(new(vec![Secret::new("1BAD", REAL, host())])
        .contains("not a valid environment variable name"));
    assert!(new(vec![
        Secret::new("A", REAL, host()),
        Secret::new("A", OTHER_REAL, host())
    ])
    .contains("given twice"));
    assert!(new(vec![Secret::new("W", REAL, vec!["*.example".into()])])
        .contains("not a valid host name"));
    assert!(new(vec![]).contains("nothing to broker"));
    // No message shows a value.
    let message = new(vec![Secret::new(
        "CRLF",
        "ghp_abcdefgh1234\r\nX: y",
        host(),
    )]);
    assert!(!message.contains("abcdefgh"), "{message}");
    // Rules alone are enough to terminate a host.
    let rules = vec![RequestRule {
        host: "ruled.example".into(),
        methods: vec!["GET".into()],
        paths: vec![],
    }];
    let b = Broker::new(vec![], rules, roots()).unwrap();
    assert!(b.terminates("ruled.example") && b.placeholders().is_empty());
}
