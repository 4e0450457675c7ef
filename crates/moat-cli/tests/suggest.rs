//! `moat policy suggest --from REPORT`, run as the real binary on report
//! files: the exact output, the exit status, and TOML that parses back to
//! the grants. Needs no sandbox and no privileges.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

/// A directory of its own under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "moat-suggest-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            name
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `moat policy suggest --from FROM`, with `stdin` on standard input.
fn suggest(from: &Path, stdin: Option<&str>) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
        .args(["policy", "suggest", "--from"])
        .arg(from)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    ran
}

fn denial(kind: &str, target: &str, count: u64, hint: &str, grants: &[(&str, &str)]) -> Value {
    json!({
        "kind": kind,
        "target": target,
        "layer": "mount",
        "pid": 1234,
        "process": "touch",
        "count": count,
        "hint": hint,
        "grants": grants.iter().map(|(c, v)| json!({"config": c, "value": v})).collect::<Vec<_>>(),
    })
}

/// A report as `moat run --report FILE` writes it.
fn report(denials: Vec<Value>, unseen: &[&str]) -> String {
    format!(
        "{}\n",
        json!({
            "type": "report",
            "report": {
                "command": ["sh", "-c", "work"],
                "workspace": "/home/u/proj",
                "tier": "unelevated",
                "mode": "namespaces",
                "exit_code": 1,
                "denials": denials,
                "denials_unseen": unseen,
            }
        })
    )
}

const PTRACE_HINT: &str = "not allowed by moat in any mode (the ptrace family)";

fn header(name: &str) -> String {
    format!(
        "# Suggested by `moat policy suggest` from {name}: the config that would\n\
         # have allowed what the run was refused. Review it before use; nothing\n\
         # was written. It belongs in your config file,\n\
         # $XDG_CONFIG_HOME/moat/config.toml (default ~/.config/moat/config.toml),\n\
         # merged into its [filesystem] and [network] tables if it has them: a\n\
         # workspace's .moat/config.toml can only narrow the policy, and moat\n\
         # ignores these keys there.\n"
    )
}

fn strings(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn a_report_file_gives_grouped_sorted_counted_toml() {
    let dir = Scratch::new("file");
    let path = dir.file(
        "report.json",
        &report(
            vec![
                denial(
                    "write",
                    "/home/u/notes.txt",
                    3,
                    "--allow-write /home/u",
                    &[("filesystem.write", "/home/u")],
                ),
                denial(
                    "write",
                    "/home/u/todo.txt",
                    1,
                    "--allow-write /home/u",
                    &[("filesystem.write", "/home/u")],
                ),
                denial(
                    "write",
                    "/srv/data/x",
                    1,
                    "--allow-write /srv/data",
                    &[("filesystem.write", "/srv/data")],
                ),
                denial(
                    "read",
                    "/home/u/.npmrc",
                    2,
                    "allow_read",
                    &[("filesystem.allow_read", "/home/u/.npmrc")],
                ),
                denial(
                    "network",
                    "example.com:443",
                    2,
                    "--network allow --allow-domain example.com",
                    &[("network.mode", "allow"), ("network.allow", "example.com")],
                ),
                denial(
                    "network",
                    "crates.io:443",
                    1,
                    "--network allow --allow-domain crates.io",
                    &[("network.mode", "allow"), ("network.allow", "crates.io")],
                ),
                denial(
                    "network",
                    "10.0.0.7:5432",
                    1,
                    "allow_cidr",
                    &[("network.allow_cidr", "10.0.0.7/32")],
                ),
                denial("syscall", "ptrace", 1, PTRACE_HINT, &[]),
            ],
            &[],
        ),
    );
    let ran = suggest(&path, None);
    let name = path.display().to_string();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(ran.stderr, "");
    assert_eq!(
        ran.stdout,
        format!(
            "{}\n\
             [filesystem]\n\
             write = [\n    \"/home/u\",  # 4 refusals\n    \"/srv/data\",  # 1 refusal\n]\n\
             allow_read = [\n    \"/home/u/.npmrc\",  # 2 refusals\n]\n\
             \n\
             [network]\n\
             mode = \"allow\"  # 3 refusals\n\
             allow = [\n    \"crates.io\",  # 1 refusal\n    \"example.com\",  # 2 refusals\n]\n\
             allow_cidr = [\n    \"10.0.0.7/32\",  # 1 refusal\n]\n\
             \n\
             # not suggested: moat never allows these\n\
             #   syscall \"ptrace\" (1 refusal): {PTRACE_HINT}\n",
            header(&name)
        )
    );
    let t: toml::Table = ran.stdout.parse().unwrap();
    assert_eq!(strings(&t["filesystem"]["write"]), ["/home/u", "/srv/data"]);
    assert_eq!(strings(&t["filesystem"]["allow_read"]), ["/home/u/.npmrc"]);
    assert_eq!(t["network"]["mode"].as_str(), Some("allow"));
    assert_eq!(
        strings(&t["network"]["allow"]),
        ["crates.io", "example.com"]
    );
    assert_eq!(strings(&t["network"]["allow_cidr"]), ["10.0.0.7/32"]);
    // Nothing written beside the report.
    assert_eq!(dir.entries(), ["report.json"]);
}

#[test]
fn json_lines_on_stdin_with_the_commands_output_between() {
    let lines = format!(
        "{}\nerror: the command's own output\n{}\n{}",
        json!({"type": "note", "message": "home directory split"}),
        json!({"type": "warning", "message": "denied 1 destination"}),
        report(
            vec![denial(
                "network",
                "example.com:443",
                1,
                "--network allow --allow-domain example.com",
                &[("network.mode", "allow"), ("network.allow", "example.com")],
            )],
            &["refused system calls: seccomp cannot report them here"],
        )
    );
    let ran = suggest(Path::new("-"), Some(&lines));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!(
            "{}# Not observed in this run, so the suggestion may be incomplete:\n\
             #   refused system calls: seccomp cannot report them here\n\
             \n[network]\nmode = \"allow\"  # 1 refusal\nallow = [\n    \"example.com\",  # 1 refusal\n]\n",
            header("standard input")
        )
    );
    let t: toml::Table = ran.stdout.parse().unwrap();
    assert_eq!(strings(&t["network"]["allow"]), ["example.com"]);
}

