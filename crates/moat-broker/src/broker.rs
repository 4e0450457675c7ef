//! The broker: terminates TLS for brokered hosts, checks and rewrites one
//! request head, and relays the rest between client and upstream.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use rustls_pki_types::ServerName;

use crate::authority::Authority;
use crate::body::{BodyLimit, Framing};
use crate::error::Error;
use crate::head::{self, Head, HeadError};
use crate::host;
use crate::inject::{self, Brokered};
use crate::outcome::{Outcome, Refusal, Verdict};
use crate::placeholder::placeholder;
use crate::relay::{self, Activity, End, Ended};
use crate::roots::UpstreamRoots;
use crate::rules::{RequestRule, Rules};
use crate::secret::{self, Secret};

/// ALPN offered to both sides: HTTP/1.1 only, so clients do not speak h2,
/// which could carry several requests over one connection.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// After answering a refused request, read and drop what the client still
/// sends for this long (or this many bytes), so closing does not reset the
/// connection before the client has read the answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Time limits of one brokered connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To finish the client's handshake and send the request head; and,
    /// separately, for the upstream's handshake.
    pub handshake: Duration,
    /// With no byte moving either way, the relay ends after this long.
    pub idle: Duration,
}

impl Default for Limits {
    /// 10 s and 300 s, as moat's proxy.
    fn default() -> Limits {
        Limits {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
        }
    }
}

/// Puts secrets into requests to the hosts they are bound to, and enforces
/// request rules. See the crate documentation.
pub struct Broker {
    secrets: Vec<Brokered>,
    rules: Rules,
    authority: Authority,
    provider: Arc<CryptoProvider>,
    upstream: Arc<ClientConfig>,
    limits: Limits,
}

