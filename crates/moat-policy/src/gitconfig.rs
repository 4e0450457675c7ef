//! Auditing git config files that a sandboxed command wrote.
//!
//! A command run inside the sandbox may create a new repository (`git init`,
//! `cargo new`). Its `.git/config` is then read later by git running
//! *outside* the sandbox, as the person, so any setting in it that makes git
//! run a program is a way out. [`neutralise`] finds those settings and renames
//! each one's variable name to `<name>-moat-disabled` ([`SUFFIX`]): git ignores
//! variables it does not know, so the setting stops working, stays visible to
//! the person, and can be restored by deleting the suffix. Everything else in
//! the file is kept byte for byte.
//!
//! [`danger`] is the list of settings; [`neutralise`] is a parser that follows
//! git's own config reader (`config.c`) closely, because a setting this module
//! reads differently from git is a setting it may miss.
//!
//! # Limits
//! - One file at a time. `include.path` and `includeIf.*.path` are not
//!   followed; they are flagged instead, since the included file may hold
//!   anything.
//! - Where git would reject the file (bad header, bad escape, unterminated
//!   quote, stray characters), git refuses to run at all, so such lines are
//!   left untouched. Scanning carries on after them so later settings are still
//!   seen by tools that are more forgiving than git; after a malformed section
//!   header the section is guessed from the header's text.
//! - Boolean detection (`core.fsmonitor`, `pager.<cmd>`) accepts only the
//!   usual spellings; git also reads any integer as a boolean, so e.g.
//!   `fsmonitor = 2` is flagged although git would treat it as `true`.
//! - Aliases are checked beyond the `!` shell form with a heuristic (leading
//!   git options such as `-c`, options that take a program, `bisect run`,
//!   `submodule foreach`, `config` writes). An alias that reaches such a
//!   command through another alias's expansion and short options is not
//!   fully caught, and a renamed alias can still be run by typing its new
//!   name on purpose.
//! - Renaming a variable under `[extensions]` makes git refuse a repository
//!   whose `core.repositoryFormatVersion` is 1 (unknown extension); that fails
//!   closed and is reported like any other finding.

/// One setting that would make git run a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line number of the variable in the original text.
    pub line: usize,
    /// Canonical key: section and variable name lower-cased, subsection as
    /// written, joined with dots, e.g. `core.fsmonitor`, `filter.lfs.clean`,
    /// `alias.st`.
    pub key: String,
    /// The value as git would read it (quotes removed, escapes applied,
    /// continuation lines joined); empty for a bare boolean key.
    pub value: String,
    /// Why it is dangerous, short, e.g. "runs a program on every git status".
    pub reason: &'static str,
}

/// A config text with its dangerous settings disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neutralised {
    /// The config text with each dangerous variable's NAME renamed to
    /// `<name>-moat-disabled`. Everything else is byte-for-byte identical to
    /// the input (whitespace, comments, other keys, line endings).
    pub text: String,
    /// What was renamed, in file order.
    pub findings: Vec<Finding>,
}

/// Appended to a dangerous variable's name. Only letters, digits and `-`, so
/// the renamed variable is still valid git config syntax.
pub const SUFFIX: &str = "-moat-disabled";

