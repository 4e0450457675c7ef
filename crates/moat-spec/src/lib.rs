//! What one sandboxed run is: a [`RunSpec`].
//!
//! moat resolves a policy (presets, config files, flags) and a filesystem
//! view, then lowers them once into a `RunSpec`: plain values that say
//! which isolation builds the run, what its network is, which paths are
//! writable, readable, hidden or kept read-only, its limits, its
//! environment and its command. Everything else about the run is a
//! function of the spec, defined here and nowhere else: the sandbox
//! account ([`RunSpec::account`]), the namespaces ([`RunSpec::namespaces`]),
//! the socket families seccomp lets through ([`RunSpec::sockets`]) and
//! whether Landlock must refuse TCP ([`RunSpec::tcp`]).
//!
//! Both Linux tiers execute the same spec. For the elevated tier it is also
//! the request moat sends to the setuid launcher ([`wire`]): the launcher
//! decodes it, checks it against its caller, and derives the account and
//! namespaces with the same functions, so a caller cannot ask for a
//! combination the functions would not give.
//!
//! # Tests
//! Table tests of the decisions and of the wire format; the wire format's
//! fuzz target lives in `fuzz/` and its corpus is replayed by a unit test.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub mod install;
#[cfg(unix)]
pub mod wire;

/// How much of the machine the sandbox is built from. Not
/// `non_exhaustive`: every backend must say what it does with each, and
/// a new one should fail to compile until it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Unprivileged user namespaces, mounts, Landlock and seccomp.
    Namespaces,
    /// Landlock and seccomp only, for machines without unprivileged user
    /// namespaces; what it loses is listed by the backend, and it runs
    /// only when the person accepts that.
    LandlockOnly,
    /// Every layer of `Namespaces`, built by the setuid launcher as root
    /// without a user namespace, with the command running as a sandbox
    /// account behind its firewall rules (`moat setup`).
    Elevated,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Namespaces => "namespaces",
            Isolation::LandlockOnly => "landlock-only",
            Isolation::Elevated => "elevated",
        }
    }
}

/// The run's network (exhaustive, as [`Isolation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// Nothing but loopback.
    Off,
    /// Only moat's filtering proxy, whose listeners are the sandbox's one
    /// way out.
    Proxy,
    /// The host's network.
    Host,
}

impl Net {
    pub fn as_str(self) -> &'static str {
        match self {
            Net::Off => "off",
            Net::Proxy => "allow",
            Net::Host => "on",
        }
    }
}

/// The sandbox account an elevated run executes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Whose every packet the firewall refuses.
    Offline,
    /// With the host's network.
    Online,
}

impl Account {
    pub fn name(self) -> &'static str {
        match self {
            Account::Offline => install::OFFLINE,
            Account::Online => install::ONLINE,
        }
    }
}

/// What a listed path is: it decides how the path is hidden or kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// Sockets, fifos, devices, symlinks, or a placeholder's name.
    Other,
}

/// A path and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub path: PathBuf,
}

/// The filesystem of a run. Every path is absolute and canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fs {
    /// Where the command works; kept visible even when it is not writable.
    pub workspace: PathBuf,
    /// Writable roots (the workspace among them when it is writable).
    pub writable: Vec<PathBuf>,
    /// `Some`: only these (and the writable roots) are readable.
    pub readable: Option<Vec<PathBuf>>,
    /// Hidden from the command.
    pub denied: Vec<Entry>,
    /// Kept read-only inside the writable roots.
    pub protected: Vec<Entry>,
    /// Directories made mount points of their own above protected paths,
    /// so a rename of an ancestor cannot move a protected path away.
    pub pins: Vec<PathBuf>,
    /// Tool caches shown writable, with what the command writes kept in
    /// moat's store instead of the person's cache.
    pub caches: Vec<Cache>,
}

/// A tool cache's layer: inside the sandbox `at` is writable, showing the
/// person's directory there at the bottom (read-only), what earlier
/// sandboxed runs left in `shared` above it (read-only), and this run's
/// own `run/upper` on top; `run/work` is the overlay's scratch space. Each
/// run writes only its own layer, so runs at the same time never share
/// one; moat merges it into `shared` when no run is using that. The
/// person's files are never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub at: PathBuf,
    pub shared: PathBuf,
    pub run: PathBuf,
}

