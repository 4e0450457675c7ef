//! Security identifiers (SIDs) as plain data.
//!
//! The backend names principals in three places: the restricting SIDs of the
//! unelevated tier's token, the ACEs it puts on writable roots and protected
//! paths, and the firewall rules of the elevated tier's offline account.
//! This module holds a SID without any Windows call, so all of that can be
//! built and tested anywhere: it parses and prints the string form
//! (`S-1-5-21-...`), converts to and from the binary layout Windows APIs
//! take, names the well-known SIDs moat uses, and makes the random
//! capability SIDs that stand for writable roots.

use std::fmt;
use std::str::FromStr;

/// The only SID revision Windows defines.
pub const REVISION: u8 = 1;

/// Windows rejects SIDs with more sub-authorities than this.
pub const MAX_SUB_AUTHORITIES: usize = 15;

/// The identifier authority is 48 bits wide.
pub const MAX_AUTHORITY: u64 = (1 << 48) - 1;

/// Authorities from here on print in hex, as Windows prints them.
const HEX_AUTHORITY_FROM: u64 = 1 << 32;

/// `SECURITY_NT_AUTHORITY`.
pub const NT_AUTHORITY: u64 = 5;

/// `SECURITY_NT_NON_UNIQUE`: the first sub-authority of machine and domain
/// SIDs, and of moat's capability SIDs.
pub const NT_NON_UNIQUE: u32 = 21;

/// Everyone (`S-1-1-0`). A restricting SID of the unelevated tier's token,
/// which is why Everyone-writable directories need deny ACEs.
pub const EVERYONE: Sid = Sid::well_known(1, [0, 0]);

/// Authenticated Users (`S-1-5-11`).
pub const AUTHENTICATED_USERS: Sid = Sid::well_known(NT_AUTHORITY, [11, 0]);

/// Local System (`S-1-5-18`).
pub const LOCAL_SYSTEM: Sid = Sid::well_known(NT_AUTHORITY, [18, 0]);

/// BUILTIN\Administrators (`S-1-5-32-544`).
pub const ADMINISTRATORS: Sid = Sid::well_known(NT_AUTHORITY, [32, 544]);

/// BUILTIN\Users (`S-1-5-32-545`).
pub const USERS: Sid = Sid::well_known(NT_AUTHORITY, [32, 545]);

/// A security identifier.
///
/// The revision is always [`REVISION`]; the authority fits in 48 bits and
/// there are at most [`MAX_SUB_AUTHORITIES`] sub-authorities. Every `Sid`
/// value keeps those rules, so converting one to bytes never fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid {
    authority: u64,
    // A fixed array keeps `Sid` `Copy` and lets the well-known SIDs be
    // constants; slots past `count` stay zero so derived equality is exact.
    count: u8,
    subs: [u32; MAX_SUB_AUTHORITIES],
}

/// Why a string or byte buffer is not a SID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidError {
    /// The string is empty.
    Empty,
    /// The string does not start with `S-`.
    Prefix,
    /// The revision is missing or not `1`.
    Revision(String),
    /// The identifier authority is missing or not a number.
    Authority(String),
    /// The identifier authority does not fit in 48 bits.
    AuthorityTooLarge(String),
    /// A sub-authority (numbered from 1) is empty or not a decimal number.
    SubAuthority { index: usize, text: String },
    /// A sub-authority (numbered from 1) does not fit in 32 bits.
    SubAuthorityTooLarge { index: usize, text: String },
    /// More than [`MAX_SUB_AUTHORITIES`] sub-authorities.
    TooManySubAuthorities(usize),
    /// The byte buffer is shorter than the SID it describes.
    TooShort { needed: usize, got: usize },
    /// The byte buffer continues past the end of the SID.
    TrailingBytes { expected: usize, got: usize },
}

