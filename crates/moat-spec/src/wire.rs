//! A [`RunSpec`] on the wire: the request moat sends the setuid launcher.
//!
//! The launcher reads this from a caller it does not trust, so the format
//! is small and strict: a sequence of fields, each a one-byte tag followed
//! by a netstring (`<decimal length>:<bytes>,`). Unknown tags, repeated
//! single fields, missing fields, lengths with leading zeros or beyond the
//! limits, and trailing bytes are all errors. Names are bytes end to end;
//! nothing is decoded lossily. Decoding checks only the shape; what the
//! values may be is for the launcher to decide.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use crate::{Cache, Entry, Fs, Isolation, Kind, Limits, Net, RunSpec};

/// The largest request accepted, in bytes.
pub const MAX_REQUEST: usize = 1 << 20;
/// The longest path (PATH_MAX, with its NUL).
pub const MAX_PATH: usize = 4095;
/// As many arguments and variables as a command line usually holds.
pub const MAX_ARGS: usize = 4096;
pub const MAX_ENV: usize = 4096;
/// The longest single argument or environment entry.
pub const MAX_STRING: usize = 128 * 1024;
/// Paths in each list: more than a policy has ever needed, few enough that
/// the launcher's checks stay quick.
pub const MAX_PATHS: usize = 256;

/// 3: the run spec (isolation, all writable roots, no account: the
/// account follows from the network); 4: cache layers.
pub const VERSION: u32 = 4;

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
const T_ISOLATION: u8 = b'I';
const T_NETWORK: u8 = b'N';
const T_WORKSPACE: u8 = b'W';
const T_WRITABLE: u8 = b'w';
const T_RESTRICTED: u8 = b'R';
const T_READABLE: u8 = b'r';
const T_DENY: u8 = b'd';
const T_PROTECTED: u8 = b'p';
const T_PIN: u8 = b'n';
// A cache layer: where it is shown, the shared layer, this run's layer,
// in that order.
const T_CACHE_AT: u8 = b'K';
const T_CACHE_SHARED: u8 = b'k';
const T_CACHE_RUN: u8 = b'j';
const T_CWD: u8 = b'C';
const T_ARG: u8 = b'a';
const T_ENV: u8 = b'e';
const T_TIMEOUT: u8 = b'T';
const T_PROCESSES: u8 = b'P';
const T_MEMORY: u8 = b'M';
const T_FILE_SIZE: u8 = b'F';
const T_CPU: u8 = b'c';
const T_PTY: u8 = b't';
const T_EXTRA_CA: u8 = b'A';

const ISOLATIONS: [(Isolation, &[u8]); 3] = [
    (Isolation::Namespaces, b"namespaces"),
    (Isolation::LandlockOnly, b"landlock-only"),
    (Isolation::Elevated, b"elevated"),
];
const NETS: [(Net, &[u8]); 3] = [
    (Net::Off, b"off"),
    (Net::Proxy, b"allow"),
    (Net::Host, b"on"),
];
const KINDS: [(Kind, u8); 3] = [(Kind::Dir, b'd'), (Kind::File, b'f'), (Kind::Other, b'o')];

fn word<T: Copy + PartialEq>(table: &[(T, &'static [u8])], value: T) -> &'static [u8] {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, w)| *w)
        .unwrap_or(b"")
}

fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b',');
}

fn entry(e: &Entry) -> Vec<u8> {
    let k = KINDS
        .iter()
        .find(|(k, _)| *k == e.kind)
        .map(|(_, b)| *b)
        .unwrap_or(b'o');
    std::iter::once(k)
        .chain(e.path.as_os_str().as_bytes().iter().copied())
        .collect()
}

