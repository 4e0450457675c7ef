//! The proxy on real loopback sockets: a server on 127.0.0.1 stands for
//! the internet (reached through `--allow-cidr 127.0.0.1/32` and pinned
//! names), and the server's own count of connections is the proof of what
//! got through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moat_policy::domains::{pattern, Cidr, DomainRules};

use crate::{dns, tls, Hooks, Listener, NetDecision, Proxy};

fn rules() -> DomainRules {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    DomainRules {
        allow: vec![
            pattern("pkg.test").unwrap(),
            pattern("*.wild.test").unwrap(),
        ],
        deny: vec![pattern("bad.wild.test").unwrap()],
        allow_cidr: vec![Cidr::parse("127.0.0.1/32").unwrap()],
        resolve: vec![
            ("pkg.test".to_string(), local),
            ("a.wild.test".to_string(), local),
            ("asked.test".to_string(), local),
        ],
    }
}

/// A server that answers each connection with `reply:` and the first
/// line it got, and counts its connections.
struct Upstream {
    port: u16,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (connections.clone(), heads.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = match stream {
                Ok(s) => s,
                Err(_) => continue,
            };
            count.fetch_add(1, Ordering::SeqCst);
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while !got.ends_with(b"\n") && stream.read(&mut byte).map_or(false, |n| n == 1) {
                got.push(byte[0]);
            }
            if got.starts_with(b"GET ") {
                while !got.ends_with(b"\r\n\r\n")
                    && stream.read(&mut byte).map_or(false, |n| n == 1)
                {
                    got.push(byte[0]);
                }
            }
            let text = String::from_utf8_lossy(&got).into_owned();
            let first = text.lines().next().unwrap_or_default().to_string();
            seen.lock().unwrap().push(text);
            let _ = stream.write_all(format!("reply:{}\n", first).as_bytes());
        }
    });
    Upstream {
        port,
        connections,
        heads,
    }
}

fn local_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Stops the proxy, which must not take long.
fn stop(proxy: Proxy) -> Vec<NetDecision> {
    let started = Instant::now();
    let log = proxy.stop();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    log
}

#[test]
fn the_http_proxy_tunnels_and_forwards_allowed_names_only() {
    let up = upstream();
    let (l, addr) = local_listener();
    let proxy = Proxy::start(vec![Listener::Http(l)], rules(), Hooks::default());

    let mut s = connect(addr);
    write!(s, "CONNECT pkg.test:{} HTTP/1.1\r\n\r\nhello\n", up.port).unwrap();
    let got = read_all(s);
    assert_eq!(
        got, "HTTP/1.1 200 Connection established\r\n\r\nreply:hello\n",
        "the bytes after the head go through"
    );

    let mut s = connect(addr);
    write!(
        s,
        "GET http://a.wild.test:{}/x?y HTTP/1.1\r\nHost: a.wild.test\r\nProxy-Connection: keep-alive\r\n\r\n",
        up.port
    )
    .unwrap();
    assert_eq!(read_all(s), "reply:GET /x?y HTTP/1.1\n");

    for (name, why) in [
        ("bad.wild.test", "denied by the rule bad.wild.test"),
        (
            "other.test",
            "other.test is not on the allowlist; allow it with --allow-domain other.test",
        ),
    ] {
        let mut s = connect(addr);
        write!(s, "CONNECT {}:{} HTTP/1.1\r\n\r\n", name, up.port).unwrap();
        let got = read_all(s);
        assert!(got.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{got}");
        assert!(
            got.ends_with(&format!(
                "moat: {}:{} is not allowed: {}\n",
                name, up.port, why
            )),
            "{got}"
        );
    }
    let mut s = connect(addr);
    s.write_all(b"GET /relative HTTP/1.1\r\nHost: pkg.test\r\n\r\n")
        .unwrap();
    assert!(read_all(s).starts_with("HTTP/1.1 400 Bad Request\r\n"));

    let log = stop(proxy);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2, "only the allowed");
    let heads = up.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .any(|h| h.contains("Connection: close\r\n") && !h.contains("Proxy-Connection")),
        "{heads:?}"
    );
    let seen: Vec<(&str, &str, bool)> = log
        .iter()
        .map(|d| (d.protocol, d.name.as_str(), d.allowed))
        .collect();
    for want in [
        ("http-connect", "pkg.test", true),
        ("http", "a.wild.test", true),
        ("http-connect", "bad.wild.test", false),
        ("http-connect", "other.test", false),
    ] {
        assert!(seen.contains(&want), "{want:?} in {seen:?}");
    }
    assert_eq!(log.len(), 4, "{seen:?}");
    let tunnel = log.iter().find(|d| d.name == "pkg.test").unwrap();
    assert_eq!(tunnel.rule, "allow pkg.test");
    assert_eq!((tunnel.bytes_up, tunnel.port), (6, up.port));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is closed once stopped"
    );
}