#[test]
fn a_denial_needing_the_host_network_suggests_mode_on() {
    // As `moat run --report` writes them: DNS over UDP needs "on".
    let dir = Scratch::new("on");
    let path = dir.file(
        "report.json",
        &report(
            vec![
                denial(
                    "network",
                    "10.255.255.53:53",
                    2,
                    "--network on (the host's network, unfiltered: moat's proxy carries only HTTP and HTTPS)",
                    &[("network.mode", "on")],
                ),
                denial(
                    "network",
                    "example.com:443",
                    1,
                    "--network allow --allow-domain example.com",
                    &[("network.mode", "allow"), ("network.allow", "example.com")],
                ),
            ],
            &[],
        ),
    );
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!(
            "{}\n[network]\n\
             # \"on\" is the host's network, unfiltered: 2 refusals needed it; \"allow\" (the\n\
             # proxy, with the allow list) would do for the rest.\n\
             mode = \"on\"  # 3 refusals\n\
             allow = [\n    \"example.com\",  # 1 refusal\n]\n",
            header(&path.display().to_string())
        )
    );
    let t: toml::Table = ran.stdout.parse().unwrap();
    assert_eq!(t["network"]["mode"].as_str(), Some("on"));
    assert_eq!(strings(&t["network"]["allow"]), ["example.com"]);
}

#[test]
fn quotes_backslashes_and_newlines_in_paths_are_escaped() {
    let dir = Scratch::new("escape");
    let odd = [
        "/home/u/say \"hi\"",
        "/home/u/back\\slash",
        "/home/u/new\nline = 1\n[network]\nmode = 'on'",
        "/home/u/it's\t\"all\"\\'''\"\"\"",
    ];
    let path = dir.file(
        "report.json",
        &report(
            odd.iter()
                .map(|p| denial("write", p, 1, "--allow-write", &[("filesystem.write", p)]))
                .collect(),
            &[],
        ),
    );
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let t: toml::Table = ran.stdout.parse().unwrap();
    let mut want = odd.to_vec();
    want.sort();
    assert_eq!(strings(&t["filesystem"]["write"]), want);
    // Nothing but the one key: no value broke out into config of its own.
    assert_eq!(t.len(), 1, "{}", ran.stdout);
    assert_eq!(
        t["filesystem"].as_table().unwrap().len(),
        1,
        "{}",
        ran.stdout
    );
}

