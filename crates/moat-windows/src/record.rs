//! The Windows setup record: what `moat setup` made (accounts, group,
//! firewall rules and the proxy ports they leave open, the secrets
//! directory, whether the accounts are hidden from the sign-in screen), written after every step, so that a later run
//! can check it, a newer moat can upgrade it and `--remove` can undo
//! exactly it. One `key = value` per line, so that it needs no parser
//! beyond this file (the crate builds with Rust 1.63 and few dependencies).

use std::fmt;

/// The version this moat writes; 1 is the first. Version 2 added
/// `runner` (where setup installed the runner); a version-1 record is
/// still read, and means the runner next to moat's executable. Version 3
/// added `proxy_ports` (the loopback ports the offline account may reach,
/// for moat's proxy); an older record has none, so an allowlisted run in
/// the elevated tier asks for `moat setup` again.
pub const VERSION: u32 = 3;

/// The oldest version this moat reads.
pub const OLDEST: u32 = 1;

/// The first version with a `runner` key.
const RUNNER_SINCE: u32 = 2;

/// The first version with a `proxy_ports` key.
const PROXY_PORTS_SINCE: u32 = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub version: u32,
    /// Accounts made: name and SID string.
    pub accounts: Vec<(String, String)>,
    /// The group made: name and SID string.
    pub group: Option<(String, String)>,
    pub firewall_rules: Vec<String>,
    /// Where the DPAPI-protected passwords are kept.
    pub secrets: Option<String>,
    /// Whether the accounts were hidden from the sign-in screen.
    pub hidden: bool,
    /// Where the ledger of ACEs moat added is kept.
    pub ledger: Option<String>,
    /// The runner setup installed (an absolute path), since version 2.
    pub runner: Option<String>,
    /// The loopback TCP ports the offline account's firewall rules leave
    /// open for moat's proxy, since version 3.
    pub proxy_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Line number and what is wrong with it.
    Line(usize, String),
    Newer(u32),
    NoVersion,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Line(n, what) => write!(f, "the setup record, line {}: {}", n, what),
            RecordError::Newer(v) => write!(
                f,
                "the setup record was written by a newer moat (version {}, this moat knows {}): use that moat",
                v, VERSION
            ),
            RecordError::NoVersion => f.write_str("the setup record has no version line"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Values are single lines: line breaks are escaped, so a name cannot
/// forge another entry.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            _ => return Err("a backslash that escapes nothing".to_string()),
        }
    }
    Ok(out)
}

fn pair(value: &str) -> Result<(String, String), String> {
    let (name, sid) = match value.rsplit_once(' ') {
        Some(p) => p,
        None => return Err("expected a name and a SID".to_string()),
    };
    if !sid.starts_with("S-") {
        return Err(format!("{} is not a SID", sid));
    }
    Ok((unescape(name)?, sid.to_string()))
}

impl Record {
    pub fn to_text(&self) -> String {
        let mut out = String::from("# Written by `moat setup`; `moat setup --remove` undoes it.\n");
        out.push_str(&format!("version = {}\n", self.version));
        for (name, sid) in &self.accounts {
            out.push_str(&format!("account = {} {}\n", escape(name), sid));
        }
        if let Some((name, sid)) = &self.group {
            out.push_str(&format!("group = {} {}\n", escape(name), sid));
        }
        for rule in &self.firewall_rules {
            out.push_str(&format!("firewall_rule = {}\n", escape(rule)));
        }
        if let Some(s) = &self.secrets {
            out.push_str(&format!("secrets = {}\n", escape(s)));
        }
        out.push_str(&format!("hidden = {}\n", self.hidden));
        if let Some(l) = &self.ledger {
            out.push_str(&format!("ledger = {}\n", escape(l)));
        }
        if let Some(r) = &self.runner {
            out.push_str(&format!("runner = {}\n", escape(r)));
        }
        if !self.proxy_ports.is_empty() {
            let ports: Vec<String> = self.proxy_ports.iter().map(u16::to_string).collect();
            out.push_str(&format!("proxy_ports = {}\n", ports.join(" ")));
        }
        out
    }

