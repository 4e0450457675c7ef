//! Narrowing a resolved policy for one run, at the request of someone who
//! may take away but never add: a call to moat's MCP server, or the
//! permission profile a coding agent sends with it. Each request either
//! narrows the policy, saying what it took away, or is refused, saying
//! what it would have widened; nothing is quietly dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domains;
use crate::resolve::Policy;
use crate::types::{NetworkMode, Preset, ReadMode, Source, Sourced};

/// What the run may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetRequest {
    /// Nothing.
    Off,
    /// Only these names (`name`, `*.suffix`, `@group`), each of which the
    /// policy must already allow.
    Allow(Vec<String>),
    /// What the policy allows, no more: changes nothing.
    AsAllowed,
}

/// A request to narrow a policy for one run. `None` and empty fields
/// leave that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    pub network: Option<NetRequest>,
    /// The only writable roots left, each inside one the policy has
    /// (`Some(vec![])`: nothing writable).
    pub write: Option<Vec<PathBuf>>,
    /// More paths whose reads are denied.
    pub deny_read: Vec<PathBuf>,
    /// Reads restricted to the system's directories, the writable roots
    /// and these paths.
    pub restrict_reads: Option<Vec<PathBuf>>,
    /// A shorter time limit.
    pub timeout: Option<Duration>,
}

/// A request that would have widened the policy, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widens(pub String);

impl fmt::Display for Widens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Widens {}

impl Policy {
    /// Applies `n`, from `source`; what it took away, in words. Refused
    /// whole, before anything changes, if any part would widen.
    pub fn narrow(&mut self, n: &Narrowing, source: &Source) -> Result<Vec<String>, Widens> {
        let mut next = self.clone();
        let mut said = Vec::new();
        if let Some(net) = &n.network {
            next.narrow_network(net, source, &mut said)?;
        }
        if let Some(write) = &n.write {
            next.narrow_write(write, source, &mut said)?;
        }
        for d in &n.deny_read {
            if !d.is_absolute() {
                return Err(Widens(format!("{} is not an absolute path", d.display())));
            }
            if !next.deny_read.iter().any(|e| e.value == *d) {
                next.deny_read.push(Sourced::new(d.clone(), source.clone()));
                said.push(format!("reads of {} denied", d.display()));
            }
        }
        if let Some(readable) = &n.restrict_reads {
            if next.read.value == ReadMode::All {
                next.read = Sourced::new(ReadMode::Restricted, source.clone());
                next.allow_read = readable
                    .iter()
                    .map(|p| Sourced::new(p.clone(), source.clone()))
                    .collect();
                said.push(format!(
                    "reads restricted to the system, the writable roots and {} more paths",
                    readable.len()
                ));
            } else if readable.iter().any(|p| !next.may_read(p)) {
                return Err(Widens(
                    "reads are already restricted, and the request names paths beyond them".into(),
                ));
            }
        }
        if let Some(t) = n.timeout {
            let shorter = match &next.limits.timeout {
                Some(current) => t < current.value,
                None => true,
            };
            if shorter {
                next.limits.timeout = Some(Sourced::new(t, source.clone()));
                said.push(format!("a time limit of {} s", t.as_secs_f64()));
            }
        }
        *self = next;
        Ok(said)
    }

    fn narrow_network(
        &mut self,
        net: &NetRequest,
        source: &Source,
        said: &mut Vec<String>,
    ) -> Result<(), Widens> {
        match net {
            NetRequest::AsAllowed => Ok(()),
            NetRequest::Off => {
                if self.network.value != NetworkMode::Off {
                    self.network = Sourced::new(NetworkMode::Off, source.clone());
                    said.push("network off".into());
                }
                Ok(())
            }
            NetRequest::Allow(names) => {
                let rules = match self.network.value {
                    NetworkMode::Off => {
                        return Err(Widens(format!(
                            "the network is off in your moat policy, so {} cannot be reached; \
                             allow it in moat's config (network.mode = \"allow\", network.allow)",
                            names.join(", ")
                        )))
                    }
                    NetworkMode::On => None,
                    _ => Some(self.domain_rules()),
                };
                let mut wanted = Vec::new();
                for entry in names {
                    let patterns = domains::patterns(entry)
                        .map_err(|e| Widens(format!("network: {}: {}", entry, e)))?;
                    for p in patterns {
                        if let Some(r) = &rules {
                            if !r.allows_all_of(&p) {
                                return Err(Widens(format!(
                                    "{} is not on your moat policy's allowlist; add it to \
                                     moat's config (network.allow) to let calls ask for it",
                                    p
                                )));
                            }
                        }
                        wanted.push(Sourced::new(p, source.clone()));
                    }
                }
                self.network = Sourced::new(NetworkMode::Allow, source.clone());
                self.allow_domains = wanted;
                said.push(format!("network only to {}", names.join(", ")));
                Ok(())
            }
        }
    }