impl Broker {
    /// A broker for `secrets` and `rules`, verifying upstream servers
    /// against `roots`. Makes each secret's placeholder and the per-run
    /// authority, constrained to the hosts of both.
    pub fn new(
        secrets: Vec<Secret>,
        rules: Vec<RequestRule>,
        roots: UpstreamRoots,
    ) -> Result<Broker, Error> {
        let mut brokered: Vec<Brokered> = Vec::new();
        let mut hosts: Vec<String> = Vec::new();
        for s in secrets {
            let brokered_secret = check_secret(&s, &brokered)?;
            for h in &brokered_secret.hosts {
                if !hosts.contains(h) {
                    hosts.push(h.clone());
                }
            }
            brokered.push(brokered_secret);
        }
        let rules = Rules::new(rules)?;
        for h in rules.hosts() {
            if !hosts.iter().any(|x| x == h) {
                hosts.push(h.to_string());
            }
        }
        if hosts.is_empty() {
            return Err(Error::NothingToBroker);
        }
        hosts.sort();
        let authority = Authority::new(&hosts)?;
        let provider = crypto_provider();
        let mut upstream = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.load()?)
            .with_no_client_auth();
        upstream.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Broker {
            secrets: brokered,
            rules,
            authority,
            provider,
            upstream: Arc::new(upstream),
            limits: Limits::default(),
        })
    }

    /// The same broker with other time limits.
    pub fn with_limits(mut self, limits: Limits) -> Broker {
        self.limits = limits;
        self
    }

    /// Whether connections to `host` must be given to [`Broker::serve`]:
    /// it is bound by a secret or has request rules (exact names,
    /// case-insensitive).
    pub fn terminates(&self, host: &str) -> bool {
        match host::normalise(host) {
            Ok(h) => self.authority.hosts().contains(&h),
            Err(_) => false,
        }
    }

    /// `(environment variable, placeholder)` for each secret, for the
    /// sandbox's environment.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        self.secrets
            .iter()
            .map(|s| (s.env.clone(), s.placeholder.clone()))
            .collect()
    }

    /// Why a request that is never brokered (plain HTTP, whose head is
    /// `head`) must be refused: it carries a placeholder, which would go
    /// out as it is to a server that has no use for it. `None` if clean.
    pub fn screen(&self, head: &[u8]) -> Option<String> {
        let s = crate::inject::any_placeholder(head, &self.secrets)?;
        Some(format!(
            "the request carries the placeholder of {} over plain HTTP; moat puts the real \
             value only into HTTPS requests to {}",
            s.env,
            s.hosts.join(", ")
        ))
    }

    /// The per-run CA certificate (PEM) to add to the sandbox's trust
    /// bundle.
    pub fn cert_pem(&self) -> String {
        self.authority.cert_pem()
    }

    /// The per-run authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Serves one client connection to `host:port` (a host for which
    /// [`Broker::terminates`] is true). `early` holds the bytes the proxy
    /// already read from `client` (the ClientHello); `upstream` is a TCP
    /// connection to the real server. Blocks until the exchange is over,
    /// then closes both connections. Never panics; every failure is in the
    /// returned [`Outcome`].
    pub fn serve(
        &self,
        client: TcpStream,
        early: &[u8],
        host: &str,
        port: u16,
        upstream: TcpStream,
    ) -> Outcome {
        let mut out = Outcome {
            host: host.to_ascii_lowercase(),
            port,
            method: None,
            path: None,
            injected: Vec::new(),
            verdict: Verdict::Forwarded,
            bytes_up: 0,
            bytes_down: 0,
            note: None,
        };
        match host::normalise(host) {
            Ok(h) if self.authority.hosts().contains(&h) => {
                out.host = h.clone();
                out.verdict = self.run(&mut out, client, early, &h, port, upstream);
            }
            _ => {
                out.verdict = Verdict::Failed {
                    reason: format!("{host} is not a brokered host"),
                };
            }
        }
        out
    }

    fn run(
        &self,
        out: &mut Outcome,
        client: TcpStream,
        early: &[u8],
        host: &str,
        port: u16,
        upstream: TcpStream,
    ) -> Verdict {
        let _ = client.set_write_timeout(Some(self.limits.idle));
        let _ = upstream.set_write_timeout(Some(self.limits.idle));
        // TLS sends its handshake and records in several small writes;
        // with Nagle's algorithm each later one waits for the peer's
        // delayed acknowledgement (40 ms on Linux) of the one before.
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let deadline = Instant::now() + self.limits.handshake;
        let mut tls = match self.client_session(host) {
            Ok(tls) => tls,
            Err(e) => return failed(format!("no certificate for {host}: {e}")),
        };
        let mut io = Prefixed {
            early,
            sock: &client,
        };
        if let Err(e) = server_handshake(&mut tls, &mut io, deadline) {
            return failed(format!(
                "TLS handshake with the client failed: {}; hint: the client must trust moat's CA (it may use its own CA bundle or pin certificates)",
                describe(&e)
            ));
        }
        let (mut head, rest) = match read_head(&mut tls, &mut io, deadline) {
            Ok(x) => x,
            Err(HeadFailure::Head(e)) => {
                let refusal = match e {
                    HeadError::TooLarge => Refusal::HeadTooLarge,
                    HeadError::Malformed(reason) => Refusal::BadRequest { reason },
                };
                answer(&mut tls, &client, refusal.status(), &refusal.message(host));
                return Verdict::Refused(refusal);
            }
            Err(HeadFailure::Closed) => {
                return failed("the client closed the connection before sending a request".into())
            }
            Err(HeadFailure::Io(e)) => {
                return failed(format!("reading the request: {}", describe(&e)))
            }
        };
        out.method = Some(head.method.clone());
        out.path = Some(head.path().to_string());
        let framing = match self.check(&head, host, port) {
            Ok(f) => f,
            Err(refusal) => {
                answer(&mut tls, &client, refusal.status(), &refusal.message(host));
                return Verdict::Refused(refusal);
            }
        };
        // Only now, with a request that may go, does moat talk to the upstream.
        let up = match self.upstream_session(host, &upstream) {
            Ok(up) => up,
            Err(verdict) => {
                let body = match &verdict {
                    Verdict::UpstreamUntrusted { reason } => format!(
                        "moat: the certificate of {host} is not trusted: {reason}; add its CA with --upstream-ca FILE"
                    ),
                    other => format!("moat: {other} ({host})"),
                };
                answer(&mut tls, &client, (502, "Bad Gateway"), &body);
                return verdict;
            }
        };
        out.injected = inject::inject(&mut head, &self.secrets, host);
        head.make_single_request();
        let mut limit = BodyLimit::new(framing);
        let mut first = head.to_bytes();
        let body_start = limit.take(&rest);
        first.extend_from_slice(&rest[..body_start]);
        let client_end = End::new(Connection::Server(tls), client);
        let up_end = End::new(Connection::Client(up), upstream);
        if let Err(e) = up_end.send_plain(&first) {
            up_end.abort();
            client_end.abort();
            return Verdict::UpstreamFailed {
                reason: format!("sending the request: {}", describe(&e)),
            };
        }
        out.bytes_up = first.len() as u64;
        let (up, down) = self.relay(&client_end, &up_end, &mut limit);
        out.bytes_up += up.0;
        out.bytes_down = down.0;
        out.note = match (up.1, down.1) {
            (_, Ended::Idle) => Some(format!("idle for {} s", self.limits.idle.as_secs())),
            (_, Ended::Error(e)) => Some(format!("relaying the response: {e}")),
            (Ended::Error(e), _) => Some(format!("relaying the request: {e}")),
            _ => None,
        };
        Verdict::Forwarded
    }

    /// Runs both directions; the response direction decides the end.
    fn relay(
        &self,
        client: &End,
        upstream: &End,
        limit: &mut BodyLimit,
    ) -> ((u64, Ended), (u64, Ended)) {
        let activity = Activity::new();
        let idle = self.limits.idle;
        thread::scope(|s| {
            let up = s.spawn(|| {
                let r = relay::pump(client, upstream, Some(limit), None, &activity, idle);
                if matches!(r.1, Ended::Error(_)) {
                    // The client is gone: nobody will read the response.
                    upstream.abort();
                    client.abort();
                }
                r
            });
            let mut mask = relay::Mask::new(
                self.secrets
                    .iter()
                    .map(|s| {
                        (
                            s.value.as_bytes().to_vec(),
                            s.placeholder.as_bytes().to_vec(),
                        )
                    })
                    .collect(),
            );
            let down = relay::pump(upstream, client, None, Some(&mut mask), &activity, idle);
            client.close();
            upstream.close();
            let up = up
                .join()
                .unwrap_or_else(|_| (0, Ended::Error("the request relay stopped".into())));
            (up, down)
        })
    }

    /// Checks a request before anything goes upstream; returns its framing.
    fn check(&self, head: &Head, host: &str, port: u16) -> Result<Framing, Refusal> {
        if let Some(found) = inject::stray(head, &self.secrets, host) {
            let bound_to = self
                .secrets
                .iter()
                .find(|s| s.env == found.env)
                .map(|s| s.hosts.clone())
                .unwrap_or_default();
            return Err(Refusal::StrayPlaceholder {
                env: found.env,
                bound_to,
                found_in: found.place,
            });
        }
        if head.method == "CONNECT" {
            return Err(Refusal::BadRequest {
                reason: "CONNECT inside a brokered connection".into(),
            });
        }
        let host_headers: Vec<String> = head
            .values("host")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if host_headers.len() > 1 {
            return Err(Refusal::BadRequest {
                reason: "more than one Host header".into(),
            });
        }
        for named in host_headers
            .iter()
            .map(String::as_str)
            .chain(head.target_authority())
        {
            let same = matches!(host::split_authority(named),
                Some((h, p)) if h == host && p.is_none_or(|p| p == port));
            if !same {
                return Err(Refusal::HostMismatch {
                    named: named.to_string(),
                });
            }
        }
        if !head.target.starts_with('/') && head.target_authority().is_none() && head.target != "*"
        {
            return Err(Refusal::BadRequest {
                reason: format!("request target {:?} not understood", head.target),
            });
        }
        self.rules
            .check(host, &head.method, head.path())
            .map_err(Refusal::Rule)?;
        head.framing()
            .map_err(|reason| Refusal::BadRequest { reason })
    }

    /// The TLS session with the client, presenting the leaf for `host`.
    fn client_session(&self, host: &str) -> Result<ServerConnection, Error> {
        let leaf = self.authority.leaf(host)?;
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedLeaf(leaf)));
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(ServerConnection::new(Arc::new(config))?)
    }

    /// TLS to the upstream with SNI `host`, verified against the roots.
    fn upstream_session(&self, host: &str, sock: &TcpStream) -> Result<ClientConnection, Verdict> {
        let fail = |reason: String| Verdict::UpstreamFailed { reason };
        let name = ServerName::try_from(host.to_string()).map_err(|e| fail(e.to_string()))?;
        let mut conn = ClientConnection::new(Arc::clone(&self.upstream), name)
            .map_err(|e| fail(e.to_string()))?;
        let deadline = Instant::now() + self.limits.handshake;
        let mut io = sock;
        while conn.is_handshaking() {
            let step = set_deadline(sock, deadline).and_then(|()| conn.complete_io(&mut io));
            match step {
                Ok((0, 0)) => return Err(fail("the upstream closed the connection".into())),
                Ok(_) => {}
                Err(e) => {
                    return Err(match tls_error(&e) {
                        Some(rustls::Error::InvalidCertificate(cert)) => {
                            Verdict::UpstreamUntrusted {
                                reason: cert.to_string(),
                            }
                        }
                        _ => fail(describe(&e)),
                    })
                }
            }
        }
        Ok(conn)
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: Vec<(&str, &[String])> = self
            .secrets
            .iter()
            .map(|s| (s.env.as_str(), s.hosts.as_slice()))
            .collect();
        f.debug_struct("Broker")
            .field("secrets", &secrets)
            .field("rules", &self.rules)
            .field("authority", &self.authority)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// rustls with *ring*, chosen over aws-lc-rs for build time. rustls 0.23.48
/// deprecates it because *ring* has no post-quantum key exchange: the
/// connections moat terminates use classical X25519/P-256 key exchange.
///
/// Its default key exchange puts P-384 first, which *ring* computes without
/// assembly: about 2 ms a handshake here, against a few tens of
/// microseconds for X25519. X25519 and P-256 go first; P-384 stays for
/// servers that take nothing else.
#[allow(deprecated)]
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
    Arc::new(provider)
}