#[test]
fn no_denials_nothing_to_suggest() {
    let dir = Scratch::new("none");
    let path = dir.file("report.json", &report(vec![], &[]));
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!("# no denials in {}: nothing to suggest\n", path.display())
    );
    assert_eq!(ran.stderr, "");
}

#[test]
fn only_what_moat_never_allows_exits_1() {
    let dir = Scratch::new("never");
    let hook_hint = "not allowed by moat in any mode (git hooks run outside the sandbox)";
    let path = dir.file(
        "report.json",
        &report(
            vec![
                denial("syscall", "ptrace", 2, PTRACE_HINT, &[]),
                denial(
                    "write",
                    "/home/u/proj/.git/hooks/pre-commit",
                    1,
                    hook_hint,
                    &[],
                ),
                denial("syscall", "ptrace", 1, PTRACE_HINT, &[]),
            ],
            &[],
        ),
    );
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(1));
    assert_eq!(
        ran.stdout,
        format!(
            "# not suggested: moat never allows these\n\
             #   syscall \"ptrace\" (3 refusals): {PTRACE_HINT}\n\
             #   write \"/home/u/proj/.git/hooks/pre-commit\" (1 refusal): {hook_hint}\n"
        )
    );
    assert_eq!(
        ran.stderr,
        "moat policy suggest: moat never allows what this run was refused; nothing to suggest\n"
    );
    let t: toml::Table = ran.stdout.parse().unwrap();
    assert!(t.is_empty());
}

#[test]
fn a_report_without_denials_predates_them() {
    let dir = Scratch::new("old");
    let path = dir.file(
        "old.json",
        &format!(
            "{}\n",
            json!({"type": "report", "report": {"command": ["true"], "exit_code": 0}})
        ),
    );
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(2));
    assert_eq!(ran.stdout, "");
    assert_eq!(
        ran.stderr,
        format!(
            "moat policy suggest: {} has no \"denials\" field: the report predates denial \
             reporting (run the command again with this moat), or it is not a moat run report \
             (the JSON of `moat run --report FILE` or `moat run --json`)\n",
            path.display()
        )
    );
}

#[test]
fn unreadable_and_invalid_files_are_errors_naming_them() {
    let dir = Scratch::new("bad");
    let path = dir.file(
        "bad.json",
        "{\"type\": \"report\",\n \"report\": {\n  \"denials\": [}\n",
    );
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(2));
    assert_eq!(ran.stdout, "");
    assert_eq!(
        ran.stderr,
        format!(
            "moat policy suggest: {} is not valid report JSON: expected value at line 3 column 15\n",
            path.display()
        )
    );

    let missing = dir.0.join("missing.json");
    let ran = suggest(&missing, None);
    assert_eq!(ran.code, Some(2));
    assert_eq!(ran.stdout, "");
    assert!(
        ran.stderr.starts_with(&format!(
            "moat policy suggest: cannot read {}: ",
            missing.display()
        )),
        "{}",
        ran.stderr
    );

    let path = dir.file("array.json", "[1, 2]\n");
    let ran = suggest(&path, None);
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("array.json"), "{}", ran.stderr);
    assert!(ran.stderr.contains("line 1"), "{}", ran.stderr);
}

#[test]
fn a_tampered_grant_is_refused_not_printed() {
    let dir = Scratch::new("tampered");
    for (config, value) in [
        ("env.pass", "GITHUB_TOKEN"),
        ("preset", "full-access"),
        ("filesystem.write", ""),
        ("network.mode", "off"),
    ] {
        let path = dir.file(
            "report.json",
            &report(
                vec![
                    denial(
                        "write",
                        "/home/u/a",
                        1,
                        "",
                        &[("filesystem.write", "/home/u")],
                    ),
                    denial("write", "/home/u/b", 1, "", &[(config, value)]),
                ],
                &[],
            ),
        );
        let ran = suggest(&path, None);
        assert_eq!(ran.code, Some(2), "{config}");
        assert_eq!(ran.stdout, "", "{config}");
        assert!(
            ran.stderr.starts_with(&format!(
                "moat policy suggest: {}: the denial of write \"/home/u/b\" ",
                path.display()
            )),
            "{}",
            ran.stderr
        );
        assert!(ran.stderr.contains("refusing") || ran.stderr.contains("only \"allow\" or \"on\""));
    }
}

#[test]
fn from_is_required() {
    let out = Command::new(env!("CARGO_BIN_EXE_moat"))
        .args(["policy", "suggest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from <REPORT>"));
}
