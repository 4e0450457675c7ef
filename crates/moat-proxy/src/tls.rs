//! The server name of a TLS ClientHello (SNI), for transparent mode: the
//! proxy decides a captured port-443 connection by the name the client
//! asks for, before a byte reaches the network.

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A complete ClientHello naming this host (lower case).
    Name(String),
    /// A complete ClientHello without a server name.
    NoName,
    /// A ClientHello has begun; more bytes are needed.
    Incomplete,
    /// Not a TLS ClientHello, or a malformed one.
    NotTls,
}

/// The largest TLS record (2^14 bytes of plaintext plus room for
/// expansion, as the protocol allows).
const MAX_RECORD: usize = 16384 + 2048;

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.buf.get(self.at..end)?;
        self.at = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Reads the server name from the first TLS record in `buf`. Never panics,
/// whatever the bytes: public for the fuzz target.
pub fn parse_client_hello(buf: &[u8]) -> Hello {
    if buf.is_empty() {
        return Hello::Incomplete;
    }
    // A handshake record of TLS 1.0 or later (ClientHellos say 3.1 at
    // most in the record layer).
    if buf[0] != 22 || buf.get(1).map_or(false, |v| *v != 3) {
        return Hello::NotTls;
    }
    if buf.len() < 5 {
        return Hello::Incomplete;
    }
    let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return Hello::NotTls;
    }
    let record = match buf.get(5..5 + len) {
        Some(record) => record,
        None => return Hello::Incomplete,
    };
    hello_name(record).unwrap_or(Hello::NotTls)
}

fn hello_name(record: &[u8]) -> Option<Hello> {
    let mut c = Cursor { buf: record, at: 0 };
    if c.u8()? != 1 {
        return None;
    }
    let body_len = c.u24()?;
    // A ClientHello longer than its record continues in the next one:
    // not handled; such clients are refused rather than guessed at.
    let body = c.take(body_len)?;
    let mut c = Cursor { buf: body, at: 0 };
    c.take(2)?; // client version
    c.take(32)?; // random
    c.vec8()?; // session id
    c.vec16()?; // cipher suites
    c.vec8()?; // compression methods
    if c.at == body.len() {
        return Some(Hello::NoName);
    }
    let extensions = c.vec16()?;
    let mut e = Cursor {
        buf: extensions,
        at: 0,
    };
    while e.at < extensions.len() {
        let kind = e.u16()?;
        let data = e.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut s = Cursor { buf: data, at: 0 };
        let list = s.vec16()?;
        let mut l = Cursor { buf: list, at: 0 };
        while l.at < list.len() {
            let name_type = l.u8()?;
            let name = l.vec16()?;
            if name_type != 0 {
                continue;
            }
            let text = std::str::from_utf8(name).ok()?;
            if text.is_empty()
                || text.len() > 253
                || !text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return None;
            }
            return Some(Hello::Name(text.to_ascii_lowercase()));
        }
        return Some(Hello::NoName);
    }
    Some(Hello::NoName)
}

/// A minimal ClientHello for `name` (tests and the fuzz corpus).
pub fn client_hello(name: Option<&str>) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(n) = name {
        let n = n.as_bytes();
        let mut entry = vec![0u8];
        entry.extend_from_slice(&(n.len() as u16).to_be_bytes());
        entry.extend_from_slice(n);
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        ext.extend_from_slice(&0u16.to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_read_or_the_hello_refused() {
        let hello = client_hello(Some("Crates.IO"));
        assert_eq!(parse_client_hello(&hello), Hello::Name("crates.io".into()));
        assert_eq!(parse_client_hello(&client_hello(None)), Hello::NoName);
        for cut in [0, 1, 4, 5, hello.len() - 1] {
            assert_eq!(
                parse_client_hello(&hello[..cut]),
                Hello::Incomplete,
                "{cut}"
            );
        }
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        let mut bad = hello.clone();
        bad[5] = 2; // a ServerHello
        assert_eq!(parse_client_hello(&bad), Hello::NotTls);
        let mut lying = hello.clone();
        let n = lying.len();
        lying[n - 1] = b'/'; // not a host name
        assert_eq!(parse_client_hello(&lying), Hello::NotTls);
    }

    /// Replays the fuzzing corpus (fuzz/corpus/tls): every input parses
    /// or is refused, never panics.
    #[test]
    fn the_fuzz_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/tls");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let got = parse_client_hello(&bytes);
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("named-") {
                assert!(matches!(got, Hello::Name(_)), "{name}: {got:?}");
            }
            n += 1;
        }
        assert!(n >= 3, "the corpus at {} has {n} inputs", dir.display());
    }
}