/// Validates one secret and makes its placeholder.
fn check_secret(s: &Secret, earlier: &[Brokered]) -> Result<Brokered, Error> {
    // The policy's rule for variable names, said once.
    if moat_policy::secrets::check_env(&s.env).is_err() {
        return Err(Error::BadSecretName { env: s.env.clone() });
    }
    if earlier.iter().any(|b| b.env == s.env) {
        return Err(Error::DuplicateSecret { env: s.env.clone() });
    }
    if let Some(what) = secret::header_unsafe(&s.value) {
        return Err(Error::SecretNotAHeaderValue {
            env: s.env.clone(),
            what,
        });
    }
    let mut hosts = Vec::new();
    for h in &s.hosts {
        let h = host::normalise(h)?;
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    if hosts.is_empty() {
        return Err(Error::SecretWithoutHosts { env: s.env.clone() });
    }
    let placeholder = placeholder(&s.value).map_err(|e| match e {
        Error::ValueTooShort { .. } => Error::SecretTooShort { env: s.env.clone() },
        other => other,
    })?;
    Ok(Brokered {
        env: s.env.clone(),
        placeholder,
        value: s.value.clone(),
        hosts,
    })
}

/// Always presents one leaf: the connection's host is already known.
#[derive(Debug)]
struct FixedLeaf(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedLeaf {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The client socket, with the bytes the proxy already read from it first.
struct Prefixed<'a> {
    early: &'a [u8],
    sock: &'a TcpStream,
}

impl Read for Prefixed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.early.is_empty() {
            return self.sock.read(buf);
        }
        let n = self.early.len().min(buf.len());
        buf[..n].copy_from_slice(&self.early[..n]);
        self.early = &self.early[n..];
        Ok(n)
    }
}