    fn narrow_write(
        &mut self,
        write: &[PathBuf],
        source: &Source,
        said: &mut Vec<String>,
    ) -> Result<(), Widens> {
        let roots: Vec<PathBuf> = self.writable_roots().into_iter().map(|r| r.value).collect();
        for w in write {
            if !w.is_absolute() || !roots.iter().any(|r| within(w, r)) {
                return Err(Widens(format!(
                    "{} is not writable in your moat policy; add it to moat's config \
                     (filesystem.write) to let calls write there",
                    w.display()
                )));
            }
        }
        let keeps_workspace = write.contains(&self.workspace.value);
        let before = roots.len();
        if !keeps_workspace && self.preset.value == Preset::WorkspaceWrite {
            self.preset = Sourced::new(Preset::ReadOnly, source.clone());
        }
        self.write = write
            .iter()
            .filter(|w| **w != self.workspace.value)
            .map(|w| Sourced::new(w.clone(), source.clone()))
            .collect();
        if write.is_empty() {
            said.push("nothing writable".into());
        } else if write.len() != before || !keeps_workspace {
            said.push(format!(
                "writable only: {}",
                write
                    .iter()
                    .map(|w| w.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }

    /// Whether `path` is readable in restricted mode: under a listed path
    /// or a writable root.
    fn may_read(&self, path: &Path) -> bool {
        self.allow_read.iter().any(|a| within(path, &a.value))
            || self.writable_roots().iter().any(|r| within(path, &r.value))
    }
}

fn within(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::host::HostFacts;
    use crate::layer::Layer;
    use crate::resolve::Settings;

    fn policy(network: NetworkMode, allow: &[&str]) -> Policy {
        let facts = HostFacts {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u/prj"),
            env: Vec::new(),
        };
        let mut s = Settings::new();
        let mut l = Layer::new(Source::Flag("test".into()));
        l.network = Some(network);
        l.allow_domains = allow.iter().map(|a| a.to_string()).collect();
        l.write = vec![PathBuf::from("/home/u/scratch")];
        s.push(l);
        s.resolve(
            &facts,
            Sourced::new(PathBuf::from("/home/u/prj"), Source::Default),
        )
        .unwrap()
    }

    fn call() -> Source {
        Source::Flag("the call".into())
    }

    #[test]
    fn network_narrows_to_what_is_asked_and_never_widens() {
        let mut p = policy(NetworkMode::Allow, &["crates.io", "*.github.com"]);
        let n = Narrowing {
            network: Some(NetRequest::Allow(vec!["api.github.com".into()])),
            ..Narrowing::default()
        };
        let said = p.narrow(&n, &call()).unwrap();
        assert_eq!(said, vec!["network only to api.github.com".to_string()]);
        let rules = p.domain_rules();
        assert!(matches!(
            rules.decide("api.github.com"),
            Ok(domains::Decision::Allowed(_))
        ));
        assert!(!matches!(
            rules.decide("crates.io"),
            Ok(domains::Decision::Allowed(_))
        ));

        let mut p = policy(NetworkMode::Allow, &["crates.io"]);
        let before = p.clone();
        let n = Narrowing {
            network: Some(NetRequest::Allow(vec!["evil.example".into()])),
            ..Narrowing::default()
        };
        assert!(p.narrow(&n, &call()).is_err());
        assert_eq!(p, before, "a refused request changes nothing");

        let mut p = policy(NetworkMode::Off, &[]);
        let n = Narrowing {
            network: Some(NetRequest::Allow(vec!["crates.io".into()])),
            ..Narrowing::default()
        };
        assert!(p.narrow(&n, &call()).is_err());

        let mut p = policy(NetworkMode::On, &[]);
        let n = Narrowing {
            network: Some(NetRequest::Off),
            ..Narrowing::default()
        };
        assert_eq!(
            p.narrow(&n, &call()).unwrap(),
            vec!["network off".to_string()]
        );
        assert_eq!(p.network.value, NetworkMode::Off);
    }

    #[test]
    fn writes_narrow_to_paths_inside_the_roots() {
        let mut p = policy(NetworkMode::Off, &[]);
        let n = Narrowing {
            write: Some(vec![PathBuf::from("/home/u/prj/src")]),
            ..Narrowing::default()
        };
        p.narrow(&n, &call()).unwrap();
        let roots: Vec<PathBuf> = p.writable_roots().into_iter().map(|r| r.value).collect();
        assert_eq!(roots, vec![PathBuf::from("/home/u/prj/src")]);

        let mut p = policy(NetworkMode::Off, &[]);
        let n = Narrowing {
            write: Some(vec![PathBuf::from("/home/u/prj"), PathBuf::from("/etc")]),
            ..Narrowing::default()
        };
        let err = p.narrow(&n, &call()).unwrap_err();
        assert!(err.0.contains("/etc"), "{err}");

        let mut p = policy(NetworkMode::Off, &[]);
        let n = Narrowing {
            write: Some(Vec::new()),
            ..Narrowing::default()
        };
        p.narrow(&n, &call()).unwrap();
        assert!(p.writable_roots().is_empty());
    }

    #[test]
    fn reads_and_time_only_shrink() {
        let mut p = policy(NetworkMode::Off, &[]);
        let n = Narrowing {
            deny_read: vec![PathBuf::from("/home/u/prj/secrets")],
            restrict_reads: Some(vec![PathBuf::from("/home/u/docs")]),
            timeout: Some(Duration::from_secs(5)),
            ..Narrowing::default()
        };
        let said = p.narrow(&n, &call()).unwrap();
        assert_eq!(said.len(), 3, "{said:?}");
        assert_eq!(p.read.value, ReadMode::Restricted);
        assert_eq!(
            p.limits.timeout.as_ref().map(|t| t.value),
            Some(Duration::from_secs(5))
        );
        // A longer limit than the one set changes nothing.
        let n = Narrowing {
            timeout: Some(Duration::from_secs(50)),
            ..Narrowing::default()
        };
        assert!(p.narrow(&n, &call()).unwrap().is_empty());
        // Reads beyond a restriction already there are refused.
        let n = Narrowing {
            restrict_reads: Some(vec![PathBuf::from("/srv")]),
            ..Narrowing::default()
        };
        assert!(p.narrow(&n, &call()).is_err());
    }
}
