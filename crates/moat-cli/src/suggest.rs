//! `moat policy suggest --from REPORT`: the config lines that would have
//! allowed what a run was refused, printed for a person to review and paste.
//! Nothing is written.
//!
//! The report is the JSON `moat run --report FILE` writes, or the JSON
//! lines `moat run --json` prints (one of them the report); a bare report
//! object is accepted too. Each denial in it names the config keys and
//! values (`grants`) that would have allowed it; those are grouped by
//! section and key, deduplicated, sorted and written as TOML by the `toml`
//! crate. Only the five keys a denial can need are ever printed (and
//! `network.mode` only as "allow" or "on", the wider of the two when both
//! were needed), so a tampered report cannot make moat print other config.
//!
//! Exit status: 0 with a suggestion or when there was nothing refused; 1
//! when moat never allows anything the run was refused; 2 when the report
//! cannot be read or used.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use moat::Grant;
use serde::Deserialize;

/// The exit status when moat never allows anything the run was refused.
const NOTHING_TO_SUGGEST: u8 = 1;
/// The exit status when the report cannot be read or used.
const BAD_REPORT: u8 = 2;

/// One JSON value of the input: a `moat run --json` line (`{"type":
/// "report", "report": {...}}`, or another type, skipped), or a bare report.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a moat run report (a JSON object)")]
struct Item {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    report: Option<Report>,
    /// A bare report's own fields.
    #[serde(default)]
    denials: Option<Vec<Denial>>,
    #[serde(default)]
    denials_unseen: Option<Vec<String>>,
}

/// The parts of a run report this reads; the rest is ignored.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a moat run report (a JSON object)")]
struct Report {
    #[serde(default)]
    denials: Option<Vec<Denial>>,
    #[serde(default)]
    denials_unseen: Option<Vec<String>>,
}

/// An action the sandbox refused.
#[derive(Debug, Deserialize)]
struct Denial {
    /// `write`, `read`, `network` or `syscall`.
    kind: String,
    /// A path, `host:port` or a system call.
    target: String,
    #[serde(default = "one")]
    count: u64,
    /// The report's advice, in words.
    #[serde(default)]
    hint: Option<String>,
    /// The config that would have allowed it; empty when moat never does.
    grants: Vec<Grant>,
}

fn one() -> u64 {
    1
}

/// The config keys a denial may name, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Write,
    AllowRead,
    NetworkMode,
    NetworkAllow,
    NetworkAllowCidr,
}

impl Key {
    fn parse(config: &str) -> Option<Key> {
        match config {
            "filesystem.write" => Some(Key::Write),
            "filesystem.allow_read" => Some(Key::AllowRead),
            "network.mode" => Some(Key::NetworkMode),
            "network.allow" => Some(Key::NetworkAllow),
            "network.allow_cidr" => Some(Key::NetworkAllowCidr),
            _ => None,
        }
    }

    fn section(self) -> &'static str {
        match self {
            Key::Write | Key::AllowRead => "filesystem",
            Key::NetworkMode | Key::NetworkAllow | Key::NetworkAllowCidr => "network",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Key::Write => "write",
            Key::AllowRead => "allow_read",
            Key::NetworkMode => "mode",
            Key::NetworkAllow => "allow",
            Key::NetworkAllowCidr => "allow_cidr",
        }
    }

    /// A list of values (every key but `network.mode`, a single value).
    fn is_list(self) -> bool {
        self != Key::NetworkMode
    }
}

/// What to print and the exit status to end with.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: Option<String>,
    code: u8,
}

