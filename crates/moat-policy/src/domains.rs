//! Network allowlist rules: which names and addresses a sandboxed command
//! may reach through moat's filtering proxy.
//!
//! Names are compared in one canonical spelling: lower case, no trailing
//! dot, internationalised labels in punycode (`xn--`). A pattern is an
//! exact name or `*.suffix`, which matches names *below* the suffix, never
//! the suffix itself. Deny rules win over allow rules. Patterns broad
//! enough to open a whole top-level or public suffix (`*`, `*.com`,
//! `*.co.uk`, `*.github.io`) are refused with the reason.
//!
//! Addresses: IP literals and names that resolve to loopback, private,
//! link-local, shared or cloud-metadata addresses are refused unless an
//! explicit CIDR rule allows them (no SSRF into the person's network, no
//! DNS rebinding).
//!
//! Builds with Rust 1.63 like the rest of this crate.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A domain pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Any name below this suffix (`*.example.com`).
    Below(String),
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Below(s) => write!(f, "*.{}", s),
        }
    }
}

impl Pattern {
    /// Whether the canonical `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(n) => n == name,
            Pattern::Below(s) => {
                name.len() > s.len() + 1
                    && name.ends_with(s.as_str())
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.'
            }
        }
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    Empty,
    BadName(String, &'static str),
    TooBroad(String, &'static str),
    UnknownGroup(String),
    BadCidr(String, &'static str),
    BadResolve(String, &'static str),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Empty => f.write_str("an empty domain pattern"),
            RuleError::BadName(n, why) => write!(f, "{:?} is not a domain name: {}", n, why),
            RuleError::TooBroad(p, why) => write!(
                f,
                "{} is too broad: {}; name the hosts or a narrower suffix (e.g. *.example.com)",
                p, why
            ),
            RuleError::UnknownGroup(g) => write!(
                f,
                "unknown group {}; the groups are {}",
                g,
                GROUPS
                    .iter()
                    .map(|(n, _)| format!("@{}", n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            RuleError::BadCidr(c, why) => write!(f, "{:?} is not an address block: {}", c, why),
            RuleError::BadResolve(r, why) => write!(f, "{:?} is not NAME:ADDRESS: {}", r, why),
        }
    }
}

impl std::error::Error for RuleError {}

/// The named groups of package registries (`@rust` ...).
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "rust",
        &[
            "crates.io",
            "index.crates.io",
            "static.crates.io",
            "static.rust-lang.org",
        ],
    ),
    ("python", &["pypi.org", "files.pythonhosted.org"]),
    (
        "javascript",
        &["registry.npmjs.org", "registry.yarnpkg.com"],
    ),
    ("debian", &["deb.debian.org", "security.debian.org"]),
];

/// The names of `@group`.
pub fn group(name: &str) -> Result<&'static [&'static str], RuleError> {
    GROUPS
        .iter()
        .find(|(g, _)| *g == name)
        .map(|(_, names)| *names)
        .ok_or_else(|| RuleError::UnknownGroup(format!("@{}", name)))
}

/// Suffixes under which unrelated parties register names: a wildcard on
/// one of them would allow everyone's hosts.
const PUBLIC_SUFFIXES: &[&str] = &[
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "com.au",
    "net.au",
    "org.au",
    "co.jp",
    "ne.jp",
    "or.jp",
    "com.br",
    "com.cn",
    "co.in",
    "co.nz",
    "co.za",
    "com.mx",
    "com.tr",
    "co.kr",
    "github.io",
    "githubusercontent.com",
    "gitlab.io",
    "pages.dev",
    "workers.dev",
    "vercel.app",
    "netlify.app",
    "herokuapp.com",
    "appspot.com",
    "azurewebsites.net",
    "cloudfront.net",
    "amazonaws.com",
    "blogspot.com",
    "firebaseapp.com",
    "web.app",
    "ngrok.io",
    "ngrok-free.app",
];

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// The canonical spelling of a host name: lower case, no trailing dot,
/// punycode for labels that are not ASCII.
pub fn canonical_name(text: &str) -> Result<String, RuleError> {
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if trimmed.is_empty() {
        return Err(RuleError::Empty);
    }
    let mut labels = Vec::new();
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(RuleError::BadName(text.to_string(), "an empty label"));
        }
        let lower = label.to_lowercase();
        let ascii = if lower.is_ascii() {
            lower
        } else {
            format!("xn--{}", punycode(&lower))
        };
        if ascii.len() > MAX_LABEL {
            return Err(RuleError::BadName(
                text.to_string(),
                "a label longer than 63 bytes",
            ));
        }
        if !ascii
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RuleError::BadName(
                text.to_string(),
                "only letters, digits, '-' and '_' may appear in a label",
            ));
        }
        if ascii.starts_with('-') || ascii.ends_with('-') {
            return Err(RuleError::BadName(
                text.to_string(),
                "a label starts or ends with '-'",
            ));
        }
        labels.push(ascii);
    }
    let name = labels.join(".");
    if name.len() > MAX_NAME {
        return Err(RuleError::BadName(
            text.to_string(),
            "longer than 253 bytes",
        ));
    }
    Ok(name)
}

