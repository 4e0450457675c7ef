//! The environment of a Windows run: what the unelevated tier can do about
//! the network (only advise: programs are pointed at a dead proxy and told
//! to stay offline, and the run says the network is not enforced), the
//! variables that point programs at moat's proxy with `--network allow`
//! (both tiers), and the `safe.directory` entry git needs when the sandbox
//! account runs git in a repository the person owns.

use moat_policy::NetworkMode;

/// How a run's network policy is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEnforcement {
    /// By the firewall (the elevated tier's accounts).
    Enforced,
    /// Only by the environment: a program that opens sockets itself gets
    /// through. `moat doctor`, `--json` and stderr say so.
    Advisory,
    /// Nothing to enforce (network on).
    Open,
}

impl NetEnforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            NetEnforcement::Enforced => "enforced",
            NetEnforcement::Advisory => "advisory",
            NetEnforcement::Open => "open",
        }
    }
}

/// How `mode` is enforced in the unelevated (`elevated == false`) or
/// elevated tier.
pub fn enforcement(mode: NetworkMode, elevated: bool) -> NetEnforcement {
    match (mode, elevated) {
        (NetworkMode::On, _) => NetEnforcement::Open,
        (_, true) => NetEnforcement::Enforced,
        (_, false) => NetEnforcement::Advisory,
    }
}

/// Refuses a run whose policy requires an enforced network where only
/// advice is possible, naming the fix.
pub fn require_enforced(mode: NetworkMode, elevated: bool, required: bool) -> Result<(), String> {
    if required && enforcement(mode, elevated) == NetEnforcement::Advisory {
        return Err(format!(
            "the policy requires the network to be enforced ({}), but the unelevated tier on \
             Windows can only advise programs to stay offline: run `moat setup` once (as \
             administrator) and use the elevated tier",
            mode
        ));
    }
    Ok(())
}

/// [`require_enforced`] for a resolved policy (`network.require_isolation`
/// in config, `--require-network-isolation` on the command line); how the
/// run's network will be enforced if it may go ahead.
pub fn check_policy(
    policy: &moat_policy::Policy,
    elevated: bool,
) -> Result<NetEnforcement, String> {
    let mode = policy.network.value;
    require_enforced(mode, elevated, policy.require_network_isolation.value)?;
    Ok(enforcement(mode, elevated))
}

/// A port nothing listens on, so proxy-respecting programs fail at once.
const DEAD_PROXY: &str = "http://127.0.0.1:9";

/// The proxy variables curl, git and most HTTP libraries read: pointed at
/// a dead proxy when offline, at moat's when allowlisted.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "GIT_HTTP_PROXY",
    "GIT_HTTPS_PROXY",
];

/// The variables that keep proxy-respecting tools offline in the
/// unelevated tier.
pub fn advisory_offline() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for name in PROXY_VARIABLES {
        out.push((name.to_string(), DEAD_PROXY.to_string()));
    }
    for (name, value) in [
        ("NO_PROXY", ""),
        ("no_proxy", ""),
        ("GIT_SSH_COMMAND", "cmd /c exit 1"),
        ("GIT_ALLOW_PROTOCOLS", "file"),
        ("PIP_NO_INDEX", "1"),
        ("NPM_CONFIG_OFFLINE", "true"),
        ("CARGO_NET_OFFLINE", "true"),
        ("MOAT_NETWORK", "advisory"),
    ] {
        out.push((name.to_string(), value.to_string()));
    }
    out
}

/// The variables that send proxy-respecting programs (curl, git, cargo,
/// pip, npm) to moat's HTTP proxy on loopback `port`, with the run's
/// `password` (user `moat`) in the URL, which those programs send as
/// `Proxy-Authorization`. `ALL_PROXY` names the HTTP proxy too: moat has
/// no SOCKS listener on Windows.
pub fn proxy_env(port: u16, password: &str) -> Vec<(String, String)> {
    let proxy = format!(
        "http://{}:{}@127.0.0.1:{}",
        moat_proxy::PROXY_USER,
        password,
        port
    );
    let mut out: Vec<(String, String)> = Vec::new();
    for name in PROXY_VARIABLES.iter().chain(&[
        "CARGO_HTTP_PROXY",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "PIP_PROXY",
    ]) {
        out.push((name.to_string(), proxy.clone()));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        out.push((name.to_string(), "localhost,127.0.0.1,::1".to_string()));
    }
    // Fetching over HTTP(S) is what the allowlist is for; git over SSH or
    // its own protocol cannot go through the proxy.
    out.push((
        "GIT_ALLOW_PROTOCOLS".to_string(),
        "file:http:https".to_string(),
    ));
    out
}

