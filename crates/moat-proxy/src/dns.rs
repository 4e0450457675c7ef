//! The DNS stub of transparent mode. It answers inside the sandbox for
//! every name server address, never forwards a query anywhere, and gives
//! an allowed name a synthetic IPv4 address (from 198.18.0.0/15, the
//! range set aside for tests) that the proxy maps back to the name when a
//! connection to it arrives. Other names get REFUSED, so nothing about
//! them leaves the machine.

use std::net::Ipv4Addr;

/// What to answer for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An A record with this address (for A queries; other types of an
    /// allowed name get an empty answer).
    Address(Ipv4Addr),
    /// An empty answer (the name exists, no record of this type).
    NoData,
    /// REFUSED: the name is not allowed.
    Refused,
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_REFUSED: u8 = 5;
const RCODE_NOTIMP: u8 = 4;
/// How long clients may keep an answer: the mapping lives as long as the
/// run.
const TTL: u32 = 300;

/// A question: the name (lower case, no trailing dot), its type, and
/// where the question ends in the query.
fn question(query: &[u8]) -> Option<(String, u16, u16, usize)> {
    let mut at = 12;
    let mut name = String::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers and extended labels have no place in a
        // question.
        if len > 63 {
            return None;
        }
        let label = query.get(at..at + len)?;
        at += len;
        if !name.is_empty() {
            name.push('.');
        }
        for &b in label {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                name.push(b.to_ascii_lowercase() as char);
            } else {
                return None;
            }
        }
        if name.len() > 253 {
            return None;
        }
    }
    let t = query.get(at..at + 4)?;
    let qtype = u16::from_be_bytes([t[0], t[1]]);
    let qclass = u16::from_be_bytes([t[2], t[3]]);
    Some((name, qtype, qclass, at + 4))
}

fn header(query: &[u8], rcode: u8, questions: u16, answers: u16) -> Vec<u8> {
    let rd = query.get(2).map_or(0, |f| f & 0x01);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[0..2]);
    // QR, opcode 0, AA, RD as asked; RA; the rcode.
    out.push(0x84 | rd);
    out.push(0x80 | rcode);
    out.extend_from_slice(&questions.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// The reply to `query`, asking `answer` about the name; `None` when the
/// bytes are not a DNS query at all (nothing is sent back). Never panics,
/// whatever the bytes: public for the fuzz target.
pub fn reply(query: &[u8], answer: &mut dyn FnMut(&str) -> Answer) -> Option<Vec<u8>> {
    if query.len() < 12 || query.len() > 4096 {
        return None;
    }
    // Only queries (QR 0); responses are not answered.
    if query[2] & 0x80 != 0 {
        return None;
    }
    let opcode = (query[2] >> 3) & 0x0f;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    if opcode != 0 {
        return Some(header(query, RCODE_NOTIMP, 0, 0));
    }
    if qdcount != 1 {
        return Some(header(query, RCODE_FORMERR, 0, 0));
    }
    let (name, qtype, qclass, end) = match question(query) {
        Some(q) => q,
        None => return Some(header(query, RCODE_FORMERR, 0, 0)),
    };
    let asked = &query[12..end];
    if qclass != CLASS_IN || name.is_empty() {
        let mut out = header(query, RCODE_REFUSED, 1, 0);
        out.extend_from_slice(asked);
        return Some(out);
    }
    let verdict = answer(&name);
    let mut out = match verdict {
        Answer::Refused => header(query, RCODE_REFUSED, 1, 0),
        Answer::Address(_) if qtype == TYPE_A => header(query, 0, 1, 1),
        _ => header(query, 0, 1, 0),
    };
    out.extend_from_slice(asked);
    if let (Answer::Address(ip), TYPE_A) = (verdict, qtype) {
        // The name by a pointer to the question (offset 12).
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// A query for `name` of `qtype` (tests and the fuzz corpus).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(name: &str) -> Answer {
        match name {
            "crates.io" => Answer::Address(Ipv4Addr::new(198, 18, 0, 1)),
            _ => Answer::Refused,
        }
    }

    #[test]
    fn allowed_names_get_their_address_and_others_are_refused() {
        let r = reply(&query(7, "Crates.IO.", 1), &mut rules).unwrap_or_default();
        assert_eq!(&r[0..2], &[0, 7]);
        assert_eq!(r[3] & 0x0f, 0, "rcode");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[198, 18, 0, 1]);
        let aaaa = reply(&query(8, "crates.io", 28), &mut rules).unwrap_or_default();
        assert_eq!((aaaa[3] & 0x0f, aaaa[7]), (0, 0), "no AAAA record");
        let denied = reply(&query(9, "evil.example", 1), &mut rules).unwrap_or_default();
        assert_eq!(denied[3] & 0x0f, RCODE_REFUSED);
        assert_eq!(denied[7], 0);
    }

    #[test]
    fn malformed_queries_get_an_error_or_nothing() {
        let mut asked = Vec::new();
        let mut spy = |n: &str| {
            asked.push(n.to_string());
            Answer::Refused
        };
        assert_eq!(reply(b"short", &mut spy), None);
        let mut response = query(1, "a.b", 1);
        response[2] |= 0x80;
        assert_eq!(reply(&response, &mut spy), None, "responses are ignored");
        let mut two = query(1, "a.b", 1);
        two[5] = 2;
        assert_eq!(
            reply(&two, &mut spy).map(|r| r[3] & 0x0f),
            Some(RCODE_FORMERR)
        );
        let mut pointer = query(1, "a.b", 1);
        pointer[12] = 0xc0;
        assert_eq!(
            reply(&pointer, &mut spy).map(|r| r[3] & 0x0f),
            Some(RCODE_FORMERR)
        );
        let truncated = &query(1, "a.b", 1)[..15];
        assert_eq!(
            reply(truncated, &mut spy).map(|r| r[3] & 0x0f),
            Some(RCODE_FORMERR)
        );
        assert!(asked.is_empty(), "a malformed query asked about {asked:?}");
    }

    /// Replays the fuzzing corpus (fuzz/corpus/dns).
    #[test]
    fn the_fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dns");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let _ = reply(&bytes, &mut rules);
            n += 1;
        }
        assert!(n >= 3, "the corpus at {} has {n} inputs", dir.display());
    }
}
