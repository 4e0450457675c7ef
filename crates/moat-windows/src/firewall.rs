//! The Windows Firewall rules that keep the offline sandbox account off the
//! network, and the check that what Windows holds matches them.
//!
//! A firewall rule cannot match the restricting SIDs of a restricted token,
//! and a rule on one program does not follow its children; it can match a
//! real account through `LocalUserAuthorizedList`. So the elevated tier
//! runs offline commands as `MoatSandboxOffline` and gives that account
//! three outbound block rules:
//!
//! 1. every protocol to every address except loopback (`127.0.0.0/8`,
//!    `::1`);
//! 2. UDP to loopback;
//! 3. TCP to loopback on every port except the proxy's.
//!
//! Block rules win over allow rules in Windows Firewall, so "all but the
//! proxy" cannot be a block plus an allow: the exceptions are carved out
//! of the block rules' own address and port ranges, computed here.
//!
//! Setup reads the rules back and calls [`verify`], so a rule that Group
//! Policy dropped or someone edited is reported rather than trusted.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::sddl::local_user_authorized_list;
use crate::sid::Sid;

/// Every rule moat makes for the offline account starts with this.
pub const OFFLINE_PREFIX: &str = "moat-offline-";

/// `NET_FW_PROFILE2_ALL`: domain, private and public.
pub const ALL_PROFILES: u32 = 0x7FFF_FFFF;

/// Loopback, as firewall address ranges.
pub const LOOPBACK: &str = "127.0.0.0-127.255.255.255,::1";

/// The first of the loopback TCP ports `moat setup` opens to the offline
/// account for moat's proxy ([`PROXY_PORT_COUNT`] in a row). A run with
/// `--network allow` listens on the first of them that is free, so that
/// runs at the same time each have one. Below Windows' dynamic range
/// (49152 and up), where outgoing connections take their ports.
pub const PROXY_PORT_FIRST: u16 = 47_810;

/// How many proxy ports setup opens: at most this many allowlisted runs
/// in the elevated tier at once.
pub const PROXY_PORT_COUNT: u16 = 8;

/// The proxy ports setup opens and records, in the order runs try them.
pub fn proxy_ports() -> Vec<u16> {
    (0..PROXY_PORT_COUNT)
        .map(|i| PROXY_PORT_FIRST + i)
        .collect()
}

/// Traffic direction (`NET_FW_RULE_DIRECTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    /// The COM value.
    pub fn number(self) -> i32 {
        match self {
            Direction::In => 1,
            Direction::Out => 2,
        }
    }

    pub fn from_number(n: i32) -> Option<Direction> {
        match n {
            1 => Some(Direction::In),
            2 => Some(Direction::Out),
            _ => None,
        }
    }
}

/// What a rule does (`NET_FW_ACTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Block,
    Allow,
}

impl Action {
    /// The COM value.
    pub fn number(self) -> i32 {
        match self {
            Action::Block => 0,
            Action::Allow => 1,
        }
    }

    pub fn from_number(n: i32) -> Option<Action> {
        match n {
            0 => Some(Action::Block),
            1 => Some(Action::Allow),
            _ => None,
        }
    }
}

/// The IP protocol a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Any,
    Tcp,
    Udp,
}

