//! Request heads: parsed once with httparse, checked, then written out
//! again by the broker (with `Connection: close` and without hop-by-hop
//! headers), never forwarded as the client sent them.

use crate::body::Framing;

/// Request heads are at most 16 KiB, as in moat's proxy: far above what
/// clients send, and a bound on what one connection can make moat buffer.
pub const MAX_HEAD: usize = 16 * 1024;

/// At most this many header fields.
const MAX_HEADERS: usize = 128;

/// Headers that describe the client's connection to moat, not the request.
/// `Upgrade` goes too, so no WebSocket or h2c switch is attempted over a
/// connection that must carry one request.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
];

/// Headers a `Connection` option may not remove: they frame the request or
/// name its host, and dropping them would desynchronise what moat checked
/// from what the upstream reads.
const NOT_REMOVABLE: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// One header field; the value as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: Vec<u8>,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor: u8,
    pub(crate) headers: Vec<Header>,
}

/// Why a head could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] fields.
    TooLarge,
    /// Not an HTTP/1.x request head.
    Malformed(String),
}

/// The head at the start of `buf` and its length, `None` if incomplete.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let len = match status {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line".into()));
    };
    let headers = req
        .headers
        .iter()
        .map(|h| Header {
            name: h.name.to_string(),
            value: h.value.to_vec(),
        })
        .collect();
    Ok(Some((
        Head {
            method: method.to_string(),
            target: target.to_string(),
            minor,
            headers,
        },
        len,
    )))
}

impl Head {
    /// The values of the headers called `name` (case-insensitive).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The authority of an absolute-form target (`https://host:port/...`).
    pub(crate) fn target_authority(&self) -> Option<&str> {
        let rest = strip_scheme(&self.target)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// The target's path without the query string (`/a/b` of
    /// `https://h/a/b?q`; `/` when an absolute form has none).
    pub(crate) fn path(&self) -> &str {
        let path = match strip_scheme(&self.target) {
            Some(rest) => match rest.find(['/', '?', '#']) {
                Some(i) if rest[i..].starts_with('/') => &rest[i..],
                _ => "/",
            },
            None => self.target.as_str(),
        };
        path.split('?').next().unwrap_or(path)
    }

    /// How the body is delimited. Refuses what could be read two ways:
    /// `Transfer-Encoding` other than a single `chunked`, both it and
    /// `Content-Length`, or differing lengths.
    pub(crate) fn framing(&self) -> Result<Framing, String> {
        let te: Vec<&[u8]> = self.values("transfer-encoding").collect();
        let lengths: Vec<&[u8]> = self.values("content-length").collect();
        if !te.is_empty() {
            if !lengths.is_empty() {
                return Err("both Transfer-Encoding and Content-Length are given".into());
            }
            if self.minor == 0 {
                return Err("Transfer-Encoding in an HTTP/1.0 request".into());
            }
            let codings: Vec<String> = te
                .iter()
                .flat_map(|v| {
                    String::from_utf8_lossy(v)
                        .split(',')
                        .map(|c| c.trim().to_ascii_lowercase())
                        .collect::<Vec<_>>()
                })
                .collect();
            if codings != ["chunked"] {
                return Err(format!(
                    "Transfer-Encoding {:?} is not supported (only chunked)",
                    codings.join(", ")
                ));
            }
            return Ok(Framing::Chunked);
        }
        let mut length: Option<u64> = None;
        for value in lengths {
            for part in String::from_utf8_lossy(value).split(',') {
                let part = part.trim();
                let n = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                    part.parse::<u64>()
                        .map_err(|_| "Content-Length is too large".to_string())?
                } else {
                    return Err(format!("Content-Length {part:?} is not a number"));
                };
                if length.is_some_and(|l| l != n) {
                    return Err("differing Content-Length values".into());
                }
                length = Some(n);
            }
        }
        Ok(Framing::Length(length.unwrap_or(0)))
    }

    /// Removes the hop-by-hop headers and those the client's `Connection`
    /// header names, and asks for the connection to close after this
    /// request.
    pub(crate) fn make_single_request(&mut self) {
        let mut named: Vec<String> = HOP_BY_HOP.iter().map(|s| s.to_string()).collect();
        for value in self.values("connection") {
            for option in String::from_utf8_lossy(value).split(',') {
                let option = option.trim().to_ascii_lowercase();
                if !option.is_empty() && !NOT_REMOVABLE.contains(&option.as_str()) {
                    named.push(option);
                }
            }
        }
        self.headers
            .retain(|h| !named.iter().any(|n| h.name.eq_ignore_ascii_case(n)));
        self.headers.push(Header {
            name: "Connection".into(),
            value: b"close".to_vec(),
        });
    }

    /// The head as bytes to send.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(if self.minor == 0 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        for h in &self.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The rest of an `http://` or `https://` target after the scheme.
fn strip_scheme(target: &str) -> Option<&str> {
    for scheme in ["https://", "http://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn heads_parse_and_partial_heads_wait() {
        let (h, len) = parse(b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nBODY")
            .unwrap()
            .unwrap();
        assert_eq!((h.method.as_str(), h.path(), len), ("GET", "/a", 30));
        assert_eq!(parse(b"GET /a HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert!(matches!(
            parse(b"\x16\x03\x01 junk\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 1, b'a');
        assert_eq!(parse(&big), Err(HeadError::TooLarge));
    }

    #[test]
    fn absolute_targets_have_an_authority_and_a_path() {
        let h = head("GET HTTPS://Api.Example:443/x/y?q=1 HTTP/1.1\r\n\r\n");
        assert_eq!(h.target_authority(), Some("Api.Example:443"));
        assert_eq!(h.path(), "/x/y");
        assert_eq!(head("GET https://a.example?q HTTP/1.1\r\n\r\n").path(), "/");
        assert_eq!(head("GET /x HTTP/1.1\r\n\r\n").target_authority(), None);
    }

    #[test]
    fn framing_is_unambiguous_or_refused() {
        assert_eq!(
            head("GET / HTTP/1.1\r\n\r\n").framing(),
            Ok(Framing::Length(0))
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").framing(),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n").framing(),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").framing(),
            Ok(Framing::Chunked)
        );
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(head(bad).framing().is_err(), "{bad}");
        }
    }

    #[test]
    fn one_request_heads_drop_hop_by_hop_headers() {
        let mut h = head(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade, X-Hop, Content-Length\r\n\
             Keep-Alive: 5\r\nUpgrade: websocket\r\nX-Hop: 1\r\nProxy-Connection: x\r\n\
             Content-Length: 0\r\nAuthorization: Bearer t\r\n\r\n",
        );
        h.make_single_request();
        let text = String::from_utf8(h.to_bytes()).unwrap();
        assert_eq!(
            text,
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n"
        );
    }
}
