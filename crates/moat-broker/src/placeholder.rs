//! Placeholders: random stand-ins of the same shape as a secret's value.
//!
//! The sandbox sees only the placeholder. It keeps the value's length and
//! its token prefix (`ghp_`, `github_pat_`, `sk-proj-`, `xoxb-`, ...), so
//! tools that check a token's shape still accept it, and every other digit
//! or ASCII letter is replaced by a random one of the same class, different
//! from the one it replaces. Other characters (`.`, `-`, `_` after the
//! prefix, non-ASCII) stay where they are.

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Error;

/// The fewest randomised characters a placeholder may have. Below this a
/// placeholder could be guessed, or collide with ordinary text in a request.
pub const MIN_RANDOM_CHARS: usize = 8;

/// A token prefix ends within this many characters (`sk-ant-api03-` is 13).
const PREFIX_MAX_CHARS: usize = 13;

/// Letters in one segment of a token prefix (`github` is 6). Longer runs of
/// lower-case letters are more likely the secret itself than a type tag.
const PREFIX_SEGMENT_MAX_LETTERS: usize = 6;

/// Digits that may end one prefix segment (`api03`).
const PREFIX_SEGMENT_MAX_DIGITS: usize = 2;

/// A placeholder shares no run longer than this with the value, unless its
/// kept prefix or kept punctuation is longer.
const MIN_SHARED_RUN: usize = 4;

/// New draws before giving up on a value whose placeholder keeps sharing
/// runs with it (only very long values of digits come near this).
const ATTEMPTS: usize = 64;

/// A random placeholder for `real`: same length in characters, same token
/// prefix, every other digit or ASCII letter replaced by a different random
/// one of the same class (digit, lower case, upper case).
///
/// The result differs from `real` and shares no run of characters with it
/// longer than 4 characters, or than the longest run it keeps unchanged
/// (the prefix with any punctuation after it, or punctuation). Values with fewer than [`MIN_RANDOM_CHARS`] digits and
/// letters are refused with [`Error::ValueTooShort`].
pub fn placeholder(real: &str) -> Result<String, Error> {
    let chars: Vec<char> = real.chars().collect();
    let mut prefix = token_prefix_len(&chars);
    if randomisable(&chars[prefix..]) < MIN_RANDOM_CHARS {
        // A prefix that leaves too little to randomise is not worth keeping.
        prefix = 0;
    }
    let count = randomisable(&chars[prefix..]);
    if count < MIN_RANDOM_CHARS {
        return Err(Error::ValueTooShort {
            randomisable: count,
            needed: MIN_RANDOM_CHARS,
        });
    }
    let bound = MIN_SHARED_RUN.max(longest_kept_run(&chars, prefix));
    let mut rng = Rng::new();
    for _ in 0..ATTEMPTS {
        let mut out: Vec<char> = chars[..prefix].to_vec();
        for &c in &chars[prefix..] {
            out.push(match Class::of(c) {
                Some(class) => class.random_other(c, &mut rng)?,
                None => c,
            });
        }
        if longest_shared_run(&chars, &out) <= bound {
            return Ok(out.into_iter().collect());
        }
    }
    Err(Error::ValueTooShort {
        randomisable: count,
        needed: MIN_RANDOM_CHARS,
    })
}

/// Length in characters of the token prefix of `chars`: a run of segments,
/// each of 1 to 6 lower-case letters, up to 2 digits and a `_` or `-`,
/// ending within the first 13 characters (`ghp_`, `github_pat_`,
/// `sk-ant-api03-`, `xoxb-`, `glpat-`, `npm_`). 0 when there is none.
pub(crate) fn token_prefix_len(chars: &[char]) -> usize {
    let mut kept = 0;
    let mut i = 0;
    loop {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_lowercase() {
            i += 1;
        }
        let letters = i - start;
        let digits_start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - digits_start;
        let separated = i < chars.len() && (chars[i] == '_' || chars[i] == '-');
        if letters == 0
            || letters > PREFIX_SEGMENT_MAX_LETTERS
            || digits > PREFIX_SEGMENT_MAX_DIGITS
            || !separated
            || i + 1 > PREFIX_MAX_CHARS
        {
            return kept;
        }
        i += 1;
        kept = i;
    }
}

