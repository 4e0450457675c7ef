//! The filtering proxy of `network = allow`, served by moat itself.
//!
//! On Linux its listeners were opened inside the sandbox's network
//! namespace (which has nothing but loopback), so they are the sandbox's
//! only way out; moat accepts on them and connects out from the host's
//! network for the destinations the rules allow. On Windows moat listens
//! on its own loopback and the proxy variables send the command there; in
//! the elevated tier the firewall lets the command reach nothing else.
//!
//! HTTP (CONNECT, and plain requests with an absolute URI, one per
//! connection) and SOCKS5 (CONNECT, names resolved here, never inside). A
//! denied name is never resolved. Every decision is recorded. Bounded:
//! request heads, handshake time, idle time, and the number of
//! connections at once. Std threads and sockets only, so that it builds
//! for Windows with Rust 1.63 too.
//!
//! Transparent mode (Linux), for programs that ignore the proxy
//! variables: inside the namespace every address is local, so a
//! connection to any address on port 80 or 443 arrives at moat's
//! listeners there, which decide by the HTTP `Host` header or the TLS
//! server name ([`tls`]); the DNS stub ([`dns`]) gives allowed names
//! synthetic addresses it maps back and refuses the rest. Other ports are
//! refused by the kernel at once, and UDP goes nowhere.

use std::io::{self, Read, Write};
pub mod dns;
pub mod tls;

use std::collections::HashMap;
use std::net::{
    IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moat_policy::domains::{Decision as RuleDecision, DomainRules};

const MAX_HEAD: usize = 16 * 1024;
const HANDSHAKE: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 1024;
/// How long [`Proxy::stop`] waits for connections still open to end.
const DRAIN: Duration = Duration::from_millis(500);

/// One decision of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NetDecision {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub protocol: &'static str,
    pub name: String,
    pub port: u16,
    pub allowed: bool,
    /// The rule that decided, or why the destination was refused.
    pub rule: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// The secrets (their variables' names) a [`Terminator`] put into the
    /// request; never their values.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub injected: Vec<String>,
}

/// Asked about a name on neither list: allow it (for the rest of the run)?
pub type AskFn = dyn Fn(&str, u16) -> bool + Send + Sync;
/// Told about every decision as it is made.
pub type DecisionFn = dyn Fn(&NetDecision) + Send + Sync;

/// Waits up to the given time for a connection to accept on a listener;
/// whether one is there.
pub type ReadableFn = dyn Fn(&TcpListener, Duration) -> bool + Send + Sync;

/// What a [`Terminator`] made of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminated {
    /// Why the request was refused (the client has been answered), if it
    /// was.
    pub refused: Option<String>,
    /// What was done, for the decision's rule (`GET /path`).
    pub note: String,
    /// The secrets put into the request, by variable name.
    pub injected: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// Serves the connections to some hosts itself instead of tunnelling them:
/// moat's secret broker, which terminates their TLS to put secrets into
/// requests and to hold them to request rules.
pub trait Terminator: Send + Sync {
    /// Whether connections to `host` go to [`Terminator::serve`].
    fn terminates(&self, host: &str) -> bool;
    /// Serves one allowed connection to `host:port`: `early` is what was
    /// read of it already, `upstream` the connection to the server.
    fn serve(
        &self,
        client: TcpStream,
        early: &[u8],
        host: &str,
        port: u16,
        upstream: TcpStream,
    ) -> Terminated;
    /// Why a plain-HTTP request head must be refused (it carries a
    /// placeholder, which only a terminated TLS connection may), if so.
    fn screen(&self, head: &[u8]) -> Option<String>;
}

/// The user name of the HTTP proxy's Basic authentication, when it
/// requires a password ([`Hooks::password`]).
pub const PROXY_USER: &str = "moat";

/// What the proxy calls back into its host program, and how it guards
/// its listeners.
#[derive(Clone, Default)]
pub struct Hooks {
    pub ask: Option<Arc<AskFn>>,
    pub on_decision: Option<Arc<DecisionFn>>,
    /// How the accept loops notice [`Proxy::stop`]. With this hook they
    /// accept without blocking and wait on it for up to 100 ms at a time.
    /// Without it they block in `accept`, and [`Proxy::stop`] wakes each
    /// one with a connection to its own address, which reaches it only
    /// where the listeners are on this process's own network: moat on
    /// Linux, whose listeners are inside the sandbox's namespace, passes
    /// a `poll(2)` here.
    pub readable: Option<Arc<ReadableFn>>,
    /// A password the proxy's listeners require, where programs other
    /// than the command can reach them (moat on Windows listens on the
    /// machine's own loopback): the HTTP proxy wants it as
    /// `Proxy-Authorization: Basic` for the user [`PROXY_USER`] (which
    /// clients send for `http://moat:PASSWORD@host:port` proxy URLs) and
    /// answers `407` without it; SOCKS5, which moat then does not offer
    /// authentication for, refuses every client. The transparent ports
    /// and the DNS stub do not check it: they exist only inside the
    /// sandbox's namespace on Linux. `None`: no password.
    pub password: Option<String>,
    /// Serves the connections to the hosts it terminates.
    pub terminator: Option<Arc<dyn Terminator>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("ask", &self.ask.is_some())
            .field("on_decision", &self.on_decision.is_some())
            .field("readable", &self.readable.is_some())
            .field("password", &self.password.is_some())
            .field("terminator", &self.terminator.is_some())
            .finish()
    }
}

