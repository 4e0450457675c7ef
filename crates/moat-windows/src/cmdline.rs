//! Command lines for `CreateProcessW`.
//!
//! Windows hands a new process one string, not an argument vector: the
//! child's C runtime (or `CommandLineToArgvW`) splits it again. For the
//! child to see exactly the argv a policy approved, moat has to build that
//! string so that the split gives the vector back. `join` builds it and
//! `split` implements the splitting rules of the Universal C Runtime (the
//! rules of every Microsoft C runtime since Visual C++ 2008), so that tests
//! and diagnostics can check the round trip against what the child will do.

use std::fmt;

/// The longest command line `CreateProcessW` accepts, in UTF-16 code units:
/// its limit is 32,767 including the terminating NUL.
pub const MAX_LEN: usize = 32_766;

/// Why an argument vector cannot become a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    /// No program name: a command line always starts with one.
    Empty,
    /// The argument at this index contains a NUL, which would end the
    /// command line early.
    Nul(usize),
    /// The command line would be this many UTF-16 code units long, more
    /// than [`MAX_LEN`].
    TooLong(usize),
    /// The program name contains a double quote, which it has no way to
    /// carry (see [`join`]).
    QuoteInProgram,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::Empty => write!(f, "empty command: no program name"),
            CmdlineError::Nul(index) => {
                write!(f, "argument {index} contains a NUL character")
            }
            CmdlineError::TooLong(len) => write!(
                f,
                "command line is {len} UTF-16 code units long; Windows accepts at most {MAX_LEN}"
            ),
            CmdlineError::QuoteInProgram => write!(
                f,
                "program name contains a double quote, which a Windows command line cannot carry"
            ),
        }
    }
}

impl std::error::Error for CmdlineError {}

/// Space and tab separate arguments; newline and vertical tab do not, but
/// some other splitters (shells, older runtimes) treat them as blanks, so
/// an argument holding them is quoted too, which costs nothing.
fn needs_quoting(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '"')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn push_backslashes(out: &mut String, count: usize) {
    out.extend(std::iter::repeat('\\').take(count));
}

/// Quotes one argument (not the program name: see [`join`]) so that the C
/// runtime's splitter gives back exactly `arg`.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.chars().any(needs_quoting) {
        // Unquoted, backslashes are literal and nothing else is special.
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                // Backslashes count as escapes only before a quote: double
                // them, and add one more to make the quote literal.
                push_backslashes(&mut out, 2 * backslashes + 1);
                out.push('"');
                backslashes = 0;
            }
            _ => {
                push_backslashes(&mut out, backslashes);
                out.push(c);
                backslashes = 0;
            }
        }
    }
    // The closing quote follows, so trailing backslashes must not escape it.
    push_backslashes(&mut out, 2 * backslashes);
    out.push('"');
    out
}

/// The program name follows other rules: it ends at the first blank outside
/// quotes, every quote toggles quoting and backslashes are never escapes.
/// So it can be wrapped in quotes but can carry no quote of its own.
fn quote_program(program: &str) -> String {
    if program.is_empty() || program.chars().any(is_blank) {
        format!("\"{program}\"")
    } else {
        program.to_string()
    }
}