/// How many characters of `chars` a placeholder replaces.
fn randomisable(chars: &[char]) -> usize {
    chars.iter().filter(|c| Class::of(**c).is_some()).count()
}

/// The longest run of characters a placeholder keeps as they are: the
/// first `prefix` characters and those it does not randomise.
fn longest_kept_run(chars: &[char], prefix: usize) -> usize {
    let mut best = 0;
    let mut run = 0;
    for (i, &c) in chars.iter().enumerate() {
        if i >= prefix && Class::of(c).is_some() {
            run = 0;
        } else {
            run += 1;
            best = best.max(run);
        }
    }
    best
}

/// The length of the longest run of characters found in both `a` and `b`
/// (dynamic programming over one row; values are at most a few KiB).
pub(crate) fn longest_shared_run(a: &[char], b: &[char]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut row = vec![0usize; b.len() + 1];
    let mut best = 0;
    for &ca in a {
        for (j, &cb) in b.iter().enumerate() {
            row[j + 1] = if ca == cb { prev[j] + 1 } else { 0 };
            best = best.max(row[j + 1]);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    best
}

/// The classes of characters a placeholder randomises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit,
    Lower,
    Upper,
}

impl Class {
    fn of(c: char) -> Option<Class> {
        if c.is_ascii_digit() {
            Some(Class::Digit)
        } else if c.is_ascii_lowercase() {
            Some(Class::Lower)
        } else if c.is_ascii_uppercase() {
            Some(Class::Upper)
        } else {
            None
        }
    }

    fn first_and_size(self) -> (u8, u8) {
        match self {
            Class::Digit => (b'0', 10),
            Class::Lower => (b'a', 26),
            Class::Upper => (b'A', 26),
        }
    }

    /// A uniformly random member of the class other than `not`.
    fn random_other(self, not: char, rng: &mut Rng) -> Result<char, Error> {
        let (first, size) = self.first_and_size();
        loop {
            let c = char::from(first + rng.below(size)?);
            if c != not {
                return Ok(c);
            }
        }
    }
}

/// Random bytes from the operating system, drawn 64 at a time.
struct Rng {
    source: SystemRandom,
    buf: [u8; 64],
    used: usize,
}

impl Rng {
    fn new() -> Rng {
        Rng {
            source: SystemRandom::new(),
            buf: [0; 64],
            used: 64,
        }
    }

    fn byte(&mut self) -> Result<u8, Error> {
        if self.used == self.buf.len() {
            self.source.fill(&mut self.buf).map_err(|_| Error::Random)?;
            self.used = 0;
        }
        let b = self.buf[self.used];
        self.used += 1;
        Ok(b)
    }

    /// A uniform number in `0..n` (rejection sampling, no modulo bias).
    fn below(&mut self, n: u8) -> Result<u8, Error> {
        let limit = 256 - (256 % u16::from(n));
        loop {
            let b = self.byte()?;
            if u16::from(b) < limit {
                return Ok(b % n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn prefix(s: &str) -> &str {
        let n = token_prefix_len(&s.chars().collect::<Vec<_>>());
        &s[..n]
    }

    #[test]
    fn token_prefixes_are_recognised() {
        let cases = [
            ("ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z", "ghp_"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
                "github_pat_",
            ),
            ("sk-proj-Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9", "sk-proj-"),
            ("sk-ant-api03-Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9", "sk-ant-api03-"),
            ("xoxb-1234567890-0987654321-AbCdEfGhIjKl", "xoxb-"),
            ("glpat-Ab3De5Fg7Hj9Kl1Mn3Pq", "glpat-"),
            ("npm_Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9", "npm_"),
            // Not type tags: they would keep part of the secret.
            ("123e4567-e89b-12d3-a456-426614174000", ""),
            ("deadbeefcafe-0123456789abcdef", ""),
            ("Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9", ""),
            ("abc", ""),
        ];
        for (value, want) in cases {
            assert_eq!(prefix(value), want, "prefix of {value}");
        }
    }

    #[test]
    fn placeholder_keeps_shape_and_prefix_and_differs() {
        let real = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z";
        let p = placeholder(real).unwrap();
        assert_eq!(p.len(), real.len());
        assert!(p.starts_with("ghp_"));
        assert_ne!(p, real);
        for (a, b) in real.chars().zip(p.chars()).skip(4) {
            assert_eq!(Class::of(a), Class::of(b));
            assert_ne!(a, b, "every randomised position differs");
        }
        assert!(
            longest_shared_run(
                &real.chars().collect::<Vec<_>>(),
                &p.chars().collect::<Vec<_>>()
            ) <= 4
        );
        // Two placeholders of one value differ from each other too.
        assert_ne!(placeholder(real).unwrap(), p);
    }

    #[test]
    fn punctuation_and_non_ascii_are_kept() {
        let real = "eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSM-_é";
        let p = placeholder(real).unwrap();
        assert_eq!(p.chars().count(), real.chars().count());
        for (a, b) in real.chars().zip(p.chars()) {
            if Class::of(a).is_none() {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn too_short_values_are_refused() {
        for real in ["", "abc", "1234567", "--------------", "ghp_", "a_b-c.d"] {
            match placeholder(real) {
                Err(Error::ValueTooShort { .. }) => {}
                other => panic!("{real:?}: {other:?}"),
            }
        }
        // Eight letters or digits are enough.
        assert_eq!(placeholder("12345678").unwrap().len(), 8);
        // A prefix that would leave too little is dropped, not kept.
        let p = placeholder("ghp_1234567").unwrap();
        assert_eq!(p.len(), 11);
        assert!(!p.starts_with("ghp_"));
        assert!(placeholder("ab_cdefghij").unwrap().starts_with("ab_"));
    }

    /// Property-style: many random values of many shapes.
    #[test]
    fn placeholder_properties_hold_for_random_values() {
        let mut rng = Rng::new();
        let alphabet: Vec<char> =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+=~"
                .chars()
                .collect();
        let prefixes = ["", "ghp_", "github_pat_", "sk-", "xoxb-", "glpat-", "npm_"];
        for round in 0..2000 {
            let len = 8 + usize::from(rng.below(120).unwrap());
            let mut real = String::from(prefixes[round % prefixes.len()]);
            for _ in 0..len {
                real.push(alphabet[usize::from(rng.below(alphabet.len() as u8).unwrap())]);
            }
            let chars: Vec<char> = real.chars().collect();
            match placeholder(&real) {
                Ok(p) => {
                    let pc: Vec<char> = p.chars().collect();
                    assert_eq!(pc.len(), chars.len(), "{real}");
                    assert_ne!(p, real);
                    let kept = token_prefix_len(&chars);
                    let kept = if randomisable(&chars[kept..]) < MIN_RANDOM_CHARS {
                        0
                    } else {
                        kept
                    };
                    assert_eq!(&pc[..kept], &chars[..kept], "{real}");
                    let bound = MIN_SHARED_RUN.max(longest_kept_run(&chars, kept));
                    assert!(bound >= kept);
                    assert!(longest_shared_run(&chars, &pc) <= bound, "{real} -> {p}");
                    for (a, b) in chars.iter().zip(&pc).skip(kept) {
                        assert_eq!(Class::of(*a), Class::of(*b));
                        if Class::of(*a).is_some() {
                            assert_ne!(a, b);
                        } else {
                            assert_eq!(a, b);
                        }
                    }
                }
                Err(Error::ValueTooShort {
                    randomisable: n, ..
                }) => {
                    assert!(
                        n < MIN_RANDOM_CHARS,
                        "{real}: refused with {n} randomisable"
                    );
                }
                Err(e) => panic!("{real}: {e}"),
            }
        }
    }
}
