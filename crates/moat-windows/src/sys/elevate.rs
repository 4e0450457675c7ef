//! `moat setup` through the UAC prompt: moat starts itself again as
//! administrator (`ShellExecuteExW` with the `runas` verb), waits for it and
//! takes its exit code. The elevated copy runs in a console of its own that
//! the person does not see, so its output goes to a report file
//! ([`report_to`]) that the first moat prints afterwards.

use std::fs::OpenOptions;
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::{FromRawHandle, IntoRawHandle, OwnedHandle, RawHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Console::{SetStdHandle, STD_ERROR_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Threading::{GetExitCodeProcess, WaitForSingleObject, INFINITE};
use windows_sys::Win32::UI::Shell::{
    ShellExecuteExW, SEE_MASK_NOASYNC, SEE_MASK_NOCLOSEPROCESS, SHELLEXECUTEINFOW,
};

use super::{last_error, wide};

/// FILE_FLAG_OPEN_REPARSE_POINT: open a link itself, not its target.
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;

/// FILE_ATTRIBUTE_REPARSE_POINT: a link, junction or mount point.
const REPARSE_POINT: u32 = 0x400;

/// SW_HIDE: the elevated copy's console stays hidden; its output comes
/// back through the report.
const HIDDEN: i32 = 0;

/// Starts `exe` with `parameters` (one command line, quoted by
/// `crate::cmdline`) as administrator, showing the UAC prompt, and waits for
/// it; its exit code. A declined prompt is the error `ERROR_CANCELLED`
/// (1223), which `crate::errors` explains.
pub fn run_as_administrator(exe: &Path, parameters: &str) -> io::Result<u32> {
    let verb = wide("runas");
    let file = wide(&exe.to_string_lossy());
    let params = wide(parameters);
    // SAFETY: the structure is plain data; all-zero is a valid value for
    // every field this call does not set.
    let mut info: SHELLEXECUTEINFOW = unsafe { std::mem::zeroed() };
    info.cbSize = std::mem::size_of::<SHELLEXECUTEINFOW>() as u32;
    info.fMask = SEE_MASK_NOCLOSEPROCESS | SEE_MASK_NOASYNC;
    info.lpVerb = verb.as_ptr();
    info.lpFile = file.as_ptr();
    info.lpParameters = params.as_ptr();
    info.nShow = HIDDEN;
    // SAFETY: `info` is a live, initialised structure of the size it says;
    // the strings it points to outlive the call.
    if unsafe { ShellExecuteExW(&mut info) } == 0 {
        return Err(last_error());
    }
    if info.hProcess.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::Other,
            "Windows started moat as administrator but gave no handle to wait on",
        ));
    }
    // SAFETY: with SEE_MASK_NOCLOSEPROCESS the process handle is ours to
    // close, and nothing else owns it.
    let process = unsafe { OwnedHandle::from_raw_handle(info.hProcess as RawHandle) };
    let raw = info.hProcess as HANDLE;
    // SAFETY: `process` keeps the handle open for both calls.
    if unsafe { WaitForSingleObject(raw, INFINITE) } != WAIT_OBJECT_0 {
        return Err(last_error());
    }
    let mut code = 0u32;
    // SAFETY: as above; `code` is a live u32.
    if unsafe { GetExitCodeProcess(raw, &mut code) } == 0 {
        return Err(last_error());
    }
    drop(process);
    Ok(code)
}

/// Sends this process's standard output and error to `path` for the rest
/// of its life. Rust's standard streams look the handles up on every
/// write, so `println!` follows.
///
/// The file must exist already (the first moat made it, in its own state
/// directory, which no writable root holds) and must not be a link: this
/// process is administrator, and opening a path someone else chose for
/// writing must not land on a file elsewhere.
pub fn report_to(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    if file.metadata()?.file_attributes() & REPARSE_POINT != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the report file {} is a link", path.display()),
        ));
    }
    // The handle stays open until the process exits: it is standard output
    // and error from now on.
    let raw = file.into_raw_handle() as HANDLE;
    for which in [STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
        // SAFETY: `raw` is a live file handle this process never closes.
        if unsafe { SetStdHandle(which, raw) } == 0 {
            return Err(last_error());
        }
    }
    Ok(())
}
