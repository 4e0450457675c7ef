//! The request moat sends the launcher, and its wire format.
//!
//! The launcher runs setuid root and reads this from a caller it does not
//! trust, so the format is small and strict: a sequence of fields, each a
//! one-byte tag followed by a netstring (`<decimal length>:<bytes>,`).
//! Unknown tags, repeated single fields, missing fields, lengths with
//! leading zeros or beyond the limits, and trailing bytes are all errors.
//! Nothing is interpreted here beyond its shape; [`crate::validate`]
//! decides what the values may be.

use std::fmt;

/// The largest request accepted, in bytes.
pub const MAX_REQUEST: usize = 1 << 20;
/// The longest path (PATH_MAX, with its NUL).
pub const MAX_PATH: usize = 4095;
pub const MAX_ARGS: usize = 4096;
pub const MAX_ENV: usize = 4096;
/// The longest single argument or environment entry.
pub const MAX_STRING: usize = 128 * 1024;
pub const MAX_PATHS: usize = 256;

pub const VERSION: u32 = 2;

/// Which sandbox account runs the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// No network at all (the firewall refuses its traffic).
    Offline,
    /// The host's network.
    Online,
}

/// The run's network mode; it must agree with the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Off,
    /// Only moat's proxy, whose listeners the launcher hands back.
    Allow,
    On,
}

/// What a listed path is (it decides how it is masked or pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// Sockets, fifos, devices, or a placeholder's name.
    Other,
}