impl Cache {
    /// Where what this run writes lands.
    pub fn upper(&self) -> PathBuf {
        self.run.join("upper")
    }

    /// The overlay's scratch directory, beside `upper` on its filesystem.
    pub fn work(&self) -> PathBuf {
        self.run.join("work")
    }
}

/// Resource limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Option<Duration>,
    pub processes: Option<u64>,
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes.
    pub file_size: Option<u64>,
    /// Thousandths of a CPU.
    pub cpu_millis: Option<u64>,
}

/// One sandboxed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub isolation: Isolation,
    pub net: Net,
    pub fs: Fs,
    pub limits: Limits,
    /// The command's whole environment, policy applied.
    pub env: Vec<(OsString, OsString)>,
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// Where the command starts; resolved inside the sandbox.
    pub cwd: PathBuf,
    /// Give the command a terminal of its own.
    pub pty: bool,
    /// A certificate authority (PEM) the command's TLS clients trust as
    /// well as the system's: moat's own for the run, for the hosts whose
    /// TLS its proxy terminates. Public; its key never leaves moat.
    pub extra_ca: Option<String>,
}

/// The largest [`RunSpec::extra_ca`]: one certificate is about 700 bytes.
pub const MAX_EXTRA_CA: usize = 16 * 1024;

/// The namespaces a run gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    pub net: bool,
}

impl Namespaces {
    /// The names of those it has, in the order `unshare(1)` lists them.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.user, "user"),
            (self.mount, "mount"),
            (self.pid, "pid"),
            (self.ipc, "ipc"),
            (self.uts, "uts"),
            (self.cgroup, "cgroup"),
            (self.net, "net"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Which socket families seccomp lets the command create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    UnixAndIp,
    /// With no network namespace to stand in for an empty network.
    UnixOnly,
}

/// What Landlock does about TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRule {
    /// Left to the network namespace (or the host network is the policy).
    Unhandled,
    /// Every bind and connect refused.
    DenyAll,
}

/// A spec no backend can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    /// The proxy is the only way out only inside a network namespace.
    ProxyWithoutNamespace,
    EmptyCommand,
    NotAbsolute(PathBuf),
    /// A variable name that is empty or holds `=` or NUL.
    BadVariable(OsString),
    /// [`RunSpec::extra_ca`] is not a PEM certificate of bounded size.
    BadExtraCa,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::ProxyWithoutNamespace => f.write_str(
                "--network allow needs a network namespace: without one the command would reach \
                 the host's network around the proxy\nhint: enable unprivileged user \
                 namespaces, use the elevated tier (sudo moat setup), or use --network off",
            ),
            SpecError::EmptyCommand => f.write_str("the command is empty"),
            SpecError::NotAbsolute(p) => write!(f, "{} is not an absolute path", p.display()),
            SpecError::BadVariable(n) => {
                write!(f, "{n:?} is not a valid environment variable name")
            }
            SpecError::BadExtraCa => write!(
                f,
                "the extra certificate authority is not PEM certificates of at most \
                 {MAX_EXTRA_CA} bytes"
            ),
        }
    }
}

impl std::error::Error for SpecError {}

impl RunSpec {
    /// The sandbox account the command runs as: only in the elevated
    /// tier, and decided by the network alone, because the firewall
    /// rules are per account.
    pub fn account(&self) -> Option<Account> {
        match self.isolation {
            Isolation::Elevated if self.net == Net::Host => Some(Account::Online),
            Isolation::Elevated => Some(Account::Offline),
            _ => None,
        }
    }

    /// The namespaces of the run. Root needs no user namespace to build
    /// the others; every run but the host-network one gets an empty
    /// network namespace (loopback only, or loopback and the proxy's
    /// listeners).
    pub fn namespaces(&self) -> Namespaces {
        let all = |user: bool| Namespaces {
            user,
            mount: true,
            pid: true,
            ipc: true,
            uts: true,
            cgroup: true,
            net: self.net != Net::Host,
        };
        match self.isolation {
            Isolation::Namespaces => all(true),
            Isolation::Elevated => all(false),
            Isolation::LandlockOnly => Namespaces::default(),
        }
    }

