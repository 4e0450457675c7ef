//! moat's own console during a `--pty` run: its size (for the
//! pseudoconsole, when the run starts and each time it changes) and raw
//! mode, put back on every way out by [`RawMode`]'s drop, and its keys
//! read as they come ([`RawInput`]). The mode arithmetic, the size
//! decisions and the UTF-16 decoding are `crate::terminal`'s.

use std::io::{self, Read};

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Console::{
    GetConsoleMode, GetConsoleScreenBufferInfo, GetStdHandle, ReadConsoleW, SetConsoleMode,
    CONSOLE_SCREEN_BUFFER_INFO, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};

use super::last_error;
use crate::terminal::{self, Utf16Decoder};

// `crate::terminal` tests its mode arithmetic with its own copies of the
// bits; they must be Windows' own.
const _: () = {
    use windows_sys::Win32::System::Console as c;
    assert!(terminal::ENABLE_PROCESSED_INPUT == c::ENABLE_PROCESSED_INPUT);
    assert!(terminal::ENABLE_LINE_INPUT == c::ENABLE_LINE_INPUT);
    assert!(terminal::ENABLE_ECHO_INPUT == c::ENABLE_ECHO_INPUT);
    assert!(terminal::ENABLE_VIRTUAL_TERMINAL_INPUT == c::ENABLE_VIRTUAL_TERMINAL_INPUT);
    assert!(terminal::ENABLE_PROCESSED_OUTPUT == c::ENABLE_PROCESSED_OUTPUT);
    assert!(terminal::ENABLE_VIRTUAL_TERMINAL_PROCESSING == c::ENABLE_VIRTUAL_TERMINAL_PROCESSING);
};

/// The pseudoconsole's size when moat's output is not a console.
pub const DEFAULT_PTY: (u16, u16) = (80, 24);

/// One of moat's standard handles, `None` when moat has none.
fn std_handle(which: u32) -> Option<HANDLE> {
    // SAFETY: takes no pointer; the handle returned is the process's,
    // which moat does not close.
    let h = unsafe { GetStdHandle(which) };
    if h.is_null() || h == INVALID_HANDLE_VALUE {
        None
    } else {
        Some(h)
    }
}

/// The mode of `h` if it is a console handle.
fn mode(h: HANDLE) -> Option<u32> {
    let mut mode = 0u32;
    // SAFETY: `h` is one of moat's standard handles (GetConsoleMode fails
    // harmlessly on one that is not a console); `mode` is a live
    // out-parameter.
    if unsafe { GetConsoleMode(h, &mut mode) } == 0 {
        None
    } else {
        Some(mode)
    }
}

