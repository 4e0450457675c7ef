//! Frames exchanged by moat and its runner over named pipes.
//!
//! In the elevated tier the command runs under a sandbox account, started by
//! a runner process that moat talks to over named pipes. A pipe carries a
//! byte stream, so messages are framed: a 4-byte little-endian length `L`, a
//! 1-byte kind, then `L - 1` bytes of payload. The length covers the kind so
//! that every frame has at least one byte and a zero length is always a
//! sign of a broken stream.
//!
//! Neither side trusts the other's bytes: lengths are bounded before
//! anything is buffered, and every parser here returns an error rather
//! than panicking.

use std::collections::VecDeque;
use std::fmt;

use crate::limits::Wanted;

/// The largest frame, kind byte plus payload (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// The most items a list in a [`SpawnRequest`] may hold.
pub const MAX_COUNT: usize = 65_536;

const LENGTH_BYTES: usize = 4;

/// The first byte of a [`SpawnRequest`] encoding: a runner from another
/// build of moat refuses the request instead of misreading it. Version 1
/// has no limits; a request without limits is still written as version 1,
/// so that a runner from before limits existed runs it, and one with limits
/// as [`SPAWN_VERSION_LIMITS`], which such a runner refuses rather than
/// run the command without them.
const SPAWN_VERSION: u8 = 1;

/// The encoding of a [`SpawnRequest`] with limits: version 1's fields, then
/// the limits ([`SpawnRequest`]).
const SPAWN_VERSION_LIMITS: u8 = 2;

/// The bits of the limits' flag byte, one per limit, in the order their
/// values follow it.
const LIMIT_TIMEOUT: u8 = 1;
const LIMIT_PROCESSES: u8 = 2;
const LIMIT_MEMORY: u8 = 4;
const LIMIT_CPU: u8 = 8;
const LIMIT_ALL: u8 = LIMIT_TIMEOUT | LIMIT_PROCESSES | LIMIT_MEMORY | LIMIT_CPU;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// moat → runner: start the command ([`SpawnRequest`]).
    Spawn = 1,
    /// moat → runner: bytes for the command's standard input.
    Stdin = 2,
    /// runner → moat: bytes the command wrote to standard output.
    Stdout = 3,
    /// runner → moat: bytes the command wrote to standard error.
    Stderr = 4,
    /// moat → runner: no more standard input.
    CloseStdin = 5,
    /// moat → runner: end the command.
    Terminate = 6,
    /// runner → moat: the command's exit code ([`exit_payload`]).
    Exit = 7,
    /// Either way: what went wrong, as text ([`error_payload`]).
    Error = 8,
    /// moat → runner: the terminal's new size ([`resize_payload`]), for
    /// the pseudoconsole; ignored for a command without one.
    Resize = 9,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 9] = [
        Kind::Spawn,
        Kind::Stdin,
        Kind::Stdout,
        Kind::Stderr,
        Kind::CloseStdin,
        Kind::Terminate,
        Kind::Exit,
        Kind::Error,
        Kind::Resize,
    ];

    /// The kind with this wire value, if any.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u8 == byte)
    }
}