/// The variables of [`advisory_offline`] that would keep programs from
/// fetching what the allowlist allows.
const OFFLINE_ONLY: [&str; 3] = ["PIP_NO_INDEX", "NPM_CONFIG_OFFLINE", "CARGO_NET_OFFLINE"];

/// Points `vars` at moat's proxy on loopback `port` ([`proxy_env`]) in
/// place of the dead one, and drops the variables that tell programs to
/// stay offline. Names are compared as Windows does, ignoring case.
pub fn use_proxy(vars: &mut Vec<(String, String)>, port: u16, password: &str) {
    vars.retain(|(name, _)| !OFFLINE_ONLY.iter().any(|o| name.eq_ignore_ascii_case(o)));
    for (name, value) in proxy_env(port, password) {
        crate::envblock::set_or_replace(vars, &name, &value);
    }
}

/// What the report says about the proxy of a `--network allow` run on
/// loopback `port`, in the elevated tier or the unelevated one.
pub fn proxy_note(port: u16, elevated: bool) -> String {
    if elevated {
        format!(
            "network = allow: the command reaches only moat's HTTP proxy on 127.0.0.1:{} \
             (the firewall blocks everything else), which lets through only the allowlist",
            port
        )
    } else {
        format!(
            "network = allow: moat's HTTP proxy on 127.0.0.1:{} lets through only the \
             allowlist, but only programs that honour the proxy variables use it; one that \
             opens sockets itself is not stopped (the elevated tier enforces it: `moat setup` \
             as administrator)",
            port
        )
    }
}

