//! `moat shell -c STRING` (and `moat [OPTIONS] -c STRING`): a command line
//! run by the person's shell inside the sandbox, the form an agent's
//! shell prefix calls (Claude Code's `CLAUDE_CODE_SHELL_PREFIX`).
//!
//! Claude Code ends every command line with `&& pwd -P >| FILE`, FILE in
//! its temporary directory, and reads FILE afterwards to learn where the
//! next command starts. Inside the sandbox that directory is private, so
//! moat points the `pwd` at a directory of its own, writable in the run,
//! and copies what lands there to FILE itself: only to a file of exactly
//! that name and place, and only a path to an existing directory, so a
//! command line cannot make moat write anything else anywhere.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::ShellArgs;

/// The shell that runs the command line: `$SHELL` when it is an absolute
/// path to an executable file, else `/bin/sh`.
fn shell_program(var: Option<&OsStr>) -> PathBuf {
    var.map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
        .unwrap_or_else(|| PathBuf::from("/bin/sh"))
}

/// The workspace when none is given: the top of the git work tree the
/// working directory is in, else the working directory. An agent moves
/// between a project's directories; its sandbox should not move with it.
fn default_workspace(cwd: &Path, home: Option<&Path>) -> Result<PathBuf> {
    let top = cwd
        .ancestors()
        .take_while(|d| Some(*d) != home && *d != Path::new("/"))
        .find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
        .unwrap_or(cwd)
        .to_path_buf();
    if Some(top.as_path()) == home || top == Path::new("/") {
        bail!(
            "the working directory {} is not inside a project: as the workspace it would make \
             {} writable\nhint: run from a project's directory, or pass --workspace DIR",
            cwd.display(),
            if top == Path::new("/") {
                "everything"
            } else {
                "your whole home directory"
            }
        );
    }
    Ok(top)
}