impl fmt::Display for SidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SidError::Empty => f.write_str("empty SID"),
            SidError::Prefix => f.write_str("a SID starts with `S-`"),
            SidError::Revision(t) => write!(f, "SID revision `{}` is not 1", t),
            SidError::Authority(t) => write!(
                f,
                "SID identifier authority `{}` is not a decimal or 0x-prefixed hex number",
                t
            ),
            SidError::AuthorityTooLarge(t) => {
                write!(
                    f,
                    "SID identifier authority `{}` does not fit in 48 bits",
                    t
                )
            }
            SidError::SubAuthority { index, text } => write!(
                f,
                "SID sub-authority {} (`{}`) is not a decimal number",
                index, text
            ),
            SidError::SubAuthorityTooLarge { index, text } => write!(
                f,
                "SID sub-authority {} (`{}`) does not fit in 32 bits",
                index, text
            ),
            SidError::TooManySubAuthorities(n) => write!(
                f,
                "a SID has at most {} sub-authorities, not {}",
                MAX_SUB_AUTHORITIES, n
            ),
            SidError::TooShort { needed, got } => write!(
                f,
                "a binary SID needs {} bytes here but only {} were given",
                needed, got
            ),
            SidError::TrailingBytes { expected, got } => write!(
                f,
                "a binary SID of {} bytes was followed by {} more",
                expected,
                got.saturating_sub(*expected)
            ),
        }
    }
}

impl std::error::Error for SidError {}

impl Sid {
    const fn well_known(authority: u64, subs: [u32; 2]) -> Sid {
        let mut all = [0u32; MAX_SUB_AUTHORITIES];
        all[0] = subs[0];
        all[1] = subs[1];
        // Two-part constants end in zero only for one-part SIDs such as
        // `S-1-1-0` and `S-1-5-18`, whose single sub-authority comes first.
        let count = if subs[1] == 0 { 1 } else { 2 };
        Sid {
            authority,
            count,
            subs: all,
        }
    }

    /// A SID from its parts.
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Result<Sid, SidError> {
        if authority > MAX_AUTHORITY {
            return Err(SidError::AuthorityTooLarge(authority.to_string()));
        }
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(sub_authorities.len()));
        }
        let mut subs = [0u32; MAX_SUB_AUTHORITIES];
        subs[..sub_authorities.len()].copy_from_slice(sub_authorities);
        Ok(Sid {
            authority,
            count: sub_authorities.len() as u8,
            subs,
        })
    }

    /// [`EVERYONE`].
    pub fn everyone() -> Sid {
        EVERYONE
    }

    /// [`USERS`].
    pub fn users() -> Sid {
        USERS
    }

    /// [`ADMINISTRATORS`].
    pub fn administrators() -> Sid {
        ADMINISTRATORS
    }

    /// [`LOCAL_SYSTEM`].
    pub fn local_system() -> Sid {
        LOCAL_SYSTEM
    }

    /// [`AUTHENTICATED_USERS`].
    pub fn authenticated_users() -> Sid {
        AUTHENTICATED_USERS
    }

    /// Always [`REVISION`].
    pub fn revision(&self) -> u8 {
        REVISION
    }

    /// The 48-bit identifier authority (5 for NT AUTHORITY).
    pub fn authority(&self) -> u64 {
        self.authority
    }

    /// The sub-authorities, the last of which is the relative identifier of
    /// account SIDs.
    pub fn sub_authorities(&self) -> &[u32] {
        &self.subs[..usize::from(self.count)]
    }

    /// The size of the binary form: 8 bytes of header plus 4 per
    /// sub-authority.
    pub fn byte_len(&self) -> usize {
        8 + 4 * usize::from(self.count)
    }

    /// The binary layout Windows uses (`SID` structure): revision, number of
    /// sub-authorities, the authority as 6 big-endian bytes, then each
    /// sub-authority as 4 little-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.push(REVISION);
        out.push(self.count);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in self.sub_authorities() {
            out.extend_from_slice(&sub.to_le_bytes());
        }
        out
    }

    /// Reads a binary SID that fills `bytes` exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sid, SidError> {
        let (sid, used) = Sid::from_bytes_prefix(bytes)?;
        if used != bytes.len() {
            return Err(SidError::TrailingBytes {
                expected: used,
                got: bytes.len(),
            });
        }
        Ok(sid)
    }

    /// Reads the binary SID at the start of `bytes` (as inside an ACE or a
    /// token buffer) and says how many bytes it took.
    pub fn from_bytes_prefix(bytes: &[u8]) -> Result<(Sid, usize), SidError> {
        if bytes.len() < 8 {
            return Err(SidError::TooShort {
                needed: 8,
                got: bytes.len(),
            });
        }
        if bytes[0] != REVISION {
            return Err(SidError::Revision(bytes[0].to_string()));
        }
        let count = usize::from(bytes[1]);
        if count > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities(count));
        }
        let needed = 8 + 4 * count;
        if bytes.len() < needed {
            return Err(SidError::TooShort {
                needed,
                got: bytes.len(),
            });
        }
        let mut authority = [0u8; 8];
        authority[2..].copy_from_slice(&bytes[2..8]);
        let mut subs = [0u32; MAX_SUB_AUTHORITIES];
        for (i, slot) in subs.iter_mut().take(count).enumerate() {
            let at = 8 + 4 * i;
            let mut word = [0u8; 4];
            word.copy_from_slice(&bytes[at..at + 4]);
            *slot = u32::from_le_bytes(word);
        }
        Ok((
            Sid {
                authority: u64::from_be_bytes(authority),
                count: bytes[1],
                subs,
            },
            needed,
        ))
    }

    /// Whether this is shaped like a local or domain account SID
    /// (`S-1-5-21-x-y-z-RID`) for an account someone created (RID 1000 or
    /// more), rather than a built-in account, group or well-known SID.
    pub fn is_created_account(&self) -> bool {
        let subs = self.sub_authorities();
        self.authority == NT_AUTHORITY
            && subs.len() == 5
            && subs[0] == NT_NON_UNIQUE
            && subs[4] >= 1000
    }
}

