//! What a run enforces, in words: the run report's layers, written from the
//! spec and a few facts known only once the run is built, the same way for
//! both tiers.

use moat_spec::{Isolation, Net, RunSpec};

use crate::cgroup::Placed;

/// How well a layer is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    Full,
    Partial,
    Off,
}

impl LayerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Full => "full",
            LayerState::Partial => "partial",
            LayerState::Off => "off",
        }
    }
}

/// One layer of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: &'static str,
    pub state: LayerState,
    pub detail: String,
}

/// What a run enforces: the run report's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    pub isolation: Isolation,
    pub landlock_abi: i32,
    pub layers: Vec<Layer>,
    /// What the chosen mode cannot enforce (accepted with
    /// `allow_degraded`).
    pub lost: Vec<String>,
}

/// What is known of a run once it is built, beyond its spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub landlock_abi: i32,
    /// Rules in the ruleset, and whether it refuses TCP; `None` where the
    /// ruleset is built elsewhere (by the launcher).
    pub landlock: Option<(usize, bool)>,
    /// Instructions in the seccomp filter, where it is built here.
    pub seccomp_len: Option<usize>,
    /// Which limits the run's cgroups hold.
    pub placed: Placed,
    /// The sandbox account's uid, where known.
    pub account_uid: Option<u32>,
}

/// How well Landlock at `abi` enforces the filesystem policy: ABI 6
/// brings the signal and abstract-socket scopes.
pub fn landlock_state(abi: i32) -> LayerState {
    if abi >= 6 {
        LayerState::Full
    } else if abi > 0 {
        LayerState::Partial
    } else {
        LayerState::Off
    }
}

/// The report's layers for `spec`.
pub fn layers(spec: &RunSpec, facts: &Facts) -> Vec<Layer> {
    let ns = spec.namespaces();
    let account = spec.account().map(|a| a.name());
    let layer = |name, state, detail: String| Layer {
        name,
        state,
        detail,
    };
    let mut out = Vec::new();
    out.push(layer(
        "process",
        LayerState::Full,
        if ns.pid {
            "new session, pid namespace with init, dies with moat, only stdio inherited".into()
        } else {
            "new session, dies with moat, only stdio inherited, descendants reaped".into()
        },
    ));
    out.push(layer(
        "privilege",
        LayerState::Full,
        match (account, facts.account_uid) {
            (Some(a), Some(uid)) => {
                format!("runs as {a} (uid {uid}), no capabilities, no_new_privs")
            }
            (Some(a), None) => format!("runs as {a}, no capabilities, no_new_privs"),
            (None, _) => "no capabilities, no_new_privs".into(),
        },
    ));
    out.push(if ns.mount {
        let mut detail = ns.names().join(", ");
        if !ns.user {
            detail.push_str(" (no user namespace needed)");
        }
        layer("namespaces", LayerState::Full, detail)
    } else {
        layer(
            "namespaces",
            LayerState::Off,
            "user namespaces unavailable or not chosen".into(),
        )
    });
    let fs = &spec.fs;
    out.push(if ns.mount {
        let roots = match account {
            Some(a) => format!(
                "{} writable roots idmapped to {a}, home read-only and idmapped",
                fs.writable.len()
            ),
            None => format!("{} writable roots", fs.writable.len()),
        };
        let caches = match fs.caches.len() {
            0 => String::new(),
            n => format!(", {n} tool caches layered (writes kept in moat's store)"),
        };
        layer(
            "mounts",
            LayerState::Full,
            format!(
                "{roots}{caches}, {} protected paths, {} masked paths",
                fs.protected.len(),
                fs.denied.len()
            ),
        )
    } else {
        layer("mounts", LayerState::Off, "no mount namespace".into())
    });
    let abi = facts.landlock_abi;
    out.push(layer(
        "landlock",
        landlock_state(abi),
        match (abi, facts.landlock) {
            (0, _) => "unavailable".into(),
            (_, Some((rules, tcp))) => format!(
                "ABI {abi}, {rules} rules{}",
                if tcp { ", TCP denied" } else { "" }
            ),
            (_, None) => format!("ABI {abi}"),
        },
    ));
    let sockets = match spec.sockets() {
        moat_spec::Sockets::UnixAndIp => "unix, inet, inet6",
        moat_spec::Sockets::UnixOnly => "unix",
    };
    out.push(layer(
        "seccomp",
        LayerState::Full,
        match facts.seccomp_len {
            Some(n) => format!("{n} instructions, sockets: {sockets}"),
            None => format!("sockets: {sockets}"),
        },
    ));
    let firewall = |what: &str| match account {
        Some(a) => format!("; the firewall rejects {what} of {a}'s traffic"),
        None => String::new(),
    };
    out.push(layer(
        "network",
        if spec.net == Net::Off && !ns.net && abi < 4 {
            LayerState::Partial
        } else {
            LayerState::Full
        },
        match (spec.net, ns.net) {
            (Net::Off, true) => format!(
                "off: empty network namespace, loopback only{}",
                firewall("all")
            ),
            (Net::Off, false) => "off: TCP denied by Landlock, other sockets by seccomp".into(),
            (Net::Proxy, _) => format!(
                "allow: empty network namespace; moat's proxy on 127.0.0.1:{} (HTTP) and :{} \
                 (SOCKS5), ports 80 and 443 of every address captured for it, a DNS stub; other \
                 ports and UDP closed{}",
                moat_spec::PROXY_PORTS[0],
                moat_spec::PROXY_PORTS[1],
                firewall("the rest")
            ),
            (_, _) => match account {
                Some(a) => format!("on: the host's network, as {a}"),
                None => "on: the host's network".into(),
            },
        },
    ));
    out.push(resources(spec, account, facts.placed));
    out
}

