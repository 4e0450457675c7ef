//! The environment block `CreateProcessW` takes with
//! `CREATE_UNICODE_ENVIRONMENT`.
//!
//! The block is a run of UTF-16 `NAME=VALUE` strings, each ended by a NUL,
//! with one more NUL after the last. Windows looks names up without regard
//! to case and expects the entries sorted the way it sorts them itself, so
//! `build` sorts, removes case-insensitive duplicates and refuses entries
//! the child could not read back as written.

use std::collections::HashMap;
use std::fmt;

/// The largest block `build` makes, in UTF-16 code units (32 MiB). Windows
/// sets no limit for Unicode blocks; this one only keeps a runaway
/// environment from costing unbounded memory.
pub const MAX_BLOCK_UNITS: usize = 16 * 1024 * 1024;

/// Why variables cannot become a block, or a block cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// A variable with an empty name.
    EmptyName,
    /// A name with `=` after its first character: the child would split
    /// the entry at that `=`.
    EqualsInName(String),
    /// A name containing NUL, which would end the entry early.
    NulInName(String),
    /// The value of this variable contains NUL, which would end the entry
    /// early.
    NulInValue(String),
    /// The block would be this many UTF-16 code units, more than
    /// [`MAX_BLOCK_UNITS`].
    TooLarge(usize),
    /// The block does not end with the NUL that follows the last entry (an
    /// empty block is two NULs).
    Unterminated,
    /// Data after the block's end, at this UTF-16 offset.
    TrailingData(usize),
    /// The entry at this UTF-16 offset has no `=` after its first character.
    MissingEquals(usize),
    /// The entry at this UTF-16 offset is not valid UTF-16.
    InvalidUtf16(usize),
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::EmptyName => write!(f, "environment variable with an empty name"),
            EnvError::EqualsInName(name) => write!(
                f,
                "environment variable name {name:?} contains '=' (allowed only as its first character)"
            ),
            EnvError::NulInName(name) => {
                write!(f, "environment variable name {name:?} contains a NUL character")
            }
            EnvError::NulInValue(name) => write!(
                f,
                "value of environment variable {name:?} contains a NUL character"
            ),
            EnvError::TooLarge(units) => write!(
                f,
                "environment block would be {units} UTF-16 code units; the limit is {MAX_BLOCK_UNITS}"
            ),
            EnvError::Unterminated => {
                write!(f, "environment block does not end with an empty entry (two NULs)")
            }
            EnvError::TrailingData(offset) => {
                write!(f, "data after the end of the environment block at offset {offset}")
            }
            EnvError::MissingEquals(offset) => write!(
                f,
                "environment block entry at offset {offset} has no '=' after its name"
            ),
            EnvError::InvalidUtf16(offset) => write!(
                f,
                "environment block entry at offset {offset} is not valid UTF-16"
            ),
        }
    }
}

impl std::error::Error for EnvError {}

/// Uppercases one UTF-16 code unit the way Windows compares environment
/// names: unit by unit, with one-to-one mappings only. Unicode's simple
/// uppercase mapping stands in for Windows' own table; they agree on the
/// characters environment names use in practice. Surrogates and characters
/// whose uppercase form is longer (`ß` → `SS`) are left as they are, as
/// Windows leaves them.
fn upcase_unit(unit: u16) -> u16 {
    let c = match char::from_u32(u32::from(unit)) {
        Some(c) => c,
        None => return unit,
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
        _ => unit,
    }
}

fn name_key(name: &str) -> Vec<u16> {
    name.encode_utf16().map(upcase_unit).collect()
}

fn validate(name: &str, value: &str) -> Result<(), EnvError> {
    if name.is_empty() {
        return Err(EnvError::EmptyName);
    }
    if name.contains('\0') {
        return Err(EnvError::NulInName(name.to_string()));
    }
    // Windows keeps each drive's current directory in variables named
    // like `=C:`, so a leading `=` is part of the name; the child finds the
    // name's end at the first `=` after it.
    if name.chars().skip(1).any(|c| c == '=') {
        return Err(EnvError::EqualsInName(name.to_string()));
    }
    if value.contains('\0') {
        return Err(EnvError::NulInValue(name.to_string()));
    }
    Ok(())
}