impl Protocol {
    /// The COM value: an IANA protocol number, or 256 for any.
    pub fn number(self) -> i32 {
        match self {
            Protocol::Any => 256,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn from_number(n: i32) -> Option<Protocol> {
        match n {
            256 => Some(Protocol::Any),
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// One firewall rule, as moat writes it and reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub direction: Direction,
    pub action: Action,
    pub protocol: Protocol,
    /// Comma-separated addresses or ranges; `*` for any.
    pub remote_addresses: String,
    /// Comma-separated ports or ranges; `*` for any (the only value
    /// Windows takes when the protocol is not TCP or UDP).
    pub remote_ports: String,
    /// SDDL naming the accounts the rule applies to.
    pub local_user_authorized_list: String,
    pub profiles: u32,
    pub enabled: bool,
}

impl Rule {
    /// The fields where `actual` differs from this rule, each as
    /// `field: "actual", expected "wanted"`. Address and port lists compare
    /// as sets, and single addresses match their `/255.255.255.255` or
    /// `/128` spelling, because Windows rewrites lists that way when it
    /// stores them.
    pub fn differences(&self, actual: &Rule) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |name: &str, same: bool, got: String, want: String| {
            if !same {
                out.push(format!("{}: {:?}, expected {:?}", name, got, want));
            }
        };
        field(
            "description",
            self.description == actual.description,
            actual.description.clone(),
            self.description.clone(),
        );
        field(
            "direction",
            self.direction == actual.direction,
            format!("{:?}", actual.direction),
            format!("{:?}", self.direction),
        );
        field(
            "action",
            self.action == actual.action,
            format!("{:?}", actual.action),
            format!("{:?}", self.action),
        );
        field(
            "protocol",
            self.protocol == actual.protocol,
            format!("{:?}", actual.protocol),
            format!("{:?}", self.protocol),
        );
        field(
            "remote_addresses",
            address_set(&self.remote_addresses) == address_set(&actual.remote_addresses),
            actual.remote_addresses.clone(),
            self.remote_addresses.clone(),
        );
        field(
            "remote_ports",
            port_set(&self.remote_ports) == port_set(&actual.remote_ports),
            actual.remote_ports.clone(),
            self.remote_ports.clone(),
        );
        field(
            "local_user_authorized_list",
            self.local_user_authorized_list
                .eq_ignore_ascii_case(&actual.local_user_authorized_list),
            actual.local_user_authorized_list.clone(),
            self.local_user_authorized_list.clone(),
        );
        field(
            "profiles",
            self.profiles == actual.profiles,
            format!("{:#x}", actual.profiles),
            format!("{:#x}", self.profiles),
        );
        field(
            "enabled",
            self.enabled == actual.enabled,
            actual.enabled.to_string(),
            self.enabled.to_string(),
        );
        out
    }
}

fn address_set(list: &str) -> Vec<String> {
    let mut items: Vec<String> = list
        .split(',')
        .map(|a| {
            let a = a.trim().to_ascii_lowercase();
            let single = a
                .strip_suffix("/255.255.255.255")
                .or_else(|| a.strip_suffix("/128"))
                .map(|s| s.to_string());
            single.unwrap_or(a)
        })
        .filter(|a| !a.is_empty())
        .collect();
    items.sort();
    items.dedup();
    items
}

fn port_set(list: &str) -> Vec<String> {
    let mut items: Vec<String> = list
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    items.sort();
    items.dedup();
    items
}

/// Why no rules could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirewallError {
    /// Port 0 cannot be connected to, so it cannot be the proxy's.
    PortZero,
    /// The rules must name a created account: scoped to Everyone or a
    /// built-in group, they would cut the whole machine off.
    NotAnAccount(Sid),
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallError::PortZero => f.write_str("port 0 is not a valid proxy port"),
            FirewallError::NotAnAccount(sid) => write!(
                f,
                "{} is not a created local account (S-1-5-21-...-RID, RID 1000 or more); \
                 firewall rules scoped to it could cut off more than the sandbox",
                sid
            ),
        }
    }
}

impl std::error::Error for FirewallError {}

/// The ranges of `lo..=hi` not covered by any of `excluded` (which may be
/// unsorted, overlapping or partly outside).
fn gaps(lo: u128, hi: u128, excluded: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut sorted: Vec<(u128, u128)> = excluded
        .iter()
        .filter(|(a, b)| a <= b && *b >= lo && *a <= hi)
        .copied()
        .collect();
    sorted.sort();
    let mut out = Vec::new();
    // `next` is the first value not yet accounted for; None once past `hi`.
    let mut next = Some(lo);
    for (a, b) in sorted {
        let start = match next {
            Some(n) => n,
            None => break,
        };
        if a > start {
            out.push((start, a - 1));
        }
        if b >= start {
            next = if b >= hi { None } else { Some(b + 1) };
        }
    }
    if let Some(start) = next {
        out.push((start, hi));
    }
    out
}

fn render<F: Fn(u128) -> String>(ranges: &[(u128, u128)], show: F) -> Vec<String> {
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                show(*a)
            } else {
                format!("{}-{}", show(*a), show(*b))
            }
        })
        .collect()
}

/// Every IPv4 and IPv6 address except loopback, as firewall ranges:
/// `0.0.0.0-126.255.255.255`, `128.0.0.0-255.255.255.255`, `::` and
/// `::2-ffff:...:ffff`.
pub fn non_loopback_addresses() -> String {
    let v4_loopback = (u128::from(0x7f00_0000u32), u128::from(0x7fff_ffffu32));
    let v4 = gaps(0, u128::from(u32::MAX), &[v4_loopback]);
    let v6 = gaps(0, u128::MAX, &[(1, 1)]);
    let mut parts = render(&v4, |n| Ipv4Addr::from(n as u32).to_string());
    parts.extend(render(&v6, |n| Ipv6Addr::from(n).to_string()));
    parts.join(",")
}