/// The resources layer: `account` names whose processes the process limit
/// counts when no cgroup holds it, `placed` which limits cgroups hold.
pub fn resources(spec: &RunSpec, account: Option<&str>, placed: Placed) -> Layer {
    let l = &spec.limits;
    let mut parts = Vec::new();
    if let Some(t) = l.timeout {
        parts.push(format!("timeout {}s", t.as_secs()));
    }
    if let Some(p) = l.processes {
        match (placed.processes, account) {
            (Some(v), _) => parts.push(format!("{p} processes (cgroup v{v})")),
            (None, Some(a)) => parts.push(format!("{p} processes for {a}")),
            (None, None) => parts.push(format!("{p} processes")),
        }
    }
    if let Some(m) = l.memory {
        parts.push(match placed.memory {
            Some(v) => format!("{m} bytes of memory for the whole run (cgroup v{v})"),
            None => format!("{m} bytes of memory per process (no cgroup)"),
        });
    }
    if let Some(f) = l.file_size {
        parts.push(format!("files up to {f} bytes"));
    }
    if let Some(c) = l.cpu_millis {
        let cpus = format_cpus(c);
        parts.push(match placed.cpu {
            Some(v) => format!("{cpus} CPUs (cgroup v{v})"),
            None => format!("{cpus} CPUs: not enforced (no cgroup)"),
        });
    }
    let cpu_lost = l.cpu_millis.is_some() && placed.cpu.is_none();
    let state = if cpu_lost || (l.memory.is_some() && placed.memory.is_none()) {
        LayerState::Partial
    } else {
        LayerState::Full
    };
    Layer {
        name: "resources",
        state,
        detail: if parts.is_empty() {
            "no limits set; the whole tree is killed when the run ends".into()
        } else {
            parts.join(", ")
        },
    }
}

/// `1.5`, `2`, `0.25`: thousandths of a CPU as a person writes them.
fn format_cpus(millis: u64) -> String {
    moat_policy::units::format_cpus(millis)
}