/// Why a setting would run a program, or None if it would not.
///
/// `section` and `name` are compared case-insensitively; `subsection` is
/// case-sensitive (None if absent). `value` is the value as git reads it,
/// empty for a bare key.
pub fn danger(
    section: &str,
    subsection: Option<&str>,
    name: &str,
    value: &str,
) -> Option<&'static str> {
    let section = section.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    // Names from the alias and pager families are free-form, so a renamed
    // one would otherwise still match; treating the suffix as "disabled" is
    // what makes neutralise idempotent.
    if name.ends_with(SUFFIX) {
        return None;
    }
    let sub = subsection.is_some();
    let reason = match (section.as_str(), sub, name.as_str()) {
        ("core", false, "fsmonitor") => {
            // The boolean forms select git's built-in daemon; anything else
            // is a hook program run on every status.
            if is_bool(value) {
                return None;
            }
            "runs a program on every git status"
        }
        ("core", false, "hookspath") => "runs hooks from another directory",
        ("core", false, "sshcommand") => "runs a program for ssh connections",
        ("core", false, "editor") => "runs a program to edit messages",
        ("core", false, "pager") => "runs a program to page output",
        ("core", false, "askpass") => "runs a program to ask for passwords",
        ("core", false, "gitproxy") => "runs a program for git:// connections",
        ("core", false, "alternaterefscommand") => "runs a program to list alternate refs",
        ("core", false, "worktree") => "points git at another working tree",
        ("sequence", false, "editor") => "runs a program to edit rebase todo lists",
        ("gpg", _, "program") => "runs a program to sign or verify",
        ("gpg", true, "defaultkeycommand") => "runs a program to pick a signing key",
        ("web", false, "browser") => "chooses a browser program to run",
        ("browser", true, "cmd") | ("browser", true, "path") => "runs a program as web browser",
        ("man", true, "cmd") | ("man", true, "path") => "runs a program as man page viewer",
        ("difftool", true, "cmd") | ("difftool", true, "path") => "runs a program as diff tool",
        ("mergetool", true, "cmd") | ("mergetool", true, "path") => "runs a program as merge tool",
        ("diff", false, "external") => "runs a program for every diff",
        ("diff", true, "textconv") => "runs a program to convert files for diff",
        ("diff", true, "command") => "runs a program to diff files",
        ("merge", true, "driver") => "runs a program to merge files",
        ("filter", true, "clean") | ("filter", true, "smudge") | ("filter", true, "process") => {
            "runs a program on checkout and add"
        }
        ("credential", _, "helper") => "runs a program to store credentials",
        ("pager", false, _) => {
            // `pager.<cmd>` is a boolean switch unless it names a pager.
            if is_bool(value) {
                return None;
            }
            "runs a program to page a command's output"
        }
        ("interactive", false, "difffilter") => "runs a program on interactive diffs",
        ("trailer", true, "command") | ("trailer", true, "cmd") => {
            "runs a program to make trailers"
        }
        ("sendemail", _, "smtpserver") => {
            // send-email runs an absolute path as a sendmail program and
            // treats anything else as a host name.
            if !is_absolute_path(value.trim_start()) {
                return None;
            }
            "runs a program to send mail"
        }
        ("sendemail", _, "tocmd") | ("sendemail", _, "cccmd") | ("sendemail", _, "headercmd") => {
            "runs a program to pick mail recipients"
        }
        ("sendemail", _, "sendmailcmd") => "runs a program to send mail",
        ("imap", false, "tunnel") => "runs a program to reach the imap server",
        ("remote", true, "uploadpack") => "runs a program on fetch",
        ("remote", true, "receivepack") => "runs a program on push",
        ("remote", true, "vcs") => "runs a remote helper program",
        ("url", true, "insteadof") | ("url", true, "pushinsteadof") => {
            "rewrites remote urls, possibly to a command transport"
        }
        ("protocol", _, "allow") => "can allow command transports such as ext::",
        ("uploadpack", false, "packobjectshook") => "runs a program when serving fetches",
        ("include", _, "path") | ("includeif", _, "path") => "includes another config file",
        ("alias", false, _) => return alias_danger(value),
        // Newer git also accepts `[alias "name"] command = ...`.
        ("alias", true, "command") => return alias_danger(value),
        ("submodule", true, "update") => {
            if !value.trim_start().starts_with('!') {
                return None;
            }
            "runs a shell command on submodule update"
        }
        ("extensions", false, "worktreeconfig") => {
            // A bare key and `key =` both reach here as "", and the bare
            // form means true, so only an explicit false is let through.
            if is_false(value) {
                return None;
            }
            "reads a per-worktree config file"
        }
        ("tar", true, "command") => "runs a program for git archive",
        ("instaweb", false, "httpd") => "runs a web server program",
        ("guitool", true, "cmd") => "runs a program from git gui",
        ("hook", true, "command") => "runs a program as a hook",
        ("init", false, "templatedir") => "copies hooks from another directory",
        _ => return None,
    };
    Some(reason)
}

/// Finds the settings [`danger`] flags in a config file's text and renames
/// their variables. Never panics; text with no findings comes back unchanged.
pub fn neutralise(text: &str) -> Neutralised {
    let bytes = text.as_bytes();
    let mut sc = Scanner::new(bytes);
    // git skips a UTF-8 byte order mark at the start of the file.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        sc.pos = 3;
    }
    let mut base: Vec<u8> = Vec::new();
    let mut in_comment = false;
    let mut findings = Vec::new();
    let mut cuts: Vec<usize> = Vec::new();

    loop {
        let start = sc.pos;
        let c = match sc.next() {
            Some(c) => c,
            None => break,
        };
        if c == b'\n' {
            in_comment = false;
            continue;
        }
        if in_comment || is_space(c) {
            continue;
        }
        match c {
            b'#' | b';' => in_comment = true,
            b'[' => match parse_header(&mut sc) {
                Some(b) => base = b,
                None => {
                    base = lenient_header(bytes, start + 1);
                    sc.skip_line();
                }
            },
            c if c.is_ascii_alphabetic() => {
                let line = sc.line;
                match parse_variable(&mut sc, c) {
                    Some(var) => {
                        if let Some(f) = judge(&base, &var, line) {
                            // Inserting after an ASCII name keeps UTF-8
                            // valid; the check guards the slicing below.
                            if text.is_char_boundary(var.name_end) {
                                cuts.push(var.name_end);
                                findings.push(f);
                            }
                        }
                    }
                    None => sc.skip_line(),
                }
            }
            _ => sc.skip_line(),
        }
    }

    if cuts.is_empty() {
        return Neutralised {
            text: text.to_string(),
            findings,
        };
    }
    let mut out = String::with_capacity(text.len() + cuts.len() * SUFFIX.len());
    let mut last = 0;
    for &cut in &cuts {
        out.push_str(text.get(last..cut).unwrap_or(""));
        out.push_str(SUFFIX);
        last = cut;
    }
    out.push_str(text.get(last..).unwrap_or(""));
    Neutralised {
        text: out,
        findings,
    }
}

/// A variable as parsed: its lower-cased name, where the name ends in the
/// text, and its value (None for a bare key).
struct Var {
    name: Vec<u8>,
    name_end: usize,
    value: Option<Vec<u8>>,
}