/// A fresh capability SID, `S-1-5-21-a-b-c-d`, from four random words.
///
/// The shape is that of a domain account SID, so Windows accepts it in ACEs
/// and in a token's restricting list, yet with 128 random bits it matches no
/// real account. The caller supplies the randomness so this stays pure.
pub fn capability_sid(random: [u32; 4]) -> Sid {
    let mut subs = [0u32; MAX_SUB_AUTHORITIES];
    subs[0] = NT_NON_UNIQUE;
    subs[1..5].copy_from_slice(&random);
    Sid {
        authority: NT_AUTHORITY,
        count: 5,
        subs,
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.authority >= HEX_AUTHORITY_FROM {
            write!(f, "S-1-0x{:012x}", self.authority)?;
        } else {
            write!(f, "S-1-{}", self.authority)?;
        }
        for sub in self.sub_authorities() {
            write!(f, "-{}", sub)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self)
    }
}

/// Decimal digits only, no sign, no leading zero: one spelling per value,
/// so a SID read back compares equal as text too.
fn canonical_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

fn parse_authority(text: &str) -> Result<u64, SidError> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"));
    let value = match hex {
        Some(digits) => {
            if digits.is_empty()
                || digits.len() > 12
                || !digits.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(SidError::Authority(text.to_string()));
            }
            u64::from_str_radix(digits, 16).map_err(|_| SidError::Authority(text.to_string()))?
        }
        None => {
            if !canonical_decimal(text) {
                return Err(SidError::Authority(text.to_string()));
            }
            // More than 15 digits cannot fit in 48 bits; checking the length
            // first keeps u64 overflow out of the picture.
            if text.len() > 15 {
                return Err(SidError::AuthorityTooLarge(text.to_string()));
            }
            text.parse::<u64>()
                .map_err(|_| SidError::Authority(text.to_string()))?
        }
    };
    if value > MAX_AUTHORITY {
        return Err(SidError::AuthorityTooLarge(text.to_string()));
    }
    Ok(value)
}

impl FromStr for Sid {
    type Err = SidError;

