//! moat's config files, read into [`moat_policy::Layer`]s.
//!
//! Two files are read, both optional:
//! - the person's, `$XDG_CONFIG_HOME/moat/config.toml` (default
//!   `~/.config/moat/config.toml`), which may widen the defaults;
//! - the workspace's, `.moat/config.toml`, which may only narrow them
//!   (enforced when layers are resolved, in `moat-policy`).
//!
//! Unknown keys, wrong types, bad values and bad paths are errors that name
//! the file, the line and the key. Files larger than [`MAX_CONFIG_BYTES`] are
//! refused rather than read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use moat_policy::domains;
use moat_policy::secrets::{self, RequestRule, SecretBinding};
use moat_policy::units::{parse_duration, parse_size};
use moat_policy::{Layer, NetworkMode, Preset, ReadMode, Source};
use serde::Deserialize;
use toml::Spanned;

/// A config file is a few dozen lines; anything this large is a mistake.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The workspace's config file, relative to the workspace.
pub const WORKSPACE_CONFIG: &str = ".moat/config.toml";

/// A config file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem is at a place in the file.
    pub line: Option<(usize, usize)>,
    /// The key, e.g. `filesystem.write`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.line {
            write!(f, ":{}:{}", line, col)?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{}: ", key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    preset: Option<Spanned<String>>,
    filesystem: Option<Filesystem>,
    network: Option<Network>,
    env: Option<Env>,
    limits: Option<Limits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filesystem {
    write: Option<Vec<Spanned<String>>>,
    deny_read: Option<Vec<Spanned<String>>>,
    allow_read: Option<Vec<Spanned<String>>>,
    read: Option<Spanned<String>>,
    protect: Option<Vec<Spanned<String>>>,
    strict_git: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Network {
    mode: Option<Spanned<String>>,
    allow: Option<Vec<Spanned<String>>>,
    deny: Option<Vec<Spanned<String>>>,
    allow_cidr: Option<Vec<Spanned<String>>>,
    resolve: Option<BTreeMap<String, Spanned<String>>>,
    require_isolation: Option<bool>,
    secrets: Option<Vec<Secret>>,
    requests: Option<Vec<Requests>>,
    upstream_ca: Option<Spanned<OneOrMany>>,
}

/// `[[network.secrets]]`: a variable whose value only the proxy sees.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Secret {
    env: Spanned<String>,
    hosts: Spanned<Vec<Spanned<String>>>,
    file: Option<Spanned<String>>,
}

/// `[[network.requests]]`: which requests a host takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Requests {
    host: Spanned<String>,
    methods: Option<Spanned<Vec<Spanned<String>>>>,
    paths: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A path, or a list of them.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a path or a list of paths")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Env {
    set: Option<BTreeMap<String, String>>,
    pass: Option<Vec<String>>,
    clear: Option<bool>,
}

/// A limit written as a number or as a string with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Number(i64),
    Fraction(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    timeout: Option<Spanned<Amount>>,
    processes: Option<Spanned<i64>>,
    memory: Option<Spanned<Amount>>,
    file_size: Option<Spanned<Amount>>,
    cpus: Option<Spanned<Amount>>,
}

/// Where the person's config file is, given `XDG_CONFIG_HOME` and the home
/// directory.
pub fn user_config_path(xdg_config_home: Option<&Path>, home: &Path) -> PathBuf {
    match xdg_config_home {
        Some(dir) if dir.is_absolute() => dir.join("moat/config.toml"),
        _ => home.join(".config/moat/config.toml"),
    }
}

