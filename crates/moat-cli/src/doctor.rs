//! `moat doctor`: what this machine supports, and what `moat run` will
//! enforce here, found by actually starting a sandbox.

use anyhow::Result;
use moat::advanced::detect;
use moat::{Command, Policy, Stdio};
use serde_json::json;

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn doctor(as_json: bool) -> Result<()> {
    let s = detect::detect();
    // A throw-away workspace: the trial must not depend on where doctor
    // runs (the current directory could be `/`).
    let trial_dir = std::env::temp_dir().join(format!("moat-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&trial_dir)?;
    let trial = Command::new("true")
        .workspace(&trial_dir)
        .current_dir(&trial_dir)
        .policy(Policy::workspace_write())
        .stdin(Stdio::Null)
        .status();
    let _ = std::fs::remove_dir_all(&trial_dir);
    let (mode, layers, trial_error) = match &trial {
        Ok(o) if o.success() => (o.report.mode.clone(), o.report.layers.clone(), None),
        Ok(o) => (
            o.report.mode.clone(),
            o.report.layers.clone(),
            Some(format!("`true` exited {}", o.code())),
        ),
        Err(e) => ("refuses".to_string(), Vec::new(), Some(format!("{:#}", e))),
    };
    let userns = match &s.user_namespaces {
        Ok(()) => "yes".to_string(),
        Err(e) => format!("no: {}", e),
    };
    let cgroup = match &s.cgroup2 {
        Some((path, ctrl)) => format!(
            "{} (controllers: {})",
            path.display(),
            if ctrl.is_empty() {
                "none".to_string()
            } else {
                ctrl.join(" ")
            }
        ),
        None => "not mounted".to_string(),
    };
    if as_json {
        let doc = json!({
            "kernel": s.kernel,
            "arch": s.arch,
            "landlock_abi": s.landlock_abi,
            "user_namespaces": { "available": s.user_namespaces.is_ok(), "error": s.user_namespaces.as_ref().err() },
            "userns_sysctls": s.userns_sysctls.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "seccomp": s.seccomp,
            "cgroup2": s.cgroup2.as_ref().map(|(p, c)| json!({"mount": p.display().to_string(), "controllers": c})),
            "nftables": { "nft": s.nftables.0, "kernel": s.nftables.1 },
            "idmapped_mounts": s.idmapped_mounts,
            "cache_layers": cache_layers_json(),
            "run": {
                "mode": mode,
                "layers": layers,
                "error": trial_error,
            },
            "elevated": elevated_json(),
            "probe": "moat probe: tries the catalogue of known sandbox escapes against every mode that runs here",
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let line = |k: &str, v: String| println!("{:<22} {}", k, v);
    line("kernel", format!("{} ({})", s.kernel, s.arch));
    line(
        "landlock",
        if s.landlock_abi > 0 {
            format!("ABI {}", s.landlock_abi)
        } else {
            "unavailable".to_string()
        },
    );
    line("user namespaces", userns);
    for (k, v) in &s.userns_sysctls {
        line(&format!("  {}", k), v.clone());
    }
    line("seccomp", yes(s.seccomp).to_string());
    line("cgroup v2", cgroup);
    line(
        "nftables",
        format!(
            "nft tool: {}, kernel support: {}",
            yes(s.nftables.0),
            yes(s.nftables.1)
        ),
    );
    line("idmapped mounts", yes(s.idmapped_mounts).to_string());
    line("tool caches", caches_line());
    line("elevated tier", elevated_line());
    line("  run limits", limits_line());
    println!();
    match &trial_error {
        None => {
            println!("`moat run` works here, in {} mode, enforcing:", mode);
            for l in &layers {
                println!("  {:<11} {:<8} {}", l.layer, l.state, l.detail);
            }
        }
        Some(e) => {
            println!("`moat run` does not work here as configured:");
            for l in e.lines() {
                println!("  {}", l);
            }
        }
    }
    println!();
    println!("To see these layers tried against known escapes on this machine: moat probe");
    Ok(())
}

/// What `moat setup --check` finds wrong, or `None` when nothing was set up.
fn elevated_problems() -> Option<Vec<String>> {
    let findings = moat_setup::check();
    let set_up = findings.iter().any(|f| f.what == "record" && f.ok);
    set_up.then(|| {
        findings
            .iter()
            .filter(|f| !f.ok)
            .map(|f| format!("{}: {}", f.what, f.detail))
            .collect()
    })
}

fn elevated_line() -> String {
    let usable = moat::advanced::launch::usable();
    match elevated_problems() {
        None if usable => "the launcher is installed and you may use it; your runs go through it \
                           (--tier auto), but the setup record is missing or unreadable"
            .into(),
        None => "not set up (sudo moat setup --user NAME)".into(),
        Some(p) if p.is_empty() && usable => {
            "set up; your runs use it (--tier auto; --tier unelevated to choose the other)".into()
        }
        Some(p) if p.is_empty() => "set up, but you may not use it: you are not in moat-users \
                                    (sudo moat setup --user NAME; it takes effect at your next \
                                    login)"
            .into(),
        Some(p) => format!("set up with {} problems (moat setup --check)", p.len()),
    }
}

/// Where an elevated run's memory and process limits act.
fn limits_line() -> String {
    moat::advanced::cgroup::placement()
        .into_iter()
        .map(|(c, at)| format!("{c}: {}", at.unwrap_or_else(|| "per-process rlimit".into())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn elevated_json() -> serde_json::Value {
    let runs = moat::advanced::launch::usable();
    let limits: serde_json::Map<String, serde_json::Value> = moat::advanced::cgroup::placement()
        .into_iter()
        .map(|(c, at)| {
            (
                c.to_string(),
                at.map_or(serde_json::Value::Null, Into::into),
            )
        })
        .collect();
    match elevated_problems() {
        None => serde_json::json!({ "set_up": false, "runs": runs, "limits": limits }),
        Some(p) => {
            serde_json::json!({ "set_up": true, "problems": p, "runs": runs, "limits": limits })
        }
    }
}

/// Whether tool caches are layered in each tier, and the fallback where not.
fn cache_layers_json() -> serde_json::Value {
    use moat::advanced::Isolation;
    let tier = |i: Isolation| match detect::cache_layers(i) {
        Ok(()) => json!({ "layered": true }),
        Err(why) => json!({ "layered": false, "why": why, "fallback": "redirected" }),
    };
    json!({
        "store": moat::caches::this_store().map(|p| p.display().to_string()),
        "namespaces": tier(Isolation::Namespaces),
        "elevated": tier(Isolation::Elevated),
        "landlock-only": tier(Isolation::LandlockOnly),
    })
}

fn caches_line() -> String {
    use moat::advanced::Isolation;
    let store = moat::caches::this_store()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(no HOME)".into());
    match (
        detect::cache_layers(Isolation::Namespaces),
        detect::cache_layers(Isolation::Elevated),
    ) {
        (Ok(()), Ok(())) => format!(
            "layered in both tiers (overlayfs): writes to ~/.cargo, ~/.npm, ~/.cache, ... are \
             kept in {store} (moat cache); in the landlock-only mode the tools are pointed at \
             empty caches of moat's own through their environment (CARGO_HOME, XDG_CACHE_HOME, \
             ...) instead"
        ),
        (Ok(()), Err(why)) => format!(
            "layered in the unelevated tier, kept in {store}; not in the elevated tier ({why}): \
             there the tools are pointed at empty caches of moat's own through their environment"
        ),
        (Err(why), _) => format!(
            "not layered ({why}): the tools are pointed at empty caches of moat's own in {store} \
             through their environment (CARGO_HOME, XDG_CACHE_HOME, ...)"
        ),
    }
}
