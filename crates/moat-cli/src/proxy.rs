//! `moat proxy`: the allowlist proxy of `moat run --network allow` on its
//! own, for agents that take a proxy setting (Claude Code's
//! `sandbox.network.httpProxyPort`, Gemini CLI's proxy command) and for
//! anything that honours the proxy variables. The allowlist comes from the
//! same flags and config keys as `moat run`'s; every decision is a JSON
//! line. Loopback only unless told otherwise: on another address anyone who
//! can reach it could use it.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use moat::proxy::{Hooks, Listener, Proxy};
use moat::{NetworkMode, Policy};

use crate::cli::{PolicyArgs, ProxyArgs};

pub fn proxy(args: ProxyArgs) -> Result<u8> {
    let mut http = args.listen.clone();
    if http.is_empty() && args.socks.is_empty() {
        http.push(SocketAddr::from(([127, 0, 0, 1], 3128)));
    }
    if !args.non_loopback {
        if let Some(a) = http
            .iter()
            .chain(&args.socks)
            .find(|a| !a.ip().is_loopback())
        {
            bail!(
                "{a} is not a loopback address: anyone who can reach it could use the proxy\n\
                 hint: listen on 127.0.0.1, or pass --non-loopback if you mean it"
            );
        }
    }
    let flags = PolicyArgs {
        workspace: args.workspace.clone(),
        network: Some("allow".into()),
        destinations: args.destinations.clone(),
        no_config: args.no_config,
        ..PolicyArgs::default()
    };
    let mut policy = Policy::from_layer(crate::flags::layer(&flags)?);
    if !args.no_config {
        policy = policy.with_config_files();
    }
    let resolved = moat::resolve(&policy, args.workspace.as_deref())?;
    for ignored in &resolved.policy.ignored {
        eprintln!("moat proxy: warning: {ignored}");
    }
    if resolved.policy.network.value != NetworkMode::Allow {
        bail!("the proxy serves only the allowlist of `network = allow`");
    }
    let rules = resolved.policy.domain_rules();
    if rules.allow.is_empty() {
        eprintln!(
            "moat proxy: warning: nothing is allowed: pass --allow-domain or set network.allow \
             in your config"
        );
    }
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for (addrs, socks) in [(&http, false), (&args.socks, true)] {
        for addr in addrs {
            let l = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
            let at = l
                .local_addr()
                .with_context(|| format!("listening on {addr}"))?;
            bound.push(serde_json::json!({
                "protocol": if socks { "socks5" } else { "http" },
                "address": at.to_string(),
            }));
            listeners.push(if socks {
                Listener::Socks(l)
            } else {
                Listener::Http(l)
            });
        }
    }
    let out: Box<dyn Write + Send> = match &args.log {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--log: cannot open {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let out = Mutex::new(out);
    let hooks = Hooks {
        on_decision: Some(Arc::new(move |d| {
            if let (Ok(mut o), Ok(line)) = (out.lock(), serde_json::to_string(d)) {
                let _ = writeln!(o, "{line}");
                let _ = o.flush();
            }
        })),
        ..Hooks::default()
    };
    let allow: Vec<String> = rules.allow.iter().map(ToString::to_string).collect();
    eprintln!(
        "{}",
        serde_json::json!({ "type": "listening", "listeners": bound, "allow": allow })
    );
    let _proxy = Proxy::start(listeners, rules, hooks);
    // Serves until killed: every decision is written as it is made.
    loop {
        std::thread::park();
    }
}