fn set_mode(h: HANDLE, mode: u32) -> io::Result<()> {
    // SAFETY: `h` is one of moat's standard handles, a console's (the
    // caller read its mode); takes no pointer.
    if unsafe { SetConsoleMode(h, mode) } == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// The visible window of moat's console output as `(cols, rows)`, `None`
/// when moat's output is not a console.
pub fn size() -> Option<(u16, u16)> {
    let out = std_handle(STD_OUTPUT_HANDLE)?;
    // SAFETY: plain data; all-zero is a valid value.
    let mut info: CONSOLE_SCREEN_BUFFER_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: `out` is moat's standard output (the call fails on one that
    // is not a console); `info` is a live structure as large as the call
    // expects.
    if unsafe { GetConsoleScreenBufferInfo(out, &mut info) } == 0 {
        return None;
    }
    let w = info.srWindow;
    terminal::window_size(w.Left, w.Top, w.Right, w.Bottom)
}

/// The size a pseudoconsole starts with: moat's console window's, else
/// [`DEFAULT_PTY`].
pub fn console_size() -> (u16, u16) {
    size().unwrap_or(DEFAULT_PTY)
}

/// moat's console in raw mode (`crate::terminal::raw_input_mode`, and VT
/// processing for its output) until dropped, which puts back the modes it
/// found: at the end of the run, on an error, and in a panic's unwinding.
#[derive(Debug)]
pub struct RawMode {
    input: HANDLE,
    input_mode: u32,
    /// moat's output and its mode, when it is a console.
    output: Option<(HANDLE, u32)>,
}

/// Raw mode for a `--pty` run, or `None`: moat's input is not a console,
/// or the console refused, which is said on standard error and the command
/// still runs, on a line-buffered console.
pub fn raw_for_run() -> Option<RawMode> {
    match RawMode::enable() {
        Ok(raw) => raw,
        Err(err) => {
            eprintln!(
                "moat: note: {}",
                super::failure("putting the console in raw mode", &err)
            );
            None
        }
    }
}

impl RawMode {
    /// Puts moat's console in raw mode; `None` when moat's standard input
    /// is not a console (a pipe or a file: nothing to change).
    pub fn enable() -> io::Result<Option<RawMode>> {
        let input = match std_handle(STD_INPUT_HANDLE) {
            Some(h) => h,
            None => return Ok(None),
        };
        let input_mode = match mode(input) {
            Some(m) => m,
            None => return Ok(None),
        };
        set_mode(input, terminal::raw_input_mode(input_mode))?;
        // From here on, dropping the guard restores the input's mode, also
        // when the output's change fails below.
        let mut guard = RawMode {
            input,
            input_mode,
            output: None,
        };
        if let Some(output) = std_handle(STD_OUTPUT_HANDLE) {
            if let Some(output_mode) = mode(output) {
                set_mode(output, terminal::vt_output_mode(output_mode))?;
                guard.output = Some((output, output_mode));
            }
        }
        Ok(Some(guard))
    }
}

impl RawMode {
    /// A reader of the console's keys for the command, to use instead of
    /// `std::io::stdin()` while the console is raw (see
    /// `crate::terminal`: std takes Ctrl+Z for the end of input).
    pub fn input(&self) -> RawInput {
        RawInput {
            console: self.input as usize,
            decoder: Utf16Decoder::new(),
            pending: Vec::new(),
            taken: 0,
        }
    }
}

/// UTF-16 characters per console read.
const CONSOLE_READ: usize = 4096;

/// moat's console input as UTF-8 bytes, read with `ReadConsoleW` and no
/// end-of-input key. Reads block until a key comes; the end of input is
/// a console that reads nothing (it was closed).
#[derive(Debug)]
pub struct RawInput {
    /// The console input handle (moat's standard input, which moat never
    /// closes), as a number so that a reading thread can own it.
    console: usize,
    decoder: Utf16Decoder,
    /// Decoded bytes not yet handed out, from `taken` on.
    pending: Vec<u8>,
    taken: usize,
}

impl Read for RawInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.taken == self.pending.len() {
            let mut wide = vec![0u16; CONSOLE_READ];
            let mut got = 0u32;
            // SAFETY: `console` is moat's standard input, a console handle
            // that stays open for the process's life; `wide` is live and as
            // many UTF-16 units long as passed; `got` is a live
            // out-parameter; no read control (so no wake-up key).
            let ok = unsafe {
                ReadConsoleW(
                    self.console as HANDLE,
                    wide.as_mut_ptr() as *mut core::ffi::c_void,
                    CONSOLE_READ as u32,
                    &mut got,
                    std::ptr::null(),
                )
            };
            if ok == 0 {
                return Err(last_error());
            }
            if got == 0 {
                return Ok(0);
            }
            let units = wide.get(..got as usize).unwrap_or(&wide);
            self.pending = self.decoder.push(units);
            self.taken = 0;
        }
        let rest = self.pending.get(self.taken..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.taken += n;
        Ok(n)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing more can be done about a failure here: the console was
        // closed, or moat is exiting anyway.
        let _ = set_mode(self.input, self.input_mode);
        if let Some((output, output_mode)) = self.output {
            let _ = set_mode(output, output_mode);
        }
    }
}