/// Adds `safe.directory = repo` through git's `GIT_CONFIG_COUNT` variables,
/// after any entries already there: the sandbox account runs git in a
/// repository the person owns, and git would refuse it ("dubious
/// ownership"). The repository keeps its owner.
pub fn add_safe_directory(vars: &mut Vec<(String, String)>, repo: &str) {
    let find = |vars: &Vec<(String, String)>, name: &str| {
        vars.iter().position(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let count = find(vars, "GIT_CONFIG_COUNT")
        .and_then(|i| vars[i].1.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let set =
        |vars: &mut Vec<(String, String)>, name: String, value: String| match find(vars, &name) {
            Some(i) => vars[i].1 = value,
            None => vars.push((name, value)),
        };
    set(
        vars,
        format!("GIT_CONFIG_KEY_{}", count),
        "safe.directory".into(),
    );
    set(
        vars,
        format!("GIT_CONFIG_VALUE_{}", count),
        repo.replace('\\', "/"),
    );
    set(vars, "GIT_CONFIG_COUNT".into(), (count + 1).to_string());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn policy(mode: NetworkMode, required: bool) -> moat_policy::Policy {
        let mut layer = moat_policy::Layer::new(moat_policy::Source::Api);
        layer.network = Some(mode);
        layer.require_network_isolation = Some(required);
        let mut settings = moat_policy::Settings::new();
        settings.push(layer);
        let facts = moat_policy::HostFacts {
            home: std::path::PathBuf::from("/home/a"),
            cwd: std::path::PathBuf::from("/home/a/prj"),
            env: Vec::new(),
        };
        let ws = moat_policy::Sourced::new(
            std::path::PathBuf::from("/home/a/prj"),
            moat_policy::Source::Api,
        );
        settings
            .resolve(&facts, ws)
            .expect("a plain policy resolves")
    }

    #[test]
    fn a_policy_that_requires_isolation_is_refused_only_where_it_is_advice() {
        let required = policy(NetworkMode::Off, true);
        let refused = check_policy(&required, false).unwrap_err();
        assert!(refused.contains("moat setup"), "{refused}");
        assert_eq!(check_policy(&required, true), Ok(NetEnforcement::Enforced));
        let advised = policy(NetworkMode::Off, false);
        assert_eq!(check_policy(&advised, false), Ok(NetEnforcement::Advisory));
        let open = policy(NetworkMode::On, true);
        assert_eq!(check_policy(&open, false), Ok(NetEnforcement::Open));
    }

    #[test]
    fn the_unelevated_network_is_advisory_and_says_so() {
        assert_eq!(
            enforcement(NetworkMode::Off, false),
            NetEnforcement::Advisory
        );
        assert_eq!(
            enforcement(NetworkMode::Allow, true),
            NetEnforcement::Enforced
        );
        assert_eq!(enforcement(NetworkMode::On, false), NetEnforcement::Open);
        let refused = require_enforced(NetworkMode::Off, false, true);
        assert!(refused
            .as_ref()
            .err()
            .map_or(false, |e| e.contains("moat setup")));
        assert!(require_enforced(NetworkMode::Off, true, true).is_ok());
        assert!(require_enforced(NetworkMode::Off, false, false).is_ok());
        let env = advisory_offline();
        assert!(env
            .iter()
            .any(|(n, v)| n == "HTTPS_PROXY" && v == DEAD_PROXY));
        assert!(env
            .iter()
            .any(|(n, v)| n == "MOAT_NETWORK" && v == "advisory"));
    }

    #[test]
    fn an_allowlisted_run_is_pointed_at_the_proxy_instead_of_offline() {
        let env = proxy_env(47810, "00ff");
        for name in ["HTTP_PROXY", "https_proxy", "ALL_PROXY", "GIT_HTTPS_PROXY"] {
            assert!(
                env.iter()
                    .any(|(n, v)| n == name && v == "http://moat:00ff@127.0.0.1:47810"),
                "{name} in {env:?}"
            );
        }
        let mut vars = vec![
            ("Path".to_string(), r"C:\Windows".to_string()),
            ("pip_no_index".to_string(), "1".to_string()),
        ];
        vars.extend(advisory_offline());
        use_proxy(&mut vars, 47811, "ab12");
        let get = |n: &str| -> Vec<&str> {
            vars.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
                .collect()
        };
        // One entry per name (Windows ignores case), the proxy's.
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "GIT_HTTP_PROXY"] {
            assert_eq!(
                get(name),
                vec!["http://moat:ab12@127.0.0.1:47811"],
                "{name}"
            );
        }
        assert!(!vars.iter().any(|(_, v)| v == DEAD_PROXY), "{vars:?}");
        for gone in OFFLINE_ONLY {
            assert!(get(gone).is_empty(), "{gone} in {vars:?}");
        }
        assert_eq!(get("GIT_ALLOW_PROTOCOLS"), vec!["file:http:https"]);
        assert_eq!(get("NO_PROXY"), vec!["localhost,127.0.0.1,::1"]);
        // Still said: the unelevated tier's network is advice.
        assert_eq!(get("MOAT_NETWORK"), vec!["advisory"]);
        assert_eq!(get("GIT_SSH_COMMAND"), vec!["cmd /c exit 1"]);
        assert_eq!(get("Path"), vec![r"C:\Windows"]);

        let elevated = proxy_note(47810, true);
        assert!(elevated.contains("127.0.0.1:47810") && elevated.contains("firewall"));
        let advisory = proxy_note(47810, false);
        assert!(
            advisory.contains("honour the proxy variables") && advisory.contains("moat setup"),
            "{advisory}"
        );
    }

    #[test]
    fn safe_directory_is_appended_to_existing_git_config() {
        let mut vars = vec![
            ("Git_Config_Count".to_string(), "1".to_string()),
            ("GIT_CONFIG_KEY_0".to_string(), "core.editor".to_string()),
            ("GIT_CONFIG_VALUE_0".to_string(), "true".to_string()),
        ];
        add_safe_directory(&mut vars, r"C:\src\repo");
        let get = |n: &str| {
            vars.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("GIT_CONFIG_COUNT").as_deref(), Some("2"));
        assert_eq!(get("GIT_CONFIG_KEY_1").as_deref(), Some("safe.directory"));
        assert_eq!(get("GIT_CONFIG_VALUE_1").as_deref(), Some("C:/src/repo"));
        assert_eq!(get("GIT_CONFIG_KEY_0").as_deref(), Some("core.editor"));
        let mut empty = Vec::new();
        add_safe_directory(&mut empty, "D:/w");
        assert_eq!(empty.len(), 3);
    }
}
