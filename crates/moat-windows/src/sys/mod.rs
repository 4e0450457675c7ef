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
pub mod console;
pub mod descriptor;
pub mod desktop;
pub mod dpapi;
pub mod elevate;
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

/// `what` failed with `err`, explained when the code is one
/// `crate::errors` knows.
pub fn failure(what: &str, err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => crate::errors::describe(what, code as u32),
        None => format!("{what} failed: {err}"),
    }
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

/// The text of `path`, `None` when there is no such file (setup records,
/// SID books, ledgers: absent means "not made yet").
pub fn read_if_present(path: &std::path::Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Writes `bytes` to `path` through a new file renamed over it: a crash
/// leaves the old contents or the new, never half of either, and a file
/// someone else made there beforehand is replaced, not reused.
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            err
        })
}

/// Fills `buf` from the system's preferred random generator; the NTSTATUS
/// on failure.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), u32> {
    use windows_sys::Win32::Security::Cryptography::{
        BCryptGenRandom, BCRYPT_USE_SYSTEM_PREFERRED_RNG,
    };
    // SAFETY: a null algorithm handle is documented with
    // BCRYPT_USE_SYSTEM_PREFERRED_RNG; `buf` is live and as long as the
    // length passed.
    let status = unsafe {
        BCryptGenRandom(
            std::ptr::null_mut(),
            buf.as_mut_ptr(),
            buf.len() as u32,
            BCRYPT_USE_SYSTEM_PREFERRED_RNG,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(status as u32)
    }
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
