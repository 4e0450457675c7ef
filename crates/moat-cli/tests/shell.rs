//! `moat -c STRING` (`moat shell -c`), the shell prefix agents call:
//! command lines of the kinds agents send give what the bare shell gives
//! (output, errors, exit status, stdin), including the exact form Claude
//! Code's `CLAUDE_CODE_SHELL_PREFIX` sends, whose report of the working
//! directory must still reach Claude Code; writes outside the workspace
//! are refused (control: the bare shell makes them), and a command line
//! cannot make moat write a file of its choosing. As root and as the test
//! account.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::*;

/// Runs `program args` as `who` in `dir` with SHELL=/bin/bash, feeding
/// `stdin`.
fn run_in(who: &Who, dir: &Path, program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command_as(who, "env")
        .arg("SHELL=/bin/bash")
        .arg(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

/// What a run printed and how it ended, with its workspace's path made
/// `WS` so two workspaces compare.
fn seen(out: &Output, ws: &Path) -> (String, String, Option<i32>) {
    let ws = ws.display().to_string();
    (
        stdout(out).replace(&ws, "WS"),
        stderr(out).replace(&ws, "WS"),
        out.status.code(),
    )
}

/// The command lines agents send, and what they feed them.
fn cases() -> Vec<(&'static str, String, &'static [u8])> {
    let long = format!("echo {} | wc -c", "x".repeat(100_000));
    vec![
        (
            "a pipe",
            "printf 'b\\na\\nc\\n' | sort | head -2".into(),
            b"",
        ),
        (
            "quotes",
            r#"echo "it's" 'a "quoted" $HOME' \$HOME-literal"#.into(),
            b"",
        ),
        (
            "a quoted heredoc",
            "cat <<'EOF'\nline $x `y`\nEOF".into(),
            b"",
        ),
        ("a heredoc", "x=41; cat <<EOF\n$((x+1))\nEOF".into(), b""),
        (
            "cd and export chains",
            "mkdir -p d/e && cd d && export FOO=bar && cd e && echo $FOO && basename \"$PWD\""
                .into(),
            b"",
        ),
        (
            "&& and ||",
            "false && echo no || echo yes; true || echo never; echo end".into(),
            b"",
        ),
        (
            "a background job",
            "(sleep 0.2; echo background) & echo foreground; wait; echo done".into(),
            b"",
        ),
        ("a long command line", long, b""),
        ("an exit status", "echo before; exit 7".into(), b""),
        ("a signal", "kill -TERM $$".into(), b""),
        (
            "standard error",
            "echo err >&2; ls /nonexistent-moat-shell; echo $?".into(),
            b"",
        ),
        ("standard input", "tr a-z A-Z".into(), b"hello\nworld\n"),
        (
            "command substitution",
            "x=$(echo a; echo b | tr b c); echo \"$x\" | paste -sd,".into(),
            b"",
        ),
        (
            "globs and arithmetic",
            "touch f1 f2 g1 && echo f* && echo $((6*7))".into(),
            b"",
        ),
        ("unicode", "echo 'héllo ✓' | wc -m".into(), b""),
        (
            "functions",
            "f() { echo in-f \"$1\"; return 3; }; f arg; echo $?".into(),
            b"",
        ),
        ("a command not found", "no-such-command-moat".into(), b""),
    ]
}

/// shell-quote's `quote` for one word, the quoting Claude Code uses.
fn quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let blank = s.chars().any(char::is_whitespace);
    if (blank || s.contains(['"', '\\'])) && !s.contains('\'') {
        return format!("'{s}'");
    }
    if blank || s.contains(['"', '\'']) {
        let mut out = String::from("\"");
        for c in s.chars() {
            if "\"\\$`!".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        return out + "\"";
    }
    let mut out = String::new();
    for c in s.chars() {
        if "#!\"$&'()*,:;<=>?@[\\]^`{|}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The line Claude Code's Bash tool runs for `command`: its shell
/// snapshot sourced, the command evaluated with stdin from /dev/null
/// (heredocs and multi-line strings quoted whole), and the working
/// directory written to `cwd_file`.
fn claude_line(command: &str, snapshot: &Path, cwd_file: &Path) -> String {
    let heredoc = command.contains("<<");
    let quoted = if heredoc || command.contains('\n') {
        let q = format!("'{}'", command.replace('\'', "'\"'\"'"));
        if heredoc {
            q
        } else {
            q + " < /dev/null"
        }
    } else {
        format!("{} {} {}", quote(command), quote("<"), quote("/dev/null"))
    };
    format!(
        "source {} && eval {} && pwd -P >| {}",
        quote(&snapshot.display().to_string()),
        quoted,
        quote(&cwd_file.display().to_string())
    )
}

#[test]
fn command_lines_behave_as_in_the_bare_shell() {
    let mut v = Verdicts::default();
    for who in identities() {
        let bare = Scratch::new(&who, "shell-bare");
        let boxed = Scratch::new(&who, "shell-moat");
        for (name, line, stdin) in cases() {
            // Each case in fresh directories, the same in both.
            let dir = format!("ws/{}", name.replace(' ', "-"));
            let (a, b) = (bare.mkdir(&dir), boxed.mkdir(&dir));
            let _ = (
                bare.mkdir(&format!("{dir}/.git")),
                boxed.mkdir(&format!("{dir}/.git")),
            );
            let want = run_in(&who, &a, Path::new("/bin/bash"), &["-c", &line], stdin);
            let got = run_in(&who, &b, &moat(), &["-c", &line], stdin);
            v.check(
                &format!("{}: {name}", who.name),
                seen(&want, &a) == seen(&got, &b),
                format!("bare {:?}\nmoat {:?}", seen(&want, &a), seen(&got, &b)),
            );
        }
    }
    v.finish();
}

#[test]
fn claude_codes_prefix_runs_its_lines_and_learns_the_directory() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "shell-claude");
        s.mkdir("ws/.git");
        s.mkdir("ws/src");
        let snapshot = s.write(
            "snapshot.sh",
            "export FROM_SNAPSHOT=yes\nshout() { echo \"$*\" | tr a-z A-Z; }\n",
        );
        let tmp = std::env::temp_dir();
        for (n, command) in [
            "cd src && shout from $FROM_SNAPSHOT && pwd",
            "echo 'single' \"double\" && cd src",
            "cat <<'EOF'\nheredoc $HOME\nEOF",
            "printf 'a\\nb\\n' | wc -l",
        ]
        .iter()
        .enumerate()
        {
            let cwd_file = tmp.join(format!(
                "claude-{:04x}-cwd",
                0xa000 + n + 16 * usize::from(who.switch)
            ));
            let line = claude_line(command, &snapshot, &cwd_file);
            // Bare, as Claude Code runs it without a prefix.
            let _ = std::fs::remove_file(&cwd_file);
            let bare = run_in(
                &who,
                &s.ws,
                Path::new("/bin/bash"),
                &["-c", "-l", &line],
                b"",
            );
            let bare_cwd = std::fs::read_to_string(&cwd_file).unwrap_or_default();
            // With CLAUDE_CODE_SHELL_PREFIX="<moat> -c": Claude Code quotes
            // the program and the line, and runs that with its shell.
            let _ = std::fs::remove_file(&cwd_file);
            let prefixed = format!(
                "{} -c {}",
                quote(&moat().display().to_string()),
                quote(&line)
            );
            let boxed = run_in(
                &who,
                &s.ws,
                Path::new("/bin/bash"),
                &["-c", "-l", &prefixed],
                b"",
            );
            let boxed_cwd = std::fs::read_to_string(&cwd_file).unwrap_or_default();
            let _ = std::fs::remove_file(&cwd_file);
            v.check(
                &format!("{}: Claude Code's line for {command:?}", who.name),
                seen(&bare, &s.ws) == seen(&boxed, &s.ws)
                    && !bare_cwd.is_empty()
                    && bare_cwd == boxed_cwd,
                format!(
                    "bare {:?} cwd {bare_cwd:?}\nmoat {:?} cwd {boxed_cwd:?}",
                    seen(&bare, &s.ws),
                    seen(&boxed, &s.ws)
                ),
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("moat-shell-"))
            .filter(|e| {
                e.metadata().is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.uid() == who.uid
                })
            })
            .map(|e| e.path())
            .collect();
        v.check(
            &format!("{}: moat leaves none of its directories behind", who.name),
            leftovers.is_empty(),
            format!("{leftovers:?}"),
        );
    }
    v.finish();
}