/// A path with its kind: on the wire, one kind byte (`d`, `f`, `o`)
/// followed by the path.
pub type KindPath = (Kind, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub account: Account,
    pub network: Network,
    pub workspace: Vec<u8>,
    pub writable: Vec<Vec<u8>>,
    /// `Some`: only these (and the writable roots) are readable.
    pub readable: Option<Vec<Vec<u8>>>,
    pub deny_read: Vec<KindPath>,
    /// Kept read-only inside the writable roots.
    pub protected: Vec<KindPath>,
    /// Directories made mount points above protected paths.
    pub pins: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    /// `NAME=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    pub timeout_ms: Option<u64>,
    pub processes: Option<u64>,
    pub memory: Option<u64>,
    pub file_size: Option<u64>,
    /// Thousandths of a CPU.
    pub cpu: Option<u64>,
    /// Give the command a terminal of its own.
    pub pty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TooLarge(usize),
    Truncated,
    BadLength,
    MissingComma,
    UnknownTag(u8),
    Repeated(&'static str),
    Missing(&'static str),
    TooMany(&'static str, usize),
    TooLong(&'static str, usize),
    Version(String),
    BadValue(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLarge(n) => {
                write!(f, "request of {n} bytes is larger than {MAX_REQUEST}")
            }
            ParseError::Truncated => f.write_str("request ends in the middle of a field"),
            ParseError::BadLength => f.write_str("a field's length is not a plain decimal number"),
            ParseError::MissingComma => f.write_str("a field does not end with ','"),
            ParseError::UnknownTag(t) => write!(f, "unknown field tag {t:#04x}"),
            ParseError::Repeated(what) => write!(f, "{what} given twice"),
            ParseError::Missing(what) => write!(f, "{what} missing"),
            ParseError::TooMany(what, n) => write!(f, "more than {n} {what}"),
            ParseError::TooLong(what, n) => write!(f, "{what} longer than {n} bytes"),
            ParseError::Version(v) => {
                write!(f, "request version {v}, this launcher knows {VERSION}")
            }
            ParseError::BadValue(what) => {
                write!(f, "{what} has a value the launcher does not accept")
            }
        }
    }
}

impl std::error::Error for ParseError {}

// Field tags.
const T_VERSION: u8 = b'V';
const T_ACCOUNT: u8 = b'A';
const T_WORKSPACE: u8 = b'W';
const T_WRITABLE: u8 = b'w';
const T_DENY: u8 = b'd';
const T_CWD: u8 = b'C';
const T_ARG: u8 = b'a';
const T_ENV: u8 = b'e';
const T_TIMEOUT: u8 = b'T';
const T_NETWORK: u8 = b'N';
const T_READABLE: u8 = b'r';
const T_RESTRICTED: u8 = b'R';
const T_PROTECTED: u8 = b'p';
const T_PIN: u8 = b'n';
const T_PROCESSES: u8 = b'P';
const T_MEMORY: u8 = b'M';
const T_FILE_SIZE: u8 = b'F';
const T_CPU: u8 = b'c';
const T_PTY: u8 = b't';

fn kind_path(kind: Kind, path: &[u8]) -> Vec<u8> {
    let k = match kind {
        Kind::Dir => b'd',
        Kind::File => b'f',
        Kind::Other => b'o',
    };
    std::iter::once(k).chain(path.iter().copied()).collect()
}

fn parse_kind_path(value: &[u8], what: &'static str) -> Result<KindPath, ParseError> {
    let (k, rest) = value.split_first().ok_or(ParseError::BadValue(what))?;
    let kind = match k {
        b'd' => Kind::Dir,
        b'f' => Kind::File,
        b'o' => Kind::Other,
        _ => return Err(ParseError::BadValue(what)),
    };
    Ok((kind, path(rest, what)?))
}

fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b',');
}

impl Request {
    /// The request on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, T_VERSION, VERSION.to_string().as_bytes());
        let account: &[u8] = match self.account {
            Account::Offline => b"offline",
            Account::Online => b"online",
        };
        field(&mut out, T_ACCOUNT, account);
        let network: &[u8] = match self.network {
            Network::Off => b"off",
            Network::Allow => b"allow",
            Network::On => b"on",
        };
        field(&mut out, T_NETWORK, network);
        field(&mut out, T_WORKSPACE, &self.workspace);
        for w in &self.writable {
            field(&mut out, T_WRITABLE, w);
        }
        if let Some(readable) = &self.readable {
            field(&mut out, T_RESTRICTED, b"1");
            for r in readable {
                field(&mut out, T_READABLE, r);
            }
        }
        for (k, d) in &self.deny_read {
            field(&mut out, T_DENY, &kind_path(*k, d));
        }
        for (k, p) in &self.protected {
            field(&mut out, T_PROTECTED, &kind_path(*k, p));
        }
        for p in &self.pins {
            field(&mut out, T_PIN, p);
        }
        field(&mut out, T_CWD, &self.cwd);
        for a in &self.argv {
            field(&mut out, T_ARG, a);
        }
        for e in &self.env {
            field(&mut out, T_ENV, e);
        }
        for (tag, value) in [
            (T_TIMEOUT, self.timeout_ms),
            (T_PROCESSES, self.processes),
            (T_MEMORY, self.memory),
            (T_FILE_SIZE, self.file_size),
            (T_CPU, self.cpu),
        ] {
            if let Some(v) = value {
                field(&mut out, tag, v.to_string().as_bytes());
            }
        }
        if self.pty {
            field(&mut out, T_PTY, b"1");
        }
        out
    }

    /// Parses a request; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Request, ParseError> {
        if bytes.len() > MAX_REQUEST {
            return Err(ParseError::TooLarge(bytes.len()));
        }
        let mut version = None;
        let mut account = None;
        let mut workspace = None;
        let mut cwd = None;
        let mut timeout = None;
        let (mut network, mut restricted, mut pty) = (None, None, None);
        let (mut processes, mut memory, mut file_size, mut cpu) = (None, None, None, None);
        let (mut writable, mut deny_read, mut argv, mut env) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut readable, mut protected, mut pins) = (Vec::new(), Vec::new(), Vec::new());
        let mut rest = bytes;
        while let Some((&tag, after)) = rest.split_first() {
            let (value, next) = netstring(after)?;
            rest = next;
            match tag {
                T_VERSION => once(&mut version, value, "the version")?,
                T_ACCOUNT => once(&mut account, value, "the account")?,
                T_WORKSPACE => once(
                    &mut workspace,
                    path(value, "the workspace")?,
                    "the workspace",
                )?,
                T_CWD => once(
                    &mut cwd,
                    path(value, "the working directory")?,
                    "the working directory",
                )?,
                T_TIMEOUT => once(&mut timeout, value, "the timeout")?,
                T_NETWORK => once(&mut network, value, "the network")?,
                T_RESTRICTED => once(&mut restricted, value, "the read mode")?,
                T_PTY => once(&mut pty, value, "the terminal flag")?,
                T_PROCESSES => once(&mut processes, value, "the process limit")?,
                T_MEMORY => once(&mut memory, value, "the memory limit")?,
                T_FILE_SIZE => once(&mut file_size, value, "the file size limit")?,
                T_CPU => once(&mut cpu, value, "the CPU limit")?,
                T_READABLE => push(
                    &mut readable,
                    path(value, "a readable path")?,
                    "readable paths",
                    MAX_PATHS,
                )?,
                T_PROTECTED => {
                    if protected.len() >= MAX_PATHS {
                        return Err(ParseError::TooMany("protected paths", MAX_PATHS));
                    }
                    protected.push(parse_kind_path(value, "a protected path")?);
                }
                T_PIN => push(&mut pins, path(value, "a pinned path")?, "pins", MAX_PATHS)?,
                T_WRITABLE => push(
                    &mut writable,
                    path(value, "a writable root")?,
                    "writable roots",
                    MAX_PATHS,
                )?,
                T_DENY => {
                    if deny_read.len() >= MAX_PATHS {
                        return Err(ParseError::TooMany("denied paths", MAX_PATHS));
                    }
                    deny_read.push(parse_kind_path(value, "a denied path")?);
                }
                T_ARG => push(
                    &mut argv,
                    string(value, "an argument")?,
                    "arguments",
                    MAX_ARGS,
                )?,
                T_ENV => push(
                    &mut env,
                    string(value, "an environment entry")?,
                    "environment entries",
                    MAX_ENV,
                )?,
                other => return Err(ParseError::UnknownTag(other)),
            }
        }
        let version = version.ok_or(ParseError::Missing("the version"))?;
        if version != VERSION.to_string().as_bytes() {
            return Err(ParseError::Version(
                String::from_utf8_lossy(version).into_owned(),
            ));
        }
        let account = match account.ok_or(ParseError::Missing("the account"))? {
            b"offline" => Account::Offline,
            b"online" => Account::Online,
            _ => return Err(ParseError::BadValue("the account")),
        };
        let network = match network.ok_or(ParseError::Missing("the network"))? {
            b"off" => Network::Off,
            b"allow" => Network::Allow,
            b"on" => Network::On,
            _ => return Err(ParseError::BadValue("the network")),
        };
        if (network == Network::On) != (account == Account::Online) {
            return Err(ParseError::BadValue("the account for this network mode"));
        }
        let number = |v: Option<&[u8]>, what| match v {
            None => Ok(None),
            Some(t) => decimal(t).map(Some).ok_or(ParseError::BadValue(what)),
        };
        let flag = |v: Option<&[u8]>, what| match v {
            None => Ok(false),
            Some(b"1") => Ok(true),
            Some(_) => Err(ParseError::BadValue(what)),
        };
        let timeout_ms = number(timeout, "the timeout")?;
        let readable = if flag(restricted, "the read mode")? {
            Some(readable)
        } else if readable.is_empty() {
            None
        } else {
            return Err(ParseError::BadValue("readable paths without the read mode"));
        };
        if argv.is_empty() {
            return Err(ParseError::Missing("the command"));
        }
        if env
            .iter()
            .any(|e: &Vec<u8>| !e.contains(&b'=') || e.first() == Some(&b'='))
        {
            return Err(ParseError::BadValue("an environment entry"));
        }
        Ok(Request {
            account,
            network,
            workspace: workspace.ok_or(ParseError::Missing("the workspace"))?,
            writable,
            readable,
            deny_read,
            protected,
            pins,
            cwd: cwd.ok_or(ParseError::Missing("the working directory"))?,
            argv,
            env,
            timeout_ms,
            processes: number(processes, "the process limit")?,
            memory: number(memory, "the memory limit")?,
            file_size: number(file_size, "the file size limit")?,
            cpu: number(cpu, "the CPU limit")?,
            pty: flag(pty, "the terminal flag")?,
        })
    }
}