fn judge(base: &[u8], var: &Var, line: usize) -> Option<Finding> {
    let base = String::from_utf8_lossy(base);
    let name = String::from_utf8_lossy(&var.name);
    let value = match &var.value {
        Some(v) => String::from_utf8_lossy(v).into_owned(),
        None => String::new(),
    };
    // git splits a key at its first dot into section and the rest, which
    // is also how `[a.b "c"]` ends up with subsection `b.c`.
    let (section, subsection) = match base.split_once('.') {
        Some((s, sub)) => (s, Some(sub)),
        None => (base.as_ref(), None),
    };
    let reason = danger(section, subsection, &name, &value)?;
    let key = if base.is_empty() {
        name.into_owned()
    } else {
        format!("{base}.{name}")
    };
    Some(Finding {
        line,
        key,
        value,
        reason,
    })
}

/// Reads bytes the way git's `get_next_char` does: `\r\n` is one newline, a
/// lone `\r` is an ordinary (space) character.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    /// Whether the last read ended a line (or hit the end), so that error
    /// recovery does not skip the line after an error found at a newline.
    at_line_end: bool,
}

impl<'a> Scanner<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Scanner {
            bytes,
            pos: 0,
            line: 1,
            at_line_end: true,
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = match self.bytes.get(self.pos) {
            Some(&c) => c,
            None => {
                self.at_line_end = true;
                return None;
            }
        };
        self.pos += 1;
        let c = if c == b'\r' && self.bytes.get(self.pos) == Some(&b'\n') {
            self.pos += 1;
            b'\n'
        } else {
            c
        };
        if c == b'\n' {
            self.line += 1;
        }
        self.at_line_end = c == b'\n';
        Some(c)
    }

    fn skip_line(&mut self) {
        while !self.at_line_end {
            self.next();
        }
    }
}

/// git's `isspace`: no vertical tab or form feed.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_keychar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// After `[`: the lower-cased section name plus `.subsection` if quoted, or
/// None if git would reject the header.
fn parse_header(sc: &mut Scanner) -> Option<Vec<u8>> {
    let mut name = Vec::new();
    loop {
        let c = sc.next()?;
        if c == b']' {
            // git rejects `[]`.
            return if name.is_empty() { None } else { Some(name) };
        }
        if is_space(c) {
            return parse_subsection(sc, name, c);
        }
        if !(is_keychar(c) || c == b'.') {
            return None;
        }
        name.push(c.to_ascii_lowercase());
    }
}

fn parse_subsection(sc: &mut Scanner, mut name: Vec<u8>, first: u8) -> Option<Vec<u8>> {
    let mut c = first;
    loop {
        if c == b'\n' {
            return None;
        }
        c = sc.next()?;
        if !is_space(c) {
            break;
        }
    }
    if c != b'"' {
        return None;
    }
    name.push(b'.');
    loop {
        let mut c = sc.next()?;
        if c == b'\n' {
            return None;
        }
        if c == b'"' {
            break;
        }
        if c == b'\\' {
            // Any escaped character stands for itself; git drops the
            // backslash.
            c = sc.next()?;
            if c == b'\n' {
                return None;
            }
        }
        name.push(c);
    }
    if sc.next()? != b']' {
        return None;
    }
    Some(name)
}

/// A best guess at the section a malformed header meant, so settings after
/// it are still checked.
fn lenient_header(bytes: &[u8], from: usize) -> Vec<u8> {
    let rest = bytes.get(from..).unwrap_or(&[]);
    let mut line = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => rest.get(..end).unwrap_or(rest),
        None => rest,
    };
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let mut base = Vec::new();
    let mut i = 0;
    while let Some(&c) = line.get(i) {
        if is_space(c) || c == b'"' || c == b']' {
            break;
        }
        base.push(c.to_ascii_lowercase());
        i += 1;
    }
    while let Some(&c) = line.get(i) {
        if !is_space(c) {
            break;
        }
        i += 1;
    }
    if line.get(i) == Some(&b'"') {
        i += 1;
        base.push(b'.');
        while let Some(&c) = line.get(i) {
            i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(&n) = line.get(i) {
                        base.push(n);
                        i += 1;
                    }
                }
                _ => base.push(c),
            }
        }
    }
    base
}

/// After a variable's first letter: its name and value, or None if git
/// would reject the line.
fn parse_variable(sc: &mut Scanner, first: u8) -> Option<Var> {
    let mut name = vec![first.to_ascii_lowercase()];
    let mut name_end = sc.pos;
    let mut c = sc.next();
    while let Some(ch) = c {
        if !is_keychar(ch) {
            break;
        }
        name.push(ch.to_ascii_lowercase());
        name_end = sc.pos;
        c = sc.next();
    }
    while c == Some(b' ') || c == Some(b'\t') {
        c = sc.next();
    }
    match c {
        None | Some(b'\n') => Some(Var {
            name,
            name_end,
            value: None,
        }),
        Some(b'=') => parse_value(sc).map(|v| Var {
            name,
            name_end,
            value: Some(v),
        }),
        Some(_) => None,
    }
}