/// Builds the block for `vars`.
///
/// Names that differ only in case are one variable to Windows, so only one
/// entry survives: the last one given, with its own spelling of the name.
/// This mirrors setting the variables one after the other, and lets a caller
/// override an inherited variable by appending to the list.
pub fn build(vars: &[(String, String)]) -> Result<Vec<u16>, EnvError> {
    build_bounded(vars, MAX_BLOCK_UNITS)
}

fn build_bounded(vars: &[(String, String)], limit: usize) -> Result<Vec<u16>, EnvError> {
    for (name, value) in vars {
        validate(name, value)?;
    }

    let mut entries: Vec<(Vec<u16>, &str, &str)> = Vec::with_capacity(vars.len());
    let mut index: HashMap<Vec<u16>, usize> = HashMap::with_capacity(vars.len());
    for (name, value) in vars {
        let key = name_key(name);
        match index.get(&key) {
            Some(&at) => {
                if let Some(entry) = entries.get_mut(at) {
                    entry.1 = name.as_str();
                    entry.2 = value.as_str();
                }
            }
            None => {
                index.insert(key.clone(), entries.len());
                entries.push((key, name.as_str(), value.as_str()));
            }
        }
    }
    // Keys are unique by now, so stability only matters for determinism.
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    // Measured before anything is encoded, so an oversized environment
    // costs no allocation.
    let mut total: usize = 1;
    for (_, name, value) in &entries {
        let entry = name.encode_utf16().count() + 1 + value.encode_utf16().count() + 1;
        total = total.saturating_add(entry);
    }
    if entries.is_empty() {
        // Windows reads an empty block up to its double NUL.
        total = 2;
    }
    if total > limit {
        return Err(EnvError::TooLarge(total));
    }

    let mut block = Vec::with_capacity(total);
    for (_, name, value) in &entries {
        block.extend(name.encode_utf16());
        block.push(u16::from(b'='));
        block.extend(value.encode_utf16());
        block.push(0);
    }
    if entries.is_empty() {
        block.push(0);
    }
    block.push(0);
    Ok(block)
}

/// Reads a block back into variables, in the block's order.
pub fn parse(block: &[u16]) -> Result<Vec<(String, String)>, EnvError> {
    match block {
        [] | [0] => return Err(EnvError::Unterminated),
        [0, 0] => return Ok(Vec::new()),
        [0, 0, ..] => return Err(EnvError::TrailingData(2)),
        [0, ..] => return Err(EnvError::TrailingData(1)),
        _ => {}
    }
    let mut vars = Vec::new();
    let mut offset = 0usize;
    loop {
        let rest = block.get(offset..).unwrap_or(&[]);
        let len = match rest.iter().position(|&unit| unit == 0) {
            Some(len) => len,
            None => return Err(EnvError::Unterminated),
        };
        if len == 0 {
            let end = offset + 1;
            if end != block.len() {
                return Err(EnvError::TrailingData(end));
            }
            return Ok(vars);
        }
        let entry = rest.get(..len).unwrap_or(&[]);
        let text = String::from_utf16(entry).map_err(|_| EnvError::InvalidUtf16(offset))?;
        // Search from the second character: a leading `=` belongs to the
        // name. `=` is ASCII, so byte positions are safe to split at.
        let equals = text
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '=')
            .map(|(at, _)| at);
        match equals {
            Some(at) => {
                let (name, value) = text.split_at(at);
                vars.push((name.to_string(), value.get(1..).unwrap_or("").to_string()));
            }
            None => return Err(EnvError::MissingEquals(offset)),
        }
        offset += len + 1;
    }
}