/// The TCP ports 1-65535 other than `proxy_ports`, as firewall ranges
/// (`1-1079,1081-3127,3129-65535` for 3128 and 1080). Empty when the
/// proxy ports cover them all.
pub fn ports_except(proxy_ports: &[u16]) -> Result<String, FirewallError> {
    if proxy_ports.contains(&0) {
        return Err(FirewallError::PortZero);
    }
    let excluded: Vec<(u128, u128)> = proxy_ports
        .iter()
        .map(|p| (u128::from(*p), u128::from(*p)))
        .collect();
    let ranges = gaps(1, 65535, &excluded);
    Ok(render(&ranges, |n| n.to_string()).join(","))
}

fn offline_rule(account: &Sid, suffix: &str, what: &str, protocol: Protocol) -> Rule {
    Rule {
        name: format!("{}{}", OFFLINE_PREFIX, suffix),
        description: format!(
            "moat: keeps the offline sandbox account from {} (only the proxy is reachable)",
            what
        ),
        direction: Direction::Out,
        action: Action::Block,
        protocol,
        remote_addresses: String::new(),
        remote_ports: "*".to_string(),
        local_user_authorized_list: local_user_authorized_list(account),
        profiles: ALL_PROFILES,
        enabled: true,
    }
}

/// The rules for the offline account, given the ports the proxy listens
/// on at loopback. With no proxy port, all loopback TCP is blocked too.
pub fn offline_rules(account: &Sid, proxy_ports: &[u16]) -> Result<Vec<Rule>, FirewallError> {
    if !account.is_created_account() {
        return Err(FirewallError::NotAnAccount(*account));
    }
    let tcp_ports = ports_except(proxy_ports)?;
    let mut remote = offline_rule(
        account,
        "block-remote",
        "reaching any other host",
        Protocol::Any,
    );
    remote.remote_addresses = non_loopback_addresses();
    let mut udp = offline_rule(
        account,
        "block-loopback-udp",
        "sending UDP to this machine",
        Protocol::Udp,
    );
    udp.remote_addresses = LOOPBACK.to_string();
    let mut rules = vec![remote, udp];
    // Ports that cover all of 1-65535 leave nothing to block; an empty
    // port list would mean "any port" to the firewall.
    if !tcp_ports.is_empty() {
        let mut tcp = offline_rule(
            account,
            "block-loopback-tcp",
            "connecting to local services",
            Protocol::Tcp,
        );
        tcp.remote_addresses = LOOPBACK.to_string();
        tcp.remote_ports = tcp_ports;
        rules.push(tcp);
    }
    Ok(rules)
}