/// Writes outside the workspace are refused, with the bare shell as the
/// control; and a line ending like Claude Code's but naming another file
/// does not make moat write it.
#[test]
fn the_sandbox_holds_and_moat_writes_nothing_a_line_names() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "shell-attack");
        s.mkdir("ws/.git");
        let target = s.outside.join("written");
        let line = format!("echo x > '{}'", target.display());
        let got = run_in(&who, &s.ws, &moat(), &["-c", &line], b"");
        v.check(
            &format!("{}: a write outside the workspace is refused", who.name),
            got.status.code() == Some(1) && !target.exists(),
            show(&got),
        );
        let want = run_in(&who, &s.ws, Path::new("/bin/bash"), &["-c", &line], b"");
        v.check(
            &format!("{}: control: the bare shell writes it", who.name),
            want.status.success() && target.exists(),
            show(&want),
        );
        let _ = std::fs::remove_file(&target);
        // Lines that end in a cwd report to files that are not Claude
        // Code's: moat runs them as they are, in the sandbox.
        let victim = s.outside.join("victim");
        std::fs::write(&victim, "mine\n").unwrap();
        if who.switch {
            chown_r(&victim, &who);
        }
        let elsewhere = Path::new("/var/tmp").join(format!("claude-beef-cwd-{}", who.name));
        let report = |file: &Path| {
            let line = format!(
                "cd /tmp && true && pwd -P >| {}",
                quote(&file.display().to_string())
            );
            run_in(&who, &s.ws, &moat(), &["-c", &line], b"")
        };
        let got = report(&victim);
        let text = std::fs::read_to_string(&victim).unwrap_or_default();
        v.check(
            &format!(
                "{}: a cwd report to a file of the person's is refused",
                who.name
            ),
            !got.status.success() && text == "mine\n",
            format!("{text:?} {}", show(&got)),
        );
        // /var/tmp is private in the sandbox: the write lands there, and
        // moat copies nothing to the host's.
        let _ = std::fs::remove_file(&elsewhere);
        let got = report(&elsewhere);
        v.check(
            &format!(
                "{}: moat does not write {} on the host",
                who.name,
                elsewhere.display()
            ),
            !elsewhere.exists(),
            show(&got),
        );
        let _ = std::fs::remove_file(&elsewhere);
    }
    v.finish();
}