/// Claude Code's report of the working directory at the end of a command
/// line: `... && pwd -P >| FILE`. The command line without it, and FILE.
fn split_cwd_report(line: &[u8]) -> Option<(&[u8], PathBuf)> {
    const MARK: &[u8] = b" && pwd -P >| ";
    let line = trim_end(line);
    let at = line.windows(MARK.len()).rposition(|w| w == MARK)?;
    let word = parse_word(&line[at + MARK.len()..])?;
    let file = PathBuf::from(OsString::from_vec(word));
    is_claude_cwd_file(&file).then_some((&line[..at], file))
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// One shell word, all of `text`: plain characters, backslash escapes,
/// and single- and double-quoted parts. `None` for anything else (an
/// unquoted blank or operator, an unfinished quote, an expansion).
fn parse_word(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\'' => {
                let end = text[i + 1..].iter().position(|&b| b == b'\'')? + i + 1;
                out.extend_from_slice(&text[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match *text.get(i)? {
                        b'"' => break,
                        b'\\' if matches!(text.get(i + 1), Some(b'"' | b'\\' | b'$' | b'`')) => {
                            out.push(text[i + 1]);
                            i += 2;
                        }
                        b'$' | b'`' => return None,
                        b => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            b'\\' => {
                out.push(*text.get(i + 1)?);
                i += 2;
            }
            b if b.is_ascii_whitespace() || b"|&;<>()$`*?[]{}~#".contains(&b) => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `file` is where Claude Code asks for the working directory:
/// `claude-<hex>-cwd` in this process's temporary directory.
fn is_claude_cwd_file(file: &Path) -> bool {
    let name = file.file_name().map(OsStr::as_bytes).unwrap_or_default();
    let hex = name
        .strip_prefix(b"claude-")
        .and_then(|n| n.strip_suffix(b"-cwd"))
        .unwrap_or_default();
    !hex.is_empty()
        && hex.iter().all(u8::is_ascii_hexdigit)
        && file.parent() == Some(std::env::temp_dir().as_path())
}

/// A directory of moat's own for the command's `pwd`, removed on drop.
struct Relay(PathBuf);

impl Relay {
    fn new() -> Result<Relay> {
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let dir = base.join(format!("moat-shell-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Relay(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("making {}", dir.display())),
            }
        }
        bail!("no free name for moat's directory in {}", base.display())
    }

    fn file(&self) -> PathBuf {
        self.0.join("cwd")
    }

    /// Copies the directory the command ended in to `to`, if the command
    /// got that far and it names an existing directory.
    fn deliver(&self, to: &Path) {
        let Ok(text) = std::fs::read(self.file()) else {
            return;
        };
        let line = trim_end(&text);
        if line.len() > 4096 || line.iter().any(|b| b.is_ascii_control()) {
            return;
        }
        let dir = Path::new(OsStr::from_bytes(line));
        if !dir.is_absolute() || !dir.is_dir() {
            return;
        }
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(to)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &text));
        if let Err(e) = written {
            eprintln!(
                "moat: could not report the working directory to {}: {e}",
                to.display()
            );
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn shell(mut args: ShellArgs) -> Result<u8> {
    if args.opts.policy.workspace.is_none() {
        let cwd = std::env::current_dir().context("the working directory")?;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        args.opts.policy.workspace = Some(default_workspace(&cwd, home.as_deref())?);
    }
    let shell = shell_program(std::env::var_os("SHELL").as_deref());
    let line = args.command.as_bytes();
    let (line, relay) = match split_cwd_report(line) {
        Some((head, file)) => {
            let relay = Relay::new()?;
            let mut rewritten = head.to_vec();
            rewritten.extend_from_slice(b" && pwd -P >| ");
            rewritten.extend_from_slice(&single_quote(relay.file().as_os_str().as_bytes()));
            args.opts.policy.allow_write.push(relay.0.clone());
            (rewritten, Some((relay, file)))
        }
        None => (line.to_vec(), None),
    };
    let command = [
        shell.into_os_string(),
        OsString::from("-c"),
        OsString::from_vec(line),
    ];
    let ended = crate::run::execute(&args.opts, &command)?;
    if let Some((relay, file)) = relay {
        relay.deliver(&file);
    }
    // Killed by a signal, the shell's caller sees that signal, as it
    // would have without moat.
    if let Some(signal) = ended.signal {
        moat::advanced::end_by_signal(signal);
    }
    Ok(ended.code)
}

fn single_quote(text: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in text {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// `moat [OPTIONS] -c STRING` is `moat shell [OPTIONS] -c STRING`: a shell
/// prefix can carry only the program and its flags.
pub fn as_shell_verb(mut argv: Vec<OsString>) -> Vec<OsString> {
    let first = argv.get(1).map(|a| a.as_bytes());
    let flag = first.is_some_and(|a| a.starts_with(b"-"));
    let own = matches!(first, Some(b"-h" | b"--help" | b"-V" | b"--version"));
    if flag && !own {
        argv.insert(1, OsString::from("shell"));
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_codes_cwd_report_is_found_and_nothing_else() {
        let tmp = std::env::temp_dir();
        let file = tmp.join("claude-13a4-cwd");
        let quoted = format!("'{}'", file.display());
        let line =
            format!("source '/h/.claude/s.sh' && eval 'cd src' < /dev/null && pwd -P >| {quoted}");
        assert_eq!(
            split_cwd_report(line.as_bytes()),
            Some((
                &b"source '/h/.claude/s.sh' && eval 'cd src' < /dev/null"[..],
                file.clone()
            ))
        );
        // Unquoted and double-quoted forms; a trailing newline.
        for word in [
            format!("{}", file.display()),
            format!("\"{}\"", file.display()),
            format!("{}\n", file.display()),
        ] {
            let l = format!("true && pwd -P >| {word}");
            assert_eq!(
                split_cwd_report(l.as_bytes()).map(|x| x.1),
                Some(file.clone()),
                "{l}"
            );
        }
        // Not Claude Code's file, or not alone at the end: left as it is.
        for l in [
            "true && pwd -P >| /home/u/.bashrc".to_string(),
            format!("true && pwd -P >| {}/claude-zz-cwd", tmp.display()),
            "true && pwd -P >| /elsewhere/claude-13a4-cwd".to_string(),
            format!("true && pwd -P >| {quoted}; rm -rf x"),
            format!("true && pwd -P >| {quoted} && echo"),
            "true && pwd -P >| $HOME/claude-13a4-cwd".to_string(),
            "true".to_string(),
        ] {
            assert!(split_cwd_report(l.as_bytes()).is_none(), "{l}");
        }
    }

    #[test]
    fn words_are_parsed_as_the_shell_would() {
        assert_eq!(
            parse_word(b"'a b'c\\ d\"e\\\"f\""),
            Some(b"a bc de\"f".to_vec())
        );
        for bad in [&b"a b"[..], b"'open", b"\"$x\"", b"a;b", b"", b"\"open"] {
            assert_eq!(parse_word(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(single_quote(b"it's"), b"'it'\\''s'".to_vec());
    }

    #[test]
    fn the_workspace_is_the_project_not_the_home() {
        let base = std::env::temp_dir().join(format!("moat-shell-ws-{}", std::process::id()));
        let home = base.join("home");
        let repo = home.join("proj");
        let _ = std::fs::create_dir_all(repo.join(".git"));
        let _ = std::fs::create_dir_all(repo.join("src/deep"));
        let _ = std::fs::create_dir_all(home.join("loose/dir"));
        assert_eq!(
            default_workspace(&repo.join("src/deep"), Some(&home)).ok(),
            Some(repo.clone())
        );
        assert_eq!(
            default_workspace(&home.join("loose/dir"), Some(&home)).ok(),
            Some(home.join("loose/dir"))
        );
        assert!(default_workspace(&home, Some(&home)).is_err());
        assert!(default_workspace(Path::new("/"), Some(&home)).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn only_flags_turn_into_the_shell_verb() {
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            as_shell_verb(v(&["moat", "-c", "x"])),
            v(&["moat", "shell", "-c", "x"])
        );
        assert_eq!(
            as_shell_verb(v(&["moat", "--network", "on", "-c", "x"])),
            v(&["moat", "shell", "--network", "on", "-c", "x"])
        );
        for same in [
            &["moat", "run", "--", "x"][..],
            &["moat", "--help"],
            &["moat", "-V"],
            &["moat"],
        ] {
            assert_eq!(as_shell_verb(v(same)), v(same));
        }
    }

    #[test]
    fn the_shell_is_shell_when_it_can_be() {
        assert_eq!(
            shell_program(Some(OsStr::new("/bin/sh"))),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(
            shell_program(Some(OsStr::new("bash"))),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(
            shell_program(Some(OsStr::new("/nonexistent"))),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(shell_program(None), PathBuf::from("/bin/sh"));
    }
}