/// Why bytes are not a valid frame or payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame declared length zero; it needs at least the kind byte.
    ZeroLength,
    /// A frame of this length (kind plus payload), or a string of this many
    /// bytes, is more than [`MAX_FRAME`].
    TooLarge(usize),
    /// A frame kind this build does not know.
    UnknownKind(u8),
    /// The data ended inside a frame or a payload field.
    Truncated,
    /// An exit payload of this many bytes instead of 4.
    BadExitLength(usize),
    /// This many bytes follow a complete spawn request.
    TrailingBytes(usize),
    /// A string in a spawn request is not UTF-8.
    InvalidUtf8,
    /// A list in a spawn request declares this many items, more than
    /// [`MAX_COUNT`].
    TooMany(usize),
    /// A spawn request's flag byte is neither 0 nor 1.
    BadBool(u8),
    /// A spawn request in an encoding this build does not know.
    UnsupportedVersion(u8),
    /// A spawn request's limit flags byte names no limit, or bits this
    /// build does not know.
    BadLimitFlags(u8),
    /// A resize payload of this many bytes instead of 4.
    BadResizeLength(usize),
    /// A resize to `(cols, rows)` with a zero side.
    ZeroSize(u16, u16),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::ZeroLength => write!(f, "frame with length zero (no kind byte)"),
            FrameError::TooLarge(len) => {
                write!(f, "frame or field of {len} bytes; the limit is {MAX_FRAME}")
            }
            FrameError::UnknownKind(kind) => write!(f, "unknown frame kind {kind}"),
            FrameError::Truncated => write!(f, "data ends in the middle of a frame or field"),
            FrameError::BadExitLength(len) => {
                write!(f, "exit frame payload of {len} bytes; expected 4")
            }
            FrameError::TrailingBytes(len) => {
                write!(f, "{len} unexpected bytes after the spawn request")
            }
            FrameError::InvalidUtf8 => write!(f, "spawn request string is not valid UTF-8"),
            FrameError::TooMany(count) => write!(
                f,
                "spawn request list of {count} items; the limit is {MAX_COUNT}"
            ),
            FrameError::BadBool(byte) => {
                write!(f, "spawn request flag byte {byte}; expected 0 or 1")
            }
            FrameError::UnsupportedVersion(version) => {
                write!(
                    f,
                    "spawn request encoding version {version}; expected {SPAWN_VERSION} or \
                     {SPAWN_VERSION_LIMITS} (a runner older than moat refuses version \
                     {SPAWN_VERSION_LIMITS}, which carries limits: rerun `moat setup` to update \
                     it)"
                )
            }
            FrameError::BadLimitFlags(flags) => write!(
                f,
                "spawn request limit flags {flags:#04x}; expected a nonzero combination of \
                 {LIMIT_ALL:#04x}"
            ),
            FrameError::BadResizeLength(len) => {
                write!(f, "resize frame payload of {len} bytes; expected 4")
            }
            FrameError::ZeroSize(cols, rows) => write!(
                f,
                "resize to {cols} columns and {rows} rows; both must be at least 1"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: Kind, payload: Vec<u8>) -> Frame {
        Frame { kind, payload }
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let len = self.payload.len().saturating_add(1);
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        let wire_len = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
        let mut out = Vec::with_capacity(LENGTH_BYTES + len);
        out.extend_from_slice(&wire_len.to_le_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.payload);
        Ok(out)
    }
}

/// Reassembles frames from a byte stream read in chunks of any size.
///
/// `push` decodes as far as the bytes go and queues the complete frames for
/// `next`, keeping only the unfinished frame's bytes: at most its length
/// field, kind byte and payload, under `MAX_FRAME + 5` bytes. The queue
/// holds no more than the caller pushed; a reader that pushes each read and
/// then drains `next` keeps it to one read's worth.
///
/// A bad header fails the decoder for good, since nothing after it can be
/// trusted to start on a frame boundary. Frames completed before the error
/// are still returned, then the error, again on every call.
#[derive(Debug, Default)]
pub struct Decoder {
    length_bytes: [u8; LENGTH_BYTES],
    /// How many of `length_bytes` have arrived.
    have_length: usize,
    /// The current frame's declared length, once all its length bytes are in.
    declared: usize,
    kind: Option<Kind>,
    payload: Vec<u8>,
    ready: VecDeque<Frame>,
    failed: Option<FrameError>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Takes the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() && self.failed.is_none() {
            if self.have_length < LENGTH_BYTES {
                let take = (LENGTH_BYTES - self.have_length).min(rest.len());
                let (head, tail) = rest.split_at(take);
                if let Some(slot) = self
                    .length_bytes
                    .get_mut(self.have_length..self.have_length + take)
                {
                    slot.copy_from_slice(head);
                }
                self.have_length += take;
                rest = tail;
                if self.have_length == LENGTH_BYTES {
                    self.start_frame();
                }
                continue;
            }
            match self.kind {
                None => {
                    if let Some((&byte, tail)) = rest.split_first() {
                        rest = tail;
                        match Kind::from_u8(byte) {
                            Some(kind) => {
                                self.kind = Some(kind);
                                // Exactly the declared size, so the buffer
                                // never grows past it.
                                self.payload.reserve_exact(self.declared - 1);
                            }
                            None => self.fail(FrameError::UnknownKind(byte)),
                        }
                    }
                }
                Some(_) => {
                    let missing = self.declared - 1 - self.payload.len();
                    let take = missing.min(rest.len());
                    let (head, tail) = rest.split_at(take);
                    self.payload.extend_from_slice(head);
                    rest = tail;
                }
            }
            self.complete_frame();
        }
    }

    /// The next complete frame, `None` if more bytes are needed.
    // Not `Iterator::next`: a failed stream must keep reporting its error,
    // which an iterator's `None` at the end could not say.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.ready.pop_front() {
            return Ok(Some(frame));
        }
        match &self.failed {
            Some(err) => Err(err.clone()),
            None => Ok(None),
        }
    }

    /// Checks the stream ended on a frame boundary; call it at end of
    /// stream. Complete frames not yet taken with `next` are no error.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.have_length > 0 {
            return Err(FrameError::Truncated);
        }
        Ok(())
    }

    /// Bytes held for the frame not yet complete.
    pub fn buffered(&self) -> usize {
        self.have_length + usize::from(self.kind.is_some()) + self.payload.len()
    }

    /// Checks the declared length as soon as it is known, before a byte of
    /// the payload is buffered.
    fn start_frame(&mut self) {
        let declared = usize::try_from(u32::from_le_bytes(self.length_bytes)).unwrap_or(usize::MAX);
        if declared == 0 {
            self.fail(FrameError::ZeroLength);
        } else if declared > MAX_FRAME {
            self.fail(FrameError::TooLarge(declared));
        } else {
            self.declared = declared;
        }
    }

    fn complete_frame(&mut self) {
        if let Some(kind) = self.kind {
            if self.payload.len() + 1 == self.declared {
                let payload = std::mem::take(&mut self.payload);
                self.ready.push_back(Frame { kind, payload });
                self.reset();
            }
        }
    }

    fn reset(&mut self) {
        self.have_length = 0;
        self.declared = 0;
        self.kind = None;
    }

    fn fail(&mut self, err: FrameError) {
        self.reset();
        self.payload = Vec::new();
        self.failed = Some(err);
    }
}