/// A decimal without sign or leading zeros, that fits in a u64.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    if !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// `<len>:<bytes>,` at the start of `input`: the bytes and what follows.
fn netstring(input: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let colon = input
        .iter()
        .take(21)
        .position(|b| *b == b':')
        .ok_or(if input.len() < 21 {
            ParseError::Truncated
        } else {
            ParseError::BadLength
        })?;
    let len = decimal(&input[..colon]).ok_or(ParseError::BadLength)?;
    let len = usize::try_from(len).map_err(|_| ParseError::BadLength)?;
    let start = colon + 1;
    let end = start.checked_add(len).ok_or(ParseError::BadLength)?;
    let value = input.get(start..end).ok_or(ParseError::Truncated)?;
    match input.get(end) {
        Some(b',') => Ok((value, &input[end + 1..])),
        Some(_) => Err(ParseError::MissingComma),
        None => Err(ParseError::Truncated),
    }
}

fn once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::Repeated(what));
    }
    *slot = Some(value);
    Ok(())
}

fn push(
    list: &mut Vec<Vec<u8>>,
    value: Vec<u8>,
    what: &'static str,
    max: usize,
) -> Result<(), ParseError> {
    if list.len() >= max {
        return Err(ParseError::TooMany(what, max));
    }
    list.push(value);
    Ok(())
}

fn string(value: &[u8], what: &'static str) -> Result<Vec<u8>, ParseError> {
    if value.len() > MAX_STRING {
        return Err(ParseError::TooLong(what, MAX_STRING));
    }
    if value.contains(&0) {
        return Err(ParseError::BadValue(what));
    }
    Ok(value.to_vec())
}