/// Compares the rules moat wrote with those read back, naming every rule
/// that is missing, present more than once, different in a field, or
/// carrying moat's prefix without being expected (a leftover, say, from an
/// older proxy port). Empty means all is as it should be.
pub fn verify(expected: &[Rule], read_back: &[Rule]) -> Vec<String> {
    let mut problems = Vec::new();
    for want in expected {
        let found: Vec<&Rule> = read_back.iter().filter(|r| r.name == want.name).collect();
        if found.is_empty() {
            problems.push(format!("rule {} is missing", want.name));
            continue;
        }
        if found.len() > 1 {
            problems.push(format!(
                "rule {} exists {} times; the copies may differ",
                want.name,
                found.len()
            ));
        }
        for got in found {
            for diff in want.differences(got) {
                problems.push(format!("rule {}: {}", want.name, diff));
            }
        }
    }
    let mut reported: Vec<&str> = Vec::new();
    for got in read_back {
        let ours = got.name.starts_with(OFFLINE_PREFIX);
        let known = expected.iter().any(|w| w.name == got.name);
        if ours && !known && !reported.contains(&got.name.as_str()) {
            problems.push(format!("rule {} is not expected", got.name));
            reported.push(&got.name);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sid::{EVERYONE, USERS};

    fn account() -> Sid {
        "S-1-5-21-100-200-300-1004".parse().unwrap()
    }

    fn tcp_rule(rules: &[Rule]) -> Option<&Rule> {
        rules
            .iter()
            .find(|r| r.name == "moat-offline-block-loopback-tcp")
    }

    #[test]
    fn port_ranges_exclude_the_proxy_ports() {
        assert_eq!(
            ports_except(&[3128, 1080]).unwrap(),
            "1-1079,1081-3127,3129-65535"
        );
        assert_eq!(ports_except(&[1]).unwrap(), "2-65535");
        assert_eq!(ports_except(&[65535]).unwrap(), "1-65534");
        assert_eq!(ports_except(&[1, 65535]).unwrap(), "2-65534");
        assert_eq!(
            ports_except(&[8080, 8080, 3128, 8080]).unwrap(),
            "1-3127,3129-8079,8081-65535"
        );
        assert_eq!(ports_except(&[2, 3]).unwrap(), "1,4-65535");
        assert_eq!(ports_except(&[1, 3]).unwrap(), "2,4-65535");
        assert_eq!(ports_except(&[]).unwrap(), "1-65535");
        let every: Vec<u16> = (1..=65535).collect();
        assert_eq!(ports_except(&every).unwrap(), "");
        assert_eq!(ports_except(&[80, 0]), Err(FirewallError::PortZero));
        // The range setup opens for the proxy: one gap in the TCP rule.
        let ports = proxy_ports();
        assert_eq!(ports.len(), usize::from(PROXY_PORT_COUNT));
        assert_eq!(ports.first(), Some(&PROXY_PORT_FIRST));
        assert!(*ports.last().unwrap() < 49152, "below the dynamic range");
        assert_eq!(ports_except(&ports).unwrap(), "1-47809,47818-65535");
    }

    #[test]
    fn gaps_handle_overlaps_and_edges() {
        assert_eq!(gaps(0, 10, &[]), vec![(0, 10)]);
        assert_eq!(gaps(0, 10, &[(0, 10)]), vec![]);
        assert_eq!(gaps(0, 10, &[(3, 5), (4, 7)]), vec![(0, 2), (8, 10)]);
        assert_eq!(gaps(0, 10, &[(4, 7), (3, 5)]), vec![(0, 2), (8, 10)]);
        assert_eq!(gaps(0, 10, &[(5, 20)]), vec![(0, 4)]);
        assert_eq!(gaps(5, 10, &[(0, 6)]), vec![(7, 10)]);
        assert_eq!(gaps(0, 10, &[(7, 3)]), vec![(0, 10)]);
        assert_eq!(
            gaps(0, u128::MAX, &[(u128::MAX, u128::MAX)]),
            vec![(0, u128::MAX - 1)]
        );
        assert_eq!(gaps(0, u128::MAX, &[(0, 0)]), vec![(1, u128::MAX)]);
    }

    #[test]
    fn the_address_complement_leaves_only_loopback() {
        assert_eq!(
            non_loopback_addresses(),
            "0.0.0.0-126.255.255.255,128.0.0.0-255.255.255.255,\
             ::,::2-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn offline_rules_block_all_but_the_proxy() {
        let rules = offline_rules(&account(), &[3128]).unwrap();
        assert_eq!(rules.len(), 3);
        for rule in &rules {
            assert!(rule.name.starts_with(OFFLINE_PREFIX));
            assert_eq!(rule.direction, Direction::Out);
            assert_eq!(rule.action, Action::Block);
            assert_eq!(rule.profiles, ALL_PROFILES);
            assert!(rule.enabled);
            assert_eq!(
                rule.local_user_authorized_list,
                "O:LSD:(A;;CC;;;S-1-5-21-100-200-300-1004)"
            );
        }
        assert_eq!(rules[0].name, "moat-offline-block-remote");
        assert_eq!(rules[0].protocol, Protocol::Any);
        assert_eq!(rules[0].remote_ports, "*");
        assert_eq!(rules[0].remote_addresses, non_loopback_addresses());
        assert_eq!(rules[1].name, "moat-offline-block-loopback-udp");
        assert_eq!(rules[1].protocol, Protocol::Udp);
        assert_eq!(rules[1].remote_addresses, LOOPBACK);
        assert_eq!(rules[1].remote_ports, "*");
        let tcp = tcp_rule(&rules).unwrap();
        assert_eq!(tcp.protocol, Protocol::Tcp);
        assert_eq!(tcp.remote_addresses, LOOPBACK);
        assert_eq!(tcp.remote_ports, "1-3127,3129-65535");
        // Names are unique.
        let mut names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn no_proxy_blocks_all_loopback_tcp_and_every_port_leaves_no_tcp_rule() {
        let rules = offline_rules(&account(), &[]).unwrap();
        assert_eq!(tcp_rule(&rules).unwrap().remote_ports, "1-65535");
        let every: Vec<u16> = (1..=65535).collect();
        let rules = offline_rules(&account(), &every).unwrap();
        assert!(tcp_rule(&rules).is_none());
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            offline_rules(&account(), &[0]),
            Err(FirewallError::PortZero)
        );
        for sid in [EVERYONE, USERS, "S-1-5-21-1-2-3-500".parse().unwrap()] {
            assert_eq!(
                offline_rules(&sid, &[3128]),
                Err(FirewallError::NotAnAccount(sid))
            );
        }
        assert!(FirewallError::PortZero.to_string().contains("port 0"));
    }

    #[test]
    fn com_numbers_round_trip() {
        for p in [Protocol::Any, Protocol::Tcp, Protocol::Udp] {
            assert_eq!(Protocol::from_number(p.number()), Some(p));
        }
        for a in [Action::Block, Action::Allow] {
            assert_eq!(Action::from_number(a.number()), Some(a));
        }
        for d in [Direction::In, Direction::Out] {
            assert_eq!(Direction::from_number(d.number()), Some(d));
        }
        assert_eq!(Protocol::from_number(1), None);
        assert_eq!(Action::from_number(2), None);
        assert_eq!(Direction::from_number(0), None);
    }

    #[test]
    fn verify_accepts_what_was_written() {
        let rules = offline_rules(&account(), &[3128, 1080]).unwrap();
        assert!(verify(&rules, &rules).is_empty());
        // Windows' rewriting of lists is not a difference.
        let mut rewritten = rules.clone();
        rewritten.reverse();
        rewritten[1].remote_addresses = "::1/128, 127.0.0.0-127.255.255.255".into();
        rewritten[0].remote_ports = "3129-65535,1-1079,1081-3127".into();
        assert!(
            verify(&rules, &rewritten).is_empty(),
            "{:?}",
            verify(&rules, &rewritten)
        );
    }

    #[test]
    fn verify_names_missing_changed_duplicate_and_stray_rules() {
        let rules = offline_rules(&account(), &[3128]).unwrap();

        let missing: Vec<Rule> = rules[..2].to_vec();
        assert_eq!(
            verify(&rules, &missing),
            vec!["rule moat-offline-block-loopback-tcp is missing"]
        );

        let mut changed = rules.clone();
        changed[2].remote_ports = "1-65535".into();
        changed[0].enabled = false;
        let problems = verify(&rules, &changed);
        assert_eq!(problems.len(), 2, "{:?}", problems);
        assert!(problems[0].starts_with("rule moat-offline-block-remote: enabled"));
        assert!(problems[1].contains("remote_ports"));
        assert!(problems[1].contains("1-3127,3129-65535"));

        let mut other_account = rules.clone();
        other_account[1].local_user_authorized_list = "O:LSD:(A;;CC;;;S-1-5-21-1-2-3-1005)".into();
        other_account[1].action = Action::Allow;
        other_account[1].protocol = Protocol::Tcp;
        other_account[1].profiles = 1;
        other_account[1].description = "edited".into();
        other_account[1].direction = Direction::In;
        let problems = verify(&rules, &other_account);
        assert_eq!(problems.len(), 6, "{:?}", problems);
        for field in [
            "description",
            "direction",
            "action",
            "protocol",
            "local_user_authorized_list",
            "profiles",
        ] {
            assert!(problems.iter().any(|p| p.contains(field)), "{}", field);
        }

        let mut doubled = rules.clone();
        let mut copy = rules[1].clone();
        copy.remote_addresses = "*".into();
        doubled.push(copy);
        let problems = verify(&rules, &doubled);
        assert_eq!(problems.len(), 2, "{:?}", problems);
        assert!(problems[0].contains("exists 2 times"));
        assert!(problems[1].contains("remote_addresses"));

        let mut stray = rules.clone();
        let mut old = rules[2].clone();
        old.name = "moat-offline-allow-old".into();
        stray.push(old.clone());
        stray.push(old);
        let mut foreign = rules[2].clone();
        foreign.name = "someone-else".into();
        stray.push(foreign);
        assert_eq!(
            verify(&rules, &stray),
            vec!["rule moat-offline-allow-old is not expected"]
        );
    }
}