/// Sets `name` to `value` in `vars`, replacing any variable of that name in
/// any case, or appends it.
///
/// The first match takes the new name and value in place, so the list keeps
/// its order; later matches are removed, since [`build`] would let the last
/// of them win over the value set here.
pub fn set_or_replace(vars: &mut Vec<(String, String)>, name: &str, value: &str) {
    let key = name_key(name);
    let first = vars.iter().position(|(n, _)| name_key(n) == key);
    match first {
        None => vars.push((name.to_string(), value.to_string())),
        Some(first) => {
            if let Some(entry) = vars.get_mut(first) {
                *entry = (name.to_string(), value.to_string());
            }
            let mut at = 0usize;
            vars.retain(|(n, _)| {
                let keep = at <= first || name_key(n) != key;
                at += 1;
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn utf16(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn empty_environment_is_two_nuls() {
        assert_eq!(build(&[]).unwrap(), vec![0, 0]);
        assert_eq!(parse(&[0, 0]).unwrap(), vec![]);
    }

    #[test]
    fn layout() {
        let block = build(&vars(&[("b", "2"), ("A", "1")])).unwrap();
        assert_eq!(block, utf16("A=1\0b=2\0\0"));
        let block = build(&vars(&[("EMPTY", "")])).unwrap();
        assert_eq!(block, utf16("EMPTY=\0\0"));
    }

    #[test]
    fn sorted_by_uppercased_name() {
        let input = vars(&[
            ("b", "1"),
            ("_x", "2"),
            ("A", "3"),
            ("=D:", "D:\\"),
            ("=C:", "C:\\work"),
            ("Path", "C:\\Windows"),
            ("1X", "4"),
            ("zeta", "5"),
            ("ZA", "6"),
            ("é", "7"),
        ]);
        let names: Vec<String> = parse(&build(&input).unwrap())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        // '_' (0x5F) sorts after every uppercase letter but before every
        // lowercase one: "b" before "_x" shows names are uppercased first.
        assert_eq!(
            names,
            ["1X", "=C:", "=D:", "A", "b", "Path", "ZA", "zeta", "_x", "é"]
        );
    }

    #[test]
    fn duplicates_last_wins() {
        let input = vars(&[
            ("Path", "first"),
            ("A", "a"),
            ("PATH", "second"),
            ("path", "third"),
        ]);
        assert_eq!(
            parse(&build(&input).unwrap()).unwrap(),
            vars(&[("A", "a"), ("path", "third")])
        );
        let input = vars(&[("été", "1"), ("ÉTÉ", "2")]);
        assert_eq!(
            parse(&build(&input).unwrap()).unwrap(),
            vars(&[("ÉTÉ", "2")])
        );
        // No one-to-one uppercase: distinct from "SS" as Windows has it.
        let input = vars(&[("ß", "1"), ("SS", "2")]);
        assert_eq!(
            parse(&build(&input).unwrap()).unwrap(),
            vars(&[("SS", "2"), ("ß", "1")])
        );
    }

    #[test]
    fn round_trip() {
        let input = vars(&[
            ("=C:", "C:\\Users\\me"),
            ("EMPTY", ""),
            ("EQUALS", "a=b=c"),
            ("LANG", "日本語"),
            ("EMOJI", "😀 and \u{10ffff}"),
            ("Path", "C:\\Windows;C:\\Program Files\\Git\\cmd"),
            ("ÄÖÜ", "umlauts"),
            ("=", "odd but allowed"),
        ]);
        let mut want = input.clone();
        want.sort_by_key(|(n, _)| name_key(n));
        assert_eq!(parse(&build(&input).unwrap()).unwrap(), want);
    }

    #[test]
    fn build_errors() {
        assert_eq!(build(&vars(&[("", "x")])), Err(EnvError::EmptyName));
        assert_eq!(
            build(&vars(&[("A=B", "x")])),
            Err(EnvError::EqualsInName("A=B".into()))
        );
        assert_eq!(
            build(&vars(&[("=C:=", "x")])),
            Err(EnvError::EqualsInName("=C:=".into()))
        );
        assert_eq!(
            build(&vars(&[("A\0", "x")])),
            Err(EnvError::NulInName("A\0".into()))
        );
        assert_eq!(
            build(&vars(&[("OK", "x"), ("A", "x\0y")])),
            Err(EnvError::NulInValue("A".into()))
        );
        // An invalid entry is refused even if a later duplicate replaces it.
        assert_eq!(
            build(&vars(&[("A", "\0"), ("a", "fine")])),
            Err(EnvError::NulInValue("A".into()))
        );
    }

    #[test]
    fn size_limit() {
        // "A=1\0" is four units, plus the final NUL.
        let input = vars(&[("A", "1"), ("B", "2")]);
        assert_eq!(build_bounded(&input, 9).unwrap().len(), 9);
        assert_eq!(build_bounded(&input, 8), Err(EnvError::TooLarge(9)));
        assert_eq!(build_bounded(&[], 1), Err(EnvError::TooLarge(2)));
        // Astral characters count two units each.
        let input = vars(&[("A", "😀")]);
        assert_eq!(build_bounded(&input, 6).unwrap().len(), 6);
        assert_eq!(build_bounded(&input, 5), Err(EnvError::TooLarge(6)));

        let big = "x".repeat(MAX_BLOCK_UNITS);
        assert_eq!(
            build(&vars(&[("A", &big)])),
            Err(EnvError::TooLarge(MAX_BLOCK_UNITS + 4))
        );
        let fits = "x".repeat(MAX_BLOCK_UNITS - 4);
        assert_eq!(
            build(&vars(&[("A", &fits)])).unwrap().len(),
            MAX_BLOCK_UNITS
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse(&[]), Err(EnvError::Unterminated));
        assert_eq!(parse(&[0]), Err(EnvError::Unterminated));
        assert_eq!(parse(&utf16("A=1")), Err(EnvError::Unterminated));
        assert_eq!(parse(&utf16("A=1\0")), Err(EnvError::Unterminated));
        assert_eq!(parse(&utf16("A=1\0B=2")), Err(EnvError::Unterminated));
        assert_eq!(parse(&utf16("\0\0\0")), Err(EnvError::TrailingData(2)));
        assert_eq!(parse(&utf16("\0A=1\0\0")), Err(EnvError::TrailingData(1)));
        assert_eq!(
            parse(&utf16("A=1\0\0B=2\0\0")),
            Err(EnvError::TrailingData(5))
        );
        assert_eq!(
            parse(&utf16("A=1\0NOEQ\0\0")),
            Err(EnvError::MissingEquals(4))
        );
        assert_eq!(parse(&utf16("=C:\0\0")), Err(EnvError::MissingEquals(0)));
        let mut bad = utf16("A=1\0B=");
        bad.extend([0xd800, 0, 0]);
        assert_eq!(parse(&bad), Err(EnvError::InvalidUtf16(4)));
    }

    #[test]
    fn parse_never_panics_on_noise() {
        // Every block over a small alphabet up to five units long.
        let alphabet = [0u16, u16::from(b'='), u16::from(b'A'), 0xd800, 0xdc00];
        let mut block = Vec::new();
        for len in 0..=5u32 {
            for mut n in 0..alphabet.len().pow(len) {
                block.clear();
                for _ in 0..len {
                    block.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                if let Ok(parsed) = parse(&block) {
                    // Whatever parses is a block build would make, except
                    // for order and duplicates.
                    for (name, value) in &parsed {
                        assert!(validate(name, value).is_ok(), "{block:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn set_or_replace_cases() {
        let mut env = vars(&[("Path", "a"), ("HOME", "h"), ("PATH", "b"), ("X", "x")]);
        set_or_replace(&mut env, "path", "new");
        assert_eq!(env, vars(&[("path", "new"), ("HOME", "h"), ("X", "x")]));
        set_or_replace(&mut env, "NEW", "1");
        assert_eq!(
            env,
            vars(&[("path", "new"), ("HOME", "h"), ("X", "x"), ("NEW", "1")])
        );
        set_or_replace(&mut env, "x", "y");
        assert_eq!(
            env,
            vars(&[("path", "new"), ("HOME", "h"), ("x", "y"), ("NEW", "1")])
        );
        let mut empty = Vec::new();
        set_or_replace(&mut empty, "É", "1");
        set_or_replace(&mut empty, "é", "2");
        assert_eq!(empty, vars(&[("é", "2")]));
    }

    #[test]
    fn display_names_the_problem() {
        assert!(EnvError::EqualsInName("A=B".into())
            .to_string()
            .contains("\"A=B\""));
        assert!(EnvError::NulInValue("PATH".into())
            .to_string()
            .contains("PATH"));
        assert!(EnvError::NulInName("A\0".into())
            .to_string()
            .contains("\\0"));
        assert!(EnvError::TooLarge(99).to_string().contains("99"));
        assert!(EnvError::MissingEquals(7).to_string().contains('7'));
        for err in [
            EnvError::EmptyName,
            EnvError::Unterminated,
            EnvError::TrailingData(1),
            EnvError::InvalidUtf16(2),
        ] {
            assert!(!err.to_string().is_empty());
        }
    }
}