/// `moat policy suggest --from FROM` (`-`: standard input); returns the
/// exit status to end with.
pub fn suggest(from: &Path) -> Result<u8> {
    let stdin = from == Path::new("-");
    let name = if stdin {
        "standard input".to_string()
    } else {
        from.display().to_string()
    };
    let text = if stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(from)
    };
    let outcome = match text {
        Ok(text) => build(&text, &name),
        Err(e) => Err(format!("cannot read {}: {}", name, e)),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(message) => {
            eprintln!("moat policy suggest: {}", message);
            return Ok(BAD_REPORT);
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(outcome.stdout.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the suggestion")?;
    if let Some(message) = &outcome.stderr {
        eprintln!("moat policy suggest: {}", message);
    }
    Ok(outcome.code)
}

/// The suggestion for the report in `text` (read from `name`), or why
/// there is none.
fn build(text: &str, name: &str) -> Result<Outcome, String> {
    let reports = reports(text, name)?;
    let mut denials = Vec::new();
    let mut unseen: Vec<String> = Vec::new();
    for report in reports {
        let Some(d) = report.denials else {
            return Err(format!(
                "{} has no \"denials\" field: the report predates denial reporting \
                 (run the command again with this moat), or it is not a moat run report \
                 (the JSON of `moat run --report FILE` or `moat run --json`)",
                name
            ));
        };
        denials.extend(d);
        for u in report.denials_unseen.unwrap_or_default() {
            if !u.trim().is_empty() && !unseen.contains(&u) {
                unseen.push(u);
            }
        }
    }
    render(&denials, &unseen, name)
}

/// The run reports in `text`: a report, the envelope `moat run` writes
/// around it, or the lines of `moat run --json` (with anything else the
/// command printed in between). Exactly one is accepted: a second would
/// be a report the command printed itself, to be taken for moat's.
fn reports(text: &str, name: &str) -> Result<Vec<Report>, String> {
    let parsed: Result<Vec<Item>, serde_json::Error> = serde_json::Deserializer::from_str(text)
        .into_iter::<Item>()
        .collect();
    let found: Vec<Report> = match parsed {
        Ok(items) => items.into_iter().filter_map(as_report).collect(),
        Err(e) => {
            // The lines of `moat run --json` interleaved with the
            // command's own output: the lines that are moat's report.
            let found: Vec<Report> = text
                .lines()
                .filter(|l| l.trim_start().starts_with('{'))
                .filter_map(|l| serde_json::from_str::<Item>(l).ok())
                .filter(|i| i.kind.as_deref() == Some("report"))
                .filter_map(as_report)
                .collect();
            if found.is_empty() {
                return Err(format!("{} is not valid report JSON: {}", name, e));
            }
            found
        }
    };
    match found.len() {
        0 => Err(format!(
            "{} holds no run report: it is not a moat run report (the JSON of \
             `moat run --report FILE` or `moat run --json`)",
            name
        )),
        1 => Ok(found),
        n => Err(format!(
            "{} holds {} run reports; give it the report of one run (`moat run --report FILE`)",
            name, n
        )),
    }
}

/// The report an item is or carries, if any.
fn as_report(item: Item) -> Option<Report> {
    match item.kind.as_deref() {
        Some("report") => item.report,
        Some(_) => None,
        None => Some(Report {
            denials: item.denials,
            denials_unseen: item.denials_unseen,
        }),
    }
}

/// One line of text for a comment: control characters (a newline would
/// end the comment) escaped.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn refusals(n: u64) -> String {
    if n == 1 {
        "1 refusal".to_string()
    } else {
        format!("{} refusals", n)
    }
}

/// A string as a TOML value, escaped by the `toml` crate.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn render(denials: &[Denial], unseen: &[String], name: &str) -> Result<Outcome, String> {
    // Key -> value -> refusals it covers.
    let mut grants: BTreeMap<Key, BTreeMap<&str, u64>> = BTreeMap::new();
    // Refusals that needed some network.mode (counted once per denial).
    let mut mode_refusals: u64 = 0;
    // (kind, target) -> (refusals, the first hint).
    let mut never: BTreeMap<(&str, &str), (u64, Option<&str>)> = BTreeMap::new();
    for d in denials {
        if d.grants.is_empty() {
            let e = never
                .entry((d.kind.as_str(), d.target.as_str()))
                .or_insert((0, None));
            e.0 = e.0.saturating_add(d.count);
            if e.1.is_none() {
                e.1 = d.hint.as_deref().filter(|h| !h.is_empty());
            }
            continue;
        }
        // A grant named twice in one denial covers its refusals once.
        let mut own = BTreeSet::new();
        for g in &d.grants {
            own.insert(grant(g, d, name)?);
        }
        if own.iter().any(|(key, _)| *key == Key::NetworkMode) {
            mode_refusals = mode_refusals.saturating_add(d.count);
        }
        for (key, value) in own {
            let n = grants.entry(key).or_default().entry(value).or_insert(0);
            *n = n.saturating_add(d.count);
        }
    }

    let mut out = String::new();
    if denials.is_empty() {
        let _ = writeln!(out, "# no denials in {}: nothing to suggest", comment(name));
        unseen_note(&mut out, unseen);
        return Ok(Outcome {
            stdout: out,
            stderr: None,
            code: 0,
        });
    }
    if !grants.is_empty() {
        let _ = writeln!(
            out,
            "# Suggested by `moat policy suggest` from {}: the config that would",
            comment(name)
        );
        out.push_str(
            "# have allowed what the run was refused. Review it before use; nothing\n\
             # was written. It belongs in your config file,\n\
             # $XDG_CONFIG_HOME/moat/config.toml (default ~/.config/moat/config.toml),\n\
             # merged into its [filesystem] and [network] tables if it has them: a\n\
             # workspace's .moat/config.toml can only narrow the policy, and moat\n\
             # ignores these keys there.\n",
        );
    }
    unseen_note(&mut out, unseen);
    let mut section = "";
    for (key, values) in &grants {
        if key.section() != section {
            section = key.section();
            let _ = writeln!(out, "\n[{}]", section);
        }
        if key.is_list() {
            let _ = writeln!(out, "{} = [", key.name());
            for (value, n) in values {
                let _ = writeln!(out, "    {},  # {}", toml_string(value), refusals(*n));
            }
            out.push_str("]\n");
        } else {
            // network.mode, one value: "on" (the host's network,
            // unfiltered) covers what "allow" (the proxy's allowlist) does,
            // and more; the values were checked in `grant`.
            let on = values.get("on").copied().unwrap_or(0);
            let value = if on > 0 { "on" } else { "allow" };
            if on > 0 && values.contains_key("allow") {
                let _ = writeln!(
                    out,
                    "# \"on\" is the host's network, unfiltered: {} needed it; \"allow\" (the\n\
                     # proxy, with the allow list) would do for the rest.",
                    refusals(on)
                );
            }
            let _ = writeln!(
                out,
                "{} = {}  # {}",
                key.name(),
                toml_string(value),
                refusals(mode_refusals)
            );
        }
    }
    if !never.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("# not suggested: moat never allows these\n");
        for ((kind, target), (n, hint)) in &never {
            let _ = write!(out, "#   {} {:?} ({})", comment(kind), target, refusals(*n));
            if let Some(hint) = hint {
                let _ = write!(out, ": {}", comment(hint));
            }
            out.push('\n');
        }
    }
    if grants.is_empty() {
        return Ok(Outcome {
            stdout: out,
            stderr: Some(
                "moat never allows what this run was refused; nothing to suggest".to_string(),
            ),
            code: NOTHING_TO_SUGGEST,
        });
    }
    Ok(Outcome {
        stdout: out,
        stderr: None,
        code: 0,
    })
}

