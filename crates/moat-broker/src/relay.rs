//! Relaying the rest of a connection between two TLS sessions, after the
//! request head: the body up, the response down, one thread each way.
//!
//! Each side's rustls connection sits behind a mutex that is held only to
//! move bytes in or out of it, never during socket I/O, so a side blocked
//! writing to its peer cannot stall the other direction. A second mutex per
//! side orders socket writes: records are written in the order rustls made
//! them, since the lock is taken before the connection's lock is released.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustls::Connection;

use crate::body::BodyLimit;

/// Socket reads wake at least this often to check the shared idle clock.
const TICK: Duration = Duration::from_secs(5);

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Puts placeholders back in place of the secrets' values in a stream (a
/// response): a server that echoes a request's headers (an error page, a
/// debugging endpoint) would otherwise hand the value to the sandbox. A
/// placeholder is as long as its value, so the stream's length and framing
/// stay as they were; the longest value but one byte is held back at each
/// step, so a value split across reads is still found. Values the server
/// sends encoded (compressed, base64) are not found.
pub(crate) struct Mask {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    held: Vec<u8>,
    keep: usize,
}

impl Mask {
    /// Masks each `(value, placeholder)` of the same length.
    pub(crate) fn new(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Mask {
        let pairs: Vec<_> = pairs
            .into_iter()
            .filter(|(v, p)| !v.is_empty() && v.len() == p.len())
            .collect();
        let keep = pairs.iter().map(|(v, _)| v.len() - 1).max().unwrap_or(0);
        Mask {
            pairs,
            held: Vec::new(),
            keep,
        }
    }

    /// Takes `data`; returns what may be sent now, masked.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(data);
        for (value, placeholder) in &self.pairs {
            let mut at = 0;
            while let Some(i) = find(&self.held[at..], value) {
                let start = at + i;
                self.held[start..start + value.len()].copy_from_slice(placeholder);
                at = start + value.len();
            }
        }
        let cut = self.held.len().saturating_sub(self.keep);
        self.held.drain(..cut).collect()
    }