    /// Parses `S-1-<authority>(-<sub-authority>)*`.
    ///
    /// Stricter than Windows on purpose: upper-case `S`, no spaces, no signs,
    /// no leading zeros in decimal parts, and sub-authorities in decimal.
    /// The authority may be written in hex with `0x`, as Windows prints
    /// authorities of 2^32 and above.
    fn from_str(text: &str) -> Result<Sid, SidError> {
        if text.is_empty() {
            return Err(SidError::Empty);
        }
        let rest = text.strip_prefix("S-").ok_or(SidError::Prefix)?;
        let mut parts = rest.split('-');
        let revision = parts.next().unwrap_or("");
        if revision != "1" {
            return Err(SidError::Revision(revision.to_string()));
        }
        let authority = match parts.next() {
            Some(a) => parse_authority(a)?,
            None => return Err(SidError::Authority(String::new())),
        };
        let mut subs = [0u32; MAX_SUB_AUTHORITIES];
        let mut count = 0usize;
        for (i, part) in parts.enumerate() {
            let index = i + 1;
            if !canonical_decimal(part) {
                return Err(SidError::SubAuthority {
                    index,
                    text: part.to_string(),
                });
            }
            let value = part
                .parse::<u32>()
                .map_err(|_| SidError::SubAuthorityTooLarge {
                    index,
                    text: part.to_string(),
                })?;
            if count == MAX_SUB_AUTHORITIES {
                return Err(SidError::TooManySubAuthorities(
                    rest.split('-').count().saturating_sub(2),
                ));
            }
            subs[count] = value;
            count += 1;
        }
        Ok(Sid {
            authority,
            count: count as u8,
            subs,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Result<Sid, SidError> {
        s.parse::<Sid>()
    }

    #[test]
    fn well_known_sids_print_as_windows_does() {
        assert_eq!(EVERYONE.to_string(), "S-1-1-0");
        assert_eq!(USERS.to_string(), "S-1-5-32-545");
        assert_eq!(ADMINISTRATORS.to_string(), "S-1-5-32-544");
        assert_eq!(LOCAL_SYSTEM.to_string(), "S-1-5-18");
        assert_eq!(AUTHENTICATED_USERS.to_string(), "S-1-5-11");
        assert_eq!(Sid::everyone(), EVERYONE);
        assert_eq!(Sid::users(), USERS);
        assert_eq!(Sid::administrators(), ADMINISTRATORS);
        assert_eq!(Sid::local_system(), LOCAL_SYSTEM);
        assert_eq!(Sid::authenticated_users(), AUTHENTICATED_USERS);
    }

    #[test]
    fn well_known_constants_equal_their_parsed_form() {
        for sid in [
            EVERYONE,
            USERS,
            ADMINISTRATORS,
            LOCAL_SYSTEM,
            AUTHENTICATED_USERS,
        ] {
            assert_eq!(parse(&sid.to_string()).unwrap(), sid);
            assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
        }
    }

    #[test]
    fn string_round_trips() {
        for text in [
            "S-1-0-0",
            "S-1-5",
            "S-1-5-18",
            "S-1-5-21-1004336348-1177238915-682003330-512",
            "S-1-5-21-4294967295-0-1-2",
            "S-1-15-2-1",
            "S-1-16-12288",
            "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15",
            "S-1-4294967295-7",
            "S-1-0x000100000000-7",
            "S-1-0xffffffffffff",
        ] {
            let sid = parse(text).unwrap();
            assert_eq!(sid.to_string(), text, "{}", text);
            assert_eq!(Sid::from_bytes(&sid.to_bytes()).unwrap(), sid);
        }
    }

    #[test]
    fn authority_forms_are_canonicalised() {
        assert_eq!(parse("S-1-0x5-18").unwrap(), LOCAL_SYSTEM);
        assert_eq!(parse("S-1-0X000000000005-18").unwrap(), LOCAL_SYSTEM);
        assert_eq!(parse("S-1-0x5-18").unwrap().to_string(), "S-1-5-18");
        // Decimal above 2^32 is accepted and printed in hex.
        let big = parse("S-1-4294967296-1").unwrap();
        assert_eq!(big.authority(), 1 << 32);
        assert_eq!(big.to_string(), "S-1-0x000100000000-1");
        assert_eq!(
            parse("S-1-281474976710655").unwrap().authority(),
            MAX_AUTHORITY
        );
    }

    #[test]
    fn malformed_strings_are_refused_with_the_reason() {
        let cases: &[(&str, SidError)] = &[
            ("", SidError::Empty),
            ("s-1-5-18", SidError::Prefix),
            ("SID-1-5", SidError::Prefix),
            (" S-1-5-18", SidError::Prefix),
            ("S-", SidError::Revision(String::new())),
            ("S-2-5-18", SidError::Revision("2".into())),
            ("S-01-5-18", SidError::Revision("01".into())),
            ("S-1", SidError::Authority(String::new())),
            ("S-1-", SidError::Authority(String::new())),
            ("S-1-x-18", SidError::Authority("x".into())),
            ("S-1-05-18", SidError::Authority("05".into())),
            ("S-1-+5-18", SidError::Authority("+5".into())),
            ("S-1-0x-18", SidError::Authority("0x".into())),
            (
                "S-1-0x1234567890abc-1",
                SidError::Authority("0x1234567890abc".into()),
            ),
            (
                "S-1-281474976710656",
                SidError::AuthorityTooLarge("281474976710656".into()),
            ),
            (
                "S-1-99999999999999999999999",
                SidError::AuthorityTooLarge("99999999999999999999999".into()),
            ),
            (
                "S-1-5-",
                SidError::SubAuthority {
                    index: 1,
                    text: String::new(),
                },
            ),
            (
                "S-1-5-18-",
                SidError::SubAuthority {
                    index: 2,
                    text: String::new(),
                },
            ),
            (
                "S-1-5--18",
                SidError::SubAuthority {
                    index: 1,
                    text: String::new(),
                },
            ),
            (
                "S-1-5-18 ",
                SidError::SubAuthority {
                    index: 1,
                    text: "18 ".into(),
                },
            ),
            (
                "S-1-5- 18",
                SidError::SubAuthority {
                    index: 1,
                    text: " 18".into(),
                },
            ),
            (
                "S-1-5-0x12",
                SidError::SubAuthority {
                    index: 1,
                    text: "0x12".into(),
                },
            ),
            (
                "S-1-5-018",
                SidError::SubAuthority {
                    index: 1,
                    text: "018".into(),
                },
            ),
            (
                "S-1-5--1",
                SidError::SubAuthority {
                    index: 1,
                    text: String::new(),
                },
            ),
            (
                "S-1-5-4294967296",
                SidError::SubAuthorityTooLarge {
                    index: 1,
                    text: "4294967296".into(),
                },
            ),
            (
                "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
                SidError::TooManySubAuthorities(16),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Err(want), "{:?}", text);
            // Every error has a message that names the problem.
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn error_messages_name_the_part() {
        let err = parse("S-1-5-21-abc").unwrap_err().to_string();
        assert!(err.contains("sub-authority 2"), "{}", err);
        assert!(err.contains("abc"), "{}", err);
        let err = parse("S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16-17")
            .unwrap_err()
            .to_string();
        assert!(err.contains("17"), "{}", err);
    }

    #[test]
    fn no_string_panics() {
        for sample in [
            "S-1-0x€-é-1",
            "S-1-5-21-99999999999999999999-ü",
            "S-1-0xFFFFFFFFFFFF-1",
        ] {
            for (end, _) in sample.char_indices() {
                let _ = parse(&sample[..end]);
            }
        }
    }

    #[test]
    fn byte_layout_of_a_known_sid() {
        // S-1-5-32-544: revision 1, two sub-authorities, authority 5 in six
        // big-endian bytes, then 32 and 544 little-endian.
        assert_eq!(
            ADMINISTRATORS.to_bytes(),
            vec![1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0]
        );
        let sid = parse("S-1-5-21-1-2-4294967295-1001").unwrap();
        let bytes = sid.to_bytes();
        assert_eq!(bytes.len(), sid.byte_len());
        assert_eq!(&bytes[..8], &[1, 5, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&bytes[8..12], &[21, 0, 0, 0]);
        assert_eq!(&bytes[20..24], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&bytes[24..28], &[0xe9, 0x03, 0, 0]);
        let big = parse("S-1-0x010203040506").unwrap();
        assert_eq!(big.to_bytes(), vec![1, 0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn malformed_bytes_are_refused() {
        assert_eq!(
            Sid::from_bytes(&[1, 1, 0, 0]),
            Err(SidError::TooShort { needed: 8, got: 4 })
        );
        assert_eq!(
            Sid::from_bytes(&[2, 0, 0, 0, 0, 0, 0, 5]),
            Err(SidError::Revision("2".into()))
        );
        assert_eq!(
            Sid::from_bytes(&[1, 16, 0, 0, 0, 0, 0, 5]),
            Err(SidError::TooManySubAuthorities(16))
        );
        assert_eq!(
            Sid::from_bytes(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0]),
            Err(SidError::TooShort {
                needed: 12,
                got: 10
            })
        );
        let mut long = LOCAL_SYSTEM.to_bytes();
        long.push(0);
        assert_eq!(
            Sid::from_bytes(&long),
            Err(SidError::TrailingBytes {
                expected: 12,
                got: 13
            })
        );
        let (sid, used) = Sid::from_bytes_prefix(&long).unwrap();
        assert_eq!((sid, used), (LOCAL_SYSTEM, 12));
    }

    #[test]
    fn every_byte_buffer_either_parses_or_errors() {
        // No input may panic: walk many short buffers and counts.
        for count in 0u8..=20 {
            for len in 0..80 {
                let mut bytes = vec![0u8; len];
                if len > 0 {
                    bytes[0] = 1;
                }
                if len > 1 {
                    bytes[1] = count;
                }
                if let Ok(sid) = Sid::from_bytes(&bytes) {
                    assert_eq!(sid.to_bytes(), bytes);
                }
            }
        }
    }

    #[test]
    fn new_checks_its_limits() {
        assert_eq!(Sid::new(5, &[18]).unwrap(), LOCAL_SYSTEM);
        assert_eq!(
            Sid::new(MAX_AUTHORITY + 1, &[]),
            Err(SidError::AuthorityTooLarge((MAX_AUTHORITY + 1).to_string()))
        );
        assert_eq!(
            Sid::new(5, &[0; 16]),
            Err(SidError::TooManySubAuthorities(16))
        );
        assert_eq!(Sid::new(5, &[0; 15]).unwrap().sub_authorities().len(), 15);
    }

    #[test]
    fn sids_differing_only_in_trailing_zero_differ() {
        let a = parse("S-1-5-21").unwrap();
        let b = parse("S-1-5-21-0").unwrap();
        assert_ne!(a, b);
        assert_ne!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn capability_sids_have_the_domain_shape() {
        let sid = capability_sid([1, 2, 3, 4294967295]);
        assert_eq!(sid.to_string(), "S-1-5-21-1-2-3-4294967295");
        assert_eq!(sid.revision(), 1);
        assert_eq!(sid.authority(), 5);
        assert_eq!(sid.sub_authorities(), &[21, 1, 2, 3, 4294967295]);
        assert_eq!(parse(&sid.to_string()).unwrap(), sid);
        assert_ne!(capability_sid([1, 2, 3, 4]), capability_sid([1, 2, 3, 5]));
    }

    #[test]
    fn created_accounts_are_recognised() {
        assert!(parse("S-1-5-21-1-2-3-1001").unwrap().is_created_account());
        assert!(!parse("S-1-5-21-1-2-3-500").unwrap().is_created_account());
        assert!(!parse("S-1-5-21-1-2-1001").unwrap().is_created_account());
        assert!(!EVERYONE.is_created_account());
        assert!(!USERS.is_created_account());
        assert!(!parse("S-1-5-32-1-2-3-1001").unwrap().is_created_account());
    }
}