/// The note that some refusals were not observed (each entry of the
/// report's `denials_unseen`, in words: a kind and why, or how many were
/// left out).
fn unseen_note(out: &mut String, unseen: &[String]) {
    if unseen.is_empty() {
        return;
    }
    out.push_str("# Not observed in this run, so the suggestion may be incomplete:\n");
    for u in unseen {
        let _ = writeln!(out, "#   {}", comment(u));
    }
}

/// A grant's key and value, if it is one moat would suggest.
fn grant<'a>(g: &'a Grant, d: &Denial, name: &str) -> Result<(Key, &'a str), String> {
    let what = format!("the denial of {} {:?}", comment(&d.kind), d.target);
    let Some(key) = Key::parse(&g.config) else {
        return Err(format!(
            "{}: {} names the config key {:?}, which is not one a denial can need \
             (filesystem.write, filesystem.allow_read, network.mode, network.allow, \
             network.allow_cidr); refusing to suggest it",
            name, what, g.config
        ));
    };
    if g.value.trim().is_empty() {
        return Err(format!(
            "{}: {} has an empty value for {}; refusing to suggest it",
            name, what, g.config
        ));
    }
    if key == Key::NetworkMode && g.value != "allow" && g.value != "on" {
        return Err(format!(
            "{}: {} names network.mode = {:?}; only \"allow\" or \"on\" is suggested",
            name, what, g.value
        ));
    }
    Ok((key, g.value.as_str()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn denial(kind: &str, target: &str, count: u64, grants: &[(&str, &str)]) -> serde_json::Value {
        json!({
            "kind": kind,
            "target": target,
            "layer": "mount",
            "pid": 12,
            "process": "touch",
            "count": count,
            "hint": if grants.is_empty() { "not allowed by moat in any mode (git hooks)".to_string() } else { format!("--allow-write {}", target) },
            "grants": grants.iter().map(|(c, v)| json!({"config": c, "value": v})).collect::<Vec<_>>(),
        })
    }

    fn report(denials: Vec<serde_json::Value>) -> String {
        json!({"type": "report", "report": {"command": ["true"], "denials": denials}}).to_string()
    }

    fn ok(text: &str) -> Outcome {
        build(text, "r.json").unwrap()
    }

    fn parsed(out: &Outcome) -> toml::Table {
        out.stdout.parse::<toml::Table>().unwrap()
    }

    #[test]
    fn groups_deduplicates_and_sorts() {
        let text = report(vec![
            denial(
                "write",
                "/home/u/b.txt",
                2,
                &[("filesystem.write", "/home/u")],
            ),
            denial(
                "write",
                "/home/u/a.txt",
                1,
                &[("filesystem.write", "/home/u")],
            ),
            denial("write", "/data/x", 1, &[("filesystem.write", "/data")]),
            denial(
                "network",
                "example.com:443",
                3,
                &[("network.mode", "allow"), ("network.allow", "example.com")],
            ),
            denial(
                "network",
                "api.example.com:443",
                1,
                &[
                    ("network.mode", "allow"),
                    ("network.allow", "api.example.com"),
                    ("network.allow", "api.example.com"),
                ],
            ),
            denial(
                "read",
                "/home/u/.npmrc",
                1,
                &[("filesystem.allow_read", "~/.npmrc")],
            ),
            denial(
                "network",
                "10.1.2.3:22",
                1,
                &[("network.allow_cidr", "10.1.2.3/32")],
            ),
        ]);
        let out = ok(&text);
        assert_eq!(out.code, 0);
        assert_eq!(out.stderr, None);
        let body: String = out
            .stdout
            .lines()
            .skip_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l))
            .collect();
        assert_eq!(
            body,
            "\n[filesystem]\n\
             write = [\n    \"/data\",  # 1 refusal\n    \"/home/u\",  # 3 refusals\n]\n\
             allow_read = [\n    \"~/.npmrc\",  # 1 refusal\n]\n\
             \n[network]\n\
             mode = \"allow\"  # 4 refusals\n\
             allow = [\n    \"api.example.com\",  # 1 refusal\n    \"example.com\",  # 3 refusals\n]\n\
             allow_cidr = [\n    \"10.1.2.3/32\",  # 1 refusal\n]\n"
        );
        let t = parsed(&out);
        assert_eq!(
            t["filesystem"]["write"].as_array().unwrap(),
            &vec![toml::Value::from("/data"), toml::Value::from("/home/u")]
        );
        assert_eq!(t["network"]["mode"].as_str(), Some("allow"));
        assert!(out.stdout.contains("~/.config/moat/config.toml"));
    }

    #[test]
    fn network_mode_is_one_value_the_widest_needed() {
        let dns = denial("network", "10.0.0.53:53", 2, &[("network.mode", "on")]);
        let web = denial(
            "network",
            "example.com:443",
            3,
            &[("network.mode", "allow"), ("network.allow", "example.com")],
        );
        let out = ok(&report(vec![web, dns]));
        assert_eq!(out.code, 0);
        assert!(
            out.stdout.ends_with(
                "\n[network]\n\
                 # \"on\" is the host's network, unfiltered: 2 refusals needed it; \"allow\" (the\n\
                 # proxy, with the allow list) would do for the rest.\n\
                 mode = \"on\"  # 5 refusals\n\
                 allow = [\n    \"example.com\",  # 3 refusals\n]\n"
            ),
            "{}",
            out.stdout
        );
        let t = parsed(&out);
        assert_eq!(t["network"]["mode"].as_str(), Some("on"));
        let dns = denial("network", "10.0.0.53:53", 1, &[("network.mode", "on")]);
        let out = ok(&report(vec![dns]));
        assert!(out
            .stdout
            .ends_with("\n[network]\nmode = \"on\"  # 1 refusal\n"));
    }

    #[test]
    fn escapes_quotes_backslashes_and_newlines() {
        let odd = [
            "/tmp/a \"b\"",
            "/tmp/c\\d",
            "/tmp/e\nf = 1\n[x]",
            "/tmp/g'h\"i\\\tj",
        ];
        let text = report(
            odd.iter()
                .map(|p| denial("write", p, 1, &[("filesystem.write", p)]))
                .collect(),
        );
        let out = ok(&text);
        let t = parsed(&out);
        let got: Vec<&str> = t["filesystem"]["write"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut want = odd.to_vec();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(t.len(), 1, "{}", out.stdout);
        assert_eq!(t["filesystem"].as_table().unwrap().len(), 1);
    }

    #[test]
    fn ungrantable_only_are_comments_and_exit_1() {
        let text = report(vec![
            denial("syscall", "ptrace", 2, &[]),
            denial("syscall", "ptrace", 1, &[]),
            denial(
                "write",
                "/ws/.git/hooks/x\n[network]\nmode = \"on\"",
                1,
                &[],
            ),
        ]);
        let out = ok(&text);
        assert_eq!(out.code, 1);
        assert_eq!(
            out.stderr.as_deref(),
            Some("moat never allows what this run was refused; nothing to suggest")
        );
        assert_eq!(
            out.stdout,
            "# not suggested: moat never allows these\n\
             #   syscall \"ptrace\" (3 refusals): not allowed by moat in any mode (git hooks)\n\
             #   write \"/ws/.git/hooks/x\\n[network]\\nmode = \\\"on\\\"\" (1 refusal): not allowed by moat in any mode (git hooks)\n"
        );
        assert!(parsed(&out).is_empty());
    }

    #[test]
    fn mixed_lists_ungrantable_after_the_suggestion() {
        let text = report(vec![
            denial("syscall", "ptrace", 1, &[]),
            denial("write", "/home/u/x", 1, &[("filesystem.write", "/home/u")]),
        ]);
        let out = ok(&text);
        assert_eq!(out.code, 0);
        assert!(out.stdout.ends_with(
            "\n# not suggested: moat never allows these\n\
             #   syscall \"ptrace\" (1 refusal): not allowed by moat in any mode (git hooks)\n"
        ));
        assert_eq!(
            parsed(&out)["filesystem"]["write"][0].as_str(),
            Some("/home/u")
        );
    }

    #[test]
    fn no_denials_and_unseen_kinds() {
        let out = ok(&report(vec![]));
        assert_eq!(
            out,
            Outcome {
                stdout: "# no denials in r.json: nothing to suggest\n".to_string(),
                stderr: None,
                code: 0
            }
        );
        let text = json!({
            "denials": [],
            "denials_unseen": ["reads: landlock does not log them", "", "3 more\nrefusals", "reads: landlock does not log them"],
        })
        .to_string();
        assert_eq!(
            ok(&text).stdout,
            "# no denials in r.json: nothing to suggest\n\
             # Not observed in this run, so the suggestion may be incomplete:\n\
             #   reads: landlock does not log them\n\
             #   3 more\\nrefusals\n"
        );
    }

    #[test]
    fn json_lines_with_the_commands_output_between() {
        let lines = format!(
            "{}\nsome output of the command\n{}\n",
            json!({"type": "note", "message": "hi"}),
            report(vec![denial(
                "write",
                "/a/b",
                1,
                &[("filesystem.write", "/a")]
            )])
        );
        let out = ok(&lines);
        assert_eq!(out.code, 0);
        assert_eq!(parsed(&out)["filesystem"]["write"][0].as_str(), Some("/a"));
        // A report printed by the command as well as moat's: refused.
        let two = format!("{}\n{}\n", report(vec![]), report(vec![]));
        assert!(build(&two, "r.json").unwrap_err().contains("2 run reports"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let e = build("{\"denials\": [\n  {\"kind\": 1}]}", "r.json").unwrap_err();
        assert!(e.starts_with("r.json is not valid report JSON: "), "{}", e);
        assert!(e.contains("line 2"), "{}", e);
        let e = build("{\"denials\": [", "r.json").unwrap_err();
        assert!(e.contains("line 1"), "{}", e);
        for text in ["", "[]", "42", "\"x\"", "null"] {
            let e = build(text, "r.json").unwrap_err();
            assert!(e.contains("r.json"), "{}", e);
        }
        let e = build(r#"{"type": "report", "report": {"command": []}}"#, "r.json").unwrap_err();
        assert!(e.contains("predates denial reporting"), "{}", e);
        let e = build(r#"{"command": []}"#, "r.json").unwrap_err();
        assert!(e.contains("predates denial reporting"), "{}", e);
        // A denial without grants at all is malformed, not "never allowed".
        let e = build(
            r#"{"denials": [{"kind": "write", "target": "/x"}]}"#,
            "r.json",
        )
        .unwrap_err();
        assert!(e.contains("grants"), "{}", e);
    }

    #[test]
    fn unknown_keys_and_empty_values_are_refused() {
        for (config, value, needle) in [
            ("env.pass", "GITHUB_TOKEN", "\"env.pass\""),
            ("preset", "full-access", "\"preset\""),
            ("filesystem.write", "", "empty value"),
            ("network.allow", "  ", "empty value"),
            ("network.mode", "off", "only \"allow\" or \"on\""),
        ] {
            let text = report(vec![
                denial("write", "/ok", 1, &[("filesystem.write", "/ok")]),
                denial("write", "/x", 1, &[(config, value)]),
            ]);
            let e = build(&text, "r.json").unwrap_err();
            assert!(e.contains(needle), "{}", e);
            assert!(e.starts_with("r.json: the denial of write \"/x\""), "{}", e);
        }
    }
}