/// A listening socket and what the proxy serves on it.
#[derive(Debug)]
pub enum Listener {
    /// The HTTP proxy: `CONNECT`, and plain requests with an absolute
    /// `http://` URI.
    Http(TcpListener),
    /// SOCKS5 (`CONNECT` only).
    Socks(TcpListener),
    /// Transparent mode's port 80, decided by the `Host` header.
    Plain(TcpListener),
    /// Transparent mode's port 443, decided by the TLS server name.
    Tls(TcpListener),
    /// The DNS stub.
    Dns(UdpSocket),
}

impl NetDecision {
    /// A decision about to be made: refused until decided otherwise.
    fn pending(protocol: &'static str, name: &str, port: u16) -> NetDecision {
        NetDecision {
            time_ms: now_ms(),
            protocol,
            name: name.to_string(),
            port,
            allowed: false,
            rule: String::new(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            injected: Vec::new(),
        }
    }
}

/// The synthetic addresses the DNS stub gave out, both ways.
#[derive(Default)]
struct Synthetic {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
}

/// 198.18.0.0/15, set aside for network tests (RFC 2544): nothing real
/// lives there.
const SYNTHETIC_FIRST: u32 = 0xc612_0001;
const SYNTHETIC_COUNT: usize = (1 << 17) - 2;

struct Shared {
    rules: DomainRules,
    synthetic: Mutex<Synthetic>,
    hooks: Hooks,
    /// Answers already given, so a name is asked about once per run.
    answers: Mutex<std::collections::HashMap<String, bool>>,
    stop: AtomicBool,
    active: AtomicUsize,
    log: Mutex<Vec<NetDecision>>,
}

/// A running proxy; [`Proxy::stop`] ends it and returns its decisions.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    /// Each listener's thread, and the address that wakes it from a
    /// blocking `accept` (none when it never blocks for long).
    threads: Vec<(JoinHandle<()>, Option<SocketAddr>)>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Proxy {
    /// Serves each of `listeners` with `rules`, as its kind says.
    pub fn start(listeners: Vec<Listener>, rules: DomainRules, hooks: Hooks) -> Proxy {
        let shared = Arc::new(Shared {
            rules,
            synthetic: Mutex::new(Synthetic::default()),
            hooks,
            answers: Mutex::new(std::collections::HashMap::new()),
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let mut threads = Vec::new();
        for listener in listeners {
            let shared = shared.clone();
            let (listener, kind) = match listener {
                Listener::Http(l) => (l, Kind::Http),
                Listener::Socks(l) => (l, Kind::Socks),
                Listener::Plain(l) => (l, Kind::Plain),
                Listener::Tls(l) => (l, Kind::Tls),
                Listener::Dns(socket) => {
                    let t = std::thread::spawn(move || dns_loop(socket, shared));
                    threads.push((t, None));
                    continue;
                }
            };
            let wake = if shared.hooks.readable.is_some() {
                None
            } else {
                listener.local_addr().ok().map(wake_address)
            };
            let t = std::thread::spawn(move || accept_loop(listener, kind, shared));
            threads.push((t, wake));
        }
        Proxy { shared, threads }
    }

    /// Stops accepting; returns every decision so far.
    pub fn stop(self) -> Vec<NetDecision> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (t, wake) in self.threads {
            // A listener blocked in `accept` ends once a connection comes.
            // If none can be made, its thread is left behind rather than
            // waited for forever; it ends with the next connection.
            let woken = wake.map_or(true, |addr| {
                TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
            });
            if woken {
                let _ = t.join();
            }
        }
        // A connection records its decision when it ends, which can be just
        // after its client saw the end: those still going get a moment to,
        // so the report holds every connection that had ended.
        let deadline = Instant::now() + DRAIN;
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Socks,
    /// Captured port 80.
    Plain,
    /// Captured port 443.
    Tls,
}

/// Where to connect to reach a listener bound to `addr` (an unspecified
/// address is reached on loopback).
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(listener: TcpListener, kind: Kind, shared: Arc<Shared>) {
    let readable = shared.hooks.readable.clone();
    if listener.set_nonblocking(readable.is_some()).is_err() {
        return;
    }
    while !shared.stop.load(Ordering::SeqCst) {
        if let Some(readable) = &readable {
            if !readable(&listener, Duration::from_millis(100)) {
                continue;
            }
        }
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // The connection that wakes a blocked `accept` at the end.
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let worker = shared.clone();
        let spawned = spawn_small(move || {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(HANDSHAKE));
            match kind {
                Kind::Http => http(stream, &worker),
                Kind::Socks => socks5(stream, &worker),
                Kind::Plain | Kind::Tls => transparent(stream, kind == Kind::Tls, &worker),
            }
            worker.active.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Connection threads copy bytes and parse small heads: 128 KiB of stack
/// is plenty, and keeps a thousand tunnels cheap.
fn spawn_small<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    std::thread::Builder::new().stack_size(128 * 1024).spawn(f)
}

/// Where a request may go, or why not.
enum Verdict {
    Go(TcpStream, String),
    No(String),
}

/// Decides `host:port` and, if allowed, connects. Names on no list and
/// denied names are never resolved.
fn decide(shared: &Shared, host: &str, port: u16) -> Verdict {
    let rules = &shared.rules;
    let (addrs, rule) = if let Ok(ip) = host.trim_matches(&['[', ']'][..]).parse::<IpAddr>() {
        match rules.allow_cidr.iter().find(|c| c.contains(ip)) {
            Some(c) => (vec![SocketAddr::new(ip, port)], format!("allow_cidr {}", c)),
            None => {
                return Verdict::No(format!(
                    "{} is an address, not a name; allow it with --allow-cidr {}/{}",
                    ip,
                    ip,
                    if ip.is_ipv4() { 32 } else { 128 }
                ))
            }
        }
    } else {
        let rule = match name_rule(shared, host, port) {
            Ok(rule) => rule,
            Err(why) => return Verdict::No(why),
        };
        let addrs: Vec<SocketAddr> = match rules.pinned(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => match (host, port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => return Verdict::No(format!("{} does not resolve: {}", host, e)),
            },
        };
        let mut permitted = Vec::new();
        let mut refused = None;
        for a in addrs {
            match rules.address(a.ip()) {
                Ok(()) => permitted.push(a),
                Err(why) => refused = Some(why),
            }
        }
        if permitted.is_empty() {
            return Verdict::No(refused.unwrap_or_else(|| format!("{} has no address", host)));
        }
        (permitted, rule)
    };
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Verdict::Go(s, rule),
            Err(e) => last = Some(e),
        }
    }
    Verdict::No(format!(
        "allowed ({}), but the connection failed: {}",
        rule,
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// The rule that allows `host`, or why it is refused; never resolves.
fn name_rule(shared: &Shared, host: &str, port: u16) -> Result<String, String> {
    match shared.rules.decide(host) {
        Ok(RuleDecision::Allowed(p)) => Ok(format!("allow {}", p)),
        Ok(RuleDecision::Denied(p)) => Err(format!("denied by the rule {}", p)),
        Ok(RuleDecision::Unlisted) => match ask(shared, host, port) {
            Some(true) => Ok("allow (allowed when asked)".to_string()),
            Some(false) => Err(format!("{} was refused when asked", host)),
            None => Err(format!(
                "{} is not on the allowlist; allow it with --allow-domain {}",
                host, host
            )),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// The host program's answer for an unlisted name, once per name (the
/// lock also keeps two questions from interleaving); `None` without a
/// hook.
fn ask(shared: &Shared, host: &str, port: u16) -> Option<bool> {
    let hook = shared.hooks.ask.as_ref()?;
    let mut answers = shared.answers.lock().ok()?;
    let key = host.to_ascii_lowercase();
    if let Some(a) = answers.get(&key) {
        return Some(*a);
    }
    let a = hook(host, port);
    answers.insert(key, a);
    Some(a)
}

fn record(shared: &Shared, d: NetDecision) {
    if let Some(f) = &shared.hooks.on_decision {
        f(&d);
    }
    if let Ok(mut log) = shared.log.lock() {
        log.push(d);
    }
}

/// The terminator for connections to `host`, if it serves them.
fn terminator_for<'a>(shared: &'a Shared, host: &str) -> Option<&'a Arc<dyn Terminator>> {
    shared
        .hooks
        .terminator
        .as_ref()
        .filter(|t| t.terminates(host))
}

/// Why a plain-HTTP request (`head`, to `host`) is refused before it is
/// decided: a placeholder in it, or a host whose requests are held to
/// rules or given secrets, which happens only inside its TLS.
fn screen_plain(shared: &Shared, host: &str, head: &[u8]) -> Option<String> {
    let t = shared.hooks.terminator.as_ref()?;
    if t.terminates(host) {
        return Some(format!(
            "{host} takes only HTTPS through moat (its requests are checked inside TLS)"
        ));
    }
    t.screen(head)
}

/// Serves an allowed connection: through the terminator for its host, or
/// as a tunnel; what happened goes into `decision`.
fn serve_allowed(
    shared: &Shared,
    decision: &mut NetDecision,
    client: TcpStream,
    upstream: TcpStream,
    early: &[u8],
) {
    let t = match terminator_for(shared, &decision.name) {
        Some(t) => t,
        None => {
            let (up, down) = relay(client, upstream, early);
            decision.bytes_up = up;
            decision.bytes_down = down;
            return;
        }
    };
    let done = t.serve(client, early, &decision.name, decision.port, upstream);
    match done.refused {
        Some(why) => {
            decision.allowed = false;
            decision.rule = why;
        }
        None if !done.note.is_empty() => {
            decision.rule = format!("{}; {}", decision.rule, done.note);
        }
        None => {}
    }
    decision.injected = done.injected;
    decision.bytes_up = done.bytes_up;
    decision.bytes_down = done.bytes_down;
}

/// Copies both ways until both sides are done; bytes up and down.
fn relay(client: TcpStream, upstream: TcpStream, early: &[u8]) -> (u64, u64) {
    let _ = client.set_read_timeout(Some(IDLE));
    let _ = upstream.set_read_timeout(Some(IDLE));
    let (mut c_read, mut u_write) = match (client.try_clone(), upstream.try_clone()) {
        (Ok(c), Ok(u)) => (c, u),
        _ => return (0, 0),
    };
    let mut up = early.len() as u64;
    if u_write.write_all(early).is_err() {
        return (0, 0);
    }
    let down_thread = spawn_small(move || {
        let (mut u_read, mut c_write) = (upstream, client);
        let n = pump(&mut u_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
        n
    });
    up += pump(&mut c_read, &mut u_write);
    let _ = u_write.shutdown(Shutdown::Write);
    let down = match down_thread {
        Ok(t) => t.join().unwrap_or(0),
        Err(_) => 0,
    };
    (up, down)
}

/// Copies until end of file or an error; the bytes copied. (Larger
/// buffers and splice(2) were measured: neither moved a loopback tunnel
/// faster here, and both cost memory with many tunnels; BENCHMARKS.md.)
fn pump(from: &mut TcpStream, to: &mut TcpStream) -> u64 {
    io::copy(from, to).unwrap_or(0)
}

/// Reads a request head (up to the blank line); what came after it.
fn read_head(stream: &mut TcpStream) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn answer(stream: &mut TcpStream, status: &str, body: &str) {
    answer_with(stream, status, "", body)
}

/// [`answer`] with more header lines (each ending in CRLF).
fn answer_with(stream: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {}\r\n{}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status,
        headers,
        body.len(),
        body
    );
}

/// Standard base64 with padding (RFC 4648), for Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity((bytes.len() + 2) / 3 * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether a request carries the proxy's password (always, when it has
/// none). The comparison takes as long for every wrong password of a
/// length.
fn authorized(shared: &Shared, headers: &[(String, Vec<u8>)]) -> bool {
    let password = match &shared.hooks.password {
        Some(p) => p,
        None => return true,
    };
    let expected = base64(format!("{}:{}", PROXY_USER, password).as_bytes());
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .any(|(_, value)| {
            let value = String::from_utf8_lossy(value);
            let mut parts = value.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("basic") => {
                    token.len() == expected.len()
                        && token
                            .bytes()
                            .zip(expected.bytes())
                            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                            == 0
                }
                _ => false,
            }
        })
}

/// `host:port` of a CONNECT target or an absolute `http://` URI, and the
/// origin-form path of the latter.
fn target(method: &str, uri: &str) -> Option<(String, u16, String)> {
    let split = |authority: &str, default: u16| -> Option<(String, u16)> {
        if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => default,
            };
            return Some((host.to_string(), port));
        }
        match authority.rsplit_once(':') {
            Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
            None => Some((authority.to_string(), default)),
        }
    };
    if method == "CONNECT" {
        let (h, p) = split(uri, 443)?;
        return Some((h, p, String::new()));
    }
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority
        .rsplit_once('@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    let (h, p) = split(authority, 80)?;
    Some((h, p, path.to_string()))
}

/// A request to the HTTP proxy, as parsed from its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub host: String,
    pub port: u16,
    /// The origin-form path of a plain request (empty for CONNECT).
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Parses a proxy request head (up to and including the blank line).
/// Never panics, whatever the bytes: public for the fuzz target.
pub fn parse_http(head: &[u8]) -> Result<HttpRequest, &'static str> {
    let (method, uri, headers) = parse_head(head, "not an HTTP proxy request")?;
    let (host, port, path) = target(&method, &uri)
        .ok_or("the proxy takes CONNECT host:port or an absolute http:// URI")?;
    request(method, host, port, path, headers)
}

/// The request, refused when it names no host.
fn request(
    method: String,
    host: String,
    port: u16,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
) -> Result<HttpRequest, &'static str> {
    if host.is_empty() {
        return Err("the request names no host");
    }
    Ok(HttpRequest {
        method,
        host,
        port,
        path,
        headers,
    })
}

/// The method, target and headers of a request head.
type Head = (String, String, Vec<(String, Vec<u8>)>);

/// The most headers a request head may have.
const MAX_HEADERS: usize = 100;

fn parse_head(head: &[u8], not_http: &'static str) -> Result<Head, &'static str> {
    if head.len() > MAX_HEAD + 4 {
        return Err("request head too large");
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("the request head is incomplete"),
        Err(_) => return Err(not_http),
    }
    match (req.method, req.path) {
        (Some(m), Some(p)) => Ok((
            m.to_string(),
            p.to_string(),
            req.headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
        )),
        _ => Err(not_http),
    }
}

impl HttpRequest {
    /// The head to send upstream for a plain request: origin-form, no
    /// proxy headers, one request per connection (a second one on the same
    /// connection could name another host).
    pub fn origin_head(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("proxy-") || lower == "connection" || lower == "keep-alive" {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out
    }
}

/// A SOCKS5 request (after the greeting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocksRequest {
    pub command: u8,
    pub host: String,
    pub port: u16,
}

/// Why a SOCKS5 request is refused: the reply code to send.
pub type SocksReply = u8;

/// Parses a whole SOCKS5 request (`VER CMD RSV ATYP ADDR PORT`). Never
/// panics, whatever the bytes: public for the fuzz target.
pub fn parse_socks(bytes: &[u8]) -> Result<SocksRequest, SocksReply> {
    // 1: general failure; 8: address type not supported.
    let head = bytes.get(..4).ok_or(1u8)?;
    if head[0] != 5 {
        return Err(1);
    }
    let (host, rest) = match head[3] {
        1 => {
            let a: [u8; 4] = bytes.get(4..8).ok_or(1u8)?.try_into().map_err(|_| 1u8)?;
            (IpAddr::from(a).to_string(), &bytes[8..])
        }
        4 => {
            let a: [u8; 16] = bytes.get(4..20).ok_or(1u8)?.try_into().map_err(|_| 1u8)?;
            (IpAddr::from(a).to_string(), &bytes[20..])
        }
        3 => {
            let len = *bytes.get(4).ok_or(1u8)? as usize;
            let name = bytes.get(5..5 + len).ok_or(1u8)?;
            let name = std::str::from_utf8(name).map_err(|_| 1u8)?;
            if name.is_empty() {
                return Err(1);
            }
            (name.to_string(), &bytes[5 + len..])
        }
        _ => return Err(8),
    };
    if rest.len() != 2 {
        return Err(1);
    }
    Ok(SocksRequest {
        command: head[1],
        host,
        port: u16::from_be_bytes([rest[0], rest[1]]),
    })
}

fn http(mut client: TcpStream, shared: &Shared) {
    let started = Instant::now();
    let (head, rest) = match read_head(&mut client) {
        Ok(h) => h,
        Err(e) => {
            answer(&mut client, "400 Bad Request", &format!("moat: {}\n", e));
            return;
        }
    };
    let req = match parse_http(&head) {
        Ok(r) => r,
        Err(why) => {
            answer(&mut client, "400 Bad Request", &format!("moat: {}\n", why));
            return;
        }
    };
    let (method, host, port) = (req.method.clone(), req.host.clone(), req.port);
    let protocol = if method == "CONNECT" {
        "http-connect"
    } else {
        "http"
    };
    let mut decision = NetDecision::pending(protocol, &host, port);
    if !authorized(shared, &req.headers) {
        answer_with(
            &mut client,
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"moat\"\r\n",
            "moat: this proxy wants the password in the proxy variables moat gave the command\n",
        );
        decision.rule = "no proxy password, or a wrong one".to_string();
        decision.duration_ms = started.elapsed().as_millis() as u64;
        record(shared, decision);
        return;
    }
    if method != "CONNECT" {
        if let Some(why) = screen_plain(shared, &host, &head) {
            answer(&mut client, "403 Forbidden", &format!("moat: {}\n", why));
            decision.rule = why;
            decision.duration_ms = started.elapsed().as_millis() as u64;
            record(shared, decision);
            return;
        }
    }
    match decide(shared, &host, port) {
        Verdict::No(why) => {
            answer(
                &mut client,
                "403 Forbidden",
                &format!("moat: {}:{} is not allowed: {}\n", host, port, why),
            );
            decision.rule = why;
        }
        Verdict::Go(upstream, rule) => {
            decision.allowed = true;
            decision.rule = rule;
            if method == "CONNECT" {
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .is_err()
                {
                    return;
                }
                serve_allowed(shared, &mut decision, client, upstream, &rest);
            } else {
                let mut out = req.origin_head();
                out.extend_from_slice(&rest);
                let (up, down) = relay(client, upstream, &out);
                decision.bytes_up = up;
                decision.bytes_down = down;
            }
        }
    }
    decision.duration_ms = started.elapsed().as_millis() as u64;
    record(shared, decision);
}

fn socks5(mut client: TcpStream, shared: &Shared) {
    let started = Instant::now();
    let mut greet = [0u8; 2];
    if client.read_exact(&mut greet).is_err() || greet[0] != 5 {
        return;
    }
    let mut methods = vec![0u8; greet[1] as usize];
    if client.read_exact(&mut methods).is_err() {
        return;
    }
    // No authentication is all moat offers, so a proxy with a password
    // accepts no SOCKS5 client.
    if !methods.contains(&0) || shared.hooks.password.is_some() {
        let _ = client.write_all(&[5, 0xff]);
        return;
    }
    if client.write_all(&[5, 0]).is_err() {
        return;
    }
    let reply = |client: &mut TcpStream, code: u8| {
        let _ = client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
    };
    // The request, read to its end by its own length fields.
    let mut bytes = vec![0u8; 4];
    if client.read_exact(&mut bytes).is_err() {
        return;
    }
    let addr_len = match bytes[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            if client.read_exact(&mut len).is_err() {
                return;
            }
            bytes.push(len[0]);
            len[0] as usize
        }
        _ => 0,
    };
    let mut tail = vec![0u8; addr_len + 2];
    if bytes[3] == 1 || bytes[3] == 3 || bytes[3] == 4 {
        if client.read_exact(&mut tail).is_err() {
            return;
        }
        bytes.extend_from_slice(&tail);
    }
    let req = match parse_socks(&bytes) {
        Ok(r) => r,
        Err(code) => {
            reply(&mut client, code);
            return;
        }
    };
    let (host, port) = (req.host, req.port);
    if req.command != 1 {
        // Only CONNECT: no BIND, no UDP ASSOCIATE.
        reply(&mut client, 7);
        return;
    }
    let mut decision = NetDecision::pending("socks5", &host, port);
    match decide(shared, &host, port) {
        Verdict::No(why) => {
            // "Connection not allowed by ruleset".
            reply(&mut client, 2);
            decision.rule = why;
        }
        Verdict::Go(upstream, rule) => {
            reply(&mut client, 0);
            decision.allowed = true;
            decision.rule = rule;
            serve_allowed(shared, &mut decision, client, upstream, &[]);
        }
    }
    decision.duration_ms = started.elapsed().as_millis() as u64;
    record(shared, decision);
}

/// Parses a request head a program sent straight to a server (origin
/// form, `Host` header), as transparent mode sees it. Never panics,
/// whatever the bytes: public for the fuzz target.
pub fn parse_origin(head: &[u8]) -> Result<HttpRequest, &'static str> {
    let (method, path, headers) = parse_head(head, "not an HTTP request")?;
    if !path.starts_with('/') {
        return Err("not an origin-form HTTP request");
    }
    let host = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
        .ok_or("the request has no Host header")?;
    let (host, port, _) = target("GET", &format!("http://{}/", host.trim()))
        .ok_or("the Host header is not a host")?;
    request(method, host, port, path, headers)
}

impl Shared {
    /// The synthetic address of allowed `name`, made on first use.
    fn address_for(&self, name: &str) -> Option<(Ipv4Addr, bool)> {
        let mut map = self.synthetic.lock().ok()?;
        if let Some(ip) = map.by_name.get(name) {
            return Some((*ip, false));
        }
        if map.by_name.len() >= SYNTHETIC_COUNT {
            return None;
        }
        let ip = Ipv4Addr::from(SYNTHETIC_FIRST + map.by_name.len() as u32);
        map.by_name.insert(name.to_string(), ip);
        map.by_addr.insert(ip, name.to_string());
        Some((ip, true))
    }

    /// The name a synthetic address stands for.
    fn name_at(&self, ip: IpAddr) -> Option<String> {
        let v4 = match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => v6.to_ipv4_mapped()?,
        };
        self.synthetic.lock().ok()?.by_addr.get(&v4).cloned()
    }
}

/// Answers the sandbox's DNS queries on `socket` until the proxy stops.
fn dns_loop(socket: UdpSocket, shared: Arc<Shared>) {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let mut answer = |name: &str| -> dns::Answer {
            match name_rule(&shared, name, 53) {
                Ok(rule) => match shared.address_for(name) {
                    Some((ip, first)) => {
                        if first {
                            let mut d = NetDecision::pending("dns", name, 53);
                            d.allowed = true;
                            d.rule = format!("{} (answered with {})", rule, ip);
                            record(&shared, d);
                        }
                        dns::Answer::Address(ip)
                    }
                    None => dns::Answer::Refused,
                },
                Err(why) => {
                    let mut d = NetDecision::pending("dns", name, 53);
                    d.rule = why;
                    record(&shared, d);
                    dns::Answer::Refused
                }
            }
        };
        if let Some(out) = dns::reply(&buf[..n], &mut answer) {
            let _ = socket.send_to(&out, from);
        }
    }
}