/// The payload of an [`Kind::Exit`] frame.
pub fn exit_payload(code: u32) -> Vec<u8> {
    code.to_le_bytes().to_vec()
}

/// The exit code in an [`Kind::Exit`] frame's payload.
pub fn parse_exit(payload: &[u8]) -> Result<u32, FrameError> {
    <[u8; 4]>::try_from(payload)
        .map(u32::from_le_bytes)
        .map_err(|_| FrameError::BadExitLength(payload.len()))
}

/// The payload of an [`Kind::Error`] frame. A message too long for one
/// frame is cut (at a character boundary) rather than refused, so that
/// reporting an error cannot itself fail.
pub fn error_payload(message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_FRAME - 1);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.as_bytes().get(..end).unwrap_or(&[]).to_vec()
}

/// The message in an [`Kind::Error`] frame's payload. The text is only
/// shown to people, so bytes that are not UTF-8 are replaced, not refused.
pub fn parse_error(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// The payload of a [`Kind::Resize`] frame: columns, then rows, each a
/// little-endian u16.
pub fn resize_payload(cols: u16, rows: u16) -> Vec<u8> {
    let mut out = cols.to_le_bytes().to_vec();
    out.extend_from_slice(&rows.to_le_bytes());
    out
}

/// The `(cols, rows)` in a [`Kind::Resize`] frame's payload; neither may be
/// 0 (`ResizePseudoConsole` refuses it).
pub fn parse_resize(payload: &[u8]) -> Result<(u16, u16), FrameError> {
    let bytes =
        <[u8; 4]>::try_from(payload).map_err(|_| FrameError::BadResizeLength(payload.len()))?;
    let cols = u16::from_le_bytes([bytes[0], bytes[1]]);
    let rows = u16::from_le_bytes([bytes[2], bytes[3]]);
    if cols == 0 || rows == 0 {
        return Err(FrameError::ZeroSize(cols, rows));
    }
    Ok((cols, rows))
}

/// What the runner is asked to start.
///
/// Encoded as a version byte, then the fields in order: each string as a
/// little-endian u32 byte length and UTF-8 bytes, each list as a
/// little-endian u32 item count and the items (an environment variable is
/// two strings), `pty` as one byte 0 or 1, `cols` and `rows` as
/// little-endian u16. With limits (version 2) a flags byte follows (bit 0
/// timeout, 1 processes, 2 memory, 3 cpu; never 0), then the value of each
/// limit set, in that order, as a little-endian u64 (milliseconds, a
/// count, bytes, thousandths of a CPU). Without limits the encoding is
/// version 1, which ends at `rows`. Every encoding decodes to one request
/// and back to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpawnRequest {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: String,
    pub env: Vec<(String, String)>,
    pub writable_roots: Vec<String>,
    pub capability_sids: Vec<String>,
    pub pty: bool,
    pub cols: u16,
    pub rows: u16,
    /// What the runner's job enforces (`crate::limits`); the runner checks
    /// the values, not moat's word for them.
    pub limits: Wanted,
}