/// After `=`: the value as git's `parse_value` builds it, or None on an
/// unterminated quote or unknown escape.
fn parse_value(sc: &mut Scanner) -> Option<Vec<u8>> {
    let mut value = Vec::new();
    let mut quote = false;
    let mut comment = false;
    // Length to cut back to if only unquoted whitespace follows; 0 means
    // "none pending", which is safe because leading whitespace is never kept.
    let mut trim_len = 0usize;
    loop {
        let c = sc.next().unwrap_or(b'\n');
        if c == b'\n' {
            if quote {
                return None;
            }
            if trim_len > 0 {
                value.truncate(trim_len);
            }
            return Some(value);
        }
        if comment {
            continue;
        }
        if is_space(c) && !quote {
            if trim_len == 0 {
                trim_len = value.len();
            }
            if !value.is_empty() {
                value.push(c);
            }
            continue;
        }
        if !quote && (c == b';' || c == b'#') {
            comment = true;
            continue;
        }
        trim_len = 0;
        if c == b'\\' {
            let escaped = match sc.next() {
                // A backslash at the end of a line (or file) joins lines.
                None | Some(b'\n') => continue,
                Some(b't') => b'\t',
                Some(b'b') => 0x08,
                Some(b'n') => b'\n',
                Some(b'\\') => b'\\',
                Some(b'"') => b'"',
                Some(_) => return None,
            };
            value.push(escaped);
            continue;
        }
        if c == b'"' {
            quote = !quote;
            continue;
        }
        value.push(c);
    }
}

fn is_bool(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    matches!(
        v.as_str(),
        "" | "true" | "false" | "yes" | "no" | "on" | "off" | "0" | "1"
    )
}

fn is_false(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    matches!(v.as_str(), "false" | "no" | "off" | "0")
}

/// Whether send-email would take this as a program path. Windows drive paths
/// count too, since git for Windows checks for an absolute path.
fn is_absolute_path(v: &str) -> bool {
    let b = v.as_bytes();
    if b.first() == Some(&b'/') || b.first() == Some(&b'\\') {
        return true;
    }
    matches!(
        (b.first(), b.get(1), b.get(2)),
        (Some(d), Some(b':'), Some(b'/')) | (Some(d), Some(b':'), Some(b'\\')) if d.is_ascii_alphabetic()
    )
}

/// Long options, without `--`, whose argument is a program git runs.
const PROGRAM_OPTIONS: &[&str] = &[
    "exec",
    "exec-path",
    "extcmd",
    "upload-pack",
    "receive-pack",
    "open-files-in-pager",
    "sendmail-cmd",
    "to-cmd",
    "cc-cmd",
    "header-cmd",
    "smtp-server",
    "httpd",
    "access-hook",
    "config-env",
    "cmd",
];

/// An alias that expands to something other than a shell command can still
/// run a program, and a repository's alias overrides the person's own alias
/// of the same name, so `git st` may no longer mean what they think.
fn alias_danger(value: &str) -> Option<&'static str> {
    let v = value.trim_start();
    if v.starts_with('!') {
        return Some("alias runs a shell command");
    }
    let words = split_words(v);
    let (first, rest) = match words.split_first() {
        Some((first, rest)) => (first.to_ascii_lowercase(), rest),
        None => return None,
    };
    // Options before the command go to git itself: `-c` can set any of the
    // settings above for that one run.
    if first.starts_with('-') {
        return Some("alias passes options such as -c to git itself");
    }
    if rest.iter().any(|w| is_program_long_option(w)) {
        return Some("alias passes a program to a git command");
    }
    let short = match first.as_str() {
        "rebase" | "difftool" => Some('x'),
        "clone" | "ls-remote" => Some('u'),
        "grep" => Some('O'),
        _ => None,
    };
    if let Some(letter) = short {
        if rest.iter().any(|w| is_short_option_with(w, letter)) {
            return Some("alias passes a program to a git command");
        }
    }
    let runs = match first.as_str() {
        "bisect" => rest.iter().any(|w| w == "run"),
        "submodule" => rest.iter().any(|w| w == "foreach"),
        "filter-branch" | "instaweb" => true,
        _ => false,
    };
    if runs {
        return Some("alias runs a program through a git command");
    }
    if first == "config" && config_writes(rest) {
        return Some("alias writes git config");
    }
    None
}

fn is_program_long_option(word: &str) -> bool {
    let body = match word.strip_prefix("--") {
        Some(b) => b,
        None => return false,
    };
    let name = match body.split_once('=') {
        Some((name, _)) => name,
        None => body,
    };
    if name.is_empty() {
        return false;
    }
    // git accepts unambiguous abbreviations of long options; three letters
    // keeps real options such as `--to` and `--cc` out.
    PROGRAM_OPTIONS
        .iter()
        .any(|o| *o == name || (name.len() >= 3 && o.starts_with(name)))
}

/// `-x`, `-ix`, `-xcmd`: a cluster of short options containing `letter`.
fn is_short_option_with(word: &str, letter: char) -> bool {
    match word.strip_prefix('-') {
        Some(flags) => !flags.starts_with('-') && flags.contains(letter),
        None => false,
    }
}

/// Whether `git config <args>` would set something rather than read it.
fn config_writes(args: &[String]) -> bool {
    if args.iter().any(|w| w == "--add" || w == "--replace-all") {
        return true;
    }
    let plain: Vec<&str> = args
        .iter()
        .filter(|w| !w.starts_with('-'))
        .map(|w| w.as_str())
        .collect();
    match plain.first() {
        None => false,
        Some(&"set") => true,
        Some(&"get") | Some(&"list") | Some(&"get-regexp") | Some(&"get-urlmatch") => false,
        Some(_) => plain.len() >= 2,
    }
}

