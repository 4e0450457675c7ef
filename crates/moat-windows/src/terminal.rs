//! moat's own terminal during a `--pty` run, decided before any Windows
//! call: the console modes that make it a raw terminal for the command's
//! pseudoconsole, the window size read from the screen buffer, and when a
//! size change is worth telling the pseudoconsole about. `sys::console`
//! makes the calls.
//!
//! While the command runs on a pseudoconsole, moat's console only carries
//! bytes: keys go to the command as they are typed (no line editing, no
//! echo, Ctrl+C as the byte 0x03 rather than a signal to moat), as VT
//! sequences for arrows and function keys, and the pseudoconsole's output
//! (VT sequences) is drawn by moat's console. The modes moat found are put
//! back when the run ends.
//!
//! In raw mode moat reads its console itself (`ReadConsoleW`, through
//! [`Utf16Decoder`]) rather than through Rust's standard input, which
//! takes a Ctrl+Z at the end of a read for the end of input: in raw mode
//! that is a key for the command (suspend, undo), not the end.

use std::time::Duration;

/// How often moat looks at its console's size while the command runs.
pub const RESIZE_POLL: Duration = Duration::from_millis(250);

// The console mode bits (Windows' `consoleapi.h`), here so that the mode
// arithmetic is tested on any system; `sys::console` checks at compile
// time that they are Windows' own.

/// Input: Ctrl+C is a signal and some keys are handled by the console.
pub const ENABLE_PROCESSED_INPUT: u32 = 0x0001;
/// Input: reads return whole lines.
pub const ENABLE_LINE_INPUT: u32 = 0x0002;
/// Input: what is typed is echoed.
pub const ENABLE_ECHO_INPUT: u32 = 0x0004;
/// Input: keys arrive as VT sequences.
pub const ENABLE_VIRTUAL_TERMINAL_INPUT: u32 = 0x0200;
/// Output: control characters are acted on.
pub const ENABLE_PROCESSED_OUTPUT: u32 = 0x0001;
/// Output: VT sequences are acted on.
pub const ENABLE_VIRTUAL_TERMINAL_PROCESSING: u32 = 0x0004;

/// moat's console input mode for a pseudoconsole run, from the mode it
/// had: no line input, no echo, no processed input (so Ctrl+C reaches the
/// command), VT input on; the other bits (mouse, quick edit, ...) as they
/// were.
pub fn raw_input_mode(saved: u32) -> u32 {
    (saved & !(ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT | ENABLE_PROCESSED_INPUT))
        | ENABLE_VIRTUAL_TERMINAL_INPUT
}

/// moat's console output mode for a pseudoconsole run, from the mode it
/// had: VT processing on, with the processed output it needs.
pub fn vt_output_mode(saved: u32) -> u32 {
    saved | ENABLE_PROCESSED_OUTPUT | ENABLE_VIRTUAL_TERMINAL_PROCESSING
}

/// `(cols, rows)` of a console window whose screen-buffer rectangle is
/// `left..=right` by `top..=bottom` (`srWindow`), or `None` when that is
/// no window (empty, inverted, or larger than a pseudoconsole can be).
pub fn window_size(left: i16, top: i16, right: i16, bottom: i16) -> Option<(u16, u16)> {
    let cols = i32::from(right) - i32::from(left) + 1;
    let rows = i32::from(bottom) - i32::from(top) + 1;
    let fits = |n: i32| n >= 1 && n <= i32::from(i16::MAX);
    if !fits(cols) || !fits(rows) {
        return None;
    }
    Some((u16::try_from(cols).ok()?, u16::try_from(rows).ok()?))
}

/// Decides when the pseudoconsole needs a new size: each poll hands it
/// the console's size now, and it answers with the size to send when that
/// differs from the last one sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeWatch {
    last: (u16, u16),
}

impl SizeWatch {
    /// Watching from the size the pseudoconsole was made with.
    pub fn new(initial: (u16, u16)) -> SizeWatch {
        SizeWatch { last: initial }
    }

    /// The size to resize to, if any: `now` is `None` when the console's
    /// size could not be read (moat's output is not a console, say), which
    /// changes nothing; a size with a zero side is no size and changes
    /// nothing either.
    pub fn changed(&mut self, now: Option<(u16, u16)>) -> Option<(u16, u16)> {
        let now = now?;
        if now.0 == 0 || now.1 == 0 || now == self.last {
            return None;
        }
        self.last = now;
        Some(now)
    }

    /// The last size sent (or the first).
    pub fn last(&self) -> (u16, u16) {
        self.last
    }
}

/// UTF-16 from the console as UTF-8 for the command, across reads: a
/// surrogate pair split between two reads is joined, and an unpaired
/// surrogate becomes U+FFFD rather than an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf16Decoder {
    /// A high surrogate that ended the last read.
    high: Option<u16>,
}

