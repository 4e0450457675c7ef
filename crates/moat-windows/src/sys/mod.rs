//! The Windows calls of the backend, one module per concern, each a few
//! safe functions over the raw API (`windows-sys`), and the runner's main
//! loop (`runner`), which only wires those calls to
//! `crate::runner_loop`, and moat's side of the elevated tier
//! (`elevated`), which carries out `crate::elevated`, the unelevated tier
//! (`unelevated`), which carries out `crate::unelevated`, and the real host of
//! `crate::setup_run` (`setup_host`), and `moat` itself (`cli`, the
//! `moat-win` binary's main). CI type-checks them for `x86_64-pc-windows-gnu`
//! (scripts/windows-check.sh); they have not run on Windows.

pub mod accounts;
pub mod acl;
pub mod anon_pipe;
pub mod cli;
pub mod conpty;
pub mod descriptor;
pub mod desktop;
pub mod dpapi;
pub mod elevated;
pub mod job;
pub mod logon;
pub mod pipe;
pub mod process;
pub mod runner;
pub mod setup_host;
pub mod token;
pub mod unelevated;

use std::io;

/// The calling thread's last Win32 error, as an `io::Error` (whose raw OS
/// error is the Win32 code, which `crate::errors` explains).
pub fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// A NUL-terminated UTF-16 string Windows owns, as text.
///
/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string.
pub unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY (of the reads): the caller promises a NUL before the end of
    // the allocation, and reading stops at it.
    while *p.add(len) != 0 {
        len += 1;
    }
    String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
}

/// `text` as a NUL-terminated UTF-16 string.
pub fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A SID in the binary layout, in a buffer aligned for the structure
/// (Windows reads its sub-authorities as 32-bit words).
#[derive(Debug)]
pub struct SidBuf(Vec<u32>);

impl SidBuf {
    pub fn new(sid: &crate::sid::Sid) -> SidBuf {
        let bytes = sid.to_bytes();
        let mut words = vec![0u32; (bytes.len() + 3) / 4];
        for (i, b) in bytes.iter().enumerate() {
            words[i / 4] |= (*b as u32) << (8 * (i % 4));
        }
        SidBuf(words)
    }

    pub fn psid(&self) -> windows_sys::Win32::Security::PSID {
        self.0.as_ptr() as windows_sys::Win32::Security::PSID
    }
}