/// Splits an alias into words roughly as git's `split_cmdline` does: single
/// quotes are literal, double quotes allow backslash escapes.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                    in_word = true;
                }
                c if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                _ => {
                    cur.push(c);
                    in_word = true;
                }
            },
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        neutralise(text)
            .findings
            .into_iter()
            .map(|f| f.key)
            .collect()
    }

    fn assert_idempotent(text: &str) {
        let once = neutralise(text);
        let twice = neutralise(&once.text);
        assert!(
            twice.findings.is_empty(),
            "second pass found {:?} in {:?}",
            twice.findings,
            once.text
        );
        assert_eq!(twice.text, once.text);
    }

    #[test]
    fn dangerous_settings_are_found_and_renamed() {
        // (config text, canonical key)
        let cases: &[(&str, &str)] = &[
            ("[core]\n\tfsmonitor = /tmp/x\n", "core.fsmonitor"),
            ("[core]\n\thooksPath = .githooks\n", "core.hookspath"),
            ("[core]\n\tsshCommand = ssh -i k\n", "core.sshcommand"),
            ("[core]\n\teditor = vim\n", "core.editor"),
            ("[core]\n\tpager = less\n", "core.pager"),
            ("[core]\n\taskPass = /x\n", "core.askpass"),
            ("[core]\n\tgitProxy = /x for example.com\n", "core.gitproxy"),
            (
                "[core]\n\talternateRefsCommand = /x\n",
                "core.alternaterefscommand",
            ),
            ("[core]\n\tworktree = /elsewhere\n", "core.worktree"),
            ("[sequence]\n\teditor = /x\n", "sequence.editor"),
            ("[gpg]\n\tprogram = /x\n", "gpg.program"),
            ("[gpg \"ssh\"]\n\tprogram = /x\n", "gpg.ssh.program"),
            (
                "[gpg \"ssh\"]\n\tdefaultKeyCommand = /x\n",
                "gpg.ssh.defaultkeycommand",
            ),
            ("[web]\n\tbrowser = evil\n", "web.browser"),
            ("[browser \"evil\"]\n\tcmd = /x\n", "browser.evil.cmd"),
            ("[browser \"evil\"]\n\tpath = /x\n", "browser.evil.path"),
            ("[man \"v\"]\n\tcmd = /x\n", "man.v.cmd"),
            ("[man \"v\"]\n\tpath = /x\n", "man.v.path"),
            ("[difftool \"t\"]\n\tcmd = /x\n", "difftool.t.cmd"),
            ("[difftool \"t\"]\n\tpath = /x\n", "difftool.t.path"),
            ("[mergetool \"t\"]\n\tcmd = /x\n", "mergetool.t.cmd"),
            ("[mergetool \"t\"]\n\tpath = /x\n", "mergetool.t.path"),
            ("[diff]\n\texternal = /x\n", "diff.external"),
            ("[diff \"bin\"]\n\ttextconv = /x\n", "diff.bin.textconv"),
            ("[diff \"bin\"]\n\tcommand = /x\n", "diff.bin.command"),
            ("[merge \"m\"]\n\tdriver = /x %O %A %B\n", "merge.m.driver"),
            ("[filter \"f\"]\n\tclean = /x\n", "filter.f.clean"),
            ("[filter \"f\"]\n\tsmudge = /x\n", "filter.f.smudge"),
            ("[filter \"f\"]\n\tprocess = /x\n", "filter.f.process"),
            ("[credential]\n\thelper = !/x\n", "credential.helper"),
            (
                "[credential \"https://example.com\"]\n\thelper = /x\n",
                "credential.https://example.com.helper",
            ),
            ("[pager]\n\tlog = /x\n", "pager.log"),
            (
                "[interactive]\n\tdiffFilter = /x\n",
                "interactive.difffilter",
            ),
            ("[trailer \"t\"]\n\tcommand = /x\n", "trailer.t.command"),
            ("[trailer \"t\"]\n\tcmd = /x\n", "trailer.t.cmd"),
            (
                "[sendemail]\n\tsmtpServer = /usr/bin/x\n",
                "sendemail.smtpserver",
            ),
            ("[sendemail]\n\ttoCmd = /x\n", "sendemail.tocmd"),
            ("[sendemail]\n\tccCmd = /x\n", "sendemail.cccmd"),
            ("[sendemail]\n\tsendmailCmd = /x\n", "sendemail.sendmailcmd"),
            (
                "[sendemail \"work\"]\n\ttoCmd = /x\n",
                "sendemail.work.tocmd",
            ),
            ("[imap]\n\ttunnel = /x\n", "imap.tunnel"),
            (
                "[remote \"origin\"]\n\tuploadpack = /x\n",
                "remote.origin.uploadpack",
            ),
            (
                "[remote \"origin\"]\n\treceivepack = /x\n",
                "remote.origin.receivepack",
            ),
            ("[remote \"origin\"]\n\tvcs = x\n", "remote.origin.vcs"),
            (
                "[url \"ext::sh -c x\"]\n\tinsteadOf = https://\n",
                "url.ext::sh -c x.insteadof",
            ),
            (
                "[url \"ext::x\"]\n\tpushInsteadOf = git@\n",
                "url.ext::x.pushinsteadof",
            ),
            ("[protocol]\n\tallow = always\n", "protocol.allow"),
            (
                "[protocol \"ext\"]\n\tallow = always\n",
                "protocol.ext.allow",
            ),
            (
                "[uploadpack]\n\tpackObjectsHook = /x\n",
                "uploadpack.packobjectshook",
            ),
            ("[include]\n\tpath = /x\n", "include.path"),
            (
                "[includeIf \"gitdir:/a/\"]\n\tpath = /x\n",
                "includeif.gitdir:/a/.path",
            ),
            ("[alias]\n\tst = !sh -c x\n", "alias.st"),
            ("[alias]\n\tst = \"  !x\"\n", "alias.st"),
            ("[alias]\n\tst = -c core.fsmonitor=/x status\n", "alias.st"),
            ("[alias]\n\tr = rebase -x /x\n", "alias.r"),
            ("[alias]\n\tr = rebase --exec=/x\n", "alias.r"),
            ("[alias]\n\tf = fetch --upload-pack /x\n", "alias.f"),
            ("[alias]\n\tb = bisect run /x\n", "alias.b"),
            ("[alias]\n\ts = submodule foreach /x\n", "alias.s"),
            ("[alias]\n\tc = config core.fsmonitor /x\n", "alias.c"),
            ("[alias \"st\"]\n\tcommand = !x\n", "alias.st.command"),
            ("[submodule \"s\"]\n\tupdate = !/x\n", "submodule.s.update"),
            (
                "[extensions]\n\tworktreeConfig = true\n",
                "extensions.worktreeconfig",
            ),
            (
                "[extensions]\n\tworktreeConfig\n",
                "extensions.worktreeconfig",
            ),
            ("[tar \"tgz\"]\n\tcommand = /x\n", "tar.tgz.command"),
            ("[instaweb]\n\thttpd = /x\n", "instaweb.httpd"),
            ("[guitool \"t\"]\n\tcmd = /x\n", "guitool.t.cmd"),
            ("[hook \"h\"]\n\tcommand = /x\n", "hook.h.command"),
            ("[init]\n\ttemplateDir = /x\n", "init.templatedir"),
        ];
        for (text, key) in cases {
            let n = neutralise(text);
            assert_eq!(n.findings.len(), 1, "{text:?}");
            let f = &n.findings[0];
            assert_eq!(f.key, *key, "{text:?}");
            assert_eq!(f.line, 2, "{text:?}");
            assert!(!f.reason.is_empty());
            assert_eq!(f.reason, f.reason.to_lowercase());
            // The only change is the suffix right after the name.
            let name_len = key.rsplit('.').next().unwrap().len();
            let at = text.find('\t').unwrap() + 1 + name_len;
            let expected = format!("{}{}{}", &text[..at], SUFFIX, &text[at..]);
            assert_eq!(n.text, expected, "{text:?}");
            assert_idempotent(text);
        }
    }

    #[test]
    fn benign_settings_are_untouched() {
        let cases = [
            "[user]\n\tname = A Person\n\temail = a@example.com\n",
            "[core]\n\tautocrlf = input\n\tbare = false\n\trepositoryformatversion = 0\n",
            "[remote \"origin\"]\n\turl = https://example.com/r.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
            "[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n",
            "[alias]\n\tst = status\n\tcp = cherry-pick -x\n\tl = log --oneline --to=x\n",
            "[alias]\n\taliases = config --get-regexp alias\n\tme = config user.name\n",
            "[core]\n\tfsmonitor = true\n",
            "[core]\n\tfsmonitor = FALSE\n",
            "[core]\n\tfsmonitor\n",
            "[pager]\n\tlog = false\n\tdiff\n",
            "[sendemail]\n\tsmtpServer = smtp.example.com\n",
            "[submodule \"s\"]\n\tupdate = rebase\n",
            "[extensions]\n\tworktreeConfig = false\n",
            "[core \"x\"]\n\teditor = vim\n",
            "[http]\n\tsslVerify = true\n[status]\n\tshowUntrackedFiles = no\n",
            "# [core] editor = vim\n; fsmonitor = x\n",
            "[user]\n\tname = \"x\\\n\teditor = /y\"\n",
        ];
        for text in cases {
            let n = neutralise(text);
            assert!(n.findings.is_empty(), "{text:?}: {:?}", n.findings);
            assert_eq!(n.text, text);
        }
    }

    #[test]
    fn exact_renames() {
        let cases = [
            (
                "[core]\n\tfsmonitor = /tmp/x\n",
                "[core]\n\tfsmonitor-moat-disabled = /tmp/x\n",
            ),
            ("[core] hooksPath=.h", "[core] hooksPath-moat-disabled=.h"),
            (
                "[Core]\n  FSMonitor   =  evil  # note\n",
                "[Core]\n  FSMonitor-moat-disabled   =  evil  # note\n",
            ),
            (
                "[core]\r\n\tfsmonitor = /x\r\n\tbare = false\r\n",
                "[core]\r\n\tfsmonitor-moat-disabled = /x\r\n\tbare = false\r\n",
            ),
            (
                "[core]\n\teditor = vim",
                "[core]\n\teditor-moat-disabled = vim",
            ),
            ("[core]\n\teditor", "[core]\n\teditor-moat-disabled"),
            (
                "[core]\r\n\teditor\r\n",
                "[core]\r\n\teditor-moat-disabled\r\n",
            ),
            (
                "\u{feff}[core]\n\teditor = x\n",
                "\u{feff}[core]\n\teditor-moat-disabled = x\n",
            ),
            (
                "[core] editor = a\n[core] pager = b ; c\n",
                "[core] editor-moat-disabled = a\n[core] pager-moat-disabled = b ; c\n",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(neutralise(input).text, expected, "{input:?}");
            assert_idempotent(input);
        }
    }

    #[test]
    fn case_insensitive_names_and_sections() {
        let n = neutralise("[Core]\n\tFSMonitor = evil\n");
        assert_eq!(n.findings.len(), 1);
        assert_eq!(n.findings[0].key, "core.fsmonitor");
        assert_eq!(n.findings[0].value, "evil");
        assert_eq!(n.text, "[Core]\n\tFSMonitor-moat-disabled = evil\n");
        assert!(danger("CORE", None, "HooksPath", "x").is_some());
        assert!(danger("Filter", Some("x"), "CLEAN", "y").is_some());
    }

    #[test]
    fn subsection_case_is_kept_in_quoted_form_and_lowered_in_legacy_form() {
        assert_eq!(
            keys("[Filter \"LfS\"]\n\tclean = x\n"),
            ["filter.LfS.clean"]
        );
        assert_eq!(keys("[filter.LFS]\n\tclean = x\n"), ["filter.lfs.clean"]);
        assert_eq!(keys("[filter.lfs]\n\tsmudge = x\n"), ["filter.lfs.smudge"]);
        assert_eq!(
            keys("[url \"a\\\"b\\\\c\\d\"]\n\tinsteadOf = x\n"),
            ["url.a\"b\\cd.insteadof"]
        );
        // `[core ""]` is not `[core]`.
        assert!(keys("[core \"\"]\n\teditor = x\n").is_empty());
        assert!(keys("[core.]\n\teditor = x\n").is_empty());
    }

    #[test]
    fn header_and_variable_on_one_line() {
        let n = neutralise("[core] fsmonitor = evil\n[user]name=x\n");
        assert_eq!(n.findings.len(), 1);
        assert_eq!(n.findings[0].key, "core.fsmonitor");
        assert_eq!(n.findings[0].line, 1);
        assert_eq!(
            n.text,
            "[core] fsmonitor-moat-disabled = evil\n[user]name=x\n"
        );
        assert_eq!(keys("[user] [core] editor = x"), ["core.editor"]);
    }

    #[test]
    fn continuation_lines() {
        let text = "[core]\n\teditor = vim \\\n  -f\n\tpager = a\\\nb\n";
        let n = neutralise(text);
        assert_eq!(n.findings.len(), 2);
        assert_eq!(n.findings[0].line, 2);
        assert_eq!(n.findings[0].value, "vim   -f");
        assert_eq!(n.findings[1].line, 4);
        assert_eq!(n.findings[1].value, "ab");
        // A continued value swallows the next line, so what looks like a key
        // there is not one.
        assert!(keys("[core]\n\tabbrev = 7\\\nfsmonitor = /evil\n").is_empty());
        // A comment after a continuation still ends the value.
        let n = neutralise("[core]\n\teditor = a\\\n#b\n");
        assert_eq!(n.findings[0].value, "a");
        // Continuation inside quotes, and at the end of the file.
        let n = neutralise("[core]\n\teditor = \"a \\\n b\"\n\tpager = x\\");
        assert_eq!(n.findings[0].value, "a  b");
        assert_eq!(n.findings[1].value, "x");
        assert_eq!(n.findings[1].line, 4);
    }

    #[test]
    fn quoted_values_and_escapes() {
        let n = neutralise("[core]\n\teditor = \"vim # not a comment\" ; comment\n");
        assert_eq!(n.findings[0].value, "vim # not a comment");
        let n = neutralise("[core]\n\teditor = a\\tb\\n\\\"c\\\\ \"  d \"  # x\n");
        assert_eq!(n.findings[0].value, "a\tb\n\"c\\   d ");
        // Quoted booleans are still booleans.
        assert!(keys("[core]\n\tfsmonitor = \"true\" # x\n").is_empty());
        assert_eq!(
            keys("[core]\n\tfsmonitor = \"true \"\n"),
            ["core.fsmonitor"]
        );
        let n = neutralise("[core]\n\tfsmonitor = ;\n");
        assert!(n.findings.is_empty());
    }

    #[test]
    fn crlf_and_missing_trailing_newline() {
        let text = "[core]\r\n\teditor = \"x\"\r\n\tpager = y";
        let n = neutralise(text);
        assert_eq!(n.findings[0].value, "x");
        assert_eq!(n.findings[1].value, "y");
        assert_eq!(n.findings[1].line, 3);
        assert_eq!(
            n.text,
            "[core]\r\n\teditor-moat-disabled = \"x\"\r\n\tpager-moat-disabled = y"
        );
        // A lone carriage return is whitespace, not a line end.
        let n = neutralise("[core]\n\teditor = x \r\n");
        assert_eq!(n.findings[0].value, "x");
    }

    #[test]
    fn malformed_lines_are_left_alone_and_scanning_continues() {
        let text = "garbage here\n[core]\n\tfsmonitor = \"unterminated\n\teditor # c\n\tpager = \\q\n\t7x = 1\n\tsshCommand = /x\n";
        let n = neutralise(text);
        assert_eq!(keys(text), ["core.sshcommand"]);
        assert_eq!(n.findings[0].line, 7);
        assert_eq!(
            n.text,
            text.replace("sshCommand", "sshCommand-moat-disabled")
        );
        // After a malformed header, the section is guessed from its text.
        assert_eq!(keys("[core\n\teditor = x\n"), ["core.editor"]);
        assert_eq!(keys("[filter \"a\" ]\n\tclean = x\n"), ["filter.a.clean"]);
        assert_eq!(keys("[]\n\teditor = x\n"), Vec::<String>::new());
        // Variables before any section have no section.
        assert!(keys("editor = x\n").is_empty());
    }

    #[test]
    fn line_numbers() {
        let text = "# c\n\n[core]\n\tbare = false\n\teditor = a\n[alias]\n\tx = !y\n";
        let lines: Vec<usize> = neutralise(text).findings.iter().map(|f| f.line).collect();
        assert_eq!(lines, [5, 7]);
    }

    #[test]
    fn idempotent_on_a_full_config() {
        let text = "[core]\n\trepositoryformatversion = 0\n\tfsmonitor = /x\n\thooksPath = h\n\
                    [alias]\n\tst = status\n\tx = !evil\n\tp = -p log\n\
                    [pager]\n\tlog = less\n\tdiff = false\n\
                    [filter.lfs]\n\tclean = git-lfs clean -- %f\n\trequired = true\n";
        let n = neutralise(text);
        assert_eq!(
            n.findings
                .iter()
                .map(|f| f.key.as_str())
                .collect::<Vec<_>>(),
            [
                "core.fsmonitor",
                "core.hookspath",
                "alias.x",
                "alias.p",
                "pager.log",
                "filter.lfs.clean"
            ]
        );
        assert_idempotent(text);
    }

    #[test]
    fn danger_direct() {
        assert_eq!(danger("core", None, "fsmonitor", "on"), None);
        assert!(danger("core", None, "fsmonitor", "/x").is_some());
        assert_eq!(danger("core", Some("x"), "fsmonitor", "/x"), None);
        assert_eq!(danger("alias", None, "st", "status"), None);
        assert!(danger("alias", None, "st", "  !x").is_some());
        assert_eq!(danger("alias", None, "st-moat-disabled", "!x"), None);
        assert!(danger("sendemail", None, "smtpserver", "C:\\x.exe").is_some());
        assert_eq!(danger("ssh", None, "variant", "ssh"), None);
        assert_eq!(danger("http", None, "proxy", "http://x"), None);
        assert_eq!(danger("receive", None, "procreceiverefs", "refs/for"), None);
        assert_eq!(danger("status", None, "showuntrackedfiles", "no"), None);
    }

    #[test]
    fn alias_words() {
        assert_eq!(
            split_words("a 'b c' \"d\\\"e\" f\\ g"),
            ["a", "b c", "d\"e", "f g"]
        );
        assert!(is_program_long_option("--exe=x"));
        assert!(is_program_long_option("--upload"));
        assert!(!is_program_long_option("--cc=x"));
        assert!(!is_program_long_option("--to=x"));
        assert!(!is_program_long_option("--exclude"));
        assert!(is_short_option_with("-ix", 'x'));
        assert!(!is_short_option_with("--exec", 'x'));
    }

    /// xorshift64*: deterministic pseudo-random numbers without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn smoke_random_and_malformed_inputs() {
        const PIECES: &[&str] = &[
            "[",
            "]",
            "[core]",
            "[Core \"X\"]",
            "[filter.lfs]",
            "[alias]",
            "[pager]",
            "\"",
            "\\",
            "\n",
            "\r\n",
            "\r",
            " ",
            "\t",
            "=",
            "#",
            ";",
            "fsmonitor",
            "editor",
            "clean",
            "st",
            "log",
            "!",
            "true",
            "/bin/x",
            "a",
            "-",
            ".",
            "\\\n",
            "\u{feff}",
            "é",
            "\0",
            "\u{fffd}",
            "[include]path=",
            "[core]fsmonitor=x\n",
            "[url \"",
            "\"]",
            "x-moat-disabled",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..600 {
            let text = if round % 3 == 0 {
                let len = rng.below(200);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                let n = rng.below(40);
                (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect()
            };
            let out = neutralise(&text);
            if out.findings.is_empty() {
                assert_eq!(out.text, text);
            } else {
                assert_eq!(
                    out.text.len(),
                    text.len() + out.findings.len() * SUFFIX.len()
                );
            }
            assert_idempotent(&text);
        }
        let long = format!("[core]\n\teditor = {}\n", "x\\\n".repeat(20_000));
        assert_eq!(neutralise(&long).findings.len(), 1);
        let open = format!("[core \"{}", "a".repeat(100_000));
        assert!(neutralise(&open).findings.is_empty());
    }
}