/// What the landlock-only mode cannot enforce for `spec`, given the
/// Landlock ABI.
pub fn landlock_only_losses(spec: &RunSpec, abi: i32) -> Vec<String> {
    let fs = &spec.fs;
    let mut lost = Vec::new();
    if abi < 9 {
        lost.push(
            "the host's pathname UNIX sockets (D-Bus, docker.sock, ssh-agent, tmux) stay \
             reachable: Landlock restricts connect() only from ABI 9"
                .to_string(),
        );
    }
    if abi < 6 {
        lost.push("abstract UNIX sockets and signals to other processes are not scoped (Landlock ABI < 6)".into());
    }
    if !fs.protected.is_empty() {
        lost.push(format!(
            "{} protected paths inside writable roots (git hooks and config, editor and agent \
             settings) are not kept read-only; only new repositories are audited at the end",
            fs.protected.len()
        ));
    }
    if !fs.caches.is_empty() {
        lost.push(format!(
            "{} tool caches ({}) get no writable layer without mounts: they stay read-only",
            fs.caches.len(),
            fs.caches
                .iter()
                .map(|c| c.at.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if fs
        .denied
        .iter()
        .any(|d| fs.writable.iter().any(|w| d.path.starts_with(w)))
    {
        lost.push("denied paths inside writable roots stay readable".into());
    }
    lost.push(
        "the mode and times of files outside the writable roots can still be changed: Landlock \
         does not cover chmod or utimes"
            .into(),
    );
    lost.push("/proc shows the host's processes and their command lines (ptrace, signals and /proc/PID/environ stay blocked)".into());
    lost.push("no private /dev or /dev/shm: POSIX shared memory and device nodes are the host's (writes outside /dev/null and terminals stay blocked)".into());
    lost.push("System V IPC and POSIX message queues are the host's".into());
    lost.push(
        "/tmp is not private: a per-run directory is used as TMPDIR, /tmp itself is read-only"
            .into(),
    );
    lost.push(
        "if moat itself is killed with SIGKILL, background processes of the command may survive"
            .into(),
    );
    if spec.net == Net::Off {
        if abi < 4 {
            lost.push("TCP is not restricted (Landlock ABI < 4); only non-UNIX sockets are refused by seccomp".into());
        }
        lost.push("with the network off, servers the command starts on localhost cannot be reached either".into());
    }
    if spec.limits.processes.is_some() {
        lost.push("the process limit counts all of your processes, not only the sandbox's".into());
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_spec::{Fs, Limits};
    use std::path::PathBuf;

    fn spec(isolation: Isolation, net: Net) -> RunSpec {
        RunSpec {
            isolation,
            net,
            fs: Fs {
                workspace: PathBuf::from("/w"),
                writable: vec![PathBuf::from("/w")],
                ..Fs::default()
            },
            limits: Limits {
                processes: Some(50),
                memory: Some(1 << 20),
                ..Limits::default()
            },
            env: Vec::new(),
            argv: vec!["true".into()],
            cwd: PathBuf::from("/w"),
            pty: false,
            extra_ca: None,
        }
    }

    fn detail<'a>(layers: &'a [Layer], name: &str) -> &'a str {
        layers
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.detail.as_str())
            .unwrap_or("")
    }

    /// Both tiers' reports come from the same words: the elevated tier's
    /// names its account and firewall, the others do not.
    #[test]
    fn the_tiers_report_alike_with_their_differences_named() {
        let facts = Facts {
            landlock_abi: 7,
            ..Facts::default()
        };
        let elevated = layers(&spec(Isolation::Elevated, Net::Proxy), &facts);
        let unelevated = layers(&spec(Isolation::Namespaces, Net::Proxy), &facts);
        let names = |l: &[Layer]| l.iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(&elevated), names(&unelevated));
        assert!(detail(&elevated, "network").contains("firewall rejects the rest of moat-offline"));
        assert!(!detail(&unelevated, "network").contains("firewall"));
        assert!(detail(&elevated, "namespaces").contains("no user namespace needed"));
        assert!(detail(&unelevated, "namespaces").starts_with("user, mount"));
        assert!(detail(&elevated, "privilege").contains("moat-offline"));
        assert!(detail(&elevated, "resources").contains("50 processes for moat-offline"));
        let host = layers(&spec(Isolation::Elevated, Net::Host), &facts);
        assert_eq!(
            detail(&host, "network"),
            "on: the host's network, as moat-online"
        );
        let ll = layers(&spec(Isolation::LandlockOnly, Net::Off), &Facts::default());
        assert_eq!(detail(&ll, "landlock"), "unavailable");
        assert!(ll
            .iter()
            .any(|l| l.name == "network" && l.state == LayerState::Partial));
    }

    #[test]
    fn limits_without_a_cgroup_are_partial() {
        let s = spec(Isolation::Namespaces, Net::Off);
        let r = resources(&s, None, Placed::default());
        assert_eq!(r.state, LayerState::Partial);
        assert!(r.detail.contains("per process (no cgroup)"));
        let placed = Placed {
            memory: Some(2),
            processes: Some(2),
            cpu: None,
        };
        let r = resources(&s, Some("moat-offline"), placed);
        assert_eq!(r.state, LayerState::Full);
        assert!(r.detail.contains("for the whole run (cgroup v2)"));
    }
}