/// Reads `path` into a layer from `source`, or `Ok(None)` if there is no
/// file there.
pub fn load(path: &Path, source: Source) -> Result<Option<Layer>, ConfigError> {
    let err = |message: String| ConfigError {
        path: path.to_path_buf(),
        line: None,
        key: None,
        message,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // A placeholder `.moat` of a concurrent run is not a directory:
        // there is no config file in it either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || not_a_directory(&e) => {
            return Ok(None)
        }
        Err(e) => return Err(err(format!("cannot read: {}", e))),
    };
    if !meta.is_file() {
        return Err(err("is not a regular file".to_string()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "is {} bytes; config files are limited to {} bytes",
            meta.len(),
            MAX_CONFIG_BYTES
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {}", e)))?;
    parse(&text, path, source).map(Some)
}

/// Parses config text into a layer.
pub fn parse(text: &str, path: &Path, source: Source) -> Result<Layer, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| {
        let (at, message) = toml_error(text, &e);
        ConfigError {
            path: path.to_path_buf(),
            line: at.map(|at| line_col(text, at)),
            key: at.and_then(|at| key_at(text, at)),
            message,
        }
    })?;
    let ctx = Ctx { text, path };
    let mut layer = Layer::new(source);
    if let Some(preset) = file.preset {
        layer.preset = Some(ctx.word::<Preset>("preset", &preset)?);
    }
    if let Some(fs) = file.filesystem {
        layer.write = ctx.paths("filesystem.write", fs.write)?;
        layer.deny_read = ctx.paths("filesystem.deny_read", fs.deny_read)?;
        layer.allow_read = ctx.paths("filesystem.allow_read", fs.allow_read)?;
        layer.protect = ctx.paths("filesystem.protect", fs.protect)?;
        if let Some(read) = fs.read {
            layer.read = Some(ctx.word::<ReadMode>("filesystem.read", &read)?);
        }
        layer.strict_git = fs.strict_git;
    }
    if let Some(net) = file.network {
        if let Some(mode) = net.mode {
            layer.network = Some(ctx.word::<NetworkMode>("network.mode", &mode)?);
        }
        if let Some(required) = net.require_isolation {
            layer.require_network_isolation = Some(required);
        }
        layer.allow_domains = ctx.rules("network.allow", net.allow, |t| {
            domains::patterns(t).map(|_| ())
        })?;
        layer.deny_domains = ctx.rules("network.deny", net.deny, |t| {
            domains::patterns(t).map(|_| ())
        })?;
        layer.allow_cidr = ctx.rules("network.allow_cidr", net.allow_cidr, |t| {
            domains::Cidr::parse(t).map(|_| ())
        })?;
        for (name, addr) in net.resolve.unwrap_or_default() {
            let entry = format!("{}:{}", name, addr.get_ref());
            domains::resolve_entry(&entry)
                .map_err(|e| ctx.at("network.resolve", start(addr.span()), e.to_string()))?;
            layer.resolve.push(entry);
        }
        for secret in net.secrets.unwrap_or_default() {
            layer.secrets.push(ctx.secret(secret)?);
        }
        for rule in net.requests.unwrap_or_default() {
            layer.request_rules.push(ctx.request_rule(rule)?);
        }
        if let Some(ca) = net.upstream_ca {
            let at = start(ca.span());
            let list = match ca.into_inner() {
                OneOrMany::One(path) => vec![path],
                OneOrMany::Many(paths) => paths,
            };
            for path in list {
                if path.is_empty() || path.contains('\0') {
                    return Err(ctx.at("network.upstream_ca", at, "empty path".to_string()));
                }
                layer.upstream_ca.push(PathBuf::from(path));
            }
        }
    }
    if let Some(env) = file.env {
        layer.env_set = env.set.unwrap_or_default().into_iter().collect();
        layer.env_pass = env.pass.unwrap_or_default();
        layer.env_clear = env.clear;
    }
    if let Some(limits) = file.limits {
        if let Some(t) = limits.timeout {
            layer.timeout = Some(ctx.amount("limits.timeout", &t, |s| {
                parse_duration(s).map_err(|e| e.to_string())
            })?);
        }
        if let Some(p) = limits.processes {
            let n = *p.get_ref();
            if n <= 0 {
                return Err(ctx.at(
                    "limits.processes",
                    start(p.span()),
                    format!("must be a positive number, not {}", n),
                ));
            }
            layer.processes = Some(n as u64);
        }
        if let Some(m) = limits.memory {
            layer.memory = Some(ctx.amount("limits.memory", &m, |s| {
                parse_size(s).map_err(|e| e.to_string())
            })?);
        }
        if let Some(f) = limits.file_size {
            layer.file_size = Some(ctx.amount("limits.file_size", &f, |s| {
                parse_size(s).map_err(|e| e.to_string())
            })?);
        }
        if let Some(c) = limits.cpus {
            layer.cpu = Some(ctx.amount("limits.cpus", &c, |s| {
                moat_policy::units::parse_cpus(s).map_err(|e| e.to_string())
            })?);
        }
    }
    Ok(layer)
}

struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn at(&self, key: &str, offset: usize, message: String) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            line: Some(line_col(self.text, offset)),
            key: Some(key.to_string()),
            message,
        }
    }

    fn word<T>(&self, key: &str, value: &Spanned<String>) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        value
            .get_ref()
            .parse()
            .map_err(|e: T::Err| self.at(key, start(value.span()), e.to_string()))
    }

    fn paths(
        &self,
        key: &str,
        values: Option<Vec<Spanned<String>>>,
    ) -> Result<Vec<PathBuf>, ConfigError> {
        let mut out = Vec::new();
        for v in values.unwrap_or_default() {
            let text = v.get_ref();
            if text.is_empty() || text.contains('\0') {
                return Err(self.at(key, start(v.span()), "empty path".to_string()));
            }
            out.push(PathBuf::from(text));
        }
        Ok(out)
    }

    /// A list of network rules, each checked by `check` where it stands.
    fn rules(
        &self,
        key: &str,
        values: Option<Vec<Spanned<String>>>,
        check: impl Fn(&str) -> Result<(), domains::RuleError>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for v in values.unwrap_or_default() {
            check(v.get_ref()).map_err(|e| self.at(key, start(v.span()), e.to_string()))?;
            out.push(v.get_ref().clone());
        }
        Ok(out)
    }

    /// A secret binding, each part checked where it stands.
    fn secret(&self, s: Secret) -> Result<SecretBinding, ConfigError> {
        let env = s.env.get_ref();
        secrets::check_env(env)
            .map_err(|e| self.at("network.secrets.env", start(s.env.span()), e.to_string()))?;
        let key = "network.secrets.hosts";
        let hosts = self.list(key, s.hosts, "name at least one host", |h| {
            secrets::host(h).map(|_| ())
        })?;
        let file = match s.file {
            Some(f) if f.get_ref().is_empty() || f.get_ref().contains('\0') => {
                let at = start(f.span());
                return Err(self.at("network.secrets.file", at, "empty path".to_string()));
            }
            Some(f) => Some(PathBuf::from(f.into_inner())),
            None => None,
        };
        Ok(SecretBinding {
            env: env.clone(),
            hosts,
            file,
        })
    }

    /// A request rule, each part checked where it stands. Lists that are
    /// given must not be empty: leaving one out is how "any" is written.
    fn request_rule(&self, r: Requests) -> Result<RequestRule, ConfigError> {
        secrets::host(r.host.get_ref())
            .map_err(|e| self.at("network.requests.host", start(r.host.span()), e.to_string()))?;
        let mut methods = Vec::new();
        if let Some(m) = r.methods {
            let key = "network.requests.methods";
            let at = start(m.span());
            let omit = "leave `methods` out (or write [\"*\"]) for any method";
            methods = self.list(key, m, omit, |m| secrets::method(m).map(|_| ()))?;
            if methods.len() > 1 && methods.iter().any(|m| m == "*") {
                let e = secrets::EntryError::AnyMethodNotAlone;
                return Err(self.at(key, at, e.to_string()));
            }
        }
        let mut paths = Vec::new();
        if let Some(p) = r.paths {
            let omit = "leave `paths` out for any path";
            paths = self.list("network.requests.paths", p, omit, secrets::check_path)?;
        }
        Ok(RequestRule {
            host: r.host.into_inner(),
            methods,
            paths,
        })
    }

    /// A list that must not be empty (`omit` says what to write instead),
    /// each entry checked by `check` where it stands.
    fn list(
        &self,
        key: &str,
        values: Spanned<Vec<Spanned<String>>>,
        omit: &str,
        check: impl Fn(&str) -> Result<(), secrets::EntryError>,
    ) -> Result<Vec<String>, ConfigError> {
        let at = start(values.span());
        let values = values.into_inner();
        if values.is_empty() {
            return Err(self.at(key, at, format!("an empty list; {}", omit)));
        }
        let mut out = Vec::new();
        for v in values {
            check(v.get_ref()).map_err(|e| self.at(key, start(v.span()), e.to_string()))?;
            out.push(v.into_inner());
        }
        Ok(out)
    }

    fn amount<T>(
        &self,
        key: &str,
        value: &Spanned<Amount>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let text = match value.get_ref() {
            Amount::Number(n) => n.to_string(),
            Amount::Fraction(f) => f.to_string(),
            Amount::Text(s) => s.clone(),
        };
        parse(&text).map_err(|message| self.at(key, start(value.span()), message))
    }
}