#[test]
fn socks5_asks_once_about_unlisted_names_and_reports_each_decision() {
    let up = upstream();
    let (l, addr) = local_listener();
    let asked = Arc::new(AtomicUsize::new(0));
    let told = Arc::new(Mutex::new(Vec::new()));
    let (a, t) = (asked.clone(), told.clone());
    let hooks = Hooks {
        ask: Some(Arc::new(move |name: &str, _port: u16| {
            a.fetch_add(1, Ordering::SeqCst);
            name == "asked.test"
        })),
        on_decision: Some(Arc::new(move |d: &NetDecision| {
            t.lock().unwrap().push((d.name.clone(), d.allowed));
        })),
        // A stand-in for poll(2): the loop must still accept and stop.
        readable: Some(Arc::new(|_: &TcpListener, wait: Duration| {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            true
        })),
        password: None,
        terminator: None,
    };
    let proxy = Proxy::start(vec![Listener::Socks(l)], rules(), hooks);
    let socks = |name: &str| -> (u8, String) {
        let mut s = connect(addr);
        s.write_all(&[5, 1, 0]).unwrap();
        let mut greeting = [0u8; 2];
        s.read_exact(&mut greeting).unwrap();
        assert_eq!(greeting, [5, 0]);
        let mut req = vec![5, 1, 0, 3, name.len() as u8];
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(&up.port.to_be_bytes());
        s.write_all(&req).unwrap();
        let mut reply = [0u8; 10];
        s.read_exact(&mut reply).unwrap();
        if reply[1] == 0 {
            s.write_all(b"via socks\n").unwrap();
        }
        (reply[1], read_all(s))
    };
    assert_eq!(socks("pkg.test"), (0, "reply:via socks\n".to_string()));
    assert_eq!(socks("asked.test"), (0, "reply:via socks\n".to_string()));
    assert_eq!(socks("asked.test").0, 0);
    assert_eq!(socks("refused.test"), (2, String::new()));
    assert_eq!(socks("refused.test").0, 2);
    let log = stop(proxy);
    assert_eq!(asked.load(Ordering::SeqCst), 2, "once per name");
    assert_eq!(up.connections.load(Ordering::SeqCst), 3);
    let refused = log.iter().find(|d| d.name == "refused.test").unwrap();
    assert_eq!(refused.rule, "refused.test was refused when asked");
    assert_eq!(refused.protocol, "socks5");
    let told = told.lock().unwrap().clone();
    assert_eq!(told.len(), log.len());
    assert_eq!(told.iter().filter(|(_, allowed)| *allowed).count(), 3);
}

