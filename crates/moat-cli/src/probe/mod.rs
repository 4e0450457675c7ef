//! `moat probe`: the catalogue of known sandbox escapes, tried for real
//! against the sandbox `moat run` builds on this machine (or any other
//! sandbox's command prefix), each after a positive control.

mod catalogue;
mod fixture;
mod runner;

use std::path::PathBuf;

use anyhow::{Context, Result};

use runner::{Mode, Row, Verdict};

/// Options of `moat probe`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub json: bool,
    pub only: Vec<String>,
    pub wrappers: Vec<String>,
    pub modes: Vec<String>,
}

fn moat_exe() -> Result<PathBuf> {
    std::env::current_exe().context("finding the moat program")
}

/// Whether `moat run` works in this mode here; the reason when not.
fn mode_works(
    exe: &PathBuf,
    isolation: &str,
    extra: &[&str],
    f: &fixture::Fixture,
) -> std::result::Result<(), String> {
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["run", "--workspace"]).arg(&f.ws);
    if isolation != "full" {
        cmd.args(["--isolation", isolation, "--allow-degraded"]);
    }
    cmd.args(extra);
    let out = cmd
        .args(["--", "true"])
        .current_dir(&f.ws)
        .env("HOME", &f.home)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .lines()
            .next()
            .unwrap_or("failed")
            .trim_start_matches("moat: ")
            .to_string())
    }
}

fn split_words(text: &str) -> Result<Vec<String>> {
    // Words separated by spaces; single or double quotes group.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    anyhow::ensure!(quote.is_none(), "--wrapper has an unclosed quote: {text}");
    if started {
        out.push(cur);
    }
    anyhow::ensure!(!out.is_empty(), "--wrapper is empty");
    Ok(out)
}