    /// What is still held, at the end of the stream.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One end of the relay: a TLS session and its socket.
pub(crate) struct End {
    conn: Mutex<Connection>,
    sock: TcpStream,
    send: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl End {
    pub(crate) fn new(conn: Connection, sock: TcpStream) -> End {
        End {
            conn: Mutex::new(conn),
            sock,
            send: Mutex::new(()),
        }
    }

    /// Feeds ciphertext from the socket; appends the plaintext to `plain`.
    /// Returns whether the peer has closed its side.
    fn receive(&self, mut data: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
        let mut conn = lock(&self.conn);
        let mut closed = false;
        while !data.is_empty() {
            if conn.read_tls(&mut data)? == 0 {
                break;
            }
            let state = match conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // Send the alert rustls queued, then give up.
                    let _ = self.flush(conn);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            closed |= drain(&mut conn, plain)?;
            closed |= state.peer_has_closed();
        }
        self.flush(conn)?;
        Ok(closed)
    }

    /// Encrypts `plain` and sends it.
    pub(crate) fn send_plain(&self, mut plain: &[u8]) -> io::Result<()> {
        while !plain.is_empty() {
            let mut conn = lock(&self.conn);
            let n = conn.writer().write(plain)?;
            if n == 0 && !conn.wants_write() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS session refused data",
                ));
            }
            plain = &plain[n..];
            self.flush(conn)?;
        }
        Ok(())
    }

    /// Writes what rustls has to send; releases the connection's lock
    /// before the socket write (see the module doc).
    fn flush(&self, mut conn: MutexGuard<'_, Connection>) -> io::Result<()> {
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        if out.is_empty() {
            return Ok(());
        }
        let _order = lock(&self.send);
        drop(conn);
        (&self.sock).write_all(&out)
    }

    /// Sends close_notify (best effort) and shuts the socket down, which
    /// also wakes a thread blocked reading it.
    pub(crate) fn close(&self) {
        let mut conn = lock(&self.conn);
        conn.send_close_notify();
        let _ = self.flush(conn);
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Shuts the socket down without a TLS goodbye.
    pub(crate) fn abort(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Moves available plaintext out of `conn`; true when the peer closed.
fn drain(conn: &mut Connection, plain: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => plain.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// When either direction last moved a byte.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let now = self.start.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// How one direction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The sender closed (EOF or close_notify).
    Closed,
    /// Nothing moved either way for the idle limit.
    Idle,
    /// A socket or TLS error.
    Error(String),
}

/// Copies plaintext from `from` to `to` until `from` closes, both are idle
/// for `idle`, or an error. With a `limit`, only the body's bytes are
/// forwarded and later ones are read and dropped. Returns the bytes
/// forwarded.
pub(crate) fn pump(
    from: &End,
    to: &End,
    mut limit: Option<&mut BodyLimit>,
    mut mask: Option<&mut Mask>,
    activity: &Activity,
    idle: Duration,
) -> (u64, Ended) {
    let (moved, ended) = pump_masked(from, to, &mut limit, &mut mask, activity, idle);
    // What the mask held back can be no value any more.
    if let Some(rest) = mask.map(Mask::finish).filter(|r| !r.is_empty()) {
        if to.send_plain(&rest).is_ok() {
            return (moved + rest.len() as u64, ended);
        }
    }
    (moved, ended)
}

fn pump_masked(
    from: &End,
    to: &End,
    limit: &mut Option<&mut BodyLimit>,
    mask: &mut Option<&mut Mask>,
    activity: &Activity,
    idle: Duration,
) -> (u64, Ended) {
    let _ = from.sock.set_read_timeout(Some(idle.min(TICK)));
    let mut buf = vec![0u8; READ_CHUNK];
    let mut moved = 0u64;
    loop {
        let n = match (&from.sock).read(&mut buf) {
            Ok(0) => return (moved, Ended::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if activity.idle() >= idle {
                    return (moved, Ended::Idle);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (moved, Ended::Error(e.to_string())),
        };
        activity.touch();
        let mut plain = Vec::new();
        let closed = match from.receive(&buf[..n], &mut plain) {
            Ok(closed) => closed,
            Err(e) => return (moved, Ended::Error(e.to_string())),
        };
        let keep = match limit.as_deref_mut() {
            Some(limit) => limit.take(&plain),
            None => plain.len(),
        };
        plain.truncate(keep);
        if let Some(mask) = mask.as_deref_mut() {
            plain = mask.feed(&plain);
        }
        if !plain.is_empty() {
            if let Err(e) = to.send_plain(&plain) {
                return (moved, Ended::Error(e.to_string()));
            }
            moved += plain.len() as u64;
            activity.touch();
        }
        if closed {
            return (moved, Ended::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_become_placeholders_even_split_across_reads() {
        let pairs = vec![(b"ghp_REAL0123".to_vec(), b"ghp_fake9876".to_vec())];
        let text = b"echo: Bearer ghp_REAL0123, again ghp_REAL0123 and ghp_REAL012 (cut)";
        for step in [1, 3, 7, 64] {
            let mut mask = Mask::new(pairs.clone());
            let mut out = Vec::new();
            for chunk in text.chunks(step) {
                out.extend(mask.feed(chunk));
            }
            out.extend(mask.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "echo: Bearer ghp_fake9876, again ghp_fake9876 and ghp_REAL012 (cut)",
                "reads of {step} bytes"
            );
        }
    }

    #[test]
    fn pairs_of_other_lengths_are_left_alone() {
        let mut mask = Mask::new(vec![(b"abc".to_vec(), b"de".to_vec())]);
        assert_eq!(mask.feed(b"xabcx"), b"xabcx".to_vec());
        assert!(mask.finish().is_empty());
    }
}