/// The command line for `args` (program name first), arguments separated
/// by one space.
pub fn join(args: &[&str]) -> Result<String, CmdlineError> {
    let (program, rest) = match args.split_first() {
        Some(split) => split,
        None => return Err(CmdlineError::Empty),
    };
    if let Some(index) = args.iter().position(|arg| arg.contains('\0')) {
        return Err(CmdlineError::Nul(index));
    }
    if program.contains('"') {
        return Err(CmdlineError::QuoteInProgram);
    }
    let mut line = quote_program(program);
    for arg in rest {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let len = line.encode_utf16().count();
    if len > MAX_LEN {
        return Err(CmdlineError::TooLong(len));
    }
    Ok(line)
}

/// Splits a command line as the Universal C Runtime does for `argv`.
///
/// The program name is always present, so an empty line gives one empty
/// argument, as the runtime does.
pub fn split(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    let mut i = 0;
    let mut args = Vec::new();

    let mut program = String::new();
    let mut in_quotes = false;
    while let Some(&c) = chars.get(i) {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && is_blank(c) {
            break;
        } else {
            program.push(c);
        }
        i += 1;
    }
    args.push(program);

    loop {
        while chars.get(i).map_or(false, |&c| is_blank(c)) {
            i += 1;
        }
        if i >= n {
            break;
        }
        let mut arg = String::new();
        let mut in_quotes = false;
        loop {
            let mut backslashes = 0usize;
            while chars.get(i) == Some(&'\\') {
                backslashes += 1;
                i += 1;
            }
            match chars.get(i) {
                Some('"') => {
                    push_backslashes(&mut arg, backslashes / 2);
                    if backslashes % 2 == 1 {
                        arg.push('"');
                        i += 1;
                    } else if in_quotes && chars.get(i + 1) == Some(&'"') {
                        // The UCRT's rule: a doubled quote inside quotes is
                        // a literal quote, and quoting goes on.
                        arg.push('"');
                        i += 2;
                    } else {
                        in_quotes = !in_quotes;
                        i += 1;
                    }
                }
                Some(&c) if in_quotes || !is_blank(c) => {
                    push_backslashes(&mut arg, backslashes);
                    arg.push(c);
                    i += 1;
                }
                _ => {
                    push_backslashes(&mut arg, backslashes);
                    break;
                }
            }
        }
        args.push(arg);
    }
    args
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn owned(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quote_table() {
        let cases: &[(&str, &str)] = &[
            ("", r#""""#),
            ("a", "a"),
            ("a b", r#""a b""#),
            ("a\\", "a\\"),
            (r"\\server\share\x", r"\\server\share\x"),
            ("a b\\", r#""a b\\""#),
            ("a b\\\\", r#""a b\\\\""#),
            (r#"a"b"#, r#""a\"b""#),
            (r#"a\"b"#, r#""a\\\"b""#),
            (r#"a\\"b"#, r#""a\\\\\"b""#),
            (r#"""#, r#""\"""#),
            (r#""""#, r#""\"\"""#),
            ("\\ ", r#""\ ""#),
            ("a\\b c", r#""a\b c""#),
            ("a\tb", "\"a\tb\""),
            ("a\nb", "\"a\nb\""),
            ("a\u{b}b", "\"a\u{b}b\""),
            ("été", "été"),
            ("日本 語", "\"日本 語\""),
            ("😀\\", "😀\\"),
        ];
        for (arg, want) in cases {
            assert_eq!(quote(arg), *want, "quote({arg:?})");
            // Every quoted argument must split back to itself.
            let line = format!("p {}", quote(arg));
            assert_eq!(split(&line), owned(&["p", arg]), "line {line:?}");
        }
    }

    #[test]
    fn join_table() {
        let cases: &[(&[&str], &str)] = &[
            (&["cmd"], "cmd"),
            (&["cmd", ""], r#"cmd """#),
            (&[""], r#""""#),
            (&["", "a"], r#""" a"#),
            (
                &[r"C:\Program Files\Git\bin\git.exe", "status"],
                r#""C:\Program Files\Git\bin\git.exe" status"#,
            ),
            // A trailing backslash in the program name is not an escape.
            (&[r"C:\my dir\", "x"], r#""C:\my dir\" x"#),
            (&[r"C:\dir\", "x"], r"C:\dir\ x"),
            (&["p", "a b", "c"], r#"p "a b" c"#),
            (&["p", r#"say "hi""#], r#"p "say \"hi\"""#),
        ];
        for (args, want) in cases {
            let line = join(args).unwrap();
            assert_eq!(line, *want, "join({args:?})");
            assert_eq!(split(&line), owned(args), "split({line:?})");
        }
    }

    #[test]
    fn split_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[""]),
            ("p", &["p"]),
            ("  a", &["", "a"]),
            ("p a b  c", &["p", "a", "b", "c"]),
            ("p \t a\t\tb \t", &["p", "a", "b"]),
            ("p\ta", &["p", "a"]),
            (
                r#""C:\Program Files\x.exe" a"#,
                &[r"C:\Program Files\x.exe", "a"],
            ),
            (r#""C:\dir\" a"#, &[r"C:\dir\", "a"]),
            (r#"p"q r"s t"#, &["pq rs", "t"]),
            (r#"p """#, &["p", ""]),
            (r#"p "" """#, &["p", "", ""]),
            (r"p a\b", &["p", r"a\b"]),
            (r"p a\\b\", &["p", r"a\\b\"]),
            // The examples of Microsoft's "Parsing C++ command-line
            // arguments", after a program name.
            (r#"p "abc" d e"#, &["p", "abc", "d", "e"]),
            (r#"p a\\b d"e f"g h"#, &["p", r"a\\b", "de fg", "h"]),
            (r#"p a\\\"b c d"#, &["p", r#"a\"b"#, "c", "d"]),
            (r#"p a\\\\"b c" d e"#, &["p", r"a\\b c", "d", "e"]),
            (r#"p a"b"" c d"#, &["p", r#"ab" c d"#]),
            // A doubled quote inside quotes stays inside them.
            (r#"p "a""b c""#, &["p", r#"a"b c"#]),
            (r#"p """""#, &["p", r#"""#]),
            (r#"p """"#, &["p", r#"""#]),
            // Outside quotes, a doubled quote opens and closes.
            (r#"p a""b c"#, &["p", "ab", "c"]),
            (r#"p "unterminated arg"#, &["p", "unterminated arg"]),
            (r#"p \"a"#, &["p", r#""a"#]),
            ("p a\nb", &["p", "a\nb"]),
            ("p é \"ü ö\"", &["p", "é", "ü ö"]),
        ];
        for (line, want) in cases {
            assert_eq!(split(line), owned(want), "split({line:?})");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(join(&[]), Err(CmdlineError::Empty));
        assert_eq!(join(&["a\0b"]), Err(CmdlineError::Nul(0)));
        assert_eq!(join(&["p", "a", "b\0"]), Err(CmdlineError::Nul(2)));
        assert_eq!(join(&["a\"b", "c"]), Err(CmdlineError::QuoteInProgram));
        assert_eq!(join(&["\""]), Err(CmdlineError::QuoteInProgram));
        for err in [
            CmdlineError::Empty,
            CmdlineError::Nul(3),
            CmdlineError::TooLong(40_000),
            CmdlineError::QuoteInProgram,
        ] {
            assert!(!err.to_string().is_empty());
        }
        assert!(CmdlineError::Nul(3).to_string().contains("argument 3"));
        assert!(CmdlineError::TooLong(40_000).to_string().contains("40000"));
    }

    #[test]
    fn length_limit_counts_utf16_units() {
        // "p " plus the argument.
        let fits = "a".repeat(MAX_LEN - 2);
        assert_eq!(join(&["p", &fits]).unwrap().len(), MAX_LEN);
        let over = "a".repeat(MAX_LEN - 1);
        assert_eq!(join(&["p", &over]), Err(CmdlineError::TooLong(MAX_LEN + 1)));

        // An astral character is two UTF-16 code units (and four bytes).
        let astral = "😀".repeat((MAX_LEN - 2) / 2);
        assert!(join(&["p", &astral]).is_ok());
        let astral_over = "😀".repeat((MAX_LEN - 2) / 2 + 1);
        assert_eq!(
            join(&["p", &astral_over]),
            Err(CmdlineError::TooLong(MAX_LEN + 2))
        );

        // Quoting counts too.
        let quotes = "\"".repeat(MAX_LEN / 2);
        assert_eq!(
            join(&["p", &quotes]),
            Err(CmdlineError::TooLong(2 + 2 + 2 * (MAX_LEN / 2)))
        );
    }

    /// xorshift64*: deterministic, so a failure reproduces.
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

    fn random_string(rng: &mut Rng, alphabet: &[char]) -> String {
        let len = rng.below(9);
        (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect()
    }

    #[test]
    fn round_trip_generated() {
        let alphabet = ['a', ' ', '\t', '\\', '"', 'é'];
        let program_alphabet = ['a', ' ', '\t', '\\', 'é'];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let count = rng.below(6);
            let mut args = vec![random_string(&mut rng, &program_alphabet)];
            for _ in 0..count {
                args.push(random_string(&mut rng, &alphabet));
            }
            let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let line = join(&refs).unwrap();
            assert_eq!(split(&line), args, "line {line:?}");
        }
    }
}