impl Utf16Decoder {
    pub fn new() -> Utf16Decoder {
        Utf16Decoder::default()
    }

    /// The UTF-8 of `units`, after what the last call held back; a high
    /// surrogate at the end is held back for the next call.
    pub fn push(&mut self, units: &[u16]) -> Vec<u8> {
        let mut all: Vec<u16> = Vec::with_capacity(units.len() + 1);
        all.extend(self.high.take());
        all.extend_from_slice(units);
        if let Some(&last) = all.last() {
            if (0xd800..0xdc00).contains(&last) {
                self.high = all.pop();
            }
        }
        let text: String = char::decode_utf16(all)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str) -> Vec<u16> {
        text.encode_utf16().collect()
    }

    #[test]
    fn console_input_becomes_utf8() {
        let mut d = Utf16Decoder::new();
        // Control characters pass as they are: Ctrl+C, Ctrl+Z, escape.
        assert_eq!(
            d.push(&[0x03, 0x1a, 0x1b, b'[' as u16, b'A' as u16]),
            b"\x03\x1a\x1b[A"
        );
        assert_eq!(d.push(&utf16("é")), "é".as_bytes());
        assert_eq!(d.push(&[]), b"");
        // A pair split across reads is joined.
        let pair = utf16("😀");
        assert_eq!(pair.len(), 2);
        assert_eq!(d.push(&[b'a' as u16, pair[0]]), b"a");
        assert_eq!(d.push(&[pair[1], b'b' as u16]), "😀b".as_bytes());
        // Unpaired halves are replaced, never an error.
        assert_eq!(d.push(&[pair[1]]), "\u{fffd}".as_bytes());
        assert_eq!(d.push(&[pair[0], pair[0]]), "\u{fffd}".as_bytes());
        assert_eq!(d.push(&[b'x' as u16]), "\u{fffd}x".as_bytes());
    }

    #[test]
    fn raw_input_clears_line_echo_and_processing() {
        // The default console input mode: processed, line, echo, insert,
        // quick edit, extended flags, mouse.
        let cooked = 0x01f7;
        let raw = raw_input_mode(cooked);
        assert_eq!(raw & ENABLE_LINE_INPUT, 0);
        assert_eq!(raw & ENABLE_ECHO_INPUT, 0);
        assert_eq!(raw & ENABLE_PROCESSED_INPUT, 0);
        assert_ne!(raw & ENABLE_VIRTUAL_TERMINAL_INPUT, 0);
        // Everything else as it was.
        assert_eq!(raw, 0x01f0 | ENABLE_VIRTUAL_TERMINAL_INPUT);
        // Already raw: unchanged.
        assert_eq!(raw_input_mode(raw), raw);
        assert_eq!(raw_input_mode(0), ENABLE_VIRTUAL_TERMINAL_INPUT);
    }

    #[test]
    fn vt_output_keeps_what_was_there() {
        // Processed output and wrap at end of line.
        assert_eq!(vt_output_mode(0x0003), 0x0007);
        assert_eq!(vt_output_mode(0), 0x0005);
        assert_eq!(vt_output_mode(0x0008), 0x000d);
    }

    #[test]
    fn window_sizes() {
        assert_eq!(window_size(0, 0, 79, 24), Some((80, 25)));
        assert_eq!(window_size(10, 300, 129, 339), Some((120, 40)));
        assert_eq!(window_size(0, 0, 0, 0), Some((1, 1)));
        // Empty or inverted.
        assert_eq!(window_size(5, 0, 3, 24), None);
        assert_eq!(window_size(0, 5, 79, 3), None);
        // Wider than an i16 (a pseudoconsole's COORD) holds; no overflow.
        assert_eq!(window_size(i16::MIN, 0, i16::MAX, 24), None);
        assert_eq!(
            window_size(0, 0, i16::MAX - 1, 0),
            Some((i16::MAX as u16, 1))
        );
    }

    #[test]
    fn only_changes_are_sent() {
        let mut watch = SizeWatch::new((80, 24));
        assert_eq!(watch.changed(Some((80, 24))), None);
        assert_eq!(watch.changed(None), None);
        assert_eq!(watch.changed(Some((120, 40))), Some((120, 40)));
        assert_eq!(watch.last(), (120, 40));
        // Once sent, the same size is no change.
        assert_eq!(watch.changed(Some((120, 40))), None);
        // Unreadable or zero sizes change nothing, and the next real
        // change is still seen.
        assert_eq!(watch.changed(Some((0, 40))), None);
        assert_eq!(watch.changed(Some((120, 0))), None);
        assert_eq!(watch.last(), (120, 40));
        assert_eq!(watch.changed(Some((80, 24))), Some((80, 24)));
        // Back to a size sent before is a change too.
        assert_eq!(watch.changed(Some((120, 40))), Some((120, 40)));
    }
}