/// The spec on the wire.
pub fn encode(spec: &RunSpec) -> Vec<u8> {
    let mut out = Vec::new();
    let path = |p: &PathBuf| p.as_os_str().as_bytes().to_vec();
    field(&mut out, T_VERSION, VERSION.to_string().as_bytes());
    field(&mut out, T_ISOLATION, word(&ISOLATIONS, spec.isolation));
    field(&mut out, T_NETWORK, word(&NETS, spec.net));
    let fs = &spec.fs;
    field(&mut out, T_WORKSPACE, &path(&fs.workspace));
    for w in &fs.writable {
        field(&mut out, T_WRITABLE, &path(w));
    }
    if let Some(readable) = &fs.readable {
        field(&mut out, T_RESTRICTED, b"1");
        for r in readable {
            field(&mut out, T_READABLE, &path(r));
        }
    }
    for d in &fs.denied {
        field(&mut out, T_DENY, &entry(d));
    }
    for p in &fs.protected {
        field(&mut out, T_PROTECTED, &entry(p));
    }
    for p in &fs.pins {
        field(&mut out, T_PIN, &path(p));
    }
    for c in &fs.caches {
        field(&mut out, T_CACHE_AT, &path(&c.at));
        field(&mut out, T_CACHE_SHARED, &path(&c.shared));
        field(&mut out, T_CACHE_RUN, &path(&c.run));
    }
    field(&mut out, T_CWD, &path(&spec.cwd));
    for a in &spec.argv {
        field(&mut out, T_ARG, a.as_bytes());
    }
    for (name, value) in &spec.env {
        let e = [name.as_bytes(), b"=", value.as_bytes()].concat();
        field(&mut out, T_ENV, &e);
    }
    let l = &spec.limits;
    let timeout = l
        .timeout
        .map(|t| t.as_millis().min(u128::from(u64::MAX)) as u64);
    for (tag, value) in [
        (T_TIMEOUT, timeout),
        (T_PROCESSES, l.processes),
        (T_MEMORY, l.memory),
        (T_FILE_SIZE, l.file_size),
        (T_CPU, l.cpu_millis),
    ] {
        if let Some(v) = value {
            field(&mut out, tag, v.to_string().as_bytes());
        }
    }
    if spec.pty {
        field(&mut out, T_PTY, b"1");
    }
    if let Some(pem) = &spec.extra_ca {
        field(&mut out, T_EXTRA_CA, pem.as_bytes());
    }
    out
}

/// Single fields as they come, before they are checked.
#[derive(Default)]
struct Singles<'a> {
    version: Option<&'a [u8]>,
    isolation: Option<&'a [u8]>,
    network: Option<&'a [u8]>,
    workspace: Option<PathBuf>,
    cwd: Option<PathBuf>,
    restricted: Option<&'a [u8]>,
    pty: Option<&'a [u8]>,
    extra_ca: Option<&'a [u8]>,
    timeout: Option<&'a [u8]>,
    processes: Option<&'a [u8]>,
    memory: Option<&'a [u8]>,
    file_size: Option<&'a [u8]>,
    cpu: Option<&'a [u8]>,
}

