//! Where a request's body ends, so nothing after it reaches the upstream.
//!
//! The broker forwards exactly one request per connection. Bytes a client
//! sends after the body (a pipelined second request, which would bypass
//! the request rules and the placeholder checks) are dropped, even though
//! the forwarded head says `Connection: close`.

/// How the body of a request is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length`, or no body (0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Counts a body through, byte by byte for chunked ones.
#[derive(Debug)]
pub(crate) struct BodyLimit {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many more bytes of a `Content-Length` body.
    Left(u64),
    /// Reading a chunk size: its value and how many hex digits so far.
    Size(u64, u8),
    /// A chunk extension, up to the end of the line.
    Extension(u64),
    /// The LF after a chunk size line.
    SizeLf(u64),
    /// This many more bytes of chunk data.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// A trailer line, and whether it has any byte yet.
    Trailer(bool),
    /// The LF ending a trailer line, and whether that line was empty.
    TrailerLf(bool),
    /// The body is complete.
    Done,
    /// Malformed chunked framing: forward nothing more.
    Broken,
}

/// Chunk sizes are at most 16 hex digits (a u64).
const MAX_SIZE_DIGITS: u8 = 16;

impl BodyLimit {
    /// A counter for a body framed by `framing`.
    pub(crate) fn new(framing: Framing) -> BodyLimit {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Left(n),
            Framing::Chunked => State::Size(0, 0),
        };
        BodyLimit { state }
    }

    /// Whether the body is complete (or its framing broken).
    #[cfg(test)]
    pub(crate) fn finished(&self) -> bool {
        matches!(self.state, State::Done | State::Broken)
    }

    /// How many leading bytes of `data` still belong to the body.
    pub(crate) fn take(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Done | State::Broken => break,
                State::Left(n) | State::Data(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(data.len() - i);
                    i += k;
                    let left = n - k as u64;
                    self.state = match (self.state, left) {
                        (State::Left(_), 0) => State::Done,
                        (State::Left(_), l) => State::Left(l),
                        (_, 0) => State::DataCr,
                        (_, l) => State::Data(l),
                    };
                }
                _ => {
                    self.state = self.step(data[i]);
                    if self.state == State::Broken {
                        break;
                    }
                    i += 1;
                }
            }
        }
        i
    }

    /// The state after one framing byte `b` of a chunked body.
    fn step(&self, b: u8) -> State {
        match (self.state, b) {
            (State::Size(v, d), b) if b.is_ascii_hexdigit() && d < MAX_SIZE_DIGITS => {
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                State::Size(v << 4 | digit, d + 1)
            }
            (State::Size(v, d), b';' | b' ' | b'\t') if d > 0 => State::Extension(v),
            (State::Size(v, d), b'\r') if d > 0 => State::SizeLf(v),
            (State::Extension(v), b'\r') => State::SizeLf(v),
            (State::Extension(v), b) if b != b'\n' => State::Extension(v),
            (State::SizeLf(0), b'\n') => State::Trailer(false),
            (State::SizeLf(v), b'\n') => State::Data(v),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size(0, 0),
            (State::Trailer(any), b'\r') => State::TrailerLf(!any),
            (State::Trailer(_), b) if b != b'\n' => State::Trailer(true),
            (State::TrailerLf(true), b'\n') => State::Done,
            (State::TrailerLf(false), b'\n') => State::Trailer(false),
            _ => State::Broken,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn content_length_bodies_end() {
        let mut b = BodyLimit::new(Framing::Length(5));
        assert_eq!(b.take(b"abc"), 3);
        assert_eq!(b.take(b"deGET / HTTP/1.1\r\n"), 2);
        assert!(b.finished());
        assert_eq!(b.take(b"more"), 0);
        assert!(BodyLimit::new(Framing::Length(0)).finished());
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut extra = body.to_vec();
        extra.extend_from_slice(b"GET /smuggled HTTP/1.1\r\n\r\n");
        // All at once and byte by byte.
        let mut b = BodyLimit::new(Framing::Chunked);
        assert_eq!(b.take(&extra), body.len());
        assert!(b.finished());
        let mut b = BodyLimit::new(Framing::Chunked);
        let mut taken = 0;
        for byte in &extra {
            taken += b.take(std::slice::from_ref(byte));
        }
        assert_eq!(taken, body.len());
        let mut b = BodyLimit::new(Framing::Chunked);
        assert_eq!(b.take(b"0\r\n\r\nGET"), 5);
    }

    #[test]
    fn malformed_chunked_bodies_stop() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\r\nWikiX",
            b"11111111111111111\r\n",
            b"4\nWiki",
        ] {
            let mut b = BodyLimit::new(Framing::Chunked);
            let n = b.take(bad);
            assert!(b.finished() && n < bad.len(), "{bad:?}");
        }
    }
}