#[test]
fn the_dns_stub_and_the_tls_port_decide_by_name() {
    let dns_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns_addr = dns_socket.local_addr().unwrap();
    let (l, tls_addr) = local_listener();
    let proxy = Proxy::start(
        vec![Listener::Tls(l), Listener::Dns(dns_socket)],
        rules(),
        Hooks::default(),
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ask = |name: &str| -> Vec<u8> {
        client.send_to(&dns::query(1, name, 1), dns_addr).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let allowed = ask("pkg.test");
    assert_eq!(allowed[3] & 0x0f, 0);
    assert_eq!(&allowed[allowed.len() - 4..], &[198, 18, 0, 1]);
    assert_eq!(ask("pkg.test"), allowed, "the same address again");
    assert_eq!(ask("other.test")[3] & 0x0f, 5, "REFUSED");

    let mut s = connect(tls_addr);
    s.write_all(&tls::client_hello(Some("other.test"))).unwrap();
    assert_eq!(read_all(s), "", "a refused TLS connection is closed");
    let s = connect(tls_addr);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(s), "");

    let log = stop(proxy);
    let seen: Vec<(&str, &str, bool)> = log
        .iter()
        .map(|d| (d.protocol, d.name.as_str(), d.allowed))
        .collect();
    assert!(seen.contains(&("dns", "pkg.test", true)), "{seen:?}");
    assert!(seen.contains(&("dns", "other.test", false)), "{seen:?}");
    assert!(seen.contains(&("tls", "other.test", false)), "{seen:?}");
    assert!(
        log.iter()
            .any(|d| d.protocol == "tls" && d.rule == "not a TLS ClientHello moat can read"),
        "{seen:?}"
    );
    assert_eq!(
        log.iter().filter(|d| d.name == "pkg.test").count(),
        1,
        "an answer is recorded once"
    );
}

#[test]
fn a_proxy_with_a_password_serves_only_who_gives_it() {
    let up = upstream();
    let (l, addr) = local_listener();
    let (socks, socks_addr) = local_listener();
    let hooks = Hooks {
        password: Some("s3cr3t".to_string()),
        ..Hooks::default()
    };
    let proxy = Proxy::start(
        vec![Listener::Http(l), Listener::Socks(socks)],
        rules(),
        hooks,
    );
    let connect_with = |auth: Option<&str>| -> String {
        let mut s = connect(addr);
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {}\r\n", a))
            .unwrap_or_default();
        write!(
            s,
            "CONNECT pkg.test:{} HTTP/1.1\r\n{}\r\nhello\n",
            up.port, auth
        )
        .unwrap();
        read_all(s)
    };
    // "moat:s3cr3t", as curl sends it for http://moat:s3cr3t@127.0.0.1:PORT.
    let right = "Basic bW9hdDpzM2NyM3Q=";
    assert_eq!(
        connect_with(Some(right)),
        "HTTP/1.1 200 Connection established\r\n\r\nreply:hello\n"
    );
    assert!(connect_with(Some("basic   bW9hdDpzM2NyM3Q=")).ends_with("reply:hello\n"));
    for wrong in [
        None,
        Some("Basic bW9hdDpzM2NyM3U="),
        Some("Basic bW9hdDpzM2NyM3Q"),
        Some("Bearer bW9hdDpzM2NyM3Q="),
        Some("Basic bW9hdDpzM2NyM3Q= extra"),
    ] {
        let got = connect_with(wrong);
        assert!(
            got.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n")
                && got.contains("\r\nProxy-Authenticate: Basic realm=\"moat\"\r\n"),
            "{wrong:?}: {got}"
        );
    }
    // A plain request is checked the same way.
    let mut s = connect(addr);
    write!(
        s,
        "GET http://pkg.test:{}/ HTTP/1.1\r\nHost: pkg.test\r\n\r\n",
        up.port
    )
    .unwrap();
    assert!(read_all(s).starts_with("HTTP/1.1 407 "));
    let mut s = connect(addr);
    write!(
        s,
        "GET http://pkg.test:{}/ HTTP/1.1\r\nHost: pkg.test\r\nProxy-Authorization: {}\r\n\r\n",
        up.port, right
    )
    .unwrap();
    assert_eq!(read_all(s), "reply:GET / HTTP/1.1\n");
    // SOCKS5 without authentication is refused.
    let mut s = connect(socks_addr);
    s.write_all(&[5, 1, 0]).unwrap();
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [5, 0xff]);

    let log = stop(proxy);
    assert_eq!(up.connections.load(Ordering::SeqCst), 3, "only with it");
    let refused: Vec<&NetDecision> = log.iter().filter(|d| !d.allowed).collect();
    assert_eq!(refused.len(), 6, "{log:?}");
    assert!(refused
        .iter()
        .all(|d| d.rule == "no proxy password, or a wrong one" && d.name == "pkg.test"));
    let heads = up.heads.lock().unwrap().clone();
    assert!(
        heads.iter().any(|h| h.starts_with("GET / HTTP/1.1\r\n"))
            && !heads.iter().any(|h| h.contains("bW9hdD")),
        "the password never goes upstream: {heads:?}"
    );
}