// The Windows backend builds this crate with Rust 1.63, where the newest
// `toml` it can use is 0.5 (`scripts/windows-check.sh` turns on the
// `toml05` feature). The two differ only in how a span and an error are
// read; everything else is the same code.

/// Where a value starts, from either `toml`'s span.
fn start(span: impl SpanStart) -> usize {
    span.start()
}

trait SpanStart {
    fn start(self) -> usize;
}

impl SpanStart for std::ops::Range<usize> {
    fn start(self) -> usize {
        self.start
    }
}

impl SpanStart for (usize, usize) {
    fn start(self) -> usize {
        self.0
    }
}

/// Where a TOML error is (a byte offset), and what it says.
#[cfg(not(feature = "toml05"))]
fn toml_error(_text: &str, e: &toml::de::Error) -> (Option<usize>, String) {
    (e.span().map(|s| s.start), e.message().trim().to_string())
}

#[cfg(feature = "toml05")]
fn toml_error(text: &str, e: &toml::de::Error) -> (Option<usize>, String) {
    let at = e.line_col().map(|(line, col)| {
        let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
        start + col
    });
    (at, e.to_string())
}

/// A missing directory on the way to a config file: a placeholder `.moat`
/// that is a file, say (ENOTDIR; Windows says "not found" for it).
fn not_a_directory(e: &std::io::Error) -> bool {
    cfg!(unix) && e.raw_os_error() == Some(20)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// The dotted key on the line holding `offset`, from the nearest table
/// header above it and the left side of `=`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let table = before[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let trimmed = line.trim();
    let key = if trimmed.starts_with('[') {
        return Some(
            trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    } else {
        trimmed
            .split('=')
            .next()?
            .trim()
            .trim_matches('"')
            .to_string()
    };
    if key.is_empty() {
        return table;
    }
    Some(match table {
        Some(t) => format!("{}.{}", t, key),
        None => key,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn user(text: &str) -> Result<Layer, ConfigError> {
        parse(
            text,
            Path::new("/home/u/.config/moat/config.toml"),
            Source::UserConfig(PathBuf::from("/home/u/.config/moat/config.toml")),
        )
    }

    #[test]
    fn full_file() {
        let layer = user(
            r#"
preset = "read-only"
[filesystem]
write = ["~/out", "/data"]
deny_read = ["~/.config/secret"]
allow_read = ["~/.npmrc"]
read = "restricted"
protect = [".pre-commit-config.yaml"]
strict_git = true
[network]
require_isolation = true
mode = "on"
[env]
set = { FOO = "bar" }
pass = ["GITHUB_TOKEN"]
clear = true
[limits]
timeout = "10m"
processes = 256
memory = "4G"
file_size = 1048576
cpus = 1.5
"#,
        )
        .unwrap();
        assert_eq!(layer.preset, Some(Preset::ReadOnly));
        assert_eq!(
            layer.write,
            [PathBuf::from("~/out"), PathBuf::from("/data")]
        );
        assert_eq!(layer.read, Some(ReadMode::Restricted));
        assert_eq!(layer.strict_git, Some(true));
        assert_eq!(layer.network, Some(NetworkMode::On));
        assert_eq!(layer.require_network_isolation, Some(true));
        assert_eq!(layer.env_set, [("FOO".to_string(), "bar".to_string())]);
        assert_eq!(layer.env_pass, ["GITHUB_TOKEN"]);
        assert_eq!(layer.env_clear, Some(true));
        assert_eq!(layer.timeout, Some(Duration::from_secs(600)));
        assert_eq!(layer.processes, Some(256));
        assert_eq!(layer.memory, Some(4 << 30));
        assert_eq!(layer.file_size, Some(1 << 20));
        assert_eq!(layer.cpu, Some(1500));
    }

    #[test]
    fn network_rules_are_read_and_checked_where_they_stand() {
        let layer = user(
            "[network]\nmode = \"allow\"\nallow = [\"@rust\", \"*.example.com\"]\ndeny = [\"evil.example.com\"]\nallow_cidr = [\"10.0.0.0/8\"]\n[network.resolve]\n\"pkg.test\" = \"127.0.0.2\"\n",
        )
        .unwrap();
        assert_eq!(layer.network, Some(NetworkMode::Allow));
        assert_eq!(
            layer.allow_domains,
            vec!["@rust".to_string(), "*.example.com".to_string()]
        );
        assert_eq!(layer.deny_domains, vec!["evil.example.com".to_string()]);
        assert_eq!(layer.allow_cidr, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(layer.resolve, vec!["pkg.test:127.0.0.2".to_string()]);
        for (text, line, needle) in [
            (
                "[network]\nallow = [\"ok.test\",\n  \"*.com\"]\n",
                3,
                "too broad",
            ),
            ("[network]\ndeny = [\"@perl\"]\n", 2, "unknown group"),
            ("[network]\nallow_cidr = [\"10.0.0.1/8\"]\n", 2, "host bits"),
            (
                "[network.resolve]\n\"a.test\" = \"not-an-ip\"\n",
                2,
                "IPv4 or IPv6",
            ),
        ] {
            let e = user(text).unwrap_err();
            assert_eq!(e.line.map(|(l, _)| l), Some(line), "{text}: {e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn secrets_requests_and_cas_are_read() {
        let layer = user(
            r#"
[network]
mode = "allow"
upstream_ca = "~/ca.pem"

[[network.secrets]]
env = "GITHUB_TOKEN"
hosts = ["api.github.com", "github.com"]

[[network.secrets]]
env = "NPM_TOKEN"
hosts = ["registry.npmjs.org"]
file = "~/.config/npm-token"

[[network.requests]]
host = "registry.npmjs.org"
methods = ["GET", "head"]

[[network.requests]]
host = "git.example.com"
paths = ["/org/repo.git/"]
"#,
        )
        .unwrap();
        assert_eq!(
            layer.secrets,
            [
                SecretBinding {
                    env: "GITHUB_TOKEN".into(),
                    hosts: vec!["api.github.com".into(), "github.com".into()],
                    file: None,
                },
                SecretBinding {
                    env: "NPM_TOKEN".into(),
                    hosts: vec!["registry.npmjs.org".into()],
                    file: Some(PathBuf::from("~/.config/npm-token")),
                },
            ]
        );
        assert_eq!(
            layer.request_rules,
            [
                RequestRule {
                    host: "registry.npmjs.org".into(),
                    methods: vec!["GET".into(), "head".into()],
                    paths: vec![],
                },
                RequestRule {
                    host: "git.example.com".into(),
                    methods: vec![],
                    paths: vec!["/org/repo.git/".into()],
                },
            ]
        );
        assert_eq!(layer.upstream_ca, [PathBuf::from("~/ca.pem")]);
        let layer = user("[network]\nupstream_ca = [\"/a.pem\", \"/b.pem\"]\n").unwrap();
        assert_eq!(
            layer.upstream_ca,
            [PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]
        );
    }

    #[test]
    fn bad_secrets_and_requests_name_line_and_key() {
        let cases: &[(&str, (usize, usize), &str, &str)] = &[
            (
                "[[network.secrets]]\nenv = \"T\"\nhosts = [\"a.test\"]\ntoken = \"x\"\n",
                (4, 1),
                "network.secrets.token",
                "unknown field",
            ),
            (
                "[[network.secrets]]\nenv = \"GITHUB-TOKEN\"\nhosts = [\"a.test\"]\n",
                (2, 7),
                "network.secrets.env",
                "variable name",
            ),
            (
                "[[network.secrets]]\nenv = \"T\"\nhosts = [\"a.test\", \"*.b.test\"]\n",
                (3, 20),
                "network.secrets.hosts",
                "wildcard",
            ),
            (
                "[[network.secrets]]\nenv = \"T\"\nhosts = []\n",
                (3, 9),
                "network.secrets.hosts",
                "at least one host",
            ),
            (
                "[[network.secrets]]\nenv = \"T\"\nhosts = [\"a.test\"]\nfile = \"\"\n",
                (4, 8),
                "network.secrets.file",
                "empty path",
            ),
            (
                "[[network.secrets]]\nenv = \"T\"\n",
                (1, 1),
                "network.secrets",
                "hosts",
            ),
            (
                "[[network.requests]]\nhost = \"a.test:443\"\n",
                (2, 8),
                "network.requests.host",
                "port",
            ),
            (
                "[[network.requests]]\nhost = \"a.test\"\nmethods = [\"GET\", \"FETCH\"]\n",
                (3, 19),
                "network.requests.methods",
                "FETCH",
            ),
            (
                "[[network.requests]]\nhost = \"a.test\"\nmethods = [\"*\", \"GET\"]\n",
                (3, 11),
                "network.requests.methods",
                "stands alone",
            ),
            (
                "[[network.requests]]\nhost = \"a.test\"\nmethods = []\n",
                (3, 11),
                "network.requests.methods",
                "empty list",
            ),
            (
                "[[network.requests]]\nhost = \"a.test\"\npaths = [\"api/\"]\n",
                (3, 10),
                "network.requests.paths",
                "start with `/`",
            ),
            (
                "[[network.requests]]\nhost = \"a.test\"\nmethod = [\"GET\"]\n",
                (3, 1),
                "network.requests.method",
                "unknown field",
            ),
            (
                "[network]\nupstream_ca = \"\"\n",
                (2, 15),
                "network.upstream_ca",
                "empty path",
            ),
        ];
        for (text, line, key, needle) in cases {
            let err = user(text).unwrap_err();
            assert_eq!(err.line, Some(*line), "{text}: {err}");
            assert_eq!(err.key.as_deref(), Some(*key), "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
        }
        let err = user("[network]\nupstream_ca = 3\n").unwrap_err();
        assert_eq!(err.line.map(|l| l.0), Some(2), "{err}");
        assert_eq!(err.key.as_deref(), Some("network.upstream_ca"), "{err}");
        assert!(err.message.contains("a path or a list of paths"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, (usize, usize), &str, &str)] = &[
            (
                "[filesystem]\nwrtie = []\n",
                (2, 1),
                "filesystem.wrtie",
                "unknown field",
            ),
            (
                "[network]\nmode = \"sometimes\"\n",
                (2, 8),
                "network.mode",
                "sometimes",
            ),
            (
                "[filesystem]\nstrict_git = \"yes\"\n",
                (2, 14),
                "filesystem.strict_git",
                "boolean",
            ),
            (
                "[limits]\ntimeout = \"soon\"\n",
                (2, 11),
                "limits.timeout",
                "duration",
            ),
            (
                "[limits]\nprocesses = 0\n",
                (2, 13),
                "limits.processes",
                "positive",
            ),
            (
                "[limits]\nmemory = \"12Q\"\n",
                (2, 10),
                "limits.memory",
                "size",
            ),
            ("preset = \"yolo\"\n", (1, 10), "preset", "expected one of"),
            ("[nonsense]\n", (1, 2), "nonsense", "unknown field"),
            (
                "[filesystem]\nwrite = [\"\"]\n",
                (2, 10),
                "filesystem.write",
                "empty",
            ),
        ];
        for (text, line, key, needle) in cases {
            let err = user(text).unwrap_err();
            assert_eq!(err.line, Some(*line), "{text}: {err}");
            assert_eq!(err.key.as_deref(), Some(*key), "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
            assert!(err
                .to_string()
                .starts_with("/home/u/.config/moat/config.toml:"));
        }
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let err = user("preset = \n").unwrap_err();
        assert_eq!(err.line.map(|l| l.0), Some(1), "{err}");
    }

    #[test]
    fn workspace_layer_is_narrow_only() {
        let layer = parse(
            "[network]\nmode = \"on\"\n",
            Path::new("/ws/.moat/config.toml"),
            Source::WorkspaceConfig(PathBuf::from("/ws/.moat/config.toml")),
        )
        .unwrap();
        assert_eq!(layer.trust, moat_policy::Trust::NarrowOnly);
    }

    #[test]
    fn user_config_location() {
        assert_eq!(
            user_config_path(Some(Path::new("/x")), Path::new("/home/u")),
            PathBuf::from("/x/moat/config.toml")
        );
        assert_eq!(
            user_config_path(Some(Path::new("rel")), Path::new("/home/u")),
            PathBuf::from("/home/u/.config/moat/config.toml")
        );
    }

    #[test]
    fn missing_file_is_no_layer_and_directories_are_errors() {
        let dir = std::env::temp_dir().join(format!("moat-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            load(&dir.join("absent.toml"), Source::Default).unwrap(),
            None
        );
        let err = load(&dir, Source::Default).unwrap_err();
        assert!(err.message.contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