/// Parses a pattern: an exact name or `*.suffix`.
pub fn pattern(text: &str) -> Result<Pattern, RuleError> {
    let text = text.trim();
    if text == "*" || text == "*." {
        return Err(RuleError::TooBroad(
            text.to_string(),
            "it allows every name",
        ));
    }
    if let Some(rest) = text.strip_prefix("*.") {
        let suffix = canonical_name(rest)?;
        if !suffix.contains('.') {
            return Err(RuleError::TooBroad(
                text.to_string(),
                "it allows every name under a top-level domain",
            ));
        }
        if PUBLIC_SUFFIXES.contains(&suffix.as_str()) {
            return Err(RuleError::TooBroad(
                text.to_string(),
                "anyone can register names under that suffix",
            ));
        }
        return Ok(Pattern::Below(suffix));
    }
    if text.contains('*') {
        return Err(RuleError::BadName(
            text.to_string(),
            "'*' may only stand for whole labels at the start (*.example.com)",
        ));
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(RuleError::BadName(
            text.to_string(),
            "an address, not a name: use --allow-cidr for addresses",
        ));
    }
    Ok(Pattern::Exact(canonical_name(text)?))
}

/// Patterns from one list entry: a pattern or `@group`.
pub fn patterns(entry: &str) -> Result<Vec<Pattern>, RuleError> {
    match entry.trim().strip_prefix('@') {
        Some(g) => group(g)?.iter().map(|n| pattern(n)).collect(),
        None => Ok(vec![pattern(entry)?]),
    }
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, RuleError> {
        let bad = |why| RuleError::BadCidr(text.to_string(), why);
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| bad("the prefix length is not a number"))?,
        };
        if prefix > max {
            return Err(bad("the prefix length is too long for the address"));
        }
        if prefix == 0 {
            return Err(RuleError::TooBroad(
                text.to_string(),
                "it allows every address",
            ));
        }
        if bits(addr) & !mask(addr, prefix) != 0 {
            return Err(bad("host bits are set below the prefix"));
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether every address of `self` is in `outer`.
    pub fn within(&self, outer: &Cidr) -> bool {
        outer.contains(self.addr) && outer.prefix <= self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addr.is_ipv4() == ip.is_ipv4() && bits(ip) & mask(ip, self.prefix) == bits(self.addr)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(ip: IpAddr, prefix: u8) -> u128 {
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (width - u32::from(prefix))) - 1)
    }
}

/// Why an address is not on the public internet, if it is not.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v4_in_v6(v6) {
                return special_v4(v4);
            }
            let s = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

fn v4_in_v6(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0; 5] && (s[5] == 0xffff || (s[5] == 0 && (s[6] != 0 || s[7] > 1))) {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        Some("shared (carrier-grade NAT)")
    } else if o[0] == 0 {
        Some("this network")
    } else if ip.is_broadcast() || o[0] >= 224 {
        Some("multicast or reserved")
    } else {
        None
    }
}

/// `NAME:ADDRESS` (an IPv6 address may be in brackets).
pub fn resolve_entry(text: &str) -> Result<(String, IpAddr), RuleError> {
    let bad = |why| RuleError::BadResolve(text.to_string(), why);
    let (name, addr) = text.split_once(':').ok_or_else(|| bad("no ':'"))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad("the address is not IPv4 or IPv6"))?;
    match pattern(name)? {
        Pattern::Exact(n) => Ok((n, addr)),
        Pattern::Below(_) => Err(bad("a pinned name cannot be a wildcard")),
    }
}

/// What the rules say about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this pattern.
    Allowed(Pattern),
    /// Denied by this pattern (deny wins over allow).
    Denied(Pattern),
    /// On neither list: denied, or asked about.
    Unlisted,
}

/// The allowlist of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainRules {
    pub allow: Vec<Pattern>,
    pub deny: Vec<Pattern>,
    pub allow_cidr: Vec<Cidr>,
    pub resolve: Vec<(String, IpAddr)>,
}

