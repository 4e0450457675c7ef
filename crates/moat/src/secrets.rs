//! Secrets that never enter the sandbox: the run's broker, made from the
//! policy's secrets and request rules, serving the proxy's connections to
//! the hosts they name (see `moat_broker`).
//!
//! The values are read here, from moat's own environment or a file, and
//! stay in this process: the command gets placeholders and the run's
//! certificate authority, whose key never leaves the broker.

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::Path;

use moat_broker::{Broker, Outcome, RequestRule, Secret, UpstreamRoots, Verdict};
use moat_policy::{NetworkMode, Policy, Source};

use crate::error::Error;

/// The largest secret file read: a token or a key, not a data file.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The run's broker, for the proxy.
pub(crate) struct Brokerage {
    broker: Broker,
}

impl std::fmt::Debug for Brokerage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Brokerage")
    }
}

fn refuse(why: String) -> Error {
    Error::Secrets(why)
}

/// The value of a secret: its file's content (one trailing newline
/// dropped), or its variable in moat's environment.
fn value(env: &[(OsString, OsString)], name: &str, file: Option<&Path>) -> Result<String, Error> {
    if let Some(path) = file {
        let meta = std::fs::metadata(path)
            .map_err(|e| refuse(format!("the secret {name}: {}: {e}", path.display())))?;
        if !meta.is_file() || meta.len() > MAX_SECRET_FILE {
            return Err(refuse(format!(
                "the secret {name}: {} is not a regular file of at most {MAX_SECRET_FILE} bytes",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| refuse(format!("the secret {name}: {}: {e}", path.display())))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        return Ok(text.to_string());
    }
    let found = env.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    match found.map(|v| v.to_str()) {
        Some(Some(v)) if !v.is_empty() => Ok(v.to_string()),
        Some(Some(_)) => Err(refuse(format!("the secret {name}: the variable is empty"))),
        Some(None) => Err(refuse(format!("the secret {name}: the value is not UTF-8"))),
        None => Err(refuse(format!(
            "the secret {name}: no such variable in moat's environment (set it, or give the \
             secret a file in the config)"
        ))),
    }
}

impl Brokerage {
    /// The broker the policy asks for; `None` without secrets or request
    /// rules. `env` is moat's own environment. Only the proxy can put a
    /// secret in or hold a request to a rule: without it (network `off`
    /// or `on`), those asked for on the command line or through the
    /// library are refused, and those of config files are left out with
    /// a note (a config's secrets must not stop every offline run).
    pub(crate) fn from_policy(
        policy: &Policy,
        env: &[(OsString, OsString)],
        notes: &mut Vec<String>,
    ) -> Result<Option<Brokerage>, Error> {
        if policy.secrets.is_empty() && policy.request_rules.is_empty() {
            return Ok(None);
        }
        if policy.network.value != NetworkMode::Allow {
            let named = policy
                .secrets
                .iter()
                .map(|s| (&s.source, format!("the secret {}", s.value.env)))
                .chain(
                    policy
                        .request_rules
                        .iter()
                        .map(|r| (&r.source, format!("the request rule for {}", r.value.host))),
                );
            let mut left_out = Vec::new();
            for (source, what) in named {
                if matches!(source, Source::Flag(_) | Source::Api) {
                    return Err(refuse(format!(
                        "{what} ({source}) needs --network allow: moat's proxy puts secrets \
                         into requests and holds them to rules, and with network = {} there is \
                         no proxy",
                        policy.network.value
                    )));
                }
                left_out.push(what);
            }
            notes.push(format!(
                "{} from config files not used: with network = {} there is no proxy to keep \
                 them (--network allow)",
                left_out.join(", "),
                policy.network.value
            ));
            return Ok(None);
        }
        let mut secrets = Vec::new();
        for s in &policy.secrets {
            let b = &s.value;
            let v = value(env, &b.env, b.file.as_deref())?;
            secrets.push(Secret::new(b.env.clone(), v, b.hosts.clone()));
        }
        let rules = policy
            .request_rules
            .iter()
            .map(|r| RequestRule {
                host: r.value.host.clone(),
                methods: r.value.methods.clone(),
                paths: r.value.paths.clone(),
            })
            .collect();
        let mut roots = UpstreamRoots::system();
        for ca in &policy.upstream_ca {
            roots = roots.with_extra(ca.value.clone());
        }
        let broker = Broker::new(secrets, rules, roots).map_err(|e| refuse(e.to_string()))?;
        Ok(Some(Brokerage { broker }))
    }

    /// `(variable, placeholder)` for the command's environment.
    pub(crate) fn placeholders(&self) -> Vec<(String, String)> {
        self.broker.placeholders()
    }

    /// The run's certificate authority, for the command to trust.
    pub(crate) fn cert_pem(&self) -> String {
        self.broker.cert_pem()
    }
}

/// What the proxy records of a brokered connection.
fn terminated(out: Outcome) -> moat_proxy::Terminated {
    let refused = match &out.verdict {
        Verdict::Forwarded => None,
        Verdict::Refused(r) => Some(r.message(&out.host)),
        Verdict::UpstreamUntrusted { reason }
        | Verdict::UpstreamFailed { reason }
        | Verdict::Failed { reason } => Some(reason.clone()),
        other => Some(format!("{other:?}")),
    };
    // "GET /path; put in NAME": what of it there is.
    let mut note = Vec::new();
    if let (Some(m), Some(p)) = (&out.method, &out.path) {
        note.push(format!("{m} {p}"));
    }
    if !out.injected.is_empty() {
        note.push(format!("put in {}", out.injected.join(", ")));
    }
    moat_proxy::Terminated {
        refused,
        note: note.join("; "),
        injected: out.injected,
        bytes_up: out.bytes_up,
        bytes_down: out.bytes_down,
    }
}

impl moat_proxy::Terminator for Brokerage {
    fn terminates(&self, host: &str) -> bool {
        self.broker.terminates(host)
    }

    fn serve(
        &self,
        client: TcpStream,
        early: &[u8],
        host: &str,
        port: u16,
        upstream: TcpStream,
    ) -> moat_proxy::Terminated {
        terminated(self.broker.serve(client, early, host, port, upstream))
    }

    fn screen(&self, head: &[u8]) -> Option<String> {
        self.broker.screen(head)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_come_from_the_environment_or_a_file() {
        let env = vec![
            (OsString::from("TOKEN"), OsString::from("ghp_abc")),
            (OsString::from("EMPTY"), OsString::new()),
        ];
        assert_eq!(value(&env, "TOKEN", None).unwrap(), "ghp_abc");
        for (name, want) in [("EMPTY", "is empty"), ("MISSING", "no such variable")] {
            let e = value(&env, name, None).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(name), "{e}");
        }
        let dir = std::env::temp_dir().join(format!("moat-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\r\n").unwrap();
        assert_eq!(value(&env, "TOKEN", Some(&file)).unwrap(), "from-file");
        std::fs::write(&file, vec![b'x'; MAX_SECRET_FILE as usize + 1]).unwrap();
        let e = value(&env, "TOKEN", Some(&file)).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
        let e = value(&env, "TOKEN", Some(&dir.join("absent")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