    /// Without a network namespace an "off" network is held by refusing
    /// every socket family but UNIX.
    pub fn sockets(&self) -> Sockets {
        if self.net == Net::Off && !self.namespaces().net {
            Sockets::UnixOnly
        } else {
            Sockets::UnixAndIp
        }
    }

    /// ... and by Landlock refusing TCP, where its ABI can.
    pub fn tcp(&self) -> TcpRule {
        if self.net == Net::Off && !self.namespaces().net {
            TcpRule::DenyAll
        } else {
            TcpRule::Unhandled
        }
    }

    /// Refuses what no backend can enforce, before anything starts.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.net == Net::Proxy && !self.namespaces().net {
            return Err(SpecError::ProxyWithoutNamespace);
        }
        if self.argv.first().is_none_or(|a| a.is_empty()) {
            return Err(SpecError::EmptyCommand);
        }
        let fs = &self.fs;
        let paths = std::iter::once(&fs.workspace)
            .chain(&fs.writable)
            .chain(fs.readable.iter().flatten())
            .chain(fs.denied.iter().map(|e| &e.path))
            .chain(fs.protected.iter().map(|e| &e.path))
            .chain(&fs.pins)
            .chain(fs.caches.iter().flat_map(|c| [&c.at, &c.shared, &c.run]))
            .chain(std::iter::once(&self.cwd));
        for p in paths {
            if !p.is_absolute() {
                return Err(SpecError::NotAbsolute(p.clone()));
            }
        }
        for (name, _) in &self.env {
            let text = name.to_string_lossy();
            if text.is_empty() || text.contains('=') || text.contains('\0') {
                return Err(SpecError::BadVariable(name.clone()));
            }
        }
        if let Some(pem) = &self.extra_ca {
            // It becomes a file the command's programs parse: printable
            // ASCII lines of certificates and nothing else.
            let printable = pem
                .bytes()
                .all(|b| b == b'\n' || b == b'\r' || (b' '..=b'~').contains(&b));
            if pem.len() > MAX_EXTRA_CA
                || !printable
                || !pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----")
            {
                return Err(SpecError::BadExtraCa);
            }
        }
        Ok(())
    }
}

/// Where the proxy listens inside a sandbox whose network is [`Net::Proxy`]:
/// HTTP (CONNECT and absolute URIs) and SOCKS5, on 127.0.0.1 of the
/// sandbox's own network namespace.
pub const PROXY_PORTS: [u16; 2] = [3128, 1080];

/// Ports captured for programs that ignore the proxy variables (plain HTTP
/// and TLS), on every address of the sandbox's network namespace.
pub const TRANSPARENT_PORTS: [u16; 2] = [80, 443];

/// The DNS stub's port.
pub const DNS_PORT: u16 = 53;

/// The variables that point a command's tools at the proxy: the usual
/// names, and those of tools that read only their own.
pub fn proxy_env() -> Vec<(&'static str, String)> {
    let http = format!("http://127.0.0.1:{}", PROXY_PORTS[0]);
    let socks = format!("socks5h://127.0.0.1:{}", PROXY_PORTS[1]);
    let local = "localhost,127.0.0.1,::1".to_string();
    let mut out: Vec<(&'static str, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "CARGO_HTTP_PROXY",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "PIP_PROXY",
    ]
    .into_iter()
    .map(|n| (n, http.clone()))
    .collect();
    out.push(("ALL_PROXY", socks.clone()));
    out.push(("all_proxy", socks));
    out.push(("NO_PROXY", local.clone()));
    out.push(("no_proxy", local));
    out
}