/// The agents' own credentials (Claude Code's login, Codex's key) are
/// denied to the commands they run, with the bare shell as the control.
/// In a home of the test's own (HOME), so no real one is touched.
#[test]
fn the_agents_credentials_are_out_of_reach() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "shell-creds");
        s.mkdir("ws/.git");
        let home = s.base.join("home");
        for rel in [
            ".claude/.credentials.json",
            ".codex/auth.json",
            ".claude.json",
        ] {
            let file = s.write(&format!("home/{rel}"), "{\"token\":\"moat-test-secret\"}\n");
            let line = format!("cat '{}'", file.display());
            let in_home = |program: &Path, args: &[&str]| {
                let mut all = vec![format!("HOME={}", home.display())];
                all.push(program.display().to_string());
                all.extend(args.iter().map(|a| a.to_string()));
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                run_in(&who, &s.ws, Path::new("/usr/bin/env"), &all, b"")
            };
            let got = in_home(&moat(), &["-c", &line]);
            let want = in_home(Path::new("/bin/bash"), &["-c", &line]);
            v.check(
                &format!("{}: ~/{rel} cannot be read inside", who.name),
                !got.status.success() && !stdout(&got).contains("moat-test-secret"),
                show(&got),
            );
            v.check(
                &format!("{}: control: the bare shell reads ~/{rel}", who.name),
                want.status.success() && stdout(&want).contains("moat-test-secret"),
                show(&want),
            );
        }
    }
    v.finish();
}