/// Runs the catalogue; returns the exit status.
pub fn probe(opts: Options) -> Result<u8> {
    let exe = moat_exe()?;
    let probe_exe = runner::probe_exe(&exe)?;
    let mut f = fixture::Fixture::new(&probe_exe)?;
    let probe_exe = f.probe_exe.clone();
    let catalogue = catalogue::build(&f);
    let layers: Vec<&str> = {
        let mut l: Vec<&str> = catalogue.iter().map(|p| p.layer).collect();
        l.dedup();
        l
    };
    for only in &opts.only {
        anyhow::ensure!(
            layers.contains(&only.as_str()),
            "--only {only}: no such category (categories: {})",
            layers.join(", ")
        );
    }
    let mut modes = Vec::new();
    let mut skipped = Vec::new();
    {
        let wanted: Vec<&str> = if opts.modes.is_empty() {
            vec!["full", "landlock-only", "allow", "elevated"]
        } else {
            opts.modes.iter().map(String::as_str).collect()
        };
        for m in wanted {
            let (isolation, label, extra): (&'static str, &'static str, &'static [&'static str]) =
                match m {
                    "full" => ("full", "full", &["--tier", "unelevated"]),
                    "landlock-only" => ("landlock-only", "landlock-only", &[]),
                    // Needs `moat setup` (as root) for the person probing.
                    "elevated" => ("full", "elevated", &["--tier", "elevated"]),
                    "elevated-allow" => (
                        "full",
                        "elevated, network allow",
                        &[
                            "--tier",
                            "elevated",
                            "--network",
                            "allow",
                            "--allow-domain",
                            "allowed.moat-probe.invalid",
                        ],
                    ),
                    // The allowlist's proxy must let none of the attacks
                    // through either; its list names nothing they use.
                    "allow" => (
                        "full",
                        "full, network allow",
                        &[
                            "--tier",
                            "unelevated",
                            "--network",
                            "allow",
                            "--allow-domain",
                            "allowed.moat-probe.invalid",
                        ],
                    ),
                    "none" => continue,
                    other => {
                        anyhow::bail!(
                            "--mode {other}: use full, landlock-only, allow, elevated, \
                             elevated-allow or none"
                        )
                    }
                };
            match mode_works(&exe, isolation, extra, &f) {
                Ok(()) => modes.push(Mode::Moat {
                    exe: exe.clone(),
                    isolation,
                    label,
                    extra,
                }),
                Err(why) if opts.modes.is_empty() => skipped.push((label, why)),
                Err(why) => anyhow::bail!("mode {label} cannot run here: {why}"),
            }
        }
    }
    for w in &opts.wrappers {
        modes.push(Mode::Wrapper(split_words(w)?));
    }
    anyhow::ensure!(
        !modes.is_empty(),
        "nothing to probe: no mode of moat runs here ({}) and no --wrapper was given",
        skipped
            .iter()
            .map(|(m, why)| format!("{m}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    );

    let mut results: Vec<(String, Vec<Row>)> = Vec::new();
    for mode in &modes {
        let mut rows = Vec::new();
        for p in catalogue
            .iter()
            .filter(|p| opts.only.is_empty() || opts.only.iter().any(|o| o == p.layer))
        {
            rows.push(runner::run_probe(p, mode, &mut f, &probe_exe));
        }
        results.push((mode.name(), rows));
    }

    let leftovers = f.leftovers();
    let count = |v: Verdict| {
        results
            .iter()
            .flat_map(|(_, r)| r)
            .filter(|r| r.verdict == v)
            .count()
    };
    let passed = count(Verdict::Blocked);
    let failed = count(Verdict::Escaped) + count(Verdict::Inconclusive) + leftovers.len();
    if opts.json {
        let out = serde_json::json!({
            "modes": results.iter().map(|(m, rows)| serde_json::json!({"mode": m, "probes": rows})).collect::<Vec<_>>(),
            "skipped_modes": skipped.iter().map(|(m, why)| serde_json::json!({"mode": m, "why": why})).collect::<Vec<_>>(),
            "passed": passed,
            "failed": failed,
            "known_losses": count(Verdict::KnownLoss),
            "not_applicable": count(Verdict::NotApplicable),
            "left_on_host": leftovers,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (m, why) in &skipped {
            println!("mode {m}: not available here ({why})\n");
        }
        if results.len() == 1 {
            print_rows(&results[0].0, &results[0].1);
        } else {
            print_matrix(&results);
        }
        for (mode, rows) in &results {
            println!("{mode}: {}", summary(rows));
        }
        for l in &leftovers {
            println!("left on the host after its probe: {}", l.display());
        }
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn summary(rows: &[Row]) -> String {
    let n = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let mut parts = vec![
        format!("{} blocked", n(Verdict::Blocked)),
        format!("{} not blocked", n(Verdict::Escaped)),
        format!("{} inconclusive", n(Verdict::Inconclusive)),
    ];
    if n(Verdict::KnownLoss) > 0 {
        parts.push(format!(
            "{} known losses of this mode",
            n(Verdict::KnownLoss)
        ));
    }
    if n(Verdict::NotApplicable) > 0 {
        parts.push(format!("{} not applicable here", n(Verdict::NotApplicable)));
    }
    parts.join(", ")
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(width.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

fn print_rows(mode: &str, rows: &[Row]) {
    println!("== {mode}");
    println!(
        "{:<18} {:<58} {:<30} {:<9} {:<44} VERDICT",
        "CATEGORY", "ATTACK", "STOPPED BY", "EXPECTED", "OBSERVED"
    );
    for r in rows {
        println!(
            "{:<18} {:<58} {:<30} {:<9} {:<44} {}",
            r.layer,
            clip(&r.attack, 58),
            clip(r.stopped_by, 30),
            r.expected,
            clip(&r.observed, 44),
            r.verdict.as_str()
        );
    }
    println!();
}

/// What a cell of the comparison shows: the verdict and the first word
/// of what was seen.
fn cell(r: &Row) -> String {
    let first = r.observed.split(';').next().unwrap_or("").trim();
    match r.verdict {
        Verdict::Blocked | Verdict::Escaped | Verdict::KnownLoss if !first.is_empty() => {
            format!("{} ({})", r.verdict.as_str(), clip(first, 14))
        }
        _ => r.verdict.as_str().to_string(),
    }
}

fn print_matrix(results: &[(String, Vec<Row>)]) {
    print!("{:<18} {:<58}", "CATEGORY", "ATTACK");
    for (mode, _) in results {
        print!(" {:<32}", clip(mode, 32));
    }
    println!();
    for (i, r) in results[0].1.iter().enumerate() {
        print!("{:<18} {:<58}", r.layer, clip(&r.attack, 58));
        for (_, rows) in results {
            print!(" {:<32}", rows.get(i).map(cell).unwrap_or_default());
        }
        println!();
    }
    println!();
}