impl DomainRules {
    /// The decision for `name` (any spelling); a name that is not a valid
    /// host name is denied by no rule and reported as an error.
    pub fn decide(&self, name: &str) -> Result<Decision, RuleError> {
        let name = canonical_name(name)?;
        if let Some(p) = self.deny.iter().find(|p| p.matches(&name)) {
            return Ok(Decision::Denied(p.clone()));
        }
        Ok(match self.allow.iter().find(|p| p.matches(&name)) {
            Some(p) => Decision::Allowed(p.clone()),
            None => Decision::Unlisted,
        })
    }

    /// Whether a connection to `ip` may be made: public addresses always,
    /// others only inside an explicit CIDR rule. The error says why not.
    pub fn address(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_cidr.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        match special(ip) {
            None => Ok(()),
            Some(kind) => Err(format!(
                "{} is a {} address; allow it with --allow-cidr {}",
                ip,
                kind,
                Cidr {
                    addr: ip,
                    prefix: if ip.is_ipv4() { 32 } else { 128 }
                }
            )),
        }
    }

    /// The pinned address of `name`, if `--resolve` gave one.
    pub fn pinned(&self, name: &str) -> Option<IpAddr> {
        let name = canonical_name(name).ok()?;
        self.resolve
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    /// Whether every rule of `self` is at least as strict as `wider`'s
    /// (a workspace config may only narrow): nothing allowed here that
    /// `wider` does not allow, nothing `wider` denies allowed here.
    pub fn narrows(&self, wider: &DomainRules) -> Result<(), String> {
        for p in &self.allow {
            if !wider.allows_all_of(p) {
                return Err(format!(
                    "{} is not allowed by the policy it would narrow",
                    p
                ));
            }
        }
        for c in &self.allow_cidr {
            if !wider.allow_cidr.iter().any(|w| c.within(w)) {
                return Err(format!(
                    "--allow-cidr {} widens the policy it would narrow",
                    c
                ));
            }
        }
        Ok(())
    }

    /// Whether every name `p` matches is allowed here and denied by no rule.
    pub fn allows_all_of(&self, p: &Pattern) -> bool {
        self.allow.iter().any(|w| covers(w, p)) && !self.deny.iter().any(|d| covers(d, p))
    }
}

/// Whether every name `inner` matches is matched by `outer`.
fn covers(outer: &Pattern, inner: &Pattern) -> bool {
    match (outer, inner) {
        (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
        (Pattern::Below(_), Pattern::Exact(b)) => outer.matches(b),
        (Pattern::Below(a), Pattern::Below(b)) => a == b || outer.matches(b),
        (Pattern::Exact(_), Pattern::Below(_)) => false,
    }
}

/// RFC 3492 punycode of one lower-case label (without the `xn--` prefix).
fn punycode(label: &str) -> String {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    fn digit(d: u32) -> char {
        let b = if d < 26 {
            b'a' + d as u8
        } else {
            b'0' + (d - 26) as u8
        };
        b as char
    }
    fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
        delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - T_MIN) * T_MAX) / 2 {
            delta /= BASE - T_MIN;
            k += BASE;
        }
        k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
    }
    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias, mut handled) = (0x80u32, 0u32, 72u32, basic);
    while (handled as usize) < input.len() {
        let m = input.iter().copied().filter(|c| *c >= n).min().unwrap_or(n);
        delta = delta.saturating_add((m - n).saturating_mul(handled + 1));
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.saturating_add(1);
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.saturating_add(1);
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> DomainRules {
        let all = |l: &[&str]| {
            l.iter()
                .flat_map(|p| patterns(p).unwrap_or_default())
                .collect()
        };
        DomainRules {
            allow: all(allow),
            deny: all(deny),
            ..DomainRules::default()
        }
    }

    #[test]
    fn names_have_one_spelling() {
        assert_eq!(canonical_name("Crates.IO.").as_deref(), Ok("crates.io"));
        // RFC 3492's own examples and well-known IDNs.
        assert_eq!(
            canonical_name("bücher.example").as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert_eq!(
            canonical_name("München.de").as_deref(),
            Ok("xn--mnchen-3ya.de")
        );
        assert_eq!(canonical_name("例え.jp").as_deref(), Ok("xn--r8jz45g.jp"));
        assert!(canonical_name("a..b").is_err());
        assert!(canonical_name("-a.b").is_err());
        assert!(canonical_name("a b.c").is_err());
        assert!(canonical_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn wildcards_match_below_the_suffix_only() {
        let r = rules(&["*.example.com", "crates.io"], &[]);
        assert!(matches!(
            r.decide("a.example.com"),
            Ok(Decision::Allowed(_))
        ));
        assert!(matches!(
            r.decide("b.a.EXAMPLE.com."),
            Ok(Decision::Allowed(_))
        ));
        assert_eq!(r.decide("example.com"), Ok(Decision::Unlisted));
        assert_eq!(r.decide("badexample.com"), Ok(Decision::Unlisted));
        assert!(matches!(r.decide("CRATES.io"), Ok(Decision::Allowed(_))));
        assert_eq!(r.decide("static.crates.io"), Ok(Decision::Unlisted));
    }

    #[test]
    fn deny_wins() {
        let r = rules(&["*.example.com"], &["evil.example.com"]);
        assert_eq!(
            r.decide("evil.example.com"),
            Ok(Decision::Denied(Pattern::Exact("evil.example.com".into())))
        );
        assert!(matches!(
            r.decide("good.example.com"),
            Ok(Decision::Allowed(_))
        ));
    }

    #[test]
    fn broad_patterns_are_refused_with_the_reason() {
        for p in ["*", "*.com", "*.co.uk", "*.github.io", "*.COM."] {
            let got = pattern(p);
            assert!(
                matches!(&got, Err(RuleError::TooBroad(_, why)) if !why.is_empty()),
                "{p}: {got:?}"
            );
        }
        assert!(matches!(
            pattern("a*.example.com"),
            Err(RuleError::BadName(..))
        ));
        assert!(matches!(pattern("10.0.0.1"), Err(RuleError::BadName(..))));
        assert!(pattern("*.example.co.uk").is_ok());
    }

    #[test]
    fn groups_expand_and_unknown_groups_are_named() {
        let r = patterns("@rust").unwrap_or_default();
        assert!(
            r.contains(&Pattern::Exact("index.crates.io".into())),
            "{r:?}"
        );
        let e = patterns("@perl")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("@rust") && e.contains("@perl"), "{e}");
    }

    #[test]
    fn private_addresses_need_an_explicit_block() {
        let mut r = DomainRules::default();
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("192.168.0.1", "private"),
            ("172.16.5.5", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "shared"),
            ("0.0.0.0", "this network"),
            ("::1", "loopback"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fc00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
        ] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let err = r.address(ip).err().unwrap_or_default();
            assert!(
                err.contains(kind) && err.contains("--allow-cidr"),
                "{ip}: {err}"
            );
        }
        assert_eq!(
            r.address(
                "93.184.215.14"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ),
            Ok(())
        );
        assert_eq!(
            r.address(
                "2606:2800:21f:cb07::1"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ),
            Ok(())
        );
        r.allow_cidr.push(Cidr::parse("10.0.0.0/8").unwrap_or(Cidr {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix: 32,
        }));
        assert_eq!(
            r.address(
                "10.1.2.3"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ),
            Ok(())
        );
    }

    #[test]
    fn cidrs_and_pins_parse_strictly() {
        assert!(Cidr::parse("10.0.0.0/8").is_ok());
        assert!(Cidr::parse("fd00::/8").is_ok());
        assert!(Cidr::parse("127.0.0.1").is_ok());
        assert!(matches!(
            Cidr::parse("10.0.0.1/8"),
            Err(RuleError::BadCidr(..))
        ));
        assert!(matches!(
            Cidr::parse("10.0.0.0/33"),
            Err(RuleError::BadCidr(..))
        ));
        assert!(matches!(
            Cidr::parse("0.0.0.0/0"),
            Err(RuleError::TooBroad(..))
        ));
        assert!(matches!(Cidr::parse("nope/8"), Err(RuleError::BadCidr(..))));
        assert_eq!(
            resolve_entry("Index.Crates.IO:127.0.0.2"),
            Ok((
                "index.crates.io".into(),
                "127.0.0.2"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            ))
        );
        assert!(resolve_entry("pkg.test:[::1]").is_ok());
        assert!(resolve_entry("*.test:127.0.0.1").is_err());
        assert!(resolve_entry("pkg.test").is_err());
        let r = DomainRules {
            resolve: vec![(
                "pkg.test".into(),
                "127.0.0.2"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            )],
            ..DomainRules::default()
        };
        assert!(r.pinned("PKG.test.").is_some());
    }

    #[test]
    fn a_workspace_can_only_narrow() {
        let wide = rules(&["*.example.com", "crates.io"], &["bad.example.com"]);
        assert_eq!(rules(&["a.example.com"], &[]).narrows(&wide), Ok(()));
        assert_eq!(rules(&["*.x.example.com"], &[]).narrows(&wide), Ok(()));
        assert!(rules(&["pypi.org"], &[]).narrows(&wide).is_err());
        assert!(rules(&["bad.example.com"], &[]).narrows(&wide).is_err());
        assert!(rules(&["*.com.example.com"], &[])
            .narrows(&rules(&["crates.io"], &[]))
            .is_err());
    }
}