/// Reads the start of a captured TLS connection up to its ClientHello.
fn read_hello(stream: &mut TcpStream) -> (Vec<u8>, tls::Hello) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match tls::parse_client_hello(&buf) {
            tls::Hello::Incomplete if buf.len() < MAX_HEAD + 2048 => {}
            tls::Hello::Incomplete => return (buf, tls::Hello::NotTls),
            other => return (buf, other),
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return (buf, tls::Hello::NotTls),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A connection captured on port 80 or 443: decided by the `Host` header
/// or the TLS server name; failing those, by the name behind a synthetic
/// address; failing that, as an address.
fn transparent(mut client: TcpStream, is_tls: bool, shared: &Shared) {
    let started = Instant::now();
    let dst = match client.local_addr() {
        Ok(dst) => dst,
        Err(_) => return,
    };
    let port = dst.port();
    let behind = shared.name_at(dst.ip());
    let shown = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(IpAddr::V6(v6), IpAddr::V4)
            .to_string(),
        v4 => v4.to_string(),
    };
    let protocol = if is_tls { "tls" } else { "http-transparent" };
    let (early, named) = if is_tls {
        let (bytes, hello) = read_hello(&mut client);
        match hello {
            tls::Hello::Name(n) => (bytes, Some(n)),
            tls::Hello::NoName => (bytes, None),
            _ => {
                let mut d = NetDecision::pending(protocol, &shown(dst.ip()), port);
                d.rule = "not a TLS ClientHello moat can read".into();
                record(shared, d);
                return;
            }
        }
    } else {
        let (head, rest) = match read_head(&mut client) {
            Ok(h) => h,
            Err(e) => {
                answer(&mut client, "400 Bad Request", &format!("moat: {}\n", e));
                return;
            }
        };
        match parse_origin(&head) {
            Ok(req) => {
                let mut out = req.origin_head();
                out.extend_from_slice(&rest);
                (out, Some(req.host))
            }
            Err(why) => {
                answer(&mut client, "400 Bad Request", &format!("moat: {}\n", why));
                return;
            }
        }
    };
    let host = named.or(behind).unwrap_or_else(|| shown(dst.ip()));
    let mut decision = NetDecision::pending(protocol, &host, port);
    if !is_tls {
        if let Some(why) = screen_plain(shared, &host, &early) {
            answer(&mut client, "403 Forbidden", &format!("moat: {}\n", why));
            decision.rule = why;
            decision.duration_ms = started.elapsed().as_millis() as u64;
            record(shared, decision);
            return;
        }
    }
    match decide(shared, &host, port) {
        Verdict::No(why) => {
            if !is_tls {
                answer(
                    &mut client,
                    "403 Forbidden",
                    &format!("moat: {}:{} is not allowed: {}\n", host, port, why),
                );
            }
            decision.rule = why;
        }
        Verdict::Go(upstream, rule) => {
            decision.allowed = true;
            decision.rule = rule;
            if is_tls {
                serve_allowed(shared, &mut decision, client, upstream, &early);
            } else {
                let (up, down) = relay(client, upstream, &early);
                decision.bytes_up = up;
                decision.bytes_down = down;
            }
        }
    }
    decision.duration_ms = started.elapsed().as_millis() as u64;
    record(shared, decision);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proxy_requests_parse_or_are_refused() {
        let r = parse_http(b"GET http://pkg.test:8080/a?b HTTP/1.1\r\nHost: pkg.test\r\nProxy-Connection: keep-alive\r\n\r\n").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.path.as_str()),
            ("pkg.test", 8080, "/a?b")
        );
        let head = String::from_utf8(r.origin_head()).unwrap();
        assert!(
            head.starts_with("GET /a?b HTTP/1.1\r\n")
                && head.ends_with("Connection: close\r\n\r\n"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("proxy-connection"),
            "{head}"
        );
        assert_eq!(
            parse_http(b"CONNECT crates.io:443 HTTP/1.1\r\n\r\n").map(|r| r.port),
            Ok(443)
        );
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET http://x",
            b"\x00\x01\r\n\r\n",
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_http(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn base64_is_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("moat:s3cr3t", "bW9hdDpzM2NyM3Q="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn request_heads_follow_http_1_rules() {
        // Empty lines before the request line are skipped; bare LFs end
        // lines; header values lose the blanks around them.
        let (method, target, headers) = parse_head(
            b"\r\n\nGET http://a.test/ HTTP/1.0\nHost:\t a.test \r\nX-Empty:\r\n\r\n",
            "not HTTP",
        )
        .ok()
        .unwrap();
        assert_eq!(
            (method.as_str(), target.as_str()),
            ("GET", "http://a.test/")
        );
        assert_eq!(
            headers,
            vec![
                ("Host".to_string(), b"a.test".to_vec()),
                ("X-Empty".to_string(), Vec::new())
            ]
        );
        let why = |head: &[u8]| parse_head(head, "not HTTP").err();
        for incomplete in [
            &b""[..],
            b"\r\n",
            b"GE",
            b"GET http://x",
            b"GET http://x HTTP/1.",
            b"GET http://x HTTP/1.1\r",
            b"GET http://x HTTP/1.1\r\nHost: a",
            b"GET http://x HTTP/1.1\r\nHost: a\r\n",
        ] {
            assert_eq!(
                why(incomplete),
                Some("the request head is incomplete"),
                "{:?}",
                String::from_utf8_lossy(incomplete)
            );
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        for malformed in [
            &b"\x16\x03\x01\x00\x05hello"[..],
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA(: b",
            b"\rX\r\n",
            many.as_bytes(),
        ] {
            assert_eq!(
                why(malformed),
                Some("not HTTP"),
                "{:?}",
                String::from_utf8_lossy(malformed)
            );
        }
        let at_most = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS));
        assert!(parse_head(at_most.as_bytes(), "not HTTP").is_ok());
        let big = vec![b'a'; MAX_HEAD + 5];
        assert_eq!(why(&big), Some("request head too large"));
    }

    #[test]
    fn captured_requests_are_named_by_their_host_header() {
        let r = parse_origin(b"GET /simple/ HTTP/1.1\r\nHost: PyPI.org:8080\r\n\r\n").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.path.as_str()),
            ("PyPI.org", 8080, "/simple/")
        );
        let r = parse_origin(b"GET / HTTP/1.1\r\nhost: [::1]\r\n\r\n").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 80));
        for (bad, why) in [
            (
                &b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"[..],
                "the request has no Host header",
            ),
            (
                b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
                "not an origin-form HTTP request",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
                "the request names no host",
            ),
            (b"\x16\x03\x01\x00\x05hello", "not an HTTP request"),
        ] {
            assert_eq!(parse_origin(bad).err(), Some(why));
        }
    }

    #[test]
    fn socks_requests_parse_or_get_a_reply_code() {
        let mut by_name = vec![5, 1, 0, 3, 8];
        by_name.extend_from_slice(b"pkg.test");
        by_name.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse_socks(&by_name),
            Ok(SocksRequest {
                command: 1,
                host: "pkg.test".into(),
                port: 443
            })
        );
        assert_eq!(
            parse_socks(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]).map(|r| r.host),
            Ok("127.0.0.1".into())
        );
        assert_eq!(parse_socks(&[5, 1, 0, 9, 0, 0]), Err(8));
        assert_eq!(parse_socks(&[4, 1, 0, 1, 1, 2, 3, 4, 0, 80]), Err(1));
        assert_eq!(parse_socks(&[5, 1, 0, 3, 0, 0, 80]), Err(1));
        assert_eq!(parse_socks(&[5, 1, 0, 3, 200, b'a']), Err(1));
        assert_eq!(parse_socks(&[5, 1]), Err(1));
    }

    /// Replays the fuzzing corpus (fuzz/corpus/*): parsing never panics.
    #[test]
    fn the_fuzz_corpus_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut n = 0;
        for (dir, socks) in [("http", false), ("socks5", true)] {
            for entry in std::fs::read_dir(root.join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                let bytes = std::fs::read(entry.path()).unwrap_or_default();
                if socks {
                    let _ = parse_socks(&bytes);
                } else {
                    let _ = parse_http(&bytes).map(|r| r.origin_head());
                }
                n += 1;
            }
        }
        assert!(n >= 8, "the corpus at {} has {n} inputs", root.display());
    }

    #[test]
    fn targets_are_read_from_connect_and_absolute_uris() {
        assert_eq!(
            target("CONNECT", "crates.io:443"),
            Some(("crates.io".into(), 443, String::new()))
        );
        assert_eq!(
            target("CONNECT", "[::1]:8443"),
            Some(("::1".into(), 8443, String::new()))
        );
        assert_eq!(
            target("GET", "http://u:p@pkg.test:8080/a/b?c"),
            Some(("pkg.test".into(), 8080, "/a/b?c".into()))
        );
        assert_eq!(
            target("GET", "http://pkg.test"),
            Some(("pkg.test".into(), 80, "/".into()))
        );
        assert_eq!(target("GET", "/relative"), None);
        assert_eq!(target("GET", "https://pkg.test/"), None);
        assert_eq!(target("CONNECT", "host:notaport"), None);
    }
}

#[cfg(test)]
mod net_tests;