/// The variables that make a command's TLS clients read `bundle` as their
/// trusted authorities: OpenSSL's (curl, git, Python, Go), and those of
/// tools that read only their own or ship their own roots (Python's
/// requests and pip, Node, cargo).
pub fn trust_env(bundle: &str) -> Vec<(&'static str, String)> {
    [
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "NODE_EXTRA_CA_CERTS",
        "CARGO_HTTP_CAINFO",
    ]
    .into_iter()
    .map(|n| (n, bundle.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_must_be_bounded_pem() {
        let mut s = spec(Isolation::Namespaces, Net::Proxy);
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        s.extra_ca = Some(pem.into());
        assert_eq!(s.check(), Ok(()));
        for bad in [
            "not a certificate".to_string(),
            format!("{pem}\u{1b}[31m"),
            format!("{pem}{}", "A".repeat(MAX_EXTRA_CA)),
        ] {
            s.extra_ca = Some(bad);
            assert_eq!(s.check(), Err(SpecError::BadExtraCa));
        }
    }

    pub(crate) fn spec(isolation: Isolation, net: Net) -> RunSpec {
        RunSpec {
            isolation,
            net,
            fs: Fs {
                workspace: PathBuf::from("/home/a/prj"),
                writable: vec![PathBuf::from("/home/a/prj")],
                ..Fs::default()
            },
            limits: Limits::default(),
            env: vec![(OsString::from("PATH"), OsString::from("/usr/bin"))],
            argv: vec![OsString::from("true")],
            cwd: PathBuf::from("/home/a/prj"),
            pty: false,
            extra_ca: None,
        }
    }

    /// Every decision for every isolation and network, in one table.
    #[test]
    fn the_decisions_follow_from_isolation_and_network() {
        use Isolation::*;
        use Net::*;
        type Row = (
            Isolation,
            Net,
            Option<Account>,
            &'static str,
            Sockets,
            TcpRule,
        );
        let table: [Row; 9] = [
            (
                Namespaces,
                Off,
                None,
                "user mount pid ipc uts cgroup net",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                Namespaces,
                Proxy,
                None,
                "user mount pid ipc uts cgroup net",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                Namespaces,
                Host,
                None,
                "user mount pid ipc uts cgroup",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                Elevated,
                Off,
                Some(Account::Offline),
                "mount pid ipc uts cgroup net",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                Elevated,
                Proxy,
                Some(Account::Offline),
                "mount pid ipc uts cgroup net",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                Elevated,
                Host,
                Some(Account::Online),
                "mount pid ipc uts cgroup",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                LandlockOnly,
                Off,
                None,
                "",
                Sockets::UnixOnly,
                TcpRule::DenyAll,
            ),
            (
                LandlockOnly,
                Proxy,
                None,
                "",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
            (
                LandlockOnly,
                Host,
                None,
                "",
                Sockets::UnixAndIp,
                TcpRule::Unhandled,
            ),
        ];
        for (isolation, net, account, namespaces, sockets, tcp) in table {
            let s = spec(isolation, net);
            let what = format!("{isolation:?} {net:?}");
            assert_eq!(s.account(), account, "{what}");
            assert_eq!(s.namespaces().names().join(" "), namespaces, "{what}");
            assert_eq!(s.sockets(), sockets, "{what}");
            assert_eq!(s.tcp(), tcp, "{what}");
            let refused = isolation == LandlockOnly && net == Proxy;
            assert_eq!(
                s.check(),
                if refused {
                    Err(SpecError::ProxyWithoutNamespace)
                } else {
                    Ok(())
                },
                "{what}"
            );
        }
    }

    #[test]
    fn specs_no_backend_can_hold_are_refused() {
        let mut s = spec(Isolation::Namespaces, Net::Off);
        s.argv.clear();
        assert_eq!(s.check(), Err(SpecError::EmptyCommand));
        let mut s = spec(Isolation::Namespaces, Net::Off);
        s.fs.pins.push(PathBuf::from("rel"));
        assert_eq!(s.check(), Err(SpecError::NotAbsolute(PathBuf::from("rel"))));
        let mut s = spec(Isolation::Namespaces, Net::Off);
        s.env.push((OsString::from("A=B"), OsString::new()));
        assert!(matches!(s.check(), Err(SpecError::BadVariable(_))));
        for e in [
            SpecError::ProxyWithoutNamespace,
            SpecError::EmptyCommand,
            SpecError::NotAbsolute(PathBuf::from("x")),
            SpecError::BadVariable(OsString::new()),
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn the_proxy_variables_point_at_the_proxy_ports() {
        let env = proxy_env();
        assert!(env.contains(&("HTTPS_PROXY", "http://127.0.0.1:3128".to_string())));
        assert!(env.contains(&("ALL_PROXY", "socks5h://127.0.0.1:1080".to_string())));
        assert!(env.iter().any(|(n, _)| *n == "no_proxy"));
    }
}