/// Parses a request; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<RunSpec, ParseError> {
    if bytes.len() > MAX_REQUEST {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let mut s = Singles::default();
    let mut fs = Fs::default();
    let (mut readable, mut argv, mut env) = (Vec::new(), Vec::new(), Vec::new());
    let mut cache: (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut rest = bytes;
    while let Some((&tag, after)) = rest.split_first() {
        let (value, next) = netstring(after)?;
        rest = next;
        match tag {
            T_VERSION => once(&mut s.version, value, "the version")?,
            T_ISOLATION => once(&mut s.isolation, value, "the isolation")?,
            T_NETWORK => once(&mut s.network, value, "the network")?,
            T_WORKSPACE => once(
                &mut s.workspace,
                path(value, "the workspace")?,
                "the workspace",
            )?,
            T_CWD => once(
                &mut s.cwd,
                path(value, "the working directory")?,
                "the working directory",
            )?,
            T_RESTRICTED => once(&mut s.restricted, value, "the read mode")?,
            T_PTY => once(&mut s.pty, value, "the terminal flag")?,
            T_EXTRA_CA => once(&mut s.extra_ca, value, "the extra certificate authority")?,
            T_TIMEOUT => once(&mut s.timeout, value, "the timeout")?,
            T_PROCESSES => once(&mut s.processes, value, "the process limit")?,
            T_MEMORY => once(&mut s.memory, value, "the memory limit")?,
            T_FILE_SIZE => once(&mut s.file_size, value, "the file size limit")?,
            T_CPU => once(&mut s.cpu, value, "the CPU limit")?,
            T_WRITABLE => push(
                &mut fs.writable,
                path(value, "a writable root")?,
                "writable roots",
                MAX_PATHS,
            )?,
            T_READABLE => push(
                &mut readable,
                path(value, "a readable path")?,
                "readable paths",
                MAX_PATHS,
            )?,
            T_DENY => push(
                &mut fs.denied,
                parse_entry(value, "a denied path")?,
                "denied paths",
                MAX_PATHS,
            )?,
            T_PROTECTED => push(
                &mut fs.protected,
                parse_entry(value, "a protected path")?,
                "protected paths",
                MAX_PATHS,
            )?,
            T_PIN => push(
                &mut fs.pins,
                path(value, "a pinned path")?,
                "pins",
                MAX_PATHS,
            )?,
            T_CACHE_AT => once(
                &mut cache.0,
                path(value, "a cache layer")?,
                "a cache layer without its layers",
            )?,
            T_CACHE_SHARED => {
                if cache.0.is_none() {
                    return Err(ParseError::BadValue("a cache's shared layer out of order"));
                }
                once(
                    &mut cache.1,
                    path(value, "a cache's shared layer")?,
                    "a cache's shared layer",
                )?
            }
            T_CACHE_RUN => {
                let (Some(at), Some(shared)) = (cache.0.take(), cache.1.take()) else {
                    return Err(ParseError::BadValue("a cache's run layer out of order"));
                };
                push(
                    &mut fs.caches,
                    Cache {
                        at,
                        shared,
                        run: path(value, "a cache's run layer")?,
                    },
                    "cache layers",
                    MAX_PATHS,
                )?
            }
            T_ARG => push(
                &mut argv,
                OsString::from_vec(string(value, "an argument")?),
                "arguments",
                MAX_ARGS,
            )?,
            T_ENV => push(&mut env, variable(value)?, "environment entries", MAX_ENV)?,
            other => return Err(ParseError::UnknownTag(other)),
        }
    }
    let version = s.version.ok_or(ParseError::Missing("the version"))?;
    if version != VERSION.to_string().as_bytes() {
        return Err(ParseError::Version(
            String::from_utf8_lossy(version).into_owned(),
        ));
    }
    let isolation = lookup(&ISOLATIONS, s.isolation, "the isolation")?;
    let net = lookup(&NETS, s.network, "the network")?;
    let flag = |v: Option<&[u8]>, what| match v {
        None => Ok(false),
        Some(b"1") => Ok(true),
        Some(_) => Err(ParseError::BadValue(what)),
    };
    fs.readable = if flag(s.restricted, "the read mode")? {
        Some(readable)
    } else if readable.is_empty() {
        None
    } else {
        return Err(ParseError::BadValue("readable paths without the read mode"));
    };
    if argv.is_empty() {
        return Err(ParseError::Missing("the command"));
    }
    if cache.0.is_some() {
        return Err(ParseError::Missing("a cache's layers"));
    }
    fs.workspace = s.workspace.ok_or(ParseError::Missing("the workspace"))?;
    let number = |v: Option<&[u8]>, what| match v {
        None => Ok(None),
        Some(t) => decimal(t).map(Some).ok_or(ParseError::BadValue(what)),
    };
    Ok(RunSpec {
        isolation,
        net,
        fs,
        limits: Limits {
            timeout: number(s.timeout, "the timeout")?.map(Duration::from_millis),
            processes: number(s.processes, "the process limit")?,
            memory: number(s.memory, "the memory limit")?,
            file_size: number(s.file_size, "the file size limit")?,
            cpu_millis: number(s.cpu, "the CPU limit")?,
        },
        env,
        argv,
        cwd: s.cwd.ok_or(ParseError::Missing("the working directory"))?,
        pty: flag(s.pty, "the terminal flag")?,
        extra_ca: match s.extra_ca {
            None => None,
            Some(v) => Some(
                String::from_utf8(string(v, "the extra certificate authority")?)
                    .map_err(|_| ParseError::BadValue("the extra certificate authority"))?,
            ),
        },
    })
}

fn lookup<T: Copy>(
    table: &[(T, &'static [u8])],
    value: Option<&[u8]>,
    what: &'static str,
) -> Result<T, ParseError> {
    let value = value.ok_or(ParseError::Missing(what))?;
    table
        .iter()
        .find(|(_, w)| *w == value)
        .map(|(v, _)| *v)
        .ok_or(ParseError::BadValue(what))
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

fn push<T>(list: &mut Vec<T>, value: T, what: &'static str, max: usize) -> Result<(), ParseError> {
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

fn path(value: &[u8], what: &'static str) -> Result<PathBuf, ParseError> {
    if value.len() > MAX_PATH {
        return Err(ParseError::TooLong(what, MAX_PATH));
    }
    Ok(PathBuf::from(OsString::from_vec(string(value, what)?)))
}

fn parse_entry(value: &[u8], what: &'static str) -> Result<Entry, ParseError> {
    let (k, rest) = value.split_first().ok_or(ParseError::BadValue(what))?;
    let kind = KINDS
        .iter()
        .find(|(_, b)| b == k)
        .map(|(kind, _)| *kind)
        .ok_or(ParseError::BadValue(what))?;
    Ok(Entry {
        kind,
        path: path(rest, what)?,
    })
}

/// `NAME=VALUE`, with a name that is not empty.
fn variable(value: &[u8]) -> Result<(OsString, OsString), ParseError> {
    let what = "an environment entry";
    let bytes = string(value, what)?;
    match bytes.iter().position(|b| *b == b'=') {
        Some(at) if at > 0 => Ok((
            OsString::from_vec(bytes[..at].to_vec()),
            OsString::from_vec(bytes[at + 1..].to_vec()),
        )),
        _ => Err(ParseError::BadValue(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunSpec {
        let p = PathBuf::from;
        RunSpec {
            isolation: Isolation::Elevated,
            net: Net::Proxy,
            fs: Fs {
                workspace: p("/home/a/prj"),
                writable: vec![p("/home/a/prj"), p("/home/a/.cache/x")],
                readable: Some(vec![p("/usr")]),
                denied: vec![Entry {
                    kind: Kind::Dir,
                    path: p("/home/a/.ssh"),
                }],
                protected: vec![Entry {
                    kind: Kind::Other,
                    path: p("/home/a/prj/.git/hooks"),
                }],
                pins: vec![p("/home/a/prj/.git")],
                caches: vec![Cache {
                    at: p("/home/a/.cargo"),
                    shared: p("/home/a/.local/state/moat/caches/cargo/shared"),
                    run: p("/home/a/.local/state/moat/caches/cargo/runs/7-1"),
                }],
            },
            limits: Limits {
                timeout: Some(Duration::from_secs(60)),
                processes: Some(100),
                memory: None,
                file_size: Some(1 << 30),
                cpu_millis: Some(1500),
            },
            env: vec![
                (OsString::from("PATH"), OsString::from("/usr/bin")),
                (OsString::from("EMPTY"), OsString::new()),
                (OsString::from("EQ"), OsString::from("a=b")),
            ],
            argv: vec![
                OsString::from("cargo"),
                OsString::from("test"),
                OsString::from_vec(vec![0xff, b' ', b',']),
            ],
            cwd: PathBuf::from(OsString::from_vec(b"/home/a/prj/\xffsrc".to_vec())),
            pty: true,
            extra_ca: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        }
    }

    #[test]
    fn a_spec_survives_a_round_trip_bytes_and_all() {
        assert_eq!(decode(&encode(&sample())), Ok(sample()));
        let mut minimal = sample();
        minimal.fs.readable = None;
        minimal.limits = Limits::default();
        minimal.pty = false;
        minimal.extra_ca = None;
        assert_eq!(decode(&encode(&minimal)), Ok(minimal));
    }

    const HEAD: &[u8] = b"V1:4,I8:elevated,N3:off,W1:/,C1:/,";

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        let good = encode(&sample());
        let with = |tail: &[u8]| [HEAD, tail].concat();
        let cases: Vec<(Vec<u8>, ParseError)> = vec![
            (good[..good.len() - 1].to_vec(), ParseError::Truncated),
            ([&good[..], b"Z1:x,"].concat(), ParseError::UnknownTag(b'Z')),
            (
                [&good[..], b"W2:/x,"].concat(),
                ParseError::Repeated("the workspace"),
            ),
            (HEAD.to_vec(), ParseError::Missing("the command")),
            (b"V1:3,".to_vec(), ParseError::Version("3".into())),
            (b"V01:4,".to_vec(), ParseError::BadLength),
            (b"V1:4;".to_vec(), ParseError::MissingComma),
            (
                b"V1:4,I3:any,N3:off,W1:/,C1:/,a1:x,".to_vec(),
                ParseError::BadValue("the isolation"),
            ),
            (
                b"V1:4,I8:elevated,N4:some,W1:/,C1:/,a1:x,".to_vec(),
                ParseError::BadValue("the network"),
            ),
            (
                b"V1:4,N3:off,W1:/,C1:/,a1:x,".to_vec(),
                ParseError::Missing("the isolation"),
            ),
            (with(b"a1:x,d2:x/,"), ParseError::BadValue("a denied path")),
            (with(b"a1:x,p0:,"), ParseError::BadValue("a protected path")),
            (
                with(b"a1:x,r1:/,"),
                ParseError::BadValue("readable paths without the read mode"),
            ),
            (
                with(b"a1:x,e3:ABC,"),
                ParseError::BadValue("an environment entry"),
            ),
            (
                with(b"a1:x,e2:=x,"),
                ParseError::BadValue("an environment entry"),
            ),
            (with(b"a3:a\0b,"), ParseError::BadValue("an argument")),
            (
                with(b"a1:x,w3:/a\0,"),
                ParseError::BadValue("a writable root"),
            ),
            (with(b"a1:x,T2:-1,"), ParseError::BadValue("the timeout")),
            (
                with(b"a1:x,k2:/s,"),
                ParseError::BadValue("a cache's shared layer out of order"),
            ),
            (
                with(b"a1:x,K2:/c,k2:/s,"),
                ParseError::Missing("a cache's layers"),
            ),
            (
                with(b"a1:x,K2:/c,j2:/r,"),
                ParseError::BadValue("a cache's run layer out of order"),
            ),
            (
                with(b"a1:x,K2:/c,K2:/d,"),
                ParseError::Repeated("a cache layer without its layers"),
            ),
            (
                with(b"a1:x,t1:2,"),
                ParseError::BadValue("the terminal flag"),
            ),
            (
                vec![b'a'; MAX_REQUEST + 1],
                ParseError::TooLarge(MAX_REQUEST + 1),
            ),
            (b"V99999999999999999999999:".to_vec(), ParseError::BadLength),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                decode(&bytes),
                Err(want.clone()),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(!want.to_string().is_empty());
        }
        let long_path = [
            b"V1:4,I8:elevated,N3:off,W4096:/".as_slice(),
            &vec![b'x'; 4095],
            b",C1:/,a1:x,",
        ]
        .concat();
        assert_eq!(
            decode(&long_path),
            Err(ParseError::TooLong("the workspace", MAX_PATH))
        );
        let many: Vec<u8> = std::iter::repeat_n(b"a1:x,".as_slice(), MAX_ARGS + 1)
            .flatten()
            .copied()
            .collect();
        assert_eq!(
            decode(&with(&many)),
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
            let decoded = decode(&bytes);
            let name = entry.file_name().to_string_lossy().into_owned();
            assert_eq!(
                name.starts_with("valid-"),
                decoded.is_ok(),
                "{name}: {decoded:?}"
            );
            if let Ok(r) = decoded {
                assert_eq!(decode(&encode(&r)), Ok(r));
            }
            n += 1;
        }
        assert!(n >= 5, "the corpus at {} has {n} inputs", dir.display());
    }
}