impl Write for Prefixed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

fn server_handshake(
    tls: &mut ServerConnection,
    io: &mut Prefixed<'_>,
    deadline: Instant,
) -> io::Result<()> {
    while tls.is_handshaking() {
        set_deadline(io.sock, deadline)?;
        if tls.complete_io(io)? == (0, 0) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    while tls.wants_write() {
        tls.write_tls(io)?;
    }
    Ok(())
}

enum HeadFailure {
    Head(HeadError),
    Io(io::Error),
    Closed,
}

/// Reads until a whole request head is in; returns it and the bytes after.
fn read_head(
    tls: &mut ServerConnection,
    io: &mut Prefixed<'_>,
    deadline: Instant,
) -> Result<(Head, Vec<u8>), HeadFailure> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let closed = drain(tls, &mut buf).map_err(HeadFailure::Io)?;
        if let Some((head, len)) = head::parse(&buf).map_err(HeadFailure::Head)? {
            // Bytes the proxy read that rustls has not yet seen belong to
            // the body (only possible with unusual clients).
            while !io.early.is_empty() {
                let mut early = io.early;
                let n = tls.read_tls(&mut early).map_err(HeadFailure::Io)?;
                io.early = early;
                tls.process_new_packets()
                    .map_err(|e| HeadFailure::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
                drain(tls, &mut buf).map_err(HeadFailure::Io)?;
                if n == 0 {
                    break;
                }
            }
            return Ok((head, buf[len..].to_vec()));
        }
        if closed {
            return Err(HeadFailure::Closed);
        }
        while tls.wants_write() {
            tls.write_tls(io).map_err(HeadFailure::Io)?;
        }
        set_deadline(io.sock, deadline).map_err(HeadFailure::Io)?;
        if tls.read_tls(io).map_err(HeadFailure::Io)? == 0 {
            return Err(HeadFailure::Closed);
        }
        if let Err(e) = tls.process_new_packets() {
            while tls.wants_write() && tls.write_tls(io).is_ok() {}
            return Err(HeadFailure::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                e,
            )));
        }
    }
}

