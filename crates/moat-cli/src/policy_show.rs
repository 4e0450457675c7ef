//! `moat policy show`: the effective policy, where each value came from,
//! and what it means in this workspace.

use anyhow::Result;
use moat::advanced::{host::StdFs, scan, units, view, Sourced};
use moat::{Command, Policy};
use serde_json::{json, Value};

use crate::cli::PolicyArgs;
use crate::flags;

fn sourced<T: std::fmt::Display>(s: &Sourced<T>) -> Value {
    json!({ "value": s.value.to_string(), "source": s.source.to_string() })
}

fn sourced_path(s: &Sourced<std::path::PathBuf>) -> Value {
    json!({ "value": s.value.display().to_string(), "source": s.source.to_string() })
}

pub fn show(args: &PolicyArgs, as_json: bool) -> Result<()> {
    let mut policy = Policy::from_layer(flags::layer(args)?);
    if !args.no_config {
        policy = policy.with_config_files();
    }
    let mut cmd = Command::new("true");
    cmd.policy(policy);
    if let Some(ws) = &args.workspace {
        cmd.workspace(ws);
    }
    let resolved = cmd.resolve()?;
    let p = &resolved.policy;
    let view = view::build(p, &StdFs, scan::ScanLimits::DEFAULT);
    let limits = json!({
        "timeout": p.limits.timeout.as_ref().map(|t| json!({"seconds": t.value.as_secs(), "source": t.source.to_string()})),
        "processes": p.limits.processes.as_ref().map(|v| json!({"value": v.value, "source": v.source.to_string()})),
        "memory": p.limits.memory.as_ref().map(|v| json!({"bytes": v.value, "source": v.source.to_string()})),
        "file_size": p.limits.file_size.as_ref().map(|v| json!({"bytes": v.value, "source": v.source.to_string()})),
        "cpus": p.limits.cpu.as_ref().map(|v| json!({"cpus": units::format_cpus(v.value), "source": v.source.to_string()})),
    });
    let mut precedence = vec![json!({"source": "built-in defaults"})];
    for (path, _, found) in &resolved.config_files {
        precedence.push(json!({"source": path.display().to_string(), "found": found}));
    }
    precedence.push(json!({"source": "command-line flags"}));
    let (view_json, view_error) = match &view {
        Ok(v) => (
            json!({
                "writable": v.writable.iter().map(|w| json!({"path": w.path.display().to_string(), "source": w.source.to_string()})).collect::<Vec<_>>(),
                "protected": v.protected.iter().map(|x| json!({"path": x.path.display().to_string(), "reason": x.reason})).collect::<Vec<_>>(),
                "placeholders": v.placeholders.iter().map(|x| x.display().to_string()).collect::<Vec<_>>(),
                "pinned": v.pins.iter().map(|x| x.display().to_string()).collect::<Vec<_>>(),
                "denied": v.denied.iter().map(|d| json!({"path": d.path.display().to_string(), "source": d.source.to_string()})).collect::<Vec<_>>(),
                "repositories": v.repos.iter().map(|r| r.repo.worktree.display().to_string()).collect::<Vec<_>>(),
                "readable": v.readable.as_ref().map(|r| r.iter().map(|x| x.display().to_string()).collect::<Vec<_>>()),
                "notes": v.notes,
            }),
            None,
        ),
        Err(e) => (Value::Null, Some(e.to_string())),
    };
    let doc = json!({
        "workspace": sourced_path(&p.workspace),
        "preset": sourced(&p.preset),
        "filesystem": {
            "read": sourced(&p.read),
            "write": p.write.iter().map(sourced_path).collect::<Vec<_>>(),
            "deny_read": p.deny_read.iter().map(sourced_path).collect::<Vec<_>>(),
            "allow_read": p.allow_read.iter().map(sourced_path).collect::<Vec<_>>(),
            "protect": p.protect.iter().map(sourced_path).collect::<Vec<_>>(),
            "strict_git": sourced(&p.strict_git),
        },
        "network": {
            "mode": sourced(&p.network),
            "require_isolation": sourced(&p.require_network_isolation),
            "allow": p.allow_domains.iter().map(sourced).collect::<Vec<_>>(),
            "deny": p.deny_domains.iter().map(sourced).collect::<Vec<_>>(),
            "allow_cidr": p.allow_cidr.iter().map(sourced).collect::<Vec<_>>(),
            "resolve": p.resolve.iter().map(|r| json!({"name": r.value.0, "address": r.value.1.to_string(), "source": r.source.to_string()})).collect::<Vec<_>>(),
            // Names and hosts only: the values are read at run time, never here.
            "secrets": p.secrets.iter().map(|s| json!({"env": s.value.env, "hosts": s.value.hosts, "file": s.value.file.as_ref().map(|f| f.display().to_string()), "source": s.source.to_string()})).collect::<Vec<_>>(),
            // "Any" written as in the config: ["*"] methods, ["/"] paths.
            "requests": p.request_rules.iter().map(|r| json!({"host": r.value.host, "methods": if r.value.methods.is_empty() { vec!["*".to_string()] } else { r.value.methods.clone() }, "paths": if r.value.paths.is_empty() { vec!["/".to_string()] } else { r.value.paths.clone() }, "source": r.source.to_string()})).collect::<Vec<_>>(),
            "upstream_ca": p.upstream_ca.iter().map(sourced_path).collect::<Vec<_>>(),
        },
        "env": {
            "clear": sourced(&p.env.clear),
            "pass": p.env.pass.iter().map(sourced).collect::<Vec<_>>(),
            "set": p.env.set.iter().map(|s| json!({"name": s.value.0, "value": s.value.1, "source": s.source.to_string()})).collect::<Vec<_>>(),
        },
        "limits": limits,
        "ignored": p.ignored.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "precedence": precedence,
        "view": view_json,
        "view_error": view_error,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print_human(p, &resolved, view.as_ref().ok(), view_error.as_deref());
    Ok(())
}

fn print_human(
    p: &moat::advanced::ResolvedPolicy,
    resolved: &moat::Resolved,
    view: Option<&view::FsView>,
    view_error: Option<&str>,
) {
    let line = |k: &str, v: String| println!("{:<18} {}", k, v);
    line(
        "workspace",
        format!("{}  ({})", p.workspace.value.display(), p.workspace.source),
    );
    line(
        "preset",
        format!("{}  ({})", p.preset.value, p.preset.source),
    );
    line("read", format!("{}  ({})", p.read.value, p.read.source));
    for w in &p.write {
        line("write", format!("{}  ({})", w.value.display(), w.source));
    }
    for d in &p.deny_read {
        line(
            "deny_read",
            format!("{}  ({})", d.value.display(), d.source),
        );
    }
    for a in &p.allow_read {
        line(
            "allow_read",
            format!("{}  ({})", a.value.display(), a.source),
        );
    }
    let protect: Vec<String> = p
        .protect
        .iter()
        .map(|x| x.value.display().to_string())
        .collect();
    line("protect", protect.join(" "));
    line(
        "strict_git",
        format!("{}  ({})", p.strict_git.value, p.strict_git.source),
    );
    line(
        "network",
        format!("{}  ({})", p.network.value, p.network.source),
    );
    line(
        "network.require_isolation",
        format!(
            "{}  ({})",
            p.require_network_isolation.value, p.require_network_isolation.source
        ),
    );
    for a in &p.allow_domains {
        line("network.allow", format!("{}  ({})", a.value, a.source));
    }
    for d in &p.deny_domains {
        line("network.deny", format!("{}  ({})", d.value, d.source));
    }
    for c in &p.allow_cidr {
        line("network.allow_cidr", format!("{}  ({})", c.value, c.source));
    }
    for r in &p.resolve {
        line(
            "network.resolve",
            format!("{} -> {}  ({})", r.value.0, r.value.1, r.source),
        );
    }
    for s in &p.secrets {
        line("network.secret", format!("{}  ({})", s.value, s.source));
    }
    for r in &p.request_rules {
        line("network.request", format!("{}  ({})", r.value, r.source));
    }
    for c in &p.upstream_ca {
        line(
            "network.upstream_ca",
            format!("{}  ({})", c.value.display(), c.source),
        );
    }
    line(
        "env.clear",
        format!("{}  ({})", p.env.clear.value, p.env.clear.source),
    );
    for s in &p.env.pass {
        line("env.pass", format!("{}  ({})", s.value, s.source));
    }
    for s in &p.env.set {
        line(
            "env.set",
            format!("{}={}  ({})", s.value.0, s.value.1, s.source),
        );
    }
    let limit = |name: &str, v: Option<String>| line(name, v.unwrap_or_else(|| "none".into()));
    limit(
        "timeout",
        p.limits
            .timeout
            .as_ref()
            .map(|t| format!("{}s  ({})", t.value.as_secs(), t.source)),
    );
    limit(
        "processes",
        p.limits
            .processes
            .as_ref()
            .map(|t| format!("{}  ({})", t.value, t.source)),
    );
    limit(
        "memory",
        p.limits
            .memory
            .as_ref()
            .map(|t| format!("{} bytes  ({})", t.value, t.source)),
    );
    limit(
        "file_size",
        p.limits
            .file_size
            .as_ref()
            .map(|t| format!("{} bytes  ({})", t.value, t.source)),
    );
    limit(
        "cpus",
        p.limits
            .cpu
            .as_ref()
            .map(|t| format!("{}  ({})", units::format_cpus(t.value), t.source)),
    );
    for i in &p.ignored {
        line("ignored", i.to_string());
    }
    println!();
    println!("precedence, lowest first:");
    println!("  1. built-in defaults");
    let mut n = 2;
    for (path, source, found) in &resolved.config_files {
        let kind = match source {
            moat::advanced::Source::WorkspaceConfig(_) => "workspace config, can only narrow",
            _ => "your config",
        };
        println!(
            "  {}. {} ({}, {})",
            n,
            path.display(),
            kind,
            if *found { "found" } else { "not found" }
        );
        n += 1;
    }
    println!("  {}. command-line flags", n);
    println!();
    match (view, view_error) {
        (Some(v), _) => {
            println!("in this workspace:");
            for w in &v.writable {
                println!("  writable     {}", w.path.display());
            }
            for x in &v.protected {
                let tag = if v.placeholders.contains(&x.path) {
                    " (absent: placeholder)"
                } else {
                    ""
                };
                println!("  read-only    {}{}", x.path.display(), tag);
            }
            for x in &v.denied {
                println!("  unreadable   {}", x.path.display());
            }
            for r in &v.repos {
                println!("  repository   {}", r.repo.worktree.display());
            }
            for note in &v.notes {
                println!("  note: {}", note);
            }
        }
        (None, Some(e)) => println!("this policy cannot run here: {}", e),
        _ => {}
    }
}