    /// Reads a record; refuses unknown keys (a record this moat does not
    /// understand must not be half-undone) and newer versions.
    pub fn parse(text: &str) -> Result<Record, RecordError> {
        let mut r = Record::default();
        let mut version = None;
        let mut runner_line = None;
        let mut proxy_ports_line = None;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(" = ") {
                Some(kv) => kv,
                None => return Err(RecordError::Line(n, "expected `key = value`".into())),
            };
            let bad = |what: String| RecordError::Line(n, what);
            match key {
                "version" => {
                    let v = value
                        .parse::<u32>()
                        .map_err(|_| bad(format!("{} is not a version", value)))?;
                    version = Some(v);
                }
                "account" => r.accounts.push(pair(value).map_err(bad)?),
                "group" => r.group = Some(pair(value).map_err(bad)?),
                "firewall_rule" => r.firewall_rules.push(unescape(value).map_err(bad)?),
                "secrets" => r.secrets = Some(unescape(value).map_err(bad)?),
                "hidden" => {
                    r.hidden = match value {
                        "true" => true,
                        "false" => false,
                        other => return Err(bad(format!("{} is not true or false", other))),
                    }
                }
                "ledger" => r.ledger = Some(unescape(value).map_err(bad)?),
                "runner" => {
                    runner_line = Some(n);
                    r.runner = Some(unescape(value).map_err(bad)?);
                }
                "proxy_ports" => {
                    proxy_ports_line = Some(n);
                    r.proxy_ports.clear();
                    for port in value.split(' ') {
                        match port.parse::<u16>() {
                            Ok(p) if p != 0 => r.proxy_ports.push(p),
                            _ => return Err(bad(format!("{:?} is not a TCP port", port))),
                        }
                    }
                }
                other => return Err(bad(format!("unknown key {}", other))),
            }
        }
        let v = version.ok_or(RecordError::NoVersion)?;
        if v > VERSION {
            return Err(RecordError::Newer(v));
        }
        // A key its version does not have is as unknown as any other.
        for (line, key, since) in [
            (runner_line, "runner", RUNNER_SINCE),
            (proxy_ports_line, "proxy_ports", PROXY_PORTS_SINCE),
        ] {
            if let Some(n) = line {
                if v < since {
                    return Err(RecordError::Line(
                        n,
                        format!("unknown key {} (a version {} record)", key, v),
                    ));
                }
            }
        }
        r.version = v;
        Ok(r)
    }

    /// Brings an older record to this version (version 1 only lacks the
    /// runner, which then stays next to moat; versions 1 and 2 lack the
    /// proxy ports, which setup then records); whether anything changed.
    pub fn upgrade(&mut self) -> bool {
        if self.version < VERSION {
            self.version = VERSION;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            version: VERSION,
            accounts: vec![
                ("MoatSandboxOffline".into(), "S-1-5-21-1-2-3-1001".into()),
                ("MoatSandboxOnline".into(), "S-1-5-21-1-2-3-1002".into()),
            ],
            group: Some(("MoatSandboxUsers".into(), "S-1-5-21-1-2-3-1003".into())),
            firewall_rules: vec!["moat-offline-block-remote".into(), "odd\nname\\x".into()],
            secrets: Some(r"C:\ProgramData\moat\secrets".into()),
            hidden: true,
            ledger: Some(r"C:\ProgramData\moat\acl-ledger".into()),
            runner: Some(r"C:\ProgramData\moat\runner\moat-runner.exe".into()),
            proxy_ports: vec![47810, 47811, 65535],
        }
    }

    #[test]
    fn a_record_survives_a_round_trip() {
        let r = sample();
        assert_eq!(Record::parse(&r.to_text()), Ok(r));
        let empty = Record {
            version: VERSION,
            ..Record::default()
        };
        assert_eq!(Record::parse(&empty.to_text()), Ok(empty));
    }

    #[test]
    fn bad_or_newer_records_are_refused_by_line() {
        let text = sample().to_text();
        assert_eq!(
            Record::parse(&text.replace(&format!("version = {}", VERSION), "version = 9")),
            Err(RecordError::Newer(9))
        );
        assert_eq!(
            Record::parse("account = x S-1-1-0\n"),
            Err(RecordError::NoVersion)
        );
        for (bad, line) in [
            ("version = 1\nmystery = 1\n", 2),
            ("version = one\n", 1),
            ("version = 1\naccount = nosid\n", 2),
            ("version = 1\nhidden = maybe\n", 2),
            ("version = 1\nsecrets = a\\qb\n", 2),
            ("version = 1\njust words\n", 2),
            ("version = 3\nproxy_ports = 80 0\n", 2),
            ("version = 3\nproxy_ports = 80  81\n", 2),
            ("version = 3\nproxy_ports = 65536\n", 2),
            ("version = 3\nproxy_ports = \n", 2),
            ("version = 3\nproxy_ports = http\n", 2),
        ] {
            let got = Record::parse(bad);
            assert!(
                matches!(&got, Err(RecordError::Line(n, why)) if *n == line && !why.is_empty()),
                "{}: {:?}",
                bad,
                got
            );
        }
        // Version 1 is still read, without the key it does not have.
        let mut v1 = sample();
        v1.version = 1;
        v1.runner = None;
        v1.proxy_ports.clear();
        assert_eq!(Record::parse(&v1.to_text()), Ok(v1.clone()));
        let mut with_runner = v1.to_text();
        with_runner.push_str("runner = C:/x/moat-runner.exe\n");
        let got = Record::parse(&with_runner);
        assert!(
            matches!(&got, Err(RecordError::Line(_, why)) if why.contains("runner")),
            "{:?}",
            got
        );
        // Version 2 is read too, without the proxy ports.
        let mut v2 = sample();
        v2.version = 2;
        v2.proxy_ports.clear();
        assert_eq!(Record::parse(&v2.to_text()), Ok(v2.clone()));
        let mut with_ports = v2.to_text();
        with_ports.push_str("proxy_ports = 47810\n");
        let got = Record::parse(&with_ports);
        assert!(
            matches!(&got, Err(RecordError::Line(_, why)) if why.contains("proxy_ports")),
            "{:?}",
            got
        );
        assert!(sample()
            .to_text()
            .contains("\nproxy_ports = 47810 47811 65535\n"));
        let mut up = v1;
        assert!(up.upgrade());
        assert_eq!(up.version, VERSION);
        let mut old = sample();
        old.version = 0;
        assert!(old.upgrade());
        assert!(!old.upgrade());
    }
}