/// A length that does not fit a u32 is written as `u32::MAX`, which no
/// decoder accepts: such a request could never fit in a frame anyway.
fn put_u32_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_strs(out: &mut Vec<u8>, items: &[String]) {
    put_u32_len(out, items.len());
    for item in items {
        put_str(out, item);
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.rest.len() {
            return Err(FrameError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        match self.take(1)? {
            [byte] => Ok(*byte),
            _ => Err(FrameError::Truncated),
        }
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        let bytes = <[u8; 2]>::try_from(self.take(2)?).map_err(|_| FrameError::Truncated)?;
        Ok(u16::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let bytes = <[u8; 8]>::try_from(self.take(8)?).map_err(|_| FrameError::Truncated)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn u32_len(&mut self) -> Result<usize, FrameError> {
        let bytes = <[u8; 4]>::try_from(self.take(4)?).map_err(|_| FrameError::Truncated)?;
        Ok(usize::try_from(u32::from_le_bytes(bytes)).unwrap_or(usize::MAX))
    }

    fn bool(&mut self) -> Result<bool, FrameError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(FrameError::BadBool(other)),
        }
    }

    fn count(&mut self) -> Result<usize, FrameError> {
        let count = self.u32_len()?;
        if count > MAX_COUNT {
            return Err(FrameError::TooMany(count));
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, FrameError> {
        let len = self.u32_len()?;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| FrameError::InvalidUtf8)
    }

    /// Items are collected one by one rather than preallocated from the
    /// count, so memory follows the bytes actually present.
    fn strings(&mut self) -> Result<Vec<String>, FrameError> {
        let count = self.count()?;
        let mut items = Vec::new();
        for _ in 0..count {
            items.push(self.string()?);
        }
        Ok(items)
    }
}

impl SpawnRequest {
    /// The payload of a [`Kind::Spawn`] frame.
    pub fn encode(&self) -> Vec<u8> {
        let limited = !self.limits.is_empty();
        let mut out = vec![if limited {
            SPAWN_VERSION_LIMITS
        } else {
            SPAWN_VERSION
        }];
        put_str(&mut out, &self.program);
        put_strs(&mut out, &self.args);
        put_str(&mut out, &self.cwd);
        put_u32_len(&mut out, self.env.len());
        for (name, value) in &self.env {
            put_str(&mut out, name);
            put_str(&mut out, value);
        }
        put_strs(&mut out, &self.writable_roots);
        put_strs(&mut out, &self.capability_sids);
        out.push(u8::from(self.pty));
        out.extend_from_slice(&self.cols.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        if limited {
            let l = &self.limits;
            let values = [
                (LIMIT_TIMEOUT, l.timeout_ms),
                (LIMIT_PROCESSES, l.processes),
                (LIMIT_MEMORY, l.memory),
                (LIMIT_CPU, l.cpu_millis),
            ];
            let flags = values
                .iter()
                .filter(|(_, v)| v.is_some())
                .fold(0u8, |acc, (bit, _)| acc | bit);
            out.push(flags);
            for value in values.iter().filter_map(|(_, v)| *v) {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out
    }

    /// Reads a [`Kind::Spawn`] frame's payload, which must hold exactly one
    /// request.
    pub fn decode(payload: &[u8]) -> Result<SpawnRequest, FrameError> {
        let mut r = Reader { rest: payload };
        let version = r.u8()?;
        if version != SPAWN_VERSION && version != SPAWN_VERSION_LIMITS {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let program = r.string()?;
        let args = r.strings()?;
        let cwd = r.string()?;
        let env_count = r.count()?;
        let mut env = Vec::new();
        for _ in 0..env_count {
            let name = r.string()?;
            let value = r.string()?;
            env.push((name, value));
        }
        let writable_roots = r.strings()?;
        let capability_sids = r.strings()?;
        let pty = r.bool()?;
        let cols = r.u16()?;
        let rows = r.u16()?;
        let mut limits = Wanted::default();
        if version == SPAWN_VERSION_LIMITS {
            let flags = r.u8()?;
            // No limit would be version 1; unknown bits are a newer moat's.
            if flags == 0 || flags & !LIMIT_ALL != 0 {
                return Err(FrameError::BadLimitFlags(flags));
            }
            let mut value = |bit: u8| -> Result<Option<u64>, FrameError> {
                if flags & bit == 0 {
                    Ok(None)
                } else {
                    r.u64().map(Some)
                }
            };
            limits.timeout_ms = value(LIMIT_TIMEOUT)?;
            limits.processes = value(LIMIT_PROCESSES)?;
            limits.memory = value(LIMIT_MEMORY)?;
            limits.cpu_millis = value(LIMIT_CPU)?;
        }
        if !r.rest.is_empty() {
            return Err(FrameError::TrailingBytes(r.rest.len()));
        }
        Ok(SpawnRequest {
            program,
            args,
            cwd,
            env,
            writable_roots,
            capability_sids,
            pty,
            cols,
            rows,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn drain(decoder: &mut Decoder) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next().unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn sample_frames() -> Vec<Frame> {
        vec![
            Frame::new(Kind::Spawn, SpawnRequest::default().encode()),
            Frame::new(Kind::Stdin, b"echo hi\r\n".to_vec()),
            Frame::new(Kind::CloseStdin, Vec::new()),
            Frame::new(Kind::Stdout, vec![0, 255, 13, 10]),
            Frame::new(Kind::Stderr, "é😀".as_bytes().to_vec()),
            Frame::new(Kind::Terminate, Vec::new()),
            Frame::new(Kind::Exit, exit_payload(3)),
            Frame::new(Kind::Error, error_payload("access denied")),
            Frame::new(Kind::Resize, resize_payload(132, 43)),
        ]
    }

    fn wire(frames: &[Frame]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.encode().unwrap()).collect()
    }

    fn sample_request() -> SpawnRequest {
        SpawnRequest {
            program: r"C:\Program Files\Git\cmd\git.exe".into(),
            args: vec![
                "git".into(),
                "commit".into(),
                "-m".into(),
                "é \"😀\"".into(),
                String::new(),
            ],
            cwd: r"C:\work\repo".into(),
            env: vec![
                ("=C:".into(), r"C:\work".into()),
                ("PATH".into(), r"C:\Windows;C:\Git".into()),
                ("EMPTY".into(), String::new()),
            ],
            writable_roots: vec![
                r"C:\work\repo".into(),
                r"C:\Users\me\AppData\Local\Temp".into(),
            ],
            capability_sids: vec!["S-1-5-21-1-2-3-4".into()],
            pty: true,
            cols: 120,
            rows: 40,
            limits: Wanted {
                timeout_ms: Some(90_000),
                processes: Some(64),
                memory: Some(1 << 33),
                cpu_millis: Some(1500),
            },
        }
    }

    #[test]
    fn kinds() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(10), None);
        assert_eq!(Kind::from_u8(255), None);
        assert_eq!(Kind::Spawn as u8, 1);
        assert_eq!(Kind::Error as u8, 8);
        assert_eq!(Kind::Resize as u8, 9);
    }

    #[test]
    fn encode_layout() {
        let frame = Frame::new(Kind::Stdout, b"hi".to_vec());
        assert_eq!(frame.encode().unwrap(), [3, 0, 0, 0, 3, b'h', b'i']);
        let empty = Frame::new(Kind::CloseStdin, Vec::new());
        assert_eq!(empty.encode().unwrap(), [1, 0, 0, 0, 5]);
    }

    #[test]
    fn encode_size_limit() {
        let largest = Frame::new(Kind::Stdin, vec![7; MAX_FRAME - 1]);
        let bytes = largest.encode().unwrap();
        assert_eq!(bytes.len(), MAX_FRAME + 4);
        assert_eq!(bytes[..4], (MAX_FRAME as u32).to_le_bytes());
        let over = Frame::new(Kind::Stdin, vec![7; MAX_FRAME]);
        assert_eq!(over.encode(), Err(FrameError::TooLarge(MAX_FRAME + 1)));
    }

    #[test]
    fn decode_all_at_once() {
        let frames = sample_frames();
        let mut decoder = Decoder::new();
        decoder.push(&wire(&frames));
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(drain(&mut decoder), frames);
        assert_eq!(decoder.next(), Ok(None));
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn decode_byte_by_byte() {
        let frames = sample_frames();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for byte in wire(&frames) {
            decoder.push(&[byte]);
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, frames);
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn decode_every_chunk_size() {
        let frames = sample_frames();
        let bytes = wire(&frames);
        for chunk in 1..=bytes.len() {
            let mut decoder = Decoder::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                decoder.push(piece);
                got.extend(drain(&mut decoder));
            }
            assert_eq!(got, frames, "chunk size {chunk}");
            assert_eq!(decoder.finish(), Ok(()));
        }
    }

    #[test]
    fn empty_push_is_harmless() {
        let mut decoder = Decoder::new();
        decoder.push(&[]);
        assert_eq!(decoder.next(), Ok(None));
        decoder.push(&[2, 0]);
        decoder.push(&[]);
        decoder.push(&[0, 0, 2, b'x']);
        assert_eq!(
            decoder.next(),
            Ok(Some(Frame::new(Kind::Stdin, b"x".to_vec())))
        );
    }

    #[test]
    fn zero_length_fails_for_good() {
        let mut decoder = Decoder::new();
        decoder.push(&[0, 0, 0, 0]);
        assert_eq!(decoder.next(), Err(FrameError::ZeroLength));
        // Valid bytes afterwards change nothing: the stream is out of sync.
        decoder.push(&Frame::new(Kind::Stdin, b"x".to_vec()).encode().unwrap());
        assert_eq!(decoder.next(), Err(FrameError::ZeroLength));
        assert_eq!(decoder.next(), Err(FrameError::ZeroLength));
        assert_eq!(decoder.finish(), Err(FrameError::ZeroLength));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn frames_before_an_error_come_first() {
        let good = Frame::new(Kind::Stdout, b"ok".to_vec());
        let mut bytes = good.encode().unwrap();
        bytes.extend([1, 0, 0, 0, 0]);
        bytes.extend(good.encode().unwrap());
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        assert_eq!(decoder.next(), Ok(Some(good)));
        assert_eq!(decoder.next(), Err(FrameError::UnknownKind(0)));
        assert_eq!(decoder.next(), Err(FrameError::UnknownKind(0)));
    }

    #[test]
    fn unknown_kind_is_caught_at_the_kind_byte() {
        for kind in [0u8, 10, 200, 255] {
            let mut decoder = Decoder::new();
            // The declared payload never arrives: the kind alone decides.
            decoder.push(&[100, 0, 0, 0, kind]);
            assert_eq!(decoder.next(), Err(FrameError::UnknownKind(kind)));
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn huge_length_is_refused_before_the_payload() {
        for declared in [MAX_FRAME as u32 + 1, u32::MAX] {
            let mut decoder = Decoder::new();
            decoder.push(&declared.to_le_bytes()[..3]);
            assert_eq!(decoder.next(), Ok(None));
            decoder.push(&declared.to_le_bytes()[3..]);
            assert_eq!(decoder.next(), Err(FrameError::TooLarge(declared as usize)));
            assert_eq!(decoder.buffered(), 0);
            assert_eq!(decoder.payload.capacity(), 0);
            // What follows is dropped, not buffered.
            decoder.push(&[1u8; 4096]);
            assert_eq!(decoder.buffered(), 0);
            assert_eq!(decoder.payload.capacity(), 0);
        }
    }

    #[test]
    fn buffer_stays_bounded_for_the_largest_frame() {
        let frame = Frame::new(Kind::Stdout, vec![0xab; MAX_FRAME - 1]);
        let bytes = frame.encode().unwrap();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(4093) {
            decoder.push(piece);
            assert!(decoder.buffered() <= MAX_FRAME + 5);
            assert!(LENGTH_BYTES + 1 + decoder.payload.capacity() <= MAX_FRAME + 5);
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, vec![frame]);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn finish_reports_truncation() {
        let bytes = Frame::new(Kind::Stdin, b"abc".to_vec()).encode().unwrap();
        for cut in 1..bytes.len() {
            let mut decoder = Decoder::new();
            decoder.push(&bytes[..cut]);
            assert_eq!(decoder.next(), Ok(None), "cut at {cut}");
            assert_eq!(decoder.buffered(), cut);
            assert_eq!(decoder.finish(), Err(FrameError::Truncated), "cut at {cut}");
        }
        let mut decoder = Decoder::new();
        decoder.push(&bytes);
        // Undrained complete frames are not truncation.
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn decoder_survives_noise() {
        // No input may panic the decoder; whatever it returns, the next
        // call agrees with it.
        let mut state = 0x0123_4567_89ab_cdefu64;
        for _ in 0..2_000 {
            let mut decoder = Decoder::new();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let len = (state % 16) as usize;
                let noise: Vec<u8> = (0..len).map(|i| (state >> (i * 4)) as u8 % 12).collect();
                decoder.push(&noise);
                while let Ok(Some(frame)) = decoder.next() {
                    assert!(frame.payload.len() < MAX_FRAME);
                }
                assert!(decoder.buffered() <= MAX_FRAME + 5);
            }
            let _ = decoder.finish();
        }
    }

    #[test]
    fn exit_payloads() {
        for code in [0u32, 1, 259, 0xc000_0005, u32::MAX] {
            assert_eq!(parse_exit(&exit_payload(code)), Ok(code));
        }
        assert_eq!(exit_payload(0x0403_0201), [1, 2, 3, 4]);
        assert_eq!(parse_exit(&[]), Err(FrameError::BadExitLength(0)));
        assert_eq!(parse_exit(&[1, 2, 3]), Err(FrameError::BadExitLength(3)));
        assert_eq!(
            parse_exit(&[1, 2, 3, 4, 5]),
            Err(FrameError::BadExitLength(5))
        );
    }

    #[test]
    fn error_payloads() {
        assert_eq!(
            parse_error(&error_payload("no such file: é")),
            "no such file: é"
        );
        assert_eq!(parse_error(b"bad \xff byte"), "bad \u{fffd} byte");
        assert_eq!(parse_error(&[]), "");

        // Cut to fit a frame, never inside a character.
        let long = format!("a{}", "é".repeat(MAX_FRAME / 2));
        let payload = error_payload(&long);
        assert_eq!(payload.len(), MAX_FRAME - 1);
        assert!(std::str::from_utf8(&payload).is_ok());
        assert!(Frame::new(Kind::Error, payload).encode().is_ok());
        let long = "é".repeat(MAX_FRAME / 2);
        let payload = error_payload(&long);
        assert_eq!(payload.len(), MAX_FRAME - 2);
        assert!(std::str::from_utf8(&payload).is_ok());
    }

    #[test]
    fn spawn_round_trip() {
        for request in [sample_request(), SpawnRequest::default()] {
            let bytes = request.encode();
            assert_eq!(SpawnRequest::decode(&bytes), Ok(request.clone()));
            // Through a frame and the decoder too.
            let mut decoder = Decoder::new();
            decoder.push(&Frame::new(Kind::Spawn, bytes).encode().unwrap());
            let frame = decoder.next().unwrap().unwrap();
            assert_eq!(frame.kind, Kind::Spawn);
            assert_eq!(SpawnRequest::decode(&frame.payload), Ok(request));
        }
    }

    #[test]
    fn spawn_default_layout() {
        let mut want = vec![SPAWN_VERSION];
        // program, args, cwd, env, writable_roots, capability_sids
        want.extend([0u8; 24]);
        want.extend([0, 0, 0, 0, 0]);
        assert_eq!(SpawnRequest::default().encode(), want);
    }

    #[test]
    fn spawn_with_limits_layout() {
        // Only some limits: the flags say which values follow, in order.
        let req = SpawnRequest {
            limits: Wanted {
                timeout_ms: Some(5_000),
                memory: Some(0x0102_0304_0506_0708),
                ..Wanted::default()
            },
            ..SpawnRequest::default()
        };
        let mut want = vec![SPAWN_VERSION_LIMITS];
        want.extend([0u8; 24]);
        want.extend([0, 0, 0, 0, 0]);
        want.push(LIMIT_TIMEOUT | LIMIT_MEMORY);
        want.extend(5_000u64.to_le_bytes());
        want.extend([8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(req.encode(), want);
        assert_eq!(SpawnRequest::decode(&want), Ok(req));
    }

    #[test]
    fn spawn_without_limits_is_version_1() {
        // What a runner from before limits reads, byte for byte, and what
        // such a moat sends decodes with no limits.
        let mut req = sample_request();
        req.limits = Wanted::default();
        let bytes = req.encode();
        assert_eq!(bytes[0], SPAWN_VERSION);
        let with = sample_request().encode();
        assert_eq!(with[0], SPAWN_VERSION_LIMITS);
        assert_eq!(with[1..bytes.len()], bytes[1..]);
        assert_eq!(with.len(), bytes.len() + 1 + 4 * 8);
        assert_eq!(
            SpawnRequest::decode(&bytes).unwrap().limits,
            Wanted::default()
        );
    }

    #[test]
    fn spawn_limits_malformed() {
        let mut base = SpawnRequest::default().encode();
        base[0] = SPAWN_VERSION_LIMITS;
        // Version 2 must say which limits follow.
        assert_eq!(SpawnRequest::decode(&base), Err(FrameError::Truncated));
        for flags in [0u8, 16, 0x80, 0xff] {
            let mut bytes = base.clone();
            bytes.push(flags);
            bytes.extend([0u8; 32]);
            assert_eq!(
                SpawnRequest::decode(&bytes),
                Err(FrameError::BadLimitFlags(flags)),
                "{flags:#x}"
            );
        }
        // A value cut short, and a value too many.
        let mut bytes = base.clone();
        bytes.push(LIMIT_CPU | LIMIT_PROCESSES);
        bytes.extend([0u8; 15]);
        assert_eq!(SpawnRequest::decode(&bytes), Err(FrameError::Truncated));
        bytes.push(0);
        let decoded = SpawnRequest::decode(&bytes).unwrap();
        assert_eq!(decoded.limits.processes, Some(0));
        assert_eq!(decoded.limits.cpu_millis, Some(0));
        bytes.extend([0u8; 8]);
        assert_eq!(
            SpawnRequest::decode(&bytes),
            Err(FrameError::TrailingBytes(8))
        );
    }

    #[test]
    fn resize_payloads() {
        for (cols, rows) in [(1u16, 1u16), (80, 24), (u16::MAX, u16::MAX)] {
            assert_eq!(parse_resize(&resize_payload(cols, rows)), Ok((cols, rows)));
        }
        assert_eq!(resize_payload(0x0102, 0x0304), [2, 1, 4, 3]);
        for bad in [&[][..], &[1, 0, 1], &[1, 0, 1, 0, 0]] {
            assert_eq!(
                parse_resize(bad),
                Err(FrameError::BadResizeLength(bad.len()))
            );
        }
        assert_eq!(
            parse_resize(&resize_payload(0, 24)),
            Err(FrameError::ZeroSize(0, 24))
        );
        assert_eq!(
            parse_resize(&resize_payload(80, 0)),
            Err(FrameError::ZeroSize(80, 0))
        );
    }

    #[test]
    fn spawn_every_truncation_fails() {
        let bytes = sample_request().encode();
        for cut in 0..bytes.len() {
            assert_eq!(
                SpawnRequest::decode(&bytes[..cut]),
                Err(FrameError::Truncated),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn spawn_trailing_bytes() {
        let mut bytes = sample_request().encode();
        bytes.push(0);
        assert_eq!(
            SpawnRequest::decode(&bytes),
            Err(FrameError::TrailingBytes(1))
        );
        bytes.extend([1, 2, 3]);
        assert_eq!(
            SpawnRequest::decode(&bytes),
            Err(FrameError::TrailingBytes(4))
        );
    }

    /// A request whose program is `program` bytes, then empty fields.
    fn with_program(program: &[u8]) -> Vec<u8> {
        let mut bytes = vec![SPAWN_VERSION];
        bytes.extend((program.len() as u32).to_le_bytes());
        bytes.extend(program);
        bytes.extend([0u8; 20]);
        bytes.extend([0, 0, 0, 0, 0]);
        bytes
    }

    #[test]
    fn spawn_malformed() {
        assert!(SpawnRequest::decode(&with_program(b"ok")).is_ok());
        assert_eq!(
            SpawnRequest::decode(&with_program(b"\xc3(")),
            Err(FrameError::InvalidUtf8)
        );

        let mut bad_version = SpawnRequest::default().encode();
        for version in [0u8, 3, 255] {
            bad_version[0] = version;
            assert_eq!(
                SpawnRequest::decode(&bad_version),
                Err(FrameError::UnsupportedVersion(version))
            );
        }

        let mut bad_bool = SpawnRequest::default().encode();
        let at = bad_bool.len() - 5;
        bad_bool[at] = 2;
        assert_eq!(SpawnRequest::decode(&bad_bool), Err(FrameError::BadBool(2)));

        // A string longer than a frame is refused from its length alone.
        let mut huge_string = vec![SPAWN_VERSION];
        huge_string.extend((MAX_FRAME as u32 + 1).to_le_bytes());
        assert_eq!(
            SpawnRequest::decode(&huge_string),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        let mut max_string = vec![SPAWN_VERSION];
        max_string.extend((MAX_FRAME as u32).to_le_bytes());
        assert_eq!(
            SpawnRequest::decode(&max_string),
            Err(FrameError::Truncated)
        );

        // Counts: the limit itself is fine, one more is refused before any
        // item is read.
        let mut at_limit = vec![SPAWN_VERSION, 0, 0, 0, 0];
        at_limit.extend((MAX_COUNT as u32).to_le_bytes());
        at_limit.extend(vec![0u8; 4 * MAX_COUNT]);
        at_limit.extend([0u8; 16]);
        at_limit.extend([0, 0, 0, 0, 0]);
        assert_eq!(
            SpawnRequest::decode(&at_limit).unwrap().args.len(),
            MAX_COUNT
        );
        let mut over = vec![SPAWN_VERSION, 0, 0, 0, 0];
        over.extend((MAX_COUNT as u32 + 1).to_le_bytes());
        assert_eq!(
            SpawnRequest::decode(&over),
            Err(FrameError::TooMany(MAX_COUNT + 1))
        );
        let mut env_over = vec![SPAWN_VERSION];
        env_over.extend([0u8; 12]);
        env_over.extend(u32::MAX.to_le_bytes());
        assert_eq!(
            SpawnRequest::decode(&env_over),
            Err(FrameError::TooMany(u32::MAX as usize))
        );
        assert_eq!(SpawnRequest::decode(&[]), Err(FrameError::Truncated));
    }

    #[test]
    fn spawn_mutations_never_panic() {
        // Any accepted input re-encodes to itself: the encoding is canonical.
        let valid = sample_request().encode();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..1 + state % 4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % bytes.len() as u64) as usize;
                bytes[at] = (state >> 32) as u8;
            }
            if let Ok(request) = SpawnRequest::decode(&bytes) {
                assert_eq!(request.encode(), bytes);
            }
        }
    }

    #[test]
    fn display_names_the_problem() {
        assert!(FrameError::UnknownKind(42).to_string().contains("42"));
        assert!(FrameError::TooLarge(5_000_000)
            .to_string()
            .contains("5000000"));
        assert!(FrameError::TooMany(70_000).to_string().contains("70000"));
        assert!(FrameError::BadExitLength(3).to_string().contains('3'));
        assert!(FrameError::BadResizeLength(7).to_string().contains('7'));
        assert!(FrameError::ZeroSize(0, 24).to_string().contains("24 rows"));
        assert!(FrameError::BadLimitFlags(0x40).to_string().contains("0x40"));
        assert!(FrameError::UnsupportedVersion(2)
            .to_string()
            .contains("moat setup"));
        for err in [
            FrameError::ZeroLength,
            FrameError::Truncated,
            FrameError::TrailingBytes(1),
            FrameError::InvalidUtf8,
            FrameError::BadBool(2),
            FrameError::UnsupportedVersion(9),
        ] {
            assert!(!err.to_string().is_empty());
        }
    }
}