fn path(value: &[u8], what: &'static str) -> Result<Vec<u8>, ParseError> {
    if value.len() > MAX_PATH {
        return Err(ParseError::TooLong(what, MAX_PATH));
    }
    string(value, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Request {
        Request {
            account: Account::Offline,
            network: Network::Allow,
            workspace: b"/home/a/prj".to_vec(),
            writable: vec![b"/home/a/.cache/x".to_vec()],
            readable: Some(vec![b"/usr".to_vec()]),
            deny_read: vec![(Kind::Dir, b"/home/a/.ssh".to_vec())],
            protected: vec![(Kind::Other, b"/home/a/prj/.git/hooks".to_vec())],
            pins: vec![b"/home/a/prj/.git".to_vec()],
            cwd: b"/home/a/prj/src".to_vec(),
            argv: vec![b"cargo".to_vec(), b"test".to_vec(), vec![0xff, b' ', b',']],
            env: vec![b"PATH=/usr/bin".to_vec(), b"EMPTY=".to_vec()],
            timeout_ms: Some(60_000),
            processes: Some(100),
            memory: None,
            file_size: Some(1 << 30),
            cpu: Some(1500),
            pty: true,
        }
    }

    #[test]
    fn a_request_survives_a_round_trip() {
        assert_eq!(Request::decode(&sample().encode()), Ok(sample()));
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        let good = sample().encode();
        let cases: Vec<(Vec<u8>, ParseError)> = vec![
            (good[..good.len() - 1].to_vec(), ParseError::Truncated),
            ([&good[..], b"Z1:x,"].concat(), ParseError::UnknownTag(b'Z')),
            (
                [&good[..], b"W2:/x,"].concat(),
                ParseError::Repeated("the workspace"),
            ),
            (
                b"V1:2,A7:offline,N3:off,W1:/,C1:/,".to_vec(),
                ParseError::Missing("the command"),
            ),
            (b"V1:1,".to_vec(), ParseError::Version("1".into())),
            (b"V01:2,".to_vec(), ParseError::BadLength),
            (b"V1:2;".to_vec(), ParseError::MissingComma),
            (
                b"V1:2,A6:online,N3:off,W1:/,C1:/,a1:x,".to_vec(),
                ParseError::BadValue("the account for this network mode"),
            ),
            (
                b"V1:2,A7:offline,N3:off,W1:/,C1:/,a1:x,d2:x/,".to_vec(),
                ParseError::BadValue("a denied path"),
            ),
            (
                b"V1:2,A7:offline,N3:off,W1:/,C1:/,a1:x,r1:/,".to_vec(),
                ParseError::BadValue("readable paths without the read mode"),
            ),
            (
                b"V1:2,A3:any,N3:off,W1:/,C1:/,a1:x,".to_vec(),
                ParseError::BadValue("the account"),
            ),
            (
                b"V1:2,A7:offline,N3:off,W1:/,C1:/,a1:x,e3:ABC,".to_vec(),
                ParseError::BadValue("an environment entry"),
            ),
            (
                b"V1:2,A7:offline,N3:off,W1:/,C1:/,a3:a\0b,".to_vec(),
                ParseError::BadValue("an argument"),
            ),
            (
                b"V1:2,A7:offline,N3:off,W1:/,C1:/,a1:x,T2:-1,".to_vec(),
                ParseError::BadValue("the timeout"),
            ),
            (
                vec![b'a'; MAX_REQUEST + 1],
                ParseError::TooLarge(MAX_REQUEST + 1),
            ),
            (b"V99999999999999999999999:".to_vec(), ParseError::BadLength),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                Request::decode(&bytes),
                Err(want.clone()),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(!want.to_string().is_empty());
        }
        let long_path = [
            b"V1:2,A7:offline,N3:off,W4096:/".as_slice(),
            &vec![b'x'; 4095],
            b",C1:/,a1:x,",
        ]
        .concat();
        assert_eq!(
            Request::decode(&long_path),
            Err(ParseError::TooLong("the workspace", MAX_PATH))
        );
        let many: Vec<u8> = std::iter::repeat_n(b"a1:x,".as_slice(), MAX_ARGS + 1)
            .flatten()
            .copied()
            .collect();
        let too_many = [b"V1:2,A7:offline,N3:off,W1:/,C1:/,".as_slice(), &many].concat();
        assert_eq!(
            Request::decode(&too_many),
            Err(ParseError::TooMany("arguments", MAX_ARGS))
        );
    }

    /// Replays the fuzzing corpus (fuzz/corpus/request): every input must
    /// parse or be refused, never panic; the seeds that are valid requests
    /// must survive a round trip.
    #[test]
    fn the_fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let decoded = Request::decode(&bytes);
            let name = entry.file_name().to_string_lossy().into_owned();
            assert_eq!(
                name.starts_with("valid-"),
                decoded.is_ok(),
                "{name}: {decoded:?}"
            );
            if let Ok(r) = decoded {
                assert_eq!(Request::decode(&r.encode()), Ok(r));
            }
            n += 1;
        }
        assert!(n >= 5, "the corpus at {} has {n} inputs", dir.display());
    }
}