/// Moves available plaintext into `buf`; true when the client closed.
fn drain(tls: &mut ServerConnection, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    loop {
        match tls.reader().read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Answers the client with a short text response from moat, then closes.
fn answer(tls: &mut ServerConnection, sock: &TcpStream, status: (u16, &str), message: &str) {
    let body = format!("{message}\n");
    let text = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        status.0,
        status.1,
        body.len()
    );
    let _ = tls.writer().write_all(text.as_bytes());
    tls.send_close_notify();
    let mut out = sock;
    while tls.wants_write() {
        if tls.write_tls(&mut out).is_err() {
            break;
        }
    }
    let _ = sock.shutdown(Shutdown::Write);
    let _ = sock.set_read_timeout(Some(LINGER));
    let started = Instant::now();
    let mut dropped = 0;
    let mut chunk = [0u8; 4096];
    let mut input = sock;
    while dropped < LINGER_BYTES && started.elapsed() < LINGER {
        match input.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => dropped += n,
        }
    }
    let _ = sock.shutdown(Shutdown::Both);
}

/// Sets the socket's read timeout to what is left until `deadline`.
fn set_deadline(sock: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    sock.set_read_timeout(Some(left))
}

/// The rustls error inside an I/O error, if that is what it is.
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// An I/O error for a report: timeouts say so.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::UnexpectedEof => "the connection closed".into(),
        _ => e.to_string(),
    }
}

fn failed(reason: String) -> Verdict {
    Verdict::Failed { reason }
}
